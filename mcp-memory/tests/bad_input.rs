//! Bad input gets an `isError` result that names the argument, and the server keeps serving.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn every_bad_argument_is_a_clear_error_and_the_server_survives() -> TestResult {
    let fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&["--allow-write"]).await?;
    let here = hex(fx.addr("exe_static"));
    // (tool, arguments, words the message must hold)
    let cases = vec![
        (
            "read_value",
            json!({"pid": 999_999_999u32, "address": 0, "type": "u32"}),
            vec!["`pid`", "999999999", "no such process"],
        ),
        (
            "list_modules",
            json!({"pid": 999_999_999u32}),
            vec!["`pid`", "no such process"],
        ),
        (
            "read_memory",
            json!({"pid": pid, "address": 8, "length": 4}),
            vec!["`address`", "0x8", "not readable"],
        ),
        (
            "read_memory",
            json!({"pid": pid, "address": here, "length": 0}),
            vec!["`length`", "1 to 65536"],
        ),
        (
            "read_memory",
            json!({"pid": pid, "address": here, "length": 65537}),
            vec!["`length`", "65537"],
        ),
        (
            "read_memory",
            json!({"pid": pid, "address": "nowhere.dll+0x10", "length": 4}),
            vec!["`address`", "nowhere.dll", "loaded"],
        ),
        (
            "read_memory",
            json!({"pid": pid, "address": "0xZZ", "length": 4}),
            vec!["address"],
        ),
        (
            "read_value",
            json!({"pid": pid, "address": here, "type": "u33"}),
            vec!["u33"],
        ),
        (
            "pointer_scan",
            json!({"pid": pid, "target": here, "max_depth": 50, "max_offset": 16, "pointer_size": 8}),
            vec!["`max_depth`", "50", "1 to 5"],
        ),
        (
            "pointer_scan",
            json!({"pid": pid, "target": here, "max_depth": 2, "max_offset": 5000, "pointer_size": 8}),
            vec!["`max_offset`", "0 to 4096"],
        ),
        (
            "pointer_scan",
            json!({"pid": pid, "target": here, "max_depth": 2, "max_offset": 16, "pointer_size": 3}),
            vec!["`pointer_size`", "3", "4"],
        ),
        (
            "pointer_scan",
            json!({"pid": pid, "target": here, "max_depth": 2, "max_offset": 16, "pointer_size": 8, "modules": ["D2Client.dll"]}),
            vec!["`modules`", "D2Client.dll", "loaded"],
        ),
        (
            "resolve_pointer",
            json!({"pid": pid, "base": here, "offsets": [], "pointer_size": 3}),
            vec!["`pointer_size`"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "pattern": "8B 0G"}),
            vec!["`pattern`", "0G"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "pattern": "?? ??"}),
            vec!["`pattern`", "wildcards"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "value": 5}),
            vec!["`value_type`"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "value_type": "u8", "value": 300}),
            vec!["`value`", "300", "u8"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": 1, "text": "x"}),
            vec!["value and text"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": 1, "alignment": 3}),
            vec!["`alignment`", "3"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": 1, "module": "D2Client.dll"}),
            vec!["`module`", "D2Client.dll"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": 1, "max_results": 0}),
            vec!["`max_results`"],
        ),
        (
            "scan_next",
            json!({"scan_id": "scan-999", "condition": "changed"}),
            vec!["`scan_id`", "scan-999", "unknown"],
        ),
        (
            "scan_next",
            json!({"scan_id": "scan-1", "condition": "sideways"}),
            vec!["sideways"],
        ),
        (
            "scan_results",
            json!({"scan_id": "nope"}),
            vec!["`scan_id`", "nope"],
        ),
        (
            "pointer_rescan",
            json!({"pointer_scan_id": "ptr-5", "target": 1}),
            vec!["`pointer_scan_id`", "ptr-5"],
        ),
        (
            "snapshot",
            json!({"pid": pid, "address": here, "length": 0}),
            vec!["`length`"],
        ),
        (
            "snapshot",
            json!({"pid": pid, "address": here, "length": 67_108_865}),
            vec!["`length`", "67108865"],
        ),
        (
            "snapshot",
            json!({"pid": pid, "address": 8, "length": 16}),
            vec!["`address`", "not readable"],
        ),
        (
            "diff_snapshots",
            json!({"before": "snap-1", "after": "snap-2", "value_type": "u32"}),
            vec!["`before`", "snap-1"],
        ),
        (
            "read_struct",
            json!({"pid": pid, "address": here, "layout": "NoSuchLayout"}),
            vec!["`layout`", "NoSuchLayout", "D2UnitAny"],
        ),
        (
            "read_struct",
            json!({"pid": pid, "address": here, "layout": "D2UnitAny", "depth": 9}),
            vec!["`depth`", "0 to 4"],
        ),
        (
            "read_struct",
            json!({"pid": pid, "address": here, "layout": [{"name": "a", "offset": 0, "type": "u32", "layout": "D2Path"}]}),
            vec!["`layout`", "ptr32/ptr64"],
        ),
        (
            "read_struct",
            json!({"pid": pid, "address": here, "layout": []}),
            vec!["`layout`", "at least one field"],
        ),
        (
            "read_memory",
            json!({"pid": pid, "address": -1, "length": 4}),
            vec!["`address`", "-1", ">= 0"],
        ),
        (
            "scan_start",
            json!({"pid": pid, "pattern": "A".repeat(1 << 20)}),
            vec!["`pattern`", "1 to 4096 bytes"],
        ),
        (
            "infer_struct",
            json!({"pid": pid, "addresses": [], "size": 16}),
            vec!["`addresses`", "1 to 64"],
        ),
        (
            "infer_struct",
            json!({"pid": pid, "addresses": [here], "size": 5000}),
            vec!["`size`", "5000"],
        ),
        (
            "infer_struct",
            json!({"pid": pid, "addresses": [here, 8], "size": 16}),
            vec!["`addresses[1]`", "not readable"],
        ),
        (
            "watch",
            json!({"pid": pid, "address": here, "value_type": "u32", "interval_ms": 1, "samples": 5}),
            vec!["`interval_ms`", "10"],
        ),
        (
            "watch",
            json!({"pid": pid, "address": here, "value_type": "u32", "interval_ms": 10, "samples": 10001}),
            vec!["`samples`"],
        ),
        (
            "disassemble_memory",
            json!({"pid": pid, "address": here, "count": 0}),
            vec!["`count`"],
        ),
        (
            "write_memory",
            json!({"pid": pid, "address": here, "bytes": "90 ??"}),
            vec!["`bytes`", "wildcards"],
        ),
        (
            "write_memory",
            json!({"pid": pid, "address": here}),
            vec!["bytes|value"],
        ),
        (
            "write_memory",
            json!({"pid": pid, "address": 8, "bytes": "90"}),
            vec!["`address`", "not readable"],
        ),
        (
            "undo_write",
            json!({"write_id": "write-77"}),
            vec!["`write_id`", "write-77"],
        ),
    ];
    for (tool, args, words) in cases {
        let msg = err(&client, tool, args.clone()).await;
        for w in words {
            assert!(
                msg.contains(w),
                "{tool} {args}: message {msg:?} lacks {w:?}"
            );
        }
    }
    // pid 1 is readable only with CAP_SYS_PTRACE (root in most containers lacks it): when
    // refused, the refusal names `pid`.
    let r = call(&client, "list_modules", json!({"pid": 1})).await;
    if r.is_error {
        assert!(
            r.text.contains("`pid`") && r.text.contains("/proc/1/maps"),
            "{}",
            r.text
        );
    }
    // Still serving, and the fixture's memory is untouched.
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": here, "type": "u32"}),
    )
    .await;
    assert_eq!(v["values"], json!([0x5EED1234u32]));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn unknown_value_scans_and_snapshots_respect_the_memory_budget() -> TestResult {
    let fx = Fixture::native(&["--big-mib", "64"]);
    let pid = fx.pid();
    let client = start(&["--memory-budget-mib", "32"]).await?;
    let e = err(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32"}),
    )
    .await;
    assert!(e.contains("budget"), "{e}");
    let big = fx.addr("big");
    let a = ok(
        &client,
        "snapshot",
        json!({"pid": pid, "address": hex(big), "length": 20 << 20}),
    )
    .await;
    let b = ok(
        &client,
        "snapshot",
        json!({"pid": pid, "address": hex(big), "length": 20 << 20}),
    )
    .await;
    // The first snapshot was evicted to make room for the second: its id says so.
    let e = err(
        &client,
        "diff_snapshots",
        json!({"before": a["snapshot_id"], "after": b["snapshot_id"], "value_type": "u32"}),
    )
    .await;
    assert!(e.contains("expired") && e.contains("budget"), "{e}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_process_that_exits_during_a_scan_is_reported() -> TestResult {
    let mut fx = Fixture::native(&["--big-mib", "1024"]);
    let pid = fx.pid();
    let client = start(&[]).await?;
    let scan = tokio::spawn({
        let peer = client.peer().clone();
        async move {
            let args = json!({"pid": pid, "value_type": "u8", "value": 7});
            let serde_json::Value::Object(map) = args else {
                return None;
            };
            peer.call_tool(
                rmcp::model::CallToolRequestParams::new("scan_start").with_arguments(map),
            )
            .await
            .ok()
        }
    });
    // u8 = 7 matches about 1 in 256 bytes: slow enough to be caught in the middle.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    fx.child.kill()?;
    fx.child.wait()?;
    let result = scan.await?.ok_or("protocol error")?;
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if result.is_error == Some(true) {
        assert!(
            text.contains("exited") || text.contains("no such process"),
            "{text}"
        );
    } else {
        // The scan beat the kill; it must still have answered properly.
        eprintln!("note: the scan finished before the kill");
        assert!(text.contains("matches"), "{text}");
    }
    let e = err(&client, "list_modules", json!({"pid": pid})).await;
    assert!(e.contains("no such process"), "{e}");
    client.cancel().await?;
    Ok(())
}
