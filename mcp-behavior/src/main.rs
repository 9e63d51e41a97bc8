//! `mcp-behavior`: what a running program does, as an MCP server (stdio by default).

use clap::Parser;
use mcp_behavior::tools::BehaviorServer;
use mcp_common::serve::{CommonArgs, init_tracing, run};

/// MCP server for behaviour: who writes an address (hardware watchpoints).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

// One thread for the protocol: every tool's work runs on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match run(&cli.common, BehaviorServer::new).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
