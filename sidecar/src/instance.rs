//! Telling a database file from a copy of it: the record beside the key file (`<device id>.json`:
//! the database path that uses the key and that file's instance value) and the checks
//! `init`, `serve` and `sync` make against it.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What the key directory holds about the database file a key belongs to.
#[derive(Serialize, Deserialize, PartialEq)]
struct Record {
    /// The database file's absolute path, when it last used the key.
    db: PathBuf,
    /// The random value that file carries in `sync_state` (`instance`).
    instance: String,
}

/// The record beside a key file: `<device id>.pem` → `<device id>.json`.
fn record_path(key: &Path) -> PathBuf {
    key.with_extension("json")
}

fn absolute(db: &Path) -> Result<PathBuf> {
    fs::canonicalize(db).map_err(|e| Error::Cli(format!("cannot resolve the path of {}: {e}", db.display())))
}

fn read(key: &Path) -> Option<Record> {
    fs::read_to_string(record_path(key)).ok().and_then(|t| serde_json::from_str(&t).ok())
}

fn copy_error(db: &Path, original: &str, id: &str) -> Error {
    Error::Cli(format!(
        "{} is a copy of the database {original}: both carry device id {id}, and two files must never sync as one device. \
         Give this copy an identity of its own (its data stays): `peersync init --db {} --name NAME --new-identity`, then pair it with the other devices",
        db.display(),
        db.display()
    ))
}

/// Refuses a database file that is a copy of the one the key file belongs to: the record beside
/// the key names another database file that still exists, or this file's instance value is not
/// the one recorded. A file moved (the recorded one is gone, the instance the same) is no copy.
pub fn check(conn: &rusqlite::Connection, db: &Path, key: &Path) -> Result<()> {
    let Some(rec) = read(key) else { return Ok(()) };
    let here = absolute(db)?;
    let id = peersync_core::device_id(conn)?;
    if rec.db != here && rec.db.exists() {
        return Err(copy_error(db, &rec.db.display().to_string(), &id));
    }
    if let Some(mine) = peersync_core::instance(conn)? {
        if mine != rec.instance {
            return Err(copy_error(db, "the key file's own (another instance)", &id));
        }
    }
    Ok(())
}

/// [`record`], or a warning when it cannot be written (a key folder this user cannot write):
/// copies then go unnoticed, and the command goes on.
pub fn note(conn: &rusqlite::Connection, db: &Path, key: &Path) {
    if let Err(e) = record(conn, db, key) {
        tracing::warn!("cannot record which database file uses key {}: {e}", key.display());
    }
}

/// Records, beside the key file, that this database file uses the key (after [`check`]), and
/// gives the file its instance value if it has none. Writes only what changed.
pub fn record(conn: &rusqlite::Connection, db: &Path, key: &Path) -> Result<()> {
    let instance = match peersync_core::instance(conn)? {
        Some(i) => i,
        None => {
            let mut seed = [0u8; 16];
            getrandom::fill(&mut seed)
                .map_err(|e| Error::Key(format!("no randomness from the operating system: {e}")))?;
            let i = hex::encode(seed);
            peersync_core::set_instance(conn, &i)?;
            i
        }
    };
    let rec = Record { db: absolute(db)?, instance };
    if read(key).as_ref() == Some(&rec) {
        return Ok(());
    }
    let path = record_path(key);
    let tmp = path.with_extension("json.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::Key(format!("cannot write {}: {e}", tmp.display())))?;
    f.write_all(serde_json::to_string_pretty(&rec)?.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path).map_err(|e| Error::Key(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}
