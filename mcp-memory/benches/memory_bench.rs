//! Benchmark of mcp-memory's performance targets, side by side in one run (ratios matter on
//! a noisy machine):
//! - raw copy bandwidth out of the fixture (process_vm_readv and /proc/<pid>/mem, 8 MiB reads),
//! - first exact u32 scan over ~1 GiB of the fixture: ours vs `scanmem` on the same process and
//!   value, and ours as a share of the raw copy bandwidth,
//! - AOB scan with wildcards over the same memory,
//! - pointer scan depth 3, max offset 0x1000, over ~100 MiB of heap-like pointer memory,
//! - next scans after an unknown-value first scan of a 1 GiB target (this bench binary itself,
//!   started as a child that fills and touches the memory and changes one u32 per page on
//!   request): the raw copy rate of the region, the first scan, `changed`, `unchanged` (which
//!   stops at max_results) and `increased` at alignments 4 and 1, each as a share of the raw
//!   copy, first + next scans in seconds, and a session going on from the `changed` matches.
//!
//! Run: `cargo bench -p mcp-memory --bench memory_bench` (BENCH_BIG_MIB, default 1024); a
//! word after `--` keeps the sections whose name contains it (`exact`, `pointer`, `next`),
//! e.g. `cargo bench -p mcp-memory --bench memory_bench -- next`.

use mcp_memory::modules;
use mcp_memory::pointers::{self, ScanParams};
use mcp_memory::procfs;
use mcp_memory::reader::ProcessMemory;
use mcp_memory::scan::{self, Condition, Control, FirstScan, Matches, ScanSpec};
use mcp_memory::tools::DEFAULT_MAX_RESULTS;
use mcp_memory::values::ValueType;
use mcp_static::pattern::Pattern;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Fixture {
    child: Child,
    info: Value,
    out: BufReader<ChildStdout>,
}

impl Fixture {
    fn start(bin: &Path, args: &[&str]) -> Res<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Self::spawn(cmd)
    }

    /// Runs `cmd` and reads the JSON line it prints first.
    fn spawn(mut cmd: Command) -> Res<Self> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut out = BufReader::new(out);
        let mut line = String::new();
        out.read_line(&mut line)?;
        Ok(Self {
            info: serde_json::from_str(&line)?,
            child,
            out,
        })
    }

    /// Sends one command line and waits for the answer line.
    fn command(&mut self, cmd: &str) -> Res<String> {
        let input = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(input, "{cmd}")?;
        input.flush()?;
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    fn addr(&self, key: &str) -> u64 {
        self.info[key]
            .as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut i) = self.child.stdin.take() {
            let _ = writeln!(i, "quit");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> Res<T>) -> Res<(Duration, T)> {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..n {
        let t = Instant::now();
        let v = f()?;
        let d = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, v));
        }
    }
    best.ok_or_else(|| "no run".into())
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// Environment variable that makes this binary the next-scan target (its value: MiB).
const TARGET_ENV: &str = "MEMORY_BENCH_TARGET_MIB";

fn main() -> Res<()> {
    if let Ok(mib) = std::env::var(TARGET_ENV) {
        return target_main(mib.parse()?);
    }
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let mib: u64 = std::env::var("BENCH_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    if "exact aob scanmem".contains(filter.as_str()) || filter.is_empty() {
        exact_scans(mib)?;
    }
    if "pointer".contains(filter.as_str()) || filter.is_empty() {
        pointer_scans()?;
    }
    if "next unknown".contains(filter.as_str()) || filter.is_empty() {
        next_scans(mib)?;
    }
    Ok(())
}

fn fixture_bin() -> Res<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/bench-fixtures/memfix");
    let status = Command::new("bash")
        .arg(root.join("tests/fixtures/memfix/build.sh"))
        .arg(&out)
        .status()?;
    if !status.success() {
        return Err("building the fixture failed".into());
    }
    Ok(out.join("memfix"))
}

/// Raw copy, exact u32 scan (and scanmem's), AOB scan over the fixture's big region.
fn exact_scans(mib: u64) -> Res<()> {
    let fx = Fixture::start(&fixture_bin()?, &["--big-mib", &mib.to_string()])?;
    let pid = fx.child.id();
    let mem = ProcessMemory::open(pid).map_err(|e| e.to_string())?;
    let big = fx.addr("big");
    let big_len = mib << 20;
    let regions = procfs::read_maps(pid)?;
    let ranges: Vec<(u64, u64)> = regions
        .iter()
        .filter(|r| r.scannable() && r.writable)
        .map(|r| (r.start, r.end))
        .collect();
    let total: u64 = ranges.iter().map(|(s, e)| e - s).sum();
    println!(
        "fixture pid {pid}: {} MiB writable memory ({} MiB planted region)",
        total >> 20,
        mib
    );

    // Raw copy bandwidth, 8 MiB reads, one thread (the physical limit of one reader).
    let mut buf = vec![0u8; scan::CHUNK];
    let (vm_t, _) = best_of(3, || {
        let mut at = big;
        while at < big + big_len {
            mem.read_range(at, &mut buf).map_err(|e| e.to_string())?;
            at += buf.len() as u64;
        }
        Ok(())
    })?;
    let file = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let (file_t, _) = best_of(3, || {
        let mut at = big;
        while at < big + big_len {
            file.read_exact_at(&mut buf, at)?;
            at += buf.len() as u64;
        }
        Ok(())
    })?;
    let raw_best = gbps(big_len, vm_t).max(gbps(big_len, file_t));
    println!(
        "raw copy of {mib} MiB: process_vm_readv {:.2} GB/s, /proc/<pid>/mem {:.2} GB/s",
        gbps(big_len, vm_t),
        gbps(big_len, file_t)
    );

    // First exact u32 scan over all writable memory.
    let needle = 0xB16B00B5u32;
    let spec = ScanSpec {
        what: FirstScan::Bytes(needle.to_le_bytes().to_vec()),
        stride: 4,
        alignment: 4,
        max_results: 1_000_000,
        copy_budget: 0,
    };
    let (ours_t, found) = best_of(3, || {
        let r = scan::first_scan(&mem, &ranges, &spec, &Control::default())
            .map_err(|e| e.to_string())?;
        Ok(r.matches.count(None, 4))
    })?;
    let ours_rate = gbps(total, ours_t);
    println!(
        "exact u32 scan: {found} matches over {} MiB in {:.1} ms = {:.2} GB/s = {:.0}% of the best raw copy",
        total >> 20,
        ours_t.as_secs_f64() * 1e3,
        ours_rate,
        ours_rate / raw_best * 100.0
    );
    let scanmem = Command::new("scanmem").arg("--version").output().is_ok();
    if scanmem {
        let (sm_t, sm_out) = best_of(1, || {
            Ok(Command::new("scanmem")
                .args(["-p", &pid.to_string(), "-c"])
                .arg(format!("option scan_data_type int32;0x{needle:X};exit"))
                .output()?)
        })?;
        let text = String::from_utf8_lossy(&sm_out.stdout).into_owned()
            + &String::from_utf8_lossy(&sm_out.stderr);
        let summary = text
            .lines()
            .rfind(|l| l.contains("match"))
            .unwrap_or("(no match line)")
            .to_string();
        println!(
            "scanmem same scan: {:.1} ms ({summary}) -> ours is {:.1}x faster",
            sm_t.as_secs_f64() * 1e3,
            sm_t.as_secs_f64() / ours_t.as_secs_f64()
        );
    } else {
        println!("scanmem not installed: comparison skipped");
    }

    // AOB with wildcards over the same memory.
    let pattern = Pattern::parse("B5 ?? 6B B1")?;
    let aob = ScanSpec {
        what: FirstScan::Pattern(pattern),
        stride: 4,
        alignment: 1,
        max_results: 1_000_000,
        copy_budget: 0,
    };
    let (aob_t, aob_found) = best_of(3, || {
        let r = scan::first_scan(&mem, &ranges, &aob, &Control::default())
            .map_err(|e| e.to_string())?;
        Ok(r.matches.count(None, 1))
    })?;
    println!(
        "AOB `B5 ?? 6B B1`: {aob_found} matches in {:.1} ms = {:.2} GB/s",
        aob_t.as_secs_f64() * 1e3,
        gbps(total, aob_t)
    );
    Ok(())
}

/// Pointer scan over ~100 MiB of heap-like pointer memory.
fn pointer_scans() -> Res<()> {
    let fx = Fixture::start(&fixture_bin()?, &["--pointer-mib", "100"])?;
    let pid = fx.child.id();
    let mem = ProcessMemory::open(pid).map_err(|e| e.to_string())?;
    let regions = procfs::read_maps(pid)?;
    let mods = modules::modules(&mem, &regions);
    let writable: u64 = regions.iter().filter(|r| r.writable).map(|r| r.len()).sum();
    for (what, target) in [
        ("the fixture's chain", fx.addr("chain_value")),
        (
            "the middle of the pointer region",
            fx.addr("ptrs") + (50 << 20),
        ),
    ] {
        let params = ScanParams {
            target,
            max_depth: 3,
            max_offset: 0x1000,
            pointer_size: 8,
            modules: vec![],
            max_results: 1000,
            time_limit: Duration::from_secs(60),
        };
        let (t, out) = best_of(1, || {
            pointers::scan(&mem, &regions, &mods, &params, &Control::default())
                .map_err(|e| e.to_string().into())
        })?;
        println!(
            "pointer scan to {what}, depth 3, offset 0x1000, {} MiB writable: {:.2} s, {} pointers indexed, {} chains, depth {} done{}",
            writable >> 20,
            t.as_secs_f64(),
            out.pointers_indexed,
            out.chains.len(),
            out.depth_completed,
            out.stopped
                .map(|s| format!(", stopped: {s}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The next-scan target: `mib` MiB of pseudo-random bytes (every page touched), then on
/// "change" one u32 per 4 KiB page changes (+1 on even pages, -1 on odd ones), at a
/// different offset in each page.
fn target_main(mib: u64) -> Res<()> {
    let len = (mib << 20) as usize;
    // SAFETY: a fresh private anonymous mapping; checked for failure before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err("mmap failed".into());
    }
    // SAFETY: the mapping is `len` bytes, readable and writable, and only used here.
    let mem = unsafe { std::slice::from_raw_parts_mut(base.cast::<u8>(), len) };
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for word in mem.chunks_exact_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        word.copy_from_slice(&s.to_le_bytes());
    }
    println!("{{\"base\": \"0x{:x}\", \"len\": {len}}}", base as u64);
    let mut line = String::new();
    let stdin = std::io::stdin();
    while {
        line.clear();
        stdin.read_line(&mut line)? > 0
    } {
        if line.trim() != "change" {
            break;
        }
        for (p, page) in mem.chunks_exact_mut(4096).enumerate() {
            let off = (p * 7919 % 1024) * 4;
            let Some(cell) = page.get_mut(off..off + 4) else {
                continue;
            };
            let mut v = [0u8; 4];
            v.copy_from_slice(cell);
            let v = u32::from_le_bytes(v);
            let v = if p % 2 == 0 {
                v.wrapping_add(1)
            } else {
                v.wrapping_sub(1)
            };
            cell.copy_from_slice(&v.to_le_bytes());
        }
        std::hint::black_box(&mut *mem);
        println!("changed");
    }
    Ok(())
}

/// Reads `[start, end)` of `mem` in 8 MiB pieces on `threads` threads.
fn raw_copy(mem: &ProcessMemory, start: u64, end: u64, threads: u64) -> Res<()> {
    let per = (end - start)
        .div_ceil(threads)
        .next_multiple_of(scan::CHUNK as u64);
    std::thread::scope(|s| {
        let jobs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<(), String> {
                    let mut buf = vec![0u8; scan::CHUNK];
                    let mut at = start + t * per;
                    let stop = (at + per).min(end);
                    while at < stop {
                        let n = ((stop - at) as usize).min(buf.len());
                        let piece = buf.get_mut(..n).ok_or("piece")?;
                        mem.read_range(at, piece).map_err(|e| e.to_string())?;
                        at += n as u64;
                    }
                    Ok(())
                })
            })
            .collect();
        for j in jobs {
            j.join().map_err(|_| "a copy thread panicked")??;
        }
        Ok(())
    })
}

/// An unknown-value u32 scan of the target's region, the change, then next scans, each
/// compared with the raw copy of the same region.
fn next_scans(mib: u64) -> Res<()> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(TARGET_ENV, mib.to_string());
    let mut fx = Fixture::spawn(cmd)?;
    let pid = fx.child.id();
    let mem = ProcessMemory::open(pid).map_err(|e| e.to_string())?;
    let start = fx.addr("base");
    let len = fx.info["len"].as_u64().ok_or("no len")?;
    let ranges = [(start, start + len)];
    println!("next scans: target pid {pid}, {mib} MiB region at 0x{start:x}");

    let (raw_t, _) = best_of(3, || raw_copy(&mem, start, start + len, 1))?;
    let (raw2_t, _) = best_of(3, || raw_copy(&mem, start, start + len, 2))?;
    let raw = gbps(len, raw_t);
    println!(
        "  raw copy (process_vm_readv, 8 MiB reads): {:.2} GB/s on 1 thread ({:.0} ms), {:.2} GB/s on 2",
        raw,
        raw_t.as_secs_f64() * 1e3,
        gbps(len, raw2_t)
    );

    let spec = ScanSpec {
        what: FirstScan::Unknown,
        stride: 4,
        alignment: 4,
        max_results: DEFAULT_MAX_RESULTS,
        copy_budget: u64::MAX,
    };
    let (first_t, first) = best_of(2, || {
        scan::first_scan(&mem, &ranges, &spec, &Control::default())
            .map_err(|e| e.to_string().into())
    })?;
    println!(
        "  unknown u32 first scan: {:.0} ms = {:.2} GB/s ({:.2}x the raw copy rate)",
        first_t.as_secs_f64() * 1e3,
        gbps(len, first_t),
        gbps(len, first_t) / raw
    );
    let answer = fx.command("change")?;
    if answer != "changed" {
        return Err(format!("the target answered {answer:?}").into());
    }
    let pages = len / 4096;
    println!(
        "  changed one u32 in each of {pages} pages; next scans (max_results {DEFAULT_MAX_RESULTS}):"
    );
    let mut next_total = Duration::ZERO;
    let mut changed4 = Duration::ZERO;
    for alignment in [4usize, 1] {
        for (name, cond) in [
            ("changed", Condition::Changed),
            ("unchanged", Condition::Unchanged),
            ("increased", Condition::Increased),
        ] {
            let (t, (count, limit, compared)) = best_of(3, || {
                let ctl = Control::default();
                let r = scan::next_scan(
                    &mem,
                    &first.matches,
                    Some(ValueType::U32),
                    alignment,
                    cond,
                    0.0,
                    DEFAULT_MAX_RESULTS,
                    &ctl,
                )
                .map_err(|e| e.to_string())?;
                let count = match &r.matches {
                    Matches::Cells { addrs, .. } => addrs.len(),
                    Matches::Copies { .. } => 0,
                };
                Ok((
                    count,
                    r.limit_reached,
                    ctl.done.load(std::sync::atomic::Ordering::Relaxed),
                ))
            })?;
            next_total += t;
            if alignment == 4 && name == "changed" {
                changed4 = t;
            }
            let rate = gbps(compared, t);
            println!(
                "    {name:>9} align {alignment}: {count:>8} matches{} in {:>6.1} ms, {:>4} MiB compared = {rate:.2} GB/s = {:.2}x the raw copy rate (raw/next {:.2})",
                if limit { " (limit)" } else { "" },
                t.as_secs_f64() * 1e3,
                compared >> 20,
                rate / raw,
                raw / rate
            );
        }
    }
    println!(
        "  first scan + these 6 next scans: {:.2} s; first + `changed` align 4: {:.2} s",
        (first_t + next_total).as_secs_f64(),
        (first_t + changed4).as_secs_f64()
    );

    // A session goes on from the `changed` matches: change again, then narrow those.
    let changed = scan::next_scan(
        &mem,
        &first.matches,
        Some(ValueType::U32),
        4,
        Condition::Changed,
        0.0,
        DEFAULT_MAX_RESULTS,
        &Control::default(),
    )
    .map_err(|e| e.to_string())?;
    let answer = fx.command("change")?;
    if answer != "changed" {
        return Err(format!("the target answered {answer:?}").into());
    }
    let mut session = first_t + changed4;
    for (name, cond) in [
        ("increased", Condition::Increased),
        ("unchanged", Condition::Unchanged),
    ] {
        let (t, count) = best_of(3, || {
            let r = scan::next_scan(
                &mem,
                &changed.matches,
                Some(ValueType::U32),
                4,
                cond,
                0.0,
                DEFAULT_MAX_RESULTS,
                &Control::default(),
            )
            .map_err(|e| e.to_string())?;
            Ok(r.matches.count(None, 4))
        })?;
        session += t;
        println!(
            "  then {name} on the {} `changed` matches (changed again): {count} in {:.1} ms",
            changed.matches.count(None, 4),
            t.as_secs_f64() * 1e3
        );
    }
    println!(
        "  session first + changed + increased + unchanged: {:.2} s",
        session.as_secs_f64()
    );
    through_mcp(&mut fx, pid, len, raw)
}

/// The same unknown-value session as an agent runs it: `scan_start` then `scan_next changed`
/// through the real `mcp-memory` over stdio (rmcp's client), on the same target.
fn through_mcp(fx: &mut Fixture, pid: u32, len: u64, raw: f64) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = rt
        .block_on(mcp_testkit::start_bin(
            env!("CARGO_BIN_EXE_mcp-memory"),
            &[],
        ))
        .map_err(|e| e.to_string())?;
    let call = |tool: &str, args: Value| -> Res<(Duration, Value)> {
        let t = Instant::now();
        let a = rt.block_on(mcp_testkit::call(&client, tool, args));
        if a.is_error {
            return Err(format!("{tool}: {}", a.text).into());
        }
        Ok((t.elapsed(), a.data))
    };
    let (first_t, first) = call(
        "scan_start",
        serde_json::json!({"pid": pid, "value_type": "u32", "writable_only": true}),
    )?;
    let answer = fx.command("change")?;
    if answer != "changed" {
        return Err(format!("the target answered {answer:?}").into());
    }
    let (next_t, next) = call(
        "scan_next",
        serde_json::json!({"scan_id": first["scan_id"], "condition": "changed"}),
    )?;
    println!(
        "  through MCP (mcp-memory over stdio): scan_start unknown u32 {:.0} ms ({} MiB scanned), \
         scan_next changed {:.0} ms ({} matches) = {:.2}x the raw copy rate of the {} MiB region; \
         both {:.2} s",
        first_t.as_secs_f64() * 1e3,
        first["bytes_scanned"].as_u64().unwrap_or(0) >> 20,
        next_t.as_secs_f64() * 1e3,
        next["match_count"],
        gbps(len, next_t) / raw,
        len >> 20,
        (first_t + next_t).as_secs_f64()
    );
    rt.block_on(client.cancel())?;
    Ok(())
}
