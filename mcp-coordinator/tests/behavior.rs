//! mcp-behavior as a child: each detection that fires is recorded as a finding of its own
//! (`kind: detection`), linked to the call that found it; a trace's findings name the traced
//! process. Needs the workspace built (mcp-behavior beside the coordinator).

mod common;
use common::*;
use mcp_testkit::{TestResult, ok};
use serde_json::json;

#[tokio::test]
async fn detections_become_findings_linked_to_their_call() -> TestResult {
    let dir = tmp("behavior-findings")?;
    let cfg = write_config(
        &dir,
        "c.toml",
        &server("behavior", sibling("mcp-behavior")?.display()),
    )?;
    let client = coordinator(&cfg, &[]).await?;

    // A bot's regular actions: one rule fires.
    let bot: Vec<f64> = (0..40).map(|i| f64::from(i) * 250.0).collect();
    let d = ok(&client, "behavior__detect", json!({"actions_ms": bot})).await;
    assert_eq!(d["fired"], 1, "{d}");

    let q = ok(&client, "findings_query", json!({"kind": "detection"})).await;
    let items = q["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 1, "{q}");
    let det = &items[0];
    assert!(
        det["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("regular-action-intervals")),
        "{det}"
    );
    let id = det["id"].as_str().ok_or("no id")?;
    let got = ok(&client, "findings_get", json!({"id": id})).await;
    let links = got["links"].as_array().ok_or("no links")?;
    assert!(links.iter().any(|l| l["relation"] == "found_by"), "{got}");

    // A series in which nothing fires records no detection.
    let human: Vec<f64> = (0..40)
        .map(|i| f64::from(i) * 250.0 + f64::from((i * 37) % 11) * 19.0)
        .collect();
    ok(&client, "behavior__detect", json!({"actions_ms": human})).await;
    let q = ok(&client, "findings_query", json!({"kind": "detection"})).await;
    assert_eq!(q["items"].as_array().map(Vec::len), Some(1), "{q}");
    Ok(())
}
