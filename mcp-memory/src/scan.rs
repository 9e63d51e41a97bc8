//! Value scans, Cheat Engine style: a first scan (exact value, rounded float, byte pattern,
//! text, or unknown initial value) then next scans that keep the matches meeting a
//! condition. Matches are kept compactly: sorted addresses plus the previous bytes.
//!
//! The first scan reads memory in 8 MiB chunks on every core; a page that cannot be read is
//! zeroed, counted and skipped, never fatal. Cancellation and progress go through `Control`.

use crate::reader::{MemError, ProcessMemory};
use crate::values::{Num, ValueType};
use mcp_static::pattern::Pattern;
use memchr::memmem;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Bytes read per chunk.
pub const CHUNK: usize = 8 << 20;
/// The largest window read at once when re-reading scattered matches.
const WINDOW: u64 = 64 << 10;

/// Shared progress counter and cancellation flag of one long job.
#[derive(Debug, Default)]
pub struct Control {
    pub done: AtomicU64,
    pub total: AtomicU64,
    pub cancelled: AtomicBool,
}

impl Control {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// Why a scan stopped without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    Mem(MemError),
    Cancelled,
    /// Raw copies of an unknown-value scan would not fit in the memory budget.
    TooLarge {
        needed: u64,
        budget: u64,
    },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Mem(e) => e.fmt(f),
            ScanError::Cancelled => f.write_str("the scan was cancelled"),
            ScanError::TooLarge { needed, budget } => write!(
                f,
                "an unknown-value scan must copy {} MiB, over the budget of {} MiB: narrow it \
                 with `module`, `writable_only` or give a value",
                needed >> 20,
                budget >> 20
            ),
        }
    }
}

impl From<MemError> for ScanError {
    fn from(e: MemError) -> Self {
        ScanError::Mem(e)
    }
}

/// What the first scan looks for.
#[derive(Debug, Clone)]
pub enum FirstScan {
    /// These exact bytes (an integer value, or a text).
    Bytes(Vec<u8>),
    /// A float within `tolerance` of `value`.
    Float {
        vt: ValueType,
        value: f64,
        tolerance: f64,
    },
    /// A byte pattern with wildcards.
    Pattern(Pattern),
    /// Every cell: the memory is copied and compared on the next scan.
    Unknown,
}

/// Matches of a scan.
#[derive(Debug, Clone)]
pub enum Matches {
    /// Sorted addresses and the bytes seen there last (`stride` bytes each).
    Cells {
        stride: usize,
        addrs: Vec<u64>,
        prev: Vec<u8>,
    },
    /// An unknown-value scan before its first next scan: copies of whole ranges.
    Copies { blocks: Vec<(u64, Vec<u8>)> },
}

impl Matches {
    pub fn count(&self, vt: Option<ValueType>, alignment: usize) -> u64 {
        match self {
            Matches::Cells { addrs, .. } => addrs.len() as u64,
            Matches::Copies { blocks } => {
                let size = vt.and_then(ValueType::size).unwrap_or(1);
                blocks
                    .iter()
                    .map(|(_, d)| cells_in(d.len(), size, alignment) as u64)
                    .sum()
            }
        }
    }

    /// Bytes this result holds (for the memory budget).
    pub fn bytes(&self) -> u64 {
        match self {
            Matches::Cells { addrs, prev, .. } => (addrs.len() * 8 + prev.len()) as u64,
            Matches::Copies { blocks } => blocks.iter().map(|(_, d)| d.len() as u64 + 16).sum(),
        }
    }
}

fn cells_in(len: usize, size: usize, alignment: usize) -> usize {
    if len < size {
        0
    } else {
        (len - size) / alignment + 1
    }
}

/// Result of a first scan.
#[derive(Debug)]
pub struct FirstResult {
    pub matches: Matches,
    pub bytes_scanned: u64,
    pub unreadable_pages: u64,
    /// True when the scan stopped at `max_results`.
    pub limit_reached: bool,
}

/// What a first scan looks for and its bounds.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub what: FirstScan,
    /// Bytes each match records (value size, pattern or text length).
    pub stride: usize,
    /// Matches only at multiples of this.
    pub alignment: usize,
    pub max_results: usize,
    /// Most bytes an unknown-value scan may copy.
    pub copy_budget: u64,
}

type ChunkHits = Mutex<Vec<(u64, Vec<u8>)>>;

/// Runs a first scan over `ranges` (start, end), which must be sorted and not overlap.
pub fn first_scan(
    mem: &ProcessMemory,
    ranges: &[(u64, u64)],
    spec: &ScanSpec,
    ctl: &Control,
) -> Result<FirstResult, ScanError> {
    let (what, stride, alignment, max_results, copy_budget) = (
        &spec.what,
        spec.stride,
        spec.alignment,
        spec.max_results,
        spec.copy_budget,
    );
    let total: u64 = ranges.iter().map(|(s, e)| e - s).sum();
    ctl.total.store(total, Ordering::Relaxed);
    if let FirstScan::Unknown = what {
        if total > copy_budget {
            return Err(ScanError::TooLarge {
                needed: total,
                budget: copy_budget,
            });
        }
        return copy_ranges(mem, ranges, ctl);
    }
    let alignment = alignment.max(1);
    let overlap = stride.saturating_sub(1);
    // Work items: chunks of at most CHUNK bytes inside one range.
    let mut chunks: Vec<(u64, u64, u64)> = Vec::new(); // (start, len, range end)
    for &(s, e) in ranges {
        let mut at = s;
        while at < e {
            let len = (e - at).min(CHUNK as u64);
            chunks.push((at, len, e));
            at += len;
        }
    }
    let results: Vec<ChunkHits> = chunks.iter().map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let found = AtomicUsize::new(0);
    let unreadable = AtomicU64::new(0);
    let failure: Mutex<Option<ScanError>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let finder = match what {
        FirstScan::Bytes(b) => Some(memmem::Finder::new(b.as_slice())),
        _ => None,
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(chunks.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buf = vec![0u8; CHUNK + overlap];
                loop {
                    if stop.load(Ordering::Relaxed) || ctl.is_cancelled() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(start, len, range_end)) = chunks.get(i) else {
                        return;
                    };
                    let read_len = (len + overlap as u64).min(range_end - start) as usize;
                    let data = &mut buf[..read_len];
                    match mem.read_range(start, data) {
                        Ok(r) => {
                            unreadable.fetch_add(r.unreadable_pages, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(ScanError::Mem(e));
                            }
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                    let mut hits = Vec::new();
                    let limit = max_results.saturating_sub(found.load(Ordering::Relaxed));
                    match what {
                        FirstScan::Bytes(_) => {
                            if let Some(f) = &finder {
                                find_bytes(
                                    f,
                                    data,
                                    len as usize,
                                    start,
                                    alignment,
                                    limit,
                                    &mut hits,
                                );
                            }
                        }
                        FirstScan::Pattern(p) => {
                            for off in p.find_all(data, limit.saturating_add(1)) {
                                if off < len as usize
                                    && (start + off as u64).is_multiple_of(alignment as u64)
                                {
                                    hits.push(off);
                                }
                            }
                        }
                        FirstScan::Float {
                            vt,
                            value,
                            tolerance,
                        } => find_floats(
                            *vt,
                            *value,
                            *tolerance,
                            data,
                            len as usize,
                            start,
                            alignment,
                            limit,
                            &mut hits,
                        ),
                        FirstScan::Unknown => {}
                    }
                    let recorded: Vec<(u64, Vec<u8>)> = hits
                        .into_iter()
                        .filter_map(|off| {
                            Some((start + off as u64, data.get(off..off + stride)?.to_vec()))
                        })
                        .collect();
                    let n = recorded.len();
                    if let Some(slot) = results.get(i)
                        && let Ok(mut r) = slot.lock()
                    {
                        *r = recorded;
                    }
                    if found.fetch_add(n, Ordering::Relaxed) + n >= max_results {
                        stop.store(true, Ordering::Relaxed);
                    }
                    ctl.done.fetch_add(len, Ordering::Relaxed);
                }
            });
        }
    });
    if let Ok(mut f) = failure.lock()
        && let Some(e) = f.take()
    {
        return Err(e);
    }
    if ctl.is_cancelled() {
        return Err(ScanError::Cancelled);
    }
    let mut addrs = Vec::new();
    let mut prev = Vec::new();
    for slot in results {
        let list = slot.into_inner().unwrap_or_default();
        for (a, bytes) in list {
            if addrs.len() >= max_results {
                break;
            }
            addrs.push(a);
            prev.extend_from_slice(&bytes);
        }
    }
    let limit_reached = found.load(Ordering::Relaxed) >= max_results;
    Ok(FirstResult {
        matches: Matches::Cells {
            stride,
            addrs,
            prev,
        },
        bytes_scanned: ctl.done.load(Ordering::Relaxed),
        unreadable_pages: unreadable.load(Ordering::Relaxed),
        limit_reached,
    })
}

/// Every (possibly overlapping) occurrence of the finder's needle starting before `len`.
fn find_bytes(
    finder: &memmem::Finder<'_>,
    data: &[u8],
    len: usize,
    base: u64,
    alignment: usize,
    limit: usize,
    hits: &mut Vec<usize>,
) {
    let mut pos = 0;
    while pos < len && hits.len() < limit {
        let Some(i) = finder.find(&data[pos..]) else {
            break;
        };
        let at = pos + i;
        if at >= len {
            break;
        }
        if (base + at as u64).is_multiple_of(alignment as u64) {
            hits.push(at);
        }
        pos = at + 1;
    }
}

#[allow(clippy::too_many_arguments)]
fn find_floats(
    vt: ValueType,
    value: f64,
    tolerance: f64,
    data: &[u8],
    len: usize,
    base: u64,
    alignment: usize,
    limit: usize,
    hits: &mut Vec<usize>,
) {
    let size = vt.size().unwrap_or(4);
    let first = first_aligned(base, alignment);
    let mut off = first;
    while off < len && off + size <= data.len() && hits.len() < limit {
        let v = match vt {
            ValueType::F64 => f64::from_le_bytes(data[off..off + 8].try_into().unwrap_or([0; 8])),
            _ => f32::from_le_bytes(data[off..off + 4].try_into().unwrap_or([0; 4])) as f64,
        };
        if (v - value).abs() <= tolerance {
            hits.push(off);
        }
        off += alignment;
    }
}

/// Copies whole ranges for an unknown-value scan.
fn copy_ranges(
    mem: &ProcessMemory,
    ranges: &[(u64, u64)],
    ctl: &Control,
) -> Result<FirstResult, ScanError> {
    let mut blocks = Vec::new();
    let mut unreadable = 0;
    for &(s, e) in ranges {
        let mut data = vec![0u8; (e - s) as usize];
        // A chunk at a time, so that a cancel stops a copy of a large region promptly.
        for (i, piece) in data.chunks_mut(CHUNK).enumerate() {
            if ctl.is_cancelled() {
                return Err(ScanError::Cancelled);
            }
            let at = s + (i * CHUNK) as u64;
            unreadable += mem.read_range(at, piece)?.unreadable_pages;
            ctl.done.fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
        blocks.push((s, data));
    }
    Ok(FirstResult {
        matches: Matches::Copies { blocks },
        bytes_scanned: ctl.done.load(Ordering::Relaxed),
        unreadable_pages: unreadable,
        limit_reached: false,
    })
}

/// Offset from `base` of the first address that is a multiple of `alignment`.
fn first_aligned(base: u64, alignment: usize) -> usize {
    let a = alignment as u64;
    ((a - base % a) % a) as usize
}

/// The test a next scan applies to each match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Equal(Num),
    NotEqual(Num),
    Changed,
    Unchanged,
    Increased,
    Decreased,
    IncreasedBy(Num),
    DecreasedBy(Num),
    Greater(Num),
    Less(Num),
    Between(Num, Num),
}

impl Condition {
    /// Whether only byte equality is needed (so it works for patterns and text too).
    pub fn bytewise(&self) -> bool {
        matches!(self, Condition::Changed | Condition::Unchanged)
    }

    /// Applies the test to the current and previous bytes of one cell of type `vt`.
    /// Floats compare within `tol`.
    pub fn keeps(&self, vt: Option<ValueType>, cur: &[u8], prev: &[u8], tol: f64) -> bool {
        match self {
            Condition::Changed => return cur != prev,
            Condition::Unchanged => return cur == prev,
            _ => {}
        }
        let Some(vt) = vt else {
            return false;
        };
        let (Some(c), Some(p)) = (vt.number(cur), vt.number(prev)) else {
            return false;
        };
        let eq = |a: Num, b: Num| match (a, b) {
            (Num::Int(x), Num::Int(y)) => x == y,
            _ => (a.as_f64() - b.as_f64()).abs() <= tol,
        };
        let diff = |a: Num, b: Num| match (a, b) {
            (Num::Int(x), Num::Int(y)) => Num::Int(x - y),
            _ => Num::Float(a.as_f64() - b.as_f64()),
        };
        let gt = |a: Num, b: Num| match (a, b) {
            (Num::Int(x), Num::Int(y)) => x > y,
            _ => a.as_f64() > b.as_f64(),
        };
        match *self {
            Condition::Equal(v) => eq(c, v),
            Condition::NotEqual(v) => !eq(c, v),
            Condition::Increased => gt(c, p),
            Condition::Decreased => gt(p, c),
            Condition::IncreasedBy(v) => eq(diff(c, p), v),
            Condition::DecreasedBy(v) => eq(diff(p, c), v),
            Condition::Greater(v) => gt(c, v),
            Condition::Less(v) => gt(v, c),
            Condition::Between(lo, hi) => !gt(lo, c) && !gt(c, hi),
            Condition::Changed | Condition::Unchanged => false,
        }
    }
}

/// Result of a next scan.
#[derive(Debug)]
pub struct NextResult {
    pub matches: Matches,
    /// Matches dropped because their memory could no longer be read.
    pub unreadable: u64,
    pub limit_reached: bool,
}

/// Re-reads every match and keeps those meeting `cond`.
#[allow(clippy::too_many_arguments)]
pub fn next_scan(
    mem: &ProcessMemory,
    matches: &Matches,
    vt: Option<ValueType>,
    alignment: usize,
    cond: Condition,
    tol: f64,
    max_results: usize,
    ctl: &Control,
) -> Result<NextResult, ScanError> {
    match matches {
        Matches::Cells {
            stride,
            addrs,
            prev,
        } => {
            let stride = *stride;
            ctl.total.store(addrs.len() as u64, Ordering::Relaxed);
            let mut out_addrs = Vec::new();
            let mut out_prev = Vec::new();
            let mut unreadable = 0;
            let mut cancelled = false;
            read_cells(mem, addrs, stride, |i, cur| {
                if i % 65536 == 0 {
                    ctl.done.store(i as u64, Ordering::Relaxed);
                    if ctl.is_cancelled() {
                        cancelled = true;
                        return false;
                    }
                }
                let Some(cur) = cur else {
                    unreadable += 1;
                    return true;
                };
                let old = &prev[i * stride..(i + 1) * stride];
                if cond.keeps(vt, cur, old, tol) && out_addrs.len() < max_results {
                    out_addrs.push(addrs[i]);
                    out_prev.extend_from_slice(cur);
                }
                true
            })?;
            if cancelled {
                return Err(ScanError::Cancelled);
            }
            let limit_reached = out_addrs.len() >= max_results;
            Ok(NextResult {
                matches: Matches::Cells {
                    stride,
                    addrs: out_addrs,
                    prev: out_prev,
                },
                unreadable,
                limit_reached,
            })
        }
        Matches::Copies { blocks } => {
            let size = vt.and_then(ValueType::size).unwrap_or(1);
            let alignment = alignment.max(1);
            let total: u64 = blocks.iter().map(|(_, d)| d.len() as u64).sum();
            ctl.total.store(total, Ordering::Relaxed);
            let mut addrs = Vec::new();
            let mut prev = Vec::new();
            let mut unreadable = 0;
            let mut limit_reached = false;
            for (start, old) in blocks {
                if ctl.is_cancelled() {
                    return Err(ScanError::Cancelled);
                }
                let mut cur = vec![0u8; old.len()];
                let r = mem.read_range(*start, &mut cur)?;
                unreadable += r.unreadable_pages;
                let first = first_aligned(*start, alignment);
                let mut off = first;
                while off + size <= cur.len() {
                    let (c, p) = (&cur[off..off + size], &old[off..off + size]);
                    if cond.keeps(vt, c, p, tol) {
                        if addrs.len() >= max_results {
                            limit_reached = true;
                            break;
                        }
                        addrs.push(start + off as u64);
                        prev.extend_from_slice(c);
                    }
                    off += alignment;
                }
                ctl.done.fetch_add(old.len() as u64, Ordering::Relaxed);
                if limit_reached {
                    break;
                }
            }
            Ok(NextResult {
                matches: Matches::Cells {
                    stride: size,
                    addrs,
                    prev,
                },
                unreadable,
                limit_reached,
            })
        }
    }
}

/// Reads the `stride` bytes at each of the sorted `addrs`, in windows of up to 64 KiB, and
/// calls `f(index, bytes)` (`None` when unreadable) in order until it returns false.
pub fn read_cells(
    mem: &ProcessMemory,
    addrs: &[u64],
    stride: usize,
    mut f: impl FnMut(usize, Option<&[u8]>) -> bool,
) -> Result<(), MemError> {
    let mut buf = vec![0u8; WINDOW as usize + stride];
    let mut i = 0;
    while i < addrs.len() {
        let start = addrs[i];
        let mut j = i;
        while j + 1 < addrs.len()
            && addrs[j + 1] >= start
            && addrs[j + 1] + stride as u64 - start <= WINDOW
        {
            j += 1;
        }
        let want = (addrs[j] + stride as u64 - start) as usize;
        let got = mem.read_some(start, &mut buf[..want])?;
        let mut k = i;
        while k <= j && addrs[k] + stride as u64 - start <= got as u64 {
            let off = (addrs[k] - start) as usize;
            if !f(k, Some(&buf[off..off + stride])) {
                return Ok(());
            }
            k += 1;
        }
        if k <= j {
            // A hole: this cell alone decides whether the window restarts here.
            let mut one = vec![0u8; stride];
            if got > 0 && mem.read_exact(addrs[k], &mut one).is_ok() {
                i = k;
                continue;
            }
            if !f(k, None) {
                return Ok(());
            }
            k += 1;
        }
        i = k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_own_memory() -> Result<(), ScanError> {
        let me = ProcessMemory::open(std::process::id())?;
        let mut data = vec![0u8; 3 * CHUNK + 100];
        let marker = 0xC0FFEE11u32.to_le_bytes();
        let places = [8usize, CHUNK - 2, CHUNK + 4096, 3 * CHUNK + 96];
        for p in places {
            data[p..p + 4].copy_from_slice(&marker);
        }
        let base = data.as_ptr() as u64;
        let ranges = [(base, base + data.len() as u64)];
        let ctl = Control::default();
        let spec = |alignment| ScanSpec {
            what: FirstScan::Bytes(marker.to_vec()),
            stride: 4,
            alignment,
            max_results: 100,
            copy_budget: 0,
        };
        let r = first_scan(&me, &ranges, &spec(1), &ctl)?;
        let Matches::Cells { addrs, .. } = &r.matches else {
            return Err(ScanError::Cancelled);
        };
        let want: Vec<u64> = places.iter().map(|p| base + *p as u64).collect();
        assert_eq!(addrs, &want);
        // Aligned to 4 (relative to the address): only the places that are aligned.
        let r4 = first_scan(&me, &ranges, &spec(4), &ctl)?;
        let aligned: Vec<u64> = want.iter().copied().filter(|a| a % 4 == 0).collect();
        assert_eq!(r4.matches.count(None, 1), aligned.len() as u64);

        // Change one and narrow it down.
        data[8] = 0x12;
        std::hint::black_box(&mut data);
        let next = next_scan(
            &me,
            &r.matches,
            Some(ValueType::U32),
            1,
            Condition::Changed,
            0.0,
            100,
            &ctl,
        )?;
        let Matches::Cells { addrs, prev, .. } = &next.matches else {
            return Err(ScanError::Cancelled);
        };
        assert_eq!(addrs, &vec![base + 8]);
        assert_eq!(prev[0], 0x12);
        Ok(())
    }

    #[test]
    fn conditions() {
        let c = |v: u32| v.to_le_bytes();
        let t = Some(ValueType::U32);
        assert!(Condition::Increased.keeps(t, &c(5), &c(4), 0.0));
        assert!(!Condition::Increased.keeps(t, &c(4), &c(4), 0.0));
        assert!(Condition::IncreasedBy(Num::Int(3)).keeps(t, &c(7), &c(4), 0.0));
        assert!(Condition::DecreasedBy(Num::Int(3)).keeps(t, &c(1), &c(4), 0.0));
        assert!(Condition::Between(Num::Int(1), Num::Int(5)).keeps(t, &c(5), &c(0), 0.0));
        assert!(!Condition::Between(Num::Int(1), Num::Int(5)).keeps(t, &c(6), &c(0), 0.0));
        let f = Some(ValueType::F32);
        assert!(Condition::Equal(Num::Float(1.5)).keeps(f, &1.52f32.to_le_bytes(), &[0; 4], 0.05));
        assert!(Condition::Less(Num::Int(2)).keeps(f, &1.5f32.to_le_bytes(), &[0; 4], 0.0));
    }
}
