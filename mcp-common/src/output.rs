//! Structured tool output with a one-line summary.
//!
//! rmcp's own `Json<T>` puts only the JSON into the text content. Hosts that show the model
//! only `content` then see a wall of JSON with no headline, so this wrapper sends two text
//! blocks (a one-line summary, then the JSON) beside `structuredContent`. It is named `Json`
//! on purpose: rmcp's `#[tool]` macro derives the `outputSchema` from any return type whose
//! last path segment is `Json<T>`, so tools get their schema without repeating it.

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::Serialize;

/// A one-line, human-readable headline of a result.
pub trait Summary {
    fn summary(&self) -> String;
}

/// A structured result: `structuredContent` plus a one-line summary and the JSON as text.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: JsonSchema> JsonSchema for Json<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<T: Serialize + Summary> IntoCallToolResult for Json<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        let summary = self.0.summary();
        let value = serde_json::to_value(&self.0).map_err(|e| {
            rmcp::ErrorData::internal_error(format!("cannot serialise the result: {e}"), None)
        })?;
        let text = value.to_string();
        let mut result =
            CallToolResult::success(vec![ContentBlock::text(summary), ContentBlock::text(text)]);
        result.structured_content = Some(value);
        Ok(result.into())
    }
}
