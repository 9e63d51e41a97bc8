//! The behaviour analyser's costs to the program it watches, through MCP as an agent calls it,
//! side by side with strace in one run (medians of 5; ratios are what to compare, this machine
//! is noisy). `cargo bench -p mcp-behavior --bench behavior_bench`
//!
//! - Tracing overhead: the io_loop fixture (tests/fixtures/behavfix) untraced, under
//!   `strace -f -qq -o /dev/null`, and under trace_start: launched (seccomp: only the calls
//!   the kinds need stop it) and attached by pid (every call stops it), over 2N small
//!   pwrite/pread calls (no file event) and over N open/close pairs (N file events); and
//!   under seccomp user notification (the fixture notif_run: the same file calls sent to a
//!   supervisor that reads each path and lets the call go on), the mechanism trace_start
//!   could have used instead of ptrace.
//! - find_writers: the writer fixture's watched value written 1,000 times a second for 2 s
//!   (and 50,000 times a second), the work's time unwatched and watched; the time from a hit
//!   to the server holding it.

use mcp_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn elapsed_ms(json_line: &str) -> f64 {
    serde_json::from_str::<Value>(json_line.trim())
        .ok()
        .and_then(|v| v["elapsed_ms"].as_f64())
        .unwrap_or_else(|| panic!("no elapsed_ms in {json_line:?}"))
}

fn run_plain(io_loop: &Path, args: &[&str]) -> f64 {
    let out = Command::new(io_loop)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("io_loop: {e}"));
    elapsed_ms(&String::from_utf8_lossy(&out.stdout))
}

fn run_strace(io_loop: &Path, args: &[&str]) -> f64 {
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .arg(io_loop)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("strace: {e}"));
    elapsed_ms(&String::from_utf8_lossy(&out.stdout))
}

/// The x86_64 numbers of the calls a `file` trace stops on, from the trace's own table.
fn file_call_numbers() -> String {
    let table: Value = serde_json::from_str(include_str!("../../schemas/behavior/syscalls.json"))
        .unwrap_or_else(|e| panic!("syscalls.json: {e}"));
    let numbers: Vec<String> = table["kinds"]["file"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| table["x86_64"][name.as_str()?].as_u64())
        .map(|n| n.to_string())
        .collect();
    numbers.join(",")
}

fn run_notif(notif_run: &Path, calls: &str, io_loop: &Path, args: &[&str]) -> f64 {
    let out = Command::new(notif_run)
        .arg(calls)
        .arg(io_loop)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("notif_run: {e}"));
    elapsed_ms(&String::from_utf8_lossy(&out.stdout))
}

async fn wait_trace(client: &Client, id: &str) {
    for _ in 0..6000 {
        let s = ok(client, "behavior_summary", json!({"trace_id": id})).await;
        if s["running"] == false {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("trace {id} did not end");
}

async fn run_launched(client: &Client, io_loop: &Path, args: &[&str], out: &Path) -> f64 {
    let mut cmd = vec![io_loop.to_string_lossy().into_owned()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    cmd.push(out.to_string_lossy().into_owned());
    let t = ok(client, "trace_start", json!({"command": cmd})).await;
    let id = t["trace_id"].as_str().unwrap_or_default().to_string();
    wait_trace(client, &id).await;
    elapsed_ms(&std::fs::read_to_string(out).unwrap_or_default())
}

/// Attached to a shell that sleeps, then execs io_loop: the loop runs traced from its start.
async fn run_attached(client: &Client, io_loop: &Path, args: &[&str]) -> f64 {
    let script = format!(
        "sleep 0.3; exec {} {}",
        io_loop.to_string_lossy(),
        args.join(" ")
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    let t = ok(client, "trace_start", json!({"pid": child.id()})).await;
    let id = t["trace_id"].as_str().unwrap_or_default().to_string();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    wait_trace(client, &id).await;
    elapsed_ms(&String::from_utf8_lossy(&out.stdout))
}

fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-fixtures/behavfix");
    let ok = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/behavfix/build.sh"))
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "building the fixtures failed");
    dir
}

async fn tracing(client: &Client, io_loop: &Path, notif_run: &Path) {
    let out = std::env::temp_dir().join(format!("io_loop-{}.json", std::process::id()));
    let calls = file_call_numbers();
    for (label, args) in [
        ("pwrite+pread x200000", ["200000", "rw"]),
        ("open+close x100000", ["100000", "open"]),
    ] {
        let (mut plain, mut strace, mut launched, mut attached, mut notif) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            plain.push(run_plain(io_loop, &args));
            strace.push(run_strace(io_loop, &args));
            launched.push(run_launched(client, io_loop, &args, &out).await);
            attached.push(run_attached(client, io_loop, &args).await);
            notif.push(run_notif(notif_run, &calls, io_loop, &args));
        }
        let (p, s, l, a, n) = (
            median(plain),
            median(strace),
            median(launched),
            median(attached),
            median(notif),
        );
        println!(
            "tracing {label}: untraced {p:.1} ms; strace -f {s:.1} ms ({:.2}x); \
             trace_start launched {l:.1} ms ({:.2}x, {:.3} of strace's); attached {a:.1} ms \
             ({:.2}x, {:.3} of strace's); seccomp user notification {n:.1} ms ({:.2}x; \
             launched/notification {:.2})",
            s / p,
            l / p,
            l / s,
            a / p,
            a / s,
            n / p,
            l / n
        );
    }
    let _ = std::fs::remove_file(out);
}

async fn watching(client: &Client, writer: &Path) {
    for (label, n, us) in [("1,000/s", 2000u64, 1000u64), ("50,000/s", 50_000, 20)] {
        let mut plain = Vec::new();
        let mut watched = Vec::new();
        let mut lat_med = Vec::new();
        let mut lat_max = Vec::new();
        let mut fx = LineProcess::spawn(Command::new(writer));
        let (pid, life) = (fx.pid(), fx.addr("life"));
        let pace = format!("pace {n} {us}");
        let ms = |line: String| -> f64 {
            line.trim()
                .strip_prefix("ok ")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("pace answered {line:?}"))
        };
        for _ in 0..RUNS {
            fx.command(&pace);
            plain.push(ms(fx.line()));
            let call = ok(
                client,
                "find_writers",
                json!({"pid": pid, "address": hex(life), "duration_s": 600, "max_hits": n}),
            );
            let pace2 = pace.clone();
            let drive = async move {
                // The breakpoints are armed within milliseconds of the call.
                tokio::time::sleep(Duration::from_millis(300)).await;
                tokio::task::spawn_blocking(move || {
                    fx.command(&pace2);
                    let line = fx.line();
                    (fx, line)
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"))
            };
            let (a, (back, line)) = tokio::join!(call, drive);
            fx = back;
            watched.push(ms(line));
            assert_eq!(a["hits"], n, "{a}");
            lat_med.push(a["latency_us"][0].as_f64().unwrap_or(f64::NAN));
            lat_max.push(a["latency_us"][1].as_f64().unwrap_or(f64::NAN));
        }
        let (p, w) = (median(plain), median(watched));
        println!(
            "find_writers at {label}: work {p:.1} ms unwatched, {w:.1} ms watched ({:+.2}%); \
             hit to server: median {:.0} us, max {:.0} us",
            (w / p - 1.0) * 100.0,
            median(lat_med),
            median(lat_max)
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        let dir = fixtures();
        let client = start_bin(
            env!("CARGO_BIN_EXE_mcp-behavior"),
            &["--allow-launch".to_string()],
        )
        .await
        .unwrap_or_else(|e| panic!("mcp-behavior: {e}"));
        if Command::new("strace").arg("-V").output().is_ok() {
            tracing(&client, &dir.join("io_loop"), &dir.join("notif_run")).await;
        } else {
            println!("tracing: strace is not installed; no comparison");
        }
        watching(&client, &dir.join("writer")).await;
    });
}
