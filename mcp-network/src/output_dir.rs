//! The default output directory (`$TMPDIR/mcp-network`), where live captures and exports are
//! written, is a root like any other. `$TMPDIR` is shared: whoever creates that directory
//! first decides what is in it. So the server keeps it private: created 0700, and a
//! pre-existing one that is a symlink, not a directory, or not ours is refused, so nobody
//! else can plant a symlink there (to make us read, or libpcap write, any file).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Owner-only access: read, write and search for us, nothing for the group and others.
const PRIVATE_MODE: u32 = 0o700;

/// The default output directory: `$TMPDIR/mcp-network`.
pub fn default_output_dir() -> PathBuf {
    std::env::temp_dir().join("mcp-network")
}

/// Creates `dir` 0700, or accepts an existing one only if it is a real directory (not a
/// symlink) owned by this process's effective user; its mode is then tightened to 0700.
/// Returns its canonical path.
pub fn prepare_private_dir(dir: &Path) -> Result<PathBuf, String> {
    let shown = dir.display();
    match std::fs::DirBuilder::new().mode(PRIVATE_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create the output directory {shown}: {e}")),
    }
    // lstat: a symlink is judged as itself, never by what it points to.
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot inspect the output directory {shown}: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "the output directory {shown} is a symlink (someone else may have planted it): \
             remove it, or pass --output-dir DIR"
        ));
    }
    if !meta.is_dir() {
        return Err(format!(
            "the output directory {shown} exists and is not a directory: remove it, or pass \
             --output-dir DIR"
        ));
    }
    let me = effective_uid()?;
    if meta.uid() != me {
        return Err(format!(
            "the output directory {shown} is owned by uid {}, not by this server's uid {me}: \
             remove it, or pass --output-dir DIR",
            meta.uid()
        ));
    }
    if meta.mode() & 0o777 != PRIVATE_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_MODE))
            .map_err(|e| format!("cannot make the output directory {shown} private: {e}"))?;
    }
    dir.canonicalize()
        .map_err(|e| format!("cannot resolve the output directory {shown}: {e}"))
}

/// This process's effective uid, from `/proc/self/status` (`Uid: real effective saved fs`);
/// std has no `geteuid` and this crate does not link libc directly.
fn effective_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status for our uid: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| "no effective uid in /proc/self/status".to_string())
}

/// Refuses to write over anything already at `path` (a file, or a symlink someone planted in
/// a directory the operator named): captures and exports always get fresh names.
pub fn ensure_fresh(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot inspect {}: {e}", path.display())),
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} already exists as a symlink; refusing to write through it",
            path.display()
        )),
        Ok(_) => Err(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> Result<PathBuf, String> {
        let d = std::env::temp_dir().join(format!("mcp-net-outdir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        Ok(d)
    }

    #[test]
    fn creates_private_and_refuses_symlinks_and_files() -> Result<(), String> {
        let base = scratch("kinds")?;
        let dir = base.join("out");
        let canon = prepare_private_dir(&dir)?;
        let mode = std::fs::metadata(&canon).map_err(|e| e.to_string())?.mode();
        assert_eq!(mode & 0o777, 0o700);
        // An existing one of ours, too open: accepted and tightened.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| e.to_string())?;
        prepare_private_dir(&dir)?;
        let mode = std::fs::metadata(&dir).map_err(|e| e.to_string())?.mode();
        assert_eq!(mode & 0o777, 0o700);

        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).map_err(|e| e.to_string())?;
        let e = prepare_private_dir(&link).err().unwrap_or_default();
        assert!(e.contains("is a symlink") && e.contains("link"), "{e}");

        let file = base.join("file");
        std::fs::write(&file, b"x").map_err(|e| e.to_string())?;
        let e = prepare_private_dir(&file).err().unwrap_or_default();
        assert!(e.contains("not a directory"), "{e}");

        assert!(ensure_fresh(&base.join("new.pcap")).is_ok());
        let e = ensure_fresh(&link).err().unwrap_or_default();
        assert!(e.contains("symlink"), "{e}");
        let e = ensure_fresh(&file).err().unwrap_or_default();
        assert!(e.contains("already exists"), "{e}");
        std::fs::remove_dir_all(&base).map_err(|e| e.to_string())
    }

    #[test]
    fn refuses_a_directory_owned_by_someone_else() -> Result<(), String> {
        let base = scratch("owner")?;
        let dir = base.join("out");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        // Only root can give a directory away; elsewhere this case cannot be set up.
        if std::os::unix::fs::chown(&dir, Some(65534), None).is_err() {
            mcp_testkit::skipped(
                "REQUIRE_ROOT",
                "refuses_a_directory_owned_by_someone_else: chown needs root",
            );
            return std::fs::remove_dir_all(&base).map_err(|e| e.to_string());
        }
        let e = prepare_private_dir(&dir).err().unwrap_or_default();
        assert!(e.contains("owned by uid 65534"), "{e}");
        std::fs::remove_dir_all(&base).map_err(|e| e.to_string())
    }
}
