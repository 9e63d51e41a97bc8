//! The `Origin` check of the streamable HTTP endpoint, through `serve::run_with` on a real
//! loopback socket, plain and behind a gateway: a browser page of another site (DNS
//! rebinding) is refused with 403 before the gateway or the MCP service sees its request;
//! a loopback origin and a request without `Origin` are served.

use mcp_common::serve::{CommonArgs, Gateway, HttpFuture, HttpRequest, HttpSetup, Next, run_with};
use mcp_testkit::{INITIALIZE_BODY, raw_http};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A server with nothing but `initialize`.
struct Empty;
impl rmcp::ServerHandler for Empty {}

/// Answers GET /health itself and passes everything else on, like the coordinator's.
struct HealthGateway;
impl Gateway for HealthGateway {
    fn handle(self: Arc<Self>, _peer: SocketAddr, request: HttpRequest, next: Next) -> HttpFuture {
        if request.uri().path() == "/health" {
            use http_body_util::BodyExt;
            let body = http_body_util::Full::new(hyper::body::Bytes::from("ok")).boxed();
            return Box::pin(async move { hyper::Response::new(body) });
        }
        next.run(request)
    }
}

/// Serves on a free loopback port in this runtime; the address once it listens.
async fn start(gateway: bool) -> Result<SocketAddr, Error> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let args = CommonArgs {
        http: Some(addr),
        roots: Vec::new(),
        allowed_hosts: Vec::new(),
        quarantine: None,
    };
    let setup = HttpSetup {
        gateway: gateway.then(|| Arc::new(HealthGateway) as Arc<dyn Gateway>),
        session_store: None,
    };
    tokio::spawn(async move {
        if let Err(e) = run_with(&args, || Empty, setup).await {
            eprintln!("server: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err("the server never listened".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(addr)
}

/// One raw HTTP/1.1 request on a blocking thread: the status and, for anything but 200
/// (whose SSE stream may stay open), the body.
async fn request(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    origin: Option<String>,
) -> Result<(u16, String), Error> {
    tokio::task::spawn_blocking(move || {
        let body = if method == "POST" {
            INITIALIZE_BODY
        } else {
            ""
        };
        raw_http(&addr.to_string(), method, path, origin.as_deref(), body)
    })
    .await?
}

/// The three cases every endpoint must answer the same way.
async fn check(addr: SocketAddr) -> Result<(), Error> {
    let (status, body) = request(addr, "POST", "/", Some("http://evil.example".into())).await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("Origin `http://evil.example`") && body.contains("DNS rebinding"),
        "{body}"
    );
    assert!(body.len() < 1024, "{}", body.len());
    let local = format!("http://127.0.0.1:{}", addr.port());
    let (status, body) = request(addr, "POST", "/", Some(local)).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(addr, "POST", "/", Some("http://localhost:5173".into())).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(addr, "POST", "/", None).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_on_the_plain_endpoint() -> Result<(), Error> {
    check(start(false).await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_before_the_gateway() -> Result<(), Error> {
    let addr = start(true).await?;
    check(addr).await?;
    // The gateway's own routes are behind the check too.
    let (status, body) = request(addr, "GET", "/health", None).await?;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = request(
        addr,
        "GET",
        "/health",
        Some("https://evil.example:443".into()),
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    Ok(())
}
