//! The syscall filter (libseccomp, one filter for x86_64 and x86 so a 32-bit Wine works too)
//! and its supervisor.
//!
//! Every call the policy does not allow goes to the runner through a seccomp user notification
//! rather than being answered by the kernel alone. That is how violations are reported with
//! the syscall's name and the host pid: the supervisor records the call, then answers EPERM,
//! kills the process (the dangerous set) or, in log mode, lets the call run. The blocked call
//! never executes while the supervisor decides; if the runner is gone the kernel answers
//! ENOSYS, so nothing is ever let through by accident.

use crate::profile::{SeccompMode, SeccompPolicy};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpNotifReq,
    ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall,
};
use serde::Serialize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

/// The filter as classic BPF, ready for seccomp(2): compiled once per policy in this process
/// (libseccomp takes a few milliseconds for the two architectures), in the runner, while the
/// sandbox is starting.
pub fn compile(policy: &SeccompPolicy) -> Result<Arc<Vec<u8>>, String> {
    use std::collections::HashMap;
    use std::io::Read;
    static CACHE: std::sync::OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> =
        std::sync::OnceLock::new();
    let key = serde_json::to_string(policy).map_err(|e| format!("seccomp policy: {e}"))?;
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let ctx = build(policy)?;
    // libseccomp 2.5 exports to a file descriptor only: a pipe holds the few KB.
    let (mut rx, tx) = std::io::pipe().map_err(|e| format!("seccomp export pipe: {e}"))?;
    ctx.export_bpf(&tx)
        .map_err(|e| format!("seccomp export: {e}"))?;
    drop(tx);
    let mut bpf = Vec::new();
    rx.read_to_end(&mut bpf)
        .map_err(|e| format!("seccomp export: {e}"))?;
    if bpf.is_empty() || !bpf.len().is_multiple_of(8) || bpf.len() / 8 > usize::from(u16::MAX) {
        return Err(format!(
            "seccomp export: {} bytes is not a BPF program",
            bpf.len()
        ));
    }
    let bpf = Arc::new(bpf);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, bpf.clone());
    }
    Ok(bpf)
}

/// Loads a compiled filter on the calling thread (no_new_privs first, as an unprivileged
/// filter requires) and returns the user-notification fd. Used inside, just before exec.
pub fn load(bpf: &[u8]) -> Result<std::os::fd::RawFd, String> {
    let prog = libc::sock_fprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
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
        let mut pfd = libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if n == 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
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
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(req.pid as libc::pid_t, libc::SIGKILL) };
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
