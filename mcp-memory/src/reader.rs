//! Reading and writing another process's memory without ptrace-attaching to it.
//!
//! `process_vm_readv` first (one syscall per chunk, no file descriptor); `/proc/<pid>/mem`
//! when the kernel or a seccomp filter refuses it. Both need ptrace-attach permission but
//! neither takes the tracer slot, which Wine's wineserver needs for itself.

use nix::errno::Errno;
use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub const PAGE: u64 = 4096;

/// Why memory could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// The process no longer exists.
    #[error("process {0} has exited")]
    Gone(u32),
    /// The kernel refused access to the whole process.
    #[error(
        "cannot access the memory of process {0}: {1} (reading another process \
         needs the same user and ptrace permission, or CAP_SYS_PTRACE)"
    )]
    Denied(u32, String),
    /// The address is not mapped readable (or writable, for writes).
    #[error("address 0x{0:X} is not mapped (or not accessible)")]
    Unmapped(u64),
    /// `len` bytes at the address would reach 2^64: refused before any read, never wrapped.
    #[error("address 0x{addr:X} + {len} bytes overflows 64 bits")]
    Overflow { addr: u64, len: u64 },
}

/// Access to one process's address space.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: u32,
    /// Set once `process_vm_readv` was refused; reads then go through `/proc/<pid>/mem`.
    use_file: AtomicBool,
    mem_file: OnceLock<Result<File, String>>,
}

/// How a range read went: bytes not readable are zeroed and counted in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeRead {
    pub unreadable_pages: u64,
}

impl ProcessMemory {
    /// Opens a process; fails when it does not exist.
    pub fn open(pid: u32) -> Result<Self, MemError> {
        if pid == 0 || !crate::procfs::exists(pid) {
            return Err(MemError::Gone(pid));
        }
        Ok(Self {
            pid,
            use_file: AtomicBool::new(false),
            mem_file: OnceLock::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn file(&self) -> Result<&File, MemError> {
        let f = self.mem_file.get_or_init(|| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{}/mem", self.pid))
                .or_else(|_| File::open(format!("/proc/{}/mem", self.pid)))
                .map_err(|e| e.to_string())
        });
        match f {
            Ok(f) => Ok(f),
            Err(e) if !crate::procfs::exists(self.pid) => {
                let _ = e;
                Err(MemError::Gone(self.pid))
            }
            Err(e) => Err(MemError::Denied(self.pid, e.clone())),
        }
    }

    /// Reads as much of `buf` as is readable from `addr` on, stopping at the first hole.
    /// Returns the number of bytes read (0 when `addr` itself is unreadable).
    pub fn read_some(&self, addr: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        if buf.is_empty() {
            return Ok(0);
        }
        check_span(addr, buf.len())?;
        if !self.use_file.load(Ordering::Relaxed) {
            let remote = [RemoteIoVec {
                base: addr as usize,
                len: buf.len(),
            }];
            let mut local = [IoSliceMut::new(buf)];
            match process_vm_readv(Pid::from_raw(self.pid as i32), &mut local, &remote) {
                Ok(n) => return Ok(n),
                Err(Errno::EFAULT) | Err(Errno::EIO) => return Ok(0),
                Err(Errno::ESRCH) => return Err(MemError::Gone(self.pid)),
                Err(Errno::ENOSYS) | Err(Errno::EPERM) => {
                    // Refused as a whole (seccomp, kernel config): try the file path.
                    self.use_file.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(MemError::Denied(self.pid, e.desc().to_string())),
            }
        }
        let file = self.file()?;
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], addr + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EFAULT)) => {
                    break;
                }
                Err(_) if !crate::procfs::exists(self.pid) => return Err(MemError::Gone(self.pid)),
                Err(e) => return Err(MemError::Denied(self.pid, e.to_string())),
            }
        }
        if done == 0 && !crate::procfs::exists(self.pid) {
            return Err(MemError::Gone(self.pid));
        }
        Ok(done)
    }

    /// Reads exactly `buf.len()` bytes or fails naming the first unreadable address.
    pub fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        check_span(addr, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let at = addr + done as u64;
            let n = self.read_some(at, &mut buf[done..])?;
            if n == 0 {
                return Err(MemError::Unmapped(at));
            }
            done += n;
        }
        Ok(())
    }

    /// Reads a range, zeroing and counting the pages that cannot be read: what scans and
    /// snapshots use so that one bad page never fails the whole job.
    pub fn read_range(&self, addr: u64, buf: &mut [u8]) -> Result<RangeRead, MemError> {
        check_span(addr, buf.len())?;
        let mut out = RangeRead::default();
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr + done as u64;
            let n = self.read_some(at, &mut buf[done..])?;
            done += n;
            if done < buf.len() {
                // Skip the page that failed.
                let at = addr + done as u64;
                let skip = ((PAGE - at % PAGE) as usize).min(buf.len() - done);
                buf[done..done + skip].fill(0);
                done += skip;
                out.unreadable_pages += 1;
            }
        }
        Ok(out)
    }

    /// Writes all of `data` at `addr`. `process_vm_writev` cannot write read-only pages
    /// (code), so those go through `/proc/<pid>/mem`, which can.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        if data.is_empty() {
            return Ok(());
        }
        check_span(addr, data.len())?;
        let remote = [RemoteIoVec {
            base: addr as usize,
            len: data.len(),
        }];
        let local = [IoSlice::new(data)];
        match process_vm_writev(Pid::from_raw(self.pid as i32), &local, &remote) {
            Ok(n) if n == data.len() => return Ok(()),
            Err(Errno::ESRCH) => return Err(MemError::Gone(self.pid)),
            _ => {}
        }
        let file = self.file()?;
        file.write_all_at(data, addr).map_err(|e| {
            if !crate::procfs::exists(self.pid) {
                MemError::Gone(self.pid)
            } else if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EFAULT)) {
                MemError::Unmapped(addr)
            } else {
                MemError::Denied(self.pid, e.to_string())
            }
        })
    }
}

/// `len` bytes at `addr` end (exclusive) below 2^64, so every sum made while reading them is
/// safe; the kernel would refuse such a range anyway, but a wrapped address must never be
/// read instead. (The last byte of the address space is never user memory.)
pub fn check_span(addr: u64, len: usize) -> Result<(), MemError> {
    let len = len as u64;
    match addr.checked_add(len) {
        Some(_) => Ok(()),
        None => Err(MemError::Overflow { addr, len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_skips_holes() -> Result<(), MemError> {
        let me = ProcessMemory::open(std::process::id())?;
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut back = vec![0u8; data.len()];
        me.read_exact(data.as_ptr() as u64, &mut back)?;
        assert_eq!(back, data);
        let mut one = [0u8; 8];
        assert_eq!(me.read_exact(8, &mut one), Err(MemError::Unmapped(8)));
        let mut range = vec![1u8; 8192];
        let r = me.read_range(0, &mut range)?;
        assert_eq!(r.unreadable_pages, 2);
        assert!(range.iter().all(|&b| b == 0));
        assert_eq!(ProcessMemory::open(0).err(), Some(MemError::Gone(0)));
        let top = u64::MAX - 8;
        let overflow = Some(MemError::Overflow { addr: top, len: 16 });
        let mut sixteen = [0u8; 16];
        assert_eq!(me.read_exact(top, &mut sixteen).err(), overflow);
        assert_eq!(me.read_some(top, &mut sixteen).err(), overflow);
        assert_eq!(me.read_range(top, &mut sixteen).err(), overflow);
        assert_eq!(me.write(top, &sixteen).err(), overflow);
        // The 8 bytes before the last byte are a range like any other (unmapped).
        assert_eq!(me.read_exact(top, &mut one), Err(MemError::Unmapped(top)));
        Ok(())
    }
}
