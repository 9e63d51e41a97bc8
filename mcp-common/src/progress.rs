//! Progress notifications and cancellation for long tool calls.
//!
//! The analysis runs on a blocking thread and only updates counters; `track` polls them
//! from the async side and sends `notifications/progress` when the host asked for progress
//! (a `progressToken` in the request), and calls `on_cancel` when the host cancels.

use rmcp::RoleServer;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use std::time::Duration;

/// Sends progress until dropped.
#[derive(Debug)]
pub struct Tracker {
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// How often progress is sent.
const PERIOD: Duration = Duration::from_millis(200);

/// Starts tracking: `poll` returns (progress, total, message); `on_cancel` runs once if the
/// host cancels the request.
pub fn track<P, C>(ctx: &RequestContext<RoleServer>, poll: P, on_cancel: C) -> Tracker
where
    P: Fn() -> (f64, Option<f64>, Option<String>) + Send + 'static,
    C: FnOnce() + Send + 'static,
{
    let token = ctx.meta.get_progress_token();
    let peer = ctx.peer.clone();
    let ct = ctx.ct.clone();
    let handle = tokio::spawn(async move {
        let mut last = f64::NEG_INFINITY;
        let mut on_cancel = Some(on_cancel);
        loop {
            tokio::select! {
                _ = ct.cancelled() => {
                    if let Some(f) = on_cancel.take() {
                        f();
                    }
                    return;
                }
                _ = tokio::time::sleep(PERIOD) => {}
            }
            let Some(token) = &token else { continue };
            let (progress, total, message) = poll();
            if progress > last {
                last = progress;
                let mut p = ProgressNotificationParam::new(token.clone(), progress);
                if let Some(t) = total {
                    p = p.with_total(t);
                }
                if let Some(m) = message {
                    p = p.with_message(m);
                }
                if peer.notify_progress(p).await.is_err() {
                    return;
                }
            }
        }
    });
    Tracker { handle }
}
