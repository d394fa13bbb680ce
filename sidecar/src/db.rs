//! Opening the app's database for the sidecar (WAL, busy timeout, core's functions) and running SQLite work off the async runtime.
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
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
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
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

/// A small pool of connections to one database; work runs on tokio's blocking threads.
#[derive(Clone)]
pub struct Db {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Db {
    pub fn new(path: &Path) -> Result<Db> {
        let first = open(path, false)?;
        peersync_core::device_id(&first)?;
        Ok(Db {
            path: Arc::new(path.to_path_buf()),
            idle: Arc::new(Mutex::new(vec![first])),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap().pop() {
            return Ok(c);
        }
        open(&self.path, false)
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
            let out = f(&conn);
            db.give_back(conn);
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
    }
}
