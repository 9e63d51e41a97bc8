//! One supervised child server: started over stdio (or connected over streamable HTTP),
//! watched, restarted (reconnected) with exponential backoff when it exits, and marked failed
//! after too many crashes (a circuit breaker) until someone restarts it by hand. It is pinged
//! (unresponsive when no answer comes), and a stdio child's input is buffered in memory so
//! that one which stops reading never holds back a caller, a timeout or another child.

use crate::config::ChildSpec;
use crate::hosts::Hosts;
use crate::progress::{Counting, Routes};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientRequest, ProgressNotificationParam, ProgressToken, ReadResourceRequestParams,
    ReadResourceResponse, RequestId, Resource, ResourceTemplate, ServerResult, Tool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RoleClient, RoleServer,
    RunningServiceCancellationToken, ServiceError,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Crashes within this window that open the breaker.
pub const BREAKER_CRASHES: usize = 5;
pub const BREAKER_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Starting,
    Running,
    /// Running, but it answered no `ping` within the configured time (stopped, wedged, or
    /// not reading its input): calls still go to it; `servers_restart` starts it afresh.
    Unresponsive,
    /// Its process ended (or its connection was lost): it is started again after a backoff.
    Restarting,
    /// Crashed too often (or never started): answers errors until `servers_restart`.
    Failed,
}

impl State {
    /// Whether the child has a connection that takes requests.
    fn serving(self) -> bool {
        matches!(self, Self::Running | Self::Unresponsive)
    }
}

#[derive(Debug, Default)]
struct Inner {
    state: Option<State>,
    peer: Option<Peer<RoleClient>>,
    /// Ends the running generation's connection (and with it the process).
    stop: Option<Stop>,
    tools: Vec<Tool>,
    /// The child's resources and resource templates as it listed them (URIs unchanged).
    resources: Vec<Resource>,
    templates: Vec<ResourceTemplate>,
    /// The child's prompts as it listed them (names unchanged).
    prompts: Vec<rmcp::model::Prompt>,
    pid: Option<u32>,
    generation: u64,
    restarts: u32,
    crashes: VecDeque<Instant>,
    last_error: Option<String>,
    started: Option<Instant>,
    calls: u64,
    errors: u64,
    latency_total: Duration,
}

/// The coordinator's client side towards one child: forwards progress to the host and
/// re-lists the child's tools (or resources) when it says they changed.
#[derive(Clone)]
struct ChildHandler {
    routes: Routes,
    child: Weak<Child>,
}

impl ClientHandler for ChildHandler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(child) = self.child.upgrade() {
            tokio::spawn(async move { child.relist().await });
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(child) = self.child.upgrade() {
            tokio::spawn(async move { child.relist_resources().await });
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.routes.forward(params).await;
    }
}

/// The resources and resource templates of a child that says it has resources (none
/// otherwise). A list the child does not implement (method not found) is empty; a child that
/// fails to list them otherwise fails to start, like one that cannot list its tools.
async fn list_resources(
    peer: &Peer<RoleClient>,
) -> Result<(Vec<Resource>, Vec<ResourceTemplate>), String> {
    let offers = peer
        .peer_info()
        .is_some_and(|info| info.capabilities.resources.is_some());
    if !offers {
        return Ok((Vec::new(), Vec::new()));
    }
    let resources = or_empty(peer.list_all_resources().await)
        .map_err(|e| format!("resources/list failed: {e}"))?;
    let templates = or_empty(peer.list_all_resource_templates().await)
        .map_err(|e| format!("resources/templates/list failed: {e}"))?;
    Ok((resources, templates))
}

/// A child that names itself one of the suite's servers in `initialize` while its entry's
/// kind (given or guessed) is another: said once in the log, since the kind decides what is
/// cached and what findings are keyed by; the entry's `kind` settles it.
fn warn_if_other_kind(spec: &ChildSpec, peer: &Peer<RoleClient>) {
    let Some(said) = peer
        .peer_info()
        .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()))
    else {
        return;
    };
    let Some(says) = crate::config::Kind::of_program(&said) else {
        return;
    };
    if says != spec.kind {
        tracing::warn!(
            server = %spec.name,
            child_says = %said,
            kind = ?spec.kind,
            "the child names itself another kind of server: set `kind` in its entry"
        );
    }
}

/// The prompts of a child that says it has prompts (none otherwise).
async fn list_prompts(peer: &Peer<RoleClient>) -> Result<Vec<rmcp::model::Prompt>, String> {
    let offers = peer
        .peer_info()
        .is_some_and(|info| info.capabilities.prompts.is_some());
    if !offers {
        return Ok(Vec::new());
    }
    or_empty(peer.list_all_prompts().await).map_err(|e| format!("prompts/list failed: {e}"))
}

/// A list the child answers with "method not found" is an empty one.
fn or_empty<T>(r: Result<Vec<T>, ServiceError>) -> Result<Vec<T>, ServiceError> {
    match r {
        Err(ServiceError::McpError(e)) if e.code == rmcp::model::ErrorCode::METHOD_NOT_FOUND => {
            Ok(Vec::new())
        }
        other => other,
    }
}

/// Whether a request failed because the child's connection is gone (it exited or its pipe
/// closed): supervision restarts it, which the host is told.
fn connection_lost(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    )
}

/// Sends `notifications/cancelled` for a request still pending when dropped.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let peer = self.peer.clone();
            tokio::spawn(async move {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(
                        Some(id),
                        Some("cancelled by the host".into()),
                    ))
                    .await;
            });
        }
    }
}

/// How many of a child's last stderr lines are kept to say why it failed.
const STDERR_LINES: usize = 20;

/// The end of a child's stderr: each line is passed on to the coordinator's own stderr (the
/// log) and the last ones kept, so that a failure can quote the child's own reason.
#[derive(Debug, Default)]
struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    /// Set when the current process's stderr reached end-of-file.
    closed: tokio::sync::Notify,
    ended: std::sync::atomic::AtomicBool,
}

impl StderrTail {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `stderr` to its end for the process of a new start.
    fn follow(self: &Arc<Self>, name: String, stderr: tokio::process::ChildStderr) {
        self.lock().clear();
        self.ended.store(false, std::sync::atomic::Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{name}] {line}");
                let mut tail = me.lock();
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            me.ended.store(true, std::sync::atomic::Ordering::SeqCst);
            me.closed.notify_waiters();
        });
    }

    /// The child's last words: its last non-empty stderr line (log lines with their
    /// timestamp and level cut off), waiting a moment for a dying process's last output.
    async fn reason(&self) -> Option<String> {
        let ended = self.closed.notified();
        if !self.ended.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = tokio::time::timeout(Duration::from_millis(500), ended).await;
        }
        let tail = self.lock();
        let line = tail.iter().rev().find(|l| !l.trim().is_empty())?;
        Some(strip_log_prefix(line).chars().take(400).collect())
    }
}

/// `2026-12-02T16:00:00.000Z ERROR mcp_static: root /x: No such file` -> `root /x: No such
/// file`: the tracing prefix says nothing to the model.
fn strip_log_prefix(line: &str) -> &str {
    let plain = line.trim();
    let mut words = plain.splitn(3, ' ');
    let (Some(time), Some(level), Some(rest)) = (words.next(), words.next(), words.next()) else {
        return plain;
    };
    let levels = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];
    if time.contains('T') && levels.contains(&level.trim()) {
        // `target: message` after the level.
        return rest.split_once(": ").map_or(rest, |(_, m)| m).trim();
    }
    plain
}

/// The most input a stdio child may leave unread before further requests to it fail at once
/// (instead of piling up in the coordinator's memory): far above any burst of real calls,
/// far below what a long-stopped child would otherwise accumulate.
const INPUT_BACKLOG: usize = 16 << 20;

/// How long a program whose connection was ended (restart, shutdown) may take to exit after
/// its input closed, and again after SIGTERM, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Backlog {
    bytes: Vec<u8>,
    /// rmcp dropped (or shut down) its writer: the child's stdin closes once all is written.
    closed: bool,
    /// Writing to the child's stdin failed (it exited): so do further writes.
    broken: Option<std::io::ErrorKind>,
}

#[derive(Debug, Default)]
struct InputShared {
    backlog: Mutex<Backlog>,
    wake: tokio::sync::Notify,
}

impl InputShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long a streamable-HTTP child's idle connection is kept for the next request. The
/// suite's servers close a connection that sends no request for 10 s (mcp-common's header
/// read timeout); a request sent on it as it closes is lost (every other 10 s ping failed).
/// Below that, a connection is never reused at the moment the server drops it.
const IDLE_CONNECTION: Duration = Duration::from_secs(5);

/// What rmcp writes to a stdio child: every write lands in memory at once and [`feed`]
/// passes it on to the pipe. rmcp writes under one lock per connection, and a request, the
/// cancellation of a timed-out one and a ping all wait for it; a child that stops reading
/// (stopped, wedged) would otherwise hold every later request, and the timeouts that wait
/// for a cancellation to be written, for as long as it does not read.
struct Input(Arc<InputShared>);

impl Input {
    fn close(&self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

impl tokio::io::AsyncWrite for Input {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut b = self.0.lock();
        if let Some(kind) = b.broken {
            return Poll::Ready(Err(std::io::Error::new(
                kind,
                "the child's input is closed",
            )));
        }
        if !b.bytes.is_empty() && b.bytes.len() + buf.len() > INPUT_BACKLOG {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the child left {} bytes of its input unread (the most is {INPUT_BACKLOG}): it \
                 is stopped or wedged",
                b.bytes.len()
            ))));
        }
        b.bytes.extend_from_slice(buf);
        drop(b);
        self.0.wake.notify_one();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        self.close();
    }
}

/// Passes what rmcp wrote on to the child's stdin, which closes once rmcp closed its side
/// and everything was written (or the child stopped taking it).
async fn feed(shared: Arc<InputShared>, mut stdin: tokio::process::ChildStdin) {
    use tokio::io::AsyncWriteExt;
    loop {
        let chunk = {
            let mut b = shared.lock();
            if b.bytes.is_empty() {
                if b.closed {
                    return;
                }
                None
            } else {
                Some(std::mem::take(&mut b.bytes))
            }
        };
        let Some(chunk) = chunk else {
            shared.wake.notified().await;
            continue;
        };
        if let Err(e) = stdin.write_all(&chunk).await {
            shared.lock().broken = Some(e.kind());
            return;
        }
    }
}

/// Ends a program whose connection ended: its input closes with it, so it may exit by
/// itself; else SIGTERM, else SIGKILL (which also ends a stopped one).
async fn stop_process(
    process: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    if let Ok(status) = tokio::time::timeout(STOP_GRACE, process.wait()).await {
        return status;
    }
    if let Some(pid) = process.id().and_then(|p| i32::try_from(p).ok()) {
        use nix::sys::signal::{Signal, kill};
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(STOP_GRACE, process.wait()).await {
            return status;
        }
    }
    process.kill().await?;
    process.wait().await
}

/// Asks a program's reaper to end it; dropped, it asks too (a start given up, a generation
/// replaced), so that no process outlives its connection.
struct Ender(Arc<tokio::sync::Notify>);

impl Drop for Ender {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped): the state the child
/// reports must not say "running" for a process that is dead a moment before its reaper
/// ran.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which may itself hold ") ".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        // No such process, unless there is no /proc to ask (then nothing is known).
        Err(_) => std::path::Path::new("/proc/self").exists(),
    }
}

/// A child and its supervision state.
#[derive(Debug)]
pub struct Child {
    pub spec: ChildSpec,
    stderr: Arc<StderrTail>,
    inner: Mutex<Inner>,
    routes: Routes,
    hosts: Arc<Hosts>,
    me: Weak<Child>,
}

impl std::fmt::Debug for ChildHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildHandler")
    }
}

/// The running generation's off switch: ends its connection and, for a program, its
/// process (see [`Ender`]).
struct Stop(RunningServiceCancellationToken, Option<Ender>);

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stop")
    }
}

/// What `servers_status` reports for one child.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChildStatus {
    pub name: String,
    pub prefix: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Seconds since the current process started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime: Option<f64>,
    pub tools: usize,
    pub calls: u64,
    pub errors: u64,
    /// Mean call latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// Why a forwarded call produced no child result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Unavailable(String),
    Timeout(Duration),
    Failed(String),
}

impl Child {
    pub fn new(spec: ChildSpec, hosts: Arc<Hosts>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            spec,
            stderr: Arc::default(),
            inner: Mutex::new(Inner::default()),
            routes: Routes::default(),
            hosts,
            me: me.clone(),
        })
    }

    /// Lists the child's tools again and tells the hosts when they changed.
    pub async fn relist(&self) {
        let peer = self.lock().peer.clone();
        let Some(peer) = peer else { return };
        match peer.list_all_tools().await {
            Ok(tools) => {
                let changed = {
                    let mut i = self.lock();
                    let changed = i.tools != tools;
                    i.tools = tools;
                    changed
                };
                if changed {
                    self.hosts.tools_changed().await;
                }
            }
            Err(e) => {
                tracing::warn!(server = %self.spec.name, error = %e, "re-listing tools failed")
            }
        }
    }

    /// Lists the child's resources and templates again and tells the hosts when they changed.
    pub async fn relist_resources(&self) {
        let peer = self.lock().peer.clone();
        let Some(peer) = peer else { return };
        match list_resources(&peer).await {
            Ok((resources, templates)) => {
                let changed = {
                    let mut i = self.lock();
                    let changed = i.resources != resources || i.templates != templates;
                    i.resources = resources;
                    i.templates = templates;
                    changed
                };
                if changed {
                    self.hosts.resources_changed().await;
                }
            }
            Err(e) => {
                tracing::warn!(server = %self.spec.name, error = %e, "re-listing resources failed")
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the process and lists its tools, within the start timeout.
    pub async fn start(self: &Arc<Self>) -> Result<(), String> {
        let epoch = {
            let mut i = self.lock();
            if i.state.is_none() || i.state == Some(State::Failed) {
                i.state = Some(State::Starting);
            }
            i.generation
        };
        let result = tokio::time::timeout(self.spec.start_timeout, self.spawn(epoch)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(format!(
                "did not answer initialize within {} s",
                self.spec.start_timeout.as_secs()
            )),
        };
        if let Err(e) = &result {
            let mut i = self.lock();
            // A start that another overtook says nothing of the child's state.
            if i.generation == epoch {
                i.state = Some(State::Failed);
                i.last_error = Some(e.clone());
            }
            tracing::warn!(server = %self.spec.name, error = %e, "child failed to start");
        }
        result
    }

    /// Starts (connects) the child for the generation after `epoch`. When another start
    /// took its place meanwhile (`servers_restart` during an automatic restart), this one
    /// ends what it started: one process per child, never an orphan.
    async fn spawn(self: &Arc<Self>, epoch: u64) -> Result<(), String> {
        let spec = &self.spec;
        let handler = ChildHandler {
            routes: self.routes.clone(),
            child: self.me.clone(),
        };
        let (service, pid, ender) = match &spec.url {
            // A streamable-HTTP server someone else runs: connected, not started.
            Some(url) => {
                // TCP_NODELAY, so a small request is not held back for the peer's delayed
                // ACK (reqwest's default today; said here so that no upgrade loses it).
                let http = reqwest::Client::builder()
                    .tcp_nodelay(true)
                    .pool_idle_timeout(IDLE_CONNECTION)
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client for {url}: {e}"))?;
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                let transport = Counting {
                    inner: StreamableHttpClientTransport::with_client(http, config),
                    routes: self.routes.clone(),
                };
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("initialize at {url} failed: {e}"))?;
                (service, None, None)
            }
            None => {
                let (transport, pid, ender) = self.spawn_process()?;
                let transport = Counting {
                    inner: transport,
                    routes: self.routes.clone(),
                };
                match handler.serve(transport).await {
                    Ok(service) => (service, pid, Some(ender)),
                    Err(e) => {
                        return Err(match self.stderr.reason().await {
                            Some(why) => format!("it exited during initialize: {why}"),
                            None => format!("initialize failed: {e}"),
                        });
                    }
                }
            }
        };
        warn_if_other_kind(spec, service.peer());
        let tools = service
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        let (resources, templates) = list_resources(service.peer()).await?;
        let prompts = list_prompts(service.peer()).await?;
        let generation = {
            let mut i = self.lock();
            if i.generation != epoch {
                None
            } else {
                i.generation += 1;
                i.state = Some(State::Running);
                i.peer = Some(service.peer().clone());
                i.stop = Some(Stop(service.cancellation_token(), ender));
                i.tools = tools;
                i.resources = resources;
                i.templates = templates;
                i.prompts = prompts;
                i.pid = pid;
                i.started = Some(Instant::now());
                Some(i.generation)
            }
        };
        let Some(generation) = generation else {
            tracing::info!(server = %spec.name, "a newer start took over: this one stops");
            let _ = service.cancel().await;
            return Ok(());
        };
        if generation > 1 {
            // A restarted child may offer other tools (and resources) than before.
            let hosts = self.hosts.clone();
            tokio::spawn(async move {
                hosts.tools_changed().await;
                hosts.resources_changed().await;
            });
        }
        if let Some(period) = spec.relist_every {
            let me = self.clone();
            tokio::spawn(async move { me.relist_periodically(generation, period).await });
        }
        if let Some(period) = spec.ping_every {
            let me = self.clone();
            let peer = service.peer().clone();
            tokio::spawn(async move { me.watch_liveness(generation, peer, period).await });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let reason = service.waiting().await;
            let why = match me.stderr.reason().await {
                Some(last) if me.spec.url.is_none() => {
                    format!("the process ended ({reason:?}); its last stderr line: {last}")
                }
                _ => format!("the process ended ({reason:?})"),
            };
            me.exited(generation, why);
        });
        Ok(())
    }

    /// Starts the program with its stdin fed from memory ([`Input`]), its stderr followed,
    /// and a reaper that reports its end at once and ends it when its [`Ender`] asks.
    #[allow(clippy::type_complexity)]
    fn spawn_process(
        self: &Arc<Self>,
    ) -> Result<
        (
            AsyncRwTransport<RoleClient, tokio::process::ChildStdout, Input>,
            Option<u32>,
            Ender,
        ),
        String,
    > {
        let spec = &self.spec;
        let mut process = tokio::process::Command::new(&spec.command)
            .args(&spec.args)
            .envs(&spec.env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", spec.command))?;
        if let Some(stderr) = process.stderr.take() {
            self.stderr.follow(spec.name.clone(), stderr);
        }
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            return Err(format!("{:?} started without its pipes", spec.command));
        };
        let input = Arc::new(InputShared::default());
        tokio::spawn(feed(input.clone(), stdin));
        let pid = process.id();
        let end = Arc::new(tokio::sync::Notify::new());
        let asked = end.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = process.wait() => status,
                _ = asked.notified() => stop_process(&mut process).await,
            };
            if let (Some(child), Some(pid)) = (me.upgrade(), pid) {
                child.died(pid, status);
            }
        });
        Ok((AsyncRwTransport::new(stdout, Input(input)), pid, Ender(end)))
    }

    /// The process `pid` ended: until the service's end is handled (backoff, restart), the
    /// child is already reported restarting and calls are answered so at once.
    fn died(&self, pid: u32, status: std::io::Result<std::process::ExitStatus>) {
        let mut i = self.lock();
        if i.pid != Some(pid) || !i.state.is_some_and(State::serving) {
            return;
        }
        i.state = Some(State::Restarting);
        i.peer = None;
        i.pid = None;
        i.started = None;
        i.last_error = Some(match status {
            Ok(s) => format!("the process ended ({s})"),
            Err(e) => format!("the process ended (its status is unknown: {e})"),
        });
    }

    /// Pings the child every `period` while `generation` runs: no answer within the
    /// configured time marks it unresponsive, an answer running again.
    async fn watch_liveness(
        self: Arc<Self>,
        generation: u64,
        peer: Peer<RoleClient>,
        period: Duration,
    ) {
        let wait = self.spec.unresponsive_after;
        loop {
            tokio::time::sleep(period).await;
            if self.lock().generation != generation {
                return;
            }
            let ping = async {
                let options = PeerRequestOptions::with_timeout(wait);
                let request = ClientRequest::PingRequest(Default::default());
                peer.send_request_with_option(request, options)
                    .await?
                    .await_response()
                    .await
            };
            // rmcp's own timeout, and this one should a transport hold the ping back. An
            // error answer (a server without ping) is an answer too.
            let answered = matches!(
                tokio::time::timeout(wait, ping).await,
                Ok(Ok(_) | Err(ServiceError::McpError(_)))
            );
            let mut i = self.lock();
            if i.generation != generation {
                return;
            }
            match (i.state, answered) {
                (Some(State::Running), false) => {
                    i.state = Some(State::Unresponsive);
                    i.last_error =
                        Some(format!("no answer to ping within {} s", wait.as_secs_f64()));
                    tracing::warn!(server = %self.spec.name, "unresponsive: no answer to ping");
                }
                (Some(State::Unresponsive), true) => {
                    i.state = Some(State::Running);
                    tracing::info!(server = %self.spec.name, "answers again");
                }
                (Some(s), _) if s.serving() => {}
                _ => return,
            }
        }
    }

    /// Lists a streamable-HTTP child's tools and resources every `period` while `generation`
    /// runs (the hosts hear of changes): the server may have restarted behind the same URL
    /// (rmcp opens a new session by itself) with other tools and said nothing.
    async fn relist_periodically(self: Arc<Self>, generation: u64, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            {
                let i = self.lock();
                if i.generation != generation || !i.state.is_some_and(State::serving) {
                    return;
                }
            }
            self.relist().await;
            self.relist_resources().await;
        }
    }

    /// Called when the process of `generation` ends: restart with backoff, or open the
    /// breaker after too many crashes.
    fn exited(self: &Arc<Self>, generation: u64, reason: String) {
        let delay = {
            let mut i = self.lock();
            if i.generation != generation || i.state == Some(State::Failed) {
                return;
            }
            i.peer = None;
            i.stop = None;
            i.pid = None;
            i.started = None;
            i.last_error = Some(reason);
            let now = Instant::now();
            i.crashes.push_back(now);
            while i
                .crashes
                .front()
                .is_some_and(|t| now.duration_since(*t) > BREAKER_WINDOW)
            {
                i.crashes.pop_front();
            }
            if i.crashes.len() >= BREAKER_CRASHES {
                i.state = Some(State::Failed);
                tracing::warn!(server = %self.spec.name, "crashed {BREAKER_CRASHES} times in {} s: marked failed", BREAKER_WINDOW.as_secs());
                return;
            }
            i.state = Some(State::Restarting);
            Duration::from_millis(100 << i.crashes.len().min(7))
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let mut i = me.lock();
                if i.generation != generation {
                    return; // restarted by hand meanwhile
                }
                i.restarts += 1;
            }
            if me.start().await.is_err() {
                // A failed restart counts as a crash of its own.
                let g = me.lock().generation;
                me.lock().state = Some(State::Restarting);
                me.exited(g, "restart failed".into());
            }
        });
    }

    /// Restarts by hand: ends the running process if there is one, closes the breaker and
    /// starts again. The new generation makes any automatic restart still pending give way.
    pub async fn restart(self: &Arc<Self>) -> Result<(), String> {
        let running = {
            let mut i = self.lock();
            i.crashes.clear();
            i.state = Some(State::Failed);
            i.generation += 1;
            i.peer = None;
            i.pid = None;
            i.restarts += 1;
            i.stop.take()
        };
        // The process is ended by its ender, dropped here, even if it no longer reads.
        if let Some(Stop(stop, _ender)) = running {
            stop.cancel();
        }
        self.start().await
    }

    /// The child's tools as it listed them (unfiltered).
    pub fn tools(&self) -> Vec<Tool> {
        let i = self.lock();
        if i.state.is_some_and(State::serving) {
            i.tools.clone()
        } else {
            Vec::new()
        }
    }

    /// The child's resources and resource templates as it listed them (none unless running).
    pub fn resources(&self) -> (Vec<Resource>, Vec<ResourceTemplate>) {
        let i = self.lock();
        if i.state.is_some_and(State::serving) {
            (i.resources.clone(), i.templates.clone())
        } else {
            (Vec::new(), Vec::new())
        }
    }

    /// The child's prompts as it listed them (none unless running).
    pub fn prompts(&self) -> Vec<rmcp::model::Prompt> {
        let i = self.lock();
        if i.state.is_some_and(State::serving) {
            i.prompts.clone()
        } else {
            Vec::new()
        }
    }

    /// Whether the child says it completes arguments.
    pub fn completes(&self) -> bool {
        let i = self.lock();
        i.peer.as_ref().is_some_and(|p| {
            p.peer_info()
                .is_some_and(|info| info.capabilities.completions.is_some())
        })
    }

    /// Forwards `prompts/get` (the name already the child's own) with the call timeout.
    pub async fn get_prompt(
        &self,
        mut params: rmcp::model::GetPromptRequestParams,
    ) -> Result<rmcp::model::GetPromptResult, rmcp::ErrorData> {
        params.meta = None;
        let peer = self.peer_or_error()?;
        let mut r = self.ask("prompts/get", peer.get_prompt(params)).await?;
        // As for tool results: the discriminator of the version the host speaks.
        r.result_type
            .get_or_insert(rmcp::model::ResultType::COMPLETE);
        Ok(r)
    }

    /// Forwards `completion/complete` (the reference already the child's own).
    pub async fn complete(
        &self,
        mut params: rmcp::model::CompleteRequestParams,
    ) -> Result<rmcp::model::CompleteResult, rmcp::ErrorData> {
        params.meta = None;
        let peer = self.peer_or_error()?;
        let mut r = self
            .ask("completion/complete", peer.complete(params))
            .await?;
        r.result_type
            .get_or_insert(rmcp::model::ResultType::COMPLETE);
        Ok(r)
    }

    fn peer_or_error(&self) -> Result<Peer<RoleClient>, rmcp::ErrorData> {
        self.peer_or_unavailable()
            .map_err(|m| rmcp::ErrorData::internal_error(m, None))
    }

    /// A request to the child within the call timeout; the child's own errors pass unchanged.
    async fn ask<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, rmcp::ErrorData> {
        match tokio::time::timeout(self.spec.call_timeout, request).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(ServiceError::McpError(e))) => Err(e),
            Ok(Err(e)) => Err(rmcp::ErrorData::internal_error(
                format!("server {:?} failed during {what}: {e}", self.spec.name),
                None,
            )),
            Err(_) => Err(rmcp::ErrorData::internal_error(
                format!("server {:?} did not answer {what} in time", self.spec.name),
                None,
            )),
        }
    }

    /// The resources and templates the child listed last, also while it restarts, so that a
    /// read is still routed to it (and answered "restarting" rather than "unknown").
    pub fn last_resources(&self) -> (Vec<Resource>, Vec<ResourceTemplate>) {
        let i = self.lock();
        (i.resources.clone(), i.templates.clone())
    }

    /// Forwards `resources/read` with the child's call timeout; the answer (contents, or the
    /// child's own error) is given back untouched.
    pub async fn read(
        &self,
        mut params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResponse, rmcp::ErrorData> {
        let peer = self.peer_or_unavailable().map_err(|m| {
            rmcp::ErrorData::internal_error(format!("cannot read {:?}: {m}", params.uri), None)
        })?;
        let timeout = self.spec.call_timeout;
        params.meta = None;
        let uri = params.uri.clone();
        // On timeout the request future is dropped, which cancels it in the child.
        match tokio::time::timeout(timeout, peer.read_resource_once(params)).await {
            Ok(Ok(ReadResourceResponse::Complete(mut r))) => {
                // As for tool results: the child spoke the version it agreed with the
                // coordinator; the discriminator is restored for hosts on newer versions
                // (rmcp drops it again for older ones). The contents are untouched.
                r.result_type
                    .get_or_insert(rmcp::model::ResultType::COMPLETE);
                Ok(ReadResourceResponse::Complete(r))
            }
            Ok(Ok(other)) => Ok(other),
            Ok(Err(ServiceError::McpError(e))) => Err(e),
            Ok(Err(e)) if connection_lost(&e) => Err(rmcp::ErrorData::internal_error(
                format!(
                    "server {:?} went away while reading {uri:?}: it is restarting; try again \
                     in a moment (servers_status shows its state)",
                    self.spec.name
                ),
                None,
            )),
            Ok(Err(e)) => Err(rmcp::ErrorData::internal_error(
                format!(
                    "server {:?} failed while reading {uri:?}: {e}",
                    self.spec.name
                ),
                None,
            )),
            Err(_) => Err(rmcp::ErrorData::internal_error(
                format!(
                    "reading {uri:?} from server {:?} timed out after {} s; the request was \
                     cancelled in the child",
                    self.spec.name,
                    timeout.as_secs_f64()
                ),
                None,
            )),
        }
    }

    /// The child's peer, or why there is none (restarting, or failed).
    fn peer_or_unavailable(&self) -> Result<Peer<RoleClient>, String> {
        let i = self.lock();
        if let Some(peer) = &i.peer {
            return Ok(peer.clone());
        }
        let why = i.last_error.clone().unwrap_or_default();
        Err(match i.state {
            Some(State::Failed) => format!(
                "server {:?} is marked failed ({why}); call servers_restart {{\"name\": {:?}}}",
                self.spec.name, self.spec.name
            ),
            _ => format!(
                "server {:?} is restarting ({why}); try again in a moment",
                self.spec.name
            ),
        })
    }

    /// Forwards one call with the tool's timeout; on timeout the pending request is dropped,
    /// which sends `notifications/cancelled` to the child.
    /// `progress`: the host's peer and token when the host asked for progress (see
    /// [`crate::progress`]).
    pub async fn call(
        &self,
        mut params: CallToolRequestParams,
        progress: Option<(Peer<RoleServer>, ProgressToken)>,
    ) -> Result<CallToolResult, CallError> {
        let peer = self.peer_or_unavailable().map_err(CallError::Unavailable)?;
        let timeout = self.spec.timeout_for(&params.name);
        params.meta = None;
        let started = Instant::now();
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        // The timeout counts from the child's last progress (a `watch` reporting every second
        // runs as long as it needs), up to the server's most for one call.
        let options = PeerRequestOptions::with_timeout(timeout)
            .reset_timeout_on_progress()
            .with_max_total_timeout(self.spec.max_call.max(timeout));
        // rmcp gives every request its own progress token: the route is opened under it as
        // soon as the request is sent, and closed when the call ends.
        let result = match peer.send_cancellable_request(request, options).await {
            Err(e) => Err(e),
            Ok(handle) => {
                let mut routed = progress.map(|(host, host_token)| {
                    self.routes.open(&handle.progress_token, host, host_token);
                    self.routes.guard(&handle.progress_token)
                });
                // If the host cancels, this future is dropped: the guard tells the child, and
                // the route's guard stops its progress at once.
                let mut guard = CancelOnDrop {
                    peer: peer.clone(),
                    id: Some(handle.id.clone()),
                };
                let r = handle.await_response().await;
                guard.id = None;
                // The host sees every progress of the call before its result.
                if let Some(route) = routed.take() {
                    route.close().await;
                }
                r
            }
        };
        let mut i = self.lock();
        i.calls += 1;
        i.latency_total += started.elapsed();
        match result {
            Ok(ServerResult::CallToolResult(r)) => {
                if r.is_error == Some(true) {
                    i.errors += 1;
                }
                Ok(r)
            }
            Ok(other) => {
                i.errors += 1;
                Err(CallError::Failed(format!(
                    "server {:?} answered tools/call with an unexpected result: {other:?}",
                    self.spec.name
                )))
            }
            Err(ServiceError::Timeout { timeout }) => {
                i.errors += 1;
                Err(CallError::Timeout(timeout))
            }
            // Its connection is still there: it does not take its input.
            Err(e)
                if connection_lost(&e) && i.peer.is_some() && !i.pid.is_some_and(process_gone) =>
            {
                i.errors += 1;
                Err(CallError::Failed(format!(
                    "server {:?} did not take the call ({e}); servers_status shows its state, \
                     servers_restart {{\"name\": {:?}}} starts it afresh",
                    self.spec.name, self.spec.name
                )))
            }
            Err(e) if connection_lost(&e) => {
                i.errors += 1;
                Err(CallError::Failed(format!(
                    "server {:?} went away during the call ({e}): it is restarting; try again \
                     in a moment (servers_status shows its state)",
                    self.spec.name
                )))
            }
            Err(e) => {
                i.errors += 1;
                Err(CallError::Failed(format!(
                    "server {:?} failed during the call: {e}",
                    self.spec.name
                )))
            }
        }
    }

    pub fn status(&self) -> ChildStatus {
        let i = self.lock();
        let mut state = i.state.unwrap_or(State::Starting);
        let mut last_error = i.last_error.clone();
        // Its reaper may not have run yet: a dead process is never reported serving.
        if state.serving() && i.pid.is_some_and(process_gone) {
            state = State::Restarting;
            last_error = Some("the process ended".into());
        }
        ChildStatus {
            name: self.spec.name.clone(),
            prefix: self.spec.prefix.clone(),
            state,
            pid: i.pid,
            restarts: i.restarts,
            last_error,
            uptime: i.started.map(|s| s.elapsed().as_secs_f64()),
            tools: i.tools.len(),
            calls: i.calls,
            errors: i.errors,
            latency_ms: (i.calls > 0).then(|| i.latency_total.as_secs_f64() * 1e3 / i.calls as f64),
        }
    }
}
