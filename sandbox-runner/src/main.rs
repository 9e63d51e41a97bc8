//! `sandbox-runner`: `run` a program in a sandbox from the command line, or serve the sandbox
//! tools over MCP (`mcp`). `__stage1` is the runner re-executing itself inside when the small
//! `sandbox-runner-stage` is not installed beside it (not for users).

use clap::{Parser, Subcommand};
use mcp_common::serve::{CommonArgs, init_tracing, run};
use sandbox_runner::profile::{NetMode, Profile};
use sandbox_runner::sandbox::Sandbox;
use sandbox_runner::sandbox::{Output, Runner, Spec};
use sandbox_runner::tools::{Registry, SandboxServer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Run a program (wine + Game.exe) in namespaces, cgroups and seccomp"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run PROGRAM ARGS... in a sandbox and exit with its exit code (128 + signal if killed).
    Run(Box<RunArgs>),
    /// Serve the sandbox tools (launch, status, stop, list) over MCP.
    Mcp {
        #[command(flatten)]
        common: CommonArgs,
        /// Offer launch and stop, the tools that start and kill processes (destructive, so
        /// off unless the operator enables them; status and list are always there).
        #[arg(long)]
        allow_launch: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// `wine`, `strict` or a path to a profile .toml.
    #[arg(long, default_value = "strict")]
    profile: String,
    /// Memory limit (e.g. 4G); default: the profile's.
    #[arg(long)]
    memory: Option<String>,
    /// Most tasks inside (the runner's init included); default: the profile's.
    #[arg(long)]
    pids: Option<u64>,
    /// CPU bandwidth in cores; default: the profile's.
    #[arg(long)]
    cpus: Option<f64>,
    /// none, isolated or host; default: the profile's.
    #[arg(long)]
    net: Option<String>,
    /// Wall-clock limit in seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// A directory writable inside at the same path (repeatable).
    #[arg(long)]
    rw: Vec<PathBuf>,
    /// A directory shown read-only at the same path, for those the view hides (/home, /tmp,
    /// ...; repeatable). The directories of the program and of absolute paths among its
    /// arguments are shown without asking.
    #[arg(long)]
    ro: Vec<PathBuf>,
    /// A persistent home directory (kept: reuse a WINEPREFIX).
    #[arg(long)]
    home: Option<PathBuf>,
    /// Set an environment variable inside (KEY=VALUE, repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// Record seccomp violations but let the calls run.
    #[arg(long)]
    seccomp_log: bool,
    /// Write the JSON report here when the sandbox ends.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    // The inside stages, before any parsing: they take their arguments as the stage
    // executable does.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(sandbox_runner::inside::STAGE_ARG))
    {
        sandbox_runner::inside::stage_main();
    }
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => {
            init_tracing();
            match run_cmd(*args) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("sandbox-runner: {e}");
                    ExitCode::from(125)
                }
            }
        }
        Cmd::Mcp {
            common,
            allow_launch,
        } => {
            init_tracing();
            serve(common, allow_launch)
        }
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and the threads it starts; children get a
/// clean mask from `Command`) and calls `on_signal` from a dedicated thread when one arrives,
/// so that an interrupted runner still stops its sandboxes and removes what it made.
fn on_termination(on_signal: impl FnOnce(i32) + Send + 'static) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if let Err(e) = set.thread_block() {
        eprintln!(
            "sandbox-runner: cannot block signals ({e}); an interrupt may leave a cgroup behind"
        );
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            on_signal(sig as i32);
        }
    });
}

fn runner() -> Result<Runner, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    Ok(Runner::new(exe))
}

fn run_cmd(a: RunArgs) -> Result<u8, String> {
    let profile = Profile::load(&a.profile)?;
    let memory = a
        .memory
        .as_deref()
        .map(sandbox_runner::limits::parse_size)
        .transpose()
        .map_err(|e| format!("--memory: {e}"))?;
    let network = a
        .net
        .as_deref()
        .map(str::parse::<NetMode>)
        .transpose()
        .map_err(|e| format!("--net: {e}"))?;
    let timeout = match a.timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            return Err(format!(
                "--timeout {t}: accepted: a positive number of seconds"
            ));
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let mut env = Vec::new();
    for kv in &a.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--env {kv:?}: accepted: KEY=VALUE"))?;
        env.push((k.to_string(), v.to_string()));
    }
    let (program, args) = a
        .command
        .split_first()
        .ok_or("no program given; accepted: -- PROGRAM ARGS...")?;
    let spec = Spec {
        profile,
        program: program.clone(),
        args: args.to_vec(),
        memory,
        pids: a.pids,
        cpus: a.cpus,
        network,
        timeout,
        rw: a.rw,
        ro: a.ro,
        show: sandbox_runner::sandbox::absolute_paths(args),
        home: a.home,
        env,
        seccomp_log: a.seccomp_log,
        output: Output::Inherit,
        report: a.report,
    };
    // An interrupt stops the sandbox (everything inside killed, cgroup and files removed)
    // before the runner exits with 128 + the signal.
    let interrupted = Arc::new(AtomicI32::new(0));
    let current: Arc<Mutex<Option<Sandbox>>> = Arc::default();
    let (flag, slot) = (interrupted.clone(), current.clone());
    on_termination(move |sig| {
        flag.store(sig, Ordering::SeqCst);
        // Still launching: the main thread stops it once it exists.
        if let Some(sandbox) = slot.lock().ok().and_then(|s| s.clone())
            && let Err(e) = sandbox.stop()
        {
            eprintln!("sandbox-runner: {e}");
        }
    });
    let runner = runner()?;
    // The directory only: one sandbox per run, whose start-up is benchmarked (see sweep).
    runner.sweep_dead(false);
    let sandbox = runner.launch(spec)?;
    if let Ok(mut s) = current.lock() {
        *s = Some(sandbox.clone());
    }
    if interrupted.load(Ordering::SeqCst) != 0 {
        sandbox.stop()?;
    }
    let report = sandbox
        .wait(None)
        .ok_or("the sandbox ended without a report")?;
    let sig = interrupted.load(Ordering::SeqCst);
    if sig != 0 {
        eprintln!("sandbox-runner: interrupted by signal {sig}; the sandbox was stopped");
        return Ok((128 + sig).clamp(0, 255) as u8);
    }
    for v in &report.seccomp_violations {
        eprintln!(
            "sandbox-runner: seccomp: {} by pid {} ({}, {})",
            v.syscall, v.pid, v.arch, v.action
        );
    }
    if report.timed_out {
        eprintln!("sandbox-runner: timed out after {} ms", report.duration_ms);
    }
    if report.oom_killed {
        eprintln!("sandbox-runner: OOM kill (memory limit)");
    }
    if report.pids_limit_hit {
        eprintln!("sandbox-runner: the pids limit was hit");
    }
    Ok(match (report.exit_code, report.signal) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (_, Some(s)) => (128 + s).clamp(0, 255) as u8,
        _ => 1,
    })
}

fn serve(common: CommonArgs, allow_launch: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandbox-runner: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (runner, roots) = match (runner(), common.roots()) {
        (Ok(r), Ok(roots)) => (r, roots),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("sandbox-runner: {e}");
            return ExitCode::from(2);
        }
    };
    // Before serving, so that no launch of ours is under way yet.
    runner.sweep_dead(true);
    let registry = Registry::default();
    let on_exit = registry.clone();
    on_termination(move |sig| {
        on_exit.stop_all();
        std::process::exit(128 + sig);
    });
    let reg = registry.clone();
    let result = rt.block_on(run(&common, move || {
        SandboxServer::new(runner.clone(), roots.clone(), reg.clone(), allow_launch)
    }));
    // The client is gone: nothing of ours stays running.
    registry.stop_all();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox-runner: {e}");
            ExitCode::FAILURE
        }
    }
}
