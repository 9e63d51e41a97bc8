//! A child's progress, passed on to the host that asked for it.
//!
//! The child is given a token of the coordinator's own for each call (rmcp's), mapped back to
//! the host's peer and token here, so two hosts using the same token never see each other's
//! progress. rmcp hands every notification to a task of its own, so a call's response can be
//! delivered before the tasks carrying its progress have run. [`Counting`] therefore counts
//! each progress notification as the transport reads it, which is strictly before the
//! response on the same stream; a call that ends waits until its handler tasks have dealt with
//! that many, so the host sees every progress before the result, and none after.

use rmcp::model::{
    JsonRpcMessage, JsonRpcNotification, ProgressNotificationParam, ProgressToken,
    ServerNotification,
};
use rmcp::service::{Peer, RoleClient, RoleServer, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a finished call waits for its progress to be passed on. Handler tasks are
/// already spawned by then; this only bounds a runtime that never runs them.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// Every open route, by the token the coordinator gave the child.
#[derive(Clone, Default)]
pub struct Routes(Arc<Mutex<HashMap<ProgressToken, Arc<Entry>>>>);

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.0.lock().map_or(0, |m| m.len());
        write!(f, "Routes({open} open)")
    }
}

struct Entry {
    /// Notifications read by the transport and not yet dealt with by a handler.
    pending: AtomicI64,
    settled: tokio::sync::Notify,
    /// Handler tasks may run out of order: only increasing progress is passed on, one at a time.
    route: tokio::sync::Mutex<Route>,
}

struct Route {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    last: f64,
}

impl Routes {
    fn get(&self, token: &ProgressToken) -> Option<Arc<Entry>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    /// Sends the child's progress for `child_token` to `host` under the host's `token`.
    pub fn open(&self, child_token: &ProgressToken, host: Peer<RoleServer>, token: ProgressToken) {
        let entry = Entry {
            pending: AtomicI64::new(0),
            settled: tokio::sync::Notify::new(),
            route: tokio::sync::Mutex::new(Route {
                peer: host,
                token,
                last: f64::NEG_INFINITY,
            }),
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(child_token.clone(), Arc::new(entry));
    }

    /// The call that opened this route is over: waits until every progress the transport read
    /// for it was dealt with, then forgets the route.
    pub async fn close(&self, child_token: &ProgressToken) {
        if let Some(entry) = self.get(child_token) {
            let settled = async {
                loop {
                    let woken = entry.settled.notified();
                    if entry.pending.load(Ordering::SeqCst) <= 0 {
                        break;
                    }
                    woken.await;
                }
            };
            if tokio::time::timeout(SETTLE_LIMIT, settled).await.is_err() {
                tracing::warn!("progress of a finished call not passed on within {SETTLE_LIMIT:?}");
            }
        }
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(child_token);
    }

    /// The route's owner: [`RouteGuard::close`] ends it after its progress was passed on;
    /// dropped instead (the host cancelled the call), it ends at once, so no progress of a
    /// cancelled call reaches the host.
    pub fn guard(&self, child_token: &ProgressToken) -> RouteGuard {
        RouteGuard {
            routes: self.clone(),
            token: Some(child_token.clone()),
        }
    }

    /// Forgets a route now, without waiting for its progress.
    fn forget(&self, child_token: &ProgressToken) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(child_token);
    }

    /// A handler task's part: passes the progress on when it advances.
    pub async fn forward(&self, mut params: ProgressNotificationParam) {
        let Some(entry) = self.get(&params.progress_token) else {
            return;
        };
        {
            let mut r = entry.route.lock().await;
            if params.progress > r.last {
                r.last = params.progress;
                params.progress_token = r.token.clone();
                let _ = r.peer.notify_progress(params).await;
            }
        }
        entry.pending.fetch_sub(1, Ordering::SeqCst);
        entry.settled.notify_waiters();
    }

    /// The transport's part: one more progress on its way to a handler.
    fn arrived(&self, token: &ProgressToken) {
        if let Some(entry) = self.get(token) {
            entry.pending.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Ends one route: awaited by a call that finished, dropped by one the host cancelled.
pub struct RouteGuard {
    routes: Routes,
    token: Option<ProgressToken>,
}

impl RouteGuard {
    /// The call is over: its progress is passed on, then the route ends.
    pub async fn close(mut self) {
        if let Some(token) = self.token.take() {
            self.routes.close(&token).await;
        }
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.routes.forget(&token);
        }
    }
}

/// A child's transport that counts progress notifications as they are read.
pub struct Counting<T> {
    pub inner: T,
    pub routes: Routes,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Counting<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let msg = self.inner.receive().await;
        if let Some(JsonRpcMessage::Notification(JsonRpcNotification {
            notification: ServerNotification::ProgressNotification(n),
            ..
        })) = &msg
        {
            self.routes.arrived(&n.params.progress_token);
        }
        msg
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
