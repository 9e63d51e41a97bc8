//! Shared test plumbing: build the fixture DLLs once, start the real server binary, call
//! tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Directory holding `D2Client.dll` and `D2Client_v2.dll`, built by
/// `tests/fixtures/gamedll/build.sh` with i686-w64-mingw32-gcc (installed by the test command).
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gamedll/build.sh"),
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "gamedll",
            "needs gcc-mingw-w64-i686, installed by scripts/test.sh",
        )
    })
}

pub fn fixture(name: &str) -> String {
    fixture_dir().join(name).to_string_lossy().into_owned()
}

/// Starts `mcp-static` with the given roots.
pub async fn start(roots: &[&Path]) -> Result<Client, Error> {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-static")).configure(|c| {
        for r in &roots {
            c.arg("--root").arg(r);
        }
        c.stderr(std::process::Stdio::null());
    });
    serve(cmd).await
}
