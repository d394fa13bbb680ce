//! Values between SQLite and the engine: reading a column into a [`Value`], binding one.
use crate::wire::Value;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::ToSql;

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Integer(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Columns `from .. from + n` of a row, as values.
pub fn read_values(r: &rusqlite::Row<'_>, from: usize, n: usize) -> rusqlite::Result<Vec<Value>> {
    (from..from + n).map(|i| r.get_ref(i).map(Value::from)).collect()
}
