//! Results of deterministic child tools (static analysis of a file, a parsed save), kept
//! in process for a configured time. The key holds the tool, its arguments and, for every
//! file argument, the file's size and modification time, so a changed file is a miss.

use rmcp::model::CallToolResult;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most results kept; the oldest go first.
const CAPACITY: usize = 1024;

/// Results by key with their expiry, and the keys in insertion order (oldest first).
#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<String, (Instant, CallToolResult)>,
    order: VecDeque<String>,
}

#[derive(Debug, Default)]
pub struct Cache {
    inner: Mutex<Entries>,
}

/// Argument names that hold file paths.
const FILE_ARGS: &[&str] = &["path", "path_a", "path_b"];

/// The cache key of a call, `None` when a file argument cannot be examined.
pub fn key(tool: &str, arguments: Option<&Value>) -> Option<String> {
    let args = arguments.cloned().unwrap_or(Value::Null);
    let mut files = Vec::new();
    for name in FILE_ARGS {
        if let Some(p) = args.get(*name).and_then(Value::as_str) {
            let m = std::fs::metadata(p).ok()?;
            let mtime = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            files.push(format!("{name}:{}:{mtime}", m.len()));
        }
    }
    // serde_json's maps are ordered, so equal arguments give equal text.
    Some(format!("{tool}\n{args}\n{}", files.join(",")))
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<CallToolResult> {
        let mut g = self.lock();
        match g.by_key.get(key) {
            Some((until, r)) if *until > Instant::now() => Some(r.clone()),
            Some(_) => {
                g.by_key.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: String, ttl: Duration, result: CallToolResult) {
        let mut g = self.lock();
        if g.by_key
            .insert(key.clone(), (Instant::now() + ttl, result))
            .is_none()
        {
            g.order.push_back(key);
        }
        while g.order.len() > CAPACITY {
            if let Some(old) = g.order.pop_front() {
                g.by_key.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
