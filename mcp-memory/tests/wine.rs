//! The Windows build of the fixture (mingw: memfix.exe + memfix_dll.dll) running under Wine
//! with a fresh WINEPREFIX: modules at the bases the program itself prints
//! (`GetModuleHandle`), scans, and a pointer chain rooted in the DLL.
//! Needs `wine` and mingw (installed by scripts/setup.sh); without them, `skipped` (a failure
//! under REQUIRE_WINE / REQUIRE_MINGW / MCP_SUITE_STRICT).

mod common;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn wine_process_modules_scans_and_pointer_chain() -> TestResult {
    if !wine64_available() {
        return Ok(());
    }
    let exe = fixture_dir().join("memfix.exe");
    if !exe.exists() {
        skipped(
            "REQUIRE_MINGW",
            "memfix.exe was not built (x86_64-w64-mingw32-gcc is missing)",
        );
        return Ok(());
    }
    let prefix = WinePrefix::new(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "memfix");
    let cmd = prefix.command(&exe);
    // The first start creates the prefix (20-40 s here).
    let mut fx = Fixture::spawn(cmd);
    let client = start(&[]).await?;

    let procs = ok(
        &client,
        "list_processes",
        json!({"name_contains": "memfix.exe"}),
    )
    .await;
    let game = procs["items"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|p| {
                p["is_wine"] == true
                    && p["main_image"]
                        .as_str()
                        .is_some_and(|m| m.ends_with("memfix.exe"))
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("no Wine process running memfix.exe in {procs}"));
    let pid = game["pid"].as_u64().unwrap_or(0);

    let mods = ok(&client, "list_modules", json!({"pid": pid, "limit": 1000})).await;
    let find = |name: &str| -> Value {
        mods["items"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {mods}"))
    };
    let exe_mod = find("memfix.exe");
    assert_eq!(parse_hex(&exe_mod["base"]), fx.addr("exe_base"));
    assert_eq!(exe_mod["kind"], "pe");
    assert_eq!(exe_mod["bits"], 64);
    assert_eq!(
        parse_hex(&find("memfix_dll.dll")["base"]),
        fx.addr("lib_base")
    );
    assert!(parse_hex(&exe_mod["end"]) > fx.addr("exe_static"));

    let lib_off = fx.addr("lib_static") - fx.addr("lib_base");
    let v = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": format!("memfix_dll.dll+0x{lib_off:X}"), "type": "u32"}),
    )
    .await;
    assert_eq!(v["values"], json!([0x0DD5EED5u32]));

    for (key, value) in [("exe_static", 0x5EED1234u32), ("heap_value", 0x7A11CE55)] {
        let s = ok(
            &client,
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": value}),
        )
        .await;
        assert_eq!(match_addrs(&s), vec![fx.addr(key)], "{key}: {s}");
    }
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "value": 271828}),
    )
    .await;
    assert_eq!(match_addrs(&s), vec![fx.addr("counter")]);
    fx.change();
    let n = ok(
        &client,
        "scan_next",
        json!({"scan_id": s["scan_id"], "condition": "changed"}),
    )
    .await;
    assert_eq!(match_addrs(&n), vec![fx.addr("counter")]);

    let root_off = fx.addr("root") - fx.addr("lib_base");
    let expected = format!("memfix_dll.dll+0x{root_off:X}");
    let p = ok(
        &client,
        "pointer_scan",
        json!({"pid": pid, "target": hex(fx.addr("chain_value")), "max_depth": 3,
               "max_offset": 256, "pointer_size": 8, "modules": ["memfix_dll.dll"]}),
    )
    .await;
    let chain = p["chains"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["base"] == expected.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("no chain from {expected}: {p}"));
    assert_eq!(chain["offsets"], json!(["0x10", "0x28", "0x1C"]));
    let r = ok(
        &client,
        "resolve_pointer",
        json!({"pid": pid, "base": expected, "offsets": [16, 40, 28], "pointer_size": 8}),
    )
    .await;
    assert_eq!(parse_hex(&r["final_address"]), fx.addr("chain_value"));

    // The prompt's pid completion offers the game under Wine before native processes of the
    // same name; the guide it fills in names the .exe and the pointer width of its PE code
    // (a 64-bit build here).
    let c = client
        .complete_prompt_argument("find_value_pointer", "pid", "memfix", None)
        .await?;
    assert_eq!(c.values.first(), Some(&pid.to_string()), "{c:?}");
    let args = json!({"pid": pid.to_string(), "value": "271829"});
    let g = client
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("find_value_pointer")
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await?;
    let text: String = g
        .messages
        .iter()
        .filter_map(|m| m.content.as_text().map(|t| t.text.clone()))
        .collect();
    assert!(
        text.contains("(memfix.exe)") && text.contains("\"pointer_size\": 8"),
        "{text}"
    );
    client.cancel().await?;
    drop(fx);
    Ok(())
}
