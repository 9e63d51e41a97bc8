//! The MCP server (`sandbox-runner mcp`) through rmcp's client: the tools and their
//! annotations, launch -> status -> list -> stop on real sandboxes, bad input as isError, and
//! a server whose client goes away stops what it started. Needs root and cgroups; skips
//! otherwise. `schemas/tools/sandbox-runner.json` is checked to be current
//! (`UPDATE_SCHEMAS=1 cargo test -p sandbox-runner --test mcp` rewrites it).

use mcp_testkit::{Client, TestResult, check_published_tools, err, ok, start_bin};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

mod common;
use common::{probe, usable};

const RUNNER: &str = env!("CARGO_BIN_EXE_sandbox-runner");

async fn start(extra: &[&str]) -> Result<Client, mcp_testkit::Error> {
    let mut args = vec![
        "mcp".to_string(),
        "--root".into(),
        env!("CARGO_TARGET_TMPDIR").into(),
    ];
    // Every test but the one about the default wants the destructive tools.
    if !extra.contains(&"--default") {
        args.push("--allow-launch".into());
    }
    args.extend(
        extra
            .iter()
            .filter(|s| **s != "--default")
            .map(|s| s.to_string()),
    );
    start_bin(RUNNER, &args).await
}

#[tokio::test]
async fn tools_annotations_and_published_schemas() -> TestResult {
    let client = start(&[]).await?;
    let mut tools = client.list_all_tools().await?;
    client.cancel().await?;
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["launch", "list", "status", "stop"]);
    for t in &tools {
        assert!(t.output_schema.is_some(), "{}", t.name);
        let a = t.annotations.clone().unwrap_or_default();
        let destructive = matches!(t.name.as_ref(), "launch" | "stop");
        assert_eq!(
            a.destructive_hint,
            destructive.then_some(true),
            "{}",
            t.name
        );
        assert_eq!(
            a.read_only_hint,
            (!destructive).then_some(true),
            "{}",
            t.name
        );
    }
    check_published_tools(
        &mut tools,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas/tools/sandbox-runner.json"),
        "cargo test -p sandbox-runner --test mcp",
    )?;

    // Without --allow-launch only the read-only tools exist.
    let client = start(&["--default"]).await?;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["list", "status"]);
    client.cancel().await?;
    Ok(())
}

fn host_pids(v: &Value) -> Vec<u64> {
    v["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["pid"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn launch_status_list_stop() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let client = start(&[]).await?;
    let probe = probe().display().to_string();
    let launched = ok(
        &client,
        "launch",
        json!({"profile": "strict", "program": probe, "args": ["sleep", "60"], "memory": "256M", "pids": 32, "cpus": 0.5, "network": "isolated"}),
    )
    .await;
    let id = launched["sandbox_id"].as_str().ok_or("no id")?.to_string();
    let iface = launched["interface"]["interface"]
        .as_str()
        .ok_or("no interface")?
        .to_string();
    assert!(Path::new("/sys/class/net").join(&iface).exists());

    let status = ok(&client, "status", json!({"sandbox_id": id})).await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["limits"]["memory_bytes"], 256u64 << 20);
    assert_eq!(status["limits"]["pids"], 32);
    let pids = host_pids(&status);
    let program = status["pids"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["role"] == "program"))
        .cloned()
        .ok_or_else(|| format!("no program in {status}"))?;
    assert!(
        program["ns_pid"].as_u64().is_some_and(|n| n > 1),
        "{program}"
    );
    assert_eq!(
        status["game_pid"], program["pid"],
        "a native program is its own game pid"
    );
    let exe = std::fs::read_link(format!("/proc/{}/exe", program["pid"]))?;
    assert!(exe.ends_with("probe"), "{exe:?}");
    assert!(
        status["usage"]["tasks"].as_u64().unwrap_or(0) >= 2,
        "{status}"
    );

    let list = ok(&client, "list", json!({})).await;
    assert!(list["sandboxes"].as_array().is_some_and(|a| {
        a.iter()
            .any(|s| s["sandbox_id"] == id && s["state"] == "running")
    }));

    let report = ok(&client, "stop", json!({"sandbox_id": id})).await;
    assert_eq!(report["stopped"], true);
    assert_eq!(report["signal"], 9);
    for p in &pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "pid {p} survived"
        );
    }
    assert!(common::interface_gone(&iface), "veth left");
    let status = ok(&client, "status", json!({"sandbox_id": id})).await;
    assert_eq!(status["state"], "exited");
    assert_eq!(status["report"]["stopped"], true);
    // stop is idempotent: the same report again.
    let again = ok(&client, "stop", json!({"sandbox_id": id})).await;
    assert_eq!(again["duration_ms"], report["duration_ms"]);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn bad_input_is_an_error_naming_the_argument() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let client = start(&[]).await?;
    let base = json!({"profile": "strict", "program": "/bin/true"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (args, expect) in [
        (with("profile", json!("gaming")), "profile"),
        (with("program", json!("/no/such/program")), "not found"),
        (with("memory", json!("0")), "memory"),
        (with("memory", json!("lots")), "memory"),
        (with("pids", json!(0)), "pids 0"),
        (with("cpus", json!(500.0)), "cpus 500"),
        (with("network", json!("wifi")), "network"),
        (with("timeout", json!(-1.0)), "timeout"),
        (with("rw", json!(["/etc"])), "rw"),
        (with("env", json!({"A=B": "x"})), "env"),
        // execve's limits, refused by name before anything starts.
        (with("args", json!(vec!["x"; 100_000])), "`args`"),
        (with("args", json!(["a\u{0}b"])), "`args[0]`"),
        (with("env", json!({"BIG": "x".repeat(1 << 20)})), "`env`"),
        (
            with("pids", json!("many")),
            "`pids`: \"many\" (accepted: integer)",
        ),
    ] {
        let e = err(&client, "launch", args.clone()).await;
        assert!(e.contains(expect), "{args}: {e}");
    }
    // An executable file the kernel cannot run: the exec fails inside the sandbox, and
    // launch says why instead of reporting a pid.
    let dir = mcp_testkit::TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "sbx-noexec")?;
    let junk = dir.join("junk");
    std::fs::write(&junk, b"\x01\x02 not a program")?;
    std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let e = err(&client, "launch", with("program", json!(junk))).await;
    assert!(e.contains("Exec format error") && e.contains("junk"), "{e}");
    for tool in ["status", "stop"] {
        let e = err(&client, tool, json!({"sandbox_id": "sbx-nope"})).await;
        assert!(e.contains("sandbox_id") && e.contains("sbx-nope"), "{e}");
    }
    // Still serving.
    let list = ok(&client, "list", json!({})).await;
    assert_eq!(list["sandboxes"], json!([]));
    client.cancel().await?;
    Ok(())
}

/// A profile is a built-in name or a `.toml` file under the roots: a regular file of bounded
/// size whose text is never quoted back, so naming a secret file, a FIFO or a device as a
/// profile neither reveals it nor hangs the server.
#[tokio::test]
async fn profile_files_are_checked_and_never_quoted() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let dir = mcp_testkit::TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "sbx-profiles")?;
    let secret = dir.join("secret.toml");
    std::fs::write(&secret, "password = \"hunter2-secret\"\n")?;
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "token: hunter2-secret\n")?;
    let fifo = dir.join("pipe.toml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; 100_000])?;
    let client = start(&[]).await?;
    let launch = |profile: String| json!({"profile": profile, "program": "/bin/true"});
    for (profile, expect) in [
        (secret.display().to_string(), "unknown field"),
        (broken.display().to_string(), "line 1"),
        (fifo.display().to_string(), "profile"),
        (big.display().to_string(), "at most 65536"),
        ("/etc/shadow".to_string(), "not known"),
        ("/etc/../etc/shadow.toml".to_string(), "profile"),
    ] {
        let e = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            err(&client, "launch", launch(profile.clone())),
        )
        .await
        .map_err(|_| format!("{profile}: no answer in 10 s"))?;
        assert!(
            e.contains("`profile`") && e.contains(expect),
            "{profile}: {e}"
        );
        assert!(
            !e.contains("hunter2"),
            "{profile}: the file was quoted: {e}"
        );
        assert!(
            !e.contains("root:"),
            "{profile}: /etc/shadow was quoted: {e}"
        );
    }
    // Still serving.
    let list = ok(&client, "list", json!({})).await;
    assert_eq!(list["sandboxes"], json!([]));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_departing_client_leaves_nothing_running() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let client = start(&[]).await?;
    let launched = ok(&client, "launch", json!({"profile": "strict", "program": probe().display().to_string(), "args": ["sleep", "60"]})).await;
    let pids = host_pids(&launched);
    assert!(!pids.is_empty(), "{launched}");
    client.cancel().await?;
    let mut alive = pids.clone();
    for _ in 0..200 {
        alive.retain(|p| Path::new(&format!("/proc/{p}")).exists());
        if alive.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        alive.is_empty(),
        "still running after the client left: {alive:?}"
    );
    Ok(())
}
