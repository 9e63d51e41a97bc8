//! Added latency and throughput of two proxies in one run, over the same transports: a client
//! speaking streamable HTTP to (1) the test child itself (`--http`), (2) this coordinator
//! (`--http`) in front of the child over stdio, and (3) the Python `mcp-proxy` package (PyPI)
//! in front of the same child over stdio. Both proxies thus take HTTP in and speak stdio out;
//! the added latency of each is its p50 minus the direct p50.
//!
//! Run: `scripts/bench-proxy.sh` (installs mcp-proxy into .venv-bench and sets MCP_PROXY), or
//! `MCP_PROXY=/path/to/mcp-proxy cargo bench -p mcp-coordinator --bench http_bench`. Without
//! MCP_PROXY only (1) and (2) are measured.
//!
//! Also measured: the coordinator with its gateway on (a bearer token, a rate limit that
//! never refuses, an audit log), its buckets in process, and with REDIS_URL set its buckets
//! and sessions in that Redis: what each gateway check costs per call.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{child_config, free_port, spawn_listening};
use mcp_testkit::{Client, Error, TestDir};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::time::{Duration, Instant};

const SEQUENTIAL: usize = 2000;
const CONCURRENT: usize = 4000;
const CALLERS: usize = 8;

fn args() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("text".into(), "x".into());
    m
}

/// Starts a server process and waits until its port accepts connections.
async fn start(program: &str, args: &[String], port: u16) -> Result<tokio::process::Child, Error> {
    spawn_listening(
        tokio::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null()),
        port,
        Duration::from_secs(30),
        Duration::from_millis(50),
        program,
    )
    .await
}

/// An MCP client over streamable HTTP, with a bearer token if given.
async fn connect(url: String, token: Option<&str>) -> Result<Client, Error> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

/// The coordinator behind its gateway (token, never-refusing rate limit, audit log), with
/// `extra` flags; its figures for `child__echo`.
async fn behind_gateway(
    cfg: &std::path::Path,
    dir: &std::path::Path,
    extra: &[String],
) -> Result<Figures, Error> {
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[clients]]\nname = \"bench\"\ntoken = \"bench-token\"\n",
    )?;
    let port = free_port()?;
    let data = dir.join(format!("data-{port}"));
    let mut args = vec![
        "--http".into(),
        format!("127.0.0.1:{port}"),
        "--config".into(),
        cfg.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--auth-tokens".into(),
        tokens.display().to_string(),
        "--rate-limit".into(),
        "1000000".into(),
        "--audit-log".into(),
        dir.join(format!("audit-{port}.jsonl"))
            .display()
            .to_string(),
    ];
    args.extend_from_slice(extra);
    let _server = start(env!("CARGO_BIN_EXE_mcp-coordinator"), &args, port).await?;
    let client = connect(format!("http://127.0.0.1:{port}/"), Some("bench-token")).await?;
    let f = measure(&client, "child__echo").await?;
    client.cancel().await?;
    Ok(f)
}

async fn latencies(client: &Client, tool: &str, n: usize) -> Result<Vec<Duration>, Error> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args()))
            .await?;
        if r.is_error == Some(true) {
            return Err(format!("{tool} answered an error: {:?}", r.content).into());
        }
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

async fn throughput(client: &Client, tool: &'static str) -> Result<f64, Error> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let peer = client.peer().clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..CONCURRENT / CALLERS {
                let _ = peer
                    .call_tool(CallToolRequestParams::new(tool).with_arguments(args()))
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(CONCURRENT as f64 / t.elapsed().as_secs_f64())
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    calls_per_s: f64,
}

async fn measure(client: &Client, tool: &'static str) -> Result<Figures, Error> {
    latencies(client, tool, 200).await?;
    let l = latencies(client, tool, SEQUENTIAL).await?;
    let calls_per_s = throughput(client, tool).await?;
    Ok(Figures {
        p50_ms: l[l.len() / 2].as_secs_f64() * 1e3,
        p99_ms: l[l.len() * 99 / 100].as_secs_f64() * 1e3,
        calls_per_s,
    })
}

fn line(name: &str, f: &Figures, direct: &Figures) {
    println!(
        "{name:<40} p50 {:>7.3} ms  p99 {:>7.3} ms  added p50 {:>7.3} ms  {:>7.0} calls/s ({CALLERS} callers)",
        f.p50_ms,
        f.p99_ms,
        f.p50_ms - direct.p50_ms,
        f.calls_per_s
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let child = env!("CARGO_BIN_EXE_mcp-test-child");
    let dir = TestDir::new(&std::env::temp_dir(), "http-bench")?;
    let cfg = child_config(&dir)?;

    let p_direct = free_port()?;
    let _direct_server = start(
        child,
        &["--http".into(), format!("127.0.0.1:{p_direct}")],
        p_direct,
    )
    .await?;
    let p_coord = free_port()?;
    let _coord_server = start(
        env!("CARGO_BIN_EXE_mcp-coordinator"),
        &[
            "--http".into(),
            format!("127.0.0.1:{p_coord}"),
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
        ],
        p_coord,
    )
    .await?;

    let direct = connect(format!("http://127.0.0.1:{p_direct}/"), None).await?;
    let coord = connect(format!("http://127.0.0.1:{p_coord}/"), None).await?;
    let d = measure(&direct, "echo").await?;
    let c = measure(&coord, "child__echo").await?;
    println!(
        "streamable HTTP, echo of a 1-character text, {SEQUENTIAL} sequential calls, {CONCURRENT} with {CALLERS} callers:"
    );
    line("direct (test child --http)", &d, &d);
    line("mcp-coordinator (HTTP -> stdio)", &c, &d);
    let g = behind_gateway(&cfg, &dir, &[]).await?;
    line("  + gateway, buckets in process", &g, &d);
    match std::env::var("REDIS_URL") {
        Ok(redis) => {
            let r = behind_gateway(&cfg, &dir, &["--redis-url".into(), redis]).await?;
            line("  + gateway, buckets, sessions in Redis", &r, &d);
            println!(
                "ratios: the gateway in process adds {:.2} ms p50, with Redis {:.2} ms; calls/s {:.2}x and {:.2}x of the bare coordinator",
                g.p50_ms - c.p50_ms,
                r.p50_ms - c.p50_ms,
                g.calls_per_s / c.calls_per_s,
                r.calls_per_s / c.calls_per_s
            );
        }
        Err(_) => println!("gateway with Redis: not measured (set REDIS_URL)"),
    }

    match std::env::var("MCP_PROXY") {
        Err(_) => println!(
            "mcp-proxy: not measured (set MCP_PROXY to its executable; scripts/bench-proxy.sh does)"
        ),
        Ok(proxy) => {
            let p_proxy = free_port()?;
            let _proxy_server = start(
                &proxy,
                &[
                    "--port".into(),
                    p_proxy.to_string(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--log-level".into(),
                    "WARNING".into(),
                    "--".into(),
                    child.into(),
                ],
                p_proxy,
            )
            .await?;
            let py = connect(format!("http://127.0.0.1:{p_proxy}/mcp"), None).await?;
            let p = measure(&py, "echo").await?;
            line("python mcp-proxy (HTTP -> stdio)", &p, &d);
            let added_c = (c.p50_ms - d.p50_ms).max(1e-3);
            let added_p = p.p50_ms - d.p50_ms;
            println!(
                "ratios: mcp-proxy adds {:.1}x the p50 latency the coordinator adds; the coordinator serves {:.1}x the calls/s of mcp-proxy",
                added_p / added_c,
                c.calls_per_s / p.calls_per_s
            );
            py.cancel().await?;
        }
    }
    direct.cancel().await?;
    coord.cancel().await?;
    Ok(())
}
