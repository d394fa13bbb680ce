//! What capture keeps per tracked table besides its triggers: the stage table the triggers
//! write row images into, the triggers' names, and pausing capture while peers' changes apply.
use crate::db::ident::quote_ident;
use crate::db::schema::set_state;
use crate::error::Result;
use rusqlite::Connection;

/// The stage table of tracked table `id`: for each captured INSERT and UPDATE, the row's new
/// (`n0`…) and old (`o0`…) values exactly as SQLite has them, by log id.
pub fn stage_table(id: i64) -> String {
    format!("sync_stage_{id}")
}

/// Creates the stage table of table `id`, which has `n` captured columns.
pub fn create_stage(conn: &Connection, id: i64, n: usize) -> Result<()> {
    let mut cols = vec!["log_id INTEGER PRIMARY KEY".to_string()];
    cols.extend((0..n).map(|i| format!("n{i}")));
    cols.extend((0..n).map(|i| format!("o{i}")));
    conn.execute_batch(&format!("CREATE TABLE {}({})", stage_table(id), cols.join(", ")))?;
    Ok(())
}

/// Removes capture of table `id`: its triggers and its stage table.
pub fn remove_capture(conn: &Connection, id: i64) -> Result<()> {
    for (name, _) in capture_triggers(conn, id)? {
        conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", quote_ident(&name)))?;
    }
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", stage_table(id)))?;
    Ok(())
}

/// The first part of every capture trigger's name for table `id`.
pub fn trigger_prefix(id: i64) -> String {
    format!("sync_{id}_")
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

/// The condition every capture trigger of table `id` fires under: capture of the table is
/// not paused. A paused table has a `sync_state` row, written and removed inside the one
/// write transaction that applies peers' changes, so no other connection ever sees it.
pub fn capture_guard(id: i64) -> String {
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
            set_state(conn, &pause_key(id), &1i64)?;
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
