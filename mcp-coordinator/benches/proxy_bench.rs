//! Added latency and throughput of the coordinator, side by side in one run: the test child's
//! `echo` called directly and through the coordinator (stdio both ways, release build).
//! Targets: p50 added latency at most 0.5 ms; at least 2,000 calls/s through the coordinator.
//!
//! Run: `cargo bench -p mcp-coordinator --bench proxy_bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{TEST_CHILD, child_config, coordinator};
use mcp_testkit::{Client, Error, TestDir, start_bin};
use rmcp::model::CallToolRequestParams;
use std::time::{Duration, Instant};

fn args(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("text".into(), text.into());
    m
}

async fn latencies(client: &Client, tool: &str, n: usize) -> Result<Vec<Duration>, Error> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args("x")))
            .await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

async fn throughput(
    client: &Client,
    tool: &'static str,
    n: usize,
    parallel: usize,
) -> Result<f64, Error> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let peer = client.peer().clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / parallel {
                let _ = peer
                    .call_tool(CallToolRequestParams::new(tool).with_arguments(args("x")))
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = TestDir::new(&std::env::temp_dir(), "proxy-bench")?;
    let direct = start_bin(TEST_CHILD, &[]).await?;
    let proxied = coordinator(&child_config(&dir)?, &[]).await?;
    // Warm up both.
    latencies(&direct, "echo", 200).await?;
    latencies(&proxied, "child__echo", 200).await?;
    let d = latencies(&direct, "echo", 2000).await?;
    let p = latencies(&proxied, "child__echo", 2000).await?;
    let p50 = |v: &Vec<Duration>| v[v.len() / 2].as_secs_f64() * 1e3;
    let p99 = |v: &Vec<Duration>| v[v.len() * 99 / 100].as_secs_f64() * 1e3;
    println!(
        "sequential echo: direct p50 {:.3} ms p99 {:.3} ms; through the coordinator p50 {:.3} ms p99 {:.3} ms; added p50 {:.3} ms (target <= 0.5 ms)",
        p50(&d),
        p99(&d),
        p50(&p),
        p99(&p),
        p50(&p) - p50(&d)
    );
    let td = throughput(&direct, "echo", 8000, 8).await?;
    let tp = throughput(&proxied, "child__echo", 8000, 8).await?;
    println!(
        "8 concurrent callers: direct {td:.0} calls/s, through the coordinator {tp:.0} calls/s (target >= 2000)"
    );
    direct.cancel().await?;
    proxied.cancel().await?;
    Ok(())
}
