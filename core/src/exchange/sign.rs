//! Origin signatures in batches: what a batch must carry, checking them, keeping them to relay.
//!
//! A valid signature on the last change of an origin in a batch vouches for all of that
//! origin's changes before it (`wire/signature.rs`). Receivers check it for every origin whose
//! public key they hold, and refuse changes from a device they have revoked, whoever relays them.
use crate::error::{Error, Result};
use crate::store::log::head;
use crate::store::runs;
use crate::trust::devices::device_key;
use crate::wire::{hash_mismatch, is_hex, verify, Batch, HeadSignature};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};

/// What the signature check decided about a batch's origins.
#[derive(Default)]
pub struct Verdict {
    /// Origins this device has revoked: their changes are refused, whoever relays them.
    pub revoked: BTreeSet<String>,
    /// Origins whose new changes do not start at the next version held here: left for later.
    pub deferred: BTreeSet<String>,
    /// Origins whose key this database does not know, in a database that has keys (the
    /// sidecar's): nothing of theirs is applied until an introduction or a pairing brings it.
    pub unknown: BTreeSet<String>,
    /// Origins whose key this database holds, with their new changes in the batch: each must
    /// chain, hash by hash, from the head held here to a version the origin signed.
    chains: Vec<Chain>,
}

/// One origin's new changes, which its signature must vouch for.
struct Chain {
    device: String,
    /// Indexes in the batch of the origin's changes after `have`, one per version (an exact
    /// repeat is left out), in version order: `have + 1`, `have + 2`, ...
    changes: Vec<usize>,
    /// Whether the origin's signature on the last of them verified.
    signed: bool,
}

impl Verdict {
    /// Whether [`Verdict::confirm`] is sure to refuse the batch whatever its hashes: an origin
    /// with no valid signature.
    pub fn refuses(&self) -> bool {
        self.chains.iter().any(|c| !c.signed)
    }

    /// Refuses the batch unless every origin's new changes form an unbroken chain to a version
    /// it signed; `matched[i]` says whether change `i`'s hash, computed on the hash the batch
    /// claims for the version before it (or the head held here), is the one it claims.
    pub fn confirm(&self, batch: &Batch, matched: &[bool]) -> Result<()> {
        for c in &self.chains {
            if let Some(&i) = c.changes.iter().find(|&&i| !matched[i]) {
                return Err(hash_mismatch(&batch.changes[i]));
            }
            if !c.signed {
                return Err(Error::Unauthorized(format!(
                    "sync_apply: changes from device {} up to version {} carry no valid signature of that device; nothing was applied",
                    c.device,
                    batch.changes[*c.changes.last().unwrap()].version
                )));
            }
        }
        Ok(())
    }
}

/// For every origin whose key this database holds: checks the signature on the last of its
/// new changes in the batch; [`Verdict::confirm`] then checks that they chain to it (so every
/// one of them is vouched for, even if only some get applied).
pub fn check_batch(conn: &Connection, me: &str, batch: &Batch) -> Result<Verdict> {
    let mut verdict = Verdict::default();
    let mut by_origin: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in batch.changes.iter().enumerate() {
        by_origin.entry(&*e.device_id).or_default().push(i);
    }
    // A database whose own identity has a key (the sidecar's) applies nothing unsigned; one
    // without keys (SQL-only sync between databases) takes what it is given, as any writer.
    let strict = matches!(device_key(conn, me)?, Some((Some(_), _)));
    for (dev, changes) in by_origin {
        if dev == me {
            continue;
        }
        let key = match device_key(conn, dev)? {
            Some((_, false)) => {
                verdict.revoked.insert(dev.to_string());
                continue;
            }
            Some((Some(key), true)) => key,
            _ if strict => {
                verdict.unknown.insert(dev.to_string());
                continue;
            }
            _ => continue,
        };
        let have = head(conn, dev)?.0;
        // The origin's new changes, one per version (the batch's order is its chain's).
        let mut new: Vec<usize> = Vec::new();
        for i in changes {
            let v = batch.changes[i].version;
            if v > have && new.last().is_none_or(|&l| batch.changes[l].version < v) {
                new.push(i);
            }
        }
        let Some(&first) = new.first() else { continue };
        if batch.changes[first].version != have + 1 {
            verdict.deferred.insert(dev.to_string());
            continue;
        }
        if new.iter().enumerate().any(|(k, &i)| batch.changes[i].version != have + 1 + k as i64) {
            return Err(Error::invalid(format!(
                "sync_apply: malformed batch: the changes of device {dev} do not come in consecutive versions"
            )));
        }
        let last = &batch.changes[*new.last().unwrap()];
        let signed = batch
            .signatures
            .iter()
            .any(|s| s.device_id == dev && s.version == last.version && s.hash == last.hash && verify(&key, s));
        verdict.chains.push(Chain { device: dev.to_string(), changes: new, signed });
    }
    Ok(verdict)
}

/// Keeps the batch's signatures of changes this database now holds, to relay them: checked
/// when the origin's key is known here; kept as they came when it is not (this device cannot
/// check them, but a receiver that knows the key can, and needs them).
pub fn store_batch_signatures(conn: &Connection, batch: &Batch) -> Result<()> {
    for s in &batch.signatures {
        if runs::hash_at(conn, &s.device_id, s.version)?.as_deref() != Some(s.hash.as_str()) {
            continue;
        }
        let ok = match device_key(conn, &s.device_id)? {
            Some((Some(key), true)) => verify(&key, s),
            Some((_, false)) => false,
            _ => is_hex(&s.signature, 128),
        };
        if ok {
            store(conn, s)?;
        }
    }
    Ok(())
}

pub fn store(conn: &Connection, s: &HeadSignature) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sync_signatures(device_id, version, hash, signature) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![s.device_id, s.version, s.hash, s.signature])?;
    Ok(())
}

/// Signatures this database holds for exactly `device:version`.
pub fn stored(conn: &Connection, device: &str, version: i64) -> Result<Option<HeadSignature>> {
    Ok(conn
        .prepare_cached("SELECT hash, signature FROM sync_signatures WHERE device_id = ?1 AND version = ?2")?
        .query_row(params![device, version], |r| {
            Ok(HeadSignature { device_id: device.to_string(), version, hash: r.get(0)?, signature: r.get(1)? })
        })
        .optional()?)
}
