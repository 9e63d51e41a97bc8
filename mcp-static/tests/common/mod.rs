//! Shared test plumbing: build the fixture DLLs once, start the real server binary, call
//! tools through rmcp's client.
#![allow(dead_code)]

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub type Client = RunningService<RoleClient, ()>;
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Directory holding `D2Client.dll` and `D2Client_v2.dll`, built by
/// `tests/fixtures/gamedll/build.sh` with i686-w64-mingw32-gcc (installed by the test command).
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gamedll");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gamedll/build.sh");
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&tmp)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            status.success(),
            "building the fixture DLL failed: is gcc-mingw-w64-i686 installed? (scripts/test.sh installs it)"
        );
        let _ = std::fs::remove_dir_all(&out);
        if std::fs::rename(&tmp, &out).is_err() {
            // Another test binary built it at the same moment; theirs is as good.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        out
    })
}

pub fn fixture(name: &str) -> String {
    fixture_dir().join(name).to_string_lossy().into_owned()
}

/// Starts `mcp-static` with the given roots.
pub async fn start(roots: &[&Path]) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-static")).configure(|c| {
        for r in &roots {
            c.arg("--root").arg(r);
        }
        c.stderr(std::process::Stdio::null());
    });
    Ok(().serve(TokioChildProcess::new(cmd)?).await?)
}

/// What a tool answered.
pub struct Answer {
    pub is_error: bool,
    pub text: String,
    pub data: Value,
}

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
