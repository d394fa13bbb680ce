//! The loadable extension's entry point: checks the host's SQLite, then registers core's functions.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
use rusqlite::ffi;
use rusqlite::Connection;
use std::os::raw::{c_char, c_int};

/// The oldest SQLite this extension's bindings work with (3.34.1).
const MIN_SQLITE: c_int = 3_034_001;

/// Entry point for `.load ./dist/peersync` (SQLite derives the name from the file name).
///
/// # Safety
/// Called by SQLite with a valid connection and API routines.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_peersync_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut ffi::sqlite3_api_routines,
) -> c_int {
    if p_api.is_null() {
        return ffi::SQLITE_ERROR;
    }
    // Refuse a too-old host ourselves, before any binding is used, with a message.
    // SAFETY: `p_api` is the host's routine table (checked non-null above); its
    // `libversion_number` is present in every SQLite that loads extensions.
    let version = match unsafe { (*p_api).libversion_number } {
        // SAFETY: a host function that takes no arguments.
        Some(f) => unsafe { f() },
        None => 0,
    };
    if version < MIN_SQLITE {
        let msg = format!(
            "peersync needs SQLite 3.34.1 or newer; this host is {}.{}.{}",
            version / 1_000_000,
            version / 1000 % 1000,
            version % 1000
        );
        // SAFETY: `p_api` and `pz_err_msg` are SQLite's, as passed to this entry point.
        unsafe { set_error(p_api, pz_err_msg, &msg) };
        return ffi::SQLITE_ERROR;
    }
    std::panic::catch_unwind(|| {
        // SAFETY: `db`, `pz_err_msg` and `p_api` are what SQLite passed to this entry point.
        unsafe { Connection::extension_init2(db, pz_err_msg, p_api, init) }
    })
    .unwrap_or(ffi::SQLITE_ERROR)
}

fn init(conn: Connection) -> rusqlite::Result<bool> {
    // A panic inside a function is caught and returned as an SQL error; keep Rust's default
    // hook from also printing it into the host's terminal. (This .so has its own std, so the
    // hook covers only peersync's code, not the host's.)
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    peersync_core::register_functions(&conn)?;
    Ok(false)
}

/// Stores `msg` in `*pz_err_msg`, allocated with the host's sqlite3_malloc as SQLite expects.
///
/// # Safety
/// `p_api` must be the host's routine table and `pz_err_msg` null or SQLite's out-pointer.
unsafe fn set_error(p_api: *mut ffi::sqlite3_api_routines, pz_err_msg: *mut *mut c_char, msg: &str) {
    if pz_err_msg.is_null() {
        return;
    }
    // SAFETY: `p_api` is the host's routine table (the caller's promise).
    if let Some(malloc) = unsafe { (*p_api).malloc } {
        // SAFETY: the host's sqlite3_malloc, asked for the message and its terminator.
        let p = unsafe { malloc((msg.len() + 1) as c_int) } as *mut u8;
        if !p.is_null() {
            // SAFETY: `p` has room for `msg.len() + 1` bytes, and `pz_err_msg` is SQLite's
            // out-pointer (checked non-null above), which takes ownership of the allocation.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
                *p.add(msg.len()) = 0;
                *pz_err_msg = p as *mut c_char;
            }
        }
    }
}
