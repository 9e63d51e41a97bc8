//! One error type for every tool: it becomes an `isError` result whose text names the
//! argument, the value given and what would have been accepted.

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use std::fmt;

/// A tool failure that the host (and the model behind it) should read and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    message: String,
}

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// A bad argument: `field` was `value`, `accepted` says what would be taken.
    pub fn invalid(field: &str, value: impl fmt::Display, accepted: impl fmt::Display) -> Self {
        Self::new(format!("invalid argument `{field}`: {value} ({accepted})"))
    }

    /// Adds what was being done when the error happened.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self::new(format!("{what}: {}", self.message))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

impl From<String> for ToolError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ToolError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        tracing::debug!(error = %self.message, "tool error");
        Ok(CallToolResult::error(vec![ContentBlock::text(self.message)]).into())
    }
}

/// Runs a tool call through `router`, turning argument errors (wrong type, missing field,
/// unknown value) of a known tool into an `isError` result the model can read and correct,
/// instead of a JSON-RPC error many hosts hide. Unknown tools stay protocol errors.
pub async fn call_tool<S: Send + Sync + 'static>(
    router: &rmcp::handler::server::router::tool::ToolRouter<S>,
    server: &S,
    request: rmcp::model::CallToolRequestParams,
    context: rmcp::service::RequestContext<rmcp::RoleServer>,
) -> Result<CallToolResponse, rmcp::ErrorData> {
    let name = request.name.to_string();
    let known = router.has_route(&name);
    let tcc = rmcp::handler::server::tool::ToolCallContext::new(server, request, context);
    match router.call(tcc).await {
        Err(e) if known && e.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
            let text = format!("invalid arguments for `{name}`: {}", e.message);
            Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into())
        }
        other => other,
    }
}
