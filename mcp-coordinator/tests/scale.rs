//! Several coordinators behind nginx (the real one, with `examples/deploy/nginx.conf`), as
//! the architecture's "beyond one machine": round robin, no sticky sessions. With one Redis
//! (`--redis-url`) an MCP session begun on one instance goes on on the other, for a client
//! of the session era (protocol 2025-06-18, what most hosts speak today); without Redis the
//! second instance does not know the session. Needs REDIS_URL and nginx (scripts/test.sh
//! installs and starts them); skipped through `mcp_testkit::skipped` without them (a failure
//! under REQUIRE_REDIS / REQUIRE_NGINX / MCP_SUITE_STRICT).

mod common;

use common::{COORDINATOR, child_config, free_ports, spawn_listening, tmp};
use mcp_testkit::*;
use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The nginx binary; `None` after [`skipped`] under `REQUIRE_NGINX` when not installed.
fn nginx() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        skipped(
            "REQUIRE_NGINX",
            "nginx is not installed (scripts/setup.sh installs nginx-light)",
        );
    }
    found
}

/// A coordinator serving HTTP on `port` with the test child, sharing `redis` if given.
async fn coordinator(
    dir: &Path,
    port: u16,
    redis: Option<&str>,
) -> Result<tokio::process::Child, Error> {
    let data = dir.join(format!("data-{port}"));
    let mut cmd = tokio::process::Command::new(COORDINATOR);
    cmd.arg("--config")
        .arg(child_config(dir)?)
        .arg("--data-dir")
        .arg(&data)
        .args(["--http", &format!("127.0.0.1:{port}"), "--gateway"]);
    if let Some(r) = redis {
        cmd.args(["--redis-url", r]);
    }
    spawn_listening(
        &mut cmd,
        port,
        Duration::from_secs(30),
        Duration::from_millis(50),
        "a coordinator",
    )
    .await
}

/// nginx, stopped with SIGTERM so that its master takes its workers along.
struct Nginx(tokio::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            for _ in 0..100 {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// nginx from the example config, its ports replaced: listening on `front`, round robin
/// over `backs`.
async fn front(nginx: &Path, dir: &Path, front: u16, backs: [u16; 2]) -> Result<Nginx, Error> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy/nginx.conf");
    let conf = std::fs::read_to_string(&example)?
        .replace("127.0.0.1:8930", &format!("127.0.0.1:{front}"))
        .replace("127.0.0.1:8931", &format!("127.0.0.1:{}", backs[0]))
        .replace("127.0.0.1:8932", &format!("127.0.0.1:{}", backs[1]));
    let prefix = dir.join(format!("nginx-{front}"));
    std::fs::create_dir_all(&prefix)?;
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = spawn_listening(
        tokio::process::Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null()),
        front,
        Duration::from_secs(10),
        Duration::from_millis(20),
        "nginx",
    )
    .await?;
    Ok(Nginx(child))
}

/// `mcp_tool_calls_total` of `tool` on the coordinator at `port` (0 when absent).
async fn calls_on(port: u16, tool: &str) -> Result<f64, Error> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    let series = format!("mcp_tool_calls_total{{tool=\"{tool}\"}} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0.0))
}

/// A session-era client through nginx: `echo` called six times. Returns how many calls
/// succeeded and how many each coordinator served.
async fn session_through(front: u16, backs: [u16; 2]) -> Result<(usize, [f64; 2]), Error> {
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("scale-test", "1"),
    )
    .with_protocol_version(ProtocolVersion::V_2025_06_18);
    let client = info
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://127.0.0.1:{front}/"
        )))
        .await?;
    let agreed = client
        .peer_info()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();
    assert_eq!(agreed, "2025-06-18");
    let mut ok = 0;
    for i in 0..6 {
        let args = json!({"text": format!("call {i}")});
        let params = rmcp::model::CallToolRequestParams::new("child__echo")
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        if let Ok(r) = client.call_tool(params).await
            && r.is_error != Some(true)
        {
            ok += 1;
        }
    }
    let _ = client.cancel().await;
    Ok((
        ok,
        [
            calls_on(backs[0], "child__echo").await?,
            calls_on(backs[1], "child__echo").await?,
        ],
    ))
}

#[tokio::test]
async fn two_coordinators_behind_nginx_share_sessions_through_redis() -> TestResult {
    // Both are asked, so that each missing one is reported.
    let (Some(redis), Some(nginx)) = (mcp_testkit::redis_url(), nginx()) else {
        return Ok(());
    };
    let dir = tmp("coord-scale")?;

    // One Redis: every call succeeds, and both instances served some.
    let [a, b, port] = free_ports()?;
    let backs = [a, b];
    let _a = coordinator(&dir, backs[0], Some(&redis)).await?;
    let _b = coordinator(&dir, backs[1], Some(&redis)).await?;
    let _nginx = front(&nginx, &dir, port, backs).await?;
    let (ok, served) = session_through(port, backs).await?;
    assert_eq!(ok, 6, "calls through nginx: {served:?}");
    assert!(served[0] >= 1.0 && served[1] >= 1.0, "{served:?}");
    assert_eq!(served[0] + served[1], 6.0, "{served:?}");

    // No Redis: the other instance does not know the session, and its calls fail.
    let [c, d, port] = free_ports()?;
    let backs = [c, d];
    let _c = coordinator(&dir, backs[0], None).await?;
    let _d = coordinator(&dir, backs[1], None).await?;
    let _nginx2 = front(&nginx, &dir, port, backs).await?;
    // (The session may fail as early as the `initialized` notification.)
    if let Ok((ok, served)) = session_through(port, backs).await {
        assert!(ok < 6, "without Redis every call succeeded: {served:?}");
    }
    Ok(())
}
