//! `analyze_character` end to end: the coordinator with the real mcp-d2 and mcp-memory
//! children against the fixture game of `tests/fixtures/d2game` (native build).

mod common;

use common::{coordinator, server, sibling, tmp, write_config};
use mcp_testkit::*;
use serde_json::json;
use std::path::{Path, PathBuf};

#[tokio::test]
async fn analyze_character_links_character_inventory_and_snapshot() -> TestResult {
    let game_dir = build_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh"),
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        "d2game-coordinator",
        "needs cc and gcc-mingw-w64-x86-64, installed by scripts/test.sh",
    );
    let mut cmd = std::process::Command::new(game_dir.join("d2game"));
    cmd.arg(game_dir.join("D2Client.dll"));
    let game = LineProcess::spawn(cmd);
    let pid = game.pid();
    let dir = tmp("coord-analyze")?;
    let config = server("d2", sibling("mcp-d2")?.display())
        + &server("memory", sibling("mcp-memory")?.display());
    let cfg = write_config(&dir, "c.toml", &config)?;
    let client = coordinator(&cfg, &[]).await?;
    let a = ok(&client, "analyze_character", json!({"pid": pid})).await;
    assert_eq!(a["character"]["result"]["name"], "FixtureHero", "{a}");
    assert_eq!(a["inventory"]["result"]["count"], 3);
    assert!(a["snapshot"]["result"]["snapshot_id"].is_string(), "{a}");
    assert!(a.get("traffic").is_none());
    let g = ok(&client, "findings_get", json!({"id": a["analysis_id"]})).await;
    assert_eq!(g["finding"]["kind"], "character_analysis");
    assert_eq!(g["links"].as_array().map(Vec::len), Some(3), "{g}");
    assert!(
        g["links"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["relation"] == "includes")
    );
    // The snapshot it took is usable right away through the memory child.
    let snap = a["snapshot"]["result"]["snapshot_id"].clone();
    let d = ok(
        &client,
        "memory__diff_snapshots",
        json!({"before": snap, "after": snap, "value_type": "u32"}),
    )
    .await;
    assert_eq!(d["changed_cells"], 0);
    // A report of the analysis: the character sheet and items cite their findings, the
    // graph is drawn, and it reads back as report://{id}.
    for (format, mime, picture) in [
        ("html", "text/html", "<svg"),
        ("markdown", "text/markdown", "data:image/svg+xml;base64,"),
    ] {
        let r = ok(
            &client,
            "report_generate",
            json!({"analysis_id": a["analysis_id"], "format": format}),
        )
        .await;
        assert_eq!(r["findings"], 4, "{r}");
        assert_eq!(r["links"], 3, "{r}");
        let uri = r["uri"].as_str().ok_or("no uri")?;
        let read = client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
            .await?;
        let Some(rmcp::model::ResourceContents::TextResourceContents {
            text, mime_type, ..
        }) = read.contents.first()
        else {
            panic!("{uri}: no text");
        };
        assert_eq!(mime_type.as_deref(), Some(mime));
        assert_eq!(
            std::fs::read_to_string(r["path"].as_str().unwrap_or(""))?,
            *text
        );
        let character = a["character"]["finding"].as_str().unwrap_or("?");
        for expected in [
            "FixtureHero",
            "Character sheet",
            "Items",
            picture,
            character,
        ] {
            assert!(
                text.contains(expected),
                "{format} report lacks {expected:?}"
            );
        }
        assert!(
            text.contains(&format!("From [{character}](#{character})"))
                || text.contains(&format!("From <a href=\"#{character}\">{character}</a>")),
            "{text}"
        );
    }
    let e = err(
        &client,
        "report_generate",
        json!({"analysis_id": a["analysis_id"], "finding_ids": [a["analysis_id"]]}),
    )
    .await;
    assert!(
        e.contains("give exactly one of analysis_id, finding_ids"),
        "{e}"
    );
    let e = err(
        &client,
        "report_generate",
        json!({"finding_ids": ["f-none"]}),
    )
    .await;
    assert!(e.contains("`finding_ids`") && e.contains("f-none"), "{e}");
    let e = err(&client, "analyze_character", json!({"pid": 999_999_999u32})).await;
    assert!(
        e.contains("d2__character failed") && e.contains("pid"),
        "{e}"
    );
    client.cancel().await?;

    // The steps go to the servers of each kind, whatever their prefixes: mcp-d2 under a
    // name the coordinator cannot guess (a copy), its kind given; mcp-memory as `mem`.
    let renamed = dir.join("game-reader");
    std::fs::copy(sibling("mcp-d2")?, &renamed)?;
    let config = format!(
        "{}kind = \"d2\"\nprefix = \"game\"\n{}prefix = \"mem\"\n",
        server("d2", renamed.display()),
        server("memory", sibling("mcp-memory")?.display())
    );
    let dir2 = tmp("coord-analyze-kinds")?;
    let cfg = write_config(&dir2, "c.toml", &config)?;
    let client = coordinator(&cfg, &[]).await?;
    let a = ok(&client, "analyze_character", json!({"pid": pid})).await;
    assert_eq!(a["character"]["result"]["name"], "FixtureHero", "{a}");
    assert_eq!(a["character"]["tool"], "game__character", "{a}");
    assert_eq!(a["snapshot"]["tool"], "mem__snapshot", "{a}");
    // The player unit's size comes from the 1.13c layouts (D2UnitAny, 236 bytes).
    assert_eq!(a["snapshot"]["result"]["length"], 236, "{a}");
    // Without a network server, a capture cannot be decoded: said, naming the kind.
    let e = err(
        &client,
        "analyze_character",
        json!({"pid": pid, "capture_id": "cap-1"}),
    )
    .await;
    assert!(e.contains("\"network\"") && e.contains("d2_decode"), "{e}");
    client.cancel().await?;
    drop(game);
    Ok(())
}
