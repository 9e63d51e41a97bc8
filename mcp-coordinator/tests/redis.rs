//! The Redis result cache with a real redis-server: scripts/test.sh starts one on a free
//! loopback port and exports REDIS_URL (skipped, saying so, without it). A result of the
//! real mcp-static is cached with the default static-analysis TTL (7 days) and answered from
//! Redis by a new coordinator process, whose fresh mcp-static child never sees the call.

use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

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

fn static_calls(status: &Value) -> u64 {
    status["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == "static"))
        .and_then(|x| x["calls"].as_u64())
        .unwrap_or(u64::MAX)
}

async fn coordinator(cfg: &Path, data: &Path, redis: &str) -> Result<Client, Error> {
    start_bin(
        env!("CARGO_BIN_EXE_mcp-coordinator"),
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--redis-url".into(),
            redis.into(),
        ],
    )
    .await
}

#[tokio::test]
async fn a_redis_hit_after_a_coordinator_restart() -> TestResult {
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        eprintln!(
            "skipped: REDIS_URL is not set (scripts/test.sh starts a redis-server and sets it; \
             or run `redis-server --port P --bind 127.0.0.1 --save ''` and set \
             REDIS_URL=redis://127.0.0.1:P/)"
        );
        return Ok(());
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("coord-redis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    std::fs::copy(
        env!("CARGO_BIN_EXE_mcp-test-child"),
        files.join("some-binary"),
    )?;
    // No [servers.cache]: mcp-static's results are cached by default, for 7 days.
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[servers]]\nname = \"static\"\ncommand = \"{}\"\nargs = [\"--root\", \"{}\"]\n\
             [[servers]]\nname = \"child\"\ncommand = \"{}\"\n",
            sibling("mcp-static")?.display(),
            files.display(),
            env!("CARGO_BIN_EXE_mcp-test-child"),
        ),
    )?;
    let path = files.join("some-binary").display().to_string();
    let args = json!({"path": path});

    let first = {
        let c = coordinator(&cfg, &dir.join("data"), &redis_url).await?;
        let r = ok(&c, "static__binary_info", args.clone()).await;
        assert_eq!(static_calls(&ok(&c, "servers_status", json!({})).await), 1);
        // A child without cache configuration (not one of the suite's) is never cached.
        ok(&c, "child__echo", json!({"text": "live"})).await;
        ok(&c, "child__echo", json!({"text": "live"})).await;
        let st = ok(&c, "servers_status", json!({})).await;
        let echo_calls = st["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == "child"))
            .and_then(|x| x["calls"].as_u64());
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
    let c = coordinator(&cfg, &dir.join("data"), &redis_url).await?;
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("coord-redis-down-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(env!("CARGO_BIN_EXE_mcp-test-child"), dir.join("bin"))?;
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[servers]]\nname = \"static\"\ncommand = \"{}\"\nargs = [\"--root\", \"{}\"]\n",
            sibling("mcp-static")?.display(),
            dir.display(),
        ),
    )?;
    let c = coordinator(
        &cfg,
        &dir.join("data"),
        &format!("redis://127.0.0.1:{port}/"),
    )
    .await?;
    let args = json!({"path": dir.join("bin").display().to_string()});
    let a = ok(&c, "static__binary_info", args.clone()).await;
    let b = ok(&c, "static__binary_info", args).await;
    assert_eq!(a, b);
    assert_eq!(static_calls(&ok(&c, "servers_status", json!({})).await), 2);
    c.cancel().await?;
    let bad = start_bin(
        env!("CARGO_BIN_EXE_mcp-coordinator"),
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
