//! Write transactions: `BEGIN IMMEDIATE` when the connection is idle, a savepoint inside a caller's.
use crate::error::Result;
use rusqlite::Connection;

/// Runs `f` atomically: all of its writes commit, or none do.
///
/// On an idle connection this is `BEGIN IMMEDIATE` (takes the write lock up front, so a
/// read-then-write never fails with SQLITE_BUSY halfway); inside the caller's transaction
/// it is a savepoint, so the caller still decides whether everything commits.
pub fn write<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    if conn.is_autocommit() {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(conn) {
            Ok(v) => match conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            },
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    } else {
        conn.execute_batch("SAVEPOINT peersync")?;
        match f(conn) {
            Ok(v) => {
                conn.execute_batch("RELEASE peersync")?;
                Ok(v)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO peersync; RELEASE peersync");
                Err(e)
            }
        }
    }
}

/// Raises the connection's page cache to at least 32 MiB while a bulk operation (seal, apply)
/// runs, and puts the caller's setting back when dropped.
pub struct BiggerCache<'c> {
    conn: &'c Connection,
    before: Option<i64>,
}

impl<'c> BiggerCache<'c> {
    const KIB: i64 = 32 * 1024;

    pub fn new(conn: &'c Connection) -> BiggerCache<'c> {
        let before: Option<i64> = conn.query_row("PRAGMA cache_size", [], |r| r.get(0)).ok();
        // negative = KiB, positive = pages (assume 4 KiB pages to compare)
        let kib = before.map(|b| if b < 0 { -b } else { b * 4 });
        if kib.is_some_and(|k| k < Self::KIB)
            && conn.execute_batch(&format!("PRAGMA cache_size = -{}", Self::KIB)).is_ok()
        {
            return BiggerCache { conn, before };
        }
        BiggerCache { conn, before: None }
    }
}

impl Drop for BiggerCache<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.before {
            let _ = self.conn.execute_batch(&format!("PRAGMA cache_size = {b}"));
        }
    }
}
