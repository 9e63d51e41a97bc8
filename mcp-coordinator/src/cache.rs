//! Results of deterministic child tools (static analysis of a file, a parsed save), kept
//! for a configured time: in process by default, or in Redis (`--redis-url`), where they
//! outlive the coordinator and are shared by every coordinator using that Redis. The key
//! holds the tool, its arguments and, for every file argument, the file's size and
//! modification time, so a changed file is a miss. A Redis that is down is a miss, never a
//! failed call.

use crate::shared::SharedRedis;
use lru::LruCache;
use rmcp::model::CallToolResult;
use serde_json::Value;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most results kept; past that the least recently used goes.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(1024).expect("nonzero");

/// Results by key with their expiry, least recently used first out.
#[derive(Debug)]
pub struct Cache {
    inner: Mutex<LruCache<String, (Instant, CallToolResult)>>,
}

impl Default for Cache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
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
    pub fn with_capacity(capacity: NonZeroUsize) -> Self {
        Self {
            inner: Mutex::new(LruCache::new(capacity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, (Instant, CallToolResult)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A result still fresh (and now the most recently used), else `None`.
    pub fn get(&self, key: &str) -> Option<CallToolResult> {
        let mut g = self.lock();
        match g.get(key) {
            Some((until, r)) if *until > Instant::now() => Some(r.clone()),
            Some(_) => {
                g.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: String, ttl: Duration, result: CallToolResult) {
        self.lock().put(key, (Instant::now() + ttl, result));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where results are kept.
pub enum Results {
    InProcess(Cache),
    Redis(RedisCache),
}

impl Default for Results {
    fn default() -> Self {
        Self::InProcess(Cache::default())
    }
}

impl Results {
    pub async fn get(&self, key: &str) -> Option<CallToolResult> {
        match self {
            Self::InProcess(c) => c.get(key),
            Self::Redis(r) => r.get(key).await,
        }
    }

    pub async fn put(&self, key: String, ttl: Duration, result: CallToolResult) {
        match self {
            Self::InProcess(c) => c.put(key, ttl, result),
            Self::Redis(r) => r.put(&key, ttl, &result).await,
        }
    }
}

/// The Redis key of a cache key: a fixed prefix and the key's SHA-256 (keys hold whole
/// argument objects; Redis keys stay short and printable).
pub fn redis_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = mcp_common::bytes::to_hex(&Sha256::digest(key.as_bytes()));
    format!("mcp-coordinator:result:{hex}")
}

/// Results in Redis, one string key each holding the result's JSON, expiring by itself.
pub struct RedisCache {
    redis: Arc<SharedRedis>,
}

impl RedisCache {
    pub fn new(redis: Arc<SharedRedis>) -> Self {
        Self { redis }
    }

    async fn get(&self, key: &str) -> Option<CallToolResult> {
        let cmd = redis::cmd("GET").arg(redis_key(key)).to_owned();
        let text: String = self.redis.query::<Option<String>>("GET", &cmd).await??;
        match serde_json::from_str(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "a cached result is not a tool result: ignored");
                None
            }
        }
    }

    async fn put(&self, key: &str, ttl: Duration, result: &CallToolResult) {
        let Ok(text) = serde_json::to_string(result) else {
            return;
        };
        let cmd = redis::cmd("SET")
            .arg(redis_key(key))
            .arg(text)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .to_owned();
        let _: Option<()> = self.redis.query("SET", &cmd).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    fn result(text: &str) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(text)])
    }

    fn text(r: Option<CallToolResult>) -> Option<String> {
        r.and_then(|r| {
            r.content
                .first()
                .and_then(|c| c.as_text().map(|t| t.text.clone()))
        })
    }

    #[test]
    fn the_least_recently_used_goes_and_expired_results_are_misses() {
        let two = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN);
        let c = Cache::with_capacity(two);
        let day = Duration::from_secs(86_400);
        c.put("a".into(), day, result("A"));
        c.put("b".into(), day, result("B"));
        // Reading `a` makes `b` the least recently used: `c` pushes `b` out, not `a`.
        assert_eq!(text(c.get("a")).as_deref(), Some("A"));
        c.put("c".into(), day, result("C"));
        assert_eq!(text(c.get("a")).as_deref(), Some("A"));
        assert_eq!(c.get("b"), None);
        assert_eq!(text(c.get("c")).as_deref(), Some("C"));
        c.put("gone".into(), Duration::ZERO, result("G"));
        assert_eq!(c.get("gone"), None);
        assert_eq!(c.len(), 1);
    }
}
