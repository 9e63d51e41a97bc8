//! `mcp-d2`: the Diablo II layer as an MCP server (stdio by default).

use clap::Parser;
use mcp_common::serve::{CommonArgs, init_tracing, run};
use mcp_d2::tables::Tables;
use mcp_d2::tools::D2Server;
use std::sync::Arc;

/// MCP server for Diablo II: running games, characters, inventories, units, saves, stashes.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

// One thread for the protocol: every tool's work runs on the blocking pool, so the async side
// only reads, routes and writes messages, without a wake-up across threads per call.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let (roots, tables) = match (cli.common.roots(), Tables::load()) {
        (Ok(r), Ok(t)) => (r, Arc::new(t)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&cli.common, move || {
        D2Server::new(tables.clone(), roots.clone())
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
