//! What the sandbox tests share: whether this machine can run sandboxes, and the probe.

use std::path::{Path, PathBuf};

/// Root and cgroups are needed; says so when they are missing.
pub fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let cg = sandbox_runner::cgroup::detect();
    if !root || cg.is_err() {
        eprintln!("skipped: needs root and cgroups (root: {root}, cgroups: {cg:?})");
        return false;
    }
    true
}

/// The probe (tests/fixtures/sbxprobe), built once per test binary.
pub fn probe() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        mcp_testkit::build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sbxprobe/build.sh"),
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "sbxprobe",
            "needs cc and static glibc (build-essential)",
        )
    })
    .join("probe")
}
