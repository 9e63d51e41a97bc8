//! Watching: a value sampled periodically, with its changes.

use super::{
    MemoryServer, Sample, WatchAnswer, WatchArgs, check_range, mem_error, target, track_control,
};
use crate::scan::Control;
use mcp_common::{Address, Json, ToolError, blocking};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tool_router(router = watch_router, vis = "pub(super)")]
impl MemoryServer {
    #[tool(
        title = "Watch value",
        description = "Samples a value periodically, returning its changes while you act in game.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn watch(
        &self,
        Parameters(a): Parameters<WatchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<WatchAnswer>, ToolError> {
        let interval = check_range("interval_ms", a.interval_ms, 10, 60_000)?;
        let samples = check_range("samples", a.samples, 1, 10_000)?;
        let size = a.value_type.size().ok_or_else(|| {
            ToolError::invalid(
                "value_type",
                a.value_type.name(),
                "accepted: a numeric type",
            )
        })?;
        let ctl = Arc::new(Control::default());
        ctl.total.store(samples as u64, Ordering::Relaxed);
        let _progress = track_control(&ctx, &ctl, Some("samples"));
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            t.span("address", addr, size as u64, a.value_type.name())?;
            let interval = Duration::from_millis(interval);
            let series = crate::watch::watch(&t.mem, addr, size, interval, samples, &ctl)
                .map_err(|e| mem_error(e, a.pid))?;
            Ok(WatchAnswer {
                address: Address(addr),
                value_type: a.value_type.name().into(),
                samples: series.samples,
                duration_ms: series.duration_ms,
                changes: series
                    .changes
                    .iter()
                    .map(|(t_ms, bytes)| Sample {
                        t_ms: *t_ms,
                        value: a.value_type.to_json(bytes),
                    })
                    .collect(),
                change_count: series.change_count,
                unreadable: series.unreadable,
            })
        })
        .await
        .map(Json)
    }
}
