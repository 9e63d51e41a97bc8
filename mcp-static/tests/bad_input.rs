//! Bad input over MCP: every case answers `isError` with a message naming the argument, and
//! the server keeps serving. Includes a truncation sweep over the fixture DLL and random and
//! corrupted files: no panic anywhere (a panic would kill the server and fail the next call).

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

/// A fresh directory per test with an empty `root` in it (tests of one binary run at once in
/// one process); removed when dropped.
fn scratch(test: &str) -> Result<TestDir, Error> {
    let dir = TestDir::new(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &format!("bad-input-{test}"),
    )?;
    std::fs::create_dir_all(dir.join("root"))?;
    Ok(dir)
}

#[tokio::test]
async fn bad_paths_and_arguments_are_clear_errors() -> TestResult {
    let dir = scratch("paths")?;
    let root = dir.join("root");
    std::fs::write(dir.join("outside.dll"), b"MZ")?;
    std::fs::copy(fixture("D2Client.dll"), root.join("D2Client.dll"))?;
    std::os::unix::fs::symlink(dir.join("outside.dll"), root.join("escape.dll"))?;
    std::fs::write(root.join("empty.bin"), b"")?;
    let client = start(&[&root]).await?;
    let dll = root.join("D2Client.dll").to_string_lossy().into_owned();

    let e = err(
        &client,
        "binary_info",
        json!({"path": root.join("missing.dll")}),
    )
    .await;
    assert!(e.contains("`path`") && e.contains("missing.dll"), "{e}");
    let e = err(&client, "binary_info", json!({"path": root})).await;
    assert!(e.contains("not a regular file"), "{e}");
    let e = err(
        &client,
        "binary_info",
        json!({"path": dir.join("outside.dll")}),
    )
    .await;
    assert!(e.contains("outside the allowed roots"), "{e}");
    let e = err(
        &client,
        "binary_info",
        json!({"path": root.join("escape.dll")}),
    )
    .await;
    assert!(e.contains("outside the allowed roots"), "{e}");
    let e = err(&client, "binary_info", json!({"path": "../outside.dll"})).await;
    assert!(e.contains("outside the allowed roots"), "{e}");
    let e = err(
        &client,
        "binary_info",
        json!({"path": root.join("empty.bin")}),
    )
    .await;
    assert!(e.contains("empty"), "{e}");
    let e = err(&client, "binary_info", json!({})).await;
    assert!(e.contains("path"), "{e}");

    let e = err(
        &client,
        "disassemble",
        json!({"path": dll, "address": "0x1", "count": 4}),
    )
    .await;
    assert!(
        e.contains("`address`") && e.contains("0x1") && e.contains(".text"),
        "{e}"
    );
    let e = err(
        &client,
        "disassemble",
        json!({"path": dll, "ordinal": 10002, "count": 1_000_000_000u64}),
    )
    .await;
    assert!(e.contains("`count`") && e.contains("2000"), "{e}");
    let e = err(&client, "disassemble", json!({"path": dll, "ordinal": 1})).await;
    assert!(e.contains("`ordinal`"), "{e}");
    let e = err(
        &client,
        "disassemble",
        json!({"path": dll, "address": "0x6FAB1000", "export": "x"}),
    )
    .await;
    assert!(e.contains("exactly one"), "{e}");
    let e = err(
        &client,
        "disassemble",
        json!({"path": dll, "address": "banana"}),
    )
    .await;
    assert!(e.contains("banana"), "{e}");
    let e = err(
        &client,
        "find_pattern",
        json!({"path": dll, "pattern": "8B 0G ??"}),
    )
    .await;
    assert!(e.contains("`pattern`") && e.contains("0G"), "{e}");
    let e = err(
        &client,
        "find_pattern",
        json!({"path": dll, "pattern": "?? ??"}),
    )
    .await;
    assert!(e.contains("only wildcards"), "{e}");
    // A megabyte of hex is refused by its size, not searched for and echoed back.
    let e = err(
        &client,
        "find_pattern",
        json!({"path": dll, "pattern": "A".repeat(1 << 20)}),
    )
    .await;
    assert!(
        e.contains("`pattern`") && e.contains("1 to 4096 bytes") && e.len() < 4096,
        "{e}"
    );
    let e = err(
        &client,
        "find_pattern",
        json!({"path": dll, "pattern": "90", "section": ".nope"}),
    )
    .await;
    assert!(e.contains("`section`") && e.contains(".text"), "{e}");
    let e = err(
        &client,
        "convert_address",
        json!({"path": dll, "va": "0x10"}),
    )
    .await;
    assert!(e.contains("`va`"), "{e}");
    let e = err(
        &client,
        "convert_address",
        json!({"path": dll, "file_offset": "0xFFFFFF"}),
    )
    .await;
    assert!(e.contains("past the end"), "{e}");
    let e = err(&client, "xrefs_to", json!({"path": dll})).await;
    assert!(e.contains("exactly one"), "{e}");
    let e = err(
        &client,
        "xrefs_to",
        json!({"path": dll, "import": "NoSuchFunction"}),
    )
    .await;
    assert!(e.contains("`import`"), "{e}");
    let e = err(
        &client,
        "list_strings",
        json!({"path": dll, "min_length": 0}),
    )
    .await;
    assert!(e.contains("`min_length`"), "{e}");
    let e = err(
        &client,
        "list_strings",
        json!({"path": dll, "encoding": "ebcdic"}),
    )
    .await;
    assert!(e.contains("ebcdic"), "{e}");
    let e = err(
        &client,
        "make_signature",
        json!({"path": dll, "address": "0x6FAB2000"}),
    )
    .await;
    assert!(e.contains("`address`"), "{e}");

    // Still serving.
    let info = ok(&client, "binary_info", json!({"path": dll})).await;
    assert_eq!(info["format"], "pe32");
    client.cancel().await?;
    Ok(())
}

/// A small deterministic generator, so failures can be replayed.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn truncated_random_and_corrupted_files_never_kill_the_server() -> TestResult {
    let dir = scratch("files")?;
    let root = dir.join("root");
    let good = std::fs::read(fixture("D2Client.dll"))?;
    let client = start(&[&root]).await?;
    let tools_on = |path: &str| {
        vec![
            ("binary_info", json!({"path": path})),
            ("list_exports", json!({"path": path})),
            ("list_functions", json!({"path": path})),
            ("disassemble", json!({"path": path, "ordinal": 10002})),
            ("list_strings", json!({"path": path, "limit": 5})),
        ]
    };

    // Truncation sweep: every 16th length across the file, every length in the headers.
    let mut lengths: Vec<usize> = (1..0x200).collect();
    lengths.extend((0x200..good.len()).step_by(16));
    let mut errors = 0usize;
    for (i, len) in lengths.iter().enumerate() {
        let path = root.join(format!("cut{i}.dll"));
        std::fs::write(&path, &good[..*len])?;
        let a = call(&client, "binary_info", json!({"path": path})).await;
        if a.is_error {
            errors += 1;
            assert!(!a.text.is_empty());
        }
        if len % 64 == 0 {
            for (tool, args) in tools_on(&path.to_string_lossy()) {
                let _ = call(&client, tool, args).await;
            }
        }
        std::fs::remove_file(&path)?;
    }
    assert!(
        errors > 100,
        "most truncations must be refused, {errors} were"
    );

    // Random bytes, and random bytes behind a valid MZ/PE header.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..40 {
        let n = (xorshift(&mut seed) % 20_000) as usize + 1;
        let mut bytes: Vec<u8> = (0..n).map(|_| xorshift(&mut seed) as u8).collect();
        if i % 2 == 1 {
            let keep = good.len().min(0x180).min(bytes.len());
            bytes[..keep].copy_from_slice(&good[..keep]);
        }
        let path = root.join(format!("rand{i}.bin"));
        std::fs::write(&path, &bytes)?;
        for (tool, args) in tools_on(&path.to_string_lossy()) {
            let _ = call(&client, tool, args).await;
        }
    }

    // Absurd section sizes and offsets: patch every section header's raw size/pointer.
    let pe = u32::from_le_bytes([good[0x3C], good[0x3D], good[0x3E], good[0x3F]]) as usize;
    let nsec = u16::from_le_bytes([good[pe + 6], good[pe + 7]]) as usize;
    let opt = u16::from_le_bytes([good[pe + 20], good[pe + 21]]) as usize;
    let table = pe + 24 + opt;
    for (field, value) in [
        (8usize, 0xFFFF_FFF0u32),
        (16, 0xFFFF_FFF0),
        (20, 0xFFFF_FF00),
        (12, 0xFFFF_0000),
    ] {
        let mut bytes = good.clone();
        for s in 0..nsec {
            let at = table + s * 40 + field;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        let path = root.join(format!("absurd{field}.dll"));
        std::fs::write(&path, &bytes)?;
        for (tool, args) in tools_on(&path.to_string_lossy()) {
            let _ = call(&client, tool, args).await;
        }
        let _ = call(
            &client,
            "make_signature",
            json!({"path": path, "address": "0x6FAB1000"}),
        )
        .await;
        let _ = call(
            &client,
            "find_pattern",
            json!({"path": path, "pattern": "8B 0D ?? ?? ?? ??"}),
        )
        .await;
    }

    // The server survived all of it.
    std::fs::write(root.join("good.dll"), &good)?;
    let info = ok(
        &client,
        "binary_info",
        json!({"path": root.join("good.dll")}),
    )
    .await;
    assert_eq!(info["image_base"], "0x6FAB0000");
    client.cancel().await?;
    Ok(())
}
