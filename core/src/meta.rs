//! Per-record slot state: who currently holds each slot (liveness, each column) of a record.
//!
//! `sync_meta` has one row per record ever logged: the log id of the liveness writer, whether
//! the record is alive, the log id `cw` that wrote most of its columns, and in `cols` the
//! columns whose writer differs (`{"col": id}`, or empty). Dead records keep their column
//! writers, so a later delete/update comparison and a revival can see them.
use crate::error::Result;
use crate::table::Table;
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone)]
pub struct Slots {
    pub live: Option<i64>,
    pub alive: bool,
    /// Writer (log id) of each captured column, by column index.
    pub cols: Vec<Option<i64>>,
    /// Whether the record has a row in `sync_meta` (else it was never logged).
    pub known: bool,
}

impl Slots {
    pub fn load(conn: &Connection, t: &Table, rid: &str) -> Result<Slots> {
        let row: Option<(Option<i64>, bool, Option<i64>, String)> = conn
            .prepare_cached("SELECT live, alive, cw, cols FROM sync_meta WHERE tbl = ?1 AND record_id = ?2")?
            .query_row(params![t.id, rid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let n = t.columns.len();
        let Some((live, alive, cw, cols)) = row else {
            return Ok(Slots { live: None, alive: false, cols: vec![None; n], known: false });
        };
        let mut s = Slots { live, alive, cols: vec![cw; n], known: true };
        if !cols.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&cols)?;
            for (k, v) in m {
                if let Some(i) = t.column_index(&k) {
                    s.cols[i] = v.as_i64();
                }
            }
        }
        Ok(s)
    }

    pub fn save(&mut self, conn: &Connection, t: &Table, rid: &str) -> Result<()> {
        // The most common column writer goes in `cw`; the others are listed by name.
        let mut cw = self.cols.first().copied().flatten();
        if self.cols.iter().any(|w| *w != cw) {
            let mut best = (0, cw);
            for w in &self.cols {
                let n = self.cols.iter().filter(|x| *x == w).count();
                if n > best.0 {
                    best = (n, *w);
                }
            }
            cw = best.1;
        }
        let mut cols = String::new();
        for (i, w) in self.cols.iter().enumerate() {
            if *w != cw {
                cols.push(if cols.is_empty() { '{' } else { ',' });
                crate::value::write_json_string(&t.columns[i], &mut cols);
                cols.push(':');
                match w {
                    Some(id) => cols.push_str(&id.to_string()),
                    None => cols.push_str("null"),
                }
            }
        }
        if !cols.is_empty() {
            cols.push('}');
        }
        let sql = if self.known {
            "UPDATE sync_meta SET live = ?3, alive = ?4, cw = ?5, cols = ?6 WHERE tbl = ?1 AND record_id = ?2"
        } else {
            "INSERT INTO sync_meta(tbl, record_id, live, alive, cw, cols) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        };
        conn.prepare_cached(sql)?.execute(params![t.id, rid, self.live, self.alive, cw, cols])?;
        self.known = true;
        Ok(())
    }
}
