//! Structured tool output with a one-line summary.
//!
//! rmcp's own `Json<T>` puts only the JSON into the text content. Hosts that show the model
//! only `content` then see a wall of JSON with no headline, so this wrapper sends two text
//! blocks (a one-line summary, then the JSON) beside `structuredContent`. It is named `Json`
//! on purpose: rmcp's `#[tool]` macro derives the `outputSchema` from any return type whose
//! last path segment is `Json<T>`, so tools get their schema without repeating it.
//!
//! The JSON is repeated as text on purpose: the MCP specification asks for it, and most hosts
//! (Claude Desktop among them) give the model only `content`, never `structuredContent`. Both
//! together stay under [`MAX_WIRE_BYTES`]: pages are cut at [`crate::paging::MAX_ANSWER_BYTES`],
//! and an answer whose JSON would still exceed [`MAX_JSON_BYTES`] is refused with a message
//! saying how large it was, instead of flooding the model's context.

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::Serialize;
use suite_core::paging::{Noun, Page};

/// The bound every answer keeps on the wire (text and structured content together).
pub const MAX_WIRE_BYTES: usize = 100_000;
/// The most JSON one answer may carry: twice this (text and structured), the escaping of the
/// text's quotes on the wire (about a tenth more), the summary and the JSON-RPC envelope stay
/// under [`MAX_WIRE_BYTES`].
pub const MAX_JSON_BYTES: usize = 44_000;

/// A one-line, human-readable headline of a result.
pub trait Summary {
    fn summary(&self) -> String;

    /// The items as text lines when they were asked for as text (`format: "text"`): then
    /// they are the text content, and `items` is left out of `structuredContent`.
    fn lines(&self) -> Option<&str> {
        None
    }
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
        let mut value = serde_json::to_value(&self.0).map_err(|e| {
            rmcp::ErrorData::internal_error(format!("cannot serialise the result: {e}"), None)
        })?;
        if let Some(lines) = self.0.lines() {
            // The lines were cut to the page's size cap when they were made.
            if let Some(fields) = value.as_object_mut() {
                fields.remove("items");
            }
            let mut result = CallToolResult::success(vec![
                ContentBlock::text(summary),
                ContentBlock::text(lines.to_string()),
            ]);
            result.structured_content = Some(value);
            return Ok(result.into());
        }
        let text = value.to_string();
        if text.len() > MAX_JSON_BYTES {
            tracing::warn!(bytes = text.len(), "answer over the size bound refused");
            let message = format!(
                "the answer would be {} KB of JSON, over the {} KB an answer may carry ({summary}); \
                 ask for less: a smaller `limit`, an `offset`, or a narrower filter",
                text.len() / 1000,
                MAX_JSON_BYTES / 1000
            );
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        let mut result =
            CallToolResult::success(vec![ContentBlock::text(summary), ContentBlock::text(text)]);
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

impl<T: Noun> Summary for Page<T> {
    fn summary(&self) -> String {
        let mut s = format!(
            "{} of {} {} from offset {}",
            self.lines.as_ref().map_or(self.items.len(), |l| l.count),
            self.total,
            T::NOUN,
            self.offset
        );
        if let Some(n) = self.next_offset {
            s.push_str(&format!("; next_offset {n}"));
        }
        if self.truncated {
            s.push_str(" (page cut to keep the answer small)");
        }
        s
    }

    fn lines(&self) -> Option<&str> {
        self.lines.as_ref().map(|l| l.text.as_str())
    }
}
