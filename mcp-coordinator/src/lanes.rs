//! Priority lanes: every forwarded tool call waits for a place in its server's lane (high,
//! medium, low), each lane with its own limit on calls running at once, so slow low-priority
//! work (reports, archives) never holds up a memory read. Each server has its own three
//! lanes: a server that stops answering fills only its own, never another's. Places are
//! given in arrival order (tokio's semaphore is fair); a call waiting is told how many are
//! ahead of it, and a call dropped while it waits (the host cancelled, its timeout passed)
//! leaves the queue at once.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// A call's priority (the design's: memory analysis and security scans high; static and
/// behavioural analysis medium; report generation and archival low).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    High,
    Medium,
    Low,
}

impl Lane {
    pub const ALL: [Lane; 3] = [Lane::High, Lane::Medium, Lane::Low];

    pub fn name(self) -> &'static str {
        match self {
            Lane::High => "high",
            Lane::Medium => "medium",
            Lane::Low => "low",
        }
    }
}

/// The server name of the coordinator's own low-lane work (reports, backups, archival).
pub const COORDINATOR: &str = "coordinator";

/// How many calls each lane runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl Default for Limits {
    /// High is wide (memory reads are short and an agent waits on them), low is narrow
    /// (reports and archives are long and nobody waits on them).
    fn default() -> Self {
        Self {
            high: 16,
            medium: 8,
            low: 2,
        }
    }
}

impl Limits {
    fn of(&self, lane: Lane) -> usize {
        match lane {
            Lane::High => self.high,
            Lane::Medium => self.medium,
            Lane::Low => self.low,
        }
    }
}

/// One lane's state as `servers_status` and `/metrics` show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LaneStatus {
    /// The server (a child's name; `coordinator` for its own reports and archival).
    pub server: String,
    pub lane: Lane,
    /// Calls it runs at once.
    pub limit: usize,
    pub running: usize,
    /// Calls waiting for a place now.
    pub queued: usize,
    /// Calls that got a place since the start, and how many of them had to wait.
    pub started: u64,
    pub waited: u64,
    /// Total and longest wait for a place, in seconds.
    pub wait_s_total: f64,
    pub wait_s_max: f64,
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    /// Tickets of the calls waiting, oldest first.
    waiting: VecDeque<u64>,
    started: u64,
    waited: u64,
    wait_total: Duration,
    wait_max: Duration,
}

struct LaneState {
    limit: usize,
    places: Arc<Semaphore>,
    queue: Mutex<Queue>,
    /// Bumped whenever a waiting call leaves the queue: the others' positions moved.
    moved: watch::Sender<u64>,
}

impl LaneState {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ahead_of(&self, ticket: u64) -> usize {
        self.queue()
            .waiting
            .iter()
            .take_while(|t| **t != ticket)
            .count()
    }
}

/// The lanes a coordinator process shares across its sessions: three per server, made
/// when the server's first call comes.
pub struct Lanes {
    limits: Limits,
    servers: Mutex<std::collections::BTreeMap<String, Arc<[LaneState; 3]>>>,
}

/// A call's place in its lane, given back when dropped.
pub struct Place {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Takes a waiting call's ticket out of the queue however its wait ends.
struct Leave<'a> {
    lane: &'a LaneState,
    ticket: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.lane.queue().waiting.retain(|t| *t != self.ticket);
        self.lane.moved.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Lanes {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            servers: Mutex::default(),
        }
    }

    /// The lanes of `server`, made on first use.
    fn of(&self, server: &str) -> Arc<[LaneState; 3]> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .entry(server.to_string())
            .or_insert_with(|| {
                Arc::new(Lane::ALL.map(|l| {
                    let limit = self.limits.of(l).max(1);
                    LaneState {
                        limit,
                        places: Arc::new(Semaphore::new(limit)),
                        queue: Mutex::default(),
                        moved: watch::channel(0).0,
                    }
                }))
            })
            .clone()
    }

    /// Waits for a place in `server`'s `lane`. When the call has to wait, `queued(ahead)` is
    /// called at once and again each time the number of calls ahead of it changes.
    pub async fn enter(&self, server: &str, lane: Lane, mut queued: impl FnMut(usize)) -> Place {
        let lanes = self.of(server);
        let state = &lanes[lane as usize];
        let started = Instant::now();
        // With calls waiting, no place is free: a new call never overtakes them.
        if let Ok(permit) = state.places.clone().try_acquire_owned() {
            state.queue().started += 1;
            return Place {
                _permit: Some(permit),
            };
        }
        let ticket = {
            let mut q = state.queue();
            q.next_ticket += 1;
            let t = q.next_ticket;
            q.waiting.push_back(t);
            t
        };
        let leave = Leave {
            lane: state,
            ticket,
        };
        let mut moved = state.moved.subscribe();
        let acquire = state.places.clone().acquire_owned();
        tokio::pin!(acquire);
        let mut told = usize::MAX;
        let permit = loop {
            let ahead = state.ahead_of(ticket);
            if ahead != told {
                told = ahead;
                queued(ahead);
            }
            // The queue's moves first: a call is told it is next before it starts.
            tokio::select! {
                biased;
                _ = moved.changed() => {}
                p = &mut acquire => break p,
            }
        };
        drop(leave);
        let waited = started.elapsed();
        let mut q = state.queue();
        q.started += 1;
        q.waited += 1;
        q.wait_total += waited;
        q.wait_max = q.wait_max.max(waited);
        drop(q);
        // The semaphore is never closed; were it, the call would run outside the limit
        // rather than fail.
        Place {
            _permit: permit.ok(),
        }
    }

    /// How many calls wait in `server`'s `lane` now.
    pub fn queued(&self, server: &str, lane: Lane) -> usize {
        self.of(server)[lane as usize].queue().waiting.len()
    }

    /// Every lane of every server that has had a call, by server then lane.
    pub fn status(&self) -> Vec<LaneStatus> {
        let servers: Vec<(String, Arc<[LaneState; 3]>)> = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        servers
            .iter()
            .flat_map(|(server, lanes)| Lane::ALL.iter().map(move |&lane| (server, lanes, lane)))
            .map(|(server, lanes, lane)| {
                let s = &lanes[lane as usize];
                let q = s.queue();
                LaneStatus {
                    server: server.clone(),
                    lane,
                    limit: s.limit,
                    running: s.limit - s.places.available_permits(),
                    queued: q.waiting.len(),
                    started: q.started,
                    waited: q.waited,
                    wait_s_total: q.wait_total.as_secs_f64(),
                    wait_s_max: q.wait_max.as_secs_f64(),
                }
            })
            .collect()
    }
}

impl Default for Lanes {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_lane_queues_in_order_and_others_stay_free() {
        let lanes = Arc::new(Lanes::new(Limits {
            high: 1,
            medium: 1,
            low: 1,
        }));
        let first = lanes.enter("s", Lane::Low, |_| {}).await;
        // Two more low calls wait, told their places.
        let told = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..2 {
            let (them, told) = (lanes.clone(), told.clone());
            waiters.push(tokio::spawn(async move {
                let _p = them
                    .enter("s", Lane::Low, |ahead| {
                        told.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((n, ahead))
                    })
                    .await;
            }));
            while lanes.queued("s", Lane::Low) <= n {
                tokio::task::yield_now().await;
            }
        }
        // The high lane is free while low is full.
        let high = lanes
            .enter("s", Lane::High, |_| panic!("high waited"))
            .await;
        drop(high);
        assert_eq!(lanes.status()[2].queued, 2);
        // Another server's low lane is its own.
        let other = lanes
            .enter("t", Lane::Low, |_| panic!("t waited behind s"))
            .await;
        drop(other);
        drop(first);
        for w in waiters {
            w.await
                .map_err(|e| e.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let told = told.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The second was told 1 ahead, then 0 when the first got its place.
        assert!(told.contains(&(0, 0)), "{told:?}");
        assert!(told.contains(&(1, 1)), "{told:?}");
        assert!(told.contains(&(1, 0)), "{told:?}");
        let low = &lanes.status()[2];
        assert_eq!(
            (low.started, low.waited, low.queued, low.running),
            (3, 2, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_call_dropped_while_queued_leaves_the_queue() {
        let lanes = Arc::new(Lanes::new(Limits {
            high: 1,
            medium: 1,
            low: 1,
        }));
        let held = lanes.enter("s", Lane::Medium, |_| {}).await;
        let waiting = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes.enter("s", Lane::Medium, |_| {}).await;
            })
        };
        while lanes.queued("s", Lane::Medium) == 0 {
            tokio::task::yield_now().await;
        }
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(lanes.queued("s", Lane::Medium), 0);
        drop(held);
        // The place is free again for the next call.
        let _again = lanes.enter("s", Lane::Medium, |_| panic!("waited")).await;
    }
}
