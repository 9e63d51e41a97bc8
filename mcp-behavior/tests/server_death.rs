//! The server killed mid-window: a watched or attached process goes on as before, with no
//! breakpoint left armed (a write to the watched value does not kill it with SIGTRAP), no
//! tracer and not stopped.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// The pids of this test's children running the mcp-behavior binary.
fn server_pids() -> Vec<i32> {
    let me = std::process::id().to_string();
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_mcp-behavior")).unwrap_or_default();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1));
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if ppid == Some(me.as_str()) && exe == bin {
            out.push(pid);
        }
    }
    out
}

fn kill_servers() {
    for pid in server_pids() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn assert_untouched(fx: &mut LineProcess) -> TestResult {
    let pid = fx.pid();
    fx.command("write 99");
    assert_eq!(
        fx.line().trim(),
        "ok",
        "the process answers after the server died"
    );
    fx.command("thread 98");
    assert_eq!(fx.line().trim(), "ok");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    assert!(status.contains("TracerPid:\t0"), "{status}");
    assert!(
        !status.contains("State:\tT") && !status.contains("State:\tt"),
        "{status}"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_and_an_attached_trace_die_with_their_server() -> TestResult {
    let mut fx = LineProcess::spawn(Command::new(fixture_dir().join("writer")));
    let (pid, life) = (fx.pid(), fx.addr("life"));
    let client = server(false).await?;
    let call = tokio::spawn(async move {
        let _ = call(
            &client,
            "find_writers",
            json!({"pid": pid, "address": hex(life), "duration_s": 60}),
        )
        .await;
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    kill_servers();
    call.abort();
    assert_untouched(&mut fx)?;

    // An attached trace (in the same test: `kill_servers` kills every server this test
    // binary started).
    let client = server(false).await?;
    let t = ok(&client, "trace_start", json!({"pid": pid})).await;
    assert_eq!(t["mode"], "syscall");
    fx.command("write 1");
    assert_eq!(fx.line().trim(), "ok");
    kill_servers();
    drop(client);
    assert_untouched(&mut fx)
}
