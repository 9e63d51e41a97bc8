//! Command line, logging and transports shared by every server binary.
//!
//! Every server runs over stdio by default (what MCP hosts launch) or over streamable HTTP
//! with `--http ADDR`. Logs go to stderr only: on stdio, stdout is the protocol channel.

use crate::Roots;
use clap::Args;
use rmcp::transport::streamable_http_server::session::SessionStore;
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
    /// rebinding.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
}

impl CommonArgs {
    pub fn roots(&self) -> Result<Roots, String> {
        Roots::new(&self.roots)
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
    match args.http {
        None => {
            let service = factory()
                .serve(rmcp::transport::io::stdio_pipes())
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

async fn serve_http<S, F>(
    addr: SocketAddr,
    allowed_hosts: &[String],
    factory: F,
    http: HttpSetup,
) -> Result<(), String>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let HttpSetup {
        gateway,
        session_store,
    } = http;
    let mut config = StreamableHttpServerConfig::default();
    config.session_store = session_store;
    for host in std::iter::once(addr.ip().to_string()).chain(allowed_hosts.iter().cloned()) {
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
            let answer: HttpFuture = if let Some(refusal) = origins.refusal(&request) {
                Box::pin(async move { refusal })
            } else if let Some(gateway) = &gateway {
                let service = service.clone();
                let next = Next(Box::new(move |request| {
                    Box::pin(async move { service.handle(request).await })
                }));
                gateway.clone().handle(peer, request, next)
            } else {
                let service = service.clone();
                Box::pin(async move { service.handle(request).await })
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
        let allowed =
            allowed_hosts
                .iter()
                .map(|a| match hyper::http::uri::Authority::try_from(a.trim()) {
                    Ok(auth) => (normal_host(auth.host()), auth.port_u16()),
                    Err(_) => (normal_host(a), None),
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

/// A host as compared: lower case, an IPv6 address without its brackets.
fn normal_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// A 403 whose plain-text body says why.
fn forbidden(text: String) -> HttpResponse {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(hyper::body::Bytes::from(text)).boxed();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
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

#[cfg(test)]
mod tests {
    use super::OriginCheck;

    #[test]
    fn origins_of_this_machine_and_allowed_hosts_pass() {
        let addr = "192.0.2.7:8931"
            .parse()
            .unwrap_or(([127, 0, 0, 1], 8931).into());
        let check = OriginCheck::new(addr, &["mcp.example.org".into(), "Proxy.lan:8443".into()]);
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:8931",
            "http://[::1]",
            "https://LOCALHOST",
            "http://192.0.2.7:8931",
            "https://mcp.example.org",
            "https://proxy.lan:8443",
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
        ] {
            assert!(!check.accepts(refused), "{refused}");
        }
    }
}
