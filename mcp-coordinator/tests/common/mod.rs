//! Setup shared by the coordinator's integration tests (`mod common;` in each): the
//! workspace binaries next to the coordinator, a fresh directory per test, configs of
//! `[[servers]]`, the coordinator started over stdio with its data beside the config, a free
//! loopback port and a server process waited for until it listens there.
//!
//! Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use mcp_testkit::{Client, Error, TestDir, start_bin};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The coordinator binary under test.
pub const COORDINATOR: &str = env!("CARGO_BIN_EXE_mcp-coordinator");
/// The tiny MCP server the tests drive as a child (echo, sleep, progress, crash).
pub const TEST_CHILD: &str = env!("CARGO_BIN_EXE_mcp-test-child");

/// A workspace binary (mcp-static, mcp-d2, ...) next to the coordinator's.
pub fn sibling(name: &str) -> Result<PathBuf, Error> {
    let p = Path::new(COORDINATOR).with_file_name(name);
    if !p.exists() {
        return Err(format!(
            "{} is missing: build the workspace first (scripts/test.sh does)",
            p.display()
        )
        .into());
    }
    Ok(p)
}

/// A fresh, empty directory `TAG-PID` under the target's tmp dir, removed when dropped.
pub fn tmp(tag: &str) -> Result<TestDir, Error> {
    Ok(TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), tag)?)
}

/// A port on 127.0.0.1 nothing listens on (now).
pub fn free_port() -> Result<u16, Error> {
    Ok(free_ports::<1>()?[0])
}

/// `N` distinct ports on 127.0.0.1 nothing listens on (now): all are held while they are
/// picked, so no two are the same.
#[allow(dead_code)]
pub fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let held = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&held) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// The TOML `[[servers]]` entry of the child `name` run as `command`.
pub fn server(name: &str, command: impl Display) -> String {
    format!("[[servers]]\nname = \"{name}\"\ncommand = \"{command}\"\n")
}

/// [`server`] with these `args`.
pub fn server_with_args(name: &str, command: impl Display, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    format!("{}args = [{}]\n", server(name, command), args.join(", "))
}

/// Writes `text` as the config file `name` in `dir`: its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Error> {
    let cfg = dir.join(name);
    std::fs::write(&cfg, text)?;
    Ok(cfg)
}

/// `dir/c.toml` with the test child as `child`: its path.
pub fn child_config(dir: &Path) -> Result<PathBuf, Error> {
    write_config(dir, "c.toml", &server("child", TEST_CHILD))
}

/// The coordinator over stdio with this config and these extra flags; its data directory
/// (findings store, outbox) is `data` beside the config.
pub async fn coordinator(cfg: &Path, extra: &[&str]) -> Result<Client, Error> {
    let data = cfg.parent().unwrap_or(Path::new(".")).join("data");
    let mut args = vec![
        "--config".into(),
        cfg.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    start_bin(COORDINATOR, &args).await
}

/// Spawns `cmd` (no stdin, no stderr, killed when dropped) and waits until it accepts
/// connections on 127.0.0.1:`port`, polling every `poll` for at most `within`. `what` names
/// it in the errors: it exited, or it never listened.
pub async fn spawn_listening(
    cmd: &mut tokio::process::Command,
    port: u16,
    within: Duration,
    poll: Duration,
    what: &str,
) -> Result<tokio::process::Child, Error> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Some(status) = child.try_wait()? {
            return Err(format!("{what} exited: {status}").into());
        }
        if Instant::now() > deadline {
            return Err(format!("{what} never listened").into());
        }
        tokio::time::sleep(poll).await;
    }
    Ok(child)
}

/// A tool's definition as JSON without its name, to compare a proxied tool with the
/// child's own.
pub fn unnamed<T: serde::Serialize>(tool: &T) -> Result<serde_json::Value, Error> {
    let mut v = serde_json::to_value(tool)?;
    v["name"] = serde_json::Value::Null;
    Ok(v)
}

/// The entry of server `name` in a `servers_status` result or a `/health` body (`Null` when
/// there is none).
pub fn server_entry<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// The coordinator over HTTP with `cfg`, its data under `dir/data` and these extra flags,
/// listening when this returns: the process (killed when dropped) and its base URL.
#[allow(dead_code)]
pub async fn http_coordinator(
    dir: &Path,
    cfg: &Path,
    extra: &[&str],
) -> Result<(tokio::process::Child, String), Error> {
    let port = free_port()?;
    let child = spawn_listening(
        tokio::process::Command::new(COORDINATOR)
            .arg("--config")
            .arg(cfg)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(extra),
        port,
        Duration::from_secs(30),
        Duration::from_millis(50),
        "the coordinator",
    )
    .await?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}
