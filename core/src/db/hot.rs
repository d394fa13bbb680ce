//! Statements that apply and seal run for every change: prepared once, bound without copies.
//!
//! Apply runs three statements for every change (the log row, the slot claim, the row insert),
//! seal two. Through rusqlite's statement cache, each run hashes the SQL text and updates an
//! LRU; and rusqlite binds every value through `dyn ToSql`, with SQLite copying each text and
//! blob (`SQLITE_TRANSIENT`). Over 100,000 changes, binding alone was about 9% of
//! `sync_apply`'s time (perf). These statements stay prepared for as long as the operation
//! runs and bind borrowed values (`SQLITE_STATIC`): the values only have to live for the one
//! call of [`Hot::execute`] that binds them, which clears every binding before it returns.
use crate::wire::Value;
use rusqlite::{ffi, Connection};
use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

/// A value to bind, borrowed from the caller.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Arg<'a> {
        match v {
            Value::Null => Arg::Null,
            Value::Integer(i) => Arg::Int(*i),
            Value::Real(r) => Arg::Real(*r),
            Value::Text(s) => Arg::Text(s),
            Value::Blob(b) => Arg::Blob(b),
        }
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Arg<'a> {
        Arg::Text(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl From<bool> for Arg<'_> {
    fn from(b: bool) -> Self {
        Arg::Int(b as i64)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(i: Option<i64>) -> Self {
        i.map_or(Arg::Null, Arg::Int)
    }
}

/// A prepared statement owned here (finalized when dropped).
struct Raw(NonNull<ffi::sqlite3_stmt>);

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared here and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

pub struct Hot<'c> {
    conn: &'c Connection,
    /// Few statements, each with the address of the SQL text it was first asked for (callers
    /// pass the same `&str` each time, so it is usually found without comparing the text).
    stmts: Vec<(*const u8, String, Raw)>,
}

impl<'c> Hot<'c> {
    pub fn new(conn: &'c Connection) -> Hot<'c> {
        Hot { conn, stmts: Vec::new() }
    }

    /// Runs `sql` (prepared on first use) with `args` bound to its parameters in order, to
    /// completion. Returns the number of rows it changed and the last inserted rowid.
    pub fn execute<'a>(
        &mut self,
        sql: &str,
        args: impl IntoIterator<Item = Arg<'a>>,
    ) -> rusqlite::Result<(usize, i64)> {
        // SAFETY: the raw handle is used only while `self.conn` is borrowed, never closed.
        let db = unsafe { self.conn.handle() };
        let stmt = self.stmt(db, sql)?.as_ptr();
        let mut n: c_int = 0;
        // SAFETY: `stmt` belongs to `db` and is not running (every run below ends with a
        // reset). Text and blobs are bound as SQLITE_STATIC: they live until this function
        // returns, and `sqlite3_clear_bindings` below drops every pointer to them first.
        unsafe {
            let mut rc = ffi::SQLITE_OK;
            for arg in args {
                n += 1;
                rc = match arg {
                    Arg::Null => ffi::sqlite3_bind_null(stmt, n),
                    Arg::Int(i) => ffi::sqlite3_bind_int64(stmt, n, i),
                    Arg::Real(r) => ffi::sqlite3_bind_double(stmt, n, r),
                    Arg::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        n,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as _,
                    ),
                    Arg::Blob([]) => ffi::sqlite3_bind_zeroblob(stmt, n, 0),
                    Arg::Blob(b) => {
                        ffi::sqlite3_bind_blob64(stmt, n, b.as_ptr().cast(), b.len() as u64, ffi::SQLITE_STATIC())
                    }
                };
                if rc != ffi::SQLITE_OK {
                    break;
                }
            }
            let expected = ffi::sqlite3_bind_parameter_count(stmt);
            let result = if rc != ffi::SQLITE_OK {
                Err(error(db, rc))
            } else if n != expected {
                Err(rusqlite::Error::InvalidParameterCount(n as usize, expected as usize))
            } else {
                match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_DONE => Ok((ffi::sqlite3_changes(db) as usize, ffi::sqlite3_last_insert_rowid(db))),
                    ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
                    rc => Err(error(db, rc)),
                }
            };
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            result
        }
    }

    /// The statement for `sql`, prepared on first use.
    fn stmt(&mut self, db: *mut ffi::sqlite3, sql: &str) -> rusqlite::Result<NonNull<ffi::sqlite3_stmt>> {
        if let Some((_, _, raw)) =
            self.stmts.iter().find(|(at, s, _)| (*at == sql.as_ptr() && s.len() == sql.len()) || s == sql)
        {
            return Ok(raw.0);
        }
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `db` is the open connection this Hot borrows; the SQL text is read within
        // the call (its length is given, so no terminator is needed).
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is the open connection this Hot borrows.
            return Err(unsafe { error(db, rc) });
        }
        let raw = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        self.stmts.push((sql.as_ptr(), sql.to_string(), Raw(raw)));
        Ok(raw)
    }
}

/// The error SQLite reports on `db` after a call failed with `rc`, as rusqlite reports it.
///
/// SAFETY: `db` must be an open connection.
unsafe fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is an open connection (the caller's promise).
    let code = match unsafe { ffi::sqlite3_extended_errcode(db) } {
        ext if ext & 0xff == rc & 0xff => ext,
        _ => rc,
    };
    // SAFETY: as above.
    let msg = unsafe { ffi::sqlite3_errmsg(db) };
    let msg = if msg.is_null() {
        None
    } else {
        // SAFETY: a NUL-terminated string SQLite owns until the next call on `db`; copied at once.
        Some(unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), msg)
}
