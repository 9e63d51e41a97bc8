//! Command line, logging and transports shared by every server binary.
//!
//! Every server runs over stdio by default (what MCP hosts launch) or over streamable HTTP
//! with `--http ADDR`. Logs go to stderr only: on stdio, stdout is the protocol channel.

use crate::Roots;
use clap::Args;
use rmcp::{ServerHandler, ServiceExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags every server accepts.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Serve MCP over streamable HTTP on this address (e.g. 127.0.0.1:8931) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A directory whose files the tools may read (repeatable; default: the working directory).
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
}

impl CommonArgs {
    pub fn roots(&self) -> Result<Roots, String> {
        Roots::new(&self.roots)
    }
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs a server until its client goes away (stdio) or forever (HTTP).
pub async fn run<S, F>(args: &CommonArgs, factory: F) -> Result<(), String>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    match args.http {
        None => {
            let service = factory()
                .serve(rmcp::transport::io::stdio_pipes())
                .await
                .map_err(|e| format!("MCP initialisation over stdio failed: {e}"))?;
            service
                .waiting()
                .await
                .map_err(|e| format!("server task failed: {e}"))?;
            Ok(())
        }
        Some(addr) => serve_http(addr, factory).await,
    }
}

async fn serve_http<S, F>(addr: SocketAddr, factory: F) -> Result<(), String>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let mut config = StreamableHttpServerConfig::default();
    let host = addr.ip().to_string();
    if !config.allowed_hosts.contains(&host) {
        config.allowed_hosts.push(host);
    }
    let service = StreamableHttpService::new(
        move || Ok(factory()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "serving MCP over streamable HTTP at /");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let svc = hyper_util::service::TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}
