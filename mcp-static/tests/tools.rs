//! Every tool over MCP (rmcp's client, the real binary) against the fixture DLL, whose
//! contents the test knows: image base 0x6FAB0000, ordinal-only exports, two marker strings,
//! a function with known bytes that reads a global through a relocated address.

mod common;
use common::*;
use serde_json::{Value, json};

const TOOLS: &[&str] = &[
    "binary_info",
    "list_exports",
    "list_imports",
    "list_strings",
    "disassemble",
    "list_functions",
    "xrefs_to",
    "find_pattern",
    "make_signature",
    "convert_address",
    "diff_binaries",
];

fn export_va(exports: &Value, ordinal: u64) -> u64 {
    let item = exports["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["ordinal"] == ordinal))
        .unwrap_or_else(|| panic!("no export #{ordinal} in {exports}"));
    parse_hex(&item["va"])
}

#[tokio::test]
async fn every_tool_is_listed_read_only_with_an_output_schema() -> TestResult {
    let client = start(&[fixture_dir()]).await?;
    let tools = client.list_all_tools().await?;
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for t in &tools {
        assert!(t.output_schema.is_some(), "{} has no outputSchema", t.name);
        let ann = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no annotations", t.name));
        assert_eq!(
            ann.read_only_hint,
            Some(true),
            "{} is not readOnlyHint",
            t.name
        );
        assert!(
            t.description.as_ref().is_some_and(|d| d.len() > 20),
            "{} lacks a description",
            t.name
        );
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn fixture_dll_is_described_exactly() -> TestResult {
    let client = start(&[fixture_dir()]).await?;
    let dll = fixture("D2Client.dll");

    let info = ok(&client, "binary_info", json!({"path": dll})).await;
    assert_eq!(info["format"], "pe32");
    assert_eq!(info["arch"], "x86");
    assert_eq!(info["image_base"], "0x6FAB0000");
    assert_eq!(info["is_dll"], true);
    assert_eq!(info["size"], std::fs::metadata(&dll)?.len());
    assert_eq!(info["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(info["imphash"].as_str().map(str::len), Some(32));
    let sections = info["sections"].as_array().cloned().unwrap_or_default();
    let text = sections
        .iter()
        .find(|s| s["name"] == ".text")
        .cloned()
        .unwrap_or_default();
    assert_eq!(text["va"], "0x6FAB1000");
    assert_eq!(text["permissions"], "r-x");

    // Exports: ordinal only, no names, as Diablo II's DLLs have them.
    let exports = ok(
        &client,
        "list_exports",
        json!({"format": "json", "path": dll}),
    )
    .await;
    assert_eq!(exports["total"], 3);
    for e in exports["items"].as_array().cloned().unwrap_or_default() {
        assert!(e.get("name").is_none(), "unexpected name in {e}");
    }
    let known = export_va(&exports, 10002);
    let log_marker = export_va(&exports, 10001);
    assert_eq!(known, 0x6FAB_1000, "KnownFunc is the first code in .text");
    let filtered = ok(
        &client,
        "list_exports",
        json!({"format": "json", "path": dll, "filter": "#10003"}),
    )
    .await;
    assert_eq!(filtered["total"], 1);

    let imports = ok(
        &client,
        "list_imports",
        json!({"format": "json", "path": dll}),
    )
    .await;
    let names: Vec<String> = imports["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            format!(
                "{}!{}",
                i["library"].as_str().unwrap_or(""),
                i["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        names.contains(&"KERNEL32.dll!OutputDebugStringA".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"KERNEL32.dll!OutputDebugStringW".to_string()),
        "{names:?}"
    );

    // Strings: both markers, with the right encodings, in .rdata.
    let strings = ok(
        &client,
        "list_strings",
        json!({"format": "json", "path": dll, "contains": "D2FIXTURE"}),
    )
    .await;
    let mut found: Vec<(String, String)> = strings["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["text"].as_str().unwrap_or("").to_string(),
                s["encoding"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("D2FIXTURE_ASCII_MARKER".to_string(), "ascii".to_string()),
            ("D2FIXTURE_WIDE_MARKER".to_string(), "utf16le".to_string())
        ]
    );
    let ascii_only = ok(
        &client,
        "list_strings",
        json!({"format": "json", "path": dll, "contains": "D2FIXTURE", "encoding": "ascii"}),
    )
    .await;
    assert_eq!(ascii_only["total"], 1);

    // Disassembly of the known function, by ordinal.
    let dis = ok(
        &client,
        "disassemble",
        json!({"format": "json", "path": dll, "ordinal": 10002, "count": 4}),
    )
    .await;
    let items = dis["items"].as_array().cloned().unwrap_or_default();
    let text: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["mnemonic"].as_str().unwrap_or(""),
                i["operands"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(text[0], "mov ecx, dword ptr [0x6fab2000]");
    assert_eq!(text[1], "test ecx, ecx");
    assert_eq!(text[2], "setne al");
    assert_eq!(text[3], "ret ");
    assert_eq!(items[0]["bytes"], "8B 0D 00 20 AB 6F");
    // Imports are named through the IAT in LogMarker.
    let dis = ok(
        &client,
        "disassemble",
        json!({"format": "json", "path": dll, "address": hex(log_marker), "count": 12}),
    )
    .await;
    let symbols: Vec<&str> = dis["items"]
        .as_array()
        .map(|v| v.iter().filter_map(|i| i["symbol"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        symbols.contains(&"KERNEL32.dll!OutputDebugStringA"),
        "{symbols:?}"
    );

    // Functions: the entry point, the three exports.
    let funcs = ok(
        &client,
        "list_functions",
        json!({"format": "json", "path": dll}),
    )
    .await;
    let list = funcs["items"].as_array().cloned().unwrap_or_default();
    let by_va = |va: u64| list.iter().find(|f| f["va"] == hex(va)).cloned();
    assert_eq!(by_va(known).map(|f| f["size"].clone()), Some(json!(12)));
    assert_eq!(
        by_va(known).map(|f| f["name"].clone()),
        Some(json!("Ordinal_10002"))
    );
    assert!(list.iter().any(|f| f["found_by"] == "entry"));

    // Cross references: the ASCII marker and the import are used by LogMarker.
    let x = ok(
        &client,
        "xrefs_to",
        json!({"format": "json", "path": dll, "string": "D2FIXTURE_ASCII_MARKER"}),
    )
    .await;
    let xs = x["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(xs.len(), 1, "{x}");
    assert_eq!(xs[0]["function"], "Ordinal_10001");
    assert_eq!(xs[0]["kind"], "immediate");
    let x = ok(
        &client,
        "xrefs_to",
        json!({"format": "json", "path": dll, "import": "OutputDebugStringW"}),
    )
    .await;
    let xs = x["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(xs.len(), 1, "{x}");
    assert_eq!(xs[0]["kind"], "memory");
    assert_eq!(xs[0]["function"], "Ordinal_10001");
    let x = ok(
        &client,
        "xrefs_to",
        json!({"format": "json", "path": dll, "address": hex(log_marker)}),
    )
    .await;
    assert!(
        x["items"]
            .as_array()
            .is_some_and(|v| v.iter().any(|i| i["kind"] == "call")),
        "{x}"
    );

    // Pattern and signature.
    let m = ok(
        &client,
        "find_pattern",
        json!({"path": dll, "pattern": "8B 0D ?? ?? ?? ?? 85 C9", "section": ".text"}),
    )
    .await;
    let ms = m["matches"].as_array().cloned().unwrap_or_default();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["va"], hex(known));
    assert_eq!(ms[0]["file_offset"], "0x400");
    let sig = ok(
        &client,
        "make_signature",
        json!({"path": dll, "address": hex(known)}),
    )
    .await;
    let pattern = sig["pattern"].as_str().unwrap_or("");
    assert!(
        pattern.starts_with("8B 0D ?? ?? ?? ??"),
        "address must be wildcarded: {pattern}"
    );
    assert_eq!(sig["unique"], true);
    let again = ok(
        &client,
        "find_pattern",
        json!({"path": dll, "pattern": pattern}),
    )
    .await;
    assert_eq!(again["matches"].as_array().map(Vec::len), Some(1));

    // Address conversion, and rebasing onto a live module base.
    let c = ok(
        &client,
        "convert_address",
        json!({"path": dll, "va": hex(known), "live_base": "0x10000000"}),
    )
    .await;
    assert_eq!(c["rva"], "0x1000");
    assert_eq!(c["file_offset"], "0x400");
    assert_eq!(c["section"], ".text");
    assert_eq!(c["live_va"], "0x10001000");
    let back = ok(
        &client,
        "convert_address",
        json!({"path": dll, "file_offset": "0x400"}),
    )
    .await;
    assert_eq!(back["va"], hex(known));
    let rva = ok(
        &client,
        "convert_address",
        json!({"path": dll, "rva": 4096}),
    )
    .await;
    assert_eq!(rva["va"], hex(known));

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn diff_finds_the_changed_function_and_new_export() -> TestResult {
    let client = start(&[fixture_dir()]).await?;
    let d = ok(
        &client,
        "diff_binaries",
        json!({"path_a": fixture("D2Client.dll"), "path_b": fixture("D2Client_v2.dll")}),
    )
    .await;
    assert_eq!(d["identical"], false);
    let added: Vec<&str> = d["exports_added"]
        .as_array()
        .map(|v| v.iter().filter_map(|e| e["export"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(added, vec!["#10004"]);
    assert_eq!(d["exports_removed"].as_array().map(Vec::len), Some(0));
    let changed: Vec<&str> = d["functions_changed"]
        .as_array()
        .map(|v| v.iter().filter_map(|f| f["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        changed.contains(&"Ordinal_10003"),
        "AddNumbers changed: {d}"
    );
    assert!(
        !changed.contains(&"Ordinal_10002"),
        "KnownFunc did not change: {d}"
    );
    let same = ok(
        &client,
        "diff_binaries",
        json!({"path_a": fixture("D2Client.dll"), "path_b": fixture("D2Client.dll")}),
    )
    .await;
    assert_eq!(same["identical"], true);
    assert_eq!(same["functions_changed"].as_array().map(Vec::len), Some(0));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn paging_is_consistent() -> TestResult {
    let client = start(&[std::path::Path::new("/usr/lib/gcc")]).await?;
    let dll = "/usr/lib/gcc/i686-w64-mingw32/12-win32/adalib/libgnat-12.dll";
    let first = ok(
        &client,
        "list_exports",
        json!({"format": "json", "path": dll, "limit": 7}),
    )
    .await;
    let total = first["total"].as_u64().unwrap_or(0);
    assert!(total > 7);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(7));
    assert_eq!(first["next_offset"], 7);
    let second = ok(
        &client,
        "list_exports",
        json!({"format": "json", "path": dll, "offset": 7, "limit": 7}),
    )
    .await;
    assert_ne!(first["items"][0], second["items"][0]);
    let last = ok(
        &client,
        "list_exports",
        json!({"format": "json", "path": dll, "offset": total - 1}),
    )
    .await;
    assert_eq!(last["items"].as_array().map(Vec::len), Some(1));
    assert!(last.get("next_offset").is_none());
    let e = err(
        &client,
        "list_exports",
        json!({"format": "json", "path": dll, "limit": 5000}),
    )
    .await;
    assert!(
        e.contains("limit") && e.contains("5000") && e.contains("1000"),
        "{e}"
    );
    client.cancel().await?;
    Ok(())
}

/// `schemas/tools/mcp-static.json` holds every tool's definition (input and output schemas,
/// annotations) as the server lists it, for clients and reviewers. This test fails when the
/// file is stale; `UPDATE_SCHEMAS=1 cargo test -p mcp-static --test tools` rewrites it.
#[tokio::test]
async fn published_tool_schemas_are_current() -> TestResult {
    let client = start(&[fixture_dir()]).await?;
    let mut tools = client.list_all_tools().await?;
    client.cancel().await?;
    check_published_tools(
        &mut tools,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tools/mcp-static.json"),
        "cargo test -p mcp-static --test tools",
    )?;
    Ok(())
}

/// The `triage_binary` prompt: listed with its argument, rendered for a file under the roots,
/// refused naming the argument when it is missing, wrong or unknown; `path` completes.
#[tokio::test]
async fn triage_prompt_and_path_completion() -> TestResult {
    use rmcp::model::GetPromptRequestParams;
    let client = start(&[fixture_dir()]).await?;
    let caps = client
        .peer_info()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    assert!(caps.prompts.is_some() && caps.completions.is_some());
    let prompts = client.list_all_prompts().await?;
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].name, "triage_binary");
    let args = prompts[0].arguments.clone().unwrap_or_default();
    assert_eq!(args.len(), 1);
    assert_eq!(args[0].name, "path");
    assert_eq!(args[0].required, Some(true));

    let get = |args: Value| {
        let mut p = GetPromptRequestParams::new("triage_binary");
        if let Value::Object(m) = args {
            p = p.with_arguments(m);
        }
        client.get_prompt(p)
    };
    let p = get(json!({"path": "D2Client.dll"})).await?;
    let text = serde_json::to_string(&p.messages)?;
    for step in [
        "binary_info",
        "list_imports",
        "list_strings",
        "xrefs_to",
        "D2Client.dll",
    ] {
        assert!(text.contains(step), "{step} missing from {text}");
    }
    for (args, wanted) in [
        (json!({}), "missing argument `path`"),
        (json!({"path": ""}), "`path` is empty"),
        (json!({"path": "no-such.dll"}), "no-such.dll"),
        (json!({"path": 5}), "must be a string"),
        (
            json!({"path": "D2Client.dll", "pth": "x"}),
            "unknown argument `pth`",
        ),
    ] {
        let e = get(args.clone())
            .await
            .err()
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        assert!(e.contains(wanted), "{args}: {e}");
    }

    let c = client
        .complete_prompt_argument("triage_binary", "path", "D2Client", None)
        .await?;
    assert_eq!(c.values, vec!["D2Client.dll", "D2Client_v2.dll"]);
    assert_eq!(c.has_more, Some(false));
    let none = client
        .complete_prompt_argument("triage_binary", "other", "D2", None)
        .await?;
    assert!(none.values.is_empty());
    client.cancel().await?;
    Ok(())
}
