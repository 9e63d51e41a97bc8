//! The file allow-list: tools read files only under the roots the operator gave.
//!
//! Paths are canonicalised before the check, so `..` and symlinks that lead out of a root
//! are refused like any other outside path.

use crate::ToolError;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<PathBuf>,
    /// The coordinator's quarantine, whose files are named `quarantine://<sha256>`.
    quarantine: Option<PathBuf>,
}

/// How a quarantined file is named in a path argument.
pub const QUARANTINE_SCHEME: &str = "quarantine://";

impl Roots {
    /// Canonicalises each root; a root that does not exist is a start-up error.
    pub fn new(dirs: &[PathBuf]) -> Result<Self, String> {
        let mut roots = Vec::new();
        for dir in dirs {
            let canon = dir
                .canonicalize()
                .map_err(|e| format!("--root {}: {e}", dir.display()))?;
            if !canon.is_dir() {
                return Err(format!("--root {}: not a directory", dir.display()));
            }
            roots.push(canon);
        }
        if roots.is_empty() {
            let cwd = std::env::current_dir().map_err(|e| format!("working directory: {e}"))?;
            roots.push(
                cwd.canonicalize()
                    .map_err(|e| format!("working directory: {e}"))?,
            );
        }
        Ok(Self {
            roots,
            quarantine: None,
        })
    }

    /// Also resolves `quarantine://<sha256>` to that file of the quarantine `dir`
    /// (`--quarantine`); a directory that does not exist is a start-up error.
    pub fn with_quarantine(mut self, dir: &Path) -> Result<Self, String> {
        let canon = dir
            .canonicalize()
            .map_err(|e| format!("--quarantine {}: {e}", dir.display()))?;
        self.quarantine = Some(canon);
        Ok(self)
    }

    /// The file `quarantine://<sha>` names.
    fn quarantined(&self, field: &str, path: &str, sha: &str) -> Result<PathBuf, ToolError> {
        let refuse = |why: String| ToolError::invalid(field, format!("{path:?}"), why);
        let Some(dir) = &self.quarantine else {
            return Err(refuse(
                "this server has no quarantine (start it with --quarantine DIR, or under the coordinator)".into(),
            ));
        };
        let hex = sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(refuse(
                "accepted: quarantine:// and a SHA-256 of 64 lowercase hex digits".into(),
            ));
        }
        let file = dir.join(sha);
        if !file.is_file() {
            return Err(refuse(
                "no file in the quarantine has this SHA-256 (quarantine_list names them)".into(),
            ));
        }
        Ok(file)
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Resolves `path` (relative paths against the first root) to a canonical path inside a
    /// root. `field` names the argument in the error.
    pub fn resolve(&self, field: &str, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::invalid(field, "\"\"", "expected a file path"));
        }
        if let Some(sha) = path.strip_prefix(QUARANTINE_SCHEME) {
            return self.quarantined(field, path, sha);
        }
        let given = Path::new(path);
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.roots[0].join(given)
        };
        let canon = joined.canonicalize().map_err(|e| {
            ToolError::invalid(field, format!("{path:?}"), format!("cannot open: {e}"))
        })?;
        if !self.roots.iter().any(|r| canon.starts_with(r)) {
            return Err(ToolError::invalid(
                field,
                format!("{path:?}"),
                format!(
                    "resolves to {} which is outside the allowed roots {}",
                    canon.display(),
                    self.describe()
                ),
            ));
        }
        Ok(canon)
    }

    /// Resolves a path that must be a regular file.
    pub fn resolve_file(&self, field: &str, path: &str) -> Result<PathBuf, ToolError> {
        let canon = self.resolve(field, path)?;
        if !canon.is_file() {
            return Err(ToolError::invalid(
                field,
                format!("{path:?}"),
                "is not a regular file",
            ));
        }
        Ok(canon)
    }

    fn describe(&self) -> String {
        let list: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        format!("[{}]", list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_names_resolve_to_its_files_only() -> Result<(), Box<dyn std::error::Error>> {
        let base = std::env::temp_dir().join(format!("roots-q-{}", std::process::id()));
        let (root, q) = (base.join("root"), base.join("q"));
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&q)?;
        let sha = "ab".repeat(32);
        std::fs::write(q.join(&sha), b"x")?;
        let plain = Roots::new(std::slice::from_ref(&root))?;
        let e = plain.resolve_file("path", &format!("quarantine://{sha}"));
        assert!(e.is_err_and(|e| e.to_string().contains("no quarantine")));
        let roots = plain.with_quarantine(&q)?;
        let got = roots.resolve_file("path", &format!("quarantine://{sha}"))?;
        assert_eq!(got, q.canonicalize()?.join(&sha));
        for bad in [
            "quarantine://../root",
            "quarantine://AB",
            &format!("quarantine://{}", "cd".repeat(32)),
        ] {
            let e = roots.resolve_file("path", bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("`path`")),
                "{bad}: {e:?}"
            );
        }
        // The quarantine is not a root: its files are reached by name only.
        assert!(
            roots
                .resolve_file("path", &q.join(&sha).display().to_string())
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&base);
        Ok(())
    }

    #[test]
    fn refuses_escapes_and_accepts_inside() -> Result<(), Box<dyn std::error::Error>> {
        let base = std::env::temp_dir().join(format!("roots-test-{}", std::process::id()));
        let inside = base.join("inside");
        let outside = base.join("outside");
        std::fs::create_dir_all(&inside)?;
        std::fs::create_dir_all(&outside)?;
        std::fs::write(inside.join("a.bin"), b"x")?;
        std::fs::write(outside.join("secret"), b"x")?;
        let link = inside.join("escape");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(outside.join("secret"), &link)?;
        let roots = Roots::new(std::slice::from_ref(&inside))?;

        assert!(roots.resolve_file("path", "a.bin").is_ok());
        assert!(
            roots
                .resolve_file("path", inside.join("a.bin").to_str().unwrap_or(""))
                .is_ok()
        );
        let err = roots
            .resolve_file("path", "escape")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("outside the allowed roots")));
        assert!(roots.resolve_file("path", "../outside/secret").is_err());
        assert!(roots.resolve_file("path", "missing").is_err());
        let dir_err = roots.resolve_file("path", ".").err().map(|e| e.to_string());
        assert!(dir_err.is_some_and(|e| e.contains("not a regular file")));
        std::fs::remove_dir_all(&base)?;
        Ok(())
    }
}
