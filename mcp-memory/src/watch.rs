//! Sampling one value over time (Cheat Engine's watch list, as a series): read it every
//! interval and keep the change points, so that a value that moves a thousand times shows
//! as a thousand changes and one that never moves as one sample. Reads that fail are
//! counted; the process ending ends the series. Cancellation and progress go through the
//! scan's `Control`.

use crate::reader::{MemError, ProcessMemory};
use crate::scan::Control;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// At most this many change points are kept (all are counted).
pub const MAX_KEPT_CHANGES: usize = 2000;

/// What a watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Samples taken (fewer than asked when cancelled or the process ended).
    pub samples: usize,
    pub duration_ms: u64,
    /// The first sample and each that differs from the one before: (ms since the first
    /// sample, the bytes read).
    pub changes: Vec<(u64, Vec<u8>)>,
    /// Change points in all, the first sample included.
    pub change_count: usize,
    /// Samples that could not be read.
    pub unreadable: usize,
}

/// Reads `size` bytes at `addr` `samples` times, one every `interval` (on schedule from the
/// first, not drifting by the reads' own time). An error when the first read fails.
pub fn watch(
    mem: &ProcessMemory,
    addr: u64,
    size: usize,
    interval: Duration,
    samples: usize,
    ctl: &Control,
) -> Result<Series, MemError> {
    let mut buf = vec![0u8; size];
    mem.read_exact(addr, &mut buf)?;
    let start = Instant::now();
    let mut out = Series {
        samples: 0,
        duration_ms: 0,
        changes: Vec::new(),
        change_count: 0,
        unreadable: 0,
    };
    let mut last: Option<Vec<u8>> = None;
    for k in 0..samples {
        if ctl.is_cancelled() {
            break;
        }
        let due = start + interval.saturating_mul(k as u32);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        match mem.read_exact(addr, &mut buf) {
            Ok(()) if last.as_deref() != Some(&buf[..]) => {
                out.change_count += 1;
                if out.changes.len() < MAX_KEPT_CHANGES {
                    out.changes
                        .push((start.elapsed().as_millis() as u64, buf.clone()));
                }
                last = Some(buf.clone());
            }
            Ok(()) => {}
            Err(MemError::Gone(_)) => break,
            Err(_) => out.unreadable += 1,
        }
        out.samples += 1;
        ctl.done.store(out.samples as u64, Ordering::Relaxed);
    }
    out.duration_ms = start.elapsed().as_millis() as u64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    /// This process's own memory: a value a thread bumps five times, 20 ms apart.
    #[test]
    fn a_series_keeps_each_change_once_and_stops_when_cancelled() -> Result<(), MemError> {
        let value = Arc::new(AtomicU32::new(0));
        let addr = value.as_ptr() as u64;
        let mem = ProcessMemory::open(std::process::id())?;
        let bumper = {
            let value = value.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    std::thread::sleep(Duration::from_millis(20));
                    value.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let ctl = Control::default();
        // 1 s of samples, 5 ms apart: the bumps (20 ms apart) end well within it.
        let s = watch(&mem, addr, 4, Duration::from_millis(5), 200, &ctl)?;
        let _ = bumper.join();
        let seen: Vec<u32> = s
            .changes
            .iter()
            .map(|(_, b)| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        // Each value once, in order, from the first to the last (a stalled machine may
        // sample past a short-lived one, never twice).
        assert_eq!((seen.first(), seen.last()), (Some(&0), Some(&5)), "{s:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        assert_eq!(s.change_count, seen.len());
        assert_eq!((s.samples, s.unreadable), (200, 0));
        assert!(s.changes.windows(2).all(|w| w[0].0 <= w[1].0), "{s:?}");
        assert_eq!(ctl.done.load(Ordering::Relaxed), 200);

        let cancelled = Control::default();
        cancelled.cancelled.store(true, Ordering::Relaxed);
        let s = watch(&mem, addr, 4, Duration::from_millis(5), 60, &cancelled)?;
        assert_eq!((s.samples, s.change_count), (0, 0));
        // An unmapped address fails on the first read.
        assert!(watch(&mem, 8, 4, Duration::from_millis(5), 1, &ctl).is_err());
        Ok(())
    }
}
