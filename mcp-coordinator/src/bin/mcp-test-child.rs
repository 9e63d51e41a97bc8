//! A small MCP server for the coordinator's tests: it echoes (large results too), sleeps (and
//! notes when it is cancelled), sends progress, crashes on command, and offers resources
//! (`test://static`, `test://blob`, templates `test://echo/{text}` and
//! `test://error/{message}`). Not part of the product.

use mcp_common::{Json, Summary, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    ProgressNotificationParam, Resource, ResourceContents, ResourceTemplate, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct TestChild {
    tool_router: ToolRouter<Self>,
    /// Set by `add_tool`: the tool list then also holds `extra`.
    extra: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set by `add_resource`: the resource list then also holds `test://added`.
    extra_resource: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether it offers resources (`--no-resources`: two of it under one coordinator).
    resources: bool,
}

/// The most bytes `echo` answers (its text times `repeat`).
const MAX_ECHO: usize = 16 << 20;

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    text: String,
    /// The text is answered this many times over (default 1), for large results.
    repeat: Option<usize>,
}

const STATIC_TEXT: &str = "the static resource of the test child";

#[derive(Deserialize, JsonSchema)]
struct SleepArgs {
    ms: u64,
    /// A file written when the call is cancelled.
    cancelled_marker: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct ProgressArgs {
    steps: u32,
    /// Milliseconds between two steps (default 0).
    interval_ms: Option<u64>,
    /// A file written when the call is cancelled between two steps.
    cancelled_marker: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Serialize, JsonSchema)]
struct Said {
    text: String,
    pid: u32,
}
/// A result as a third-party server may send it: summary, JSON text and structured content,
/// without the suite's size bound (`mcp_common::Json` refuses large answers).
struct Unbounded(Said);

impl rmcp::handler::server::tool::IntoCallToolResult for Unbounded {
    fn into_call_tool_result(self) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let value = serde_json::to_value(&self.0)
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))?;
        let mut r = rmcp::model::CallToolResult::success(vec![
            rmcp::model::ContentBlock::text(self.0.summary()),
            rmcp::model::ContentBlock::text(value.to_string()),
        ]);
        r.structured_content = Some(value);
        Ok(r.into())
    }
}

impl Summary for Said {
    fn summary(&self) -> String {
        self.text.clone()
    }
}

#[tool_router]
impl TestChild {
    /// Answers the text (`repeat` times over) and this process's pid. Unlike the suite's
    /// servers it answers any size (up to 4 MiB): a child the coordinator proxies need not
    /// keep the suite's bound, and large results must pass intact.
    #[tool]
    async fn echo(&self, Parameters(a): Parameters<EchoArgs>) -> Result<Unbounded, ToolError> {
        let repeat = a.repeat.unwrap_or(1);
        let size = a.text.len().saturating_mul(repeat);
        if repeat == 0 || size > MAX_ECHO {
            return Err(ToolError::invalid(
                "repeat",
                repeat,
                format!(
                    "accepted: 1 or more, with text x repeat at most {MAX_ECHO} bytes (here \
                     {size})"
                ),
            ));
        }
        Ok(Unbounded(Said {
            text: a.text.repeat(repeat),
            pid: std::process::id(),
        }))
    }

    /// Adds the resource `test://added` to the list and sends `resources/list_changed`.
    #[tool]
    async fn add_resource(
        &self,
        Parameters(_a): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Said>, ToolError> {
        self.extra_resource
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = ctx.peer.notify_resource_list_changed().await;
        Ok(Json(Said {
            text: "added".into(),
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

    /// Sends `steps` progress notifications (`interval_ms` apart), then answers.
    #[tool]
    async fn progress(
        &self,
        Parameters(a): Parameters<ProgressArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Said>, ToolError> {
        let interval = std::time::Duration::from_millis(a.interval_ms.unwrap_or(0));
        if let Some(token) = ctx.meta.get_progress_token() {
            for i in 1..=a.steps {
                if !interval.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = ctx.ct.cancelled() => {
                            if let Some(m) = &a.cancelled_marker {
                                let _ = std::fs::write(m, b"cancelled");
                            }
                            return Err(ToolError::new("cancelled"));
                        }
                    }
                }
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
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .build();
        if !self.resources {
            capabilities.resources = None;
        }
        ServerConfig::new(capabilities)
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let mut all = vec![
            Resource::new("test://static", "static")
                .with_title("A fixed text")
                .with_description("Always the same text")
                .with_mime_type("text/plain")
                .with_size(STATIC_TEXT.len() as u64),
            Resource::new("test://blob", "blob")
                .with_description("Ten bytes, 0 to 9")
                .with_mime_type("application/octet-stream"),
        ];
        if self
            .extra_resource
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            all.push(Resource::new("test://added", "added").with_mime_type("text/plain"));
        }
        Ok(rmcp::model::ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, rmcp::ErrorData> {
        Ok(rmcp::model::ListResourceTemplatesResult::with_all_items(
            vec![
                ResourceTemplate::new("test://echo/{text}", "echo")
                    .with_description("The text after test://echo/")
                    .with_mime_type("text/plain"),
                ResourceTemplate::new("test://error/{message}", "error")
                    .with_description("Fails with the message"),
            ],
        ))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, rmcp::ErrorData> {
        let uri = request.uri.clone();
        let contents = if uri == "test://static" {
            ResourceContents::text(STATIC_TEXT, uri).with_mime_type("text/plain")
        } else if uri == "test://added" {
            ResourceContents::text("added later", uri).with_mime_type("text/plain")
        } else if uri == "test://blob" {
            // 0x00..=0x09 in base64.
            ResourceContents::blob("AAECAwQFBgcICQ==", uri)
                .with_mime_type("application/octet-stream")
        } else if let Some(text) = uri.strip_prefix("test://echo/") {
            ResourceContents::text(text, uri.clone()).with_mime_type("text/plain")
        } else if let Some(message) = uri.strip_prefix("test://error/") {
            return Err(rmcp::ErrorData::resource_not_found(
                format!("test child: {message}"),
                Some(serde_json::json!({"uri": uri})),
            ));
        } else {
            return Err(rmcp::ErrorData::resource_not_found(
                format!("test child has no resource {uri:?}"),
                None,
            ));
        };
        Ok(rmcp::model::ReadResourceResult::new(vec![contents]).into())
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
    /// Start with the `extra` tool already listed (a server that comes back with other tools).
    #[arg(long)]
    with_extra: bool,
    /// Offer no resources, so that two of it can run under one coordinator.
    #[arg(long)]
    no_resources: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    let extra = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(cli.with_extra));
    let extra_resource = std::sync::Arc::<std::sync::atomic::AtomicBool>::default();
    let factory = move || TestChild {
        tool_router: TestChild::tool_router(),
        extra: extra.clone(),
        extra_resource: extra_resource.clone(),
        resources: !cli.no_resources,
    };
    match mcp_common::serve::run(&cli.common, factory).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
