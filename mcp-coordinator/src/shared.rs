//! The Redis that several coordinators share (`--redis-url`): cached results, rate-limit
//! buckets and MCP sessions over HTTP. Connected lazily with short timeouts; after a failure it is left alone for a
//! while, so a Redis that is down costs the callers only their fallback (a cache miss, the
//! in-process rate limit), never a failed call.

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long Redis is left alone after a failure.
const REST: Duration = Duration::from_secs(5);

pub struct SharedRedis {
    conn: redis::aio::ConnectionManager,
    resting_until: Mutex<Option<Instant>>,
}

impl SharedRedis {
    /// Checks the URL; the connection is made on first use.
    pub fn new(url: &str) -> Result<Self, String> {
        use redis::IntoConnectionInfo;
        let bad = |e: redis::RedisError| {
            format!("--redis-url {url:?}: {e} (expected redis://HOST:PORT/DB)")
        };
        // Commands are small and answered at once: no Nagle delay on the socket.
        let info = url
            .into_connection_info()
            .map_err(bad)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(bad)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            // Generous: one slow answer on a busy machine rests Redis for REST.
            .set_response_timeout(Some(Duration::from_secs(2)))
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

    /// PING, for a start-up check.
    pub async fn ping(&self) -> Result<(), String> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Runs `cmd`; `None` while Redis rests or when the command fails (logged as `what`,
    /// after which Redis rests).
    pub async fn query<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Option<T> {
        if self.resting() {
            return None;
        }
        let mut c = self.conn.clone();
        match cmd.query_async(&mut c).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "Redis {what} failed: not used for {} s", REST.as_secs());
                *self.resting_until.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Instant::now() + REST);
                None
            }
        }
    }
}

/// How long a session's `initialize` is kept in Redis: a session idle for longer that reaches
/// another instance is unknown there (404) and the client starts a new one.
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// MCP sessions over HTTP kept in Redis (rmcp's [`SessionStore`]): several coordinators
/// behind one address (nginx round robin) continue each other's sessions.
pub struct RedisSessions(pub std::sync::Arc<SharedRedis>);

fn session_key(id: &str) -> String {
    format!("mcp-coordinator:session:{id}")
}

#[async_trait::async_trait]
impl SessionStore for RedisSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let cmd = redis::cmd("GET").arg(session_key(session_id)).to_owned();
        // Redis down: the session is unknown here, and the client will start a new one.
        let Some(Some(text)) = self.0.query::<Option<String>>("session GET", &cmd).await else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_str(&text)?))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let cmd = redis::cmd("SET")
            .arg(session_key(session_id))
            .arg(serde_json::to_string(state)?)
            .arg("EX")
            .arg(SESSION_TTL.as_secs())
            .to_owned();
        self.0
            .query::<()>("session SET", &cmd)
            .await
            .ok_or_else(|| "Redis did not keep the session".into())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let cmd = redis::cmd("DEL").arg(session_key(session_id)).to_owned();
        let _: Option<u64> = self.0.query("session DEL", &cmd).await;
        Ok(())
    }
}
