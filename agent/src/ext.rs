//! `sqlite3_peersync_init` for a statically linked SQLite: the extension entry point of the
//! SQLite this library bundles, for `sqlite3_auto_extension`, so the app's own connections
//! (opened through that SQLite) have the `sync_*` SQL functions too.
use rusqlite::ffi;
use rusqlite::Connection;
use std::os::raw::{c_char, c_int, c_void};

/// Registers peersync's SQL functions on `db`, a connection of the SQLite this library
/// bundles. Meant for `sqlite3_auto_extension((void (*)(void))sqlite3_peersync_init)` before
/// the app opens its connections; `p_api` is ignored (NULL when called that way). Returns
/// SQLITE_OK (0), or SQLITE_ERROR (1) with a message in `*pz_err_msg` (freed with sqlite3_free).
///
/// # Safety
/// `db` must be an open connection of the bundled SQLite (as SQLite passes it), and
/// `pz_err_msg` NULL or SQLite's out-pointer.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_peersync_init(
    db: *mut c_void,
    pz_err_msg: *mut *mut c_char,
    p_api: *const c_void,
) -> c_int {
    let _ = p_api; // the bundled SQLite is called directly, not through a routine table
    if db.is_null() {
        return ffi::SQLITE_ERROR;
    }
    let registered = std::panic::catch_unwind(|| {
        // SAFETY: `db` is an open connection of this SQLite (the caller's promise); the
        // Connection made from it does not close it when dropped, and the functions
        // registered stay with the connection.
        let conn = unsafe { Connection::from_handle(db.cast()) }?;
        peersync_core::register_functions(&conn)
    });
    let message = match registered {
        Ok(Ok(())) => return ffi::SQLITE_OK,
        Ok(Err(e)) => format!("peersync: cannot register its SQL functions: {e}"),
        Err(_) => "peersync: registering its SQL functions panicked".to_string(),
    };
    if !pz_err_msg.is_null() {
        let c = std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: sqlite3_mprintf copies the NUL-terminated text with "%s" into memory SQLite
        // owns; `pz_err_msg` is SQLite's out-pointer (checked non-NULL), which takes it.
        unsafe { *pz_err_msg = ffi::sqlite3_mprintf(c"%s".as_ptr(), c.as_ptr()) };
    }
    ffi::SQLITE_ERROR
}
