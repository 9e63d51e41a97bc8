//! Every tool at its largest accepted arguments on big real binaries (Wine's user32.dll and
//! kernelbase.dll; `skipped` when Wine is not installed, a failure under REQUIRE_WINE or
//! MCP_SUITE_STRICT) answers within the bound an answer keeps: at most 48,000 bytes of JSON
//! (mcp-common's `MAX_JSON_BYTES`), so that text and structured content together stay under
//! 100 KB on the wire. Run with `--nocapture` to see the sizes.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

const WINE: &str = WINE64_DLLS;
/// mcp-common's `output::MAX_JSON_BYTES`.
const BOUND: usize = 48_000;

/// Calls `tool`, checks the answer is a success within the bound, prints its sizes.
async fn measured(client: &Client, tool: &str, args: Value) -> Value {
    let a = call(client, tool, args.clone()).await;
    assert!(!a.is_error, "{tool} {args} failed: {}", a.text);
    let json_len = a.data.to_string().len();
    let wire = a.text.len() + json_len;
    eprintln!("{tool:16} json {json_len:6} wire ~{wire:6}  {args}");
    assert!(json_len <= BOUND, "{tool} {args}: {json_len} bytes of JSON");
    a.data
}

#[tokio::test]
async fn largest_answers_stay_within_the_bound() -> TestResult {
    let dir = Path::new(WINE);
    if !wine64_available() {
        return Ok(());
    }
    let client = start(&[dir]).await?;
    let user32 = "user32.dll";

    let info = measured(&client, "binary_info", json!({"path": user32})).await;
    let entry = info["entry_point"].clone();
    for tool in ["list_exports", "list_imports", "list_functions"] {
        measured(&client, tool, json!({"path": user32, "limit": 1000})).await;
    }
    for encoding in ["ascii", "utf16le", "both"] {
        measured(
            &client,
            "list_strings",
            json!({"format": "json", "path": user32, "limit": 1000, "min_length": 1, "encoding": encoding}),
        )
        .await;
    }
    let dis = measured(
        &client,
        "disassemble",
        json!({"format": "json", "path": user32, "address": entry, "count": 2000}),
    )
    .await;
    assert_eq!(dis["truncated"], true, "2000 instructions must be cut");
    assert!(dis["next_address"].is_string());
    let m = measured(
        &client,
        "find_pattern",
        json!({"path": user32, "pattern": "00", "limit": 1000}),
    )
    .await;
    assert_eq!(m["limit_reached"], true);
    // References to the first imports (their callers), and to a common string.
    let imports = measured(
        &client,
        "list_imports",
        json!({"format": "json", "path": user32, "limit": 20}),
    )
    .await;
    for imp in imports["items"].as_array().cloned().unwrap_or_default() {
        if let (Some(lib), Some(name)) = (imp["library"].as_str(), imp["name"].as_str()) {
            measured(
                &client,
                "xrefs_to",
                json!({"format": "json", "path": user32, "import": format!("{lib}!{name}"), "limit": 1000}),
            )
            .await;
        }
    }
    measured(
        &client,
        "xrefs_to",
        json!({"format": "json", "path": user32, "string": "user32", "limit": 1000}),
    )
    .await;
    // A signature of the first export that has one.
    let exports = measured(
        &client,
        "list_exports",
        json!({"format": "json", "path": user32, "limit": 50}),
    )
    .await;
    let mut signed = false;
    for e in exports["items"].as_array().cloned().unwrap_or_default() {
        let args = json!({"path": user32, "address": e["va"]});
        if !call(&client, "make_signature", args.clone()).await.is_error {
            measured(&client, "make_signature", args).await;
            signed = true;
            break;
        }
    }
    assert!(signed, "no export of user32.dll has a unique signature");
    measured(
        &client,
        "convert_address",
        json!({"path": user32, "va": entry, "live_base": "0x7FF000000000"}),
    )
    .await;
    let d = measured(
        &client,
        "diff_binaries",
        json!({"path_a": user32, "path_b": "kernelbase.dll"}),
    )
    .await;
    assert_eq!(
        d["truncated"], true,
        "two unrelated DLLs differ in thousands of exports"
    );
    let added = d["totals"]["exports_added"].as_u64().unwrap_or(0);
    assert!(
        added > d["exports_added"].as_array().map_or(0, Vec::len) as u64,
        "totals count the full lists: {}",
        d["totals"]
    );
    let narrowed = measured(
        &client,
        "diff_binaries",
        json!({"path_a": user32, "path_b": "kernelbase.dll", "filter": "CreateFile"}),
    )
    .await;
    assert!(
        narrowed["exports_added"]
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e["export"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().contains("createfile")))),
        "{narrowed}"
    );
    client.cancel().await?;
    Ok(())
}
