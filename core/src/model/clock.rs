//! The hybrid logical clock: stamps that exceed every timestamp in the log, received ones included.
//!
//! Timestamps are integers, microseconds since the Unix epoch. A new stamp is
//! `max(wall clock, greatest logged timestamp + 1)`; receiving a change first raises the
//! greatest logged timestamp to the change's, so anything written after seeing a change is
//! stamped later than it, whatever this device's wall clock says.
use crate::db::schema::{get_state, set_state};
use crate::error::Result;
use rusqlite::Connection;
use std::time::{SystemTime, UNIX_EPOCH};

/// How far ahead of this device's wall clock a received timestamp may be, unless
/// `max_clock_skew_secs` in `sync_state` says otherwise (`peersync serve --max-clock-skew`).
pub const DEFAULT_MAX_SKEW_SECS: i64 = 86_400;

/// The clock for one write transaction: loaded once, saved once.
pub struct Clock {
    last: i64,
    offset: i64,
    max_skew_us: i64,
}

impl Clock {
    pub fn load(conn: &Connection) -> Result<Clock> {
        let skew: i64 = get_state(conn, "max_clock_skew_secs")?.unwrap_or(DEFAULT_MAX_SKEW_SECS);
        Ok(Clock {
            last: get_state(conn, "hlc")?.unwrap_or(0),
            offset: get_state(conn, "clock_offset_us")?.unwrap_or(0),
            max_skew_us: skew.max(0).saturating_mul(1_000_000),
        })
    }

    /// This device's wall clock in microseconds (plus the configured offset, for tests).
    pub fn wall(&self) -> i64 {
        now_us() + self.offset
    }

    /// The latest timestamp a received change may carry now: the wall clock plus the skew
    /// allowed. A change stamped later waits (it is not applied, and the clock never moves to
    /// it), so a peer with a runaway clock cannot push every later write here into its future.
    pub fn horizon(&self) -> i64 {
        self.wall().saturating_add(self.max_skew_us)
    }

    /// A stamp for a local write whose trigger read the wall clock at `wall_us` (None: now).
    pub fn stamp_at(&mut self, wall_us: Option<i64>) -> i64 {
        let wall = wall_us.map(|w| w + self.offset).unwrap_or_else(|| self.wall());
        self.last = wall.max(self.last.saturating_add(1));
        self.last
    }

    /// Moves the clock past a received timestamp.
    pub fn receive(&mut self, ts: i64) {
        self.last = self.last.max(ts);
    }

    pub fn save(&self, conn: &Connection) -> Result<()> {
        set_state(conn, "hlc", &self.last)
    }
}

pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The SQL expression triggers use to read the wall clock (microseconds; plain SQL, allowed
/// with `trusted_schema=OFF`).
pub const TRIGGER_WALL_CLOCK: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000";

/// Sets how far ahead of this device's clock a received change may be stamped (`peersync
/// serve --max-clock-skew`); kept in the database.
pub fn set_max_skew(conn: &Connection, secs: i64) -> Result<()> {
    if secs < 0 {
        return Err(crate::error::Error::invalid("the allowed clock skew must be 0 seconds or more"));
    }
    set_state(conn, "max_clock_skew_secs", &secs)
}
