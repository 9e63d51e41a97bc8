//! The live game over MCP: the fixture game (1.13c layout behind D2Client.dll+0x11BBFC) read
//! by `find_game`, `character`, `inventory` and `units`, natively and under Wine.

mod common;
use common::*;
use serde_json::{Value, json};

/// Asserts everything the fixture game holds; `exp` is the experience expected now.
async fn check_game(client: &Client, pid: u64, game: &Game, exp: u64, wine: bool) {
    let found = ok(client, "find_game", json!({})).await;
    let me = found["games"]
        .as_array()
        .and_then(|g| g.iter().find(|x| x["pid"] == pid))
        .cloned()
        .unwrap_or_else(|| panic!("pid {pid} not in {found}"));
    assert_eq!(me["version"], "1.13c", "{me}");
    assert_eq!(me["pd2"], false);
    assert_eq!(me["is_wine"], wine);
    assert!(
        me["recognised_by"]
            .as_str()
            .is_some_and(|r| r.contains("1.0.13.60")),
        "{me}"
    );
    let d2client = me["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["name"] == "D2Client.dll"))
        .map(|x| parse_hex(&x["base"]));
    assert_eq!(d2client, Some(parse_hex(&game.info["d2client"])));

    let c = ok(client, "character", json!({"pid": pid})).await;
    assert_eq!(c["name"], "FixtureHero");
    assert_eq!(c["class"], json!({"id": 3, "name": "Paladin"}));
    assert_eq!(c["level"], 24);
    assert_eq!(c["experience"], exp);
    assert_eq!(c["gold"], 12345);
    assert_eq!(c["stash_gold"], 250000);
    assert_eq!(c["stats"]["strength"], json!({"value": 45, "base": 25}));
    assert_eq!(c["stats"]["energy"], json!({"value": 15}));
    assert_eq!(c["stats"]["stat_points"], json!({"value": 5}));
    assert_eq!(c["stats"]["skill_points"], json!({"value": 3}));
    assert_eq!(
        [
            c["life"].clone(),
            c["max_life"].clone(),
            c["mana"].clone(),
            c["max_mana"].clone(),
            c["stamina"].clone(),
            c["max_stamina"].clone()
        ],
        [
            json!(300),
            json!(380),
            json!(80),
            json!(90),
            json!(200),
            json!(210)
        ]
    );
    assert_eq!(c["resistances"]["fire"], json!({"value": 40, "max": 80}));
    assert_eq!(
        c["resistances"]["lightning"],
        json!({"value": 30, "max": 75})
    );
    assert_eq!(c["resistances"]["cold"], json!({"value": 25, "max": 75}));
    assert_eq!(c["resistances"]["poison"], json!({"value": 15, "max": 75}));
    assert_eq!(
        c["bonuses"],
        json!({"faster_cast": 20, "faster_hit_recovery": 10, "attack_speed": 15, "run_walk": 20, "magic_find": 150, "gold_find": 50})
    );
    assert_eq!(c["position"], json!({"x": 5120, "y": 5088}));
    assert_eq!(c["act"], 2);
    assert_eq!(c["area"], json!({"id": 40, "name": "Lut Gholein"}));
    assert_eq!(c["unit_id"], 42);
    assert_eq!(
        parse_hex(&c["player_unit"]),
        parse_hex(&game.info["player"])
    );
    let max_life = c["all_stats"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["id"] == 7))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        max_life,
        json!({"id": 7, "name": "max_life", "value": 380, "base": 320})
    );

    let inv = ok(client, "inventory", json!({"pid": pid})).await;
    assert_eq!(
        (inv["count"].clone(), inv["total"].clone()),
        (json!(3), json!(3)),
        "{inv}"
    );
    assert_eq!(
        inv["by_location"],
        json!({"equipped": 1, "inventory": 1, "stash": 1})
    );
    let items = inv["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items[0]["unit_id"], 101);
    assert_eq!(items[0]["location"], "equipped");
    assert_eq!(items[0]["body_location"], 1);
    assert_eq!(items[0]["quality"], json!({"id": 7, "name": "unique"}));
    assert_eq!(items[0]["item_level"], 85);
    assert_eq!(items[1]["location"], "inventory");
    assert_eq!(
        (items[1]["x"].clone(), items[1]["y"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(items[1]["txt_file_no"], 522);
    assert_eq!(
        items[2]["flags"],
        json!({"identified": true, "socketed": true, "ethereal": true, "runeword": true})
    );
    assert_eq!(items[2]["location"], "stash");
    let stash = ok(
        client,
        "inventory",
        json!({"pid": pid, "location": "stash"}),
    )
    .await;
    assert_eq!(
        (stash["count"].clone(), stash["total"].clone()),
        (json!(3), json!(1))
    );
    let second = ok(
        client,
        "inventory",
        json!({"pid": pid, "offset": 1, "limit": 1}),
    )
    .await;
    assert_eq!(second["items"], json!([items[1]]));
    assert_eq!(second["next_offset"], 2);

    let monsters = ok(client, "units", json!({"pid": pid, "type": "monster"})).await;
    let m: Vec<(u64, u64, u64)> = monsters["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            (
                u["unit_id"].as_u64().unwrap_or(0),
                u["x"].as_u64().unwrap_or(0),
                u["y"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(m, vec![(7001, 5130, 5090), (7129, 5140, 5095)]);
    let objects = ok(client, "units", json!({"pid": pid, "type": "object"})).await;
    assert_eq!(objects["items"][0]["unit_id"], 9001);
    assert_eq!(
        (
            objects["items"][0]["x"].clone(),
            objects["items"][0]["y"].clone()
        ),
        (json!(5125), json!(5085))
    );
    let players = ok(client, "units", json!({"pid": pid, "type": "player"})).await;
    assert_eq!(players["total"], 1);
    assert_eq!(players["items"][0]["unit_id"], 42);
    let items = ok(
        client,
        "units",
        json!({"pid": pid, "type": "item", "limit": 2}),
    )
    .await;
    assert_eq!(items["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(items["next_offset"], 2, "{items}");
}

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
    if std::process::Command::new("wine")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: wine is not installed");
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
