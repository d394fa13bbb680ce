//! The C ABI: every `extern "C"` function of `peersync.h`. Each checks its pointers and text
//! before doing anything, runs inside `catch_unwind` (no panic crosses into C), and returns a
//! [`PeersyncCode`]; the message of a failure is this thread's `peersync_last_error()`.
use crate::agent::Agent;
use crate::code::{Failure, PeersyncCode};
use crate::handles;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// An open database (opaque to C): made by `peersync_agent_open`, ended by `peersync_agent_close`.
#[allow(non_camel_case_types)]
pub struct peersync_agent {
    _private: [u8; 0],
}

thread_local! {
    /// The message of this thread's last failed call ("" after a successful one).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs one call: a panic becomes `PEERSYNC_INTERNAL`, a failure sets the thread's last error.
fn call(f: impl FnOnce() -> Result<(), Failure>) -> c_int {
    let failure = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error("");
            return PeersyncCode::PeersyncOk as c_int;
        }
        Ok(Err(f)) => f,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Failure::new(PeersyncCode::PeersyncInternal, format!("internal error (a bug in peersync): {what}"))
        }
    };
    set_last_error(&failure.message);
    failure.code as c_int
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(PeersyncCode::PeersyncInvalidArgument, message)
}

/// The UTF-8 text at `p`, named `what` in the error.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's promise).
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| invalid(format!("{what} is not UTF-8")))
}

/// Checks an out-pointer and clears what it points at (a failed call leaves NULL there).
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
unsafe fn out_ptr<T>(out: *mut *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and writable (the caller's promise).
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// Stores `s` in `*out` as a string the caller frees with `peersync_string_free`.
///
/// # Safety
/// `out` was checked by [`out_ptr`] and is still valid for writing.
unsafe fn put(out: *mut *mut c_char, s: String) -> Result<(), Failure> {
    let c = CString::new(s).map_err(|_| Failure::new(PeersyncCode::PeersyncInternal, "a result held a NUL byte"))?;
    // SAFETY: `out` is valid for writing (the caller's promise).
    unsafe { *out = c.into_raw() };
    Ok(())
}

/// Runs one call whose result is JSON text for `*out`: `out` is checked (and cleared) before `f`
/// runs, and gets the text only if `f` succeeds.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
unsafe fn call_json(out: *mut *mut c_char, what: &str, f: impl FnOnce() -> Result<String, Failure>) -> c_int {
    call(|| {
        // SAFETY: the caller's promise, as documented above.
        unsafe { out_ptr(out, what)? };
        let s = f()?;
        // SAFETY: checked by out_ptr above.
        unsafe { put(out, s) }
    })
}

fn agent(handle: *mut peersync_agent) -> Result<std::sync::Arc<Agent>, Failure> {
    handles::get(handle as usize)
}

/// Opens the database file at `db_path` (UTF-8; it must exist) with the device key
/// (`key_len` bytes at `key`: a 32-byte ed25519 seed, or a PKCS#8 PEM). On success `*out`
/// is the handle. A database without peersync's tables gets them; one without a key pair takes
/// this key's; one with another key is refused (`PEERSYNC_KEY`) and left unchanged.
///
/// # Safety
/// `db_path` NULL or a NUL-terminated string; `key` NULL or `key_len` readable bytes; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn peersync_agent_open(
    db_path: *const c_char,
    key: *const u8,
    key_len: usize,
    out: *mut *mut peersync_agent,
) -> c_int {
    call(|| {
        // SAFETY: the caller's promises, as documented above.
        unsafe { out_ptr(out, "out")? };
        // SAFETY: as above.
        let path = unsafe { text(db_path, "db_path") }?;
        if key.is_null() {
            return Err(invalid("key is NULL"));
        }
        // SAFETY: `key` points at `key_len` readable bytes (the caller's promise).
        let key = unsafe { std::slice::from_raw_parts(key, key_len) };
        let id = handles::add(Agent::open(Path::new(path), key)?);
        // SAFETY: checked by out_ptr above.
        unsafe { *out = id as *mut peersync_agent };
        Ok(())
    })
}

/// One sync with the peer at `peer_url` (http://HOST:PORT, a `peersync serve`): push what it
/// lacks, then pull what this device lacks, a page at a time, as the sidecar does. `*report`
/// gets the report as JSON: {"peer", "peer_device", "sent", "received", "conflicts", "held_there"}.
///
/// # Safety
/// `peer_url` NULL or a NUL-terminated string; `report` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn peersync_agent_sync_once(
    agent_handle: *mut peersync_agent,
    peer_url: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    let run = || {
        // SAFETY: the caller's promise, as documented above.
        let url = unsafe { text(peer_url, "peer_url") }?;
        agent(agent_handle)?.sync_once(url)
    };
    // SAFETY: the caller's promise, as documented above.
    unsafe { call_json(report, "report", run) }
}

/// `*json` gets `sync_status()` of the database (JSON object).
///
/// # Safety
/// `json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn peersync_agent_status(agent_handle: *mut peersync_agent, json: *mut *mut c_char) -> c_int {
    // SAFETY: the caller's promise, as documented above.
    unsafe { call_json(json, "json", || agent(agent_handle)?.status()) }
}

/// `*json` gets the pending conflicts (JSON array, as the sidecar's `GET /conflicts`).
///
/// # Safety
/// `json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn peersync_agent_conflicts(agent_handle: *mut peersync_agent, json: *mut *mut c_char) -> c_int {
    // SAFETY: the caller's promise, as documented above.
    unsafe { call_json(json, "json", || agent(agent_handle)?.conflicts()) }
}

/// Resolves pending conflict `id`: `choice` is "local", "remote", "ignore" or a JSON object of
/// column values (as `sync_resolve`). `*json` gets {"id", "status"}.
///
/// # Safety
/// `choice` NULL or a NUL-terminated string; `json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn peersync_agent_resolve(
    agent_handle: *mut peersync_agent,
    id: i64,
    choice: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    let run = || {
        // SAFETY: the caller's promise, as documented above.
        let choice = unsafe { text(choice, "choice") }?;
        agent(agent_handle)?.resolve(id, choice)
    };
    // SAFETY: the caller's promise, as documented above.
    unsafe { call_json(json, "json", run) }
}

/// Pairs with the device showing `code` (`peersync pair` there: "abcd-efgh@HOST:PORT"): both
/// trust each other, its URL becomes a peer, and the tables it tracks that exist here are
/// tracked. `*json` gets {"device_id", "name", "peer_url", "tracked", "missing"}.
///
/// # Safety
/// `code` NULL or a NUL-terminated string; `json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn peersync_agent_pair(
    agent_handle: *mut peersync_agent,
    code: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    let run = || {
        // SAFETY: the caller's promise, as documented above.
        let code = unsafe { text(code, "code") }?;
        agent(agent_handle)?.pair(code)
    };
    // SAFETY: the caller's promise, as documented above.
    unsafe { call_json(json, "json", run) }
}

/// Asks the call in flight on this handle (`sync_once`, `pair`), from any thread, to stop: it
/// stops between pages and returns `PEERSYNC_CANCELLED` (within about 2 s even mid-page).
/// Returns at once; `PEERSYNC_OK` also when nothing was running (nothing is remembered).
#[no_mangle]
pub extern "C" fn peersync_agent_cancel(agent_handle: *mut peersync_agent) -> c_int {
    call(|| {
        agent(agent_handle)?.cancel();
        Ok(())
    })
}

/// Closes the handle: later calls with it (a second close too) return `PEERSYNC_CLOSED`. A call
/// in flight on it is cancelled, calls waiting for their turn on it return `PEERSYNC_CLOSED`,
/// and the database is closed once the call in flight returns.
#[no_mangle]
pub extern "C" fn peersync_agent_close(agent_handle: *mut peersync_agent) -> c_int {
    call(|| {
        handles::remove(agent_handle as usize)?.close();
        Ok(())
    })
}

/// Frees a string a `peersync_*` call returned. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn peersync_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: made by CString::into_raw in `put` and not freed before (the caller's promise).
        drop(unsafe { CString::from_raw(s) });
    }
}

/// The message of this thread's last failed `peersync_*` call ("" if the last call succeeded).
/// Owned by the library: valid until this thread's next `peersync_*` call; do not free it.
#[no_mangle]
pub extern "C" fn peersync_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// peersync's version (static text, e.g. "0.1.0").
#[no_mangle]
pub extern "C" fn peersync_version() -> *const c_char {
    static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"",
    };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: peersync_last_error returns this thread's NUL-terminated message.
        unsafe { CStr::from_ptr(peersync_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_internal_with_its_message_and_success_clears_the_message() {
        let code = call(|| panic!("boom at the border"));
        assert_eq!(code, PeersyncCode::PeersyncInternal as c_int);
        assert!(last_error().contains("boom at the border"), "{}", last_error());
        assert_eq!(call(|| Ok(())), 0);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn a_handle_never_made_and_a_closed_one_are_refused() {
        assert_eq!(peersync_agent_close(std::ptr::null_mut()), PeersyncCode::PeersyncClosed as c_int);
        assert_eq!(peersync_agent_cancel(0x10 as *mut peersync_agent), PeersyncCode::PeersyncClosed as c_int);
        let dir = std::env::temp_dir().join(format!("peersync-agent-abi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("a.db");
        let _ = std::fs::remove_file(&db);
        rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY)").unwrap();
        let path = CString::new(db.to_str().unwrap()).unwrap();
        let key = [9u8; 32];
        let mut agent = std::ptr::null_mut();
        // SAFETY: a valid path, 32 readable key bytes and a writable out-pointer.
        assert_eq!(unsafe { peersync_agent_open(path.as_ptr(), key.as_ptr(), 32, &mut agent) }, 0, "{}", last_error());
        let mut json = std::ptr::null_mut();
        // SAFETY: a handle from open and a writable out-pointer.
        assert_eq!(unsafe { peersync_agent_status(agent, &mut json) }, 0);
        // SAFETY: a string status returned.
        let status = unsafe { CStr::from_ptr(json) }.to_str().unwrap().to_string();
        // SAFETY: returned by status, freed once.
        unsafe { peersync_string_free(json) };
        assert!(status.contains("device_id"), "{status}");
        assert_eq!(peersync_agent_close(agent), 0);
        assert_eq!(peersync_agent_close(agent), PeersyncCode::PeersyncClosed as c_int);
        // SAFETY: a (closed) handle and a writable out-pointer.
        assert_eq!(unsafe { peersync_agent_status(agent, &mut json) }, PeersyncCode::PeersyncClosed as c_int);
        assert!(json.is_null());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_static_entry_point_registers_the_functions_on_a_connection_of_this_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        // SAFETY: an open connection of the SQLite this crate links; no error out-pointer.
        let rc = unsafe { crate::sqlite3_peersync_init(conn.handle().cast(), std::ptr::null_mut(), std::ptr::null()) };
        assert_eq!(rc, 0);
        let v: String = conn.query_row("select sync_version()", [], |r| r.get(0)).unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}
