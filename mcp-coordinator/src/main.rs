//! `mcp-coordinator --config PATH`: the suite behind one MCP endpoint (stdio by default).

use clap::Parser;
use mcp_common::serve::{CommonArgs, init_tracing, run};
use mcp_coordinator::child::Child;
use mcp_coordinator::config::Config;
use mcp_coordinator::findings::Store;
use mcp_coordinator::hosts::Hosts;
use mcp_coordinator::tools::Coordinator;
use std::path::PathBuf;
use std::sync::Arc;

/// MCP proxy for the analysis servers: namespaced tools, timeouts, supervision, fan-out.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The configuration: a .toml file (examples/coordinator.toml) or Claude Desktop's
    /// mcpServers .json.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Where the findings store lives (default: $XDG_DATA_HOME/mcp-suite, or
    /// ~/.local/share/mcp-suite).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("mcp-suite")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let store = match Store::open(&cli.data_dir.clone().unwrap_or_else(default_data_dir)) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let hosts = Arc::new(Hosts::default());
    let children: Vec<Arc<Child>> = config
        .children
        .into_iter()
        .map(|spec| Child::new(spec, hosts.clone()))
        .collect();
    // Every child is started (or has failed) before the first tools/list is answered.
    let starts: Vec<_> = children
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.start().await })
        })
        .collect();
    for s in starts {
        let _ = s.await;
    }
    let children = Arc::new(children);
    match run(&cli.common, move || {
        Coordinator::new(children.clone(), store.clone(), hosts.clone())
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
