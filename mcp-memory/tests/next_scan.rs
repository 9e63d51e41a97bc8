//! Next scans after an unknown-value scan of a real process keep exactly the cells that a
//! plain comparison of the copy with memory now keeps, at alignments 1 and 4: the fixture's
//! own change (counter + 1, a float + 1.0, an id ^ 0xFF) and bytes written on the edges of
//! the scan's 8 MiB work items.

mod common;
use common::*;
use mcp_memory::procfs;
use mcp_memory::reader::ProcessMemory;
use mcp_memory::scan::{self, CHUNK, Condition, Control, FirstScan, Matches, ScanSpec};
use mcp_memory::values::ValueType;

type Res = Result<(), String>;

/// The library's errors as text, for `?` here.
fn text<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// Every aligned u32 cell of `old` (at `start`) that `cond` keeps against `now`.
fn plain(start: u64, old: &[u8], now: &[u8], alignment: usize, cond: Condition) -> Vec<u64> {
    let vt = Some(ValueType::U32);
    let mut out = Vec::new();
    let mut off = ((alignment as u64 - start % alignment as u64) % alignment as u64) as usize;
    while off + 4 <= old.len() {
        if cond.keeps(vt, &now[off..off + 4], &old[off..off + 4], 0.0) {
            out.push(start + off as u64);
        }
        off += alignment;
    }
    out
}

#[test]
fn next_scans_of_a_child_keep_exactly_the_changed_cells() -> Res {
    let mut fx = Fixture::native(&["--big-mib", "9"]);
    let pid = fx.pid();
    let mem = text(ProcessMemory::open(pid))?;
    let ranges: Vec<(u64, u64)> = text(procfs::read_maps(pid))?
        .iter()
        .filter(|r| r.scannable() && r.writable)
        .map(|r| (r.start, r.end))
        .collect();
    let ctl = Control::default();
    let spec = ScanSpec {
        what: FirstScan::Unknown,
        stride: 4,
        alignment: 4,
        max_results: 1_000_000,
        copy_budget: u64::MAX,
    };
    let first = text(scan::first_scan(&mem, &ranges, &spec, &ctl))?;
    let Matches::Copies { blocks } = &first.matches else {
        return Err("an unknown-value scan keeps copies".into());
    };

    // The fixture's change, then bytes on both sides of each 8 MiB edge of the big region
    // (relative to the region it lies in) and at its ends.
    fx.change();
    let big = fx.addr("big");
    let region = blocks
        .iter()
        .find(|(s, d)| (*s..*s + d.len() as u64).contains(&big))
        .ok_or("the big region was not copied")?;
    let (rs, re) = (region.0, region.0 + region.1.len() as u64);
    let edges = (rs..re).step_by(CHUNK).skip(1);
    let written: Vec<u64> = edges
        .flat_map(|e| [e - 2, e + 1])
        .chain([rs + 1, re - 2])
        .collect();
    for &at in &written {
        let mut b = [0u8; 1];
        text(mem.read_exact(at, &mut b))?;
        text(mem.write(at, &[b[0].wrapping_add(1)]))?;
    }

    // The fixture waits on stdin: memory now is what the next scans see.
    let mut now = Vec::new();
    for (start, old) in blocks {
        let mut bytes = vec![0u8; old.len()];
        text(mem.read_range(*start, &mut bytes))?;
        now.push(bytes);
    }
    let counter = fx.addr("counter");
    let recs = fx.addr("recs");
    for alignment in [4, 1] {
        for cond in [Condition::Changed, Condition::Decreased] {
            let r = text(scan::next_scan(
                &mem,
                &first.matches,
                Some(ValueType::U32),
                alignment,
                cond,
                0.0,
                1_000_000,
                &ctl,
            ))?;
            let Matches::Cells { addrs, prev, .. } = &r.matches else {
                return Err("a next scan keeps cells".into());
            };
            let mut want = Vec::new();
            for ((start, old), now) in blocks.iter().zip(&now) {
                want.extend(plain(*start, old, now, alignment, cond));
            }
            assert_eq!(addrs, &want, "align {alignment} {cond:?}");
            assert_eq!(prev.len(), addrs.len() * 4);
            assert!(!r.limit_reached);
            if cond == Condition::Changed {
                // The counter (+1 changes its low byte), recs[2].x and recs[5].id.
                let mut expected = vec![counter, recs + 2 * 40 + 8, recs + 5 * 40 + 16];
                if alignment == 1 {
                    expected.extend([counter - 3, counter - 2, counter - 1]);
                    // Every cell holding a written byte, inside the region.
                    let cells = written.iter().flat_map(|&a| a.saturating_sub(3)..=a);
                    expected.extend(cells.filter(|&c| c >= rs && c + 4 <= re));
                }
                for a in expected {
                    assert!(addrs.contains(&a), "align {alignment}: 0x{a:X} not found");
                }
            }
        }
    }
    Ok(())
}
