//! `sandbox-runner`: `run` a program in a sandbox from the command line, or serve the sandbox
//! tools over MCP (`mcp`). `__stage1` is the runner re-executing itself inside (not for users).

use clap::{Parser, Subcommand};
use mcp_common::serve::{CommonArgs, init_tracing, run};
use sandbox_runner::profile::{NetMode, Profile};
use sandbox_runner::sandbox::{Output, Runner, Spec};
use sandbox_runner::tools::{Registry, SandboxServer};
use std::path::PathBuf;
use std::process::ExitCode;
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
    Run(RunArgs),
    /// Serve the sandbox tools (launch, status, stop, list) over MCP.
    Mcp {
        #[command(flatten)]
        common: CommonArgs,
        /// Leave out launch and stop (the destructive tools).
        #[arg(long)]
        read_only: bool,
    },
    #[command(name = "__stage1", hide = true)]
    Stage1 { config: String },
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
    let cli = Cli::parse();
    match cli.command {
        Cmd::Stage1 { config } => sandbox_runner::inside::stage1(&config),
        Cmd::Run(args) => {
            init_tracing();
            match run_cmd(args) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("sandbox-runner: {e}");
                    ExitCode::from(125)
                }
            }
        }
        Cmd::Mcp { common, read_only } => {
            init_tracing();
            serve(common, read_only)
        }
    }
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
        home: a.home,
        env,
        seccomp_log: a.seccomp_log,
        output: Output::Inherit,
        report: a.report,
    };
    let sandbox = runner()?.launch(spec)?;
    let report = sandbox
        .wait(None)
        .ok_or("the sandbox ended without a report")?;
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

fn serve(common: CommonArgs, read_only: bool) -> ExitCode {
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
    let registry = Registry::default();
    let reg = registry.clone();
    let result = rt.block_on(run(&common, move || {
        SandboxServer::new(runner.clone(), roots.clone(), reg.clone(), read_only)
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
