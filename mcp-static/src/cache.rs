//! Parsed binaries kept in memory, so repeated calls on a large DLL neither read nor parse
//! it again. Looked up by (path, size, mtime) first, then by content hash.

use crate::binary::{Binary, ParseError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How many bytes of binaries the cache keeps before dropping the least recently used.
pub const DEFAULT_BUDGET: usize = 1 << 30;

struct Entry {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
    binary: Arc<Binary>,
    last_used: u64,
}

pub struct BinaryCache {
    inner: Mutex<Inner>,
    budget: usize,
}

struct Inner {
    entries: Vec<Entry>,
    clock: u64,
}

impl Default for BinaryCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET)
    }
}

impl BinaryCache {
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                clock: 0,
            }),
            budget,
        }
    }

    /// The parsed binary at `path` (already canonical), from the cache when unchanged.
    pub fn load(&self, path: &Path) -> Result<Arc<Binary>, ParseError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ParseError(format!("cannot stat {}: {e}", path.display())))?;
        let mtime = meta.modified().ok();
        if let Some(hit) =
            self.lookup(|e| e.path == path && e.len == meta.len() && e.mtime == mtime)
        {
            return Ok(hit);
        }
        let data = std::fs::read(path)
            .map_err(|e| ParseError(format!("cannot read {}: {e}", path.display())))?;
        let binary = Binary::parse(data)?;
        // The same content under another name shares the parsed copy (and its code index).
        let binary = match self.lookup(|e| e.binary.sha256 == binary.sha256) {
            Some(same) => same,
            None => Arc::new(binary),
        };
        self.insert(path, meta.len(), mtime, binary.clone());
        Ok(binary)
    }

    fn lookup(&self, pred: impl Fn(&Entry) -> bool) -> Option<Arc<Binary>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.iter_mut().find(|e| pred(e))?;
        e.last_used = now;
        Some(e.binary.clone())
    }

    fn insert(&self, path: &Path, len: u64, mtime: Option<SystemTime>, binary: Arc<Binary>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.retain(|e| e.path != path);
        inner.entries.push(Entry {
            path: path.to_path_buf(),
            len,
            mtime,
            binary,
            last_used: now,
        });
        loop {
            let used: usize = inner.entries.iter().map(|e| e.binary.held_bytes()).sum();
            if used <= self.budget || inner.entries.len() <= 1 {
                break;
            }
            if let Some(oldest) = inner
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            {
                inner.entries.remove(oldest);
            }
        }
    }
}
