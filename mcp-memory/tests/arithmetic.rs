//! Address sums that leave the address space are refused over MCP (isError naming the
//! argument and the sum), never answered with a wrapped address: module offsets, pointer
//! chain offsets, pointer scan targets, inline layout offsets, and address + length of every
//! read. Against the native memory fixture (`tests/fixtures/memfix`).

mod common;
use common::*;
use serde_json::{Value, json};

const TOO_FAR: &str = "libmemfix.so+0xFFFFFFFFFFFFFFFF";

/// Calls `tool`, which must fail naming `field` with an address sum that `says`.
async fn refused(client: &Client, tool: &str, args: Value, field: &str, says: &str) {
    let e = err(client, tool, args.clone()).await;
    assert!(
        e.contains(&format!("`{field}`")),
        "{tool} {args}: {field} not named: {e}"
    );
    assert!(e.contains(says), "{tool} {args}: {e}");
    assert!(e.contains("accepted"), "{tool} {args}: {e}");
}

#[tokio::test]
async fn overflowing_address_sums_are_refused_naming_the_argument() -> TestResult {
    let fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&[]).await?;
    let lib = hex(fx.addr("lib_base"));
    let wrap64 = "+ 0xFFFFFFFFFFFFFFFF overflows 64 bits";

    // Module.dll+0xFFFFFFFFFFFFFFFF, wherever a location is taken.
    refused(
        &client,
        "read_value",
        json!({"pid": pid, "address": TOO_FAR, "type": "u32"}),
        "address",
        &format!("libmemfix.so base {lib} {wrap64}"),
    )
    .await;
    refused(
        &client,
        "resolve_pointer",
        json!({"pid": pid, "base": TOO_FAR, "offsets": [0], "pointer_size": 8}),
        "base",
        wrap64,
    )
    .await;
    refused(
        &client,
        "pointer_scan",
        json!({"pid": pid, "target": TOO_FAR, "max_depth": 1, "max_offset": 0,
               "pointer_size": 8}),
        "target",
        wrap64,
    )
    .await;

    // A chain offset that takes the pointer read below 0.
    let root_off = fx.addr("root") - fx.addr("lib_base");
    refused(
        &client,
        "resolve_pointer",
        json!({"pid": pid, "base": format!("libmemfix.so+0x{root_off:X}"),
               "offsets": ["0x10", "-0x7FFFFFFFFFFFFFFF"], "pointer_size": 8}),
        "offsets[1]",
        "- 0x7FFFFFFFFFFFFFFF goes below 0",
    )
    .await;
    // A 4-byte pointer cannot reach a 64-bit heap address.
    let e = err(
        &client,
        "pointer_scan",
        json!({"pid": pid, "target": hex(fx.addr("chain_value")), "max_depth": 1,
               "max_offset": 0, "pointer_size": 4}),
    )
    .await;
    assert!(
        e.contains("`target`") && e.contains("4-byte pointer"),
        "{e}"
    );

    // The rescan's target, on a real (small) scan.
    let s = ok(
        &client,
        "pointer_scan",
        json!({"pid": pid, "target": hex(fx.addr("chain_value")), "max_depth": 1,
               "max_offset": 64, "pointer_size": 8}),
    )
    .await;
    let id = s["pointer_scan_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    refused(
        &client,
        "pointer_rescan",
        json!({"pointer_scan_id": id, "target": TOO_FAR}),
        "target",
        wrap64,
    )
    .await;

    // An inline layout whose field offset is 2^64-1, and one whose array runs past the top.
    let recs = fx.addr("recs");
    refused(
        &client,
        "read_struct",
        json!({"pid": pid, "address": hex(recs), "layout": [
            {"name": "x", "offset": 8, "type": "f32"},
            {"name": "far", "offset": "0xFFFFFFFFFFFFFFFF", "type": "u32"}]}),
        "layout[1].offset",
        &format!(
            "{} + field \"far\" offset 0xFFFFFFFFFFFFFFFF overflows 64 bits",
            hex(recs)
        ),
    )
    .await;
    refused(
        &client,
        "read_struct",
        json!({"pid": pid, "address": hex(recs), "layout": [
            {"name": "arr", "offset": hex(u64::MAX - recs - 16), "type": "u64", "count": 8}]}),
        "layout[0].offset",
        "+ 64 bytes overflows 64 bits",
    )
    .await;

    // address + length of each read.
    let high = "0xFFFFFFFFFFFFFFF0";
    for (tool, args, what) in [
        (
            "read_memory",
            json!({"pid": pid, "address": high, "length": 32}),
            "0x20 bytes (length)",
        ),
        (
            "read_value",
            json!({"pid": pid, "address": high, "type": "u64", "count": 4}),
            "0x20 bytes (count 4 × 8)",
        ),
        (
            "snapshot",
            json!({"pid": pid, "address": high, "length": 4096}),
            "0x1000 bytes (length)",
        ),
        (
            "disassemble_memory",
            json!({"pid": pid, "address": high, "count": 10, "arch": "x64"}),
            "0x96 bytes (count 10 × 15)",
        ),
        (
            "watch",
            json!({"pid": pid, "address": "0xFFFFFFFFFFFFFFFE", "value_type": "u32", "interval_ms": 10,
                   "samples": 1}),
            "0x4 bytes (u32) overflows 64 bits",
        ),
    ] {
        refused(&client, tool, args, "address", what).await;
    }
    refused(
        &client,
        "infer_struct",
        json!({"pid": pid, "addresses": [hex(recs), high], "size": 64}),
        "addresses[1]",
        "0x40 bytes (size) overflows 64 bits",
    )
    .await;
    client.cancel().await?;

    // Writes are checked before anything is read or written.
    let writer = start(&["--allow-write"]).await?;
    refused(
        &writer,
        "write_memory",
        json!({"pid": pid, "address": high, "bytes": "00 ".repeat(32)}),
        "address",
        "0x20 bytes (bytes) overflows 64 bits",
    )
    .await;
    writer.cancel().await?;
    Ok(())
}
