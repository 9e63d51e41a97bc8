//! The findings graph, embedded: every successful analysis call and every finding an agent
//! records, with links between them, in SQLite (WAL) under the data directory, so that what
//! was learned survives the session.
//!
//! With a remote graph (Dgraph) the store is also an outbox: a finding or link commits here
//! first, together with an outbox row in the same transaction, and `outbox::Shipper` sends
//! the rows in order and deletes each once the remote has it.
//!
//! Catching up (`Backfill`): the table `shipped` lists, per remote URL, each finding and
//! link that remote confirmed (written in the transaction that deletes its outbox row). At
//! every start with a remote, the shipper's task walks `findings` and `links` in batches
//! and enqueues each one that remote has neither confirmed nor has waiting in the outbox:
//! what was recorded without `--findings-url`, or for another URL, reaches it once, and a
//! restart with nothing new enqueues nothing. (Rows shipped before `shipped` existed are
//! sent once more; upserts keyed by id make that harmless.)

use rusqlite::{Connection, OptionalExtension, params};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest structured result kept with a finding; longer ones are cut and marked.
const MAX_DATA: usize = 256 * 1024;

/// The deepest JSON an agent may record (`data`, `target`): findings are addresses,
/// offsets, values and small structures; every reader of the graph (SQLite's JSON, Dgraph,
/// agents) walks it recursively, so deeper nesting is refused rather than stored.
pub const MAX_RECORD_DEPTH: usize = 32;
/// The most serialized bytes an agent may record as `data` or `target`: a finding is read
/// back whole by findings_get (the same bound under which tool results are kept whole).
pub const MAX_RECORD_BYTES: usize = MAX_DATA;

/// How long a statement waits for another coordinator's lock on the same store (several
/// coordinators may share one data directory) before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How deep `v` nests (a scalar is 1, `[1]` is 2), counted without recursion.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|x| (x, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Whether an agent's `field` (`data`, `target`) may be recorded: at most
/// [`MAX_RECORD_DEPTH`] deep and [`MAX_RECORD_BYTES`] long; else why not, naming both.
pub fn check_recordable(field: &str, v: &Value) -> Result<(), String> {
    let d = depth(v);
    if d > MAX_RECORD_DEPTH {
        return Err(format!(
            "invalid argument `{field}`: nested {d} levels deep (at most {MAX_RECORD_DEPTH}); \
             record a flatter structure"
        ));
    }
    let n = mcp_common::paging::json_len(v);
    if n > MAX_RECORD_BYTES {
        return Err(format!(
            "invalid argument `{field}`: {n} bytes as JSON (at most {MAX_RECORD_BYTES}); \
             record a summary, or split it into linked findings"
        ));
    }
    Ok(())
}

/// Whether `e` is SQLite's busy or locked, which another coordinator's set-up of the same
/// store causes and which a retry mends.
fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs `step` until it does not fail busy, within [`BUSY_TIMEOUT`]: SQLite does not call
/// its busy handler in every case (a change of journal mode, a write after a stale read), so
/// the set-up of a store that several coordinators open at once is retried here.
fn retried<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match step() {
            Err(e) if busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

mod archive;
pub use archive::{Backup, Moved, valid_export_name};

/// The store's tables, created in one write transaction.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS findings (
                 id TEXT PRIMARY KEY, session TEXT NOT NULL, time REAL NOT NULL,
                 kind TEXT NOT NULL, title TEXT NOT NULL, server TEXT, tool TEXT,
                 arguments TEXT, target TEXT, summary TEXT, data TEXT);
             CREATE INDEX IF NOT EXISTS findings_time ON findings(time);
             CREATE TABLE IF NOT EXISTS links (
                 from_id TEXT NOT NULL, to_id TEXT NOT NULL, relation TEXT NOT NULL,
                 time REAL NOT NULL, PRIMARY KEY (from_id, to_id, relation));
             CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                 item TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
             CREATE INDEX IF NOT EXISTS outbox_item ON outbox(kind, item);
             CREATE TABLE IF NOT EXISTS shipped (
                 url TEXT NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL,
                 PRIMARY KEY (url, kind, item)) WITHOUT ROWID;";

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
    /// Text in the target (a path, pid, capture id).
    pub target: Option<String>,
    /// Kind: tool_call, pointer_chain, note, ...
    pub kind: Option<String>,
    /// Tool: static__binary_info or binary_info.
    pub tool: Option<String>,
    /// Text in the title, summary or data.
    pub text: Option<String>,
    /// From this Unix time (seconds).
    pub since: Option<f64>,
}

/// Where the start-up backfill is: the last rowid looked at in `findings`, then in `links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfill {
    Findings(i64),
    Links(i64),
    Done,
}

impl Default for Backfill {
    fn default() -> Self {
        Self::Findings(i64::MIN)
    }
}

/// One row of the outbox: what to ship, in the order it was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub seq: i64,
    pub item: Item,
    /// Earlier attempts that failed.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Finding(Finding),
    /// A link and when it was made.
    Link(Link, f64),
    /// The row names a finding or link that is no longer in the store.
    Missing(String),
}

pub struct Store {
    conn: Mutex<Connection>,
    /// Set when a remote graph is configured: records also go to the outbox, and the
    /// shipper is woken.
    outbox: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The remote's URL, the key of what `shipped` says it has.
    remote: Option<String>,
    /// Findings and links the start-up backfill has still to look at.
    backfill_left: std::sync::atomic::AtomicU64,
    /// Findings recorded by this session: ids are `f-<session>-<n>`.
    recorded: std::sync::atomic::AtomicU64,
    pub session: String,
    pub path: String,
    /// The data directory: the store, its archive, backups and exports.
    pub dir: std::path::PathBuf,
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The key of a link, `["from","relation","to"]`: how the outbox carries it and how the
/// remote graph keys its node, so that a link shipped twice is still one link.
pub fn link_key(from: &str, relation: &str, to: &str) -> String {
    serde_json::json!([from, relation, to]).to_string()
}

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("findings store task failed: {e}"))?
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
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        retried(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)))
            .map_err(sql)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(sql)?;
        retried(|| {
            // IMMEDIATE: the write lock first, so that the busy handler waits for it.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.commit()
        })
        .map_err(sql)?;
        archive::attach(&conn, dir)?;
        let session = format!("{:x}-{:x}", (now() * 1000.0) as u64, std::process::id());
        Ok(Self {
            conn: Mutex::new(conn),
            outbox: None,
            remote: None,
            backfill_left: std::sync::atomic::AtomicU64::new(0),
            recorded: std::sync::atomic::AtomicU64::new(0),
            session,
            path: path.display().to_string(),
            dir: dir.to_path_buf(),
        })
    }

    /// From now on every finding and link also goes to the outbox, for the remote at `url`
    /// (what it confirms is kept per URL, see `Backfill`); the returned signal fires after
    /// each one.
    pub fn enable_outbox(&mut self, url: &str) -> std::sync::Arc<tokio::sync::Notify> {
        let signal = std::sync::Arc::new(tokio::sync::Notify::new());
        self.outbox = Some(signal.clone());
        self.remote = Some(url.to_string());
        signal
    }

    /// Starts the backfill's count: every finding and link is still to be looked at.
    pub fn backfill_begin(&self) -> Result<(), String> {
        let (findings, links, _) = self.counts()?;
        self.backfill_left
            .store(findings + links, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The backfill stopped early (it runs again at the next start).
    pub fn backfill_abandon(&self) {
        self.backfill_left
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Findings and links the backfill has still to look at.
    pub fn backfill_left(&self) -> u64 {
        self.backfill_left
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One step of the backfill: looks at up to `limit` findings (then links) after `at`,
    /// in one transaction, and enqueues each that the remote has not confirmed and that is
    /// not waiting already. Returns where to go on from and how many were enqueued.
    pub fn backfill_step(&self, at: Backfill, limit: usize) -> Result<(Backfill, usize), String> {
        let Some(url) = &self.remote else {
            return Ok((Backfill::Done, 0));
        };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        // (rowid, kind, item) of the next rows.
        let rows: Vec<(i64, &str, String)> = match at {
            Backfill::Done => return Ok((Backfill::Done, 0)),
            Backfill::Findings(after) => tx
                .prepare("SELECT rowid, id FROM findings WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")
                .map_err(sql)?
                .query_map(params![after, limit as i64], |r| {
                    Ok((r.get(0)?, "finding", r.get(1)?))
                })
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?,
            Backfill::Links(after) => tx
                .prepare(
                    "SELECT rowid, from_id, relation, to_id FROM links WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                )
                .map_err(sql)?
                .query_map(params![after, limit as i64], |r| {
                    let (from, relation, to): (String, String, String) =
                        (r.get(1)?, r.get(2)?, r.get(3)?);
                    Ok((
                        r.get(0)?,
                        "link",
                        link_key(&from, &relation, &to),
                    ))
                })
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?,
        };
        let mut enqueued = 0;
        for (_, kind, item) in &rows {
            let known: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM shipped WHERE url = ?1 AND kind = ?2 AND item = ?3)
                         OR EXISTS (SELECT 1 FROM outbox WHERE kind = ?2 AND item = ?3)",
                    params![url, kind, item],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if !known {
                tx.execute(
                    "INSERT INTO outbox (kind, item) VALUES (?1, ?2)",
                    params![kind, item],
                )
                .map_err(sql)?;
                enqueued += 1;
            }
        }
        tx.commit().map_err(sql)?;
        drop(conn);
        let looked = rows.len() as u64;
        let _ = self.backfill_left.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |n| Some(n.saturating_sub(looked)),
        );
        if enqueued > 0 {
            self.signal();
        }
        let last = rows.last().map(|r| r.0);
        let next = match (at, last) {
            (Backfill::Findings(_), Some(l)) if rows.len() == limit => Backfill::Findings(l),
            (Backfill::Findings(_), _) => Backfill::Links(i64::MIN),
            (Backfill::Links(_), Some(l)) if rows.len() == limit => Backfill::Links(l),
            _ => Backfill::Done,
        };
        Ok((next, enqueued))
    }

    fn enqueue(&self, conn: &Connection, kind: &str, item: &str) -> Result<(), String> {
        if self.outbox.is_some() {
            conn.execute(
                "INSERT INTO outbox (kind, item) VALUES (?1, ?2)",
                params![kind, item],
            )
            .map_err(sql)?;
        }
        Ok(())
    }

    fn signal(&self) {
        if let Some(s) = &self.outbox {
            s.notify_one();
        }
    }

    /// The oldest `limit` outbox rows, each with its finding or link as stored now.
    pub fn outbox_peek(&self, limit: usize) -> Result<Vec<Outgoing>, String> {
        let conn = self.conn();
        let rows: Vec<(i64, String, String, u32)> = conn
            .prepare("SELECT seq, kind, item, attempts FROM outbox ORDER BY seq LIMIT ?1")
            .map_err(sql)?
            .query_map([limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(sql)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql)?;
        let mut out = Vec::with_capacity(rows.len());
        for (seq, kind, item, attempts) in rows {
            let item = match kind.as_str() {
                "finding" => conn
                    .query_row(
                        &format!("SELECT {} FROM findings WHERE id = ?1", Self::COLUMNS),
                        [&item],
                        Self::row,
                    )
                    .optional()
                    .map_err(sql)?
                    .map_or(Item::Missing(item), Item::Finding),
                "link" => match serde_json::from_str::<(String, String, String)>(&item) {
                    Ok((from, relation, to)) => conn
                        .query_row(
                            "SELECT time FROM links WHERE from_id = ?1 AND to_id = ?2 AND relation = ?3",
                            params![from, to, relation],
                            |r| r.get::<_, f64>(0),
                        )
                        .optional()
                        .map_err(sql)?
                        .map_or(Item::Missing(item), |time| {
                            Item::Link(Link { from, to, relation }, time)
                        }),
                    Err(_) => Item::Missing(item),
                },
                _ => Item::Missing(format!("{kind} {item}")),
            };
            out.push(Outgoing {
                seq,
                item,
                attempts,
            });
        }
        Ok(out)
    }

    /// The remote has the row's item: it leaves the outbox, and `shipped` notes that this
    /// remote has it (both or neither).
    pub fn outbox_done(&self, seq: i64) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        if let Some(url) = &self.remote {
            tx.execute(
                "INSERT OR IGNORE INTO shipped (url, kind, item) SELECT ?2, kind, item FROM outbox WHERE seq = ?1",
                params![seq, url],
            )
            .map_err(sql)?;
        }
        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(())
    }

    /// Shipping the row failed: it stays, with the error and one more attempt counted.
    pub fn outbox_failed(&self, seq: i64, error: &str) -> Result<(), String> {
        self.conn()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1",
                params![seq, error],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// Rows waiting in the outbox, plus the findings and links the backfill has still to
    /// look at (each may have to be shipped).
    pub fn backlog(&self) -> Result<u64, String> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64 + self.backfill_left())
            .map_err(sql)
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
        let mut conn = self.conn();
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
        // The finding and its outbox row commit together or not at all.
        let tx = conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO findings (id, session, time, kind, title, server, tool, arguments, target, summary, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![f.id, f.session, f.time, f.kind, f.title, f.server, f.tool, js(&f.arguments), js(&f.target), f.summary, js(&f.data)],
        )
        .map_err(sql)?;
        self.enqueue(&tx, "finding", &f.id)?;
        tx.commit().map_err(sql)?;
        drop(conn);
        self.signal();
        Ok(f)
    }

    /// Links two existing findings (idempotent).
    pub fn link(&self, from: &str, to: &str, relation: &str) -> Result<Link, String> {
        let mut conn = self.conn();
        for (field, id) in [("from", from), ("to", to)] {
            let exists: Option<String> = conn
                .query_row(
                    "SELECT id FROM main.findings WHERE id = ?1 \
                     UNION ALL SELECT id FROM archive.findings WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if exists.is_none() {
                return Err(format!(
                    "invalid argument `{field}`: {id:?} (no finding has this id)"
                ));
            }
        }
        let tx = conn.transaction().map_err(sql)?;
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO links (from_id, to_id, relation, time) VALUES (?1, ?2, ?3, ?4)",
                params![from, to, relation, now()],
            )
            .map_err(sql)?;
        if added > 0 {
            let item = link_key(from, relation, to);
            self.enqueue(&tx, "link", &item)?;
        }
        tx.commit().map_err(sql)?;
        drop(conn);
        if added > 0 {
            self.signal();
        }
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
        // The store first, then the archive (findings moved there by age).
        let f = conn
            .query_row(
                &format!(
                    "SELECT {0} FROM main.findings WHERE id = ?1 \
                     UNION ALL SELECT {0} FROM archive.findings WHERE id = ?1 LIMIT 1",
                    Self::COLUMNS
                ),
                [id],
                Self::row,
            )
            .optional()
            .map_err(sql)?;
        let Some(f) = f else { return Ok(None) };
        let mut stmt = conn
            .prepare(
                "SELECT from_id, to_id, relation FROM (\
                   SELECT from_id, to_id, relation, time FROM main.links \
                   UNION SELECT from_id, to_id, relation, time FROM archive.links) \
                 WHERE from_id = ?1 OR to_id = ?1 ORDER BY time",
            )
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
        let (filter, args) = Self::filter(q);
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

    /// The `WHERE` clause of `q` (empty when it has no condition) and its parameters.
    fn filter(q: &Query) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
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
        (filter, args)
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
/// `hash_files`: the call reads files whose content is what it is about (static analysis,
/// saves): each file argument's SHA-256 is added (`sha256`, `sha256_b`), so findings about
/// one binary meet whatever its path.
pub fn target_of_call(arguments: &Value, hash_files: bool) -> Option<Value> {
    let mut t = serde_json::Map::new();
    for (key, name, hash) in [
        ("path", "binary", "sha256"),
        ("path_a", "binary", "sha256"),
        ("path_b", "binary_b", "sha256_b"),
    ] {
        if let Some(v) = arguments.get(key) {
            t.insert(name.into(), v.clone());
            // A quarantined file is named by its hash already.
            let quarantined = v
                .as_str()
                .and_then(|p| p.strip_prefix(mcp_common::roots::QUARANTINE_SCHEME))
                .filter(|sha| crate::quarantine::is_sha256(sha))
                .map(str::to_string);
            if hash_files
                && let Some(sha) = quarantined.or_else(|| v.as_str().and_then(sha256_of_file))
            {
                t.insert(hash.into(), sha.into());
            }
        }
    }
    for (key, name) in [("pid", "process"), ("source", "capture")] {
        if let Some(v) = arguments.get(key) {
            t.insert(name.into(), v.clone());
        }
    }
    (!t.is_empty()).then_some(Value::Object(t))
}

/// Files larger than this are not hashed for a target (a finding is recorded without it).
const MAX_HASHED: u64 = 4 << 30;

/// Hashes already computed, by path, valid while size and modification time are unchanged.
type HashCache = std::collections::HashMap<std::path::PathBuf, (u64, SystemTime, String)>;

/// The SHA-256 (hex) of a file, cached by path, size and modification time; `None` when
/// the file cannot be read (the call itself says why, if it matters).
pub fn sha256_of_file(path: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    static CACHE: std::sync::OnceLock<Mutex<HashCache>> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let path = std::path::PathBuf::from(path);
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_HASHED {
        return None;
    }
    let mtime = meta.modified().ok()?;
    if let Some((size, when, sha)) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&path)
        && *size == meta.len()
        && *when == mtime
    {
        return Some(sha.clone());
    }
    let mut file = std::fs::File::open(&path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha = mcp_common::bytes::to_hex(&hasher.finalize());
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() > 4096 {
        c.clear();
    }
    c.insert(path, (meta.len(), mtime, sha.clone()));
    Some(sha)
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
                target_of_call(&json!({"path": "/g/D2Client.dll"}), false),
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

    #[test]
    fn the_outbox_lists_findings_and_new_links_in_order() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("findings-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir)?;
        let plain = s.record("note", "before", None, None, None, None, None, None)?;
        assert_eq!(s.backlog()?, 0, "no outbox without a remote");
        let _signal = s.enable_outbox("http://a:8080");
        let a = s.record("note", "a", None, None, None, None, None, None)?;
        s.link(&a.id, &plain.id, "next_to")?;
        s.link(&a.id, &plain.id, "next_to")?;
        let rows = s.outbox_peek(10)?;
        assert_eq!(
            rows.len(),
            2,
            "a repeated link is not shipped twice: {rows:?}"
        );
        assert!(matches!(&rows[0].item, Item::Finding(f) if f.id == a.id));
        assert!(
            matches!(&rows[1].item, Item::Link(l, t) if l.to == plain.id && l.relation == "next_to" && *t > 0.0)
        );
        s.outbox_failed(rows[0].seq, "down")?;
        assert_eq!(s.outbox_peek(1)?[0].attempts, 1);
        s.outbox_done(rows[0].seq)?;
        assert_eq!(s.backlog()?, 1);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Runs the backfill to its end in steps of `limit`: (steps, enqueued).
    fn backfill(s: &Store, limit: usize) -> Result<(usize, usize), String> {
        s.backfill_begin()?;
        let (mut at, mut steps, mut enqueued) = (Backfill::default(), 0, 0);
        while at != Backfill::Done {
            let (next, n) = s.backfill_step(at, limit)?;
            (at, steps, enqueued) = (next, steps + 1, enqueued + n);
        }
        Ok((steps, enqueued))
    }

    #[test]
    fn the_backfill_enqueues_what_a_remote_never_had_once() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("findings-backfill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = {
            let s = Store::open(&dir)?;
            let a = s.record("note", "a", None, None, None, None, None, None)?;
            let b = s.record("note", "b", None, None, None, None, None, None)?;
            s.link(&b.id, &a.id, "about")?;
            (a, b)
        };
        let mut s = Store::open(&dir)?;
        let _signal = s.enable_outbox("http://a:8080");
        s.backfill_begin()?;
        assert_eq!(s.backlog()?, 3, "the backfill's rows count as waiting");
        let (mut at, mut steps) = (Backfill::default(), 0);
        while at != Backfill::Done {
            (at, _) = s.backfill_step(at, 1)?;
            steps += 1;
            assert!(steps < 10, "the backfill does not end");
        }
        assert_eq!(
            steps, 5,
            "one row per step, and an empty step per table end"
        );
        assert_eq!(s.backlog()?, 3);
        assert_eq!(backfill(&s, 64)?.1, 0, "what waits is not enqueued twice");
        let rows = s.outbox_peek(10)?;
        assert!(matches!(&rows[0].item, Item::Finding(f) if *f == a));
        assert!(matches!(&rows[1].item, Item::Finding(f) if f.id == b.id));
        assert!(
            matches!(&rows[2].item, Item::Link(l, _) if l.from == b.id && l.to == a.id && l.relation == "about")
        );
        for r in &rows {
            s.outbox_done(r.seq)?;
        }
        assert_eq!(s.backlog()?, 0);
        drop(s);
        // The same remote again: nothing; another one: everything, once.
        let mut s = Store::open(&dir)?;
        let _signal = s.enable_outbox("http://a:8080");
        assert_eq!(backfill(&s, 2)?.1, 0);
        assert_eq!(s.backlog()?, 0);
        let c = s.record("note", "c", None, None, None, None, None, None)?;
        assert_eq!(
            backfill(&s, 2)?.1,
            0,
            "recorded with the remote: waits already"
        );
        drop(s);
        let mut s = Store::open(&dir)?;
        let _signal = s.enable_outbox("http://b:8080");
        // c's row from before waits still (for whichever remote is configured): 3 more.
        assert_eq!(backfill(&s, 2)?, (3, 3));
        assert_eq!(backfill(&s, 2)?.1, 0);
        assert!(
            s.outbox_peek(10)?
                .iter()
                .any(|r| matches!(&r.item, Item::Finding(f) if f.id == c.id))
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn static_targets_carry_the_files_sha256() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("findings-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let f = dir.join("a.bin");
        std::fs::write(&f, b"abc").map_err(|e| e.to_string())?;
        let p = f.display().to_string();
        let t = target_of_call(&json!({"path": p, "pid": 7}), true).ok_or("no target")?;
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(t, json!({"binary": p, "sha256": abc, "process": 7}));
        // Changed content, new hash (the size differs, so the cached one is not used).
        std::fs::write(&f, b"abcd").map_err(|e| e.to_string())?;
        let t = target_of_call(&json!({"path_a": p, "path_b": "/nonexistent"}), true)
            .ok_or("no target")?;
        assert_ne!(t["sha256"], abc);
        assert_eq!(t["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(t["binary_b"], "/nonexistent");
        assert!(t.get("sha256_b").is_none());
        assert_eq!(
            target_of_call(&json!({"path": p}), false),
            Some(json!({"binary": p}))
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
