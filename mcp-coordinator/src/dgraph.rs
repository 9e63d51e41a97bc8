//! The findings graph in Dgraph, through its HTTP API (the "Raw HTTP" client protocol):
//! `/alter` with the schema of `schemas/dgraph/findings.dql`, `/mutate?commitNow=true` with
//! JSON upsert blocks keyed by finding id, `/query` in DQL, `/login` and the
//! `X-Dgraph-AccessToken` header when credentials are given.
//!
//! Dgraph reports many failures in an `errors` array with HTTP 200, so every answer is read
//! for that key before its status. Aborted transactions (two writers of one `@upsert` key)
//! are retried here; an expired access token is refreshed (or the login redone) and the
//! request sent again. Everything else is an error for the caller (the outbox retries).

use crate::findings::{Finding, Link, Query};
use serde_json::{Value, json};
use std::time::Duration;

/// The schema posted to `/alter`: the data file without its comment lines.
pub fn schema() -> String {
    include_str!("../../schemas/dgraph/findings.dql")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
        + "\n"
}

/// The predicates of a finding, in the order `Finding` has them.
const FINDING_FIELDS: &str = "finding.id finding.session finding.time finding.kind finding.title \
     finding.server finding.tool finding.arguments finding.target finding.summary finding.data";

/// Attempts of one request whose transaction Dgraph aborted.
const ABORT_RETRIES: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DgraphError {
    /// No answer, or an HTTP error status without Dgraph errors (down, overloaded, proxy).
    #[error("Dgraph unreachable: {0}")]
    Unreachable(String),
    /// The transaction was aborted by a conflicting one (retried before this is returned).
    #[error("Dgraph aborted the transaction: {0}")]
    Aborted(String),
    /// The access token expired or is missing (refreshed before this is returned).
    #[error("Dgraph refused the credentials: {0}")]
    Unauthenticated(String),
    /// Dgraph refused the request (its `errors`), or answered something that is not JSON.
    #[error("Dgraph refused the request: {0}")]
    Rejected(String),
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

/// A Dgraph alpha reached over HTTP.
#[derive(Debug)]
pub struct Dgraph {
    base: String,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    tokens: tokio::sync::Mutex<Option<Tokens>>,
}

/// The message of an error and of every error under it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// A DQL string literal.
pub fn dql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A DQL regular expression matching `s` literally anywhere, case-insensitively.
pub fn dql_contains(s: &str) -> String {
    let mut out = String::from("/.*");
    for c in s.chars() {
        if "\\/.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str(".*/i");
    out
}

impl Dgraph {
    /// `url`: the alpha's HTTP endpoint, `http://HOST:8080`.
    pub fn new(url: &str, credentials: Option<Credentials>) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_string();
        let rest = base.strip_prefix("http://").ok_or_else(|| {
            format!(
                "--findings-url {url:?}: give Dgraph's HTTP endpoint as http://HOST:PORT \
                 (https is not built in; put a local TLS proxy in front)"
            )
        })?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!(
                "--findings-url {url:?}: no host (expected http://HOST:PORT)"
            ));
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
        Ok(Self {
            base,
            http,
            credentials,
            tokens: tokio::sync::Mutex::new(None),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// One request, its answer read for Dgraph's `errors` first.
    async fn send(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        token: Option<&str>,
    ) -> Result<Value, DgraphError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_string());
        if let Some(t) = token {
            request = request.header("X-Dgraph-AccessToken", t);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| DgraphError::Unreachable(format!("POST {path}: {}", chain(&e))))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| {
            DgraphError::Unreachable(format!("POST {path}: reading the answer: {}", chain(&e)))
        })?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if let Some(errors) = parsed
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| e.to_string(), str::to_string)
                })
                .collect();
            let message = format!("POST {path}: {}", messages.join("; "));
            let lower = message.to_lowercase();
            return Err(if lower.contains("aborted") {
                DgraphError::Aborted(message)
            } else if lower.contains("token is expired")
                || lower.contains("no accessjwt")
                || lower.contains("unauthenticated")
            {
                DgraphError::Unauthenticated(message)
            } else {
                DgraphError::Rejected(message)
            });
        }
        if !status.is_success() {
            return Err(DgraphError::Unreachable(format!(
                "POST {path}: HTTP {status}: {}",
                excerpt(&text)
            )));
        }
        parsed.ok_or_else(|| {
            DgraphError::Rejected(format!(
                "POST {path}: the answer is not JSON: {}",
                excerpt(&text)
            ))
        })
    }

    /// `/login` with the password, or with the refresh token when one is given.
    async fn login(&self, refresh: Option<&str>) -> Result<Tokens, DgraphError> {
        let Some(c) = &self.credentials else {
            return Err(DgraphError::Unauthenticated(
                "the server wants a login; give --findings-user and --findings-password".into(),
            ));
        };
        let body = match refresh {
            Some(r) => json!({"refresh_token": r}),
            None => json!({"userid": c.user, "password": c.password}),
        };
        let v = self
            .send("/login", "application/json", &body.to_string(), None)
            .await
            .map_err(|e| match e {
                DgraphError::Rejected(m) => DgraphError::Unauthenticated(m),
                other => other,
            })?;
        let data = &v["data"];
        match (data["accessJWT"].as_str(), data["refreshJWT"].as_str()) {
            (Some(a), Some(r)) => Ok(Tokens {
                access: a.to_string(),
                refresh: r.to_string(),
            }),
            _ => Err(DgraphError::Rejected(format!(
                "POST /login: no data.accessJWT/refreshJWT in {}",
                excerpt(&v.to_string())
            ))),
        }
    }

    /// The access token to send (logging in first when there is none yet).
    async fn token(&self) -> Result<Option<String>, DgraphError> {
        if self.credentials.is_none() {
            return Ok(None);
        }
        let mut t = self.tokens.lock().await;
        if t.is_none() {
            *t = Some(self.login(None).await?);
        }
        Ok(t.as_ref().map(|t| t.access.clone()))
    }

    /// After `stale` was refused: a new token from the refresh token, or a new login.
    async fn renew(&self, stale: Option<&str>) -> Result<(), DgraphError> {
        let mut t = self.tokens.lock().await;
        let current = t.as_ref().map(|t| t.access.as_str());
        if current.is_some() && current != stale {
            return Ok(()); // someone else renewed it meanwhile
        }
        let refresh = t.as_ref().map(|t| t.refresh.clone());
        let renewed = match refresh {
            Some(r) => match self.login(Some(&r)).await {
                Ok(n) => Ok(n),
                Err(e) => {
                    tracing::info!(error = %e, "Dgraph refresh token refused; logging in again");
                    self.login(None).await
                }
            },
            None => self.login(None).await,
        };
        *t = Some(renewed?);
        Ok(())
    }

    /// A request with the access token, renewed once when refused, and retried with a short
    /// backoff while Dgraph aborts the transaction.
    pub async fn request(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<Value, DgraphError> {
        let mut aborted = 0;
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            match self.send(path, content_type, body, token.as_deref()).await {
                Err(DgraphError::Aborted(m)) if aborted < ABORT_RETRIES => {
                    aborted += 1;
                    tracing::debug!(%m, attempt = aborted, "Dgraph aborted; retrying");
                    tokio::time::sleep(Duration::from_millis(10 << aborted)).await;
                }
                Err(DgraphError::Unauthenticated(_)) if self.credentials.is_some() && !renewed => {
                    renewed = true;
                    self.renew(token.as_deref()).await?;
                }
                other => return other,
            }
        }
    }

    /// Posts the findings schema.
    pub async fn alter(&self, schema: &str) -> Result<(), DgraphError> {
        self.request("/alter", "application/dql", schema)
            .await
            .map(|_| ())
    }

    /// The upsert block that creates or updates the finding with `f.id`.
    pub fn finding_upsert(f: &Finding) -> Value {
        let mut node = json!({
            "uid": "uid(v)",
            "dgraph.type": "Finding",
            "finding.id": f.id,
            "finding.session": f.session,
            "finding.time": f.time,
            "finding.kind": f.kind,
            "finding.title": f.title,
        });
        let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        for (key, value) in [
            ("finding.server", f.server.clone()),
            ("finding.tool", f.tool.clone()),
            ("finding.arguments", text(&f.arguments)),
            ("finding.target", text(&f.target)),
            ("finding.summary", f.summary.clone()),
            ("finding.data", text(&f.data)),
        ] {
            if let Some(v) = value {
                node[key] = Value::String(v);
            }
        }
        json!({
            "query": format!("{{ v as var(func: eq(finding.id, {})) }}", dql_string(&f.id)),
            "set": node,
        })
    }

    /// The upsert block of a link: the link node keyed by `[from, relation, to]`, and both
    /// findings by id (created bare if they have not arrived yet; their own upsert fills
    /// them in later), so links never depend on the order they arrive in.
    pub fn link_upsert(l: &Link, time: f64) -> Value {
        let key = crate::findings::link_key(&l.from, &l.relation, &l.to);
        json!({
            "query": format!(
                "{{ f as var(func: eq(finding.id, {})) t as var(func: eq(finding.id, {})) l as var(func: eq(link.key, {})) }}",
                dql_string(&l.from),
                dql_string(&l.to),
                dql_string(&key)
            ),
            "set": [
                {"uid": "uid(f)", "finding.id": l.from},
                {"uid": "uid(t)", "finding.id": l.to},
                {
                    "uid": "uid(l)",
                    "dgraph.type": "Link",
                    "link.key": key,
                    "link.relation": l.relation,
                    "link.time": time,
                    "link.from": {"uid": "uid(f)"},
                    "link.to": {"uid": "uid(t)"},
                },
            ],
        })
    }

    async fn mutate(&self, upsert: &Value) -> Result<(), DgraphError> {
        self.request(
            "/mutate?commitNow=true",
            "application/json",
            &upsert.to_string(),
        )
        .await
        .map(|_| ())
    }

    pub async fn upsert_finding(&self, f: &Finding) -> Result<(), DgraphError> {
        self.mutate(&Self::finding_upsert(f)).await
    }

    pub async fn upsert_link(&self, l: &Link, time: f64) -> Result<(), DgraphError> {
        self.mutate(&Self::link_upsert(l, time)).await
    }

    /// A DQL query; its `data`.
    pub async fn query(&self, dql: &str) -> Result<Value, DgraphError> {
        let v = self.request("/query", "application/dql", dql).await?;
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }

    /// The DQL filter of a findings query, or which argument cannot be searched remotely.
    pub fn filter(q: &Query) -> Result<Option<String>, (&'static str, String)> {
        let mut parts = Vec::new();
        let searchable = |field: &'static str, s: &str| {
            if s.chars().count() < 3 {
                Err((
                    field,
                    format!(
                        "{s:?}: the shared graph searches text by trigrams; give at least 3 characters"
                    ),
                ))
            } else {
                Ok(dql_contains(s))
            }
        };
        if let Some(t) = &q.target {
            parts.push(format!(
                "regexp(finding.target, {})",
                searchable("target", t)?
            ));
        }
        if let Some(k) = &q.kind {
            parts.push(format!("eq(finding.kind, {})", dql_string(k)));
        }
        if let Some(t) = &q.tool {
            let s = dql_string(t);
            parts.push(format!("(eq(finding.tool, {s}) OR eq(finding.title, {s}))"));
        }
        if let Some(t) = &q.text {
            let r = searchable("text", t)?;
            parts.push(format!(
                "(regexp(finding.title, {r}) OR regexp(finding.summary, {r}))"
            ));
        }
        if let Some(s) = q.since {
            if !s.is_finite() {
                return Err(("since", format!("{s}: not a time")));
            }
            parts.push(format!("ge(finding.time, {s})"));
        }
        Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
    }

    /// The DQL of a findings query: the count and one page, newest first.
    pub fn find_dql(filter: Option<&str>, offset: usize, limit: usize) -> String {
        let f = filter.map_or(String::new(), |f| format!(" @filter({f})"));
        format!(
            "{{\n  total(func: type(Finding)){f} {{ n: count(uid) }}\n  items(func: type(Finding), orderdesc: finding.time, first: {limit}, offset: {offset}){f} {{ {FINDING_FIELDS} }}\n}}"
        )
    }

    /// Findings matching `q` in the graph, newest first: (total, page).
    pub async fn find(
        &self,
        q: &Query,
        offset: usize,
        limit: usize,
    ) -> Result<Result<(usize, Vec<Finding>), (&'static str, String)>, DgraphError> {
        let filter = match Self::filter(q) {
            Ok(f) => f,
            Err(bad) => return Ok(Err(bad)),
        };
        let data = self
            .query(&Self::find_dql(filter.as_deref(), offset, limit))
            .await?;
        let total = data["total"][0]["n"].as_u64().unwrap_or(0) as usize;
        let items = data["items"]
            .as_array()
            .map(|a| a.iter().filter_map(finding_of).collect())
            .unwrap_or_default();
        Ok(Ok((total, items)))
    }

    /// The DQL of one finding with its links in both directions.
    pub fn get_dql(id: &str) -> String {
        format!(
            "{{\n  f(func: eq(finding.id, {})) @filter(type(Finding)) {{\n    {FINDING_FIELDS}\n    out: ~link.from {{ link.relation link.to {{ finding.id }} }}\n    in: ~link.to {{ link.relation link.from {{ finding.id }} }}\n  }}\n}}",
            dql_string(id)
        )
    }

    /// One finding with its links, if the graph has it.
    pub async fn get(&self, id: &str) -> Result<Option<(Finding, Vec<Link>)>, DgraphError> {
        let data = self.query(&Self::get_dql(id)).await?;
        let Some(node) = data["f"].as_array().and_then(|a| a.first()) else {
            return Ok(None);
        };
        let Some(f) = finding_of(node) else {
            return Ok(None);
        };
        let mut links = Vec::new();
        for (edge, outgoing) in [("out", true), ("in", false)] {
            for l in node[edge].as_array().into_iter().flatten() {
                let other_key = if outgoing { "link.to" } else { "link.from" };
                let other = l[other_key]["finding.id"]
                    .as_str()
                    .or_else(|| l[other_key][0]["finding.id"].as_str());
                if let (Some(relation), Some(other)) = (l["link.relation"].as_str(), other) {
                    let (from, to) = if outgoing {
                        (f.id.clone(), other.to_string())
                    } else {
                        (other.to_string(), f.id.clone())
                    };
                    links.push(Link {
                        from,
                        to,
                        relation: relation.to_string(),
                    });
                }
            }
        }
        Ok(Some((f, links)))
    }
}

/// A finding from its node as `/query` returns it.
fn finding_of(n: &Value) -> Option<Finding> {
    let s = |k: &str| n[k].as_str().map(str::to_string);
    let js = |k: &str| n[k].as_str().and_then(|t| serde_json::from_str(t).ok());
    Some(Finding {
        id: s("finding.id")?,
        session: s("finding.session").unwrap_or_default(),
        time: n["finding.time"].as_f64().unwrap_or(0.0),
        kind: s("finding.kind").unwrap_or_default(),
        title: s("finding.title").unwrap_or_default(),
        server: s("finding.server"),
        tool: s("finding.tool"),
        arguments: js("finding.arguments"),
        target: js("finding.target"),
        summary: s("finding.summary"),
        data: js("finding.data"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dql_literals_escape_what_they_must() {
        assert_eq!(dql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(dql_contains("D2.dll/x"), r"/.*D2\.dll\/x.*/i");
        assert!(schema().contains("finding.id: string @index(exact) @upsert ."));
        assert!(!schema().contains('#'));
        let f = Dgraph::filter(&Query {
            kind: Some("note".into()),
            since: Some(5.0),
            ..Default::default()
        });
        assert_eq!(
            f,
            Ok(Some(
                "eq(finding.kind, \"note\") AND ge(finding.time, 5)".into()
            ))
        );
        let short = Dgraph::filter(&Query {
            text: Some("ab".into()),
            ..Default::default()
        });
        assert!(short.is_err_and(|(field, why)| field == "text" && why.contains("3")));
        assert!(Dgraph::new("https://x:8080", None).is_err());
        assert!(Dgraph::new("http://", None).is_err());
    }
}
