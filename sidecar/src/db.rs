//! Opening the app's database for the sidecar (WAL, busy timeout, core's functions) and running SQLite work off the async runtime.
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a statement waits for another writer (the app, or another sync) before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_IDLE: usize = 4;

/// Opens `path` the way the sidecar always does. The file must exist unless `create`.
pub fn open(path: &Path, create: bool) -> Result<Connection> {
    if !create && !path.exists() {
        return Err(Error::BadRequest(format!(
            "database {} does not exist; check --db, or create it with `peersync init --db {} --name NAME`",
            path.display(),
            path.display()
        )));
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets the app read and write while the sidecar reads; it is a property of the file.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        tracing::warn!(db = %path.display(), mode, "could not switch the database to WAL mode");
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
    peersync_core::register_functions(&conn)?;
    Ok(conn)
}

/// WAL size (pages) from which a checkpoint runs, as SQLite's own automatic checkpoint does.
const CHECKPOINT_PAGES: i32 = 1000;

thread_local! {
    /// Pages in the WAL after the last commit made on this thread (see [`note_wal_pages`]).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// The sidecar's connections' WAL hook: instead of checkpointing inside the commit, as
/// SQLite's automatic checkpoint does, note the WAL's size; [`Db::run`] then has a checkpoint
/// made on another thread, so a sync's next batch does not wait for it.
fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// A small pool of connections to one database; work runs on tokio's blocking threads.
#[derive(Clone)]
pub struct Db {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
    checkpoint: Arc<Checkpoint>,
}

/// The background checkpoint: whether one runs, and whether another was asked for meanwhile.
#[derive(Default)]
struct Checkpoint {
    running: AtomicBool,
    again: AtomicBool,
}

impl Db {
    pub fn new(path: &Path) -> Result<Db> {
        let first = open(path, false)?;
        peersync_core::device_id(&first)?;
        first.wal_hook(Some(note_wal_pages));
        Ok(Db {
            path: Arc::new(path.to_path_buf()),
            idle: Arc::new(Mutex::new(vec![first])),
            checkpoint: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap().pop() {
            return Ok(c);
        }
        let conn = open(&self.path, false)?;
        conn.wal_hook(Some(note_wal_pages));
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if !conn.is_autocommit() {
            // A closure left a transaction open (it failed halfway): never hand that on.
            let _ = conn.execute_batch("ROLLBACK");
        }
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `f` with a connection on a blocking thread. Each core call is its own short
    /// transaction, so the app's writes only ever wait for one page.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.take()?;
            WAL_PAGES.with(|p| p.set(0));
            let out = f(&conn);
            db.give_back(conn);
            if WAL_PAGES.with(|p| p.get()) >= CHECKPOINT_PAGES {
                db.checkpoint_soon();
            }
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
    }
}

impl Db {
    /// Copies the WAL back into the database on a blocking thread, beside the next write. One
    /// at a time: asked while one runs, another runs after it.
    fn checkpoint_soon(&self) {
        if self.checkpoint.running.swap(true, Ordering::AcqRel) {
            self.checkpoint.again.store(true, Ordering::Release);
            return;
        }
        let db = self.clone();
        tokio::task::spawn_blocking(move || loop {
            db.checkpoint.again.store(false, Ordering::Release);
            match db.take() {
                Ok(conn) => {
                    // PASSIVE: never waits for the app's readers or writers.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::debug!(error = %e, "background checkpoint did not run");
                    }
                    db.give_back(conn);
                }
                Err(e) => tracing::debug!(error = %e, "background checkpoint: no connection"),
            }
            db.checkpoint.running.store(false, Ordering::Release);
            if !db.checkpoint.again.load(Ordering::Acquire) || db.checkpoint.running.swap(true, Ordering::AcqRel) {
                return;
            }
        });
    }
}
