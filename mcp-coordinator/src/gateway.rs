//! The API gateway in front of the coordinator's streamable HTTP endpoint: bearer auth (a
//! tokens file, HS256 JWTs, or both), per-client rate limits (token buckets, in process or
//! shared in Redis), `GET /health`, `GET /metrics` (Prometheus text) and an audit log of tool
//! calls. Every part is off unless configured; without any gateway flag the HTTP endpoint is
//! exactly rmcp's.
//!
//! The client's name (from its token, or the peer's IP when auth is off) is put into the
//! HTTP request's extensions as [`ClientId`]; rmcp passes the request's `Parts` on to the
//! handler, where `Coordinator::call_tool` finds it and reports each call with
//! [`Gateway::record_call`].

use crate::child::{Child, State};
use crate::jwt::Verifier;
use crate::lanes::LaneStatus;
use crate::shared::SharedRedis;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use mcp_common::bytes::to_hex;
use mcp_common::serve::{HttpFuture, HttpRequest, HttpResponse, Next};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Who made an HTTP request: the name its token belongs to, or the peer's IP without auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(pub String);

/// How a tool call ended, as metrics and the audit log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A result with `isError: true`.
    IsError,
    /// A JSON-RPC error (unknown tool, invalid arguments, ...).
    ProtocolError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::IsError => "is_error",
            Outcome::ProtocolError => "protocol_error",
        }
    }
}

/// What the command line configured.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    /// The tokens file (`--auth-tokens`).
    pub auth_tokens: Option<PathBuf>,
    /// The HS256 secret of accepted JWTs (`--jwt-secret`), and the claims they must carry.
    pub jwt_secret: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// Requests per second per client (`--rate-limit`).
    pub rate_limit: Option<f64>,
    /// Bucket size (`--rate-burst`, default: the rate rounded up).
    pub rate_burst: Option<u32>,
    /// The audit log (`--audit-log`).
    pub audit_log: Option<PathBuf>,
}

/// The tokens file: TOML, `[[clients]]` with `name` and either `token` (as given) or
/// `sha256` (the token's SHA-256 in hex).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    clients: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: Option<String>,
    sha256: Option<String>,
}

/// One accepted token, kept as its SHA-256 whichever way it was given.
struct Token {
    client: String,
    digest: [u8; 32],
}

/// The largest tokens or secret file read.
const MAX_SECRET_FILE_BYTES: u64 = 1 << 20;

/// Reads and checks a tokens file.
fn load_tokens(path: &Path) -> Result<Vec<Token>, String> {
    let flag = "--auth-tokens";
    let text = mcp_common::files::read_text(path, flag, MAX_SECRET_FILE_BYTES)?;
    // The reason and the line only: toml's own message quotes the line, a token with it.
    let file: TokensFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(" at line {}", mcp_common::files::line_at(&text, s.start)))
            .unwrap_or_default();
        format!(
            "{flag} {}: not a valid tokens file{line}: {} (accepted: TOML with [[clients]] \
             entries, each `name` and either `token` or `sha256`)",
            path.display(),
            e.message().trim_end()
        )
    })?;
    if file.clients.is_empty() {
        return Err(format!(
            "{flag} {}: no [[clients]] entry: give at least one",
            path.display()
        ));
    }
    let mut out: Vec<Token> = Vec::new();
    for (i, c) in file.clients.into_iter().enumerate() {
        let at = format!("{flag} {}: clients[{i}]", path.display());
        if c.name.trim().is_empty() {
            return Err(format!("{at}: empty name"));
        }
        if out.iter().any(|t| t.client == c.name) {
            return Err(format!("{at}: the name {:?} appears twice", c.name));
        }
        let digest = match (c.token, c.sha256) {
            (Some(t), None) => {
                if t.is_empty() {
                    return Err(format!("{at} ({}): empty token", c.name));
                }
                Sha256::digest(t.as_bytes()).into()
            }
            (None, Some(h)) => parse_sha256(&h).ok_or_else(|| {
                format!(
                    "{at} ({}): sha256 must be 64 hex digits (the SHA-256 of the token)",
                    c.name
                )
            })?,
            _ => {
                return Err(format!(
                    "{at} ({}): give exactly one of `token` and `sha256`",
                    c.name
                ));
            }
        };
        out.push(Token {
            client: c.name,
            digest,
        });
    }
    Ok(out)
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    mcp_common::bytes::from_hex(hex.trim())?.try_into().ok()
}

/// Equal in time independent of where the digests differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A token bucket: `tokens` refill at `rate` per second up to `burst`.
struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// The shared token bucket (a Lua script, so that take-a-token is atomic in Redis).
const SHARED_BUCKET: &str = include_str!("rate_bucket.lua");

impl Limiter {
    /// `Err(seconds)` to wait before a request would be allowed. With `shared`, the bucket is
    /// the one every coordinator using that Redis spends; the in-process one serves while it
    /// is unreachable.
    async fn take(&self, client: &str, shared: Option<&SharedRedis>) -> Result<(), u64> {
        if let Some(redis) = shared {
            let cmd = redis::cmd("EVAL")
                .arg(SHARED_BUCKET)
                .arg(1)
                .arg(format!("mcp-coordinator:rate:{client}"))
                .arg(self.rate)
                .arg(self.burst)
                .to_owned();
            if let Some(wait) = redis.query::<u64>("rate-limit bucket", &cmd).await {
                return if wait == 0 { Ok(()) } else { Err(wait) };
            }
        }
        self.take_here(client)
    }

    /// The bucket in this process.
    fn take_here(&self, client: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if buckets.len() > 10_000 {
            // Full buckets are the same as absent ones.
            let (rate, burst) = (self.rate, self.burst);
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / self.rate).ceil();
            Err((wait as u64).max(1))
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Gateway {
    tokens: Option<Vec<Token>>,
    jwt: Option<Verifier>,
    /// The Redis several coordinators share (rate-limit buckets; reported by /health).
    redis: Option<Arc<SharedRedis>>,
    limiter: Option<Limiter>,
    audit: Option<(PathBuf, Mutex<std::fs::File>)>,
    metrics: crate::metrics::Metrics,
    children: Arc<Vec<Arc<Child>>>,
    /// The priority lanes, whose queues /metrics shows.
    lanes: Option<Arc<crate::lanes::Lanes>>,
    /// Each tool call over HTTP as it ends, for the dashboard's live page (JSON).
    events: tokio::sync::broadcast::Sender<String>,
    /// The web dashboard under /ui/, when on.
    dashboard: Option<Arc<crate::dashboard::Dashboard>>,
}

/// One tool's counters as the dashboard shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCounts {
    pub tool: String,
    pub calls: u64,
    pub errors: u64,
    pub mean_ms: f64,
}

impl Gateway {
    /// Checks the settings and opens what they name; errors name the flag. With `redis`
    /// (`--redis-url`) the rate-limit buckets live in that Redis, and /health reports it.
    pub fn new(
        settings: &Settings,
        children: Arc<Vec<Arc<Child>>>,
        redis: Option<Arc<SharedRedis>>,
    ) -> Result<Self, String> {
        let tokens = settings
            .auth_tokens
            .as_deref()
            .map(load_tokens)
            .transpose()?;
        let jwt = match (
            &settings.jwt_secret,
            &settings.jwt_issuer,
            &settings.jwt_audience,
        ) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err("--jwt-issuer and --jwt-audience need --jwt-secret FILE".into());
            }
            (Some(path), iss, aud) => {
                let mut secret =
                    mcp_common::files::read_bytes(path, "--jwt-secret", MAX_SECRET_FILE_BYTES)?;
                while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    secret.pop();
                }
                Some(
                    Verifier::new(secret, iss.clone(), aud.clone())
                        .map_err(|e| format!("--jwt-secret {}: {e}", path.display()))?,
                )
            }
        };
        let limiter = match (settings.rate_limit, settings.rate_burst) {
            (None, Some(_)) => {
                return Err("--rate-burst needs --rate-limit N (requests per second)".into());
            }
            (None, None) => None,
            (Some(rate), burst) => {
                if !rate.is_finite() || rate <= 0.0 {
                    return Err(format!(
                        "--rate-limit {rate}: accepted: a number of requests per second \
                         per client greater than 0 (e.g. 10 or 0.5)"
                    ));
                }
                let burst = match burst {
                    Some(0) => {
                        return Err("--rate-burst 0: accepted: a whole number of 1 or more".into());
                    }
                    Some(b) => f64::from(b),
                    None => rate.ceil().max(1.0),
                };
                Some(Limiter {
                    rate,
                    burst,
                    buckets: Mutex::default(),
                })
            }
        };
        let audit = match &settings.audit_log {
            None => None,
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        format!(
                            "--audit-log {}: cannot open it for appending: {e}",
                            path.display()
                        )
                    })?;
                Some((path.clone(), Mutex::new(file)))
            }
        };
        Ok(Self {
            tokens,
            jwt,
            redis,
            limiter,
            audit,
            metrics: crate::metrics::Metrics::new(Arc::clone(&children)),
            children,
            lanes: None,
            events: tokio::sync::broadcast::channel(256).0,
            dashboard: None,
        })
    }

    /// Serves the web dashboard under /ui/.
    pub fn with_dashboard(mut self, dashboard: Arc<crate::dashboard::Dashboard>) -> Self {
        self.dashboard = Some(dashboard);
        self
    }

    /// Whether requests must carry a token (a tokens file or a JWT secret is set).
    pub fn auth_on(&self) -> bool {
        self.tokens.is_some() || self.jwt.is_some()
    }

    pub fn children(&self) -> &[Arc<Child>] {
        &self.children
    }

    pub fn lanes(&self) -> Vec<LaneStatus> {
        self.lanes.as_ref().map(|l| l.status()).unwrap_or_default()
    }

    /// Calls, errors and mean latency per tool, most called first.
    pub fn tool_counts(&self) -> Vec<ToolCounts> {
        self.metrics.tool_counts()
    }

    /// The last `n` lines of the audit log (none without one).
    pub fn audit_tail(&self, n: usize) -> Vec<Value> {
        let Some((path, _)) = &self.audit else {
            return Vec::new();
        };
        // Only the end of the file: the log grows with every call.
        let text = tail(path, AUDIT_TAIL_BYTES);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Tool calls as they end (JSON objects: time, client, tool, outcome, ms).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.events.subscribe()
    }

    /// /metrics also shows these lanes' queues and waits.
    pub fn with_lanes(mut self, lanes: Arc<crate::lanes::Lanes>) -> Self {
        self.metrics.with_lanes(Arc::clone(&lanes));
        self.lanes = Some(lanes);
        self
    }

    /// Whether calls are written to an audit log (only then are their arguments needed).
    pub fn audits(&self) -> bool {
        self.audit.is_some()
    }

    /// Reports a tool call made over HTTP (metrics, audit log). Never fails.
    pub fn record_call(
        &self,
        client: &ClientId,
        tool: &str,
        arguments: Option<&serde_json::Map<String, Value>>,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        self.metrics.call(tool, outcome, seconds);
        let event = json!({
            "time": rfc3339(SystemTime::now()),
            "client": client.0,
            "tool": tool,
            "outcome": outcome.as_str(),
            "ms": (seconds * 1000.0 * 10.0).round() / 10.0,
        });
        // Nobody listening is fine.
        let _ = self.events.send(event.to_string());
        if let Some((path, file)) = &self.audit {
            let line = json!({
                "time": rfc3339(SystemTime::now()),
                "client": client.0,
                "tool": tool,
                "arguments_sha256": arguments_sha256(arguments),
                "outcome": outcome.as_str(),
                "duration_ms": (seconds * 1000.0 * 1000.0).round() / 1000.0,
            })
            .to_string()
                + "\n";
            let mut f = lock(file);
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                tracing::error!(path = %path.display(), error = %e, "audit log write failed");
            }
        }
    }

    fn count(&self, client: &str, status: StatusCode) {
        self.metrics.request(client, status);
    }

    /// Who sent the request, or the 401 to answer.
    fn authenticate(
        &self,
        request: &HttpRequest,
        peer: SocketAddr,
    ) -> Result<String, Box<HttpResponse>> {
        if self.tokens.is_none() && self.jwt.is_none() {
            return Ok(peer.ip().to_string());
        }
        let unauthorized = |error: &str, message: &str| {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": error, "message": message}),
            );
            let challenge = if error == "invalid_token" || error == "token_expired" {
                "Bearer realm=\"mcp-coordinator\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"mcp-coordinator\""
            };
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            Box::new(r)
        };
        let Some(header) = request.headers().get(AUTHORIZATION) else {
            return Err(unauthorized(
                "missing_token",
                "missing the Authorization header: send `Authorization: Bearer <token>`",
            ));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(presented) = presented else {
            return Err(unauthorized(
                "missing_token",
                "the Authorization header has no bearer token: send `Authorization: Bearer <token>`",
            ));
        };
        self.client_of_token(presented)
            .map_err(|(error, message)| unauthorized(error, &message))
    }

    /// The client a token (a listed token or a JWT) belongs to, or why it is refused: the
    /// error code (`invalid_token`, `token_expired`) and a message.
    pub fn client_of_token(&self, presented: &str) -> Result<String, (&'static str, String)> {
        if let Some(jwt) = &self.jwt
            && Verifier::looks_like_jwt(presented)
        {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            return jwt.verify(presented, now).map_err(|r| (r.error, r.message));
        }
        let Some(tokens) = &self.tokens else {
            return Err((
                "invalid_token",
                "the bearer token is not a JWT (header.claims.signature), the only kind accepted"
                    .into(),
            ));
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every token is compared, so the time taken does not say which one matched.
        let mut found: Option<&str> = None;
        for t in tokens {
            if same_digest(&t.digest, &digest) {
                found = Some(&t.client);
            }
        }
        found.map(str::to_string).ok_or((
            "invalid_token",
            "the bearer token is not one this coordinator accepts".into(),
        ))
    }

    /// 503 when a child is not running (this instance cannot serve every tool); a shared
    /// Redis that does not answer is reported and makes the status "degraded", still 200:
    /// every instance then falls back alike (misses, in-process limits).
    async fn health(&self) -> HttpResponse {
        let statuses: Vec<_> = self.children.iter().map(|c| c.status()).collect();
        let all_up = statuses.iter().all(|s| s.state == State::Running);
        let servers: Vec<Value> = statuses
            .into_iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "state": s.state,
                    "restarts": s.restarts,
                    "last_error": s.last_error,
                })
            })
            .collect();
        let mut body = json!({"servers": servers});
        let mut redis_up = true;
        if let Some(redis) = &self.redis {
            // Through the same back-off as the data path: while Redis rests after a failure,
            // a probe answers at once instead of waiting on another connection attempt.
            redis_up = redis
                .query::<String>("health check", &redis::cmd("PING"))
                .await
                .is_some();
            body["redis"] = if redis_up { "ok" } else { "unreachable" }.into();
        }
        let code = if all_up {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        body["status"] = if all_up && redis_up { "ok" } else { "degraded" }.into();
        json_response(code, &body)
    }
}

impl mcp_common::serve::Gateway for Gateway {
    fn serves_browsers_at(&self, path: &str) -> bool {
        self.dashboard.is_some() && (path == "/ui" || path.starts_with("/ui/"))
    }

    fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        mut request: HttpRequest,
        next: Next,
    ) -> HttpFuture {
        Box::pin(async move {
            let path = request.uri().path().to_string();
            let get = request.method() == Method::GET;
            if get && path == "/health" {
                let r = self.health().await;
                self.count(&peer.ip().to_string(), r.status());
                return r;
            }
            // The dashboard authenticates browsers itself (a session cookie from a token).
            if let Some(ui) = self.dashboard.clone()
                && (path == "/ui" || path.starts_with("/ui/"))
            {
                let r = ui.handle(&self, peer, request).await;
                self.count("dashboard", r.status());
                return r;
            }
            let client = match self.authenticate(&request, peer) {
                Ok(c) => c,
                Err(r) => {
                    self.count("unauthenticated", r.status());
                    return *r;
                }
            };
            if let Some(limiter) = &self.limiter
                && let Err(wait) = limiter.take(&client, self.redis.as_deref()).await
            {
                let mut r = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({
                        "error": "rate_limited",
                        "message": format!(
                            "more than {} requests per second (burst {}) from {client}",
                            limiter.rate, limiter.burst
                        ),
                        "retry_after_s": wait,
                    }),
                );
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(wait));
                self.count(&client, r.status());
                return r;
            }
            if get && path == "/metrics" {
                let mut r = text_response(StatusCode::OK, self.metrics.text());
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                self.count(&client, r.status());
                return r;
            }
            request.extensions_mut().insert(ClientId(client.clone()));
            let r = next.run(request).await;
            self.count(&client, r.status());
            r
        })
    }
}

/// How much of the audit log's end the dashboard reads (20 lines are about 4 KB).
const AUDIT_TAIL_BYTES: u64 = 64 * 1024;

/// The last `bytes` of a file as text, from its first whole line (empty when unreadable).
fn tail(path: &Path, bytes: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(bytes);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    match (start > 0, text.find('\n')) {
        (true, Some(nl)) => text[nl + 1..].to_string(),
        _ => text.into_owned(),
    }
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut r = text_response(status, body.to_string());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text_response(status: StatusCode, body: String) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r
}

/// SHA-256 (hex) of the arguments as compact JSON with every object's keys sorted (serde_json's
/// maps are ordered, as the result cache's keys rely on too); no arguments count as `{}`.
pub fn arguments_sha256(arguments: Option<&serde_json::Map<String, Value>>) -> String {
    let text = arguments
        .and_then(|a| serde_json::to_string(a).ok())
        .unwrap_or_else(|| "{}".to_string());
    to_hex(&Sha256::digest(text.as_bytes()))
}

/// `2026-11-29T13:21:40.123Z`.
fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn canonical_arguments_ignore_key_order() -> Result<(), serde_json::Error> {
        let a: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "s"}], "a": null}"#)?;
        let b: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"a": null, "b": [1, {"x": "s", "y": 2}]}"#)?;
        assert_eq!(arguments_sha256(Some(&a)), arguments_sha256(Some(&b)));
        let text = r#"{"a":null,"b":[1,{"x":"s","y":2}]}"#;
        assert_eq!(
            arguments_sha256(Some(&a)),
            to_hex(&Sha256::digest(text.as_bytes()))
        );
        assert_eq!(arguments_sha256(None), to_hex(&Sha256::digest(b"{}")));
        Ok(())
    }

    #[test]
    fn buckets_refill_at_the_rate() {
        let l = Limiter {
            rate: 2.0,
            burst: 2.0,
            buckets: Mutex::default(),
        };
        assert!(l.take_here("a").is_ok());
        assert!(l.take_here("a").is_ok());
        assert_eq!(l.take_here("a"), Err(1));
        assert!(l.take_here("b").is_ok());
    }

    #[test]
    fn sha256_hex_parses() {
        let d: [u8; 32] = Sha256::digest(b"x").into();
        assert_eq!(parse_sha256(&to_hex(&d)), Some(d));
        assert_eq!(parse_sha256("zz"), None);
    }

    #[test]
    fn a_bad_tokens_file_is_not_quoted_back() {
        let dir = std::env::temp_dir().join(format!("tokens-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("tokens.toml");
        let written = std::fs::write(&path, "[[clients]]\nname = \"a\"\ntoken = s3cret-value\n");
        assert!(written.is_ok(), "{written:?}");
        let e = super::load_tokens(&path).err().unwrap_or_default();
        assert!(e.contains("at line 3") && !e.contains("s3cret"), "{e}");
        let e = super::load_tokens(std::path::Path::new("/dev/zero"))
            .err()
            .unwrap_or_default();
        assert!(e.ends_with("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
