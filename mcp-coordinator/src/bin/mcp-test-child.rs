//! A small MCP server for the coordinator's tests: it echoes, sleeps (and notes when it is
//! cancelled), sends progress, and crashes on command. Not part of the product.

use mcp_common::{Json, Summary, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct TestChild {
    tool_router: ToolRouter<Self>,
    /// Set by `add_tool`: the tool list then also holds `extra`.
    extra: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Deserialize, JsonSchema)]
struct SleepArgs {
    ms: u64,
    /// A file written when the call is cancelled.
    cancelled_marker: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct ProgressArgs {
    steps: u32,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Serialize, JsonSchema)]
struct Said {
    text: String,
    pid: u32,
}
impl Summary for Said {
    fn summary(&self) -> String {
        self.text.clone()
    }
}

#[tool_router]
impl TestChild {
    /// Answers the text and this process's pid.
    #[tool]
    async fn echo(&self, Parameters(a): Parameters<EchoArgs>) -> Result<Json<Said>, ToolError> {
        Ok(Json(Said {
            text: a.text,
            pid: std::process::id(),
        }))
    }

    /// Sleeps; writes `cancelled_marker` if the call is cancelled first.
    #[tool]
    async fn sleep(
        &self,
        Parameters(a): Parameters<SleepArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Said>, ToolError> {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(a.ms)) => {}
            _ = ctx.ct.cancelled() => {
                if let Some(m) = a.cancelled_marker {
                    let _ = std::fs::write(m, b"cancelled");
                }
                return Err(ToolError::new("cancelled"));
            }
        }
        Ok(Json(Said {
            text: "slept".into(),
            pid: std::process::id(),
        }))
    }

    /// Sends `steps` progress notifications, then answers.
    #[tool]
    async fn progress(
        &self,
        Parameters(a): Parameters<ProgressArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Said>, ToolError> {
        if let Some(token) = ctx.meta.get_progress_token() {
            for i in 1..=a.steps {
                let _ = ctx
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), i as f64)
                            .with_total(a.steps as f64),
                    )
                    .await;
            }
        }
        Ok(Json(Said {
            text: format!("{} steps", a.steps),
            pid: std::process::id(),
        }))
    }

    /// Adds the tool `extra` to the list and sends `tools/list_changed`.
    #[tool]
    async fn add_tool(
        &self,
        Parameters(_a): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Said>, ToolError> {
        self.extra.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = ctx.peer.notify_tool_list_changed().await;
        Ok(Json(Said {
            text: "added".into(),
            pid: std::process::id(),
        }))
    }

    /// Exits the process at once, as a crash.
    #[tool]
    async fn crash(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<Said>, ToolError> {
        std::process::exit(3);
    }
}

impl ServerHandler for TestChild {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        mcp_common::error::call_tool(&self.tool_router, self, request, context).await
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        let mut tools = self.tool_router.list_all();
        if self.extra.load(std::sync::atomic::Ordering::SeqCst) {
            let mut extra = tools
                .iter()
                .find(|t| t.name == "echo")
                .cloned()
                .ok_or_else(|| rmcp::ErrorData::internal_error("no echo tool", None))?;
            extra.name = "extra".into();
            tools.push(extra);
        }
        Ok(rmcp::model::ListToolsResult::with_all_items(tools))
    }
}

/// `--http ADDR` serves over streamable HTTP (the benchmarks compare proxies over HTTP).
#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    common: mcp_common::serve::CommonArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    let extra = std::sync::Arc::<std::sync::atomic::AtomicBool>::default();
    let factory = move || TestChild {
        tool_router: TestChild::tool_router(),
        extra: extra.clone(),
    };
    match mcp_common::serve::run(&cli.common, factory).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
