//! `mcp-static`: the static binary analyser as an MCP server (stdio by default).

use clap::Parser;
use mcp_common::serve::{CommonArgs, init_tracing, run};
use mcp_static::cache::BinaryCache;
use mcp_static::tools::StaticServer;
use std::sync::Arc;

/// MCP server for static analysis of PE, ELF and Mach-O binaries.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let roots = match cli.common.roots() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cache = Arc::new(BinaryCache::default());
    match run(&cli.common, move || {
        StaticServer::new(roots.clone(), cache.clone())
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
