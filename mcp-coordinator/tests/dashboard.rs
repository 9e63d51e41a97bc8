//! The web dashboard over HTTP, as a browser meets it: a page without a session goes to the
//! login; a token the gateway accepts gives an HttpOnly, SameSite=Strict cookie; the pages
//! show the servers, the calls and the findings as the MCP tools answer them, a finding named
//! `<script>` as text; the live stream carries a call as it ends; sign-out needs the CSRF
//! token; every answer carries the security headers.

mod common;

use common::{TEST_CHILD, http_coordinator, tmp};
use mcp_testkit::*;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "dashboard-test-token-0123456789";
const EVIL: &str = "<script>alert(1)</script>";

fn browser() -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// GET `path` with this cookie: status, headers, body.
async fn get(
    base: &str,
    path: &str,
    cookie: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, String), Error> {
    let mut r = browser()?.get(format!("{base}{path}"));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let r = r.send().await?;
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Ok((status, headers, r.text().await?))
}

async fn post(
    base: &str,
    path: &str,
    form: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Result<reqwest::Response, Error> {
    let mut r = browser()?
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    Ok(r.send().await?)
}

fn secure_headers(h: &reqwest::header::HeaderMap) {
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            h.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} in {h:?}"
        );
    }
}

#[tokio::test]
async fn log_in_look_around_and_sign_out() -> TestResult {
    let dir = tmp("dashboard")?;
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        json!({"mcpServers": {"child": {"command": TEST_CHILD}}}).to_string(),
    )?;
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!("[[clients]]\nname = \"alice\"\ntoken = \"{TOKEN}\"\n"),
    )?;
    let audit = dir.join("audit.jsonl");
    let tokens = tokens.display().to_string();
    let audit = audit.display().to_string();
    let (_coordinator, base) = http_coordinator(
        &dir,
        &cfg,
        &[
            "--dashboard",
            "--auth-tokens",
            &tokens,
            "--audit-log",
            &audit,
        ],
    )
    .await?;

    // No session: to the login, with the headers.
    let (status, h, _) = get(&base, "/ui/", None).await?;
    assert_eq!(status, 303);
    assert_eq!(
        h.get("location").and_then(|v| v.to_str().ok()),
        Some("/ui/login")
    );
    secure_headers(&h);
    // The sign-in form's token, also a SameSite=Strict cookie.
    let r = browser()?.get(format!("{base}/ui/login")).send().await?;
    let login_cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .ok_or("no sign-in cookie")?
        .to_string();
    let body = r.text().await?;
    let field = body
        .split("name=\"login\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or("no sign-in token in the form")?
        .to_string();
    assert_eq!(login_cookie, format!("mcp_ui_login={field}"));
    let wrong = format!("login={field}&token=wrong");
    let r = post(&base, "/ui/login", &wrong, Some(&login_cookie), None).await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap_or("").starts_with("mcp_ui="))
    );
    assert!(r.text().await?.contains("not one this coordinator accepts"));
    // A form posted from another site's page comes without the cookie: refused.
    let form = format!("login={field}&token={TOKEN}");
    let r = post(&base, "/ui/login", &form, None, Some("null")).await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = post(&base, "/ui/login", &form, Some(&login_cookie), Some("null")).await?;
    assert_eq!(r.status().as_u16(), 303);
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .ok_or("no cookie")?
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap_or("").to_string();

    // Calls and a finding through MCP, as an agent makes them.
    let mcp = ()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/")).auth_header(TOKEN),
        ))
        .await?;
    // The live stream is open before the call it should carry.
    let mut events = browser()?
        .get(format!("{base}/ui/events"))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(
        events
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    ok(&mcp, "child__echo", json!({"text": "hello"})).await;
    let mut seen = String::new();
    while !seen.contains("\"child__echo\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
            .await
            .map_err(|_| format!("no call event within 10 s: {seen:?}"))??
            .ok_or("the event stream ended")?;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("event: call") && seen.contains("\"client\":\"alice\""),
        "{seen}"
    );
    let recorded = ok(
        &mcp,
        "findings_record",
        json!({"kind": "note", "title": EVIL, "target": {"binary": EVIL}}),
    )
    .await;
    let id = recorded["finding"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    let echo = ok(&mcp, "findings_query", json!({"tool": "child__echo"})).await;
    let echo_id = echo["items"][0]["id"]
        .as_str()
        .ok_or("no echo finding")?
        .to_string();
    ok(
        &mcp,
        "findings_link",
        json!({"from": id, "to": echo_id, "relation": "about"}),
    )
    .await;

    // The overview: the server, its calls as servers_status counts them, the audit log.
    let (status, h, body) = get(&base, "/ui/", Some(&cookie)).await?;
    assert_eq!(status, 200, "{body}");
    secure_headers(&h);
    let servers = ok(&mcp, "servers_status", json!({})).await;
    let calls = servers["servers"][0]["calls"].as_u64().unwrap_or(0);
    assert!(
        body.contains(&format!(
            "<td>child</td><td class=\"state-running\">running</td><td>0</td><td>{calls}</td>"
        )),
        "{body}"
    );
    assert!(
        body.contains("<td>child__echo</td><td>1</td><td>0</td>"),
        "{body}"
    );
    assert!(body.contains("Sign out alice"), "{body}");

    // Findings: the search finds the note, its title as text.
    let (status, _, body) = get(&base, "/ui/findings?text=alert", Some(&cookie)).await?;
    assert_eq!(status, 200);
    assert!(body.contains("<p id=\"total\">1 findings</p>"), "{body}");
    assert!(!body.contains(EVIL) && body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let (status, _, body) = get(&base, &format!("/ui/findings/{id}"), Some(&cookie)).await?;
    assert_eq!(status, 200);
    assert!(!body.contains(EVIL), "{body}");
    assert!(
        body.contains(&format!("<a href=\"/ui/findings/{echo_id}\">")),
        "the graph links the neighbour: {body}"
    );
    assert!(
        body.contains("<svg") && body.contains("<pre id=\"raw\">"),
        "{body}"
    );
    let (status, h, body) = get(&base, "/ui/export?text=alert&format=json", Some(&cookie)).await?;
    assert_eq!(status, 200);
    assert!(h.get("content-disposition").is_some());
    let exported: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(exported[0]["title"], EVIL);

    // Sign-out needs the page's CSRF token.
    let (_, _, body) = get(&base, "/ui/", Some(&cookie)).await?;
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or("no csrf field")?
        .to_string();
    let r = post(&base, "/ui/logout", "csrf=wrong", Some(&cookie), None).await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = post(
        &base,
        "/ui/logout",
        &format!("csrf={csrf}"),
        Some(&cookie),
        None,
    )
    .await?;
    assert_eq!(r.status().as_u16(), 303);
    let (status, _, _) = get(&base, "/ui/", Some(&cookie)).await?;
    assert_eq!(status, 303, "the session outlived the sign-out");
    Ok(())
}
