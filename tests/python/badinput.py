"""Bad-input cells generated from a tool's inputSchema, and the check of an answer to one.

A cell changes one thing in a call whose other arguments are valid: a required argument
left out, an argument of the wrong JSON type, an empty, huge, negative or unknown value, an
extra argument, a path that must not be read, a pid that is no game, an address that does
not parse. The answer passes when it is `isError` with a message under 4 KB that names the
argument. Used by test_bad_input_matrix.py."""

import re
from dataclasses import dataclass

# The bound every error message keeps (mcp-common's MAX_ERROR_BYTES).
MAX_ERROR_BYTES = 4096
EXTRA = "zzz_unknown"
ONE_MB = 1 << 20
HUGE_ARRAY = 100_000
# Path-like by name (the brief's rule) ...
PATH_NAME = re.compile(r"path|file|dir|pcap|profile")
# ... except names that only contain those letters (`file_offset`, `direction`).
NOT_PATH_NAME = re.compile(r"_offset$|_id$|^direction$")
# ... or by what the description says the value is (a capture source, a program, the
# sandbox's home and mounts); a filter whose text may be a path is no path.
PATH_DESCRIPTION = re.compile(r"(file|pcap) path|^A path|[Dd]irector(y|ies) under the roots")
ADDRESS_STRINGS = ("0xZZ", "Module.dll+0xFFFFFFFFFFFFFFFF", "")
# The verdict of a bad value the tool took as good.
ACCEPTED_ANSWER = "accepted (no isError)"


@dataclass(frozen=True)
class Cell:
    tool: str
    arg: str
    kind: str  # what was wrong, e.g. "missing", "wrong type", "huge string"
    op: str  # "drop", "set" or "add"
    value: object = None

    def arguments(self, base):
        args = dict(base)
        if self.op == "drop":
            args.pop(self.arg, None)
        else:
            args[self.arg] = self.value() if callable(self.value) else self.value
        return args


def types_of(prop):
    """The JSON types a property accepts (an `anyOf` of types flattened), or None for any."""
    if "type" in prop:
        t = prop["type"]
        return set(t if isinstance(t, list) else [t]) - {"null"}
    if "anyOf" in prop:
        out = set()
        for alt in prop["anyOf"]:
            sub = types_of(alt)
            if sub is None:
                return None
            out |= sub
        return out
    return None


def accepts(types, value):
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}[type(value)]
    return kind in types or (kind == "integer" and "number" in types)


def is_path_like(name, prop):
    by_name = PATH_NAME.search(name) and not NOT_PATH_NAME.search(name)
    return bool(by_name or PATH_DESCRIPTION.search(prop.get("description", "")))


def item_value(prop):
    """A plausible element for a huge array of this property."""
    items = types_of(prop.get("items", {})) or set()
    if "integer" in items or "number" in items:
        return 0
    if "string" in items:
        return "x"
    return {}


def cells_for(tool, schema, paths, pids):
    """Every cell of one tool. `paths` and `pids` are (kind, value) lists of the bad paths
    and pids this run made (a FIFO, a dead pid, ...)."""
    props = schema.get("properties", {})
    out = [Cell(tool, r, "missing", "drop") for r in schema.get("required", [])]
    out.append(Cell(tool, EXTRA, "unknown argument", "add", 1))
    for name, prop in props.items():
        types = types_of(prop)
        if types is None:
            continue
        add = lambda kind, value: out.append(Cell(tool, name, kind, "set", value))
        for wrong in ("not-a-number", 12345, {"x": 1}, True, [1]):
            if not accepts(types, wrong):
                add(f"wrong type {type(wrong).__name__}", wrong)
                break
        if "string" in types:
            add("empty string", "")
            add("huge string (1 MB)", lambda: "A" * ONE_MB)
        if "array" in types:
            add("empty array", [])
            element = item_value(prop)
            add(f"huge array ({HUGE_ARRAY})", lambda e=element: [e] * HUGE_ARRAY)
        if "object" in types:
            add("empty object", {})
        if "integer" in types:
            add("huge integer 2^64", 2**64)
            add("negative integer", -1)
        if "number" in types:
            add("huge number 1e300", 1e300)
        if "enum" in prop:
            if all(isinstance(e, int) for e in prop["enum"]):
                add("unknown enum value", next(i for i in range(3, 100) if i not in prop["enum"]))
            else:
                add("unknown enum value", "no-such-choice")
        if is_path_like(name, prop):
            for kind, path in paths:
                add(kind, [path] if "array" in types else path)
        if name == "pid":
            for kind, pid in pids:
                add(kind, pid)
        if {"integer", "string"} <= types and "enum" not in prop and name not in ("id",):
            for text in ADDRESS_STRINGS:
                add(f"address {text!r}" if text else "address ''", text)
    # One cell per (arg, value kind): "address ''" and "empty string" are the same call.
    seen, unique = set(), []
    for c in out:
        key = (c.arg, repr(c.value) if not callable(c.value) else c.kind)
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def names(text, arg):
    """Whether an error text names `arg`: in backticks anywhere, or as the word a message (or
    a `context: message` part) starts with, e.g. `program "x" is not an executable file`. A
    word in the middle of a sentence ("a value scan") is no naming. A path into the value
    (`calls[3].tool`, `layout[0].name`) names its argument too."""
    return re.search(rf"`{re.escape(arg)}([`\[.])", text) is not None or re.search(
        rf"(^|: ){re.escape(arg)}(?![A-Za-z0-9_`])", text) is not None


def verdict(cell, is_error, text):
    """None when the answer passes, else why it fails."""
    if not is_error:
        return ACCEPTED_ANSWER
    if len(text.encode()) > MAX_ERROR_BYTES:
        return f"error of {len(text.encode())} bytes (> {MAX_ERROR_BYTES})"
    if not names(text, cell.arg):
        return f"error does not name `{cell.arg}`"
    return None
