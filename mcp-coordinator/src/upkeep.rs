//! The findings store's upkeep on a schedule: a backup (with retention) and the archival of
//! old findings, each time in the low lane so that it never holds up analysis calls.

use crate::findings::Store;
use crate::lanes::{Lane, Lanes};
use std::sync::Arc;
use std::time::Duration;

/// What the schedule does (`--backup-every-s`, `--backup-keep`, `--archive-after-days`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Upkeep {
    /// How often a backup is written (`None`: only on demand, `findings_backup`).
    pub backup_every: Option<Duration>,
    /// Backups kept; older ones are deleted after each new one.
    pub keep: usize,
    /// Findings older than this move to the archive at each round (`None`: never).
    pub archive_after: Option<Duration>,
}

impl Default for Upkeep {
    fn default() -> Self {
        Self {
            backup_every: None,
            keep: 7,
            archive_after: None,
        }
    }
}

impl Upkeep {
    /// How often a round runs: the backup period, else hourly when only archival is on.
    fn period(&self) -> Option<Duration> {
        self.backup_every
            .or(self.archive_after.map(|_| Duration::from_secs(3600)))
    }

    /// Runs the rounds for as long as the process lives (nothing when neither is on).
    pub fn spawn(self, store: Arc<Store>, lanes: Arc<Lanes>) {
        let Some(period) = self.period() else { return };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _place = lanes
                    .enter(crate::lanes::COORDINATOR, Lane::Low, |_| {})
                    .await;
                let store = store.clone();
                let round = tokio::task::spawn_blocking(move || self.round(&store)).await;
                match round {
                    Ok(Ok(done)) => tracing::info!("{done}"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "findings upkeep failed"),
                    Err(e) => tracing::warn!(error = %e, "findings upkeep task failed"),
                }
            }
        });
    }

    /// One round: archive, then back up (so the backup holds the archive's new rows too).
    fn round(&self, store: &Store) -> Result<String, String> {
        let mut done = Vec::new();
        if let Some(age) = self.archive_after {
            let moved = store.archive_older(age.as_secs_f64())?;
            done.push(format!("{} findings archived", moved.findings));
        }
        if self.backup_every.is_some() {
            let b = store.backup(self.keep)?;
            done.push(format!("backup {} ({} findings)", b.path, b.findings));
        }
        Ok(done.join("; "))
    }
}
