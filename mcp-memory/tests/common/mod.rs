//! Shared test plumbing: build the memory fixture once, run it, start the real server binary
//! and call tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Directory with the fixture builds (`tests/fixtures/memfix/build.sh`): native `memfix` +
/// `libmemfix.so`, and with mingw installed `memfix.exe` + `memfix_dll.dll`.
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/memfix/build.sh"),
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "memfix",
            "needs cc, and mingw-w64 for the Windows build",
        )
    })
}

/// A running memory fixture and the addresses it printed.
pub struct Fixture(pub LineProcess);

impl std::ops::Deref for Fixture {
    type Target = LineProcess;
    fn deref(&self) -> &LineProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut LineProcess {
        &mut self.0
    }
}

impl Fixture {
    /// Starts the native fixture with extra arguments.
    pub fn native(args: &[&str]) -> Self {
        let mut cmd = Command::new(fixture_dir().join("memfix"));
        cmd.args(args);
        Self::spawn(cmd)
    }

    pub fn spawn(cmd: Command) -> Self {
        Self(LineProcess::spawn(cmd))
    }

    /// Applies the fixture's change (counter + 1, recs[2].x + 1.0, recs[5].id ^ 0xFF).
    pub fn change(&mut self) {
        self.command("change");
        assert_eq!(self.line().trim(), "changed");
    }

    /// Applies the same change through SIGUSR1 (native build).
    pub fn signal(&mut self) {
        self.signal_usr1("changed");
    }

    /// Moves the end of the pointer chain; returns the new chain_value address.
    pub fn move_chain(&mut self) -> u64 {
        self.command("move");
        let v = self.json_line();
        parse_hex(&v["chain_value"])
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
