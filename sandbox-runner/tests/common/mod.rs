//! What the sandbox tests share: whether this machine can run sandboxes, and the probe.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Root and cgroups are needed; says so when they are missing (and fails under
/// `REQUIRE_SANDBOX`, which scripts/test.sh sets).
pub fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let cg = sandbox_runner::cgroup::detect();
    if !root || cg.is_err() {
        mcp_testkit::skipped(
            "REQUIRE_SANDBOX",
            &format!("needs root and cgroups (root: {root}, cgroups: {cg:?})"),
        );
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

/// Launches the probe's `peer PORT` (connect to the host end of the veth, retried for 20 s) in
/// an `isolated` sandbox, output piped to the caller. (Not every test binary uses it.)
#[allow(dead_code)]
pub fn launch_peer_probe(
    port: u16,
    timeout: std::time::Duration,
) -> Result<sandbox_runner::sandbox::Sandbox, String> {
    use sandbox_runner::profile::{NetMode, Profile};
    use sandbox_runner::sandbox::{Output, Runner, Spec};
    let runner = Runner::new(PathBuf::from(env!("CARGO_BIN_EXE_sandbox-runner")));
    let spec = Spec {
        network: Some(NetMode::Isolated),
        timeout: Some(timeout),
        output: Output::Piped,
        ..Spec::new(
            Profile::load("strict")?,
            probe().display().to_string(),
            vec!["peer".into(), port.to_string()],
        )
    };
    runner.launch(spec)
}

/// `accept` with a deadline, so that a probe that never connects fails the test instead of
/// hanging it.
#[allow(dead_code)]
pub fn accept_within(
    listener: &std::net::TcpListener,
    limit: Duration,
) -> std::io::Result<(std::net::TcpStream, std::net::SocketAddr)> {
    listener.set_nonblocking(true)?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((conn, from)) => {
                conn.set_nonblocking(false)?;
                return Ok((conn, from));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection from the sandbox within {limit:?}"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `done` holds within `limit`, asked every 10 ms (budgets are generous: a loaded
/// machine may take seconds to start a sandbox).
#[allow(dead_code)]
pub fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a host-side interface is gone within 5 s (the kernel tears a dead network
/// namespace's half of a veth pair down on its own time).
#[allow(dead_code)]
pub fn interface_gone(name: &str) -> bool {
    let path = Path::new("/sys/class/net").join(name);
    within(Duration::from_secs(5), || !path.exists())
}

/// This process's cgroup v1 path (without the leading `/`) in the hierarchy of `controller`,
/// from /proc/self/cgroup; empty when it has none.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn own_cgroup(controller: &str) -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, names, path) = (p.next()?, p.next()?, p.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.trim_start_matches('/').to_string())
        })
        .unwrap_or_default()
}
