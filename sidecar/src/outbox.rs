//! Batches this device sends (push bodies and pull replies): a page of changes, cut where every origin's head can be vouched for, with head signatures.
//!
//! Our own changes are signed on the spot (core::sign::message over the last of them in the
//! batch). Another origin's changes can only be relayed up to a version whose signature we
//! hold (stored when we received it), so the page is cut at the last point where every
//! origin we hold a key for ends on such a version.
use crate::error::Result;
use ed25519_dalek::{Signer, SigningKey};
use peersync_core::{Batch, HeadSignature, Vector};
use rusqlite::Connection;
use std::collections::HashMap;

/// Grows the page while no prefix of it can be signed, up to this many changes.
const MAX_SEARCH: i64 = 20_000;

/// A batch of what the holder of `since` lacks, at most `limit` changes (more only when no
/// shorter prefix can be vouched for), signed.
pub fn outgoing(conn: &Connection, key: &SigningKey, since: &Vector, limit: i64) -> Result<Batch> {
    let me = peersync_core::device_id(conn)?;
    let mut want = limit;
    loop {
        let mut batch = peersync_core::changes(conn, since, want)?;
        let (best, first) = signable_ends(conn, &me, &batch, limit as usize)?;
        let end = match best.or(first) {
            Some(end) => end,
            None if batch.has_more && want < MAX_SEARCH => {
                want = (want * 4).min(MAX_SEARCH);
                continue;
            }
            // Nothing can be vouched for: send as is; a receiver holding the origin's key
            // refuses it with a message naming the origin.
            None => batch.changes.len().min(limit as usize),
        };
        if end < batch.changes.len() {
            batch.changes.truncate(end);
            batch.has_more = true;
        }
        attach_signatures(conn, key, &me, &mut batch)?;
        return Ok(batch);
    }
}

/// Prefix lengths at which every origin we can vouch for (we hold its key) ends on a version
/// whose signature we hold: the longest one within `limit`, and the shortest one.
fn signable_ends(conn: &Connection, me: &str, batch: &Batch, limit: usize) -> Result<(Option<usize>, Option<usize>)> {
    let mut vouchable: HashMap<&str, bool> = HashMap::new();
    let mut open: HashMap<&str, bool> = HashMap::new(); // origin -> its last change so far is unsigned
    let mut unsigned = 0usize;
    let (mut best, mut first) = (None, None);
    for (i, e) in batch.changes.iter().enumerate() {
        let origin = &*e.device_id;
        if origin != me {
            let v = match vouchable.get(origin) {
                Some(v) => *v,
                None => {
                    let v = matches!(peersync_core::sign::device_key(conn, origin)?, Some((Some(_), true)));
                    vouchable.insert(origin, v);
                    v
                }
            };
            if v {
                let signed = peersync_core::sign::stored(conn, origin, e.version)?.is_some_and(|s| s.hash == e.hash);
                let was_open = open.insert(origin, !signed).unwrap_or(false);
                match (was_open, signed) {
                    (false, false) => unsigned += 1,
                    (true, true) => unsigned -= 1,
                    _ => {}
                }
            }
        }
        if unsigned == 0 {
            if i < limit {
                best = Some(i + 1);
            }
            first.get_or_insert(i + 1);
            if i + 1 >= limit && best.is_some() || i >= limit {
                break;
            }
        }
    }
    Ok((best, first))
}

/// Adds our signature on our last change in the batch, and the stored signatures of other
/// origins' last changes in it.
fn attach_signatures(conn: &Connection, key: &SigningKey, me: &str, batch: &mut Batch) -> Result<()> {
    let mut last: HashMap<&str, (i64, &str)> = HashMap::new();
    for e in &batch.changes {
        last.insert(&*e.device_id, (e.version, e.hash.as_str()));
    }
    let mut sigs = Vec::new();
    for (origin, (version, hash)) in last {
        if origin == me {
            let sig = key.sign(&peersync_core::sign::message(me, version, hash));
            sigs.push(HeadSignature {
                device_id: me.to_string(),
                version,
                hash: hash.to_string(),
                signature: hex::encode(sig.to_bytes()),
            });
        } else if let Some(s) = peersync_core::sign::stored(conn, origin, version)? {
            if s.hash == hash {
                sigs.push(s);
            }
        }
    }
    sigs.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    batch.signatures = sigs;
    Ok(())
}

/// An empty batch: tells a peer our vector (and learns its own in the reply).
pub fn hello(conn: &Connection) -> Result<Batch> {
    let (vector, heads) = peersync_core::changes::vector_and_heads(conn)?;
    Ok(Batch {
        format: peersync_core::changes::FORMAT,
        device_id: peersync_core::device_id(conn)?,
        changes: Vec::new(),
        has_more: false,
        vector,
        signatures: Vec::new(),
        heads,
        prevs: Default::default(),
    })
}
