//! Registers the SQL functions (`sync_*`) on a connection: argument checks, errors, panic guard.
//! The top of the engine: each function is a thin call into the layer that owns it.
use crate::capture::follow::seal;
use crate::capture::track::untrack;
use crate::db::host::sqlite_warning;
use crate::error::{Error, Result};
use crate::exchange::apply::apply;
use crate::exchange::compact::compact;
use crate::exchange::digest::digest;
use crate::exchange::export::{changes_json, vector};
use crate::exchange::held::track;
use crate::exchange::status::status;
use crate::exchange::verify::{hash_of, verify};
use crate::merge::resolve::{resolve, Choice};
use crate::store::format::{device_id, init};
use crate::trust::quarantine::release;
use crate::wire::{parse_batch, parse_vector, DEFAULT_LIMIT, VERSION};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};

type Out = ToSqlOutput<'static>;

fn text(s: String) -> Out {
    ToSqlOutput::Owned(SqlValue::Text(s))
}
fn int(i: i64) -> Out {
    ToSqlOutput::Owned(SqlValue::Integer(i))
}

/// Argument `i` as text, or an error naming the function and the argument.
fn arg_text(ctx: &Context<'_>, f: &str, i: usize, what: &str) -> Result<String> {
    match ctx.get_raw(i) {
        ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
        // readfile() and some drivers hand text over as a blob
        ValueRef::Blob(b) if std::str::from_utf8(b).is_ok() && f != "sync_track" && f != "sync_untrack" => {
            Ok(String::from_utf8_lossy(b).into_owned())
        }
        other => Err(Error::invalid(format!("{f}: {what} must be text, not {}", type_name(other)))),
    }
}

fn arg_int(ctx: &Context<'_>, f: &str, i: usize, what: &str) -> Result<i64> {
    match ctx.get_raw(i) {
        ValueRef::Integer(n) => Ok(n),
        other => Err(Error::invalid(format!("{f}: {what} must be an integer, not {}", type_name(other)))),
    }
}

fn type_name(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

/// Registers `name` with `n` arguments; `f` gets the call's arguments and the connection it
/// runs on. Errors become SQL errors that start with the function's name, and a panic becomes
/// an SQL error instead of unwinding into the host.
fn register(
    conn: &Connection,
    name: &'static str,
    n: i32,
    f: impl Fn(&Context<'_>, &Connection) -> Result<Out> + Send + 'static,
) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    conn.create_scalar_function(name, n, flags, move |ctx| {
        let res = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the handle is the connection this call runs on. It is used only within
            // the call, on this thread, and never closed (the ConnectionRef does not own it).
            let c = unsafe { ctx.get_connection()? };
            f(ctx, &c)
        }));
        let msg = match res {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e.to_string(),
            Err(p) => {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("internal error (panic: {why}); nothing was changed. Please report this")
            }
        };
        let msg = if msg.starts_with(name) { msg } else { format!("{name}: {msg}") };
        // An error message is a C string: show control characters (a NUL in a peer's column
        // name, say) instead of letting them cut or garble it.
        let msg: String = msg
            .chars()
            .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
            .collect();
        Err(rusqlite::Error::UserFunctionError(msg.into()))
    })
}

/// Registers every `sync_*` function on `conn`: what the loadable extension does, as one call
/// from a Rust app that opens its database with rusqlite (`bundled` or a system SQLite). The
/// functions are the README's SQL reference; [`crate::init`], [`crate::track`] and the rest are
/// the same operations as Rust calls.
///
/// ```
/// use rusqlite::Connection;
///
/// let conn = Connection::open_in_memory()?;
/// peersync_core::register_functions(&conn)?;
/// conn.execute_batch("create table notes(id text primary key, body text)")?;
/// let device: String = conn.query_row("select sync_init()", [], |r| r.get(0))?;
/// conn.query_row("select sync_track('notes')", [], |r| r.get::<_, i64>(0))?;
/// conn.execute("insert into notes values ('n1', 'hello')", [])?;
/// let sealed: i64 = conn.query_row("select sync_seal()", [], |r| r.get(0))?;
/// assert_eq!((device.len(), sealed), (32, 1));
/// let version: String = conn.query_row("select sync_version()", [], |r| r.get(0))?;
/// assert_eq!(version, env!("CARGO_PKG_VERSION"));
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    register(conn, "sync_version", 0, |_, _| Ok(text(VERSION.to_string())))?;
    register(conn, "sync_sqlite_warning", 0, |_, c| {
        Ok(sqlite_warning(c)?.map_or(ToSqlOutput::Owned(SqlValue::Null), text))
    })?;
    register(conn, "sync_init", 0, |_, c| Ok(text(init(c)?)))?;
    register(conn, "sync_track", 1, |ctx, c| {
        let t = arg_text(ctx, "sync_track", 0, "the table name")?;
        Ok(int(track(c, &t, None)?))
    })?;
    register(conn, "sync_track", 2, |ctx, c| {
        let t = arg_text(ctx, "sync_track", 0, "the table name")?;
        let s = arg_text(ctx, "sync_track", 1, "the strategy")?;
        Ok(int(track(c, &t, Some(&s))?))
    })?;
    register(conn, "sync_untrack", 1, |ctx, c| {
        let t = arg_text(ctx, "sync_untrack", 0, "the table name")?;
        Ok(int(untrack(c, &t)?))
    })?;
    register(conn, "sync_seal", 0, |_, c| {
        device_id(c)?;
        Ok(int(seal(c)?))
    })?;
    register(conn, "sync_hash", 1, |ctx, c| {
        let id = arg_int(ctx, "sync_hash", 0, "the log id")?;
        Ok(text(hash_of(c, id)?))
    })?;
    register(conn, "sync_digest", 0, |_, c| {
        device_id(c)?;
        Ok(text(serde_json::to_string(&digest(c)?)?))
    })?;
    register(conn, "sync_verify", 0, |_, c| {
        device_id(c)?;
        Ok(text(verify(c)?.to_string()))
    })?;
    register(conn, "sync_compact", 0, |_, c| Ok(text(serde_json::to_string(&compact(c, None)?)?)))?;
    register(conn, "sync_compact", 1, |ctx, c| {
        let steps = arg_int(ctx, "sync_compact", 0, "the number of steps")?;
        Ok(text(serde_json::to_string(&compact(c, Some(steps))?)?))
    })?;
    register(conn, "sync_vector", 0, |_, c| Ok(text(serde_json::to_string(&vector(c)?)?)))?;
    register(conn, "sync_changes", 1, |ctx, c| changes_fn(ctx, c, None))?;
    register(conn, "sync_changes", 2, |ctx, c| {
        let limit = arg_int(ctx, "sync_changes", 1, "the limit")?;
        changes_fn(ctx, c, Some(limit))
    })?;
    register(conn, "sync_apply", 1, |ctx, c| {
        let batch = parse_batch(&arg_text(ctx, "sync_apply", 0, "the batch")?)?;
        Ok(text(serde_json::to_string(&apply(c, &batch)?)?))
    })?;
    register(conn, "sync_resolve", 2, |ctx, c| {
        let id = arg_int(ctx, "sync_resolve", 0, "the conflict id")?;
        let choice = Choice::parse(&arg_text(ctx, "sync_resolve", 1, "the choice")?)?;
        Ok(text(resolve(c, id, choice)?))
    })?;
    register(conn, "sync_release", 1, |ctx, c| {
        let dev = arg_text(ctx, "sync_release", 0, "the device id")?;
        Ok(int(release(c, &dev)? as i64))
    })?;
    register(conn, "sync_status", 0, |_, c| Ok(text(status(c)?.to_string())))?;
    // Only in test builds (the `debug-panic` feature): proves a panic becomes an SQL error.
    #[cfg(feature = "debug-panic")]
    register(conn, "sync_debug_panic", 0, |_, _| -> Result<Out> { panic!("sync_debug_panic was called") })?;
    Ok(())
}

fn changes_fn(ctx: &Context<'_>, c: &Connection, limit: Option<i64>) -> Result<Out> {
    let since = parse_vector("sync_changes", &arg_text(ctx, "sync_changes", 0, "the vector")?)?;
    Ok(text(changes_json(c, &since, limit.unwrap_or(DEFAULT_LIMIT))?))
}
