"""The bad-input matrix: every tool of every server (mcp-static, mcp-memory, mcp-network,
mcp-d2, mcp-behavior, sandbox-runner's MCP mode, and the coordinator's default suite, its own tools and
the children's namespaced ones), driven by the official Python MCP SDK, gets one call per
cell that badinput.py generates from its inputSchema: a required argument missing, a wrong
type, empty / huge / negative values, an unknown enum value, an unknown argument, paths that
must not be read (outside the roots, special files, a FIFO, a directory), bad pids, and
address strings that do not parse. Each answer must be `isError` naming the argument in
under 4 KB, and the server must answer a cheap call afterwards (10 s per call).

Each server runs with --root set to a temporary directory holding real inputs (the fixture
DLLs, a save, a stash, a D2GS dump, a directory and a FIFO); the live tools get the memory
fixture and the fixture game. Prints a table per server and every failing cell.

Needs MCP_COORDINATOR (the other bins beside it), FIXTURE_DIR, MEMFIX and D2GAME_DIR;
scripts/test.sh sets them. The saves and the D2GS dump come from ../shared/fixtures (without
it a line says so, and the save, stash and capture tools get no valid input).
MATRIX_SERVERS=static,d2,... runs only those servers (for work on one of them)."""

import json
import os
import shutil
import struct
import subprocess
import tempfile
import warnings
from collections import Counter

import anyio
import pytest
from mcp import Client, StdioServerParameters

from badinput import ACCEPTED_ANSWER, Cell, cells_for, verdict

COORD = os.environ.get("MCP_COORDINATOR", "")
FIXTURES = os.environ.get("FIXTURE_DIR", "")
MEMFIX = os.environ.get("MEMFIX", "")
D2GAME = os.environ.get("D2GAME_DIR", "")
SHARED = os.environ.get("SHARED_FIXTURES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "fixtures")


def write_pcap(path):
    """A small classic pcap (Ethernet, IPv4, TCP) of one connection to port 4000: handshake,
    a few data segments both ways, FIN: a valid capture for the network tools' cells when
    the shared D2GS dump is absent."""
    def frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                         bytes(src), bytes(dst)) + tcp
        return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
    c, s = (10, 0, 0, 1), (10, 0, 0, 2)
    syn, ack, psh, fin = 0x02, 0x10, 0x18, 0x11
    frames = [frame(c, s, 50000, 4000, 0, 0, syn), frame(s, c, 4000, 50000, 0, 1, syn | ack),
              frame(c, s, 50000, 4000, 1, 1, ack), frame(s, c, 4000, 50000, 1, 1, psh, b"\xaf"),
              frame(c, s, 50000, 4000, 1, 2, psh, b"\x68" + b"\x00" * 36),
              frame(s, c, 4000, 50000, 2, 38, psh, b"hello from the server"),
              frame(c, s, 50000, 4000, 38, 23, fin), frame(s, c, 4000, 50000, 23, 39, fin)]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000, i * 1000, len(fr), len(fr)) + fr)
CALL_TIMEOUT_S = 10
IS_ROOT = os.geteuid() == 0

pytestmark = pytest.mark.skipif(
    not (COORD and FIXTURES and MEMFIX and D2GAME),
    reason="MCP_COORDINATOR, FIXTURE_DIR, MEMFIX and D2GAME_DIR must be set (scripts/test.sh does)",
)

# Cells a tool legitimately accepts, by (server, tool, argument, value kind) ("*" = any
# tool), each with the reason. Keep it short and honest: anything else accepted fails.
FILTER = ("empty string", "huge string (1 MB)")
ACCEPTED = {
    # A text filter: empty is no filter, one longer than any name matches nothing.
    **{(server, tool, arg, kind): "a text filter"
       for server, tool, arg in (("static", "*", "filter"), ("static", "list_strings", "contains"),
                                 ("memory", "*", "name_contains"), ("network", "list_packets", "contains"),
                                 ("behavior", "trace_events", "contains"),
                                 *(("coordinator", "findings_query", a) for a in ("kind", "tool", "target", "text")))
       for kind in FILTER},
    ("coordinator", "findings_query", "since", "huge number 1e300"): "a time after every finding",
    ("coordinator", "findings_export", "since", "huge number 1e300"): "a time after every finding: an empty export",
    ("network", "capture_start", "bpf_filter", "empty string"): "libpcap: no filter, every packet",
    ("memory", "pointer_scan", "modules", "empty array"): "documented: all modules when empty",
    ("memory", "resolve_pointer", "offsets", "empty array"): "no hops: the pointer at `base`",
    # The sandbox's defaults are these very values; a directory under the roots is what
    # `home`, `ro` and `rw` take.
    **{("sandbox", "launch", arg, kind): "the default / a valid value"
       for arg, kind in (("args", "empty array"), ("env", "empty object"), ("ro", "empty array"),
                         ("rw", "empty array"), ("home", "directory"), ("ro", "directory"),
                         ("rw", "directory"))},
    ("coordinator", "findings_record", "links", "empty array"): "a finding with no links",
    # Where root may read pid 1 (not in every container), these calls about a whole live
    # process have an answer; the others read an address of the memory fixture.
    **{("memory", tool, "pid", "pid 1"): "pid 1 is a live process root may read"
       for tool in ("list_modules", "list_regions", "scan_start", "pointer_scan")},
    ("behavior", "find_writers", "pid", "pid 1"): "pid 1 is a live process root may watch (never stopped)",
    # Directories the trace's paths are compared with, never opened: any absolute one is a
    # valid rule parameter (`../../etc/shadow`, relative, is refused).
    **{("behavior", "detect", arg, kind): "a directory compared with the trace's paths, never opened"
       for arg in ("game_dir", "save_dir")
       for kind in ("nonexistent path", "outside roots /etc/passwd", "special /dev/zero",
                    "special FIFO", "special /proc/self/mem", "directory")},
    ("behavior", "detect", "actions_ms", "huge array (100000)"): "a long series (at most 1,000,000)",
}

# Valid arguments some tools need besides the required ones (one of a group must be
# given), so that a cell's answer is about the argument it changed:
# (server, tool) -> {changed argument or "*": the companions}.
COMPANIONS = {
    ("static", "convert_address"): {"*": {"va": "0x6FAB1000"}, "va": {}, "rva": {}, "file_offset": {}},
    ("static", "xrefs_to"): {"*": {"address": "0x6FAB1000"}, "address": {}, "string": {}, "import": {}},
    ("memory", "scan_start"): {"*": {"value_type": "u32", "value": 0x7A11CE55},
                               "value": {"value_type": "u32"}, "value_type": {"value": 0x7A11CE55},
                               "pattern": {}, "text": {}},
    ("memory", "scan_next"): {"*": {"value": 0x7A11CE55}, "value": {}},
    # The byte already there (the fixture's value is 0x7A11CE55): the write changes nothing.
    # A bad `value` is given with a type, so that the answer is about the value.
    ("memory", "write_memory"): {"*": {"bytes": "55"}, "bytes": {}, "value": {"value_type": "u32"},
                                 "value_type": {"value": 0x55}},
    # A short window, so that a cell whose value is fine does not watch for 10 s.
    ("behavior", "find_writers"): {"*": {"duration_s": 0.1}, "duration_s": {}},
    # One source for every cell but the sources' own; `$pid` is the memory fixture's.
    ("behavior", "trace_start"): {"*": {"pid": "$pid"}, "pid": {}, "command": {}, "sandbox_id": {}},
    ("behavior", "detect"): {"*": {"actions_ms": [0, 250, 500]}, "actions_ms": {}, "trace_id": {},
                             "positions": {}, "source": {}},
}

# Cells not run because a valid-looking call would act on the machine: a write into pid 1.
HARMFUL = {("write_memory", "pid", "pid 1")}


def allowed(server, tool, cell):
    for key in ((server, tool, cell.arg, cell.kind), (server, "*", cell.arg, cell.kind)):
        if key in ACCEPTED:
            return ACCEPTED[key]
    return None


def text_of(result):
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


class Inputs:
    """The temporary root with real inputs, the bad paths and pids, the fixture processes."""

    def __init__(self, tmp):
        self.root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(self.root, "adir"))
        for name in ("D2Client.dll", "D2Client_v2.dll"):
            shutil.copy(os.path.join(FIXTURES, name), self.root)
        self.saves = {}
        for want, name in (("save", "d2v113c.d2s"), ("save_b", "sets.d2s"), ("stash", "simple.sss"),
                           ("dump", os.path.join("..", "d2gs", "d2gs_sc.dump"))):
            src = os.path.join(SHARED, "d2s", name)
            if os.path.exists(src):
                dst = os.path.join(self.root, os.path.basename(name))
                shutil.copy(src, dst)
                self.saves[want] = dst
        if "dump" not in self.saves:
            self.saves["dump"] = os.path.join(self.root, "made.pcap")
            write_pcap(self.saves["dump"])
        fifo = os.path.join(self.root, "fifo")
        os.mkfifo(fifo)
        self.paths = [("nonexistent path", os.path.join(self.root, "no-such-file.bin")),
                      ("outside roots /etc/passwd", "/etc/passwd"),
                      ("outside roots ../../etc/shadow", "../../etc/shadow"),
                      ("special /dev/zero", "/dev/zero"), ("special FIFO", fifo),
                      ("special /proc/self/mem", "/proc/self/mem"),
                      ("directory", os.path.join(self.root, "adir"))]
        dead = subprocess.Popen(["true"])
        dead.wait()
        self.pids = [("pid 0", 0), ("pid 1", 1), ("pid 2^31", 2**31), ("dead pid", dead.pid)]
        self.out = os.path.join(tmp, "out")
        self.data = os.path.join(tmp, "data")
        os.makedirs(self.out)

    def values(self, memfix, game):
        """Valid values by server and argument name (tool-specific ones as `tool.arg`)."""
        dll = os.path.join(self.root, "D2Client.dll")
        heap = memfix["heap_value"]
        s = self.saves
        return {
            "static": {"path": dll, "path_a": dll, "path_b": os.path.join(self.root, "D2Client_v2.dll"),
                       "pattern": "8B 0D ?? ??", "address": "0x6FAB1000"},
            "memory": {"pid": memfix["pid"], "address": heap, "length": 64, "count": 4, "size": 64,
                       "addresses": [heap], "layout": "D2UnitAny", "target": heap,
                       "base": heap, "offsets": [0], "value_type": "u32", "type": "u32",
                       "interval_ms": 10, "samples": 2, "max_depth": 1, "max_offset": 16,
                       "condition": "equal"},
            "network": {"source": s.get("dump"), "flow_id": 0, "index": 0, "interface": "lo"},
            "d2": {"pid": game["pid"], "path": s.get("save"), "parse_stash.path": s.get("stash"),
                   "path_a": s.get("save"), "path_b": s.get("save_b"), "kind": "class",
                   "type": "player"},
            "sandbox": {"profile": "strict", "program": "true"},
            "behavior": {"pid": memfix["pid"], "address": heap},
            "coordinator": {"name": "d2", "kind": "note", "title": "bad-input matrix",
                            "relation": "derived_from", "pid": game["pid"],
                            "calls": [{"tool": "d2__lookup", "arguments": {"kind": "class", "id": 0}}]},
        }


# Calls whose answers give ids other tools take: (tool, arguments by value name, fixed
# arguments, answer key (dotted), value name).
PRODUCERS = {
    "memory": [("scan_start", {"pid": "pid", "value_type": "value_type"}, {"value": 0x7A11CE55}, "scan_id", "scan_id"),
               ("snapshot", {"pid": "pid", "address": "address", "length": "length"}, {}, "snapshot_id", "before"),
               ("snapshot", {"pid": "pid", "address": "address", "length": "length"}, {}, "snapshot_id", "after"),
               ("pointer_scan", {"pid": "pid", "target": "target", "max_depth": "max_depth",
                                 "max_offset": "max_offset"}, {"pointer_size": 8}, "pointer_scan_id",
                "pointer_scan_id")],
    "network": [("capture_start", {"interface": "interface"}, {"max_packets": 10}, "capture_id",
                 "capture_id")],
    "behavior": [("trace_start", {"pid": "pid"}, {"kinds": ["process"]}, "trace_id", "trace_id")],
    "coordinator": [("findings_record", {"kind": "kind", "title": "title"}, {}, "finding.id", "from"),
                    ("findings_record", {"kind": "kind", "title": "title"}, {}, "finding.id", "to")],
}

# The arguments whose valid values come from the shared fixtures.
FROM_SHARED_FIXTURES = {("d2", "path"), ("d2", "path_a"), ("d2", "path_b"), ("network", "source")}

# A call each server answers at once, made after every cell.
CHEAP = {"static": ("binary_info", {"path": None}), "memory": ("list_processes", {"limit": 1}),
         "network": ("list_interfaces", {}), "d2": ("lookup", {"kind": "class", "id": 0}),
         "sandbox": ("list", {}), "behavior": ("detect", {"actions_ms": [0, 100]}),
         "coordinator": ("servers_status", {})}


class Run:
    """One server's cells and their outcomes."""

    def __init__(self, label, command, env, values, inputs):
        self.label, self.command, self.env = label, command, env
        self.values, self.inputs = values, inputs
        self.counts = Counter()
        # Cells not run: another required argument of the tool has no valid value here.
        self.unrunnable = Counter()
        self.failures = []
        self.notes = []

    def server_of(self, tool):
        """The child server and bare tool name of a (maybe namespaced) tool."""
        if self.label == "coordinator" and "__" in tool:
            prefix, bare = tool.split("__", 1)
            return prefix, bare
        return self.label, tool

    def value(self, server, tool, name, produced):
        v = self.values.get(server, {})
        if f"{tool}.{name}" in v:
            return v[f"{tool}.{name}"]
        if name in produced.get(server, {}):
            return produced[server][name]
        return v.get(name)

    def base(self, tool, schema, produced, arg=None):
        """Valid arguments for `tool`, for a cell that changes `arg`."""
        server, bare = self.server_of(tool)
        companions = COMPANIONS.get((server, bare), {})
        args = dict(companions.get(arg, companions.get("*", {})))
        # `$name`: the valid value of that name (a pid known only at run time).
        args = {k: (self.value(server, bare, v[1:], produced) if isinstance(v, str) and v.startswith("$") else v)
                for k, v in args.items()}
        wanted = list(schema.get("required", []))
        # The live game tools take the fixture game's pid rather than searching for one.
        if server in ("d2", "coordinator") and "pid" in schema.get("properties", {}):
            wanted.append("pid")
        for name in wanted:
            v = self.value(server, bare, name, produced)
            if v is None and "enum" in schema["properties"].get(name, {}):
                v = schema["properties"][name]["enum"][0]
            if v is not None:
                args[name] = v
        return args

    async def call(self, client, tool, args):
        with anyio.fail_after(CALL_TIMEOUT_S + 5):
            return await client.call_tool(tool, args, read_timeout_seconds=CALL_TIMEOUT_S)

    async def cheap(self, client, tool):
        server, _ = self.server_of(tool)
        name, args = CHEAP[server]
        if server == "static":
            args = {"path": self.values["static"]["path"]}
        if self.label == "coordinator" and server != "coordinator":
            name = f"{server}__{name}"
        r = await self.call(client, name, args)
        return not r.is_error

    async def produce(self, client, tools):
        produced = {}
        for label in ("memory", "network", "behavior", "coordinator"):
            for tool, from_values, fixed, key, name in PRODUCERS.get(label, []):
                full = tool if self.label == label else f"{label}__{tool}"
                if full not in tools:
                    continue
                args = {a: self.values[label][v] for a, v in from_values.items()} | fixed
                try:
                    r = await self.call(client, full, args)
                except Exception as e:  # noqa: BLE001 - a failed producer is reported, not fatal
                    self.notes.append(f"{full} (for `{name}`) raised {e!r}")
                    continue
                if r.is_error or not r.structured_content:
                    self.notes.append(f"{full} (for `{name}`) failed: {text_of(r)[:200]}")
                    continue
                v = r.structured_content
                for part in key.split("."):
                    v = v.get(part) if isinstance(v, dict) else None
                if v is None:
                    self.notes.append(f"{full} (for `{name}`) answered no `{key}`")
                    continue
                produced.setdefault(label, {})[name] = v
        return produced

    async def cleanup(self, client, tool, result):
        """Stops what an accepted cell started (a capture, a sandbox)."""
        sc = result.structured_content or {}
        for key, stop in (("capture_id", "capture_stop"), ("sandbox_id", "stop"), ("trace_id", "trace_stop")):
            if key in sc:
                prefix = tool.split("__")[0] + "__" if "__" in tool else ""
                try:
                    await self.call(client, prefix + stop, {key: sc[key]})
                except Exception as e:  # noqa: BLE001
                    self.notes.append(f"could not stop {sc[key]}: {e!r}")

    async def go(self):
        cells, start = None, 0
        params = StdioServerParameters(command=self.command[0], args=self.command[1:], env=self.env, cwd="/")
        while cells is None or start < len(cells):
            async with Client(params) as client:
                listed = {t.name: t.input_schema for t in (await client.list_tools()).tools}
                produced = await self.produce(client, listed)
                if cells is None:
                    cells = self.make_cells(listed, produced)
                restart = False
                for i in range(start, len(cells)):
                    c = cells[i]
                    restart = await self.run_cell(client, c, self.base(c.tool, listed[c.tool], produced, c.arg))
                    if restart:
                        start = i + 1
                        break
                if not restart:
                    start = len(cells)
        self.counts["cells"] = len(cells)

    def make_cells(self, listed, produced):
        cells = []
        for tool, schema in sorted(listed.items()):
            server, bare = self.server_of(tool)
            base = self.base(tool, schema, produced)
            lacking = [r for r in schema.get("required", []) if r not in base]
            if any(self.value(server, bare, r, produced) is None for r in lacking) and len(
                    schema.get("required", [])) > 1:
                self.notes.append(f"{tool}: no valid value for {', '.join(lacking)}: its cells "
                                  "may be answered about that argument")
            # Only the inputs the shared fixtures give (saves, stashes): other cells run as
            # they are, answered about their own argument.
            missing = {r for r in lacking if self.value(server, bare, r, produced) is None
                       and (server, r) in FROM_SHARED_FIXTURES}
            for c in cells_for(tool, schema, self.inputs.paths, self.inputs.pids):
                if (bare, c.arg, c.kind) in HARMFUL:
                    continue
                if missing - {c.arg}:
                    # Its answer would be about the missing argument: no verdict on this one.
                    self.unrunnable[tool] += 1
                    continue
                cells.append(c)
        return cells

    async def run_cell(self, client, cell: Cell, base):
        """Runs one cell; True when the server must be started again."""
        server, bare = self.server_of(cell.tool)
        args = cell.arguments(base)
        why, text = None, ""
        try:
            r = await self.call(client, cell.tool, args)
            text = text_of(r)
            why = verdict(cell, bool(r.is_error), text)
            if not r.is_error:
                await self.cleanup(client, cell.tool, r)
        except TimeoutError:
            why = f"no answer in {CALL_TIMEOUT_S} s"
        except Exception as e:  # noqa: BLE001 - a protocol error is a failed cell
            why, text = "protocol error instead of isError", repr(e)
        dead = False
        try:
            if not await self.cheap(client, cell.tool):
                dead, why = True, (why or "") + "; the cheap call after it failed"
        except Exception as e:  # noqa: BLE001
            dead, why = True, (why or "") + f"; no answer to the cheap call after it ({e!r})"
        # Only an accepted value can be accepted by design; a bad error stays a failure.
        reason = allowed(server, bare, cell) if why == ACCEPTED_ANSWER else None
        if reason and not dead:
            self.counts["accepted"] += 1
        elif why:
            self.counts["failed"] += 1
            self.failures.append((cell.tool, cell.arg, cell.kind, why, text[:200]))
        else:
            self.counts["passed"] += 1
        return dead


def test_bad_input_matrix():
    bins = os.path.dirname(COORD)
    if not os.path.isdir(os.path.join(SHARED, "d2s")):
        print(f"note: {SHARED} is absent: the save, stash and capture tools get no valid input")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Inputs(tmp)
        fx = subprocess.Popen([MEMFIX], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        game = subprocess.Popen([os.path.join(D2GAME, "d2game"), os.path.join(D2GAME, "D2Client.dll")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=D2GAME)
        try:
            values = inputs.values(json.loads(fx.stdout.readline()), json.loads(game.stdout.readline()))
            # HOME is the coordinator's children's root; TMPDIR keeps what they write (the
            # captures of mcp-network's default output directory) in this run's directory.
            env = {"PATH": os.environ.get("PATH", ""), "HOME": inputs.root, "TMPDIR": inputs.out}
            root = ["--root", inputs.root]
            specs = [("static", [os.path.join(bins, "mcp-static"), *root]),
                     ("memory", [os.path.join(bins, "mcp-memory"), "--allow-write", *root]),
                     ("network", [os.path.join(bins, "mcp-network"), *root, "--output-dir", inputs.out]),
                     ("d2", [os.path.join(bins, "mcp-d2"), *root]),
                     ("sandbox", [os.path.join(bins, "sandbox-runner"), "mcp", *root]
                      + (["--allow-launch"] if IS_ROOT else [])),
                     ("behavior", [os.path.join(bins, "mcp-behavior")]),
                     ("coordinator", [COORD, "--data-dir", inputs.data])]
            only = set(filter(None, os.environ.get("MATRIX_SERVERS", "").split(",")))
            runs = [Run(label, cmd, env, values, inputs) for label, cmd in specs
                    if not only or label in only]
            for run in runs:
                anyio.run(run.go)
        finally:
            for p in (fx, game):
                p.kill()
                p.wait()
    report(runs)


def report(runs):
    total = Counter()
    print(f"\n{'server':<12} {'cells':>6} {'passed':>7} {'failed':>7} {'accepted':>9}")
    for run in runs:
        c = run.counts
        total.update(c)
        print(f"{run.label:<12} {c['cells']:>6} {c['passed']:>7} {c['failed']:>7} {c['accepted']:>9}")
    print(f"{'total':<12} {total['cells']:>6} {total['passed']:>7} {total['failed']:>7} {total['accepted']:>9}")
    for run in runs:
        for note in run.notes:
            print(f"note [{run.label}]: {note}")
    failures = [(run.label, *f) for run in runs for f in run.failures]
    for server, tool, arg, kind, why, text in failures:
        print(f"FAIL [{server}] {tool} `{arg}` {kind}: {why}\n    answer: {text!r}")
    unrunnable = Counter()
    for run in runs:
        unrunnable.update(run.unrunnable)
    if unrunnable:
        why = (f"{sum(unrunnable.values())} bad-input cells not run for want of a valid input "
               f"(the shared fixtures at {SHARED}): {dict(unrunnable)}")
        print(why)
        assert os.environ.get("REQUIRE_SHARED_FIXTURES", "0") in ("", "0"), why
        warnings.warn(why)
    assert not failures, f"{len(failures)} of {total['cells']} bad-input cells failed (listed above)"
