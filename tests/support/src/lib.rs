//! What every server's integration tests do the same way: start the real binary as a child
//! process, call a tool through rmcp's client, and read the answer (text, structured
//! content, isError). Tests use it as a dev-dependency; fixtures stay in each crate.

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub type Client = RunningService<RoleClient, ()>;
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), Error>;

/// Starts a server from a prepared command (stderr is the caller's choice).
pub async fn serve(cmd: tokio::process::Command) -> Result<Client, Error> {
    Ok(().serve(TokioChildProcess::new(cmd)?).await?)
}

/// Starts `bin` with `args`, its stderr discarded.
pub async fn start_bin(bin: &str, args: &[String]) -> Result<Client, Error> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args).stderr(std::process::Stdio::null());
    serve(cmd).await
}

/// What a tool answered.
pub struct Answer {
    pub is_error: bool,
    pub text: String,
    pub data: Value,
}

/// Calls `tool`; a protocol error fails the test (tools answer bad input with isError).
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

/// Calls a tool that must succeed and returns its structured content.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let a = call(client, tool, args).await;
    assert!(!a.is_error, "{tool} failed: {}", a.text);
    a.data
}

/// Calls a tool that must fail and returns its message.
pub async fn err(client: &Client, tool: &str, args: Value) -> String {
    let a = call(client, tool, args.clone()).await;
    assert!(
        a.is_error,
        "{tool} {args} should have failed, answered {}",
        a.text
    );
    a.text
}

pub fn hex(v: u64) -> String {
    format!("0x{v:X}")
}

pub fn parse_hex(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("bad hex {s}"))
}

/// A fixture program the tests drive: it prints one JSON line describing itself, then reads
/// commands on stdin and answers each with a line. Killed when dropped (after `quit`).
pub struct LineProcess {
    pub child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// The first line, parsed.
    pub info: Value,
}

impl LineProcess {
    pub fn spawn(mut cmd: std::process::Command) -> Self {
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the fixture: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout =
            std::io::BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
        let mut me = Self {
            child,
            stdin,
            stdout,
            info: Value::Null,
        };
        me.info = me.json_line();
        me
    }

    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("fixture output: {e}"));
        assert!(n > 0, "the fixture ended unexpectedly");
        line
    }

    pub fn json_line(&mut self) -> Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("fixture line {line:?}: {e}"))
    }

    /// Sends one command line.
    pub fn command(&mut self, cmd: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{cmd}").unwrap_or_else(|e| panic!("fixture stdin: {e}"));
        self.stdin
            .flush()
            .unwrap_or_else(|e| panic!("fixture stdin: {e}"));
    }

    /// Sends SIGUSR1 and expects `answer` as the next line.
    pub fn signal_usr1(&mut self, answer: &str) {
        let ok = std::process::Command::new("kill")
            .arg("-USR1")
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -USR1 failed");
        assert_eq!(self.line().trim(), answer);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A hex address the fixture printed under `key`.
    pub fn addr(&self, key: &str) -> u64 {
        parse_hex(&self.info[key])
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh WINEPREFIX; its wineserver (and everything it runs) is killed and the prefix
/// removed when dropped, so nothing is left running.
pub struct WinePrefix(pub std::path::PathBuf);

impl WinePrefix {
    pub fn new(dir: &std::path::Path, tag: &str) -> Self {
        Self(dir.join(format!("{tag}-wineprefix-{}", std::process::id())))
    }

    /// Whether `wine` can be run here.
    pub fn available() -> bool {
        std::process::Command::new("wine")
            .arg("--version")
            .output()
            .is_ok()
    }

    /// `wine exe` in this prefix, quiet and without the Mono/Gecko installers.
    pub fn command(&self, exe: &std::path::Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("wine");
        cmd.arg(exe)
            .env("WINEPREFIX", &self.0)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        cmd
    }
}

/// The umbrella strict switch: when set (and not `0`), every [`skipped`] fails, whatever its
/// own switch, except the shared fixtures' ([`REQUIRE_SHARED_FIXTURES`]). `scripts/test.sh`
/// sets it: setup.sh installed everything the suite needs, so nothing may skip there.
pub const SUITE_STRICT: &str = "MCP_SUITE_STRICT";

/// The switch of the shared fixtures ([`shared_fixtures`]). Not under [`SUITE_STRICT`]: a
/// clean clone elsewhere may legitimately lack them.
pub const REQUIRE_SHARED_FIXTURES: &str = "REQUIRE_SHARED_FIXTURES";

/// When set to a file, every skip is appended to it as `test<TAB>switch<TAB>why`, so that a
/// run can count and list what did not run (libtest counts only `#[ignore]`).
pub const SKIP_LOG: &str = "MCP_SKIP_LOG";

/// Whether the switch `name` is on: set, non-empty and not `0`.
fn switch_on(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Says on stderr that a test cannot run here and why (and appends it to [`SKIP_LOG`]), or
/// fails it when the strict switch `switch`, or the umbrella [`SUITE_STRICT`], is set:
/// `scripts/test.sh` (and so CI) sets them, so that a test that did not run is never counted
/// as passed there. The caller then returns without testing.
pub fn skipped(switch: &str, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    let umbrella = switch != REQUIRE_SHARED_FIXTURES && switch_on(SUITE_STRICT);
    let set = if switch_on(switch) {
        Some(switch)
    } else if umbrella {
        Some(SUITE_STRICT)
    } else {
        None
    };
    if let Some(set) = set {
        panic!("{why}, and {set} is set: this test must run here, not skip");
    }
    eprintln!("skipped: {why} [{test}; {switch} or {SUITE_STRICT} makes this a failure]");
    if let Some(log) = std::env::var_os(SKIP_LOG).filter(|l| !l.is_empty()) {
        use std::io::Write;
        let line = format!("{test}\t{switch}\t{}\n", why.replace(['\t', '\n'], " "));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot append to {SKIP_LOG} {}: {e}", log.to_string_lossy());
        }
    }
}

/// Whether 32-bit Wine (wine32:i386, which `scripts/setup.sh` installs) is here to run the
/// 32-bit game; when not, [`skipped`] under `REQUIRE_WINE32`.
pub fn wine32_available(test: &str) -> bool {
    let here = WinePrefix::available()
        && std::path::Path::new("/usr/lib/i386-linux-gnu/wine/i386-windows/kernel32.dll").exists();
    if !here {
        skipped(
            "REQUIRE_WINE32",
            &format!("{test}: 32-bit Wine (wine32:i386) is not installed"),
        );
    }
    here
}

/// Where 64-bit Wine (wine64, which `scripts/setup.sh` installs) keeps its Windows DLLs.
pub const WINE64_DLLS: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";

/// Whether 64-bit Wine is here (`wine` runs, its x86-64 DLLs are installed); when not,
/// [`skipped`] under `REQUIRE_WINE`.
pub fn wine64_available() -> bool {
    let here = WinePrefix::available()
        && std::path::Path::new(WINE64_DLLS)
            .join("kernel32.dll")
            .exists();
    if !here {
        skipped("REQUIRE_WINE", "64-bit Wine (wine64) is not installed");
    }
    here
}

/// Whether `program arg` can be started (the program is installed); when not, [`skipped`]
/// under `switch`, naming the program.
pub fn program_available(program: &str, arg: &str, switch: &str) -> bool {
    let here = std::process::Command::new(program)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok();
    if !here {
        skipped(switch, &format!("{program} is not installed"));
    }
    here
}

/// Whether this process runs as root; when not, [`skipped`] under `REQUIRE_ROOT` saying
/// what needs it.
pub fn root_available(for_what: &str) -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        skipped("REQUIRE_ROOT", &format!("{for_what} needs root"));
    }
    root
}

/// `sub` of the shared fixtures: `$SHARED_FIXTURES/sub` when that variable is set, else
/// `../shared/fixtures/sub` beside the repository. When it is not a directory, [`skipped`]
/// under [`REQUIRE_SHARED_FIXTURES`] and `None`.
pub fn shared_fixtures(sub: &str) -> Option<std::path::PathBuf> {
    let base = match std::env::var_os("SHARED_FIXTURES").filter(|v| !v.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    let dir = base.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    skipped(
        REQUIRE_SHARED_FIXTURES,
        &format!(
            "the shared fixtures {} are absent (set SHARED_FIXTURES=DIR to where they are)",
            dir.display()
        ),
    );
    None
}

impl Drop for WinePrefix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds fixture programs with `script OUT_DIR` into `target_tmp/name` and returns that
/// directory. Built into a private directory first and renamed, so test binaries running at
/// the same time never see half a build. `hint` says what to install when the build fails.
pub fn build_fixtures(
    script: &std::path::Path,
    target_tmp: &std::path::Path,
    name: &str,
    hint: &str,
) -> std::path::PathBuf {
    let out = target_tmp.join(name);
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(&tmp)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "building {name} failed ({hint})");
    let _ = std::fs::remove_dir_all(&out);
    if std::fs::rename(&tmp, &out).is_err() {
        // Another test binary built it at the same moment; theirs is as good.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    out
}

/// A fresh, empty directory `TAG-PID` under a test crate's `CARGO_TARGET_TMPDIR`, removed
/// with everything in it when dropped, so repeated runs do not fill the disk. Set
/// `KEEP_TEST_DIRS=1` to keep it for a look after a failure.
pub struct TestDir(std::path::PathBuf);

impl TestDir {
    pub fn new(target_tmp: &std::path::Path, tag: &str) -> std::io::Result<Self> {
        let d = target_tmp.join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(Self(d))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TestDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Checks that `file` (a `schemas/tools/*.json`) holds `tools`, sorted by name, exactly as
/// `tools/list` returned them; with `UPDATE_SCHEMAS` set it is written first. `rerun` is the
/// test command that regenerates it, for the failure message.
pub fn check_published_tools(
    tools: &mut [rmcp::model::Tool],
    file: &std::path::Path,
    rerun: &str,
) -> TestResult {
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let current = serde_json::to_string_pretty(&tools)? + "\n";
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(file, &current)?;
    }
    let published = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        published == current,
        "{} is stale: run UPDATE_SCHEMAS=1 {rerun}",
        file.display()
    );
    Ok(())
}

/// The Redis the tests may use (`REDIS_URL`, which scripts/test.sh sets to a private
/// redis-server); `None`, after [`skipped`] under `REQUIRE_REDIS`, when it is unset or empty.
pub fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped(
                "REQUIRE_REDIS",
                "REDIS_URL is not set (scripts/test.sh starts a redis-server and sets it; or run \
                 `redis-server --port P --bind 127.0.0.1 --save ''` and set \
                 REDIS_URL=redis://127.0.0.1:P/)",
            );
            None
        }
    }
}

/// A name no earlier run used (pid and time), for what outlives a test: keys in a shared Redis
/// or a real Dgraph.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// An MCP `initialize` request body, for raw HTTP tests.
pub const INITIALIZE_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// One raw HTTP/1.1 request (`Connection: close`, blocking, 10 s read timeout) to `addr`
/// (`host:port`), with an `Origin` header when given: the status and, for anything but 200
/// (whose event stream may stay open), the body. For what a real client would not send.
pub fn raw_http(
    addr: &str,
    method: &str,
    path: &str,
    origin: Option<&str>,
    body: &str,
) -> Result<(u16, String), Error> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         {origin}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let split = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(format!("no full answer: {}", String::from_utf8_lossy(&got)).into());
        }
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("no status in {head}"))?
        .parse()?;
    if status == 200 {
        return Ok((status, String::new()));
    }
    let mut rest = got[split + 4..].to_vec();
    s.read_to_end(&mut rest)?;
    Ok((status, String::from_utf8_lossy(&rest).into_owned()))
}
