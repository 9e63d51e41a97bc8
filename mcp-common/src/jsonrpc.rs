//! The check every incoming JSON-RPC message passes before rmcp sees it, so that every
//! request gets an answer.
//!
//! rmcp drops what does not parse (the caller waits forever), and takes a `tools/call` whose
//! params do not fit for an unknown method (-32601). [`check`] answers those the way
//! JSON-RPC 2.0 says: -32700 with `id: null` for what is not JSON, -32600 for JSON that is
//! not one valid message (the id echoed when it can be read), -32602 for params of the wrong
//! shape. Notifications and responses are never answered (JSON-RPC forbids it, and answering
//! a peer's bad error response could start an endless exchange of errors).

use rmcp::model::{
    CallToolRequestMethod, CancelTaskMethod, ClientJsonRpcMessage, ClientRequest,
    CompleteRequestMethod, ConstString, DiscoverRequestMethod, ErrorCode, GetPromptRequestMethod,
    GetSkillRequestMethod, GetTaskMethod, InitializeResultMethod, JsonRpcMessage,
    ListPromptsRequestMethod, ListResourceTemplatesRequestMethod, ListResourcesRequestMethod,
    ListSkillsRequestMethod, ListToolsRequestMethod, PingRequestMethod,
    ReadResourceDirectoryRequestMethod, ReadResourceRequestMethod, SetLevelRequestMethod,
    SubscribeRequestMethod, SubscriptionsListenRequestMethod, UnsubscribeRequestMethod,
    UpdateTaskMethod,
};
use serde_json::{Map, Value, json};

/// The largest message (a stdio line with its newline, or an HTTP body) taken: enough for
/// any real request (tool answers are bounded at 100 KB, arguments are paths and numbers),
/// small enough that a peer streaming without a newline cannot exhaust memory. Longer ones
/// are refused (-32600) and the server goes on.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The deepest nesting of a `tools/call`'s `arguments` taken (the object itself is level 1):
/// no tool takes more than a few levels, and a cap well below serde_json's own limit (128
/// levels for the whole message, a parse error past it) keeps deep values from reaching the
/// tools' recursive schema checks.
pub const MAX_ARGUMENT_DEPTH: usize = 64;

/// The requests rmcp knows. rmcp takes one whose params do not fit its type for an unknown
/// custom request (and answers -32601); for these methods that is a -32602 instead.
const KNOWN_REQUESTS: [&str; 21] = [
    PingRequestMethod::VALUE,
    InitializeResultMethod::VALUE,
    DiscoverRequestMethod::VALUE,
    CompleteRequestMethod::VALUE,
    SetLevelRequestMethod::VALUE,
    GetPromptRequestMethod::VALUE,
    ListPromptsRequestMethod::VALUE,
    ListResourcesRequestMethod::VALUE,
    ListResourceTemplatesRequestMethod::VALUE,
    ReadResourceRequestMethod::VALUE,
    SubscriptionsListenRequestMethod::VALUE,
    SubscribeRequestMethod::VALUE,
    UnsubscribeRequestMethod::VALUE,
    CallToolRequestMethod::VALUE,
    ListToolsRequestMethod::VALUE,
    GetTaskMethod::VALUE,
    UpdateTaskMethod::VALUE,
    CancelTaskMethod::VALUE,
    ListSkillsRequestMethod::VALUE,
    GetSkillRequestMethod::VALUE,
    ReadResourceDirectoryRequestMethod::VALUE,
];

/// What becomes of one incoming message.
#[derive(Debug)]
pub enum Checked {
    /// A valid message, for rmcp as it is.
    Message(Box<ClientJsonRpcMessage>),
    /// A notification or response that cannot be taken: logged, never answered.
    Dropped(String),
    /// Refused with this error answer.
    Refused(Refusal),
}

/// A JSON-RPC error answer to a message that cannot be taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The message's id when it could be read (a string or an integer), else `null`.
    pub id: Value,
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(id: Value, code: ErrorCode, message: String) -> Self {
        Self { id, code, message }
    }

    /// The answer to a message of more than [`MAX_MESSAGE_BYTES`] (`len`: how many bytes
    /// were seen, when known).
    pub fn oversized(len: Option<usize>) -> Self {
        let has = len.map_or_else(String::new, |n| format!(" (it has {n})"));
        Self::new(
            Value::Null,
            ErrorCode::INVALID_REQUEST,
            format!(
                "Invalid request: the message is over the cap of {MAX_MESSAGE_BYTES} bytes \
                 (8 MiB) a message may have{has}; it was skipped"
            ),
        )
    }

    /// The JSON-RPC error object, `id` always present (`null` when unknown).
    pub fn to_json(&self) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": { "code": self.code.0, "message": self.message },
        })
    }

    /// The answer as one line for stdio, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = self.to_json().to_string().into_bytes();
        line.push(b'\n');
        line
    }
}

/// Checks one message (a stdio line without its newline, or an HTTP body).
pub fn check(bytes: &[u8]) -> Checked {
    // RFC 8259 §8.1 lets a parser skip a byte order mark; rmcp does too.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Checked::Refused(Refusal::oversized(Some(bytes.len())));
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Checked::Refused(Refusal::new(
                Value::Null,
                ErrorCode::PARSE_ERROR,
                format!(
                    "Parse error: {e}; a message is one JSON-RPC 2.0 object in UTF-8 JSON \
                     (RFC 8259: no NaN or Infinity, no lone surrogates, numbers within the \
                     range of a double, nesting under 128 levels)"
                ),
            ));
        }
    };
    match value {
        Value::Object(object) => check_object(object),
        Value::Array(_) => Checked::Refused(invalid(
            Value::Null,
            "a batch (JSON array) is not accepted: MCP 2025-06-18 has no batches; send one \
             JSON-RPC object per message"
                .into(),
        )),
        other => Checked::Refused(invalid(
            Value::Null,
            format!("a message is a JSON-RPC 2.0 object, got {}", kind(&other)),
        )),
    }
}

fn check_object(object: Map<String, Value>) -> Checked {
    if !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"))
    {
        // A response (to a request of ours): taken if valid, else dropped, never answered.
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Checked::Dropped("a response whose `jsonrpc` is not \"2.0\"".into());
        }
        return match parse(object) {
            Ok(message) => Checked::Message(message),
            Err(e) => Checked::Dropped(format!("a response that does not parse: {e}")),
        };
    }
    let id = match object.get("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id.clone()),
        Some(id @ Value::Number(n)) if n.is_i64() => Some(id.clone()),
        Some(other) => {
            return Checked::Refused(invalid(
                Value::Null,
                format!(
                    "`id` must be a string or an integer (64-bit signed), got {} `{}`",
                    kind(other),
                    short(other)
                ),
            ));
        }
    };
    let shown_id = id.clone().unwrap_or(Value::Null);
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        other => {
            let got = other.map_or_else(|| "nothing".to_string(), |v| format!("`{}`", short(v)));
            return Checked::Refused(invalid(
                shown_id,
                format!("`jsonrpc` must be \"2.0\", got {got}"),
            ));
        }
    }
    let method = match object.get("method") {
        Some(Value::String(m)) => m.clone(),
        Some(other) => {
            return Checked::Refused(invalid(
                shown_id,
                format!("`method` must be a string, got {}", kind(other)),
            ));
        }
        None => {
            return Checked::Refused(invalid(
                shown_id,
                "`method` is missing: a request has `method` and `id`, a notification \
                 `method` only, a response `id` with `result` or `error`"
                    .into(),
            ));
        }
    };
    if object.contains_key("result") || object.contains_key("error") {
        return Checked::Refused(invalid(
            shown_id,
            "a message with `method` cannot also have `result` or `error`".into(),
        ));
    }
    let params = object.get("params");
    let Some(id) = id else {
        // A notification: never answered, even when it cannot be taken.
        if params.is_some_and(|p| !p.is_object()) {
            return Checked::Dropped(format!(
                "notification `{method}` whose params are not an object"
            ));
        }
        return match parse(object) {
            Ok(message) => Checked::Message(message),
            Err(e) => Checked::Dropped(format!("notification `{method}` that does not parse: {e}")),
        };
    };
    if let Some(p) = params.filter(|p| !p.is_object()) {
        return Checked::Refused(invalid_params(
            id,
            format!(
                "`params` of `{method}` must be an object, got {} `{}`",
                kind(p),
                short(p)
            ),
        ));
    }
    if method == CallToolRequestMethod::VALUE
        && let Err(why) = check_tool_call(params)
    {
        return Checked::Refused(invalid_params(id, why));
    }
    match parse(object) {
        Ok(message) => match &*message {
            JsonRpcMessage::Request(r)
                if matches!(r.request, ClientRequest::CustomRequest(_))
                    && KNOWN_REQUESTS.contains(&method.as_str()) =>
            {
                Checked::Refused(invalid_params(
                    id,
                    format!(
                        "the params do not have the shape `{method}` takes (see the MCP \
                         schema of `{method}`)"
                    ),
                ))
            }
            _ => Checked::Message(message),
        },
        Err(e) => Checked::Refused(invalid_params(
            id,
            format!("the params of `{method}` do not parse: {e}"),
        )),
    }
}

/// The shape rmcp needs to route a `tools/call` to the tool (rather than to "method not
/// found"): `name` a string, `arguments` absent or an object no deeper than the cap.
fn check_tool_call(params: Option<&Value>) -> Result<(), String> {
    let Some(params) = params else {
        return Err("`tools/call` needs `params` with `name` (and `arguments`, an object)".into());
    };
    match params.get("name") {
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(format!(
                "`name` of `tools/call` must be a string, got {} `{}`",
                kind(other),
                short(other)
            ));
        }
        None => return Err("`name` of `tools/call` is missing: the tool to call".into()),
    }
    match params.get("arguments") {
        None | Some(Value::Null) => Ok(()),
        Some(args @ Value::Object(_)) => {
            let depth = depth(args);
            if depth > MAX_ARGUMENT_DEPTH {
                Err(format!(
                    "`arguments` nest {depth} levels deep; the cap is {MAX_ARGUMENT_DEPTH} levels \
                     (MAX_ARGUMENT_DEPTH)"
                ))
            } else {
                Ok(())
            }
        }
        Some(other) => Err(format!(
            "`arguments` of `tools/call` must be an object (argument names to values), got {} `{}`",
            kind(other),
            short(other)
        )),
    }
}

/// How deep a value nests: a scalar is 0, `{}` and `[]` are 1. serde_json bounds the
/// recursion (128 levels at most reach here).
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn parse(object: Map<String, Value>) -> Result<Box<ClientJsonRpcMessage>, serde_json::Error> {
    serde_json::from_value(Value::Object(object)).map(Box::new)
}

fn invalid(id: Value, why: String) -> Refusal {
    Refusal::new(
        id,
        ErrorCode::INVALID_REQUEST,
        format!("Invalid request: {why}"),
    )
}

fn invalid_params(id: Value, why: String) -> Refusal {
    Refusal::new(
        id,
        ErrorCode::INVALID_PARAMS,
        format!("Invalid params: {why}"),
    )
}

/// A JSON type's name, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fraction",
        Value::Number(_) => "an integer out of range",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as quoted in a message: its JSON, cut short.
fn short(value: &Value) -> String {
    crate::error::quoted(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(bytes: &[u8]) -> Refusal {
        match check(bytes) {
            Checked::Refused(r) => r,
            other => panic!(
                "{} was not refused: {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    #[test]
    fn what_is_not_json_is_a_parse_error_with_a_null_id() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        for bad in [
            b"{\"jsonrpc\":\"2.0\",".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}".to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\ud800"}}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":1e400}}"#.to_vec(),
            deep(128),
            deep(2000),
            b"".to_vec(),
        ] {
            let r = refused(&bad);
            assert_eq!(
                (r.code, &r.id),
                (ErrorCode::PARSE_ERROR, &Value::Null),
                "{r:?}"
            );
            assert_eq!(r.to_json()["id"], Value::Null);
        }
    }

    #[test]
    fn json_that_is_not_one_message_is_an_invalid_request() {
        for (bad, id, names) in [
            (r#"[]"#, Value::Null, "batch"),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                Value::Null,
                "batch",
            ),
            (r#"7"#, Value::Null, "object"),
            (
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
                Value::Null,
                "`id`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                Value::Null,
                "`id`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                Value::Null,
                "`id`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
                Value::Null,
                "`id`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"params":{}}"#,
                json!(5),
                "`method`",
            ),
            (
                r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#,
                json!("a"),
                "`jsonrpc`",
            ),
            (r#"{"id":3,"method":"ping"}"#, json!(3), "`jsonrpc`"),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":7}"#,
                json!(4),
                "`method`",
            ),
        ] {
            let r = refused(bad.as_bytes());
            assert_eq!(
                (r.code, &r.id),
                (ErrorCode::INVALID_REQUEST, &id),
                "{bad}: {r:?}"
            );
            assert!(r.message.contains(names), "{bad}: {}", r.message);
        }
    }

    #[test]
    fn params_of_the_wrong_shape_are_invalid_params_naming_the_argument() {
        let nested = |n: usize| {
            let inner = format!("{}{}", "[".repeat(n - 1), "]".repeat(n - 1));
            format!(
                r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"t","arguments":{{"a":{inner}}}}}}}"#
            )
        };
        for (bad, names) in [
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t","arguments":"x"}}"#,
                "`arguments`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t","arguments":[1]}}"#,
                "`arguments`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"x"}"#,
                "`params`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":[]}"#,
                "`params`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"arguments":{}}}"#,
                "`name`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call"}"#,
                "`name`",
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri":5}}"#,
                "resources/read",
            ),
            (&nested(MAX_ARGUMENT_DEPTH + 1), "cap is 64"),
        ] {
            let r = refused(bad.as_bytes());
            assert_eq!(
                (r.code, &r.id),
                (ErrorCode::INVALID_PARAMS, &json!(9)),
                "{bad}: {r:?}"
            );
            assert!(r.message.contains(names), "{bad}: {}", r.message);
        }
        // At the cap it passes on to the tool.
        assert!(matches!(
            check(nested(MAX_ARGUMENT_DEPTH).as_bytes()),
            Checked::Message(_)
        ));
    }

    #[test]
    fn valid_messages_pass_and_bad_notifications_or_responses_are_never_answered() {
        for good in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"t","arguments":{"a":[1,{"b":null}]}}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":-3,\"method\":\"ping\"}",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"vendor/thing","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
        ] {
            assert!(
                matches!(check(good.as_bytes()), Checked::Message(_)),
                "{good}"
            );
        }
        for dropped in [
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":1}}"#,
            r#"{"jsonrpc":"1.0","id":3,"result":{}}"#,
        ] {
            assert!(
                matches!(check(dropped.as_bytes()), Checked::Dropped(_)),
                "{dropped}"
            );
        }
    }

    #[test]
    fn an_oversized_message_is_refused_without_parsing() {
        let mut big =
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"".to_vec();
        big.resize(MAX_MESSAGE_BYTES + 10, b'a');
        let r = refused(&big);
        assert_eq!(r.code, ErrorCode::INVALID_REQUEST);
        assert!(
            r.message.contains(&MAX_MESSAGE_BYTES.to_string()),
            "{}",
            r.message
        );
        assert!(r.to_line().ends_with(b"}\n"));
    }
}
