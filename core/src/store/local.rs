//! Logging this device's own changes (and shared events: settings, revocations): version, timestamp, bases, hash chain, slot state.
use super::format::device_id;
use super::log::{self, head, set_head, Writer, Writers};
use super::settings;
use super::slots::Slots;
use crate::db::hot::Hot;
use crate::error::Result;
use crate::model::change::{Change, Op};
use crate::model::clock::Clock;
use crate::model::table::{Strategy, Table};
use crate::wire::{
    name, revocation_record_id, setting_data, setting_record_id, Entry, Succession, REVOCATIONS_TABLE, REVOCATION_DATA,
    SETTINGS_TABLE, SETTING_BASES, SETTING_OPERATION,
};
use rusqlite::Connection;

/// This device's side of the log for one write transaction.
pub struct LocalLog {
    pub device: String,
    pub clock: Clock,
    version: i64,
    head_hash: String,
}

impl LocalLog {
    pub fn open(conn: &Connection) -> Result<LocalLog> {
        let device = device_id(conn)?;
        let (version, head_hash) = head(conn, &device)?;
        Ok(LocalLog { clock: Clock::load(conn)?, device, version, head_hash })
    }

    /// Seals `change` on record `rid` as this device's next version: into the unsealed log row
    /// `in_place` if given, else as a new row. Updates `slots` (and saves them). Returns the log id.
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &mut self,
        hot: &mut Hot<'_>,
        writers: &mut Writers,
        t: &Table,
        rid: &str,
        slots: &mut Slots,
        change: &Change,
        resolution: bool,
        wall: Option<i64>,
        in_place: Option<i64>,
    ) -> Result<i64> {
        self.version += 1;
        let mut e = Entry {
            table_name: name(&t.name),
            record_id: rid.to_string(),
            operation: name(change.op.as_str()),
            change_data: change.data_json(t),
            device_id: name(&self.device),
            version: self.version,
            timestamp: self.clock.stamp_at(wall),
            bases: change.bases_json(t),
            resolution,
            hash: String::new(),
        };
        e.hash = e.compute_hash(&self.head_hash);
        let id = match in_place {
            Some(id) => {
                log::update(hot, &e, id)?;
                id
            }
            None => log::insert(hot, &e, false)?,
        };
        writers.logged(
            id,
            Writer { device_id: e.device_id.clone(), version: e.version, timestamp: e.timestamp, resolution },
        );
        self.head_hash = e.hash;
        match change.op {
            Op::Insert => {
                slots.live = Some(id);
                slots.alive = true;
            }
            Op::Delete => {
                slots.live = Some(id);
                slots.alive = false;
            }
            Op::Update => {}
        }
        for w in &change.writes {
            slots.cols[w.col] = Some(id);
        }
        slots.save(hot, t, rid)?;
        Ok(id)
    }

    /// Logs this device's setting of `strategy` for table `table` as its next version (see
    /// `wire/setting.rs`), and takes it up here. Returns whether it took effect (it always
    /// does: its timestamp exceeds every one this device has seen).
    pub fn log_setting(
        &mut self,
        conn: &Connection,
        hot: &mut Hot<'_>,
        writers: &mut Writers,
        table: &str,
        strategy: Strategy,
    ) -> Result<bool> {
        let (version, timestamp) =
            self.log_event(hot, writers, SETTINGS_TABLE, setting_record_id(table), setting_data(strategy.as_str()))?;
        Ok(settings::record(conn, table, strategy, &self.device, version, timestamp)?.is_some())
    }

    /// Logs this device's revocation of device `device` as its next version (see
    /// `wire/revocation.rs`). Returns its (version, timestamp); taking it up here is the
    /// caller's (`trust/devices.rs`).
    pub fn log_revocation(&mut self, hot: &mut Hot<'_>, writers: &mut Writers, device: &str) -> Result<(i64, i64)> {
        self.log_event(hot, writers, REVOCATIONS_TABLE, revocation_record_id(device), REVOCATION_DATA.to_string())
    }

    /// Logs succession `s` (this device goes on as `s.to`, signed by its old identity: see
    /// `wire/succession.rs`) as this device's next version.
    pub fn log_succession(&mut self, hot: &mut Hot<'_>, writers: &mut Writers, s: &Succession) -> Result<(i64, i64)> {
        self.log_event(hot, writers, REVOCATIONS_TABLE, revocation_record_id(&s.from), s.data())
    }

    /// Logs a shared event (a setting, a revocation, a succession) on pseudo-table `table` as this device's
    /// next version; returns its (version, timestamp).
    fn log_event(
        &mut self,
        hot: &mut Hot<'_>,
        writers: &mut Writers,
        table: &str,
        record_id: String,
        change_data: String,
    ) -> Result<(i64, i64)> {
        self.version += 1;
        let mut e = Entry {
            table_name: name(table),
            record_id,
            operation: name(SETTING_OPERATION),
            change_data,
            device_id: name(&self.device),
            version: self.version,
            timestamp: self.clock.stamp_at(None),
            bases: SETTING_BASES.to_string(),
            resolution: false,
            hash: String::new(),
        };
        e.hash = e.compute_hash(&self.head_hash);
        let id = log::insert(hot, &e, false)?;
        writers.logged(
            id,
            Writer { device_id: e.device_id.clone(), version: e.version, timestamp: e.timestamp, resolution: false },
        );
        self.head_hash = e.hash;
        Ok((e.version, e.timestamp))
    }

    /// Ends the transaction's logging: saves this device's head and clock, where every
    /// change `writers` saw logged sits ([`Writers::flush`]), and that the log is sealed.
    pub fn finish(&self, conn: &Connection, writers: &mut Writers) -> Result<()> {
        writers.flush(conn)?;
        if self.version > 0 {
            set_head(conn, &self.device, self.version, &self.head_hash)?;
        }
        self.clock.save(conn)?;
        log::mark_sealed(conn)
    }
}
