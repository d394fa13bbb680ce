//! Per-record slot state: who currently holds each slot (liveness, each column) of a record.
//!
//! `sync_meta` has one row per record ever logged: the log id of the liveness writer, whether
//! the record is alive, and the log id of each column's writer (`{"col": id}`). Dead records
//! keep their column writers, so a later delete/update comparison and a revival can see them.
use crate::error::Result;
use crate::table::Table;
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone)]
pub struct Slots {
    pub live: Option<i64>,
    pub alive: bool,
    /// Writer (log id) of each captured column, by column index.
    pub cols: Vec<Option<i64>>,
}

impl Slots {
    pub fn load(conn: &Connection, t: &Table, rid: &str) -> Result<Slots> {
        let row: Option<(Option<i64>, bool, String)> = conn
            .prepare_cached("SELECT live, alive, cols FROM sync_meta WHERE tbl = ?1 AND record_id = ?2")?
            .query_row(params![t.id, rid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let mut s = Slots { live: None, alive: false, cols: vec![None; t.columns.len()] };
        if let Some((live, alive, cols)) = row {
            s.live = live;
            s.alive = alive;
            let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&cols)?;
            for (k, v) in m {
                if let (Some(i), Some(id)) = (t.column_index(&k), v.as_i64()) {
                    s.cols[i] = Some(id);
                }
            }
        }
        Ok(s)
    }

    pub fn save(&self, conn: &Connection, t: &Table, rid: &str) -> Result<()> {
        let mut cols = String::from("{");
        let mut first = true;
        for (i, w) in self.cols.iter().enumerate() {
            if let Some(id) = w {
                if !first {
                    cols.push(',');
                }
                first = false;
                crate::value::write_json_string(&t.columns[i], &mut cols);
                cols.push(':');
                cols.push_str(&id.to_string());
            }
        }
        cols.push('}');
        conn.prepare_cached(
            "INSERT OR REPLACE INTO sync_meta(tbl, record_id, live, alive, cols) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![t.id, rid, self.live, self.alive, cols])?;
        Ok(())
    }
}
