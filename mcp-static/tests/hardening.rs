//! Hardening through the real server: an error quotes only the start of a huge bad value
//! (a megabyte argument answers a few KB that still name the argument), and over
//! `--http` a request from a browser page of another site (`Origin`) is refused with 403
//! while loopback origins and clients without `Origin` are served.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Errors stay under this many bytes, whatever the input.
const FEW_KB: usize = 5 * 1024;

#[tokio::test]
async fn megabyte_arguments_give_short_errors_naming_them() -> TestResult {
    let dir = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "hardening-errors")?;
    let client = start(&[dir.path()]).await?;
    let path = dir.join("none.dll").display().to_string();
    let mb = "Z".repeat(1 << 20);

    // A pattern that is no pattern: its parse error used to quote it twice (4.5 MB).
    let e = err(
        &client,
        "find_pattern",
        json!({"path": path, "pattern": mb}),
    )
    .await;
    assert!(e.len() < FEW_KB, "{} bytes", e.len());
    assert!(e.contains("`pattern`") && e.contains("ZZZZ"), "{e}");
    // A 1 MB token of wildcards, quoted in what is accepted: still short.
    let e = err(
        &client,
        "find_pattern",
        json!({"path": path, "pattern": format!("8B {}", "?".repeat((1 << 20) + 1))}),
    )
    .await;
    assert!(e.len() < FEW_KB && e.contains("`pattern`"), "{e:.300}");

    // A path, an address that does not parse, a mistyped count, an unknown key: each 1 MB.
    let e = err(&client, "binary_info", json!({"path": mb})).await;
    assert!(e.len() < FEW_KB && e.contains("`path`"), "{e:.300}");
    assert!(e.contains(&format!("({} bytes)", mb.len() + 2)), "{e:.300}");
    let e = err(
        &client,
        "disassemble",
        json!({"format": "json", "path": path, "address": mb, "count": 4}),
    )
    .await;
    assert!(e.len() < FEW_KB && e.contains("address"), "{e:.300}");
    let e = err(
        &client,
        "disassemble",
        json!({"format": "json", "path": path, "address": "0x1000", "count": mb}),
    )
    .await;
    assert!(e.len() < FEW_KB && e.contains("`count`"), "{e:.300}");
    let mut unknown = serde_json::Map::new();
    unknown.insert("path".into(), json!(path));
    unknown.insert(mb.clone(), json!(1));
    let e = err(&client, "binary_info", serde_json::Value::Object(unknown)).await;
    assert!(
        e.len() < FEW_KB && e.contains("unknown argument"),
        "{e:.300}"
    );

    // The server is fine afterwards.
    let e = err(&client, "binary_info", json!({"path": path})).await;
    assert!(e.contains("none.dll"), "{e}");
    client.cancel().await?;
    Ok(())
}

/// A port on 127.0.0.1 nothing listens on (now).
fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A raw initialize POST with this `Origin` (if any): the status, and the body unless 200
/// (whose event stream may stay open).
fn post_init(port: u16, origin: Option<&str>) -> Result<(u16, String), Error> {
    raw_http(
        &format!("127.0.0.1:{port}"),
        "POST",
        "/",
        origin,
        INITIALIZE_BODY,
    )
}

#[tokio::test]
async fn a_foreign_origin_is_refused_over_http() -> TestResult {
    let dir = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "hardening-origin")?;
    // A port picked free can be taken again before the server binds it (by a process an
    // earlier test left closing): then the server exits and another port is tried.
    let mut started = None;
    for _ in 0..3 {
        let port = free_port()?;
        let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-static"))
            .args(["--http", &format!("127.0.0.1:{port}"), "--root"])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exited = false;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if server.try_wait()?.is_some() {
                exited = true;
                break;
            }
            if Instant::now() > deadline {
                return Err("mcp-static --http never listened".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What answered must be this server.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !exited && server.try_wait()?.is_none() {
            started = Some((server, port));
            break;
        }
    }
    let Some((mut server, port)) = started else {
        return Err("mcp-static --http exited three times (its ports were taken)".into());
    };

    let ask = |origin: Option<String>| {
        tokio::task::spawn_blocking(move || post_init(port, origin.as_deref()))
    };
    let (status, body) = ask(Some("http://evil.example".into())).await??;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("Origin `http://evil.example`") && body.contains("DNS rebinding"),
        "{body}"
    );
    let (status, body) = ask(Some(format!("http://127.0.0.1:{port}"))).await??;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ask(None).await??;
    assert_eq!(status, 200, "{body}");
    server.kill().await?;
    Ok(())
}

/// The fuzzer's regression inputs for `Binary::parse` (fuzz/regressions/static_binary) through
/// the server: each answers `binary_info` and `list_functions` (a result, or an error that
/// is not a caught panic), and the server keeps serving. One has a `.pdata` directory
/// running past the end of the file, on which goblin's own iterator panics.
#[tokio::test]
async fn fuzz_regression_inputs_answer_through_the_server() -> TestResult {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/static_binary");
    let client = start(&[dir.as_path()]).await?;
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path().display().to_string();
        for tool in ["binary_info", "list_functions"] {
            let a = call(&client, tool, json!({"path": path})).await;
            assert!(
                !a.text.contains("panic") && a.text.len() < FEW_KB,
                "{tool} {path}: {}",
                a.text
            );
        }
        seen += 1;
    }
    assert!(seen >= 4, "only {seen} regression inputs");
    let pdata = dir.join("pdata-past-end-of-file").display().to_string();
    let info = ok(&client, "binary_info", json!({"path": pdata})).await;
    assert_eq!(info["format"], "pe32+", "{info}");
    client.cancel().await?;
    Ok(())
}
