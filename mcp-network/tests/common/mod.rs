//! Shared test plumbing: start the real `mcp-network` binary (optionally inside a network
//! namespace) and call tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The shared D2GS dumps (`../shared/fixtures/d2gs`, or under `SHARED_FIXTURES`); `None`
/// after [`skipped`] when absent.
pub fn d2gs_dir() -> Option<PathBuf> {
    shared_fixtures("d2gs")
}

/// A fresh directory `TAG-PID` under the target's tmp dir, removed when dropped.
pub fn tmp_dir(tag: &str) -> Result<TestDir, Error> {
    Ok(TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), tag)?)
}

/// Starts `mcp-network` with roots and an output directory; inside `netns` when given.
pub async fn start(roots: &[&Path], output: &Path, netns: Option<&str>) -> Result<Client, Error> {
    let bin = env!("CARGO_BIN_EXE_mcp-network");
    let mut args: Vec<String> = Vec::new();
    for r in roots {
        args.push("--root".into());
        args.push(r.display().to_string());
    }
    args.push("--output-dir".into());
    args.push(output.display().to_string());
    let cmd = match netns {
        Some(ns) => tokio::process::Command::new("ip").configure(|c| {
            c.args(["netns", "exec", ns, bin]).args(&args);
            c.stderr(Stdio::null());
        }),
        None => tokio::process::Command::new(bin).configure(|c| {
            c.args(&args);
            c.stderr(Stdio::null());
        }),
    };
    serve(cmd).await
}

/// Counts decoded messages per id over every page.
pub async fn all_messages(client: &Client, args: Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let mut a = args.clone();
        a["offset"] = offset.into();
        a["limit"] = 1000.into();
        let d = ok(client, "d2_decode", a).await;
        let items = d["items"].as_array().cloned().unwrap_or_default();
        out.extend(items);
        match d["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => break,
        }
    }
    out
}
