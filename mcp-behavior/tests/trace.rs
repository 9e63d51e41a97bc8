//! Event traces through MCP: a launched shell's files and processes, checked against strace
//! on the same command; a running process attached, followed into a new thread and left
//! running untraced after trace_stop.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Every event of a trace, all pages.
async fn all_events(client: &Client, id: &str, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let p = ok(
            client,
            "trace_events",
            json!({"trace_id": id, "kind": kind, "offset": offset, "limit": 500}),
        )
        .await;
        out.extend(p["items"].as_array().cloned().unwrap_or_default());
        match p["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => return out,
        }
    }
}

async fn wait_stopped(client: &Client, id: &str) {
    for _ in 0..200 {
        let s = ok(client, "behavior_summary", json!({"trace_id": id})).await;
        if s["running"] == false {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trace {id} still running");
}

#[tokio::test]
async fn launched_shell_files_match_strace() -> TestResult {
    if !program_available("strace", "-V", "REQUIRE_STRACE") {
        return Ok(());
    }
    let dir = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "trace-files")?;
    let d = dir.display();
    let script = format!(
        "echo one > {d}/a.txt; cat {d}/a.txt > /dev/null; mv {d}/a.txt {d}/b.txt; rm {d}/b.txt; \
         /bin/true"
    );
    let client = server(true).await?;
    let started = ok(
        &client,
        "trace_start",
        json!({"command": ["/bin/sh", "-c", script], "kinds": ["file", "process"]}),
    )
    .await;
    assert_eq!(started["mode"], "seccomp");
    let id = started["trace_id"].as_str().ok_or("no id")?.to_string();
    wait_stopped(&client, &id).await;
    let files: Vec<(String, String)> = all_events(&client, &id, "file")
        .await
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(&d.to_string()))
        })
        .map(|e| {
            (
                e["op"].as_str().unwrap_or("").to_string(),
                e["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let a = format!("{d}/a.txt");
    let b = format!("{d}/b.txt");
    assert_eq!(
        files,
        vec![
            ("create".to_string(), a.clone()),
            ("open".to_string(), a.clone()),
            ("rename".to_string(), a.clone()),
            ("remove".to_string(), b.clone()),
        ],
        "file events"
    );
    // strace sees the same calls on the same paths.
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,open,creat,rename,renameat,renameat2,unlink,unlinkat",
            "-o",
        ])
        .arg(dir.join("strace.txt"))
        .args(["/bin/sh", "-c", &script])
        .status()?;
    assert!(out.success());
    let st = std::fs::read_to_string(dir.join("strace.txt"))?;
    let touching = |p: &str| {
        st.lines()
            .filter(|l| l.contains(&format!("\"{p}\"")))
            .count()
    };
    assert_eq!(touching(&a), 3, "strace: create, open, rename from: {st}");
    assert_eq!(touching(&b), 2, "strace: rename to, unlink: {st}");
    let procs = all_events(&client, &id, "process").await;
    let execs: Vec<&str> = procs
        .iter()
        .filter(|e| e["op"] == "exec")
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(execs.contains(&"/usr/bin/true"), "{procs:?}");
    assert!(procs.iter().any(|e| e["op"] == "spawn"), "{procs:?}");
    let s = ok(&client, "behavior_summary", json!({"trace_id": id})).await;
    assert!(s["files"]["total"].as_u64().unwrap_or(0) >= 2, "{s}");
    Ok(())
}

#[tokio::test]
async fn attached_process_is_followed_then_left_running() -> TestResult {
    let exe = fixture_dir().join("writer");
    let mut fx = LineProcess::spawn(Command::new(&exe));
    let pid = fx.pid();
    let client = server(false).await?;
    let started = ok(
        &client,
        "trace_start",
        json!({"pid": pid, "kinds": ["process", "file"]}),
    )
    .await;
    assert_eq!(started["mode"], "syscall");
    let id = started["trace_id"].as_str().ok_or("no id")?.to_string();
    fx.command("thread 7");
    assert_eq!(fx.line().trim(), "ok");
    let stopped = ok(&client, "trace_stop", json!({"trace_id": id})).await;
    assert_eq!(stopped["running"], false);
    let procs = all_events(&client, &id, "process").await;
    assert_eq!(
        procs.iter().filter(|e| e["op"] == "thread").count(),
        1,
        "{procs:?}"
    );
    // Detached: it answers, and has no tracer.
    fx.command("write 5");
    assert_eq!(fx.line().trim(), "ok");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    assert!(status.contains("TracerPid:\t0"), "{status}");

    // A launch is refused without --allow-launch, naming the argument.
    let msg = err(&client, "trace_start", json!({"command": ["/bin/true"]})).await;
    assert!(
        msg.contains("`command`") && msg.contains("--allow-launch"),
        "{msg}"
    );
    let msg = err(
        &client,
        "trace_start",
        json!({"pid": pid, "kinds": ["files"]}),
    )
    .await;
    assert!(
        msg.contains("`kinds`") && msg.contains("exec_memory"),
        "{msg}"
    );
    let msg = err(&client, "trace_events", json!({"trace_id": "tr-99"})).await;
    assert!(msg.contains("`trace_id`") && msg.contains("tr-1"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn published_tool_schemas_match() -> TestResult {
    let client = server(true).await?;
    let mut tools = client.list_all_tools().await?;
    client.cancel().await?;
    assert_eq!(tools.len(), 6);
    for t in &tools {
        assert!(t.output_schema.is_some(), "{}", t.name);
        assert!(t.title.is_some(), "{}", t.name);
    }
    check_published_tools(
        &mut tools,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tools/mcp-behavior.json"),
        "cargo test -p mcp-behavior --test trace",
    )?;
    Ok(())
}

/// sandbox-runner beside this crate's binary (the workspace build puts them together).
fn sandbox_runner() -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_mcp-behavior")).with_file_name("sandbox-runner");
    p.exists().then_some(p)
}

#[tokio::test]
async fn a_sandbox_is_traced_by_its_id() -> TestResult {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let cgroups = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.contains("pids"))
        || Path::new("/sys/fs/cgroup/pids").is_dir();
    let Some(runner) = sandbox_runner().filter(|_| root && cgroups) else {
        skipped(
            "REQUIRE_SANDBOX",
            &format!(
                "tracing a sandbox needs root, cgroups and sandbox-runner built (root: {root}, \
                 cgroups: {cgroups})"
            ),
        );
        return Ok(());
    };
    // The sandbox writes a file after a while; its id is sbx-<runner pid>-0.
    let mut sbx = Command::new(&runner)
        .args([
            "run",
            "--profile",
            "strict",
            "--net",
            "none",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("sleep 2; echo hi > /tmp/traced-in-sandbox.txt; sleep 30")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let id = format!("sbx-{}-0", sbx.id());
    let client = server(false).await?;
    let mut started = None;
    for _ in 0..50 {
        let a = call(
            &client,
            "trace_start",
            json!({"sandbox_id": id, "kinds": ["file"]}),
        )
        .await;
        if !a.is_error {
            started = Some(a.data);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = started.ok_or("the sandbox never had a process to trace")?;
    let tid = started["trace_id"].as_str().ok_or("no id")?.to_string();
    let mut seen = false;
    for _ in 0..100 {
        let e = ok(
            &client,
            "trace_events",
            json!({"trace_id": tid, "contains": "traced-in-sandbox"}),
        )
        .await;
        if e["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|ev| ev["op"] == "create"))
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok(&client, "trace_stop", json!({"trace_id": tid})).await;
    let _ = sbx.kill();
    let _ = sbx.wait();
    assert!(seen, "the sandboxed program's file was not traced");
    let msg = err(&client, "trace_start", json!({"sandbox_id": "sbx-0-99"})).await;
    assert!(
        msg.contains("`sandbox_id`") && msg.contains("no such running sandbox"),
        "{msg}"
    );
    let msg = err(&client, "trace_start", json!({"sandbox_id": "../x"})).await;
    assert!(msg.contains("sbx-PID-N"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn a_sandbox_launch_is_traced_from_its_first_call() -> TestResult {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let Some(runner) = sandbox_runner().filter(|_| root) else {
        skipped(
            "REQUIRE_SANDBOX",
            "tracing a sandboxed launch needs root and sandbox-runner built",
        );
        return Ok(());
    };
    // sandbox-runner itself launched traced: the sandbox's program is followed through the
    // runner's namespaces from its first system call.
    let client = server(true).await?;
    let started = ok(
        &client,
        "trace_start",
        json!({"command": [runner.to_string_lossy(), "run", "--profile", "strict", "--net",
                           "none", "--", "/bin/sh", "-c", "echo hi > /tmp/first-call.txt"],
               "kinds": ["file", "process"]}),
    )
    .await;
    let id = started["trace_id"].as_str().ok_or("no id")?.to_string();
    wait_stopped(&client, &id).await;
    let files = all_events(&client, &id, "file").await;
    assert!(
        files
            .iter()
            .any(|e| e["op"] == "create" && e["path"] == "/tmp/first-call.txt"),
        "{files:?}"
    );
    let procs = all_events(&client, &id, "process").await;
    assert!(
        procs
            .iter()
            .any(|e| e["op"] == "exec" && e["path"].as_str().is_some_and(|p| p.ends_with("sh"))),
        "{procs:?}"
    );
    Ok(())
}
