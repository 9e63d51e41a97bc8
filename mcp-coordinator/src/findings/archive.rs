//! Keeping findings safe and the store small: online backups (`VACUUM INTO`, with
//! retention), export and import as JSON Lines (ids and links kept, import idempotent), and
//! the archive, a second SQLite file (`archive.sqlite3`, attached as `archive`) that findings
//! older than a configured age move to, where `findings_get` still finds them.
//!
//! Files are only written and read under the data directory (`backups/`, `exports/`): a
//! caller names an export, never a path.

use super::{Finding, Link, Query, Store, now, sql};
use rusqlite::{Connection, params};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// The archive's tables: the store's findings and links, same columns.
const ARCHIVE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS archive.findings (
                 id TEXT PRIMARY KEY, session TEXT NOT NULL, time REAL NOT NULL,
                 kind TEXT NOT NULL, title TEXT NOT NULL, server TEXT, tool TEXT,
                 arguments TEXT, target TEXT, summary TEXT, data TEXT);
             CREATE TABLE IF NOT EXISTS archive.links (
                 from_id TEXT NOT NULL, to_id TEXT NOT NULL, relation TEXT NOT NULL,
                 time REAL NOT NULL, PRIMARY KEY (from_id, to_id, relation));";

/// The longest line an import reads (a finding's data is capped at 256 KiB, its arguments
/// and target likewise).
const MAX_LINE: usize = 1 << 20;

/// Attaches `dir/archive.sqlite3` (created when missing) as `archive`.
pub(super) fn attach(conn: &Connection, dir: &Path) -> Result<(), String> {
    let file = dir.join("archive.sqlite3");
    conn.execute(
        "ATTACH DATABASE ?1 AS archive",
        [file.display().to_string()],
    )
    .map_err(sql)?;
    super::retried(|| conn.execute_batch(ARCHIVE_SCHEMA)).map_err(sql)
}

/// What a backup wrote, and which older backups retention removed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Backup {
    pub path: String,
    pub bytes: u64,
    /// Findings and links in it (the archive's included).
    pub findings: u64,
    pub links: u64,
    /// Older backups deleted to keep the newest `keep`.
    pub removed: Vec<String>,
}

/// What an archival, export or import moved.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Moved {
    pub findings: u64,
    pub links: u64,
}

/// One line of an export: a finding, or a link with the time it was made.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Finding(Finding),
    Link {
        #[serde(flatten)]
        link: Link,
        time: f64,
    },
}

/// Whether `name` may name a file in `exports/`: letters, digits, `.`, `_`, `-`, at most
/// 64, not starting with a dot.
pub fn valid_export_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A UTC time stamp that sorts as text: `20261203T173012.345Z`.
fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

impl Store {
    fn subdir(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        Ok(d)
    }

    /// Writes a consistent copy of the store, archived findings included, to
    /// `backups/findings-<time>.sqlite3` while it stays in use, then deletes all but the
    /// newest `keep` backups. Restoring is copying it to a data directory as
    /// `findings.sqlite3`.
    pub fn backup(&self, keep: usize) -> Result<Backup, String> {
        let dir = self.subdir("backups")?;
        let path = dir.join(format!("findings-{}.sqlite3", stamp()));
        let shown = path.display().to_string();
        {
            let conn = self.conn();
            conn.execute("VACUUM main INTO ?1", [&shown]).map_err(sql)?;
        }
        // The archive's rows join the copy, so that one file restores everything.
        let copy = Connection::open(&path).map_err(sql)?;
        let archive = self.dir.join("archive.sqlite3").display().to_string();
        copy.execute("ATTACH DATABASE ?1 AS archive", [&archive])
            .map_err(sql)?;
        copy.execute_batch(
            "INSERT OR IGNORE INTO main.findings SELECT * FROM archive.findings;
             INSERT OR IGNORE INTO main.links SELECT * FROM archive.links;
             DELETE FROM main.outbox; DELETE FROM main.shipped;",
        )
        .map_err(sql)?;
        let count = |table: &str| -> Result<u64, String> {
            copy.query_row(&format!("SELECT COUNT(*) FROM main.{table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sql)
        };
        let (findings, links) = (count("findings")?, count("links")?);
        drop(copy);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(Backup {
            path: shown,
            bytes,
            findings,
            links,
            removed: prune(&dir, keep)?,
        })
    }

    /// Writes the findings matching `q` (all when it has no condition; archived ones
    /// included) and the links between them to `exports/<name>` as JSON Lines.
    pub fn export(&self, q: &Query, name: &str) -> Result<(PathBuf, Moved), String> {
        let path = self.subdir("exports")?.join(name);
        let tmp = path.with_extension("partial");
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp)
                .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?,
        );
        let (filter, args) = Self::filter(q);
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let conn = self.conn();
        // The same conditions over the store and the archive: the parameters twice.
        let both: Vec<&dyn rusqlite::ToSql> = refs.iter().chain(refs.iter()).copied().collect();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {0} FROM main.findings {filter} \
                 UNION ALL SELECT {0} FROM archive.findings {filter} ORDER BY time, id",
                Self::COLUMNS
            ))
            .map_err(sql)?;
        let mut moved = Moved::default();
        let mut ids = std::collections::HashSet::new();
        let write = |out: &mut std::io::BufWriter<std::fs::File>, line: &Line| {
            serde_json::to_writer(&mut *out, line)
                .map_err(|e| e.to_string())
                .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()))
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
        };
        let rows = stmt.query_map(both.as_slice(), Self::row).map_err(sql)?;
        for f in rows {
            let f = f.map_err(sql)?;
            if !ids.insert(f.id.clone()) {
                continue;
            }
            write(&mut out, &Line::Finding(f))?;
            moved.findings += 1;
        }
        drop(stmt);
        let mut stmt = conn
            .prepare(
                "SELECT from_id, to_id, relation, time FROM main.links \
                 UNION SELECT from_id, to_id, relation, time FROM archive.links ORDER BY time",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    Link {
                        from: r.get(0)?,
                        to: r.get(1)?,
                        relation: r.get(2)?,
                    },
                    r.get::<_, f64>(3)?,
                ))
            })
            .map_err(sql)?;
        for l in rows {
            let (link, time) = l.map_err(sql)?;
            if ids.contains(&link.from) && ids.contains(&link.to) {
                write(&mut out, &Line::Link { link, time })?;
                moved.links += 1;
            }
        }
        drop(stmt);
        drop(conn);
        out.flush()
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
        Ok((path, moved))
    }

    /// Adds what `exports/<name>` holds: findings by id and links, each once however often
    /// it is imported (what is there already is left as it is). All or nothing: a line that
    /// does not parse is refused with its number and nothing is added.
    pub fn import(&self, name: &str) -> Result<Moved, String> {
        let path = self.dir.join("exports").join(name);
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut lines = Vec::new();
        let mut reader = std::io::BufReader::new(file);
        let mut buf = Vec::new();
        for n in 1.. {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if read == 0 {
                break;
            }
            if buf.len() > MAX_LINE {
                return Err(format!("{name}: line {n} is over {MAX_LINE} bytes"));
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line: Line = serde_json::from_slice(&buf)
                .map_err(|e| format!("{name}: line {n} is not a finding or a link: {e}"))?;
            lines.push(line);
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let mut moved = Moved::default();
        let js = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        for line in lines {
            match line {
                Line::Finding(f) => {
                    let archived: bool = tx
                        .query_row(
                            "SELECT EXISTS(SELECT 1 FROM archive.findings WHERE id = ?1)",
                            [&f.id],
                            |r| r.get(0),
                        )
                        .map_err(sql)?;
                    if archived {
                        continue;
                    }
                    let added = tx
                        .execute(
                            "INSERT OR IGNORE INTO main.findings (id, session, time, kind, title, server, tool, arguments, target, summary, data)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                            params![f.id, f.session, f.time, f.kind, f.title, f.server, f.tool, js(&f.arguments), js(&f.target), f.summary, js(&f.data)],
                        )
                        .map_err(sql)?;
                    if added > 0 {
                        self.enqueue(&tx, "finding", &f.id)?;
                        moved.findings += 1;
                    }
                }
                Line::Link { link, time } => {
                    let added = tx
                        .execute(
                            "INSERT OR IGNORE INTO main.links (from_id, to_id, relation, time)
                             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM archive.links
                               WHERE from_id = ?1 AND to_id = ?2 AND relation = ?3)",
                            params![link.from, link.to, link.relation, time],
                        )
                        .map_err(sql)?;
                    if added > 0 {
                        let item = super::link_key(&link.from, &link.relation, &link.to);
                        self.enqueue(&tx, "link", &item)?;
                        moved.links += 1;
                    }
                }
            }
        }
        tx.commit().map_err(sql)?;
        drop(conn);
        if moved.findings + moved.links > 0 {
            self.signal();
        }
        Ok(moved)
    }

    /// Moves findings recorded more than `age_s` seconds ago to the archive, with every link
    /// that touches them; a finding still waiting to be shipped stays until it is.
    pub fn archive_older(&self, age_s: f64) -> Result<Moved, String> {
        let cutoff = now() - age_s;
        let mut conn = self.conn();
        // Copied first, then removed: a crash in between leaves a finding in both files,
        // found once (the store is read first); the next run finishes the move.
        let tx = conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT OR IGNORE INTO archive.findings SELECT * FROM main.findings
             WHERE time < ?1 AND id NOT IN (SELECT item FROM main.outbox WHERE kind = 'finding')",
            [cutoff],
        )
        .map_err(sql)?;
        let moving = "(SELECT id FROM archive.findings)";
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO archive.links SELECT * FROM main.links
                 WHERE from_id IN {moving} OR to_id IN {moving}"
            ),
            [],
        )
        .map_err(sql)?;
        let links = tx
            .execute(
                &format!("DELETE FROM main.links WHERE from_id IN {moving} OR to_id IN {moving}"),
                [],
            )
            .map_err(sql)?;
        let findings = tx
            .execute(
                &format!("DELETE FROM main.findings WHERE id IN {moving}"),
                [],
            )
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Moved {
            findings: findings as u64,
            links: links as u64,
        })
    }

    /// How many findings the archive holds.
    pub fn archived(&self) -> Result<u64, String> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM archive.findings", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sql)
    }
}

/// Deletes all but the newest `keep` backups in `dir` (their names sort by time).
fn prune(dir: &Path, keep: usize) -> Result<Vec<String>, String> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("findings-") && n.ends_with(".sqlite3"))
        })
        .collect();
    backups.sort();
    let old = backups.len().saturating_sub(keep.max(1));
    let mut removed = Vec::new();
    for p in backups.into_iter().take(old) {
        std::fs::remove_file(&p).map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
        removed.push(p.display().to_string());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(dir: &Path) -> Result<Store, String> {
        Store::open(dir)
    }

    fn note(s: &Store, title: &str) -> Result<String, String> {
        s.record(
            "note",
            title,
            None,
            None,
            None,
            Some(json!({"binary": "a.dll"})),
            None,
            None,
        )
        .map(|f| f.id)
    }

    #[test]
    fn archived_findings_are_still_found_with_their_links() -> Result<(), String> {
        let dir = mcp_testkit::TestDir::new(&std::env::temp_dir(), "findings-archive-1")
            .map_err(|e| e.to_string())?;
        let s = store(dir.path())?;
        let (a, b) = (note(&s, "old one")?, note(&s, "old two")?);
        s.link(&a, &b, "explains")?;
        let moved = s.archive_older(-1.0)?;
        assert_eq!((moved.findings, moved.links), (2, 1));
        assert_eq!(s.counts()?.0, 0);
        assert_eq!(s.archived()?, 2);
        let (f, links) = s.get(&a)?.ok_or("the archived finding is gone")?;
        assert_eq!(f.title, "old one");
        assert_eq!(links.len(), 1);
        // A new finding links to an archived one.
        let c = note(&s, "new")?;
        s.link(&c, &a, "cites")?;
        assert_eq!(s.get(&a)?.map(|(_, l)| l.len()), Some(2));
        // Nothing younger than a day moves.
        assert_eq!(s.archive_older(86_400.0)?.findings, 0);
        Ok(())
    }

    #[test]
    fn finding_times_survive_json_exactly() -> Result<(), String> {
        // CI once saw this time come back one ulp off: serde_json parses floats exactly only
        // with its `float_roundtrip` feature (on for the workspace).
        let t = 1796405990.8784447_f64;
        let back: f64 =
            serde_json::from_str(&serde_json::to_string(&t).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        assert_eq!(back.to_bits(), t.to_bits());
        Ok(())
    }

    #[test]
    fn export_then_import_elsewhere_twice_adds_once() -> Result<(), String> {
        let dir = mcp_testkit::TestDir::new(&std::env::temp_dir(), "findings-archive-2")
            .map_err(|e| e.to_string())?;
        let s = store(&dir.path().join("one"))?;
        let (a, b) = (note(&s, "first")?, note(&s, "second")?);
        s.link(&a, &b, "explains")?;
        s.archive_older(-1.0)?;
        let c = note(&s, "third")?;
        s.link(&c, &a, "cites")?;
        let (path, out) = s.export(&Query::default(), "all.jsonl")?;
        assert_eq!((out.findings, out.links), (3, 2));
        let other = store(&dir.path().join("two"))?;
        let exports = other.dir.join("exports");
        std::fs::create_dir_all(&exports).map_err(|e| e.to_string())?;
        std::fs::copy(&path, exports.join("all.jsonl")).map_err(|e| e.to_string())?;
        let first = other.import("all.jsonl")?;
        assert_eq!((first.findings, first.links), (3, 2));
        let again = other.import("all.jsonl")?;
        assert_eq!((again.findings, again.links), (0, 0));
        let (f, links) = other.get(&a)?.ok_or("not imported")?;
        assert_eq!(f, s.get(&a)?.ok_or("gone")?.0);
        assert_eq!(links.len(), 2);
        // A damaged line refuses the whole file, naming the line.
        std::fs::write(exports.join("bad.jsonl"), "{\"finding\": 1}\n")
            .map_err(|e| e.to_string())?;
        let e = other
            .import("bad.jsonl")
            .err()
            .ok_or("a bad line was accepted")?;
        assert!(e.contains("line 1"), "{e}");
        Ok(())
    }

    #[test]
    fn a_backup_holds_everything_and_old_ones_go() -> Result<(), String> {
        let dir = mcp_testkit::TestDir::new(&std::env::temp_dir(), "findings-archive-3")
            .map_err(|e| e.to_string())?;
        let s = store(dir.path())?;
        let a = note(&s, "archived")?;
        s.archive_older(-1.0)?;
        let b = note(&s, "live")?;
        s.link(&b, &a, "cites")?;
        let mut last = None;
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            last = Some(s.backup(2)?);
        }
        let last = last.ok_or("no backup")?;
        assert_eq!((last.findings, last.links), (2, 1));
        assert_eq!(last.removed.len(), 1);
        let kept = std::fs::read_dir(dir.path().join("backups"))
            .map_err(|e| e.to_string())?
            .count();
        assert_eq!(kept, 2);
        // Restored: the copy is a data directory's store.
        let restored = dir.path().join("restored");
        std::fs::create_dir_all(&restored).map_err(|e| e.to_string())?;
        std::fs::copy(&last.path, restored.join("findings.sqlite3")).map_err(|e| e.to_string())?;
        let r = store(&restored)?;
        assert!(r.get(&a)?.is_some() && r.get(&b)?.is_some());
        assert_eq!(r.get(&a)?.map(|(_, l)| l.len()), Some(1));
        Ok(())
    }

    #[test]
    fn export_names_are_plain_file_names() {
        for ok in ["all.jsonl", "findings-2026_12.jsonl"] {
            assert!(valid_export_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "x".repeat(65).as_str()] {
            assert!(!valid_export_name(bad), "{bad}");
        }
    }
}
