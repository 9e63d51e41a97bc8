//! Command line, logging and transports shared by every server binary.
//!
//! Every server runs over stdio by default (what MCP hosts launch) or over streamable HTTP
//! with `--http ADDR`. Logs go to stderr only: on stdio, stdout is the protocol channel.

use crate::Roots;
pub use crate::any_server::AnyServer;
use crate::jsonrpc::{self, Checked, MAX_MESSAGE_BYTES, Refusal};
use clap::Args;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::{SessionManager, SessionStore};
use rmcp::{ServerHandler, ServiceExt};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// An HTTP request as the MCP endpoint receives it.
pub type HttpRequest = hyper::Request<hyper::body::Incoming>;
/// The body of every HTTP response (rmcp's own type).
pub type HttpBody = http_body_util::combinators::BoxBody<hyper::body::Bytes, Infallible>;
pub type HttpResponse = hyper::Response<HttpBody>;
pub type HttpFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;

/// The MCP endpoint behind a [`Gateway`]: hands it the request to answer.
pub struct Next(Box<dyn FnOnce(HttpRequest) -> HttpFuture + Send>);

impl Next {
    pub fn run(self, request: HttpRequest) -> HttpFuture {
        (self.0)(request)
    }
}

/// Sits in front of the MCP endpoint over HTTP (auth, rate limits, extra routes, ...): sees
/// every request with the peer's address and either answers it itself or passes it on with
/// `next` (possibly with request extensions added, which reach the handler's
/// `RequestContext.extensions` inside `http::request::Parts`).
pub trait Gateway: Send + Sync + 'static {
    fn handle(self: Arc<Self>, peer: SocketAddr, request: HttpRequest, next: Next) -> HttpFuture;

    /// Whether the gateway serves browser pages at `path` itself, with its own defence
    /// against cross-site requests (same-site cookies, CSRF tokens): the `Origin` check is
    /// then left to it (a page sent with `Referrer-Policy: no-referrer` posts its forms with
    /// `Origin: null`).
    fn serves_browsers_at(&self, _path: &str) -> bool {
        false
    }
}

/// Flags every server accepts.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Serve MCP over streamable HTTP on this address (e.g. 127.0.0.1:8931) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A directory whose files the tools may read (repeatable; default: the working directory).
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// With --http: another `Host` header (and host a browser's `Origin` may name) to accept
    /// besides loopback and the listening address, e.g. the public name a reverse proxy
    /// passes on (repeatable; `host` or `host:port`). Others are refused (403), against DNS
    /// rebinding. `--allowed-origin` is the same list, spelt for a browser page's origin
    /// (`https://dash.example` accepts that host on that scheme's port).
    #[arg(
        long = "allowed-host",
        visible_alias = "allowed-origin",
        value_name = "HOST"
    )]
    pub allowed_hosts: Vec<String>,
    /// The coordinator's quarantine directory: `quarantine://<sha256>` names its files
    /// (default: $MCP_QUARANTINE, which the coordinator sets for its children).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
}

impl CommonArgs {
    pub fn roots(&self) -> Result<Roots, String> {
        let roots = Roots::new(&self.roots)?;
        let from_env = || {
            std::env::var_os("MCP_QUARANTINE")
                .map(PathBuf::from)
                .filter(|d| d.is_dir())
        };
        match self.quarantine.clone().or_else(from_env) {
            Some(dir) => roots.with_quarantine(&dir),
            None => Ok(roots),
        }
    }
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// What a server adds to its HTTP endpoint beyond rmcp's defaults (nothing on stdio).
#[derive(Default)]
pub struct HttpSetup {
    /// Sits in front of the endpoint: auth, rate limits, extra routes.
    pub gateway: Option<Arc<dyn Gateway>>,
    /// Keeps each session's `initialize` where every instance behind one address finds it,
    /// so that a request reaching another instance continues the session there.
    pub session_store: Option<Arc<dyn SessionStore>>,
}

/// Makes a server per connection (stdio: one; HTTP: one per session), as the one type the
/// serving code is compiled for ([`AnyServer`]).
pub type ServerFactory = Arc<dyn Fn() -> AnyServer + Send + Sync>;

/// Runs a server until its client goes away (stdio) or forever (HTTP).
pub async fn run<S, F>(args: &CommonArgs, factory: F) -> Result<(), String>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    run_with(args, factory, HttpSetup::default()).await
}

/// Like [`run`], with additions to the HTTP endpoint.
pub async fn run_with<S, F>(args: &CommonArgs, factory: F, http: HttpSetup) -> Result<(), String>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    run_any(args, Arc::new(move || AnyServer::new(factory())), http).await
}

/// [`run_with`] for a server already made [`AnyServer`]. Neither generic nor `async`: the
/// future is boxed here, so its code (rmcp's protocol loop, the HTTP service, hyper, the
/// tasks) is compiled in this crate once, not in every program that awaits it.
pub fn run_any(
    args: &CommonArgs,
    factory: ServerFactory,
    http: HttpSetup,
) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
    Box::pin(async move {
        match args.http {
            None => {
                let (read, write) = rmcp::transport::io::stdio_pipes();
                let service = factory()
                    .serve(LineTransport::new(read, write))
                    .await
                    .map_err(|e| format!("MCP initialisation over stdio failed: {e}"))?;
                service
                    .waiting()
                    .await
                    .map_err(|e| format!("server task failed: {e}"))?;
                Ok(())
            }
            Some(addr) => serve_http(addr, &args.allowed_hosts, factory, http).await,
        }
    })
}

/// How long a client may take to send a request's headers: a connection that trickles them
/// (slowloris) is closed instead of held open forever.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTP/1.1 connections as every server serves them.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    b
}

async fn serve_http(
    addr: SocketAddr,
    allowed_hosts: &[String],
    factory: ServerFactory,
    http: HttpSetup,
) -> Result<(), String> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, session::local::LocalSessionManager,
    };
    let HttpSetup {
        gateway,
        session_store,
    } = http;
    let mut config = StreamableHttpServerConfig::default();
    config.session_store = session_store;
    // One cap for both transports; bodies over it are answered by `checked` first.
    config.max_request_body_bytes = MAX_MESSAGE_BYTES;
    let named = allowed_hosts.iter().map(|a| host_part(a).to_string());
    for host in std::iter::once(addr.ip().to_string()).chain(named) {
        if !config.allowed_hosts.contains(&host) {
            config.allowed_hosts.push(host);
        }
    }
    let service = StreamableHttpService::new(
        move || Ok(factory()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let origins = Arc::new(OriginCheck::new(addr, allowed_hosts));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "serving MCP over streamable HTTP at /");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        // Small answers go out at once: without this, a response written as headers then
        // body waits for the peer's delayed ACK (about 40 ms a call on keep-alive).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let io = hyper_util::rt::TokioIo::new(stream);
        let (service, gateway, origins) = (service.clone(), gateway.clone(), origins.clone());
        let svc = hyper::service::service_fn(move |request: HttpRequest| {
            // A browser page of another site is refused before anything (gateway routes
            // included) sees its request.
            let own = gateway
                .as_ref()
                .is_some_and(|g| g.serves_browsers_at(request.uri().path()));
            let refused = if own { None } else { origins.refusal(&request) };
            let answer: HttpFuture = if let Some(refusal) = refused {
                Box::pin(async move { refusal })
            } else if let Some(gateway) = &gateway {
                let service = service.clone();
                let next = Next(Box::new(move |request| Box::pin(checked(service, request))));
                gateway.clone().handle(peer, request, next)
            } else {
                Box::pin(checked(service.clone(), request))
            };
            async move { Ok::<_, Infallible>(answer.await) }
        });
        spawn_connection(peer, http1().serve_connection(io, svc));
    }
}

/// The `Origin` check the MCP transport asks for against DNS rebinding: a request whose
/// `Origin` names a host other than loopback, the listening address or an allowed host
/// comes from a browser page of some other site and is refused (403). Requests without
/// `Origin` (every non-browser client) pass; rmcp's own `allowed_origins` would need every
/// accepted origin spelt out with scheme and port.
struct OriginCheck {
    /// Accepted hosts, lower case without brackets, each with the port it requires if any.
    hosts: Vec<(String, Option<u16>)>,
}

impl OriginCheck {
    fn new(addr: SocketAddr, allowed_hosts: &[String]) -> Self {
        let fixed = ["localhost", "127.0.0.1", "::1"]
            .map(String::from)
            .into_iter()
            .chain(std::iter::once(addr.ip().to_string()))
            .map(|h| (h, None));
        let allowed = allowed_hosts.iter().map(|a| {
            match hyper::http::uri::Authority::try_from(host_part(a)) {
                Ok(auth) => (normal_host(auth.host()), auth.port_u16().or(scheme_port(a))),
                Err(_) => (normal_host(a), None),
            }
        });
        Self {
            hosts: fixed.chain(allowed).collect(),
        }
    }

    /// The 403 answer for a request with a foreign (or unreadable) `Origin`, else `None`.
    fn refusal(&self, request: &HttpRequest) -> Option<HttpResponse> {
        let refused = request
            .headers()
            .get_all(hyper::header::ORIGIN)
            .iter()
            .find(|v| !v.to_str().is_ok_and(|o| self.accepts(o)))?;
        let shown = crate::error::quoted(&String::from_utf8_lossy(refused.as_bytes()));
        tracing::debug!(origin = %shown, "request with a foreign Origin refused");
        let text = format!(
            "403 Forbidden: Origin `{shown}` is not accepted: this MCP endpoint answers \
             browser pages of localhost, 127.0.0.1, [::1], its listening address or an \
             --allowed-host only (against DNS rebinding)\n"
        );
        Some(forbidden(text))
    }

    /// Whether a browser page of `origin` (`scheme://host[:port]`) may call the endpoint.
    fn accepts(&self, origin: &str) -> bool {
        let Ok(uri) = hyper::Uri::try_from(origin.trim()) else {
            return false;
        };
        let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        let host = normal_host(auth.host());
        let port = auth.port_u16().or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        self.hosts
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| Some(p) == port))
    }
}

/// The `host[:port]` of an `--allowed-host` entry, which may be spelt as an origin
/// (`https://dash.example`).
fn host_part(entry: &str) -> &str {
    let entry = entry.trim();
    entry
        .split_once("://")
        .map_or(entry, |(_, rest)| rest.trim_end_matches('/'))
}

/// The port an entry spelt as an origin implies by its scheme (none for a bare host, which
/// then accepts any port).
fn scheme_port(entry: &str) -> Option<u16> {
    match entry
        .trim()
        .split_once("://")?
        .0
        .to_ascii_lowercase()
        .as_str()
    {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// A host as compared: lower case, an IPv6 address without its brackets.
fn normal_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// A 403 whose plain-text body says why.
fn forbidden(text: String) -> HttpResponse {
    plain_answer(hyper::StatusCode::FORBIDDEN, text)
}

/// Serves one HTTP connection in its own task; how it ended is logged at debug level.
fn spawn_connection<E: std::fmt::Display>(
    peer: SocketAddr,
    connection: impl Future<Output = Result<(), E>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
        }
    });
}

/// Answers a POST whose body is not one valid JSON-RPC message itself (400 with the JSON-RPC
/// error: rmcp would answer 415 with plain text, and -32601 for a `tools/call` whose
/// `arguments` are not an object) and one over [`MAX_MESSAGE_BYTES`] (413); hands the rest
/// to rmcp with the body as it came.
async fn checked<M: SessionManager>(
    service: StreamableHttpService<AnyServer, M>,
    request: HttpRequest,
) -> HttpResponse {
    use http_body_util::BodyExt;
    let is_json = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    // Other methods and media types are rmcp's to answer (405, 415, ...).
    if request.method() != hyper::Method::POST || !is_json {
        return service.handle(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_MESSAGE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return json_rpc_error(
                hyper::StatusCode::PAYLOAD_TOO_LARGE,
                &Refusal::oversized(None),
            );
        }
        Err(e) => {
            return plain_answer(
                hyper::StatusCode::BAD_REQUEST,
                format!("400 Bad Request: the request body could not be read: {e}\n"),
            );
        }
    };
    match jsonrpc::check(&bytes) {
        Checked::Message(_) => {
            let body = http_body_util::Full::new(bytes);
            service
                .handle(hyper::Request::from_parts(parts, body))
                .await
        }
        Checked::Refused(refusal) => json_rpc_error(hyper::StatusCode::BAD_REQUEST, &refusal),
        Checked::Dropped(why) => {
            tracing::debug!(%why, "message dropped");
            let mut response = plain_answer(hyper::StatusCode::ACCEPTED, String::new());
            response.headers_mut().remove(hyper::header::CONTENT_TYPE);
            response
        }
    }
}

/// An HTTP answer carrying a JSON-RPC error.
fn json_rpc_error(status: hyper::StatusCode, refusal: &Refusal) -> HttpResponse {
    tracing::debug!(code = refusal.code.0, message = %refusal.message, "message refused");
    answer(status, "application/json", refusal.to_json().to_string())
}

/// An HTTP answer whose plain-text body says why.
fn plain_answer(status: hyper::StatusCode, text: String) -> HttpResponse {
    answer(status, "text/plain; charset=utf-8", text)
}

fn answer(status: hyper::StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(hyper::body::Bytes::from(body)).boxed();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// Lines written ahead of stdout before a sender waits: enough for a burst of answers.
const OUTGOING_QUEUE: usize = 64;
/// How long closing waits for queued answers to reach a client that has stopped reading.
const CLOSE_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

enum Outgoing {
    Line(Vec<u8>),
    /// Written everything before this: say so and stop.
    Close(tokio::sync::oneshot::Sender<()>),
}

/// MCP over newline-delimited JSON (stdio) where every line gets an answer: each line
/// passes [`jsonrpc::check`] and one that cannot be taken is answered with its JSON-RPC
/// error (rmcp's own transport drops what does not parse), lines over
/// [`MAX_MESSAGE_BYTES`] included, without ever holding more than that.
///
/// One task writes every outgoing line, rmcp's answers and these errors alike, each whole:
/// two writers can never interleave parts of lines, and a send or receive that is cancelled
/// (rmcp polls `receive` in a `select!`) never leaves half a line on the wire.
pub struct LineTransport<R> {
    read: tokio::io::BufReader<R>,
    /// The line being read; kept across cancelled reads.
    line: Vec<u8>,
    /// Skipping the rest of an oversized line up to its newline.
    discarding: bool,
    /// An error answer not yet queued for writing (kept across a cancelled receive).
    pending: Option<Vec<u8>>,
    out: tokio::sync::mpsc::Sender<Outgoing>,
}

/// Outcome of reading one line.
enum LineRead {
    Line,
    Oversized,
    Eof,
    Failed(std::io::Error),
}

impl<R: tokio::io::AsyncRead + Send + Unpin> LineTransport<R> {
    /// Reads lines from `read`, writes lines to `write` from a task of its own (so this must
    /// be called inside a Tokio runtime).
    pub fn new<W>(read: R, write: W) -> Self
    where
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (out, lines) = tokio::sync::mpsc::channel(OUTGOING_QUEUE);
        tokio::spawn(write_lines(write, lines));
        Self {
            read: tokio::io::BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            pending: None,
            out,
        }
    }

    /// Reads one `\n`-terminated line into `self.line`, never letting it grow past
    /// [`MAX_MESSAGE_BYTES`]. Cancel-safe: bytes are moved from the reader's buffer to
    /// `self.line` with no await in between, so a dropped read resumes where it stopped.
    async fn read_line(&mut self) -> LineRead {
        use tokio::io::AsyncBufReadExt;
        loop {
            let (taken, done) = {
                let available = match self.read.fill_buf().await {
                    Ok(available) => available,
                    Err(e) => return LineRead::Failed(e),
                };
                if available.is_empty() {
                    return LineRead::Eof;
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                if self.discarding {
                    if newline.is_some() {
                        self.discarding = false;
                    }
                    (take, None)
                } else if self.line.len().saturating_add(take) > MAX_MESSAGE_BYTES {
                    self.line.clear();
                    self.discarding = newline.is_none();
                    (take, Some(LineRead::Oversized))
                } else {
                    self.line.extend_from_slice(&available[..take]);
                    (take, newline.map(|_| LineRead::Line))
                }
            };
            self.read.consume(taken);
            if let Some(done) = done {
                return done;
            }
        }
    }
}

impl<R: tokio::io::AsyncRead + Send + Unpin> rmcp::transport::Transport<rmcp::RoleServer>
    for LineTransport<R>
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<rmcp::RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        let line = serde_json::to_vec(&item);
        async move {
            let mut line = line.map_err(std::io::Error::other)?;
            line.push(b'\n');
            out.send(Outgoing::Line(line))
                .await
                .map_err(|_| writer_gone())
        }
    }

    async fn receive(&mut self) -> Option<rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>> {
        loop {
            if self.pending.is_some() {
                let permit = self.out.reserve().await.ok()?;
                if let Some(line) = self.pending.take() {
                    permit.send(Outgoing::Line(line));
                }
            }
            match self.read_line().await {
                LineRead::Line => {}
                LineRead::Oversized => {
                    tracing::warn!(cap = MAX_MESSAGE_BYTES, "oversized line refused");
                    self.pending = Some(Refusal::oversized(None).to_line());
                    continue;
                }
                LineRead::Eof => return None,
                LineRead::Failed(e) => {
                    tracing::error!(error = %e, "cannot read stdin");
                    return None;
                }
            }
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let verdict = if line.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(jsonrpc::check(line))
            };
            self.line.clear();
            // A huge line's buffer is not kept for the small ones that follow.
            self.line.shrink_to(64 * 1024);
            match verdict {
                None => {}
                Some(Checked::Message(message)) => return Some(*message),
                Some(Checked::Dropped(why)) => tracing::debug!(%why, "message dropped"),
                Some(Checked::Refused(refusal)) => {
                    tracing::debug!(code = refusal.code.0, message = %refusal.message, "message refused");
                    self.pending = Some(refusal.to_line());
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.out.send(Outgoing::Close(done)).await.is_ok()
            && tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, written)
                .await
                .is_err()
        {
            tracing::warn!("stdout still blocked at close; queued answers dropped");
        }
        Ok(())
    }
}

fn writer_gone() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the stdout writer has stopped",
    )
}

/// The one writer of a [`LineTransport`]'s output: each line whole, flushed.
async fn write_lines<W>(mut write: W, mut lines: tokio::sync::mpsc::Receiver<Outgoing>)
where
    W: tokio::io::AsyncWrite + Send + Unpin,
{
    use tokio::io::AsyncWriteExt;
    while let Some(item) = lines.recv().await {
        match item {
            Outgoing::Line(line) => {
                let written = match write.write_all(&line).await {
                    Ok(()) => write.flush().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    tracing::error!(error = %e, "cannot write stdout");
                    return;
                }
            }
            Outgoing::Close(done) => {
                let _ = write.shutdown().await;
                let _ = done.send(());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OriginCheck;

    #[test]
    fn origins_of_this_machine_and_allowed_hosts_pass() {
        let addr = "192.0.2.7:8931"
            .parse()
            .unwrap_or(([127, 0, 0, 1], 8931).into());
        let check = OriginCheck::new(
            addr,
            &[
                "mcp.example.org".into(),
                "Proxy.lan:8443".into(),
                "https://dash.example/".into(),
            ],
        );
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:8931",
            "http://[::1]",
            "https://LOCALHOST",
            "http://192.0.2.7:8931",
            "https://mcp.example.org",
            "https://proxy.lan:8443",
            "https://dash.example",
            "https://dash.example:443",
        ] {
            assert!(check.accepts(ok), "{ok}");
        }
        for refused in [
            "http://evil.example",
            "http://localhost.evil.example",
            "https://proxy.lan",
            "null",
            "",
            "localhost",
            "http://127.0.0.2",
            "http://dash.example",
            "https://dash.example:8443",
        ] {
            assert!(!check.accepts(refused), "{refused}");
        }
    }
}
