//! Writes to a process's memory that can be undone: each write keeps what the bytes were,
//! and undoing puts them back (saying so when the memory had changed since). Ids are
//! `write-N`, in order, for the life of the log.

use crate::reader::{MemError, ProcessMemory};
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct Record {
    pid: u32,
    address: u64,
    old: Vec<u8>,
    new: Vec<u8>,
    undone: bool,
}

/// The writes made so far.
#[derive(Debug, Default)]
pub struct WriteLog {
    records: Mutex<Vec<Record>>,
}

/// A write made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: String,
    /// What the bytes were before.
    pub old: Vec<u8>,
}

/// A write undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    pub pid: u32,
    pub address: u64,
    pub restored: Vec<u8>,
    /// What the memory held instead of the written bytes, when it had changed since.
    pub found: Option<Vec<u8>>,
}

/// Why a write could not be undone.
#[derive(Debug)]
pub enum UndoError {
    /// No write has this id.
    Unknown,
    AlreadyUndone,
    /// The process (`pid`) could not be read or written.
    Memory(u32, MemError),
}

impl WriteLog {
    fn records(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `data` at `address` of `pid` (through `mem`), keeping what was there.
    pub fn write(
        &self,
        mem: &ProcessMemory,
        pid: u32,
        address: u64,
        data: &[u8],
    ) -> Result<Written, MemError> {
        let mut old = vec![0u8; data.len()];
        mem.read_exact(address, &mut old)?;
        mem.write(address, data)?;
        let mut records = self.records();
        records.push(Record {
            pid,
            address,
            old: old.clone(),
            new: data.to_vec(),
            undone: false,
        });
        Ok(Written {
            id: format!("write-{}", records.len()),
            old,
        })
    }

    /// Puts back what write `id` replaced.
    pub fn undo(&self, id: &str) -> Result<Undone, UndoError> {
        let index = id
            .strip_prefix("write-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n >= 1 && n <= self.records().len())
            .ok_or(UndoError::Unknown)?
            - 1;
        let rec = self.records()[index].clone();
        if rec.undone {
            return Err(UndoError::AlreadyUndone);
        }
        let failed = |e| UndoError::Memory(rec.pid, e);
        let mem = ProcessMemory::open(rec.pid).map_err(failed)?;
        let mut now = vec![0u8; rec.new.len()];
        mem.read_exact(rec.address, &mut now).map_err(failed)?;
        mem.write(rec.address, &rec.old).map_err(failed)?;
        self.records()[index].undone = true;
        Ok(Undone {
            pid: rec.pid,
            address: rec.address,
            restored: rec.old,
            found: (now != rec.new).then_some(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this process's own memory: a write, its undo, a second undo refused, and an undo
    /// that finds the bytes changed since.
    #[test]
    fn writes_are_undone_once_and_changes_since_are_reported() -> Result<(), MemError> {
        let cell: Box<[u8; 4]> = Box::new([1, 2, 3, 4]);
        let at = cell.as_ptr() as u64;
        let mem = ProcessMemory::open(std::process::id())?;
        let log = WriteLog::default();
        let w = log.write(&mem, std::process::id(), at, &[9, 9])?;
        assert_eq!(
            (w.id.as_str(), w.old.as_slice()),
            ("write-1", &[1u8, 2][..])
        );
        assert_eq!(std::hint::black_box(&*cell), &[9, 9, 3, 4]);
        let u = log.undo("write-1").map_err(|_| MemError::Gone(0))?;
        assert_eq!((u.restored.as_slice(), u.found), (&[1u8, 2][..], None));
        assert_eq!(std::hint::black_box(&*cell), &[1, 2, 3, 4]);
        assert!(matches!(log.undo("write-1"), Err(UndoError::AlreadyUndone)));
        for bad in ["write-0", "write-2", "2", "write-x"] {
            assert!(matches!(log.undo(bad), Err(UndoError::Unknown)), "{bad}");
        }
        log.write(&mem, std::process::id(), at + 2, &[7])?;
        mem.write(at + 2, &[5])?;
        let u = log.undo("write-2").map_err(|_| MemError::Gone(0))?;
        assert_eq!(u.found, Some(vec![5]));
        assert_eq!(std::hint::black_box(&*cell), &[1, 2, 3, 4]);
        Ok(())
    }
}
