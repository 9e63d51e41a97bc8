//! The children's resources through the coordinator: listed with their URIs and definitions
//! untouched, read by URI (a listed URI, else a matching template) with the very answer the
//! child gives directly, errors of the child forwarded, an unknown URI refused by name, a
//! child's resources/list_changed followed, and the same URI offered by two children refused
//! at start-up. Children: mcp-test-child and the real mcp-d2 (its `d2://save/{path}` read on
//! a real save of ../shared/fixtures/d2s when that folder is there).

mod common;

use common::{
    COORDINATOR, TEST_CHILD, coordinator, server, server_with_args, sibling, tmp, write_config,
};
use mcp_testkit::*;
use rmcp::model::{ReadResourceRequestParams, ReadResourceResult};
use rmcp::service::ServiceError;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The real saves, when the shared fixtures are there (else [`skipped`], which fails under
/// REQUIRE_SHARED_FIXTURES).
fn saves() -> Option<PathBuf> {
    let d = shared_fixtures("d2s")?.canonicalize().ok()?;
    if d.join("d2v113c.d2s").exists() {
        return Some(d);
    }
    skipped(
        REQUIRE_SHARED_FIXTURES,
        &format!("{} has no d2v113c.d2s", d.display()),
    );
    None
}

async fn read(c: &Client, uri: &str) -> Result<ReadResourceResult, ServiceError> {
    c.read_resource(ReadResourceRequestParams::new(uri)).await
}

/// The error a read must fail with: (code, message).
async fn read_error(c: &Client, uri: &str) -> Result<(i32, String), Error> {
    match read(c, uri).await {
        Err(ServiceError::McpError(e)) => Ok((e.code.0, e.message.to_string())),
        Err(e) => Err(format!("reading {uri}: not an MCP error but {e}").into()),
        Ok(r) => Err(format!("reading {uri} should have failed, gave {r:?}").into()),
    }
}

fn by<T: serde::Serialize>(items: &[T], key: &str) -> Result<Vec<(String, Value)>, Error> {
    let mut out = Vec::new();
    for i in items {
        let v = serde_json::to_value(i)?;
        out.push((v[key].as_str().unwrap_or_default().to_string(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[tokio::test]
async fn child_resources_are_listed_and_read_as_the_child_gives_them() -> TestResult {
    let dir = tmp("coord-res")?;
    // Without the saves, d2://save/{path} is listed but not read (the test child's resources
    // still are); `saves` said so.
    let saves = saves();
    let root = saves.clone().unwrap_or_else(|| dir.to_path_buf());
    let d2_bin = sibling("mcp-d2")?;
    let root_arg = root.display().to_string();
    let config = server("child", TEST_CHILD)
        + &server_with_args("d2", d2_bin.display(), &["--root", &root_arg]);
    let cfg = write_config(&dir, "c.toml", &config)?;
    let c = coordinator(&cfg, &[]).await?;
    let child = start_bin(TEST_CHILD, &[]).await?;
    let d2 = start_bin(
        d2_bin.to_str().unwrap_or_default(),
        &["--root".into(), root.display().to_string()],
    )
    .await?;

    // Listing: every child's resources and templates, exactly as each lists them.
    let mut direct = child.list_all_resources().await?;
    direct.extend(d2.list_all_resources().await?);
    let through = c.list_all_resources().await?;
    assert_eq!(by(&through, "uri")?, by(&direct, "uri")?);
    assert!(through.iter().any(|r| r.uri == "test://static"));
    let mut direct_t = child.list_all_resource_templates().await?;
    direct_t.extend(d2.list_all_resource_templates().await?);
    let through_t = c.list_all_resource_templates().await?;
    // The coordinator's own: findings and reports.
    let own_templates = ["findings://{id}", "report://{id}"];
    let own: Vec<_> = through_t
        .iter()
        .filter(|t| own_templates.contains(&t.uri_template.as_str()))
        .collect();
    assert_eq!(own.len(), 2, "{through_t:?}");
    let children_t: Vec<_> = through_t
        .iter()
        .filter(|t| !own_templates.contains(&t.uri_template.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        by(&children_t, "uriTemplate")?,
        by(&direct_t, "uriTemplate")?
    );
    for t in [
        "d2://character/{pid}",
        "d2://save/{path}",
        "test://echo/{text}",
    ] {
        assert!(
            through_t.iter().any(|x| x.uri_template == t),
            "{t} missing from {through_t:?}"
        );
    }

    // Reading: a listed URI, a blob, a template; the answer is the child's own.
    for uri in [
        "test://static",
        "test://blob",
        "test://echo/hello%20world/a/b",
    ] {
        let a = read(&child, uri).await?;
        let b = read(&c, uri).await?;
        assert_eq!(
            serde_json::to_value(&a)?,
            serde_json::to_value(&b)?,
            "{uri}"
        );
        assert!(!b.contents.is_empty(), "{uri}: {b:?}");
    }
    if saves.is_some() {
        let uri = format!("d2://save/{}", root.join("d2v113c.d2s").display());
        let a = read(&d2, &uri).await?;
        let b = read(&c, &uri).await?;
        assert_eq!(serde_json::to_value(&a)?, serde_json::to_value(&b)?);
        let text = match b.contents.first() {
            Some(rmcp::model::ResourceContents::TextResourceContents { text, .. }) => text,
            other => return Err(format!("{uri}: not text: {other:?}").into()),
        };
        let save: Value = serde_json::from_str(text)?;
        assert_eq!(save["header"]["name"], "test", "{save}");
    }

    // The children's own errors come back untouched.
    for (uri, direct) in [
        ("test://error/boom", &child),
        ("d2://character/4000000000", &d2),
    ] {
        let a = read_error(direct, uri).await?;
        let b = read_error(&c, uri).await?;
        assert_eq!(a, b, "{uri}");
    }
    // An unknown URI is refused by name, with the schemes that are known.
    let (_, e) = read_error(&c, "nope://x").await?;
    for word in ["\"nope://x\"", "test", "d2", "findings"] {
        assert!(e.contains(word), "{word} missing from {e}");
    }
    let (_, e) = read_error(&c, "test://missing").await?;
    assert!(e.contains("\"test://missing\""), "{e}");
    // The coordinator's own resources still are its own.
    let (_, e) = read_error(&c, "findings://f-missing").await?;
    assert!(e.contains("findings://f-missing"), "{e}");

    // A child's resources/list_changed is followed.
    ok(&c, "child__add_resource", serde_json::json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c
        .list_all_resources()
        .await?
        .iter()
        .any(|r| r.uri == "test://added")
    {
        assert!(Instant::now() < deadline, "test://added never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let added = read(&c, "test://added").await?;
    assert_eq!(
        serde_json::to_value(&added.contents)?[0]["text"],
        "added later"
    );

    // While the child restarts its URIs are still its own: a read says it is restarting
    // (or, once it is back, succeeds), never "unknown resource".
    let _ = call(&c, "child__crash", serde_json::json!({})).await;
    match read(&c, "test://static").await {
        Ok(r) => assert_eq!(
            serde_json::to_value(&r.contents)?,
            serde_json::to_value(&read(&child, "test://static").await?.contents)?
        ),
        Err(ServiceError::McpError(e)) => {
            assert!(e.message.contains("restarting"), "{}", e.message)
        }
        Err(e) => return Err(format!("not an MCP error: {e}").into()),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&c, "test://static").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "test://static never readable again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for client in [c, child, d2] {
        client.cancel().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_uri_offered_by_two_children_is_a_start_up_error() -> TestResult {
    let dir = tmp("coord-res-clash")?;
    let config = server("one", TEST_CHILD) + &server("two", TEST_CHILD);
    let cfg = write_config(&dir, "c.toml", &config)?;
    let run = tokio::process::Command::new(COORDINATOR)
        .args(["--config".as_ref(), cfg.as_os_str()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .map_err(|_| "the coordinator did not stop on the collision")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for word in [
        "\"one\"",
        "\"two\"",
        "\"test://static\"",
        "\"test://echo/{text}\"",
    ] {
        assert!(stderr.contains(word), "{word} missing from {stderr}");
    }
    Ok(())
}
