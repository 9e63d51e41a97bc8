//! Results far beyond 64 KB (one stdio line each way) pass through the coordinator intact:
//! a 1 MiB text answered by mcp-test-child equals the one the child gives directly, and so
//! does a 1 MiB argument sent to it.

mod common;

use common::{TEST_CHILD, child_config, coordinator, tmp};
use mcp_testkit::*;
use serde_json::json;

#[tokio::test]
async fn a_one_mebibyte_result_passes_through_intact() -> TestResult {
    let dir = tmp("coord-big")?;
    let c = coordinator(&child_config(&dir)?, &[]).await?;
    let direct = start_bin(TEST_CHILD, &[]).await?;

    // 16 distinct bytes x 65536 = 1 MiB, so a lost or repeated chunk changes the text.
    let unit = "0123456789abcdef";
    let args = json!({"text": unit, "repeat": 65536});
    let a = call(&direct, "echo", args.clone()).await;
    let b = call(&c, "child__echo", args).await;
    assert!(
        !a.is_error && !b.is_error,
        "{}",
        &b.text[..b.text.len().min(300)]
    );
    let text = b.data["text"].as_str().ok_or("no text in the result")?;
    assert_eq!(text.len(), 1 << 20);
    assert!(text.as_bytes().chunks(16).all(|c| c == unit.as_bytes()));
    assert_eq!(a.data["text"], b.data["text"]);
    assert!(b.text.len() > 1 << 20, "{}", b.text.len());
    // The child's pid differs (two processes); everything else is the same.
    let strip = |s: &str, pid: &serde_json::Value| {
        s.replace(&format!("\"pid\":{pid}"), "\"pid\":0")
            .replace(&format!("\"pid\": {pid}"), "\"pid\": 0")
    };
    assert_ne!(a.data["pid"], b.data["pid"]);
    assert_eq!(
        strip(&a.text, &a.data["pid"]),
        strip(&b.text, &b.data["pid"])
    );

    // A 1 MiB argument reaches the child intact too.
    let big = unit.repeat(65536);
    let r = ok(&c, "child__echo", json!({"text": big})).await;
    assert_eq!(r["text"].as_str(), Some(big.as_str()));

    // Too large a result is refused by the child, naming the argument and the limit.
    let e = err(
        &c,
        "child__echo",
        json!({"text": unit, "repeat": 1u64 << 30}),
    )
    .await;
    assert!(e.contains("`repeat`") && e.contains("16777216"), "{e}");

    // The coordinator still answers small calls afterwards.
    let s = ok(&c, "child__echo", json!({"text": "after"})).await;
    assert_eq!(s["text"], "after");
    direct.cancel().await?;
    c.cancel().await?;
    Ok(())
}
