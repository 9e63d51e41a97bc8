//! Hardware breakpoints through `perf_event_open(PERF_TYPE_BREAKPOINT)`: the kernel programs
//! the x86 debug registers (DR0-DR3, DR7) of the watched threads and records a sample (the
//! instruction pointer, thread, time and user registers) in a ring buffer at each hit.
//!
//! Why perf and not `PTRACE_POKEUSER` on the debug registers: no tracer slot is taken (Wine's
//! wineserver needs it for its own debug-register and memory calls), the watched thread is
//! never stopped (a hit costs a trap, not two context switches and a wait), threads started
//! during the window inherit the breakpoint from the thread that starts them, and when the
//! server dies the kernel closes its descriptors and removes every breakpoint with them: the
//! process is never left stopped, traced or armed.
//!
//! All the `unsafe` of the crate is here: the syscall, the ring buffer's mapping and its reads.

use nix::unistd::{SysconfVar, sysconf};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a breakpoint fires on (x86 has no read-only watchpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    ReadWrite,
    Execute,
}

impl Access {
    fn bp_type(self) -> u32 {
        // HW_BREAKPOINT_R = 1, _W = 2, _RW = 3, _X = 4 (linux/hw_breakpoint.h).
        match self {
            Access::Write => 2,
            Access::ReadWrite => 3,
            Access::Execute => 4,
        }
    }
}

/// `struct perf_event_attr` up to PERF_ATTR_SIZE_VER5 (linux/perf_event.h).
#[repr(C)]
#[derive(Default)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    bp_addr: u64,
    bp_len: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

const PERF_TYPE_BREAKPOINT: u32 = 5;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const SAMPLE_IP: u64 = 1 << 0;
const SAMPLE_TID: u64 = 1 << 1;
const SAMPLE_TIME: u64 = 1 << 2;
const SAMPLE_REGS_USER: u64 = 1 << 12;
const FLAG_INHERIT: u64 = 1 << 1;
const FLAG_EXCLUDE_KERNEL: u64 = 1 << 5;
const FLAG_EXCLUDE_HV: u64 = 1 << 6;
/// Sample times on `clockid` (CLOCK_MONOTONIC), comparable with [`monotonic_ns`].
const FLAG_USE_CLOCKID: u64 = 1 << 25;
const RECORD_LOST: u32 = 2;
const RECORD_SAMPLE: u32 = 9;
/// `_IO('$', 5)`: send this event's samples to another event's ring buffer.
const IOC_SET_OUTPUT: libc::c_ulong = 0x2405;

/// The general registers sampled, in the kernel's order (arch/x86/include/uapi/asm/perf_regs.h):
/// AX BX CX DX SI DI BP SP IP FLAGS (bits 0-9), R8-R15 (bits 16-23; zero for 32-bit threads).
pub const REG_NAMES: [&str; 18] = [
    "ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip", "flags", "r8", "r9", "r10", "r11", "r12",
    "r13", "r14", "r15",
];
const REGS_MASK: u64 = 0x3ff | (0xff << 16);

/// Data pages of each ring buffer (a power of two): 64 KiB, about 1,000 samples.
const RING_PAGES: usize = 16;

/// One breakpoint hit as the kernel recorded it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// For data breakpoints the instruction after the access; for execute ones the
    /// instruction itself.
    pub ip: u64,
    pub pid: u32,
    pub tid: u32,
    /// CLOCK_MONOTONIC, nanoseconds.
    pub time_ns: u64,
    /// 32 or 64: the mode the thread ran in (a 32-bit Wine thread is 32), 0 when unknown.
    pub bits: u32,
    pub regs: [u64; 18],
}

/// Why breakpoints could not be armed.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// EACCES/EPERM: not allowed to watch this process.
    #[error("not allowed to watch it ({0})")]
    Denied(io::Error),
    /// ENOSPC: the debug registers are all in use.
    #[error("all four debug registers are in use")]
    NoSlot,
    /// EINVAL: the kernel refused the address, size or alignment.
    #[error("the kernel refused the breakpoint ({0})")]
    Refused(io::Error),
    /// ESRCH: the thread (or process) is gone.
    #[error("the process has exited")]
    Gone,
    #[error(transparent)]
    Other(io::Error),
}

impl ArmError {
    fn from_errno(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => ArmError::Denied(e),
            Some(libc::ENOSPC) => ArmError::NoSlot,
            Some(libc::EINVAL) => ArmError::Refused(e),
            Some(libc::ESRCH) => ArmError::Gone,
            _ => ArmError::Other(e),
        }
    }
}

/// A breakpoint on one thread and one CPU; with `inherit`, threads it starts get one too.
fn open(tid: u32, cpu: i32, addr: u64, len: u64, access: Access) -> Result<OwnedFd, ArmError> {
    let attr = Attr {
        kind: PERF_TYPE_BREAKPOINT,
        size: std::mem::size_of::<Attr>() as u32,
        sample_period: 1,
        sample_type: SAMPLE_IP | SAMPLE_TID | SAMPLE_TIME | SAMPLE_REGS_USER,
        flags: FLAG_INHERIT | FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV | FLAG_USE_CLOCKID,
        clockid: libc::CLOCK_MONOTONIC,
        wakeup_events: 1,
        bp_type: access.bp_type(),
        bp_addr: addr,
        bp_len: len,
        sample_regs_user: REGS_MASK,
        ..Attr::default()
    };
    // SAFETY: `attr` is a valid, fully initialised perf_event_attr of the size it declares;
    // the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const Attr,
            tid as libc::pid_t,
            cpu,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(ArmError::from_errno(io::Error::last_os_error()));
    }
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A mapped ring buffer: the metadata page then `RING_PAGES` data pages.
struct Ring {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
    page: usize,
}

// SAFETY: the mapping is only touched through &mut self or atomics, and lives as long as Ring.
unsafe impl Send for Ring {}

impl Ring {
    fn map(fd: OwnedFd) -> io::Result<Ring> {
        let page = sysconf(SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as usize;
        let len = page * (1 + RING_PAGES);
        // SAFETY: a fresh shared mapping of the event's descriptor, checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Ring {
            fd,
            base: base.cast(),
            len,
            page,
        })
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: data_head sits at offset 1024 of the metadata page, 8-aligned, and the
        // kernel updates it concurrently: an atomic is the right view of it.
        unsafe { &*(self.base.add(1024) as *const AtomicU64) }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: data_tail at offset 1032, written by us only.
        unsafe { &*(self.base.add(1032) as *const AtomicU64) }
    }

    fn data(&self) -> &[u8] {
        // SAFETY: the data area is the mapping after the metadata page; the kernel does not
        // write between our tail and its published head, which is all that is read.
        unsafe { std::slice::from_raw_parts(self.base.add(self.page), self.len - self.page) }
    }

    /// Moves every complete record out of the buffer.
    fn drain(&mut self, samples: &mut Vec<Sample>, lost: &mut u64) {
        let head = self.head().load(Ordering::Acquire);
        let mut tail = self.tail().load(Ordering::Relaxed);
        let data = self.data();
        let size = data.len() as u64;
        let mut rec = Vec::new();
        while tail + 8 <= head {
            let at = |off: u64| data[((tail + off) % size) as usize];
            let header: Vec<u8> = (0..8).map(at).collect();
            let kind = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
            let len = u16::from_ne_bytes([header[6], header[7]]) as u64;
            if len < 8 || tail + len > head {
                break;
            }
            rec.clear();
            rec.extend((8..len).map(at));
            match kind {
                RECORD_SAMPLE => {
                    if let Some(s) = parse_sample(&rec) {
                        samples.push(s);
                    }
                }
                RECORD_LOST => *lost += word(&rec, 1).unwrap_or(0),
                _ => {}
            }
            tail += len;
        }
        self.tail().store(tail, Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing borrows any more.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

fn word(rec: &[u8], i: usize) -> Option<u64> {
    let b = rec.get(i * 8..i * 8 + 8)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

/// A sample body laid out as asked: ip; pid, tid; time; abi, regs.
fn parse_sample(rec: &[u8]) -> Option<Sample> {
    let ip = word(rec, 0)?;
    let ids = word(rec, 1)?;
    let time_ns = word(rec, 2)?;
    let abi = word(rec, 3)?;
    let mut regs = [0u64; 18];
    if abi != 0 {
        for (k, r) in regs.iter_mut().enumerate() {
            *r = word(rec, 4 + k)?;
        }
    }
    Some(Sample {
        ip,
        pid: ids as u32,
        tid: (ids >> 32) as u32,
        time_ns,
        // PERF_SAMPLE_REGS_ABI_32 = 1, _64 = 2.
        bits: match abi {
            1 => 32,
            2 => 64,
            _ => 0,
        },
        regs,
    })
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock samples are stamped with.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The CPUs the kernel may run a thread on.
fn cpus() -> i32 {
    let n = sysconf(SysconfVar::_NPROCESSORS_CONF)
        .ok()
        .flatten()
        .unwrap_or(1);
    n.max(1) as i32
}

/// Breakpoints on every thread of a process, one ring buffer per CPU.
pub struct Breakpoints {
    rings: Vec<Ring>,
    /// Events of further threads, writing into the ring of their CPU.
    extra: Vec<OwnedFd>,
    armed: Vec<u32>,
    addr: u64,
    len: u64,
    access: Access,
    pub lost: u64,
}

impl Breakpoints {
    /// Arms a breakpoint of `len` bytes (1, 2, 4 or 8; aligned) at `addr` in the threads
    /// `tids` of one process.
    pub fn arm(tids: &[u32], addr: u64, len: u64, access: Access) -> Result<Self, ArmError> {
        let mut bp = Breakpoints {
            rings: Vec::new(),
            extra: Vec::new(),
            armed: Vec::new(),
            addr,
            // The kernel wants sizeof(long) for execute breakpoints.
            len: if access == Access::Execute { 8 } else { len },
            access,
            lost: 0,
        };
        bp.add_threads(tids)?;
        Ok(bp)
    }

    /// Arms the threads of `tids` not armed yet; a thread that exited meanwhile is skipped.
    pub fn add_threads(&mut self, tids: &[u32]) -> Result<usize, ArmError> {
        let mut added = 0;
        for &tid in tids {
            if self.armed.contains(&tid) {
                continue;
            }
            let mut fds = Vec::new();
            let mut gone = false;
            for cpu in 0..cpus() {
                match open(tid, cpu, self.addr, self.len, self.access) {
                    Ok(fd) => fds.push((cpu as usize, fd)),
                    Err(ArmError::Gone) => {
                        gone = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if gone {
                continue;
            }
            for (cpu, fd) in fds {
                if let Some(ring) = self.rings.get(cpu) {
                    // SAFETY: both descriptors are perf events on the same CPU that we own.
                    let r =
                        unsafe { libc::ioctl(fd.as_raw_fd(), IOC_SET_OUTPUT, ring.fd.as_raw_fd()) };
                    if r < 0 {
                        return Err(ArmError::Other(io::Error::last_os_error()));
                    }
                    self.extra.push(fd);
                } else {
                    self.rings.push(Ring::map(fd).map_err(ArmError::Other)?);
                }
            }
            self.armed.push(tid);
            added += 1;
        }
        Ok(added)
    }

    /// Threads armed directly (threads they started are armed by inheritance).
    pub fn armed(&self) -> &[u32] {
        &self.armed
    }

    /// Waits up to `timeout_ms` for a hit, then returns every sample recorded so far.
    pub fn collect(&mut self, timeout_ms: i32, out: &mut Vec<Sample>) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds: Vec<PollFd> = self
            .rings
            .iter()
            .map(|r| PollFd::new(r.fd.as_fd(), PollFlags::POLLIN))
            .collect();
        // A hit, the timeout or a signal: what the rings hold is read either way.
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE),
        );
        drop(fds);
        let start = out.len();
        for ring in &mut self.rings {
            ring.drain(out, &mut self.lost);
        }
        out[start..].sort_by_key(|s| s.time_ns);
    }
}
