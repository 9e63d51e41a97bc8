//! The live game over MCP: the fixture game (1.13c layout behind D2Client.dll+0x11BBFC) read
//! by `find_game`, `character`, `inventory` and `units`, natively and under Wine.

mod common;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn native_game_character_inventory_units_and_live_change() -> TestResult {
    let mut game = Game::native();
    let pid = game.pid() as u64;
    let client = start(&[]).await?;
    check_game(&client, pid, &game, 1_500_000, false).await;
    game.signal();
    let c = ok(
        &client,
        "character",
        json!({"pid": pid, "version": "1.13c"}),
    )
    .await;
    assert_eq!(c["experience"], 1_501_000);
    game.gain();
    let c = ok(&client, "character", json!({"pid": pid})).await;
    assert_eq!(c["experience"], 1_502_000);
    // The resource carries the same character.
    let r = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(format!(
            "d2://character/{pid}"
        )))
        .await?;
    let text = match r.contents.first() {
        Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) => text.clone(),
        _ => String::new(),
    };
    let v: Value = serde_json::from_str(&text)?;
    assert_eq!(v["name"], "FixtureHero");
    assert_eq!(v["experience"], 1_502_000);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn wine_game_reads_the_same() -> TestResult {
    if !wine64_available() {
        return Ok(());
    }
    let dir = game_dir();
    let prefix = WinePrefix::new(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "d2game");
    let mut cmd = prefix.command(&dir.join("d2game.exe"));
    cmd.current_dir(dir);
    let mut game = Game::spawn(cmd);
    let client = start(&[]).await?;
    let found = ok(&client, "find_game", json!({})).await;
    let pid = found["games"]
        .as_array()
        .and_then(|g| {
            g.iter()
                .find(|x| x["is_wine"] == true && x["name"] == "d2game.exe")
        })
        .and_then(|x| x["pid"].as_u64())
        .unwrap_or_else(|| panic!("no Wine game in {found}"));
    check_game(&client, pid, &game, 1_500_000, true).await;
    game.gain();
    let c = ok(&client, "character", json!({"pid": pid})).await;
    assert_eq!(c["experience"], 1_501_000);
    client.cancel().await?;
    drop(game);
    Ok(())
}

#[tokio::test]
async fn live_bad_input_is_a_clear_error() -> TestResult {
    let game = Game::native();
    let pid = game.pid();
    let client = start(&[]).await?;
    let me = std::process::id();
    let e = err(&client, "character", json!({"pid": me})).await;
    assert!(e.contains("`pid`") && e.contains("not Diablo II"), "{e}");
    let e = err(&client, "character", json!({"pid": 999_999_999u32})).await;
    assert!(e.contains("`pid`") && e.contains("does not exist"), "{e}");
    let e = err(&client, "character", json!({"pid": pid, "version": "1.99"})).await;
    assert!(e.contains("`version`") && e.contains("1.13c"), "{e}");
    let e = err(
        &client,
        "units",
        json!({"pid": pid, "type": "monster", "limit": 5000}),
    )
    .await;
    assert!(e.contains("`limit`"), "{e}");
    let e = err(&client, "units", json!({"pid": pid, "type": "tile"})).await;
    assert!(e.contains("tile"), "{e}");
    let e = err(
        &client,
        "units",
        json!({"pid": pid, "type": "monster", "limit": 0}),
    )
    .await;
    assert!(e.contains("`limit`"), "{e}");
    let e = err(
        &client,
        "inventory",
        json!({"pid": pid, "location": "pocket"}),
    )
    .await;
    assert!(e.contains("`location`") && e.contains("stash"), "{e}");
    // Without a pid: this game is found, or (others running) the answer names the pids.
    let a = call(&client, "character", json!({})).await;
    if a.is_error {
        assert!(a.text.contains(&pid.to_string()), "{}", a.text);
    } else {
        assert_eq!(a.data["name"], "FixtureHero");
    }
    drop(game);
    let e = err(&client, "character", json!({"pid": pid})).await;
    assert!(e.contains("`pid`"), "{e}");
    let v = ok(&client, "lookup", json!({"kind": "area", "id": 109})).await;
    assert_eq!(v["matches"][0]["name"], "Harrogath");
    client.cancel().await?;
    Ok(())
}
