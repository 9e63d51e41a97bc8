//! Benchmark of mcp-d2's targets, one run, figures side by side:
//! - `parse_save` of a full save (../shared/fixtures/d2s/sets.d2s, the largest fixture), in
//!   the library (target < 1 ms),
//! - `character` over MCP against the running fixture game (target < 20 ms), median of 50
//!   calls through the real server binary with rmcp's client, and the same read in the library.
//!
//! Run: `cargo bench -p mcp-d2 --bench d2_bench`.

use mcp_d2::live;
use mcp_d2::save;
use mcp_d2::tables::Tables;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tables = Tables::load()?;
    let saves = root.join("../shared/fixtures/d2s");
    if saves.is_dir() {
        for name in ["d2v113c.d2s", "sets.d2s", "golem.d2s"] {
            let bytes = std::fs::read(saves.join(name))?;
            let mut times = Vec::new();
            for _ in 0..2000 {
                let t = Instant::now();
                let parsed = save::parse_save(&bytes, &tables);
                times.push(t.elapsed());
                std::hint::black_box(&parsed);
            }
            println!(
                "parse_save {name} ({} bytes): median {:.1} us (target < 1000 us)",
                bytes.len(),
                median(times).as_secs_f64() * 1e6
            );
        }
    } else {
        println!("../shared/fixtures/d2s absent: parse_save not measured");
    }

    let out = root.join("target/bench-fixtures/d2game");
    let ok = Command::new("bash")
        .arg(root.join("tests/fixtures/d2game/build.sh"))
        .arg(&out)
        .status()?
        .success();
    if !ok {
        return Err("building the fixture game failed".into());
    }
    let mut game = Command::new(out.join("d2game"))
        .arg(out.join("D2Client.dll"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(game.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let pid = game.id();

    let mut lib_times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let g = live::open(&tables, Some(pid), None).map_err(|e| e.to_string())?;
        let c = live::character(&tables, &g).map_err(|e| e.to_string())?;
        lib_times.push(t.elapsed());
        std::hint::black_box(&c);
    }
    let exe = root.join("target/release/mcp-d2");
    let built = Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "mcp-d2"])
        .current_dir(&root)
        .status()?
        .success();
    if !built {
        return Err("building mcp-d2 failed".into());
    }
    let cmd = tokio::process::Command::new(&exe).configure(|c| {
        c.stderr(Stdio::null());
    });
    let client = ().serve(TokioChildProcess::new(cmd)?).await?;
    let mut mcp_times = Vec::new();
    for _ in 0..50 {
        let mut args = serde_json::Map::new();
        args.insert("pid".into(), pid.into());
        let t = Instant::now();
        let r = client
            .call_tool(CallToolRequestParams::new("character").with_arguments(args))
            .await?;
        mcp_times.push(t.elapsed());
        if r.is_error == Some(true) {
            return Err(format!("character failed: {:?}", r.content).into());
        }
    }
    client.cancel().await?;
    println!(
        "character: library median {:.2} ms, over MCP (stdio, release) median {:.2} ms (target < 20 ms)",
        median(lib_times).as_secs_f64() * 1e3,
        median(mcp_times).as_secs_f64() * 1e3
    );
    if let Some(mut i) = game.stdin.take() {
        let _ = writeln!(i, "quit");
    }
    let _ = game.kill();
    let _ = game.wait();
    Ok(())
}
