//! Scans in progress: the Cheat Engine workflow (a first scan, next scans that narrow it,
//! pointer scans kept and checked again after a restart) as plain values a program can hold.
//! The MCP tools keep them in the [`crate::store`] under ids; a library user can keep them
//! anywhere.

use crate::modules::Module;
use crate::pointers::{self, Chain};
use crate::reader::ProcessMemory;
use crate::scan::{self, Condition, Control, Matches, ScanError, ScanSpec};
use crate::values::ValueType;

/// A value scan in progress.
#[derive(Debug)]
pub struct ScanSession {
    pub pid: u32,
    /// The value type; `None` for pattern and text scans (compared as bytes).
    pub value_type: Option<ValueType>,
    /// `value`, `pattern`, `text` or `unknown`.
    pub kind: &'static str,
    pub alignment: usize,
    pub max_results: usize,
    pub matches: Matches,
    pub scans: u32,
}

/// What one scan of a session saw besides its matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanStep {
    /// True when the scan stopped at the session's `max_results`.
    pub limit_reached: bool,
    /// Bytes read by a first scan (`None` for a next scan, which reads only its matches).
    pub bytes_scanned: Option<u64>,
    /// Pages (first scan) or matches (next scan) that could not be read.
    pub unreadable: u64,
}

impl ScanSession {
    /// The first scan of `ranges` (sorted, not overlapping) in `mem`'s process.
    /// `value_type` says how next scans compare (`None` compares bytes).
    pub fn start(
        mem: &ProcessMemory,
        ranges: &[(u64, u64)],
        spec: &ScanSpec,
        value_type: Option<ValueType>,
        kind: &'static str,
        ctl: &Control,
    ) -> Result<(Self, ScanStep), ScanError> {
        let r = scan::first_scan(mem, ranges, spec, ctl)?;
        let session = Self {
            pid: mem.pid(),
            value_type,
            kind,
            alignment: spec.alignment,
            max_results: spec.max_results,
            matches: r.matches,
            scans: 1,
        };
        let step = ScanStep {
            limit_reached: r.limit_reached,
            bytes_scanned: Some(r.bytes_scanned),
            unreadable: r.unreadable_pages,
        };
        Ok((session, step))
    }

    /// Reads every match again and keeps those meeting `cond` (floats within `tolerance`).
    pub fn next(
        &mut self,
        mem: &ProcessMemory,
        cond: Condition,
        tolerance: f64,
        ctl: &Control,
    ) -> Result<ScanStep, ScanError> {
        let r = scan::next_scan(
            mem,
            &self.matches,
            self.value_type,
            self.alignment,
            cond,
            tolerance,
            self.max_results,
            ctl,
        )?;
        self.matches = r.matches;
        self.scans += 1;
        Ok(ScanStep {
            limit_reached: r.limit_reached,
            bytes_scanned: None,
            unreadable: r.unreadable,
        })
    }

    /// How many matches are left (cells of an unknown-value scan not yet narrowed included).
    pub fn match_count(&self) -> u64 {
        self.matches.count(self.value_type, self.alignment)
    }

    /// The addresses of the matches, once they are a list (after a value, pattern or text
    /// scan, or the first next scan of an unknown-value scan).
    pub fn addresses(&self) -> Option<&[u64]> {
        match &self.matches {
            Matches::Cells { addrs, .. } => Some(addrs),
            Matches::Copies { .. } => None,
        }
    }
}

/// A pointer scan's chains.
#[derive(Debug)]
pub struct PointerSession {
    pub pid: u32,
    pub pointer_size: usize,
    pub target: u64,
    pub chains: Vec<Chain>,
}

impl PointerSession {
    /// Keeps the chains that lead to `target` in `mem`'s process now (after the value moved
    /// or the game restarted), which becomes the session's process and target.
    pub fn rescan(&mut self, mem: &ProcessMemory, modules: &[Module], target: u64) {
        let size = self.pointer_size;
        self.chains
            .retain(|c| pointers::follow(mem, modules, c, size) == Some(target));
        self.pid = mem.pid();
        self.target = target;
    }

    /// Bytes the chains hold (for the memory budget).
    pub fn bytes(&self) -> u64 {
        self.chains
            .iter()
            .map(|c| 48 + c.offsets.len() as u64 * 8)
            .sum()
    }
}
