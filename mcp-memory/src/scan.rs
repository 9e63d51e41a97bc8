//! Value scans, Cheat Engine style: a first scan (exact value, rounded float, byte pattern,
//! text, or unknown initial value) then next scans that keep the matches meeting a
//! condition. Matches are kept compactly: sorted addresses plus the previous bytes.
//!
//! The first scan reads memory in 8 MiB chunks on every core; a page that cannot be read is
//! zeroed, counted and skipped, never fatal. Cancellation and progress go through `Control`.
//! The next scan of an unknown-value scan compares its copies with memory the same way, 1 MiB
//! reads still in cache, equal 64-byte blocks skipped (or kept whole for `unchanged`), so it
//! runs near the rate of a plain copy.

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Mem(MemError),
    #[error("the scan was cancelled")]
    Cancelled,
    /// Raw copies of an unknown-value scan would not fit in the memory budget.
    #[error(
        "an unknown-value scan must copy {} MiB, over the budget of {} MiB: narrow it \
         with `module`, `writable_only` or give a value",
        .needed >> 20,
        .budget >> 20
    )]
    TooLarge { needed: u64, budget: u64 },
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
    let workers = workers_for(chunks.len());
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
                    if !read_or_stop(mem, start, data, &unreadable, &failure, &stop) {
                        return;
                    }
                    let mut hits = Vec::new();
                    // Not less for hits found elsewhere: a later chunk may finish first, and
                    // the first `max_results` in address order may all lie in this one.
                    let limit = max_results;
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

/// Copies whole ranges for an unknown-value scan, 8 MiB at a time on every core (the copy is
/// bound by page faults in the fresh copy as much as by the reads, and both spread).
fn copy_ranges(
    mem: &ProcessMemory,
    ranges: &[(u64, u64)],
    ctl: &Control,
) -> Result<FirstResult, ScanError> {
    let mut blocks: Vec<(u64, Vec<u8>)> = ranges
        .iter()
        .map(|&(s, e)| (s, vec![0u8; (e - s) as usize]))
        .collect();
    let pieces: Vec<(u64, &mut [u8])> = blocks
        .iter_mut()
        .flat_map(|(s, data)| {
            let s = *s;
            data.chunks_mut(CHUNK)
                .enumerate()
                .map(move |(i, piece)| (s + (i * CHUNK) as u64, piece))
        })
        .collect();
    let workers = workers_for(pieces.len());
    let queue = Mutex::new(pieces.into_iter());
    let unreadable = AtomicU64::new(0);
    let failure: Mutex<Option<ScanError>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    // A chunk at a time, so that a cancel stops a large copy promptly.
                    if stop.load(Ordering::Relaxed) || ctl.is_cancelled() {
                        return;
                    }
                    let Some((at, piece)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    if !read_or_stop(mem, at, piece, &unreadable, &failure, &stop) {
                        return;
                    }
                    ctl.done.fetch_add(piece.len() as u64, Ordering::Relaxed);
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
    Ok(FirstResult {
        matches: Matches::Copies { blocks },
        bytes_scanned: ctl.done.load(Ordering::Relaxed),
        unreadable_pages: unreadable.load(Ordering::Relaxed),
        limit_reached: false,
    })
}

/// Threads for `items` work items: one per core, no more than there are items.
fn workers_for(items: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(items)
        .max(1)
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
        self.keeps_numbers(c, p, tol)
    }

    /// The numeric part of `keeps`, on decoded values (the snapshot comparison decodes with
    /// the type known at compile time and calls this).
    #[inline]
    fn keeps_numbers(&self, c: Num, p: Num, tol: f64) -> bool {
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
            let job = CopiesJob {
                mem,
                blocks,
                alignment: alignment.max(1),
                same: Same::of(cond, vt, tol),
                max_results,
                ctl,
                chunk: CHUNK,
                piece: PIECE,
            };
            job.dispatch(vt, cond, tol)
        }
    }
}

/// Bytes read and compared at a time against a copy: small enough that the fresh bytes are
/// still in cache when compared (only the copy streams from memory), large enough to keep
/// syscalls few (256 KiB to 8 MiB measured; 1 MiB was best).
const PIECE: usize = 1 << 20;

/// What a condition says of a cell whose bytes equal the copy's: equal 64-byte blocks are
/// then skipped (`Never`) or taken whole (`Always`) without decoding a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Same {
    Never,
    Always,
    Test,
}

impl Same {
    fn of(cond: Condition, vt: Option<ValueType>, tol: f64) -> Self {
        let size = vt.and_then(ValueType::size).unwrap_or(1);
        let zeros = [0u8; 8];
        let zero = zeros.get(..size).unwrap_or(&zeros);
        match cond {
            // Equal values never went up or down.
            Condition::Changed | Condition::Increased | Condition::Decreased => Same::Never,
            Condition::Unchanged => Same::Always,
            // A difference of 0 (or NaN, which never matches) is what equal bytes give.
            Condition::IncreasedBy(_) | Condition::DecreasedBy(_)
                if !cond.keeps(vt, zero, zero, tol) =>
            {
                Same::Never
            }
            _ => Same::Test,
        }
    }
}

/// Matches found in one work item of a next scan against copies.
#[derive(Debug, Default)]
struct Hits {
    addrs: Vec<u64>,
    prev: Vec<u8>,
}

/// A next scan against the copies of an unknown-value scan.
struct CopiesJob<'a> {
    mem: &'a ProcessMemory,
    blocks: &'a [(u64, Vec<u8>)],
    alignment: usize,
    same: Same,
    max_results: usize,
    ctl: &'a Control,
    /// Bytes per work item (CHUNK; smaller in tests to cross its edges often).
    chunk: usize,
    /// Bytes per read (PIECE; a multiple of the page size that divides `chunk`).
    piece: usize,
}

impl CopiesJob<'_> {
    /// Picks the cell test for the value type, decoding at a size known at compile time.
    fn dispatch(
        &self,
        vt: Option<ValueType>,
        cond: Condition,
        tol: f64,
    ) -> Result<NextResult, ScanError> {
        if cond.bytewise() {
            let unchanged = cond == Condition::Unchanged;
            // `size()` is 1, 2, 4 or 8; no type (bytes) counts as 1.
            return match vt.and_then(ValueType::size) {
                Some(2) => self.run(move |c: &[u8; 2], p: &[u8; 2]| (c == p) == unchanged),
                Some(4) => self.run(move |c: &[u8; 4], p: &[u8; 4]| (c == p) == unchanged),
                Some(8) => self.run(move |c: &[u8; 8], p: &[u8; 8]| (c == p) == unchanged),
                _ => self.run(move |c: &[u8; 1], p: &[u8; 1]| (c == p) == unchanged),
            };
        }
        let int = |v: i128| Num::Int(v);
        match vt {
            Some(ValueType::U8) => self.numbers(cond, tol, |b: &[u8; 1]| int(b[0] as i128)),
            Some(ValueType::I8) => self.numbers(cond, tol, |b: &[u8; 1]| int(b[0] as i8 as i128)),
            Some(ValueType::U16) => {
                self.numbers(cond, tol, |b: &[u8; 2]| int(u16::from_le_bytes(*b) as i128))
            }
            Some(ValueType::I16) => {
                self.numbers(cond, tol, |b: &[u8; 2]| int(i16::from_le_bytes(*b) as i128))
            }
            Some(ValueType::U32 | ValueType::Ptr32) => {
                self.numbers(cond, tol, |b: &[u8; 4]| int(u32::from_le_bytes(*b) as i128))
            }
            Some(ValueType::I32) => {
                self.numbers(cond, tol, |b: &[u8; 4]| int(i32::from_le_bytes(*b) as i128))
            }
            Some(ValueType::U64 | ValueType::Ptr64) => {
                self.numbers(cond, tol, |b: &[u8; 8]| int(u64::from_le_bytes(*b) as i128))
            }
            Some(ValueType::I64) => {
                self.numbers(cond, tol, |b: &[u8; 8]| int(i64::from_le_bytes(*b) as i128))
            }
            Some(ValueType::F32) => self.numbers(cond, tol, |b: &[u8; 4]| {
                Num::Float(f32::from_le_bytes(*b) as f64)
            }),
            Some(ValueType::F64) => {
                self.numbers(cond, tol, |b: &[u8; 8]| Num::Float(f64::from_le_bytes(*b)))
            }
            // Numeric conditions keep nothing without a numeric type (as `keeps` says).
            None | Some(ValueType::Cstring | ValueType::Utf16) => {
                self.run(|_: &[u8; 1], _: &[u8; 1]| false)
            }
        }
    }

    fn numbers<const N: usize>(
        &self,
        cond: Condition,
        tol: f64,
        decode: impl Fn(&[u8; N]) -> Num + Sync,
    ) -> Result<NextResult, ScanError> {
        self.run(move |c: &[u8; N], p: &[u8; N]| cond.keeps_numbers(decode(c), decode(p), tol))
    }

    /// Compares every block with memory now, in work items on every core, and keeps the
    /// cells `test(now, before)` accepts, in address order, up to `max_results`.
    fn run<const N: usize, F>(&self, test: F) -> Result<NextResult, ScanError>
    where
        F: Fn(&[u8; N], &[u8; N]) -> bool + Sync,
    {
        let ctl = self.ctl;
        let total: u64 = self.blocks.iter().map(|(_, d)| d.len() as u64).sum();
        ctl.total.store(total, Ordering::Relaxed);
        // (block, from, to): chunks of at most CHUNK bytes of one block.
        let mut items: Vec<(usize, usize, usize)> = Vec::new();
        for (b, (_, data)) in self.blocks.iter().enumerate() {
            let mut at = 0;
            while at < data.len() {
                let to = (at + self.chunk).min(data.len());
                items.push((b, at, to));
                at = to;
            }
        }
        // One more than asked, to know whether the limit was reached.
        let cap = self.max_results.saturating_add(1);
        let next = AtomicUsize::new(0);
        let found = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let unreadable = AtomicU64::new(0);
        let failure: Mutex<Option<ScanError>> = Mutex::new(None);
        let workers = workers_for(items.len());
        let per_worker: Vec<Vec<(usize, Hits)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut buf = vec![0u8; self.piece + N];
                        let mut mine = Vec::new();
                        // Items are taken in order and each one taken is finished, so when
                        // `stop` ends the loop the finished items are a prefix.
                        while !stop.load(Ordering::Relaxed) && !ctl.is_cancelled() {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&(b, from, to)) = items.get(i) else {
                                break;
                            };
                            let Some((start, old)) = self.blocks.get(b) else {
                                break;
                            };
                            let mut hits = Hits::default();
                            let range = Range {
                                start: *start,
                                old,
                                from,
                                to,
                            };
                            match self.item(&test, &mut buf, &range, cap, &mut hits) {
                                Ok(pages) => {
                                    unreadable.fetch_add(pages, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    if let Ok(mut f) = failure.lock() {
                                        f.get_or_insert(e);
                                    }
                                    stop.store(true, Ordering::Relaxed);
                                    break;
                                }
                            }
                            let n = hits.addrs.len();
                            mine.push((i, hits));
                            ctl.done.fetch_add((to - from) as u64, Ordering::Relaxed);
                            if found.fetch_add(n, Ordering::Relaxed) + n >= cap {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        if let Ok(mut f) = failure.lock()
            && let Some(e) = f.take()
        {
            return Err(e);
        }
        if ctl.is_cancelled() {
            return Err(ScanError::Cancelled);
        }
        let mut slots: Vec<Option<Hits>> = items.iter().map(|_| None).collect();
        for (i, hits) in per_worker.into_iter().flatten() {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(hits);
            }
        }
        let mut addrs: Vec<u64> = Vec::new();
        let mut prev: Vec<u8> = Vec::new();
        let mut limit_reached = false;
        for hits in slots.into_iter().map_while(|s| s) {
            let room = self.max_results - addrs.len();
            if hits.addrs.len() > room {
                addrs.extend_from_slice(&hits.addrs[..room]);
                prev.extend_from_slice(&hits.prev[..room * N]);
                limit_reached = true;
                break;
            }
            if addrs.is_empty() {
                addrs = hits.addrs;
                prev = hits.prev;
            } else {
                addrs.extend_from_slice(&hits.addrs);
                prev.extend_from_slice(&hits.prev);
            }
        }
        Ok(NextResult {
            matches: Matches::Cells {
                stride: N,
                addrs,
                prev,
            },
            unreadable: unreadable.load(Ordering::Relaxed),
            limit_reached,
        })
    }

    /// Compares one work item, a piece at a time; returns the unreadable pages. The cells
    /// starting in the item are tested, reading the few bytes past its end they need.
    fn item<const N: usize, F>(
        &self,
        test: &F,
        buf: &mut [u8],
        range: &Range<'_>,
        cap: usize,
        hits: &mut Hits,
    ) -> Result<u64, ScanError>
    where
        F: Fn(&[u8; N], &[u8; N]) -> bool,
    {
        let mut pages = 0;
        let mut p = range.from;
        while p < range.to {
            if self.ctl.is_cancelled() {
                return Err(ScanError::Cancelled);
            }
            let q = (p + self.piece).min(range.to);
            let extra = (N - 1).min(range.old.len() - q);
            let (Some(cur), Some(old)) =
                (buf.get_mut(..q - p + extra), range.old.get(p..q + extra))
            else {
                break;
            };
            let addr = range.start + p as u64;
            let (body, tail) = cur.split_at_mut(q - p);
            pages += self.mem.read_range(addr, body)?.unreadable_pages;
            if !tail.is_empty() {
                // The next item's first page: read, not counted (that item counts it) and
                // zeroed when unreadable, as a whole-range read would leave it.
                let got = self.mem.read_some(addr + (q - p) as u64, tail)?;
                if let Some(rest) = tail.get_mut(got..) {
                    rest.fill(0);
                }
            }
            let cmp = Cmp::<F, N> {
                test,
                cur,
                old,
                addr,
                alignment: self.alignment,
                cap,
            };
            // Cells starting in this piece (the tail is only read for them).
            let starts = (q - p).min((cur.len() + 1).saturating_sub(N));
            if cmp.piece(self.same, starts, hits) {
                break;
            }
            p = q;
        }
        Ok(pages)
    }
}

/// Part `from..to` of the copy `old` of memory at `start`.
struct Range<'a> {
    start: u64,
    old: &'a [u8],
    from: usize,
    to: usize,
}

/// One piece: fresh bytes `cur` and the copy's `old` (same length) of memory at `addr`.
struct Cmp<'a, F, const N: usize> {
    test: &'a F,
    cur: &'a [u8],
    old: &'a [u8],
    addr: u64,
    alignment: usize,
    cap: usize,
}

impl<const N: usize, F: Fn(&[u8; N], &[u8; N]) -> bool> Cmp<'_, F, N> {
    /// Tests the aligned cells starting before `starts`, skipping or taking equal 64-byte
    /// blocks whole as `same` allows; returns true when `hits` reached the cap.
    fn piece(&self, same: Same, starts: usize, hits: &mut Hits) -> bool {
        match same {
            Same::Test => self.test_cells(0, starts, hits),
            Same::Never => {
                let (cur, _) = self.cur.as_chunks::<64>();
                let (old, _) = self.old.as_chunks::<64>();
                // Cells before `next` were tested already.
                let mut next = 0;
                for (b, (c, o)) in cur.iter().zip(old).enumerate() {
                    if !differs(c, o) {
                        continue;
                    }
                    let (cw, _) = c.as_chunks::<8>();
                    let (ow, _) = o.as_chunks::<8>();
                    for (w, (cw, ow)) in cw.iter().zip(ow).enumerate() {
                        let x = u64::from_le_bytes(*cw) ^ u64::from_le_bytes(*ow);
                        if x == 0 {
                            continue;
                        }
                        // The cells that hold a changed byte of this word.
                        let at = b * 64 + w * 8;
                        let first = at + (x.trailing_zeros() / 8) as usize;
                        let last = at + 7 - (x.leading_zeros() / 8) as usize;
                        let lo = (first + 1).saturating_sub(N).max(next);
                        let hi = (last + 1).min(starts);
                        if lo < hi && self.test_cells(lo, hi, hits) {
                            return true;
                        }
                        next = next.max(hi);
                    }
                }
                let t = cur.len() * 64;
                if self.cur.get(t..) != self.old.get(t..) {
                    let lo = t.saturating_sub(N - 1).max(next);
                    if lo < starts && self.test_cells(lo, starts, hits) {
                        return true;
                    }
                }
                false
            }
            Same::Always => {
                let mut b0 = 0;
                while b0 < starts {
                    let b1 = (b0 + 64).min(self.cur.len());
                    let s1 = (b0 + 64).min(starts);
                    let equal = match (
                        self.cur.get(b0..).and_then(|c| c.first_chunk::<64>()),
                        self.old.get(b0..).and_then(|o| o.first_chunk::<64>()),
                    ) {
                        (Some(c), Some(o)) => !differs(c, o),
                        _ => self.cur.get(b0..b1) == self.old.get(b0..b1),
                    };
                    if equal {
                        // Cells wholly inside the equal block are kept untested.
                        let inside = (b1 + 1).saturating_sub(N).clamp(b0, s1);
                        if self.take_cells(b0, inside, hits) || self.test_cells(inside, s1, hits) {
                            return true;
                        }
                    } else if self.test_cells(b0, s1, hits) {
                        return true;
                    }
                    b0 += 64;
                }
                false
            }
        }
    }

    /// Tests the aligned cells starting in `lo..hi`.
    #[inline]
    fn test_cells(&self, lo: usize, hi: usize, hits: &mut Hits) -> bool {
        let mut s = lo + first_aligned(self.addr + lo as u64, self.alignment);
        while s < hi {
            if let (Some(c), Some(p)) = (
                self.cur.get(s..).and_then(|c| c.first_chunk::<N>()),
                self.old.get(s..).and_then(|o| o.first_chunk::<N>()),
            ) && (self.test)(c, p)
            {
                hits.addrs.push(self.addr + s as u64);
                hits.prev.extend_from_slice(c);
                if hits.addrs.len() >= self.cap {
                    return true;
                }
            }
            s += self.alignment;
        }
        false
    }

    /// Keeps the aligned cells starting in `lo..hi` without testing them.
    fn take_cells(&self, lo: usize, hi: usize, hits: &mut Hits) -> bool {
        let mut s = lo + first_aligned(self.addr + lo as u64, self.alignment);
        while s < hi {
            if let Some(c) = self.cur.get(s..).and_then(|c| c.first_chunk::<N>()) {
                hits.addrs.push(self.addr + s as u64);
                hits.prev.extend_from_slice(c);
                if hits.addrs.len() >= self.cap {
                    return true;
                }
            }
            s += self.alignment;
        }
        false
    }
}

/// Whether two 64-byte blocks differ: eight word compares the compiler turns into vector
/// instructions, instead of a call per block.
#[inline]
fn differs(a: &[u8; 64], b: &[u8; 64]) -> bool {
    let (a, _) = a.as_chunks::<8>();
    let (b, _) = b.as_chunks::<8>();
    a.iter().zip(b).fold(0u64, |acc, (x, y)| {
        acc | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    }) != 0
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

/// One read of a scan worker: counts the pages it could not read, or records the first
/// failure and stops every worker. False when this worker must stop.
fn read_or_stop(
    mem: &ProcessMemory,
    at: u64,
    buf: &mut [u8],
    unreadable: &AtomicU64,
    failure: &Mutex<Option<ScanError>>,
    stop: &AtomicBool,
) -> bool {
    match mem.read_range(at, buf) {
        Ok(r) => {
            unreadable.fetch_add(r.unreadable_pages, Ordering::Relaxed);
            true
        }
        Err(e) => {
            if let Ok(mut f) = failure.lock() {
                f.get_or_insert(ScanError::Mem(e));
            }
            stop.store(true, Ordering::Relaxed);
            false
        }
    }
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

    /// The plain next scan of a copy: every aligned cell through `keeps`.
    fn naive(
        old: &[u8],
        cur: &[u8],
        base: u64,
        vt: Option<ValueType>,
        alignment: usize,
        cond: Condition,
        tol: f64,
    ) -> (Vec<u64>, Vec<u8>) {
        let size = vt.and_then(ValueType::size).unwrap_or(1);
        let (mut addrs, mut prev) = (Vec::new(), Vec::new());
        let mut off = first_aligned(base, alignment);
        while off + size <= old.len() {
            let c = &cur[off..off + size];
            if cond.keeps(vt, c, &old[off..off + size], tol) {
                addrs.push(base + off as u64);
                prev.extend_from_slice(c);
            }
            off += alignment;
        }
        (addrs, prev)
    }

    fn cells(m: &Matches) -> (Vec<u64>, Vec<u8>) {
        match m {
            Matches::Cells { addrs, prev, .. } => (addrs.clone(), prev.clone()),
            Matches::Copies { .. } => (Vec::new(), Vec::new()),
        }
    }

    /// Asserts equal match lists, naming the first difference rather than printing both.
    fn assert_cells(got: &(Vec<u64>, Vec<u8>), want: &(Vec<u64>, Vec<u8>), what: &str) {
        let first = |a: &[u64], b: &[u64]| a.iter().zip(b).position(|(x, y)| x != y);
        assert!(
            got == want,
            "{what}: {} matches, expected {}; first different address at index {:?}, \
             previous bytes equal: {}",
            got.0.len(),
            want.0.len(),
            first(&got.0, &want.0),
            got.1 == want.1
        );
    }

    /// Pseudo-random bytes with runs of zeros (so that whole blocks compare equal).
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i / 300) % 3 == 0 { 0 } else { x as u8 }
            })
            .collect()
    }

    #[test]
    fn next_scans_of_copies_keep_what_the_plain_comparison_keeps() -> Result<(), ScanError> {
        let me = ProcessMemory::open(std::process::id())?;
        let len = 5 * 4096 + 123;
        // Three bytes in, so that the copy starts at an odd address.
        let mut data = noise(len + 3);
        let base = data.as_ptr() as u64 + 3;
        let ctl = Control::default();
        let spec = ScanSpec {
            what: FirstScan::Unknown,
            stride: 4,
            alignment: 4,
            max_results: 10,
            copy_budget: u64::MAX,
        };
        let first = first_scan(&me, &[(base, base + len as u64)], &spec, &ctl)?;
        let Matches::Copies { blocks } = &first.matches else {
            return Err(ScanError::Cancelled);
        };
        // Changes on the edges of blocks, pieces (4096) and items (3 * 4096), and scattered:
        // small and sign-flipping ones, increments, a NaN and an infinity.
        let edges = [
            0, 1, 2, 63, 64, 65, 4095, 4096, 4097, 12287, 12288, 12289, 16382,
        ];
        for (k, e) in edges
            .iter()
            .chain(&[len - 8, len - 4, len - 2, len - 1])
            .enumerate()
        {
            data[3 + e] = data[3 + e].wrapping_add(k as u8 + 1);
        }
        for i in (7..len).step_by(509) {
            data[3 + i] ^= 0x80;
        }
        for i in (100..len - 8).step_by(1021) {
            let v = u32::from_le_bytes(data[3 + i..7 + i].try_into().unwrap_or_default());
            data[3 + i..7 + i].copy_from_slice(&v.wrapping_add(1).to_le_bytes());
        }
        data[2003..2007].copy_from_slice(&f32::NAN.to_le_bytes());
        data[3003..3011].copy_from_slice(&f64::INFINITY.to_le_bytes());
        std::hint::black_box(&mut data);
        let cur = data[3..].to_vec();
        let old = &blocks[0].1;
        let (i, f) = (Num::Int, Num::Float);
        let conds = [
            (Condition::Changed, 0.0),
            (Condition::Unchanged, 0.0),
            (Condition::Increased, 0.0),
            (Condition::Decreased, 0.0),
            (Condition::IncreasedBy(i(1)), 0.0),
            (Condition::DecreasedBy(i(128)), 0.0),
            (Condition::IncreasedBy(i(0)), 0.0),
            (Condition::IncreasedBy(f(0.2)), 0.5),
            (Condition::Equal(i(0)), 0.0),
            (Condition::NotEqual(i(0)), 0.0),
            (Condition::Greater(i(1000)), 0.0),
            (Condition::Less(i(-5)), 0.0),
            (Condition::Between(i(-100), i(100)), 0.0),
            (Condition::Between(f(-1.0), f(1.0)), 0.0),
        ];
        let types = [
            None,
            Some(ValueType::U8),
            Some(ValueType::I16),
            Some(ValueType::U32),
            Some(ValueType::I32),
            Some(ValueType::F32),
            Some(ValueType::U64),
            Some(ValueType::F64),
            Some(ValueType::Cstring),
        ];
        for vt in types {
            for alignment in [1, 2, 4, 8] {
                for (cond, tol) in conds {
                    let want = naive(old, &cur, base, vt, alignment, cond, tol);
                    let job = |max_results| CopiesJob {
                        mem: &me,
                        blocks,
                        alignment,
                        same: Same::of(cond, vt, tol),
                        max_results,
                        ctl: &ctl,
                        chunk: 3 * 4096,
                        piece: 4096,
                    };
                    let what = format!("{vt:?} align {alignment} {cond:?}");
                    let r = job(usize::MAX).dispatch(vt, cond, tol)?;
                    assert_cells(&cells(&r.matches), &want, &what);
                    assert!(!r.limit_reached, "{what}");
                    // A limit keeps the first matches and says whether more exist.
                    let n = want.0.len();
                    let size = vt.and_then(ValueType::size).unwrap_or(1);
                    for max in [n, n.saturating_sub(1).max(1), n / 3 + 1] {
                        let r = job(max).dispatch(vt, cond, tol)?;
                        let k = n.min(max);
                        let head = (want.0[..k].to_vec(), want.1[..k * size].to_vec());
                        assert_cells(&cells(&r.matches), &head, &format!("{what} max {max}"));
                        assert_eq!(r.limit_reached, n > max, "{what} max {max}");
                    }
                }
            }
        }
        // The public path, over several 8 MiB items.
        for (vt, alignment, cond) in [
            (Some(ValueType::U32), 1, Condition::Changed),
            (Some(ValueType::I32), 4, Condition::Increased),
        ] {
            let big_len = 2 * CHUNK + 4096 + 5;
            let mut big = noise(big_len);
            let base = big.as_ptr() as u64;
            let first = first_scan(&me, &[(base, base + big_len as u64)], &spec, &ctl)?;
            for i in (CHUNK - 600..big_len).step_by(CHUNK / 2 - 999) {
                big[i] = big[i].wrapping_sub(3);
            }
            big[CHUNK - 1] ^= 1;
            std::hint::black_box(&mut big);
            let Matches::Copies { blocks } = &first.matches else {
                return Err(ScanError::Cancelled);
            };
            let want = naive(&blocks[0].1, &big, base, vt, alignment, cond, 0.0);
            let r = next_scan(&me, &first.matches, vt, alignment, cond, 0.0, 1 << 20, &ctl)?;
            assert_cells(
                &cells(&r.matches),
                &want,
                &format!("{vt:?} {alignment} {cond:?}"),
            );
            assert!(!want.0.is_empty());
            ctl.cancelled.store(true, Ordering::Relaxed);
            let r = next_scan(&me, &first.matches, vt, alignment, cond, 0.0, 10, &ctl);
            assert_eq!(r.err(), Some(ScanError::Cancelled));
            ctl.cancelled.store(false, Ordering::Relaxed);
        }
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
