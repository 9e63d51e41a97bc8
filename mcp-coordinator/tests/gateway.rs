//! The coordinator's HTTP gateway, with the real binary on 127.0.0.1 and mcp-test-child as
//! its child: bearer auth (401 without or with a wrong token), rate limits (429 with
//! Retry-After, then allowed again), GET /health (200, 503 when a child cannot start),
//! GET /metrics (calls counted per tool), the audit log (one line per call, no raw
//! arguments), clear errors for bad flags, and `--http` alone unchanged.

mod common;

use common::{COORDINATOR, TEST_CHILD, free_port, server_entry, tmp};
use mcp_common::bytes::to_hex;
use mcp_testkit::*;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config with the test child as `child` (and a child that cannot start as `ghost`).
fn config(dir: &Path, ghost: bool) -> Result<PathBuf, Error> {
    let mut servers = json!({"child": {"command": TEST_CHILD}});
    if ghost {
        servers["ghost"] = json!({"command": "/nonexistent/mcp-server"});
    }
    let path = dir.join("c.json");
    std::fs::write(&path, json!({ "mcpServers": servers }).to_string())?;
    Ok(path)
}

/// The coordinator over HTTP with these extra flags, listening when this returns.
async fn coordinator(
    dir: &Path,
    cfg: &Path,
    extra: &[&str],
) -> Result<(tokio::process::Child, String), Error> {
    common::http_coordinator(dir, cfg, extra).await
}

/// An MCP client over streamable HTTP, with a bearer token if given.
async fn connect(base: &str, token: Option<&str>) -> Result<Client, Error> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/"));
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// A raw initialize POST, with this Authorization header if given.
async fn post_init(base: &str, authorization: Option<&str>) -> Result<reqwest::Response, Error> {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT);
    if let Some(a) = authorization {
        r = r.header("authorization", a);
    }
    Ok(r.send().await?)
}

async fn get(
    base: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, String), Error> {
    let mut r = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Ok((status, headers, r.text().await?))
}

/// The seconds a 429 asks the client to wait.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Result<u64, Error> {
    Ok(headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Retry-After")?
        .parse()?)
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn tokens_metrics_and_audit() -> TestResult {
    let dir = tmp("gw-auth")?;
    let cfg = config(&dir, false)?;
    let tokens = dir.join("tokens.toml");
    let bob_hash = to_hex(&Sha256::digest(b"bob-secret"));
    std::fs::write(
        &tokens,
        format!(
            "[[clients]]\nname = \"alice\"\ntoken = \"alice-secret\"\n\n\
             [[clients]]\nname = \"bob\"\nsha256 = \"{bob_hash}\"\n"
        ),
    )?;
    let audit = dir.join("audit.jsonl");
    let (_coord, base) = coordinator(
        &dir,
        &cfg,
        &[
            "--auth-tokens",
            &tokens.display().to_string(),
            "--audit-log",
            &audit.display().to_string(),
        ],
    )
    .await?;

    // No token, a token of another scheme, a wrong token: 401 with a challenge.
    for (auth, error) in [
        (None, "missing_token"),
        (Some("Basic YWxpY2U6eA=="), "missing_token"),
        (Some("Bearer wrong"), "invalid_token"),
        (Some("Bearer bob-secret-not"), "invalid_token"),
    ] {
        let r = post_init(&base, auth).await?;
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let body: Value = r.json().await?;
        assert_eq!(body["error"], error, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("Authorization") || m.contains("token")),
            "{body}"
        );
    }
    let (status, _, _) = get(&base, "/metrics", None).await?;
    assert_eq!(status, 401);
    assert!(connect(&base, Some("wrong")).await.is_err());

    // /health needs no token.
    let (status, _, body) = get(&base, "/health", None).await?;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["servers"][0]["name"], "child");
    assert_eq!(health["servers"][0]["state"], "running");
    assert_eq!(health["servers"][0]["restarts"], 0);
    assert!(health["servers"][0]["last_error"].is_null());

    // The right tokens (as given, and as a SHA-256): tools work.
    let alice = connect(&base, Some("alice-secret")).await?;
    let bob = connect(&base, Some("bob-secret")).await?;
    assert!(
        alice
            .list_all_tools()
            .await?
            .iter()
            .any(|t| t.name == "child__echo")
    );
    let secret = "a-raw-argument-value-7f3a";
    for client in [&alice, &alice, &bob] {
        let r = ok(client, "child__echo", json!({"text": secret})).await;
        assert_eq!(r["text"], secret, "{r}");
    }
    // An error result and a protocol error, each naming what was wrong (a dead gateway would
    // be an error too: the next call shows it still answers).
    let e = err(&alice, "servers_restart", json!({"name": "nobody"})).await;
    assert!(
        e.contains("`name`") && e.contains("\"nobody\"") && e.contains("known servers: child"),
        "{e}"
    );
    let unknown = alice
        .call_tool(rmcp::model::CallToolRequestParams::new("nobody__nothing"))
        .await;
    assert!(
        matches!(&unknown, Err(rmcp::service::ServiceError::McpError(e))
            if e.code == rmcp::model::ErrorCode::INVALID_PARAMS
                && e.message.contains("\"nobody__nothing\"")
                && e.message.contains("no server \"nobody\"")),
        "{unknown:?}"
    );
    let st = ok(&alice, "servers_status", json!({})).await;
    assert_eq!(server_entry(&st, "child")["state"], "running", "{st}");

    // /metrics: calls per tool, errors, latency, requests per client, the child.
    let (status, headers, text) = get(&base, "/metrics", Some("alice-secret")).await?;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/plain")),
        "{headers:?}"
    );
    assert_eq!(
        metric(&text, "mcp_tool_calls_total{tool=\"child__echo\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "mcp_tool_calls_total{tool=\"servers_restart\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mcp_tool_call_errors_total{tool=\"servers_restart\",outcome=\"is_error\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mcp_tool_call_errors_total{tool=\"nobody__nothing\",outcome=\"protocol_error\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mcp_tool_call_errors_total{tool=\"child__echo\",outcome=\"is_error\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "mcp_tool_call_duration_seconds_bucket{tool=\"child__echo\",le=\"+Inf\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            "mcp_tool_call_duration_seconds_count{tool=\"child__echo\"}"
        ),
        Some(3.0)
    );
    assert!(
        text.contains("# TYPE mcp_tool_call_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "mcp_gateway_http_requests_total{client=\"alice\",status=\"200\"}"
        )
        .is_some_and(|n| n >= 4.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "mcp_gateway_http_requests_total{client=\"bob\",status=\"200\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "mcp_gateway_http_requests_total{client=\"unauthenticated\",status=\"401\"}"
        )
        .is_some_and(|n| n >= 5.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "mcp_child_restarts_total{server=\"child\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "mcp_child_state{server=\"child\",state=\"running\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "mcp_child_state{server=\"child\",state=\"failed\"}"),
        Some(0.0)
    );
    // The priority lanes: the test child's calls went through the medium lane.
    assert_eq!(
        metric(&text, "mcp_lane_limit{server=\"child\",lane=\"medium\"}"),
        Some(8.0)
    );
    assert_eq!(
        metric(&text, "mcp_lane_queued{server=\"child\",lane=\"low\"}"),
        Some(0.0)
    );
    assert!(
        metric(
            &text,
            "mcp_lane_wait_seconds_count{server=\"child\",lane=\"medium\"}"
        )
        .is_some_and(|n| n >= 3.0),
        "{text}"
    );

    // The audit log: one line per call, the arguments only as a hash.
    let log = std::fs::read_to_string(&audit)?;
    assert!(!log.contains(secret), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 6, "{log}");
    let expected_hash = to_hex(&Sha256::digest(
        json!({"text": secret}).to_string().as_bytes(),
    ));
    for (line, (client, tool, outcome)) in lines.iter().zip([
        ("alice", "child__echo", "ok"),
        ("alice", "child__echo", "ok"),
        ("bob", "child__echo", "ok"),
        ("alice", "servers_restart", "is_error"),
        ("alice", "nobody__nothing", "protocol_error"),
        ("alice", "servers_status", "ok"),
    ]) {
        assert_eq!(line["client"], client, "{line}");
        assert_eq!(line["tool"], tool, "{line}");
        assert_eq!(line["outcome"], outcome, "{line}");
        assert!(
            line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{line}"
        );
        let time = line["time"].as_str().unwrap_or_default();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        let hash = line["arguments_sha256"].as_str().unwrap_or_default();
        assert_eq!(hash.len(), 64, "{line}");
        if tool == "child__echo" {
            assert_eq!(hash, expected_hash, "{line}");
        }
        let keys: Vec<&String> = line
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 6, "{line}");
    }
    alice.cancel().await?;
    bob.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn rate_limits_answer_429_then_allow_again() -> TestResult {
    let dir = tmp("gw-rate")?;
    let cfg = config(&dir, false)?;
    let (_coord, base) =
        coordinator(&dir, &cfg, &["--rate-limit", "0.5", "--rate-burst", "2"]).await?;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..3 {
        let (status, headers, body) = get(&base, "/metrics", None).await?;
        statuses.push(status);
        if status == 429 {
            limited = Some((headers, body));
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (headers, body) = limited.ok_or("no 429")?;
    let retry = retry_after(&headers)?;
    // A token every 2 s: the wait is the rest of those 2 s, rounded up.
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = serde_json::from_str(&body)?;
    assert_eq!(body["error"], "rate_limited", "{body}");
    // /health is never limited.
    assert_eq!(get(&base, "/health", None).await?.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, text) = get(&base, "/metrics", None).await?;
    assert_eq!(status, 200);
    // Without auth the client is the peer's IP.
    assert_eq!(
        metric(
            &text,
            "mcp_gateway_http_requests_total{client=\"127.0.0.1\",status=\"429\"}"
        ),
        Some(1.0),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn health_is_503_when_a_child_cannot_start() -> TestResult {
    let dir = tmp("gw-health")?;
    let cfg = config(&dir, true)?;
    let (_coord, base) = coordinator(&dir, &cfg, &["--gateway"]).await?;
    let (status, _, body) = get(&base, "/health", None).await?;
    assert_eq!(status, 503, "{body}");
    let health: Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "degraded");
    let ghost = server_entry(&health, "ghost");
    assert_eq!(ghost["state"], "failed", "{ghost}");
    assert!(ghost["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(server_entry(&health, "child")["state"], "running");
    let (status, _, text) = get(&base, "/metrics", None).await?;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "mcp_child_state{server=\"ghost\",state=\"failed\"}"),
        Some(1.0),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn plain_http_is_unchanged() -> TestResult {
    let dir = tmp("gw-plain")?;
    let cfg = config(&dir, true)?;
    let (_coord, base) = coordinator(&dir, &cfg, &[]).await?;
    // No gateway: no token needed, no /health or /metrics of its own.
    let client = connect(&base, None).await?;
    let r = ok(&client, "child__echo", json!({"text": "hi"})).await;
    assert_eq!(r["text"], "hi");
    let (status, _, body) = get(&base, "/health", None).await?;
    assert!(!body.contains("\"servers\""), "{status} {body}");
    let (_, _, body) = get(&base, "/metrics", None).await?;
    assert!(!body.contains("mcp_tool_calls_total"), "{body}");
    client.cancel().await?;
    Ok(())
}

/// A client that sends half a request's headers and then nothing (slowloris) is cut off
/// after the header timeout (10 s), with or without the gateway, while a whole request on
/// another connection is still answered.
#[tokio::test]
async fn trickled_headers_are_cut_off() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tmp("gw-slow")?;
    let cfg = config(&dir, false)?;
    for extra in [&[][..], &["--gateway"][..]] {
        let (_coord, base) = coordinator(&dir, &cfg, extra).await?;
        let addr = base.trim_start_matches("http://");
        let mut slow = tokio::net::TcpStream::connect(addr).await?;
        slow.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await?;
        let started = std::time::Instant::now();
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf)).await;
        let n = read.map_err(|_| format!("{extra:?}: still open after 20 s"))??;
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(
            n == 0 || answer.starts_with("HTTP/1.1 408"),
            "{extra:?}: {answer}"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(8),
            "{extra:?}: cut off early"
        );
        let client = connect(&base, None).await?;
        assert_eq!(
            ok(&client, "child__echo", json!({"text": "x"})).await["text"],
            "x"
        );
        client.cancel().await?;
    }
    Ok(())
}

/// Runs the coordinator expecting it to refuse to start; its stderr.
fn refused(dir: &Path, cfg: &Path, extra: &[&str]) -> Result<String, Error> {
    let out = std::process::Command::new(COORDINATOR)
        .arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(!out.status.success(), "{extra:?} was accepted");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_gateway_flags_are_refused_at_start() -> TestResult {
    let dir = tmp("gw-flags")?;
    let cfg = config(&dir, false)?;
    let port = free_port()?;
    let http = format!("127.0.0.1:{port}");
    let tokens = dir.join("tokens.toml");

    let e = refused(&dir, &cfg, &["--audit-log", "/tmp/x.jsonl"])?;
    assert!(e.contains("--audit-log needs --http"), "{e}");
    let e = refused(&dir, &cfg, &["--http", &http, "--rate-limit", "0"])?;
    assert!(e.contains("--rate-limit") && e.contains("accepted"), "{e}");
    let e = refused(&dir, &cfg, &["--http", &http, "--rate-limit", "x"])?;
    assert!(e.contains("--rate-limit"), "{e}");
    let e = refused(&dir, &cfg, &["--http", &http, "--rate-burst", "3"])?;
    assert!(e.contains("--rate-burst needs --rate-limit"), "{e}");
    let e = refused(&dir, &cfg, &["--http", &http, "--jwt-audience", "mcp"])?;
    assert!(e.contains("need --jwt-secret"), "{e}");
    let short = dir.join("short.secret");
    std::fs::write(&short, "too short\n")?;
    let short = short.display().to_string();
    let e = refused(&dir, &cfg, &["--http", &http, "--jwt-secret", &short])?;
    assert!(e.contains("--jwt-secret") && e.contains("32 bytes"), "{e}");
    let e = refused(
        &dir,
        &cfg,
        &["--http", &http, "--auth-tokens", "/nonexistent/tokens"],
    )?;
    assert!(
        e.contains("--auth-tokens") && e.contains("cannot read"),
        "{e}"
    );
    for (text, expect) in [
        ("clients = []", "no [[clients]]"),
        ("[[clients]]\nname = \"a\"\n", "exactly one of"),
        ("[[clients]]\nname = \"a\"\nsha256 = \"abc\"\n", "64 hex"),
        (
            "[[clients]]\nname = \"a\"\ntoken = \"x\"\n[[clients]]\nname = \"a\"\ntoken = \"y\"\n",
            "twice",
        ),
        (
            "[[clients]]\nname = \"a\"\ntokn = \"x\"\n",
            "accepted: TOML",
        ),
    ] {
        std::fs::write(&tokens, text)?;
        let e = refused(
            &dir,
            &cfg,
            &[
                "--http",
                &http,
                "--auth-tokens",
                &tokens.display().to_string(),
            ],
        )?;
        assert!(
            e.contains("--auth-tokens") && e.contains(expect),
            "{text}: {e}"
        );
    }
    let e = refused(
        &dir,
        &cfg,
        &[
            "--http",
            &http,
            "--audit-log",
            "/nonexistent/dir/audit.jsonl",
        ],
    )?;
    assert!(
        e.contains("--audit-log") && e.contains("cannot open"),
        "{e}"
    );
    Ok(())
}

/// GET /metrics with this token from each base in turn: the statuses.
async fn metrics_round(bases: &[&str], token: &str, rounds: usize) -> Result<Vec<u16>, Error> {
    let mut statuses = Vec::new();
    for i in 0..rounds {
        statuses.push(
            get(bases[i % bases.len()], "/metrics", Some(token))
                .await?
                .0,
        );
    }
    Ok(statuses)
}

/// Two coordinators with one Redis share each client's bucket: the burst is spent across
/// both. A Redis that cannot be reached leaves the in-process limit in force.
#[tokio::test]
async fn rate_limits_are_shared_through_redis() -> TestResult {
    let Some(redis_url) = mcp_testkit::redis_url() else {
        return Ok(());
    };
    let dir = tmp("gw-shared")?;
    let cfg = config(&dir, false)?;
    // A client name of this run alone: Redis outlives the test.
    let client = format!("shared-{}", mcp_testkit::run_id());
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!("[[clients]]\nname = \"{client}\"\ntoken = \"shared-secret\"\n"),
    )?;
    let tokens = tokens.display().to_string();
    // 0.2 per second: no token comes back while the test runs.
    let flags = |redis: &str| {
        vec![
            "--auth-tokens".to_string(),
            tokens.clone(),
            "--rate-limit".into(),
            "0.2".into(),
            "--rate-burst".into(),
            "3".into(),
            "--redis-url".into(),
            redis.to_string(),
        ]
    };
    let shared = flags(&redis_url);
    let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    std::fs::create_dir_all(dir.join("a"))?;
    std::fs::create_dir_all(dir.join("b"))?;
    let (_a, base_a) = coordinator(&dir.join("a"), &cfg, &shared).await?;
    let (_b, base_b) = coordinator(&dir.join("b"), &cfg, &shared).await?;
    let statuses = metrics_round(&[&base_a, &base_b], "shared-secret", 6).await?;
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    let (status, headers, _) = get(&base_b, "/metrics", Some("shared-secret")).await?;
    assert_eq!(status, 429);
    let retry = retry_after(&headers)?;
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    // The bucket is in Redis, under the client's name, and expires by itself.
    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let key = format!("mcp-coordinator:rate:{client}");
    let left: f64 = redis::cmd("HGET")
        .arg(&key)
        .arg("tokens")
        .query_async::<String>(&mut redis)
        .await?
        .parse()?;
    assert!(left < 1.0, "{left}");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut redis).await?;
    assert!((1..=16).contains(&ttl), "TTL {ttl}");

    // Nothing listens on this port: each coordinator limits in process.
    let down = format!("redis://127.0.0.1:{}/", free_port()?);
    let alone = flags(&down);
    let alone: Vec<&str> = alone.iter().map(String::as_str).collect();
    std::fs::create_dir_all(dir.join("c"))?;
    let (_c, base_c) = coordinator(&dir.join("c"), &cfg, &alone).await?;
    let statuses = metrics_round(&[&base_c], "shared-secret", 4).await?;
    assert_eq!(statuses, [200, 200, 200, 429]);
    // /health says so (still 200: the fallbacks serve), and says Redis is fine where it is.
    let (status, _, body) = get(&base_c, "/health", None).await?;
    let health: Value = serde_json::from_str(&body)?;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        (&health["status"], &health["redis"]),
        (&json!("degraded"), &json!("unreachable")),
        "{health}"
    );
    let (_, _, body) = get(&base_a, "/health", None).await?;
    let health: Value = serde_json::from_str(&body)?;
    assert_eq!(
        (&health["status"], &health["redis"]),
        (&json!("ok"), &json!("ok")),
        "{health}"
    );
    Ok(())
}
