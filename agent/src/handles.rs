//! The handles the C side holds: a number (shown to C as an opaque pointer) looked up on every
//! call, so a closed, double-closed or made-up handle is refused instead of used.
use crate::agent::Agent;
use crate::code::{Failure, PeersyncCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

fn table() -> &'static Mutex<HashMap<usize, Arc<Agent>>> {
    static TABLE: OnceLock<Mutex<HashMap<usize, Arc<Agent>>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Numbers are never reused, so a stale handle never reaches a newer agent. They start far
/// from 0 and step by 8 so that they look like (aligned, non-NULL) pointers to C.
static NEXT: AtomicUsize = AtomicUsize::new(0x1000);

/// Registers `agent`; returns its handle.
pub fn add(agent: Agent) -> usize {
    let id = NEXT.fetch_add(8, Ordering::Relaxed);
    table().lock().unwrap_or_else(|p| p.into_inner()).insert(id, Arc::new(agent));
    id
}

/// The agent of handle `id` (it stays alive while the caller holds it, even if closed meanwhile).
pub fn get(id: usize) -> Result<Arc<Agent>, Failure> {
    table().lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned().ok_or_else(closed)
}

/// Forgets handle `id`; returns its agent (freed once calls in flight on it return).
pub fn remove(id: usize) -> Result<Arc<Agent>, Failure> {
    table().lock().unwrap_or_else(|p| p.into_inner()).remove(&id).ok_or_else(closed)
}

fn closed() -> Failure {
    Failure::new(PeersyncCode::PeersyncClosed, "the handle is NULL, closed, or not one peersync_agent_open made")
}
