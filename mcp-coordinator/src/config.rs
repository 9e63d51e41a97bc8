//! The coordinator's configuration: TOML (`examples/coordinator.toml`) or the `mcpServers`
//! JSON that Claude Desktop writes, told apart by the file's extension.

use crate::lanes::{Lane, Limits};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long results of static analysis are reused by default (they depend only on the
/// file, which is part of the cache key).
pub const STATIC_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long results about saves are reused by default.
pub const SAVE_TTL: Duration = Duration::from_secs(3600);

/// Which of the suite's servers a child is, for the cache defaults, the file hash in findings
/// and what must never be cached: the server entry's `kind`, else guessed from the program
/// it runs ([`Kind::guess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Static,
    Memory,
    D2,
    Network,
    /// sandbox-runner's MCP server (`sandbox-runner mcp`): launches and watches sandboxes.
    Sandbox,
    /// mcp-behavior: watchpoints and traces of running processes.
    Behavior,
    Other,
}

/// mcp-d2 tools that read the running game: never cached.
const D2_LIVE: &[&str] = &["character", "inventory", "units", "find_game"];
/// mcp-d2 tools over files and tables: cached by default.
const D2_FILES: &[&str] = &["parse_save", "parse_stash", "diff_saves", "lookup"];

impl Kind {
    /// The suite's server a program file is, by its name (`None`: not one of them).
    pub fn of_program(program: &str) -> Option<Self> {
        let file = Path::new(program)
            .file_stem()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        match file {
            "mcp-static" => Some(Self::Static),
            "mcp-memory" => Some(Self::Memory),
            "mcp-d2" => Some(Self::D2),
            "mcp-network" => Some(Self::Network),
            "sandbox-runner" => Some(Self::Sandbox),
            "mcp-behavior" => Some(Self::Behavior),
            _ => None,
        }
    }

    /// A child's kind when its entry gives none: its program's, or for a wrapper (a
    /// `sandbox-runner run ... -- /path/mcp-static`) the program after the first `--`;
    /// `Other` for anything else, `url` children included (give them a `kind`).
    pub fn guess(command: &str, args: &[String]) -> Self {
        let wrapped = args
            .iter()
            .skip_while(|a| a.as_str() != "--")
            .nth(1)
            .and_then(|p| Self::of_program(p));
        // A wrapper's program is what runs: `sandbox-runner run -- mcp-static` is mcp-static.
        wrapped
            .or_else(|| Self::of_program(command))
            .unwrap_or(Self::Other)
    }

    /// The kind as a config entry spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Memory => "memory",
            Self::D2 => "d2",
            Self::Network => "network",
            Self::Sandbox => "sandbox",
            Self::Behavior => "behavior",
            Self::Other => "other",
        }
    }

    /// The tools whose results describe live state (a process, the network); `*`: all.
    fn live_tools(self) -> &'static [&'static str] {
        match self {
            Self::Memory | Self::Network | Self::Sandbox | Self::Behavior => &["*"],
            Self::D2 => D2_LIVE,
            Self::Static | Self::Other => &[],
        }
    }

    /// Whether a result of `tool` describes live state.
    pub fn live(self, tool: &str) -> bool {
        self.live_tools().iter().any(|t| *t == "*" || *t == tool)
    }

    /// Whether results are about a file's content (static analysis, saves): the file's hash
    /// is then their target.
    pub fn about_files(self) -> bool {
        matches!(self, Self::Static | Self::D2)
    }

    /// The priority lane of this kind's calls unless the entry names one: memory analysis
    /// high, everything else medium (the design's low lane is reports and archives).
    fn default_lane(self) -> Lane {
        match self {
            Self::Memory => Lane::High,
            _ => Lane::Medium,
        }
    }

    /// What is cached when the configuration says nothing: every static-analysis tool for
    /// 7 days, the save and table tools of mcp-d2 for an hour, nothing else.
    fn default_cache(self) -> (Vec<String>, Duration) {
        match self {
            Self::Static => (vec!["*".into()], STATIC_TTL),
            Self::D2 => (D2_FILES.iter().map(|t| t.to_string()).collect(), SAVE_TTL),
            _ => (Vec::new(), Duration::ZERO),
        }
    }

    /// The TTL of a `[servers.cache]` section that gives none.
    fn default_ttl(self) -> Duration {
        match self {
            Self::Static => STATIC_TTL,
            _ => SAVE_TTL,
        }
    }
}

/// One child server.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    pub name: String,
    /// Tools appear as `<prefix>__<tool>`.
    pub prefix: String,
    /// The program of a stdio child (empty for a streamable-HTTP child).
    pub command: String,
    /// The endpoint of a streamable-HTTP child.
    pub url: Option<String>,
    pub kind: Kind,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Tool-name globs to expose (default all) and to hide.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub start_timeout: Duration,
    pub call_timeout: Duration,
    /// Per-tool call timeouts (child tool name -> timeout).
    pub tool_timeouts: BTreeMap<String, Duration>,
    /// The call timeout counts from the child's last progress; this bounds a call that keeps
    /// reporting progress (`watch`, long scans).
    pub max_call: Duration,
    /// Results of these tools (globs) are deterministic for the same arguments and files:
    /// kept for `cache_ttl`. Empty: nothing cached (live memory and network never should be).
    pub cache_tools: Vec<String>,
    pub cache_ttl: Duration,
    /// For a streamable-HTTP child: how often its tools and resources are listed again. Such
    /// a server can restart behind the same URL (a new session opens by itself) with other
    /// tools and no `list_changed`. `None`: never (stdio children, or `relist_s = 0`).
    pub relist_every: Option<Duration>,
    /// How often the child is pinged (`None`: never, `ping_s = 0`); one that answers no
    /// ping within `unresponsive_after` is reported unresponsive until it answers again.
    pub ping_every: Option<Duration>,
    pub unresponsive_after: Duration,
    /// The priority lane of the child's calls, and per tool where it differs.
    pub lane: Lane,
    pub tool_lanes: BTreeMap<String, Lane>,
}

impl ChildSpec {
    /// The lane a call of the child's tool `name` waits in.
    pub fn lane_for(&self, name: &str) -> Lane {
        self.tool_lanes.get(name).copied().unwrap_or(self.lane)
    }

    /// Whether the child's tool `name` is exposed.
    pub fn exposes(&self, name: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|g| glob(g, name)))
            && !self.deny.iter().any(|g| glob(g, name))
    }

    /// How long a result of `tool` may be reused, if at all.
    pub fn cache_ttl_for(&self, tool: &str) -> Option<Duration> {
        (!self.kind.live(tool) && self.cache_tools.iter().any(|g| glob(g, tool)))
            .then_some(self.cache_ttl)
    }

    pub fn timeout_for(&self, tool: &str) -> Duration {
        self.tool_timeouts
            .get(tool)
            .copied()
            .unwrap_or(self.call_timeout)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub children: Vec<ChildSpec>,
    /// How many calls each priority lane runs at once.
    pub lanes: Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    coordinator: TomlCoordinator,
    #[serde(default)]
    servers: Vec<TomlServer>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlCoordinator {
    call_timeout_s: Option<u64>,
    start_timeout_s: Option<u64>,
    max_call_s: Option<u64>,
    ping_s: Option<u64>,
    unresponsive_s: Option<u64>,
    /// Calls each priority lane runs at once.
    #[serde(default)]
    lanes: TomlLanes,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlLanes {
    high: Option<usize>,
    medium: Option<usize>,
    low: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlServer {
    name: String,
    /// static, memory, d2, network, sandbox or other (default: guessed from the program).
    kind: Option<Kind>,
    prefix: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    url: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    start_timeout_s: Option<u64>,
    call_timeout_s: Option<u64>,
    max_call_s: Option<u64>,
    #[serde(default)]
    tool_timeouts: BTreeMap<String, u64>,
    #[serde(default)]
    cache: Option<TomlCache>,
    /// Streamable-HTTP children only: re-list every this many seconds (default 30, 0 = never).
    relist_s: Option<u64>,
    ping_s: Option<u64>,
    unresponsive_s: Option<u64>,
    /// high, medium or low (default: high for memory, medium otherwise).
    lane: Option<Lane>,
    /// Tools whose lane differs from the server's.
    #[serde(default)]
    tool_lanes: BTreeMap<String, Lane>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlCache {
    tools: Vec<String>,
    /// Default: 7 days for mcp-static, 1 hour otherwise.
    ttl_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonFile {
    mcp_servers: BTreeMap<String, JsonServer>,
}

#[derive(Deserialize)]
struct JsonServer {
    /// Not Claude Desktop's: the coordinator's own, as in the TOML file.
    kind: Option<Kind>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    url: Option<String>,
}

const DEFAULT_CALL: u64 = 60;
/// The longest a call may run while it keeps reporting progress, unless configured.
const DEFAULT_MAX_CALL: u64 = 3600;
/// The configuration used without `--config`: every server of the suite, found beside the
/// coordinator's own binary.
const EMBEDDED: &str = include_str!("../default.toml");
/// How often a streamable-HTTP child is listed again unless its config says otherwise.
const DEFAULT_RELIST: u64 = 30;

/// The re-list period of a child: only streamable-HTTP children have one.
fn relist_every(is_url: bool, relist_s: Option<u64>) -> Option<Duration> {
    match (is_url, relist_s.unwrap_or(DEFAULT_RELIST)) {
        (true, s) if s > 0 => Some(Duration::from_secs(s)),
        _ => None,
    }
}
const DEFAULT_START: u64 = 20;
/// How often a child is pinged unless configured: a stopped or wedged child shows in
/// `servers_status` within this plus [`DEFAULT_UNRESPONSIVE`], for 2 small messages per
/// period.
const DEFAULT_PING: u64 = 10;
/// How long a ping may go unanswered before the child is reported unresponsive: a server
/// answers ping from its I/O task even while its tools work, so seconds are plenty.
const DEFAULT_UNRESPONSIVE: u64 = 5;

/// The ping period (`None` for `ping_s = 0`) and the unresponsive time (at least 1 s).
fn liveness(ping_s: Option<u64>, unresponsive_s: Option<u64>) -> (Option<Duration>, Duration) {
    let every = ping_s.unwrap_or(DEFAULT_PING);
    let wait = unresponsive_s.unwrap_or(DEFAULT_UNRESPONSIVE).max(1);
    (
        (every > 0).then(|| Duration::from_secs(every)),
        Duration::from_secs(wait),
    )
}

/// A tool name as MCP hosts accept it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The largest config file read (the examples are about 3 KB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Reads a config file (a regular file of at most [`MAX_CONFIG_BYTES`]). Relative child commands resolve against the file's directory,
    /// else against the coordinator's own (never the working directory, which a host picks).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = mcp_common::files::read_text(path, "the config", MAX_CONFIG_BYTES)?;
        let mut config = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml(&text),
            Some("json") => Self::from_json(&text),
            _ => Err(format!(
                "{}: the config must be a .toml file or Claude Desktop's .json",
                path.display()
            )),
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let bases: Vec<PathBuf> = dir.into_iter().chain(own_dir()).collect();
        config.resolve_commands(&bases);
        Ok(config)
    }

    /// The embedded default: every server of the suite from the coordinator's directory.
    pub fn embedded() -> Result<Self, String> {
        let mut config =
            Self::from_toml(EMBEDDED).map_err(|e| format!("the embedded config: {e}"))?;
        config.resolve_commands(&own_dir().into_iter().collect::<Vec<_>>());
        Ok(config)
    }

    /// Keeps only the servers named (`--servers`), refusing names the config lacks.
    pub fn only(mut self, names: &[String]) -> Result<Self, String> {
        if names.is_empty() {
            return Ok(self);
        }
        if let Some(unknown) = names
            .iter()
            .find(|n| !self.children.iter().any(|c| &c.name == *n))
        {
            let known: Vec<&str> = self.children.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "--servers: no server {unknown:?} in the config (it has: {})",
                known.join(", ")
            ));
        }
        self.children.retain(|c| names.contains(&c.name));
        Ok(self)
    }

    /// Makes each relative command (one with a `/`; bare names are looked up on PATH)
    /// absolute against the first base where it exists (the first base when none has it).
    fn resolve_commands(&mut self, bases: &[PathBuf]) {
        for c in &mut self.children {
            let given = Path::new(&c.command);
            if c.command.is_empty() || given.is_absolute() || !c.command.contains('/') {
                continue;
            }
            let given = given.strip_prefix(".").unwrap_or(given);
            let found = bases
                .iter()
                .map(|b| b.join(given))
                .find(|p| p.exists())
                .or_else(|| bases.first().map(|b| b.join(given)));
            if let Some(p) = found {
                c.command = p.to_string_lossy().into_owned();
            }
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: TomlFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let call = file.coordinator.call_timeout_s.unwrap_or(DEFAULT_CALL);
        let start = file.coordinator.start_timeout_s.unwrap_or(DEFAULT_START);
        let max_call = file.coordinator.max_call_s.unwrap_or(DEFAULT_MAX_CALL);
        let children = file
            .servers
            .into_iter()
            .map(|s| {
                let (command, url) = child_command(&s.name, s.command, s.url)?;
                let kind = s.kind.unwrap_or_else(|| Kind::guess(&command, &s.args));
                let (cache_tools, cache_ttl) = match &s.cache {
                    Some(c) => (
                        c.tools.clone(),
                        c.ttl_s
                            .map_or_else(|| kind.default_ttl(), Duration::from_secs),
                    ),
                    None => kind.default_cache(),
                };
                let relist = relist_every(url.is_some(), s.relist_s);
                let (ping_every, unresponsive_after) = liveness(
                    s.ping_s.or(file.coordinator.ping_s),
                    s.unresponsive_s.or(file.coordinator.unresponsive_s),
                );
                Ok(ChildSpec {
                    lane: s.lane.unwrap_or_else(|| kind.default_lane()),
                    tool_lanes: s.tool_lanes,
                    prefix: s.prefix.unwrap_or_else(|| s.name.clone()),
                    name: s.name,
                    command,
                    url,
                    kind,
                    args: expand_args(&s.args),
                    env: expand_values(&s.env),
                    allow: s.allow,
                    deny: s.deny,
                    start_timeout: Duration::from_secs(s.start_timeout_s.unwrap_or(start)),
                    call_timeout: Duration::from_secs(s.call_timeout_s.unwrap_or(call)),
                    max_call: Duration::from_secs(s.max_call_s.unwrap_or(max_call)),
                    cache_tools,
                    cache_ttl,
                    relist_every: relist,
                    ping_every,
                    unresponsive_after,
                    tool_timeouts: s
                        .tool_timeouts
                        .into_iter()
                        .map(|(k, v)| (k, Duration::from_secs(v)))
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let given = &file.coordinator.lanes;
        let default = Limits::default();
        let lanes = Limits {
            high: given.high.unwrap_or(default.high),
            medium: given.medium.unwrap_or(default.medium),
            low: given.low.unwrap_or(default.low),
        };
        if let Some((name, n)) = [
            ("high", lanes.high),
            ("medium", lanes.medium),
            ("low", lanes.low),
        ]
        .into_iter()
        .find(|(_, n)| !(1..=1024).contains(n))
        {
            return Err(format!(
                "[coordinator.lanes] {name} = {n}: accepted 1 to 1024 calls at once"
            ));
        }
        Self::checked(children, lanes)
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: JsonFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let children = file
            .mcp_servers
            .into_iter()
            .map(|(name, s)| {
                let (command, url) = child_command(&name, s.command, s.url)?;
                let kind = s.kind.unwrap_or_else(|| Kind::guess(&command, &s.args));
                let (cache_tools, cache_ttl) = kind.default_cache();
                let relist = relist_every(url.is_some(), None);
                let (ping_every, unresponsive_after) = liveness(None, None);
                Ok(ChildSpec {
                    lane: kind.default_lane(),
                    tool_lanes: BTreeMap::new(),
                    command,
                    url,
                    kind,
                    prefix: name.clone(),
                    name,
                    args: expand_args(&s.args),
                    env: expand_values(&s.env),
                    allow: Vec::new(),
                    deny: Vec::new(),
                    start_timeout: Duration::from_secs(DEFAULT_START),
                    call_timeout: Duration::from_secs(DEFAULT_CALL),
                    max_call: Duration::from_secs(DEFAULT_MAX_CALL),
                    tool_timeouts: BTreeMap::new(),
                    cache_tools,
                    cache_ttl,
                    relist_every: relist,
                    ping_every,
                    unresponsive_after,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Self::checked(children, Limits::default())
    }

    fn checked(children: Vec<ChildSpec>, lanes: Limits) -> Result<Self, String> {
        let mut seen = BTreeMap::new();
        for c in &children {
            if !valid_name(&c.prefix) || c.prefix.contains("__") {
                return Err(format!(
                    "server {:?}: prefix {:?} must match ^[a-zA-Z0-9_-]{{1,64}}$ without \"__\"",
                    c.name, c.prefix
                ));
            }
            if let Some(live) = c.cache_tools.iter().find_map(|g| {
                c.kind
                    .live_tools()
                    .iter()
                    .find(|t| **t == "*" || glob(g, t))
                    .map(|t| (g, *t))
            }) {
                return Err(format!(
                    "server {:?}: cache tools {:?} would cache {} results, which describe live \
                     state (memory, game, network) and are never cached",
                    c.name,
                    live.0,
                    if live.1 == "*" {
                        "its".to_string()
                    } else {
                        format!("{:?}", live.1)
                    }
                ));
            }
            if let Some(other) = seen.insert(c.prefix.clone(), c.name.clone()) {
                return Err(format!(
                    "servers {other:?} and {:?} both use the prefix {:?}",
                    c.name, c.prefix
                ));
            }
        }
        Ok(Self { children, lanes })
    }
}

/// The directory of the running coordinator binary.
fn own_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

/// `${NAME}` replaced by the environment variable's value (empty when unset), so a config can
/// say `${HOME}/games` and work for whoever runs it.
pub fn expand_env(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&std::env::var(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn expand_args(args: &[String]) -> Vec<String> {
    args.iter().map(|a| expand_env(a)).collect()
}

fn expand_values(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| (k.clone(), expand_env(v)))
        .collect()
}

/// (command, url) of a child: exactly one of them.
fn child_command(
    name: &str,
    command: Option<String>,
    url: Option<String>,
) -> Result<(String, Option<String>), String> {
    match (command, url) {
        (Some(c), None) if !c.is_empty() => Ok((expand_env(&c), None)),
        (None, Some(u)) => {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "server {name:?}: url {u:?} must be http://HOST:PORT/PATH (a streamable-HTTP \
                     MCP endpoint)"
                ));
            }
            Ok((String::new(), Some(u)))
        }
        _ => Err(format!("server {name:?}: give exactly one of command, url")),
    }
}

/// `*` matches any run of characters, `?` any one character.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid() -> Result<(), String> {
        let c = Config::from_toml(include_str!("../../examples/coordinator.toml"))?;
        let names: Vec<&str> = c.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["static", "memory", "d2", "network", "behavior", "sandbox"]
        );
        assert_eq!(c.children[4].kind, Kind::Behavior);
        assert!(c.children[4].cache_ttl_for("find_writers").is_none());
        assert!(c.children[2].cache_ttl_for("character").is_none());
        assert!(!c.children[3].exposes("capture_start"));
        // Lanes: memory high but its pointer scans medium, the rest medium by default.
        assert_eq!(c.children[1].lane_for("read_memory"), Lane::High);
        assert_eq!(c.children[1].lane_for("pointer_scan"), Lane::Medium);
        assert_eq!(c.children[0].lane_for("list_strings"), Lane::Medium);
        assert_eq!(c.lanes, Limits::default());
        Ok(())
    }

    #[test]
    fn lane_limits_are_read_and_checked() -> Result<(), String> {
        let server = "[[servers]]\nname = \"m\"\ncommand = \"mcp-memory\"\n";
        let c = Config::from_toml(&format!("[coordinator.lanes]\nlow = 1\n{server}"))?;
        assert_eq!((c.lanes.high, c.lanes.medium, c.lanes.low), (16, 8, 1));
        assert_eq!(c.children[0].lane_for("scan_start"), Lane::High);
        let Err(e) = Config::from_toml(&format!("[coordinator.lanes]\nhigh = 0\n{server}")) else {
            panic!("a lane of 0 calls was accepted");
        };
        assert!(
            e.contains("[coordinator.lanes] high = 0: accepted 1 to 1024"),
            "{e}"
        );
        let Err(e) = Config::from_toml(&format!("{server}lane = \"urgent\"\n")) else {
            panic!("an unknown lane was accepted");
        };
        assert!(e.contains("urgent") && e.contains("high"), "{e}");
        Ok(())
    }

    #[test]
    fn globs() {
        assert!(glob("*", "binary_info"));
        assert!(glob("list_*", "list_exports"));
        assert!(!glob("list_*", "binary_info"));
        assert!(glob("scan_??xt", "scan_next"));
        assert!(glob("*_struct", "read_struct"));
        assert!(!glob("read", "read_struct"));
    }

    #[test]
    fn reads_both_formats_and_refuses_collisions() -> Result<(), String> {
        let t = Config::from_toml(
            r#"
            [coordinator]
            call_timeout_s = 30
            [[servers]]
            name = "static"
            command = "mcp-static"
            args = ["--root", "/games"]
            deny = ["diff_*"]
            [servers.tool_timeouts]
            list_functions = 120
            [servers.cache]
            tools = ["binary_info", "list_*"]
            ttl_s = 604800
            [[servers]]
            name = "memory"
            prefix = "mem"
            command = "mcp-memory"
            "#,
        )?;
        assert_eq!(t.children.len(), 2);
        let s = &t.children[0];
        assert_eq!(s.prefix, "static");
        assert!(!s.exposes("diff_binaries") && s.exposes("binary_info"));
        assert_eq!(s.timeout_for("list_functions"), Duration::from_secs(120));
        assert_eq!(s.timeout_for("binary_info"), Duration::from_secs(30));
        assert_eq!(
            s.cache_ttl_for("list_exports"),
            Some(Duration::from_secs(604800))
        );
        assert_eq!(s.cache_ttl_for("disassemble"), None);
        assert_eq!(t.children[1].cache_ttl_for("scan_start"), None);
        assert_eq!(t.children[1].prefix, "mem");
        let j = Config::from_json(
            r#"{"mcpServers": {"d2": {"command": "mcp-d2", "args": [], "env": {"RUST_LOG": "warn"}}}}"#,
        )?;
        assert_eq!(
            j.children[0].env.get("RUST_LOG").map(String::as_str),
            Some("warn")
        );
        let clash = Config::from_toml(
            "[[servers]]\nname = \"a\"\nprefix = \"x\"\ncommand = \"c\"\n[[servers]]\nname = \"b\"\nprefix = \"x\"\ncommand = \"c\"\n",
        );
        assert!(clash.is_err_and(|e| e.contains("\"a\"") && e.contains("\"b\"")));
        let bad = Config::from_toml("[[servers]]\nname = \"a b\"\ncommand = \"c\"\n");
        assert!(bad.is_err());
        let url = Config::from_json(r#"{"mcpServers": {"r": {"url": "http://127.0.0.1:1/mcp"}}}"#)?;
        assert_eq!(
            url.children[0].url.as_deref(),
            Some("http://127.0.0.1:1/mcp")
        );
        let bad = Config::from_json(r#"{"mcpServers": {"r": {"url": "127.0.0.1:1"}}}"#);
        assert!(bad.is_err_and(|e| e.contains("url") && e.contains("http://")));
        let both = Config::from_json(
            r#"{"mcpServers": {"r": {"url": "http://127.0.0.1:1/", "command": "x"}}}"#,
        );
        assert!(both.is_err_and(|e| e.contains("exactly one")));
        Ok(())
    }

    #[test]
    fn cache_defaults_match_the_suite_and_live_results_are_never_cached() -> Result<(), String> {
        let c = Config::from_toml(
            "[[servers]]\nname = \"s\"\ncommand = \"/opt/bin/mcp-static\"\n\
             [[servers]]\nname = \"d\"\ncommand = \"target/release/mcp-d2\"\n\
             [[servers]]\nname = \"m\"\ncommand = \"mcp-memory\"\n\
             [[servers]]\nname = \"o\"\ncommand = \"third-party\"\n\
             [[servers]]\nname = \"s2\"\ncommand = \"mcp-static\"\n[servers.cache]\ntools = [\"list_*\"]\n",
        )?;
        let [s, d, m, o, s2] = &c.children[..] else {
            return Err("five children expected".into());
        };
        assert_eq!(s.cache_ttl_for("disassemble"), Some(STATIC_TTL));
        assert_eq!(STATIC_TTL, Duration::from_secs(604800));
        assert_eq!(d.cache_ttl_for("parse_save"), Some(SAVE_TTL));
        assert_eq!(SAVE_TTL, Duration::from_secs(3600));
        assert_eq!(d.cache_ttl_for("character"), None);
        assert_eq!(m.cache_ttl_for("read_memory"), None);
        assert_eq!(o.cache_ttl_for("anything"), None);
        assert_eq!(s2.cache_ttl_for("list_exports"), Some(STATIC_TTL));
        assert_eq!(s2.cache_ttl_for("binary_info"), None);
        let live = Config::from_toml(
            "[[servers]]\nname = \"d2\"\ncommand = \"mcp-d2\"\n[servers.cache]\ntools = [\"*\"]\nttl_s = 60\n",
        );
        assert!(live.is_err_and(|e| e.contains("\"d2\"") && e.contains("never cached")),);
        let mem = Config::from_toml(
            "[[servers]]\nname = \"m\"\ncommand = \"mcp-memory\"\n[servers.cache]\ntools = [\"snapshot\"]\n",
        );
        assert!(mem.is_err_and(|e| e.contains("never cached")));
        let j = Config::from_json(r#"{"mcpServers": {"static": {"command": "mcp-static"}}}"#)?;
        assert_eq!(j.children[0].cache_ttl_for("xrefs_to"), Some(STATIC_TTL));
        Ok(())
    }

    #[test]
    fn a_child_kind_is_given_or_seen_through_a_wrapper() -> Result<(), String> {
        let c = Config::from_toml(
            r#"
[[servers]]
name = "sandboxed"
command = "/usr/bin/sandbox-runner"
args = ["run", "--profile", "strict", "--", "/opt/mcp-static", "--root", "/g"]
[[servers]]
name = "remote"
url = "http://127.0.0.1:9/"
kind = "static"
[[servers]]
name = "plain-url"
url = "http://127.0.0.1:9/"
[[servers]]
name = "renamed"
command = "my-d2-build"
kind = "d2"
[[servers]]
name = "said-other"
command = "mcp-static"
kind = "other"
"#,
        )?;
        let kinds: Vec<Kind> = c.children.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Static,
                Kind::Static,
                Kind::Other,
                Kind::D2,
                Kind::Other
            ]
        );
        // The kind brings its defaults: the sandboxed and the remote mcp-static are cached,
        // the renamed mcp-d2 never caches its live tools.
        assert_eq!(c.children[0].cache_ttl_for("disassemble"), Some(STATIC_TTL));
        assert_eq!(c.children[1].cache_ttl_for("binary_info"), Some(STATIC_TTL));
        assert_eq!(c.children[2].cache_ttl_for("binary_info"), None);
        assert_eq!(c.children[3].cache_ttl_for("parse_save"), Some(SAVE_TTL));
        assert_eq!(c.children[3].cache_ttl_for("character"), None);
        let live = Config::from_toml(
            "[[servers]]\nname = \"x\"\ncommand = \"game-reader\"\nkind = \"memory\"\n\
             [servers.cache]\ntools = [\"*\"]\n",
        );
        assert!(live.is_err_and(|e| e.contains("never cached")));
        let bad =
            Config::from_toml("[[servers]]\nname = \"x\"\ncommand = \"y\"\nkind = \"disk\"\n");
        assert!(bad.is_err_and(|e| e.contains("kind") && e.contains("static")));
        let j = Config::from_json(
            r#"{"mcpServers": {"s": {"url": "http://127.0.0.1:9/", "kind": "static"}}}"#,
        )?;
        assert_eq!(j.children[0].kind, Kind::Static);
        Ok(())
    }
}
