//! Statements that apply runs for every change, prepared once for the batch.
//!
//! The connection's statement cache costs a hash of the SQL text, an LRU update and a
//! `clear_bindings` on every use; over 100,000 changes and three statements each, that was
//! about 6% of `sync_apply`. These stay prepared for as long as the operation runs.
use crate::error::Result;
use rusqlite::{Connection, Statement};

pub struct Hot<'c> {
    conn: &'c Connection,
    /// Few statements, found by their SQL text (a short comparison, no hashing).
    stmts: Vec<(String, Statement<'c>)>,
}

impl<'c> Hot<'c> {
    pub fn new(conn: &'c Connection) -> Hot<'c> {
        Hot { conn, stmts: Vec::new() }
    }

    /// The statement for `sql`, prepared on first use.
    pub fn stmt(&mut self, sql: &str) -> Result<&mut Statement<'c>> {
        let i = match self.stmts.iter().position(|(s, _)| s == sql) {
            Some(i) => i,
            None => {
                self.stmts.push((sql.to_string(), self.conn.prepare(sql)?));
                self.stmts.len() - 1
            }
        };
        Ok(&mut self.stmts[i].1)
    }
}
