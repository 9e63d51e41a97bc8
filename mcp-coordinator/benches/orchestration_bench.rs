//! The coordinator's orchestration figures (issue 18), through MCP as a host meets them:
//!
//! - the wait of a high-priority call while slow low-priority calls fill the coordinator,
//!   side by side in one run: the test child's `echo` behind four `sleep {ms: 500}` calls,
//!   first with every call in one lane of 2 places (a single queue, as before the lanes),
//!   then with `echo` in the high lane; medians of 5;
//! - a report's size and time: `report_generate` over 200 recorded calls linked to one
//!   finding (the shape of an analysis), as HTML and Markdown; medians of 5.
//!
//! Run: `cargo bench -p mcp-coordinator --bench orchestration_bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{TEST_CHILD, coordinator, tmp, write_config};
use mcp_testkit::{Client, Error, call};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const SLOW_CALLS: usize = 4;

/// How long `echo` takes to answer with the low lane full: median of `RUNS`.
async fn wait_of_echo(client: Arc<Client>) -> Result<Duration, Error> {
    let mut waits = Vec::new();
    for _ in 0..RUNS {
        let slow: Vec<_> = (0..SLOW_CALLS)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { call(&c, "child__sleep", json!({"ms": 500})).await })
            })
            .collect();
        // Until all four are in (two run, two wait).
        loop {
            let s = call(&client, "servers_status", json!({})).await;
            let low = s.data["lanes"]
                .as_array()
                .and_then(|l| {
                    l.iter()
                        .find(|l| l["lane"] == "low" && l["server"] == "child")
                        .cloned()
                })
                .unwrap_or_default();
            if low["queued"].as_u64() == Some(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        let a = call(&client, "child__echo", json!({"text": "now"})).await;
        waits.push(t.elapsed());
        assert!(!a.is_error, "{}", a.text);
        for s in slow {
            s.await?;
        }
    }
    waits.sort();
    Ok(waits[RUNS / 2])
}

fn main() -> Result<(), Error> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tmp("orchestration-bench")?;
        let mut medians = Vec::new();
        for (name, echo_lane) in [("one queue", "low"), ("lanes", "high")] {
            let sub = dir.path().join(name.replace(' ', "-"));
            std::fs::create_dir_all(&sub)?;
            let text = format!(
                "[coordinator.lanes]\nlow = 2\n\n[[servers]]\nname = \"child\"\n\
                 command = \"{TEST_CHILD}\"\nlane = \"low\"\n\
                 [servers.tool_lanes]\necho = \"{echo_lane}\"\n"
            );
            let cfg = write_config(&sub, "c.toml", &text)?;
            let client = Arc::new(coordinator(&cfg, &[]).await?);
            let wait = wait_of_echo(client).await?;
            println!(
                "high-priority call behind {SLOW_CALLS} slow calls ({name}): {:.2} ms",
                wait.as_secs_f64() * 1e3
            );
            medians.push(wait);
        }
        println!(
            "lanes: the high call's wait is {:.4}x its wait in one queue",
            medians[1].as_secs_f64() / medians[0].as_secs_f64()
        );
        report_figures(&dir).await
    })
}

/// Records 200 calls linked to one finding, then times its reports.
async fn report_figures(dir: &std::path::Path) -> Result<(), Error> {
    let sub = dir.join("report");
    std::fs::create_dir_all(&sub)?;
    let cfg = write_config(&sub, "c.toml", &common::server("child", TEST_CHILD))?;
    let client = coordinator(&cfg, &[]).await?;
    let root = call(
        &client,
        "findings_record",
        json!({"kind": "analysis", "title": "bench"}),
    )
    .await;
    let root = root.data["finding"]["id"].clone();
    for i in 0..200 {
        call(&client, "child__echo", json!({"text": format!("call {i}")})).await;
    }
    let calls = call(
        &client,
        "findings_query",
        json!({"kind": "tool_call", "limit": 200}),
    )
    .await;
    for f in calls.data["items"].as_array().into_iter().flatten() {
        call(
            &client,
            "findings_link",
            json!({"from": root, "to": f["id"], "relation": "includes"}),
        )
        .await;
    }
    for format in ["html", "markdown"] {
        let mut times = Vec::new();
        let mut last = serde_json::Value::Null;
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = call(
                &client,
                "report_generate",
                json!({"analysis_id": root, "format": format}),
            )
            .await;
            times.push(t.elapsed());
            assert!(!r.is_error, "{}", r.text);
            last = r.data;
        }
        times.sort();
        println!(
            "report ({format}) of {} findings and {} links: {} KB in {:.1} ms",
            last["findings"],
            last["links"],
            last["bytes"].as_u64().unwrap_or(0) / 1000,
            times[RUNS / 2].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
