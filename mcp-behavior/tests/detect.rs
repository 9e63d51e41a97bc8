//! Every rule on its fixture, end to end through MCP: the behave fixture (tests/fixtures/
//! behavfix) launched under trace_start natively, as PE32+ under wine64 and as PE32 under
//! 32-bit Wine, then `detect`: each behaviour fires its rule with the exact count and the
//! clean run fires nothing. Wine tests need wine and mingw (scripts/setup.sh installs them);
//! without them they are `skipped` (a failure under REQUIRE_WINE / REQUIRE_WINE32 /
//! MCP_SUITE_STRICT).

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Launches `command` traced (all kinds), waits for it to end, and runs every rule: answers
/// rule id -> count of the rules that fired, and the trace's id.
async fn fired(
    client: &Client,
    command: &[String],
    env: &Value,
    params: Value,
) -> Result<(BTreeMap<String, u64>, String), Error> {
    // Under Wine, injection is traced by Wine's channels only: a ptrace tracer on the
    // target makes wineserver's WriteProcessMemory fail (its own ptrace is refused).
    let kinds = if command.iter().any(|c| c == "inject") {
        json!(["api", "module", "registry", "exception"])
    } else {
        Value::Null
    };
    let started = ok(
        client,
        "trace_start",
        json!({"command": command, "env": env, "kinds": kinds}),
    )
    .await;
    if kinds.is_array() {
        assert_eq!(started["mode"], "wine_debug", "{started}");
    }
    let id = started["trace_id"]
        .as_str()
        .ok_or("no trace id")?
        .to_string();
    let mut done = false;
    for _ in 0..600 {
        let s = ok(client, "behavior_summary", json!({"trace_id": id})).await;
        if s["running"] == false {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "{command:?} did not end within 60 s");
    let mut args = json!({"trace_id": id});
    if let (Value::Object(a), Value::Object(p)) = (&mut args, params) {
        a.extend(p);
    }
    let d = ok(client, "detect", args).await;
    let mut out = BTreeMap::new();
    for det in d["detections"].as_array().cloned().unwrap_or_default() {
        assert!(det["skipped"] != true, "a rule was skipped: {det}");
        let cited = det["events"].as_array().map(Vec::len).unwrap_or(0);
        assert!(cited > 0, "a detection cites its events: {det}");
        out.insert(
            det["rule"].as_str().unwrap_or("").to_string(),
            det["count"].as_u64().unwrap_or(0),
        );
    }
    Ok((out, id))
}

/// The trace's module events whose path ends with `name` are all hashed, and one has the
/// SHA-256 that coreutils' `sha256sum` gives for `file` (another process of the run may
/// load the same Windows path from the other bitness's directory).
async fn module_hash_is_sha256sum(
    client: &Client,
    id: &str,
    name: &str,
    file: &Path,
) -> Result<(), Error> {
    let file_name = name.rsplit(['\\', '/']).next().unwrap_or(name);
    let page = ok(
        client,
        "trace_events",
        json!({"trace_id": id, "kind": "module", "contains": file_name, "limit": 50}),
    )
    .await;
    let events: Vec<Value> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.to_lowercase().ends_with(&name.to_lowercase()))
        })
        .cloned()
        .collect();
    assert!(!events.is_empty(), "no module event for {name}: {page}");
    let out = std::process::Command::new("sha256sum").arg(file).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = text.split_whitespace().next().unwrap_or("");
    assert!(
        events.iter().all(|e| e["sha256"].is_string()),
        "{name}: {events:?}"
    );
    assert!(
        events.iter().any(|e| e["sha256"] == want),
        "{name} {want}: {events:?}"
    );
    Ok(())
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn native_rules_fire_exactly_and_never_on_the_clean_run() -> TestResult {
    let fx = fixture_dir();
    let behave = fx.join("behave").to_string_lossy().into_owned();
    let tmp = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "detect-native")?;
    let saves = tmp.join("saves");
    let elsewhere = tmp.join("elsewhere");
    std::fs::create_dir_all(&saves)?;
    std::fs::create_dir_all(&elsewhere)?;
    // The module, loaded from outside the game's directory.
    let foreign = elsewhere.join("libbehave.so");
    std::fs::copy(fx.join("libbehave.so"), &foreign)?;
    let params = json!({
        "game_dir": fx.to_string_lossy(),
        "save_dir": saves.to_string_lossy(),
    });
    let client = server(true).await?;
    let env = json!({});
    let run = |args: &[&str]| -> Vec<String> {
        std::iter::once(behave.clone())
            .chain(args.iter().map(|a| a.to_string()))
            .collect()
    };
    let cases: Vec<(Vec<String>, BTreeMap<String, u64>)> = vec![
        (run(&["clean"]), counts(&[])),
        (run(&["spawn"]), counts(&[])),
        (
            run(&["write", &saves.join("game.d2s").to_string_lossy()]),
            counts(&[]),
        ),
        (
            run(&["execmem"]),
            counts(&[("exec-memory-outside-module", 1)]),
        ),
        (run(&["connect", "5999"]), counts(&[("unexpected-port", 1)])),
        (run(&["connect", "4000"]), counts(&[])),
        (
            run(&["write", &elsewhere.join("x.txt").to_string_lossy()]),
            counts(&[("file-write-outside-save-dir", 1)]),
        ),
        (
            run(&["module", &foreign.to_string_lossy()]),
            counts(&[("module-outside-game-dir", 1)]),
        ),
        (
            run(&["module", &fx.join("libbehave.so").to_string_lossy()]),
            counts(&[]),
        ),
    ];
    for (cmd, want) in cases {
        let (got, id) = fired(&client, &cmd, &env, params.clone()).await?;
        assert_eq!(got, want, "{cmd:?}");
        if cmd.get(1).is_some_and(|c| c == "module") {
            module_hash_is_sha256sum(&client, &id, "libbehave.so", Path::new(&cmd[2])).await?;
        }
    }
    Ok(())
}

/// The Windows modes under Wine, in one prefix made beforehand (untraced).
async fn wine_rules(exe: &str, dll: &str, tag: &str) -> TestResult {
    let fx = fixture_dir();
    let exe = fx.join(exe);
    let tmp = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), tag)?;
    let prefix = WinePrefix::new(&tmp, "prefix");
    let made = prefix
        .command(&exe)
        .arg("clean")
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(made.status.success(), "wine {exe:?} clean: {made:?}");
    let saves = tmp.join("saves");
    let elsewhere = tmp.join("elsewhere");
    std::fs::create_dir_all(&saves)?;
    std::fs::create_dir_all(&elsewhere)?;
    let foreign = elsewhere.join(dll);
    std::fs::copy(fx.join(dll), &foreign)?;
    // Unix paths: the tracer reports files by their real path, and Wine's module paths on
    // Z: compare as the Unix paths they are.
    let params = json!({"game_dir": fx.to_string_lossy(), "save_dir": saves.to_string_lossy()});
    let env = json!({
        "WINEPREFIX": prefix.0.to_string_lossy(),
        "WINEDLLOVERRIDES": "mscoree,mshtml=",
    });
    let client = server(true).await?;
    let exe_s = exe.to_string_lossy().into_owned();
    let run = |args: &[&str]| -> Vec<String> {
        ["wine".to_string(), exe_s.clone()]
            .into_iter()
            .chain(args.iter().map(|a| a.to_string()))
            .collect()
    };
    // A wineserver already serving the prefix makes the trace blind to Wine's sockets
    // (their calls are made in wineserver): trace_start says so, naming it.
    let kill_server = || {
        let _ = std::process::Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &prefix.0)
            .status();
        let _ = std::process::Command::new("wineserver")
            .arg("-w")
            .env("WINEPREFIX", &prefix.0)
            .status();
    };
    kill_server();
    let server_pid = std::process::Command::new("wineserver")
        .arg("-p")
        .env("WINEPREFIX", &prefix.0)
        .status();
    assert!(server_pid.is_ok_and(|s| s.success()), "wineserver -p");
    let started = ok(
        &client,
        "trace_start",
        json!({"command": run(&["clean"]), "env": env, "kinds": ["socket"]}),
    )
    .await;
    let warning = started["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("wineserver -k"), "{started}");
    let id = started["trace_id"].clone();
    ok(&client, "trace_stop", json!({"trace_id": id})).await;
    kill_server();
    let started = ok(
        &client,
        "trace_start",
        json!({"command": run(&["clean"]), "env": env, "kinds": ["socket"]}),
    )
    .await;
    assert!(started["warning"].is_null(), "{started}");
    ok(
        &client,
        "trace_stop",
        json!({"trace_id": started["trace_id"]}),
    )
    .await;
    let cases: Vec<(Vec<String>, BTreeMap<String, u64>)> = vec![
        (run(&["clean"]), counts(&[])),
        (run(&["debugger"]), counts(&[("debugger-check", 3)])),
        (run(&["timing"]), counts(&[("timing-probe", 1)])),
        (
            run(&["execmem"]),
            counts(&[("exec-memory-outside-module", 1)]),
        ),
        (
            run(&["inject"]),
            counts(&[("code-injection", 1), ("exec-memory-outside-module", 1)]),
        ),
        (
            run(&["module", &foreign.to_string_lossy()]),
            counts(&[("module-outside-game-dir", 1)]),
        ),
        (
            run(&["write", &elsewhere.join("x.txt").to_string_lossy()]),
            counts(&[("file-write-outside-save-dir", 1)]),
        ),
        (run(&["connect", "5999"]), counts(&[("unexpected-port", 1)])),
    ];
    for (cmd, want) in cases {
        if cmd.iter().any(|c| c == "connect") {
            // Wine 8 makes a socket's connect in wineserver: the trace sees it when
            // wineserver starts inside the traced tree, so end the prefix's server first.
            kill_server();
        }
        let (got, id) = fired(&client, &cmd, &env, params.clone()).await?;
        assert_eq!(got, want, "{cmd:?}");
        if cmd.get(2).is_some_and(|c| c == "module") {
            // Modules named by Wine's loaddll channel are hashed through the prefix's
            // drives: the DLL on Z: and a builtin one copied into C:.
            // A 32-bit process's system32 is the prefix's syswow64.
            module_hash_is_sha256sum(&client, &id, dll, &foreign).await?;
            let bits32 = exe.to_string_lossy().contains("32");
            let system = if bits32 { "syswow64" } else { "system32" };
            let kernel32 = prefix
                .0
                .join("drive_c/windows")
                .join(system)
                .join("kernel32.dll");
            let name = r"system32\kernel32.dll";
            module_hash_is_sha256sum(&client, &id, name, &kernel32).await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn wine64_rules_fire_exactly_and_never_on_the_clean_run() -> TestResult {
    if !wine64_available() {
        return Ok(());
    }
    wine_rules("behave64.exe", "behave_dll.dll", "detect-wine64").await
}

#[tokio::test]
async fn wine32_rules_fire_exactly_and_never_on_the_clean_run() -> TestResult {
    if !wine32_available("wine32_rules_fire_exactly_and_never_on_the_clean_run") {
        return Ok(());
    }
    wine_rules("behave32.exe", "behave_dll32.dll", "detect-wine32").await
}

#[tokio::test]
async fn series_rules_and_bad_arguments() -> TestResult {
    let client = server(true).await?;
    // A bot: an action every 250 ms exactly; a human: jittery.
    let bot: Vec<f64> = (0..40).map(|i| f64::from(i) * 250.0).collect();
    let d = ok(&client, "detect", json!({"actions_ms": bot})).await;
    assert_eq!(d["fired"], 1, "{d}");
    assert_eq!(d["detections"][0]["rule"], "regular-action-intervals");
    let human: Vec<f64> = (0..40)
        .map(|i| f64::from(i) * 250.0 + f64::from((i * 37) % 11) * 19.0)
        .collect();
    let d = ok(&client, "detect", json!({"actions_ms": human})).await;
    assert_eq!(d["fired"], 0, "{d}");
    let walk = json!([[0, 0, 0], [1000, 5, 0], [1100, 200, 0], [2100, 205, 0]]);
    let d = ok(&client, "detect", json!({"positions": walk})).await;
    assert_eq!(d["detections"][0]["rule"], "impossible-movement", "{d}");
    assert_eq!(d["detections"][0]["count"], 1, "{d}");

    let msg = err(
        &client,
        "detect",
        json!({"actions_ms": [1], "rules": ["nope"]}),
    )
    .await;
    assert!(
        msg.contains("`rules`") && msg.contains("debugger-check"),
        "{msg}"
    );
    let msg = err(&client, "detect", json!({})).await;
    assert!(msg.contains("trace_id"), "{msg}");
    let msg = err(&client, "detect", json!({"trace_id": "tr-9"})).await;
    assert!(msg.contains("`trace_id`"), "{msg}");
    Ok(())
}

/// An Ethernet/IPv4/TCP frame from `sport` to `dport` carrying `payload`.
fn frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 5 << 4, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let total = (20 + tcp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    ip.extend_from_slice(&tcp);
    let mut eth = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    eth.extend_from_slice(&ip);
    eth
}

#[tokio::test]
async fn a_captures_client_actions_are_a_series() -> TestResult {
    use mcp_network::capture_file::{LinkType, PcapWriter};
    let dir = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "detect-capture")?;
    // A bot: a client action every 250 ms, each answered by the server.
    let path = dir.join("bot.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path)?, LinkType::ETHERNET)?;
    for i in 0..30u32 {
        let at_ms = 1000 + i * 250;
        let (sec, usec) = (1_700_000_000 + i64::from(at_ms / 1000), at_ms % 1000 * 1000);
        let action = frame(50000, 4000, &[0x0c, 1, 2, 3, 4]);
        w.write_packet(sec, usec, action.len() as u32, &action)
            .map_err(|e| e.to_string())?;
        let reply = frame(4000, 50000, &[0xaf, 1]);
        w.write_packet(sec, usec + 10, reply.len() as u32, &reply)
            .map_err(|e| e.to_string())?;
    }
    drop(w);
    let root = dir.to_string_lossy().into_owned();
    let client = start_bin(
        env!("CARGO_BIN_EXE_mcp-behavior"),
        &["--root".to_string(), root.clone()],
    )
    .await?;
    let d = ok(&client, "detect", json!({"source": "bot.pcap"})).await;
    assert_eq!(d["fired"], 1, "{d}");
    assert_eq!(
        d["detections"][0]["rule"], "regular-action-intervals",
        "{d}"
    );
    let msg = err(
        &client,
        "detect",
        json!({"source": "bot.pcap", "port": 6112}),
    )
    .await;
    assert!(
        msg.contains("`source`") && msg.contains("port 6112"),
        "{msg}"
    );
    let msg = err(&client, "detect", json!({"source": "/etc/passwd"})).await;
    assert!(msg.contains("`source`"), "{msg}");
    Ok(())
}
