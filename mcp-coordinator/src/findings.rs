//! The findings graph, embedded: every successful analysis call and every finding an agent
//! records, with links between them, in SQLite (WAL) under the data directory, so that what
//! was learned survives the session.

use rusqlite::{Connection, OptionalExtension, params};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest structured result kept with a finding; longer ones are cut and marked.
const MAX_DATA: usize = 256 * 1024;

/// One finding.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Finding {
    pub id: String,
    /// The coordinator run that recorded it.
    pub session: String,
    /// Seconds since the epoch.
    pub time: f64,
    /// `tool_call` for recorded calls, or the kind an agent gave.
    pub kind: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// What it is about: `{"binary": path}`, `{"process": pid}`, `{"capture": source}`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A typed edge between two findings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub relation: String,
}

/// A query over findings; every given condition must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct Query {
    /// Findings whose target contains this text (a path, a pid, a capture id).
    pub target: Option<String>,
    pub kind: Option<String>,
    /// Findings of this tool (`static__binary_info` or `binary_info`).
    pub tool: Option<String>,
    /// Text in the title, summary or data.
    pub text: Option<String>,
    /// Only findings at or after this time (seconds since the epoch).
    pub since: Option<f64>,
}

pub struct Store {
    conn: Mutex<Connection>,
    /// Findings recorded by this session: ids are `f-<session>-<n>`.
    recorded: std::sync::atomic::AtomicU64,
    pub session: String,
    pub path: String,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn sql(e: rusqlite::Error) -> String {
    format!("findings store: {e}")
}

impl Store {
    /// Opens (or creates) `dir/findings.sqlite3`.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
        let path = dir.join("findings.sqlite3");
        let conn = Connection::open(&path).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS findings (
                 id TEXT PRIMARY KEY, session TEXT NOT NULL, time REAL NOT NULL,
                 kind TEXT NOT NULL, title TEXT NOT NULL, server TEXT, tool TEXT,
                 arguments TEXT, target TEXT, summary TEXT, data TEXT);
             CREATE INDEX IF NOT EXISTS findings_time ON findings(time);
             CREATE TABLE IF NOT EXISTS links (
                 from_id TEXT NOT NULL, to_id TEXT NOT NULL, relation TEXT NOT NULL,
                 time REAL NOT NULL, PRIMARY KEY (from_id, to_id, relation));",
        )
        .map_err(sql)?;
        let session = format!("{:x}-{:x}", (now() * 1000.0) as u64, std::process::id());
        Ok(Self {
            conn: Mutex::new(conn),
            recorded: std::sync::atomic::AtomicU64::new(0),
            session,
            path: path.display().to_string(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self) -> String {
        let n = self
            .recorded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("f-{}-{}", self.session, n + 1)
    }

    /// Records a finding and returns it (with its id).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        kind: &str,
        title: &str,
        server: Option<&str>,
        tool: Option<&str>,
        arguments: Option<Value>,
        target: Option<Value>,
        summary: Option<String>,
        data: Option<Value>,
    ) -> Result<Finding, String> {
        let data = data.map(|d| {
            let text = d.to_string();
            if text.len() > MAX_DATA {
                serde_json::json!({"truncated": true, "bytes": text.len()})
            } else {
                d
            }
        });
        let conn = self.conn();
        let f = Finding {
            id: self.new_id(),
            session: self.session.clone(),
            time: now(),
            kind: kind.to_string(),
            title: title.to_string(),
            server: server.map(str::to_string),
            tool: tool.map(str::to_string),
            arguments,
            target,
            summary,
            data,
        };
        let js = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        conn.execute(
            "INSERT INTO findings (id, session, time, kind, title, server, tool, arguments, target, summary, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![f.id, f.session, f.time, f.kind, f.title, f.server, f.tool, js(&f.arguments), js(&f.target), f.summary, js(&f.data)],
        )
        .map_err(sql)?;
        Ok(f)
    }

    /// Links two existing findings (idempotent).
    pub fn link(&self, from: &str, to: &str, relation: &str) -> Result<Link, String> {
        let conn = self.conn();
        for (field, id) in [("from", from), ("to", to)] {
            let exists: Option<String> = conn
                .query_row("SELECT id FROM findings WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            if exists.is_none() {
                return Err(format!(
                    "invalid argument `{field}`: {id:?} (no finding has this id)"
                ));
            }
        }
        conn.execute(
            "INSERT OR IGNORE INTO links (from_id, to_id, relation, time) VALUES (?1, ?2, ?3, ?4)",
            params![from, to, relation, now()],
        )
        .map_err(sql)?;
        Ok(Link {
            from: from.into(),
            to: to.into(),
            relation: relation.into(),
        })
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Finding> {
        let js = |s: Option<String>| s.and_then(|t| serde_json::from_str(&t).ok());
        Ok(Finding {
            id: r.get(0)?,
            session: r.get(1)?,
            time: r.get(2)?,
            kind: r.get(3)?,
            title: r.get(4)?,
            server: r.get(5)?,
            tool: r.get(6)?,
            arguments: js(r.get(7)?),
            target: js(r.get(8)?),
            summary: r.get(9)?,
            data: js(r.get(10)?),
        })
    }

    const COLUMNS: &'static str =
        "id, session, time, kind, title, server, tool, arguments, target, summary, data";

    /// A finding with its links (both directions).
    pub fn get(&self, id: &str) -> Result<Option<(Finding, Vec<Link>)>, String> {
        let conn = self.conn();
        let f = conn
            .query_row(
                &format!("SELECT {} FROM findings WHERE id = ?1", Self::COLUMNS),
                [id],
                Self::row,
            )
            .optional()
            .map_err(sql)?;
        let Some(f) = f else { return Ok(None) };
        let mut stmt = conn
            .prepare("SELECT from_id, to_id, relation FROM links WHERE from_id = ?1 OR to_id = ?1 ORDER BY time")
            .map_err(sql)?;
        let links = stmt
            .query_map([id], |r| {
                Ok(Link {
                    from: r.get(0)?,
                    to: r.get(1)?,
                    relation: r.get(2)?,
                })
            })
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        Ok(Some((f, links)))
    }

    /// Findings matching `q`, newest first: (total, page).
    pub fn query(
        &self,
        q: &Query,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<Finding>), String> {
        let mut clauses = Vec::new();
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(t) = &q.target {
            clauses.push("target LIKE ?");
            args.push(Box::new(format!("%{t}%")));
        }
        if let Some(k) = &q.kind {
            clauses.push("kind = ?");
            args.push(Box::new(k.clone()));
        }
        if let Some(t) = &q.tool {
            clauses.push("(tool = ? OR title = ?)");
            args.push(Box::new(t.clone()));
            args.push(Box::new(t.clone()));
        }
        if let Some(t) = &q.text {
            clauses.push("(title LIKE ? OR summary LIKE ? OR data LIKE ?)");
            for _ in 0..3 {
                args.push(Box::new(format!("%{t}%")));
            }
        }
        if let Some(s) = q.since {
            clauses.push("time >= ?");
            args.push(Box::new(s));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let conn = self.conn();
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let total: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM findings {filter}"),
                refs.as_slice(),
                |r| r.get(0),
            )
            .map_err(sql)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM findings {filter} ORDER BY time DESC, id DESC LIMIT {limit} OFFSET {offset}",
                Self::COLUMNS
            ))
            .map_err(sql)?;
        let items = stmt
            .query_map(refs.as_slice(), Self::row)
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        Ok((total as usize, items))
    }

    /// Counts: findings, links, sessions.
    pub fn counts(&self) -> Result<(u64, u64, u64), String> {
        let conn = self.conn();
        let one = |q: &str| -> Result<u64, String> {
            conn.query_row(q, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(sql)
        };
        Ok((
            one("SELECT COUNT(*) FROM findings")?,
            one("SELECT COUNT(*) FROM links")?,
            one("SELECT COUNT(DISTINCT session) FROM findings")?,
        ))
    }
}

/// What a tool call was about, from its arguments: a file, a process or a capture.
pub fn target_of(arguments: &Value) -> Option<Value> {
    let mut t = serde_json::Map::new();
    for (key, name) in [
        ("path", "binary"),
        ("path_a", "binary"),
        ("pid", "process"),
        ("source", "capture"),
    ] {
        if let Some(v) = arguments.get(key) {
            t.insert(name.into(), v.clone());
        }
    }
    (!t.is_empty()).then_some(Value::Object(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_links_queries_and_survives_reopening() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("findings-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = {
            let s = Store::open(&dir)?;
            let a = s.record(
                "tool_call",
                "static__binary_info",
                Some("static"),
                Some("binary_info"),
                Some(json!({"path": "/g/D2Client.dll"})),
                target_of(&json!({"path": "/g/D2Client.dll"})),
                Some("pe32 x86".into()),
                Some(json!({"image_base": "0x6FAB0000"})),
            )?;
            let b = s.record(
                "note",
                "player pointer",
                None,
                None,
                None,
                Some(json!({"process": 42})),
                None,
                None,
            )?;
            s.link(&b.id, &a.id, "found_in")?;
            s.link(&b.id, &a.id, "found_in")?;
            assert!(
                s.link(&b.id, "f-none", "x")
                    .is_err_and(|e| e.contains("`to`"))
            );
            (a, b)
        };
        let s = Store::open(&dir)?;
        let (f, links) = s.get(&b.id)?.ok_or("lost")?;
        assert_eq!(f.title, "player pointer");
        assert_eq!(
            links,
            vec![Link {
                from: b.id.clone(),
                to: a.id.clone(),
                relation: "found_in".into()
            }]
        );
        let (n, items) = s.query(
            &Query {
                target: Some("D2Client".into()),
                ..Default::default()
            },
            0,
            10,
        )?;
        assert_eq!((n, items[0].id.clone()), (1, a.id.clone()));
        let (n, _) = s.query(
            &Query {
                text: Some("6FAB0000".into()),
                ..Default::default()
            },
            0,
            10,
        )?;
        assert_eq!(n, 1);
        let (n, _) = s.query(
            &Query {
                tool: Some("binary_info".into()),
                ..Default::default()
            },
            0,
            10,
        )?;
        assert_eq!(n, 1);
        assert_eq!(s.counts()?, (2, 1, 1));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
