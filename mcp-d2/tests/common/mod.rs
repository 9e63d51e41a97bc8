//! Shared test plumbing: build the fixture game once, run it, start the real `mcp-d2` binary
//! and call tools through rmcp's client.
#![allow(dead_code)]

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

pub type Client = RunningService<RoleClient, ()>;
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// `tests/fixtures/d2game` built: D2Client.dll, d2game (native), d2game.exe (Wine).
pub fn game_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("d2game");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh");
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new("bash")
            .arg(&script)
            .arg(&tmp)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            status.success(),
            "building the fixture game failed (needs mingw-w64)"
        );
        let _ = std::fs::remove_dir_all(&out);
        if std::fs::rename(&tmp, &out).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        out
    })
}

/// `../shared/fixtures/d2s` when present.
pub fn saves_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/d2s");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/fixtures/d2s is absent");
        None
    }
}

/// A running fixture game.
pub struct Game {
    pub child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub info: Value,
}

impl Game {
    pub fn native() -> Self {
        let dir = game_dir();
        let mut cmd = Command::new(dir.join("d2game"));
        cmd.arg(dir.join("D2Client.dll"));
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the fixture game: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
        let mut me = Self {
            child,
            stdin,
            stdout,
            info: Value::Null,
        };
        let line = me.line();
        me.info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        me
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("fixture output: {e}"));
        assert!(n > 0, "the fixture game ended unexpectedly");
        line
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Gains 1000 experience through the stdin command.
    pub fn gain(&mut self) {
        writeln!(self.stdin, "gain").unwrap_or_else(|e| panic!("{e}"));
        self.stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(self.line().trim(), "gained");
    }

    /// Gains 1000 experience through SIGUSR1 (native build).
    pub fn signal(&mut self) {
        let ok = Command::new("kill")
            .arg("-USR1")
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -USR1 failed");
        assert_eq!(self.line().trim(), "gained");
    }
}

impl Drop for Game {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mcp-d2` with the given roots.
pub async fn start(roots: &[&Path]) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-d2")).configure(|c| {
        for r in &roots {
            c.arg("--root").arg(r);
        }
        c.stderr(Stdio::null());
    });
    Ok(().serve(TokioChildProcess::new(cmd)?).await?)
}

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

pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let a = call(client, tool, args).await;
    assert!(!a.is_error, "{tool} failed: {}", a.text);
    a.data
}

pub async fn err(client: &Client, tool: &str, args: Value) -> String {
    let a = call(client, tool, args.clone()).await;
    assert!(
        a.is_error,
        "{tool} {args} should have failed, answered {}",
        a.text
    );
    a.text
}

pub fn parse_hex(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("bad hex {s}"))
}
