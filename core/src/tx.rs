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
