//! A mingw-built .exe (tests/fixtures/memfix) runs under wine64 inside the sandbox with the
//! `wine` profile, and mcp-memory's reader reads the values it prints from outside, by host
//! pid, while it runs. Afterwards nothing of it (wineserver included) is left.
//! Needs root, cgroups, wine64 and mingw (scripts/setup.sh installs them); skips without them.

use mcp_memory::reader::ProcessMemory;
use sandbox_runner::profile::Profile;
use sandbox_runner::sandbox::{Output, Runner, Spec};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn addr(v: &Value, key: &str) -> Result<u64, String> {
    v[key]
        .as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("no {key} in {v}"))
}

#[test]
fn wine_game_in_the_sandbox_is_readable_from_outside() -> TestResult {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let wine = mcp_testkit::WinePrefix::available();
    if !root || sandbox_runner::cgroup::detect().is_err() || !wine {
        eprintln!("skipped: needs root, cgroups and wine (root {root}, wine {wine})");
        return Ok(());
    }
    let dir = mcp_testkit::build_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/memfix/build.sh"),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "memfix-sandbox",
        "needs cc and gcc-mingw-w64-x86-64",
    );
    let exe = dir.join("memfix.exe");
    if !exe.exists() {
        eprintln!("skipped: mingw is missing, no memfix.exe");
        return Ok(());
    }
    // A home kept between runs: creating the WINEPREFIX takes 20-40 s the first time.
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-wine-home");
    let runner = Runner::new(PathBuf::from(env!("CARGO_BIN_EXE_sandbox-runner")));
    let spec = Spec {
        timeout: Some(Duration::from_secs(300)),
        home: Some(home),
        output: Output::Piped,
        ..Spec::new(
            Profile::load("wine")?,
            "wine",
            vec![exe.display().to_string()],
        )
    };
    let sandbox = runner.launch(spec)?;
    let (stdin, stdout) = sandbox.take_stdio();
    let (mut stdin, stdout) = (stdin.ok_or("no stdin")?, stdout.ok_or("no stdout")?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
    });
    let line = match rx.recv_timeout(Duration::from_secs(240)) {
        Ok(Some(Ok(line))) => line,
        other => {
            let st = sandbox.stop();
            return Err(format!("memfix.exe printed nothing: {other:?}; {st:?}").into());
        }
    };
    let printed: Value = serde_json::from_str(&line)?;

    // The game's host pid, found the way an analyser would: status -> game_pid.
    let start = Instant::now();
    let status = loop {
        let st = sandbox.status();
        if st.game_pid.is_some() || start.elapsed() > Duration::from_secs(30) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = status
        .game_pid
        .ok_or_else(|| format!("no game pid in {:?}", status.pids))?;
    let game = status
        .pids
        .iter()
        .find(|p| p.pid == pid)
        .ok_or("game not among the pids")?;
    assert!(
        game.exe_mappings.iter().any(|m| m == "memfix.exe"),
        "{game:?}"
    );
    assert!(
        game.ns_pid.is_some_and(|n| n != pid),
        "the game runs in its own pid namespace: {game:?}"
    );
    assert!(
        status.pids.iter().any(|p| p.name.starts_with("wineserver")),
        "{:?}",
        status.pids
    );

    let mem = ProcessMemory::open(pid).map_err(|e| format!("{e:?}"))?;
    for (key, want) in [
        ("exe_static", 0x5EED_1234u32),
        ("lib_static", 0x0DD5_EED5),
        ("heap_value", 0x7A11_CE55),
    ] {
        let mut buf = [0u8; 4];
        mem.read_exact(addr(&printed, key)?, &mut buf)
            .map_err(|e| format!("{key}: {e:?}"))?;
        assert_eq!(u32::from_le_bytes(buf), want, "{key}");
    }
    // The analyser read without holding the tracer slot: wineserver's own ptrace still works.
    let tracer = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    assert!(tracer.lines().any(
        |l| l.trim() == "TracerPid:\t0" || l.replace(char::is_whitespace, "") == "TracerPid:0"
    ));

    let pids: Vec<u32> = status.pids.iter().map(|p| p.pid).collect();
    stdin.write_all(b"quit\n")?;
    drop(stdin);
    let report = sandbox
        .wait(Some(Duration::from_secs(60)))
        .ok_or("no report after quit")?;
    assert_eq!(report.exit_code, Some(0), "{report:?}");
    assert!(
        report
            .seccomp_violations
            .iter()
            .all(|v| v.action != "killed"),
        "Wine hit the kill list: {:?}",
        report.seccomp_violations
    );
    if report.seccomp_violations_total > 0 {
        eprintln!(
            "note: Wine made {} calls the wine profile refuses: {:?}",
            report.seccomp_violations_total, report.seccomp_violations
        );
    }
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "pid {p} (of {:?}) survived",
            status.pids
        );
    }
    Ok(())
}
