//! The fixture game as its players run it: `Game.exe` and its PE32 DLLs (D2Client.dll at
//! 0x6FAB0000 and the others at their 1.13c bases, file version 1.0.13.60) under 32-bit Wine,
//! every structure its own heap allocation. Read through MCP by `find_game`, `character`,
//! `inventory` and `units`, then changed by the game (a step, experience) and read again; the
//! Project Diablo 2 variant is recognised; a D2Client.dll the loader had to move is read at
//! its live base.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// `Game.exe ARGS` from the fixture's win32 directory, in `prefix`.
fn game32(prefix: &WinePrefix, args: &[&str]) -> Game {
    let dir = game_dir().join("win32");
    let mut cmd = prefix.command(&dir.join("Game.exe"));
    cmd.args(args).current_dir(&dir);
    Game::spawn(cmd)
}

/// The `find_game` entry of the one Game.exe running; panics when there is none.
async fn found(client: &Client) -> Value {
    let all = ok(client, "find_game", json!({})).await;
    all["games"]
        .as_array()
        .and_then(|g| g.iter().find(|x| x["name"] == "Game.exe"))
        .cloned()
        .unwrap_or_else(|| panic!("no Game.exe in {all}"))
}

fn module_base(game: &Value, name: &str) -> Option<u64> {
    game["modules"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| parse_hex(&m["base"]))
}

#[tokio::test]
async fn game32_under_wine32_reads_changes_pd2_and_relocated() -> TestResult {
    if !wine32_available("game32_under_wine32_reads_changes_pd2_and_relocated") {
        return Ok(());
    }
    let tmp = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "wine32-d2")?;
    let prefix = WinePrefix::new(tmp.path(), "game32");
    let client = start(&[]).await?;

    // The game as 1.13c lays it out, every module at its preferred base.
    let mut game = game32(&prefix, &[]);
    let me = found(&client).await;
    let pid = me["pid"].as_u64().unwrap_or(0);
    assert_eq!(me["is_wine"], true, "{me}");
    for (name, base) in [
        ("D2Client.dll", 0x6FAB_0000u64),
        ("D2Common.dll", 0x6FD5_0000),
        ("D2Win.dll", 0x6F8E_0000),
        ("D2Gfx.dll", 0x6FA8_0000),
        ("Fog.dll", 0x6FF5_0000),
        ("Storm.dll", 0x6FBF_0000),
    ] {
        assert_eq!(module_base(&me, name), Some(base), "{name} in {me}");
    }
    check_game(&client, pid, &game, 1_500_000, true).await;
    game.step();
    game.gain();
    let c = ok(&client, "character", json!({"pid": pid})).await;
    assert_eq!(c["experience"], 1_501_000);
    assert_eq!(c["position"], json!({"x": 5121, "y": 5088}));
    assert_eq!(c["life"], 299);
    drop(game);

    // Project Diablo 2: the same game with ProjectDiablo.dll loaded.
    let game = game32(&prefix, &["--pd2"]);
    let me = found(&client).await;
    assert_eq!(me["pd2"], true, "{me}");
    assert!(module_base(&me, "ProjectDiablo.dll").is_some(), "{me}");
    let c = ok(&client, "character", json!({"pid": me["pid"]})).await;
    assert_eq!(c["name"], "FixtureHero");
    drop(game);

    // D2Client.dll's preferred base taken: the loader moved it, and every read follows it.
    let game = game32(&prefix, &["--relocate"]);
    let me = found(&client).await;
    let base = module_base(&me, "D2Client.dll");
    assert_eq!(base, Some(game.addr("d2client")));
    assert_ne!(base, Some(0x6FAB_0000), "D2Client.dll was not moved: {me}");
    let pid = me["pid"].as_u64().unwrap_or(0);
    check_game(&client, pid, &game, 1_500_000, true).await;
    drop(game);
    client.cancel().await?;
    Ok(())
}
