//! Priority lanes through the coordinator, as a host meets them: with the low lane full of
//! slow calls, a high-lane call starts at once; a queued call is told how many are ahead,
//! leaves the queue when the host cancels it, and keeps its timeout while it waits.

mod common;

use common::{COORDINATOR, TEST_CHILD, tmp, write_config};
use mcp_testkit::Error;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A host that keeps the progress messages it is sent.
#[derive(Clone, Default)]
struct Host {
    messages: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Host {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let (Ok(mut m), Some(text)) = (self.messages.lock(), params.message) {
            m.push(text);
        }
    }
}

type Service = RunningService<RoleClient, Host>;

/// The test child with its calls in the low lane (one at a time) except `echo`, which is
/// high; `add_tool` is low with a 1 s timeout.
async fn start(dir: &Path) -> Result<(Arc<Service>, Host), Error> {
    let text = format!(
        "[coordinator.lanes]\nlow = 1\n\n\
         [[servers]]\nname = \"child\"\ncommand = \"{TEST_CHILD}\"\nlane = \"low\"\n\
         tool_timeouts = {{ add_tool = 1 }}\n\
         [servers.tool_lanes]\necho = \"high\"\n"
    );
    let cfg = write_config(dir, "c.toml", &text)?;
    let mut cmd = tokio::process::Command::new(COORDINATOR);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stderr(std::process::Stdio::null());
    let host = Host::default();
    let service = host.clone().serve(TokioChildProcess::new(cmd)?).await?;
    Ok((Arc::new(service), host))
}

fn call(name: &str, args: Value) -> ClientRequest {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = args.as_object().cloned();
    ClientRequest::CallToolRequest(CallToolRequest::new(params))
}

/// A tool call's structured content and whether it was an error.
async fn answer(service: &Service, name: &str, args: Value) -> Result<(bool, Value), Error> {
    match service.send_request(call(name, args)).await? {
        ServerResult::CallToolResult(r) => Ok((
            r.is_error == Some(true),
            r.structured_content.unwrap_or_else(|| {
                json!(
                    r.content
                        .first()
                        .and_then(|c| c.as_text())
                        .map(|t| t.text.clone())
                )
            }),
        )),
        other => Err(format!("{name}: not a tool result: {other:?}").into()),
    }
}

/// The child's low lane as `servers_status` reports it (lanes are listed from a server's
/// first call on: empty before).
async fn low_lane(service: &Service) -> Result<Value, Error> {
    let (_, status) = answer(service, "servers_status", json!({})).await?;
    Ok(status["lanes"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|l| l["lane"] == "low" && l["server"] == "child")
                .cloned()
        })
        .unwrap_or_else(|| json!({"queued": 0, "running": 0})))
}

/// Waits until `n` calls are queued in the low lane.
async fn queued(service: &Service, n: u64) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let low = low_lane(service).await?;
        if low["queued"].as_u64() == Some(n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the low lane never had {n} queued: {low}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_high_call_starts_while_the_low_lane_is_full() -> Result<(), Error> {
    let dir = tmp("lanes-high")?;
    let (service, host) = start(dir.path()).await?;
    // One slow call runs in the low lane, two wait behind it.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let s = service.clone();
        slow.push(tokio::spawn(async move {
            answer(&s, "child__sleep", json!({"ms": 3000})).await
        }));
    }
    queued(&service, 2).await?;
    let (is_error, echoed) = answer(&service, "child__echo", json!({"text": "now"})).await?;
    assert!(!is_error, "{echoed}");
    // The high call was answered while the low lane still had work waiting.
    assert!(
        slow.iter().all(|s| !s.is_finished()),
        "the high call waited for the low lane"
    );
    let low = low_lane(&service).await?;
    assert_eq!(low["running"], 1, "{low}");
    assert_eq!(low["limit"], 1, "{low}");
    for s in slow {
        let (is_error, r) = s.await??;
        assert!(!is_error, "{r}");
    }
    let low = low_lane(&service).await?;
    assert_eq!(
        (low["queued"].as_u64(), low["started"].as_u64()),
        (Some(0), Some(3)),
        "{low}"
    );
    assert_eq!(low["waited"], 2, "{low}");
    // The waiting calls were told where they stood.
    let messages = host.messages.lock().map(|m| m.clone()).unwrap_or_default();
    for expected in [
        "queued in the low lane, 1 ahead",
        "queued in the low lane, 0 ahead",
    ] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no {expected:?} in {messages:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_queued_call_leaves_on_cancel_and_keeps_its_timeout() -> Result<(), Error> {
    let dir = tmp("lanes-cancel")?;
    let (service, _host) = start(dir.path()).await?;
    let running = {
        let s = service.clone();
        tokio::spawn(async move { answer(&s, "child__sleep", json!({"ms": 4000})).await })
    };
    while low_lane(&service).await?["running"] != 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A queued call the host cancels leaves the queue.
    let handle = service
        .send_cancellable_request(
            call("child__sleep", json!({"ms": 10})),
            PeerRequestOptions::no_options(),
        )
        .await?;
    queued(&service, 1).await?;
    handle.cancel(Some("test".into())).await?;
    queued(&service, 0).await?;
    // A queued call whose timeout (1 s) passes before it gets a place did not run.
    let (is_error, text) = answer(&service, "child__add_tool", json!({})).await?;
    assert!(is_error, "{text}");
    let text = text.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("child__add_tool waited 1 s in the low lane") && text.contains("did not run"),
        "{text}"
    );
    // It never ran: the tool it adds is not there.
    let tools = service.list_all_tools().await?;
    assert!(
        tools.iter().all(|t| t.name != "child__extra"),
        "add_tool ran"
    );
    let (is_error, r) = running.await??;
    assert!(!is_error, "{r}");
    Ok(())
}
