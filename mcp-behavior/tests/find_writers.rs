//! `find_writers` through MCP against the writer fixture (tests/fixtures/behavfix), natively,
//! as PE32+ under wine64 and as PE32 under 32-bit Wine: the answer must name the one store
//! instruction in `plant`, at the offset objdump gives, with the exact hit count, threads and
//! values. Wine tests need wine and mingw (scripts/setup.sh installs them); without them they
//! are `skipped` (a failure under REQUIRE_WINE / REQUIRE_WINE32 / MCP_SUITE_STRICT).

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The offset of the store into `life` from the start of `plant`, by objdump: the one
/// instruction of `plant` whose destination (AT&T: the last operand) is memory.
fn store_offset(objdump: &str, exe: &Path) -> u64 {
    let out = Command::new(objdump)
        .args(["-d", "--no-show-raw-insn"])
        .arg(exe)
        .output()
        .unwrap_or_else(|e| panic!("{objdump}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| !l.ends_with("plant>:"));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no plant in {objdump} output"));
    let start = u64::from_str_radix(head.split_whitespace().next().unwrap_or(""), 16)
        .unwrap_or_else(|_| panic!("bad head {head}"));
    for l in lines.take_while(|l| !l.trim().is_empty()) {
        let Some((addr, insn)) = l.split_once(":\t") else {
            continue;
        };
        let insn = insn.split('#').next().unwrap_or("").trim();
        let dest = insn.rsplit(',').next().unwrap_or("");
        if insn.starts_with("mov") && insn.contains(',') && !dest.trim().starts_with('%') {
            let a = u64::from_str_radix(addr.trim(), 16).unwrap_or_else(|_| panic!("{l}"));
            return a - start;
        }
    }
    panic!("no store in plant: {text}");
}

/// The Unix pid of the process that maps `exe` (a Wine process's own pid is its Windows one).
fn unix_pid_mapping(exe: &Path) -> Option<u32> {
    let name = exe.file_name()?.to_string_lossy().to_lowercase();
    for _ in 0..100 {
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            if maps.lines().any(|l| l.to_lowercase().ends_with(&name)) {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Watches `life` for 4 s while the fixture writes 1234 from its main thread and 4321 from a
/// new thread; checks the answer against `offset` (objdump's) and the fixture's own addresses.
async fn watch_two_writes(mut fx: LineProcess, pid: u32, offset: u64, bits: u64) -> TestResult {
    let life = fx.addr("life");
    let plant = fx.addr("plant");
    let client = server(false).await?;
    let driver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        fx.command("write 1234");
        assert_eq!(fx.line().trim(), "ok");
        fx.command("thread 4321");
        assert_eq!(fx.line().trim(), "ok");
        fx
    });
    let a = ok(
        &client,
        "find_writers",
        json!({"pid": pid, "address": hex(life), "size": 4, "duration_s": 4}),
    )
    .await;
    let _fx = driver.join().map_err(|_| "the fixture driver panicked")?;
    assert_eq!(a["stopped_by"], "duration", "{a}");
    assert_eq!(a["hits"], 2, "{a}");
    assert_eq!(a["lost"], 0, "{a}");
    let items = a["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 1, "one writing instruction: {a}");
    let w = &items[0];
    assert_eq!(parse_hex(&w["address"]), plant + offset, "{a}");
    assert_eq!(w["hits"], 2);
    assert_eq!(w["bits"], bits);
    assert_eq!(
        w["threads"].as_array().map(Vec::len),
        Some(2),
        "main thread and the new one: {a}"
    );
    let insn = w["instruction"].as_str().ok_or("no instruction")?;
    assert!(insn.starts_with("mov ") && insn.contains('['), "{insn}");
    assert_eq!(
        w["first_change"],
        json!({"before": "0x3E8", "after": "0x4D2"})
    );
    assert_eq!(
        w["last_change"],
        json!({"before": "0x4D2", "after": "0x10E1"})
    );
    assert_eq!(a["value_end"], "0x10E1");
    assert!(
        w["module"].as_str().is_some_and(|m| m.contains("writer")),
        "{a}"
    );
    assert!(w["registers"]["ip"].is_string(), "{a}");
    Ok(())
}

#[tokio::test]
async fn native_writer_is_the_store_in_plant() -> TestResult {
    let exe = fixture_dir().join("writer");
    let offset = store_offset("objdump", &exe);
    let fx = LineProcess::spawn(Command::new(&exe));
    let pid = fx.pid();
    watch_two_writes(fx, pid, offset, 64).await
}

#[tokio::test]
async fn wine64_writer_is_the_store_in_plant() -> TestResult {
    if !wine64_available() {
        return Ok(());
    }
    let exe = fixture_dir().join("writer64.exe");
    let offset = store_offset("x86_64-w64-mingw32-objdump", &exe);
    let prefix = WinePrefix::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "writer64");
    let fx = LineProcess::spawn(prefix.command(&exe));
    let pid = unix_pid_mapping(&exe).ok_or("no process maps writer64.exe")?;
    watch_two_writes(fx, pid, offset, 64).await
}

#[tokio::test]
async fn wine32_writer_is_the_store_in_plant() -> TestResult {
    if !wine32_available("wine32_writer_is_the_store_in_plant") {
        return Ok(());
    }
    let exe = fixture_dir().join("writer32.exe");
    let offset = store_offset("i686-w64-mingw32-objdump", &exe);
    let prefix = WinePrefix::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "writer32");
    let fx = LineProcess::spawn(prefix.command(&exe));
    let pid = unix_pid_mapping(&exe).ok_or("no process maps writer32.exe")?;
    watch_two_writes(fx, pid, offset, 32).await
}

#[tokio::test]
async fn max_hits_ends_the_window_and_execute_names_the_instruction() -> TestResult {
    let exe = fixture_dir().join("writer");
    let offset = store_offset("objdump", &exe);
    let mut fx = LineProcess::spawn(Command::new(&exe));
    let (pid, life, plant) = (fx.pid(), fx.addr("life"), fx.addr("plant"));
    let client = server(false).await?;
    let driver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        fx.command("spin 100");
        assert_eq!(fx.line().trim(), "ok");
        fx
    });
    let a = ok(
        &client,
        "find_writers",
        json!({"pid": pid, "address": hex(life), "duration_s": 30, "max_hits": 10}),
    )
    .await;
    let mut fx = driver.join().map_err(|_| "the fixture driver panicked")?;
    assert_eq!(a["stopped_by"], "max_hits", "{a}");
    assert_eq!(a["hits"], 10, "{a}");
    assert!(
        parse_hex(&a["items"][0]["address"]) == plant + offset,
        "{a}"
    );

    // An execute breakpoint on the store itself: each call of plant is one hit there.
    let driver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        fx.command("spin 7");
        assert_eq!(fx.line().trim(), "ok");
        fx
    });
    let a = ok(
        &client,
        "find_writers",
        json!({"pid": pid, "address": hex(plant + offset), "access": "execute", "duration_s": 3}),
    )
    .await;
    let _fx = driver.join().map_err(|_| "the fixture driver panicked")?;
    assert_eq!(a["hits"], 7, "{a}");
    assert_eq!(parse_hex(&a["items"][0]["address"]), plant + offset, "{a}");
    assert!(a.get("value_end").is_none(), "{a}");
    Ok(())
}

#[tokio::test]
async fn bad_arguments_name_the_argument() -> TestResult {
    let exe = fixture_dir().join("writer");
    let fx = LineProcess::spawn(Command::new(&exe));
    let (pid, life) = (fx.pid(), fx.addr("life"));
    let client = server(false).await?;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"pid": pid, "address": hex(life), "size": 3}),
            "`size`",
        ),
        (
            json!({"pid": pid, "address": hex(life + 1), "size": 4, "duration_s": 0.2}),
            "`address`",
        ),
        (
            json!({"pid": pid, "address": hex(life), "duration_s": 0}),
            "`duration_s`",
        ),
        (
            json!({"pid": pid, "address": hex(life), "max_hits": 0}),
            "`max_hits`",
        ),
        (
            json!({"pid": 999_999_999u64, "address": hex(life)}),
            "`pid`",
        ),
        (
            json!({"pid": pid, "address": "nosuch.dll+0x10"}),
            "`address`",
        ),
    ];
    for (args, names) in cases {
        let msg = err(&client, "find_writers", args.clone()).await;
        assert!(msg.contains(names), "{args} -> {msg}");
    }
    // The server is still there and the process was never stopped.
    let a = ok(
        &client,
        "find_writers",
        json!({"pid": pid, "address": hex(life), "duration_s": 0.2}),
    )
    .await;
    assert_eq!(a["hits"], 0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    assert!(!state.starts_with('t') && !state.starts_with('T'), "{stat}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    assert!(status.contains("TracerPid:\t0"), "never traced: {status}");
    Ok(())
}

#[tokio::test]
async fn a_fifth_watch_is_refused_while_four_hold_the_debug_registers() -> TestResult {
    let exe = fixture_dir().join("writer");
    let fx = LineProcess::spawn(Command::new(&exe));
    let (pid, life) = (fx.pid(), fx.addr("life"));
    let client = server(false).await?;
    let watch = |offset: u64| {
        ok(
            &client,
            "find_writers",
            json!({"pid": pid, "address": hex(life + offset), "size": 1, "duration_s": 3}),
        )
    };
    let fifth = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        err(
            &client,
            "find_writers",
            json!({"pid": pid, "address": hex(life), "size": 1, "duration_s": 1}),
        )
        .await
    };
    let (a, b, c, d, msg) = tokio::join!(watch(0), watch(1), watch(2), watch(3), fifth);
    for w in [a, b, c, d] {
        assert_eq!(w["stopped_by"], "duration", "{w}");
    }
    assert!(
        msg.contains("`address`") && msg.contains("all four debug registers"),
        "{msg}"
    );
    // Released: a watch works again.
    let again = ok(
        &client,
        "find_writers",
        json!({"pid": pid, "address": hex(life), "duration_s": 0.2}),
    )
    .await;
    assert_eq!(again["stopped_by"], "duration");
    Ok(())
}
