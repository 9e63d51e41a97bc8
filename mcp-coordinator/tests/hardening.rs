//! The coordinator under children that misbehave and agents that send too much (issue 15),
//! through rmcp's client: a child stopped with SIGSTOP (so its input pipe fills) still gets
//! every call timed out on time while another child answers; it shows as unresponsive and
//! comes back after SIGCONT or a restart; a killed child is never reported running;
//! findings_record refuses data too deep or too large at once; the coordinator's own arguments
//! are bounded and named; and coordinators started together on one fresh data directory all
//! open the findings store.

mod common;

use common::{
    COORDINATOR, TEST_CHILD, coordinator, server, server_entry, server_with_args, sibling, tmp,
    write_config,
};
use mcp_testkit::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The call timeout of the children in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The most any call to a stopped child may take: the timeout plus a generous margin.
const ANSWER_BOUND: Duration = Duration::from_secs(8);
/// Within this a stopped child must show as unresponsive (ping every 1 s, unresponsive after
/// 1 s without an answer), and a resumed one as running again.
const LIVENESS_BOUND: Duration = Duration::from_secs(8);

/// Two test children, `d2` (the one stopped) and `other`, pinged every second.
fn config(dir: &Path) -> Result<PathBuf, Error> {
    let text = format!(
        "[coordinator]\ncall_timeout_s = {}\nping_s = 1\nunresponsive_s = 1\n\n\
         [[servers]]\nname = \"d2\"\ncommand = \"{TEST_CHILD}\"\n\n\
         [[servers]]\nname = \"other\"\ncommand = \"{TEST_CHILD}\"\nargs = [\"--no-resources\"]\n",
        CALL_TIMEOUT.as_secs()
    );
    write_config(dir, "c.toml", &text)
}

async fn status(client: &Client) -> Value {
    ok(client, "servers_status", json!({})).await
}

fn state(status: &Value, name: &str) -> String {
    server_entry(status, name)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn pid_of(status: &Value, name: &str) -> Result<i32, Error> {
    let pid = server_entry(status, name)["pid"]
        .as_u64()
        .ok_or_else(|| format!("no pid for {name} in {status}"))?;
    Ok(i32::try_from(pid)?)
}

/// Resumes the stopped child however the test ends, so that no stopped process is left.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

fn stop(pid: i32) -> Result<Resume, Error> {
    kill(Pid::from_raw(pid), Signal::SIGSTOP)?;
    Ok(Resume(pid))
}

/// Polls servers_status until `name` is in `wanted` state, for at most `within`.
async fn wait_state(client: &Client, name: &str, wanted: &str, within: Duration) -> TestResult {
    let deadline = Instant::now() + within;
    loop {
        let s = status(client).await;
        if state(&s, name) == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{name} not {wanted} within {within:?}: {s}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One call through the coordinator: whether it was an error, and how long it took (an
/// answer that takes longer than `ANSWER_BOUND` plus a little fails the test).
async fn timed_call(
    peer: rmcp::Peer<rmcp::RoleClient>,
    tool: &str,
    args: Value,
) -> Result<(bool, Duration, String), Error> {
    let started = Instant::now();
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = tokio::time::timeout(ANSWER_BOUND * 2, peer.call_tool(params))
        .await
        .map_err(|_| format!("{tool}: no answer within {:?}", ANSWER_BOUND * 2))??;
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    Ok((r.is_error == Some(true), started.elapsed(), text))
}

#[tokio::test]
async fn calls_to_a_stopped_child_time_out_on_time_and_others_answer() -> TestResult {
    let dir = tmp("hard-stop")?;
    let client = coordinator(&config(&dir)?, &[]).await?;
    let pid = pid_of(&status(&client).await, "d2")?;
    let _resume = stop(pid)?;
    // 40 calls of 20 KB each: far more than the pipe holds, so the child's input blocks.
    let big = "x".repeat(20_000);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let peer = client.peer().clone();
        let args = json!({"text": big});
        calls.spawn(async move { timed_call(peer, "d2__echo", args).await });
    }
    // Meanwhile the other child answers as usual.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (failed, took, text) =
        timed_call(client.peer().clone(), "other__echo", json!({"text": "hi"})).await?;
    assert!(!failed, "other__echo failed: {text}");
    assert!(took < CALL_TIMEOUT, "other__echo took {took:?}");
    let mut answered = 0;
    while let Some(r) = calls.join_next().await {
        let (failed, took, text) = r??;
        assert!(failed, "a call to the stopped child succeeded: {text}");
        assert!(took <= ANSWER_BOUND, "a call took {took:?}: {text}");
        answered += 1;
    }
    assert_eq!(answered, 40);
    // A later small call, behind all that unread input, times out on time too.
    let (failed, took, text) =
        timed_call(client.peer().clone(), "d2__echo", json!({"text": "small"})).await?;
    assert!(failed && took <= ANSWER_BOUND, "{took:?}: {text}");
    assert!(text.contains("timed out"), "{text}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_stopped_child_is_unresponsive_until_resumed_or_restarted() -> TestResult {
    let dir = tmp("hard-alive")?;
    let client = coordinator(&config(&dir)?, &[]).await?;
    let pid = pid_of(&status(&client).await, "d2")?;
    let resume = stop(pid)?;
    wait_state(&client, "d2", "unresponsive", LIVENESS_BOUND).await?;
    assert_eq!(state(&status(&client).await, "other"), "running");
    drop(resume);
    wait_state(&client, "d2", "running", LIVENESS_BOUND).await?;
    let said = ok(&client, "d2__echo", json!({"text": "back"})).await;
    assert_eq!(said["text"], "back");

    // Stopped again, a restart replaces it: the new process runs, the old one is ended.
    let _resume = stop(pid)?;
    wait_state(&client, "d2", "unresponsive", LIVENESS_BOUND).await?;
    let restarted = ok(&client, "servers_restart", json!({"name": "d2"})).await;
    assert_eq!(state(&restarted, "d2"), "running", "{restarted}");
    let new_pid = pid_of(&restarted, "d2")?;
    assert_ne!(new_pid, pid);
    let said = ok(&client, "d2__echo", json!({"text": "new"})).await;
    assert_eq!(said["pid"], json!(new_pid));
    let deadline = Instant::now() + LIVENESS_BOUND;
    while kill(Pid::from_raw(pid), None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the stopped process {pid} outlived its restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.cancel().await?;
    Ok(())
}

/// Whether process `pid` has ended: a zombie not yet reaped, or gone.
fn dead(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
    })
}

#[tokio::test]
async fn a_killed_child_is_never_reported_running() -> TestResult {
    let dir = tmp("hard-kill")?;
    let client = coordinator(&config(&dir)?, &[]).await?;
    for _ in 0..3 {
        let pid = pid_of(&status(&client).await, "d2")?;
        kill(Pid::from_raw(pid), Signal::SIGKILL)?;
        // SIGKILL is delivered when the process next runs: from the moment it is dead (a
        // zombie, or reaped), asked at once and while it restarts, never running with it.
        while !dead(pid) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let deadline = Instant::now() + LIVENESS_BOUND;
        loop {
            let s = status(&client).await;
            let entry = server_entry(&s, "d2");
            let now = state(&s, "d2");
            if entry["pid"] == json!(pid) || entry["pid"].is_null() {
                assert!(
                    now != "running" && now != "unresponsive",
                    "the killed child is reported {now}: {s}"
                );
            }
            if now == "running" {
                break;
            }
            assert!(Instant::now() < deadline, "d2 not restarted: {s}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let said = ok(&client, "d2__echo", json!({"text": "again"})).await;
        assert_ne!(said["pid"], json!(pid));
    }
    client.cancel().await?;
    Ok(())
}

/// `{"a": {"a": ... "x"}}`, `levels` objects deep (built without recursion).
fn nested(levels: usize) -> Value {
    let mut v = json!("x");
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

#[tokio::test]
async fn findings_record_refuses_data_too_deep_or_too_large_at_once() -> TestResult {
    let dir = tmp("hard-record")?;
    let client = coordinator(&config(&dir)?, &[]).await?;
    let cases = [
        (nested(40), vec!["`data`", "41 levels", "at most 32"]),
        (
            json!({"blob": "y".repeat(300_000)}),
            vec!["`data`", "300011 bytes", "at most 262144"],
        ),
    ];
    for (data, words) in cases {
        let started = Instant::now();
        let text = err(
            &client,
            "findings_record",
            json!({"kind": "note", "title": "t", "data": data}),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(2), "{text}");
        for w in words {
            assert!(text.contains(w), "{w:?} not in {text}");
        }
    }
    let text = err(
        &client,
        "findings_record",
        json!({"kind": "note", "title": "t", "target": nested(33)}),
    )
    .await;
    assert!(text.contains("`target`"), "{text}");
    // At the cap it is kept, and the coordinator still answers.
    let kept = ok(
        &client,
        "findings_record",
        json!({"kind": "note", "title": "t", "data": nested(31)}),
    )
    .await;
    assert!(kept["finding"]["id"].is_string(), "{kept}");
    client.cancel().await?;
    Ok(())
}

/// Reads lines from the coordinator's stdout until the answer to request `id` (or an error
/// for a request whose id could not be read).
async fn answer_to(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    id: u64,
) -> Result<Value, Error> {
    while let Some(line) = lines.next_line().await? {
        let v: Value = serde_json::from_str(&line)?;
        // A message that cannot be parsed is answered with `id: null` (JSON-RPC 2.0).
        if v["id"] == json!(id) || (v["id"].is_null() && v["error"].is_object()) {
            return Ok(v);
        }
    }
    Err(format!("the coordinator closed its output before answering request {id}").into())
}

/// 2,000 levels are past serde_json's limit (128): rmcp's client cannot even write such a
/// request without overflowing a test thread's stack, so it is written as raw JSON-RPC. It
/// must be refused at once, before any tool sees it, and the coordinator must live on.
#[tokio::test]
async fn data_2000_levels_deep_is_answered_at_once() -> TestResult {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = tmp("hard-deep")?;
    let cfg = config(&dir)?;
    let mut process = tokio::process::Command::new(COORDINATOR)
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(mut stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
        return Err("no pipes to the coordinator".into());
    };
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "hardening", "version": "1"}}});
    stdin.write_all(format!("{init}\n").as_bytes()).await?;
    answer_to(&mut lines, 1).await?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    stdin
        .write_all(format!("{initialized}\n").as_bytes())
        .await?;
    let deep = format!("{}\"x\"{}", "{\"a\":".repeat(2000), "}".repeat(2000));
    let call = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\
         \"name\":\"findings_record\",\"arguments\":{{\"kind\":\"note\",\"title\":\"t\",\
         \"data\":{deep}}}}}}}\n"
    );
    let started = Instant::now();
    stdin.write_all(call.as_bytes()).await?;
    let answer = tokio::time::timeout(Duration::from_secs(5), answer_to(&mut lines, 2))
        .await
        .map_err(|_| "2,000-deep data got no answer within 5 s")??;
    assert!(started.elapsed() < Duration::from_secs(2), "{answer}");
    assert!(
        answer["error"].is_object() || answer["result"]["isError"] == json!(true),
        "2,000-deep data was taken: {answer}"
    );
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    stdin.write_all(format!("{ping}\n").as_bytes()).await?;
    let pong = tokio::time::timeout(Duration::from_secs(5), answer_to(&mut lines, 3))
        .await
        .map_err(|_| "no answer to ping after the deep request")??;
    assert!(pong["result"].is_object(), "{pong}");
    Ok(())
}

#[tokio::test]
async fn coordinators_started_together_on_a_fresh_store_all_start() -> TestResult {
    for round in 0..4 {
        let dir = tmp(&format!("hard-store-{round}"))?;
        let cfg = write_config(dir.path(), "c.toml", "")?;
        let data = dir.path().join("data");
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let args = vec![
                "--config".to_string(),
                cfg.display().to_string(),
                "--data-dir".to_string(),
                data.display().to_string(),
            ];
            starts.spawn(async move {
                let mut cmd = tokio::process::Command::new(COORDINATOR);
                cmd.args(&args).stderr(std::process::Stdio::null());
                serve(cmd).await
            });
        }
        let mut clients = Vec::new();
        while let Some(started) = starts.join_next().await {
            let client =
                started?.map_err(|e| format!("round {round}: a coordinator failed: {e}"))?;
            clients.push(client);
        }
        for client in &clients {
            let recorded = ok(
                client,
                "findings_record",
                json!({"kind": "note", "title": "together"}),
            )
            .await;
            assert!(recorded["finding"]["id"].is_string(), "{recorded}");
        }
        for client in clients {
            client.cancel().await?;
        }
    }
    Ok(())
}

/// The coordinator's own arguments are bounded and named (the bad-input matrix's cells): empty
/// or overlong labels, titles and query texts, too many links or calls, and a capture that
/// network__d2_decode cannot decode given to analyze_character.
#[tokio::test]
async fn own_tool_arguments_are_bounded_and_named() -> TestResult {
    let dir = tmp("hard-bounds")?;
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;
    let root = root.display();
    let text = server_with_args(
        "network",
        sibling("mcp-network")?.display(),
        &[
            "--root",
            &root.to_string(),
            "--output-dir",
            &root.to_string(),
        ],
    ) + &server("d2", TEST_CHILD);
    let client = coordinator(&write_config(&dir, "c.toml", &text)?, &[]).await?;
    let huge = "A".repeat(1 << 20);
    let f = |kind: &str, title: &str| json!({"kind": kind, "title": title});
    let a = ok(&client, "findings_record", f("note", "a")).await;
    let b = ok(&client, "findings_record", f("note", "b")).await;
    let (a, b) = (&a["finding"]["id"], &b["finding"]["id"]);
    let many_links = vec![json!({"to": a, "relation": "r"}); 257];
    let cases = [
        ("findings_record", f("", "t"), "`kind`"),
        ("findings_record", f(&huge, "t"), "`kind`"),
        ("findings_record", f("note", ""), "`title`"),
        ("findings_record", f("note", &"t".repeat(1001)), "`title`"),
        (
            "findings_record",
            json!({"kind": "note", "title": "t", "links": many_links}),
            "`links`",
        ),
        (
            "findings_record",
            json!({"kind": "note", "title": "t", "links": [{"to": a, "relation": ""}]}),
            "`links[0].relation`",
        ),
        (
            "findings_link",
            json!({"from": a, "to": b, "relation": ""}),
            "`relation`",
        ),
        (
            "findings_link",
            json!({"from": a, "to": b, "relation": huge}),
            "`relation`",
        ),
        ("findings_query", json!({"target": huge}), "`target`"),
        ("findings_query", json!({"text": huge}), "`text`"),
        (
            "fan_out",
            json!({"calls": vec![json!({"tool": "d2__echo"}); 65]}),
            "`calls`",
        ),
        (
            "analyze_character",
            json!({"capture_id": "/etc/passwd"}),
            "`capture_id`",
        ),
        (
            "analyze_character",
            json!({"capture_id": "cap-77"}),
            "`capture_id`",
        ),
    ];
    for (tool, args, named) in cases {
        let e = err(&client, tool, args).await;
        assert!(e.contains(named) && e.len() < 4096, "{tool}: {e}");
    }
    // At the caps it is kept.
    ok(
        &client,
        "findings_record",
        f(&"k".repeat(200), &"t".repeat(1000)),
    )
    .await;
    client.cancel().await?;
    Ok(())
}
