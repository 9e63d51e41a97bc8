//! The seed's flow end to end through the coordinator: sandbox-runner starts the fixture game
//! (tests/fixtures/d2game, native build) in a sandbox, and `analyze_character` reads it from
//! outside through mcp-d2 and mcp-memory by the host pid the sandbox reports; then the sandbox
//! is stopped and nothing of the game is left. Needs root and cgroups (sandbox-runner);
//! skips with a message otherwise.

mod common;

use common::{coordinator, server, server_with_args, sibling, tmp, write_config};
use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root_with_cgroups() -> bool {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let root = String::from_utf8_lossy(&uid).trim() == "0";
    let cgroups = Path::new("/sys/fs/cgroup/pids").is_dir()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.contains("pids"));
    root && cgroups
}

#[tokio::test]
async fn a_sandboxed_game_is_analysed_from_outside() -> TestResult {
    if !root_with_cgroups() {
        eprintln!("skipped: the sandbox needs root and cgroups");
        return Ok(());
    }
    let game_dir = build_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh"),
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        "d2game-sandboxed",
        "needs cc and gcc-mingw-w64-x86-64, installed by scripts/test.sh",
    );
    let dir = tmp("coord-sandboxed")?;
    let root = game_dir.display().to_string();
    let config = server_with_args(
        "sandbox",
        sibling("sandbox-runner")?.display(),
        &["mcp", "--allow-launch", "--root", &root],
    ) + &server("d2", sibling("mcp-d2")?.display())
        + &server("memory", sibling("mcp-memory")?.display());
    let cfg = write_config(&dir, "c.toml", &config)?;
    let client = coordinator(&cfg, &[]).await?;
    // The game waits for commands on stdin; a pipe that never delivers keeps it running.
    let script = format!(
        "sleep 600 | {} {}",
        game_dir.join("d2game").display(),
        game_dir.join("D2Client.dll").display()
    );
    let launched = ok(
        &client,
        "sandbox__launch",
        json!({"profile": "strict", "program": "/bin/sh", "args": ["-c", script], "ro": [game_dir.display().to_string()], "timeout": 120}),
    )
    .await;
    let id = launched["sandbox_id"]
        .as_str()
        .ok_or("no sandbox id")?
        .to_string();
    let mut game: Option<Value> = None;
    for _ in 0..100 {
        let st = ok(&client, "sandbox__status", json!({"sandbox_id": id})).await;
        game = st["pids"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == "d2game").cloned());
        if game.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let game = game.ok_or("the game did not start in the sandbox")?;
    let pid = game["pid"].as_u64().ok_or("no host pid")?;
    assert_ne!(
        game["ns_pid"].as_u64(),
        Some(pid),
        "inside its own pid namespace: {game}"
    );
    // The game prints before it is ready for readers; give it a moment to lay out its units.
    let mut analysis = Value::Null;
    for _ in 0..40 {
        let a = call(&client, "analyze_character", json!({"pid": pid})).await;
        if !a.is_error && a.data["character"]["result"]["name"] == "FixtureHero" {
            analysis = a.data;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        analysis["character"]["result"]["name"], "FixtureHero",
        "{analysis}"
    );
    assert_eq!(analysis["inventory"]["result"]["count"], 3, "{analysis}");
    let report = ok(&client, "sandbox__stop", json!({"sandbox_id": id})).await;
    assert_eq!(report["stopped"], true);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the game survived the stop"
    );
    client.cancel().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
