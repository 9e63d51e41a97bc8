//! Processes, their modules and their memory maps: where to start, and what
//! `Module.dll+0x...` addresses are relative to.

use super::{
    ListModulesArgs, ListProcessesArgs, ListRegionsArgs, MemoryServer, ModuleItem, RegionItem,
    target,
};
use crate::modules;
use crate::procfs::{self, ProcessInfo};
use mcp_common::{Address, Json, Page, ToolError, blocking};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};

#[tool_router(router = process_router, vis = "pub(super)")]
impl MemoryServer {
    #[tool(
        title = "List processes",
        description = "Running processes: pid, name, exe (Wine: the .exe), RSS. Start here to find \
             the game's pid.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_processes(
        &self,
        Parameters(a): Parameters<ListProcessesArgs>,
    ) -> Result<Json<Page<ProcessInfo>>, ToolError> {
        a.page.resolve()?;
        blocking(move || {
            let all = procfs::list_processes(a.name_contains.as_deref());
            Page::of(all, a.page)
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "List modules",
        description = "Loaded ELF and PE (Wine) images with base and size, for \
             Module.dll+0x... addresses.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_modules(
        &self,
        Parameters(a): Parameters<ListModulesArgs>,
    ) -> Result<Json<Page<ModuleItem>>, ToolError> {
        a.page.resolve()?;
        blocking(move || {
            let t = target(a.pid)?;
            let f = a.name_contains.map(|s| s.to_lowercase());
            let all = t
                .modules
                .into_iter()
                .filter(|m| f.as_ref().is_none_or(|f| m.name.to_lowercase().contains(f)))
                .map(|m| ModuleItem {
                    bits: (m.kind == modules::ModuleKind::Pe).then_some(if m.pe32 {
                        32
                    } else {
                        64
                    }),
                    kind: m.kind.name().into(),
                    end: Address(m.base.saturating_add(m.size)),
                    name: m.name,
                    path: m.path,
                    base: Address(m.base),
                    size: m.size,
                })
                .collect();
            Page::of(all, a.page)
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "List regions",
        description = "The memory map of a process, filtered by permission or module.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_regions(
        &self,
        Parameters(a): Parameters<ListRegionsArgs>,
    ) -> Result<Json<Page<RegionItem>>, ToolError> {
        a.page.resolve()?;
        blocking(move || {
            let t = target(a.pid)?;
            let module = t.module("module", a.module.as_deref())?;
            let all = t
                .regions
                .iter()
                .filter(|r| a.writable.is_none_or(|w| r.writable == w))
                .filter(|r| a.executable.is_none_or(|x| r.executable == x))
                .filter(|r| module.is_none_or(|m| m.contains(r.start)))
                .map(|r| RegionItem {
                    start: Address(r.start),
                    end: Address(r.end),
                    size: r.len(),
                    perms: r.perms(),
                    offset: r.offset,
                    path: r.path.clone(),
                    module: t
                        .modules
                        .iter()
                        .find(|m| m.contains(r.start))
                        .map(|m| m.name.clone()),
                })
                .collect();
            Page::of(all, a.page)
        })
        .await
        .map(Json)
    }
}
