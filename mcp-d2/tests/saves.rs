//! Saves and stashes over MCP: the real files of `../shared/fixtures/d2s` (skipped with a
//! message when absent), a save written by the library's writer, bad and damaged files, and
//! the game's tables.

mod common;
use common::*;
use mcp_d2::save::{NewSave, write_save};
use mcp_d2::tables::Tables;
use serde_json::{Value, json};

fn stat(save: &Value, name: &str) -> Value {
    save["stats"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == name))
        .map(|x| x["value"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn fixture_saves_and_stashes_parse_as_their_readme_says() -> TestResult {
    let Some(dir) = saves_dir() else {
        return Ok(());
    };
    let client = start(&[&dir]).await?;
    let s = ok(&client, "parse_save", json!({"path": "d2v113c.d2s"})).await;
    assert_eq!(s["header"]["name"], "test");
    assert_eq!(s["header"]["class"], json!({"id": 1, "name": "Sorceress"}));
    assert_eq!(s["header"]["level"], 3);
    assert_eq!(s["header"]["status"]["raw"], 0x28);
    assert_eq!(s["header"]["status"]["expansion"], true);
    assert_eq!(s["checksum"]["valid"], true);
    for (name, v) in [
        ("strength", 10),
        ("energy", 35),
        ("dexterity", 25),
        ("vitality", 10),
        ("stat_points", 10),
        ("skill_points", 2),
        ("life", 40),
        ("max_life", 42),
        ("mana", 39),
        ("max_mana", 39),
        ("stamina", 76),
        ("max_stamina", 76),
        ("level", 3),
        ("experience", 1680),
    ] {
        assert_eq!(stat(&s, name), json!(v), "{name}");
    }
    assert_eq!(s["skills"].as_array().map(Vec::len), Some(30));

    // Every version-96 save has a valid checksum but the two damaged ones.
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "d2s") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let a = call(
            &client,
            "parse_save",
            json!({"path": path.to_string_lossy()}),
        )
        .await;
        assert!(!a.is_error, "{name}: {}", a.text);
        if a.data["header"]["version"] == 96 {
            let damaged = name == "err-eof.d2s" || name == "badcorpseheader.d2s";
            assert_eq!(a.data["checksum"]["valid"], !damaged, "{name}");
        }
    }
    let eof = ok(&client, "parse_save", json!({"path": "err-eof.d2s"})).await;
    assert!(eof["warnings"].to_string().contains("981"), "{eof}");
    let bad = ok(
        &client,
        "parse_save",
        json!({"path": "badcorpseheader.d2s"}),
    )
    .await;
    assert!(
        bad["sections"]["note"].to_string().contains("corpse"),
        "{}",
        bad["sections"]
    );
    for old in ["d2v107.d2s", "d2v108.d2s"] {
        let o = ok(&client, "parse_save", json!({"path": old})).await;
        assert_eq!(o["layout_supported"], false, "{old}");
        assert!(
            o["unsupported"]
                .as_str()
                .is_some_and(|u| u.contains("layout")),
            "{o}"
        );
        assert!(o["header"]["name"].as_str().is_some_and(|n| !n.is_empty()));
    }
    let golem = ok(&client, "parse_save", json!({"path": "golem.d2s"})).await;
    assert_eq!(golem["sections"]["golem"], true);
    let nomerc = ok(&client, "parse_save", json!({"path": "nomerc.d2s"})).await;
    assert_eq!(nomerc["sections"]["mercenary"], false);

    for stash in ["simple.sss", "plugy14.sss", "simple.d2x", "atma.d2x"] {
        let st = ok(&client, "parse_stash", json!({"path": stash})).await;
        assert!(
            st["pages"].as_array().is_some_and(|p| !p.is_empty()),
            "{stash}: {st}"
        );
    }
    let long = ok(&client, "parse_stash", json!({"path": "plugy14.sss"})).await;
    assert!(long.to_string().contains("a long long name of "));
    let page = long["pages"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == "a long long name of "))
        .cloned()
        .unwrap_or(Value::Null);
    let index = page["index"].as_u64().unwrap_or(0);
    let only = ok(
        &client,
        "parse_stash",
        json!({"path": "plugy14.sss", "page": index}),
    )
    .await;
    assert_eq!(only["pages"], json!([page]));
    let items = only["items"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len() as u64, page["located"].as_u64().unwrap_or(0));
    assert!(items.iter().all(|i| i["page"] == index), "{only}");
    for (bad, word) in [
        ("err-eof.d2x", "truncated"),
        ("err-string-too-long.d2x", "too long"),
        ("err-atma-unexpected-socketed.d2x", "socketed"),
    ] {
        let e = err(&client, "parse_stash", json!({"path": bad})).await;
        assert!(e.contains(word) && e.contains("`path`"), "{bad}: {e}");
    }

    let d = ok(
        &client,
        "diff_saves",
        json!({"path_a": "d2v112a.d2s", "path_b": "d2v113c.d2s"}),
    )
    .await;
    assert!(d["stats_changed"].as_array().is_some(), "{d}");
    let same = ok(
        &client,
        "diff_saves",
        json!({"path_a": "golem.d2s", "path_b": "golem.d2s"}),
    )
    .await;
    assert_eq!(same["identical"], true);

    // The resource carries the same parsed save.
    let uri = format!("d2://save/{}", dir.join("d2v113c.d2s").display());
    let r = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
        .await?;
    let text = match r.contents.first() {
        Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) => text.clone(),
        _ => String::new(),
    };
    let v: Value = serde_json::from_str(&text)?;
    assert_eq!(v["header"]["name"], "test");
    assert_eq!(v["items"]["total"], s["items"]["total"]);

    // Items page by page, and by location.
    let all = ok(&client, "parse_save", json!({"path": "sets.d2s"})).await;
    let total = all["items"]["total"].as_u64().unwrap_or(0);
    assert!(total > 2, "{all}");
    assert_eq!(all["item_list"]["located"], total);
    let second = ok(
        &client,
        "parse_save",
        json!({"path": "sets.d2s", "offset": 1, "limit": 1}),
    )
    .await;
    assert_eq!(second["items"]["items"], json!([all["items"]["items"][1]]));
    assert_eq!(second["items"]["next_offset"], 2);
    let equipped = ok(
        &client,
        "parse_save",
        json!({"path": "sets.d2s", "location": "equipped"}),
    )
    .await;
    let eq = equipped["items"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        Some(eq.len() as u64),
        all["item_list"]["by_location"]["equipped"].as_u64(),
        "{}",
        all["item_list"]
    );
    assert!(
        eq.iter()
            .all(|i| i["location_name"] == "equipped" || i["location_name"] == "socketed"),
        "{equipped}"
    );
    let e = err(
        &client,
        "parse_save",
        json!({"path": "sets.d2s", "location": "pocket"}),
    )
    .await;
    assert!(e.contains("`location`") && e.contains("stash"), "{e}");
    let e = err(
        &client,
        "parse_save",
        json!({"path": "sets.d2s", "limit": 0}),
    )
    .await;
    assert!(e.contains("`limit`"), "{e}");
    let e = err(
        &client,
        "parse_stash",
        json!({"path": "simple.sss", "page": 0}),
    )
    .await;
    assert!(e.contains("`page`"), "{e}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_written_save_parses_back_bit_exact() -> TestResult {
    let tables = Tables::load()?;
    let mut skills = [0u8; 30];
    skills[0] = 1;
    skills[10] = 20;
    skills[29] = 5;
    let spec = NewSave {
        name: "Writer".into(),
        class: 3,
        level: 42,
        status: 0x20,
        last_played: 1_700_000_000,
        map_id: 0x1234_5678,
        stats: vec![
            (0, 80),
            (1, 25),
            (2, 60),
            (3, 150),
            (4, 0),
            (5, 1),
            (6, 700),
            (7, 750),
            (8, 120),
            (9, 130),
            (10, 300),
            (11, 310),
            (12, 42),
            (13, 123_456_789),
            (14, 5000),
            (15, 400_000),
        ],
        skills,
    };
    let bytes = write_save(&spec, &tables)?;
    let dir =
        mcp_testkit::TestDir::new(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "written")?;
    let path = dir.join("Writer.d2s");
    std::fs::write(&path, &bytes)?;
    let client = start(&[&dir]).await?;
    let s = ok(&client, "parse_save", json!({"path": "Writer.d2s"})).await;
    assert_eq!(s["checksum"]["valid"], true);
    assert_eq!(s["header"]["name"], "Writer");
    assert_eq!(s["header"]["class"]["name"], "Paladin");
    assert_eq!(s["header"]["level"], 42);
    assert_eq!(s["header"]["map_id"], 0x1234_5678);
    assert_eq!(stat(&s, "experience"), 123_456_789);
    assert_eq!(stat(&s, "max_life"), 750);
    assert_eq!(stat(&s, "stash_gold"), 400_000);
    assert_eq!(s["skills"][10]["level"], 20);
    assert_eq!(s["skills"][10]["name"], "Zeal");
    // Parsed and written again: the same bytes.
    let parsed = mcp_d2::save::parse_save(&bytes, &tables)?;
    let again = write_save(&NewSave::from_save(&parsed)?, &tables)?;
    assert_eq!(again, bytes);

    // A wrong checksum is reported, and the save still parsed.
    let mut broken = bytes.clone();
    broken[12] ^= 0xFF;
    std::fs::write(dir.join("broken.d2s"), &broken)?;
    let b = ok(&client, "parse_save", json!({"path": "broken.d2s"})).await;
    assert_eq!(b["checksum"]["valid"], false);
    assert_eq!(b["header"]["name"], "Writer");
    // An absurd item count is reported, not allocated.
    let jm = bytes.windows(2).position(|w| w == b"JM").ok_or("no JM")?;
    let mut absurd = bytes.clone();
    absurd[jm + 2] = 0x60;
    absurd[jm + 3] = 0xEA;
    std::fs::write(dir.join("absurd.d2s"), &absurd)?;
    let a = ok(&client, "parse_save", json!({"path": "absurd.d2s"})).await;
    assert_eq!(a["item_list"]["count"], 60000);
    assert!(a["item_list"]["note"].is_string(), "{}", a["item_list"]);
    // An unknown version and a file that is not a save.
    let mut version = bytes.clone();
    version[4] = 200;
    std::fs::write(dir.join("v200.d2s"), &version)?;
    let e = err(&client, "parse_save", json!({"path": "v200.d2s"})).await;
    assert!(e.contains("`path`") && e.contains("200"), "{e}");
    std::fs::write(dir.join("notes.txt"), b"not a save at all, just text")?;
    let e = err(&client, "parse_save", json!({"path": "notes.txt"})).await;
    assert!(e.contains("not a Diablo II save"), "{e}");
    let e = err(&client, "parse_save", json!({"path": "/etc/passwd"})).await;
    assert!(e.contains("outside the allowed roots"), "{e}");
    // Every truncation of the written save: an answer, never a dead server.
    for len in 0..bytes.len() {
        std::fs::write(dir.join("cut.d2s"), &bytes[..len])?;
        let _ = call(&client, "parse_save", json!({"path": "cut.d2s"})).await;
    }
    let again = ok(&client, "parse_save", json!({"path": "Writer.d2s"})).await;
    assert_eq!(again["header"]["name"], "Writer");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn lookup_finds_by_id_and_name() -> TestResult {
    let client = start(&[]).await?;
    let s = ok(&client, "lookup", json!({"kind": "stat", "id": 80})).await;
    assert_eq!(s["matches"][0]["name"], "magic_find");
    let s = ok(
        &client,
        "lookup",
        json!({"kind": "skill", "name": "frozen orb"}),
    )
    .await;
    assert_eq!(
        s["matches"],
        json!([{"id": 64, "name": "Frozen Orb", "class": "Sorceress"}])
    );
    let c = ok(&client, "lookup", json!({"kind": "class", "name": "ass"})).await;
    assert_eq!(c["matches"][0]["id"], 6);
    let a = ok(
        &client,
        "lookup",
        json!({"kind": "area", "name": "worldstone"}),
    )
    .await;
    assert!(a["matches"].as_array().is_some_and(|m| m.len() >= 4));
    let e = err(&client, "lookup", json!({"kind": "area", "id": 999})).await;
    assert!(e.contains("`id`") && e.contains("999"), "{e}");
    let e = err(&client, "lookup", json!({"kind": "area"})).await;
    assert!(e.contains("id|name"), "{e}");
    let e = err(&client, "lookup", json!({"kind": "monster", "id": 1})).await;
    assert!(e.contains("monster"), "{e}");
    client.cancel().await?;
    Ok(())
}

/// Every tool is read-only with an output schema; `schemas/tools/mcp-d2.json` is current
/// (`UPDATE_SCHEMAS=1 cargo test -p mcp-d2 --test saves` rewrites it).
#[tokio::test]
async fn tools_are_listed_and_published_schemas_are_current() -> TestResult {
    let client = start(&[]).await?;
    let mut tools = client.list_all_tools().await?;
    let templates = client.list_all_resource_templates().await?;
    client.cancel().await?;
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "character",
            "diff_saves",
            "find_game",
            "inventory",
            "lookup",
            "parse_save",
            "parse_stash",
            "units"
        ]
    );
    for t in &tools {
        assert!(t.output_schema.is_some(), "{}", t.name);
        assert_eq!(
            t.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(true)
        );
    }
    let uris: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(uris, ["d2://character/{pid}", "d2://save/{path}"]);
    check_published_tools(
        &mut tools,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tools/mcp-d2.json"),
        "cargo test -p mcp-d2 --test saves",
    )?;
    Ok(())
}
