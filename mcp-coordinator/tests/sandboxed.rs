//! The seed's flow end to end through the coordinator: sandbox-runner starts the fixture game
//! (tests/fixtures/d2game) in a sandbox, natively and as a Windows .exe under Wine with the
//! `wine` profile, and `analyze_character` reads it from outside through mcp-d2 and
//! mcp-memory by the host pid the sandbox reports; then the sandbox is stopped and nothing of
//! the game is left. Needs root and cgroups (sandbox-runner), and wine for the second; skips
//! with a message otherwise.

mod common;

use common::{coordinator, server, server_with_args, sibling, tmp, write_config};
use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether sandboxes can run here (root and cgroups); says why not, or fails under
/// `REQUIRE_SANDBOX`.
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
    if !(root && cgroups) {
        skipped(
            "REQUIRE_SANDBOX",
            &format!("the sandbox needs root and cgroups (root: {root}, cgroups: {cgroups})"),
        );
    }
    root && cgroups
}

/// The fixture game, built once for both tests of this binary (they run in parallel).
fn game_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh"),
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            "d2game-sandboxed",
            "needs cc and gcc-mingw-w64 (x86-64 and i686), installed by scripts/test.sh",
        )
    })
    .clone()
}

/// Starts the coordinator with sandbox-runner, mcp-d2 and mcp-memory; launches `script` in a
/// sandbox with `profile` and `env`; waits for the game process (`is_game` on status's pid
/// entries); analyses it through the coordinator; stops the sandbox.
async fn analyse_sandboxed(
    tag: &str,
    profile: &str,
    script: String,
    env: Value,
    is_game: impl Fn(&Value) -> bool,
    wait_s: u64,
) -> TestResult {
    let game_dir = game_dir();
    let dir = tmp(tag)?;
    let root = game_dir.display().to_string();
    let config = server_with_args(
        "sandbox",
        sibling("sandbox-runner")?.display(),
        &["mcp", "--allow-launch", "--root", &root],
    ) + &server("d2", sibling("mcp-d2")?.display())
        + &server("memory", sibling("mcp-memory")?.display());
    let cfg = write_config(&dir, "c.toml", &config)?;
    let client = coordinator(&cfg, &[]).await?;
    let script = script
        .replace("{dir}", &root)
        .replace("{game}", &game_dir.join("d2game").display().to_string());
    let launched = ok(
        &client,
        "sandbox__launch",
        json!({"profile": profile, "program": "/bin/sh", "args": ["-c", script], "ro": [root], "env": env, "timeout": 300}),
    )
    .await;
    let id = launched["sandbox_id"]
        .as_str()
        .ok_or("no sandbox id")?
        .to_string();
    let mut game: Option<Value> = None;
    let mut last = Value::Null;
    for _ in 0..wait_s * 10 {
        last = ok(&client, "sandbox__status", json!({"sandbox_id": id})).await;
        game = last["pids"]
            .as_array()
            .and_then(|a| a.iter().find(|p| is_game(p)).cloned());
        if game.is_some() || last["state"] == "exited" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let game = game.ok_or_else(|| format!("the game did not start in the sandbox: {last}"))?;
    let pid = game["pid"].as_u64().ok_or("no host pid")?;
    assert_ne!(
        game["ns_pid"].as_u64(),
        Some(pid),
        "inside its own pid namespace: {game}"
    );
    // The game prints before it is ready for readers; give it a moment to lay out its units.
    let mut analysis = Value::Null;
    for _ in 0..100 {
        let a = call(&client, "analyze_character", json!({"pid": pid})).await;
        if !a.is_error && a.data["character"]["result"]["name"] == "FixtureHero" {
            analysis = a.data;
            break;
        }
        analysis = json!(a.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        analysis["character"]["result"]["name"], "FixtureHero",
        "{analysis}"
    );
    assert_eq!(analysis["inventory"]["result"]["count"], 3, "{analysis}");
    let report = ok(&client, "sandbox__stop", json!({"sandbox_id": id})).await;
    assert_eq!(report["stopped"], true);
    let killed: Vec<String> = report["seccomp_violations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v["action"] == "killed")
                .map(|v| v.to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(killed.is_empty(), "{killed:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the game survived the stop"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_sandboxed_game_is_analysed_from_outside() -> TestResult {
    if !root_with_cgroups() {
        return Ok(());
    }
    // The game waits for commands on stdin; a pipe that never delivers keeps it running.
    analyse_sandboxed(
        "coord-sandboxed",
        "strict",
        "sleep 600 | {game} {dir}/D2Client.dll".into(),
        json!({}),
        |p| p["name"] == "d2game",
        10,
    )
    .await
}

#[tokio::test]
async fn a_sandboxed_wine_game_is_analysed_from_outside() -> TestResult {
    if !root_with_cgroups() {
        return Ok(());
    }
    if !wine64_available() {
        return Ok(());
    }
    // A fresh WINEPREFIX in the sandbox's home: the first start takes 10-40 s.
    analyse_sandboxed(
        "coord-sandboxed-wine",
        "wine",
        "cd {dir} && sleep 600 | wine d2game.exe".into(),
        json!({"WINEDLLOVERRIDES": "mscoree,mshtml="}),
        |p| {
            p["exe_mappings"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == "d2game.exe"))
        },
        120,
    )
    .await
}

/// The game as its players run it: the fixture's 32-bit Game.exe and PE32 DLLs under 32-bit
/// Wine in a sandbox with the `wine` profile (its seccomp filter covers the i386 system call
/// table 32-bit Wine uses), analysed from outside through the coordinator.
#[tokio::test]
async fn a_sandboxed_32_bit_wine_game_is_analysed_from_outside() -> TestResult {
    if !root_with_cgroups() {
        return Ok(());
    }
    if !wine32_available("a_sandboxed_32_bit_wine_game_is_analysed_from_outside") {
        return Ok(());
    }
    analyse_sandboxed(
        "coord-sandboxed-wine32",
        "wine",
        "cd {dir}/win32 && sleep 600 | wine Game.exe".into(),
        json!({"WINEDLLOVERRIDES": "mscoree,mshtml="}),
        |p| {
            p["exe_mappings"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == "game.exe"))
        },
        120,
    )
    .await
}

/// The host pid of the process whose argv[0] is `program` and whose arguments include `arg`.
fn find_process(program: &str, arg: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (argv.first() == Some(&program.as_bytes()) && argv.contains(&arg.as_bytes())).then_some(pid)
    })
}

/// Hardening: a server that parses untrusted files (mcp-static) run as a child inside a
/// strict sandbox (`sandbox-runner run` passes stdio through). Its tools answer through the
/// coordinator as usual, while the server has no capabilities, no_new_privs, a seccomp filter
/// and a pid namespace of its own, and goes when the coordinator goes.
#[tokio::test]
async fn a_child_server_runs_inside_a_sandbox() -> TestResult {
    if !root_with_cgroups() {
        return Ok(());
    }
    let game_dir = game_dir();
    let root = game_dir.display().to_string();
    let static_bin = sibling("mcp-static")?.display().to_string();
    let dir = tmp("coord-sandboxed-child")?;
    let config = server_with_args(
        "static",
        sibling("sandbox-runner")?.display(),
        &[
            "run",
            "--profile",
            "strict",
            "--net",
            "none",
            "--ro",
            &root,
            "--",
            &static_bin,
            "--root",
            &root,
        ],
    );
    let cfg = write_config(&dir, "c.toml", &config)?;
    let client = coordinator(&cfg, &[]).await?;
    let dll = game_dir.join("D2Client.dll");
    let info = ok(&client, "static__binary_info", json!({"path": dll})).await;
    let expected = mcp_common::bytes::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&dll)?,
    ));
    assert_eq!(info["sha256"], expected.as_str(), "{info}");

    let pid = find_process(&static_bin, &root).ok_or("mcp-static is not running")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("Seccomp:"), "2", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("NSpid:").split_whitespace().count(), 2, "{status}");

    client.cancel().await?;
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "the sandboxed server outlived the coordinator");
    Ok(())
}

/// The quarantine's hardened reader: mcp-static in a strict sandbox whose only root is the
/// quarantine (given read-only), analysing a quarantined DLL by its hash, and refusing the
/// game directory it came from.
#[tokio::test]
async fn a_sandboxed_static_server_reads_the_quarantine_only() -> TestResult {
    if !root_with_cgroups() {
        return Ok(());
    }
    let game_dir = game_dir();
    let dir = tmp("coord-sandboxed-quarantine")?;
    // The coordinator's quarantine under its data directory (`data` beside the config),
    // made here so that the sandbox can be given it before the coordinator starts.
    let q = dir.join("data/quarantine");
    std::fs::create_dir_all(&q)?;
    let q = q.display().to_string();
    let config = server_with_args(
        "static",
        sibling("sandbox-runner")?.display(),
        &[
            "run",
            "--profile",
            "strict",
            "--net",
            "none",
            "--ro",
            &q,
            "--",
            &sibling("mcp-static")?.display().to_string(),
            "--root",
            &q,
            "--quarantine",
            &q,
        ],
    );
    let cfg = write_config(&dir, "c.toml", &config)?;
    let from = game_dir.display().to_string();
    let client = coordinator(&cfg, &["--quarantine-from", &from]).await?;
    let dll = game_dir.join("D2Client.dll");
    let added = ok(&client, "quarantine_add", json!({"path": dll})).await;
    assert_eq!(added["type"], "PE32+ executable (DLL)", "{added}");
    let info = ok(
        &client,
        "static__binary_info",
        json!({"path": added["uri"]}),
    )
    .await;
    assert_eq!(info["sha256"], added["sha256"], "{info}");
    // The game directory is out of its reach: outside its roots, or not even in its view
    // (under /tmp, which the sandbox replaces with its own).
    let e = err(&client, "static__binary_info", json!({"path": dll})).await;
    assert!(
        e.contains("outside the allowed roots") || e.contains("No such file"),
        "{e}"
    );
    Ok(())
}

/// The dashboard's sandboxes page (auth off: a loopback browser) shows a running sandbox
/// with its profile, limits and use, as sandbox-runner's `status` gives them.
#[tokio::test]
async fn the_dashboard_lists_running_sandboxes() -> TestResult {
    if !root_with_cgroups() {
        return Ok(());
    }
    use rmcp::ServiceExt;
    let dir = tmp("coord-dashboard-sandboxes")?;
    let config = server_with_args(
        "sandbox",
        sibling("sandbox-runner")?.display(),
        &["mcp", "--allow-launch", "--root", "/tmp"],
    );
    let cfg = write_config(&dir, "c.toml", &config)?;
    let (_coordinator, base) = common::http_coordinator(&dir, &cfg, &["--dashboard"]).await?;
    let mcp = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            format!("{base}/"),
        ))
        .await?;
    let launched = ok(
        &mcp,
        "sandbox__launch",
        json!({"profile": "strict", "program": "/bin/sleep", "args": ["30"]}),
    )
    .await;
    let id = launched["sandbox_id"]
        .as_str()
        .ok_or("no sandbox id")?
        .to_string();
    let status = ok(&mcp, "sandbox__status", json!({"sandbox_id": id})).await;
    let page = reqwest::get(format!("{base}/ui/sandboxes"))
        .await?
        .text()
        .await?;
    let limit_mib = status["limits"]["memory_bytes"].as_u64().unwrap_or(0) as f64 / 1048576.0;
    let row = format!("<tr><td>{id}</td><td>running</td><td>strict</td>");
    assert!(page.contains(&row), "{page}");
    assert!(page.contains(&format!("({limit_mib:.1} MiB)")), "{page}");
    assert!(
        page.contains(&format!("({})</td>", status["limits"]["pids"])),
        "{page}"
    );
    ok(&mcp, "sandbox__stop", json!({"sandbox_id": id})).await;
    Ok(())
}
