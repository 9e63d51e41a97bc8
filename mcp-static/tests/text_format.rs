//! `format: "text"` through MCP (rmcp's client, the real binary): every list tool and
//! `disassemble` walked page by page as text and as JSON give the same items, in the same
//! order; a text page has its `#` header, no `items` in `structuredContent`, stays within
//! the answer bound and says where to continue. Over the fixture DLL always, and over Wine's
//! user32.dll (thousands of items, many pages) when Wine is installed (`skipped` otherwise, a
//! failure under REQUIRE_WINE or MCP_SUITE_STRICT).

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// mcp-common's `paging::MAX_ANSWER_BYTES`: the most a page's lines may take.
const PAGE_BOUND: usize = 40_000;

/// A JSON text field as a text column writes it.
fn escaped(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn field(item: &Value, key: &str) -> String {
    match &item[key] {
        Value::Null => "-".into(),
        Value::String(s) => escaped(s),
        v => v.to_string(),
    }
}

/// The columns a text line must carry for one JSON item of `tool`.
fn expected_columns(tool: &str, item: &Value) -> Vec<String> {
    let f = |k: &str| field(item, k);
    let mut cols = match tool {
        "list_exports" => vec![f("va"), f("rva"), f("ordinal"), f("name")],
        "list_imports" => vec![f("iat_va"), f("ordinal"), f("library"), f("name")],
        "list_strings" => vec![f("va"), f("file_offset"), f("encoding"), f("text")],
        "list_functions" => vec![f("va"), f("size"), f("found_by"), f("name")],
        "xrefs_to" => vec![f("from_va"), f("kind"), f("to_va"), f("function")],
        "disassemble" => {
            let ops = item["operands"].as_str().unwrap_or("");
            let mut insn = item["mnemonic"].as_str().unwrap_or("").to_string();
            if !ops.is_empty() {
                insn = format!("{insn} {ops}");
            }
            let mut c = vec![f("va"), f("bytes"), insn];
            if !item["target"].is_null() {
                c.push(f("target"));
            }
            if !item["symbol"].is_null() {
                c.push(f("symbol"));
            }
            c
        }
        other => panic!("no columns for {other}"),
    };
    // Optional trailing columns: present only when the object has them.
    for k in ["forwarder", "length"] {
        if matches!(tool, "list_exports" | "list_strings") && !item[k].is_null() {
            cols.push(f(k));
        }
    }
    cols
}

/// A text answer's item lines, after the summary and the `#` header (which must be there).
fn lines_of(a: &Answer) -> Vec<Vec<String>> {
    let mut lines = a.text.lines();
    let summary = lines.next().unwrap_or("");
    assert!(!summary.starts_with('#'), "summary first: {}", a.text);
    let header = lines.next().unwrap_or("");
    assert!(header.starts_with("# "), "no header line: {header:?}");
    lines
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Checks one text page's shape: no objects, within the bound.
fn check_text_page(tool: &str, a: &Answer) {
    assert!(!a.is_error, "{tool}: {}", a.text);
    assert!(
        a.data.get("items").is_none(),
        "{tool}: items in structuredContent of a text page: {}",
        a.data
    );
    let body = a.text.split_once('\n').map_or("", |(_, b)| b);
    assert!(
        body.len() <= PAGE_BOUND,
        "{tool}: {} bytes of lines",
        body.len()
    );
}

/// Walks an offset-paged list; returns each item's columns (from text lines, or built from
/// the objects) and how many calls it took.
async fn walk(
    client: &Client,
    tool: &str,
    base: &Value,
    format: &str,
) -> (Vec<Vec<String>>, usize) {
    let (mut offset, mut out, mut calls) = (0u64, Vec::new(), 0);
    loop {
        let mut args = base.clone();
        args["offset"] = json!(offset);
        args["format"] = json!(format);
        let a = call(client, tool, args).await;
        calls += 1;
        if format == "text" {
            check_text_page(tool, &a);
            out.extend(lines_of(&a));
        } else {
            assert!(!a.is_error, "{tool}: {}", a.text);
            let items = a.data["items"].as_array().cloned().unwrap_or_default();
            out.extend(items.iter().map(|i| expected_columns(tool, i)));
        }
        assert!(calls < 10_000, "{tool}: the walk does not end");
        match a.data["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => return (out, calls),
        }
    }
}

/// Disassembles `[start, end)` page after page in `format`.
async fn walk_code(
    client: &Client,
    path: &str,
    start: u64,
    end: u64,
    format: &str,
) -> Vec<Vec<String>> {
    let (mut va, mut out) = (start, Vec::new());
    while va < end {
        let args =
            json!({"path": path, "address": format!("{va:#x}"), "count": 2000, "format": format});
        let a = call(client, "disassemble", args).await;
        let page = if format == "text" {
            check_text_page("disassemble", &a);
            lines_of(&a)
        } else {
            assert!(!a.is_error, "disassemble: {}", a.text);
            let items = a.data["items"].as_array().cloned().unwrap_or_default();
            items
                .iter()
                .map(|i| expected_columns("disassemble", i))
                .collect()
        };
        assert!(!page.is_empty(), "an empty page at {va:#x}");
        out.extend(page);
        va = parse_hex(&a.data["next_address"]);
    }
    out
}

fn same(tool: &str, json: &[Vec<String>], text: &[Vec<String>]) {
    for (n, (j, t)) in json.iter().zip(text).enumerate() {
        assert_eq!(j, t, "{tool}: item {n} differs");
    }
    assert_eq!(json.len(), text.len(), "{tool}: item counts differ");
}

/// `filtered_limit`: the page size of the filtered string walk (small on the fixture, to
/// cross pages; each filtered page filters the whole file again, so not small on user32).
async fn lists_agree(client: &Client, path: &str, multi_page: bool, filtered_limit: u64) {
    let lists = [
        ("list_exports", json!({"path": path, "limit": 1000})),
        ("list_imports", json!({"path": path, "limit": 1000})),
        ("list_functions", json!({"path": path, "limit": 1000})),
        (
            "list_strings",
            json!({"path": path, "limit": 1000, "encoding": "both", "min_length": 6}),
        ),
        (
            "list_strings",
            json!({"path": path, "limit": filtered_limit, "encoding": "ascii", "contains": "e"}),
        ),
    ];
    for (tool, args) in lists {
        let t0 = std::time::Instant::now();
        let (j, json_calls) = walk(client, tool, &args, "json").await;
        let t1 = std::time::Instant::now();
        let (t, text_calls) = walk(client, tool, &args, "text").await;
        eprintln!(
            "{tool} {args}: json {json_calls} calls {:?}, text {text_calls} calls {:?}",
            t1 - t0,
            t1.elapsed()
        );
        assert!(!j.is_empty(), "{tool} {args}: nothing listed");
        same(tool, &j, &t);
        // Text lines are smaller than objects: never more pages.
        assert!(
            text_calls <= json_calls,
            "{tool}: {text_calls} > {json_calls}"
        );
        if multi_page && tool == "list_strings" && args["limit"] == 1000 {
            assert!(text_calls > 1, "{tool}: expected several pages");
        }
    }
}

/// Compares the two walks of `.text` (of its first `span` bytes at most).
async fn code_agrees(client: &Client, path: &str, span: u64) {
    let info = ok(client, "binary_info", json!({"path": path})).await;
    let text = info["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == ".text")
        .cloned()
        .unwrap_or_else(|| panic!("{path} has no .text: {info}"));
    let start = parse_hex(&text["va"]);
    let end = start + text["virtual_size"].as_u64().unwrap_or(0).min(span);
    // The last page of each walk runs past `end` by its own size: compare up to `end`.
    let before_end = |items: Vec<Vec<String>>| -> Vec<Vec<String>> {
        items
            .into_iter()
            .filter(|cols| parse_hex(&json!(cols[0])) < end)
            .collect()
    };
    let j = before_end(walk_code(client, path, start, end, "json").await);
    let t = before_end(walk_code(client, path, start, end, "text").await);
    assert!(!j.is_empty(), "no instructions in {path}'s .text");
    same("disassemble", &j, &t);
}

#[tokio::test]
async fn text_pages_carry_the_json_items_over_the_fixture() -> TestResult {
    let client = start(&[fixture_dir()]).await?;
    let dll = fixture("D2Client.dll");
    lists_agree(&client, &dll, false, 7).await;
    code_agrees(&client, &dll, u64::MAX).await;

    // A reference list: the string the fixture's code reads.
    let (j, _) = walk(
        &client,
        "xrefs_to",
        &json!({"path": dll, "string": "D2FIXTURE_ASCII_MARKER"}),
        "json",
    )
    .await;
    let (t, _) = walk(
        &client,
        "xrefs_to",
        &json!({"path": dll, "string": "D2FIXTURE_ASCII_MARKER"}),
        "text",
    )
    .await;
    same("xrefs_to", &j, &t);

    // A filtered walk (its matches kept between pages) lists exactly the unfiltered items
    // that match, in order.
    let base = json!({"path": dll, "limit": 1000, "encoding": "ascii"});
    let (all, _) = walk(&client, "list_strings", &base, "json").await;
    let mut filtered = base.clone();
    filtered["contains"] = json!("E");
    filtered["limit"] = json!(3);
    let (some, calls) = walk(&client, "list_strings", &filtered, "text").await;
    let expected: Vec<Vec<String>> = all
        .into_iter()
        .filter(|cols| cols[3].to_lowercase().contains('e'))
        .collect();
    assert!(calls > 2, "expected several filtered pages");
    same("list_strings contains", &expected, &some);

    // A bad format is refused, naming the argument and what is accepted.
    let a = call(
        &client,
        "list_exports",
        json!({"path": dll, "format": "yaml"}),
    )
    .await;
    assert!(a.is_error, "format yaml accepted: {}", a.text);
    assert!(a.text.contains("format"), "{}", a.text);
    assert!(a.text.contains("text"), "{}", a.text);

    // Without `format` a page is text: lines under a `#` header, no objects.
    let a = call(&client, "list_exports", json!({"path": dll})).await;
    check_text_page("list_exports (no format)", &a);
    assert!(
        lines_of(&a).len() == a.data["total"].as_u64().unwrap_or(0) as usize,
        "{}",
        a.text
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn text_pages_carry_the_json_items_over_user32() -> TestResult {
    if !wine64_available() {
        return Ok(());
    }
    let client = start(&[Path::new(WINE64_DLLS)]).await?;
    lists_agree(&client, "user32.dll", true, 1000).await;
    // 256 KiB of code: about 70,000 instructions, 80 text pages.
    code_agrees(&client, "user32.dll", 0x40000).await;
    client.cancel().await?;
    Ok(())
}
