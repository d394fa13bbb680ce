//! Whether a sidecar serves a database file now: `serve` holds a lock on `<db>-peersync`
//! (which says its pid and address) for as long as it runs; `status` tries that lock.
use crate::error::Result;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-peersync");
    PathBuf::from(p)
}

/// Held by a running `serve`: dropping it (or the process ending) releases the lock.
pub struct Serving {
    _lock: File,
}

/// Marks `db` as served by this process, listening on `listen`. Another sidecar serving the
/// same file is refused: two would sync the same changes twice and fight over the peers.
pub fn claim(db: &Path, listen: &str) -> Result<Serving> {
    let path = lock_path(db);
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut who = String::new();
            let _ = f.read_to_string(&mut who);
            return Err(crate::error::Error::Cli(format!(
                "another peersync sidecar already serves {} ({}); stop it first, or use `peersync sync` for a one-off sync",
                db.display(),
                who.trim()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(e.into()),
    }
    f.set_len(0)?;
    f.rewind()?;
    write!(f, "pid {} listening on {}", std::process::id(), listen)?;
    f.flush()?;
    Ok(Serving { _lock: f })
}

/// Who serves `db` now (`pid …, listening on …`), if a sidecar does.
pub fn who(db: &Path) -> Option<String> {
    let mut f = File::open(lock_path(db)).ok()?;
    match f.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut who = String::new();
            f.read_to_string(&mut who).ok()?;
            Some(who.trim().to_string())
        }
        Err(TryLockError::Error(_)) => None,
    }
}
