//! Every page of a list through MCP, against the command-line tool that prints the whole list,
//! side by side in one run (issue 14's paging rows). The release `mcp-static` is started once
//! over stdio and driven by rmcp's client, as a host or the coordinator drives it; each walk
//! calls the tool page after page until the answer has nothing left. The first walk of each
//! list is not counted: it parses the file and fills the per-file caches, as the first call of
//! any session does. Each walk alternates with a run of its peer; medians of 7; the ratio is ours over the peer's (below 1 is faster).
//!
//! Each list is walked twice: as objects (`format: json`) and as text lines (`format: text`,
//! the default: one tab-separated line per item), and each walk is compared with the peer.
//!
//! - `list_strings` (ascii, limit 1000) over Wine's user32.dll against `strings -a -n 4`;
//! - `disassemble` (count 2000, continuing at `next_address`) over user32.dll's whole `.text`
//!   against `x86_64-w64-mingw32-objdump -d` of the same file;
//! - `list_exports` (limit 1000) of mingw's PE32 libgnat-12.dll against
//!   `i686-w64-mingw32-objdump -p`.
//!
//! Run: `cargo bench -p mcp-static --bench pages_bench` (needs wine64, binutils and
//! binutils-mingw-w64, which `scripts/setup.sh` installs).

use mcp_testkit::{Answer, Client, call, parse_hex, start_bin};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER32: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll";
const GNAT32: &str = "/usr/lib/gcc/i686-w64-mingw32/12-win32/adalib/libgnat-12.dll";
const RUNS: usize = 7;
/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux's ABI).
const USER_HZ: f64 = 100.0;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The wall time of one run of a command writing its whole output to /dev/null.
fn peer_once(cmd: &[&str]) -> Duration {
    let t = Instant::now();
    let status = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd[0]));
    assert!(status.success(), "{cmd:?} failed");
    t.elapsed()
}

/// Calls `tool` and panics on an error answer (a bench of a failing walk means nothing).
async fn answer(client: &Client, tool: &str, args: Value) -> Answer {
    let a = call(client, tool, args).await;
    assert!(!a.is_error, "{tool}: {}", a.text);
    a
}

async fn page(client: &Client, tool: &str, args: Value) -> Value {
    answer(client, tool, args).await.data
}

/// A page's items as (first column, whole item): from `items`, or from the text lines
/// after the summary and `#` header when the page was asked for as text.
fn first_columns(a: &Answer) -> Vec<u64> {
    match a.data["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|i| {
                let first = i.get("va").unwrap_or(&Value::Null);
                if first.is_null() { 0 } else { parse_hex(first) }
            })
            .collect(),
        None => a
            .text
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let first = l.split('\t').next().unwrap_or("");
                u64::from_str_radix(first.trim_start_matches("0x"), 16).unwrap_or(0)
            })
            .collect(),
    }
}

/// Walks every page of an offset-paged list; returns (items, calls).
async fn walk_offsets(client: &Client, tool: &str, base: &Value) -> (usize, usize) {
    let (mut offset, mut items, mut calls) = (0u64, 0, 0);
    loop {
        let mut args = base.clone();
        args["offset"] = json!(offset);
        let a = answer(client, tool, args).await;
        calls += 1;
        items += first_columns(&a).len();
        match a.data["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => return (items, calls),
        }
    }
}

/// Disassembles `[start, end)` page after page; returns (instructions, calls).
async fn walk_code(client: &Client, start: u64, end: u64, format: &str) -> (usize, usize) {
    let (mut va, mut items, mut calls) = (start, 0, 0);
    while va < end {
        let a = answer(
            client,
            "disassemble",
            json!({"path": USER32, "address": format!("{va:#x}"), "count": 2000, "format": format}),
        )
        .await;
        calls += 1;
        let vas = first_columns(&a);
        // Instructions that run past the section's end are the next section's business.
        items += vas.iter().filter(|&&v| v < end).count();
        if vas.is_empty() {
            break;
        }
        va = parse_hex(&a.data["next_address"]);
    }
    (items, calls)
}

/// CPU seconds used so far by this bench's `mcp-static` child (0 when it cannot be read); a
/// `PAGES_BENCH_SERVER` counts when its file name starts with `mcp-static`.
fn server_cpu() -> f64 {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for e in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let is_child = f.get(1) == Some(&me.as_str());
        let is_server = std::fs::read_link(e.path().join("exe")).is_ok_and(|x| {
            x.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mcp-static"))
        });
        if is_child && is_server {
            let ticks: f64 =
                f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
            return ticks / USER_HZ;
        }
    }
    0.0
}

/// A walk's median wall time and the server's CPU time per walk, beside the peer's median.
struct Walk {
    wall: Duration,
    server_cpu: f64,
    counts: (usize, usize),
    peer: Duration,
}

/// Times the walk `f` and the `peer` command alternately, so that both meet the same load
/// (this machine's speed drifts by a third within a minute). The first walk is not counted.
async fn side_by_side<F, Fut>(mut f: F, peer: &[&str]) -> Walk
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (usize, usize)>,
{
    let first = f().await;
    let (mut times, mut peers, mut cpu) = (Vec::new(), Vec::new(), 0.0);
    for _ in 0..RUNS {
        let cpu0 = server_cpu();
        let t = Instant::now();
        let got = f().await;
        times.push(t.elapsed());
        cpu += server_cpu() - cpu0;
        assert_eq!(got, first, "two walks of the same list differ");
        peers.push(peer_once(peer));
    }
    Walk {
        wall: median(times),
        server_cpu: cpu / RUNS as f64,
        counts: first,
        peer: median(peers),
    }
}

fn report(what: &str, w: Walk, peer: &[&str]) {
    println!(
        "{what}: {:.1} ms for {} items in {} calls (server CPU {:.1} ms); {}: {:.1} ms; ratio {:.2}x",
        w.wall.as_secs_f64() * 1e3,
        w.counts.0,
        w.counts.1,
        w.server_cpu * 1e3,
        peer.join(" "),
        w.peer.as_secs_f64() * 1e3,
        w.wall.as_secs_f64() / w.peer.as_secs_f64()
    );
}

fn main() {
    for f in [USER32, GNAT32] {
        if !std::path::Path::new(f).exists() {
            eprintln!("pages_bench: {f} is missing (scripts/setup.sh installs it); nothing run");
            return;
        }
    }
    // One thread, as a host's client has: on two cores a multi-thread client adds wake-ups of its own.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    rt.block_on(async {
        // PAGES_BENCH_SERVER names another build of the server, for an A/B in one sitting.
        let server = std::env::var("PAGES_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mcp-static").to_string());
        let client = start_bin(&server, &["--root".into(), "/usr".into()])
            .await
            .unwrap_or_else(|e| panic!("cannot start mcp-static: {e}"));

        // Each list as objects (`format: json`) and as text lines (`text`, the default);
        // PAGES_BENCH_FORMATS=text (or json) runs one of them, for a profile.
        let wanted = std::env::var("PAGES_BENCH_FORMATS").unwrap_or_else(|_| "json,text".into());
        let formats: Vec<&str> = ["json", "text"]
            .into_iter()
            .filter(|f| wanted.split(',').any(|w| w == *f))
            .collect();
        for &format in &formats {
            let strings_args =
                json!({"path": USER32, "encoding": "ascii", "limit": 1000, "format": format});
            let peer = ["strings", "-a", "-n", "4", USER32];
            let w = side_by_side(
                || walk_offsets(&client, "list_strings", &strings_args),
                &peer,
            )
            .await;
            report(
                &format!("list_strings ({format}), every page of user32.dll"),
                w,
                &peer,
            );
        }

        let info = page(&client, "binary_info", json!({"path": USER32})).await;
        let text = info["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == ".text")
            .unwrap_or_else(|| panic!("user32.dll has no .text: {info}"));
        let start = parse_hex(&text["va"]);
        let end = start + text["virtual_size"].as_u64().unwrap_or(0);
        for &format in &formats {
            let peer = ["x86_64-w64-mingw32-objdump", "-d", USER32];
            let w = side_by_side(|| walk_code(&client, start, end, format), &peer).await;
            report(
                &format!("disassemble ({format}), user32.dll's whole .text"),
                w,
                &peer,
            );
        }

        for &format in &formats {
            let exports_args = json!({"path": GNAT32, "limit": 1000, "format": format});
            let peer = ["i686-w64-mingw32-objdump", "-p", GNAT32];
            let w = side_by_side(
                || walk_offsets(&client, "list_exports", &exports_args),
                &peer,
            )
            .await;
            report(
                &format!("list_exports ({format}), every page of libgnat-12.dll (PE32)"),
                w,
                &peer,
            );
        }
        // The protocol's floor: one-item pages, so what is left is the cost of a call.
        let one = json!({"path": GNAT32, "limit": 1, "format": "text"});
        page(&client, "list_exports", one.clone()).await;
        let t = Instant::now();
        for _ in 0..200 {
            page(&client, "list_exports", one.clone()).await;
        }
        println!(
            "one-item page (the cost of a call): {:.3} ms",
            t.elapsed().as_secs_f64() * 1e3 / 200.0
        );
        drop(client);
    });
}
