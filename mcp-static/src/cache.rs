//! Parsed binaries kept in memory, so repeated calls on a large DLL neither read nor parse
//! it again. Looked up by (path, size, mtime) first, then by content hash.
//!
//! A binary is held whole in memory (with what is computed from it), so the size of a file
//! the server loads is capped ([`DEFAULT_MAX_FILE`], `--max-file-mb`): the cap is checked
//! from the file's metadata before any read, and a file over it is refused after reading
//! only its first few KB, to say what it is. Only regular files are opened, so a FIFO or a
//! device never blocks or streams into the server.

use crate::binary::Binary;
use crate::model::ParseError;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How many bytes of binaries the cache keeps before dropping the least recently used.
pub const DEFAULT_BUDGET: usize = 1 << 30;

/// The largest file loaded by default (512 MiB): far above any PE or ELF in practice, and
/// what a file costs in memory (its bytes plus its analysis) stays under [`DEFAULT_BUDGET`].
pub const DEFAULT_MAX_FILE: u64 = 512 << 20;

/// How much of a file over the cap is read to say what it is (its headers).
const HEAD_BYTES: usize = 4096;

struct Entry {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
    binary: Arc<Binary>,
    last_used: u64,
}

pub struct BinaryCache {
    inner: Mutex<Inner>,
    budget: usize,
    max_file: u64,
}

struct Inner {
    entries: Vec<Entry>,
    clock: u64,
}

impl Default for BinaryCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET)
    }
}

impl BinaryCache {
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                clock: 0,
            }),
            budget,
            max_file: DEFAULT_MAX_FILE,
        }
    }

    /// The same cache with another cap on the size of a file it loads (in bytes).
    pub fn with_max_file(mut self, bytes: u64) -> Self {
        self.max_file = bytes;
        self
    }

    /// The cap on the size of a file this cache loads, in bytes.
    pub fn max_file(&self) -> u64 {
        self.max_file
    }

    /// The parsed binary at `path` (already canonical), from the cache when unchanged.
    /// Refuses, before reading it, anything but a regular file and a file over the cap.
    pub fn load(&self, path: &Path) -> Result<Arc<Binary>, ParseError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ParseError(format!("cannot stat {}: {e}", path.display())))?;
        // Checked before `open`: opening a FIFO for reading blocks until a writer comes.
        regular(&meta)?;
        if meta.len() <= self.max_file
            && let Some(hit) = self.unchanged(path, &meta)
        {
            return Ok(hit);
        }
        let file = File::open(path)
            .map_err(|e| ParseError(format!("cannot open {}: {e}", path.display())))?;
        // What was opened may not be what was checked (replaced since): check it again.
        let meta = file
            .metadata()
            .map_err(|e| ParseError(format!("cannot stat {}: {e}", path.display())))?;
        regular(&meta)?;
        if meta.len() > self.max_file {
            return Err(self.too_big(&file, meta.len()));
        }
        // Bounded even if the file grows while it is read.
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&file)
            .take(self.max_file.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| ParseError(format!("cannot read {}: {e}", path.display())))?;
        if data.len() as u64 > self.max_file {
            return Err(self.too_big(&file, data.len() as u64));
        }
        let binary = Binary::parse(data)?;
        // The same content under another name shares the parsed copy (and its code index).
        let binary = match self.lookup(|e| e.binary.sha256 == binary.sha256) {
            Some(same) => same,
            None => Arc::new(binary),
        };
        self.insert(path, meta.len(), meta.modified().ok(), binary.clone());
        Ok(binary)
    }

    /// The binary at `path` when it is cached and unchanged; never reads the file.
    pub fn cached(&self, path: &Path) -> Option<Arc<Binary>> {
        let meta = std::fs::metadata(path).ok()?;
        self.unchanged(path, &meta)
    }

    /// The binary kept for `path` if the file still has the size and time `meta` gives.
    fn unchanged(&self, path: &Path, meta: &std::fs::Metadata) -> Option<Arc<Binary>> {
        let mtime = meta.modified().ok();
        self.lookup(|e| e.path == path && e.len == meta.len() && e.mtime == mtime)
    }

    /// Whether `path` would be refused for what it is or for its size, without reading it
    /// (beyond the head of a file over the cap): lets a call taking two files refuse either
    /// before loading the other.
    pub fn check(&self, path: &Path) -> Result<(), ParseError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ParseError(format!("cannot stat {}: {e}", path.display())))?;
        regular(&meta)?;
        if meta.len() <= self.max_file {
            return Ok(());
        }
        let file = File::open(path)
            .map_err(|e| ParseError(format!("cannot open {}: {e}", path.display())))?;
        Err(self.too_big(&file, meta.len()))
    }

    /// The refusal of a file of `len` bytes, over the cap, saying what it is from its first
    /// [`HEAD_BYTES`] (the only part of it read).
    fn too_big(&self, file: &File, len: u64) -> ParseError {
        let mut head = vec![0u8; HEAD_BYTES];
        let n = read_head(file, &mut head);
        head.truncate(n);
        ParseError(format!(
            "{} of {}; files over {} are not loaded, --max-file-mb sets the cap",
            describe(&head),
            size_text(len),
            size_text(self.max_file)
        ))
    }

    fn lookup(&self, pred: impl Fn(&Entry) -> bool) -> Option<Arc<Binary>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.iter_mut().find(|e| pred(e))?;
        e.last_used = now;
        Some(e.binary.clone())
    }

    fn insert(&self, path: &Path, len: u64, mtime: Option<SystemTime>, binary: Arc<Binary>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.retain(|e| e.path != path);
        inner.entries.push(Entry {
            path: path.to_path_buf(),
            len,
            mtime,
            binary,
            last_used: now,
        });
        loop {
            let used: usize = inner.entries.iter().map(|e| e.binary.held_bytes()).sum();
            if used <= self.budget || inner.entries.len() <= 1 {
                break;
            }
            if let Some(oldest) = inner
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            {
                inner.entries.remove(oldest);
            }
        }
    }
}

/// Reads from offset 0 into `buf` (whatever the file position); how many bytes were read.
fn read_head(file: &File, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// Refuses what is not a regular file, naming what it is.
fn regular(meta: &Metadata) -> Result<(), ParseError> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    };
    Err(ParseError(format!(
        "is {what}, not a regular file; only files are loaded"
    )))
}

/// What a file is, from its first bytes: "a PE32+ (x86-64) file", "an ELF64 file", ...
pub fn describe(head: &[u8]) -> String {
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if head.starts_with(b"MZ") {
        let pe = u32_at(0x3C).and_then(|o| usize::try_from(o).ok());
        if let Some(pe) = pe
            && head.get(pe..pe.saturating_add(4)) == Some(b"PE\0\0".as_slice())
        {
            let machine = match u16_at(pe + 4) {
                Some(0x14C) => " (i386)",
                Some(0x8664) => " (x86-64)",
                Some(0xAA64) => " (ARM64)",
                Some(0x1C0 | 0x1C4) => " (ARM)",
                _ => "",
            };
            let kind = match u16_at(pe + 24) {
                Some(0x10B) => "PE32",
                Some(0x20B) => "PE32+",
                _ => "PE",
            };
            return format!("a {kind}{machine} file");
        }
        return "an MZ (DOS) file".into();
    }
    if head.starts_with(b"\x7fELF") {
        return match head.get(4) {
            Some(1) => "an ELF32 file".into(),
            Some(2) => "an ELF64 file".into(),
            _ => "an ELF file".into(),
        };
    }
    match u32_at(0) {
        Some(0xFEED_FACE | 0xCEFA_EDFE) => return "a Mach-O (32-bit) file".into(),
        Some(0xFEED_FACF | 0xCFFA_EDFE) => return "a Mach-O (64-bit) file".into(),
        Some(0xBEBA_FECA) => return "a Mach-O universal file".into(),
        _ => {}
    }
    if head.is_empty() {
        "a file".into()
    } else {
        "a file in no format recognised".into()
    }
}

/// A size as people read it: "512 MiB", "4.5 GiB", "800 bytes".
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(800), "800 bytes");
        assert_eq!(size_text(512 << 20), "512 MiB");
        assert_eq!(size_text(4_831_838_208), "4.5 GiB");
    }

    #[test]
    fn headers_say_what_a_file_is() {
        let mut pe = vec![0u8; 0x200];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        pe[0x98..0x9A].copy_from_slice(&0x20Bu16.to_le_bytes());
        assert_eq!(describe(&pe), "a PE32+ (x86-64) file");
        assert_eq!(describe(b"\x7fELF\x02"), "an ELF64 file");
        assert_eq!(describe(&[0u8; 64]), "a file in no format recognised");
    }
}
