//! Shared test plumbing: build the fixture game once, run it, start the real `mcp-d2` binary
//! and call tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `tests/fixtures/d2game` built: D2Client.dll, d2game (native), d2game.exe (Wine).
pub fn game_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh"),
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "d2game",
            "needs gcc-mingw-w64-x86-64, installed by scripts/test.sh",
        )
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
pub struct Game(pub LineProcess);

impl std::ops::Deref for Game {
    type Target = LineProcess;
    fn deref(&self) -> &LineProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Game {
    fn deref_mut(&mut self) -> &mut LineProcess {
        &mut self.0
    }
}

impl Game {
    pub fn native() -> Self {
        let dir = game_dir();
        let mut cmd = Command::new(dir.join("d2game"));
        cmd.arg(dir.join("D2Client.dll"));
        Self::spawn(cmd)
    }

    pub fn spawn(cmd: Command) -> Self {
        Self(LineProcess::spawn(cmd))
    }

    /// Gains 1000 experience through the stdin command.
    pub fn gain(&mut self) {
        self.command("gain");
        assert_eq!(self.line().trim(), "gained");
    }

    /// Gains 1000 experience through SIGUSR1 (native build).
    pub fn signal(&mut self) {
        self.signal_usr1("gained");
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
