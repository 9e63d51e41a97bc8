//! What sandbox-runner's MCP server leaves on the host, counted: every file, directory and
//! cgroup under the runner's directory and cgroup parent that carries a runner's pid
//! (`sbx-PID-N`, `output-PID-N.log`). A server that stops its sandboxes and exits leaves none;
//! one killed with -9 (mid-launch, or with a sandbox running) leaves some, which the next
//! server removes when it starts, while a live server's stay untouched. Each test has a
//! directory (`SANDBOX_RUNNER_DIR`) and cgroup parent (`SANDBOX_RUNNER_CGROUP`) of its own, so
//! the counts are exact while other tests run. Needs root and cgroups; skips otherwise.

use mcp_testkit::{Client, Error, TestDir, TestResult, err, ok};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{probe, usable, within};

const RUNNER: &str = env!("CARGO_BIN_EXE_sandbox-runner");

/// A server and its pid (the owner pid in the names of what it makes).
struct Server {
    client: Client,
    pid: u32,
}

async fn start(base: &Path, group: &str) -> Result<Server, Error> {
    let mut cmd = tokio::process::Command::new(RUNNER);
    cmd.args([
        "mcp",
        "--allow-launch",
        "--root",
        env!("CARGO_TARGET_TMPDIR"),
    ])
    .env("SANDBOX_RUNNER_DIR", base)
    .env("SANDBOX_RUNNER_CGROUP", group)
    .stderr(std::process::Stdio::null());
    let transport = TokioChildProcess::new(cmd)?;
    let pid = transport.id().ok_or("the server has no pid")?;
    let client = ().serve(transport).await?;
    Ok(Server { client, pid })
}

/// The cgroup parent `group` in each hierarchy (v2: one; v1: one per controller the runner
/// uses, under this process's own cgroup, which the servers inherit).
fn group_dirs(group: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let v2 = std::fs::read_to_string(root.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
    if v2 {
        return vec![root.join(group)];
    }
    let path_of = common::own_cgroup;
    ["memory", "pids", "cpu", "freezer", "cpuacct"]
        .iter()
        .filter(|c| {
            let mount = root.join(c);
            mount.is_dir() && (**c != "cpuacct" || !mount.join("cpu.shares").exists())
        })
        .map(|c| root.join(c).join(path_of(c)).join(group))
        .collect()
}

/// Everything under `base` and the cgroup parents whose name carries `pid` as its owner.
fn owned(base: &Path, group: &str, pid: u32) -> Vec<PathBuf> {
    let mut dirs = vec![base.to_path_buf()];
    dirs.extend(group_dirs(group));
    dirs.iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(sandbox_runner::sandbox::owner_pid)
                == Some(pid)
        })
        .collect()
}

/// Everything in `base` and the groups in the cgroup parents, whoever made it.
fn everything(base: &Path, group: &str) -> Vec<PathBuf> {
    let in_base = std::fs::read_dir(base).into_iter().flatten().flatten();
    let groups = group_dirs(group)
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()));
    in_base.chain(groups).map(|e| e.path()).collect()
}

/// The test's cgroup parent, removed when dropped (declared before the servers, so dropped
/// after them), with any sandbox group a failed test left in it: best effort.
struct Groups(String);

impl Drop for Groups {
    fn drop(&mut self) {
        for d in group_dirs(&self.0) {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn sleeper(marker: &str) -> Value {
    json!({"profile": "strict", "program": probe().display().to_string(), "args": ["sleep", marker]})
}

fn host_pids(v: &Value) -> Vec<u64> {
    v["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["pid"].as_u64()).collect())
        .unwrap_or_default()
}

fn gone(pids: &[u64]) -> bool {
    within(Duration::from_secs(10), || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
    })
}

fn kill9(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// launch, an exit, stop, a failed launch and the server's exit: the output of a program that
/// ended stays readable until stop, and after the exit nothing this server made is left.
#[tokio::test]
async fn a_server_that_exits_leaves_nothing() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let base = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "sbx-leftovers-exit")?;
    let groups = Groups(format!("sbx-test-leftovers-exit-{}", std::process::id()));
    let group = groups.0.as_str();
    let server = start(&base, group).await?;
    let client = &server.client;

    let marker = (5_000_000 + std::process::id()).to_string();
    let running = ok(client, "launch", sleeper(&marker)).await;
    let running_pids = host_pids(&running);
    let running_out = running["output_path"]
        .as_str()
        .ok_or("no output_path")?
        .to_string();
    assert!(Path::new(&running_out).exists(), "{running}");

    let script = format!("echo out-{marker}; echo err-{marker} >&2");
    let printed = ok(
        client,
        "launch",
        json!({"profile": "strict", "program": "/bin/sh", "args": ["-c", script]}),
    )
    .await;
    let id = printed["sandbox_id"].as_str().ok_or("no id")?.to_string();
    let out = printed["output_path"]
        .as_str()
        .ok_or("no output_path")?
        .to_string();
    let mut status = Value::Null;
    for _ in 0..400 {
        status = ok(client, "status", json!({"sandbox_id": id})).await;
        if status["state"] == "exited" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["state"], "exited", "{status}");
    // Ended, not stopped: the output is still there to read.
    assert_eq!(status["output_path"], out.as_str(), "{status}");
    let text = std::fs::read_to_string(&out)?;
    assert!(
        text.contains(&format!("out-{marker}")) && text.contains(&format!("err-{marker}")),
        "{text:?}"
    );
    let report = ok(client, "stop", json!({"sandbox_id": id})).await;
    assert_eq!(report["exit_code"], 0, "{report}");
    assert!(!Path::new(&out).exists(), "stop left the output file");
    let status = ok(client, "status", json!({"sandbox_id": id})).await;
    assert_eq!(status["state"], "exited");
    assert_eq!(status["output_path"], Value::Null, "{status}");

    // A launch that fails inside (the exec) after its output file was made removes it.
    let junk = base.join("junk");
    std::fs::write(&junk, b"\x01\x02 not a program")?;
    std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let e = err(
        client,
        "launch",
        json!({"profile": "strict", "program": junk.display().to_string()}),
    )
    .await;
    assert!(e.contains("Exec format error"), "{e}");
    std::fs::remove_file(&junk)?;

    // Only the running sandbox's directory, output and cgroup(s) are left now.
    let left = owned(&base, group, server.pid);
    let running_id = running["sandbox_id"].as_str().ok_or("no id")?;
    assert!(
        left.iter()
            .all(|p| p.ends_with(running_id) || p.as_os_str() == running_out.as_str()),
        "{left:?}"
    );
    assert!(left.len() >= 3, "dir, output, cgroup: {left:?}");

    server.client.cancel().await?;
    let left = everything(&base, group);
    assert!(
        left.is_empty(),
        "left behind by a server that exited: {left:?}"
    );
    assert!(gone(&running_pids), "the sandbox outlived its server");
    Ok(())
}

/// Three servers share a directory and a cgroup parent: one keeps running a sandbox, one is
/// killed with a sandbox running, one is killed while a launch is under way; plus a cgroup
/// and an output file of a long-dead runner. A fourth server's start removes all the dead
/// ones left and nothing of the live one's, whose sandbox keeps running.
// Multi-threaded: the launch under way runs on a worker while the test watches for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_sweeps_dead_servers_leftovers_only() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let base = TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "sbx-leftovers-dead")?;
    let groups = Groups(format!("sbx-test-leftovers-dead-{}", std::process::id()));
    let group = groups.0.as_str();
    let marker = (6_000_000 + std::process::id()).to_string();

    let live = start(&base, group).await?;
    let launched = ok(&live.client, "launch", sleeper(&marker)).await;
    let live_id = launched["sandbox_id"].as_str().ok_or("no id")?.to_string();
    let live_out = launched["output_path"]
        .as_str()
        .ok_or("no output_path")?
        .to_string();

    // All started before the first kill: each start sweeps what dead runners left.
    let crashed = start(&base, group).await?;
    let midway = start(&base, group).await?;
    let launched = ok(&crashed.client, "launch", sleeper(&marker)).await;
    let crashed_pids = host_pids(&launched);
    kill9(crashed.pid);

    // Killed as soon as its launch has made something: mid-launch (a launch takes ~10 ms).
    let midway_client = std::sync::Arc::new(midway.client);
    let call = {
        let c = midway_client.clone();
        let args = sleeper(&marker);
        tokio::spawn(async move {
            let Value::Object(map) = args else { return };
            let params = rmcp::model::CallToolRequestParams::new("launch").with_arguments(map);
            // The server dies under the call: the answer is an error, or none.
            let _ = c.call_tool(params).await;
        })
    };
    let began = within(Duration::from_secs(20), || {
        !owned(&base, group, midway.pid).is_empty()
    });
    kill9(midway.pid);
    assert!(began, "the launch made nothing in 20 s");
    let _ = tokio::time::timeout(Duration::from_secs(10), call).await;

    // A runner long gone: its pid is that of a process that has exited.
    let mut t = std::process::Command::new("true").spawn()?;
    let dead = t.id();
    t.wait()?;
    let dead_id = format!("sbx-{dead}-0");
    for d in group_dirs(group) {
        std::fs::create_dir_all(d.join(&dead_id))?;
    }
    std::fs::write(base.join(format!("output-{dead}-0.log")), "old\n")?;

    let live_before = owned(&base, group, live.pid);
    assert!(live_before.len() >= 3, "{live_before:?}");
    for (who, pid) in [
        ("crashed", crashed.pid),
        ("midway", midway.pid),
        ("dead", dead),
    ] {
        assert!(
            !owned(&base, group, pid).is_empty(),
            "{who}: nothing left to sweep"
        );
    }
    let crashed_left = owned(&base, group, crashed.pid);
    assert!(
        crashed_left.iter().any(|p| p.starts_with(&*base)) && crashed_left.len() >= 3,
        "a killed server leaves its sandbox's directory, output and cgroup: {crashed_left:?}"
    );

    let fresh = start(&base, group).await?;
    for (who, pid) in [
        ("crashed", crashed.pid),
        ("midway", midway.pid),
        ("dead", dead),
    ] {
        let left = owned(&base, group, pid);
        assert!(left.is_empty(), "{who}: not swept: {left:?}");
    }
    assert!(gone(&crashed_pids), "the crashed server's sandbox survived");
    assert_eq!(
        owned(&base, group, live.pid),
        live_before,
        "a live server's was touched"
    );
    let status = ok(&live.client, "status", json!({"sandbox_id": live_id})).await;
    assert_eq!(status["state"], "running", "{status}");
    assert!(Path::new(&live_out).exists());

    live.client.cancel().await?;
    fresh.client.cancel().await?;
    let left = everything(&base, group);
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}
