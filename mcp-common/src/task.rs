//! Running analysis work from async tool handlers.

use crate::ToolError;

/// Runs blocking work (file parsing, memory reads, packet decoding) on tokio's blocking pool,
/// so that the protocol keeps flowing while it runs.
pub async fn blocking<T, F>(f: F) -> Result<T, ToolError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ToolError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::new(format!("the analysis task failed: {e}")))?
}

/// The `ServerHandler` methods every server shares: tool calls through
/// [`crate::error::call_tool`] (argument errors become `isError`), the tool list and lookup.
/// Use inside `impl ServerHandler for S`, where `S` has a `tool_router` field.
#[macro_export]
macro_rules! tool_handler_methods {
    () => {
        async fn call_tool(
            &self,
            request: rmcp::model::CallToolRequestParams,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
            $crate::error::call_tool(&self.tool_router, self, request, context).await
        }

        async fn list_tools(
            &self,
            _request: Option<rmcp::model::PaginatedRequestParams>,
            _context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
            Ok(rmcp::model::ListToolsResult::with_all_items(
                self.tool_router
                    .list_all()
                    .into_iter()
                    .map($crate::schema::for_listing)
                    .collect(),
            ))
        }

        fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
            self.tool_router
                .get(name)
                .cloned()
                .map($crate::schema::for_listing)
        }
    };
}
