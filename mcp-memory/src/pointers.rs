//! Pointer chains: following one (`resolve`), finding every chain from module static memory
//! to a target (`scan`), and keeping the chains that still reach a moved target (`rescan`).
//!
//! Cheat Engine's convention throughout: read the pointer at `base`, then for each offset add
//! it and read again, except the last offset, which is only added:
//! `final = [[[base] + o1] + o2] + o3`.
//!
//! The scan reads every aligned pointer-sized slot of the writable and module memory once,
//! keeps the slots whose value points into mapped memory, sorts them by value, and then walks
//! backwards from the target breadth-first: a slot whose value lies at most `max_offset` below
//! the current address is one more hop. Breadth-first gives the shortest chains first.

use crate::modules::{self, Module};
use crate::procfs::Region;
use crate::reader::{MemError, ProcessMemory};
use crate::scan::{CHUNK, Control, ScanError};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One hop of a followed chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Where the pointer was read.
    pub address: u64,
    /// What was read there (`None` when unreadable).
    pub value: Option<u64>,
}

/// A followed chain: the hops and the final address, or where it broke.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub hops: Vec<Hop>,
    pub final_address: Option<u64>,
    /// Index of the hop that could not be read, with the reason.
    pub broken_at: Option<(usize, String)>,
}

/// Why a chain could not be followed at all (a hop that is merely unreadable is a
/// [`Resolved::broken_at`], not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    Mem(MemError),
    /// `value + offsets[index]` leaves the `bits`-bit address space of `size`-byte pointers.
    Overflow {
        index: usize,
        value: u64,
        offset: i64,
        bits: u32,
    },
}

impl From<MemError> for ChainError {
    fn from(e: MemError) -> Self {
        ChainError::Mem(e)
    }
}

/// Follows `[[base] + o1] + ... + on` with pointers of `size` bytes (4 or 8). Each sum is
/// checked: with 4-byte pointers it must stay below 4 GiB, with 8-byte ones below 2^64 (a
/// wrapped address is never followed).
pub fn resolve(
    mem: &ProcessMemory,
    base: u64,
    offsets: &[i64],
    size: usize,
) -> Result<Resolved, ChainError> {
    let bits = if size == 4 { 32 } else { 64 };
    let mut hops = Vec::new();
    let mut addr = base;
    let steps = offsets.len().max(1);
    for k in 0..steps {
        let mut buf = [0u8; 8];
        match mem.read_exact(addr, &mut buf[..size]) {
            Ok(()) => {}
            Err(MemError::Unmapped(_)) => {
                hops.push(Hop {
                    address: addr,
                    value: None,
                });
                return Ok(Resolved {
                    broken_at: Some((k, format!("address 0x{addr:X} (hop {k}) is not readable"))),
                    hops,
                    final_address: None,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let value = u64::from_le_bytes(buf);
        hops.push(Hop {
            address: addr,
            value: Some(value),
        });
        addr = match offsets.get(k) {
            Some(&offset) => {
                modules::checked_add_signed(value, offset, bits).ok_or(ChainError::Overflow {
                    index: k,
                    value,
                    offset,
                    bits,
                })?
            }
            None => value,
        };
    }
    Ok(Resolved {
        hops,
        final_address: Some(addr),
        broken_at: None,
    })
}

/// A chain found by the scan, with its base as a module-relative address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub module: String,
    pub module_offset: u64,
    pub offsets: Vec<u64>,
}

/// Parameters of a pointer scan.
#[derive(Debug, Clone)]
pub struct ScanParams {
    pub target: u64,
    pub max_depth: usize,
    pub max_offset: u64,
    pub pointer_size: usize,
    /// Only chains rooted in these modules (all modules when empty).
    pub modules: Vec<String>,
    pub max_results: usize,
    pub time_limit: Duration,
}

/// What the scan found and how far it got.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    pub chains: Vec<Chain>,
    pub pointers_indexed: u64,
    pub bytes_scanned: u64,
    /// Depth fully explored (chains of every length up to it were all found, within
    /// `max_results`).
    pub depth_completed: usize,
    /// Why the scan stopped early, if it did.
    pub stopped: Option<String>,
}

/// The most nodes one level may hold before the scan stops widening.
const MAX_FRONTIER: usize = 2_000_000;

pub fn scan(
    mem: &ProcessMemory,
    regions: &[Region],
    mods: &[Module],
    p: &ScanParams,
    ctl: &Control,
) -> Result<ScanOutcome, ScanError> {
    let started = Instant::now();
    let size = p.pointer_size as u64;
    let roots: Vec<&Module> = mods
        .iter()
        .filter(|m| {
            p.modules.is_empty() || p.modules.iter().any(|n| m.name.eq_ignore_ascii_case(n))
        })
        .collect();
    let in_module = |a: u64| mods.iter().any(|m| m.contains(a));
    // Slots live in writable memory or in module images; values must point at readable memory.
    let sources: Vec<(u64, u64)> = regions
        .iter()
        .filter(|r| r.scannable() && (r.writable || in_module(r.start)))
        .map(|r| (r.start, r.end))
        .collect();
    let valid: Vec<(u64, u64)> = regions
        .iter()
        .filter(|r| r.readable)
        .map(|r| (r.start, r.end))
        .collect();
    let is_valid = |v: u64| {
        let i = valid.partition_point(|&(s, _)| s <= v);
        i > 0 && v < valid[i - 1].1
    };
    ctl.total
        .store(sources.iter().map(|(s, e)| e - s).sum(), Ordering::Relaxed);
    let mut index: Vec<(u64, u64)> = Vec::new(); // (value, slot address)
    let mut buf = vec![0u8; CHUNK];
    for &(s, e) in &sources {
        let mut at = s;
        while at < e {
            if ctl.is_cancelled() {
                return Err(ScanError::Cancelled);
            }
            let len = (e - at).min(CHUNK as u64) as usize;
            mem.read_range(at, &mut buf[..len])?;
            for (k, cell) in buf[..len].chunks_exact(p.pointer_size).enumerate() {
                let v = if p.pointer_size == 4 {
                    u32::from_le_bytes([cell[0], cell[1], cell[2], cell[3]]) as u64
                } else {
                    u64::from_le_bytes(cell.try_into().unwrap_or([0; 8]))
                };
                if v >= 0x10000 && v % 4 == 0 && is_valid(v) {
                    index.push((v, at + k as u64 * size));
                }
            }
            at += len as u64;
            ctl.done.fetch_add(len as u64, Ordering::Relaxed);
        }
    }
    index.sort_unstable();
    let bytes_scanned = ctl.done.load(Ordering::Relaxed);

    // Breadth-first from the target, level by level. Every indexed pointer whose value lies
    // at most max_offset below a node is an edge (slot -> node, offset). A slot is widened
    // once, at its shortest distance, but its edges to every node are kept: two chains that
    // meet in one node (say a short one that holds only because two allocations happen to
    // sit close together, and the one that follows the real structure) are both listed, as
    // Cheat Engine's pointer scanner lists them.
    let mut dist: HashMap<u64, usize> = HashMap::from([(p.target, 0)]);
    let mut edges: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    // (distance, slot, the root module holding it)
    let mut bases: Vec<(usize, u64, usize)> = Vec::new();
    let mut frontier: Vec<u64> = vec![p.target];
    let mut depth_completed = 0;
    let mut stopped = None;
    'levels: for depth in 1..=p.max_depth {
        let mut next = Vec::new();
        for &t in &frontier {
            if ctl.is_cancelled() {
                return Err(ScanError::Cancelled);
            }
            if started.elapsed() > p.time_limit {
                stopped = Some(format!(
                    "time limit of {} s reached",
                    p.time_limit.as_secs()
                ));
                break 'levels;
            }
            let lo = t.saturating_sub(p.max_offset);
            let from = index.partition_point(|&(v, _)| v < lo);
            for &(v, slot) in index[from..].iter().take_while(|&&(v, _)| v <= t) {
                edges.entry(slot).or_default().push((t, t - v));
                if dist.contains_key(&slot) {
                    continue;
                }
                dist.insert(slot, depth);
                if let Some(m) = roots.iter().position(|m| m.contains(slot)) {
                    bases.push((depth, slot, m));
                } else if !in_module(slot) {
                    next.push(slot);
                }
            }
            if next.len() > MAX_FRONTIER {
                stopped = Some(format!(
                    "more than {MAX_FRONTIER} candidate pointers at one depth; lower max_offset"
                ));
                break 'levels;
            }
        }
        depth_completed += 1;
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }

    // Every distinct chain from a base to the target, shortest first.
    bases.sort_unstable();
    let graph = Graph {
        edges: &edges,
        dist: &dist,
        target: p.target,
    };
    let mut chains = Vec::new();
    'lengths: for len in 1..=p.max_depth {
        for &(d, slot, m) in &bases {
            if d > len {
                continue;
            }
            let m = roots[m];
            let mut found = Vec::new();
            graph.paths(
                slot,
                len,
                &mut Vec::new(),
                &mut found,
                p.max_results - chains.len(),
            );
            for offsets in found {
                chains.push(Chain {
                    module: m.name.clone(),
                    module_offset: slot - m.base,
                    offsets,
                });
            }
            if chains.len() >= p.max_results {
                stopped.get_or_insert(format!("max_results ({}) reached", p.max_results));
                break 'lengths;
            }
        }
    }
    Ok(ScanOutcome {
        chains,
        pointers_indexed: index.len() as u64,
        bytes_scanned,
        depth_completed,
        stopped,
    })
}

/// The pointers found by a scan, as edges towards the target.
struct Graph<'a> {
    /// Per slot: the nodes its value points into and the offset to each.
    edges: &'a HashMap<u64, Vec<(u64, u64)>>,
    /// Per node: its shortest distance to the target in hops.
    dist: &'a HashMap<u64, usize>,
    target: u64,
}

impl Graph<'_> {
    /// Adds to `out` the offsets of every chain of exactly `left` hops from `node` to the
    /// target, at most `max` of them.
    fn paths(
        &self,
        node: u64,
        left: usize,
        path: &mut Vec<u64>,
        out: &mut Vec<Vec<u64>>,
        max: usize,
    ) {
        if out.len() >= max {
            return;
        }
        if node == self.target {
            if left == 0 {
                out.push(path.clone());
            }
            return;
        }
        let Some(next) = self.edges.get(&node) else {
            return;
        };
        for &(child, offset) in next {
            // Only nodes that can still reach the target in the hops left.
            if left == 0 || self.dist.get(&child).is_none_or(|&d| d > left - 1) {
                continue;
            }
            path.push(offset);
            self.paths(child, left - 1, path, out, max);
            path.pop();
        }
    }
}

/// Follows a stored chain in the process as it is now; `None` when it breaks.
pub fn follow(mem: &ProcessMemory, mods: &[Module], chain: &Chain, size: usize) -> Option<u64> {
    let m = modules::find(mods, &chain.module)?;
    let offsets: Vec<i64> = chain
        .offsets
        .iter()
        .map(|&o| i64::try_from(o).ok())
        .collect::<Option<_>>()?;
    let base = modules::checked_add(m.base, chain.module_offset, m.bits)?;
    resolve(mem, base, &offsets, size).ok()?.final_address
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overflow(index: usize, value: u64, offset: i64, bits: u32) -> Option<ChainError> {
        Some(ChainError::Overflow {
            index,
            value,
            offset,
            bits,
        })
    }

    #[test]
    fn offsets_that_overflow_are_errors_not_wrapped_addresses() -> Result<(), String> {
        let mem = ProcessMemory::open(std::process::id()).map_err(|e| e.to_string())?;
        // Two pointer cells of this process: one near 2^64, one (read as 4 bytes) near 4 GiB.
        let cells: Box<[u64; 2]> = Box::new([u64::MAX - 4, 0xFFFF_FFF0]);
        let base = cells.as_ptr() as u64;
        let near_4g = base + 8;

        let top = resolve(&mem, base, &[4], 8).map_err(|e| format!("{e:?}"))?;
        assert_eq!(top.final_address, Some(u64::MAX));
        assert_eq!(
            resolve(&mem, base, &[8], 8).err(),
            overflow(0, u64::MAX - 4, 8, 64)
        );

        let top32 = resolve(&mem, near_4g, &[0xF], 4).map_err(|e| format!("{e:?}"))?;
        assert_eq!(top32.final_address, Some(0xFFFF_FFFF));
        assert_eq!(
            resolve(&mem, near_4g, &[0x20], 4).err(),
            overflow(0, 0xFFFF_FFF0, 0x20, 32)
        );
        assert_eq!(
            resolve(&mem, near_4g, &[-0x1_0000_0000], 4).err(),
            overflow(0, 0xFFFF_FFF0, -0x1_0000_0000, 32)
        );
        assert_eq!(cells.len(), 2);
        Ok(())
    }
}
