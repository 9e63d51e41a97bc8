//! The Redis result cache with a real redis-server: scripts/test.sh starts one on a free
//! loopback port and exports REDIS_URL (skipped through `mcp_testkit::skipped` without it: a
//! failure under REQUIRE_REDIS or MCP_SUITE_STRICT). A result of the real mcp-static is
//! cached with the default static-analysis TTL (7 days) and answered from Redis by a new
//! coordinator process, whose fresh mcp-static child never sees the call.

mod common;

use common::{
    COORDINATOR, TEST_CHILD, free_port, server, server_entry, server_with_args, sibling, tmp,
    write_config,
};
use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::Path;

fn static_calls(status: &Value) -> u64 {
    server_entry(status, "static")["calls"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// The coordinator with its data beside the config, caching in this Redis.
async fn coordinator(cfg: &Path, redis: &str) -> Result<Client, Error> {
    common::coordinator(cfg, &["--redis-url", redis]).await
}

/// The real mcp-static serving `root`, as `static`.
fn static_server(root: &Path) -> Result<String, Error> {
    let root = root.display().to_string();
    Ok(server_with_args(
        "static",
        sibling("mcp-static")?.display(),
        &["--root", &root],
    ))
}

#[tokio::test]
async fn a_redis_hit_after_a_coordinator_restart() -> TestResult {
    let Some(redis_url) = mcp_testkit::redis_url() else {
        return Ok(());
    };
    let dir = tmp("coord-redis")?;
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    std::fs::copy(TEST_CHILD, files.join("some-binary"))?;
    // No [servers.cache]: mcp-static's results are cached by default, for 7 days.
    let config = static_server(&files)? + &server("child", TEST_CHILD);
    let cfg = write_config(&dir, "c.toml", &config)?;
    let path = files.join("some-binary").display().to_string();
    let args = json!({"path": path});

    let first = {
        let c = coordinator(&cfg, &redis_url).await?;
        let r = ok(&c, "static__binary_info", args.clone()).await;
        assert_eq!(static_calls(&ok(&c, "servers_status", json!({})).await), 1);
        // A child without cache configuration (not one of the suite's) is never cached.
        ok(&c, "child__echo", json!({"text": "live"})).await;
        ok(&c, "child__echo", json!({"text": "live"})).await;
        let st = ok(&c, "servers_status", json!({})).await;
        let echo_calls = server_entry(&st, "child")["calls"].as_u64();
        assert_eq!(echo_calls, Some(2));
        c.cancel().await?;
        r
    };

    // The key is in Redis with the static-analysis TTL.
    let key = mcp_coordinator::cache::key("static__binary_info", Some(&args))
        .ok_or("no cache key for an existing file")?;
    let client = redis::Client::open(redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let ttl: i64 = redis::cmd("TTL")
        .arg(mcp_coordinator::cache::redis_key(&key))
        .query_async(&mut conn)
        .await?;
    assert!(
        (604_800 - 60..=604_800).contains(&ttl),
        "TTL {ttl} s, expected 7 days"
    );

    // A new coordinator (a new mcp-static) answers from Redis: the child never sees it.
    let c = coordinator(&cfg, &redis_url).await?;
    let again = ok(&c, "static__binary_info", args.clone()).await;
    assert_eq!(again, first);
    assert_eq!(static_calls(&ok(&c, "servers_status", json!({})).await), 0);
    // A changed file is a miss.
    let mut bytes = std::fs::read(files.join("some-binary"))?;
    bytes.extend_from_slice(b"changed");
    std::fs::write(files.join("some-binary"), &bytes)?;
    let changed = ok(&c, "static__binary_info", args.clone()).await;
    assert_ne!(changed["sha256"], first["sha256"]);
    assert_eq!(static_calls(&ok(&c, "servers_status", json!({})).await), 1);
    c.cancel().await?;
    let _: i64 = redis::cmd("DEL")
        .arg(mcp_coordinator::cache::redis_key(&key))
        .query_async(&mut conn)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_redis_that_is_down_is_a_miss_not_an_error() -> TestResult {
    let port = free_port()?;
    let dir = tmp("coord-redis-down")?;
    std::fs::copy(TEST_CHILD, dir.join("bin"))?;
    let cfg = write_config(&dir, "c.toml", &static_server(&dir)?)?;
    let c = coordinator(&cfg, &format!("redis://127.0.0.1:{port}/")).await?;
    let args = json!({"path": dir.join("bin").display().to_string()});
    let a = ok(&c, "static__binary_info", args.clone()).await;
    let b = ok(&c, "static__binary_info", args).await;
    assert_eq!(a, b);
    assert_eq!(static_calls(&ok(&c, "servers_status", json!({})).await), 2);
    c.cancel().await?;
    let bad = start_bin(
        COORDINATOR,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--redis-url".into(),
            "http://not-redis".into(),
        ],
    )
    .await;
    assert!(bad.is_err(), "a bad --redis-url must stop the coordinator");
    Ok(())
}
