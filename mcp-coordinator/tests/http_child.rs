//! A streamable-HTTP child: the real mcp-static serving `--http 127.0.0.1:PORT`, named by
//! `url` in Claude Desktop's JSON, reached through the coordinator. Its tools and results
//! equal those of mcp-static over stdio; when the server goes away calls fail with an error
//! (no hang), and when it is back the coordinator connects again. A server restarted between
//! two calls rejects the old session id (404): the coordinator opens a new session and the
//! next call succeeds.

mod common;

use common::{
    TEST_CHILD, coordinator, free_port, server_entry, sibling, spawn_listening, tmp, unnamed,
    write_config,
};
use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// mcp-static over HTTP on `port`, ready when this returns (killed when dropped).
async fn http_static(port: u16, root: &Path) -> Result<tokio::process::Child, Error> {
    spawn_listening(
        tokio::process::Command::new(sibling("mcp-static")?)
            .args(["--http", &format!("127.0.0.1:{port}"), "--root"])
            .arg(root),
        port,
        Duration::from_secs(10),
        Duration::from_millis(50),
        "mcp-static --http",
    )
    .await
}

fn state(status: &Value) -> String {
    server_entry(status, "remote")["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_url_child_is_proxied_like_a_stdio_one() -> TestResult {
    let dir = tmp("coord-http")?;
    std::fs::copy(TEST_CHILD, dir.join("bin"))?;
    let port = free_port()?;
    let mut server = http_static(port, &dir).await?;
    let cfg = write_config(
        &dir,
        "c.json",
        &json!({"mcpServers": {"remote": {"url": format!("http://127.0.0.1:{port}/")}}})
            .to_string(),
    )?;
    let c = coordinator(&cfg, &[]).await?;
    let direct = start_bin(
        sibling("mcp-static")?.to_str().unwrap_or_default(),
        &["--root".into(), dir.display().to_string()],
    )
    .await?;

    // The same definitions and results as mcp-static over stdio.
    let tools = c.list_all_tools().await?;
    let direct_tools = direct.list_all_tools().await?;
    assert_eq!(
        tools
            .iter()
            .filter(|t| t.name.starts_with("remote__"))
            .count(),
        direct_tools.len()
    );
    for d in &direct_tools {
        let p = tools
            .iter()
            .find(|t| t.name == format!("remote__{}", d.name))
            .ok_or(format!("remote__{} missing", d.name))?;
        assert_eq!(unnamed(d)?, unnamed(p)?);
    }
    let path = dir.join("bin").display().to_string();
    let a = ok(&direct, "binary_info", json!({"path": path})).await;
    let b = ok(&c, "remote__binary_info", json!({"path": path})).await;
    assert_eq!(a, b);
    let e1 = call(&direct, "binary_info", json!({"path": "/etc/passwd"})).await;
    let e2 = call(&c, "remote__binary_info", json!({"path": "/etc/passwd"})).await;
    assert!(e1.is_error && e2.is_error);
    assert_eq!(e1.text, e2.text);
    let st = ok(&c, "servers_status", json!({})).await;
    assert_eq!(state(&st), "running", "{st}");

    // The server goes away: a call answers an error, promptly.
    server.kill().await?;
    let t = Instant::now();
    let gone = call(&c, "remote__list_exports", json!({"path": path})).await;
    assert!(gone.is_error, "{}", gone.text);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // Back on the same port: the coordinator connects again.
    let _server = http_static(port, &dir).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call(&c, "remote__binary_info", json!({"path": path})).await;
        if !r.is_error {
            assert_eq!(r.data, a);
            break;
        }
        if state(&ok(&c, "servers_status", json!({})).await) == "failed" {
            ok(&c, "servers_restart", json!({"name": "remote"})).await;
        }
        assert!(Instant::now() < deadline, "never reconnected: {}", r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    direct.cancel().await?;
    c.cancel().await?;
    Ok(())
}

/// mcp-test-child over HTTP on `port`, ready when this returns (killed when dropped).
async fn http_test_child(port: u16) -> Result<tokio::process::Child, Error> {
    http_test_child_with(port, &[]).await
}

/// [`http_test_child`] with extra flags (`--with-extra`: one more tool).
async fn http_test_child_with(port: u16, extra: &[&str]) -> Result<tokio::process::Child, Error> {
    spawn_listening(
        tokio::process::Command::new(TEST_CHILD)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(extra),
        port,
        Duration::from_secs(10),
        Duration::from_millis(20),
        "mcp-test-child --http",
    )
    .await
}

/// Opens a session of our own (initialize over raw HTTP) and gives its id.
async fn session_id(http: &reqwest::Client, url: &str) -> Result<String, Error> {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "probe", "version": "0"}}})
            .to_string(),
        )
        .send()
        .await?;
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("no Mcp-Session-Id in the answer ({})", r.status()))?
        .to_string();
    Ok(id)
}

/// Status of a ping sent in session `id`.
async fn ping_status(http: &reqwest::Client, url: &str, id: &str) -> Result<u16, Error> {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", "2025-06-18")
        .body(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string())
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// The coordinator with one child, `remote`, the streamable-HTTP server at `url`.
async fn remote_coordinator(dir: &Path, url: &str) -> Result<Client, Error> {
    let cfg = write_config(
        dir,
        "c.json",
        &json!({"mcpServers": {"remote": {"url": url}}}).to_string(),
    )?;
    coordinator(&cfg, &[]).await
}

fn remote(status: &Value) -> Value {
    server_entry(status, "remote").clone()
}

/// The HTTP server restarts between two calls (the coordinator sees no error in between):
/// the new server rejects the old session id with 404, and the coordinator opens a new
/// session, so that the next call succeeds and reaches the new process.
#[tokio::test]
async fn an_expired_http_session_is_replaced_by_a_new_one() -> TestResult {
    let dir = tmp("coord-http-session")?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}/");
    let mut server = http_test_child(port).await?;
    let c = remote_coordinator(&dir, &url).await?;
    let first = ok(&c, "remote__echo", json!({"text": "one"})).await;
    let first_pid = first["pid"].as_u64().ok_or("no pid")?;
    assert_eq!(u64::from(server.id().unwrap_or_default()), first_pid);
    let http = reqwest::Client::new();
    let probe = session_id(&http, &url).await?;
    assert_eq!(ping_status(&http, &url, &probe).await?, 200);

    // Restart the server at once, before the coordinator calls again.
    server.kill().await?;
    let server = http_test_child(port).await?;
    let new_pid = u64::from(server.id().unwrap_or_default());
    assert_eq!(
        ping_status(&http, &url, &probe).await?,
        404,
        "the restarted server should reject a session of the old one"
    );

    // The first call may be the one that finds the session gone; the next one succeeds in
    // a new session, with the new process.
    let t = Instant::now();
    let maybe = call(&c, "remote__echo", json!({"text": "two"})).await;
    let first_call = if maybe.is_error {
        format!("failed ({})", maybe.text)
    } else {
        "succeeded".to_string()
    };
    let next = if maybe.is_error {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = call(&c, "remote__echo", json!({"text": "two"})).await;
            if !r.is_error {
                break r;
            }
            assert!(Instant::now() < deadline, "never a new session: {}", r.text);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        maybe
    };
    assert_eq!(next.data["text"], "two");
    assert_eq!(next.data["pid"].as_u64(), Some(new_pid));
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let st = remote(&ok(&c, "servers_status", json!({})).await);
    assert_eq!(st["state"], "running", "{st}");
    eprintln!("session expiry: first call after the restart {first_call}; servers_status {st}");

    // Again, now leaving the coordinator idle after the restart, so that its event stream
    // (GET) finds the session gone first: the next call still succeeds, in the new process.
    let mut server = server;
    server.kill().await?;
    let server = http_test_child(port).await?;
    let third_pid = u64::from(server.id().unwrap_or_default());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let again = loop {
        let r = call(&c, "remote__echo", json!({"text": "three"})).await;
        if !r.is_error {
            break r;
        }
        assert!(Instant::now() < deadline, "never a new session: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.data["pid"].as_u64(), Some(third_pid));
    let st = remote(&ok(&c, "servers_status", json!({})).await);
    assert_eq!(st["state"], "running", "{st}");
    eprintln!("session expiry after an idle time: servers_status {st}");
    c.cancel().await?;
    drop(server);
    Ok(())
}

/// A server restarted behind the same URL with another tool list, and no `list_changed`: the
/// coordinator's periodic re-list (`relist_s`) finds the new tool and tells the hosts.
#[tokio::test]
async fn an_http_child_back_with_other_tools_is_listed_again() -> TestResult {
    let dir = tmp("coord-http-relist")?;
    let port = free_port()?;
    let mut server = http_test_child(port).await?;
    let cfg = write_config(
        &dir,
        "c.toml",
        &format!(
            "[[servers]]\nname = \"remote\"\nurl = \"http://127.0.0.1:{port}/\"\nrelist_s = 1\n"
        ),
    )?;
    let c = coordinator(&cfg, &[]).await?;
    let names = |tools: &[rmcp::model::Tool]| -> Vec<String> {
        tools.iter().map(|t| t.name.to_string()).collect()
    };
    let before = names(&c.list_all_tools().await?);
    assert!(before.contains(&"remote__echo".to_string()), "{before:?}");
    assert!(!before.contains(&"remote__extra".to_string()), "{before:?}");

    server.kill().await?;
    let _server = http_test_child_with(port, &["--with-extra"]).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut now = before.clone();
    while Instant::now() < deadline {
        now = names(&c.list_all_tools().await?);
        if now.contains(&"remote__extra".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        now.contains(&"remote__extra".to_string()),
        "never re-listed: {now:?}"
    );
    c.cancel().await?;
    Ok(())
}

/// The suite's servers (mcp-static here) close a connection idle for 10 s (their header read
/// timeout), which is
/// also the default ping period: a ping sent on the pooled connection as the server closed it
/// was lost, so every other ping failed and the child read "unresponsive" (and a call sent at
/// that moment failed the same way). The coordinator now lets an idle connection go first.
#[tokio::test]
async fn a_url_child_stays_running_across_the_servers_idle_close() -> TestResult {
    let dir = tmp("coord-http-idle")?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}/");
    std::fs::copy(TEST_CHILD, dir.join("bin"))?;
    let path = dir.join("bin").display().to_string();
    let _server = http_static(port, &dir).await?;
    let c = remote_coordinator(&dir, &url).await?;
    // No call in between: the ping at 10 s goes out as the server drops the connection that
    // the coordinator's initial listing left idle. With the loss, the child read unresponsive
    // from that ping until the next answered one.
    for wait_ms in [10_800, 10_000] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let status = ok(&c, "servers_status", json!({})).await;
        let entry = remote(&status);
        assert_eq!(entry["state"], "running", "{entry}");
    }
    ok(&c, "remote__binary_info", json!({"path": path})).await;
    Ok(())
}
