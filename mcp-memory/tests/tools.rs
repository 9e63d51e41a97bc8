//! Every tool over MCP (rmcp's client, the real binary) against the native fixture, whose
//! values and addresses the fixture itself prints.

mod common;
use common::*;
use serde_json::{Value, json};

const READ_TOOLS: &[&str] = &[
    "diff_snapshots",
    "disassemble_memory",
    "infer_struct",
    "list_modules",
    "list_processes",
    "list_regions",
    "pointer_rescan",
    "pointer_scan",
    "read_memory",
    "read_struct",
    "read_value",
    "resolve_pointer",
    "scan_next",
    "scan_results",
    "scan_start",
    "snapshot",
    "watch",
];

#[tokio::test]
async fn tools_are_listed_and_writes_only_when_allowed() -> TestResult {
    let client = start(&[]).await?;
    let tools = client.list_all_tools().await?;
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, READ_TOOLS);
    for t in &tools {
        assert!(t.output_schema.is_some(), "{} has no outputSchema", t.name);
        let ann = t.annotations.as_ref();
        assert_eq!(ann.and_then(|a| a.read_only_hint), Some(true), "{}", t.name);
    }
    client.cancel().await?;

    let client = start(&["--allow-write"]).await?;
    let tools = client.list_all_tools().await?;
    for name in ["write_memory", "undo_write"] {
        let t = tools.iter().find(|t| t.name == name);
        let ann = t.and_then(|t| t.annotations.as_ref());
        assert_eq!(ann.and_then(|a| a.destructive_hint), Some(true), "{name}");
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn processes_modules_regions_and_reads() -> TestResult {
    let fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&[]).await?;

    let procs = ok(
        &client,
        "list_processes",
        json!({"name_contains": "memfix"}),
    )
    .await;
    let me = procs["items"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["pid"] == pid))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(me["name"], "memfix", "{procs}");
    assert_eq!(me["is_wine"], false);
    assert!(me["threads"].as_u64() >= Some(1) && me["rss"].as_u64() > Some(0));

    let mods = ok(&client, "list_modules", json!({"pid": pid, "limit": 1000})).await;
    let find = |name: &str| {
        mods["items"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {mods}"))
    };
    assert_eq!(parse_hex(&find("memfix")["base"]), fx.addr("exe_base"));
    assert_eq!(
        parse_hex(&find("libmemfix.so")["base"]),
        fx.addr("lib_base")
    );
    assert_eq!(find("libmemfix.so")["kind"], "elf");

    // The module-relative form reads the same place as the absolute one.
    let lib_off = fx.addr("lib_static") - fx.addr("lib_base");
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": format!("LIBMEMFIX.so+0x{lib_off:x}"), "type": "u32"}),
    )
    .await;
    assert_eq!(v["values"], json!([0x0DD5EED5u32]));
    assert_eq!(parse_hex(&v["address"]), fx.addr("lib_static"));
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": hex(fx.addr("recs")), "type": "f32", "count": 4}),
    )
    .await;
    // recs[0] = {next (8 bytes), x = 1.5, y = 100.25}
    assert_eq!(v["values"][2], json!(1.5));
    assert_eq!(v["values"][3], json!(100.25));
    let name_at = fx.addr("recs") + 3 * 40 + 24;
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": name_at, "type": "cstring"}),
    )
    .await;
    assert_eq!(v["values"], json!(["rec-3"]));
    let m = ok(
        &client,
        "read_memory",
        json!({"pid": pid, "address": hex(fx.addr("exe_static")), "length": 4}),
    )
    .await;
    assert_eq!(m["data"], "34 12 ED 5E");
    let m = ok(
        &client,
        "read_memory",
        json!({"pid": pid, "address": hex(name_at), "length": 5, "format": "base64"}),
    )
    .await;
    assert_eq!(m["data"], "cmVjLTM=");
    assert_eq!(m["ascii"], "rec-3");

    let regions = ok(
        &client,
        "list_regions",
        json!({"pid": pid, "module": "libmemfix.so", "writable": true}),
    )
    .await;
    let items = regions["items"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty());
    assert!(items.iter().any(|r| {
        parse_hex(&r["start"]) <= fx.addr("root") && fx.addr("root") < parse_hex(&r["end"])
    }));
    assert!(
        items
            .iter()
            .all(|r| r["perms"].as_str().is_some_and(|p| p.contains('w')))
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn value_scans_find_exactly_the_known_addresses_and_narrow_down() -> TestResult {
    let mut fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&[]).await?;
    for (key, value) in [
        ("exe_static", json!(0x5EED1234u32)),
        ("lib_static", json!("0x0DD5EED5")),
        ("heap_value", json!(0x7A11CE55u32)),
        ("chain_value", json!(0xC0DEC0DEu32)),
    ] {
        let s = ok(
            &client,
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": value}),
        )
        .await;
        assert_eq!(match_addrs(&s), vec![fx.addr(key)], "{key}: {s}");
        assert_eq!(s["match_count"], 1);
    }

    // The counter: find it, change it by signal, narrow down.
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "value": 271828}),
    )
    .await;
    assert_eq!(match_addrs(&s), vec![fx.addr("counter")]);
    let id = s["scan_id"].as_str().unwrap_or_default().to_string();
    fx.signal();
    let n = ok(
        &client,
        "scan_next",
        json!({"scan_id": id, "condition": "increased_by", "value": 1}),
    )
    .await;
    assert_eq!(match_addrs(&n), vec![fx.addr("counter")]);
    let r = ok(&client, "scan_results", json!({"scan_id": id})).await;
    assert_eq!(r["total"], 1);
    assert_eq!(r["items"][0]["value"], 271829);
    assert_eq!(r["items"][0]["previous"], 271829);
    let n = ok(
        &client,
        "scan_next",
        json!({"scan_id": id, "condition": "unchanged"}),
    )
    .await;
    assert_eq!(n["match_count"], 1);
    let n = ok(
        &client,
        "scan_next",
        json!({"scan_id": id, "condition": "greater", "value": 300000}),
    )
    .await;
    assert_eq!(n["match_count"], 0);

    // Unknown initial value inside the executable's writable memory, then "increased":
    // only the counter went up.
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "module": "memfix"}),
    )
    .await;
    assert_eq!(s["kind"], "unknown");
    assert!(s["match_count"].as_u64() > Some(10), "{s}");
    let id = s["scan_id"].as_str().unwrap_or_default().to_string();
    fx.change();
    let n = ok(
        &client,
        "scan_next",
        json!({"scan_id": id, "condition": "increased"}),
    )
    .await;
    assert_eq!(match_addrs(&n), vec![fx.addr("counter")], "{n}");

    // Floats match when they round to the value; text and patterns find the names.
    let y2 = fx.addr("recs") + 2 * 40 + 12;
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "f32", "value": 300.75}),
    )
    .await;
    assert_eq!(match_addrs(&s), vec![y2], "{s}");
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "f32", "value": "301"}),
    )
    .await;
    assert_eq!(match_addrs(&s), vec![y2], "301 rounds 300.75: {s}");
    let names: Vec<u64> = (0..8).map(|i| fx.addr("recs") + i * 40 + 24).collect();
    let s = ok(&client, "scan_start", json!({"pid": pid, "text": "rec-"})).await;
    let found = match_addrs(&s);
    assert!(names.iter().all(|n| found.contains(n)), "{s}");
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "pattern": "72 65 63 2D ?? 00"}),
    )
    .await;
    assert_eq!(match_addrs(&s), names, "{s}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn pointer_scan_finds_the_fixture_chain_and_rescan_follows_a_move() -> TestResult {
    let mut fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&[]).await?;
    let root_off = fx.addr("root") - fx.addr("lib_base");
    let expected_base = format!("libmemfix.so+0x{root_off:X}");

    let r = ok(
        &client,
        "resolve_pointer",
        json!({"pid": pid, "base": expected_base, "offsets": ["0x10", 40, "0x1C"], "pointer_size": 8}),
    )
    .await;
    assert_eq!(
        parse_hex(&r["final_address"]),
        fx.addr("chain_value"),
        "{r}"
    );
    assert_eq!(r["hops"].as_array().map(Vec::len), Some(3));

    let s = ok(
        &client,
        "pointer_scan",
        json!({"pid": pid, "target": hex(fx.addr("chain_value")), "max_depth": 3,
               "max_offset": 256, "pointer_size": 8}),
    )
    .await;
    let chains = s["chains"].as_array().cloned().unwrap_or_default();
    let ours = chains.iter().find(|c| c["base"] == expected_base.as_str());
    let ours = ours.unwrap_or_else(|| panic!("no chain from {expected_base} in {s}"));
    assert_eq!(ours["offsets"], json!(["0x10", "0x28", "0x1C"]));
    let lens: Vec<usize> = chains
        .iter()
        .filter_map(|c| c["offsets"].as_array().map(Vec::len))
        .collect();
    assert!(
        lens.windows(2).all(|w| w[0] <= w[1]),
        "not shortest first: {lens:?}"
    );
    assert_eq!(s["depth_completed"], 3);

    // Move the end of the chain: the rescan keeps the chain (it still leads there).
    let id = s["pointer_scan_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let moved = fx.move_chain();
    assert_ne!(moved, fx.addr("chain_value"));
    let r = ok(
        &client,
        "pointer_rescan",
        json!({"pointer_scan_id": id, "target": hex(moved)}),
    )
    .await;
    let kept = r["chains"].as_array().cloned().unwrap_or_default();
    assert!(
        kept.iter().any(|c| c["base"] == expected_base.as_str()),
        "{r}"
    );
    assert!(r["chain_count"].as_u64() <= s["chain_count"].as_u64());
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn snapshots_diff_exactly_the_changed_cells_and_structures_are_inferred() -> TestResult {
    let mut fx = Fixture::native(&[]);
    let pid = fx.pid();
    let recs = fx.addr("recs");
    let client = start(&[]).await?;
    let a = ok(
        &client,
        "snapshot",
        json!({"pid": pid, "address": hex(recs), "length": 8 * 40}),
    )
    .await;
    fx.signal();
    let b = ok(
        &client,
        "snapshot",
        json!({"pid": pid, "address": hex(recs), "length": 8 * 40, "freeze": true}),
    )
    .await;
    assert!(b["frozen_threads"].as_u64() >= Some(1));
    let d = ok(
        &client,
        "diff_snapshots",
        json!({"before": a["snapshot_id"], "after": b["snapshot_id"], "value_type": "f32"}),
    )
    .await;
    let cells: Vec<(u64, Value, Value)> = d["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["cells"].as_array().cloned().unwrap_or_default())
        .map(|c| (parse_hex(&c["address"]), c["old"].clone(), c["new"].clone()))
        .collect();
    assert_eq!(d["changed_cells"], 2, "{d}");
    assert_eq!(cells[0], (recs + 2 * 40 + 8, json!(3.5), json!(4.5)));
    assert_eq!(cells[1].0, recs + 5 * 40 + 16);
    let d = ok(
        &client,
        "diff_snapshots",
        json!({"before": a["snapshot_id"], "after": b["snapshot_id"], "value_type": "u32"}),
    )
    .await;
    assert_eq!(d["items"][1]["cells"][0]["old"], 6);
    assert_eq!(d["items"][1]["cells"][0]["new"], 6 ^ 0xFF);
    // The process still runs after the freeze.
    fx.change();

    let addrs: Vec<String> = (0..8).map(|i| hex(recs + i * 40)).collect();
    let inf = ok(
        &client,
        "infer_struct",
        json!({"pid": pid, "addresses": addrs, "size": 40}),
    )
    .await;
    let kind_at = |off: u64| {
        inf["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|x| parse_hex(&x["offset"]) == off))
            .map(|x| x["kind"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(kind_at(0), "pointer64", "{inf}");
    assert_eq!(kind_at(8), "float");
    assert_eq!(kind_at(12), "float");
    assert_eq!(kind_at(16), "small_int");
    assert_eq!(kind_at(24), "string");
    let ptr = &inf["fields"][0];
    assert!(ptr["confidence"].as_f64() > Some(0.99), "{ptr}");

    let st = ok(
        &client,
        "read_struct",
        json!({"pid": pid, "address": hex(recs), "depth": 2, "layout": [
            {"name": "next", "offset": 0, "type": "ptr64", "layout": [
                {"name": "x", "offset": 8, "type": "f32"},
                {"name": "name", "offset": 24, "type": "cstring", "length": 16}
            ]},
            {"name": "id", "offset": "0x10", "type": "u32"},
            {"name": "xy", "offset": 8, "type": "f32", "count": 2}
        ]}),
    )
    .await;
    assert_eq!(st["fields"][0]["target"][1]["value"], "rec-1", "{st}");
    assert_eq!(st["fields"][0]["target"][0]["value"], 2.5);
    assert_eq!(st["fields"][1]["value"], 1);
    assert_eq!(st["fields"][2]["value"], json!([1.5, 100.25]));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn watch_sees_the_change_and_live_code_matches_objdump() -> TestResult {
    let mut fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&[]).await?;
    let counter = hex(fx.addr("counter"));
    let watch = tokio::spawn({
        let args = json!({"pid": pid, "address": counter, "value_type": "u32",
                          "interval_ms": 10, "samples": 300});
        let client_peer = client.peer().clone();
        async move {
            let Value::Object(map) = args else {
                return Value::Null;
            };
            client_peer
                .call_tool(rmcp::model::CallToolRequestParams::new("watch").with_arguments(map))
                .await
                .ok()
                .and_then(|r| r.structured_content)
                .unwrap_or(Value::Null)
        }
    });
    // The change comes well inside the 3 s window, after the first sample even on a busy
    // machine.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    fx.signal();
    let w = watch.await?;
    assert_eq!(w["samples"], 300, "{w}");
    assert_eq!(w["change_count"], 2, "{w}");
    assert_eq!(w["changes"][0]["value"], 271828);
    assert_eq!(w["changes"][1]["value"], 271829);

    // Live code against objdump's disassembly of the library on disk.
    let lib = fixture_dir().join("libmemfix.so");
    let out = std::process::Command::new("objdump")
        .args(["-d", "-M", "intel", "--no-show-raw-insn"])
        .arg(&lib)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let code_off = fx.addr("code") - fx.addr("lib_base");
    let mut mnemonics = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.ends_with("<memfix_root_slot>:") {
            inside = true;
            continue;
        }
        if inside {
            let Some((_, insn)) = line.split_once(":\t") else {
                break;
            };
            mnemonics.push(insn.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    assert!(!mnemonics.is_empty(), "objdump shows no memfix_root_slot");
    let d = ok(
        &client,
        "disassemble_memory",
        json!({"pid": pid, "address": format!("libmemfix.so+0x{code_off:x}"), "count": mnemonics.len()}),
    )
    .await;
    let ours: Vec<String> = d["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["mnemonic"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ours, mnemonics);
    assert_eq!(d["arch"], "x86_64");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn writes_are_undone() -> TestResult {
    let fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&["--allow-write"]).await?;
    let at = hex(fx.addr("exe_static"));
    let w = ok(
        &client,
        "write_memory",
        json!({"pid": pid, "address": at, "value": 7, "value_type": "u32"}),
    )
    .await;
    assert_eq!(w["old_bytes"], "34 12 ED 5E");
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": at, "type": "u32"}),
    )
    .await;
    assert_eq!(v["values"], json!([7]));
    // Read-only code can be patched too (through /proc/<pid>/mem), and restored.
    let code = hex(fx.addr("code"));
    let before = ok(
        &client,
        "read_memory",
        json!({"pid": pid, "address": code, "length": 2}),
    )
    .await;
    let w2 = ok(
        &client,
        "write_memory",
        json!({"pid": pid, "address": code, "bytes": "90 90"}),
    )
    .await;
    ok(&client, "undo_write", json!({"write_id": w2["write_id"]})).await;
    let after = ok(
        &client,
        "read_memory",
        json!({"pid": pid, "address": code, "length": 2}),
    )
    .await;
    assert_eq!(before["data"], after["data"]);
    ok(&client, "undo_write", json!({"write_id": w["write_id"]})).await;
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": at, "type": "u32"}),
    )
    .await;
    assert_eq!(v["values"], json!([0x5EED1234u32]));
    let e = err(&client, "undo_write", json!({"write_id": w["write_id"]})).await;
    assert!(e.contains("already undone"), "{e}");
    client.cancel().await?;
    Ok(())
}

/// The `find_value_pointer` prompt over MCP: listed with its arguments, filled in for a live
/// process, bad arguments named in the error; completion offers pids, types and scan ids.
#[tokio::test]
async fn find_value_pointer_prompt_and_completions() -> TestResult {
    use rmcp::model::GetPromptRequestParams;
    let fx = Fixture::native(&[]);
    let pid = fx.pid();
    let client = start(&[]).await?;

    let prompts = client.list_all_prompts().await?;
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["find_value_pointer"]);
    let mut args: Vec<(String, bool)> = prompts[0]
        .arguments
        .iter()
        .flatten()
        .map(|a| (a.name.clone(), a.required == Some(true)))
        .collect();
    args.sort();
    assert_eq!(
        args,
        [
            ("pid".to_string(), true),
            ("value".to_string(), false),
            ("value_type".to_string(), false)
        ]
    );
    assert!(
        prompts[0]
            .arguments
            .iter()
            .flatten()
            .all(|a| a.description.is_some())
    );

    let get = |a: Value| {
        let params = GetPromptRequestParams::new("find_value_pointer")
            .with_arguments(a.as_object().cloned().unwrap_or_default());
        let client = &client;
        async move { client.get_prompt(params).await }
    };
    let r = get(json!({"pid": pid.to_string(), "value": "271828"})).await?;
    let text: String = r
        .messages
        .iter()
        .filter_map(|m| m.content.as_text().map(|t| t.text.clone()))
        .collect();
    for step in [
        format!("scan_start {{\"pid\": {pid}, \"value_type\": \"u32\", \"value\": 271828}}"),
        "scan_next".to_string(),
        "pointer_scan".to_string(),
        format!("\"pointer_size\": {}", std::mem::size_of::<usize>()),
        "resolve_pointer".to_string(),
        "pointer_rescan".to_string(),
    ] {
        assert!(text.contains(&step), "{step} not in {text}");
    }
    for (bad, argument) in [
        (json!({}), "`pid`"),
        (json!({"pid": "twelve"}), "`pid`"),
        (
            json!({"pid": pid.to_string(), "value_type": "utf16"}),
            "`value_type`",
        ),
        (
            json!({"pid": pid.to_string(), "value": "-1", "value_type": "u8"}),
            "`value`",
        ),
        (json!({"pid": pid.to_string(), "vaule": "1"}), "`vaule`"),
    ] {
        let e = get(bad.clone())
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(argument), "{bad}: {e}");
    }

    let me = pid.to_string();
    let c = client
        .complete_prompt_argument("find_value_pointer", "pid", &me[..1], None)
        .await?;
    assert!(c.values.contains(&me) && c.values.len() <= 100, "{c:?}");
    assert!(c.values.iter().all(|p| p.starts_with(&me[..1])));
    let c = client
        .complete_prompt_argument("find_value_pointer", "pid", "memfix", None)
        .await?;
    assert!(c.values.contains(&me), "{c:?}");
    let c = client
        .complete_prompt_argument("find_value_pointer", "value_type", "f", None)
        .await?;
    assert_eq!(c.values, ["f32", "f64"]);
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "value": 271828}),
    )
    .await;
    let c = client
        .complete_prompt_argument("find_value_pointer", "scan_id", "scan-", None)
        .await?;
    assert_eq!(c.values, [s["scan_id"].as_str().unwrap_or_default()]);
    let e = client
        .complete_prompt_argument("no_such_prompt", "pid", "", None)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("unknown prompt"), "{e}");
    client.cancel().await?;
    Ok(())
}

/// `schemas/tools/mcp-memory.json` holds every tool's definition (write tools included) as the
/// server lists it. This test fails when the file is stale;
/// `UPDATE_SCHEMAS=1 cargo test -p mcp-memory --test tools` rewrites it.
#[tokio::test]
async fn published_tool_schemas_are_current() -> TestResult {
    let client = start(&["--allow-write"]).await?;
    let mut tools = client.list_all_tools().await?;
    client.cancel().await?;
    check_published_tools(
        &mut tools,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tools/mcp-memory.json"),
        "cargo test -p mcp-memory --test tools",
    )?;
    Ok(())
}
