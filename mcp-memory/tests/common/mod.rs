//! Shared test plumbing: build the memory fixture once, run it, start the real server binary
//! and call tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// Directory with the fixture builds (`tests/fixtures/memfix/build.sh`): native `memfix` +
/// `libmemfix.so`, and with mingw installed `memfix.exe` + `memfix_dll.dll`.
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("memfix");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/memfix/build.sh");
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new("bash")
            .arg(&script)
            .arg(&tmp)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(status.success(), "building the memory fixture failed");
        let _ = std::fs::remove_dir_all(&out);
        if std::fs::rename(&tmp, &out).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        out
    })
}

/// A running fixture and the addresses it printed.
pub struct Fixture {
    pub child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub info: Value,
}

impl Fixture {
    /// Starts the native fixture with extra arguments.
    pub fn native(args: &[&str]) -> Self {
        let mut cmd = Command::new(fixture_dir().join("memfix"));
        cmd.args(args);
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the fixture: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
        let mut me = Self {
            child,
            stdin,
            stdout,
            info: Value::Null,
        };
        me.info = me.read_json();
        me
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("fixture output: {e}"));
        assert!(n > 0, "the fixture ended unexpectedly");
        line
    }

    fn read_json(&mut self) -> Value {
        let line = self.read_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("fixture line {line:?}: {e}"))
    }

    /// Unix pid of the fixture process (the native build).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An address the fixture printed.
    pub fn addr(&self, key: &str) -> u64 {
        parse_hex(&self.info[key])
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap_or_else(|e| panic!("fixture stdin: {e}"));
        self.stdin
            .flush()
            .unwrap_or_else(|e| panic!("fixture stdin: {e}"));
    }

    /// Applies the fixture's change (counter + 1, recs[2].x + 1.0, recs[5].id ^ 0xFF).
    pub fn change(&mut self) {
        self.command("change");
        assert_eq!(self.read_line().trim(), "changed");
    }

    /// Applies the same change through SIGUSR1 (native build).
    pub fn signal(&mut self) {
        let rc = unsafe_kill(self.pid());
        assert_eq!(rc, 0, "kill -USR1 failed");
        assert_eq!(self.read_line().trim(), "changed");
    }

    /// Moves the end of the pointer chain; returns the new chain_value address.
    pub fn move_chain(&mut self) -> u64 {
        self.command("move");
        let v = self.read_json();
        parse_hex(&v["chain_value"])
    }
}

fn unsafe_kill(pid: u32) -> i32 {
    Command::new("kill")
        .arg("-USR1")
        .arg(pid.to_string())
        .status()
        .map_or(-1, |s| if s.success() { 0 } else { 1 })
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mcp-memory` with extra arguments.
pub async fn start(args: &[&str]) -> Result<Client, Error> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-memory")).configure(|c| {
        c.args(&args);
        c.stderr(Stdio::null());
    });
    serve(cmd).await
}

/// The addresses of a scan answer's first page, sorted.
pub fn match_addrs(scan: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = scan["matches"]
        .as_array()
        .map(|m| m.iter().map(|x| parse_hex(&x["address"])).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}
