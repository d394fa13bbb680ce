//! Logging this device's own changes: version, timestamp, bases, hash chain, slot state.
use crate::change::{Change, Op};
use crate::clock::Clock;
use crate::error::Result;
use crate::log::{head, set_head, Entry, Writer, Writers};
use crate::meta::Slots;
use crate::schema::device_id;
use crate::table::Table;
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
        conn: &Connection,
        hot: &mut crate::hot::Hot<'_>,
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
            table_name: crate::log::name(&t.name),
            record_id: rid.to_string(),
            operation: crate::log::name(change.op.as_str()),
            change_data: change.data_json(t),
            device_id: crate::log::name(&self.device),
            version: self.version,
            timestamp: self.clock.stamp_at(wall),
            bases: change.bases_json(t),
            resolution,
            hash: String::new(),
        };
        e.hash = e.compute_hash(&self.head_hash);
        let id = match in_place {
            Some(id) => {
                e.update(hot, id)?;
                id
            }
            None => e.insert(hot, false)?,
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
        slots.save(conn, t, rid)?;
        Ok(id)
    }

    /// Ends the transaction's logging: saves this device's head and clock, and where every
    /// change `writers` saw logged sits ([`Writers::flush`]).
    pub fn finish(&self, conn: &Connection, writers: &mut Writers) -> Result<()> {
        writers.flush(conn)?;
        if self.version > 0 {
            set_head(conn, &self.device, self.version, &self.head_hash)?;
        }
        self.clock.save(conn)
    }
}
