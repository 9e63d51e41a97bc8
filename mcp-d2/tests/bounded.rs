//! Bounded answers: every fixture save and stash, and large ones built from them (a PlugY
//! shared stash of 500 pages, an ATMA stash and a save with thousands of items), answers
//! under 100 KB on the wire at the default and the largest `limit`, and paging through the
//! items (`offset` = `next_offset`) gives exactly the items the library locates.

mod common;
use common::*;
use mcp_d2::save::{self, SaveFile};
use mcp_d2::stash;
use mcp_d2::tables::Tables;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::path::Path;

/// The most bytes one answer may take on the wire (text blocks + structured content).
const WIRE_MAX: usize = 100_000;
/// The most bytes the structured JSON may take (the text repeats it).
const JSON_MAX: usize = 45_000;

/// Calls `tool` and returns (wire bytes, structured content); an error answer fails.
async fn sized(client: &Client, tool: &str, args: Value) -> Result<(usize, Value), Error> {
    let Value::Object(map) = args.clone() else {
        return Err("arguments must be an object".into());
    };
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map))
        .await?;
    let wire = serde_json::to_string(&r)?.len();
    assert!(
        !r.is_error.unwrap_or(false),
        "{tool} {args} failed: {:?}",
        r.content
    );
    let data = r.structured_content.unwrap_or(Value::Null);
    Ok((wire, data))
}

/// Checks the size caps of one call and returns its structured content.
async fn bounded(client: &Client, tool: &str, args: Value) -> Result<Value, Error> {
    let (wire, data) = sized(client, tool, args.clone()).await?;
    let json_len = data.to_string().len();
    eprintln!("{tool} {args}: {wire} bytes on the wire, {json_len} bytes of JSON");
    assert!(wire <= WIRE_MAX, "{tool} {args}: {wire} bytes on the wire");
    assert!(
        json_len <= JSON_MAX,
        "{tool} {args}: {json_len} bytes of JSON"
    );
    Ok(data)
}

/// Pages through `tool`'s items from offset 0 (with `limit`), checking every answer's size;
/// returns how many items came back in all and the `total` the answers announced.
async fn page_all(
    client: &Client,
    tool: &str,
    mut args: Value,
    limit: Option<u64>,
) -> Result<(usize, u64), Error> {
    let mut offset = 0u64;
    let mut seen = 0usize;
    for _ in 0..100_000 {
        args["offset"] = json!(offset);
        if let Some(l) = limit {
            args["limit"] = json!(l);
        }
        let a = bounded(client, tool, args.clone()).await?;
        let page = &a["items"];
        assert_eq!(page["offset"], offset, "{tool} {args}: {page}");
        let n = page["items"].as_array().map_or(0, Vec::len);
        seen += n;
        let total = page["total"].as_u64().unwrap_or(0);
        match page["next_offset"].as_u64() {
            Some(next) => {
                assert_eq!(next, offset + n as u64, "{tool} {args}");
                assert!(n > 0, "{tool} {args}: an empty page before the end");
                offset = next;
            }
            None => return Ok((seen, total)),
        }
    }
    Err(format!("{tool}: paging did not end").into())
}

/// A PlugY shared stash (version 02) of `pages` copies of the one page of `simple.d2x`.
fn big_shared_stash(dir: &Path, pages: u32) -> Result<Vec<u8>, Error> {
    let personal = std::fs::read(dir.join("simple.d2x"))?;
    let page = personal.get(14..).ok_or("simple.d2x is too short")?;
    let mut out = b"SSS\x0002".to_vec();
    out.extend_from_slice(&123_456u32.to_le_bytes());
    out.extend_from_slice(&pages.to_le_bytes());
    for _ in 0..pages {
        out.extend_from_slice(page);
    }
    Ok(out)
}

/// An ATMA stash with `copies` copies of the items of `atma.d2x`.
fn big_atma(dir: &Path, copies: u16) -> Result<Vec<u8>, Error> {
    let atma = std::fs::read(dir.join("atma.d2x"))?;
    let count = u16::from_le_bytes([atma[3], atma[4]]);
    let mut out = atma[..11].to_vec();
    out[3..5].copy_from_slice(&(count * copies).to_le_bytes());
    for _ in 0..copies {
        out.extend_from_slice(&atma[11..]);
    }
    Ok(out)
}

/// `sets.d2s` with its player items repeated `copies` times (size and checksum fixed).
fn big_save(dir: &Path, tables: &Tables, copies: u16) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(dir.join("sets.d2s"))?;
    let s = save::parse_save(&bytes, tables)?;
    let list = s.items.offset.ok_or("sets.d2s: no item list")?;
    let end = s
        .sections
        .corpse_offset
        .ok_or("sets.d2s: no corpse section")?;
    let mut out = bytes[..list + 2].to_vec();
    out.extend_from_slice(&(s.items.count * copies).to_le_bytes());
    for _ in 0..copies {
        out.extend_from_slice(&bytes[list + 4..end]);
    }
    out.extend_from_slice(&bytes[end..]);
    let len = out.len() as u32;
    out[8..12].copy_from_slice(&len.to_le_bytes());
    let sum = save::checksum(&out);
    out[12..16].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

fn located_in_stash(bytes: &[u8]) -> Result<usize, Error> {
    Ok(stash::parse_stash(bytes)?.located_items)
}

fn located_in_save(bytes: &[u8], tables: &Tables) -> Result<SaveFile, Error> {
    Ok(save::parse_save(bytes, tables)?)
}

#[tokio::test]
async fn every_save_and_stash_answers_small_and_pages_through_all_items() -> TestResult {
    let Some(fixtures) = saves_dir() else {
        return Ok(());
    };
    let tables = Tables::load()?;
    let dir = mcp_testkit::TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "bounded")?;
    std::fs::write(dir.join("big.sss"), big_shared_stash(&fixtures, 500)?)?;
    std::fs::write(dir.join("big-atma.d2x"), big_atma(&fixtures, 300)?)?;
    std::fs::write(dir.join("big.d2s"), big_save(&fixtures, &tables, 200)?)?;
    let client = start(&[&fixtures, &dir]).await?;

    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&fixtures)?
        .chain(std::fs::read_dir(&dir)?)
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut checked = 0;
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let p = path.to_string_lossy().to_string();
        let bytes = std::fs::read(path)?;
        match ext {
            "d2s" => {
                let Ok(lib) = located_in_save(&bytes, &tables) else {
                    continue;
                };
                let want = lib.items.items.len();
                let first = bounded(&client, "parse_save", json!({"path": p})).await?;
                assert_eq!(first["items"]["total"], want, "{name}");
                bounded(&client, "parse_save", json!({"path": p, "limit": 1000})).await?;
                let (seen, total) =
                    page_all(&client, "parse_save", json!({"path": p}), None).await?;
                assert_eq!((seen, total), (want, want as u64), "{name}");
                let (seen, _) =
                    page_all(&client, "parse_save", json!({"path": p}), Some(1000)).await?;
                assert_eq!(seen, want, "{name}");
                // The location filters split the items without loss.
                let mut by_place = 0;
                for place in ["equipped", "inventory", "stash", "cube", "belt", "cursor"] {
                    let (n, _) = page_all(
                        &client,
                        "parse_save",
                        json!({"path": p, "location": place}),
                        Some(1000),
                    )
                    .await?;
                    by_place += n;
                }
                assert_eq!(by_place, want, "{name}");
                // Compared with itself (and a big save with a small one).
                let d = bounded(
                    &client,
                    "diff_saves",
                    json!({"path_a": p, "path_b": fixtures.join("sets.d2s"), "limit": 1000}),
                )
                .await?;
                assert!(d["items"]["total"].is_u64(), "{name}: {d}");
                let uri = format!("d2://save/{p}");
                let r = client
                    .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
                    .await?;
                let size = serde_json::to_string(&r)?.len();
                assert!(size <= WIRE_MAX, "{name}: resource of {size} bytes");
                checked += 1;
            }
            "sss" | "d2x" => {
                let Ok(want) = located_in_stash(&bytes) else {
                    continue;
                };
                let first = bounded(&client, "parse_stash", json!({"path": p})).await?;
                assert_eq!(first["items"]["total"], want, "{name}");
                bounded(&client, "parse_stash", json!({"path": p, "limit": 1000})).await?;
                let (seen, total) =
                    page_all(&client, "parse_stash", json!({"path": p}), None).await?;
                assert_eq!((seen, total), (want, want as u64), "{name}");
                let (seen, _) =
                    page_all(&client, "parse_stash", json!({"path": p}), Some(1000)).await?;
                assert_eq!(seen, want, "{name}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 20, "only {checked} files checked");

    // One page of a big stash: only its items, and its own header.
    let page = bounded(
        &client,
        "parse_stash",
        json!({"path": dir.join("big.sss"), "page": 250}),
    )
    .await?;
    assert_eq!(page["page_count"], 500);
    assert_eq!(page["items"]["total"], 24, "{page}");
    assert_eq!(page["pages"][0]["index"], 250, "{page}");
    let e = err(
        &client,
        "parse_stash",
        json!({"path": dir.join("big.sss"), "page": 501}),
    )
    .await;
    assert!(e.contains("`page`") && e.contains("500"), "{e}");
    client.cancel().await?;
    Ok(())
}
