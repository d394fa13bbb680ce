//! `sync_digest()`: a digest of every tracked table's rows, with the vector it was taken at,
//! so two devices can compare content, not only logs.
//!
//! A row's hash is SHA-256 over its tracked columns in name order, each as the column's name,
//! a NUL, the value's canonical literal (as in record ids: exact for every type) and a NUL. A
//! table's digest is the sum of its rows' hashes as 256-bit big-endian numbers, modulo 2^256:
//! it does not depend on row order or on the order of columns in the table. It is computed on
//! demand, one pass over each table.
use crate::db::ident::{quote_ident, quote_list};
use crate::db::{read_values, tx};
use crate::error::Result;
use crate::exchange::export::vector;
use crate::model::table::Tables;
use crate::wire::Vector;
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// One table's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    pub rows: i64,
    /// 64 lowercase hex characters.
    pub digest: String,
}

/// What `sync_digest()` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// The vector the digests were taken at (this database's, in the same transaction).
    pub vector: Vector,
    pub tables: BTreeMap<String, TableDigest>,
}

/// Adds `h` to `sum`, both 256-bit big-endian numbers, modulo 2^256.
fn add(sum: &mut [u8; 32], h: &[u8]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = sum[i] as u16 + h[i] as u16 + carry;
        sum[i] = s as u8;
        carry = s >> 8;
    }
}

/// The digest of every tracked table, taken in one transaction with the vector.
pub fn digest(conn: &Connection) -> Result<Digest> {
    tx::write(conn, |conn| {
        let vector = vector(conn)?; // seals first
        let tables = Tables::load(conn)?;
        let mut out = BTreeMap::new();
        for name in tables.names() {
            let t = tables.get(name).expect("a name Tables lists");
            let mut order: Vec<usize> = (0..t.columns.len()).collect();
            order.sort_by(|&a, &b| t.columns[a].cmp(&t.columns[b]));
            let mut stmt =
                conn.prepare(&format!("SELECT {} FROM {}", quote_list("", &t.columns), quote_ident(&t.name)))?;
            let mut rows = stmt.query([])?;
            let (mut sum, mut n, mut text) = ([0u8; 32], 0i64, String::new());
            while let Some(r) = rows.next()? {
                let vals = read_values(r, 0, t.columns.len())?;
                let mut h = Sha256::new();
                for &i in &order {
                    text.clear();
                    vals[i].write_literal(&mut text);
                    h.update(t.columns[i].as_bytes());
                    h.update([0]);
                    h.update(text.as_bytes());
                    h.update([0]);
                }
                add(&mut sum, &h.finalize());
                n += 1;
            }
            out.insert(name.to_string(), TableDigest { rows: n, digest: hex::encode(sum) });
        }
        Ok(Digest { vector, tables: out })
    })
}

#[cfg(test)]
mod tests {
    use super::add;

    #[test]
    fn the_sum_carries_and_wraps() {
        let mut s = [0u8; 32];
        s[31] = 0xff;
        let mut one = [0u8; 32];
        one[31] = 1;
        add(&mut s, &one);
        assert_eq!((s[30], s[31]), (1, 0), "carries into the next byte");
        let mut max = [0xffu8; 32];
        add(&mut max, &one);
        assert_eq!(max, [0u8; 32], "wraps modulo 2^256");
    }
}
