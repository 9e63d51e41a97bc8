//! The hosts connected to the coordinator, so that a change in a child's tools or resources
//! (re-listed after `tools/list_changed`, `resources/list_changed` or a restart) reaches
//! every one of them.

use rmcp::service::{Peer, RoleServer};
use std::sync::Mutex;

#[derive(Clone, Copy)]
enum Change {
    Tools,
    Resources,
}

#[derive(Debug, Default)]
pub struct Hosts {
    peers: Mutex<Vec<Peer<RoleServer>>>,
}

impl Hosts {
    pub fn add(&self, peer: Peer<RoleServer>) {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(peer);
    }

    /// Sends `notifications/tools/list_changed` to every host; forgets those that are gone.
    pub async fn tools_changed(&self) {
        self.notify_all(Change::Tools).await;
    }

    /// Sends `notifications/resources/list_changed` to every host; forgets those that are
    /// gone.
    pub async fn resources_changed(&self) {
        self.notify_all(Change::Resources).await;
    }

    async fn notify_all(&self, change: Change) {
        let peers: Vec<Peer<RoleServer>> =
            self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut alive = Vec::new();
        for p in peers {
            let sent = match change {
                Change::Tools => p.notify_tool_list_changed().await,
                Change::Resources => p.notify_resource_list_changed().await,
            };
            if sent.is_ok() {
                alive.push(p);
            }
        }
        *self.peers.lock().unwrap_or_else(|p| p.into_inner()) = alive;
    }

    pub fn count(&self) -> usize {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
