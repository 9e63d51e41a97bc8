//! The cap on what the server loads, over MCP: a sparse file of several GiB behind a real PE
//! header is refused by every file-taking tool from its size, naming the argument, the size
//! and the cap, without being read (the server's peak RSS stays small, each call is quick);
//! a FIFO under the root is refused without hanging; `--max-file-mb` moves the cap.

mod common;
use common::*;
use rmcp::ServiceExt;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest a refusal may take: it costs a stat and a 4 KB read.
const QUICK: Duration = Duration::from_secs(1);
/// Longest any call may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

fn scratch(test: &str) -> Result<TestDir, Error> {
    let dir = TestDir::new(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &format!("big-files-{test}"),
    )?;
    std::fs::create_dir_all(dir.join("root"))?;
    Ok(dir)
}

/// Starts `mcp-static` on `root` with `extra` arguments; also answers its pid.
async fn start_with_pid(root: &Path, extra: &[&str]) -> Result<(Client, u32), Error> {
    let root = root.to_path_buf();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-static")).configure(|c| {
        c.arg("--root").arg(&root).args(&extra);
        c.stderr(std::process::Stdio::null());
    });
    let transport = TokioChildProcess::new(cmd)?;
    let pid = transport.id().ok_or("the server has no pid")?;
    let client = ().serve(transport).await?;
    Ok((client, pid))
}

/// The peak resident set of process `pid`, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("VmHWM has no value")?
        .parse()?)
}

/// The first 4 KB of a real PE: Wine's 64-bit user32.dll when installed, else the fixture.
fn pe_head() -> Result<(Vec<u8>, &'static str), Error> {
    let wine = Path::new("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll");
    let (file, kind) = if wine.is_file() {
        (wine.to_path_buf(), "PE32+ (x86-64)")
    } else {
        (PathBuf::from(fixture("D2Client.dll")), "PE32 (i386)")
    };
    let mut bytes = std::fs::read(file)?;
    bytes.truncate(4096);
    Ok((bytes, kind))
}

/// A sparse file of `len` bytes starting with `head` (costs no disk).
fn sparse(path: &Path, head: &[u8], len: u64) -> Result<(), Error> {
    std::fs::write(path, head)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(len)?;
    Ok(())
}

/// Each file-taking tool with `file` in its file argument (the other file `other`), and the
/// argument that should be named.
fn calls_on(file: &str, other: &str) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("binary_info", json!({"path": file}), "path"),
        (
            "list_exports",
            json!({"format": "json", "path": file}),
            "path",
        ),
        (
            "list_imports",
            json!({"format": "json", "path": file}),
            "path",
        ),
        (
            "list_strings",
            json!({"format": "json", "path": file}),
            "path",
        ),
        (
            "disassemble",
            json!({"format": "json", "path": file}),
            "path",
        ),
        (
            "list_functions",
            json!({"format": "json", "path": file}),
            "path",
        ),
        (
            "xrefs_to",
            json!({"format": "json", "path": file, "import": "GetProcAddress"}),
            "path",
        ),
        (
            "find_pattern",
            json!({"path": file, "pattern": "90"}),
            "path",
        ),
        (
            "make_signature",
            json!({"path": file, "address": "0x1000"}),
            "path",
        ),
        (
            "convert_address",
            json!({"path": file, "rva": "0x1000"}),
            "path",
        ),
        (
            "diff_binaries",
            json!({"path_a": file, "path_b": other}),
            "path_a",
        ),
        (
            "diff_binaries",
            json!({"path_a": other, "path_b": file}),
            "path_b",
        ),
    ]
}

/// Every tool whose arguments take a file is among those `calls_on` makes.
async fn covers_every_file_tool(client: &Client) -> TestResult {
    let called: Vec<&str> = calls_on("", "").iter().map(|(t, _, _)| *t).collect();
    for tool in client.list_all_tools().await? {
        let props = tool
            .input_schema
            .get("properties")
            .and_then(Value::as_object);
        let takes_file = props.is_some_and(|p| p.keys().any(|k| k.starts_with("path")));
        assert!(
            !takes_file || called.contains(&tool.name.as_ref()),
            "{} takes a file but is not tested on a big one",
            tool.name
        );
    }
    Ok(())
}

/// Calls `tool`, failing the test if it takes longer than [`HANG`].
async fn call_timed(client: &Client, tool: &str, args: Value) -> Result<(Answer, Duration), Error> {
    let t0 = Instant::now();
    let a = tokio::time::timeout(HANG, call(client, tool, args))
        .await
        .map_err(|_| format!("{tool} hung for {HANG:?}"))?;
    Ok((a, t0.elapsed()))
}

#[tokio::test]
async fn a_sparse_pe_of_4_5_gib_is_refused_by_its_header_not_read() -> TestResult {
    let dir = scratch("sparse")?;
    let root = dir.join("root");
    let (head, kind) = pe_head()?;
    let big = root.join("big.dll");
    sparse(&big, &head, 9 << 29)?; // 4.5 GiB
    std::fs::copy(fixture("D2Client.dll"), root.join("small.dll"))?;
    let small = root.join("small.dll").to_string_lossy().into_owned();
    let big = big.to_string_lossy().into_owned();

    let (client, pid) = start_with_pid(&root, &[]).await?;
    covers_every_file_tool(&client).await?;
    let before = peak_rss_kib(pid)?;
    let mut slowest = Duration::ZERO;
    // Twice over: a refused file is not read again on the next call either.
    for round in 0..2 {
        for (tool, args, field) in calls_on(&big, &small) {
            let (a, took) = call_timed(&client, tool, args).await?;
            assert!(a.is_error, "{tool} on the big file answered {}", a.text);
            let t = &a.text;
            assert!(
                t.contains(&format!("`{field}`"))
                    && t.contains(kind)
                    && t.contains("4.5 GiB")
                    && t.contains("512 MiB")
                    && t.contains("--max-file-mb"),
                "{tool} (round {round}): {t}"
            );
            assert!(took < QUICK, "{tool} took {took:?} to refuse the big file");
            if round == 0 && tool == "binary_info" {
                eprintln!("binary_info on the big file: {t}");
            }
            slowest = slowest.max(took);
        }
    }
    let after = peak_rss_kib(pid)?;
    eprintln!(
        "24 refusals of a 4.5 GiB file: slowest call {slowest:?}, server VmHWM {before} KiB \
         before, {after} KiB after"
    );
    assert!(
        after < before + 32 * 1024 && after < 256 * 1024,
        "the server's peak RSS went from {before} KiB to {after} KiB"
    );

    // Still serving, and the small file beside the big one loads.
    let info = ok(&client, "binary_info", json!({"path": small})).await;
    assert_eq!(info["format"], "pe32");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_fifo_under_the_root_is_refused_without_hanging() -> TestResult {
    let dir = scratch("fifo")?;
    let root = dir.join("root");
    let fifo = root.join("pipe.dll");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    std::fs::copy(fixture("D2Client.dll"), root.join("small.dll"))?;
    let small = root.join("small.dll").to_string_lossy().into_owned();
    let fifo = fifo.to_string_lossy().into_owned();

    let (client, _) = start_with_pid(&root, &[]).await?;
    for (tool, args, field) in calls_on(&fifo, &small) {
        let (a, took) = call_timed(&client, tool, args).await?;
        assert!(a.is_error, "{tool} on a FIFO answered {}", a.text);
        assert!(
            a.text.contains(&format!("`{field}`")) && a.text.contains("not a regular file"),
            "{tool}: {}",
            a.text
        );
        assert!(took < QUICK, "{tool} took {took:?} to refuse a FIFO");
    }
    let info = ok(&client, "binary_info", json!({"path": small})).await;
    assert_eq!(info["format"], "pe32");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn max_file_mb_moves_the_cap() -> TestResult {
    let dir = scratch("flag")?;
    let root = dir.join("root");
    let (head, kind) = pe_head()?;
    let big = root.join("two.dll");
    sparse(&big, &head, 2 << 20)?;
    std::fs::copy(fixture("D2Client.dll"), root.join("small.dll"))?;

    let (client, _) = start_with_pid(&root, &["--max-file-mb", "1"]).await?;
    let e = err(
        &client,
        "list_exports",
        json!({"format": "json", "path": big}),
    )
    .await;
    assert!(
        e.contains("`path`") && e.contains(kind) && e.contains("2 MiB") && e.contains("1 MiB"),
        "{e}"
    );
    let info = ok(
        &client,
        "binary_info",
        json!({"path": root.join("small.dll")}),
    )
    .await;
    assert_eq!(info["format"], "pe32");
    client.cancel().await?;
    Ok(())
}
