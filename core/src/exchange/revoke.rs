//! Revoking a device from here: the writes captured before it are sealed first, so the
//! revocation takes its place in this device's chain after them (see `trust/devices.rs`).
use crate::capture::follow::seal;
use crate::db::tx;
use crate::error::Result;
use crate::trust::devices;
use rusqlite::Connection;

/// Withdraws trust from device `device_id` here and, at their next sync, on every device that
/// trusts this one: see [`devices::revoke`].
pub fn revoke(conn: &Connection, device_id: &str) -> Result<()> {
    seal(conn)?;
    tx::write(conn, |conn| devices::revoke(conn, device_id))
}
