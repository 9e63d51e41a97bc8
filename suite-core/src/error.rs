//! One error type for every analysis: its message names the argument, the value given and
//! what would have been accepted. With the `mcp` feature it becomes a tool's `isError` result.

use std::fmt;

/// How many characters of a bad value an error quotes: enough to recognise it, while a
/// megabyte argument does not come back as a megabyte error.
pub const QUOTED_CHARS: usize = 200;

/// The most bytes an error message has; longer ones keep their start (which names the
/// argument) and their end (what is accepted), with the cut said in between.
pub const MAX_ERROR_BYTES: usize = 4096;

/// `text` as an error quotes it: whole up to [`QUOTED_CHARS`] characters, else that many
/// (cut on a character boundary) followed by `… (N bytes)` giving the full size.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_string(),
    }
}

/// `message` cut to at most [`MAX_ERROR_BYTES`]: its first three quarters and last eighth
/// kept (on character boundaries), `… [N bytes cut] …` between them.
pub fn bounded(message: String) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message;
    }
    let mut head = MAX_ERROR_BYTES * 3 / 4;
    while !message.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = message.len() - MAX_ERROR_BYTES / 8;
    while !message.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} … [{} bytes cut] … {}",
        &message[..head],
        tail - head,
        &message[tail..]
    )
}

/// A tool failure that the host (and the model behind it) should read and act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    message: String,
}

impl ToolError {
    /// The message is [`bounded`]: an error built from a huge input stays a few KB.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: bounded(message.into()),
        }
    }

    /// A bad argument: `field` was `value` (only its start [`quoted`]), `accepted` says what
    /// would be taken.
    pub fn invalid(field: &str, value: impl fmt::Display, accepted: impl fmt::Display) -> Self {
        let value = quoted(&value.to_string());
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

#[cfg(feature = "mcp")]
impl rmcp::handler::server::tool::IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        tracing::debug!(error = %self.message, "tool error");
        let text = bounded(self.message);
        Ok(rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(text)]).into())
    }
}

/// Refuses arguments of which more than one is given (or none, unless `default_ok`): the
/// error names them all, which were given, and asks for exactly one.
pub fn exactly_one(fields: &[(&str, bool)], default_ok: bool) -> Result<(), ToolError> {
    let given: Vec<&str> = fields.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
    let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
    if given.len() > 1 || (given.is_empty() && !default_ok) {
        return Err(ToolError::invalid(
            &names.join("|"),
            if given.is_empty() {
                "none given".to_string()
            } else {
                given.join(" and ")
            },
            format!("give exactly one of {}", names.join(", ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MAX_ERROR_BYTES, ToolError, bounded, quoted};

    #[test]
    fn quoted_values_and_messages_are_bounded() {
        assert_eq!(quoted("short"), "short");
        let q = quoted(&"ß".repeat(1000));
        assert_eq!(q, format!("{}… (2000 bytes)", "ß".repeat(200)));
        let e = ToolError::invalid("pattern", "A".repeat(1 << 20), "B".repeat(1 << 20));
        assert!(
            e.message().len() <= MAX_ERROR_BYTES + 64,
            "{}",
            e.message().len()
        );
        assert!(e.message().starts_with("invalid argument `pattern`: AAA"));
        assert!(e.message().contains(&format!("… ({} bytes)", 1 << 20)));
        assert!(e.message().ends_with("BBB)"));
        // Multi-byte characters across both cut points.
        let m = bounded(format!("x{}", "€".repeat(10_000)));
        assert!(
            m.len() <= MAX_ERROR_BYTES + 64 && m.contains("bytes cut"),
            "{}",
            m.len()
        );
        assert_eq!(bounded("fine".into()), "fine");
    }
}
