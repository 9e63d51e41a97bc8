//! One sandbox from launch to report: resolves the limits, makes the cgroup and directories,
//! starts the inside (see [`crate::inside`]), wires the network, supervises the seccomp
//! filter, enforces the wall-clock timeout, and at the end kills everything left, removes what
//! it made and writes the report.
//!
//! What a sandbox leaves on the host, and until when (all of it named with the runner's pid,
//! `sbx-PID-N` and `output-PID-N.log` under [`Runner::base_dir`], `sbx-PID-N` cgroups):
//! - its directory (mount points, a fresh home) and its cgroup live as long as the program:
//!   removed when it ends (or when a launch fails);
//! - its output file ([`Output::File`], the MCP server's) outlives the program, so that what
//!   it printed can still be read after it exited: removed by [`Sandbox::stop`] (the `stop`
//!   tool; the server stops every sandbox when it exits) or by a failed launch;
//! - a runner that dies without cleaning up (kill -9) leaves them: the next runner to start
//!   removes what carries the pid of a runner that is gone ([`sweep`]), never a live one's.

use crate::attach::{self, Proc};
use crate::cgroup::{Cgroup, Stats};
use crate::inside::{self, Config, Message};
use crate::limits::{Host, Limits};
use crate::net::{self, Isolated};
use crate::profile::{NetMode, Profile, RLIMITS};
use crate::seccomp::SeccompMode;
use crate::seccomp::{self, Violation, Violations};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::Serialize;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the set-up inside may take before launch gives up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The home directory's path inside.
const HOME: &str = "/home/sandbox";
/// Host top-level directories never shown inside (besides /proc, /dev, /tmp, /run, which get
/// fresh instances).
const HIDDEN: &[&str] = &["home", "root", "mnt", "media", "lost+found", "boot"];
/// Host environment variables passed through; everything else comes from the profile/spec.
const PASS_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TERM", "TZ", "DISPLAY"];

/// Where the program's stdin/stdout/stderr go.
#[derive(Debug, Clone)]
pub enum Output {
    /// The runner's own (the `run` command).
    Inherit,
    /// stdin from /dev/null, stdout and stderr written to this new file (refused if it
    /// exists), which belongs to the sandbox: kept after the program ends, removed by
    /// [`Sandbox::stop`] or a failed launch (the MCP server's, whose stdout is the protocol).
    File(PathBuf),
    /// stdin and stdout are pipes the caller takes with [`Sandbox::take_stdio`]; stderr is
    /// the runner's.
    Piped,
}

/// What to run and how; `None` fields take the profile's value.
#[derive(Debug, Clone)]
pub struct Spec {
    pub profile: Profile,
    pub program: String,
    pub args: Vec<String>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    pub network: Option<NetMode>,
    pub timeout: Option<Duration>,
    pub rw: Vec<PathBuf>,
    /// Host directories shown read-only at the same path (for those the view hides: under
    /// /home, /tmp, ...).
    pub ro: Vec<PathBuf>,
    /// Paths (the game's .exe, a save) whose directories are shown read-only when the view
    /// hides them; [`Spec::new`] takes the absolute paths among `args`.
    pub show: Vec<PathBuf>,
    /// A persistent home (kept after the sandbox ends: a WINEPREFIX takes 20-40 s to create).
    pub home: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Record violations but let the calls run.
    pub seccomp_log: bool,
    pub output: Output,
    pub report: Option<PathBuf>,
}

/// The absolute paths among `args`.
pub fn absolute_paths(args: &[String]) -> Vec<PathBuf> {
    args.iter()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .collect()
}

impl Spec {
    /// `program args` under `profile`'s limits and network, output inherited, no timeout.
    pub fn new(profile: Profile, program: impl Into<String>, args: Vec<String>) -> Spec {
        Spec {
            show: absolute_paths(&args),
            profile,
            program: program.into(),
            args,
            memory: None,
            pids: None,
            cpus: None,
            network: None,
            timeout: None,
            rw: Vec::new(),
            ro: Vec::new(),
            home: None,
            env: Vec::new(),
            seccomp_log: false,
            output: Output::Inherit,
            report: None,
        }
    }
}

/// The JSON report written when a sandbox ends (`--report`), also part of `status`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub sandbox_id: String,
    /// The program's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (9 after a timeout, stop or OOM kill).
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Ended by `stop`.
    pub stopped: bool,
    pub oom_killed: bool,
    pub pids_limit_hit: bool,
    pub seccomp_violations: Vec<Violation>,
    /// All violations, including those beyond the recorded list.
    pub seccomp_violations_total: u64,
    pub duration_ms: u64,
    pub memory_peak_bytes: u64,
    pub cpu_usage_ms: u64,
    /// Processes still alive at the end (killed by the runner); none remain afterwards.
    pub leftover_killed: usize,
}

/// A live view of a sandbox (the `status` tool).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Status {
    pub sandbox_id: String,
    /// `running` or `exited`.
    pub state: String,
    pub profile: String,
    pub network: NetMode,
    pub limits: LimitsView,
    pub interface: Option<Isolated>,
    pub pids: Vec<Proc>,
    /// Host pid of the game (or of the program for native programs).
    pub game_pid: Option<u32>,
    pub usage: Usage,
    pub events: Events,
    pub output_path: Option<String>,
    /// The report's fields: final once the sandbox has ended, a live snapshot before (no exit
    /// code or signal yet, duration so far).
    pub report: Report,
}

/// Resource use now (zero once ended; the report keeps the peak).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Usage {
    pub memory_bytes: u64,
    pub memory_peak_bytes: u64,
    pub cpu_usage_ms: u64,
    /// Tasks (processes and threads) in the cgroup.
    pub tasks: u64,
}

/// What the limits and the filter have stopped so far.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Events {
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
    pub seccomp_violations: u64,
}

/// Limits as shown to users.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LimitsView {
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpus: f64,
    pub timeout_s: Option<f64>,
}

/// Launches sandboxes; `exe` is the sandbox-runner binary, `stage` the small executable that
/// runs the inside stages ([`stage_exe`]); without one, `exe` re-executes itself inside.
#[derive(Debug, Clone)]
pub struct Runner {
    pub exe: PathBuf,
    pub stage: Option<PathBuf>,
    pub base_dir: PathBuf,
    /// Where compiled seccomp filters are kept between runs ([`seccomp::cache_dir`]); `None`:
    /// compiled once per process.
    pub cache_dir: Option<PathBuf>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Runner {
    /// A runner whose sandboxes live under `$SANDBOX_RUNNER_DIR`, or /run/sandbox-runner
    /// (root) or `$TMPDIR/sandbox-runner-UID`.
    pub fn new(exe: PathBuf) -> Runner {
        let stage = stage_exe(&exe);
        match &stage {
            Some(s) => tracing::debug!("inside stages: {}", s.display()),
            None => tracing::debug!(
                "inside stages: {} {} ({} not found beside it)",
                exe.display(),
                inside::STAGE_ARG,
                inside::STAGE_EXE
            ),
        }
        let euid = nix::unistd::geteuid().as_raw();
        let base_dir = match std::env::var_os("SANDBOX_RUNNER_DIR") {
            Some(dir) => PathBuf::from(dir),
            None if euid == 0 && Path::new("/run").is_dir() => PathBuf::from("/run/sandbox-runner"),
            None => std::env::temp_dir().join(format!("sandbox-runner-{euid}")),
        };
        Runner {
            exe,
            stage,
            base_dir,
            cache_dir: seccomp::cache_dir(),
        }
    }

    /// Removes what runners that died left ([`sweep`]); once, when this runner starts and
    /// before it launches anything (not at every launch: start-up time is measured).
    pub fn sweep_dead(&self, all_cgroups: bool) {
        let n = sweep(&self.base_dir, all_cgroups);
        if n > 0 {
            tracing::info!("removed {n} sandboxes and output files left by runners that died");
        }
    }

    /// Starts a sandbox; returns once the program is about to run (or with what failed, having
    /// removed everything it made).
    pub fn launch(&self, spec: Spec) -> Result<Sandbox, String> {
        let limits = Limits {
            memory_bytes: spec.memory.unwrap_or(spec.profile.limits.memory_bytes),
            pids: spec.pids.unwrap_or(spec.profile.limits.pids),
            cpus: spec.cpus.unwrap_or(spec.profile.limits.cpus),
        };
        limits.check(&Host::probe())?;
        if let Some(t) = spec.timeout
            && t.is_zero()
        {
            return Err(
                "timeout 0 s is out of range; accepted: a positive number of seconds, or none"
                    .into(),
            );
        }
        let program = resolve_program(&spec.program)?;
        let asked = spec.rw.iter().map(|d| ("rw", d));
        for (what, dir) in asked.chain(spec.ro.iter().map(|d| ("ro", d))) {
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(format!(
                    "{what} {}: not an existing absolute directory; accepted: absolute paths of directories",
                    dir.display()
                ));
            }
        }
        let network = spec.network.unwrap_or(spec.profile.network);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("sbx-{}-{seq}", std::process::id());
        let dir = self.base_dir.join(&id);
        let root_dir = dir.join("root");
        std::fs::create_dir_all(&root_dir)
            .map_err(|e| format!("creating {}: {e}", root_dir.display()))?;
        let made = Made {
            dir: dir.clone(),
            cgroup: None,
            interface: None,
            output: None,
        };
        let mut made = Cleanup(Some(made));
        let home_host = match &spec.home {
            Some(h) => {
                std::fs::create_dir_all(h).map_err(|e| format!("home {}: {e}", h.display()))?;
                h.canonicalize()
                    .map_err(|e| format!("home {}: {e}", h.display()))?
            }
            None => {
                let h = dir.join("home");
                std::fs::create_dir_all(&h)
                    .map_err(|e| format!("creating {}: {e}", h.display()))?;
                h
            }
        };
        let cgroup = Cgroup::create(&id, &limits)?;
        if let Some(m) = made.0.as_mut() {
            m.cgroup = Some(cgroup.clone());
        }
        let mut policy = spec.profile.seccomp.clone();
        if spec.seccomp_log {
            policy.mode = SeccompMode::Log;
        }
        // Read-only: the directories asked for, and, when the system view would not show
        // them, the program's directory and those of the paths to show (the game's .exe
        // under /home, say).
        let mut ro: Vec<PathBuf> = spec.ro.clone();
        let wanted =
            std::iter::once(program.as_path()).chain(spec.show.iter().map(PathBuf::as_path));
        for p in wanted.filter(|p| p.is_absolute() && outside_view(p)) {
            let dir = if p.is_dir() { Some(p) } else { p.parent() };
            if let Some(d) = dir.filter(|d| d.is_dir() && d != &Path::new("/"))
                && !ro.iter().any(|r| d.starts_with(r))
            {
                ro.push(d.to_path_buf());
            }
        }
        let config = Config {
            program: program.clone(),
            args: spec.args.clone(),
            env: environment(&spec),
            cwd: PathBuf::from(HOME),
            root_dir,
            home_host,
            home: PathBuf::from(HOME),
            rw: spec.rw.clone(),
            ro,
            hide: HIDDEN.iter().map(|s| s.to_string()).collect(),
            join_files: cgroup.join_files(),
            net: network,
            user_ns: !nix::unistd::geteuid().is_root(),
            hostname: "sandbox".into(),
            filter: Vec::new(),
            rlimits: spec
                .profile
                .rlimits
                .iter()
                .filter_map(|(k, v)| RLIMITS.iter().find(|(n, _)| n == k).map(|(_, r)| (*r, *v)))
                .collect(),
        };
        let json = serde_json::to_string(&config).map_err(|e| format!("configuration: {e}"))?;
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let inside_exe = self.stage.as_ref().unwrap_or(&self.exe);
        let mut cmd = Command::new(inside_exe);
        match &spec.output {
            Output::Inherit => {}
            Output::File(path) => {
                let f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("output {}: {e}", path.display()))?;
                if let Some(m) = made.0.as_mut() {
                    m.output = Some(path.clone());
                }
                let f2 = f
                    .try_clone()
                    .map_err(|e| format!("output {}: {e}", path.display()))?;
                cmd.stdin(Stdio::null()).stdout(f).stderr(f2);
            }
            Output::Piped => {
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            }
        }
        let started = Instant::now();
        let mut child = spawn_holder(cmd, theirs, json)
            .map_err(|e| format!("starting {}: {e}", inside_exe.display()))?;
        // Compiled (or taken from the cache) while the inside starts up.
        let bpf = match seccomp::compile(&policy, self.cache_dir.as_deref()) {
            Ok(b) => b,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut chan = inside::Channel::default();
        let setup = handshake(&ours, &mut chan, &id, network, &bpf);
        let (interface, (notify, exec_report), program_ns_pid) = match setup {
            Ok(x) => x,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        if let Some(m) = made.0.as_mut() {
            m.interface = interface.as_ref().map(|i| i.interface.clone());
        }
        let violations = Arc::new(Mutex::new(Violations::default()));
        let sup_stop = Arc::new(AtomicBool::new(false));
        let supervisor = {
            let (p, v, s) = (Arc::new(policy), violations.clone(), sup_stop.clone());
            std::thread::Builder::new()
                .name(format!("{id}-seccomp"))
                .spawn(move || seccomp::supervise(notify, p, v, s))
                .map_err(|e| format!("supervisor thread: {e}"))?
        };
        // After the supervisor is up: the exec itself may need its answers.
        if let Err(e) = exec_done(exec_report) {
            sup_stop.store(true, Ordering::Relaxed);
            let _ = child.kill();
            let _ = child.wait();
            let _ = supervisor.join();
            return Err(e);
        }
        let exe_name = spec
            .args
            .iter()
            .chain(std::iter::once(&spec.program))
            .find(|a| a.to_ascii_lowercase().ends_with(".exe"))
            .and_then(|a| a.rsplit(['/', '\\']).next())
            .map(str::to_string);
        let stdio = (child.stdin.take(), child.stdout.take());
        let shared = Arc::new(Shared {
            id: id.clone(),
            program_ns_pid,
            profile: spec.profile.name.clone(),
            network,
            limits,
            timeout: spec.timeout,
            interface,
            cgroup,
            violations,
            started,
            exe_name,
            output: Mutex::new(match &spec.output {
                Output::File(p) => Some(p.clone()),
                Output::Inherit | Output::Piped => None,
            }),
            stdio: Mutex::new(Some(stdio)),
            stop_requested: AtomicBool::new(false),
            report: Mutex::new(None),
            done: Condvar::new(),
        });
        let made = made.0.take();
        let keep_home = spec.home.is_some();
        let report_path = spec.report.clone();
        let s2 = shared.clone();
        std::thread::Builder::new()
            .name(format!("{id}-monitor"))
            .spawn(move || {
                monitor(
                    s2,
                    child,
                    (ours, chan),
                    supervisor,
                    sup_stop,
                    made,
                    keep_home,
                    report_path,
                )
            })
            .map_err(|e| format!("monitor thread: {e}"))?;
        Ok(Sandbox { shared })
    }
}

/// The stage executable ([`inside::STAGE_EXE`]) beside `exe`, or one directory up when `exe`
/// is in a cargo `deps/` directory (a test's own executable; the bins sit above it). It is
/// executed as whoever runs the runner, so it is only taken when it is trusted as much as the
/// runner: a regular executable file owned by this user or root that nobody else may write.
/// A planted file in a shared directory (/tmp) is ignored and the runner re-executes itself.
pub fn stage_exe(exe: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = exe.parent()?;
    let up = (dir.file_name() == Some(std::ffi::OsStr::new("deps")))
        .then(|| dir.parent())
        .flatten();
    let euid = nix::unistd::geteuid().as_raw();
    std::iter::once(dir)
        .chain(up)
        .map(|d| d.join(inside::STAGE_EXE))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                m.is_file()
                    && (m.uid() == euid || m.uid() == 0)
                    && m.mode() & 0o022 == 0
                    && m.mode() & 0o111 != 0
            })
        })
}

/// Held while an fd meant for one child only is inheritable (and by every other spawn of this
/// crate), so that no other child of ours gets a copy.
static INHERIT: Mutex<()> = Mutex::new(());

/// Spawns `cmd` holding [`INHERIT`].
pub(crate) fn spawn_guarded(cmd: &mut Command) -> std::io::Result<Child> {
    let _guard = INHERIT.lock().unwrap_or_else(|p| p.into_inner());
    cmd.spawn()
}

/// Starts the stage executable with the sync socket `theirs` and the configuration. The
/// socket is inherited as an fd of its own (a close-on-exec-free duplicate, alive only for the
/// spawn) whose number the stage gets as an argument: no code runs between fork and exec
/// (`pre_exec`), so std uses posix_spawn (vfork-like) instead of forking the whole runner,
/// ~1 ms CPU and copy-on-write faults afterwards (see [`inside::stage_main`]).
fn spawn_holder(mut cmd: Command, theirs: UnixStream, json: String) -> std::io::Result<Child> {
    let _guard = INHERIT.lock().unwrap_or_else(|p| p.into_inner());
    // F_DUPFD gives a new fd (>= 3: never one of the stdio the spawn sets up) without
    // FD_CLOEXEC, so the child inherits it.
    let fd = nix::fcntl::fcntl(&theirs, nix::fcntl::FcntlArg::F_DUPFD(3))
        .map_err(std::io::Error::from)?;
    // SAFETY: a new fd we own.
    let inherited = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    drop(theirs);
    cmd.args(inside::stage_args(fd, json));
    let child = spawn_from_lasting_thread(cmd);
    drop(inherited);
    child
}

type SpawnRequest = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);

/// Spawns holders from one thread that lives as long as the runner: the holder's
/// PR_SET_PDEATHSIG fires when the thread that started it ends, and tokio's blocking threads
/// (where the MCP server launches) end after a while idle. The main thread (the `run`
/// command's) lives as long as the process, so it spawns directly and no thread is started.
fn spawn_from_lasting_thread(mut cmd: Command) -> std::io::Result<Child> {
    if nix::unistd::gettid() == nix::unistd::getpid() {
        return cmd.spawn();
    }
    static LAUNCHER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<SpawnRequest>>> =
        std::sync::OnceLock::new();
    let sender = LAUNCHER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("sandbox-launcher".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = started {
            tracing::error!("launcher thread: {e}");
        }
        Mutex::new(tx)
    });
    let (reply, answer) = std::sync::mpsc::channel();
    sender
        .lock()
        .map_err(|_| std::io::Error::other("launcher poisoned"))?
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("the launcher thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the launcher thread did not answer"))?
}

/// The pid of the runner that made a sandbox's directory or cgroup (`sbx-PID-N`) or an
/// output file (`output-PID-N.log`).
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("sbx-")
        .or_else(|| name.strip_prefix("output-"))?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Whether `pid` is a live process: a zombie (killed, not yet reaped) cannot clean up either.
/// A pid taken again by another process counts as alive: its leftovers wait for that one.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last ')' (comm may hold one).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X' | 'x'))
}

/// Removes what runners that died left: in `base`, sandbox directories (with their cgroups,
/// killing anything still inside) and output files; with `all_cgroups`, also sandbox groups
/// in the cgroup parent whose directory is gone. Only what carries the pid of a runner that
/// is gone ([`owner_pid`]): several runners share `base` and the cgroup parent, and a live
/// one's sandboxes are never touched. Meant for a runner's start, before it launches
/// anything, so this process's own pid counts as gone too (a dead runner's pid taken again).
/// Returns how many sandboxes and files were removed. Pids are this pid namespace's: runners
/// that share a directory or cgroup parent must share it too.
///
/// A sandbox's directory is made before its cgroup and removed after it, so a runner killed
/// at any point leaves a directory wherever it left a group: `base` alone finds those. A
/// group without a directory (its removal failed, or it belongs to a runner with another
/// `base`) needs `all_cgroups`, which lists the parent in every hierarchy: 0.2-0.4 ms on v1
/// here against 0.02 ms for `base` alone, several % of a sandbox's start, so the `run`
/// command (one sandbox per runner, benchmarked) leaves it to the MCP server's start.
pub fn sweep(base: &Path, all_cgroups: bool) -> usize {
    let me = std::process::id();
    let dead = |name: &str| owner_pid(name).is_some_and(|p| p == me || !alive(p));
    let in_base: Vec<String> = std::fs::read_dir(base)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut ids: Vec<String> = in_base
        .iter()
        .filter(|n| n.starts_with("sbx-"))
        .cloned()
        .chain(
            all_cgroups
                .then(crate::cgroup::sandbox_ids)
                .into_iter()
                .flatten(),
        )
        .filter(|n| dead(n))
        .collect();
    ids.sort();
    ids.dedup();
    let mut swept = 0;
    for id in ids {
        if let Some(cg) = Cgroup::existing(&id) {
            if let Err(err) = cg.kill_all(Duration::from_secs(5)) {
                tracing::warn!("sweeping {id}: {err}");
                continue;
            }
            cg.remove();
        }
        let dir = base.join(&id);
        // `root` is only ever a mount point (mounts live in the sandbox's namespace): removed
        // as an empty directory, never recursively.
        let _ = std::fs::remove_dir(dir.join("root"));
        let _ = std::fs::remove_dir_all(dir.join("home"));
        let _ = std::fs::remove_dir(&dir);
        swept += 1;
    }
    for name in in_base
        .iter()
        .filter(|n| n.starts_with("output-") && n.ends_with(".log") && dead(n))
    {
        if std::fs::remove_file(base.join(name)).is_ok() {
            swept += 1;
        }
    }
    swept
}

/// Whether a host path lies where the sandbox's view does not show the host's files.
fn outside_view(p: &Path) -> bool {
    let top = p
        .components()
        .nth(1)
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    HIDDEN.contains(&top) || inside::OWN_MOUNTS.contains(&top)
}

/// Resolves a program name the way a shell would (PATH for bare names) and checks it can run.
fn resolve_program(program: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return Err("program \"\": empty; accepted: a path or a name found in PATH".into());
    }
    if program.contains('/') {
        let p = Path::new(program);
        let abs = p
            .canonicalize()
            .map_err(|e| format!("program {program:?} not found: {e}"))?;
        if !runnable(&abs) {
            return Err(format!("program {program:?} is not an executable file"));
        }
        return Ok(abs);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| runnable(p))
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| {
            format!(
                "program {program:?} not found in PATH; accepted: a path or a name found in PATH"
            )
        })
}

fn environment(spec: &Spec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = PASS_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    env.push(("HOME".into(), HOME.into()));
    env.push(("TMPDIR".into(), "/tmp".into()));
    env.push(("USER".into(), "sandbox".into()));
    for (k, v) in spec
        .profile
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(spec.env.iter().cloned())
    {
        env.retain(|(e, _)| *e != k);
        env.push((k, v.replace("$HOME", HOME)));
    }
    env
}

/// What the set-up hands over: the network, the filter's notification fd, the exec report
/// pipe and the program's pid inside the namespace.
type SetUp = (Option<Isolated>, (OwnedFd, OwnedFd), u32);

/// Stage 1's `unshared` -> (network) -> `go` (stage 2 waits for it), then stage 2's `started`
/// and stage 3's `filter` with its fds (those two in either order).
fn handshake(
    sock: &UnixStream,
    chan: &mut inside::Channel,
    id: &str,
    network: NetMode,
    bpf: &[u8],
) -> Result<SetUp, String> {
    sock.set_read_timeout(Some(SETUP_TIMEOUT))
        .map_err(|e| format!("socket: {e}"))?;
    let mut interface = None;
    let mut program = None;
    let mut filter = None;
    let (program, fds) = loop {
        // Stages 2 and 3 send `started` and `filter` from two processes, so either may come
        // first; neither is taken until both are here.
        if let (Some(p), Some(_)) = (program, &filter)
            && let Some(fds) = filter.take()
        {
            break (p, fds);
        }
        match chan.receive(sock)? {
            None => return Err("the sandbox ended during set-up without saying why".into()),
            Some(Message::Error { error }) => return Err(format!("sandbox set-up: {error}")),
            Some(Message::Unshared { pid }) => {
                if network == NetMode::Isolated {
                    let seed = id
                        .bytes()
                        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                    interface = Some(net::wire(seed, pid)?);
                }
                inside::answer_go(sock, bpf)?;
            }
            Some(Message::Started { ns_pid }) => program = Some(ns_pid),
            Some(Message::Filter) => {
                let fds = chan.take_fd().zip(chan.take_fd());
                filter = Some(fds.ok_or("sandbox set-up: the filter came without its fds")?)
            }
            Some(other) => return Err(format!("sandbox set-up: unexpected {other:?}")),
        }
    };
    sock.set_read_timeout(None)
        .map_err(|e| format!("socket: {e}"))?;
    Ok((interface, fds, program))
}

/// Waits for stage 3's exec: its report pipe reaches end-of-file when the program runs (the
/// write end closes on exec) and carries the reason when the exec failed.
fn exec_done(pipe: OwnedFd) -> Result<(), String> {
    use std::io::Read;
    let ms = PollTimeout::try_from(SETUP_TIMEOUT.as_millis()).unwrap_or(PollTimeout::MAX);
    let ready = nix::poll::poll(&mut [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)], ms);
    match ready {
        Err(e) => return Err(format!("waiting for the exec: {e}")),
        Ok(0) => {
            return Err(format!(
                "sandbox set-up: the program did not start within {SETUP_TIMEOUT:?}"
            ));
        }
        _ => {}
    }
    // Readable: either end-of-file already, or the reason, written just before _exit.
    let mut why = String::new();
    std::fs::File::from(pipe)
        .read_to_string(&mut why)
        .map_err(|e| format!("reading the exec report: {e}"))?;
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!("sandbox set-up: {why}"))
    }
}

/// What launch made on the host, removed at the end (or on a failed launch).
struct Made {
    dir: PathBuf,
    cgroup: Option<Cgroup>,
    interface: Option<String>,
    /// Removed only by a failed launch: a launched sandbox's output outlives the program
    /// until [`Sandbox::stop`].
    output: Option<PathBuf>,
}

impl Made {
    fn remove(&self, keep_home: bool) -> usize {
        let mut leftover = 0;
        if let Some(cg) = &self.cgroup {
            leftover = cg.pids().len();
            if let Err(e) = cg.kill_all(Duration::from_secs(5)) {
                tracing::warn!("{e}");
            }
            cg.remove();
        }
        if let Some(i) = &self.interface {
            net::unwire(i);
        }
        let _ = std::fs::remove_dir(self.dir.join("root"));
        if !keep_home {
            let _ = std::fs::remove_dir_all(self.dir.join("home"));
        }
        let _ = std::fs::remove_dir(&self.dir);
        leftover
    }
}

/// Removes what a launch made unless it was handed over.
struct Cleanup(Option<Made>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            m.remove(false);
            if let Some(out) = &m.output {
                let _ = std::fs::remove_file(out);
            }
        }
    }
}

struct Shared {
    id: String,
    /// The program's pid inside the namespace (stage 2 reported it).
    program_ns_pid: u32,
    profile: String,
    network: NetMode,
    limits: Limits,
    timeout: Option<Duration>,
    interface: Option<Isolated>,
    cgroup: Cgroup,
    violations: Arc<Mutex<Violations>>,
    started: Instant,
    exe_name: Option<String>,
    /// The output file while it exists ([`Output::File`]).
    output: Mutex<Option<PathBuf>>,
    stop_requested: AtomicBool,
    stdio: Mutex<Option<(Option<ChildStdin>, Option<ChildStdout>)>>,
    report: Mutex<Option<Report>>,
    done: Condvar,
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a new fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[allow(clippy::too_many_arguments)]
fn monitor(
    shared: Arc<Shared>,
    mut child: Child,
    (sock, mut chan): (UnixStream, inside::Channel),
    supervisor: std::thread::JoinHandle<()>,
    sup_stop: Arc<AtomicBool>,
    made: Option<Made>,
    keep_home: bool,
    report_path: Option<PathBuf>,
) {
    let deadline = shared.timeout.map(|t| shared.started + t);
    let pidfd = pidfd_open(child.id());
    let mut exit: Option<(Option<i32>, Option<i32>)> = None;
    let mut sock_open = true;
    let mut timed_out = false;
    loop {
        let wait_ms = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        // The pidfd first (when the kernel gives one), then the socket while it is open.
        let mut fds = Vec::with_capacity(2);
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        if sock_open {
            fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
        }
        // Without a pidfd (old kernel), poll in short steps.
        let step = if pidfd.is_none() && !(0..=50).contains(&wait_ms) {
            50
        } else {
            wait_ms
        };
        let timeout = PollTimeout::try_from(step).unwrap_or(PollTimeout::NONE);
        if let Err(e) = nix::poll::poll(&mut fds, timeout)
            && e != nix::errno::Errno::EINTR
        {
            break;
        }
        let fired = |f: Option<&PollFd>| f.and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        let child_ended = pidfd.is_some() && fired(fds.first());
        let sock_ready = sock_open && fired(fds.last());
        drop(fds);
        if sock_ready {
            match chan.receive(&sock) {
                Ok(Some(Message::Exit { code, signal })) => exit = Some((code, signal)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => sock_open = false,
            }
        }
        if child_ended || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
            timed_out = true;
            if let Err(e) = shared.cgroup.kill_all(Duration::from_secs(5)) {
                tracing::warn!("{}: timeout kill: {e}", shared.id);
            }
        }
    }
    let holder = child.wait().ok();
    // Stage 2's exit message may still sit in the socket.
    if exit.is_none() && sock_open {
        let _ = sock.set_nonblocking(true);
        while let Ok(Some(m)) = chan.receive(&sock) {
            if let Message::Exit { code, signal } = m {
                exit = Some((code, signal));
            }
        }
    }
    let stats = shared.cgroup.stats();
    let leftover = made.as_ref().map_or(0, |m| m.remove(keep_home));
    sup_stop.store(true, Ordering::Relaxed);
    let _ = supervisor.join();
    // Without stage 2's word, the holder's status: its exit code carries the program's
    // (128 + signal for a signal), or the holder itself was killed.
    let (exit_code, signal) = exit.unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        match holder.map(|h| (h.code(), h.signal())) {
            Some((Some(c), _)) if c > 128 => (None, Some(c - 128)),
            Some((Some(c), _)) => (Some(c), None),
            Some((None, sig)) => (None, sig),
            None => (None, None),
        }
    });
    let mut report = snapshot(&shared, &stats);
    report.exit_code = exit_code;
    report.signal = signal;
    report.timed_out = timed_out;
    report.leftover_killed = leftover;
    if let Some(path) = report_path {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text + "\n") {
            tracing::error!("report {}: {e}", path.display());
        }
    }
    if let Ok(mut r) = shared.report.lock() {
        *r = Some(report);
    }
    shared.done.notify_all();
}

/// The report's fields as they stand (exit fields left empty).
fn snapshot(shared: &Shared, stats: &Stats) -> Report {
    let v = shared
        .violations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    Report {
        sandbox_id: shared.id.clone(),
        exit_code: None,
        signal: None,
        timed_out: false,
        stopped: shared.stop_requested.load(Ordering::Relaxed),
        oom_killed: stats.oom_kills > 0,
        pids_limit_hit: stats.pids_limit_hits > 0,
        seccomp_violations: v.recorded,
        seccomp_violations_total: v.total,
        duration_ms: shared.started.elapsed().as_millis() as u64,
        memory_peak_bytes: stats.memory_peak_bytes,
        cpu_usage_ms: stats.cpu_usage_ms,
        leftover_killed: 0,
    }
}

/// A launched sandbox.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl Sandbox {
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The program's stdin and stdout with [`Output::Piped`] (once; `None` afterwards).
    pub fn take_stdio(&self) -> (Option<ChildStdin>, Option<ChildStdout>) {
        self.shared
            .stdio
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or((None, None))
    }

    /// The report once the sandbox has ended.
    pub fn report(&self) -> Option<Report> {
        self.shared.report.lock().ok().and_then(|r| r.clone())
    }

    /// Waits for the end (at most `limit`), returning the report if it came.
    pub fn wait(&self, limit: Option<Duration>) -> Option<Report> {
        let start = Instant::now();
        let mut guard = self.shared.report.lock().ok()?;
        while guard.is_none() {
            let left = match limit {
                Some(l) => l.checked_sub(start.elapsed())?,
                None => Duration::from_secs(3600),
            };
            guard = self.shared.done.wait_timeout(guard, left).ok()?.0;
        }
        guard.clone()
    }

    /// Kills every process of the sandbox (wineserver included), waits for the report and
    /// removes the output file: after a stop nothing of the sandbox is left on the host but
    /// its report. On a sandbox that has ended, just the latter two.
    pub fn stop(&self) -> Result<Report, String> {
        let report = match self.report() {
            Some(r) => r,
            None => self.kill_and_wait()?,
        };
        self.remove_output();
        Ok(report)
    }

    fn kill_and_wait(&self) -> Result<Report, String> {
        self.shared.stop_requested.store(true, Ordering::Relaxed);
        if let Err(e) = self.shared.cgroup.kill_all(Duration::from_secs(5)) {
            // The sandbox may have ended on its own meanwhile, its cgroup removed with it.
            return self.wait(Some(Duration::from_secs(2))).ok_or(e);
        }
        self.wait(Some(Duration::from_secs(10)))
            .ok_or_else(|| format!("sandbox {}: no report 10 s after the kill", self.shared.id))
    }

    /// Removes the output file (if any, and once); [`Sandbox::output_path`] is `None` after.
    pub fn remove_output(&self) {
        let path = self.shared.output.lock().ok().and_then(|mut o| o.take());
        if let Some(p) = path
            && let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("{}: removing {}: {e}", self.shared.id, p.display());
        }
    }

    /// Where the program's output goes when it is kept in a file, until [`Sandbox::stop`].
    pub fn output_path(&self) -> Option<String> {
        let out = self.shared.output.lock().ok()?;
        out.as_ref().map(|p| p.display().to_string())
    }

    pub fn status(&self) -> Status {
        let s = &self.shared;
        let exit = self.report();
        let pids = if exit.is_some() {
            Vec::new()
        } else {
            attach::describe(&s.cgroup.pids(), s.program_ns_pid)
        };
        let game_pid = attach::game_pid(&pids, s.exe_name.as_deref());
        let stats = if exit.is_some() {
            Stats::default()
        } else {
            s.cgroup.stats()
        };
        let report = exit.clone().unwrap_or_else(|| snapshot(s, &stats));
        Status {
            sandbox_id: s.id.clone(),
            state: if exit.is_some() { "exited" } else { "running" }.into(),
            profile: s.profile.clone(),
            network: s.network,
            limits: LimitsView {
                memory_bytes: s.limits.memory_bytes,
                pids: s.limits.pids,
                cpus: s.limits.cpus,
                timeout_s: s.timeout.map(|t| t.as_secs_f64()),
            },
            interface: s.interface.clone(),
            pids,
            game_pid,
            usage: Usage {
                memory_bytes: stats.memory_bytes,
                memory_peak_bytes: stats.memory_peak_bytes,
                cpu_usage_ms: stats.cpu_usage_ms,
                tasks: stats.tasks,
            },
            events: Events {
                oom_kills: stats.oom_kills,
                pids_limit_hits: stats.pids_limit_hits,
                seccomp_violations: report.seccomp_violations_total,
            },
            output_path: self.output_path(),
            report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// Stage 3 may send `filter` (with its fd) before stage 2's `started`: the handshake must
    /// keep the fd until both are here (a fast program once lost it and failed the set-up).
    #[test]
    fn handshake_takes_filter_and_started_in_either_order() -> Result<(), String> {
        for filter_first in [true, false] {
            let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
            let (fd_source, _keep) = UnixStream::pair().map_err(|e| e.to_string())?;
            let filter = b"\"filter\"\n".to_vec();
            let started = b"{\"started\":{\"ns_pid\":2}}\n".to_vec();
            let send_filter = |s: &UnixStream| {
                let iov = [std::io::IoSlice::new(&filter)];
                let fds = [fd_source.as_raw_fd(), fd_source.as_raw_fd()];
                sendmsg::<()>(
                    s.as_raw_fd(),
                    &iov,
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                )
                .map_err(|e| e.to_string())
            };
            let mut w = &theirs;
            if filter_first {
                send_filter(&theirs)?;
                w.write_all(&started).map_err(|e| e.to_string())?;
            } else {
                w.write_all(&started).map_err(|e| e.to_string())?;
                send_filter(&theirs)?;
            }
            // What follows the handshake (the program already ended) must stay unread.
            w.write_all(b"{\"exit\":{\"code\":0,\"signal\":null}}\n")
                .map_err(|e| e.to_string())?;
            let mut chan = inside::Channel::default();
            let (interface, _fds, pid) =
                handshake(&ours, &mut chan, "sbx-test", NetMode::None, &[])?;
            assert!(interface.is_none());
            assert_eq!(pid, 2, "filter first: {filter_first}");
            assert!(matches!(
                chan.receive(&ours)?,
                Some(Message::Exit { code: Some(0), .. })
            ));
        }
        Ok(())
    }
}
