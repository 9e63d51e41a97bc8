//! Copies of a memory range taken at one moment, and typed differences between two copies.

use crate::reader::{MemError, PAGE, ProcessMemory};
use crate::values::ValueType;

/// A copy of `[address, address + data.len())` of process `pid`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub pid: u32,
    pub address: u64,
    pub data: Vec<u8>,
    /// Start addresses of the pages that could not be read (zeroed in `data`).
    pub unreadable: Vec<u64>,
    pub taken_at: std::time::SystemTime,
}

impl Snapshot {
    pub fn take(mem: &ProcessMemory, address: u64, length: usize) -> Result<Self, MemError> {
        // Checked once here, so the sums below stay within 2^64.
        crate::reader::check_span(address, length)?;
        let mut data = vec![0u8; length];
        let mut unreadable = Vec::new();
        let mut done = 0usize;
        while done < length {
            let at = address + done as u64;
            let n = mem.read_some(at, &mut data[done..])?;
            done += n;
            if done < length {
                let at = address + done as u64;
                let page = at / PAGE * PAGE;
                unreadable.push(page);
                // On from the page after the hole (no sum that could pass 2^64).
                done = (done + (PAGE - at % PAGE) as usize).min(length);
            }
        }
        Ok(Self {
            pid: mem.pid(),
            address,
            data,
            unreadable,
            taken_at: std::time::SystemTime::now(),
        })
    }

    fn readable(&self, addr: u64) -> bool {
        let page = addr / PAGE * PAGE;
        self.unreadable.binary_search(&page).is_err()
    }
}

/// One changed cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub address: u64,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

/// Adjacent changed cells merged into one range.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedRange {
    pub address: u64,
    pub length: u64,
    pub cells: Vec<Cell>,
}

/// Compares two snapshots over the range both cover, cell by cell of `vt` (cells aligned to
/// the type's size in absolute addresses). Pages unreadable in either copy are left out.
pub fn diff(
    before: &Snapshot,
    after: &Snapshot,
    vt: ValueType,
) -> Result<Vec<ChangedRange>, String> {
    let size = vt
        .size()
        .ok_or_else(|| format!("{} has no fixed size: use a numeric type", vt.name()))?
        as u64;
    let start = before.address.max(after.address);
    let end =
        (before.address + before.data.len() as u64).min(after.address + after.data.len() as u64);
    if start >= end {
        return Err(format!(
            "the snapshots do not overlap: 0x{:X}+{} and 0x{:X}+{}",
            before.address,
            before.data.len(),
            after.address,
            after.data.len()
        ));
    }
    let mut out: Vec<ChangedRange> = Vec::new();
    let mut a = start.div_ceil(size) * size;
    while a + size <= end {
        let ob = (a - before.address) as usize;
        let oa = (a - after.address) as usize;
        let old = &before.data[ob..ob + size as usize];
        let new = &after.data[oa..oa + size as usize];
        if old != new && before.readable(a) && after.readable(a) {
            let cell = Cell {
                address: a,
                old: vt.to_json(old),
                new: vt.to_json(new),
            };
            match out.last_mut() {
                Some(r) if r.address + r.length == a => {
                    r.length += size;
                    r.cells.push(cell);
                }
                _ => out.push(ChangedRange {
                    address: a,
                    length: size,
                    cells: vec![cell],
                }),
            }
        }
        a += size;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_typed_cells_into_ranges() -> Result<(), String> {
        let me = ProcessMemory::open(std::process::id()).map_err(|e| e.to_string())?;
        let mut data = vec![0u32; 1024];
        let base = data.as_ptr() as u64;
        let a = Snapshot::take(&me, base, 4096).map_err(|e| e.to_string())?;
        data[3] = 7;
        data[4] = 8;
        data[100] = u32::MAX;
        std::hint::black_box(&mut data);
        let b = Snapshot::take(&me, base, 4096).map_err(|e| e.to_string())?;
        let d = diff(&a, &b, ValueType::U32)?;
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].address, base + 12);
        assert_eq!(d[0].length, 8);
        assert_eq!(d[0].cells[1].new, serde_json::json!(8));
        assert_eq!(d[1].cells[0].new, serde_json::json!(u32::MAX));
        assert!(diff(&a, &b, ValueType::Cstring).is_err());
        assert_eq!(data.len(), 1024);
        // A range that would pass 2^64 is refused before any read.
        assert_eq!(
            Snapshot::take(&me, u64::MAX - 8, 16).err(),
            Some(MemError::Overflow {
                addr: u64::MAX - 8,
                len: 16
            })
        );
        Ok(())
    }
}
