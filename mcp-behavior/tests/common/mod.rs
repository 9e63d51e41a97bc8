//! What the behaviour tests share: the fixtures of tests/fixtures/behavfix, built once per
//! test binary, and the server started through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The fixture builds: writer, behave, io_loop natively, and with mingw their Windows forms.
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/behavfix/build.sh"),
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "behavfix",
            "needs cc, and mingw-w64 for the Windows builds",
        )
    })
}

/// mcp-behavior, launches allowed or not.
pub async fn server(launch: bool) -> Result<Client, Error> {
    let args: Vec<String> = if launch {
        vec!["--allow-launch".into()]
    } else {
        Vec::new()
    };
    start_bin(env!("CARGO_BIN_EXE_mcp-behavior"), &args).await
}
