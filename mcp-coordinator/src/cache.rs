//! Results of deterministic child tools (static analysis of a file, a parsed save), kept
//! for a configured time: in process by default, or in Redis (`--redis-url`), where they
//! outlive the coordinator and are shared by every coordinator using that Redis. The key
//! holds the tool, its arguments and, for every file argument, the file's size and
//! modification time, so a changed file is a miss. A Redis that is down is a miss, never a
//! failed call.

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
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in_process",
            Self::Redis(_) => "redis",
        }
    }

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
    conn: redis::aio::ConnectionManager,
    /// After a failure Redis is left alone for a while, so a Redis that is down costs the
    /// calls nothing but the misses.
    resting_until: Mutex<Option<Instant>>,
}

/// How long Redis is left alone after a failure.
const REST: Duration = Duration::from_secs(5);

impl RedisCache {
    /// Connects lazily: a Redis that is not up yet is a miss until it is.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("--redis-url {url:?}: {e} (expected redis://HOST:PORT/DB)"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| format!("--redis-url {url:?}: {e}"))?;
        Ok(Self {
            conn,
            resting_until: Mutex::new(None),
        })
    }

    fn resting(&self) -> bool {
        let mut r = self.resting_until.lock().unwrap_or_else(|p| p.into_inner());
        match *r {
            Some(t) if t > Instant::now() => true,
            Some(_) => {
                *r = None;
                false
            }
            None => false,
        }
    }

    fn failed(&self, what: &str, e: &redis::RedisError) {
        tracing::warn!(error = %e, "Redis {what} failed: not used for {} s", REST.as_secs());
        *self.resting_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + REST);
    }

    /// PING, for a start-up check.
    pub async fn ping(&self) -> Result<(), String> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn get(&self, key: &str) -> Option<CallToolResult> {
        if self.resting() {
            return None;
        }
        let mut c = self.conn.clone();
        let text: Option<String> = match redis::cmd("GET")
            .arg(redis_key(key))
            .query_async(&mut c)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                self.failed("GET", &e);
                return None;
            }
        };
        let text = text?;
        match serde_json::from_str(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "a cached result is not a tool result: ignored");
                None
            }
        }
    }

    async fn put(&self, key: &str, ttl: Duration, result: &CallToolResult) {
        if self.resting() {
            return;
        }
        let Ok(text) = serde_json::to_string(result) else {
            return;
        };
        let mut c = self.conn.clone();
        let done: Result<(), _> = redis::cmd("SET")
            .arg(redis_key(key))
            .arg(text)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut c)
            .await;
        if let Err(e) = done {
            self.failed("SET", &e);
        }
    }
}
