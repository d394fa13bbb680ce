//! Per-record slot state: who currently holds each slot (liveness, each column) of a record.
//!
//! `sync_meta` has one row per record ever logged: the log id of the liveness writer, whether
//! the record is alive, the log id `cw` that wrote most of its columns, and in `cols` the
//! columns whose writer differs (`{"col": id}`, or empty). Dead records keep their column
//! writers, so a later delete/update comparison and a revival can see them.
use crate::db::hot::{Arg, Hot, HotRow};
use crate::error::Result;
use crate::model::table::Table;
use crate::wire::write_json_string;
use rusqlite::{params, Connection};

#[derive(Debug, Clone)]
pub struct Slots {
    pub live: Option<i64>,
    pub alive: bool,
    /// Writer (log id) of each captured column, by column index.
    pub cols: Vec<Option<i64>>,
    /// Whether the record has a row in `sync_meta` (else it was never logged).
    pub known: bool,
    /// Set by [`Slots::claim_new`]: the state it already stored for this never-logged record.
    claimed: Option<Stored>,
}

/// A `sync_meta` row's (live, alive, cw, cols).
type Stored = (Option<i64>, bool, Option<i64>, String);

/// Columns `added` to table `tbl` after some of its records were stored: no writer of those
/// records wrote them, so each record's state names no writer for them (without this, `cw`
/// would stand for them too, and the first write to a new column would be judged against a
/// change that never wrote it). Rewrites the table's records in pages of 5,000.
pub fn columns_added(conn: &Connection, tbl: i64, added: &[String]) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    let mut page = conn.prepare(
        "SELECT record_id, cols FROM sync_meta WHERE tbl = ?1 AND record_id > ?2 AND cw IS NOT NULL ORDER BY record_id LIMIT 5000",
    )?;
    let mut set = conn.prepare("UPDATE sync_meta SET cols = ?3 WHERE tbl = ?1 AND record_id = ?2")?;
    let mut after = String::new();
    loop {
        let rows: Vec<(String, String)> =
            page.query_map(params![tbl, after], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.0.clone();
        for (rid, cols) in rows {
            let mut m: serde_json::Map<String, serde_json::Value> =
                if cols.is_empty() { serde_json::Map::new() } else { serde_json::from_str(&cols)? };
            for c in added {
                m.entry(c.clone()).or_insert(serde_json::Value::Null);
            }
            set.execute(params![tbl, rid, serde_json::to_string(&m)?])?;
        }
    }
}

impl Slots {
    /// The statement [`Slots::load`] runs.
    const LOAD: &'static str = "SELECT live, alive, cw, cols FROM sync_meta WHERE tbl = ?1 AND record_id = ?2";

    pub fn load(hot: &mut Hot<'_>, t: &Table, rid: &str) -> Result<Slots> {
        let n = t.columns.len();
        let read = |r: &HotRow<'_>| -> rusqlite::Result<Result<Slots>> {
            let (live, alive, cw, cols) = (r.int(0)?, r.int(1)?.unwrap_or(0) != 0, r.int(2)?, r.text(3)?);
            let mut s = Slots { live, alive, cols: vec![cw; n], known: true, claimed: None };
            if !cols.is_empty() {
                let m: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(cols) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(e.into())),
                };
                for (k, v) in m {
                    if let Some(i) = t.column_index(&k) {
                        s.cols[i] = v.as_i64();
                    }
                }
            }
            Ok(Ok(s))
        };
        match hot.query_row(Self::LOAD, [Arg::Int(t.id), Arg::Text(rid)], read)? {
            Some(s) => s,
            None => Ok(Slots::unknown(t)),
        }
    }

    /// `cw` and `cols` as stored: the most common column writer, and the others by name.
    fn encode(&self, t: &Table) -> (Option<i64>, String) {
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
                write_json_string(&t.columns[i], &mut cols);
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
        (cw, cols)
    }

    /// The statements [`Slots::save`] runs: for a known record, and for a new one.
    const UPDATE: &'static str =
        "UPDATE sync_meta SET live = ?3, alive = ?4, cw = ?5, cols = ?6 WHERE tbl = ?1 AND record_id = ?2";
    const INSERT: &'static str =
        "INSERT INTO sync_meta(tbl, record_id, live, alive, cw, cols) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

    /// The statement [`Slots::claim_new`] runs.
    const CLAIM: &'static str =
        "INSERT INTO sync_meta(tbl, record_id, live, alive, cw, cols) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";

    pub fn save(&mut self, hot: &mut Hot<'_>, t: &Table, rid: &str) -> Result<()> {
        let (cw, cols) = self.encode(t);
        if let Some(claimed) = self.claimed.take() {
            self.known = true; // its row exists
            if claimed == (self.live, self.alive, cw, cols.clone()) {
                return Ok(());
            }
        }
        let sql = if self.known { Self::UPDATE } else { Self::INSERT };
        let args = [
            Arg::Int(t.id),
            Arg::Text(rid),
            Arg::from(self.live),
            Arg::from(self.alive),
            Arg::from(cw),
            Arg::Text(&cols),
        ];
        hot.execute(sql, args)?;
        self.known = true;
        Ok(())
    }

    /// The fast path for a record seen for the first time (an INSERT with no bases): stores
    /// `after`, the state the record is expected to have once the change is logged, only if
    /// the record has no state yet: one b-tree search instead of a load and a save. Returns
    /// the record's state before (never logged), whose next [`Slots::save`] writes nothing if
    /// the expectation held (and corrects the row if not); None when the record is known
    /// (then [`Slots::load`] it).
    pub fn claim_new(hot: &mut Hot<'_>, t: &Table, rid: &str, after: &Slots) -> Result<Option<Slots>> {
        let (cw, cols) = after.encode(t);
        let args = [
            Arg::Int(t.id),
            Arg::Text(rid),
            Arg::from(after.live),
            Arg::from(after.alive),
            Arg::from(cw),
            Arg::Text(&cols),
        ];
        let (n, _) = hot.execute(Self::CLAIM, args)?;
        Ok((n == 1).then(|| Slots { claimed: Some((after.live, after.alive, cw, cols)), ..Slots::unknown(t) }))
    }

    /// The state a record has after a first INSERT, logged as `id`, wrote columns `cols`.
    pub fn inserted(t: &Table, id: i64, cols: impl Iterator<Item = usize>) -> Slots {
        let mut s = Slots::unknown(t);
        s.live = Some(id);
        s.alive = true;
        for c in cols {
            s.cols[c] = Some(id);
        }
        s
    }

    /// Whether [`Slots::claim_new`] stored a row for this state that no save has confirmed.
    pub fn is_claimed(&self) -> bool {
        self.claimed.is_some()
    }

    /// The state of a record never logged.
    pub fn unknown(t: &Table) -> Slots {
        Slots { live: None, alive: false, cols: vec![None; t.columns.len()], known: false, claimed: None }
    }

    /// Undoes [`Slots::claim_new`] (its write could not be applied after all).
    pub fn unclaim(conn: &Connection, t: &Table, rid: &str) -> Result<()> {
        conn.prepare_cached("DELETE FROM sync_meta WHERE tbl = ?1 AND record_id = ?2")?.execute(params![t.id, rid])?;
        Ok(())
    }
}
