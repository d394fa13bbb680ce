//! Reading and writing rows of tracked tables by primary key (quoted identifiers, bound values).
use crate::db::hot::{Arg, Hot};
use crate::db::ident::{quote_ident, quote_list};
use crate::db::read_values;
use crate::error::Result;
use crate::model::table::Table;
use crate::wire::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

fn key_cond(t: &Table, first: usize) -> String {
    t.pk.iter()
        .enumerate()
        .map(|(k, &i)| format!("{} = ?{}", quote_ident(&t.columns[i]), first + k))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The row's captured columns, if the row exists.
pub fn read(conn: &Connection, t: &Table, key: &[Value]) -> Result<Option<Vec<Value>>> {
    let sql = t.sql.read.get_or_init(|| {
        format!("SELECT {} FROM {} WHERE {}", quote_list("", &t.columns), quote_ident(&t.name), key_cond(t, 1))
    });
    let n = t.columns.len();
    Ok(conn.prepare_cached(sql)?.query_row(params_from_iter(key.iter()), |r| read_values(r, 0, n)).optional()?)
}

/// The statement [`insert`] runs for table `t`.
fn insert_sql(t: &Table) -> &str {
    t.sql.insert.get_or_init(|| {
        let marks = (1..=t.columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        format!("INSERT INTO {} ({}) VALUES ({marks})", quote_ident(&t.name), quote_list("", &t.columns))
    })
}

/// Inserts the whole row (`values`, in column order). A row that already holds the key here
/// is a constraint error: another record (the same key under the column's collation, say)
/// has that row, and one row has one record id.
pub fn insert<'v>(hot: &mut Hot<'_>, t: &Table, values: impl IntoIterator<Item = &'v Value>) -> rusqlite::Result<()> {
    hot.execute(insert_sql(t), values.into_iter().map(Arg::from))?;
    Ok(())
}

/// Inserts a row giving only columns `cols` (in `t`'s column order) `values`: the others take
/// their declared default. `or_ignore`: a row that breaks a constraint is left out.
pub fn insert_some(
    conn: &Connection,
    t: &Table,
    cols: &[usize],
    values: &[&Value],
    or_ignore: bool,
) -> rusqlite::Result<()> {
    let names: Vec<String> = cols.iter().map(|&c| t.columns[c].clone()).collect();
    let marks = (1..=cols.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let verb = if or_ignore { "INSERT OR IGNORE" } else { "INSERT" };
    let sql = format!("{verb} INTO {} ({}) VALUES ({marks})", quote_ident(&t.name), quote_list("", &names));
    conn.prepare_cached(&sql)?.execute(params_from_iter(values.iter()))?;
    Ok(())
}

/// Sets some columns of an existing row.
pub fn update(conn: &Connection, t: &Table, key: &[Value], cols: &[(usize, &Value)]) -> rusqlite::Result<()> {
    let cols: Vec<&(usize, &Value)> = cols.iter().filter(|(c, _)| !t.is_pk(*c)).collect();
    if cols.is_empty() {
        return Ok(());
    }
    let set = cols
        .iter()
        .enumerate()
        .map(|(k, (c, _))| format!("{} = ?{}", quote_ident(&t.columns[*c]), k + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("UPDATE {} SET {set} WHERE {}", quote_ident(&t.name), key_cond(t, cols.len() + 1));
    let params = cols.iter().map(|(_, v)| *v).chain(key.iter());
    conn.prepare_cached(&sql)?.execute(params_from_iter(params))?;
    Ok(())
}

pub fn delete(conn: &Connection, t: &Table, key: &[Value]) -> rusqlite::Result<()> {
    let sql = t.sql.delete.get_or_init(|| format!("DELETE FROM {} WHERE {}", quote_ident(&t.name), key_cond(t, 1)));
    conn.prepare_cached(sql)?.execute(params_from_iter(key.iter()))?;
    Ok(())
}

/// The value that log entry `writer` wrote to column `col` (NULL when there is no writer).
/// This is how the values of a deleted record are known: dead records keep their writers.
pub fn written_value(conn: &Connection, t: &Table, col: usize, writer: Option<i64>) -> Result<Value> {
    let Some(id) = writer else { return Ok(Value::Null) };
    let data: Option<String> = conn
        .prepare_cached("SELECT change_data FROM sync_log WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(data) = data else { return Ok(Value::Null) };
    let j: serde_json::Value = serde_json::from_str(&data)?;
    match j.get(&t.columns[col]) {
        Some(v) => Value::from_json(v, &|| format!("log entry {id}")),
        None => Ok(Value::Null),
    }
}

/// Whether the row with primary key `key` exists in `t` now.
pub fn exists(conn: &Connection, t: &Table, key: &[Value]) -> Result<bool> {
    let mut stmt = conn.prepare_cached(&format!("SELECT 1 FROM {} WHERE {}", quote_ident(&t.name), key_cond(t, 1)))?;
    Ok(stmt.exists(params_from_iter(key.iter()))?)
}
