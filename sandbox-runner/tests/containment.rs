//! The containment matrix, run for real on this machine through the `sandbox-runner` binary:
//! pids limit, memory limit, forbidden syscalls (killed or EPERM, and reported by name),
//! network modes, read-only view, private /proc, timeout and stop leaving nothing behind.
//! Needs root and cgroups (memory + pids); says so and skips otherwise. The probe program is
//! built with cc from tests/fixtures/sbxprobe.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{probe, usable};

const RUNNER: &str = env!("CARGO_BIN_EXE_sandbox-runner");

/// Runs `sandbox-runner run OPTIONS -- probe ACTION...` and returns (stdout, stderr, report).
fn run(
    options: &[&str],
    action: &[&str],
) -> Result<(String, String, Value), Box<dyn std::error::Error>> {
    let report = tempfile(".json");
    let out = Command::new(RUNNER)
        .arg("run")
        .args(options)
        .arg("--report")
        .arg(&report)
        .arg("--")
        .arg(probe())
        .args(action)
        .output()?;
    let text = std::fs::read_to_string(&report).map_err(|e| {
        format!(
            "no report ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let _ = std::fs::remove_file(&report);
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        serde_json::from_str(&text)?,
    ))
}

fn tempfile(suffix: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sbx-test-{}-{n}{suffix}", std::process::id()))
}

fn violations(report: &Value) -> Vec<(String, String)> {
    report["seccomp_violations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    (
                        v["syscall"].as_str().unwrap_or("").to_string(),
                        v["action"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let (out, _, report) = run(&["--pids", "16"], &["forkbomb", "100"])?;
    assert_eq!(report["pids_limit_hit"], true, "{report}");
    let failed: u32 = out
        .split_whitespace()
        .skip_while(|w| *w != "FAILED")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no FAILED count in {out:?}"))?;
    assert!(
        failed >= 80,
        "only {failed} forks failed under pids 16: {out}"
    );
    assert_eq!(report["exit_code"], 0);
    Ok(())
}

#[test]
fn memory_hog_is_oom_killed() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let (out, _, report) = run(&["--memory", "64M"], &["hog", "1024"])?;
    assert_eq!(report["oom_killed"], true, "{report}");
    assert_eq!(report["signal"], 9, "{report}");
    assert!(!out.contains("RESULT hog 0"), "the hog finished: {out}");
    let peak = report["memory_peak_bytes"].as_u64().unwrap_or(0);
    assert!(peak > 32 << 20 && peak <= 64 << 20, "peak {peak}");
    Ok(())
}

#[test]
fn dangerous_syscalls_kill_and_are_reported() -> TestResult {
    if !usable() {
        return Ok(());
    }
    for (action, syscall) in [
        ("mount", "mount"),
        ("kexec", "kexec_load"),
        ("bpf", "bpf"),
        ("init_module", "init_module"),
    ] {
        let (out, err, report) = run(&[], &[action])?;
        assert_eq!(report["signal"], 9, "{action}: {report} {out} {err}");
        assert!(!out.contains("RESULT"), "{action} returned: {out}");
        assert_eq!(
            violations(&report),
            vec![(syscall.to_string(), "killed".to_string())],
            "{report}"
        );
        let pid = report["seccomp_violations"][0]["pid"].as_u64().unwrap_or(0);
        assert!(pid > 1, "violation pid should be a host pid: {report}");
    }
    Ok(())
}

#[test]
fn forbidden_syscalls_fail_with_eperm_and_are_reported() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let me = std::process::id().to_string();
    for (args, syscall) in [
        (vec!["userns"], "unshare"),
        (vec!["clone_userns"], "clone"),
        (vec!["ptrace", me.as_str()], "ptrace"),
    ] {
        let (out, _, report) = run(&[], &args)?;
        assert!(
            out.contains(&format!("RESULT {} -1 EPERM", args[0])),
            "{args:?}: {out}"
        );
        assert_eq!(
            violations(&report),
            vec![(syscall.to_string(), "eperm".to_string())],
            "{report}"
        );
        assert_eq!(report["exit_code"], 0);
    }
    // The wine profile allows ptrace, but the host's processes are not in the sandbox's pid
    // namespace: attaching to one outside fails all the same.
    let (out, _, report) = run(&["--profile", "wine"], &["ptrace", &me])?;
    assert!(out.contains("RESULT ptrace -1 ESRCH"), "{out}");
    assert!(violations(&report).is_empty(), "{report}");
    Ok(())
}

#[test]
fn log_mode_records_and_lets_calls_run() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let (out, _, report) = run(&["--seccomp-log"], &["userns"])?;
    assert!(out.contains("RESULT userns 0 OK"), "{out}");
    assert_eq!(
        violations(&report),
        vec![("unshare".to_string(), "logged".to_string())]
    );
    Ok(())
}

#[test]
fn no_network_reaches_the_hosts_loopback() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port().to_string();
    // Control: the same probe outside the sandbox reaches the listener.
    let direct = Command::new(probe())
        .args(["connect", "127.0.0.1", &port])
        .output()?;
    assert!(String::from_utf8_lossy(&direct.stdout).contains("RESULT connect 0 OK"));
    let (out, _, _) = run(&["--net", "none"], &["connect", "127.0.0.1", &port])?;
    assert!(out.contains("RESULT connect -1 ECONNREFUSED"), "{out}");
    let (out, _, _) = run(&["--net", "isolated"], &["connect", "127.0.0.1", &port])?;
    assert!(out.contains("RESULT connect -1 ECONNREFUSED"), "{out}");
    Ok(())
}

#[test]
fn isolated_network_reaches_only_the_veth_peer() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let port = 4000 + (std::process::id() % 1000) as u16;
    let sandbox = common::launch_peer_probe(port, std::time::Duration::from_secs(30))?;
    let status = sandbox.status();
    let iface = status
        .interface
        .clone()
        .ok_or("isolated mode without an interface")?;
    assert!(Path::new("/sys/class/net").join(&iface.interface).exists());
    // The host end answers (the probe retries for 20 s while this listener comes up).
    let listener = std::net::TcpListener::bind((iface.host_address.as_str(), port))?;
    let (mut conn, from) = common::accept_within(&listener, std::time::Duration::from_secs(30))?;
    assert_eq!(from.ip().to_string(), iface.sandbox_address);
    std::io::Write::write_all(&mut conn, b"from the veth peer\n")?;
    let (_, stdout) = sandbox.take_stdio();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout.ok_or("no stdout")?, &mut text)?;
    assert!(text.contains("RESULT peer 0 OK"), "{text}");
    assert!(text.contains("GREETING from the veth peer"), "{text}");
    // Nothing beyond the /30 is routed.
    assert!(text.contains("RESULT beyond -1 ENETUNREACH"), "{text}");
    let report = sandbox
        .wait(Some(std::time::Duration::from_secs(20)))
        .ok_or("no report")?;
    assert_eq!(report.exit_code, Some(0));
    assert!(common::interface_gone(&iface.interface), "veth left behind");
    Ok(())
}

#[test]
fn only_the_writable_directories_can_be_written() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let rw = tempfile("-rw");
    std::fs::create_dir_all(&rw)?;
    let rw_s = rw.display().to_string();
    // Under /var: part of the read-only system view wherever the checkout is.
    let outside = PathBuf::from(format!("/var/tmp/sbx-outside-{}", std::process::id()));
    for (path, expect) in [
        ("/etc/sbx-probe".to_string(), "EROFS"),
        ("/usr/sbx-probe".to_string(), "EROFS"),
        (outside.display().to_string(), "EROFS"),
        (format!("{rw_s}/inside.txt"), "OK"),
        ("/tmp/private.txt".to_string(), "OK"),
        ("/home/sandbox/home.txt".to_string(), "OK"),
    ] {
        let (out, _, _) = run(&["--rw", &rw_s], &["write", &path])?;
        let want = if expect == "OK" {
            "RESULT write 6 OK".to_string()
        } else {
            format!("RESULT write -1 {expect}")
        };
        assert!(out.contains(&want), "{path}: {out}");
    }
    assert_eq!(std::fs::read_to_string(rw.join("inside.txt"))?, "probe\n");
    // A path under /tmp given as an argument is shown, read-only.
    let shown = std::env::temp_dir().join(format!("sbx-shown-{}", std::process::id()));
    std::fs::create_dir_all(&shown)?;
    std::fs::write(shown.join("file"), "host\n")?;
    let target = shown.join("file").display().to_string();
    let (out, _, _) = run(&[], &["write", &target])?;
    assert!(out.contains("RESULT write -1 EROFS"), "{out}");
    assert_eq!(std::fs::read_to_string(shown.join("file"))?, "host\n");
    std::fs::remove_dir_all(&shown)?;
    assert!(!outside.exists() && !Path::new("/etc/sbx-probe").exists());
    // The sandbox's /tmp was its own.
    assert!(!Path::new("/tmp/private.txt").exists());
    std::fs::remove_dir_all(&rw)?;
    Ok(())
}

#[test]
fn host_processes_are_invisible() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let (out, _, _) = run(&[], &["procs"])?;
    let pids: Vec<&str> = out
        .trim()
        .strip_prefix("PROCS")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // The runner's init and the probe itself, nothing of the host.
    assert_eq!(pids.len(), 2, "{out}");
    assert_eq!(pids[0], "1", "{out}");
    Ok(())
}

fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                if p.file_name().and_then(|n| n.to_str()) == Some(id) {
                    found.push(p.clone());
                }
                if p.components().count() < 12 {
                    stack.push(p);
                }
            }
        }
    }
    found
}

#[test]
fn timeout_and_stop_leave_nothing_behind() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let (_, stderr, report) = run(&["--timeout", "1"], &["forkbomb", "5"])?;
    assert_eq!(report["timed_out"], true, "{report} {stderr}");
    assert_eq!(report["signal"], 9, "{report}");
    let ms = report["duration_ms"].as_u64().unwrap_or(u64::MAX);
    assert!((1000..10_000).contains(&ms), "{ms} ms");
    let id = report["sandbox_id"].as_str().unwrap_or("");
    assert!(
        cgroup_dirs_of(id).is_empty(),
        "cgroups of {id} left: {:?}",
        cgroup_dirs_of(id)
    );

    use sandbox_runner::profile::Profile;
    use sandbox_runner::sandbox::{Output, Runner, Spec};
    let runner = Runner::new(PathBuf::from(RUNNER));
    let marker = format!("{}", 7_000_000 + std::process::id());
    let script = format!(
        "sleep {marker} & sleep {marker} & {} forkbomb 3; wait",
        probe().display()
    );
    // The probe is inside a script, not an argument path: its directory is shown explicitly.
    let probe_dir = probe().parent().map(Path::to_path_buf).ok_or("probe dir")?;
    let spec = Spec {
        output: Output::Piped,
        ro: vec![probe_dir],
        ..Spec::new(
            Profile::load("strict")?,
            "/bin/sh",
            vec!["-c".into(), script],
        )
    };
    let sandbox = runner.launch(spec)?;
    let mut procs = Vec::new();
    common::within(std::time::Duration::from_secs(20), || {
        procs = sandbox.status().pids;
        procs.len() >= 6
    });
    assert!(
        procs.len() >= 6,
        "init, sh, two sleeps, probe and its children: {procs:?}"
    );
    assert!(
        procs
            .iter()
            .any(|p| p.role == "init" && p.ns_pid == Some(1))
    );
    let host_pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let report = sandbox.stop()?;
    assert!(report.stopped);
    for pid in host_pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived the stop"
        );
    }
    assert!(cgroup_dirs_of(sandbox.id()).is_empty());
    assert!(
        !runner.base_dir.join(sandbox.id()).exists(),
        "sandbox directory left behind"
    );
    Ok(())
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let profile_file = tempfile(".toml");
    std::fs::write(
        &profile_file,
        "description = \"x\"\nnetwork = \"none\"\n[limits\nmemory = 1",
    )?;
    let bad_profile = profile_file.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--", "/nonexistent/program"], "not found"),
        (vec!["--", "no-such-program-anywhere"], "not found in PATH"),
        (
            vec!["--memory", "0", "--", "/bin/true"],
            "memory 0 bytes is out of range",
        ),
        (vec!["--memory", "100T", "--", "/bin/true"], "out of range"),
        (vec!["--memory", "lots", "--", "/bin/true"], "--memory"),
        (
            vec!["--pids", "0", "--", "/bin/true"],
            "pids 0 is out of range",
        ),
        (
            vec!["--pids", "99999999999", "--", "/bin/true"],
            "out of range",
        ),
        (
            vec!["--cpus", "0", "--", "/bin/true"],
            "cpus 0 is out of range",
        ),
        (vec!["--cpus", "1000", "--", "/bin/true"], "out of range"),
        (vec!["--timeout", "0", "--", "/bin/true"], "--timeout"),
        (
            vec!["--net", "wifi", "--", "/bin/true"],
            "accepted: none, isolated, host",
        ),
        (
            vec!["--profile", "gaming", "--", "/bin/true"],
            "accepted: wine, strict",
        ),
        (
            vec!["--profile", bad_profile.as_str(), "--", "/bin/true"],
            "invalid profile",
        ),
        (
            vec!["--rw", "/nonexistent-dir", "--", "/bin/true"],
            "rw /nonexistent-dir",
        ),
    ];
    // A base directory of its own, so that the other tests' sandboxes do not show up in it.
    let base = tempfile("-base");
    std::fs::create_dir_all(&base)?;
    for (args, expect) in cases {
        let out = Command::new(RUNNER)
            .env("SANDBOX_RUNNER_DIR", &base)
            .arg("run")
            .args(&args)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err:?} lacks {expect:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&base)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir(&base)?;
    let _ = std::fs::remove_file(&profile_file);
    Ok(())
}

#[test]
fn an_interrupted_runner_stops_its_sandbox() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let report = tempfile(".json");
    let marker = (3_000_000 + std::process::id()).to_string();
    let mut child = Command::new(RUNNER)
        .args(["run", "--report"])
        .arg(&report)
        .arg("--")
        .arg(probe())
        .args(["sleep", &marker])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let find = || probes_with(&marker);
    let mut inside = Vec::new();
    common::within(std::time::Duration::from_secs(20), || {
        inside = find();
        !inside.is_empty()
    });
    assert_eq!(inside.len(), 1, "the probe did not start");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait()?;
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    assert_eq!(r["stopped"], true, "{r}");
    assert!(find().is_empty(), "the probe survived its runner");
    let id = r["sandbox_id"].as_str().unwrap_or("");
    assert!(cgroup_dirs_of(id).is_empty());
    let _ = std::fs::remove_file(&report);
    Ok(())
}

/// 32-bit Wine makes its calls through the x86 ABI: the same filter covers it (syscall
/// numbers of i386: getpid 20, mount 21, unshare 310).
#[test]
fn the_x86_abi_is_filtered_too() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let (out, _, report) = run(&[], &["int80", "20"])?;
    let pid: i64 = out
        .trim()
        .strip_prefix("RESULT int80 ")
        .and_then(|n| n.parse().ok())
        .ok_or(out.clone())?;
    assert!(pid > 1, "getpid through int 0x80: {out}");
    assert!(violations(&report).is_empty(), "{report}");
    let (out, _, report) = run(&[], &["int80", "310", &libc::CLONE_NEWUSER.to_string()])?;
    assert_eq!(
        out.trim(),
        format!("RESULT int80 -{}", libc::EPERM),
        "{report}"
    );
    assert_eq!(report["seccomp_violations"][0]["arch"], "x86", "{report}");
    assert_eq!(
        report["seccomp_violations"][0]["syscall"], "unshare",
        "{report}"
    );
    let (out, _, report) = run(&[], &["int80", "21"])?;
    assert!(out.is_empty(), "{out}");
    assert_eq!(report["signal"], 9, "{report}");
    assert_eq!(
        report["seccomp_violations"][0]["syscall"], "mount",
        "{report}"
    );
    assert_eq!(
        report["seccomp_violations"][0]["action"], "killed",
        "{report}"
    );
    Ok(())
}

#[test]
fn no_capabilities_no_new_privs_and_a_filter_inside() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let out = Command::new(RUNNER)
        .args(["run", "--", "/bin/cat", "/proc/self/status"])
        .output()?;
    let status = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), "0000000000000000", "{cap} in {status}");
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2", "filter mode");
    // Core dumps off; open files not capped (Wine needs many).
    let out = Command::new(RUNNER)
        .args([
            "run",
            "--profile",
            "wine",
            "--",
            "/bin/cat",
            "/proc/self/limits",
        ])
        .output()?;
    let limits = String::from_utf8_lossy(&out.stdout);
    let line = |k: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("Max core file size").split_whitespace().nth(4) == Some("0"),
        "{limits}"
    );
    assert_eq!(
        line("Max address space").split_whitespace().nth(3),
        Some("unlimited"),
        "{limits}"
    );
    assert_eq!(
        line("Max file size").split_whitespace().nth(3),
        Some("unlimited"),
        "{limits}"
    );
    Ok(())
}

/// The inside stages run in the small `sandbox-runner-stage` beside the runner; a runner
/// installed alone re-executes itself (`__stage1`) and works the same. Either way the program
/// starts with nothing blocked and SIGPIPE at its default (the runner blocks SIGINT, SIGTERM
/// and SIGHUP for itself, and std ignores SIGPIPE). A stage file others may write is not
/// trusted.
#[test]
fn the_stage_executable_or_else_the_runner_itself_runs_the_inside() -> TestResult {
    use sandbox_runner::inside::STAGE_EXE;
    use sandbox_runner::sandbox::{Runner, stage_exe};
    use std::os::unix::fs::PermissionsExt;
    if !usable() {
        return Ok(());
    }
    let beside = Path::new(RUNNER).with_file_name(STAGE_EXE);
    assert_eq!(Runner::new(PathBuf::from(RUNNER)).stage, Some(beside));
    // A lone runner (a hard link in a directory of its own).
    let alone_dir = tempfile("-alone");
    std::fs::create_dir_all(&alone_dir)?;
    let alone = alone_dir.join("sandbox-runner");
    if std::fs::hard_link(RUNNER, &alone).is_err() {
        std::fs::copy(RUNNER, &alone)?;
    }
    assert_eq!(stage_exe(&alone), None);
    for (runner, uses) in [
        (Path::new(RUNNER), STAGE_EXE),
        (alone.as_path(), "__stage1"),
    ] {
        let out = Command::new(runner)
            .env("RUST_LOG", "sandbox_runner=debug")
            .args(["run", "--", "/bin/cat", "/proc/self/status"])
            .output()?;
        let (status, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{} {err}", runner.display());
        let stages = err.lines().find(|l| l.contains("inside stages:"));
        assert!(stages.is_some_and(|l| l.contains(uses)), "{uses}: {err}");
        let mask = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        };
        assert_eq!(mask("SigBlk:"), Some(0), "via {uses}: {status}");
        // SIGPIPE (13) not ignored; what the caller ignores itself is passed on, as exec does.
        let pipe = 1u64 << (libc::SIGPIPE - 1);
        assert_eq!(
            mask("SigIgn:").map(|m| m & pipe),
            Some(0),
            "via {uses}: {status}"
        );
    }
    // A stage others may write is ignored; once only its owner may, it is taken.
    let planted = alone_dir.join(STAGE_EXE);
    std::fs::write(&planted, "#!/bin/sh\n")?;
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777))?;
    assert_eq!(stage_exe(&alone), None);
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755))?;
    assert_eq!(stage_exe(&alone), Some(planted));
    std::fs::remove_dir_all(&alone_dir)?;
    Ok(())
}

/// Without root the runner adds a user namespace (its uid mapped to root inside). It still
/// needs a cgroup it may write: here a parent group of its own, delegated to `nobody` (v1).
#[test]
fn an_unprivileged_user_gets_a_user_namespace() -> TestResult {
    if !usable() {
        return Ok(());
    }
    if sandbox_runner::cgroup::detect()? != sandbox_runner::cgroup::Version::V1 {
        eprintln!("skipped: the delegation below is written for cgroup v1");
        return Ok(());
    }
    let group = format!("sbx-test-nobody-{}", std::process::id());
    let own = common::own_cgroup;
    let mut parents = Vec::new();
    for c in ["memory", "pids", "cpu", "freezer", "cpuacct"] {
        let mount = Path::new("/sys/fs/cgroup").join(c);
        if !mount.is_dir() || (c == "cpuacct" && mount.join("cpu.shares").exists()) {
            continue;
        }
        let dir = mount.join(own(c)).join(&group);
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534))?;
        parents.push(dir);
    }
    let base = Path::new("/var/tmp").join(&group);
    std::fs::create_dir_all(&base)?;
    std::os::unix::fs::chown(&base, Some(65534), Some(65534))?;
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            RUNNER,
            "run",
            "--",
        ])
        .args(["/bin/cat", "/proc/self/uid_map", "/proc/self/status"])
        .env("SANDBOX_RUNNER_CGROUP", &group)
        .env("SANDBOX_RUNNER_DIR", &base)
        .current_dir("/")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cleanup = || {
        for p in &parents {
            let _ = std::fs::remove_dir(p);
        }
        let _ = std::fs::remove_dir(&base);
    };
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>();
    let uid_line = text
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or("")
        .to_string();
    let left: Vec<_> = std::fs::read_dir(&base)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    cleanup();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        first,
        ["0", "65534", "1"],
        "uid 0 inside is nobody outside: {text}"
    );
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "0"),
        "{uid_line}"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

/// Host pids of probes whose command line carries `marker`.
fn probes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                .filter(|p| {
                    std::fs::read(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == marker.as_bytes()))
                })
                .filter(|p| {
                    std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e.ends_with("probe"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A runner killed outright (no chance to clean up) takes its sandbox with it, and the next
/// runner removes the cgroup and directory it left.
#[test]
fn a_killed_runner_takes_its_sandbox_along_and_is_swept_after() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let base = tempfile("-swept");
    std::fs::create_dir_all(&base)?;
    let marker = (4_000_000 + std::process::id()).to_string();
    let mut child = Command::new(RUNNER)
        .env("SANDBOX_RUNNER_DIR", &base)
        .args(["run", "--"])
        .arg(probe())
        .args(["sleep", &marker])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let mut inside = Vec::new();
    common::within(std::time::Duration::from_secs(20), || {
        inside = probes_with(&marker);
        !inside.is_empty()
    });
    assert_eq!(inside.len(), 1, "the probe did not start");
    let id = format!("sbx-{}-0", child.id());
    assert!(!cgroup_dirs_of(&id).is_empty());
    child.kill()?;
    child.wait()?;
    let mut alive = inside.clone();
    common::within(std::time::Duration::from_secs(10), || {
        alive.retain(|p| Path::new(&format!("/proc/{p}")).exists());
        alive.is_empty()
    });
    assert!(alive.is_empty(), "the probe outlived its killed runner");
    assert!(
        base.join(&id).exists(),
        "a killed runner cannot clean up (the sweep is tested next)"
    );
    let out = Command::new(RUNNER)
        .env("SANDBOX_RUNNER_DIR", &base)
        .args(["run", "--", "/bin/true"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!base.join(&id).exists(), "not swept");
    assert!(cgroup_dirs_of(&id).is_empty(), "cgroup not swept");
    std::fs::remove_dir(&base)?;
    Ok(())
}
