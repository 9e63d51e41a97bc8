//! Writes and their undo: the only tools that change a process, routed only when the
//! server runs with `--allow-write`.

use super::{
    MemoryServer, UndoAnswer, UndoWriteArgs, WriteAnswer, WriteMemoryArgs, check_range, hex_bytes,
    mem_error, target,
};
use mcp_common::{Address, Json, ToolError, blocking};
use mcp_static::pattern::Pattern;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};

#[tool_router(router = write_router, vis = "pub(super)")]
impl MemoryServer {
    #[tool(
        title = "Write memory",
        description = "Writes bytes or a typed value (needs --allow-write); undo_write \
             restores them.",
        annotations(destructive_hint = true, open_world_hint = false)
    )]
    async fn write_memory(
        &self,
        Parameters(a): Parameters<WriteMemoryArgs>,
    ) -> Result<Json<WriteAnswer>, ToolError> {
        if !self.allow_write {
            return Err(ToolError::new(
                "writing is disabled: start the server with --allow-write",
            ));
        }
        let data: Vec<u8> = match (&a.bytes, &a.value, a.value_type) {
            (Some(b), None, _) => {
                let p = Pattern::parse(b)
                    .map_err(|e| ToolError::invalid("bytes", format!("{b:?}"), e))?;
                p.0.iter()
                    .map(|x| {
                        x.ok_or_else(|| {
                            ToolError::invalid(
                                "bytes",
                                format!("{b:?}"),
                                "wildcards cannot be written",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            (None, Some(v), Some(t)) => {
                t.encode(v).map_err(|e| ToolError::invalid("value", v, e))?
            }
            _ => {
                return Err(ToolError::invalid(
                    "bytes|value",
                    "neither or both",
                    "give `bytes`, or `value` with `value_type`",
                ));
            }
        };
        check_range("bytes", data.len(), 1, 4096)?;
        let writes = self.writes.clone();
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            t.span("address", addr, data.len() as u64, "bytes")?;
            let w = writes
                .write(&t.mem, a.pid, addr, &data)
                .map_err(|e| mem_error(e, a.pid))?;
            Ok(WriteAnswer {
                write_id: w.id,
                address: Address(addr),
                old_bytes: hex_bytes(&w.old),
                new_bytes: hex_bytes(&data),
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Undo write",
        description = "Restores the bytes a write_memory replaced.",
        annotations(destructive_hint = true, open_world_hint = false)
    )]
    async fn undo_write(
        &self,
        Parameters(a): Parameters<UndoWriteArgs>,
    ) -> Result<Json<UndoAnswer>, ToolError> {
        let writes = self.writes.clone();
        blocking(move || {
            let u = writes.undo(&a.write_id).map_err(|e| match e {
                crate::writes::UndoError::Unknown => ToolError::invalid(
                    "write_id",
                    format!("{:?}", a.write_id),
                    "unknown write id (write_memory returns one)",
                ),
                crate::writes::UndoError::AlreadyUndone => {
                    ToolError::invalid("write_id", format!("{:?}", a.write_id), "already undone")
                }
                crate::writes::UndoError::Memory(pid, e) => mem_error(e, pid),
            })?;
            Ok(UndoAnswer {
                write_id: a.write_id,
                address: Address(u.address),
                restored: hex_bytes(&u.restored),
                warning: u.found.map(|now| {
                    format!(
                        "the memory held {} instead of what was written; restored anyway",
                        hex_bytes(&now)
                    )
                }),
            })
        })
        .await
        .map(Json)
    }
}
