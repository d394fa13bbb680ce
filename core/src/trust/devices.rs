//! `sync_devices`: this device's identity row, pairing (trust), revocation (this device's own,
//! logged as a signed event in its chain, and those received from trusted devices), listing,
//! and whether another device may talk to this one ([`standing`]).
use super::quarantine;
use crate::db::hot::Hot;
use crate::db::tx;
use crate::error::{Error, Result};
use crate::model::clock::Clock;
use crate::store::format;
use crate::store::local::LocalLog;
use crate::store::log::Writers;
use crate::wire::{check_device_id, check_device_name, check_public_key};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub device_id: String,
    pub device_name: Option<String>,
    pub public_key: Option<String>,
    pub tailscale_ip: Option<String>,
    pub is_authorized: bool,
    pub last_sync_at: Option<String>,
    pub created_at: String,
    /// True for this database's own row.
    pub is_self: bool,
    /// Why it is quarantined, if it is (see `quarantine.rs`).
    pub quarantined: Option<String>,
    /// The device that introduced it here, when it was not paired here directly.
    pub introduced_by: Option<String>,
    /// The device whose revocation of it is in force here (this device's own, or one received).
    pub revoked_by: Option<String>,
    /// The device it goes on as, if it was recovered from a backup (`peersync recover`).
    pub succeeded_by: Option<String>,
}

/// Records this device's name and public key in its own row.
pub fn set_identity(conn: &Connection, name: Option<&str>, public_key: &str) -> Result<()> {
    check_public_key(public_key)?;
    name.map(check_device_name).transpose()?;
    let me = format::device_id(conn)?;
    conn.execute(
        "UPDATE sync_devices SET public_key = ?2, device_name = coalesce(?3, device_name), is_authorized = 1 WHERE device_id = ?1",
        params![me, public_key, name],
    )?;
    Ok(())
}

/// Authorizes another device (pairing). Re-trusting updates its key, name and address (an
/// empty address clears it), and makes it paired here directly rather than introduced. A
/// pairing re-admits a revoked device here: it is stamped by this device's clock
/// (`trusted_at`), and a revocation made before it (by its timestamp) no longer applies here,
/// also when it arrives later.
pub fn trust(
    conn: &Connection,
    device_id: &str,
    public_key: &str,
    name: Option<&str>,
    tailscale_ip: Option<&str>,
) -> Result<()> {
    check_device_id(device_id)?;
    check_public_key(public_key)?;
    name.map(check_device_name).transpose()?;
    if let Some(ip) = tailscale_ip.filter(|ip| !ip.is_empty()) {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| Error::invalid(format!("tailscale ip \"{ip}\" is not an IP address")))?;
    }
    let me = format::device_id(conn)?;
    if device_id == me {
        return Err(Error::invalid("that is this device's own id; trust the other device's id"));
    }
    tx::write(conn, |conn| {
        let mut clock = Clock::load(conn)?;
        let at = clock.stamp_at(None);
        clock.save(conn)?;
        conn.execute(
            "INSERT INTO sync_devices(device_id, public_key, device_name, tailscale_ip, is_authorized, trusted_at) VALUES (?1, ?2, ?3, nullif(?4, ''), 1, ?5)
             ON CONFLICT(device_id) DO UPDATE SET public_key = excluded.public_key, device_name = coalesce(excluded.device_name, device_name),
               tailscale_ip = CASE WHEN ?4 = '' THEN NULL ELSE coalesce(excluded.tailscale_ip, tailscale_ip) END, is_authorized = 1,
               introduced_by = NULL, trusted_at = excluded.trusted_at, revoked_by = NULL, revoked_at = NULL, revoked_version = NULL, succeeded_by = NULL",
            params![device_id, public_key, name, tailscale_ip, at],
        )?;
        Ok(())
    })
}

/// Withdraws a device's authorization, here and on every device: the revocation is logged as
/// this device's next change (`wire/revocation.rs`), signed and relayed like any, and every
/// device that trusts this one takes it up at its next sync. Its key is kept so its changes
/// stay refused, also when other peers relay them. Revoking a device this device has revoked
/// already logs nothing more.
pub fn revoke(conn: &Connection, device_id: &str) -> Result<()> {
    let me = format::device_id(conn)?;
    if device_id == me {
        return Err(Error::invalid("cannot revoke this device itself"));
    }
    tx::write(conn, |conn| {
        let by: Option<Option<String>> = conn
            .query_row("SELECT revoked_by FROM sync_devices WHERE device_id = ?1", [device_id], |r| r.get(0))
            .optional()?;
        match by {
            None => Err(Error::invalid(format!("no device \"{device_id}\" is known here"))),
            Some(Some(by)) if by == me => Ok(()),
            Some(_) => {
                let mut local = LocalLog::open(conn)?;
                let (mut hot, mut writers) = (Hot::new(conn), Writers::default());
                let (version, at) = local.log_revocation(&mut hot, &mut writers, device_id)?;
                local.finish(conn, &mut writers)?;
                drop(hot);
                conn.execute(
                    "UPDATE sync_devices SET is_authorized = 0, revoked_by = ?2, revoked_at = ?3, revoked_version = ?4 WHERE device_id = ?1",
                    params![device_id, me, at, version],
                )?;
                Ok(())
            }
        }
    })
}

/// Takes up a revocation received from device `by` (trusted here: its changes are applied),
/// its change `version` stamped `at`, of device `revoked`. Returns whether it revoked the
/// device here. A revocation of this device, or of its own maker, is logged and does nothing;
/// a device paired here after the revocation was made (by `trusted_at`) stays trusted. A
/// device not known here is recorded as revoked (so no introduction admits it later).
pub fn receive_revocation(conn: &Connection, me: &str, by: &str, version: i64, at: i64, revoked: &str) -> Result<bool> {
    if revoked == me || revoked == by {
        return Ok(false);
    }
    let row: Option<(bool, Option<i64>, Option<String>)> = conn
        .prepare_cached("SELECT is_authorized, trusted_at, revoked_by FROM sync_devices WHERE device_id = ?1")?
        .query_row([revoked], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        None => {
            conn.prepare_cached(
                "INSERT INTO sync_devices(device_id, is_authorized, revoked_by, revoked_at, revoked_version) VALUES (?1, 0, ?2, ?3, ?4)",
            )?
            .execute(params![revoked, by, at, version])?;
            Ok(true)
        }
        Some((_, Some(trusted_at), _)) if trusted_at > at => Ok(false),
        Some((true, _, _)) => {
            conn.prepare_cached(
                "UPDATE sync_devices SET is_authorized = 0, revoked_by = ?2, revoked_at = ?3, revoked_version = ?4 WHERE device_id = ?1",
            )?
            .execute(params![revoked, by, at, version])?;
            Ok(true)
        }
        Some((false, _, revoked_by)) => {
            // Revoked here already (by a person here, or an earlier revocation): who did it first stays.
            if revoked_by.is_none() {
                conn.prepare_cached(
                    "UPDATE sync_devices SET revoked_by = ?2, revoked_at = ?3, revoked_version = ?4 WHERE device_id = ?1",
                )?
                .execute(params![revoked, by, at, version])?;
            }
            Ok(false)
        }
    }
}

const SELECT: &str = "SELECT device_id, device_name, public_key, tailscale_ip, is_authorized, last_sync_at, created_at, introduced_by, revoked_by, succeeded_by FROM sync_devices";

fn from_row(me: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let id: String = r.get(0)?;
    Ok(Device {
        is_self: id == me,
        device_id: id,
        device_name: r.get(1)?,
        public_key: r.get(2)?,
        tailscale_ip: r.get(3)?,
        is_authorized: r.get(4)?,
        last_sync_at: r.get(5)?,
        created_at: r.get(6)?,
        quarantined: None,
        introduced_by: r.get(7)?,
        revoked_by: r.get(8)?,
        succeeded_by: r.get(9)?,
    })
}

fn with_quarantine(conn: &Connection, mut d: Device) -> Result<Device> {
    d.quarantined = quarantine::get(conn, &d.device_id)?.map(|q| q.reason);
    Ok(d)
}

pub fn list(conn: &Connection) -> Result<Vec<Device>> {
    let me = format::device_id(conn)?;
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY id"))?;
    let v: Vec<Device> = stmt.query_map([], |r| from_row(&me, r))?.collect::<rusqlite::Result<_>>()?;
    v.into_iter().map(|d| with_quarantine(conn, d)).collect()
}

pub fn get(conn: &Connection, device_id: &str) -> Result<Option<Device>> {
    let me = format::device_id(conn)?;
    let d = conn.query_row(&format!("{SELECT} WHERE device_id = ?1"), [device_id], |r| from_row(&me, r)).optional()?;
    d.map(|d| with_quarantine(conn, d)).transpose()
}

/// (public key hex, authorized) of a device this database knows.
pub fn device_key(conn: &Connection, device: &str) -> Result<Option<(Option<String>, bool)>> {
    Ok(conn
        .prepare_cached("SELECT public_key, is_authorized FROM sync_devices WHERE device_id = ?1")?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Where another device stands with this one: may it talk to us, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Never paired here.
    Unknown,
    /// Paired once, and revoked since.
    Revoked,
    /// Paired, but quarantined for delivering a forked chain; says what happened and what to do.
    Quarantined(String),
    /// Recovered from a backup as another device (`peersync recover`): its old identity speaks
    /// no more; says which device it goes on as.
    Retired(String),
    /// Paired and trusted: requests signed with its `public_key` (from `tailscale_ip`, when set) are its own.
    Trusted { public_key: Option<String>, tailscale_ip: Option<String> },
}

/// May device `device` talk to this one? The one answer for requests, for the peers this
/// device syncs with, and for the senders of batches.
pub fn standing(conn: &Connection, device: &str) -> Result<Standing> {
    /// (public key, authorized, tailscale ip, succeeded by).
    type Row = (Option<String>, bool, Option<String>, Option<String>);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT public_key, is_authorized, tailscale_ip, succeeded_by FROM sync_devices WHERE device_id = ?1",
        )?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((public_key, authorized, tailscale_ip, succeeded_by)) = row else { return Ok(Standing::Unknown) };
    if !authorized {
        return Ok(Standing::Revoked);
    }
    if let Some(by) = succeeded_by {
        return Ok(Standing::Retired(format!(
            "device {device} was recovered from a backup and goes on as device {by} (peersync recover): its old identity no longer syncs. \
             If device {device} was not restored, a copy of it ran `peersync recover`: give it an identity of its own with \
             `peersync init --new-identity` (its data stays) and pair it again"
        )));
    }
    if let Some(q) = quarantine::get(conn, device)? {
        return Ok(Standing::Quarantined(quarantine::refusal(&q).to_string()));
    }
    Ok(Standing::Trusted { public_key, tailscale_ip })
}

/// Where device `device` stands for `POST /sync/recover` alone: a quarantined or retired
/// device may still ask (a restored device is quarantined for what the restore forked, and
/// may ask again after its recovery was taken up); unknown and revoked ones may not.
pub fn recovery_standing(conn: &Connection, device: &str) -> Result<Standing> {
    Ok(match standing(conn, device)? {
        Standing::Quarantined(_) | Standing::Retired(_) => {
            let (public_key, tailscale_ip) = conn
                .prepare_cached("SELECT public_key, tailscale_ip FROM sync_devices WHERE device_id = ?1")?
                .query_row([device], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Standing::Trusted { public_key, tailscale_ip }
        }
        s => s,
    })
}
