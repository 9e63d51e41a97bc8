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

/// An nginx reverse proxy (keep-alive to the upstream, no buffering, as one fronts a
/// streamable-HTTP server) from a free port to each of `upstreams`; None without nginx.
/// Returns the process and the front port of each upstream, in order.
fn nginx_front(
    dir: &std::path::Path,
    upstreams: &[u16],
) -> Result<Option<(KillOnDrop, Vec<u16>)>, Error> {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        return Ok(None);
    };
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let mut servers = String::new();
    let mut fronts = Vec::new();
    for (i, up) in upstreams.iter().enumerate() {
        let front = free_port()?;
        fronts.push(front);
        servers.push_str(&format!(
            "upstream u{i} {{ server 127.0.0.1:{up}; keepalive 16; }}\n\
             server {{ listen 127.0.0.1:{front}; location / {{ proxy_pass http://u{i}; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; \
             proxy_set_header Host $host; proxy_buffering off; proxy_cache off; \
             proxy_read_timeout 300s; }} }}\n"
        ));
    }
    let p = prefix.display();
    let conf = format!(
        "worker_processes 1; daemon off; pid {p}/nginx.pid; error_log {p}/logs/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; \
         fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
         {servers}}}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = std::process::Command::new(nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(prefix.join("logs/error.log"))
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let guard = KillOnDrop(child);
    for front in &fronts {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", *front)).is_err() {
            if Instant::now() > deadline {
                return Err(
                    format!("nginx did not listen on {front}; see {p}/logs/error.log").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(Some((guard, fronts)))
}

/// A process killed when the bench ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

    let mut proxy_figures = None;
    let mut _proxy_server = None;
    let mut p_proxy = 0;
    match std::env::var("MCP_PROXY") {
        Err(_) => println!(
            "mcp-proxy: not measured (set MCP_PROXY to its executable; scripts/bench-proxy.sh does)"
        ),
        Ok(proxy) => {
            p_proxy = free_port()?;
            _proxy_server = Some(
                start(
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
                .await?,
            );
            let py = connect(format!("http://127.0.0.1:{p_proxy}/mcp"), None).await?;
            let p = measure(&py, "echo").await?;
            line("python mcp-proxy (HTTP -> stdio)", &p, &d);
            let added_c = (c.p50_ms - d.p50_ms).max(1e-3);
            let added_p = p.p50_ms - d.p50_ms;
            println!(
                "ratios: keep-alive p50 {:.3} ms (coordinator) against {:.3} ms (mcp-proxy): {:.2}x; \
                 mcp-proxy adds {:.1}x the p50 latency the coordinator adds; the coordinator \
                 serves {:.1}x the calls/s of mcp-proxy",
                c.p50_ms,
                p.p50_ms,
                c.p50_ms / p.p50_ms,
                added_p / added_c,
                c.calls_per_s / p.calls_per_s
            );
            py.cancel().await?;
            proxy_figures = Some(p);
        }
    }

    // The same calls through nginx in front (keep-alive on both hops).
    let mut upstreams = vec![p_coord];
    if proxy_figures.is_some() {
        upstreams.push(p_proxy);
    }
    match nginx_front(&dir, &upstreams)? {
        None => println!("through nginx: not measured (nginx is not installed)"),
        Some((_nginx, fronts)) => {
            let via = connect(format!("http://127.0.0.1:{}/", fronts[0]), None).await?;
            let cn = measure(&via, "child__echo").await?;
            line("nginx -> mcp-coordinator", &cn, &d);
            via.cancel().await?;
            if let Some(&front) = fronts.get(1) {
                let via = connect(format!("http://127.0.0.1:{front}/mcp"), None).await?;
                let pn = measure(&via, "echo").await?;
                line("nginx -> python mcp-proxy", &pn, &d);
                println!(
                    "ratios through nginx: keep-alive p50 {:.3} ms (coordinator) against {:.3} ms (mcp-proxy): {:.2}x",
                    cn.p50_ms,
                    pn.p50_ms,
                    cn.p50_ms / pn.p50_ms
                );
                via.cancel().await?;
            }
        }
    }
    direct.cancel().await?;
    coord.cancel().await?;
    Ok(())
}
