//! `mcp-network`: captures, packet files and the Diablo II protocols as an MCP server.

use clap::Parser;
use mcp_common::serve::{CommonArgs, init_tracing, run};
use mcp_network::tools::{NetworkServer, State};
use std::path::PathBuf;
use std::sync::Arc;

/// MCP server for network traffic: live captures, pcap files, flows, Diablo II protocols.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Where captures and exports are written (an existing directory; default:
    /// $TMPDIR/mcp-network, created); readable as a source too.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

// One thread for the protocol: every tool's work runs on the blocking pool, so the async side
// only reads, routes and writes messages, without a wake-up across threads per call.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let roots = if cli.common.roots.is_empty() {
        match std::env::current_dir() {
            Ok(d) => vec![d],
            Err(e) => {
                tracing::error!("working directory: {e}");
                return std::process::ExitCode::from(2);
            }
        }
    } else {
        cli.common.roots.clone()
    };
    let state = match State::new(&roots, cli.output_dir.clone()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&cli.common, move || NetworkServer::new(state.clone())).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
