//! The live tools against the game as its players run it: the fixture's `Game.exe` and PE32
//! DLLs (tests/fixtures/d2game, win32/) under 32-bit Wine, an i386 process whose modules sit
//! at their 1.13c bases and whose structures are separate heap allocations with 4-byte
//! pointers between them. Every call goes through MCP (rmcp's client) to the real server.
//! Needs 32-bit Wine: says so and skips without it, fails without it when REQUIRE_WINE32 is set.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// The fixture game, built once (the win32/ directory needs the i686 mingw toolchain).
fn game_dir() -> std::path::PathBuf {
    build_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh"),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "d2game-memory",
        "needs gcc-mingw-w64-i686, installed by scripts/setup.sh",
    )
    .join("win32")
}

fn spawn_game(prefix: &WinePrefix, dir: &Path, args: &[&str]) -> LineProcess {
    let mut cmd = prefix.command(&dir.join("Game.exe"));
    cmd.args(args).current_dir(dir);
    LineProcess::spawn(cmd)
}

/// Sends a command to the game and waits for its answer line.
fn tell(game: &mut LineProcess, command: &str, answer: &str) {
    game.command(command);
    assert_eq!(game.line().trim(), answer);
}

async fn game_pid(client: &Client) -> u64 {
    let procs = ok(
        client,
        "list_processes",
        json!({"name_contains": "Game.exe"}),
    )
    .await;
    procs["items"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["is_wine"] == true))
        .and_then(|p| p["pid"].as_u64())
        .unwrap_or_else(|| panic!("no Wine process running Game.exe in {procs}"))
}

async fn read_u32(client: &Client, pid: u64, address: &str) -> u64 {
    let v = ok(
        client,
        "read_value",
        json!({"pid": pid, "address": address, "type": "u32"}),
    )
    .await;
    v["values"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("{address}: {v}"))
}

#[tokio::test]
async fn live_tools_on_the_32_bit_game_under_wine32() -> TestResult {
    if !wine32_available("live_tools_on_the_32_bit_game_under_wine32") {
        return Ok(());
    }
    let dir = game_dir();
    let tmp = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "wine32-memory")?;
    let prefix = WinePrefix::new(tmp.path(), "game32");
    let mut game = spawn_game(&prefix, &dir, &[]);
    let player = game.addr("player");
    let client = start(&[]).await?;
    let pid = game_pid(&client).await;

    // Modules: PE32 images at their preferred bases, 32 bits.
    let mods = ok(&client, "list_modules", json!({"pid": pid, "limit": 1000})).await;
    let module = |name: &str| -> Value {
        mods["items"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {mods}"))
    };
    for (name, base) in [
        ("D2Client.dll", 0x6FAB_0000u64),
        ("D2Common.dll", 0x6FD5_0000),
    ] {
        let m = module(name);
        assert_eq!(parse_hex(&m["base"]), base, "{m}");
        assert_eq!(m["kind"], "pe");
        assert_eq!(m["bits"], 32, "{m}");
    }
    assert_eq!(module("Game.exe")["bits"], 32);
    let regions = ok(
        &client,
        "list_regions",
        json!({"pid": pid, "module": "D2Client.dll", "writable": true}),
    )
    .await;
    assert!(regions["total"].as_u64().unwrap_or(0) >= 1, "{regions}");

    // The player pointer (a ptr32) and the structures it leads to.
    let p = ok(
        &client,
        "read_value",
        json!({"pid": pid, "address": "D2Client.dll+0x11BBFC", "type": "ptr32"}),
    )
    .await;
    assert_eq!(parse_hex(&p["values"][0]), player, "{p}");
    let stats = read_u32(&client, pid, &hex(player + 0x5C)).await;
    let full = read_u32(&client, pid, &hex(stats + 0x48)).await;
    let exp_cell = full + 8 * 13 + 4;
    let life_cell = full + 8 * 6 + 4;
    let path = read_u32(&client, pid, &hex(player + 0x2C)).await;
    assert_eq!(read_u32(&client, pid, &hex(exp_cell)).await, 1_500_000);
    let bytes = ok(
        &client,
        "read_memory",
        json!({"pid": pid, "address": hex(player), "length": 16}),
    )
    .await;
    assert!(
        bytes.to_string().contains("2A"),
        "unit id 42 at +0x0C: {bytes}"
    );
    let s = ok(
        &client,
        "read_struct",
        json!({"pid": pid, "address": hex(player), "layout": "D2UnitAny"}),
    )
    .await;
    let field = |name: &str| -> Value {
        s["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {s}"))
    };
    assert_eq!(field("unit_id")["value"], 42);
    assert_eq!(field("path")["target"][0]["value"], 5120, "{s}");
    assert_eq!(parse_hex(&field("stats")["value"]), stats);
    let inferred = ok(
        &client,
        "infer_struct",
        json!({"pid": pid, "addresses": [hex(player)], "size": 0xEC}),
    )
    .await;
    assert!(
        inferred["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x.to_string().contains("pointer"))),
        "{inferred}"
    );

    // Scans: a value, a byte pattern, an unknown value; next scans after the game changes.
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "value": 1_500_000}),
    )
    .await;
    let found = match_addrs(&s);
    assert!(found.contains(&exp_cell), "{s}");
    let pattern = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "pattern": "46 69 78 74 75 72 65 48 65 72 6F"}),
    )
    .await;
    assert!(
        pattern["match_count"].as_u64().unwrap_or(0) >= 1,
        "{pattern}"
    );
    let unknown = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "writable_only": true}),
    )
    .await;
    let before = ok(
        &client,
        "snapshot",
        json!({"pid": pid, "address": hex(path), "length": 0x40}),
    )
    .await;
    tell(&mut game, "gain", "gained");
    tell(&mut game, "step", "stepped");
    let n = ok(
        &client,
        "scan_next",
        json!({"scan_id": s["scan_id"], "condition": "increased"}),
    )
    .await;
    assert!(match_addrs(&n).contains(&exp_cell), "{n}");
    let d = ok(
        &client,
        "scan_next",
        json!({"scan_id": unknown["scan_id"], "condition": "decreased"}),
    )
    .await;
    let r = ok(
        &client,
        "scan_results",
        json!({"scan_id": unknown["scan_id"], "limit": 1000}),
    )
    .await;
    assert!(
        r["items"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| parse_hex(&x["address"]) == life_cell)),
        "life at {life_cell:#x} not among the decreased values: {d}"
    );
    let after = ok(
        &client,
        "snapshot",
        json!({"pid": pid, "address": hex(path), "length": 0x40}),
    )
    .await;
    let diff = ok(
        &client,
        "diff_snapshots",
        json!({"before": before["snapshot_id"], "after": after["snapshot_id"], "value_type": "u16"}),
    )
    .await;
    assert_eq!(parse_hex(&diff["items"][0]["address"]), path + 2, "{diff}");

    // A watch sees the game change while it samples.
    let watch = {
        let c = client.peer().clone();
        let address = hex(exp_cell);
        tokio::spawn(async move {
            let args = json!({"pid": pid, "address": address, "value_type": "u32",
                              "interval_ms": 50, "samples": 40});
            let params = rmcp::model::CallToolRequestParams::new("watch")
                .with_arguments(args.as_object().cloned().unwrap_or_default());
            c.call_tool(params).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tell(&mut game, "gain", "gained");
    let w = watch.await??;
    let w = w.structured_content.unwrap_or(Value::Null);
    assert!(w["change_count"].as_u64().unwrap_or(0) >= 1, "{w}");

    // Pointer chains from D2Client.dll's statics to the experience cell, with the process's
    // own 4-byte pointers. Every distinct chain is listed, also those that share a node with
    // another (the stat list here: through its base array, which the heap may have put just
    // before the full one, and through the full array's pointer).
    let chains = ok(
        &client,
        "pointer_scan",
        json!({"pid": pid, "target": hex(exp_cell), "max_depth": 3, "max_offset": 256,
               "modules": ["D2Client.dll"]}),
    )
    .await;
    let wanted = json!(["0x5C", "0x48", "0x6C"]);
    let listed = |offsets: &Value| {
        chains["chains"].as_array().is_some_and(|c| {
            c.iter()
                .any(|x| x["base"] == "D2Client.dll+0x11BBFC" && x["offsets"] == *offsets)
        })
    };
    assert!(listed(&wanted), "{chains}");
    // Where the heap put the base stat array within 256 bytes below the experience cell, the
    // chain through it shares the stat list node with the real one, and is listed as well.
    let base_arr = read_u32(&client, pid, &hex(stats + 0x24)).await;
    if base_arr < exp_cell && exp_cell - base_arr <= 256 {
        let short = json!(["0x5C", "0x24", format!("0x{:X}", exp_cell - base_arr)]);
        assert!(listed(&short), "{short} missing: {chains}");
    }
    // Every chain listed leads to the target.
    for c in chains["chains"].as_array().into_iter().flatten() {
        let r = ok(
            &client,
            "resolve_pointer",
            json!({"pid": pid, "base": c["base"], "offsets": c["offsets"]}),
        )
        .await;
        assert_eq!(parse_hex(&r["final_address"]), exp_cell, "{c}");
    }
    let followed = ok(
        &client,
        "resolve_pointer",
        json!({"pid": pid, "base": "D2Client.dll+0x11BBFC", "offsets": ["0x5C", "0x48", "0x6C"]}),
    )
    .await;
    assert_eq!(parse_hex(&followed["final_address"]), exp_cell);

    // 32-bit code, decoded as x86 by default.
    let code = ok(
        &client,
        "disassemble_memory",
        json!({"pid": pid, "address": "D2Client.dll+0x1000", "count": 8}),
    )
    .await;
    assert_eq!(code["arch"], "x86", "{code}");

    // The game restarts with another heap history: every structure moves, and the chain
    // still leads to the experience.
    drop(game);
    let game = spawn_game(&prefix, &dir, &["--heap-shift"]);
    let pid2 = game_pid(&client).await;
    let player2 = game.addr("player");
    let stats2 = read_u32(&client, pid2, &hex(player2 + 0x5C)).await;
    let exp_cell2 = read_u32(&client, pid2, &hex(stats2 + 0x48)).await + 8 * 13 + 4;
    assert_ne!(
        exp_cell2, exp_cell,
        "the restart did not move the structures"
    );
    let rescan = ok(
        &client,
        "pointer_rescan",
        json!({"pointer_scan_id": chains["pointer_scan_id"], "pid": pid2,
               "target": hex(exp_cell2)}),
    )
    .await;
    assert!(
        rescan["chains"].as_array().is_some_and(|c| c
            .iter()
            .any(|x| x["base"] == "D2Client.dll+0x11BBFC" && x["offsets"] == wanted)),
        "the chain did not survive the restart: {rescan}"
    );
    drop(game);
    client.cancel().await?;
    Ok(())
}
