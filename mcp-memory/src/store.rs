//! Results kept between calls (scan sessions, snapshots, pointer scans) under one memory
//! budget: the least recently used go first when a new one does not fit, and any left unused
//! for the idle time expire. A forgotten id is reported as expired, not as unknown.

pub use crate::sessions::{PointerSession, ScanSession};
use crate::snapshot::Snapshot;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Item {
    Scan(Arc<Mutex<ScanSession>>),
    Snapshot(Arc<Snapshot>),
    Pointers(Arc<Mutex<PointerSession>>),
}

#[derive(Debug)]
struct Entry {
    item: Item,
    bytes: u64,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    entries: HashMap<String, Entry>,
    /// Ids dropped recently, with why, so that errors can say so.
    gone: VecDeque<(String, &'static str)>,
}

#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    budget: u64,
    idle: Duration,
}

impl Store {
    pub fn new(budget: u64, idle: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            budget,
            idle,
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `item` under a new id `<prefix>-<n>`; evicts older results to make room.
    pub fn insert(&self, prefix: &str, item: Item, bytes: u64) -> Result<String, String> {
        if bytes > self.budget {
            return Err(format!(
                "the result needs {} MiB, more than the server's budget of {} MiB \
                 (--memory-budget-mib); narrow the request",
                bytes >> 20,
                self.budget >> 20
            ));
        }
        let mut inner = self.lock();
        self.expire(&mut inner);
        while inner.entries.values().map(|e| e.bytes).sum::<u64>() + bytes > self.budget {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            inner.entries.remove(&k);
            remember(&mut inner, k, "evicted to stay within the memory budget");
        }
        inner.next += 1;
        let id = format!("{prefix}-{}", inner.next);
        inner.entries.insert(
            id.clone(),
            Entry {
                item,
                bytes,
                last_used: Instant::now(),
            },
        );
        Ok(id)
    }

    /// The item of `id`, or a message saying it is unknown or why it is gone.
    pub fn get(&self, id: &str) -> Result<Item, String> {
        let mut inner = self.lock();
        self.expire(&mut inner);
        if let Some(e) = inner.entries.get_mut(id) {
            e.last_used = Instant::now();
            return Ok(e.item.clone());
        }
        if let Some((_, why)) = inner.gone.iter().find(|(k, _)| k == id) {
            return Err(format!("{id:?} has expired ({why})"));
        }
        Err(format!(
            "{id:?} is unknown (never created by this server, or expired)"
        ))
    }

    /// The scan session of `id`, or why there is none.
    pub fn scan(&self, id: &str) -> Result<Arc<Mutex<ScanSession>>, String> {
        match self.get(id)? {
            Item::Scan(s) => Ok(s),
            other => Err(not_a(id, &other, "scan")),
        }
    }

    /// The pointer scan of `id`, or why there is none.
    pub fn pointers(&self, id: &str) -> Result<Arc<Mutex<PointerSession>>, String> {
        match self.get(id)? {
            Item::Pointers(s) => Ok(s),
            other => Err(not_a(id, &other, "pointer scan")),
        }
    }

    /// The snapshot of `id`, or why there is none.
    pub fn snapshot(&self, id: &str) -> Result<Arc<Snapshot>, String> {
        match self.get(id)? {
            Item::Snapshot(s) => Ok(s),
            other => Err(not_a(id, &other, "snapshot")),
        }
    }

    /// Records a new size for `id` after its result changed.
    pub fn resize(&self, id: &str, bytes: u64) {
        if let Some(e) = self.lock().entries.get_mut(id) {
            e.bytes = bytes;
        }
    }

    /// The live ids `<prefix>-<n>`, newest first (for argument completion; does not count
    /// as a use).
    pub fn ids(&self, prefix: &str) -> Vec<String> {
        let mut inner = self.lock();
        self.expire(&mut inner);
        let mut ids: Vec<(u64, String)> = inner
            .entries
            .keys()
            .filter_map(|k| {
                let n = k.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()?;
                Some((n, k.clone()))
            })
            .collect();
        ids.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
        ids.into_iter().map(|(_, k)| k).collect()
    }

    pub fn used(&self) -> u64 {
        self.lock().entries.values().map(|e| e.bytes).sum()
    }

    fn expire(&self, inner: &mut Inner) {
        let now = Instant::now();
        let old: Vec<String> = inner
            .entries
            .iter()
            .filter(|(_, e)| now.duration_since(e.last_used) > self.idle)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            inner.entries.remove(&k);
            remember(inner, k, "unused for longer than the idle time");
        }
    }
}

/// `"snap-1" is a snapshot's id, not a scan's`.
fn not_a(id: &str, item: &Item, wanted: &str) -> String {
    let is = match item {
        Item::Scan(_) => "scan",
        Item::Snapshot(_) => "snapshot",
        Item::Pointers(_) => "pointer scan",
    };
    format!("{id:?} is a {is}'s id, not a {wanted}'s")
}

fn remember(inner: &mut Inner, id: String, why: &'static str) {
    inner.gone.push_back((id, why));
    if inner.gone.len() > 1000 {
        inner.gone.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: usize) -> Item {
        Item::Snapshot(Arc::new(Snapshot {
            pid: 1,
            address: 0,
            data: vec![0; n],
            unreadable: vec![],
            taken_at: std::time::SystemTime::now(),
        }))
    }

    #[test]
    fn evicts_least_recently_used() -> Result<(), String> {
        let s = Store::new(100, Duration::from_secs(60));
        let a = s.insert("snap", snap(40), 40)?;
        let b = s.insert("snap", snap(40), 40)?;
        s.get(&a)?;
        let c = s.insert("snap", snap(40), 40)?;
        assert!(s.get(&a).is_ok() && s.get(&c).is_ok());
        assert!(s.get(&b).is_err_and(|e| e.contains("expired")));
        assert!(s.get("snap-99").is_err_and(|e| e.contains("unknown")));
        assert!(s.insert("snap", snap(1), 101).is_err());
        assert_eq!(s.ids("snap"), [c.clone(), a]);
        assert!(s.ids("scan").is_empty());
        assert!(s.snapshot(&c).is_ok());
        assert_eq!(
            s.scan(&c).err(),
            Some(format!("{c:?} is a snapshot's id, not a scan's"))
        );
        Ok(())
    }
}
