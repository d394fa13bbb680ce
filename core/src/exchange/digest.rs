//! `sync_digest()` and range digests: every tracked table's rows as order-independent digests,
//! with the vector they were taken at, so two devices can compare content, not only logs.
//!
//! A row's hash is SHA-256 over its tracked columns in name order, each as the column's name,
//! a NUL, the value's canonical literal (as in record ids: exact for every type) and a NUL. A
//! table's digest is the sum of its rows' hashes as 256-bit big-endian numbers, modulo 2^256:
//! it does not depend on row order or on the order of columns in the table. It is computed on
//! demand, one pass over each table, in a read transaction (app writes go on meanwhile).
//!
//! A range is the rows whose record id's SHA-256, in hex, starts with a prefix; a range digest
//! splits it into 16 by the next hex digit, so two devices narrow a difference down to records
//! in a few round trips (see [`range`]).
use crate::capture::follow::seal;
use crate::db::ident::{quote_ident, quote_list};
use crate::db::read_values;
use crate::error::{Error, Result};
use crate::exchange::export::vector;
use crate::model::table::{Table, Tables};
use crate::store::log;
use crate::wire::{record_id, Vector};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// One table's (or one range's) digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    pub rows: i64,
    /// 64 lowercase hex characters.
    pub digest: String,
}

/// What `sync_digest()` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The vector the digests were taken at (this database's, in the same transaction).
    pub vector: Vector,
    pub tables: BTreeMap<String, TableDigest>,
}

/// A range of one table's records: its 16 sub-ranges' digests and, when it holds at most
/// [`RANGE_ROWS`] rows, each row's hash by record id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub table: String,
    /// Lowercase hex: the start of the SHA-256 of the record ids in this range.
    pub prefix: String,
    pub vector: Vector,
    /// Non-empty sub-ranges, by their prefix (this one and one more hex digit).
    pub ranges: BTreeMap<String, TableDigest>,
    /// Each row's hash by record id, when the range holds at most [`RANGE_ROWS`] rows.
    pub rows: Option<BTreeMap<String, String>>,
}

/// Most rows a range lists one by one.
pub const RANGE_ROWS: i64 = 64;

/// Adds `h` to `sum`, both 256-bit big-endian numbers, modulo 2^256.
fn add(sum: &mut [u8; 32], h: &[u8]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = sum[i] as u16 + h[i] as u16 + carry;
        sum[i] = s as u8;
        carry = s >> 8;
    }
}

/// Runs `f` on a snapshot in which every captured write is sealed, so the vector read in it
/// describes the rows read in it. Seals in a short write transaction, then reads in a
/// deferred one (app writes go on meanwhile); if a write slipped in between, again.
pub fn sealed_snapshot<T>(conn: &Connection, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
    if !conn.is_autocommit() {
        // The caller's transaction is the snapshot; `vector` seals inside it.
        vector(conn)?;
        return f(conn);
    }
    for _ in 0..20 {
        vector(conn)?; // seals, in its own write transaction
        conn.execute_batch("BEGIN")?;
        let r = match log::tail(conn) {
            Ok((_, false)) => f(conn).map(Some),
            Ok((_, true)) => Ok(None),
            Err(e) => Err(e),
        };
        let _ = conn.execute_batch("COMMIT");
        if let Some(v) = r? {
            return Ok(v);
        }
    }
    // Writes keep arriving: take the write lock for one pass.
    crate::db::tx::write(conn, |c| {
        seal(c)?;
        f(c)
    })
}

/// Each row of `t` (the columns in `t.columns`' order) with its hash.
fn scan(conn: &Connection, t: &Table, mut each: impl FnMut(&[crate::wire::Value], &[u8; 32])) -> Result<()> {
    let mut order: Vec<usize> = (0..t.columns.len()).collect();
    order.sort_by(|&a, &b| t.columns[a].cmp(&t.columns[b]));
    let mut stmt = conn.prepare(&format!("SELECT {} FROM {}", quote_list("", &t.columns), quote_ident(&t.name)))?;
    let mut rows = stmt.query([])?;
    let mut text = String::new();
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
        each(&vals, &h.finalize().into());
    }
    Ok(())
}

/// The digests of the tracked tables, read on `conn` as it is (see [`sealed_snapshot`]).
pub fn tables_now(conn: &Connection) -> Result<BTreeMap<String, TableDigest>> {
    let tables = Tables::load(conn)?;
    let mut out = BTreeMap::new();
    for name in tables.names() {
        let t = tables.get(name).expect("a name Tables lists");
        let (mut sum, mut n) = ([0u8; 32], 0i64);
        scan(conn, t, |_, h| {
            add(&mut sum, h);
            n += 1;
        })?;
        out.insert(name.to_string(), TableDigest { rows: n, digest: hex::encode(sum) });
    }
    Ok(out)
}

/// The digest of every tracked table, with the vector it was taken at.
pub fn digest(conn: &Connection) -> Result<Digest> {
    sealed_snapshot(conn, |c| Ok(Digest { vector: held(c)?, tables: tables_now(c)? }))
}

/// The vector this database holds, as sealed (no seal: see [`sealed_snapshot`]).
pub fn held(conn: &Connection) -> Result<Vector> {
    Ok(log::heads(conn)?.into_iter().map(|(d, v, _)| (d, v)).collect())
}

/// The range `prefix` (lowercase hex, at most 64 digits) of tracked table `table`.
pub fn range(conn: &Connection, table: &str, prefix: &str) -> Result<Range> {
    if prefix.len() >= 64 || !prefix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(Error::invalid("a range prefix is lowercase hex, fewer than 64 digits"));
    }
    sealed_snapshot(conn, |c| {
        let tables = Tables::load(c)?;
        let t = tables
            .get(table)
            .ok_or_else(|| Error::invalid(format!("table \"{}\" is not tracked here", crate::wire::shown(table))))?;
        // The prefix as nibbles; a record's place is the nibbles of SHA-256(record id).
        let want: Vec<u8> = prefix.bytes().map(|b| (b as char).to_digit(16).unwrap_or(0) as u8).collect();
        let nibble = |d: &[u8], i: usize| if i.is_multiple_of(2) { d[i / 2] >> 4 } else { d[i / 2] & 0x0f };
        let mut ranges = [([0u8; 32], 0i64); 16];
        let mut rows = BTreeMap::new();
        let mut key = Vec::with_capacity(t.pk.len());
        scan(c, t, |vals, h| {
            key.clear();
            key.extend(t.pk.iter().map(|&i| vals[i].clone()));
            let rid = record_id(&key);
            let place = Sha256::digest(rid.as_bytes());
            if want.iter().enumerate().any(|(i, &n)| nibble(&place, i) != n) {
                return;
            }
            let sub = &mut ranges[nibble(&place, want.len()) as usize];
            add(&mut sub.0, h);
            sub.1 += 1;
            if rows.len() as i64 <= RANGE_ROWS {
                rows.insert(rid, hex::encode(h));
            }
        })?;
        let total: i64 = ranges.iter().map(|r| r.1).sum();
        Ok(Range {
            table: t.name.clone(),
            prefix: prefix.to_string(),
            vector: held(c)?,
            ranges: (0..16u32)
                .filter(|&i| ranges[i as usize].1 > 0)
                .map(|i| {
                    let (sum, n) = ranges[i as usize];
                    let sub = format!("{prefix}{}", char::from_digit(i, 16).expect("a hex digit"));
                    (sub, TableDigest { rows: n, digest: hex::encode(sum) })
                })
                .collect(),
            rows: (total <= RANGE_ROWS).then_some(rows),
        })
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
