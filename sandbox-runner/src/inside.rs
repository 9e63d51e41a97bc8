//! What runs inside: the runner executes `sandbox-runner-stage __stage1 CONFIG` (or, when that
//! small executable is not installed, re-executes itself with the same arguments) and this
//! module takes over in that fresh, single-threaded process (so forking is safe).
//!
//! - stage 1 (the holder) unshares the namespaces, tells the runner its pid (the runner then
//!   wires the network), forks, and reaps until everything below it is gone;
//! - stage 2 is pid 1 of the new pid namespace: it joins the cgroup, builds the file system
//!   view, brings up loopback, waits for the runner's `go` (network wired, the compiled
//!   filter), forks the program and reaps; when the program ends it reports the status and
//!   exits, which kills whatever is left in the namespace;
//! - stage 3 sets rlimits, drops every capability, loads the seccomp filter, hands the
//!   filter's notification fd to the runner and executes the program.
//!
//! Messages to the runner are JSON lines on one socket (fd [`SYNC_FD`]); any failure before the
//! program starts is sent as `{"error": ...}` and the stage exits with 127.

use crate::profile::NetMode;
use nix::sched::{self, CloneFlags};
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::{prctl, socket};
use nix::unistd;
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Top-level directories the sandbox gets fresh instances of instead of the host's.
pub const OWN_MOUNTS: &[&str] = &["proc", "dev", "tmp", "run"];

/// The fd the sync socket is given inside: the runner passes its own number for it (the
/// socket is inherited, not moved before exec, see [`move_sync_fd`]) and stage 1 moves it here.
pub const SYNC_FD: RawFd = 3;

/// The file name of the small executable that runs the stages (src/stage.rs), looked for
/// beside the runner's own.
pub const STAGE_EXE: &str = "sandbox-runner-stage";

/// The argument before the configuration, for either executable.
pub const STAGE_ARG: &str = "__stage1";

/// Everything the inside needs, passed as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// An empty host directory the new root is built on.
    pub root_dir: PathBuf,
    /// Host directory mounted read-write as `home` inside.
    pub home_host: PathBuf,
    pub home: PathBuf,
    /// Host directories mounted read-write at the same path.
    pub rw: Vec<PathBuf>,
    /// Host directories mounted read-only at the same path where the system view lacks them
    /// (the program's own directory when it lives under a hidden path).
    pub ro: Vec<PathBuf>,
    /// Top-level directories of the host left out of the view.
    pub hide: Vec<String>,
    /// The files stage 2 writes "0" into to join the sandbox's cgroup.
    pub join_files: Vec<PathBuf>,
    pub net: NetMode,
    pub user_ns: bool,
    pub hostname: String,
    /// The compiled filter: not in the JSON argument, it arrives with the runner's `go`.
    #[serde(skip)]
    pub filter: Vec<u8>,
    pub rlimits: Vec<(u32, u64)>,
}

/// Messages from the inside to the runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// Stage 1 unshared its namespaces; the runner answers `go` (to stage 2) once the network
    /// is wired.
    Unshared { pid: u32 },
    /// Stage 2 started the program: its pid inside the namespace.
    Started { ns_pid: u32 },
    /// Stage 3 loaded the filter and is about to exec. Two fds ride along: the filter's
    /// notification fd, and the read end of a close-on-exec pipe that reaches end-of-file
    /// when the exec succeeds or carries the reason it failed.
    Filter,
    /// The program ended (stage 2 saw it).
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Set-up failed before the program started.
    Error { error: String },
}

fn send(msg: &Message) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        // MSG_NOSIGNAL: a runner that is gone is an error here, never a SIGPIPE (the stage
        // executable leaves SIGPIPE at its default).
        let _ = socket::send(SYNC_FD, &line, socket::MsgFlags::MSG_NOSIGNAL);
    }
}

fn fail(what: String) -> ! {
    send(&Message::Error { error: what });
    // SAFETY: _exit ends the process without running destructors, as wanted after fork.
    unsafe { libc::_exit(127) }
}

fn errno(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("path {} has a NUL byte", p.display()))
}

/// Entry point of the stage executable: `[__stage1] SYNC_FD RUNNER_PID CONFIG` from its
/// arguments (as [`stage_args`] makes them).
pub fn stage_main() -> ! {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().map(|a| a.as_os_str()) == Some(std::ffi::OsStr::new(STAGE_ARG)) {
        args.next();
    }
    let mut num = || args.next().and_then(|a| a.to_str()?.parse::<i32>().ok());
    // The socket first, so that whatever fails next can be reported on it.
    if let Some(fd) = num() {
        move_sync_fd(fd);
    }
    let runner = num();
    let config = args.next();
    match (runner, config.as_ref().and_then(|c| c.to_str())) {
        (Some(runner), Some(c)) => {
            die_with_runner(runner);
            stage1(c)
        }
        _ => fail(format!(
            "inside: bad arguments; usage: {STAGE_EXE} {STAGE_ARG} SYNC_FD RUNNER_PID CONFIG (started by sandbox-runner)"
        )),
    }
}

/// The arguments [`stage_main`] takes: the runner's number for the inherited sync socket,
/// the runner's pid and the configuration.
pub fn stage_args(sync_fd: RawFd, config_json: String) -> [String; 4] {
    [
        STAGE_ARG.to_string(),
        sync_fd.to_string(),
        std::process::id().to_string(),
        config_json,
    ]
}

/// The holder dies with the runner (the thread that started it, which lives as long as the
/// runner process), and with it the whole sandbox. Set here rather than between fork and exec
/// in the runner, which would make std fork the whole (large, multi-threaded) runner instead
/// of using posix_spawn; a runner that died before this call is caught by `getppid`.
fn die_with_runner(runner: i32) {
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    if unistd::getppid().as_raw() != runner {
        // SAFETY: _exit ends the process at once; nothing of it needs to run on the way out.
        unsafe { libc::_exit(1) } // the runner is already gone
    }
}

/// Moves the sync socket the runner let this process inherit (as `fd`) to [`SYNC_FD`].
fn move_sync_fd(fd: RawFd) {
    if fd == SYNC_FD {
        return;
    }
    // SAFETY: dup2 and close on fds of this single-threaded process; `fd` is ours, inherited.
    unsafe {
        if libc::dup2(fd, SYNC_FD) < 0 {
            libc::_exit(127); // no socket to report on
        }
        libc::close(fd);
    }
}

/// Entry point of `__stage1` (the sync socket at [`SYNC_FD`]): never returns.
pub fn stage1(config_json: &str) -> ! {
    let cfg: Config = match serde_json::from_str(config_json) {
        Ok(c) => c,
        Err(e) => fail(format!("inside: bad configuration: {e}")),
    };
    // The holder reaps whatever the namespace leaves behind when its init dies (those
    // processes are re-parented to the nearest subreaper), so no zombie outlives the sandbox.
    let _ = prctl::set_child_subreaper(true);
    if cfg.user_ns {
        // Unprivileged: a user namespace first, mapping our own uid/gid to root inside.
        let (uid, gid) = (unistd::getuid(), unistd::getgid());
        if let Err(e) = sched::unshare(CloneFlags::CLONE_NEWUSER) {
            fail(format!("unshare(CLONE_NEWUSER): {e}"));
        }
        let maps = [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("0 {uid} 1")),
            ("/proc/self/gid_map", format!("0 {gid} 1")),
        ];
        for (file, text) in maps {
            if let Err(e) = std::fs::write(file, text) {
                fail(format!("writing {file}: {e}"));
            }
        }
    }
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWPID;
    if cfg.net != NetMode::Host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = sched::unshare(flags) {
        fail(format!("unshare(pid, mount, ipc, uts, net): {e}"));
    }
    send(&Message::Unshared {
        pid: std::process::id(),
    });
    // Stage 2 starts at once: it joins the cgroup and builds the view while the runner wires
    // the network, and waits for the runner's `go` only before it starts the program.
    // SAFETY: fork in a single-threaded process.
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail(errno("fork (pid 1 of the sandbox)"));
    }
    if child == 0 {
        stage2(cfg);
    }
    let mut status = 0;
    loop {
        let mut st = 0;
        // SAFETY: st is a valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r == child {
            status = st;
        } else if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break; // ECHILD: everything is reaped
        }
    }
    // SAFETY: _exit after fork-related work; nothing to flush.
    unsafe { libc::_exit(encode(status)) }
}

fn split(status: libc::c_int) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    }
}

/// An exit code that carries a signal the shell way (128 + signal).
fn encode(status: libc::c_int) -> i32 {
    match split(status) {
        (Some(c), _) => c,
        (_, Some(s)) => 128 + s,
        _ => 1,
    }
}

/// The runner's `go` (the network is wired) with the compiled filter on the same line.
fn wait_go() -> Vec<u8> {
    // SAFETY: SYNC_FD is ours; the UnixStream is forgotten below so it is not closed.
    let sock = unsafe { UnixStream::from_raw_fd(SYNC_FD) };
    let mut line = String::new();
    let go = std::io::BufReader::new(&sock).read_line(&mut line);
    std::mem::forget(sock);
    match (go, line.trim().strip_prefix("go ")) {
        (Ok(_), Some(hex)) => match suite_core::bytes::from_hex(hex) {
            Some(bpf) => bpf,
            None => fail("the runner's filter is not hex".into()),
        },
        _ => fail(format!("runner did not answer go (got {:?})", line.trim())),
    }
}

fn stage2(mut cfg: Config) -> ! {
    // If the holder (stage 1) dies, so does pid 1, and with it the whole namespace.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    // Pid 1 and everything it starts are the cgroup; the holder stays outside so that it can
    // reap after a kill of the whole group. "0" is the writing thread: this process is still
    // single-threaded (a fresh fork), so that is all of it (see `Cgroup::join_files`).
    for f in &cfg.join_files {
        if let Err(e) = std::fs::write(f, "0") {
            fail(format!("joining cgroup {}: {e}", f.display()));
        }
    }
    if let Err(e) = nix::unistd::sethostname(&cfg.hostname) {
        fail(format!("sethostname: {e}"));
    }
    if let Err(e) = build_view(&cfg) {
        fail(e);
    }
    if cfg.net != NetMode::Host
        && let Err(e) = loopback_up()
    {
        fail(e);
    }
    cfg.filter = wait_go();
    let cfg = &cfg;
    // SAFETY: fork in a single-threaded process.
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail(errno("fork (the program)"));
    }
    if child == 0 {
        stage3(cfg);
    }
    send(&Message::Started {
        ns_pid: child as u32,
    });
    // Reap everything; report when the program itself ends.
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == child {
            let (code, signal) = split(status);
            send(&Message::Exit { code, signal });
            // SAFETY: leaving pid 1 kills the rest of the namespace, which is the intent.
            unsafe { libc::_exit(encode(status)) }
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let r = nix::mount::mount(
        src,
        dst,
        fstype,
        nix::mount::MsFlags::from_bits_retain(flags),
        data,
    );
    if let Err(e) = r {
        return Err(format!(
            "mount {} on {} ({}): {e}",
            src.map_or("-".into(), |p| p.display().to_string()),
            dst.display(),
            fstype.unwrap_or("bind")
        ));
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;

/// Bind-mounts `src` on `dst` with everything below it, read-only all the way down
/// (mount_setattr with AT_RECURSIVE; on kernels without it, the top mount only).
fn bind(src: &Path, dst: &Path, read_only: bool) -> Result<(), String> {
    mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    if !read_only {
        return Ok(());
    }
    let d = cstr(dst)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path and attribute struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            d.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        mount(
            None,
            dst,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID,
            None,
        )?;
    }
    Ok(())
}

fn mkdir_p(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating mount point {}: {e}", p.display()))
}

/// Under `root`, the path `p` (absolute on the host) will be.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Builds the file-system view on `cfg.root_dir` and pivots into it: the host's top-level
/// directories read-only (minus the hidden ones), fresh /tmp, /run and /dev/shm, a few device
/// nodes, /proc of the new pid namespace, and the home and `--rw` directories writable.
fn build_view(cfg: &Config) -> Result<(), String> {
    let root = &cfg.root_dir;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    mount(
        Some(Path::new("tmpfs")),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    let entries = std::fs::read_dir("/").map_err(|e| format!("reading /: {e}"))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if OWN_MOUNTS.contains(&name) || cfg.hide.iter().any(|h| h == name) {
            continue;
        }
        let host = Path::new("/").join(name);
        let target = root.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let to = std::fs::read_link(&host)
                .map_err(|e| format!("reading link {}: {e}", host.display()))?;
            std::os::unix::fs::symlink(&to, &target)
                .map_err(|e| format!("link {}: {e}", target.display()))?;
        } else if meta.is_dir() {
            mkdir_p(&target)?;
            bind(&host, &target, true)?;
        }
    }
    // Devices: a small tmpfs with the harmless nodes bound from the host.
    let dev = root.join("dev");
    mkdir_p(&dev)?;
    mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let t = dev.join(node);
        std::fs::File::create(&t).map_err(|e| format!("creating {}: {e}", t.display()))?;
        bind(&Path::new("/dev").join(node), &t, false)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| format!("/dev/{link}: {e}"))?;
    }
    for (dir, mode) in [
        ("dev/shm", "mode=1777"),
        ("tmp", "mode=1777"),
        ("run", "mode=0755"),
    ] {
        let t = root.join(dir);
        mkdir_p(&t)?;
        mount(
            Some(Path::new("tmpfs")),
            &t,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(mode),
        )?;
    }
    let proc_dir = root.join("proc");
    mkdir_p(&proc_dir)?;
    mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    let home = under(root, &cfg.home);
    mkdir_p(&home)?;
    bind(&cfg.home_host, &home, false)?;
    for dir in &cfg.ro {
        let t = under(root, dir);
        if !t.is_dir() {
            mkdir_p(&t)?;
            bind(dir, &t, true)?;
        }
    }
    for dir in &cfg.rw {
        let t = under(root, dir);
        mkdir_p(&t)?;
        bind(dir, &t, false)?;
    }
    // Pivot: the new root stacks over the old one, which is then detached.
    unistd::chdir(root).map_err(|e| format!("chdir to the new root: {e}"))?;
    unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("detaching the old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    Ok(())
}

/// `ip link set lo up`, with an ioctl: the new network namespace starts with loopback down.
fn loopback_up() -> Result<(), String> {
    let sock = socket::socket(
        socket::AddressFamily::Inet,
        socket::SockType::Datagram,
        socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket for loopback: {e}"))?;
    let fd = sock.as_raw_fd();
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: fd is a socket, req a valid ifreq; the union field read is the flags the kernel set.
    let r = unsafe {
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        r
    };
    let e = errno("bringing loopback up");
    drop(sock);
    if r != 0 { Err(e) } else { Ok(()) }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Empties the bounding, ambient, effective, permitted and inheritable sets: after exec the
/// program has no capability, even as uid 0.
fn drop_capabilities() -> Result<(), String> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; EINVAL past the last capability ends the loop.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(errno(&format!(
                "dropping capability {cap} from the bounding set"
            )));
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and a two-element data array as capset(2) v3 expects.
    if unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    } != 0
    {
        return Err(errno("capset"));
    }
    Ok(())
}

fn stage3(cfg: &Config) -> ! {
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    // Nothing of ours leaks into the program: every fd above stderr closes on exec.
    // SAFETY: close_range with CLOEXEC only flags fds.
    unsafe {
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    // The program starts with the signal state a shell gives: nothing blocked (the runner
    // blocks SIGINT, SIGTERM and SIGHUP for its signal thread, and a blocked mask survives
    // fork and exec) and SIGPIPE at its default (std ignores it in the runner's binary, which
    // runs the stages when the stage executable is absent; an ignored signal survives exec).
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: the default disposition, no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    for &(resource, value) in &cfg.rlimits {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: valid rlimit struct.
        if unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, &lim) } != 0 {
            fail(errno(&format!("setrlimit({resource})")));
        }
    }
    if let Err(e) = std::env::set_current_dir(&cfg.cwd) {
        fail(format!("working directory {}: {e}", cfg.cwd.display()));
    }
    let program = match cstr(&cfg.program) {
        Ok(p) => p,
        Err(e) => fail(e),
    };
    let mut argv: Vec<CString> = Vec::with_capacity(cfg.args.len() + 1);
    argv.push(program.clone());
    for a in &cfg.args {
        match CString::new(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => fail(format!("argument {a:?} has a NUL byte")),
        }
    }
    let mut envp: Vec<CString> = Vec::with_capacity(cfg.env.len());
    for (k, v) in &cfg.env {
        match CString::new(format!("{k}={v}")) {
            Ok(c) => envp.push(c),
            Err(_) => fail(format!("environment {k} has a NUL byte")),
        }
    }
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // The runner learns from a close-on-exec pipe that the exec happened: end-of-file once
    // the program runs, or the reason it could not, so that `launch` never reports a pid
    // that is still ours.
    let mut exec_pipe: [libc::c_int; 2] = [-1; 2];
    // SAFETY: a valid array of two ints.
    if unsafe { libc::pipe2(exec_pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail(errno("pipe2 (exec report)"));
    }
    if let Err(e) = drop_capabilities() {
        fail(e);
    }
    let notify = match crate::seccomp::load(&cfg.filter) {
        Ok(fd) => fd,
        Err(e) => fail(e),
    };
    send_with_fds(&Message::Filter, &[notify, exec_pipe[0]]);
    // SAFETY: our copies of the notification fd and of the pipe's read end; the runner holds
    // its own.
    unsafe {
        libc::close(notify);
        libc::close(exec_pipe[0]);
    }
    // SAFETY: NUL-terminated arrays of valid C strings.
    unsafe { libc::execve(program.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    let why = errno(&format!("exec {}", cfg.program.display()));
    // SAFETY: the pipe's write end is ours; _exit as after any failed exec.
    unsafe {
        libc::write(exec_pipe[1], why.as_ptr().cast(), why.len());
        libc::_exit(127)
    }
}

fn send_with_fds(msg: &Message, fds: &[RawFd]) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let Ok(mut line) = serde_json::to_vec(msg) else {
        return;
    };
    line.push(b'\n');
    let iov = [std::io::IoSlice::new(&line)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    if let Err(e) = sendmsg::<()>(SYNC_FD, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
        fail(format!("handing the seccomp fd to the runner: {e}"));
    }
}

/// The runner's end of the socket: JSON lines, and the fds that ride along (the filter's
/// notification fd). An fd arrives with whichever read takes the bytes it was sent with, which
/// may also hold the line before, so fds are kept apart from the lines and taken by whoever
/// expects one.
#[derive(Default)]
pub struct Channel {
    buf: Vec<u8>,
    fds: Vec<std::os::fd::OwnedFd>,
}

impl Channel {
    /// The next message; `None` when the inside has closed its end.
    pub fn receive(&mut self, sock: &UnixStream) -> Result<Option<Message>, String> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::FromRawFd as _;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let msg: Message = serde_json::from_slice(&line).map_err(|e| {
                    format!(
                        "inside sent a bad message {:?}: {e}",
                        String::from_utf8_lossy(&line)
                    )
                })?;
                return Ok(Some(msg));
            }
            let mut chunk = [0u8; 4096];
            let mut iov = [std::io::IoSliceMut::new(&mut chunk)];
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let (n, fds) = {
                let r = recvmsg::<()>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .map_err(|e| format!("reading from the sandbox: {e}"))?;
                let mut got = Vec::new();
                if let Ok(cmsgs) = r.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            got.extend(fds);
                        }
                    }
                }
                (r.bytes, got)
            };
            for fd in fds {
                // SAFETY: the kernel just gave us this fd; we own it now.
                self.fds
                    .push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            }
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The oldest fd received and not yet taken.
    pub fn take_fd(&mut self) -> Option<std::os::fd::OwnedFd> {
        (!self.fds.is_empty()).then(|| self.fds.remove(0))
    }
}

/// Sends the runner's `go` to stage 2, with the compiled filter (hex) on the same line.
pub fn answer_go(mut sock: &UnixStream, bpf: &[u8]) -> Result<(), String> {
    let line = format!("go {}\n", suite_core::bytes::to_hex(bpf));
    sock.write_all(line.as_bytes())
        .map_err(|e| format!("answering the sandbox: {e}"))
}
