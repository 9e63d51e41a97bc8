//! `mcp-memory`: live process memory as an MCP server (stdio by default).

use clap::Parser;
use mcp_common::serve::{CommonArgs, init_tracing, run};
use mcp_memory::layout::Layouts;
use mcp_memory::store::Store;
use mcp_memory::tools::{MemoryServer, Settings};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// MCP server for live process memory: reads, scans, pointer chains, snapshots, structures.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Offer write_memory and undo_write (off by default).
    #[arg(long)]
    allow_write: bool,
    /// Memory for kept scan results and snapshots, in MiB; the oldest go first.
    #[arg(long, default_value_t = 2048)]
    memory_budget_mib: u64,
    /// Minutes a kept result may go unused before it expires.
    #[arg(long, default_value_t = 60)]
    idle_minutes: u64,
    /// A directory of extra layout files (`*.json`, the form of schemas/layouts/).
    #[arg(long, value_name = "DIR")]
    layouts: Option<PathBuf>,
}

// One thread for the protocol: every tool's work runs on the blocking pool, so the async side
// only reads, routes and writes messages, without a wake-up across threads per call.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let layouts = match Layouts::load(cli.layouts.as_deref()) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let settings = Settings {
        allow_write: cli.allow_write,
        memory_budget: cli.memory_budget_mib << 20,
        idle: Duration::from_secs(cli.idle_minutes * 60),
    };
    let store = Arc::new(Store::new(settings.memory_budget, settings.idle));
    match run(&cli.common, move || {
        MemoryServer::new(&settings, layouts.clone(), store.clone())
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
