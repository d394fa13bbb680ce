//! Whom and when to sync: the --peer and configured peers (re-read every 2 s), every --interval, soon after local writes (PRAGMA data_version polling), with backoff per unreachable peer.
use crate::backoff::Backoff;
use crate::error::Error;
use crate::shutdown::Shutdown;
use crate::sync::Syncer;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct Schedule {
    /// Sync with every peer this often even when nothing was written here.
    pub interval: Duration,
    /// How often to look for local writes.
    pub poll: Duration,
    /// Wait this long after a write before syncing, to catch the writes that follow it.
    pub debounce: Duration,
    /// Compare content with each peer (after a sync) at most this often.
    pub audit_every: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// How often a running sidecar re-reads the configured peers (`peersync peers add|remove`, pairing).
pub const PEERS_REREAD: Duration = Duration::from_secs(2);

/// Wakes the sync loops now (the page's *sync now*), also a loop waiting out its backoff after
/// failures, which local writes do not wake.
#[derive(Clone)]
pub struct Wake(watch::Sender<u64>);

impl Default for Wake {
    fn default() -> Wake {
        Wake(watch::channel(0u64).0)
    }
}

impl Wake {
    /// Every peer loop syncs soon.
    pub fn now(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// Starts the write watcher and one sync loop per peer: each of `fixed` (`--peer`) and each
/// peer configured in the database, re-read every [`PEERS_REREAD`]: a loop starts for a peer
/// added since, and stops for one removed. `wake` wakes them all.
pub fn start(
    syncer: Arc<Syncer>,
    fixed: Vec<String>,
    s: Schedule,
    wake: Wake,
    shutdown: Shutdown,
) -> Vec<JoinHandle<()>> {
    let (tx, rx) = watch::channel(0u64);
    let mut tasks = Vec::new();
    let (path, sd, poll) = (syncer.db.path().to_path_buf(), shutdown.clone(), s.poll);
    tasks.push(tokio::task::spawn_blocking(move || watch_writes(path, poll, tx, sd)));
    tasks.push(tokio::spawn(supervise(syncer, fixed, s, rx, wake, shutdown)));
    tasks
}

/// Keeps one loop per peer: the fixed ones, and the configured ones as they come and go.
/// (It holds `wake`, so that the loops' receivers never see their sender gone.)
async fn supervise(
    syncer: Arc<Syncer>,
    fixed: Vec<String>,
    s: Schedule,
    rx: watch::Receiver<u64>,
    wake: Wake,
    stop: Shutdown,
) {
    let mut loops: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        let configured = syncer.db.run(|c| Ok(peersync_core::configured_peers(c)?)).await;
        let wanted: BTreeSet<String> = match configured {
            Ok(list) => fixed.iter().cloned().chain(list.into_iter().map(|p| p.url)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the configured peers; keeping the current ones");
                loops.keys().cloned().collect()
            }
        };
        loops.retain(|url, task| {
            let keep = wanted.contains(url);
            if !keep {
                tracing::info!(peer = %url, "peer removed; no longer syncing with it");
                task.abort();
            }
            keep
        });
        for url in wanted {
            if let std::collections::hash_map::Entry::Vacant(e) = loops.entry(url) {
                tracing::info!(peer = %e.key(), "syncing with peer");
                let url = e.key().clone();
                let signals = (rx.clone(), wake.0.subscribe());
                e.insert(tokio::spawn(peer_loop(syncer.clone(), url, s.clone(), signals, stop.clone())));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PEERS_REREAD) => {}
            _ = stop.wait() => break,
        }
    }
    for (_, task) in loops {
        let _ = task.await;
    }
}

/// `signals`: local writes (not heeded while retrying after failures), and *sync now* (always).
async fn peer_loop(
    syncer: Arc<Syncer>,
    url: String,
    s: Schedule,
    signals: (watch::Receiver<u64>, watch::Receiver<u64>),
    stop: Shutdown,
) {
    let (mut writes, mut asked) = signals;
    let mut backoff = Backoff::new(s.backoff_base, s.backoff_max);
    let mut wait = Duration::ZERO;
    let mut audited: Option<std::time::Instant> = None;
    loop {
        let retrying = backoff.failures() > 0;
        let by_write = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            r = writes.changed(), if !retrying => r.is_ok(),
            r = asked.changed() => r.is_ok(),
            _ = stop.wait() => return,
        };
        if by_write {
            tokio::select! {
                _ = tokio::time::sleep(s.debounce) => {}
                _ = stop.wait() => return,
            }
            writes.borrow_and_update();
        }
        let now = crate::auth::now_secs();
        match syncer.sync(&url, &stop, &()).await {
            Ok(r) => {
                backoff.reset();
                wait = s.interval;
                for h in &r.held_there {
                    tracing::warn!(peer = %url, origin = %h.device_id, version = h.version, reason = %h.reason, "the peer holds these changes back: {}", h.detail);
                }
                syncer.metrics.peer_ok(&url, &r.peer_device, crate::auth::now_secs(), r.held_there.clone());
                syncer.note(&url, Ok(&r)).await;
                if audited.is_none_or(|t| t.elapsed() >= s.audit_every) {
                    audited = Some(std::time::Instant::now());
                    syncer.audit(&url).await;
                }
                if r.sent + r.received > 0 || r.conflicts > 0 {
                    tracing::info!(peer = %url, device = %r.peer_device, sent = r.sent, received = r.received, conflicts = r.conflicts, "synced");
                } else {
                    tracing::debug!(peer = %url, "in sync");
                }
            }
            Err(Error::ShuttingDown) => return,
            Err(e) => {
                wait = backoff.next_delay();
                syncer.metrics.error(e.kind());
                syncer.metrics.peer_failed(&url, now, e.to_string());
                syncer.note(&url, Err(&e)).await;
                tracing::warn!(peer = %url, error = %e, retry_in_ms = wait.as_millis() as u64, failures = backoff.failures(), "sync failed");
            }
        }
        if stop.is_triggered() {
            return;
        }
    }
}

/// Polls `PRAGMA data_version` on its own connection; when another connection committed
/// and the log grew or holds unsealed writes, wakes the peer loops.
fn watch_writes(path: PathBuf, poll: Duration, tx: watch::Sender<u64>, stop: Shutdown) {
    let conn = match crate::db::open(&path, false) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the database for writes; syncing on the interval only");
            return;
        }
    };
    let probe = |c: &rusqlite::Connection| -> crate::error::Result<(i64, (i64, bool))> {
        let dv: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok((dv, peersync_core::log_tail(c)?))
    };
    let Ok((mut version, mut tail)) = probe(&conn) else {
        return;
    };
    while !stop.is_triggered() {
        std::thread::sleep(poll);
        let Ok(dv) = conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)) else {
            continue;
        };
        if dv == version {
            continue;
        }
        version = dv;
        let Ok((_, now)) = probe(&conn) else { continue };
        if now != tail && (now.0 != tail.0 || now.1) {
            tracing::debug!(log_tail = now.0, unsealed = now.1, "database changed; syncing soon");
            tx.send_modify(|n| *n += 1);
        }
        tail = now;
    }
}
