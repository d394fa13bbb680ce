//! One database opened by the app's linked peersync: opening it with the device key, one sync
//! with a peer (push, then pull, paged, through the sidecar's own `Syncer`), status,
//! conflicts, resolving, pairing by code, and cancelling a call in flight from another thread.
use crate::code::{Failure, PeersyncCode};
use ed25519_dalek::SigningKey;
use peersync::audit::Audits;
use peersync::client::{normalize_url, Client};
use peersync::db::Db;
use peersync::keys::public_hex;
use peersync::metrics::Metrics;
use peersync::shutdown::Shutdown;
use peersync::sync::Syncer;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Most changes per page (one request, one transaction); pages adapt below it (`PageSize`).
const PAGE: i64 = 10_000;
/// Compaction steps after each successful sync (each at most 2,000 versions of one origin).
const COMPACT_STEPS: i64 = 25;
/// Give up on a peer's reply after this long (a phone's network comes and goes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// After a cancel, how long the page in flight may take to finish before the call returns
/// anyway (the page is then abandoned: the peer applies it or not, atomically either way).
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// An open database: calls on one agent run one at a time; [`Agent::cancel`] never waits.
pub struct Agent {
    inner: Mutex<Inner>,
    /// The stop signal of the call in flight, if one runs.
    running: Mutex<Option<Shutdown>>,
    /// Closed: calls still waiting for their turn return `PEERSYNC_CLOSED`.
    closed: AtomicBool,
}

struct Inner {
    rt: tokio::runtime::Runtime,
    db: Db,
    key: Arc<SigningKey>,
    device_id: String,
}

/// A mutex whose holder panicked is still usable: every call leaves the database consistent
/// (each write is its own transaction) and the panic was reported as `PEERSYNC_INTERNAL`.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Agent {
    /// Opens the database at `path` (it must exist) with the device key `key_bytes`.
    ///
    /// A database without peersync's tables gets them (`sync_init`); one whose device has
    /// no key pair yet takes this key's public key as its own. A database whose device has
    /// another public key is refused (`PEERSYNC_KEY`) and left as it was.
    pub fn open(path: &Path, key_bytes: &[u8]) -> Result<Agent, Failure> {
        let key = crate::key::parse(key_bytes)?;
        if !path.is_file() {
            return Err(Failure::new(
                PeersyncCode::PeersyncDatabase,
                format!("database {} does not exist (the app creates it and its tables first)", path.display()),
            ));
        }
        let conn = peersync::db::open(path, false)?;
        // The key is checked against the record before anything is written.
        if let Ok(id) = peersync_core::device_id(&conn) {
            let row = peersync_core::device(&conn, &id)?;
            if let Some(pk) = row.and_then(|r| r.public_key) {
                if pk != public_hex(&key) {
                    return Err(Failure::new(
                        PeersyncCode::PeersyncKey,
                        format!(
                            "this key (public key {}) is not this database's: its device {id} has public key {pk}",
                            public_hex(&key)
                        ),
                    ));
                }
            }
        }
        let device_id = peersync_core::init(&conn)?;
        let recorded = peersync_core::device(&conn, &device_id)?.and_then(|r| r.public_key);
        if recorded.is_none() {
            peersync_core::set_identity(&conn, None, &public_hex(&key))?;
        }
        drop(conn);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(PeersyncCode::PeersyncInternal, format!("cannot start the runtime: {e}")))?;
        let db = Db::new(path)?;
        Ok(Agent {
            inner: Mutex::new(Inner { rt, db, key: Arc::new(key), device_id }),
            running: Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    /// This device's id.
    pub fn device_id(&self) -> String {
        lock(&self.inner).device_id.clone()
    }

    /// Stops the call in flight on this agent, if any (between pages; a page in flight gets
    /// [`CANCEL_GRACE`] to finish). Returns whether one was running.
    pub fn cancel(&self) -> bool {
        match &*lock(&self.running) {
            Some(stop) => {
                stop.trigger();
                true
            }
            None => false,
        }
    }

    /// Closes the agent: the call in flight is cancelled, calls waiting for their turn are
    /// refused. (The database closes when the last reference to the agent goes.)
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.cancel();
    }

    /// This agent's turn: the lock on its state, unless it was closed meanwhile.
    fn turn(&self) -> Result<MutexGuard<'_, Inner>, Failure> {
        let inner = lock(&self.inner);
        if self.closed.load(Ordering::Acquire) {
            return Err(Failure::new(PeersyncCode::PeersyncClosed, "the handle was closed"));
        }
        Ok(inner)
    }

    /// Runs `work` as the call in flight: [`Agent::cancel`] triggers its stop signal.
    fn cancellable<T>(&self, work: impl FnOnce(&Inner, &Shutdown) -> Result<T, Failure>) -> Result<T, Failure> {
        let inner = self.turn()?;
        let stop = Shutdown::default();
        *lock(&self.running) = Some(stop.clone());
        let out = work(&inner, &stop);
        *lock(&self.running) = None;
        out
    }

    /// One sync with the peer at `url`: hello, push what it lacks, pull what we lack, a page
    /// per request and per transaction, with the sidecar's checks. Returns the report (JSON).
    pub fn sync_once(&self, url: &str) -> Result<String, Failure> {
        let url = normalize_url(url)?;
        self.cancellable(|inner, stop| {
            let client = Client::new(
                inner.key.clone(),
                inner.device_id.clone(),
                peersync::routes::DEFAULT_MAX_BODY,
                REQUEST_TIMEOUT,
            );
            let syncer = Syncer {
                db: inner.db.clone(),
                client,
                key: inner.key.clone(),
                metrics: Arc::new(Metrics::default()),
                page: PAGE,
                audits: Arc::new(Audits::new(Duration::ZERO)),
            };
            inner.rt.block_on(async {
                let r = tokio::select! {
                    r = syncer.sync(&url, stop, &()) => r,
                    _ = async { stop.wait().await; tokio::time::sleep(CANCEL_GRACE).await } => {
                        Err(peersync::error::Error::ShuttingDown)
                    }
                };
                let r = match r {
                    Err(_) if stop.is_triggered() => Err(peersync::error::Error::ShuttingDown),
                    r => r,
                };
                syncer.note(&url, r.as_ref()).await;
                let r = r.map_err(|e| match e {
                    peersync::error::Error::ShuttingDown => {
                        Failure::new(PeersyncCode::PeersyncCancelled, format!("sync with {url} was cancelled"))
                    }
                    e => Failure::from(e),
                })?;
                // A phone has no background compactor: each successful sync takes a few steps
                // of it (what every device holds leaves the log; README "Bounded history").
                let compacted = match stop.is_triggered() {
                    true => Ok(0),
                    false => inner.db.run(|c| Ok(peersync_core::compact(c, Some(COMPACT_STEPS))?.removed)).await,
                };
                let mut report = json!({
                    "peer": url,
                    "peer_device": r.peer_device,
                    "sent": r.sent,
                    "received": r.received,
                    "conflicts": r.conflicts,
                    "held_there": r.held_there,
                    "compacted": compacted.as_ref().map_or(0, |n| *n),
                });
                if let Err(e) = compacted {
                    report["compaction_error"] = e.to_string().into();
                }
                Ok(report.to_string())
            })
        })
    }

    /// `sync_status()` of this database (JSON).
    pub fn status(&self) -> Result<String, Failure> {
        self.with_db(|c| Ok(peersync_core::status(c)?.to_string()))
    }

    /// The pending conflicts (JSON array, as `GET /conflicts`).
    pub fn conflicts(&self) -> Result<String, Failure> {
        self.with_db(|c| Ok(serde_json::to_string(&peersync_core::conflicts(c, Some("pending"))?)?))
    }

    /// Resolves pending conflict `id` with `choice` as `sync_resolve` takes it ('local',
    /// 'remote', 'ignore' or a JSON object of column values). Returns `{"id", "status"}`.
    pub fn resolve(&self, id: i64, choice: &str) -> Result<String, Failure> {
        let choice = choice.to_string();
        self.with_db(move |c| {
            let status = peersync_core::resolve(c, id, peersync_core::Choice::parse(&choice)?)?;
            Ok(json!({ "id": id, "status": status }).to_string())
        })
    }

    /// The joiner's side of `peersync pair`: exchanges identities with the device showing
    /// `code`, trusts it, adds its URL as a peer, and tracks the tables it tracks that exist
    /// here (none is created). Returns `{"device_id", "name", "peer_url", "tracked", "missing"}`.
    pub fn pair(&self, code: &str) -> Result<String, Failure> {
        let code = peersync::pairing::Code::parse(code)
            .map_err(|e| Failure::new(PeersyncCode::PeersyncInvalidArgument, e.to_string()))?;
        let pairing = |e: peersync::error::Error| match e {
            peersync::error::Error::Cli(m) => Failure::new(PeersyncCode::PeersyncPairing, m),
            e => Failure::from(e),
        };
        self.cancellable(|inner, stop| {
            let key = inner.key.clone();
            let mine = inner.rt.block_on(
                inner.db.run(move |c| Ok(serde_json::to_string(&peersync::joining::payload(c, &key, None, false)?)?)),
            )?;
            let theirs = inner.rt.block_on(async {
                tokio::select! {
                    r = peersync::joining::exchange(&code, &mine) => r.map_err(pairing),
                    _ = stop.wait() => Err(Failure::new(PeersyncCode::PeersyncCancelled, "pairing was cancelled")),
                }
            })?;
            inner
                .rt
                .block_on(inner.db.run(move |c| {
                    peersync::joining::adopt(c, &theirs)?;
                    let (mut tracked, mut missing) = (Vec::new(), Vec::new());
                    for t in peersync::joining::take_tables(c, &theirs, false)? {
                        match t {
                            peersync::joining::Taken::Tracked { table, .. } => tracked.push(table),
                            peersync::joining::Taken::Missing(table) | peersync::joining::Taken::Created(table) => {
                                missing.push(table)
                            }
                        }
                    }
                    Ok(json!({
                        "device_id": theirs.device_id,
                        "name": theirs.name,
                        "peer_url": theirs.url,
                        "tracked": tracked,
                        "missing": missing,
                    })
                    .to_string())
                }))
                .map_err(pairing)
        })
    }

    /// Runs `f` with a connection of this agent's database.
    fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> peersync::error::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let inner = self.turn()?;
        Ok(inner.rt.block_on(inner.db.run(f))?)
    }
}
