//! The findings store's safety nets through the coordinator: a backup restored into a fresh
//! coordinator holds every finding and link (archived ones too), an export imported into
//! another coordinator twice adds everything once, and archived findings are still found.

mod common;

use common::{child_config, coordinator, tmp};
use mcp_testkit::{Client, Error, err, ok};
use serde_json::{Value, json};
use std::path::Path;

/// Records two notes linked to a tool call's finding; returns the three ids.
async fn record(c: &Client) -> Result<Vec<String>, Error> {
    let call = ok(c, "child__echo", json!({"text": "seen"})).await;
    let status = ok(c, "findings_query", json!({"tool": "child__echo"})).await;
    let call_id = status["items"][0]["id"]
        .as_str()
        .ok_or("no recorded call")?
        .to_string();
    assert_eq!(call["text"], "seen");
    let mut ids = vec![call_id.clone()];
    for title in ["first note", "second note"] {
        let r = ok(
            c,
            "findings_record",
            json!({"kind": "note", "title": title, "links": [{"to": call_id, "relation": "about"}]}),
        )
        .await;
        ids.push(r["finding"]["id"].as_str().ok_or("no id")?.to_string());
    }
    Ok(ids)
}

/// Each finding is there with its links, as `expected` holds them.
async fn all_found(c: &Client, expected: &[(String, Value)]) {
    for (id, original) in expected {
        let got = ok(c, "findings_get", json!({"id": id})).await;
        assert_eq!(&got, original, "{id} differs");
    }
}

async fn snapshot(c: &Client, ids: &[String]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for id in ids {
        out.push((id.clone(), ok(c, "findings_get", json!({"id": id})).await));
    }
    out
}

fn data_dir(cfg: &Path) -> std::path::PathBuf {
    cfg.parent().unwrap_or(Path::new(".")).join("data")
}

#[tokio::test]
async fn a_backup_restores_everything_into_a_fresh_coordinator() -> Result<(), Error> {
    let dir = tmp("archive-backup")?;
    let cfg = child_config(&dir)?;
    let c = coordinator(&cfg, &[]).await?;
    let ids = record(&c).await?;
    let before = snapshot(&c, &ids).await;
    // Everything archived: still found, no longer listed.
    let moved = ok(&c, "findings_archive", json!({"older_than_days": 0})).await;
    assert_eq!(moved["findings"], 3, "{moved}");
    assert_eq!(moved["links"], 2, "{moved}");
    all_found(&c, &before).await;
    let listed = ok(&c, "findings_query", json!({})).await;
    assert_eq!(listed["total"], 0, "{listed}");
    let status = ok(&c, "findings_status", json!({})).await;
    assert_eq!(status["archived"], 3, "{status}");
    let backup = ok(&c, "findings_backup", json!({})).await;
    assert_eq!(
        (backup["findings"].as_u64(), backup["links"].as_u64()),
        (Some(3), Some(2))
    );
    let path = backup["path"].as_str().ok_or("no backup path")?;
    assert!(
        path.starts_with(&data_dir(&cfg).display().to_string()),
        "{path}"
    );
    drop(c);

    // A fresh coordinator on a new data directory holding only the backup.
    let fresh = tmp("archive-restored")?;
    let cfg2 = child_config(&fresh)?;
    std::fs::create_dir_all(data_dir(&cfg2))?;
    std::fs::copy(path, data_dir(&cfg2).join("findings.sqlite3"))?;
    let c2 = coordinator(&cfg2, &[]).await?;
    all_found(&c2, &before).await;
    let listed = ok(&c2, "findings_query", json!({})).await;
    assert_eq!(listed["total"], 3, "{listed}");
    Ok(())
}

#[tokio::test]
async fn an_export_imports_once_however_often() -> Result<(), Error> {
    let dir = tmp("archive-export")?;
    let cfg = child_config(&dir)?;
    let c = coordinator(&cfg, &[]).await?;
    let ids = record(&c).await?;
    let before = snapshot(&c, &ids).await;
    let out = ok(&c, "findings_export", json!({"name": "mine.jsonl"})).await;
    assert_eq!(
        (out["findings"].as_u64(), out["links"].as_u64()),
        (Some(3), Some(2)),
        "{out}"
    );
    // Only a file name is accepted, never a path.
    let e = err(&c, "findings_export", json!({"name": "../escape.jsonl"})).await;
    assert!(
        e.contains("`name`") && e.contains("a file name in exports/"),
        "{e}"
    );
    let e = err(&c, "findings_import", json!({"name": "missing.jsonl"})).await;
    assert!(e.contains("`name`") && e.contains("cannot open"), "{e}");
    let path = out["path"].as_str().ok_or("no path")?.to_string();
    drop(c);

    let other = tmp("archive-import")?;
    let cfg2 = child_config(&other)?;
    let exports = data_dir(&cfg2).join("exports");
    std::fs::create_dir_all(&exports)?;
    std::fs::copy(&path, exports.join("theirs.jsonl"))?;
    let c2 = coordinator(&cfg2, &[]).await?;
    let first = ok(&c2, "findings_import", json!({"name": "theirs.jsonl"})).await;
    assert_eq!(
        (first["findings"].as_u64(), first["links"].as_u64()),
        (Some(3), Some(2))
    );
    let again = ok(&c2, "findings_import", json!({"name": "theirs.jsonl"})).await;
    assert_eq!(
        (again["findings"].as_u64(), again["links"].as_u64()),
        (Some(0), Some(0))
    );
    all_found(&c2, &before).await;
    Ok(())
}
