//! A streamable-HTTP child: the real mcp-static serving `--http 127.0.0.1:PORT`, named by
//! `url` in Claude Desktop's JSON, reached through the coordinator. Its tools and results
//! equal those of mcp-static over stdio; when the server goes away calls fail with an error
//! (no hang), and when it is back the coordinator connects again.

use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn sibling(name: &str) -> Result<PathBuf, Error> {
    let p = Path::new(env!("CARGO_BIN_EXE_mcp-coordinator")).with_file_name(name);
    if !p.exists() {
        return Err(format!(
            "{} is missing: build the workspace first (scripts/test.sh does)",
            p.display()
        )
        .into());
    }
    Ok(p)
}

/// mcp-static over HTTP on `port`, ready when this returns (killed when dropped).
async fn http_static(port: u16, root: &Path) -> Result<tokio::process::Child, Error> {
    let child = tokio::process::Command::new(sibling("mcp-static")?)
        .args(["--http", &format!("127.0.0.1:{port}"), "--root"])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("mcp-static --http never listened".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(child)
}

fn state(status: &Value) -> String {
    status["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == "remote"))
        .and_then(|x| x["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_url_child_is_proxied_like_a_stdio_one() -> TestResult {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("coord-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(env!("CARGO_BIN_EXE_mcp-test-child"), dir.join("bin"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = http_static(port, &dir).await?;
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        json!({"mcpServers": {"remote": {"url": format!("http://127.0.0.1:{port}/")}}}).to_string(),
    )?;
    let c = start_bin(
        env!("CARGO_BIN_EXE_mcp-coordinator"),
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
        ],
    )
    .await?;
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
        let (mut dj, mut pj) = (serde_json::to_value(d)?, serde_json::to_value(p)?);
        dj["name"] = Value::Null;
        pj["name"] = Value::Null;
        assert_eq!(dj, pj);
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
