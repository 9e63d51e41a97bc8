//! `mcp-behavior`: what a running program does, as an MCP server (stdio by default).

use clap::Parser;
use mcp_behavior::tools::{BehaviorServer, Settings, Traces};
use mcp_common::serve::{CommonArgs, init_tracing, run};
use std::sync::Arc;

/// MCP server for behaviour: who writes an address (hardware watchpoints), event traces.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Let trace_start launch programs (`command`); without it only running processes are
    /// traced (`pid`).
    #[arg(long)]
    allow_launch: bool,
}

// One thread for the protocol: every tool's work runs on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    // Files (captures for detect) are read only under --root; without one, none.
    let roots = if cli.common.roots.is_empty() {
        None
    } else {
        match cli.common.roots() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!("{e}");
                return std::process::ExitCode::from(2);
            }
        }
    };
    let settings = Settings {
        allow_launch: cli.allow_launch,
        roots,
    };
    let traces = Arc::new(Traces::default());
    match run(&cli.common, move || {
        BehaviorServer::new(settings.clone(), traces.clone())
    })
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
