//! The SQLite library running a connection (the host's, for the extension): its version and
//! whether it has the WAL-reset bug.
use crate::error::Result;
use rusqlite::Connection;

/// Whether SQLite `version` (as `sqlite3_libversion_number()`: 3051003 for 3.51.3) has the
/// WAL-reset bug: 3.7.0 through 3.51.2, except the fixed 3.44.6+ and 3.50.7+ releases.
pub fn wal_reset_affected(version: i64) -> bool {
    let (minor, patch) = (version / 1000 % 1000, version % 1000);
    match version {
        v if !(3_007_000..3_051_003).contains(&v) => false,
        _ if minor == 44 => patch < 6,
        _ if minor == 50 => patch < 7,
        _ => true,
    }
}

/// The version of the SQLite library running `conn`: its text and its number.
pub fn sqlite_version(conn: &Connection) -> Result<(String, i64)> {
    let text: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    let mut parts = text.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Ok((text, a * 1_000_000 + b * 1000 + c))
}

/// A warning when the SQLite library running `conn` has the WAL-reset bug, saying what to do;
/// `None` when it does not.
pub fn sqlite_warning(conn: &Connection) -> Result<Option<String>> {
    let (text, number) = sqlite_version(conn)?;
    if !wal_reset_affected(number) {
        return Ok(None);
    }
    Ok(Some(format!(
        "SQLite {text} (the library this connection uses) has the WAL-reset bug (SQLite 3.7.0 through \
         3.51.2): when two connections write or checkpoint the same WAL database at once, as an app \
         and the peersync sidecar do, the database can be corrupted. Use SQLite 3.51.3 or newer \
         (or 3.50.7+, 3.44.6+) in this program: e.g. Python's apsw or Node's better-sqlite3 bundle \
         one, or build against a newer libsqlite3. The peersync sidecar bundles a fixed SQLite."
    )))
}

#[cfg(test)]
mod tests {
    use super::wal_reset_affected;

    #[test]
    fn affected_versions() {
        for v in [3_007_000, 3_040_001, 3_044_005, 3_050_006, 3_051_000, 3_051_002, 3_045_000, 3_049_999] {
            assert!(wal_reset_affected(v), "{v}");
        }
        for v in [3_006_023, 3_044_006, 3_044_007, 3_050_007, 3_050_010, 3_051_003, 3_052_000, 3_053_002, 4_000_000] {
            assert!(!wal_reset_affected(v), "{v}");
        }
    }
}
