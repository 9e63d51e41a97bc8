//! What every server's integration tests do the same way: start the real binary as a child
//! process, call a tool through rmcp's client, and read the answer (text, structured
//! content, isError). Tests use it as a dev-dependency; fixtures stay in each crate.

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub type Client = RunningService<RoleClient, ()>;
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), Error>;

/// Starts a server from a prepared command (stderr is the caller's choice).
pub async fn serve(cmd: tokio::process::Command) -> Result<Client, Error> {
    Ok(().serve(TokioChildProcess::new(cmd)?).await?)
}

/// Starts `bin` with `args`, its stderr discarded.
pub async fn start_bin(bin: &str, args: &[String]) -> Result<Client, Error> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args).stderr(std::process::Stdio::null());
    serve(cmd).await
}

/// What a tool answered.
pub struct Answer {
    pub is_error: bool,
    pub text: String,
    pub data: Value,
}

/// Calls `tool`; a protocol error fails the test (tools answer bad input with isError).
pub async fn call(client: &Client, tool: &str, args: Value) -> Answer {
    let Value::Object(map) = args else {
        panic!("arguments must be an object");
    };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(map);
    let result = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    Answer {
        is_error: result.is_error.unwrap_or(false),
        text,
        data: result.structured_content.unwrap_or(Value::Null),
    }
}

/// Calls a tool that must succeed and returns its structured content.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let a = call(client, tool, args).await;
    assert!(!a.is_error, "{tool} failed: {}", a.text);
    a.data
}

/// Calls a tool that must fail and returns its message.
pub async fn err(client: &Client, tool: &str, args: Value) -> String {
    let a = call(client, tool, args.clone()).await;
    assert!(
        a.is_error,
        "{tool} {args} should have failed, answered {}",
        a.text
    );
    a.text
}

pub fn hex(v: u64) -> String {
    format!("0x{v:X}")
}

pub fn parse_hex(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("bad hex {s}"))
}
