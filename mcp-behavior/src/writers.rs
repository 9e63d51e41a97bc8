//! "Who writes this address": hardware breakpoints on every thread of a process for a time
//! window, each hit attributed to the instruction that made it, grouped by instruction.
//!
//! A data breakpoint traps after the access, so the sampled instruction pointer is the next
//! instruction; the one before it is found by decoding backwards (see [`locate`]).

use crate::perf::{Access, ArmError, Breakpoints, REG_NAMES, Sample, monotonic_ns};
use mcp_memory::modules::{self, Module};
use mcp_memory::procfs;
use mcp_memory::reader::ProcessMemory;
use mcp_static::disasm;
use mcp_static::model::Arch;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to watch and for how long.
#[derive(Debug, Clone)]
pub struct Request {
    pub pid: u32,
    pub address: u64,
    /// 1, 2, 4 or 8 bytes, aligned to itself.
    pub size: u64,
    pub access: Access,
    pub duration: Duration,
    /// Stop after this many hits.
    pub max_hits: u64,
}

/// Shared with whoever reports progress or cancels.
#[derive(Debug, Default)]
pub struct Control {
    pub hits: AtomicU64,
    pub cancelled: AtomicBool,
}

/// Why the window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Duration,
    MaxHits,
    Cancelled,
    Exited,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Duration => "duration",
            Stop::MaxHits => "max_hits",
            Stop::Cancelled => "cancelled",
            Stop::Exited => "process_exited",
        }
    }
}

/// One instruction that hit the breakpoint, with what it did.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The instruction's address (for execute breakpoints: the breakpoint's).
    pub address: u64,
    /// `Module.dll+0x...` when inside a module.
    pub module: Option<String>,
    /// Intel syntax; None when the bytes could not be read or decoded.
    pub disassembly: Option<String>,
    pub bits: u32,
    pub hits: u64,
    pub threads: Vec<u32>,
    /// The watched value before and after the first and the last hit (data breakpoints).
    pub first_change: Option<(u64, u64)>,
    pub last_change: Option<(u64, u64)>,
    /// Registers at the first hit, by name.
    pub registers: Vec<(&'static str, u64)>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub writers: Vec<Writer>,
    pub hits: u64,
    /// Samples the kernel dropped because the ring was full.
    pub lost: u64,
    pub threads_armed: usize,
    pub elapsed: Duration,
    pub stop: Stop,
    /// The value at the start and at the end (data breakpoints whose memory was readable).
    pub value_start: Option<u64>,
    pub value_end: Option<u64>,
    /// From a hit (the kernel's sample time) to the server holding it, in microseconds:
    /// median and maximum.
    pub latency_us: Option<(u64, u64)>,
}

/// Why a watch could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The argument that is wrong and why.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Arm(ArmError),
}

/// Reads the watched value (little-endian, `size` bytes).
fn value(mem: &ProcessMemory, addr: u64, size: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read_exact(addr, &mut b[..size as usize]).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Watches `req` until its duration, its hit limit, cancellation or the process's exit.
pub fn find_writers(req: &Request, ctl: &Control) -> Result<Outcome, WatchError> {
    if !matches!(req.size, 1 | 2 | 4 | 8) {
        return Err(WatchError::Invalid(
            "size",
            format!(
                "{} is not a breakpoint length; accepted: 1, 2, 4 or 8",
                req.size
            ),
        ));
    }
    if req.access != Access::Execute && !req.address.is_multiple_of(req.size) {
        return Err(WatchError::Invalid(
            "address",
            format!(
                "0x{:X} is not aligned to size {}: debug registers watch aligned spans; \
                 accepted: a multiple of {}",
                req.address, req.size, req.size
            ),
        ));
    }
    let mem = ProcessMemory::open(req.pid)
        .map_err(|e| WatchError::Invalid("pid", format!("{} ({e})", req.pid)))?;
    let list = |pid| procfs::threads(pid).unwrap_or_default();
    let tids = list(req.pid);
    if tids.is_empty() {
        return Err(WatchError::Arm(ArmError::Gone));
    }
    let mut bp =
        Breakpoints::arm(&tids, req.address, req.size, req.access).map_err(WatchError::Arm)?;
    // Threads started between the listing and the arming: arm them too (a thread armed
    // twice, once by inheritance, shows each hit twice; duplicates are dropped below).
    for _ in 0..5 {
        if bp.add_threads(&list(req.pid)).map_err(WatchError::Arm)? == 0 {
            break;
        }
    }
    let data = req.access != Access::Execute;
    let value_start = if data {
        value(&mem, req.address, req.size)
    } else {
        None
    };
    let mut mods = module_map(req.pid, &mem);
    let mut last_value = value_start;
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut seen: HashSet<(u32, u64)> = HashSet::new();
    let mut by_ip: HashMap<u64, usize> = HashMap::new();
    let mut writers: Vec<Writer> = Vec::new();
    let mut thread_sets: Vec<BTreeSet<u32>> = Vec::new();
    let mut hits = 0u64;
    let mut latencies: Vec<u64> = Vec::new();
    let stop = loop {
        if ctl.cancelled.load(Ordering::Relaxed) {
            break Stop::Cancelled;
        }
        let left = req.duration.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Stop::Duration;
        }
        samples.clear();
        bp.collect(left.as_millis().clamp(1, 50) as i32, &mut samples);
        let got = monotonic_ns();
        latencies.extend(samples.iter().map(|s| got.saturating_sub(s.time_ns) / 1000));
        let now = if data && !samples.is_empty() {
            value(&mem, req.address, req.size)
        } else {
            None
        };
        for s in samples.drain(..) {
            if !seen.insert((s.tid, s.time_ns)) || hits >= req.max_hits {
                continue;
            }
            hits += 1;
            let at = match by_ip.get(&s.ip) {
                Some(&i) => i,
                None => {
                    let (address, disassembly) = if data {
                        locate(&mem, s.ip, s.bits)
                    } else {
                        (s.ip, decode_at(&mem, s.ip, s.bits))
                    };
                    if modules::describe(&mods, address).is_none() {
                        mods = module_map(req.pid, &mem);
                    }
                    writers.push(Writer {
                        address,
                        module: modules::describe(&mods, address),
                        disassembly,
                        bits: s.bits,
                        hits: 0,
                        threads: Vec::new(),
                        first_change: None,
                        last_change: None,
                        registers: registers(&s),
                    });
                    thread_sets.push(BTreeSet::new());
                    by_ip.insert(s.ip, writers.len() - 1);
                    writers.len() - 1
                }
            };
            let w = &mut writers[at];
            w.hits += 1;
            thread_sets[at].insert(s.tid);
            let stored = w
                .disassembly
                .as_deref()
                .filter(|_| req.access == Access::Write)
                .and_then(|d| stored_value(d, &s.regs, req.size));
            if let (Some(before), Some(after)) = (last_value, stored.or(now)) {
                w.first_change.get_or_insert((before, after));
                w.last_change = Some((before, after));
                last_value = Some(after);
            }
        }
        ctl.hits.store(hits, Ordering::Relaxed);
        if hits >= req.max_hits {
            break Stop::MaxHits;
        }
        if !procfs::exists(req.pid) {
            break Stop::Exited;
        }
    };
    let threads_armed = bp.armed().len();
    let lost = bp.lost;
    drop(bp);
    for (w, t) in writers.iter_mut().zip(thread_sets) {
        w.threads = t.into_iter().collect();
    }
    writers.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.address.cmp(&b.address)));
    latencies.sort_unstable();
    let latency_us = latencies
        .last()
        .map(|&max| (latencies[latencies.len() / 2], max));
    Ok(Outcome {
        writers,
        hits,
        lost,
        threads_armed,
        elapsed: start.elapsed(),
        stop,
        value_start,
        value_end: if data {
            value(&mem, req.address, req.size)
        } else {
            None
        },
        latency_us,
    })
}

fn module_map(pid: u32, mem: &ProcessMemory) -> Vec<Module> {
    match procfs::read_maps(pid) {
        Ok(regions) => modules::modules(mem, &regions),
        Err(_) => Vec::new(),
    }
}

fn registers(s: &Sample) -> Vec<(&'static str, u64)> {
    let n = match s.bits {
        0 => 0,
        32 => 10,
        _ => REG_NAMES.len(),
    };
    REG_NAMES.iter().copied().zip(s.regs).take(n).collect()
}

/// The value a store wrote, from the instruction and the registers at the trap: exact for
/// `mov [mem], reg` and `mov [mem], imm` (the common stores), None for others (then the
/// memory is read, which a later write may already have changed).
pub fn stored_value(insn: &str, regs: &[u64; 18], size: u64) -> Option<u64> {
    let rest = insn.strip_prefix("mov ")?;
    let (dest, src) = rest.split_once(',')?;
    if !dest.contains('[') {
        return None;
    }
    let src = src.trim();
    let mask = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    if let Some(hex) = src.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|v| v & mask);
    }
    if let Ok(v) = src.parse::<u64>() {
        return Some(v & mask);
    }
    let base = register_index(src)?;
    let v = regs[base];
    // The high-byte registers (ah, bh, ch, dh) hold bits 8-15.
    let v = if matches!(src, "ah" | "bh" | "ch" | "dh") {
        v >> 8
    } else {
        v
    };
    Some(v & mask)
}

/// The sample index of a general register named in any width (rax, eax, ax, al, r9d, ...).
fn register_index(name: &str) -> Option<usize> {
    let legacy = [
        ("ax", ["rax", "eax", "ax", "al", "ah"]),
        ("bx", ["rbx", "ebx", "bx", "bl", "bh"]),
        ("cx", ["rcx", "ecx", "cx", "cl", "ch"]),
        ("dx", ["rdx", "edx", "dx", "dl", "dh"]),
        ("si", ["rsi", "esi", "si", "sil", "sil"]),
        ("di", ["rdi", "edi", "di", "dil", "dil"]),
        ("bp", ["rbp", "ebp", "bp", "bpl", "bpl"]),
        ("sp", ["rsp", "esp", "sp", "spl", "spl"]),
    ];
    if let Some((base, _)) = legacy.iter().find(|(_, forms)| forms.contains(&name)) {
        return REG_NAMES.iter().position(|r| r == base);
    }
    let numbered = name.trim_end_matches(['d', 'w', 'b']);
    REG_NAMES
        .iter()
        .position(|r| *r == numbered && r.starts_with('r'))
}

fn arch(bits: u32) -> Arch {
    if bits == 32 { Arch::X86 } else { Arch::X86_64 }
}

fn decode_at(mem: &ProcessMemory, addr: u64, bits: u32) -> Option<String> {
    let mut code = [0u8; 15];
    let n = mem.read_some(addr, &mut code).ok()?;
    let cs = disasm::capstone(arch(bits), false).ok()?;
    let i = disasm::decode(&cs, arch(bits), &code[..n], addr, 1)
        .into_iter()
        .next()?;
    Some(text(&i.mnemonic, &i.operands))
}

fn text(mnemonic: &str, operands: &str) -> String {
    if operands.is_empty() {
        mnemonic.to_string()
    } else {
        format!("{mnemonic} {operands}")
    }
}

/// How far back the decoder looks to check that a candidate lies on an instruction boundary.
const LOOK_BACK: usize = 48;

/// The instruction that ends where `next` begins: the one the trap came after.
///
/// x86 cannot be decoded backwards, so each length 1-15 is tried: a candidate must decode to
/// exactly that length and touch memory, and the one reached by the most linear decodes
/// started further back wins (instruction streams resynchronise within a few instructions).
/// Answers `(next, None)` when nothing fits.
pub fn locate(mem: &ProcessMemory, next: u64, bits: u32) -> (u64, Option<String>) {
    let back = (LOOK_BACK as u64).min(next) as usize;
    let mut code = vec![0u8; back];
    let Ok(n) = mem.read_some(next - back as u64, &mut code) else {
        return (next, None);
    };
    if n < back {
        return (next, None);
    }
    let Ok(cs) = disasm::capstone(arch(bits), false) else {
        return (next, None);
    };
    let a = arch(bits);
    let base = next - back as u64;
    let mut best: Option<(usize, bool, usize, String)> = None;
    for len in 1..=15.min(back) {
        let at = back - len;
        let Some(i) = disasm::decode(&cs, a, &code[at..], base + at as u64, 1)
            .into_iter()
            .next()
        else {
            continue;
        };
        if i.bytes.len() != len {
            continue;
        }
        let touches = i.operands.contains('[')
            || matches!(i.mnemonic.as_str(), "push" | "pop" | "call" | "ret")
            || i.mnemonic.starts_with("movs")
            || i.mnemonic.starts_with("stos");
        let synced = (0..at)
            .filter(|&s| lands_on(&cs, a, &code, base, s, at))
            .count();
        let key = (synced, touches, len);
        if best
            .as_ref()
            .is_none_or(|b| (key.1, key.0, key.2) > (b.1, b.0, b.2))
        {
            best = Some((synced, touches, len, text(&i.mnemonic, &i.operands)));
        }
    }
    match best {
        Some((_, _, len, t)) => (next - len as u64, Some(t)),
        None => (next, None),
    }
}

/// Does a linear decode from `start` (over all of `code`, so that an instruction may run past
/// `target`) land exactly on `target`?
fn lands_on(
    cs: &capstone::Capstone,
    a: Arch,
    code: &[u8],
    base: u64,
    start: usize,
    target: usize,
) -> bool {
    let mut pos = start;
    while pos < target {
        match disasm::decode(cs, a, &code[pos..], base + pos as u64, 1).first() {
            Some(i) if !i.bytes.is_empty() => pos += i.bytes.len(),
            _ => return false,
        }
    }
    pos == target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_give_their_value_from_the_registers() {
        let mut regs = [0u64; 18];
        regs[5] = 0x1122_3344_5566_04D2; // rdi
        regs[0] = 0x1234; // rax
        regs[17] = 7; // r15
        assert_eq!(
            stored_value("mov dword ptr [rip + 0x2e99], edi", &regs, 4),
            Some(0x5566_04D2)
        );
        assert_eq!(stored_value("mov byte ptr [rcx], ah", &regs, 1), Some(0x12));
        assert_eq!(stored_value("mov qword ptr [rax], r15", &regs, 8), Some(7));
        assert_eq!(
            stored_value("mov dword ptr [0x410008], eax", &regs, 4),
            Some(0x1234)
        );
        assert_eq!(
            stored_value("mov dword ptr [rax], 0x64", &regs, 4),
            Some(0x64)
        );
        assert_eq!(stored_value("add dword ptr [rax], ecx", &regs, 4), None);
        assert_eq!(stored_value("mov eax, dword ptr [rcx]", &regs, 4), None);
    }
}
