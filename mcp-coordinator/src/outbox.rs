//! Ships the findings outbox to the remote graph: a background task that posts the schema
//! once, then sends the outbox rows in the order they were recorded, deleting each only after
//! the remote confirmed it. A failure keeps the row and waits (exponential backoff) before
//! trying again, so nothing is lost while the remote is down or the coordinator restarts;
//! every send is an upsert keyed by id, so a row sent twice (an answer lost after the
//! commit) is still one node.
//!
//! Before shipping, the task catches up (`findings::Backfill`): in batches, it enqueues
//! every finding and link this remote URL has not confirmed and that is not waiting, such as
//! those recorded while the coordinator ran without `--findings-url`.

use crate::dgraph::{Dgraph, DgraphError};
use crate::findings::{Backfill, Item, Outgoing, Store, blocking, now};
use schemars::JsonSchema;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Rows read from the outbox at once.
const BATCH: usize = 64;

/// Findings (or links) the backfill looks at in one transaction.
const BACKFILL_BATCH: usize = 256;

/// What `findings_status` reports about the remote graph.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct RemoteStatus {
    /// `dgraph`.
    pub kind: String,
    pub url: String,
    /// Whether the schema was posted to /alter (done once per start, before shipping).
    pub schema_applied: bool,
    /// Findings and links shipped since the coordinator started.
    pub shipped: u64,
    /// Failed attempts since the coordinator started.
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last row was shipped (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_shipped: Option<f64>,
    /// Current wait between attempts, in seconds (0 while the remote answers).
    pub backoff_s: f64,
    /// Findings and links the start-up backfill has still to look at (each is enqueued
    /// unless this remote has it or it waits already); counted in the backlog.
    pub backfill: u64,
}

pub struct Shipper {
    store: Arc<Store>,
    remote: Arc<Dgraph>,
    signal: Arc<Notify>,
    min_backoff: Duration,
    max_backoff: Duration,
    status: Mutex<RemoteStatus>,
}

impl Shipper {
    /// `signal`: from `Store::enable_outbox`, fired after each recorded finding or link.
    pub fn new(store: Arc<Store>, remote: Arc<Dgraph>, signal: Arc<Notify>) -> Arc<Self> {
        let status = RemoteStatus {
            kind: "dgraph".into(),
            url: remote.url().to_string(),
            ..Default::default()
        };
        Arc::new(Self {
            store,
            remote,
            signal,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            status: Mutex::new(status),
        })
    }

    pub fn remote(&self) -> &Arc<Dgraph> {
        &self.remote
    }

    pub fn status(&self) -> RemoteStatus {
        let mut s = self.lock().clone();
        s.backfill = self.store.backfill_left();
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RemoteStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the background task (it runs as long as the process).
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run().await })
    }

    fn failed(&self, error: String, backoff: Duration) {
        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "findings not shipped to Dgraph");
        let mut s = self.lock();
        s.failures += 1;
        s.last_error = Some(error);
        s.backoff_s = backoff.as_secs_f64();
    }

    async fn ship(&self, row: &Outgoing) -> Result<(), String> {
        match &row.item {
            Item::Finding(f) => self.remote.upsert_finding(f).await,
            Item::Link(l, time) => self.remote.upsert_link(l, *time).await,
            Item::Missing(what) => {
                tracing::warn!(%what, "an outbox row names nothing the store still has: dropped");
                return Ok(());
            }
        }
        .map_err(|e| e.to_string())
    }

    /// Enqueues, in batches, what this remote has never had; a failure of the store
    /// stops it until the next start.
    async fn backfill(&self) {
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.backfill_begin()).await {
            tracing::warn!(error = %e, "the outbox backfill did not start");
            self.lock().last_error = Some(format!("backfilling the outbox: {e}"));
            return;
        }
        let (mut at, mut enqueued) = (Backfill::default(), 0);
        while at != Backfill::Done {
            let store = self.store.clone();
            match blocking(move || store.backfill_step(at, BACKFILL_BATCH)).await {
                Ok((next, n)) => (at, enqueued) = (next, enqueued + n),
                Err(e) => {
                    self.store.backfill_abandon();
                    tracing::warn!(error = %e, "the outbox backfill stopped");
                    self.lock().last_error = Some(format!("backfilling the outbox: {e}"));
                    return;
                }
            }
            tokio::task::yield_now().await;
        }
        if enqueued > 0 {
            tracing::info!(
                enqueued,
                url = self.remote.url(),
                "findings and links this remote never had are queued for it"
            );
        }
    }

    async fn run(self: Arc<Self>) {
        self.backfill().await;
        let mut backoff = self.min_backoff;
        let schema = crate::dgraph::schema();
        let mut schema_done = false;
        loop {
            if !schema_done {
                match self.remote.alter(&schema).await {
                    Ok(()) => {
                        schema_done = true;
                        self.lock().schema_applied = true;
                    }
                    Err(e @ DgraphError::Unreachable(_)) => {
                        self.failed(format!("posting the schema: {e}"), backoff);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                        continue;
                    }
                    Err(e) => {
                        // Refused (a user without schema rights, say): the schema may be
                        // there already; shipping goes on and tells if it is not.
                        schema_done = true;
                        tracing::warn!(error = %e, "the findings schema was not applied");
                        self.lock().last_error = Some(format!("posting the schema: {e}"));
                    }
                }
            }
            let store = self.store.clone();
            let rows = match blocking(move || store.outbox_peek(BATCH)).await {
                Ok(r) => r,
                Err(e) => {
                    self.failed(e, backoff);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                    continue;
                }
            };
            if rows.is_empty() {
                // Woken by a new row; the timeout is only a safety net.
                let _ = tokio::time::timeout(Duration::from_secs(5), self.signal.notified()).await;
                continue;
            }
            for row in rows {
                match self.ship(&row).await {
                    Ok(()) => {
                        let store = self.store.clone();
                        let seq = row.seq;
                        if let Err(e) = blocking(move || store.outbox_done(seq)).await {
                            // Shipped but still listed: sent again later, an upsert again.
                            tracing::warn!(error = %e, "an outbox row could not be removed");
                        }
                        backoff = self.min_backoff;
                        let mut s = self.lock();
                        s.shipped += 1;
                        s.last_shipped = Some(now());
                        s.backoff_s = 0.0;
                    }
                    Err(e) => {
                        let store = self.store.clone();
                        let (seq, err) = (row.seq, e.clone());
                        let _ = blocking(move || store.outbox_failed(seq, &err)).await;
                        self.failed(e, backoff);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                        break;
                    }
                }
            }
        }
    }
}
