//! Pattern detection over a trace's events and over game-side time series, by rules kept as
//! data: `schemas/behavior/rules/*.json`, compiled in, their format in that directory's
//! README. Rules are data so that a new pattern (or a corrected constant) is a reviewed file
//! with its source, not new code. Knows nothing of MCP: `tools` hands it events and
//! parameters and shows what it returns.

use crate::events::{Event, KINDS, What};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Where the rule files live, for error messages.
const RULES_DIR: &str = "schemas/behavior/rules";

/// The rule files, by name; a test checks that this is every `.json` of the directory.
const RULE_FILES: &[(&str, &str)] = &[
    (
        "code-injection.json",
        include_str!("../../schemas/behavior/rules/code-injection.json"),
    ),
    (
        "debugger-check.json",
        include_str!("../../schemas/behavior/rules/debugger-check.json"),
    ),
    (
        "exec-memory-outside-module.json",
        include_str!("../../schemas/behavior/rules/exec-memory-outside-module.json"),
    ),
    (
        "file-write-outside-save-dir.json",
        include_str!("../../schemas/behavior/rules/file-write-outside-save-dir.json"),
    ),
    (
        "impossible-movement.json",
        include_str!("../../schemas/behavior/rules/impossible-movement.json"),
    ),
    (
        "module-outside-game-dir.json",
        include_str!("../../schemas/behavior/rules/module-outside-game-dir.json"),
    ),
    (
        "regular-action-intervals.json",
        include_str!("../../schemas/behavior/rules/regular-action-intervals.json"),
    ),
    (
        "timing-probe.json",
        include_str!("../../schemas/behavior/rules/timing-probe.json"),
    ),
    (
        "unexpected-port.json",
        include_str!("../../schemas/behavior/rules/unexpected-port.json"),
    ),
];

/// How many event numbers a detection keeps: enough to go and look, bounded for huge traces.
pub const MAX_EVENTS: usize = 20;

/// Partial sequences kept per group: a flood of first steps must not grow without bound.
const MAX_PARTIALS: usize = 64;

/// How serious a rule's finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// One rule as its file states it (checked when loaded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    /// E.g. "MITRE ATT&CK T1622 (Debugger Evasion)".
    pub reference: String,
    #[serde(default)]
    pub sources: Vec<String>,
    /// Decisions and caveats, in prose.
    #[serde(default)]
    pub notes: Option<String>,
    /// How close in time the events of a burst or a sequence must be.
    #[serde(default)]
    pub window_ms: Option<f64>,
    #[serde(rename = "match")]
    matcher: Match,
}

/// What a detector needs beyond the events: the places and ports the game may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Params {
    /// Modules from elsewhere (not system) are reported; a Unix path, or as Wine prints.
    #[serde(default)]
    pub game_dir: Option<String>,
    /// Writes elsewhere are reported.
    #[serde(default)]
    pub save_dir: Option<String>,
    /// Instead of 4000, 6112, 6113.
    #[serde(default)]
    pub allowed_ports: Option<Vec<u16>>,
}

/// A rule that fired (or was skipped: `skipped`, with the reason in `detail`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Detection {
    /// The rule's id.
    pub rule: String,
    pub description: String,
    pub severity: Severity,
    /// E.g. "MITRE ATT&CK T1055 (Process Injection)".
    pub reference: String,
    /// How many times it fired: matching events, bursts, sequences or too-fast steps.
    pub count: u64,
    /// The `seq` numbers of the events that made it (for movement, the indexes of the later
    /// sample of each step), ascending, at most 20.
    pub events: Vec<u64>,
    /// One line, e.g. "cv 0.012 over 40 intervals".
    pub detail: String,
    /// The rule did not run (a parameter it needs is missing or unusable, or the series is
    /// too short); `detail` says why.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skipped: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Match {
    Events(EventsMatch),
    Sequence(SequenceMatch),
    Series(SeriesMatch),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsMatch {
    any_of: Vec<Predicate>,
    #[serde(default)]
    min_count: Option<usize>,
    #[serde(default)]
    group_by: Option<GroupBy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceMatch {
    steps: Vec<Predicate>,
    group_by: GroupBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum GroupBy {
    Pid,
    Tid,
}

impl GroupBy {
    fn key(self, e: &Event) -> u32 {
        match self {
            GroupBy::Pid => e.pid,
            GroupBy::Tid => e.tid,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesMatch {
    input: SeriesInput,
    metric: Metric,
    threshold: f64,
    #[serde(default)]
    min_intervals: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SeriesInput {
    Actions,
    Positions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Metric {
    CvBelow,
    SpeedAbove,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Predicate {
    kind: String,
    #[serde(default, rename = "where")]
    fields: BTreeMap<String, Test>,
    #[serde(default)]
    args: Vec<ArgTest>,
}

/// One test on one field; externally tagged, so a test names exactly one operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Test {
    Equals(Scalar),
    OneOf(Vec<Scalar>),
    Absent(bool),
    Outside(Outside),
    PortNotIn(PortNotIn),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Num(u64),
    Str(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outside {
    #[serde(default)]
    param: Option<DirParam>,
    #[serde(default)]
    allow: Vec<String>,
    /// `allow`, parsed once when the rule loads.
    #[serde(skip)]
    allow_pats: Vec<PathPat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DirParam {
    GameDir,
    SaveDir,
}

impl DirParam {
    fn name(self) -> &'static str {
        match self {
            DirParam::GameDir => "game_dir",
            DirParam::SaveDir => "save_dir",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortNotIn {
    #[serde(default)]
    param: Option<PortsParam>,
    default: Vec<u16>,
    #[serde(default)]
    ignore: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PortsParam {
    AllowedPorts,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArgTest {
    index: usize,
    #[serde(default)]
    bits: Option<u32>,
    #[serde(default)]
    one_of: Option<Vec<Num>>,
    #[serde(default)]
    mask_any: Option<Num>,
}

/// A number written `7` or `"0x7"` (hex reads better for flags).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "NumRepr")]
struct Num(u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum NumRepr {
    N(u64),
    S(String),
}

impl TryFrom<NumRepr> for Num {
    type Error = String;
    fn try_from(r: NumRepr) -> Result<Self, String> {
        match r {
            NumRepr::N(n) => Ok(Num(n)),
            NumRepr::S(s) => parse_number(&s)
                .map(Num)
                .ok_or_else(|| format!("{s:?} is not a number (write 30 or \"0x1e\")")),
        }
    }
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// An api argument as Wine's relay channel prints it: hex digits, with or without `0x`.
fn parse_arg(s: &str) -> Option<u64> {
    let s = s.trim();
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The fields a predicate may test, per kind, as `events.rs` serialises them (a test keeps
/// this in step with the types).
const FIELDS: &[(&str, &[&str])] = &[
    ("file", &["op", "path", "to"]),
    ("socket", &["op", "peer", "port", "bytes"]),
    ("process", &["op", "child", "path"]),
    ("module", &["path", "base", "sha256"]),
    ("exec_memory", &["op", "address", "length", "path"]),
    ("api", &["module", "function", "ret", "caller"]),
    ("registry", &["op", "key"]),
    ("exception", &["code", "address"]),
];

/// Path-valued fields (the ones `outside` may test).
const PATH_FIELDS: &[&str] = &["path", "to"];

enum Val<'a> {
    Str(&'a str),
    Num(u64),
}

fn field<'a>(what: &'a What, name: &str) -> Option<Val<'a>> {
    use Val::{Num as N, Str as S};
    match (what, name) {
        (What::File { op, .. }, "op")
        | (What::Socket { op, .. }, "op")
        | (What::Process { op, .. }, "op")
        | (What::ExecMemory { op, .. }, "op")
        | (What::Registry { op, .. }, "op") => Some(S(op)),
        (What::File { path, .. }, "path") | (What::Module { path, .. }, "path") => Some(S(path)),
        (What::Process { path, .. }, "path") | (What::ExecMemory { path, .. }, "path") => {
            path.as_deref().map(S)
        }
        (What::File { to, .. }, "to") => to.as_deref().map(S),
        (What::Socket { peer, .. }, "peer") => peer.as_deref().map(S),
        (What::Socket { port, .. }, "port") => port.map(|p| N(p.into())),
        (What::Socket { bytes, .. }, "bytes") => bytes.map(N),
        (What::Process { child, .. }, "child") => child.map(|c| N(c.into())),
        (What::Module { base, .. }, "base") => Some(N(*base)),
        (What::Module { sha256, .. }, "sha256") => sha256.as_deref().map(S),
        (What::ExecMemory { address, .. }, "address") => Some(N(*address)),
        (What::ExecMemory { length, .. }, "length") => Some(N(*length)),
        (What::Api { module, .. }, "module") => Some(S(module)),
        (What::Api { function, .. }, "function") => Some(S(function)),
        (What::Api { ret, .. }, "ret") => ret.as_deref().map(S),
        (What::Api { caller, .. }, "caller") => caller.map(N),
        (What::Registry { key, .. }, "key") => Some(S(key)),
        (What::Exception { code, .. }, "code") => Some(S(code)),
        (What::Exception { address, .. }, "address") => address.map(N),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Paths

/// Where a path starts. `Z:` is Wine's drive for `/`, so it is `Unix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Unix,
    Drive(u8),
    /// `\\server\share`, `\\.\device`: compared as their own root.
    Unc,
    Relative,
}

/// A path split into components, `.` and `..` resolved; `nocase` when written in Windows
/// form (Windows compares names without case).
#[derive(Debug, Clone, PartialEq)]
struct NormPath {
    root: Root,
    parts: Vec<String>,
    nocase: bool,
}

/// An allowed directory: a path, or (`*/` in front) a run of components at any depth.
#[derive(Debug, Clone, PartialEq)]
struct PathPat {
    anywhere: bool,
    path: NormPath,
}

fn split_parts(s: &str, windows: bool) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let seps: &[char] = if windows { &['\\', '/'] } else { &['/'] };
    for c in s.split(seps) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_string()),
        }
    }
    parts
}

fn strip_prefix_nocase<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Reads a Unix path or a Windows path (`C:\...`, `C:/...`, `\\?\`, `\??\`, `\\.\`,
/// Wine's `\??\unix\...`).
fn norm_path(s: &str) -> NormPath {
    let s = s.trim();
    let mut rest = s;
    let mut windows = false;
    for prefix in [r"\\?\", r"\??\", r"\\.\"] {
        if let Some(r) = s.strip_prefix(prefix) {
            rest = r;
            windows = true;
            break;
        }
    }
    let b = rest.as_bytes();
    if b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b.len() == 2 || b[2] == b'\\' || b[2] == b'/')
    {
        let drive = b[0].to_ascii_lowercase();
        let root = if drive == b'z' {
            Root::Unix
        } else {
            Root::Drive(drive)
        };
        return NormPath {
            root,
            parts: split_parts(&rest[2..], true),
            nocase: true,
        };
    }
    if windows {
        if let Some(r) =
            strip_prefix_nocase(rest, "unix\\").or_else(|| strip_prefix_nocase(rest, "unix/"))
        {
            return NormPath {
                root: Root::Unix,
                parts: split_parts(r, true),
                nocase: true,
            };
        }
        let r = strip_prefix_nocase(rest, "UNC\\").unwrap_or(rest);
        return NormPath {
            root: Root::Unc,
            parts: split_parts(r, true),
            nocase: true,
        };
    }
    if let Some(r) = rest.strip_prefix(r"\\") {
        return NormPath {
            root: Root::Unc,
            parts: split_parts(r, true),
            nocase: true,
        };
    }
    if rest.starts_with('/') {
        return NormPath {
            root: Root::Unix,
            parts: split_parts(rest, false),
            nocase: false,
        };
    }
    let windows_like = rest.contains('\\');
    NormPath {
        root: Root::Relative,
        parts: split_parts(rest, windows_like),
        nocase: windows_like,
    }
}

/// An allow entry: absolute, or `*/...` for any depth.
fn path_pattern(s: &str) -> Result<PathPat, String> {
    let s = s.trim();
    if let Some(r) = s.strip_prefix("*/").or_else(|| s.strip_prefix("*\\")) {
        let windows = r.contains('\\');
        let parts = split_parts(r, windows);
        if parts.is_empty() {
            return Err(format!("allow entry {s:?} matches everything"));
        }
        return Ok(PathPat {
            anywhere: true,
            path: NormPath {
                root: Root::Relative,
                parts,
                nocase: windows,
            },
        });
    }
    let path = norm_path(s);
    if path.root == Root::Relative {
        return Err(format!(
            "{s:?} is not an absolute path (nor `*/...` for any depth)"
        ));
    }
    Ok(PathPat {
        anywhere: false,
        path,
    })
}

/// `*` in a pattern component stands for any run of characters.
fn glob(pat: &str, s: &str, nocase: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if nocase {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let pieces: Vec<&str> = pat.split('*').collect();
    if pieces.len() == 1 {
        return eq(pat, s);
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if s.len() < first.len() + last.len() {
        return false;
    }
    let (Some(head), Some(tail)) = (s.get(..first.len()), s.get(s.len() - last.len()..)) else {
        return false;
    };
    if !eq(head, first) || !eq(tail, last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        let found = (0..=rest.len().saturating_sub(piece.len())).find(|&i| {
            rest.get(i..i + piece.len())
                .is_some_and(|window| eq(window, piece))
        });
        match found {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `p` is `pat`'s directory or under it.
fn under(pat: &PathPat, p: &NormPath) -> bool {
    let nocase = pat.path.nocase || p.nocase;
    let want = &pat.path.parts;
    let prefix_at = |i: usize| {
        p.parts.len() >= i + want.len()
            && want
                .iter()
                .zip(&p.parts[i..])
                .all(|(a, b)| glob(a, b, nocase))
    };
    if pat.anywhere {
        p.root != Root::Relative && (0..=p.parts.len().saturating_sub(want.len())).any(prefix_at)
    } else {
        pat.path.root == p.root && prefix_at(0)
    }
}

// ---------------------------------------------------------------------------------------
// Loading

/// The compiled-in rules, checked. Errors name the file.
pub fn rules() -> Result<Vec<Rule>, String> {
    let mut out = Vec::with_capacity(RULE_FILES.len());
    for (name, text) in RULE_FILES {
        let mut rule: Rule =
            serde_json::from_str(text).map_err(|e| format!("{RULES_DIR}/{name}: {e}"))?;
        rule.prepare()
            .map_err(|e| format!("{RULES_DIR}/{name}: {e}"))?;
        let stem = name.strip_suffix(".json").unwrap_or(name);
        if rule.id != stem {
            return Err(format!(
                "{RULES_DIR}/{name}: id {:?} differs from the file name",
                rule.id
            ));
        }
        out.push(rule);
    }
    Ok(out)
}

/// The rules named by `ids` (all when `None`), in their usual order. An unknown id is an
/// error that lists the accepted ones, so a caller can correct the call.
pub fn select(rules: Vec<Rule>, ids: Option<&[String]>) -> Result<Vec<Rule>, String> {
    let Some(ids) = ids else {
        return Ok(rules);
    };
    let accepted = || {
        rules
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if ids.is_empty() {
        return Err(format!(
            "rules is empty: name some or leave it out for all (accepted: {})",
            accepted()
        ));
    }
    let unknown: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !rules.iter().any(|r| r.id == *id))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown rule id{} {}; accepted: {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            accepted()
        ));
    }
    Ok(rules.into_iter().filter(|r| ids.contains(&r.id)).collect())
}

impl Rule {
    /// What the rule reads: `"events"`, `"actions"` (timestamps) or `"positions"`.
    pub fn input(&self) -> &'static str {
        match &self.matcher {
            Match::Events(_) | Match::Sequence(_) => "events",
            Match::Series(s) => match s.input {
                SeriesInput::Actions => "actions",
                SeriesInput::Positions => "positions",
            },
        }
    }

    /// The parameters the rule cannot run without (`game_dir`, `save_dir`).
    pub fn needs(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for p in self.predicates() {
            for t in p.fields.values() {
                if let Test::Outside(Outside { param: Some(d), .. }) = t
                    && !out.contains(&d.name())
                {
                    out.push(d.name());
                }
            }
        }
        out
    }

    fn predicates(&self) -> &[Predicate] {
        match &self.matcher {
            Match::Events(m) => &m.any_of,
            Match::Sequence(m) => &m.steps,
            Match::Series(_) => &[],
        }
    }

    /// Checks what serde cannot (known kinds and fields, one test per argument, a window
    /// where one is used) and parses the allow lists once.
    fn prepare(&mut self) -> Result<(), String> {
        let window_ok = self.window_ms.is_some_and(|w| w.is_finite() && w > 0.0);
        let uses_window = match &self.matcher {
            Match::Events(m) => {
                if m.any_of.is_empty() {
                    return Err("events.any_of is empty".into());
                }
                match m.min_count {
                    Some(0) => return Err("min_count must be at least 1".into()),
                    Some(n) if n > 1 => true,
                    _ => {
                        if m.group_by.is_some() {
                            return Err("group_by is only used with a min_count above 1".into());
                        }
                        false
                    }
                }
            }
            Match::Sequence(m) => {
                if m.steps.len() < 2 {
                    return Err("a sequence needs at least two steps".into());
                }
                true
            }
            Match::Series(s) => {
                if !(s.threshold.is_finite() && s.threshold > 0.0) {
                    return Err("series.threshold must be a positive number".into());
                }
                match (s.input, s.metric, s.min_intervals) {
                    (SeriesInput::Actions, Metric::CvBelow, Some(n)) if n >= 2 => {}
                    (SeriesInput::Actions, Metric::CvBelow, _) => {
                        return Err("cv_below needs min_intervals of at least 2".into());
                    }
                    (SeriesInput::Positions, Metric::SpeedAbove, None) => {}
                    (SeriesInput::Positions, Metric::SpeedAbove, Some(_)) => {
                        return Err("min_intervals is only used by cv_below".into());
                    }
                    (input, metric, _) => {
                        return Err(format!(
                            "metric {metric:?} does not apply to input {input:?} \
                             (cv_below reads actions, speed_above positions)"
                        ));
                    }
                }
                false
            }
        };
        match (uses_window, self.window_ms.is_some()) {
            (true, _) if !window_ok => {
                return Err("window_ms (a positive number) is required by this match".into());
            }
            (false, true) => {
                return Err("window_ms is only used by min_count and sequence".into());
            }
            _ => {}
        }
        let preds = match &mut self.matcher {
            Match::Events(m) => &mut m.any_of,
            Match::Sequence(m) => &mut m.steps,
            Match::Series(_) => return Ok(()),
        };
        for (i, p) in preds.iter_mut().enumerate() {
            p.prepare().map_err(|e| format!("predicate {i}: {e}"))?;
        }
        Ok(())
    }
}

impl Predicate {
    fn prepare(&mut self) -> Result<(), String> {
        if !KINDS.contains(&self.kind.as_str()) {
            return Err(format!(
                "kind {:?} is not one of {}",
                self.kind,
                KINDS.join(", ")
            ));
        }
        let known = FIELDS
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map(|(_, f)| *f)
            .unwrap_or(&[]);
        for (name, test) in self.fields.iter_mut() {
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "{} events have no field {name:?} (they have {})",
                    self.kind,
                    known.join(", ")
                ));
            }
            match test {
                Test::Outside(o) => {
                    if !PATH_FIELDS.contains(&name.as_str()) {
                        return Err(format!("outside tests a path, not {name:?}"));
                    }
                    if o.param.is_none() && o.allow.is_empty() {
                        return Err(format!("{name}: outside needs a param or an allow list"));
                    }
                    o.allow_pats = o
                        .allow
                        .iter()
                        .map(|a| path_pattern(a))
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("{name}: {e}"))?;
                }
                Test::PortNotIn(_) if name != "port" => {
                    return Err(format!("port_not_in tests the port, not {name:?}"));
                }
                Test::OneOf(v) if v.is_empty() => {
                    return Err(format!("{name}: one_of is empty"));
                }
                _ => {}
            }
        }
        if !self.args.is_empty() && self.kind != "api" {
            return Err("args are only for api events".into());
        }
        for a in &self.args {
            if let Some(b) = a.bits
                && ![8, 16, 32, 64].contains(&b)
            {
                return Err(format!("arg {}: bits must be 8, 16, 32 or 64", a.index));
            }
            match (&a.one_of, &a.mask_any) {
                (Some(v), None) if !v.is_empty() => {}
                (None, Some(_)) => {}
                _ => {
                    return Err(format!(
                        "arg {}: give exactly one of one_of (non-empty) or mask_any",
                        a.index
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Matching events

/// Parameters parsed once per call.
struct Ctx {
    game_dir: Option<Result<PathPat, String>>,
    save_dir: Option<Result<PathPat, String>>,
    allowed_ports: Option<Vec<u16>>,
}

fn dir_param(name: &str, v: Option<&String>) -> Option<Result<PathPat, String>> {
    let v = v?;
    let p = norm_path(v);
    Some(if p.root == Root::Relative {
        Err(format!("{name} {v:?} is not an absolute path"))
    } else {
        Ok(PathPat {
            anywhere: false,
            path: p,
        })
    })
}

impl Ctx {
    fn new(params: &Params) -> Ctx {
        Ctx {
            game_dir: dir_param("game_dir", params.game_dir.as_ref()),
            save_dir: dir_param("save_dir", params.save_dir.as_ref()),
            allowed_ports: params.allowed_ports.clone(),
        }
    }

    fn dir(&self, d: DirParam) -> Option<&Result<PathPat, String>> {
        match d {
            DirParam::GameDir => self.game_dir.as_ref(),
            DirParam::SaveDir => self.save_dir.as_ref(),
        }
    }

    /// Why `rule` cannot run with these parameters, if it cannot.
    fn missing(&self, rule: &Rule) -> Option<String> {
        for p in rule.predicates() {
            for t in p.fields.values() {
                if let Test::Outside(Outside { param: Some(d), .. }) = t {
                    match self.dir(*d) {
                        None => {
                            return Some(format!("skipped: needs the parameter {}", d.name()));
                        }
                        Some(Err(e)) => return Some(format!("skipped: {e}")),
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
        None
    }
}

fn scalar_eq(v: &Val, s: &Scalar) -> bool {
    match (v, s) {
        (Val::Str(a), Scalar::Str(b)) => a == b,
        (Val::Num(a), Scalar::Num(b)) => a == b,
        _ => false,
    }
}

fn test_holds(test: &Test, v: Option<Val>, ctx: &Ctx) -> bool {
    match test {
        Test::Absent(want) => v.is_none() == *want,
        Test::Equals(s) => v.is_some_and(|v| scalar_eq(&v, s)),
        Test::OneOf(list) => v.is_some_and(|v| list.iter().any(|s| scalar_eq(&v, s))),
        Test::Outside(o) => {
            let Some(Val::Str(path)) = v else {
                return false;
            };
            let p = norm_path(path);
            let in_param = o
                .param
                .and_then(|d| ctx.dir(d))
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|pat| under(pat, &p));
            !in_param && !o.allow_pats.iter().any(|pat| under(pat, &p))
        }
        Test::PortNotIn(t) => {
            let Some(Val::Num(port)) = v else {
                return false;
            };
            let allowed = match (t.param, &ctx.allowed_ports) {
                (Some(PortsParam::AllowedPorts), Some(list)) => list.as_slice(),
                _ => t.default.as_slice(),
            };
            let listed = |l: &[u16]| l.iter().any(|&p| u64::from(p) == port);
            !listed(allowed) && !listed(&t.ignore)
        }
    }
}

fn arg_holds(a: &ArgTest, args: &[String]) -> bool {
    let Some(v) = args.get(a.index).and_then(|s| parse_arg(s)) else {
        return false;
    };
    let v = match a.bits.unwrap_or(64) {
        64 => v,
        b => v & ((1u64 << b) - 1),
    };
    match (&a.one_of, &a.mask_any) {
        (Some(list), _) => list.iter().any(|n| n.0 == v),
        (None, Some(m)) => v & m.0 != 0,
        (None, None) => false,
    }
}

fn matches(p: &Predicate, e: &Event, ctx: &Ctx) -> bool {
    if e.what.kind() != p.kind {
        return false;
    }
    if !p
        .fields
        .iter()
        .all(|(name, t)| test_holds(t, field(&e.what, name), ctx))
    {
        return false;
    }
    if p.args.is_empty() {
        return true;
    }
    match &e.what {
        What::Api { args, .. } => p.args.iter().all(|a| arg_holds(a, args)),
        _ => false,
    }
}

/// A short name for an event in a detail line.
fn label(e: &Event) -> String {
    let s = match &e.what {
        What::Api {
            module, function, ..
        } => {
            if module.is_empty() {
                function.clone()
            } else {
                format!("{module}.{function}")
            }
        }
        What::File { op, path, to } => match to {
            Some(t) => format!("{op} {path} -> {t}"),
            None => format!("{op} {path}"),
        },
        What::Socket { op, peer, port, .. } => match (peer, port) {
            (Some(p), _) => format!("{op} {p}"),
            (None, Some(p)) => format!("{op} port {p}"),
            (None, None) => op.to_string(),
        },
        What::Module { path, .. } => format!("module {path}"),
        What::ExecMemory {
            op,
            address,
            length,
            path,
        } => match path {
            Some(p) => format!("{op} {length:#x} bytes at {address:#x} ({p})"),
            None => format!("{op} {length:#x} anonymous bytes at {address:#x}"),
        },
        What::Process { op, path, .. } => match path {
            Some(p) => format!("{op} {p}"),
            None => op.to_string(),
        },
        What::Registry { op, key } => format!("{op} {key}"),
        What::Exception { code, .. } => format!("exception {code}"),
    };
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Up to three distinct labels, for a one-line detail.
fn examples<'a>(events: impl Iterator<Item = &'a Event>) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut more = 0usize;
    for e in events {
        let l = label(e);
        if seen.contains(&l) {
            continue;
        }
        if seen.len() < 3 {
            seen.push(l);
        } else {
            more += 1;
        }
    }
    let mut s = seen.join("; ");
    if more > 0 {
        s.push_str(&format!(" (+{more} more)"));
    }
    s
}

fn detection(rule: &Rule, count: u64, mut seqs: Vec<u64>, detail: String) -> Detection {
    seqs.sort_unstable();
    seqs.dedup();
    seqs.truncate(MAX_EVENTS);
    Detection {
        rule: rule.id.clone(),
        description: rule.description.clone(),
        severity: rule.severity,
        reference: rule.reference.clone(),
        count,
        events: seqs,
        detail,
        skipped: false,
    }
}

fn skipped(rule: &Rule, why: String) -> Detection {
    Detection {
        skipped: true,
        ..detection(rule, 0, Vec::new(), why)
    }
}

/// Runs the event rules among `rules` over `events` (in trace order). Returns the rules that
/// fired, and those skipped for a missing parameter (`skipped`, count 0, the reason in
/// `detail`); series rules are left to [`detect_series`].
pub fn detect_events(rules: &[Rule], events: &[Event], params: &Params) -> Vec<Detection> {
    let ctx = Ctx::new(params);
    let mut out = Vec::new();
    for rule in rules {
        if matches!(rule.matcher, Match::Series(_)) {
            continue;
        }
        if let Some(why) = ctx.missing(rule) {
            out.push(skipped(rule, why));
            continue;
        }
        let found = match &rule.matcher {
            Match::Events(m) => match m.min_count {
                Some(n) if n > 1 => bursts(rule, m, n, events, &ctx),
                _ => each(rule, m, events, &ctx),
            },
            Match::Sequence(m) => sequences(rule, m, events, &ctx),
            Match::Series(_) => None,
        };
        out.extend(found);
    }
    out
}

/// Every matching event counts once.
fn each(rule: &Rule, m: &EventsMatch, events: &[Event], ctx: &Ctx) -> Option<Detection> {
    let hits: Vec<&Event> = events
        .iter()
        .filter(|e| m.any_of.iter().any(|p| matches(p, e, ctx)))
        .collect();
    let first = hits.first()?;
    let detail = format!(
        "{} matching event{}, first at {:.0} ms: {}",
        hits.len(),
        if hits.len() == 1 { "" } else { "s" },
        first.t_ms,
        examples(hits.iter().copied())
    );
    Some(detection(
        rule,
        hits.len() as u64,
        hits.iter().map(|e| e.seq).collect(),
        detail,
    ))
}

/// Bursts: at least `n` matching events of one group within the window of the burst's
/// first; bursts do not overlap.
fn bursts(
    rule: &Rule,
    m: &EventsMatch,
    n: usize,
    events: &[Event],
    ctx: &Ctx,
) -> Option<Detection> {
    let window = rule.window_ms.unwrap_or(0.0);
    let mut groups: BTreeMap<u32, Vec<&Event>> = BTreeMap::new();
    for e in events {
        if m.any_of.iter().any(|p| matches(p, e, ctx)) {
            let key = m.group_by.map_or(0, |g| g.key(e));
            groups.entry(key).or_default().push(e);
        }
    }
    let mut found: Vec<&[&Event]> = Vec::new();
    for hits in groups.values() {
        let mut i = 0;
        while i < hits.len() {
            let mut j = i;
            while j + 1 < hits.len() && hits[j + 1].t_ms - hits[i].t_ms <= window {
                j += 1;
            }
            if j + 1 - i >= n {
                found.push(&hits[i..=j]);
                i = j + 1;
            } else {
                i += 1;
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|b| b.first().map_or(0, |e| e.seq));
    let largest = found.iter().map(|b| b.len()).max().unwrap_or(0);
    let group = match m.group_by {
        Some(GroupBy::Tid) => " in one thread",
        Some(GroupBy::Pid) => " in one process",
        None => "",
    };
    let detail = format!(
        "{} burst{} of at least {n} within {window:.0} ms{group} (largest {largest}): {}",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        examples(found.iter().flat_map(|b| b.iter().copied()))
    );
    let seqs = found.iter().flat_map(|b| b.iter().map(|e| e.seq)).collect();
    Some(detection(rule, found.len() as u64, seqs, detail))
}

/// A sequence being matched: where it started and which step comes next.
struct Partial<'a> {
    start_t: f64,
    got: Vec<&'a Event>,
}

/// Steps in order from one group within the window; matches do not overlap.
fn sequences(rule: &Rule, m: &SequenceMatch, events: &[Event], ctx: &Ctx) -> Option<Detection> {
    let window = rule.window_ms.unwrap_or(0.0);
    let steps = m.steps.len();
    let mut partials: HashMap<u32, Vec<Partial>> = HashMap::new();
    let mut done: Vec<Vec<&Event>> = Vec::new();
    for e in events {
        let hit: Vec<bool> = m.steps.iter().map(|p| matches(p, e, ctx)).collect();
        if !hit.contains(&true) {
            continue;
        }
        let list = partials.entry(m.group_by.key(e)).or_default();
        list.retain(|p| e.t_ms - p.start_t <= window);
        let mut complete = None;
        for (i, p) in list.iter_mut().enumerate() {
            if hit[p.got.len()] {
                p.got.push(e);
                if p.got.len() == steps {
                    complete = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = complete {
            let p = list.swap_remove(i);
            list.clear();
            done.push(p.got);
            continue;
        }
        if hit[0] {
            list.push(Partial {
                start_t: e.t_ms,
                got: vec![e],
            });
            if list.len() > MAX_PARTIALS {
                list.remove(0);
            }
        }
    }
    let first = done.first()?;
    let span = match (first.first(), first.last()) {
        (Some(a), Some(b)) => b.t_ms - a.t_ms,
        _ => 0.0,
    };
    let by = match m.group_by {
        GroupBy::Pid => "pid",
        GroupBy::Tid => "tid",
    };
    let detail = format!(
        "{} sequence{}; first: {} ({by} {}, {span:.0} ms)",
        done.len(),
        if done.len() == 1 { "" } else { "s" },
        first
            .iter()
            .map(|e| label(e))
            .collect::<Vec<_>>()
            .join(" -> "),
        first.first().map_or(0, |e| m.group_by.key(e)),
    );
    let seqs = done.iter().flatten().map(|e| e.seq).collect();
    Some(detection(rule, done.len() as u64, seqs, detail))
}

// ---------------------------------------------------------------------------------------
// Series

/// Runs the series rules among `rules`: action timestamps (ms) for `cv_below`, position
/// samples `(t_ms, x, y)` for `speed_above`. An empty series skips its rules silently; one
/// too short to judge gives a `skipped` entry saying so. Non-finite samples are dropped.
pub fn detect_series(
    rules: &[Rule],
    actions_ms: &[f64],
    positions: &[(f64, f64, f64)],
) -> Vec<Detection> {
    let mut out = Vec::new();
    for rule in rules {
        let Match::Series(s) = &rule.matcher else {
            continue;
        };
        let found = match s.metric {
            Metric::CvBelow => regularity(rule, s, actions_ms),
            Metric::SpeedAbove => speed(rule, s, positions),
        };
        out.extend(found);
    }
    out
}

fn regularity(rule: &Rule, s: &SeriesMatch, actions_ms: &[f64]) -> Option<Detection> {
    if actions_ms.is_empty() {
        return None;
    }
    let min = s.min_intervals.unwrap_or(2);
    let mut t: Vec<f64> = actions_ms
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    t.sort_by(f64::total_cmp);
    let intervals: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    if intervals.len() < min {
        return Some(skipped(
            rule,
            format!(
                "skipped: {} interval{}, needs at least {min}",
                intervals.len(),
                if intervals.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    let n = intervals.len() as f64;
    let mean = intervals.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return Some(skipped(
            rule,
            "skipped: every action at the same instant".into(),
        ));
    }
    let var = intervals.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n;
    let cv = var.sqrt() / mean;
    (cv < s.threshold).then(|| {
        detection(
            rule,
            1,
            Vec::new(),
            format!(
                "cv {cv:.4} over {} intervals (mean {mean:.1} ms, threshold {})",
                intervals.len(),
                s.threshold
            ),
        )
    })
}

fn speed(rule: &Rule, s: &SeriesMatch, positions: &[(f64, f64, f64)]) -> Option<Detection> {
    let mut order: Vec<usize> = (0..positions.len())
        .filter(|&i| {
            let (t, x, y) = positions[i];
            t.is_finite() && x.is_finite() && y.is_finite()
        })
        .collect();
    order.sort_by(|&a, &b| positions[a].0.total_cmp(&positions[b].0));
    let mut count = 0u64;
    let mut idx = Vec::new();
    // The fastest step: speed, distance, dt, time.
    let mut fastest: Option<(f64, f64, f64, f64)> = None;
    for w in order.windows(2) {
        let (t0, x0, y0) = positions[w[0]];
        let (t1, x1, y1) = positions[w[1]];
        let dist = (x1 - x0).hypot(y1 - y0);
        let dt = t1 - t0;
        let v = if dt > 0.0 {
            dist / dt * 1000.0
        } else if dist > 0.0 {
            f64::INFINITY
        } else {
            continue;
        };
        if v > s.threshold {
            count += 1;
            idx.push(w[1] as u64);
            if fastest.is_none_or(|f| v > f.0) {
                fastest = Some((v, dist, dt, t1));
            }
        }
    }
    let (v, dist, dt, t) = fastest?;
    let pace = if v.is_finite() {
        format!("{v:.1} units/s")
    } else {
        "instantaneous".into()
    };
    Some(detection(
        rule,
        count,
        idx,
        format!(
            "{count} step{} faster than {} units/s; \
             fastest {pace} ({dist:.1} units in {dt:.0} ms, at {t:.0} ms)",
            if count == 1 { "" } else { "s" },
            s.threshold
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, t_ms: f64, pid: u32, tid: u32, what: What) -> Event {
        Event {
            seq,
            t_ms,
            pid,
            tid,
            what,
        }
    }

    fn api(function: &str, args: &[&str]) -> What {
        What::Api {
            module: "KERNEL32".into(),
            function: function.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            ret: None,
            caller: None,
        }
    }

    /// Events from (t, pid, tid, what), numbered in order.
    fn trace(items: Vec<(f64, u32, u32, What)>) -> Vec<Event> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (t, pid, tid, w))| ev(i as u64, t, pid, tid, w))
            .collect()
    }

    fn one(id: &str) -> Result<Vec<Rule>, String> {
        select(rules()?, Some(&[id.to_string()]))
    }

    fn run(id: &str, events: &[Event], params: &Params) -> Result<Vec<Detection>, String> {
        Ok(detect_events(&one(id)?, events, params))
    }

    /// The single detection of a run, or an error saying what came instead.
    fn fired(d: Vec<Detection>) -> Result<Detection, String> {
        match <[Detection; 1]>::try_from(d) {
            Ok([d]) => Ok(d),
            Err(d) => Err(format!("expected one detection, got {d:?}")),
        }
    }

    #[test]
    fn every_rule_file_is_embedded_and_loads() -> Result<(), String> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/behavior/rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = RULE_FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, on_disk, "RULE_FILES must list every rule file");
        for (name, text) in RULE_FILES {
            let disk = std::fs::read_to_string(dir.join(name)).map_err(|e| e.to_string())?;
            assert_eq!(&disk, text, "{name} embedded differs from disk");
        }
        let all = rules()?;
        assert_eq!(all.len(), 9);
        for r in &all {
            assert!(
                !r.description.is_empty() && !r.reference.is_empty(),
                "{}",
                r.id
            );
        }
        Ok(())
    }

    #[test]
    fn a_broken_rule_is_named() {
        let mut bad: Rule = match serde_json::from_str(
            r#"{"id":"x","description":"d","severity":"low","reference":"r",
                "match":{"events":{"any_of":[{"kind":"api","where":{"nosuch":{"equals":"a"}}}]}}}"#,
        ) {
            Ok(r) => r,
            Err(e) => panic!("parse: {e}"),
        };
        let err = bad.prepare().err().unwrap_or_default();
        assert!(err.contains("nosuch"), "{err}");
        let typo = serde_json::from_str::<Rule>(
            r#"{"id":"x","description":"d","severity":"low","reference":"r","windw_ms":3,
                "match":{"events":{"any_of":[]}}}"#,
        );
        assert!(typo.is_err());
    }

    #[test]
    fn fields_table_matches_the_event_types() -> Result<(), String> {
        let full = [
            What::File {
                op: "rename",
                path: "/a".into(),
                to: Some("/b".into()),
            },
            What::Socket {
                op: "connect",
                peer: Some("1.2.3.4:5".into()),
                port: Some(5),
                bytes: Some(1),
            },
            What::Process {
                op: "spawn",
                child: Some(2),
                path: Some("/bin/true".into()),
                argv: vec![],
            },
            What::Module {
                path: "/a.so".into(),
                base: 1,
                sha256: Some("00".into()),
            },
            What::ExecMemory {
                op: "mmap",
                address: 1,
                length: 2,
                path: Some("/a".into()),
            },
            What::Api {
                module: "m".into(),
                function: "f".into(),
                args: vec![],
                ret: Some("0".into()),
                caller: Some(1),
            },
            What::Registry {
                op: "open",
                key: "k".into(),
            },
            What::Exception {
                code: "c0000005".into(),
                address: Some(1),
            },
        ];
        assert_eq!(full.len(), KINDS.len());
        for w in &full {
            let v = serde_json::to_value(w).map_err(|e| e.to_string())?;
            let mut keys: Vec<&str> = v
                .as_object()
                .ok_or("not an object")?
                .keys()
                .map(String::as_str)
                .filter(|k| !["kind", "args", "argv"].contains(k))
                .collect();
            keys.sort_unstable();
            let mut table: Vec<&str> = FIELDS
                .iter()
                .find(|(k, _)| *k == w.kind())
                .ok_or("kind missing from FIELDS")?
                .1
                .to_vec();
            table.sort_unstable();
            assert_eq!(keys, table, "{}", w.kind());
            for k in &table {
                assert!(field(w, k).is_some(), "{} {k}", w.kind());
            }
        }
        Ok(())
    }

    #[test]
    fn select_names_unknown_ids_and_the_accepted_ones() -> Result<(), String> {
        let all = rules()?;
        let n = all.len();
        assert_eq!(select(all.clone(), None)?.len(), n);
        let two = select(
            all.clone(),
            Some(&["timing-probe".into(), "debugger-check".into()]),
        )?;
        let ids: Vec<&str> = two.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["debugger-check", "timing-probe"]);
        let err = select(all.clone(), Some(&["nope".into(), "timing-probe".into()]))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("nope") && err.contains("code-injection"),
            "{err}"
        );
        assert!(select(all, Some(&[])).is_err());
        Ok(())
    }

    #[test]
    fn debugger_check() -> Result<(), String> {
        let events = trace(vec![
            (0.0, 1, 1, api("IsDebuggerPresent", &[])),
            (
                1.0,
                1,
                1,
                api("CheckRemoteDebuggerPresent", &["ffffffff", "0031fe40"]),
            ),
            // ProcessDebugPort, 32-bit relay.
            (
                2.0,
                1,
                1,
                api(
                    "NtQueryInformationProcess",
                    &["ffffffff", "00000007", "0031fe3c", "00000004", "00000000"],
                ),
            ),
            // ProcessBasicInformation: not a debugger check.
            (
                3.0,
                1,
                1,
                api(
                    "NtQueryInformationProcess",
                    &["ffffffff", "00000000", "0031fe3c", "00000018", "00000000"],
                ),
            ),
            // ProcessDebugFlags with junk in the register's upper half (x86-64).
            (
                4.0,
                1,
                1,
                api(
                    "NtQueryInformationProcess",
                    &["ffffffffffffffff", "deadbeef0000001f", "0", "4", "0"],
                ),
            ),
            (
                5.0,
                1,
                1,
                api(
                    "ZwQueryInformationProcess",
                    &["ffffffff", "0x1e", "0", "4", "0"],
                ),
            ),
            // Too few arguments to tell.
            (6.0, 1, 1, api("NtQueryInformationProcess", &["ffffffff"])),
            (7.0, 1, 1, api("GetTickCount", &[])),
        ]);
        let d = fired(run("debugger-check", &events, &Params::default())?)?;
        assert_eq!(d.count, 5, "{}", d.detail);
        assert_eq!(d.events, [0, 1, 2, 4, 5]);
        assert_eq!(d.severity, Severity::Medium);
        let clean = trace(vec![
            (
                0.0,
                1,
                1,
                api(
                    "NtQueryInformationProcess",
                    &["ffffffff", "00000000", "0", "18", "0"],
                ),
            ),
            (1.0, 1, 1, api("CreateFileW", &["0031fe40"])),
        ]);
        assert!(run("debugger-check", &clean, &Params::default())?.is_empty());
        Ok(())
    }

    #[test]
    fn timing_probe_counts_bursts_per_thread() -> Result<(), String> {
        let qpc = || api("QueryPerformanceCounter", &["0031fe40"]);
        let events = trace(vec![
            // Thread 1: a pair 10 ms apart (burst 1).
            (0.0, 1, 1, qpc()),
            (10.0, 1, 1, qpc()),
            // Thread 2: three clocks within a second (burst 2), interleaved with thread 1's
            // lone call.
            (100.0, 1, 2, api("GetTickCount", &[])),
            (600.0, 1, 2, api("timeGetTime", &[])),
            (900.0, 1, 2, api("GetTickCount64", &[])),
            (5000.0, 1, 1, qpc()),
            // Thread 1: 8000 and 8500 (burst 3); 9200 is 1200 ms after 8000, alone.
            (
                8000.0,
                1,
                1,
                api("RtlQueryPerformanceCounter", &["0031fe40"]),
            ),
            (
                8500.0,
                1,
                1,
                api("NtQueryPerformanceCounter", &["0031fe40", "0"]),
            ),
            (9200.0, 1, 1, qpc()),
        ]);
        let d = fired(run("timing-probe", &events, &Params::default())?)?;
        assert_eq!(d.count, 3, "{}", d.detail);
        assert_eq!(d.events, [0, 1, 2, 3, 4, 6, 7]);
        assert!(d.detail.contains("largest 3"), "{}", d.detail);
        // Clean: a second apart, or close but in different threads.
        let clean = trace(vec![
            (0.0, 1, 1, qpc()),
            (100.0, 1, 2, qpc()),
            (2000.0, 1, 1, qpc()),
            (4000.0, 1, 1, qpc()),
            (4100.0, 1, 1, api("Sleep", &["00000064"])),
        ]);
        assert!(run("timing-probe", &clean, &Params::default())?.is_empty());
        Ok(())
    }

    #[test]
    fn code_injection_needs_the_steps_in_order_in_one_process_within_the_window()
    -> Result<(), String> {
        let alloc = || api("VirtualAllocEx", &["00000080", "0", "1000", "3000", "40"]);
        let write = || {
            api(
                "WriteProcessMemory",
                &["00000080", "00a00000", "0031fe40", "1", "0"],
            )
        };
        let thread = || {
            api(
                "CreateRemoteThread",
                &["00000080", "0", "0", "00a00000", "0", "0", "0"],
            )
        };
        let events = trace(vec![
            // pid 10: a complete sequence (1), with noise between.
            (0.0, 10, 1, alloc()),
            (1.0, 10, 1, api("GetLastError", &[])),
            (2.0, 10, 1, write()),
            (3.0, 10, 2, thread()),
            // pid 20: thread before write: no.
            (4.0, 20, 1, alloc()),
            (5.0, 20, 1, thread()),
            (6.0, 20, 1, write()),
            // pid 30: too slow (11 s from first step): no.
            (100.0, 30, 1, alloc()),
            (5000.0, 30, 1, write()),
            (11100.0, 30, 1, thread()),
            // pid 40: ntdll forms, another process's last step between (2).
            (
                12000.0,
                40,
                1,
                api(
                    "NtAllocateVirtualMemory",
                    &["80", "0", "0", "0", "3000", "40"],
                ),
            ),
            (
                12001.0,
                40,
                1,
                api("NtWriteVirtualMemory", &["80", "0", "0", "1", "0"]),
            ),
            (12002.0, 41, 1, api("RtlCreateUserThread", &["80"])),
            (
                12003.0,
                40,
                1,
                api("NtCreateThreadEx", &["0", "1fffff", "0", "80"]),
            ),
            // pid 10 again, a second complete sequence (3).
            (20000.0, 10, 1, alloc()),
            (20001.0, 10, 1, write()),
            (20002.0, 10, 1, thread()),
        ]);
        let d = fired(run("code-injection", &events, &Params::default())?)?;
        assert_eq!(d.count, 3, "{}", d.detail);
        assert_eq!(d.events, [0, 2, 3, 10, 11, 13, 14, 15, 16]);
        assert_eq!(d.severity, Severity::High);
        let clean = trace(vec![
            (0.0, 10, 1, alloc()),
            (1.0, 10, 1, write()),
            (2.0, 11, 1, thread()),
            (
                3.0,
                12,
                1,
                api("CreateThread", &["0", "0", "00401000", "0", "0", "0"]),
            ),
        ]);
        assert!(run("code-injection", &clean, &Params::default())?.is_empty());
        Ok(())
    }

    #[test]
    fn exec_memory_reads_the_protection_argument_of_each_function() -> Result<(), String> {
        let anon = |path: Option<&str>| What::ExecMemory {
            op: "mmap",
            address: 0x7f00_0000_0000,
            length: 0x1000,
            path: path.map(String::from),
        };
        let events = trace(vec![
            (0.0, 1, 1, anon(None)), // 1
            (1.0, 1, 1, anon(Some("/usr/lib/x86_64-linux-gnu/libc.so.6"))),
            (
                2.0,
                1,
                1,
                api(
                    "VirtualAlloc",
                    &["00000000", "00001000", "00003000", "00000040"],
                ),
            ), // 2
            (
                3.0,
                1,
                1,
                api(
                    "VirtualAlloc",
                    &["00000000", "00001000", "00003000", "00000004"],
                ),
            ),
            (
                4.0,
                1,
                1,
                api(
                    "VirtualAllocEx",
                    &["00000080", "0", "1000", "3000", "00000020"],
                ),
            ), // 3
            // PAGE_EXECUTE_READWRITE | PAGE_GUARD.
            (
                5.0,
                1,
                1,
                api(
                    "VirtualProtect",
                    &["00a00000", "1000", "00000140", "0031fe40"],
                ),
            ), // 4
            (
                6.0,
                1,
                1,
                api(
                    "VirtualProtectEx",
                    &["80", "00a00000", "1000", "00000002", "0"],
                ),
            ),
            // PAGE_READWRITE with junk above bit 31.
            (
                7.0,
                1,
                1,
                api(
                    "NtAllocateVirtualMemory",
                    &[
                        "ffffffffffffffff",
                        "0",
                        "0",
                        "0",
                        "3000",
                        "ffffffff00000004",
                    ],
                ),
            ),
            // NtProtectVirtualMemory's NewProtect is index 3 (4 points to the old protection).
            (
                8.0,
                1,
                1,
                api(
                    "NtProtectVirtualMemory",
                    &["ffffffffffffffff", "0", "0", "0000000000000080", "00000040"],
                ),
            ), // 5
            (9.0, 1, 1, api("VirtualAlloc", &["00000000", "00001000"])),
            (
                10.0,
                1,
                1,
                api(
                    "NtProtectVirtualMemory",
                    &["ffffffffffffffff", "0", "0", "00000004", "00000040"],
                ),
            ),
        ]);
        let d = fired(run(
            "exec-memory-outside-module",
            &events,
            &Params::default(),
        )?)?;
        assert_eq!(d.count, 5, "{}", d.detail);
        assert_eq!(d.events, [0, 2, 4, 5, 8]);
        let clean = trace(vec![
            (0.0, 1, 1, anon(Some("/game/D2Client.dll"))),
            (
                1.0,
                1,
                1,
                api("VirtualAlloc", &["0", "1000", "3000", "00000004"]),
            ),
            (
                2.0,
                1,
                1,
                api("VirtualProtect", &["00a00000", "1000", "00000001", "0"]),
            ),
        ]);
        assert!(run("exec-memory-outside-module", &clean, &Params::default())?.is_empty());
        Ok(())
    }

    fn module(path: &str) -> What {
        What::Module {
            path: path.into(),
            base: 0x1000_0000,
            sha256: None,
        }
    }

    #[test]
    fn module_outside_game_dir_handles_unix_and_windows_paths() -> Result<(), String> {
        let params = Params {
            game_dir: Some("/home/u/games/Diablo II".into()),
            ..Params::default()
        };
        let inside = [
            "/home/u/games/Diablo II/D2Client.dll",
            "/home/u/games/Diablo II/./data/../Fog.dll",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
            "/opt/wine-stable/lib/wine/i386-windows/kernel32.dll",
            r"C:\windows\system32\KERNEL32.dll",
            r"c:\WINDOWS\SysWOW64\ws2_32.dll",
            r"\\?\C:\Windows\system32\ntdll.dll",
            "/home/u/.wine/drive_c/windows/system32/d3d9.dll",
            r"Z:\home\u\games\diablo ii\D2Game.dll",
            r"\??\unix\usr\lib\wine\x86_64-unix\ntdll.so",
        ];
        let outside = [
            "/tmp/evil/hook.dll",
            "/home/u/games/Diablo II-evil/x.dll",
            "/home/u/games/Diablo II/../evil.dll",
            "/library/x.so",
            r"Z:\tmp\hack.dll",
            r"C:\users\u\hack.dll",
            "maphack.dll",
        ];
        let items = inside
            .iter()
            .chain(&outside)
            .enumerate()
            .map(|(i, p)| (i as f64, 1, 1, module(p)))
            .collect();
        let events = trace(items);
        let d = fired(run("module-outside-game-dir", &events, &params)?)?;
        assert_eq!(d.count, outside.len() as u64, "{}", d.detail);
        let first_outside = inside.len() as u64;
        assert_eq!(
            d.events,
            (first_outside..first_outside + outside.len() as u64).collect::<Vec<_>>()
        );
        let clean = trace(inside.iter().map(|p| (0.0, 1, 1, module(p))).collect());
        assert!(run("module-outside-game-dir", &clean, &params)?.is_empty());
        // A Windows-form game directory works too.
        let win = Params {
            game_dir: Some(r"C:\Program Files (x86)\Diablo II".into()),
            ..Params::default()
        };
        let events = trace(vec![
            (
                0.0,
                1,
                1,
                module(r"C:\Program Files (x86)\Diablo II\D2Client.dll"),
            ),
            (
                1.0,
                1,
                1,
                module(r"c:\program files (x86)\diablo ii\BNClient.dll"),
            ),
            (2.0, 1, 1, module(r"C:\Program Files (x86)\Other\x.dll")),
        ]);
        assert_eq!(
            fired(run("module-outside-game-dir", &events, &win)?)?.events,
            [2]
        );
        Ok(())
    }

    #[test]
    fn a_rule_without_its_parameter_is_skipped_and_says_so() -> Result<(), String> {
        let events = trace(vec![(0.0, 1, 1, module("/tmp/x.so"))]);
        let d = fired(run("module-outside-game-dir", &events, &Params::default())?)?;
        assert!(d.skipped && d.count == 0, "{d:?}");
        assert!(d.detail.contains("game_dir"), "{}", d.detail);
        let relative = Params {
            game_dir: Some("games/d2".into()),
            ..Params::default()
        };
        let d = fired(run("module-outside-game-dir", &events, &relative)?)?;
        assert!(d.skipped && d.detail.contains("absolute"), "{}", d.detail);
        let json = serde_json::to_value(&d).map_err(|e| e.to_string())?;
        assert_eq!(json["skipped"], true);
        Ok(())
    }

    fn sock(op: &'static str, peer: Option<&str>, port: Option<u16>) -> What {
        What::Socket {
            op,
            peer: peer.map(String::from),
            port,
            bytes: None,
        }
    }

    #[test]
    fn unexpected_port() -> Result<(), String> {
        let events = trace(vec![
            (
                0.0,
                1,
                1,
                sock("connect", Some("10.0.0.1:6112"), Some(6112)),
            ),
            (
                1.0,
                1,
                1,
                sock("connect", Some("10.0.0.2:4000"), Some(4000)),
            ),
            (
                2.0,
                1,
                1,
                sock("connect", Some("10.0.0.3:6113"), Some(6113)),
            ),
            (
                3.0,
                1,
                1,
                sock("connect", Some("93.184.216.34:80"), Some(80)),
            ), // 1
            (4.0, 1, 1, sock("send", Some("127.0.0.1:8080"), Some(8080))), // 2
            (
                5.0,
                1,
                1,
                sock("receive", Some("10.0.0.9:9999"), Some(9999)),
            ),
            (6.0, 1, 1, sock("connect", Some("1.1.1.1:53"), Some(53))),
            (7.0, 1, 1, sock("connect", Some("/tmp/.X11-unix/X0"), None)),
            (8.0, 1, 1, sock("bind", Some("0.0.0.0:7777"), Some(7777))),
            (9.0, 1, 1, sock("connect", Some("[::1]:31337"), Some(31337))), // 3
        ]);
        let d = fired(run("unexpected-port", &events, &Params::default())?)?;
        assert_eq!(d.count, 3, "{}", d.detail);
        assert_eq!(d.events, [3, 4, 9]);
        let only_80 = Params {
            allowed_ports: Some(vec![80]),
            ..Params::default()
        };
        let d = fired(run("unexpected-port", &events, &only_80)?)?;
        assert_eq!(d.events, [0, 1, 2, 4, 9]);
        let clean = trace(vec![
            (
                0.0,
                1,
                1,
                sock("connect", Some("10.0.0.1:6112"), Some(6112)),
            ),
            (1.0, 1, 1, sock("send", Some("10.0.0.1:6112"), Some(6112))),
            (2.0, 1, 1, sock("connect", Some("/run/wine/socket"), None)),
        ]);
        assert!(run("unexpected-port", &clean, &Params::default())?.is_empty());
        Ok(())
    }

    fn file(op: &'static str, path: &str, to: Option<&str>) -> What {
        What::File {
            op,
            path: path.into(),
            to: to.map(String::from),
        }
    }

    #[test]
    fn file_write_outside_save_dir() -> Result<(), String> {
        let save = "/home/u/.wine/drive_c/users/u/Saved Games/Diablo II";
        let params = Params {
            save_dir: Some(save.into()),
            ..Params::default()
        };
        let events = trace(vec![
            (0.0, 1, 1, file("write", &format!("{save}/Hero.d2s"), None)),
            (
                1.0,
                1,
                1,
                file("create", &format!("{save}/sub/Hero.key"), None),
            ),
            (2.0, 1, 1, file("open", "/etc/passwd", None)),
            (3.0, 1, 1, file("write", "/etc/hosts", None)), // 1
            (4.0, 1, 1, file("create", "/dev/null", None)),
            (5.0, 1, 1, file("write", "/proc/self/attr/current", None)),
            (
                6.0,
                1,
                1,
                file("create", "/tmp/.wine-1000/server-803-1234/lock", None),
            ),
            (7.0, 1, 1, file("write", "/home/u/.wine/system.reg", None)),
            (
                8.0,
                1,
                1,
                file("create", "/home/u/.wine/reg1a2b0000.tmp", None),
            ),
            (
                9.0,
                1,
                1,
                file(
                    "rename",
                    "/home/u/.wine/reg1a2b0000.tmp",
                    Some("/home/u/.wine/system.reg"),
                ),
            ),
            (10.0, 1, 1, file("remove", "/home/u/.bashrc", None)), // 2
            // Out of the save directory by rename: the destination counts.
            (
                11.0,
                1,
                1,
                file("rename", &format!("{save}/Hero.d2s"), Some("/tmp/Hero.d2s")),
            ), // 3
            (12.0, 1, 1, file("create", "/tmp/evil.txt", None)), // 4
        ]);
        let d = fired(run("file-write-outside-save-dir", &events, &params)?)?;
        assert_eq!(d.count, 4, "{}", d.detail);
        assert_eq!(d.events, [3, 10, 11, 12]);
        let clean = trace(vec![
            (0.0, 1, 1, file("write", &format!("{save}/Hero.d2s"), None)),
            (1.0, 1, 1, file("open", "/home/u/games/d2/d2data.mpq", None)),
            (2.0, 1, 1, file("remove", &format!("{save}/Hero.ctl"), None)),
        ]);
        assert!(run("file-write-outside-save-dir", &clean, &params)?.is_empty());
        let d = fired(run(
            "file-write-outside-save-dir",
            &events,
            &Params::default(),
        )?)?;
        assert!(d.skipped && d.detail.contains("save_dir"), "{}", d.detail);
        Ok(())
    }

    #[test]
    fn regular_actions_fire_and_human_ones_do_not() -> Result<(), String> {
        let rules = one("regular-action-intervals")?;
        // A bot: every 500 ms, +-2 ms.
        let bot: Vec<f64> = (0..41)
            .map(|i| i as f64 * 500.0 + if i % 2 == 0 { 2.0 } else { -2.0 })
            .collect();
        let d = fired(detect_series(&rules, &bot, &[]))?;
        assert_eq!(d.count, 1);
        assert!(d.detail.contains("over 40 intervals"), "{}", d.detail);
        // A human: intervals spread between 200 and 1400 ms (deterministic jitter).
        let mut t = 0.0;
        let mut human = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..41 {
            human.push(t);
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            t += 200.0 + f64::from((x >> 16) % 1200);
        }
        assert!(detect_series(&rules, &human, &[]).is_empty());
        // Too short to judge: skipped, with the reason.
        let d = fired(detect_series(&rules, &bot[..10], &[]))?;
        assert!(
            d.skipped && d.detail.contains("needs at least 20"),
            "{}",
            d.detail
        );
        // No series: nothing.
        assert!(detect_series(&rules, &[], &[]).is_empty());
        Ok(())
    }

    #[test]
    fn a_teleport_jump_fires_once() -> Result<(), String> {
        let rules = one("impossible-movement")?;
        // Walking at 5 units/s, sampled every 200 ms, with one 40-unit jump.
        let mut pos = Vec::new();
        let mut x = 100.0;
        for i in 0..30 {
            if i == 15 {
                x += 40.0;
            } else {
                x += 1.0;
            }
            pos.push((i as f64 * 200.0, x, 50.0));
        }
        let d = fired(detect_series(&rules, &[], &pos))?;
        assert_eq!(d.count, 1, "{}", d.detail);
        assert_eq!(d.events, [15]);
        assert!(d.detail.contains("200.0 units/s"), "{}", d.detail);
        // Running (9 units/s) never fires.
        let run: Vec<(f64, f64, f64)> = (0..30)
            .map(|i| (i as f64 * 100.0, 0.9 * i as f64, 0.0))
            .collect();
        assert!(detect_series(&rules, &[], &run).is_empty());
        // Two samples at one instant in different places count; unsorted input is sorted.
        let d = fired(detect_series(
            &rules,
            &[],
            &[
                (100.0, 5.0, 5.0),
                (0.0, 5.0, 4.0),
                (100.0, 5.0, 5.0),
                (100.0, 9.0, 5.0),
            ],
        ))?;
        assert_eq!(d.count, 1, "{}", d.detail);
        assert!(d.detail.contains("instantaneous"), "{}", d.detail);
        Ok(())
    }

    #[test]
    fn event_and_series_rules_keep_to_their_inputs() -> Result<(), String> {
        let all = rules()?;
        let events = trace(vec![(0.0, 1, 1, api("IsDebuggerPresent", &[]))]);
        let params = Params {
            game_dir: Some("/g".into()),
            save_dir: Some("/s".into()),
            allowed_ports: None,
        };
        let d = detect_events(&all, &events, &params);
        let ids: Vec<&str> = d.iter().map(|d| d.rule.as_str()).collect();
        assert_eq!(ids, ["debugger-check"]);
        assert!(detect_series(&all, &[], &[]).is_empty());
        let inputs: Vec<(&str, &str)> = all.iter().map(|r| (r.id.as_str(), r.input())).collect();
        assert!(inputs.contains(&("impossible-movement", "positions")));
        assert!(inputs.contains(&("regular-action-intervals", "actions")));
        let needs: Vec<(&str, Vec<&str>)> = all
            .iter()
            .filter(|r| !r.needs().is_empty())
            .map(|r| (r.id.as_str(), r.needs()))
            .collect();
        assert_eq!(
            needs,
            [
                ("file-write-outside-save-dir", vec!["save_dir"]),
                ("module-outside-game-dir", vec!["game_dir"])
            ]
        );
        Ok(())
    }

    #[test]
    fn globs_and_paths() {
        assert!(glob("reg*.tmp", "reg1a2b0000.tmp", false));
        assert!(!glob("reg*.tmp", "reg1a2b0000.tmpx", false));
        assert!(glob(".wine-*", ".wine-1000", false));
        assert!(glob("a*b*c", "aXXbYYc", false));
        assert!(!glob("a*b*c", "aXXc", false));
        assert!(glob("WINDOWS", "windows", true));
        assert_eq!(norm_path(r"\\?\unix\usr\lib").root, Root::Unix);
        assert_eq!(norm_path(r"\\server\share\x").root, Root::Unc);
        assert_eq!(norm_path("/a/b/../../../c").parts, ["c"]);
        assert!(path_pattern("relative/dir").is_err());
        assert!(path_pattern("*/").is_err());
    }
}
