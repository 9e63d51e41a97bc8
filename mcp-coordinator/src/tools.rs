//! The coordinator as an MCP server: its own tools (servers_status, servers_restart,
//! fan_out) and every child tool as `<prefix>__<tool>`, definitions and results forwarded
//! untouched.

use crate::child::{CallError, Child, ChildStatus};
use crate::config::valid_name;
use mcp_common::{Json, Summary, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// Separates a child's prefix from its tool name.
pub const SEPARATOR: &str = "__";

#[derive(Clone)]
pub struct Coordinator {
    children: Arc<Vec<Arc<Child>>>,
    tool_router: ToolRouter<Self>,
}

impl Coordinator {
    pub fn new(children: Arc<Vec<Arc<Child>>>) -> Self {
        Self {
            children,
            tool_router: Self::tool_router(),
        }
    }

    fn child(&self, prefix: &str) -> Option<&Arc<Child>> {
        self.children.iter().find(|c| c.spec.prefix == prefix)
    }

    /// Every exposed child tool under its namespaced name.
    fn child_tools(&self) -> Vec<Tool> {
        let mut out = Vec::new();
        for c in self.children.iter() {
            for mut t in c.tools() {
                if !c.spec.exposes(&t.name) {
                    continue;
                }
                let name = format!("{}{SEPARATOR}{}", c.spec.prefix, t.name);
                if !valid_name(&name) {
                    tracing::warn!(%name, "tool name not valid for MCP hosts: left out");
                    continue;
                }
                t.name = name.into();
                out.push(t);
            }
        }
        out
    }

    /// Routes `<prefix>__<tool>` to its child; `None` when no child has that prefix.
    async fn forward(
        &self,
        mut params: CallToolRequestParams,
        progress: Option<(rmcp::Peer<RoleServer>, rmcp::model::ProgressToken)>,
    ) -> Option<CallToolResult> {
        let (prefix, tool) = params.name.split_once(SEPARATOR)?;
        let (prefix, tool) = (prefix.to_string(), tool.to_string());
        let child = self.child(&prefix)?;
        if !child.spec.exposes(&tool) {
            return None;
        }
        params.name = tool.clone().into();
        Some(match child.call(params, progress).await {
            Ok(mut r) => {
                // The child spoke the protocol version it agreed with the coordinator; the
                // discriminator is restored so hosts on newer versions get a complete result
                // (rmcp drops it again for hosts on older ones). Content is untouched.
                r.result_type
                    .get_or_insert(rmcp::model::ResultType::COMPLETE);
                r
            }
            Err(CallError::Timeout(t)) => error_result(format!(
                "{prefix}{SEPARATOR}{tool} timed out after {} s; the call was cancelled in the child",
                t.as_secs_f64()
            )),
            Err(CallError::Unavailable(m)) | Err(CallError::Failed(m)) => error_result(m),
        })
    }
}

fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RestartArgs {
    /// The child's name (servers_status lists them).
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FanCall {
    /// A namespaced tool, e.g. `static__binary_info`.
    pub tool: String,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FanOutArgs {
    /// The calls, run concurrently (1 to 64).
    pub calls: Vec<FanCall>,
    /// Most calls running at once (default 8).
    pub max_parallel: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Servers {
    pub servers: Vec<ChildStatus>,
}
impl Summary for Servers {
    fn summary(&self) -> String {
        let each: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{} {:?}", s.name, s.state).to_lowercase())
            .collect();
        each.join(", ")
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FanResult {
    pub tool: String,
    pub is_error: bool,
    /// The text content of the result.
    pub text: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FanOut {
    /// One result per call, in the order of `calls`, errors included.
    pub results: Vec<FanResult>,
}
impl Summary for FanOut {
    fn summary(&self) -> String {
        let errors = self.results.iter().filter(|r| r.is_error).count();
        format!("{} calls, {errors} errors", self.results.len())
    }
}

#[tool_router]
impl Coordinator {
    /// Every child server: state (starting, running, restarting, failed), pid, restarts,
    /// last error, uptime, tools, calls, errors, mean latency.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn servers_status(
        &self,
        Parameters(_a): Parameters<NoArgs>,
    ) -> Result<Json<Servers>, ToolError> {
        Ok(Json(Servers {
            servers: self.children.iter().map(|c| c.status()).collect(),
        }))
    }

    /// Restarts a child by hand, closing its circuit breaker.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = false
    ))]
    async fn servers_restart(
        &self,
        Parameters(a): Parameters<RestartArgs>,
    ) -> Result<Json<Servers>, ToolError> {
        let child = self
            .children
            .iter()
            .find(|c| c.spec.name == a.name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.children.iter().map(|c| c.spec.name.as_str()).collect();
                ToolError::invalid(
                    "name",
                    format!("{:?}", a.name),
                    format!("known servers: {}", names.join(", ")),
                )
            })?;
        child
            .restart()
            .await
            .map_err(|e| ToolError::new(format!("{} did not start: {e}", a.name)))?;
        Ok(Json(Servers {
            servers: vec![child.status()],
        }))
    }

    /// Runs several child calls concurrently and returns every result (errors included) in
    /// the order given.
    #[tool(annotations(
        read_only_hint = false,
        destructive_hint = false,
        open_world_hint = false
    ))]
    async fn fan_out(
        &self,
        Parameters(a): Parameters<FanOutArgs>,
    ) -> Result<Json<FanOut>, ToolError> {
        if a.calls.is_empty() || a.calls.len() > 64 {
            return Err(ToolError::invalid(
                "calls",
                format!("{} calls", a.calls.len()),
                "accepted: 1 to 64",
            ));
        }
        let parallel = a.max_parallel.unwrap_or(8);
        if parallel == 0 || parallel > 64 {
            return Err(ToolError::invalid(
                "max_parallel",
                parallel,
                "accepted: 1 to 64",
            ));
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut tasks = Vec::new();
        for c in a.calls {
            let me = self.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let tool = c.tool.clone();
                let params = CallToolRequestParams::new(c.tool).with_arguments(c.arguments);
                let r = me.forward(params, None).await.unwrap_or_else(|| {
                    error_result(format!(
                        "unknown tool {tool:?}: use a namespaced child tool (prefix__tool)"
                    ))
                });
                FanResult {
                    tool,
                    is_error: r.is_error == Some(true),
                    text: r
                        .content
                        .iter()
                        .filter_map(|b| b.as_text().map(|t| t.text.clone()))
                        .collect(),
                    structured_content: r.structured_content,
                }
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(
                t.await
                    .map_err(|e| ToolError::new(format!("a fan-out call failed: {e}")))?,
            );
        }
        Ok(Json(FanOut { results }))
    }
}

impl ServerHandler for Coordinator {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-coordinator",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "One endpoint for the analysis suite: every child server's tools appear as \
                 <server>__<tool> (static__binary_info, memory__scan_start, d2__character, ...). \
                 servers_status shows the children; fan_out runs several calls at once.",
            )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.tool_router.has_route(&request.name) {
            return mcp_common::error::call_tool(&self.tool_router, self, request, context).await;
        }
        let name = request.name.to_string();
        let progress = context
            .meta
            .get_progress_token()
            .map(|t| (context.peer.clone(), t));
        match self.forward(request, progress).await {
            Some(r) => Ok(r.into()),
            None => Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            )),
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut all = self.tool_router.list_all();
        all.extend(self.child_tools());
        Ok(ListToolsResult::with_all_items(all))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router
            .get(name)
            .cloned()
            .or_else(|| self.child_tools().into_iter().find(|t| t.name == name))
    }
}
