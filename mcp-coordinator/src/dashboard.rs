//! The web dashboard under `/ui/`, served by the gateway on the coordinator's HTTP address:
//! the servers and their calls, the findings (searched, one by one with its neighbourhood
//! drawn, exported), the character analyses as sheets, and a live page fed by server-sent
//! events. Pages are rendered here from the same state the MCP tools read; every text that
//! came from a game, a file or a packet is escaped.
//!
//! A browser logs in with a token the gateway accepts (a tokens-file token or a JWT) and gets
//! a session cookie (HttpOnly, SameSite=Strict, Secure behind TLS, 8 hours); every form that
//! changes state carries the session's CSRF token. With auth off the dashboard answers
//! loopback peers only. Every answer carries a Content-Security-Policy of `default-src
//! 'self'`, `X-Frame-Options: DENY`, `nosniff` and `no-referrer`; the stylesheet and the live
//! page's script are built into the binary.

use crate::findings::{Finding, Link, Query, Store};
use crate::gateway::Gateway;
use crate::report::{escape_html as esc, time};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, HeaderValue, LOCATION, SET_COOKIE,
};
use hyper::{Method, StatusCode};
use mcp_common::serve::{HttpRequest, HttpResponse};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a session lasts.
const SESSION: Duration = Duration::from_secs(8 * 3600);
/// The session cookie's name.
const COOKIE_NAME: &str = "mcp_ui";
/// The sign-in form's cookie (its token also in the form).
const LOGIN_COOKIE: &str = "mcp_ui_login";
/// The largest form a browser may post (a login form, a logout).
const MAX_FORM: usize = 16 * 1024;
/// Findings per page of the list.
const PER_PAGE: usize = 50;
/// The most findings an export holds.
const MAX_EXPORT: usize = 1000;
/// The pages' icon (so that a browser asks for no /favicon.ico, which is not the dashboard's).
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><circle cx=\"8\" cy=\"8\" r=\"7\" fill=\"#4a7ab5\"/></svg>";
/// The live page's script (EventSource; text set with textContent, never as HTML).
const LIVE_JS: &str = include_str!("../ui/live.js");

struct Session {
    client: String,
    csrf: String,
    expires: Instant,
}

pub struct Dashboard {
    store: Arc<Store>,
    sessions: Mutex<HashMap<String, Session>>,
    /// With --redis-url, sessions are kept there too, so that every coordinator behind one
    /// address knows them.
    redis: Option<Arc<crate::shared::SharedRedis>>,
    /// Behind TLS (`--ui-secure-cookie`, or a proxy saying `X-Forwarded-Proto: https`): the
    /// cookie is marked Secure.
    secure: bool,
}

/// Who is looking, and the token their forms must carry.
struct Viewer {
    client: String,
    csrf: String,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    // The kernel's generator; a failure leaves no usable session rather than a guessable one.
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if ok.is_err() {
        return String::new();
    }
    mcp_common::bytes::to_hex(&b)
}

fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn redirect(to: &str) -> HttpResponse {
    let mut r = response(StatusCode::SEE_OTHER, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The headers every dashboard answer carries.
fn secured(mut r: HttpResponse) -> HttpResponse {
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The decoded `key=value` pairs of a query string or a form.
fn pairs(text: &str) -> HashMap<String, String> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn page(title: &str, viewer: &Viewer, body: &str) -> HttpResponse {
    let logout = if viewer.csrf.is_empty() {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/ui/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Sign out {}</button></form>",
            esc(&viewer.csrf),
            esc(&viewer.client)
        )
    };
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - mcp-suite</title>\
         <link rel=\"stylesheet\" href=\"/ui/style.css\"><link rel=\"icon\" href=\"/ui/icon.svg\"></head><body><nav>\
         <a href=\"/ui/\">Overview</a> <a href=\"/ui/findings\">Findings</a> \
         <a href=\"/ui/analyses\">Analyses</a> <a href=\"/ui/sandboxes\">Sandboxes</a> \
         <a href=\"/ui/live\">Live</a>{logout}</nav>{body}</body></html>",
        esc(title)
    );
    response(StatusCode::OK, "text/html; charset=utf-8", html)
}

impl Dashboard {
    pub fn new(store: Arc<Store>, secure: bool) -> Self {
        Self {
            store,
            sessions: Mutex::default(),
            redis: None,
            secure,
        }
    }

    /// Sessions also in this Redis, shared with the other coordinators using it.
    pub fn with_redis(mut self, redis: Option<Arc<crate::shared::SharedRedis>>) -> Self {
        self.redis = redis;
        self
    }

    fn redis_key(id: &str) -> String {
        format!("mcp:ui:session:{id}")
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session a request's cookie names, if it is live: this process's, else one
    /// another coordinator keeps in the shared Redis.
    async fn viewer(&self, request: &HttpRequest) -> Option<Viewer> {
        let id = cookie_value(request, COOKIE_NAME)?;
        {
            let mut sessions = self.sessions();
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if let Some(s) = sessions.get(&id) {
                return Some(Viewer {
                    client: s.client.clone(),
                    csrf: s.csrf.clone(),
                });
            }
        }
        let redis = self.redis.as_ref()?;
        let cmd = redis::cmd("GET").arg(Self::redis_key(&id)).to_owned();
        let text = redis
            .query::<Option<String>>("ui session GET", &cmd)
            .await??;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(Viewer {
            client: v["client"].as_str()?.to_string(),
            csrf: v["csrf"].as_str()?.to_string(),
        })
    }

    /// Whether the browser came over TLS (then cookies are marked Secure).
    fn tls(&self, request: &HttpRequest) -> bool {
        self.secure
            || request
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"))
    }

    /// A cookie of the dashboard's (`Path=/ui`, HttpOnly, SameSite=Strict).
    fn cookie(tls: bool, name: &str, value: &str, max_age: u64) -> String {
        format!(
            "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if tls { "; Secure" } else { "" }
        )
    }

    pub async fn handle(
        &self,
        gw: &Gateway,
        peer: SocketAddr,
        request: HttpRequest,
    ) -> HttpResponse {
        secured(self.route(gw, peer, request).await)
    }

    async fn route(&self, gw: &Gateway, peer: SocketAddr, request: HttpRequest) -> HttpResponse {
        let path = request.uri().path().to_string();
        let query = pairs(request.uri().query().unwrap_or(""));
        let method = request.method().clone();
        if method == Method::GET && path == "/ui/style.css" {
            return response(
                StatusCode::OK,
                "text/css",
                crate::report::STYLE.to_string() + NAV_STYLE,
            );
        }
        if method == Method::GET && path == "/ui/icon.svg" {
            return response(StatusCode::OK, "image/svg+xml", ICON);
        }
        if method == Method::GET && path == "/ui/live.js" {
            return response(StatusCode::OK, "text/javascript", LIVE_JS);
        }
        let viewer = if gw.auth_on() {
            if path == "/ui/login" {
                return self.login(gw, &method, request).await;
            }
            match self.viewer(&request).await {
                Some(v) => v,
                None => return redirect("/ui/login"),
            }
        } else if peer.ip().is_loopback() {
            Viewer {
                client: peer.ip().to_string(),
                csrf: String::new(),
            }
        } else {
            return response(
                StatusCode::FORBIDDEN,
                "text/plain",
                "the dashboard without auth answers loopback only: give --auth-tokens or --jwt-secret",
            );
        };
        match (method, path.as_str()) {
            (Method::POST, "/ui/logout") => self.logout(&viewer, request).await,
            (Method::GET, "/ui" | "/ui/") => self.overview(gw, &viewer),
            (Method::GET, "/ui/findings") => self.findings(&viewer, &query).await,
            (Method::GET, "/ui/export") => self.export(&query).await,
            (Method::GET, "/ui/analyses") => self.analyses(&viewer).await,
            (Method::GET, "/ui/live") => live_page(&viewer),
            (Method::GET, "/ui/sandboxes") => sandboxes(gw, &viewer).await,
            (Method::GET, "/ui/events") => events(gw),
            (Method::GET, p) if p.starts_with("/ui/findings/") => {
                self.finding(&viewer, &p["/ui/findings/".len()..]).await
            }
            (Method::GET, p) if p.starts_with("/ui/analyses/") => {
                self.analysis(&viewer, &p["/ui/analyses/".len()..]).await
            }
            _ => response(StatusCode::NOT_FOUND, "text/plain", "no such page"),
        }
    }

    async fn login(&self, gw: &Gateway, method: &Method, request: HttpRequest) -> HttpResponse {
        // Against login CSRF: the form carries a token that is also a SameSite=Strict cookie,
        // which a page of another site cannot make the browser send.
        let form = |message: &str, token: &str| {
            format!(
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in - mcp-suite</title>\
                 <link rel=\"stylesheet\" href=\"/ui/style.css\"><link rel=\"icon\" href=\"/ui/icon.svg\"></head><body><h1>mcp-suite</h1>{}\
                 <form method=\"post\" action=\"/ui/login\"><input type=\"hidden\" name=\"login\" value=\"{}\">\
                 <label>Token <input type=\"password\" name=\"token\" autocomplete=\"off\" autofocus></label> \
                 <button type=\"submit\">Sign in</button></form></body></html>",
                if message.is_empty() {
                    String::new()
                } else {
                    format!("<p class=\"error\">{}</p>", esc(message))
                },
                esc(token)
            )
        };
        let tls = self.tls(&request);
        // The form with a new token (200 also after a failed sign-in: a browser logs any 4xx
        // page as an error).
        let fresh_form = |message: &str| {
            let token = random_hex();
            let mut r = response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                form(message, &token),
            );
            if let Ok(v) = HeaderValue::from_str(&Self::cookie(tls, LOGIN_COOKIE, &token, 600)) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        };
        if method == Method::GET {
            return fresh_form("");
        }
        if method != Method::POST {
            return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET or POST");
        }
        let expected = cookie_value(&request, LOGIN_COOKIE);
        let Some(body) = read_form(request).await else {
            return response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "form too large",
            );
        };
        let given = body.get("login").map(String::as_str).unwrap_or("");
        if expected
            .as_deref()
            .is_none_or(|e| e.is_empty() || e.as_bytes() != given.as_bytes())
        {
            return response(
                StatusCode::FORBIDDEN,
                "text/plain",
                "the sign-in form was not this site's (open /ui/login and sign in there)",
            );
        }
        let token = body.get("token").map(String::as_str).unwrap_or("").trim();
        let client = match gw.client_of_token(token) {
            Ok(c) => c,
            Err((_, message)) => return fresh_form(&message),
        };
        let (id, csrf) = (random_hex(), random_hex());
        if id.is_empty() || csrf.is_empty() {
            return response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "no randomness",
            );
        }
        if let Some(redis) = &self.redis {
            let value = serde_json::json!({"client": client, "csrf": csrf}).to_string();
            let cmd = redis::cmd("SET")
                .arg(Self::redis_key(&id))
                .arg(value)
                .arg("EX")
                .arg(SESSION.as_secs())
                .to_owned();
            // Redis down: the session holds on this coordinator only.
            let _: Option<()> = redis.query("ui session SET", &cmd).await;
        }
        self.sessions().insert(
            id.clone(),
            Session {
                client,
                csrf,
                expires: Instant::now() + SESSION,
            },
        );
        let mut r = redirect("/ui/");
        if let Ok(v) =
            HeaderValue::from_str(&Self::cookie(tls, COOKIE_NAME, &id, SESSION.as_secs()))
        {
            r.headers_mut().insert(SET_COOKIE, v);
        }
        r
    }

    async fn logout(&self, viewer: &Viewer, request: HttpRequest) -> HttpResponse {
        let cookie_id = cookie_value(&request, COOKIE_NAME);
        let expired = Self::cookie(self.tls(&request), COOKIE_NAME, "", 0);
        let Some(body) = read_form(request).await else {
            return response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "form too large",
            );
        };
        let given = body.get("csrf").map(String::as_str).unwrap_or("");
        if viewer.csrf.is_empty() || given.as_bytes() != viewer.csrf.as_bytes() {
            return response(
                StatusCode::FORBIDDEN,
                "text/plain",
                "missing or wrong CSRF token",
            );
        }
        if let Some(id) = cookie_id {
            self.sessions().remove(&id);
            if let Some(redis) = &self.redis {
                let cmd = redis::cmd("DEL").arg(Self::redis_key(&id)).to_owned();
                let _: Option<u64> = redis.query("ui session DEL", &cmd).await;
            }
        }
        let mut r = redirect("/ui/login");
        if let Ok(v) = HeaderValue::from_str(&expired) {
            r.headers_mut().insert(SET_COOKIE, v);
        }
        r
    }

    fn overview(&self, gw: &Gateway, viewer: &Viewer) -> HttpResponse {
        let mut b = String::from(
            "<h1>Overview</h1><h2>Servers</h2><table id=\"servers\"><tr><th>server</th><th>state</th><th>restarts</th><th>calls</th><th>tools</th><th>last error</th></tr>",
        );
        for c in gw.children() {
            let s = c.status();
            let state = serde_json::to_value(s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let names: Vec<String> = c.tools().iter().map(|t| esc(&t.name)).collect();
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"state-{state}\">{state}</td><td>{}</td><td>{}</td>\
                 <td><details><summary>{}</summary>{}</details></td><td>{}</td></tr>",
                esc(&s.name),
                s.restarts,
                s.calls,
                s.tools,
                names.join(", "),
                esc(s.last_error.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</table><h2>Calls per tool</h2><table id=\"tools\"><tr><th>tool</th><th>calls</th><th>errors</th><th>error rate</th><th>mean latency</th></tr>");
        for t in gw.tool_counts() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.1} ms</td></tr>",
                esc(&t.tool),
                t.calls,
                t.errors,
                if t.calls > 0 {
                    t.errors as f64 * 100.0 / t.calls as f64
                } else {
                    0.0
                },
                t.mean_ms
            );
        }
        b.push_str("</table><h2>Priority lanes</h2><table><tr><th>server</th><th>lane</th><th>limit</th><th>running</th><th>queued</th><th>waited</th><th>longest wait</th></tr>");
        for l in gw.lanes() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3} s</td></tr>",
                esc(&l.server),
                l.lane.name(),
                l.limit,
                l.running,
                l.queued,
                l.waited,
                l.wait_s_max
            );
        }
        b.push_str("</table><h2>Recent calls (audit log)</h2>");
        let audit = gw.audit_tail(20);
        if audit.is_empty() {
            b.push_str("<p>No audit log (--audit-log FILE keeps one).</p>");
        } else {
            b.push_str("<table><tr><th>time</th><th>client</th><th>tool</th><th>outcome</th><th>ms</th></tr>");
            for a in audit {
                let text = |k: &str| {
                    esc(&a[k]
                        .as_str()
                        .map_or_else(|| a[k].to_string(), str::to_string))
                };
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    text("time"),
                    text("client"),
                    text("tool"),
                    text("outcome"),
                    text("duration_ms")
                );
            }
            b.push_str("</table>");
        }
        page("Overview", viewer, &b)
    }

    async fn query(
        &self,
        q: Query,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<Finding>), String> {
        let store = self.store.clone();
        crate::findings::blocking(move || store.query(&q, offset, limit)).await
    }

    async fn findings(&self, viewer: &Viewer, params: &HashMap<String, String>) -> HttpResponse {
        let q = search(params);
        let offset = params
            .get("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0usize);
        let (total, items) = match self.query(q, offset, PER_PAGE).await {
            Ok(r) => r,
            Err(e) => return response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
        };
        let field = |k: &str| esc(params.get(k).map(String::as_str).unwrap_or(""));
        let mut b = format!(
            "<h1>Findings</h1><form method=\"get\" action=\"/ui/findings\">\
             <input name=\"text\" placeholder=\"text\" value=\"{}\"> <input name=\"target\" placeholder=\"target\" value=\"{}\"> \
             <input name=\"kind\" placeholder=\"kind\" value=\"{}\"> <input name=\"since\" placeholder=\"since (epoch s)\" value=\"{}\"> \
             <button type=\"submit\">Search</button></form><p id=\"total\">{total} findings</p>",
            field("text"),
            field("target"),
            field("kind"),
            field("since")
        );
        let here: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().filter(|(k, _)| k.as_str() != "offset"))
            .finish();
        let _ = write!(
            b,
            "<p>Export these: <a href=\"/ui/export?{0}&amp;format=json\">JSON</a> \
             <a href=\"/ui/export?{0}&amp;format=markdown\">Markdown</a></p>\
             <table id=\"findings\"><tr><th>id</th><th>time</th><th>kind</th><th>title</th><th>target</th></tr>",
            esc(&here)
        );
        for f in &items {
            let _ = write!(
                b,
                "<tr><td><a href=\"/ui/findings/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
                esc(&f.id),
                time(f.time),
                esc(&f.kind),
                esc(&f.title),
                esc(&f.target.as_ref().map(|t| t.to_string()).unwrap_or_default())
            );
        }
        b.push_str("</table>");
        if offset > 0 {
            let _ = write!(
                b,
                "<a href=\"/ui/findings?{}&amp;offset={}\">previous</a> ",
                esc(&here),
                offset.saturating_sub(PER_PAGE)
            );
        }
        if offset + items.len() < total {
            let _ = write!(
                b,
                "<a href=\"/ui/findings?{}&amp;offset={}\">next</a>",
                esc(&here),
                offset + items.len()
            );
        }
        page("Findings", viewer, &b)
    }

    /// A finding, its links both ways and their neighbours, drawn.
    async fn neighbourhood(
        &self,
        id: &str,
    ) -> Result<Option<(Finding, Vec<Link>, Vec<Finding>)>, String> {
        let store = self.store.clone();
        let id = id.to_string();
        crate::findings::blocking(move || {
            let Some((f, links)) = store.get(&id)? else {
                return Ok(None);
            };
            let mut around = vec![f.clone()];
            for l in &links {
                let other = if l.from == id { &l.to } else { &l.from };
                if around.iter().all(|a| &a.id != other)
                    && let Some((n, _)) = store.get(other)?
                {
                    around.push(n);
                }
            }
            Ok(Some((f, links, around)))
        })
        .await
    }

    async fn finding(&self, viewer: &Viewer, id: &str) -> HttpResponse {
        let (f, links, around) = match self.neighbourhood(id).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return response(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "no finding has this id",
                );
            }
            Err(e) => return response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
        };
        let mut b = format!("<h1>{}</h1><table id=\"fields\">", esc(&f.title));
        for (k, v) in [
            ("id", f.id.clone()),
            ("time", time(f.time)),
            ("kind", f.kind.clone()),
            ("server", f.server.clone().unwrap_or_default()),
            ("tool", f.tool.clone().unwrap_or_default()),
            (
                "target",
                f.target.as_ref().map(|t| t.to_string()).unwrap_or_default(),
            ),
            ("summary", f.summary.clone().unwrap_or_default()),
        ] {
            let _ = write!(b, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
        }
        let _ = write!(
            b,
            "</table><h2>Links</h2><div id=\"graph\">{}</div><ul>",
            crate::report::graph_svg(&around, &links, Some("/ui/findings/"))
        );
        for l in &links {
            let _ = write!(
                b,
                "<li><a href=\"/ui/findings/{0}\">{0}</a> {1} <a href=\"/ui/findings/{2}\">{2}</a></li>",
                esc(&l.from),
                esc(&l.relation),
                esc(&l.to)
            );
        }
        let raw = serde_json::to_string_pretty(
            &serde_json::json!({"finding": crate::tools::bounded(f), "links": links}),
        )
        .unwrap_or_default();
        let _ = write!(
            b,
            "</ul><h2>Raw JSON</h2><pre id=\"raw\">{}</pre>",
            esc(&raw)
        );
        page("Finding", viewer, &b)
    }

    async fn export(&self, params: &HashMap<String, String>) -> HttpResponse {
        let (_, items) = match self.query(search(params), 0, MAX_EXPORT).await {
            Ok(r) => r,
            Err(e) => return response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
        };
        let markdown = params.get("format").map(String::as_str) == Some("markdown");
        let (body, kind, name) = if markdown {
            let input = crate::report::Input {
                title: "Findings",
                generated: &time(crate::findings::now()),
                findings: &items,
                links: &[],
            };
            (
                crate::report::markdown(&input),
                "text/markdown; charset=utf-8",
                "findings.md",
            )
        } else {
            let v = serde_json::to_string_pretty(&items).unwrap_or_default();
            (v, "application/json", "findings.json")
        };
        let mut r = response(StatusCode::OK, kind, body);
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            r.headers_mut().insert(CONTENT_DISPOSITION, v);
        }
        r
    }

    async fn analyses(&self, viewer: &Viewer) -> HttpResponse {
        let q = Query {
            kind: Some("character_analysis".into()),
            ..Query::default()
        };
        let (total, items) = match self.query(q, 0, PER_PAGE).await {
            Ok(r) => r,
            Err(e) => return response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
        };
        let mut b = format!(
            "<h1>Analyses</h1><p>{total} character analyses</p><table id=\"analyses\"><tr><th>analysis</th><th>time</th><th>character</th></tr>"
        );
        for f in items {
            let _ = write!(
                b,
                "<tr><td><a href=\"/ui/analyses/{0}\">{0}</a></td><td>{1}</td><td>{2}</td></tr>",
                esc(&f.id),
                time(f.time),
                esc(&f.title)
            );
        }
        b.push_str("</table>");
        page("Analyses", viewer, &b)
    }

    async fn analysis(&self, viewer: &Viewer, id: &str) -> HttpResponse {
        let store = self.store.clone();
        let root = id.to_string();
        let got =
            crate::findings::blocking(move || crate::tools::analysis_findings(&store, &root)).await;
        let (findings, links) = match got {
            Ok(r) => r,
            Err(e) => return response(StatusCode::NOT_FOUND, "text/plain", e),
        };
        let title = findings
            .iter()
            .find(|f| f.id == id)
            .map_or_else(|| id.to_string(), |f| f.title.clone());
        let generated = time(crate::findings::now());
        let input = crate::report::Input {
            title: &title,
            generated: &generated,
            findings: &findings,
            links: &links,
        };
        page("Analysis", viewer, &crate::report::html_body(&input))
    }
}

/// The page's extra rules: the navigation bar.
const NAV_STYLE: &str = "nav{margin-bottom:1em;padding-bottom:.5em;border-bottom:1px solid #ccc}\
    nav a{margin-right:1em}.logout{display:inline;float:right}.error{color:#a33}\
    .state-running{color:#276e2b}.state-failed,.state-unresponsive{color:#a33}pre{white-space:pre-wrap}";

/// The search a page's query string asks for.
fn search(params: &HashMap<String, String>) -> Query {
    let given = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    Query {
        text: given("text"),
        target: given("target"),
        kind: given("kind"),
        tool: given("tool"),
        since: given("since").and_then(|s| s.parse().ok()),
    }
}

/// The value of the cookie `name` a request carries.
fn cookie_value(request: &HttpRequest, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&prefix).map(str::to_string))
}

/// A posted form, at most [`MAX_FORM`] bytes (`None` past that).
async fn read_form(request: HttpRequest) -> Option<HashMap<String, String>> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_FORM);
    let bytes = limited.collect().await.ok()?.to_bytes();
    Some(pairs(std::str::from_utf8(&bytes).ok()?))
}

/// A tool call to a child, straight (no lane: the dashboard only reads).
async fn child_call(
    child: &crate::child::Child,
    tool: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let params = rmcp::model::CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    use crate::child::CallError;
    let r = child.call(params, None).await.map_err(|e| match e {
        CallError::Unavailable(m) | CallError::Failed(m) => m,
        CallError::Timeout(t) => format!("{tool} timed out after {} s", t.as_secs()),
    })?;
    if r.is_error == Some(true) {
        let text: Vec<String> = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        return Err(text.join(" "));
    }
    Ok(r.structured_content.unwrap_or_default())
}

/// The sandboxes of every sandbox-runner child: state, limits, use, what was refused.
async fn sandboxes(gw: &Gateway, viewer: &Viewer) -> HttpResponse {
    let mut b = String::from("<h1>Sandboxes</h1>");
    let runners: Vec<_> = gw
        .children()
        .iter()
        .filter(|c| c.spec.kind == crate::config::Kind::Sandbox)
        .collect();
    if runners.is_empty() {
        b.push_str("<p>No sandbox-runner among the servers.</p>");
    }
    let mib = |v: &serde_json::Value| {
        v.as_u64().map_or_else(
            || "-".to_string(),
            |n| format!("{:.1} MiB", n as f64 / 1048576.0),
        )
    };
    for runner in runners {
        let _ = write!(b, "<h2>{}</h2>", esc(&runner.spec.name));
        let listed = match child_call(runner, "list", serde_json::json!({})).await {
            Ok(l) => l,
            Err(e) => {
                let _ = write!(b, "<p class=\"error\">{}</p>", esc(&e));
                continue;
            }
        };
        b.push_str(
            "<table id=\"sandboxes\"><tr><th>sandbox</th><th>state</th><th>profile</th>\
             <th>game pid</th><th>memory (limit)</th><th>tasks (limit)</th><th>cpus</th>\
             <th>cpu time</th><th>refused system calls</th></tr>",
        );
        for s in listed["sandboxes"].as_array().into_iter().flatten() {
            let id = s["sandbox_id"].as_str().unwrap_or("");
            let st = child_call(runner, "status", serde_json::json!({"sandbox_id": id}))
                .await
                .unwrap_or_default();
            let refused: Vec<String> = st["report"]["seccomp_violations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    format!(
                        "{} ({})",
                        v["syscall"].as_str().unwrap_or("?"),
                        v["action"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td>\
                 <td>{}</td><td>{} ms</td><td>{} {}</td></tr>",
                esc(id),
                esc(s["state"].as_str().unwrap_or("")),
                esc(s["profile"].as_str().unwrap_or("")),
                s["game_pid"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |p| p.to_string()),
                mib(&st["usage"]["memory_bytes"]),
                mib(&st["limits"]["memory_bytes"]),
                st["usage"]["tasks"],
                st["limits"]["pids"],
                st["limits"]["cpus"],
                st["usage"]["cpu_usage_ms"],
                st["events"]["seccomp_violations"],
                esc(&refused.join(", "))
            );
        }
        b.push_str("</table>");
    }
    page("Sandboxes", viewer, &b)
}

fn live_page(viewer: &Viewer) -> HttpResponse {
    page(
        "Live",
        viewer,
        "<h1>Live</h1><p><span id=\"count\">0</span> calls since this page opened.</p>\
         <table><thead><tr><th>time</th><th>client</th><th>tool</th><th>outcome</th><th>ms</th></tr></thead>\
         <tbody id=\"live\"></tbody></table><script src=\"/ui/live.js\"></script>",
    )
}

/// Server-sent events: each tool call over HTTP as it ends (`event: call`), and a comment
/// every 15 s so that proxies keep the stream open.
fn events(gw: &Gateway) -> HttpResponse {
    use tokio_stream::StreamExt;
    let calls = tokio_stream::wrappers::BroadcastStream::new(gw.subscribe())
        .filter_map(|e| e.ok())
        .map(|json| format!("event: call\ndata: {json}\n\n"));
    let beats =
        tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(Duration::from_secs(15)))
            .map(|_| ": keep-alive\n\n".to_string());
    let stream = calls
        .merge(beats)
        .map(|text| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(text))));
    let mut r = hyper::Response::new(StreamBody::new(stream).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r
}
