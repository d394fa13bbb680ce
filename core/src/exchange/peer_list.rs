//! The peers this device syncs with, as data (`sync_peers.configured`): added by `peersync
//! peers add` or pairing, removed by `peers remove`, read by a running sidecar.
use crate::db::tx;
use crate::error::{Error, Result};
use rusqlite::{params, Connection};
use serde::Serialize;

/// Where a configured peer came from: `peersync peers add`, pairing, or `peers discover`.
pub const SOURCES: &[&str] = &["manual", "pair", "discover"];

/// A configured peer and how syncing with it has gone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfiguredPeer {
    pub url: String,
    /// The device last seen at this URL (or named when it was added).
    pub device_id: Option<String>,
    pub source: String,
    pub added_at: String,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub failures: i64,
}

/// Checks the shape of a peer URL: `http://` or `https://`, a host, no spaces or controls,
/// at most 2048 characters. (The sidecar normalizes it first.)
pub fn check_url(url: &str) -> Result<()> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && url.len() <= 2048 && !url.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Ok(())
        }
        _ => Err(Error::invalid(format!("\"{}\" is not a peer URL (http://HOST:PORT)", crate::wire::shown(url)))),
    }
}

/// Adds (or re-adds) the peer at `url` to the configured peers, from `source`, naming the
/// device expected there if known; says whether it was not configured before.
pub fn add(conn: &Connection, url: &str, source: &str, device: Option<&str>) -> Result<bool> {
    check_url(url)?;
    if !SOURCES.contains(&source) {
        return Err(Error::invalid(format!("unknown peer source \"{}\"", crate::wire::shown(source))));
    }
    if let Some(d) = device {
        crate::wire::check_device_id(d)?;
    }
    tx::write(conn, |conn| {
        let was: Option<i64> = conn
            .prepare_cached("SELECT configured FROM sync_peers WHERE url = ?1")?
            .query_row([url], |r| r.get(0))
            .ok();
        conn.prepare_cached(
            "INSERT INTO sync_peers(url, device_id, configured, added_at, source)
               VALUES (?1, ?2, 1, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?3)
             ON CONFLICT(url) DO UPDATE SET configured = 1, device_id = ifnull(excluded.device_id, device_id),
               added_at = CASE WHEN configured THEN added_at ELSE excluded.added_at END,
               source = CASE WHEN configured THEN source ELSE excluded.source END",
        )?
        .execute(params![url, device, source])?;
        Ok(was != Some(1))
    })
}

/// Removes the peer at `url` from the configured peers (its link history goes too); says
/// whether it was configured.
pub fn remove(conn: &Connection, url: &str) -> Result<bool> {
    tx::write(conn, |conn| {
        Ok(conn.prepare_cached("DELETE FROM sync_peers WHERE url = ?1 AND configured")?.execute([url])? > 0)
    })
}

/// The configured peers, by URL.
pub fn list(conn: &Connection) -> Result<Vec<ConfiguredPeer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT url, device_id, ifnull(source, 'manual'), ifnull(added_at, ''), last_success_at, last_error, failures
           FROM sync_peers WHERE configured ORDER BY url",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ConfiguredPeer {
            url: r.get(0)?,
            device_id: r.get(1)?,
            source: r.get(2)?,
            added_at: r.get(3)?,
            last_success_at: r.get(4)?,
            last_error: r.get(5)?,
            failures: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
