//! The MCP face: `launch`, `status`, `stop`, `list`. `launch` and `stop` change the machine
//! (they start and kill processes), are marked destructive and exist only with `--allow-launch`.

use crate::attach::Proc;
use crate::net::Isolated;
use crate::profile::{NetMode, Profile};
use crate::sandbox::{Output, Report, Runner, Sandbox, Spec, Status};
use mcp_common::{Json, Roots, Summary, ToolError, blocking};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sandboxes this server started, by id. A record stays until the server exits, for
/// `status` and `list`; the sandbox's output file (its path in `launch` and `status`) stays
/// readable after the program has exited, until `stop` removes it (the record then keeps the
/// report only). When the server exits every sandbox is stopped and every output removed:
/// nothing a server made is left under the runner's directory or in the cgroup tree (see
/// [`crate::sandbox`] for what a killed server leaves to the next one).
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<BTreeMap<String, Sandbox>>>);

impl Registry {
    fn get(&self, id: &str) -> Result<Sandbox, ToolError> {
        let map = self
            .0
            .lock()
            .map_err(|_| ToolError::new("sandbox registry poisoned"))?;
        map.get(id).cloned().ok_or_else(|| {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            ToolError::invalid(
                "sandbox_id",
                format!("{id:?}"),
                if known.is_empty() {
                    "an id from launch; none is known".to_string()
                } else {
                    format!("one of {}", known.join(", "))
                },
            )
        })
    }

    /// Stops every sandbox still running and removes their output files (the server is going
    /// away: nothing is left behind).
    pub fn stop_all(&self) {
        let all: Vec<Sandbox> = self
            .0
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for s in all {
            if let Err(e) = s.stop() {
                tracing::error!("{e}");
            }
            // Even when the stop failed: the server is leaving.
            s.remove_output();
        }
    }
}

#[derive(Clone)]
pub struct SandboxServer {
    runner: Runner,
    roots: Roots,
    registry: Registry,
    tool_router: ToolRouter<Self>,
}

impl SandboxServer {
    pub fn new(runner: Runner, roots: Roots, registry: Registry, allow_launch: bool) -> Self {
        let mut tool_router = Self::tool_router();
        if !allow_launch {
            tool_router.remove_route("launch");
            tool_router.remove_route("stop");
        }
        Self {
            runner,
            roots,
            registry,
            tool_router,
        }
    }
}

/// Most entries in `args`, and in `env`: far above a game's command line, while a list of
/// 100,000 is refused by name before it reaches execve.
const MAX_ARGS: usize = 1024;

/// Most bytes of `args`, and of `env` (`NAME=value` each): execve takes at most 2 MiB of
/// arguments and environment together (ARG_MAX), shared with the stage's own arguments and
/// the inherited environment, and 128 KiB in one string.
const MAX_ARG_BYTES: usize = 64 * 1024;

/// Refuses `args`/`env` strings execve would refuse (too many, too long, a NUL), naming
/// `field` or the entry.
fn check_exec_strings<'a>(
    field: &str,
    entries: impl ExactSizeIterator<Item = (String, &'a str)>,
) -> Result<(), ToolError> {
    if entries.len() > MAX_ARGS {
        return Err(ToolError::invalid(
            field,
            format!("{} entries", entries.len()),
            format!("accepted: at most {MAX_ARGS}"),
        ));
    }
    let mut total = 0;
    for (name, text) in entries {
        if text.contains('\0') {
            return Err(ToolError::invalid(
                &name,
                format!("{text:?}"),
                "accepted: text without NUL bytes",
            ));
        }
        total += text.len() + 1;
        if total > MAX_ARG_BYTES {
            return Err(ToolError::invalid(
                field,
                format!("more than {MAX_ARG_BYTES} bytes"),
                format!("accepted: at most {MAX_ARG_BYTES} bytes in all"),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LaunchArgs {
    /// `wine` or `strict` (built in), or a profile .toml path.
    pub profile: String,
    /// A path, or a name in PATH (e.g. `wine`, with the .exe in `args`).
    pub program: String,
    /// The program's arguments: at most 1024, 64 KiB in all.
    #[serde(default)]
    #[schemars(length(max = MAX_ARGS))]
    pub args: Vec<String>,
    /// Memory limit, e.g. `4G` (default: the profile's).
    pub memory: Option<String>,
    /// Most processes + threads inside.
    pub pids: Option<u64>,
    /// CPU cores, e.g. 1.5.
    pub cpus: Option<f64>,
    /// Default: the profile's (built-ins: `none`, loopback only). `isolated`: a veth pair to
    /// the host; `host`: the host's network.
    pub network: Option<NetMode>,
    /// Seconds until everything inside is killed.
    #[schemars(range(min = 0.001, max = 604800.0))]
    pub timeout: Option<f64>,
    /// Directories under the roots, writable inside.
    #[serde(default)]
    pub rw: Vec<String>,
    /// Directories under the roots, shown read-only (/home, /tmp are hidden).
    #[serde(default)]
    pub ro: Vec<String>,
    /// A home directory under the roots, kept: reuse a WINEPREFIX.
    pub home: Option<String>,
    /// Let refused syscalls run, only recording them.
    #[serde(default)]
    pub seccomp_log: bool,
    /// Environment variables set inside: at most 1024, 64 KiB in all.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdArgs {
    /// The id from launch or list.
    pub sandbox_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Launched {
    pub sandbox_id: String,
    /// Host pids of the sandbox's processes (use them with mcp-memory).
    pub pids: Vec<Proc>,
    /// The game's (or program's) host pid once known; Wine may take seconds: see `status`.
    pub game_pid: Option<u32>,
    /// The host side of the veth pair in `isolated` mode: capture here with mcp-network.
    pub interface: Option<Isolated>,
    /// Where the program's stdout and stderr go.
    pub output_path: Option<String>,
}

impl Summary for Launched {
    fn summary(&self) -> String {
        format!(
            "sandbox {} running, {} processes{}",
            self.sandbox_id,
            self.pids.len(),
            self.interface
                .as_ref()
                .map(|i| format!(", capture on {}", i.interface))
                .unwrap_or_default()
        )
    }
}

impl Summary for Status {
    fn summary(&self) -> String {
        if self.state == "exited" {
            return format!(
                "sandbox {} exited: {}",
                self.sandbox_id,
                self.report.summary()
            );
        }
        format!(
            "sandbox {} running {} ms, {} processes, {} MiB, {} seccomp violations",
            self.sandbox_id,
            self.report.duration_ms,
            self.pids.len(),
            self.usage.memory_bytes >> 20,
            self.events.seccomp_violations
        )
    }
}

impl Summary for Report {
    fn summary(&self) -> String {
        let how = match (self.exit_code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (_, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        };
        let mut events = Vec::new();
        if self.timed_out {
            events.push("timed out".to_string());
        }
        if self.stopped {
            events.push("stopped".to_string());
        }
        if self.oom_killed {
            events.push("OOM kill".to_string());
        }
        if self.pids_limit_hit {
            events.push("pids limit hit".to_string());
        }
        if self.seccomp_violations_total > 0 {
            events.push(format!(
                "{} seccomp violations",
                self.seccomp_violations_total
            ));
        }
        format!(
            "{how} after {} ms{}",
            self.duration_ms,
            if events.is_empty() {
                String::new()
            } else {
                format!(" ({})", events.join(", "))
            }
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Listed {
    pub sandboxes: Vec<Entry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    pub sandbox_id: String,
    pub state: String,
    pub profile: String,
    pub game_pid: Option<u32>,
    pub uptime_ms: u64,
}

impl Summary for Listed {
    fn summary(&self) -> String {
        let running = self
            .sandboxes
            .iter()
            .filter(|s| s.state == "running")
            .count();
        format!("{} sandboxes, {running} running", self.sandboxes.len())
    }
}

#[tool_router]
impl SandboxServer {
    /// Starts a program (e.g. `wine` with Game.exe) in a new sandbox: namespaces, cgroup
    /// limits, seccomp. Gives host pids for mcp-memory (and an interface for mcp-network when
    /// `isolated`); then status, stop.
    #[tool(
        title = "Launch in a sandbox",
        annotations(
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn launch(
        &self,
        Parameters(a): Parameters<LaunchArgs>,
    ) -> Result<Json<Launched>, ToolError> {
        // A profile file must lie under the roots, like every other path a client names.
        let profile_ref = if a.profile.ends_with(".toml") {
            self.roots
                .resolve_file("profile", &a.profile)?
                .display()
                .to_string()
        } else {
            a.profile.clone()
        };
        let profile = Profile::load(&profile_ref)
            .map_err(|e| ToolError::invalid("profile", format!("{:?}", a.profile), e))?;
        let memory = a
            .memory
            .as_deref()
            .map(crate::limits::parse_size)
            .transpose()
            .map_err(|e| {
                ToolError::invalid(
                    "memory",
                    format!("{:?}", a.memory.as_deref().unwrap_or("")),
                    e,
                )
            })?;
        let network = a.network;
        let timeout = match a.timeout {
            Some(t) if !(t.is_finite() && t > 0.0 && t <= 7.0 * 86400.0) => {
                return Err(ToolError::invalid(
                    "timeout",
                    t,
                    "seconds, more than 0 and at most 604800 (a week)",
                ));
            }
            Some(t) => Some(Duration::from_secs_f64(t)),
            None => None,
        };
        check_exec_strings(
            "args",
            a.args
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("args[{i}]"), x.as_str())),
        )?;
        let rw =
            a.rw.iter()
                .map(|d| self.roots.resolve("rw", d))
                .collect::<Result<Vec<_>, _>>()?;
        // Explicit read-only directories must be inside the roots; so must argument paths
        // to be shown (others are passed on, just not made visible).
        let ro =
            a.ro.iter()
                .map(|d| self.roots.resolve("ro", d))
                .collect::<Result<Vec<_>, _>>()?;
        let show: Vec<std::path::PathBuf> = a
            .args
            .iter()
            .filter(|x| x.starts_with('/'))
            .filter_map(|arg| self.roots.resolve("args", arg).ok())
            .collect();
        let home = a
            .home
            .as_deref()
            .map(|h| self.roots.resolve("home", h))
            .transpose()?;
        let runner = self.runner.clone();
        let registry = self.registry.clone();
        let (program, args, seccomp_log, pids, cpus) =
            (a.program, a.args, a.seccomp_log, a.pids, a.cpus);
        if let Some(k) = a
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains(['=', '\0']))
        {
            return Err(ToolError::invalid(
                "env",
                format!("{k:?}"),
                "variable names that are not empty and have no '=' or NUL",
            ));
        }
        let env: Vec<(String, String)> = a.env.into_iter().collect();
        let env_strings: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (format!("env.{k}"), format!("{k}={v}")))
            .collect();
        check_exec_strings(
            "env",
            env_strings.iter().map(|(k, kv)| (k.clone(), kv.as_str())),
        )?;
        blocking(move || {
            let _ = std::fs::create_dir_all(&runner.base_dir);
            // One output file per sandbox, removed by stop, a failed launch or the server's
            // exit (see Registry). A counter, not the registry's size: two launches at once
            // get two files.
            static OUTPUTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = OUTPUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let log = runner
                .base_dir
                .join(format!("output-{}-{n}.log", std::process::id()));
            let spec = Spec {
                profile,
                program,
                args,
                memory,
                pids,
                cpus,
                network,
                timeout,
                rw,
                ro,
                show,
                home,
                env,
                seccomp_log,
                output: Output::File(log),
                report: None,
            };
            let sandbox = runner.launch(spec).map_err(ToolError::new)?;
            let status = sandbox.status();
            if let Ok(mut m) = registry.0.lock() {
                m.insert(sandbox.id().to_string(), sandbox);
            }
            Ok(Json(Launched {
                sandbox_id: status.sandbox_id,
                pids: status.pids,
                game_pid: status.game_pid,
                interface: status.interface,
                output_path: status.output_path,
            }))
        })
        .await
    }

    #[tool(
        title = "Sandbox status",
        description = "A sandbox's state, host pids (which is the game), usage, OOM/pids/seccomp \
             events and exit report. Poll after launch.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn status(&self, Parameters(a): Parameters<IdArgs>) -> Result<Json<Status>, ToolError> {
        let s = self.registry.get(&a.sandbox_id)?;
        blocking(move || Ok(Json(s.status()))).await
    }

    /// Kills everything in a sandbox (wineserver included), removes its cgroup and files, and
    /// gives the exit report.
    #[tool(
        title = "Stop a sandbox",
        annotations(
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn stop(&self, Parameters(a): Parameters<IdArgs>) -> Result<Json<Report>, ToolError> {
        let s = self.registry.get(&a.sandbox_id)?;
        blocking(move || s.stop().map(Json).map_err(ToolError::new)).await
    }

    /// Sandboxes this server started, running or ended, with ids for status and stop.
    #[tool(
        title = "List sandboxes",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<Listed>, ToolError> {
        let all: Vec<Sandbox> = self
            .registry
            .0
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        blocking(move || {
            let sandboxes = all
                .iter()
                .map(|s| {
                    let st = s.status();
                    Entry {
                        sandbox_id: st.sandbox_id,
                        state: st.state,
                        profile: st.profile,
                        game_pid: st.game_pid,
                        uptime_ms: st.report.duration_ms,
                    }
                })
                .collect();
            Ok(Json(Listed { sandboxes }))
        })
        .await
    }
}

impl ServerHandler for SandboxServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "sandbox-runner",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Runs the game (wine + Game.exe) or any program in a sandbox: namespaces, cgroup \
                 limits, a seccomp filter, no network unless asked. launch returns host pids for \
                 mcp-memory and, in isolated mode, an interface for mcp-network; status reports \
                 usage and violations; stop kills everything inside.",
            )
    }

    mcp_common::tool_handler_methods!();
}
