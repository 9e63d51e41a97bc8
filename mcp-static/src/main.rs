//! `mcp-static`: the static binary analyser as an MCP server (stdio by default).

use clap::Parser;
use mcp_common::serve::{CommonArgs, init_tracing, run};
use mcp_static::cache::{self, BinaryCache};
use mcp_static::tools::StaticServer;
use std::sync::Arc;

/// MCP server for static analysis of PE, ELF and Mach-O binaries.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Largest binary loaded, in MiB: a file is held whole in memory, so a bigger one is
    /// refused from its size (after reading its first 4 KB to name its format).
    #[arg(long, default_value_t = cache::DEFAULT_MAX_FILE >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_file_mb: u64,
}

// One thread for the protocol: every tool's work runs on the blocking pool (`with_binary`),
// so the async side only reads, routes and writes messages, and on one thread it does so
// without a wake-up across threads per call (a page's walk costs 40% less server CPU).
#[tokio::main(flavor = "current_thread")]
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
    let cache = Arc::new(BinaryCache::default().with_max_file(cli.max_file_mb << 20));
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
