//! Snapshots: copies of a memory range, and typed diffs between two of them.

use super::{
    CellItem, DiffAnswer, DiffSnapshotsArgs, MAX_SNAPSHOT, MemoryServer, RangeItem, SnapshotAnswer,
    SnapshotArgs, check_range, mem_error, target,
};
use crate::freeze::Frozen;
use crate::reader::MemError;
use crate::snapshot::{self, Snapshot};
use crate::store::Item;
use mcp_common::paging::MAX_ANSWER_BYTES;
use mcp_common::{Address, Json, ToolError, blocking};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use std::sync::Arc;

#[tool_router(router = snapshot_router, vis = "pub(super)")]
impl MemoryServer {
    #[tool(
        title = "Snapshot",
        description = "Copies memory for diff_snapshots: take one before and one after a game \
             action.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn snapshot(
        &self,
        Parameters(a): Parameters<SnapshotArgs>,
    ) -> Result<Json<SnapshotAnswer>, ToolError> {
        check_range("length", a.length, 1, MAX_SNAPSHOT)?;
        let store = self.store.clone();
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            t.span("address", addr, a.length as u64, "length")?;
            let frozen = if a.freeze.unwrap_or(false) {
                Some(Frozen::new(a.pid).map_err(ToolError::new)?)
            } else {
                None
            };
            let snap = Snapshot::take(&t.mem, addr, a.length).map_err(|e| mem_error(e, a.pid))?;
            let frozen_threads = frozen.as_ref().map_or(0, Frozen::threads);
            drop(frozen);
            if snap.unreadable.len() as u64 * crate::reader::PAGE >= a.length as u64 {
                return Err(mem_error(MemError::Unmapped(addr), a.pid));
            }
            let unreadable_pages = snap.unreadable.len();
            let id = store
                .insert("snap", Item::Snapshot(Arc::new(snap)), a.length as u64)
                .map_err(ToolError::new)?;
            Ok(SnapshotAnswer {
                snapshot_id: id,
                pid: a.pid,
                address: Address(addr),
                length: a.length,
                unreadable_pages,
                frozen_threads,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Diff snapshots",
        description = "What changed between two snapshots of one range, as typed cells merged \
             into ranges.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn diff_snapshots(
        &self,
        Parameters(a): Parameters<DiffSnapshotsArgs>,
    ) -> Result<Json<DiffAnswer>, ToolError> {
        let (offset, limit) = a.page.resolve()?;
        let get = |field: &str, id: &str| {
            self.store
                .snapshot(id)
                .map_err(|e| ToolError::invalid(field, format!("{id:?}"), e))
        };
        let before = get("before", &a.before)?;
        let after = get("after", &a.after)?;
        if a.value_type.size().is_none() {
            return Err(ToolError::invalid(
                "value_type",
                a.value_type.name(),
                "accepted: a numeric type (u8..u64, i8..i64, f32, f64, ptr32, ptr64)",
            ));
        }
        blocking(move || {
            let ranges = snapshot::diff(&before, &after, a.value_type)
                .map_err(|e| ToolError::invalid("after", format!("{:?}", a.after), e))?;
            let changed_cells = ranges.iter().map(|r| r.cells.len()).sum();
            let total = ranges.len();
            let mut items = Vec::new();
            let mut bytes = 0;
            for r in ranges.into_iter().skip(offset).take(limit) {
                let item = RangeItem {
                    address: Address(r.address),
                    length: r.length,
                    cells: r
                        .cells
                        .into_iter()
                        .take(64)
                        .map(|c| CellItem {
                            address: Address(c.address),
                            old: c.old,
                            new: c.new,
                        })
                        .collect(),
                };
                bytes += serde_json::to_vec(&item).map_or(0, |v| v.len());
                if bytes > MAX_ANSWER_BYTES && !items.is_empty() {
                    break;
                }
                items.push(item);
            }
            let end = offset + items.len();
            Ok(DiffAnswer {
                value_type: a.value_type.name().into(),
                total,
                changed_cells,
                offset,
                next_offset: (end < total).then_some(end),
                items,
            })
        })
        .await
        .map(Json)
    }
}
