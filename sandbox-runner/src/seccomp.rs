//! The syscall filter (libseccomp, one filter for x86_64 and x86 so a 32-bit Wine works too)
//! and its supervisor.
//!
//! Every call the policy does not allow goes to the runner through a seccomp user notification
//! rather than being answered by the kernel alone. That is how violations are reported with
//! the syscall's name and the host pid: the supervisor records the call, then answers EPERM,
//! kills the process (the dangerous set) or, in log mode, lets the call run. The blocked call
//! never executes while the supervisor decides; if the runner is gone the kernel answers
//! ENOSYS, so nothing is ever let through by accident.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpNotifReq,
    ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall, ScmpVersion,
};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Enforce blocks (EPERM, or kill for the dangerous set); log lets every call through and
/// records the ones the policy would have blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    Enforce,
    Log,
}

/// A syscall allowed only when `(arg & mask) == equals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgRule {
    pub syscall: String,
    pub arg: u32,
    pub mask: u64,
    pub equals: u64,
}

/// The seccomp policy with every `@set` expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPolicy {
    pub mode: SeccompMode,
    pub allow: Vec<String>,
    pub kill: Vec<String>,
    pub enosys: Vec<String>,
    pub arg_rules: Vec<ArgRule>,
}

/// At most this many violations are kept one by one; beyond it they are only counted.
pub const MAX_RECORDED: usize = 1000;

/// Checks that every name is a syscall libseccomp knows and that the lists do not contradict
/// each other.
pub fn check_policy(policy: &SeccompPolicy) -> Result<(), String> {
    let names = policy
        .allow
        .iter()
        .chain(&policy.kill)
        .chain(&policy.enosys)
        .chain(policy.arg_rules.iter().map(|r| &r.syscall));
    let unknown: Vec<&str> = names
        .filter(|n| ScmpSyscall::from_name(n).is_err())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!("unknown syscall names: {}", unknown.join(", ")));
    }
    let overlap = |a: &[String], b: &[String], what: &str| -> Result<(), String> {
        let both: Vec<&str> = a
            .iter()
            .filter(|n| b.contains(n))
            .map(String::as_str)
            .collect();
        if both.is_empty() {
            Ok(())
        } else {
            Err(format!("syscalls both {what}: {}", both.join(", ")))
        }
    };
    overlap(&policy.allow, &policy.kill, "allowed and killed")?;
    overlap(
        &policy.allow,
        &policy.enosys,
        "allowed and refused with ENOSYS",
    )?;
    overlap(
        &policy.kill,
        &policy.enosys,
        "killed and refused with ENOSYS",
    )?;
    let conditional: Vec<String> = policy.arg_rules.iter().map(|r| r.syscall.clone()).collect();
    overlap(
        &policy.allow,
        &conditional,
        "allowed always and under an argument rule",
    )?;
    overlap(
        &policy.kill,
        &conditional,
        "killed and allowed under an argument rule",
    )?;
    for r in &policy.arg_rules {
        if r.arg > 5 {
            return Err(format!(
                "argument rule for {}: arg {} (accepted: 0 to 5)",
                r.syscall, r.arg
            ));
        }
    }
    Ok(())
}

/// Builds the filter: allow-list, ENOSYS list, argument rules, and user notification for
/// everything else (the supervisor decides between EPERM, kill and log).
fn build(policy: &SeccompPolicy) -> Result<ScmpFilterContext, String> {
    let err = |what: &str, e: libseccomp::error::SeccompError| format!("seccomp {what}: {e}");
    let mut ctx = ScmpFilterContext::new(ScmpAction::Notify).map_err(|e| err("new filter", e))?;
    for arch in [ScmpArch::X8664, ScmpArch::X86] {
        if !ctx.is_arch_present(arch).map_err(|e| err("arch", e))? {
            ctx.add_arch(arch).map_err(|e| err("add arch", e))?;
        }
    }
    for name in &policy.allow {
        let sc = ScmpSyscall::from_name(name).map_err(|e| err(name, e))?;
        ctx.add_rule(ScmpAction::Allow, sc)
            .map_err(|e| err(name, e))?;
    }
    for name in &policy.enosys {
        let sc = ScmpSyscall::from_name(name).map_err(|e| err(name, e))?;
        ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), sc)
            .map_err(|e| err(name, e))?;
    }
    for r in &policy.arg_rules {
        let sc = ScmpSyscall::from_name(&r.syscall).map_err(|e| err(&r.syscall, e))?;
        let cmp = ScmpArgCompare::new(r.arg, ScmpCompareOp::MaskedEqual(r.mask), r.equals);
        ctx.add_rule_conditional(ScmpAction::Allow, sc, &[cmp])
            .map_err(|e| err(&r.syscall, e))?;
    }
    Ok(ctx)
}

/// What a compiled filter depends on, as one line: everything [`build`] reads (the mode is
/// left out: only the supervisor acts on it), the libseccomp version and the kernel release
/// (libseccomp asks the kernel what it supports), and this format's version.
fn cache_key(policy: &SeccompPolicy) -> Result<String, String> {
    let v = ScmpVersion::current().map_err(|e| format!("libseccomp version: {e}"))?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rules = (
        &policy.allow,
        &policy.kill,
        &policy.enosys,
        &policy.arg_rules,
    );
    let key = (
        1,
        format!("{}.{}.{}", v.major, v.minor, v.micro),
        kernel,
        rules,
    );
    serde_json::to_string(&key).map_err(|e| format!("seccomp policy: {e}"))
}

/// Whether `bpf` has the shape of a classic BPF program seccomp(2) takes.
fn is_program(bpf: &[u8]) -> bool {
    !bpf.is_empty() && bpf.len().is_multiple_of(8) && bpf.len() / 8 <= usize::from(u16::MAX)
}

/// The filter as classic BPF, ready for seccomp(2). libseccomp takes about 5 ms of CPU for
/// the two-architecture filter (as much as all the rest of a sandbox's start), so each policy
/// is compiled once: kept in this process (the MCP server) and, when `cache_dir` is given, in
/// a file there for the next runs (the `run` command starts a fresh process each time).
pub fn compile(policy: &SeccompPolicy, cache_dir: Option<&Path>) -> Result<Arc<Vec<u8>>, String> {
    use std::collections::HashMap;
    use std::io::Read;
    static CACHE: std::sync::OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> =
        std::sync::OnceLock::new();
    let key = cache_key(policy)?;
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let file = cache_dir.map(|d| cache_file(d, &key));
    let bpf = match file.as_deref().and_then(|f| read_cached(f, &key)) {
        Some(bpf) => bpf,
        None => {
            let ctx = build(policy)?;
            // libseccomp 2.5 exports to a file descriptor only: a pipe holds the few KB.
            let (mut rx, tx) = std::io::pipe().map_err(|e| format!("seccomp export pipe: {e}"))?;
            ctx.export_bpf(&tx)
                .map_err(|e| format!("seccomp export: {e}"))?;
            drop(tx);
            let mut bpf = Vec::new();
            rx.read_to_end(&mut bpf)
                .map_err(|e| format!("seccomp export: {e}"))?;
            if !is_program(&bpf) {
                return Err(format!(
                    "seccomp export: {} bytes is not a BPF program",
                    bpf.len()
                ));
            }
            if let Some(f) = &file {
                write_cached(f, &key, &bpf);
            }
            bpf
        }
    };
    let bpf = Arc::new(bpf);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, bpf.clone());
    }
    Ok(bpf)
}

/// Where compiled filters are kept between runs: `/var/cache/sandbox-runner` for root,
/// `$XDG_CACHE_HOME/sandbox-runner` or `~/.cache/sandbox-runner` for others. A filter read
/// from there is only trusted when the directory and the file belong to this user and nobody
/// else may write them (see [`read_cached`]), the same trust as the runner's own binary: a
/// sandbox only reaches them through a `--rw` directory that covers them.
pub fn cache_dir() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/cache/sandbox-runner"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("sandbox-runner"))
}

/// The file for `key`: its hash names it; the file itself starts with the whole key, so a
/// collision of names is a miss, never another policy's filter.
fn cache_file(dir: &Path, key: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("seccomp-{:016x}.bpf", h.finish()))
}

/// Owned by this user and writable by no one else.
fn ours(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// The cached program for `key`, when `file` holds it (the key's line, then the program) and
/// only this user could have written it.
fn read_cached(file: &Path, key: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = file.parent()?;
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && ours(&m)) {
        return None;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || !ours(&meta) || meta.len() > 1 << 20 {
        return None;
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut data).ok()?;
    let bpf = data.strip_prefix(key.as_bytes())?.strip_prefix(b"\n")?;
    is_program(bpf).then(|| bpf.to_vec())
}

/// Stores a compiled program for the next runs: written aside, then renamed into place, so a
/// reader sees a whole file or none. Failing to store it only costs the next run a compile.
fn write_cached(file: &Path, key: &str, bpf: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Some(dir) = file.parent() else { return };
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir);
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && ours(&m)) {
        return;
    }
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(key.as_bytes())?;
            f.write_all(b"\n")?;
            f.write_all(bpf)
        })
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("seccomp cache {}: {e}", file.display());
    }
}

/// Loads a compiled filter on the calling thread (no_new_privs first, as an unprivileged
/// filter requires) and returns the user-notification fd. Used inside, just before exec.
pub fn load(bpf: &[u8]) -> Result<std::os::fd::RawFd, String> {
    let prog = libc::sock_fprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr() as *mut libc::sock_filter,
    };
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    // SAFETY: prog points at `bpf`, alive for the call; the kernel copies the program.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(format!(
            "loading the seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(fd as std::os::fd::RawFd)
}

/// One call the policy did not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Violation {
    /// The syscall's name on the caller's architecture.
    pub syscall: String,
    /// Host pid (thread id) of the caller.
    pub pid: u32,
    /// `x86_64` or `x86`.
    pub arch: String,
    /// What happened: `eperm`, `killed` or `logged` (log mode let it run).
    pub action: String,
}

/// Violations seen so far (the first [`MAX_RECORDED`] one by one, then a count).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Violations {
    pub recorded: Vec<Violation>,
    pub total: u64,
}

/// Answers the filter's notifications until every process using the filter is gone or `stop`
/// is set. Runs on its own thread.
pub fn supervise(
    fd: OwnedFd,
    policy: Arc<SeccompPolicy>,
    sink: Arc<Mutex<Violations>>,
    stop: Arc<AtomicBool>,
) {
    let raw = fd.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::from(100u8)) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        if !pfd[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            // POLLHUP: no process holds the filter any more.
            break;
        }
        let Ok(req) = ScmpNotifReq::receive(raw) else {
            // The caller died between poll and receive; keep serving the others.
            continue;
        };
        let arch = req.data.arch;
        let syscall = req
            .data
            .syscall
            .get_name_by_arch(arch)
            .unwrap_or_else(|_| format!("#{}", i32::from(req.data.syscall)));
        let dangerous = policy.kill.contains(&syscall);
        let action = match (policy.mode, dangerous) {
            (SeccompMode::Log, _) => "logged",
            (SeccompMode::Enforce, true) => "killed",
            (SeccompMode::Enforce, false) => "eperm",
        };
        if action == "killed" {
            // SIGKILL goes to the whole thread group; the blocked call never runs.
            let pid = nix::unistd::Pid::from_raw(req.pid as libc::pid_t);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let resp = if action == "logged" {
            ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::CONTINUE)
        } else {
            ScmpNotifResp::new_error(req.id, -libc::EPERM, ScmpNotifRespFlags::empty())
        };
        // The caller may already be gone (killed, or the whole sandbox stopped): nothing to do.
        let _ = resp.respond(raw);
        if let Ok(mut v) = sink.lock() {
            v.total += 1;
            if v.recorded.len() < MAX_RECORDED {
                v.recorded.push(Violation {
                    syscall,
                    pid: req.pid,
                    arch: arch_name(arch).to_string(),
                    action: action.to_string(),
                });
            }
        }
    }
}

fn arch_name(arch: ScmpArch) -> &'static str {
    match arch {
        ScmpArch::X8664 => "x86_64",
        ScmpArch::X86 => "x86",
        ScmpArch::X32 => "x32",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stored program is used only when it is whole, for the same key, and nobody but this
    /// user could have written it; the mode (only the supervisor's business) shares one.
    #[test]
    fn cached_filters_are_reused_only_when_whole_and_ours() -> Result<(), String> {
        let policy = crate::profile::Profile::load("strict")?.seccomp;
        let mut logged = policy.clone();
        logged.mode = SeccompMode::Log;
        assert_eq!(cache_key(&policy)?, cache_key(&logged)?);
        let dir = std::env::temp_dir().join(format!("sbx-seccomp-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bpf = compile(&policy, None)?;
        let key = cache_key(&policy)?;
        let file = cache_file(&dir, &key);
        write_cached(&file, &key, &bpf);
        let hit = read_cached(&file, &key);
        let other = read_cached(&file, &format!("{key} "));
        let perms = |mode| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
        perms(0o622).map_err(|e| e.to_string())?;
        let shared = read_cached(&file, &key);
        perms(0o600).map_err(|e| e.to_string())?;
        let mut cut = format!("{key}\n").into_bytes();
        cut.extend_from_slice(&bpf[..5]);
        std::fs::write(&file, cut).map_err(|e| e.to_string())?;
        let truncated = read_cached(&file, &key);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(hit.as_deref(), Some(bpf.as_slice()));
        assert!(other.is_none(), "another key's program was taken");
        assert!(shared.is_none(), "a file others may write was trusted");
        assert!(truncated.is_none(), "a truncated program was taken");
        Ok(())
    }
}
