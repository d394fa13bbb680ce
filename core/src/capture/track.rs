//! `sync_track` / `sync_untrack`: the plain-SQL capture triggers and each table's stage table.
//!
//! Each write to a tracked table makes its trigger insert one row into `sync_log` (table,
//! record id, operation, origin device, wall-clock reading) and, for INSERT and UPDATE, one
//! row into `sync_stage_<id>` holding the new (and old) column values exactly as SQLite has
//! them. The triggers call no extension function, so every connection's writes are captured.
//! Sealing (see `seal.rs`) later turns these into JSON, versions, timestamps and hashes.
use super::seal::seal_captured;
use super::stage::{capture_guard, create_stage, remove_capture, stage_table, trigger_prefix};
use crate::db::hot::Hot;
use crate::db::ident::{quote_ident, quote_list, quote_literal};
use crate::db::{read_values, tx};
use crate::error::{Error, Result};
use crate::model::clock::{now_us, TRIGGER_WALL_CLOCK};
use crate::model::table::{affinities, column_defaults, introspect, Shape, Strategy, Table, Tables};
use crate::store::format::device_id;
use crate::store::local::LocalLog;
use crate::store::log::Writers;
use crate::store::rows;
use crate::store::settings;
use crate::store::slots::{self, Slots};
use crate::wire::{parse_literals, record_id, Value};
use rusqlite::{params, Connection, OptionalExtension};

/// `sync_track(table [, strategy])`: installs (or refreshes) capture for `name` and logs the
/// rows that are not yet in the log. Returns how many rows it logged.
pub fn track(conn: &Connection, name: &str, strategy: Option<&str>) -> Result<i64> {
    const F: &str = "sync_track";
    let strategy = match strategy {
        None => None,
        Some(s) => Some(Strategy::parse(s).ok_or_else(|| {
            Error::invalid(format!("{F}: unknown strategy '{s}' (use one of: {})", Strategy::NAMES.join(", ")))
        })?),
    };
    let device = device_id(conn).map_err(|_| {
        Error::invalid(format!("{F}: peersync is not initialised here; run `select sync_init()` first"))
    })?;
    let shape = introspect(conn, F, name)?;
    tx::write(conn, |conn| {
        seal_captured(conn)?;
        track_shape(conn, &shape, strategy, &device)
    })
}

/// Tracks the table of `shape` (as SQLite reports it now) with `strategy` (None: the one it
/// has, else the default), inside the caller's write transaction, its captured writes sealed
/// already. Columns added since it was last tracked: their values in rows the log holds are
/// logged if not the column's default (so a write made between the ALTER TABLE and now is not
/// lost). A table tracked before whose triggers are gone (it was dropped) gets back the rows
/// the log holds alive. Returns how many rows it logged as inserts.
pub fn track_shape(conn: &Connection, shape: &Shape, strategy: Option<Strategy>, device: &str) -> Result<i64> {
    // (id, strategy, columns, whether it was dropped: found gone, or tracked and its triggers
    // gone, which a DROP TABLE does; an untracked table has no triggers either).
    let existing: Option<(i64, String, String, bool)> = conn
        .query_row(
            "SELECT id, strategy, columns, dropped_at IS NOT NULL OR (active AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, length('sync_' || sync_tables.id || '_')) = 'sync_' || sync_tables.id || '_')) FROM sync_tables WHERE name = ?1 COLLATE NOCASE ORDER BY active DESC, id LIMIT 1",
            [&shape.name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    // Keep the captured order of columns that still exist; new ones go last.
    let mut columns: Vec<String> = match &existing {
        Some((_, _, cols, _)) => {
            serde_json::from_str::<Vec<String>>(cols)?.into_iter().filter(|c| shape.columns.contains(c)).collect()
        }
        None => Vec::new(),
    };
    let mut added = Vec::new();
    for c in &shape.columns {
        if !columns.contains(c) {
            columns.push(c.clone());
            added.push(c.clone());
        }
    }
    let pk: Vec<usize> =
        shape.pk.iter().map(|&i| columns.iter().position(|c| *c == shape.columns[i]).unwrap()).collect();
    let cols_json = serde_json::to_string(&columns)?;
    let pk_json = serde_json::to_string(&pk)?;
    let (id, recreated) = match existing {
        Some((id, _, _, recreated)) => {
            slots::columns_added(conn, id, &added)?;
            conn.execute(
                "UPDATE sync_tables SET name=?2, columns=?3, pk=?4, active=1, dropped_at=NULL WHERE id=?1",
                params![id, shape.name, cols_json, pk_json],
            )?;
            (id, recreated)
        }
        None => {
            conn.execute(
                "INSERT INTO sync_tables(name, columns, pk) VALUES (?1, ?2, ?3)",
                params![shape.name, cols_json, pk_json],
            )?;
            added.clear(); // every row is logged whole
            (conn.last_insert_rowid(), false)
        }
    };
    let strategy = share_strategy(conn, &shape.name, strategy)?;
    let affinity = affinities(conn, &shape.name, &columns)?;
    let table = Table { sql: Default::default(), id, name: shape.name.clone(), columns, pk, strategy, affinity };
    remove_capture(conn, id)?;
    if recreated {
        restore_rows(conn, &table)?;
    }
    install_capture(conn, &table, shape, device)?;
    let logged = log_existing_rows(conn, &table, device)?;
    log_added_values(conn, &table, &added, device)?;
    seal_captured(conn)?;
    Ok(logged)
}

/// The strategy table `name` has after `sync_track(name [, strategy])`. The strategy is one
/// setting for the table across devices (`store/settings.rs`): only an explicit `strategy`
/// that differs from the one in force is logged as this device's setting, and so reaches every
/// device; without one the table keeps the setting in force (the default when none is known).
/// A strategy set here before strategies were shared is shared now.
fn share_strategy(conn: &Connection, name: &str, strategy: Option<Strategy>) -> Result<Strategy> {
    let held = settings::of(conn, name)?;
    let in_force = held.as_ref().map_or(Strategy::TimestampWins, |h| h.strategy());
    let unshared = held.as_ref().is_some_and(|h| h.unshared());
    let wanted = strategy.unwrap_or(in_force);
    if wanted != in_force || unshared {
        let mut local = LocalLog::open(conn)?;
        let (mut hot, mut writers) = (Hot::new(conn), Writers::default());
        local.log_setting(conn, &mut hot, &mut writers, name, wanted)?;
        local.finish(conn, &mut writers)?;
    }
    Ok(settings::of(conn, name)?.map_or(Strategy::TimestampWins, |h| h.strategy()))
}

/// `sync_untrack(table)`: removes the triggers (after sealing what they captured).
pub fn untrack(conn: &Connection, name: &str) -> Result<i64> {
    const F: &str = "sync_untrack";
    device_id(conn)?;
    let tables = Tables::load(conn)?;
    let lookup: Option<String> = conn
        .query_row("SELECT name FROM sync_tables WHERE name = ?1 COLLATE NOCASE AND active", [name], |r| r.get(0))
        .optional()?;
    let t = match lookup.as_deref().and_then(|n| tables.get(n)) {
        Some(t) => t.clone(),
        None => return Err(Error::invalid(format!("{F}: table \"{name}\" is not tracked"))),
    };
    tx::write(conn, |conn| {
        seal_captured(conn)?;
        remove_capture(conn, t.id)?;
        conn.execute("UPDATE sync_tables SET active = 0 WHERE id = ?1", [t.id])?;
        Ok(1)
    })
}

fn install_capture(conn: &Connection, t: &Table, shape: &Shape, device: &str) -> Result<()> {
    create_stage(conn, t.id, t.columns.len())?;
    for sql in trigger_sql(t, shape, device) {
        conn.execute_batch(&sql)?;
    }
    Ok(())
}

/// The most bytes a row's values may take in a change's JSON, counted as [`too_large`] does:
/// SQLite's longest value by default (10^9 bytes) less room for the rest of the change.
pub const MAX_ROW_JSON: i64 = 1_000_000_000 - (1 << 20);

/// A trigger statement that refuses (aborts) a write whose row could not be logged: its
/// values' JSON (a blob as hex, twice its bytes; a text as its bytes) over [`MAX_ROW_JSON`].
/// Without it the write would succeed and sealing fail on it, holding back every later change.
fn too_large(t: &Table) -> String {
    let size = t
        .columns
        .iter()
        .map(|c| {
            let c = format!("NEW.{}", quote_ident(c));
            format!("CASE typeof({c}) WHEN 'blob' THEN 2 * length({c}) WHEN 'text' THEN length(CAST({c} AS BLOB)) ELSE 0 END")
        })
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "SELECT RAISE(ABORT, 'peersync: this row is too large to sync: its values as JSON (a blob counts twice, as hex) would pass SQLite''s longest value (10^9 bytes); nothing was written') WHERE {size} > {MAX_ROW_JSON};"
    )
}

fn trigger_sql(t: &Table, shape: &Shape, device: &str) -> Vec<String> {
    let tq = quote_ident(&t.name);
    let tl = quote_literal(&t.name);
    let dev = quote_literal(device);
    let stage = stage_table(t.id);
    let pre = trigger_prefix(t.id);
    let key = |row: &str| {
        t.pk.iter().map(|&i| format!("quote({row}.{})", quote_ident(&t.columns[i]))).collect::<Vec<_>>().join("||','||")
    };
    let image = |row: &str| quote_list(&format!("{row}."), &t.columns);
    let same_key =
        t.pk.iter()
            .map(|&i| {
                let c = quote_ident(&t.columns[i]);
                format!("OLD.{c} IS NEW.{c} COLLATE BINARY")
            })
            .collect::<Vec<_>>()
            .join(" AND ");
    let ncols = (0..t.columns.len()).map(|i| format!("n{i}")).collect::<Vec<_>>().join(", ");
    let when = capture_guard(t.id);
    let log = |op: &str, rid: String| {
        format!(
            "INSERT INTO sync_log(table_name, record_id, operation, device_id, timestamp) VALUES ({tl}, {rid}, '{op}', {dev}, {TRIGGER_WALL_CLOCK});"
        )
    };
    let fits = too_large(t);
    let mut v = vec![
        format!(
            "CREATE TRIGGER {} AFTER INSERT ON {tq} WHEN {when} BEGIN {fits} {} INSERT INTO {stage}(log_id, {ncols}) VALUES (last_insert_rowid(), {}); END",
            quote_ident(&format!("{pre}ins")),
            log("INSERT", key("NEW")),
            image("NEW")
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON {tq} WHEN {when} BEGIN {fits} {} INSERT INTO {stage} VALUES (last_insert_rowid(), {}, {}); END",
            quote_ident(&format!("{pre}upd")),
            log("UPDATE", key("OLD")),
            image("NEW"),
            image("OLD")
        ),
        // An UPDATE that changes the primary key is a DELETE of the old key and an INSERT of the
        // new; the plain UPDATE row logged alongside it is dropped when sealing.
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON {tq} WHEN {when} AND NOT ({same_key}) BEGIN {fits} {} {} INSERT INTO {stage}(log_id, {ncols}) VALUES (last_insert_rowid(), {}); END",
            quote_ident(&format!("{pre}updk")),
            log("DELETE", key("OLD")),
            log("INSERT", key("NEW")),
            image("NEW")
        ),
        format!(
            "CREATE TRIGGER {} AFTER DELETE ON {tq} WHEN {when} BEGIN {} END",
            quote_ident(&format!("{pre}del")),
            log("DELETE", key("OLD"))
        ),
    ];
    // INSERT OR REPLACE / UPDATE OR REPLACE may remove *other* rows through a secondary UNIQUE
    // index without firing any DELETE trigger. Before each write, log every row that shares the
    // new unique values as a possible removal ('REPLACE'); sealing keeps it as a DELETE only if
    // that row is really gone.
    if !shape.unique.is_empty() {
        let pkcols: Vec<String> = t.pk.iter().map(|&i| quote_ident(&t.columns[i])).collect();
        let rid =
            t.pk.iter().map(|&i| format!("quote({})", quote_ident(&t.columns[i]))).collect::<Vec<_>>().join("||','||");
        let candidates = |row: &str, exclude_self: bool| {
            shape
                .unique
                .iter()
                .map(|idx| {
                    let mut cond: Vec<String> = idx
                        .iter()
                        .map(|(c, coll)| {
                            format!("{} = {row}.{} COLLATE {}", quote_ident(c), quote_ident(c), quote_ident(coll))
                        })
                        .collect();
                    if exclude_self {
                        let same = pkcols.iter().map(|c| format!("{c} IS OLD.{c}")).collect::<Vec<_>>().join(" AND ");
                        cond.push(format!("NOT ({same})"));
                    }
                    format!(
                        "INSERT INTO sync_log(table_name, record_id, operation, device_id, timestamp) SELECT {tl}, {rid}, 'REPLACE', {dev}, {TRIGGER_WALL_CLOCK} FROM {tq} WHERE {};",
                        cond.join(" AND ")
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        v.push(format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {tq} WHEN {when} BEGIN {} END",
            quote_ident(&format!("{pre}bins")),
            candidates("NEW", false)
        ));
        v.push(format!(
            "CREATE TRIGGER {} BEFORE UPDATE ON {tq} WHEN {when} BEGIN {} END",
            quote_ident(&format!("{pre}bupd")),
            candidates("NEW", true)
        ));
    }
    v
}

/// Logs (unsealed) an INSERT for every row of `t` that the log does not already hold alive.
fn log_existing_rows(conn: &Connection, t: &Table, device: &str) -> Result<i64> {
    let mut rows = conn.prepare(&format!("SELECT {} FROM {}", quote_list("", &t.columns), quote_ident(&t.name)))?;
    let mut alive = conn.prepare_cached("SELECT alive FROM sync_meta WHERE tbl = ?1 AND record_id = ?2")?;
    let mut log = conn.prepare(
        "INSERT INTO sync_log(table_name, record_id, operation, device_id, timestamp) VALUES (?1, ?2, 'INSERT', ?3, ?4)",
    )?;
    let n = t.columns.len();
    let marks = (0..=n).map(|i| format!("?{}", i + 1)).collect::<Vec<_>>().join(", ");
    let ncols = (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>().join(", ");
    let mut stage = conn.prepare(&format!("INSERT INTO {}(log_id, {ncols}) VALUES ({marks})", stage_table(t.id)))?;
    let now = now_us();
    let mut count = 0;
    let mut it = rows.query([])?;
    while let Some(r) = it.next()? {
        let vals = read_values(r, 0, n)?;
        let key: Vec<Value> = t.pk.iter().map(|&i| vals[i].clone()).collect();
        let rid = record_id(&key);
        let is_alive: Option<i64> = alive.query_row(params![t.id, rid], |r| r.get(0)).optional()?;
        if is_alive == Some(1) {
            continue;
        }
        log.execute(params![t.name, rid, device, now])?;
        let id = conn.last_insert_rowid();
        let mut p: Vec<&dyn rusqlite::ToSql> = vec![&id];
        p.extend(vals.iter().map(|v| v as &dyn rusqlite::ToSql));
        stage.execute(&*p)?;
        count += 1;
    }
    Ok(count)
}

/// Logs (unsealed) an UPDATE of columns `added` for every row of `t` the log holds alive
/// whose value in them is not the column's declared default: what was written to a new column
/// before it was tracked (a row that shows the default is what every device that adds the
/// column gets, and what a received insert that does not write the column leaves there). A
/// default that is not a constant counts as unknown: every row's value is logged.
fn log_added_values(conn: &Connection, t: &Table, added: &[String], device: &str) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    let defaults = column_defaults(conn, &t.name)?;
    let added: Vec<(usize, Option<Value>)> = added
        .iter()
        .filter_map(|c| t.column_index(c).map(|i| (i, defaults.get(c).cloned().unwrap_or(Some(Value::Null)))))
        .collect();
    let mut rows = conn.prepare(&format!("SELECT {} FROM {}", quote_list("", &t.columns), quote_ident(&t.name)))?;
    let mut alive = conn.prepare_cached("SELECT alive FROM sync_meta WHERE tbl = ?1 AND record_id = ?2")?;
    let mut log = conn.prepare(
        "INSERT INTO sync_log(table_name, record_id, operation, device_id, timestamp) VALUES (?1, ?2, 'UPDATE', ?3, ?4)",
    )?;
    let n = t.columns.len();
    let marks = (0..=2 * n).map(|i| format!("?{}", i + 1)).collect::<Vec<_>>().join(", ");
    let mut stage = conn.prepare(&format!("INSERT INTO {} VALUES ({marks})", stage_table(t.id)))?;
    let now = now_us();
    let mut it = rows.query([])?;
    while let Some(r) = it.next()? {
        let new = read_values(r, 0, n)?;
        let mut old = new.clone();
        let mut differs = false;
        for (i, default) in &added {
            match default {
                Some(d) if new[*i].sql_is(d) => {}
                Some(d) => {
                    old[*i] = d.clone();
                    differs = true;
                }
                // Unknown default: "before" is a value no row holds, so the seal logs it.
                None => {
                    old[*i] = Value::Blob(b"peersync: no default".to_vec());
                    differs |= !new[*i].sql_is(&old[*i]);
                }
            }
        }
        if !differs {
            continue;
        }
        let key: Vec<Value> = t.pk.iter().map(|&i| new[i].clone()).collect();
        let rid = record_id(&key);
        let is_alive: Option<i64> = alive.query_row(params![t.id, rid], |r| r.get(0)).optional()?;
        if is_alive != Some(1) {
            continue; // logged whole by log_existing_rows
        }
        log.execute(params![t.name, rid, device, now])?;
        let id = conn.last_insert_rowid();
        let mut p: Vec<&dyn rusqlite::ToSql> = vec![&id];
        p.extend(new.iter().map(|v| v as &dyn rusqlite::ToSql));
        p.extend(old.iter().map(|v| v as &dyn rusqlite::ToSql));
        stage.execute(&*p)?;
    }
    Ok(())
}

/// Puts back into `t` (tracked again after it was dropped and created anew) every record the
/// log holds alive and the table lacks, with the values its writers wrote (a column no change
/// wrote takes its default). Dropping a table is not a delete: the other devices keep its rows,
/// and so does this one's log. Runs before the triggers are installed, so it is not captured.
fn restore_rows(conn: &Connection, t: &Table) -> Result<()> {
    let rids: Vec<String> = conn
        .prepare("SELECT record_id FROM sync_meta WHERE tbl = ?1 AND alive")?
        .query_map([t.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut hot = Hot::new(conn);
    for rid in rids {
        let key = parse_literals(&rid)?;
        if key.len() != t.pk.len() || rows::exists(conn, t, &key)? {
            continue;
        }
        let slots = Slots::load(&mut hot, t, &rid)?;
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for (c, w) in slots.cols.iter().enumerate() {
            if let Some(k) = t.pk.iter().position(|&p| p == c) {
                vals.push(key[k].clone());
            } else if w.is_some() {
                vals.push(rows::written_value(conn, t, c, *w)?);
            } else {
                continue;
            }
            cols.push(c);
        }
        rows::insert_some(conn, t, &cols, &vals.iter().collect::<Vec<_>>(), true)?;
    }
    Ok(())
}
