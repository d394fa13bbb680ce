//! Each table's strategy here and the shared setting it came from (`sync_tables.strategy`,
//! `strategy_by`, `strategy_at`, `strategy_version`): a setting takes effect when it is later,
//! by the winner rule's order (timestamp, device id, version), than the one held.
//!
//! A setting for a table not tracked here is kept (an inactive `sync_tables` row, no columns),
//! so that tracking the table later takes it up.
use crate::error::Result;
use crate::model::table::Strategy;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The strategy a table has here, and the setting it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StrategyInfo {
    /// The table's name in `sync_tables`.
    pub table: String,
    pub strategy: String,
    /// The device whose setting this is; None: no setting (the default), or a strategy set
    /// here before strategies were shared (this device's own until `sync_track` shares it).
    pub set_by: Option<String>,
    /// The setting's timestamp (microseconds since the Unix epoch, the hybrid clock's).
    pub set_at: Option<i64>,
    /// The setting's version in its device's chain.
    pub version: Option<i64>,
}

impl StrategyInfo {
    /// The strategy as the model reads it (an unknown name is the default).
    pub fn strategy(&self) -> Strategy {
        Strategy::parse(&self.strategy).unwrap_or(Strategy::TimestampWins)
    }

    /// A strategy set on this device before strategies were shared: not a shared setting yet.
    pub fn unshared(&self) -> bool {
        self.set_by.is_none() && self.strategy() != Strategy::TimestampWins
    }

    /// Its place in the order settings are compared by; no setting sorts first.
    fn order(&self) -> Option<(i64, &str, i64)> {
        Some((self.set_at?, self.set_by.as_deref()?, self.version?))
    }
}

/// A row of `SELECT name, strategy, strategy_by, strategy_at, strategy_version FROM sync_tables`.
fn info(r: &rusqlite::Row<'_>) -> rusqlite::Result<StrategyInfo> {
    Ok(StrategyInfo { table: r.get(0)?, strategy: r.get(1)?, set_by: r.get(2)?, set_at: r.get(3)?, version: r.get(4)? })
}

/// The strategy table `name` has here (its name compared as SQLite compares table names), or
/// None when this device knows nothing of the table.
pub fn of(conn: &Connection, name: &str) -> Result<Option<StrategyInfo>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, strategy, strategy_by, strategy_at, strategy_version FROM sync_tables WHERE name = ?1 COLLATE NOCASE ORDER BY active DESC, id LIMIT 1",
        )?
        .query_row([name], info)
        .optional()?)
}

/// Takes up the setting of `strategy` for table `table`, change `by:version` stamped `at`, if
/// it is later than the one held. Returns the `sync_tables` name of the table whose strategy
/// it changed (None when an as late or later setting is held).
pub fn record(
    conn: &Connection,
    table: &str,
    strategy: Strategy,
    by: &str,
    version: i64,
    at: i64,
) -> Result<Option<String>> {
    match of(conn, table)? {
        None => {
            conn.prepare_cached(
                "INSERT INTO sync_tables(name, strategy, columns, pk, active, strategy_by, strategy_at, strategy_version) VALUES (?1, ?2, '[]', '[]', 0, ?3, ?4, ?5)",
            )?
            .execute(params![table, strategy.as_str(), by, at, version])?;
            Ok(Some(table.to_string()))
        }
        Some(held) if held.order() < Some((at, by, version)) => {
            conn.prepare_cached(
                "UPDATE sync_tables SET strategy = ?2, strategy_by = ?3, strategy_at = ?4, strategy_version = ?5 WHERE name = ?1",
            )?
            .execute(params![held.table, strategy.as_str(), by, at, version])?;
            Ok(Some(held.table))
        }
        Some(_) => Ok(None),
    }
}

/// Every table's strategy here, tracked or not, by name.
#[cfg(test)]
pub fn all(conn: &Connection) -> Result<Vec<StrategyInfo>> {
    let mut stmt = conn
        .prepare("SELECT name, strategy, strategy_by, strategy_at, strategy_version FROM sync_tables ORDER BY name")?;
    let v = stmt.query_map([], info)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn the_latest_setting_wins_whatever_the_order_they_arrive_in() {
        let conn = Connection::open_in_memory().unwrap();
        crate::db::schema::create(&conn).unwrap();
        assert_eq!(of(&conn, "t").unwrap(), None);
        // A table not tracked here keeps its setting, inactive.
        assert_eq!(record(&conn, "T", Strategy::Manual, A, 3, 100).unwrap().as_deref(), Some("T"));
        let active: i64 = conn.query_row("SELECT active FROM sync_tables", [], |r| r.get(0)).unwrap();
        assert_eq!(active, 0);
        // Earlier (timestamp, then device id, then version) loses; later wins; names ignore case.
        assert_eq!(record(&conn, "t", Strategy::LocalWins, B, 1, 99).unwrap(), None);
        assert_eq!(record(&conn, "t", Strategy::LocalWins, A, 2, 100).unwrap(), None);
        assert_eq!(record(&conn, "t", Strategy::LocalWins, A, 3, 100).unwrap(), None);
        assert_eq!(record(&conn, "t", Strategy::RemoteWins, B, 1, 100).unwrap().as_deref(), Some("T"));
        let held = of(&conn, "t").unwrap().unwrap();
        assert_eq!(
            (held.strategy(), held.set_by.as_deref(), held.set_at, held.version),
            (Strategy::RemoteWins, Some(B), Some(100), Some(1))
        );
        assert!(!held.unshared());
        assert_eq!(all(&conn).unwrap(), vec![held]);
    }
}
