//! Prompts, completions and the listed save resources over MCP: `analyze_character` and
//! `compare_saves` name the tools in order and refuse bad arguments; `pid` completes with the
//! running games' pids, paths with the saves and stashes under the roots; resources/list gives
//! every save and stash under the roots, 100 per page.

mod common;
use common::*;
use rmcp::model::{ErrorCode, GetPromptRequestParams, PaginatedRequestParams};
use rmcp::service::ServiceError;
use serde_json::{Value, json};

fn prompt_text(r: &rmcp::model::GetPromptResult) -> String {
    r.messages
        .iter()
        .filter_map(|m| m.content.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn prompts_name_the_tools_and_check_their_arguments() -> TestResult {
    let dir =
        mcp_testkit::TestDir::new(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "prompts")?;
    std::fs::write(dir.join("old.d2s"), b"not parsed by the prompt")?;
    std::fs::write(dir.join("new.d2s"), b"not parsed by the prompt")?;
    let client = start(&[&dir]).await?;
    let mut prompts = client.list_all_prompts().await?;
    prompts.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["analyze_character", "compare_saves"]);
    let compare_args: Vec<(String, Option<bool>)> = prompts[1]
        .arguments
        .iter()
        .flatten()
        .map(|a| (a.name.clone(), a.required))
        .collect();
    assert_eq!(
        compare_args,
        [
            ("before".to_string(), Some(true)),
            ("after".to_string(), Some(true))
        ]
    );
    assert!(
        prompts[0]
            .arguments
            .iter()
            .flatten()
            .all(|a| a.name == "pid" && a.required != Some(true)),
        "{:?}",
        prompts[0]
    );

    let r = client
        .get_prompt(
            GetPromptRequestParams::new("analyze_character")
                .with_arguments(args(json!({"pid": "4242"}))),
        )
        .await?;
    let text = prompt_text(&r);
    let order: Vec<usize> = ["`find_game`", "`character`", "`inventory`", "`units`"]
        .iter()
        .filter_map(|t| text.find(t))
        .collect();
    assert_eq!(order.len(), 4, "{text}");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains("{\"pid\": 4242}"), "{text}");
    let r = client
        .get_prompt(GetPromptRequestParams::new("analyze_character"))
        .await?;
    assert!(prompt_text(&r).contains("only running game"));
    let e = client
        .get_prompt(
            GetPromptRequestParams::new("analyze_character")
                .with_arguments(args(json!({"pid": "abc"}))),
        )
        .await;
    assert!(e.is_err_and(|e| e.to_string().contains("`pid`")));

    let r = client
        .get_prompt(
            GetPromptRequestParams::new("compare_saves")
                .with_arguments(args(json!({"before": "old.d2s", "after": "new.d2s"}))),
        )
        .await?;
    let text = prompt_text(&r);
    assert!(
        text.contains("`parse_save`")
            && text.contains("`diff_saves`")
            && text.contains("\"path_a\": \"old.d2s\", \"path_b\": \"new.d2s\""),
        "{text}"
    );
    // Each bad call is an invalid-params answer naming the argument and its value (a dead
    // server would be an error too: the next call shows it still answers).
    for (bad, words) in [
        (
            json!({"before": "/etc/passwd", "after": "new.d2s"}),
            ["`before`", "/etc/passwd"],
        ),
        (
            json!({"before": "old.d2s", "after": "missing.d2s"}),
            ["`after`", "missing.d2s"],
        ),
        (json!({"before": "old.d2s"}), ["`after`", "missing"]),
    ] {
        let e = client
            .get_prompt(
                GetPromptRequestParams::new("compare_saves").with_arguments(args(bad.clone())),
            )
            .await;
        let Err(ServiceError::McpError(e)) = e else {
            return Err(format!("{bad}: not an invalid-params answer but {e:?}").into());
        };
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{bad}: {e:?}");
        assert!(
            words.iter().all(|w| e.message.contains(w)),
            "{bad}: {words:?} not in {}",
            e.message
        );
        let again = client.list_all_prompts().await?;
        assert_eq!(again.len(), 2, "after {bad}");
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn completions_and_listed_resources_come_from_the_roots_and_the_games() -> TestResult {
    let dir =
        mcp_testkit::TestDir::new(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "listing")?;
    std::fs::create_dir_all(dir.join("deep/er"))?;
    for i in 0..150 {
        std::fs::write(dir.join(format!("char{i:03}.d2s")), b"x")?;
    }
    std::fs::write(dir.join("deep/er/shared.sss"), b"x")?;
    std::fs::write(dir.join("deep/private.D2X"), b"x")?;
    std::fs::write(dir.join("notes.txt"), b"x")?;
    let client = start(&[&dir]).await?;

    // resources/list: 100 per page, then the rest; every save and stash, nothing else.
    let first = client
        .list_resources(Some(PaginatedRequestParams::default()))
        .await?;
    assert_eq!(first.resources.len(), 100);
    let cursor = first.next_cursor.clone().ok_or("no next cursor")?;
    let second = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await?;
    assert_eq!(second.resources.len(), 52);
    assert!(second.next_cursor.is_none());
    let all = client.list_all_resources().await?;
    let uris: Vec<&str> = all.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris.len(), 152);
    assert!(uris.contains(&"d2://save/char000.d2s"), "{uris:?}");
    assert!(uris.contains(&"d2://save/deep/er/shared.sss"), "{uris:?}");
    assert!(uris.contains(&"d2://save/deep/private.D2X"), "{uris:?}");
    assert!(!uris.iter().any(|u| u.contains("notes")));
    let bad_cursor = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("x".into())),
        ))
        .await;
    assert!(
        matches!(&bad_cursor, Err(ServiceError::McpError(e))
            if e.code == ErrorCode::INVALID_PARAMS && e.message.contains("cursor \"x\"")),
        "{bad_cursor:?}"
    );

    // Completions: saves for compare_saves, saves and stashes for the template.
    let c = client
        .complete_prompt_argument("compare_saves", "before", "char1", None)
        .await?;
    assert_eq!(c.values.len(), 50, "{c:?}");
    assert!(c.values.iter().all(|v| v.starts_with("char1")));
    let c = client
        .complete_prompt_argument("compare_saves", "after", "", None)
        .await?;
    assert_eq!(
        (c.values.len(), c.total, c.has_more),
        (100, Some(150), Some(true))
    );
    let c = client
        .complete_resource_argument("d2://save/{path}", "path", "deep", None)
        .await?;
    assert_eq!(c.values, ["deep/er/shared.sss", "deep/private.D2X"]);
    let c = client
        .complete_prompt_argument("compare_saves", "nothing", "", None)
        .await?;
    assert!(c.values.is_empty());

    // Pids: the running fixture game is offered.
    let game = Game::native();
    let pid = game.pid().to_string();
    let c = client
        .complete_prompt_argument("analyze_character", "pid", "", None)
        .await?;
    assert!(c.values.contains(&pid), "{c:?} lacks {pid}");
    let c = client
        .complete_resource_argument("d2://character/{pid}", "pid", &pid, None)
        .await?;
    assert!(c.values.contains(&pid), "{c:?} lacks {pid}");
    drop(game);
    client.cancel().await?;
    Ok(())
}
