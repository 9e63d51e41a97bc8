//! Cancellation and long calls through the coordinator, as a host drives them with rmcp's
//! client: a host's `notifications/cancelled` reaches the child (it notes the cancel), no
//! progress of the cancelled call reaches the host afterwards, and a call that keeps
//! reporting progress outlives the call timeout (which restarts on progress) but not the
//! configured maximum.

mod common;

use common::{COORDINATOR, TEST_CHILD, tmp, write_config};
use mcp_testkit::Error;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A host that notes when each progress notification arrived.
#[derive(Clone, Default)]
struct Host {
    progress: Arc<Mutex<Vec<(Instant, f64)>>>,
}

impl ClientHandler for Host {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut p) = self.progress.lock() {
            p.push((Instant::now(), params.progress));
        }
    }
}

async fn start(dir: &Path) -> Result<(RunningService<RoleClient, Host>, Host), Error> {
    let text = format!(
        "[coordinator]\ncall_timeout_s = 2\nmax_call_s = 6\n\n\
         [[servers]]\nname = \"child\"\ncommand = \"{TEST_CHILD}\"\n"
    );
    let cfg = write_config(dir, "c.toml", &text)?;
    let mut cmd = tokio::process::Command::new(COORDINATOR);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stderr(std::process::Stdio::null());
    let host = Host::default();
    let service = host.clone().serve(TokioChildProcess::new(cmd)?).await?;
    Ok((service, host))
}

fn call(name: &str, args: serde_json::Value) -> ClientRequest {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = args.as_object().cloned();
    ClientRequest::CallToolRequest(CallToolRequest::new(params))
}

/// Polls for `file` for at most `within`; when it appeared.
async fn appears(file: &Path, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if file.exists() {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

#[tokio::test]
async fn a_host_cancel_reaches_the_child_and_ends_its_progress() -> Result<(), Error> {
    let dir = tmp("cancel")?;
    let (service, host) = start(dir.path()).await?;
    let marker = dir.path().join("cancelled");
    // 200 steps 50 ms apart: 10 s of progress unless cancelled.
    let request = call(
        "child__progress",
        json!({"steps": 200, "interval_ms": 50, "cancelled_marker": marker.display().to_string()}),
    );
    let handle = service
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await?;
    // Wait until progress flows through, then cancel as a host does.
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.progress.lock().map(|p| p.len()).unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "no progress reached the host");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled_at = Instant::now();
    handle.cancel(Some("test".into())).await?;
    let seen = appears(&marker, Duration::from_secs(10)).await;
    let Some(seen) = seen else {
        panic!("the child never saw the host's cancellation");
    };
    eprintln!(
        "cancel -> child saw it: {:.1} ms",
        (seen - cancelled_at).as_secs_f64() * 1e3
    );
    // Nothing of the cancelled call reaches the host afterwards (its route ended when the
    // coordinator dropped the call): wait a few intervals and look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late: Vec<f64> = host
        .progress
        .lock()
        .map(|p| {
            p.iter()
                .filter(|(t, _)| *t > cancelled_at + Duration::from_millis(60))
                .map(|(_, v)| *v)
                .collect()
        })
        .unwrap_or_default();
    assert!(late.is_empty(), "progress after the cancel: {late:?}");
    // The coordinator and the child are fine: the next call answers.
    let r = service
        .send_request(call("child__echo", json!({"text": "still here"})))
        .await?;
    assert!(
        matches!(r, ServerResult::CallToolResult(ref c) if c.is_error != Some(true)),
        "{r:?}"
    );
    service.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn progress_keeps_a_call_alive_past_the_timeout_up_to_the_maximum() -> Result<(), Error> {
    let dir = tmp("longcall")?;
    let (service, _host) = start(dir.path()).await?;
    // 4 s of progress every 200 ms, under a 2 s call timeout: completes.
    let started = Instant::now();
    let r = service
        .send_request(call(
            "child__progress",
            json!({"steps": 20, "interval_ms": 200}),
        ))
        .await?;
    let ServerResult::CallToolResult(r) = r else {
        panic!("not a tool result: {r:?}");
    };
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    assert!(started.elapsed() > Duration::from_secs(2));
    // Silence for longer than the timeout still times out.
    let r = service
        .send_request(call("child__sleep", json!({"ms": 10_000})))
        .await?;
    let ServerResult::CallToolResult(r) = r else {
        panic!("not a tool result: {r:?}");
    };
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(text.contains("timed out after 2 s"), "{text}");
    // Progress for longer than max_call_s (6 s) is cut at the maximum.
    let marker = dir.path().join("cut");
    let r = service
        .send_request(call(
            "child__progress",
            json!({"steps": 100, "interval_ms": 200, "cancelled_marker": marker.display().to_string()}),
        ))
        .await?;
    let ServerResult::CallToolResult(r) = r else {
        panic!("not a tool result: {r:?}");
    };
    assert_eq!(r.is_error, Some(true));
    let text = format!("{:?}", r.content);
    assert!(text.contains("timed out after 6 s"), "{text}");
    assert!(
        appears(&marker, Duration::from_secs(10)).await.is_some(),
        "the child was not told that the call ended"
    );
    service.cancel().await?;
    Ok(())
}

/// CPU time (user + system, in clock ticks) of process `pid` so far.
fn cpu_ticks(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: state is the 3rd, utime the 14th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[tokio::test]
async fn a_cancelled_scan_stops_using_cpu_in_the_child() -> Result<(), Error> {
    use mcp_testkit::{LineProcess, build_fixtures};
    let fixtures = build_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/memfix/build.sh"),
        &std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        "memfix-coordinator",
        "needs cc and gcc-mingw-w64-x86-64, installed by scripts/test.sh",
    );
    let mut target = std::process::Command::new(fixtures.join("memfix"));
    target.args(["--big-mib", "1024"]);
    // Spawned once it printed where its values are (its first line).
    let target = LineProcess::spawn(target);
    let dir = tmp("cancel-scan")?;
    let text = format!(
        "[[servers]]\nname = \"memory\"\ncommand = \"{}\"\n",
        common::sibling("mcp-memory")?.display()
    );
    let cfg = write_config(dir.path(), "c.toml", &text)?;
    let mut cmd = tokio::process::Command::new(COORDINATOR);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::null());
    let host = Host::default();
    let service = host.clone().serve(TokioChildProcess::new(cmd)?).await?;
    let status = service
        .send_request(call("servers_status", json!({})))
        .await?;
    let ServerResult::CallToolResult(status) = status else {
        panic!("no status: {status:?}");
    };
    let memory_pid = status
        .structured_content
        .as_ref()
        .and_then(|s| common::server_entry(s, "memory")["pid"].as_u64())
        .ok_or("no pid for the memory server")?;
    // A pattern scan of every byte of a 1 GiB region: seconds of work on every core.
    let request = call(
        "memory__scan_start",
        json!({"pid": target.pid(), "pattern": "B5 ?? 6B ?? ?? 01 ?? 77", "alignment": 1}),
    );
    let handle = service
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await?;
    // Wait until the scan is busy (its CPU grows), then cancel as a host does.
    let before = cpu_ticks(memory_pid).ok_or("cannot read the server's CPU time")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cpu_ticks(memory_pid).unwrap_or(before) < before + 20 {
        assert!(Instant::now() < deadline, "the scan never got busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled_at = Instant::now();
    handle.cancel(Some("test".into())).await?;
    // CPU stops growing: find when two readings 50 ms apart (5 ticks at 100 Hz) are equal
    // but for at most one tick of bookkeeping.
    let stopped = loop {
        let a = cpu_ticks(memory_pid).ok_or("the server went away")?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let b = cpu_ticks(memory_pid).ok_or("the server went away")?;
        if b <= a + 1 {
            break Instant::now() - Duration::from_millis(50);
        }
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(20),
            "the scan kept running after the cancel"
        );
    };
    eprintln!(
        "cancel -> scan CPU stopped: within {:.0} ms",
        (stopped.saturating_duration_since(cancelled_at)).as_secs_f64() * 1e3
    );
    service.cancel().await?;
    Ok(())
}

/// mcp-memory's `watch` reports progress at every sample: through a coordinator whose call
/// timeout is 2 s, a 5-sample watch 1 s apart (about 4 s) completes with every sample.
#[tokio::test]
async fn a_real_watch_outlives_the_call_timeout() -> Result<(), Error> {
    use mcp_testkit::{LineProcess, build_fixtures};
    let fixtures = build_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/memfix/build.sh"),
        &std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        "memfix-coordinator-watch",
        "needs cc and gcc-mingw-w64-x86-64, installed by scripts/test.sh",
    );
    let target = LineProcess::spawn(std::process::Command::new(fixtures.join("memfix")));
    let address = target.info["heap_value"]
        .as_str()
        .ok_or("the fixture printed no heap_value")?
        .to_string();
    let dir = tmp("watch")?;
    let text = format!(
        "[coordinator]\ncall_timeout_s = 2\n\n[[servers]]\nname = \"memory\"\ncommand = \"{}\"\n",
        common::sibling("mcp-memory")?.display()
    );
    let cfg = write_config(dir.path(), "c.toml", &text)?;
    let mut cmd = tokio::process::Command::new(COORDINATOR);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::null());
    let service = Host::default().serve(TokioChildProcess::new(cmd)?).await?;
    let started = Instant::now();
    let r = service
        .send_request(call(
            "memory__watch",
            json!({"pid": target.pid(), "address": address, "value_type": "u32",
                   "interval_ms": 1000, "samples": 5}),
        ))
        .await?;
    let ServerResult::CallToolResult(r) = r else {
        panic!("not a tool result: {r:?}");
    };
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    assert!(started.elapsed() > Duration::from_secs(3));
    let data = r.structured_content.unwrap_or_default();
    assert_eq!(data["samples"], 5, "{data}");
    assert!(data["duration_ms"].as_u64().unwrap_or(0) >= 4000, "{data}");
    service.cancel().await?;
    Ok(())
}
