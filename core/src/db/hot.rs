//! Statements that apply and seal run for every change: prepared once, bound without copies.
//!
//! Apply runs three statements for every change (the log row, the slot claim, the row insert);
//! seal writes the log row and the slot state, and reads the slot state and the writers of the
//! slots it bases a change on ([`Hot::query_row`], [`Hot::query_each`]). Through rusqlite's
//! statement cache, each run hashes the SQL text and updates an LRU; and rusqlite binds every
//! value through `dyn ToSql`, with SQLite copying each text and blob (`SQLITE_TRANSIENT`). Over
//! 100,000 changes, binding alone was about 9% of `sync_apply`'s time (perf). These statements
//! stay prepared for as long as the operation runs and bind borrowed values (`SQLITE_STATIC`):
//! the values only have to live for the one call that binds them, which clears every binding
//! before it returns.
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
        // SAFETY: `stmt` belongs to `db` and is not running (every run below ends with
        // `finish`, which resets it and clears its bindings).
        unsafe {
            let result = bind(db, stmt, args).and_then(|()| match ffi::sqlite3_step(stmt) {
                ffi::SQLITE_DONE => Ok((ffi::sqlite3_changes(db) as usize, ffi::sqlite3_last_insert_rowid(db))),
                ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
                rc => Err(error(db, rc)),
            });
            finish(stmt);
            result
        }
    }

    /// Runs query `sql` (prepared on first use) with `args` bound to its parameters in order,
    /// and reads its first row, if it has one, with `read`.
    pub fn query_row<'a, T>(
        &mut self,
        sql: &str,
        args: impl IntoIterator<Item = Arg<'a>>,
        read: impl FnOnce(&HotRow<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        // SAFETY: the raw handle is used only while `self.conn` is borrowed, never closed.
        let db = unsafe { self.conn.handle() };
        let stmt = self.stmt(db, sql)?;
        // SAFETY: as in `execute`; the row read by `read` is only used before `finish`.
        unsafe {
            let result = bind(db, stmt.as_ptr(), args).and_then(|()| match ffi::sqlite3_step(stmt.as_ptr()) {
                ffi::SQLITE_DONE => Ok(None),
                ffi::SQLITE_ROW => read(&HotRow { stmt, _row: std::marker::PhantomData }).map(Some),
                rc => Err(error(db, rc)),
            });
            finish(stmt.as_ptr());
            result
        }
    }

    /// Runs query `sql` (prepared on first use) with `args` bound to its parameters in order,
    /// and reads each of its rows with `each`.
    pub fn query_each<'a>(
        &mut self,
        sql: &str,
        args: impl IntoIterator<Item = Arg<'a>>,
        mut each: impl FnMut(&HotRow<'_>) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        // SAFETY: the raw handle is used only while `self.conn` is borrowed, never closed.
        let db = unsafe { self.conn.handle() };
        let stmt = self.stmt(db, sql)?;
        // SAFETY: as in `execute`; each row read by `each` is only used before the next step.
        unsafe {
            let result = bind(db, stmt.as_ptr(), args).and_then(|()| loop {
                match ffi::sqlite3_step(stmt.as_ptr()) {
                    ffi::SQLITE_DONE => break Ok(()),
                    ffi::SQLITE_ROW => each(&HotRow { stmt, _row: std::marker::PhantomData })?,
                    rc => break Err(error(db, rc)),
                }
            });
            finish(stmt.as_ptr());
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

/// Binds `args` to `stmt`'s parameters in order; every parameter must get one.
///
/// SAFETY: `stmt` must be a statement of the open connection `db`, not running. Text and blobs
/// are bound as SQLITE_STATIC: the caller must call [`finish`] (which clears every binding)
/// before the values `args` borrows go away.
unsafe fn bind<'a>(
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    args: impl IntoIterator<Item = Arg<'a>>,
) -> rusqlite::Result<()> {
    let mut n: c_int = 0;
    // SAFETY: the caller's promises above.
    unsafe {
        for arg in args {
            n += 1;
            let rc = match arg {
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
                return Err(error(db, rc));
            }
        }
        let expected = ffi::sqlite3_bind_parameter_count(stmt);
        if n != expected {
            return Err(rusqlite::Error::InvalidParameterCount(n as usize, expected as usize));
        }
    }
    Ok(())
}

/// Ends a run of `stmt`: resets it and clears its bindings (no pointer to a bound value is
/// left).
///
/// SAFETY: `stmt` must be a live statement.
unsafe fn finish(stmt: *mut ffi::sqlite3_stmt) {
    // SAFETY: the caller's promise.
    unsafe {
        ffi::sqlite3_reset(stmt);
        ffi::sqlite3_clear_bindings(stmt);
    }
}

/// The current row of a query run by [`Hot::query_row`], valid while `read` runs.
pub struct HotRow<'r> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _row: std::marker::PhantomData<&'r ()>,
}

impl HotRow<'_> {
    /// Column `i` as an integer; None when it is NULL. Any other type is an error.
    pub fn int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        let c = i as c_int;
        // SAFETY: the statement has a current row (see `Hot::query_row`).
        match unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), c) } {
            ffi::SQLITE_NULL => Ok(None),
            // SAFETY: as above; the column holds an integer.
            ffi::SQLITE_INTEGER => Ok(Some(unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), c) })),
            t => Err(self.wrong_type(i, t)),
        }
    }

    /// Column `i` as text (borrowed until the row is done with). Any other type is an error.
    pub fn text(&self, i: usize) -> rusqlite::Result<&str> {
        let c = i as c_int;
        // SAFETY: the statement has a current row (see `Hot::query_row`).
        let t = unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), c) };
        if t != ffi::SQLITE_TEXT {
            return Err(self.wrong_type(i, t));
        }
        // SAFETY: the column holds text; SQLite keeps the bytes until the statement steps or
        // is reset, which cannot happen while this row is borrowed. Length first, as SQLite
        // asks (column_text may convert; column_bytes then reports the converted length).
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(self.stmt.as_ptr(), c);
            let n = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), c);
            if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, n as usize)
            }
        };
        std::str::from_utf8(bytes)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    }

    fn wrong_type(&self, i: usize, t: c_int) -> rusqlite::Error {
        use rusqlite::types::Type;
        let ty = match t {
            ffi::SQLITE_INTEGER => Type::Integer,
            ffi::SQLITE_FLOAT => Type::Real,
            ffi::SQLITE_TEXT => Type::Text,
            ffi::SQLITE_BLOB => Type::Blob,
            _ => Type::Null,
        };
        rusqlite::Error::InvalidColumnType(i, format!("column {i}"), ty)
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
