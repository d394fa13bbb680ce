//! What a device joining by pairing learns and does: the tracked tables (with strategies and
//! their `CREATE TABLE`), and creating such a table here from the inviter's definition.
use crate::db::ident::{is_reserved_table, quote_ident};
use crate::db::tx;
use crate::error::{Error, Result};
use crate::wire::shown;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// A tracked table as an inviter describes it to the device that pairs with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrackedTable {
    pub name: String,
    pub strategy: String,
    /// Its `CREATE TABLE` statement, as SQLite stores it.
    pub sql: String,
}

/// The tables tracked here that exist, with their strategy and definition, by name.
pub fn tracked_tables(conn: &Connection) -> Result<Vec<TrackedTable>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.name, t.strategy, m.sql FROM sync_tables t JOIN sqlite_master m ON m.type = 'table' AND m.name = t.name
          WHERE t.active ORDER BY t.name",
    )?;
    let rows = stmt.query_map([], |r| Ok(TrackedTable { name: r.get(0)?, strategy: r.get(1)?, sql: r.get(2)? }))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// True if a table (or view) named `name` exists here.
pub fn table_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
        )?
        .query_row([name], |r| r.get::<_, i64>(0))?
        > 0)
}

/// Creates table `name` from `sql`, another device's definition of it: one `CREATE TABLE`
/// statement that creates that table (and its automatic indexes) and nothing else, empty. A
/// statement that does anything else (another name, `AS SELECT` copying local rows, several
/// statements) is refused and nothing changes. Says false (and does nothing) if the table exists.
pub fn create_table(conn: &Connection, name: &str, sql: &str) -> Result<bool> {
    let refuse = |why: &str| Error::invalid(format!("refusing the definition of table \"{}\": {why}", shown(name)));
    if is_reserved_table(name) {
        return Err(refuse("the name is reserved"));
    }
    if table_exists(conn, name)? {
        return Ok(false);
    }
    let head: String = sql.trim_start().chars().take(12).collect::<String>().to_ascii_uppercase();
    if !head.starts_with("CREATE TABLE") {
        return Err(refuse("it is not a CREATE TABLE statement"));
    }
    tx::write(conn, |conn| {
        let before: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        // `prepare` refuses text holding more than one statement.
        let mut stmt = conn.prepare(sql).map_err(|e| refuse(&e.to_string()))?;
        if stmt.readonly() {
            return Err(refuse("it is not a CREATE TABLE statement"));
        }
        stmt.raw_execute().map_err(|e| refuse(&e.to_string()))?;
        drop(stmt);
        let made: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM sqlite_master WHERE (type = 'table' AND name = ?1)
                   OR (type = 'index' AND tbl_name = ?1 AND sql IS NULL)",
            )?
            .query_row([name], |r| r.get(0))?;
        let after: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if !table_exists(conn, name)? || after - before != made {
            return Err(refuse("it does not create exactly that table"));
        }
        let rows: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(name)), [], |r| r.get(0))?;
        if rows > 0 {
            return Err(refuse("it fills the table with rows"));
        }
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::store::format::init(&c).unwrap();
        c
    }

    #[test]
    fn creates_one_table_and_refuses_anything_else() {
        let c = db();
        c.execute_batch("CREATE TABLE secrets(x); INSERT INTO secrets VALUES ('pin')").unwrap();
        assert!(create_table(&c, "notes", "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT)").unwrap());
        assert!(!create_table(&c, "notes", "CREATE TABLE notes(id TEXT PRIMARY KEY)").unwrap());
        for (name, sql) in [
            ("copy", "CREATE TABLE copy AS SELECT * FROM secrets"),
            ("a", "CREATE TABLE b(x)"),
            ("a", "CREATE TABLE a(x); DROP TABLE secrets"),
            ("a", "DROP TABLE secrets"),
            ("a", "CREATE TABLE a(x) -- ok\n;CREATE TABLE c(y)"),
            ("sync_log", "CREATE TABLE sync_log(x)"),
        ] {
            assert!(create_table(&c, name, sql).is_err(), "{sql}");
        }
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sync%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(tables, ["notes", "secrets"]);
    }
}
