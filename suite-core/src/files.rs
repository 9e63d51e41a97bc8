//! Small files a server is told to read (profiles, configs, token files, layouts): only
//! regular files, read no further than a cap, so a path to a FIFO, a device or a huge file
//! named by mistake (or by an agent) cannot hang or flood the server. Errors name the path
//! and the reason, never the file's contents.

use std::io::Read;
use std::path::Path;

/// The text of the regular file at `path`, at most `max` bytes; `what` names it in errors
/// (e.g. "profile", "--config").
pub fn read_text(path: &Path, what: &str, max: u64) -> Result<String, String> {
    String::from_utf8(read_bytes(path, what, max)?)
        .map_err(|_| format!("{what} {}: not UTF-8 text", path.display()))
}

/// The bytes of the regular file at `path`, at most `max`; `what` names it in errors.
pub fn read_bytes(path: &Path, what: &str, max: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {shown}: cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{what} {shown}: not a regular file"));
    }
    if meta.len() > max {
        return Err(format!(
            "{what} {shown}: {} bytes; at most {max} are read",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{what} {shown}: cannot read: {e}"))?;
    // It grew while being read.
    if bytes.len() as u64 > max {
        return Err(format!(
            "{what} {shown}: over {max} bytes; at most {max} are read"
        ));
    }
    Ok(bytes)
}

/// A parse error's position as a line number, for messages that must not quote the text
/// (`offset` is a byte offset into `text`, as TOML's and JSON's spans give it).
pub fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("files-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let small = dir.join("small.toml");
        std::fs::write(&small, "a = 1\n").map_err(|e| e.to_string())?;
        assert_eq!(read_text(&small, "profile", 64)?, "a = 1\n");
        let big = dir.join("big.toml");
        std::fs::write(&big, "x".repeat(100)).map_err(|e| e.to_string())?;
        let e = read_text(&big, "profile", 64).err().unwrap_or_default();
        assert!(e.contains("100 bytes; at most 64"), "{e}");
        let e = read_text(Path::new("/dev/zero"), "--config", 64)
            .err()
            .unwrap_or_default();
        assert_eq!(e, "--config /dev/zero: not a regular file");
        let e = read_text(&dir, "profile", 64).err().unwrap_or_default();
        assert!(e.ends_with("not a regular file"), "{e}");
        std::fs::write(&small, [0xff, 0xfe]).map_err(|e| e.to_string())?;
        let e = read_text(&small, "profile", 64).err().unwrap_or_default();
        assert!(e.ends_with("not UTF-8 text"), "{e}");
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
        assert_eq!(line_at("a\nb\nc", 4), 3);
        assert_eq!(line_at("a", 99), 1);
        Ok(())
    }
}
