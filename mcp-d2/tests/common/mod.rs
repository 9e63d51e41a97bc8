//! Shared test plumbing: build the fixture game once, run it, start the real `mcp-d2` binary
//! and call tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

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
pub async fn start(roots: &[&Path]) -> Result<Client, Error> {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-d2")).configure(|c| {
        for r in &roots {
            c.arg("--root").arg(r);
        }
        c.stderr(Stdio::null());
    });
    serve(cmd).await
}
