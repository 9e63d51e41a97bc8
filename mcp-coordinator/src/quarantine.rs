//! The quarantine: suspicious files copied into a content-addressed store under the data
//! directory, `quarantine/<sha256>` (read-only), each beside `<sha256>.json` saying what it
//! is (type by magic), where it came from, when it was first seen and who added it. A file
//! added twice is stored once. The analysers read it as `quarantine://<sha256>` (their
//! `--quarantine DIR`, which the coordinator hands its children as `MCP_QUARANTINE`); a
//! sandboxed static analyser is given this directory read-only and nothing else.

use mcp_common::{Roots, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest file taken in (the static analyser's own cap is 512 MiB by default).
pub const MAX_FILE: u64 = 1 << 30;
/// Origins remembered per file (the paths it was added from).
const MAX_ORIGINS: usize = 16;
/// What a file is called, by its first bytes (schemas/quarantine/magic.json).
const MAGIC: &str = include_str!("../../schemas/quarantine/magic.json");

/// One file in the quarantine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Entry {
    pub sha256: String,
    /// The path the analysers' tools accept for it.
    pub uri: String,
    pub size: u64,
    /// What its first bytes say it is (`PE32+ executable (DLL)`, `ELF 64-bit`, ..., `data`).
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC.
    pub first_seen: String,
    /// The client that added it first (the gateway's client name; `stdio` for a local host).
    pub added_by: String,
    /// The paths it was added from, first one first.
    pub origins: Vec<String>,
}

pub struct Quarantine {
    dir: PathBuf,
    /// Where files may be added from (`None`: nowhere, until --quarantine-from is given).
    from: Option<Roots>,
    incoming: AtomicU64,
}

/// Whether `s` is a SHA-256 as the store names files: 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Quarantine {
    /// Opens (creating) `dir`; files are taken in only from under `from` (with `None`,
    /// from nowhere: the coordinator's working directory is a host's choice, often `/`).
    pub fn open(dir: &Path, from: Option<Roots>) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the quarantine {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            from,
            incoming: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta_path(&self, sha: &str) -> PathBuf {
        self.dir.join(format!("{sha}.json"))
    }

    fn read_meta(&self, sha: &str) -> Option<Entry> {
        let text = std::fs::read_to_string(self.meta_path(sha)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write_meta(&self, e: &Entry) -> Result<(), String> {
        let path = self.meta_path(&e.sha256);
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(e).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|err| format!("cannot write {}: {err}", path.display()))
    }

    /// Copies the file at `path` (argument `path`, under the allowed roots) in, hashing it
    /// on the way; returns its entry and whether it was new.
    pub fn add(&self, path: &str, who: &str) -> Result<(Entry, bool), ToolError> {
        let Some(from) = &self.from else {
            return Err(ToolError::invalid(
                "path",
                format!("{path:?}"),
                "quarantine_add takes no file yet: start the coordinator with \
                 --quarantine-from DIR (the directories files may be taken from)",
            ));
        };
        let canon = from.resolve_file("path", path)?;
        let shown = canon.display().to_string();
        let mut src = std::fs::File::open(&canon).map_err(|e| {
            ToolError::invalid("path", format!("{path:?}"), format!("cannot open: {e}"))
        })?;
        let n = self.incoming.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".incoming-{}-{n}", std::process::id()));
        let copied = copy_hashing(&mut src, &tmp);
        let (sha, size, head) = match copied {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(ToolError::invalid("path", format!("{path:?}"), e));
            }
        };
        let dest = self.dir.join(&sha);
        let new = !dest.exists();
        let stored = if new {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))
                .and_then(|()| std::fs::rename(&tmp, &dest))
        } else {
            std::fs::remove_file(&tmp)
        };
        stored.map_err(|e| ToolError::new(format!("cannot store {shown}: {e}")))?;
        let entry = match self.read_meta(&sha) {
            Some(mut e) => {
                if !e.origins.contains(&shown) && e.origins.len() < MAX_ORIGINS {
                    e.origins.push(shown);
                }
                e
            }
            None => Entry {
                uri: format!("quarantine://{sha}"),
                sha256: sha,
                size,
                kind: file_type(&head),
                first_seen: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                added_by: who.to_string(),
                origins: vec![shown],
            },
        };
        self.write_meta(&entry).map_err(ToolError::new)?;
        Ok((entry, new))
    }

    /// Every file, oldest first.
    pub fn list(&self) -> Result<Vec<Entry>, String> {
        let mut out: Vec<Entry> = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| is_sha256(name))
            .filter_map(|sha| self.read_meta(&sha))
            .collect();
        out.sort_by(|a, b| (&a.first_seen, &a.sha256).cmp(&(&b.first_seen, &b.sha256)));
        Ok(out)
    }

    /// Deletes a file and its record; returns what it was.
    pub fn remove(&self, sha: &str) -> Result<Entry, ToolError> {
        let refuse = |why: &str| ToolError::invalid("sha256", format!("{sha:?}"), why);
        if !is_sha256(sha) {
            return Err(refuse(
                "accepted: 64 lowercase hex digits (quarantine_list names them)",
            ));
        }
        let entry = self
            .read_meta(sha)
            .ok_or_else(|| refuse("no file in the quarantine has this SHA-256"))?;
        std::fs::remove_file(self.dir.join(sha))
            .and_then(|()| std::fs::remove_file(self.meta_path(sha)))
            .map_err(|e| ToolError::new(format!("cannot remove {sha}: {e}")))?;
        Ok(entry)
    }
}

/// Copies `src` to a new file `dest`, at most [`MAX_FILE`] bytes: (SHA-256, size, first
/// 4 KB).
fn copy_hashing(src: &mut std::fs::File, dest: &Path) -> Result<(String, u64, Vec<u8>), String> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut hash = Sha256::new();
    let mut head = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > MAX_FILE {
            return Err(format!(
                "over {} MiB, the most the quarantine takes",
                MAX_FILE >> 20
            ));
        }
        if head.len() < 4096 {
            head.extend_from_slice(&buf[..n.min(4096 - head.len())]);
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    }
    out.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    let sha = hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((sha, size, head))
}

#[derive(Deserialize)]
struct Magic {
    types: Vec<MagicType>,
}

#[derive(Deserialize)]
struct MagicType {
    #[serde(rename = "type")]
    kind: String,
    offset: usize,
    hex: String,
}

/// What `head` (a file's first bytes) says the file is; `data` when nothing matches.
pub fn file_type(head: &[u8]) -> String {
    if let Some(pe) = pe_type(head) {
        return pe;
    }
    // The table, parsed once.
    static TABLE: std::sync::LazyLock<Vec<MagicType>> = std::sync::LazyLock::new(|| {
        serde_json::from_str::<Magic>(MAGIC)
            .map(|m| m.types)
            .unwrap_or_default()
    });
    TABLE
        .iter()
        .find(|t| {
            let want: Option<Vec<u8>> = (0..t.hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(t.hex.get(i..i + 2)?, 16).ok())
                .collect();
            want.is_some_and(|w| head.get(t.offset..t.offset + w.len()) == Some(&w[..]))
        })
        .map_or_else(|| "data".into(), |t| t.kind.clone())
}

/// `PE32 executable`, `PE32+ executable (DLL)`, ...: from the MZ header's `e_lfanew`, the
/// `PE\0\0` signature, the COFF characteristics and the optional header's magic.
fn pe_type(head: &[u8]) -> Option<String> {
    let word = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    if head.get(..2)? != b"MZ" {
        return None;
    }
    let pe = u32::from_le_bytes(head.get(0x3C..0x40)?.try_into().ok()?) as usize;
    if head.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let characteristics = word(pe + 22)?;
    let bits = match word(pe + 24)? {
        0x10B => "PE32",
        0x20B => "PE32+",
        _ => return None,
    };
    let dll = if characteristics & 0x2000 != 0 {
        " (DLL)"
    } else {
        ""
    };
    Some(format!("{bits} executable{dll}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_magic() {
        assert_eq!(file_type(b"\x7fELF\x02\x01\x01"), "ELF 64-bit");
        assert_eq!(
            file_type(b"\x55\xAA\x55\xAA\x60\0\0\0"),
            "Diablo II save (.d2s)"
        );
        assert_eq!(file_type(b"\xD4\xC3\xB2\xA1\x02\0\x04\0"), "pcap capture");
        assert_eq!(file_type(b"MZ\x90\0"), "DOS/PE (MZ)");
        assert_eq!(file_type(b"hello"), "data");
        let mut pe = vec![0u8; 0x200];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x80 + 22] = 0x02;
        pe[0x80 + 23] = 0x20; // IMAGE_FILE_DLL
        pe[0x80 + 24] = 0x0B;
        pe[0x80 + 25] = 0x01; // 0x10B
        assert_eq!(file_type(&pe), "PE32 executable (DLL)");
    }

    #[test]
    fn a_file_added_twice_is_stored_once() -> Result<(), String> {
        let dir = mcp_testkit::TestDir::new(&std::env::temp_dir(), "quarantine-unit")
            .map_err(|e| e.to_string())?;
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
        for name in ["a.bin", "b.bin"] {
            std::fs::write(src.join(name), b"\x7fELF\x02same bytes").map_err(|e| e.to_string())?;
        }
        let q = Quarantine::open(
            &dir.path().join("q"),
            Some(Roots::new(std::slice::from_ref(&src))?),
        )?;
        let err = |e: ToolError| e.to_string();
        let a = src.join("a.bin").display().to_string();
        let (first, new) = q.add(&a, "alice").map_err(err)?;
        assert!(new);
        let (second, new) = q
            .add(&src.join("b.bin").display().to_string(), "bob")
            .map_err(err)?;
        assert!(!new);
        assert_eq!(second.sha256, first.sha256);
        assert_eq!(
            (second.added_by.as_str(), second.origins.len()),
            ("alice", 2)
        );
        assert_eq!(second.kind, "ELF 64-bit");
        let stored = q.dir().join(&first.sha256);
        let mode = std::fs::metadata(&stored)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        assert_eq!(q.list()?.len(), 1);
        // Outside the roots: refused, naming the argument.
        let e = q
            .add("/etc/hostname", "alice")
            .err()
            .ok_or("outside accepted")?;
        assert!(e.to_string().contains("`path`"), "{e}");
        q.remove(&first.sha256).map_err(err)?;
        assert!(q.list()?.is_empty() && !stored.exists());
        let e = q.remove("nothex").err().ok_or("bad sha accepted")?;
        assert!(e.to_string().contains("64 lowercase hex"), "{e}");
        Ok(())
    }
}
