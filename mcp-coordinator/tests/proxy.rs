//! The coordinator with real children: mcp-static (built by the workspace build that
//! scripts/test.sh runs first) and mcp-test-child (echo, sleep, progress, crash on command).

mod common;

use common::{coordinator, server_entry, sibling, tmp, unnamed, write_config};
use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(dir: &Path) -> Result<PathBuf, Error> {
    let fixtures = dir.join("files");
    std::fs::create_dir_all(&fixtures)?;
    std::fs::copy(sibling("mcp-test-child")?, fixtures.join("some-binary"))?;
    let text = format!(
        r#"
[coordinator]
call_timeout_s = 20

[[servers]]
name = "static"
command = "{static_bin}"
args = ["--root", "{root}"]
deny = ["diff_*"]
[servers.cache]
tools = ["binary_info"]
ttl_s = 3600

[[servers]]
name = "child"
command = "{child}"
[servers.tool_timeouts]
sleep = 1
"#,
        static_bin = sibling("mcp-static")?.display(),
        root = fixtures.display(),
        child = env!("CARGO_BIN_EXE_mcp-test-child"),
    );
    write_config(dir, "coordinator.toml", &text)
}

fn child_pid(status: &Value, name: &str) -> Option<u64> {
    server_entry(status, name)["pid"].as_u64()
}

#[tokio::test]
async fn namespaced_tools_are_forwarded_untouched() -> TestResult {
    let dir = tmp("coord-ns")?;
    let cfg = config(&dir)?;
    let client = coordinator(&cfg, &[]).await?;
    let tools = client.list_all_tools().await?;
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for n in [
        "servers_status",
        "servers_restart",
        "fan_out",
        "static__binary_info",
        "child__echo",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "static__diff_binaries"),
        "deny glob ignored"
    );
    let re_ok = names.iter().all(|n| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    assert!(re_ok);

    // Definitions and results equal those of the child called directly.
    let direct = start_bin(
        sibling("mcp-static")?.to_str().unwrap_or_default(),
        &["--root".into(), dir.join("files").display().to_string()],
    )
    .await?;
    let direct_tools = direct.list_all_tools().await?;
    let d = direct_tools
        .iter()
        .find(|t| t.name == "binary_info")
        .ok_or("no binary_info")?;
    let p = tools
        .iter()
        .find(|t| t.name == "static__binary_info")
        .ok_or("no proxied binary_info")?;
    assert_eq!(unnamed(d)?, unnamed(p)?);
    let path = dir.join("files/some-binary").display().to_string();
    let a = ok(&direct, "binary_info", json!({"path": path})).await;
    let b = ok(&client, "static__binary_info", json!({"path": path})).await;
    assert_eq!(a, b);
    // binary_info is cached (configured): the same call again does not reach the child, a
    // changed file does.
    let calls = |st: &Value| {
        st["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == "static"))
            .and_then(|x| x["calls"].as_u64())
            .unwrap_or(0)
    };
    let before = calls(&ok(&client, "servers_status", json!({})).await);
    let again = ok(&client, "static__binary_info", json!({"path": path})).await;
    assert_eq!(again, b);
    assert_eq!(
        calls(&ok(&client, "servers_status", json!({})).await),
        before
    );
    let mut bytes = std::fs::read(dir.join("files/some-binary"))?;
    bytes.push(0);
    std::fs::write(dir.join("files/some-binary"), &bytes)?;
    let changed = ok(&client, "static__binary_info", json!({"path": path})).await;
    assert_ne!(changed["sha256"], b["sha256"]);
    assert_eq!(
        calls(&ok(&client, "servers_status", json!({})).await),
        before + 1
    );
    let e1 = call(&direct, "binary_info", json!({"path": "/etc/passwd"})).await;
    let e2 = call(
        &client,
        "static__binary_info",
        json!({"path": "/etc/passwd"}),
    )
    .await;
    assert!(e1.is_error && e2.is_error);
    assert_eq!(e1.text, e2.text);
    direct.cancel().await?;

    let f = ok(
        &client,
        "fan_out",
        json!({"calls": [
            {"tool": "child__echo", "arguments": {"text": "one"}},
            {"tool": "static__binary_info", "arguments": {"path": path}},
            {"tool": "child__echo", "arguments": {}},
            {"tool": "nobody__nothing"}
        ]}),
    )
    .await;
    let r = f["results"].as_array().cloned().unwrap_or_default();
    // A child that announces new tools is listed again.
    assert!(!names.iter().any(|n| n == "child__extra"));
    ok(&client, "child__add_tool", json!({})).await;
    let mut relisted = false;
    for _ in 0..200 {
        let now = client.list_all_tools().await?;
        if now.iter().any(|t| t.name == "child__extra") {
            relisted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        relisted,
        "child__extra never appeared after tools/list_changed"
    );
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["structured_content"]["text"], "one");
    assert_eq!(r[1]["structured_content"], changed);
    assert_eq!(r[2]["is_error"], true);
    assert_eq!(r[3]["is_error"], true);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn kill_timeout_and_crash_loop_are_survived() -> TestResult {
    let dir = tmp("coord-sup")?;
    let cfg = config(&dir)?;
    let client = coordinator(&cfg, &[]).await?;
    let st = ok(&client, "servers_status", json!({})).await;
    let pid = child_pid(&st, "child").ok_or("no child pid")?;

    // kill -9 during a call: an error within a second, then a restart, then success.
    let marker = dir.join("never");
    let pending = tokio::spawn({
        let peer = client.peer().clone();
        async move {
            let args = json!({"ms": 500_000, "cancelled_marker": marker.display().to_string()});
            let Value::Object(map) = args else {
                return None;
            };
            let t = Instant::now();
            let r = peer
                .call_tool(
                    rmcp::model::CallToolRequestParams::new("child__sleep").with_arguments(map),
                )
                .await
                .ok()?;
            Some((r, t.elapsed()))
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed_at = Instant::now();
    std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()?;
    let (r, _) = pending.await?.ok_or("the call got no answer")?;
    assert!(
        killed_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        killed_at.elapsed()
    );
    assert_eq!(r.is_error, Some(true));
    let mut new_pid = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = ok(&client, "servers_status", json!({})).await;
        if let Some(p) = child_pid(&st, "child").filter(|p| *p != pid) {
            new_pid = Some(p);
            break;
        }
    }
    assert!(new_pid.is_some(), "the child was not restarted");
    let e = ok(&client, "child__echo", json!({"text": "back"})).await;
    assert_eq!(e["text"], "back");

    // A hang: the per-tool timeout (1 s) answers isError and the child sees the cancellation.
    let marker = dir.join("cancelled");
    let _ = std::fs::remove_file(&marker);
    let a = call(
        &client,
        "child__sleep",
        json!({"ms": 30_000, "cancelled_marker": marker.display().to_string()}),
    )
    .await;
    assert!(a.is_error && a.text.contains("timed out"), "{}", a.text);
    let mut seen = false;
    for _ in 0..30 {
        if marker.exists() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the child never saw the cancellation");

    // A crash loop opens the breaker; servers_restart closes it.
    let state_of = |st: &Value| {
        st["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == "child"))
            .map(|x| x["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = ok(&client, "servers_status", json!({})).await;
        match state_of(&st).as_str() {
            "failed" => break,
            "running" => {
                let _ = call(&client, "child__crash", json!({})).await;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "the breaker never opened: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = err(&client, "child__echo", json!({"text": "x"})).await;
    assert!(e.contains("failed") && e.contains("servers_restart"), "{e}");
    ok(&client, "servers_restart", json!({"name": "child"})).await;
    let e = ok(&client, "child__echo", json!({"text": "again"})).await;
    assert_eq!(e["text"], "again");
    // servers_restart of a running child replaces its process: the old one ends.
    let before = child_pid(&ok(&client, "servers_status", json!({})).await, "child")
        .ok_or("no child pid")?;
    ok(&client, "servers_restart", json!({"name": "child"})).await;
    let after = child_pid(&ok(&client, "servers_status", json!({})).await, "child")
        .ok_or("no child pid after the restart")?;
    assert_ne!(before, after);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(before) {
        assert!(
            Instant::now() < deadline,
            "the replaced child {before} still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = ok(&client, "child__echo", json!({"text": "replaced"})).await;
    assert_eq!(e["text"], "replaced");
    // The static child was never disturbed.
    let st = ok(&client, "servers_status", json!({})).await;
    let s = st["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == "static"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(s["state"], "running");
    assert_eq!(s["restarts"], 0);
    let e = err(&client, "servers_restart", json!({"name": "nobody"})).await;
    assert!(e.contains("`name`") && e.contains("static"), "{e}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_child_that_cannot_start_is_reported_not_fatal() -> TestResult {
    let dir = tmp("coord-bad")?;
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        json!({"mcpServers": {
            "child": {"command": env!("CARGO_BIN_EXE_mcp-test-child")},
            "ghost": {"command": "/nonexistent/mcp-server"}
        }})
        .to_string(),
    )?;
    let client = coordinator(&cfg, &[]).await?;
    let st = ok(&client, "servers_status", json!({})).await;
    let ghost = st["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == "ghost"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ghost["state"], "failed");
    assert!(
        ghost["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("nonexistent")),
        "{ghost}"
    );
    let e = ok(&client, "child__echo", json!({"text": "fine"})).await;
    assert_eq!(e["text"], "fine");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn findings_are_recorded_linked_queried_and_kept_across_restarts() -> TestResult {
    let dir = tmp("coord-findings")?;
    let cfg = config(&dir)?;
    let path = dir.join("files/some-binary").display().to_string();
    let (call_id, note_id) = {
        let client = coordinator(&cfg, &[]).await?;
        ok(&client, "static__binary_info", json!({"path": path})).await;
        let _ = call(
            &client,
            "static__binary_info",
            json!({"path": "/etc/passwd"}),
        )
        .await;
        let q = ok(
            &client,
            "findings_query",
            json!({"tool": "static__binary_info"}),
        )
        .await;
        assert_eq!(q["total"], 1, "only the successful call is a finding: {q}");
        let listed = &q["items"][0];
        // A search lists findings without their data; findings_get has it.
        assert!(listed.get("data").is_none(), "{listed}");
        let full = ok(&client, "findings_get", json!({"id": listed["id"]})).await;
        let f = &full["finding"];
        assert_eq!(f["target"]["binary"], path.as_str());
        assert!(f["data"]["sha256"].is_string(), "{f}");
        // The target names the binary by content too: the coordinator's hash of the file
        // equals the one mcp-static reports, and finds the call.
        assert_eq!(f["target"]["sha256"], f["data"]["sha256"], "{f}");
        let by_hash = ok(
            &client,
            "findings_query",
            json!({"target": f["data"]["sha256"]}),
        )
        .await;
        assert_eq!(by_hash["total"], 1);
        let call_id = f["id"].as_str().unwrap_or_default().to_string();
        let r = ok(
            &client,
            "findings_record",
            json!({"kind": "note", "title": "the fixture is a PE", "target": {"binary": path},
                   "links": [{"to": call_id, "relation": "derived_from"}]}),
        )
        .await;
        let note_id = r["finding"]["id"].as_str().unwrap_or_default().to_string();
        assert_eq!(r["links"][0]["relation"], "derived_from");
        let e = err(
            &client,
            "findings_link",
            json!({"from": note_id, "to": "f-nope", "relation": "x"}),
        )
        .await;
        assert!(e.contains("`to`") && e.contains("f-nope"), "{e}");
        client.cancel().await?;
        (call_id, note_id)
    };
    // A new coordinator on the same data directory still has them.
    let client = coordinator(&cfg, &[]).await?;
    let g = ok(&client, "findings_get", json!({"id": note_id})).await;
    assert_eq!(g["finding"]["title"], "the fixture is a PE");
    assert_eq!(g["links"][0]["to"], call_id.as_str());
    let q = ok(&client, "findings_query", json!({"target": "some-binary"})).await;
    assert_eq!(q["total"], 2);
    let st = ok(&client, "findings_status", json!({})).await;
    assert_eq!(
        (
            st["findings"].as_u64(),
            st["links"].as_u64(),
            st["sessions"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let r = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!(
            "findings://{note_id}"
        )))
        .await?;
    let text = match r.contents.first() {
        Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) => text.clone(),
        _ => String::new(),
    };
    let v: Value = serde_json::from_str(&text)?;
    assert_eq!(v["finding"]["id"], note_id.as_str());
    let e = err(&client, "findings_get", json!({"id": "f-missing"})).await;
    assert!(e.contains("`id`"), "{e}");
    client.cancel().await?;
    Ok(())
}

/// Whether `pid` is a live process (a zombie, killed and not yet reaped, is not).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}
