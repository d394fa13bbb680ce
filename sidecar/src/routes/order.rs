//! Pushes from one peer applied in the order they continue each other: a sender keeps two
//! pages in flight, and the second waits here while the first, which it builds on, applies.
use peersync_core::{Batch, Vector};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The longest a push waits for an earlier one from the same peer; after that it applies
/// anyway (and what it cannot take yet is deferred, as always).
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct PushOrder {
    /// By peer device id (trusted peers only: the caller is known once its signature checks).
    peers: Mutex<HashMap<String, Peer>>,
    changed: Notify,
}

#[derive(Default)]
struct Peer {
    /// The pushes from this peer being handled now, numbered as they came.
    in_flight: BTreeSet<u64>,
    next: u64,
    /// The vector this database reported after the peer's last push.
    held: Option<Vector>,
}

/// One push being handled; dropping it (done, failed or cut off) lets the next one go.
pub struct Turn {
    order: Arc<PushOrder>,
    peer: String,
    number: u64,
}

impl PushOrder {
    /// Counts a push from `peer` as in flight, from as soon as its sender is known.
    pub fn enter(self: &Arc<Self>, peer: &str) -> Turn {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.entry(peer.to_string()).or_default();
        let number = p.next;
        p.next += 1;
        p.in_flight.insert(number);
        Turn { order: self.clone(), peer: peer.to_string(), number }
    }

    /// Whether push `number`, of `batch`, may apply: it is the oldest from the peer still in
    /// flight (a push only ever waits for older ones), or it continues what this database
    /// held after the peer's last push (each origin's first change at most one past it).
    fn ready(&self, peer: &str, number: u64, batch: &Batch) -> bool {
        if batch.changes.is_empty() {
            return true;
        }
        let peers = self.peers.lock().unwrap();
        let Some(p) = peers.get(peer) else { return true };
        if p.in_flight.first().is_none_or(|&oldest| oldest == number) {
            return true;
        }
        let Some(held) = &p.held else { return false };
        let mut seen: Vec<&str> = Vec::new();
        for e in &batch.changes {
            if seen.contains(&&*e.device_id) {
                continue;
            }
            seen.push(&e.device_id);
            if e.version > held.get(&*e.device_id).copied().unwrap_or(0) + 1 {
                return false;
            }
        }
        true
    }
}

impl Turn {
    /// Waits until `batch` can apply: the pushes it builds on have applied, or it is the
    /// oldest from the peer still in flight (or [`MAX_WAIT`] passed).
    pub async fn wait(&self, batch: &Batch) {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let changed = self.order.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.order.ready(&self.peer, self.number, batch) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Records the vector this database reported after applying the push.
    pub fn applied(&self, vector: &Vector) {
        if let Some(p) = self.order.peers.lock().unwrap().get_mut(&self.peer) {
            p.held = Some(vector.clone());
        }
        self.order.changed.notify_waiters();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut peers = self.order.peers.lock().unwrap();
        if let Some(p) = peers.get_mut(&self.peer) {
            p.in_flight.remove(&self.number);
        }
        drop(peers);
        self.order.changed.notify_waiters();
    }
}
