//! Event traces of a process tree with ptrace.
//!
//! A launched program gets a seccomp filter (installed between fork and exec) that stops it
//! only on the system calls the asked kinds need (`SECCOMP_RET_TRACE`); every other call runs
//! at full speed. A process attached by pid cannot be given a filter, so it stops on every
//! system call (`PTRACE_SYSCALL`), like strace. Threads and children are followed
//! (`PTRACE_O_TRACECLONE`/`FORK`/`VFORK`), programs run are seen at exec.
//!
//! All ptrace calls happen on one tracer thread, as the kernel requires. It blocks in
//! `waitpid`; `stop` interrupts that with a signal to the tracer thread alone. A launched tree is killed when the trace stops or the server dies
//! (`PTRACE_O_EXITKILL`: its filter would make the traced calls fail without a tracer); an
//! attached process is detached and goes on.

use crate::events::{Event, What};
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IoSliceMut;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The system call table (schemas/behavior/syscalls.json).
#[derive(Debug, Deserialize)]
struct Table {
    kinds: BTreeMap<String, Vec<String>>,
    x86_64: BTreeMap<String, u64>,
    i386: BTreeMap<String, u64>,
    socketcall: BTreeMap<String, String>,
}

fn table() -> Result<&'static Table, String> {
    static T: OnceLock<Result<Table, String>> = OnceLock::new();
    T.get_or_init(|| {
        serde_json::from_str(include_str!("../../schemas/behavior/syscalls.json"))
            .map_err(|e| format!("schemas/behavior/syscalls.json: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// Reads a launched program's standard error (Wine's debug channels) on its own thread.
pub type StderrReader = Box<dyn FnMut(&Arc<Shared>, u32, std::process::ChildStderr) + Send>;

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    Launch {
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    /// These processes (all their threads), e.g. every process of a sandbox.
    Attach(Vec<u32>),
}

/// The events kept, bounded: past `cap` the newest are counted, not kept.
#[derive(Debug, Default)]
pub struct Store {
    pub events: Vec<Event>,
    pub dropped: u64,
    pub cap: usize,
    next: u64,
}

impl Store {
    pub fn new(cap: usize) -> Self {
        Store {
            cap,
            ..Store::default()
        }
    }

    pub fn push(&mut self, t_ms: f64, pid: u32, tid: u32, what: What) {
        if self.events.len() >= self.cap {
            self.dropped += 1;
            return;
        }
        self.events.push(Event {
            seq: self.next,
            t_ms,
            pid,
            tid,
            what,
        });
        self.next += 1;
    }
}

/// Shared between the tracer thread and whoever reads the trace.
pub struct Shared {
    pub store: Mutex<Store>,
    pub stop: AtomicBool,
    pub finished: AtomicBool,
    pub error: Mutex<Option<String>>,
    pub started: Instant,
    /// Processes (thread-group ids) seen in the tree.
    pub pids: Mutex<HashSet<u32>>,
    /// The tracer thread's id: `stop` interrupts its waitpid with a signal.
    pub tracer_tid: std::sync::atomic::AtomicI32,
    /// Standard-error readers still running, and those of them that have read all the traced
    /// processes wrote; `traced_gone` once those processes are gone (see `drain_readers`).
    readers: std::sync::atomic::AtomicUsize,
    readers_caught_up: std::sync::atomic::AtomicUsize,
    traced_gone: AtomicBool,
}

impl Shared {
    /// A trace's state before it starts, keeping at most `cap` events.
    fn new(cap: usize) -> Self {
        Self {
            store: Mutex::new(Store::new(cap)),
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            error: Mutex::new(None),
            started: Instant::now(),
            pids: Mutex::new(HashSet::new()),
            tracer_tid: std::sync::atomic::AtomicI32::new(0),
            readers: Default::default(),
            readers_caught_up: Default::default(),
            traced_gone: AtomicBool::new(false),
        }
    }

    pub fn t_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Reads a launch's standard error line by line to its end (a last line without its
    /// newline included). Once the traced processes are gone, a reader that finds its pipe
    /// empty has read all they wrote, and says so: Wine's lingering processes (wineserver
    /// first) may keep the pipe open long after. It reads what the pipe holds, never waiting
    /// for a line's end, so a line left unfinished does not hold the trace.
    pub fn read_lines(&self, mut err: impl std::io::Read + AsFd, mut f: impl FnMut(&[u8])) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        // Bytes, not a String: a program's own output need not be UTF-8.
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        let mut caught_up = false;
        loop {
            // Read before looking: what the gone processes wrote is in the pipe by then.
            let gone = self.traced_gone.load(Ordering::Acquire);
            let mut fds = [PollFd::new(err.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(50u16)) {
                Ok(0) => {
                    if gone && !caught_up {
                        caught_up = true;
                        self.readers_caught_up.fetch_add(1, Ordering::AcqRel);
                    }
                    continue;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) | Err(_) => {}
            }
            let n = match err.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            let mut done = 0;
            while let Some(i) = pending[done..].iter().position(|&b| b == b'\n') {
                f(&pending[done..=done + i]);
                done += i + 1;
            }
            pending.drain(..done);
        }
        if !pending.is_empty() {
            f(&pending);
        }
        if caught_up {
            self.readers_caught_up.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Waits, once the traced processes are gone, until each standard-error reader has read
    /// what they wrote (or ended): at most 10 s, a bound a reader meets only when starved.
    fn drain_readers(&self) {
        self.traced_gone.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.readers.load(Ordering::Acquire) > self.readers_caught_up.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn push(&self, pid: u32, tid: u32, what: What) {
        let t = self.t_ms();
        lock(&self.store).push(t, pid, tid, what);
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running (or finished) trace.
pub struct Trace {
    pub shared: Arc<Shared>,
    pub root: u32,
    pub launched: bool,
    /// The mechanism: `seccomp` (launched) or `syscall` (attached: every call stops).
    pub mode: &'static str,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Trace {
    /// Starts tracing `target` for the event `kinds`; `stderr` receives the launched
    /// program's standard error (Wine's debug channels go there), if asked for.
    pub fn start(
        target: Target,
        kinds: &[String],
        cap: usize,
        wine: bool,
        stderr: Option<StderrReader>,
    ) -> Result<Trace, String> {
        let tab = table()?;
        let mut names: HashSet<String> = HashSet::new();
        for k in kinds {
            for n in tab.kinds.get(k).into_iter().flatten() {
                names.insert(n.clone());
            }
        }
        let nums = |t: &BTreeMap<String, u64>| -> Vec<u64> {
            names.iter().filter_map(|n| t.get(n).copied()).collect()
        };
        let filter = seccomp_program(&nums(&tab.x86_64), &nums(&tab.i386));
        let want = Want {
            process: kinds.iter().any(|k| k == "process"),
            file: kinds.iter().any(|k| k == "file"),
            socket: kinds.iter().any(|k| k == "socket"),
            module: kinds.iter().any(|k| k == "module"),
            exec: kinds.iter().any(|k| k == "exec_memory"),
        };
        let shared = Arc::new(Shared::new(cap));
        wake_signal()?;
        let (tx, rx) = std::sync::mpsc::channel::<Result<u32, String>>();
        let sh = shared.clone();
        let launched = matches!(target, Target::Launch { .. });
        let handle = std::thread::Builder::new()
            .name("tracer".into())
            .spawn(move || {
                sh.tracer_tid
                    .store(nix::unistd::gettid().as_raw(), Ordering::Release);
                let mut tracer = Tracer::new(sh.clone(), want, launched);
                tracer.wine = wine;
                let plain = launched && !want.needs_ptrace(wine);
                let root = match &target {
                    Target::Launch { .. } if plain => tracer.launch_plain(&target, stderr),
                    Target::Launch { .. } => tracer.launch(&target, filter, stderr),
                    Target::Attach(pids) => tracer.attach(pids),
                };
                let ok = root.is_ok();
                let _ = tx.send(root);
                if ok && plain {
                    tracer.wait_plain();
                } else if ok {
                    tracer.run();
                }
                sh.drain_readers();
                sh.finished.store(true, Ordering::Release);
            })
            .map_err(|e| format!("cannot start the tracer thread: {e}"))?;
        match rx.recv() {
            Ok(Ok(root)) => Ok(Trace {
                shared,
                root,
                launched,
                mode: match (launched, want.needs_ptrace(wine)) {
                    (true, false) => "wine_debug",
                    (true, true) => "seccomp",
                    _ => "syscall",
                },
                handle: Some(handle),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err("the tracer thread ended before starting".into()),
        }
    }

    pub fn running(&self) -> bool {
        !self.shared.finished.load(Ordering::Acquire)
    }

    /// Ends the trace: a launched tree is killed, an attached process detached.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // The tracer may sleep in waitpid: SIGURG (handled, not restarted) interrupts it.
        // Sent until it has finished, since one sent just before it calls waitpid is lost.
        let tid = self.shared.tracer_tid.load(Ordering::Acquire);
        for _ in 0..1000 {
            if !self.running() || tid == 0 {
                break;
            }
            // SAFETY: tgkill to a thread of this process with a signal it handles.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    std::process::id() as libc::c_long,
                    tid as libc::c_long,
                    libc::SIGURG as libc::c_long,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes of a sandbox-runner sandbox (`sbx-PID-N`): its cgroup's `cgroup.procs`,
/// found under /sys/fs/cgroup (sandbox-runner names each sandbox's cgroup by its id).
pub fn sandbox_pids(id: &str) -> Result<Vec<u32>, String> {
    let well_formed = id
        .strip_prefix("sbx-")
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if !well_formed {
        return Err("not a sandbox id; accepted: sbx-PID-N as sandbox-runner names them".into());
    }
    fn find(dir: &std::path::Path, id: &str, depth: u32, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name() == id {
                out.push(e.path());
            } else if depth > 0 {
                find(&e.path(), id, depth - 1, out);
            }
        }
    }
    let mut dirs = Vec::new();
    find(std::path::Path::new("/sys/fs/cgroup"), id, 4, &mut dirs);
    let mut pids: Vec<u32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        return Err(
            "no such running sandbox (its cgroup has no process); sandbox__list \
                    shows the running ones"
                .into(),
        );
    }
    Ok(pids)
}

/// A file's SHA-256 in hex; None when it cannot be read or is over 512 MiB.
pub fn sha256_file(path: &std::path::Path) -> Option<String> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file() && m.len() <= 512 << 20)
        .and_then(|_| std::fs::read(path).ok())
        .map(|b| suite_core::bytes::to_hex(&Sha256::digest(&b)))
}

/// Reads a launch's standard error (Wine's debug channels) on a thread of its own; its
/// events are the launched process's (`pid`).
fn read_stderr(sh: &Arc<Shared>, mut f: StderrReader, pid: u32, err: std::process::ChildStderr) {
    sh.readers.fetch_add(1, Ordering::AcqRel);
    let spawned = std::thread::Builder::new()
        .name("trace-stderr".into())
        .spawn({
            let sh = sh.clone();
            move || {
                f(&sh, pid, err);
                sh.readers.fetch_sub(1, Ordering::AcqRel);
            }
        });
    if spawned.is_err() {
        sh.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The launch's command: its arguments, environment and directory; no standard input or
/// output kept, standard error piped when `stderr` (Wine's debug channels are read there).
fn command(
    target: &Target,
    stderr: bool,
) -> Result<(std::process::Command, &std::path::Path), String> {
    let Target::Launch {
        program,
        args,
        env,
        cwd,
    } = target
    else {
        return Err("not a launch".into());
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(if stderr {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    Ok((cmd, program.as_path()))
}

/// Installs (once) a do-nothing SIGURG handler without SA_RESTART, so that `Trace::stop`
/// can interrupt the tracer thread's waitpid. SIGURG's default is to be ignored: sent
/// anywhere else it does nothing either.
fn wake_signal() -> Result<(), String> {
    extern "C" fn nothing(_: libc::c_int) {}
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
        let act = SigAction::new(
            SigHandler::Handler(nothing),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        unsafe { sigaction(Signal::SIGURG, &act) }
            .map(|_| ())
            .map_err(|e| format!("cannot install the tracer's wake-up signal: {e}"))
    })
    .clone()
}

/// A BPF program: stop (`SECCOMP_RET_TRACE`) on the listed calls of each ABI, allow the rest.
fn seccomp_program(x64: &[u64], x86: &[u64]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const TRACE: u32 = 0x7ff0_0000;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    // Layout: [arch] [jeq x64] [jeq i386] [ret allow] | x64: [ld nr] [jeq n]* [ret allow]
    // [ret trace] | i386: the same.
    let block = |nums: &[u64]| -> Vec<libc::sock_filter> {
        let n = nums.len();
        let mut b = vec![stmt(LD_W_ABS, 0)];
        for (i, &nr) in nums.iter().enumerate() {
            // On a match jump past the remaining tests and the allow to the trace.
            b.push(jeq(nr as u32, (n - i) as u8, 0));
        }
        b.push(stmt(RET_K, ALLOW));
        b.push(stmt(RET_K, TRACE));
        b
    };
    let b64 = block(x64);
    let b32 = block(x86);
    let mut p = vec![
        stmt(LD_W_ABS, 4),
        jeq(AUDIT_ARCH_X86_64, 2, 0),
        jeq(AUDIT_ARCH_I386, (1 + b64.len()) as u8, 0),
        stmt(RET_K, ALLOW),
    ];
    p.extend(b64);
    p.extend(b32);
    p
}

#[derive(Debug, Clone, Copy)]
struct Want {
    process: bool,
    file: bool,
    socket: bool,
    module: bool,
    exec: bool,
}

impl Want {
    /// Whether the kinds need system calls (ptrace). A Wine launch asking only for what Wine's
    /// debug channels say (api, registry, exception, and modules from loaddll) runs
    /// untraced, so that wineserver keeps its own ptrace for WriteProcessMemory and
    /// debug registers, which fail while another tracer holds the process.
    fn needs_ptrace(self, wine: bool) -> bool {
        self.process || self.file || self.socket || self.exec || (self.module && !wine)
    }
}

/// A system call seen at entry, finished at exit.
#[derive(Debug)]
struct Pending {
    name: String,
    args: [u64; 6],
    /// Read at entry while the memory is sure to hold it (paths, addresses).
    path: Option<String>,
    to: Option<String>,
    peer: Option<(String, Option<u16>)>,
}

struct Tracer {
    sh: Arc<Shared>,
    want: Want,
    launched: bool,
    /// Traced tasks (tids) and their thread group.
    tasks: HashMap<i32, u32>,
    pending: HashMap<i32, Pending>,
    /// Peers of connected sockets, by (pid, fd), for send/receive events.
    peers: HashMap<(u32, u64), (String, Option<u16>)>,
    /// Modules already reported, by (pid, path).
    modules: HashSet<(u32, String)>,
    hashes: HashMap<String, Option<String>>,
    by_nr: HashMap<(u32, u64), String>,
    socketcall: HashMap<u64, String>,
    seccomp: bool,
    /// A Wine launch: its loader's own mappings of PE images (and the anonymous executable
    /// memory it lays them out in) are not reported; the loaddll channel names the modules
    /// and the relay channel the program's own VirtualAlloc/VirtualProtect calls.
    wine: bool,
    /// An untraced launch (see [`Want::needs_ptrace`]).
    plain: Option<std::process::Child>,
    /// Whether each traced process runs wineserver (forgotten at its exec).
    servers: HashMap<u32, bool>,
}

fn tgid(tid: i32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid as u32)
}

impl Tracer {
    fn new(sh: Arc<Shared>, want: Want, launched: bool) -> Self {
        let mut by_nr = HashMap::new();
        let mut socketcall = HashMap::new();
        if let Ok(t) = table() {
            for (n, &nr) in &t.x86_64 {
                by_nr.insert((AUDIT_ARCH_X86_64, nr), n.clone());
            }
            for (n, &nr) in &t.i386 {
                by_nr.insert((AUDIT_ARCH_I386, nr), n.clone());
            }
            for (k, n) in &t.socketcall {
                if let Ok(k) = k.parse() {
                    socketcall.insert(k, n.clone());
                }
            }
        }
        Tracer {
            sh,
            want,
            launched,
            tasks: HashMap::new(),
            pending: HashMap::new(),
            peers: HashMap::new(),
            modules: HashSet::new(),
            hashes: HashMap::new(),
            by_nr,
            socketcall,
            seccomp: launched,
            wine: false,
            plain: None,
            servers: HashMap::new(),
        }
    }

    fn options(&self) -> Options {
        let mut o = Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACEEXEC;
        if self.launched {
            o |= Options::PTRACE_O_TRACESECCOMP | Options::PTRACE_O_EXITKILL;
        }
        o
    }

    fn launch(
        &mut self,
        target: &Target,
        filter: Vec<libc::sock_filter>,
        stderr: Option<StderrReader>,
    ) -> Result<u32, String> {
        let (mut cmd, program) = command(target, stderr.is_some())?;
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        let prog_addr = &prog as *const libc::sock_fprog as usize;
        // SAFETY: between fork and exec only async-signal-safe calls are made (ptrace,
        // prctl), on memory (`filter`, `prog`) that lives until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        prog_addr as *const libc::sock_fprog,
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        drop(filter);
        let pid = child.id() as i32;
        // The exec stop (SIGTRAP) of a PTRACE_TRACEME child.
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {}
            Ok(other) => return Err(format!("{} did not start: {other:?}", program.display())),
            Err(e) => return Err(format!("waiting for {}: {e}", program.display())),
        }
        ptrace::setoptions(Pid::from_raw(pid), self.options())
            .map_err(|e| format!("ptrace options: {e}"))?;
        if let (Some(f), Some(err)) = (stderr, child.stderr.take()) {
            read_stderr(&self.sh, f, child.id(), err);
        }
        self.tasks.insert(pid, pid as u32);
        lock(&self.sh.pids).insert(pid as u32);
        if self.want.process {
            self.sh.push(
                pid as u32,
                pid as u32,
                What::Process {
                    op: "exec",
                    child: None,
                    path: exe(pid),
                    argv: cmdline(pid),
                },
            );
        }
        self.resume(pid, None);
        // `child` is reaped by waitpid in `run`; std's Child has no Drop that waits.
        std::mem::forget(child);
        Ok(pid as u32)
    }

    /// Starts a launch without ptrace (only its standard error is read).
    fn launch_plain(
        &mut self,
        target: &Target,
        stderr: Option<StderrReader>,
    ) -> Result<u32, String> {
        let (mut cmd, program) = command(target, stderr.is_some())?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let pid = child.id();
        lock(&self.sh.pids).insert(pid);
        if let (Some(f), Some(err)) = (stderr, child.stderr.take()) {
            read_stderr(&self.sh, f, child.id(), err);
        }
        self.plain = Some(child);
        Ok(pid)
    }

    /// Waits for an untraced launch to end, or kills it when the trace stops.
    fn wait_plain(&mut self) {
        let Some(mut child) = self.plain.take() else {
            return;
        };
        loop {
            if self.sh.stop.load(Ordering::Acquire) {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
    }

    /// Attaches to every thread of `pids`; answers the first.
    fn attach(&mut self, pids: &[u32]) -> Result<u32, String> {
        for &pid in pids {
            self.attach_one(pid)?;
        }
        pids.first()
            .copied()
            .ok_or_else(|| "no process to attach to".to_string())
    }

    fn attach_one(&mut self, pid: u32) -> Result<(), String> {
        let tids =
            mcp_memory::procfs::threads(pid).map_err(|e| format!("no such process {pid} ({e})"))?;
        for tid in tids {
            let p = Pid::from_raw(tid as i32);
            match ptrace::seize(p, self.options()) {
                Ok(()) => {}
                Err(nix::errno::Errno::ESRCH) => continue,
                Err(e) => {
                    self.detach_all();
                    return Err(format!(
                        "cannot trace {pid} (thread {tid}): {e}; it may already have a \
                         tracer (a debugger, strace, or Wine's wineserver mid-call)"
                    ));
                }
            }
            self.tasks.insert(tid as i32, pid);
            let _ = ptrace::interrupt(p);
        }
        lock(&self.sh.pids).insert(pid);
        Ok(())
    }

    fn detach_all(&mut self) {
        let tids: Vec<i32> = self.tasks.keys().copied().collect();
        for tid in tids {
            let p = Pid::from_raw(tid);
            if self.launched {
                let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
                continue;
            }
            // A running tracee must be stopped before it can be detached.
            if ptrace::detach(p, None).is_err() {
                let _ = ptrace::interrupt(p);
                for _ in 0..100 {
                    match waitpid(p, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
                        Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_) => {
                            break;
                        }
                        Ok(_) => {
                            let _ = ptrace::detach(p, None);
                            break;
                        }
                    }
                }
            }
        }
        if self.launched {
            // Reap what was killed.
            for _ in 0..200 {
                match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        self.tasks.clear();
    }

    /// Restarts a stopped task: to its next traced call (seccomp), or next call (syscall
    /// mode, or to see a traced call's result).
    fn resume(&mut self, tid: i32, sig: Option<Signal>) {
        let p = Pid::from_raw(tid);
        let _ = if self.seccomp && !self.pending.contains_key(&tid) {
            ptrace::cont(p, sig)
        } else {
            ptrace::syscall(p, sig)
        };
    }

    fn run(&mut self) {
        loop {
            if self.sh.stop.load(Ordering::Acquire) {
                self.detach_all();
                return;
            }
            if self.tasks.is_empty() {
                return;
            }
            // Blocking: a tracee's next stop wakes the tracer at once (polling with sleeps
            // cost a sleep's latency per stop); `Trace::stop` interrupts it (EINTR).
            let flags = WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD;
            match waitpid(None, Some(flags)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(st) => self.handle(st),
                Err(nix::errno::Errno::ECHILD) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    *lock(&self.sh.error) = Some(format!("waitpid: {e}"));
                    self.detach_all();
                    return;
                }
            }
        }
    }

    fn handle(&mut self, st: WaitStatus) {
        match st {
            WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _) => {
                let tid = p.as_raw();
                self.pending.remove(&tid);
                if let Some(pid) = self.tasks.remove(&tid)
                    && pid == tid as u32
                    && self.want.process
                {
                    self.sh.push(
                        pid,
                        pid,
                        What::Process {
                            op: "exit",
                            child: None,
                            path: None,
                            argv: Vec::new(),
                        },
                    );
                }
            }
            WaitStatus::PtraceSyscall(p) => {
                self.syscall_stop(p.as_raw());
                self.resume(p.as_raw(), None);
            }
            WaitStatus::PtraceEvent(p, _, ev) => {
                let tid = p.as_raw();
                self.event(tid, ev);
                self.resume(tid, None);
            }
            WaitStatus::Stopped(p, sig) => {
                let tid = p.as_raw();
                // A new child or thread's first stop may come before its parent's event.
                self.tasks.entry(tid).or_insert_with(|| tgid(tid));
                // Auto-attached children start with SIGSTOP: swallow it.
                let pass = if sig == Signal::SIGSTOP || sig == Signal::SIGTRAP {
                    None
                } else {
                    Some(sig)
                };
                self.resume(tid, pass);
            }
            _ => {}
        }
    }

    fn event(&mut self, tid: i32, ev: i32) {
        let pid = *self.tasks.get(&tid).unwrap_or(&(tid as u32));
        match ev {
            libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                let Ok(new) = ptrace::getevent(Pid::from_raw(tid)) else {
                    return;
                };
                let new = new as i32;
                let thread = ev == libc::PTRACE_EVENT_CLONE && tgid(new) == pid;
                let owner = if thread { pid } else { new as u32 };
                self.tasks.entry(new).or_insert(owner);
                if !thread {
                    lock(&self.sh.pids).insert(new as u32);
                }
                if self.want.process {
                    self.sh.push(
                        pid,
                        tid as u32,
                        What::Process {
                            op: if thread { "thread" } else { "spawn" },
                            child: Some(new as u32),
                            path: None,
                            argv: Vec::new(),
                        },
                    );
                }
            }
            libc::PTRACE_EVENT_EXEC => {
                // After exec the thread group's leader carries on under the group's pid.
                let pid = tgid(tid);
                if tid as u32 != pid {
                    self.tasks.remove(&tid);
                    self.tasks.insert(pid as i32, pid);
                }
                self.pending.remove(&tid);
                self.servers.remove(&pid);
                if self.want.process {
                    self.sh.push(
                        pid,
                        pid,
                        What::Process {
                            op: "exec",
                            child: None,
                            path: exe(pid as i32),
                            argv: cmdline(pid as i32),
                        },
                    );
                }
            }
            libc::PTRACE_EVENT_SECCOMP => {
                self.syscall_stop(tid);
            }
            _ => {}
        }
    }

    /// A system-call stop: entry (or seccomp) records what the call will do; exit completes
    /// it with the result and makes the event.
    fn syscall_stop(&mut self, tid: i32) {
        let Ok(info) = ptrace::syscall_info(Pid::from_raw(tid)) else {
            return;
        };
        let pid = *self.tasks.get(&tid).unwrap_or(&(tid as u32));
        match info.op {
            libc::PTRACE_SYSCALL_INFO_ENTRY | libc::PTRACE_SYSCALL_INFO_SECCOMP => {
                // SAFETY: `op` says which member of the union the kernel filled.
                let (nr, args) = unsafe {
                    if info.op == libc::PTRACE_SYSCALL_INFO_SECCOMP {
                        (info.u.seccomp.nr, info.u.seccomp.args)
                    } else {
                        (info.u.entry.nr, info.u.entry.args)
                    }
                };
                let Some(name) = self.by_nr.get(&(info.arch, nr)).cloned() else {
                    return;
                };
                let wide = info.arch == AUDIT_ARCH_X86_64;
                let (name, args) = if name == "socketcall" {
                    let Some(n) = self.socketcall.get(&args[0]).cloned() else {
                        return;
                    };
                    let mut a = [0u64; 6];
                    let mut raw = [0u8; 24];
                    if read(tid, args[1], &mut raw) != raw.len() {
                        return;
                    }
                    for (k, v) in a.iter_mut().enumerate() {
                        *v = u32::from_le_bytes([
                            raw[k * 4],
                            raw[k * 4 + 1],
                            raw[k * 4 + 2],
                            raw[k * 4 + 3],
                        ]) as u64;
                    }
                    (n, a)
                } else {
                    (name, args)
                };
                if let Some(p) = self.entry(tid, &name, args, wide) {
                    self.pending.insert(tid, p);
                }
            }
            libc::PTRACE_SYSCALL_INFO_EXIT => {
                let Some(p) = self.pending.remove(&tid) else {
                    return;
                };
                // SAFETY: an exit stop fills `exit`.
                let (rval, is_error) = unsafe { (info.u.exit.sval, info.u.exit.is_error != 0) };
                // A refused connect is still an attempt worth seeing; other failed calls
                // did nothing.
                if is_error && p.name != "connect" {
                    return;
                }
                self.exit(pid, tid, p, rval);
            }
            _ => {}
        }
    }

    fn entry(&mut self, tid: i32, name: &str, a: [u64; 6], wide: bool) -> Option<Pending> {
        let mut p = Pending {
            name: name.to_string(),
            args: a,
            path: None,
            to: None,
            peer: None,
        };
        let at_path = |dirfd: u64, ptr: u64| -> Option<String> {
            let raw = read_string(tid, ptr)?;
            Some(resolve(tid, dirfd, &raw))
        };
        const AT_FDCWD: u64 = (-100i64) as u64;
        let cwd = if wide {
            AT_FDCWD
        } else {
            AT_FDCWD & 0xFFFF_FFFF
        };
        match name {
            "open" | "creat" | "unlink" if self.want.file => p.path = at_path(cwd, a[0]),
            "openat" | "openat2" | "unlinkat" if self.want.file => p.path = at_path(a[0], a[1]),
            "rename" if self.want.file => {
                p.path = at_path(cwd, a[0]);
                p.to = at_path(cwd, a[1]);
            }
            "renameat" | "renameat2" if self.want.file => {
                p.path = at_path(a[0], a[1]);
                p.to = at_path(a[2], a[3]);
            }
            "connect" | "bind" if self.want.socket => p.peer = sockaddr(tid, a[1], a[2]),
            "sendto" if self.want.socket && a[4] != 0 => p.peer = sockaddr(tid, a[4], a[5]),
            "listen" | "accept" | "accept4" | "send" | "sendto" | "recv" | "recvfrom"
            | "sendmsg" | "recvmsg"
                if self.want.socket => {}
            "mmap" | "mmap2" if self.want.module || self.want.exec => {
                const PROT_EXEC: u64 = 4;
                if a[2] & PROT_EXEC == 0 {
                    return None;
                }
                let fd = a[4] as i64 as i32;
                let fd = if wide { fd } else { a[4] as u32 as i32 };
                if fd >= 0 {
                    p.path = std::fs::read_link(format!("/proc/{tid}/fd/{fd}"))
                        .ok()
                        .map(|l| l.to_string_lossy().into_owned());
                }
            }
            "mprotect" if self.want.exec => {
                const PROT_EXEC: u64 = 4;
                if a[2] & PROT_EXEC == 0 {
                    return None;
                }
                p.path = mapping_path(tid, a[0]);
            }
            _ => return None,
        }
        Some(p)
    }

    fn exit(&mut self, pid: u32, tid: i32, p: Pending, rval: i64) {
        let t = tid as u32;
        let a = p.args;
        let sock = |op: &'static str, peer: Option<(String, Option<u16>)>, bytes| What::Socket {
            op,
            port: peer.as_ref().and_then(|x| x.1),
            peer: peer.map(|x| x.0),
            bytes,
        };
        // Under Wine, wineserver opens files for every program of its prefix; the relay's
        // file API calls say which the traced program asked for.
        let file_call = matches!(
            p.name.as_str(),
            "open"
                | "openat"
                | "openat2"
                | "creat"
                | "unlink"
                | "unlinkat"
                | "rename"
                | "renameat"
                | "renameat2"
        );
        if self.wine && file_call && self.is_wineserver(pid) {
            return;
        }
        let what = match p.name.as_str() {
            "open" | "openat" | "openat2" | "creat" => {
                let Some(path) = p.path.as_deref().map(canonical) else {
                    return;
                };
                let flags = match p.name.as_str() {
                    "open" => a[1],
                    "openat" => a[2],
                    "creat" => (libc::O_CREAT | libc::O_WRONLY) as u64,
                    _ => {
                        // openat2: struct open_how { u64 flags; ... }
                        let mut b = [0u8; 8];
                        read(tid, a[2], &mut b);
                        u64::from_le_bytes(b)
                    }
                };
                if path.starts_with("/proc/") || path.starts_with("/dev/") {
                    return;
                }
                let acc = flags & libc::O_ACCMODE as u64;
                let op = if flags & libc::O_CREAT as u64 != 0 {
                    "create"
                } else if acc == libc::O_WRONLY as u64 || acc == libc::O_RDWR as u64 {
                    "write"
                } else {
                    "open"
                };
                What::File { op, path, to: None }
            }
            "unlink" | "unlinkat" => {
                let Some(path) = p.path.as_deref().map(canonical) else {
                    return;
                };
                What::File {
                    op: "remove",
                    path,
                    to: None,
                }
            }
            "rename" | "renameat" | "renameat2" => {
                let Some(path) = p.path.as_deref().map(canonical) else {
                    return;
                };
                What::File {
                    op: "rename",
                    path,
                    to: p.to.as_deref().map(canonical),
                }
            }
            "connect" => {
                if let Some(peer) = &p.peer {
                    self.peers.insert((pid, a[0]), peer.clone());
                }
                sock("connect", p.peer, None)
            }
            "bind" => sock("bind", p.peer, None),
            "listen" => sock("listen", self.peers.get(&(pid, a[0])).cloned(), None),
            "accept" | "accept4" => sock("accept", sockaddr_out(tid, a[1], a[2]), None),
            "send" | "sendto" | "sendmsg" => {
                let peer = p.peer.or_else(|| self.peers.get(&(pid, a[0])).cloned());
                sock("send", peer, Some(rval as u64))
            }
            "recv" | "recvfrom" | "recvmsg" => {
                let peer = self.peers.get(&(pid, a[0])).cloned();
                sock("receive", peer, Some(rval as u64))
            }
            "mmap" | "mmap2" => {
                let addr = rval as u64;
                if self.wine && p.path.as_deref().is_none_or(is_pe) {
                    return;
                }
                match p.path {
                    Some(path) if self.want.module => {
                        if !self.modules.insert((pid, path.clone())) {
                            return;
                        }
                        let off = if p.name == "mmap2" { a[5] * 4096 } else { a[5] };
                        let sha256 = self.hash(&path);
                        What::Module {
                            base: addr.wrapping_sub(off),
                            path,
                            sha256,
                        }
                    }
                    Some(_) => return,
                    None if self.want.exec => What::ExecMemory {
                        op: "mmap",
                        address: addr,
                        length: a[1],
                        path: None,
                    },
                    None => return,
                }
            }
            "mprotect" if self.wine && p.path.as_deref().is_none_or(is_pe) => return,
            "mprotect" => What::ExecMemory {
                op: "mprotect",
                address: a[0],
                length: a[1],
                path: p.path,
            },
            _ => return,
        };
        self.sh.push(pid, t, what);
    }

    /// Whether `pid` runs wineserver, read from /proc once per program it runs.
    fn is_wineserver(&mut self, pid: u32) -> bool {
        *self.servers.entry(pid).or_insert_with(|| {
            exe(pid as i32).is_some_and(|e| {
                std::path::Path::new(&e)
                    .file_name()
                    .is_some_and(|n| crate::wine_debug::is_wineserver_name(&n.to_string_lossy()))
            })
        })
    }

    /// SHA-256 of a module file, once per path (files over 512 MiB are not hashed).
    fn hash(&mut self, path: &str) -> Option<String> {
        if let Some(h) = self.hashes.get(path) {
            return h.clone();
        }
        let h = sha256_file(std::path::Path::new(path));
        self.hashes.insert(path.to_string(), h.clone());
        h
    }
}

/// A path with its symbolic links followed (Wine opens files through
/// `<prefix>/dosdevices/z:/...`); for a file that no longer (or not yet) exists, its
/// directory's. Unresolvable paths stay as they are.
fn canonical(path: &str) -> String {
    // Resolving costs a system call per path component while the tracee waits: only paths
    // through Wine's drive links are resolved.
    if !path.contains("/dosdevices/") {
        return path.to_string();
    }
    let p = std::path::Path::new(path);
    if let Ok(c) = std::fs::canonicalize(p) {
        return c.to_string_lossy().into_owned();
    }
    match (p.parent().map(std::fs::canonicalize), p.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name).to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

/// Whether a file is a PE image (starts with `MZ`): under Wine, the loader's business.
fn is_pe(path: &str) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"MZ")
}

fn exe(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .take(16)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The file mapped at `addr` in `/proc/<tid>/maps`, if any.
fn mapping_path(tid: i32, addr: u64) -> Option<String> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (lo, hi) = f.next()?.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        if addr < lo || addr >= hi {
            return None;
        }
        let path = f.nth(4)?;
        path.starts_with('/').then(|| path.to_string())
    })
}

/// Reads tracee memory; answers how many bytes were read.
fn read(tid: i32, addr: u64, buf: &mut [u8]) -> usize {
    if addr == 0 || buf.is_empty() {
        return 0;
    }
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    process_vm_readv(Pid::from_raw(tid), &mut [IoSliceMut::new(buf)], &remote).unwrap_or(0)
}

/// A NUL-terminated string of at most 4 KiB, read page by page.
fn read_string(tid: i32, addr: u64) -> Option<String> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < 4096 {
        let room = (4096 - (at % 4096)) as usize;
        let mut buf = vec![0u8; room.min(256)];
        let n = read(tid, at, &mut buf);
        if n == 0 {
            break;
        }
        if let Some(z) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..z]);
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// A path as the call sees it: relative paths joined to the directory fd or the cwd.
fn resolve(tid: i32, dirfd: u64, raw: &str) -> String {
    if raw.starts_with('/') {
        return raw.to_string();
    }
    let fd = dirfd as i64 as i32;
    let fd = if fd == -100 || dirfd == 0xFFFF_FF9C {
        None
    } else {
        Some(fd)
    };
    let base = match fd {
        None => std::fs::read_link(format!("/proc/{tid}/cwd")),
        Some(fd) => std::fs::read_link(format!("/proc/{tid}/fd/{fd}")),
    };
    match base {
        Ok(b) => b.join(raw).to_string_lossy().into_owned(),
        Err(_) => raw.to_string(),
    }
}

/// A `struct sockaddr` in the tracee: `ip:port` for IPv4/IPv6, the path for Unix sockets.
fn sockaddr(tid: i32, ptr: u64, len: u64) -> Option<(String, Option<u16>)> {
    let len = (len as usize).min(128);
    if len < 2 {
        return None;
    }
    let mut b = vec![0u8; len];
    let n = read(tid, ptr, &mut b);
    b.truncate(n);
    parse_sockaddr(&b)
}

/// For accept: the peer the kernel wrote back (`*addrlen` bytes at `addr`).
fn sockaddr_out(tid: i32, ptr: u64, lenp: u64) -> Option<(String, Option<u16>)> {
    let mut l = [0u8; 4];
    if read(tid, lenp, &mut l) != 4 {
        return None;
    }
    sockaddr(tid, ptr, u32::from_le_bytes(l) as u64)
}

pub fn parse_sockaddr(b: &[u8]) -> Option<(String, Option<u16>)> {
    let family = u16::from_le_bytes([*b.first()?, *b.get(1)?]) as i32;
    match family {
        libc::AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            Some((
                format!("{}.{}.{}.{}:{port}", b[4], b[5], b[6], b[7]),
                Some(port),
            ))
        }
        libc::AF_INET6 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            Some((
                format!("[{}]:{port}", std::net::Ipv6Addr::from(a)),
                Some(port),
            ))
        }
        libc::AF_UNIX => {
            let p = &b[2..];
            let name = if p.first() == Some(&0) {
                format!(
                    "@{}",
                    String::from_utf8_lossy(&p[1..]).trim_end_matches('\0')
                )
            } else {
                let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
                String::from_utf8_lossy(&p[..end]).into_owned()
            };
            Some((name, None))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syscall_table_loads_and_names_every_kind() {
        let t = table().map_err(|e| e.to_string());
        assert!(t.is_ok(), "{t:?}");
        if let Ok(t) = t {
            for (kind, names) in &t.kinds {
                for n in names {
                    assert!(
                        t.x86_64.contains_key(n) || t.i386.contains_key(n),
                        "{kind}: {n} has no number"
                    );
                }
            }
            assert_eq!(t.x86_64.get("openat"), Some(&257));
            assert_eq!(t.i386.get("openat"), Some(&295));
        }
    }

    #[test]
    fn a_reader_catches_up_while_the_pipe_stays_open() -> Result<(), Box<dyn std::error::Error>> {
        use std::io::Write;
        let (r, w) = nix::unistd::pipe()?;
        let mut w = std::fs::File::from(w);
        let sh = Arc::new(Shared::new(16));
        sh.readers.fetch_add(1, Ordering::AcqRel);
        let reader = std::thread::spawn({
            let sh = sh.clone();
            move || {
                let mut lines = Vec::new();
                sh.read_lines(std::fs::File::from(r), |l| lines.push(l.to_vec()));
                sh.readers.fetch_sub(1, Ordering::AcqRel);
                lines
            }
        });
        // Lines split across writes, and a last one left without its newline.
        w.write_all(b"one\ntw")?;
        w.write_all(b"o\nthree")?;
        // The writer stays open (as wineserver keeps the pipe): the reader still catches up.
        sh.drain_readers();
        assert_eq!(sh.readers_caught_up.load(Ordering::Acquire), 1);
        drop(w);
        let lines = reader.join().map_err(|_| "the reader panicked")?;
        assert_eq!(lines, [&b"one\n"[..], b"two\n", b"three"]);
        assert_eq!(sh.readers_caught_up.load(Ordering::Acquire), 0);
        Ok(())
    }

    #[test]
    fn sockaddrs_are_named() {
        let v4 = [2u8, 0, 0x0f, 0xa0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_sockaddr(&v4),
            Some(("127.0.0.1:4000".to_string(), Some(4000)))
        );
        let mut un = vec![1u8, 0];
        un.extend_from_slice(b"/tmp/x.sock\0");
        assert_eq!(parse_sockaddr(&un), Some(("/tmp/x.sock".to_string(), None)));
        assert_eq!(parse_sockaddr(&[9]), None);
    }

    #[test]
    fn the_filter_jumps_land_on_the_returns() {
        let p = seccomp_program(&[2, 257], &[5]);
        // 4 head + (1 + 2 + 2) x64 + (1 + 1 + 2) i386
        assert_eq!(p.len(), 4 + 5 + 4);
        // The i386 jump lands on the i386 block's load.
        assert_eq!(2 + 1 + p[2].jt as usize, 4 + 5);
        // The first x64 test jumps to the trace return.
        assert_eq!(5 + 1 + p[5].jt as usize, 8);
        assert_eq!(p[8].k, 0x7ff0_0000);
    }
}
