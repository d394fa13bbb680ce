//! Each origin's write quota here: a token bucket of log bytes (a burst, refilled at a rate), so
//! a runaway or hostile device cannot fill this device's disk, and the others go on.
use crate::db::schema::{get_state, set_state};
use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// Bytes an origin may write at once (`quota_burst_bytes`), unless set otherwise.
pub const DEFAULT_BURST: f64 = 256.0 * 1024.0 * 1024.0;
/// Bytes an origin's allowance grows by per hour (`quota_bytes_per_hour`), unless set otherwise.
pub const DEFAULT_PER_HOUR: f64 = 512.0 * 1024.0 * 1024.0;

/// The buckets of the origins one batch writes: loaded on first use, saved at the end.
pub struct Quota {
    burst: f64,
    per_us: f64,
    now: i64,
    buckets: HashMap<String, f64>,
}

impl Quota {
    pub fn load(conn: &Connection, now_us: i64) -> Result<Quota> {
        let burst: f64 = get_state::<f64>(conn, "quota_burst_bytes")?.unwrap_or(DEFAULT_BURST);
        let per_hour: f64 = get_state::<f64>(conn, "quota_bytes_per_hour")?.unwrap_or(DEFAULT_PER_HOUR);
        Ok(Quota { burst, per_us: per_hour / 3.6e9, now: now_us, buckets: HashMap::new() })
    }

    /// Takes `bytes` from `origin`'s allowance; false (and nothing taken) when it lacks them.
    /// A change larger than the whole burst is taken once the allowance is full, leaving it
    /// below zero: it waits no longer than it must (it could never fit), and the origin's
    /// changes after it wait until the allowance grows back, so the rate holds.
    pub fn take(&mut self, conn: &Connection, origin: &str, bytes: usize) -> Result<bool> {
        if !self.buckets.contains_key(origin) {
            let row: Option<(f64, i64)> = conn
                .prepare_cached("SELECT bytes, at FROM sync_quota WHERE origin = ?1")?
                .query_row([origin], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let have = match row {
                Some((b, at)) => (b + (self.now - at).max(0) as f64 * self.per_us).min(self.burst),
                None => self.burst,
            };
            self.buckets.insert(origin.to_string(), have);
        }
        let have = self.buckets.get_mut(origin).expect("loaded above");
        if *have < bytes as f64 && *have < self.burst {
            return Ok(false);
        }
        *have -= bytes as f64;
        Ok(true)
    }

    /// Stores what is left of each origin's allowance.
    pub fn save(&self, conn: &Connection) -> Result<()> {
        for (origin, bytes) in &self.buckets {
            conn.prepare_cached("INSERT OR REPLACE INTO sync_quota(origin, bytes, at) VALUES (?1, ?2, ?3)")?
                .execute(params![origin, bytes, self.now])?;
        }
        Ok(())
    }

    /// Words for a person: what the quota is.
    pub fn describe(&self) -> String {
        format!(
            "this device takes at most {} of changes from one device at once, and {} more per hour",
            size(self.burst),
            size(self.per_us * 3.6e9)
        )
    }
}

/// `bytes` for people: KiB below a MiB, else MiB.
fn size(bytes: f64) -> String {
    if bytes < 1048576.0 {
        format!("{} KiB", (bytes / 1024.0).round())
    } else {
        format!("{} MiB", (bytes / 1048576.0).round())
    }
}

/// Sets the quota every origin's changes are held to here (`peersync serve --origin-burst-mib`,
/// `--origin-mib-per-hour`); kept in the database.
pub fn set(conn: &Connection, burst_bytes: f64, per_hour_bytes: f64) -> Result<()> {
    if !(burst_bytes > 0.0 && per_hour_bytes >= 0.0) {
        return Err(Error::invalid("a quota's burst must be more than 0 bytes and its rate 0 or more"));
    }
    set_state(conn, "quota_burst_bytes", &burst_bytes)?;
    set_state(conn, "quota_bytes_per_hour", &per_hour_bytes)
}
