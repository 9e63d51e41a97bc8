//! Stopping every thread of a process for a moment, for a consistent copy.
//!
//! Each thread is seized (`PTRACE_SEIZE`, no signal sent) and interrupted, and detached again
//! when the guard drops. The tracer slot is held only for the duration of one read: Wine's
//! wineserver needs it for itself, so the server never stays attached.

use nix::sys::ptrace;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// While alive, every thread of the process is stopped.
#[derive(Debug)]
pub struct Frozen {
    tids: Vec<Pid>,
}

impl Frozen {
    pub fn new(pid: u32) -> Result<Self, String> {
        let mut me = Self { tids: Vec::new() };
        // Threads may appear while we stop the others: go round until none is new.
        for _ in 0..4 {
            let tids = crate::procfs::threads(pid)
                .map_err(|e| format!("cannot list the threads of process {pid}: {e}"))?;
            let mut added = false;
            for tid in tids {
                let t = Pid::from_raw(tid as i32);
                if me.tids.contains(&t) {
                    continue;
                }
                match ptrace::seize(t, ptrace::Options::empty()) {
                    Ok(()) => {}
                    Err(nix::errno::Errno::ESRCH) => continue,
                    Err(e) => {
                        return Err(format!(
                            "cannot freeze process {pid}: PTRACE_SEIZE of thread {tid} failed: {} \
                             (another tracer attached, or no ptrace permission)",
                            e.desc()
                        ));
                    }
                }
                me.tids.push(t);
                added = true;
                if ptrace::interrupt(t).is_ok() {
                    let _ = waitpid(t, Some(WaitPidFlag::__WALL));
                }
            }
            if !added {
                break;
            }
        }
        Ok(me)
    }

    pub fn threads(&self) -> usize {
        self.tids.len()
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &t in &self.tids {
            let _ = ptrace::detach(t, None);
        }
    }
}
