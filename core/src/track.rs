//! `sync_track` / `sync_untrack`: the plain-SQL capture triggers and each table's stage table.
//!
//! Each write to a tracked table makes its trigger insert one row into `sync_log` (table,
//! record id, operation, origin device, wall-clock reading) and, for INSERT and UPDATE, one
//! row into `sync_stage_<id>` holding the new (and old) column values exactly as SQLite has
//! them. The triggers call no extension function, so every connection's writes are captured.
//! Sealing (see `seal.rs`) later turns these into JSON, versions, timestamps and hashes.
use crate::clock::TRIGGER_WALL_CLOCK;
use crate::error::{Error, Result};
use crate::ident::{quote_ident, quote_literal};
use crate::schema::device_id;
use crate::table::{introspect, Shape, Strategy, Table, Tables};
use crate::value::{record_id, Value};
use rusqlite::{params, Connection, OptionalExtension};

pub fn stage_table(id: i64) -> String {
    format!("sync_stage_{id}")
}

fn trigger_prefix(id: i64) -> String {
    format!("sync_{id}_")
}

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
    crate::tx::write(conn, |conn| {
        crate::seal::seal(conn)?;
        let existing: Option<(i64, String, String)> = conn
            .query_row("SELECT id, strategy, columns FROM sync_tables WHERE name = ?1", [&shape.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        // Keep the captured order of columns that still exist; new ones go last.
        let mut columns: Vec<String> = match &existing {
            Some((_, _, cols)) => {
                serde_json::from_str::<Vec<String>>(cols)?.into_iter().filter(|c| shape.columns.contains(c)).collect()
            }
            None => Vec::new(),
        };
        for c in &shape.columns {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
        let pk: Vec<usize> =
            shape.pk.iter().map(|&i| columns.iter().position(|c| *c == shape.columns[i]).unwrap()).collect();
        let strategy = strategy
            .or_else(|| existing.as_ref().and_then(|e| Strategy::parse(&e.1)))
            .unwrap_or(Strategy::TimestampWins);
        let cols_json = serde_json::to_string(&columns)?;
        let pk_json = serde_json::to_string(&pk)?;
        let id = match existing {
            Some((id, _, _)) => {
                conn.execute(
                    "UPDATE sync_tables SET strategy=?2, columns=?3, pk=?4, active=1 WHERE id=?1",
                    params![id, strategy.as_str(), cols_json, pk_json],
                )?;
                id
            }
            None => {
                conn.execute(
                    "INSERT INTO sync_tables(name, strategy, columns, pk) VALUES (?1, ?2, ?3, ?4)",
                    params![shape.name, strategy.as_str(), cols_json, pk_json],
                )?;
                conn.last_insert_rowid()
            }
        };
        let table = Table { sql: Default::default(), id, name: shape.name.clone(), columns, pk, strategy };
        remove_capture(conn, id)?;
        install_capture(conn, &table, &shape, &device)?;
        let logged = log_existing_rows(conn, &table, &device)?;
        crate::seal::seal(conn)?;
        Ok(logged)
    })
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
    crate::tx::write(conn, |conn| {
        crate::seal::seal(conn)?;
        remove_capture(conn, t.id)?;
        conn.execute("UPDATE sync_tables SET active = 0 WHERE id = ?1", [t.id])?;
        Ok(1)
    })
}

fn remove_capture(conn: &Connection, id: i64) -> Result<()> {
    for (name, _) in capture_triggers(conn, id)? {
        conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", quote_ident(&name)))?;
    }
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", stage_table(id)))?;
    Ok(())
}

/// The capture triggers of table `id`: (name, CREATE statement).
pub fn capture_triggers(conn: &Connection, id: i64) -> Result<Vec<(String, String)>> {
    let prefix = trigger_prefix(id);
    let mut stmt = conn.prepare_cached(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, length(?1)) = ?1",
    )?;
    let v = stmt.query_map([&prefix], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

fn install_capture(conn: &Connection, t: &Table, shape: &Shape, device: &str) -> Result<()> {
    let n = t.columns.len();
    let stage = stage_table(t.id);
    let mut cols = vec!["log_id INTEGER PRIMARY KEY".to_string()];
    cols.extend((0..n).map(|i| format!("n{i}")));
    cols.extend((0..n).map(|i| format!("o{i}")));
    conn.execute_batch(&format!("CREATE TABLE {stage}({})", cols.join(", ")))?;
    for sql in trigger_sql(t, shape, device) {
        conn.execute_batch(&sql)?;
    }
    Ok(())
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
    let image =
        |row: &str| t.columns.iter().map(|c| format!("{row}.{}", quote_ident(c))).collect::<Vec<_>>().join(", ");
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
    let mut v = vec![
        format!(
            "CREATE TRIGGER {} AFTER INSERT ON {tq} WHEN {when} BEGIN {} INSERT INTO {stage}(log_id, {ncols}) VALUES (last_insert_rowid(), {}); END",
            quote_ident(&format!("{pre}ins")),
            log("INSERT", key("NEW")),
            image("NEW")
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON {tq} WHEN {when} BEGIN {} INSERT INTO {stage} VALUES (last_insert_rowid(), {}, {}); END",
            quote_ident(&format!("{pre}upd")),
            log("UPDATE", key("OLD")),
            image("NEW"),
            image("OLD")
        ),
        // An UPDATE that changes the primary key is a DELETE of the old key and an INSERT of the
        // new; the plain UPDATE row logged alongside it is dropped when sealing.
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON {tq} WHEN {when} AND NOT ({same_key}) BEGIN {} {} INSERT INTO {stage}(log_id, {ncols}) VALUES (last_insert_rowid(), {}); END",
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
    let cols = t.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let mut rows = conn.prepare(&format!("SELECT {cols} FROM {}", quote_ident(&t.name)))?;
    let mut alive = conn.prepare_cached("SELECT alive FROM sync_meta WHERE tbl = ?1 AND record_id = ?2")?;
    let mut log = conn.prepare(
        "INSERT INTO sync_log(table_name, record_id, operation, device_id, timestamp) VALUES (?1, ?2, 'INSERT', ?3, ?4)",
    )?;
    let n = t.columns.len();
    let marks = (0..=n).map(|i| format!("?{}", i + 1)).collect::<Vec<_>>().join(", ");
    let ncols = (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>().join(", ");
    let mut stage = conn.prepare(&format!("INSERT INTO {}(log_id, {ncols}) VALUES ({marks})", stage_table(t.id)))?;
    let now = crate::clock::now_us();
    let mut count = 0;
    let mut it = rows.query([])?;
    while let Some(r) = it.next()? {
        let vals: Vec<Value> = (0..n).map(|i| r.get_ref(i).map(Value::from_ref)).collect::<rusqlite::Result<_>>()?;
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

/// The condition every capture trigger of table `id` fires under: capture of the table is
/// not paused. A paused table has a `sync_state` row, written and removed inside the one
/// write transaction that applies peers' changes, so no other connection ever sees it.
fn capture_guard(id: i64) -> String {
    format!("NOT EXISTS (SELECT 1 FROM sync_state WHERE key = '{}')", pause_key(id))
}

fn pause_key(id: i64) -> String {
    format!("capture_paused:{id}")
}

/// What [`resume_capture`] puts back.
pub struct Paused {
    /// Tables paused by their guard: remove their pause rows.
    guarded: Vec<i64>,
    /// The CREATE statements of the triggers dropped instead.
    dropped: Vec<String>,
}

/// From this many writes on, dropping the triggers for the transaction (one schema change,
/// which makes every connection re-prepare its statements once) costs less than each write
/// firing a trigger only to find its guard closed (about 2 µs each, measured with `make bench`).
pub const DROP_TRIGGERS_FROM: usize = 256;

/// Pauses capture of tables `ids`, about to receive `writes` writes, for the rest of the
/// current write transaction, so changes applied from peers are not captured again as local
/// ones. Returns what [`resume_capture`] needs to put it back (a rollback puts it back too).
/// Pauses do not nest. Triggers installed before the guard existed are always dropped.
pub fn pause_capture(conn: &Connection, ids: &[i64], writes: usize) -> Result<Paused> {
    // A pause row can only outlive its transaction through a bug; never let one stop capture.
    conn.prepare_cached("DELETE FROM sync_state WHERE key >= 'capture_paused:' AND key < 'capture_paused;'")?
        .execute([])?;
    let (mut guarded, mut dropped) = (Vec::new(), Vec::new());
    for &id in ids {
        let triggers = capture_triggers(conn, id)?;
        let guard = capture_guard(id);
        if writes < DROP_TRIGGERS_FROM && triggers.iter().all(|(_, sql)| sql.contains(&guard)) {
            crate::schema::set_state(conn, &pause_key(id), &1i64)?;
            guarded.push(id);
        } else {
            for (name, sql) in triggers {
                conn.execute_batch(&format!("DROP TRIGGER {}", quote_ident(&name)))?;
                dropped.push(sql);
            }
        }
    }
    Ok(Paused { guarded, dropped })
}

pub fn resume_capture(conn: &Connection, paused: Paused) -> Result<()> {
    for id in paused.guarded {
        conn.prepare_cached("DELETE FROM sync_state WHERE key = ?1")?.execute([pause_key(id)])?;
    }
    for sql in paused.dropped {
        conn.execute_batch(&sql)?;
    }
    Ok(())
}
