//! A small MCP server for the coordinator's tests: it echoes, sleeps (and notes when it is
//! cancelled), sends progress, and crashes on command. Not part of the product.

use mcp_common::{Json, Summary, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, ServiceExt, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct TestChild {
    tool_router: ToolRouter<Self>,
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

    /// Exits the process at once, as a crash.
    #[tool]
    async fn crash(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<Said>, ToolError> {
        std::process::exit(3);
    }
}

impl ServerHandler for TestChild {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    mcp_common::tool_handler_methods!();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let server = TestChild {
        tool_router: TestChild::tool_router(),
    };
    match server.serve(rmcp::transport::io::stdio_pipes()).await {
        Ok(s) => {
            let _ = s.waiting().await;
            std::process::ExitCode::SUCCESS
        }
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
