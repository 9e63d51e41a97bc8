//! The `Origin` check of the streamable HTTP endpoint, through `serve::run_with` on a real
//! loopback socket, plain and behind a gateway: a browser page of another site (DNS
//! rebinding) is refused with 403 before the gateway or the MCP service sees its request;
//! a loopback origin and a request without `Origin` are served.

use mcp_common::serve::{CommonArgs, Gateway, HttpFuture, HttpRequest, HttpSetup, Next, run_with};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Serves on a free loopback port in this runtime; the address once it listens.
async fn start(gateway: bool) -> Result<SocketAddr, Error> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let args = CommonArgs {
        http: Some(addr),
        roots: Vec::new(),
        allowed_hosts: Vec::new(),
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

/// One raw HTTP/1.1 request (`Connection: close`), on a blocking thread: the status and,
/// for anything but 200 (whose SSE stream may stay open), the body.
async fn request(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    origin: Option<String>,
) -> Result<(u16, String), Error> {
    tokio::task::spawn_blocking(move || -> Result<(u16, String), Error> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = if method == "POST" { INIT } else { "" };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        if let Some(o) = origin {
            head.push_str(&format!("Origin: {o}\r\n"));
        }
        s.write_all(format!("{head}\r\n{body}").as_bytes())?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let split = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(format!("no full answer: {}", String::from_utf8_lossy(&got)).into());
            }
            got.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&got[..split]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| format!("no status in {head}"))?
            .parse()?;
        if status == 200 {
            return Ok((status, String::new()));
        }
        let mut rest = got[split + 4..].to_vec();
        s.read_to_end(&mut rest)?;
        Ok((status, String::from_utf8_lossy(&rest).into_owned()))
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
