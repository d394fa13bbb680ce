//! Recovering a device restored from an old backup (`peersync recover`): comparing its own chain
//! with what peers hold of it, taking up a succession on a peer, and becoming the new identity.
//!
//! A restored device's chain is an old prefix of its real one, and what it wrote since the
//! restore forks it (the same versions, other changes). Recovery gives it a new identity: the
//! changes of its old identity that no peer holds alike move to the new chain (the restored
//! work, kept); the old identity's real chain, which peers still hold, comes back to it like
//! any other device's at its next sync; and a succession signed with the old key tells every
//! device to trust the new identity in the old one's place, ending any quarantine of it.
use crate::capture::follow::seal;
use crate::db::hot::Hot;
use crate::db::schema::{get_state, set_state};
use crate::db::tx;
use crate::error::{Error, Result};
use crate::store::format::{become_device, device_id};
use crate::store::local::LocalLog;
use crate::store::log::{head, Writers};
use crate::store::{anchors, relabel, runs};
use crate::trust::succession::{self, Outcome};
use crate::wire::Succession;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many versions are probed in one request.
pub const MAX_PROBES: usize = 64;

/// What this device holds of `origin`'s chain: its head, and its hash at the versions asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub origin: String,
    pub version: i64,
    pub hash: String,
    /// The hash at each version asked that this device holds.
    pub hashes: BTreeMap<i64, String>,
    /// The version this device's copy of the chain is anchored at (0: not compacted): below it,
    /// a version it lacks is unknown to it, not different.
    #[serde(default)]
    pub anchored: i64,
}

/// What this device holds of `origin`'s chain at `versions` (at most [`MAX_PROBES`]).
pub fn probe(conn: &Connection, origin: &str, versions: &[i64]) -> Result<Probe> {
    device_id(conn)?;
    if versions.len() > MAX_PROBES {
        return Err(Error::invalid(format!("at most {MAX_PROBES} versions may be probed at once")));
    }
    let (version, hash) = head(conn, origin)?;
    let mut hashes = BTreeMap::new();
    for &v in versions.iter().filter(|&&v| v >= 1 && v <= version) {
        if let Some(h) = runs::hash_at(conn, origin, v)? {
            hashes.insert(v, h);
        }
    }
    Ok(Probe { origin: origin.to_string(), version, hash, hashes, anchored: anchors::version(conn, origin)? })
}

/// Finds how far a peer holds this device's chain alike, by probing: each round asks the peer
/// (and this database) for the hashes at [`ChainSearch::probes`], up to [`MAX_PROBES`] versions
/// spread over what is still unknown, so a chain of a million versions takes four rounds.
/// Hash chains make the answer a prefix: alike at a version means alike at every one before.
#[derive(Debug, Clone)]
pub struct ChainSearch {
    /// The highest version known alike (0: none).
    agreed: i64,
    /// The lowest version known to differ, or one past the last both hold.
    differs: i64,
    local_head: i64,
    peer_head: Option<i64>,
    /// The peer's anchor of this chain: it cannot tell below it (compacted away there).
    peer_anchored: i64,
}

/// What a [`ChainSearch`] found about one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// The highest version of this device's chain the peer holds alike.
    pub agreed: i64,
    /// The first version at which the peer holds another change (a fork), if any.
    pub forked_at: Option<i64>,
    /// The peer's head of this device's chain.
    pub peer_head: i64,
}

impl ChainSearch {
    /// A search over this device's chain of `local_head` versions.
    pub fn new(local_head: i64) -> ChainSearch {
        ChainSearch { agreed: 0, differs: local_head + 1, local_head, peer_head: None, peer_anchored: 0 }
    }

    /// The versions to ask about next; none once the search is done (the first round asks
    /// even when this device holds nothing, to learn the peer's head).
    pub fn probes(&self) -> Vec<i64> {
        // Below the peer's anchor it holds no hashes but the anchor's own, which vouches for
        // every version before it.
        let from = self.agreed.max(self.peer_anchored - 1);
        let gap = self.differs - from - 1;
        if gap <= 0 {
            return Vec::new();
        }
        let n = (gap as usize).min(MAX_PROBES) as i64;
        let mut v: Vec<i64> = (1..=n).map(|i| from + (gap * i + n - 1) / n).collect();
        v.dedup();
        v
    }

    /// Whether the search is done.
    pub fn done(&self) -> bool {
        self.peer_head.is_some() && self.probes().is_empty()
    }

    /// Takes the peer's answer and this database's own, for the same versions.
    pub fn answer(&mut self, local: &Probe, peer: &Probe) {
        self.peer_head = Some(peer.version);
        self.peer_anchored = peer.anchored;
        self.differs = self.differs.min(peer.version.min(self.local_head) + 1);
        for (v, h) in &local.hashes {
            if *v <= self.agreed || *v >= self.differs {
                continue;
            }
            match peer.hashes.get(v) {
                Some(p) if p == h => self.agreed = *v,
                // Compacted away there: unknown, not different (its anchor still compares).
                None if *v < peer.anchored => {}
                _ => {
                    self.differs = *v;
                    break;
                }
            }
        }
    }

    /// What was found (meaningful once [`ChainSearch::done`]).
    pub fn result(&self) -> Agreement {
        let peer_head = self.peer_head.unwrap_or(0);
        let both = peer_head.min(self.local_head);
        // A version found different; none when the only unknowns are below the peer's anchor.
        let forked_at = (self.differs <= both && self.agreed < both).then_some(self.differs);
        Agreement { agreed: self.agreed, forked_at, peer_head }
    }
}

/// The version of this device's chain to keep, given what each peer reached holds of it: the
/// highest any holds alike, but before the first version any holds otherwise. The changes
/// after it are the restore's own (or not confirmed by anyone) and move to the new identity.
pub fn keep_through(found: &[Agreement]) -> i64 {
    let agreed = found.iter().map(|a| a.agreed).max().unwrap_or(0);
    found.iter().filter_map(|a| a.forked_at).map(|v| v - 1).fold(agreed, i64::min)
}

/// Whether what the peers hold says this device was restored from a backup: one of them holds
/// a change of its chain it does not hold alike.
pub fn restored(found: &[Agreement]) -> bool {
    found.iter().any(|a| a.peer_head > a.agreed)
}

/// The succession `peersync recover` made and handed to peers, kept until this database takes
/// it up itself, so that a recovery cut short goes on with the same new identity.
pub fn pending_recovery(conn: &Connection) -> Result<Option<Succession>> {
    device_id(conn)?;
    match get_state::<String>(conn, "recovering")? {
        Some(j) => Ok(Some(serde_json::from_str(&j)?)),
        None => Ok(None),
    }
}

/// Keeps `s` as the pending recovery (see [`pending_recovery`]).
pub fn set_pending_recovery(conn: &Connection, s: &Succession) -> Result<()> {
    if s.from != device_id(conn)? {
        return Err(Error::invalid("a pending recovery is of this device"));
    }
    tx::write(conn, |conn| set_state(conn, "recovering", &serde_json::to_string(s)?))
}

/// Takes up succession `s` here (see `trust/succession.rs`), in one transaction.
pub fn take_succession(conn: &Connection, s: &Succession) -> Result<Outcome> {
    let me = device_id(conn)?;
    tx::write(conn, |conn| succession::receive(conn, &me, s))
}

/// What [`recover`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub old_id: String,
    pub new_id: String,
    /// The old identity's chain kept here: the versions the peers hold alike.
    pub kept_through: i64,
    /// The old identity's changes moved to the new identity's chain.
    pub moved: i64,
    /// Devices this device had quarantined for sending back its own old changes, released.
    pub released: Vec<String>,
}

/// Makes this database the new identity `s.to` (with `s.public_key`) of the device it was:
/// its own changes after version `keep_through` move to the new chain, then the succession is
/// logged on it, all in one transaction. `s` must be this device's own, signed with its key.
pub fn recover(conn: &Connection, s: &Succession, keep_through: i64) -> Result<Recovered> {
    let me = device_id(conn)?;
    s.check()?;
    if s.from != me {
        return Err(Error::invalid(format!("this database is device {me}, not {}: nothing to recover", s.from)));
    }
    let own_key: Option<String> =
        conn.query_row("SELECT public_key FROM sync_devices WHERE device_id = ?1", [&me], |r| r.get(0))?;
    if !own_key.is_some_and(|k| s.verifies(&k)) {
        return Err(Error::Unauthorized(
            "the succession is not signed with this device's key: nothing was changed".into(),
        ));
    }
    seal(conn)?;
    tx::write(conn, |conn| {
        let held = head(conn, &me)?.0;
        if keep_through < 0 || keep_through > held {
            return Err(Error::invalid(format!(
                "cannot keep version {keep_through} of this device's chain: it holds 1 to {held}"
            )));
        }
        become_device(conn, &s.to, &s.name, Some(&s.public_key))?;
        conn.execute("UPDATE sync_devices SET succeeded_by = ?2 WHERE device_id = ?1", params![me, s.to])?;
        let moved = relabel::relabel(conn, &me, keep_through, &s.to)?;
        let mut local = LocalLog::open(conn)?;
        let (mut hot, mut writers) = (Hot::new(conn), Writers::default());
        local.log_succession(&mut hot, &mut writers, s)?;
        local.finish(conn, &mut writers)?;
        drop(hot);
        conn.execute("DELETE FROM sync_state WHERE key = 'recovering'", [])?;
        let released: Vec<String> = conn
            .prepare("DELETE FROM sync_quarantine WHERE origin = ?1 RETURNING device_id")?
            .query_map([&me], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Recovered { old_id: me.clone(), new_id: s.to.clone(), kept_through: keep_through, moved, released })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` versions whose hashes are `tag` from version `from` on.
    fn chain(n: i64, from: i64, tag: &'static str) -> impl Fn(&[i64]) -> Probe {
        move |vs: &[i64]| Probe {
            origin: "o".into(),
            version: n,
            hash: String::new(),
            hashes: vs
                .iter()
                .filter(|&&v| v >= 1 && v <= n)
                .map(|&v| (v, if v >= from { format!("{tag}{v}") } else { format!("h{v}") }))
                .collect(),
            anchored: 0,
        }
    }

    fn search(local_n: i64, local: impl Fn(&[i64]) -> Probe, peer: impl Fn(&[i64]) -> Probe) -> (Agreement, usize) {
        let mut s = ChainSearch::new(local_n);
        let mut rounds = 0;
        while !s.done() {
            let p = s.probes();
            assert!(p.len() <= MAX_PROBES);
            s.answer(&local(&p), &peer(&p));
            rounds += 1;
            assert!(rounds < 20, "the search ends");
        }
        (s.result(), rounds)
    }

    #[test]
    fn finds_the_fork_in_a_few_rounds() {
        // Restored at 700,000, then wrote 5 more; the peer holds 900,000 of the real chain.
        let (a, rounds) = search(700_005, chain(700_005, 700_001, "r"), chain(900_000, 1_000_000, "x"));
        assert_eq!(a, Agreement { agreed: 700_000, forked_at: Some(700_001), peer_head: 900_000 });
        assert!(rounds <= 5, "{rounds} rounds");
        // Restored, wrote nothing since: the peer holds more, no fork.
        let (a, _) = search(10, chain(10, 99, "r"), chain(12, 99, "x"));
        assert_eq!(a, Agreement { agreed: 10, forked_at: None, peer_head: 12 });
        // A peer behind: alike as far as it goes.
        let (a, _) = search(10, chain(10, 99, "r"), chain(4, 99, "x"));
        assert_eq!(a, Agreement { agreed: 4, forked_at: None, peer_head: 4 });
        // Forked at the first version, and a peer holding nothing.
        let (a, _) = search(3, chain(3, 1, "r"), chain(3, 1, "x"));
        assert_eq!(a, Agreement { agreed: 0, forked_at: Some(1), peer_head: 3 });
        let (a, _) = search(0, chain(0, 1, "r"), chain(0, 1, "x"));
        assert_eq!(a, Agreement { agreed: 0, forked_at: None, peer_head: 0 });
    }

    #[test]
    fn keeps_what_a_peer_confirms_and_nothing_any_peer_contradicts() {
        let a = |agreed, forked_at, peer_head| Agreement { agreed, forked_at, peer_head };
        assert_eq!(keep_through(&[a(4, None, 4), a(2, Some(3), 9)]), 2);
        assert_eq!(keep_through(&[a(4, None, 4), a(7, None, 7)]), 7);
        assert_eq!(keep_through(&[]), 0);
        assert!(restored(&[a(4, None, 4), a(7, None, 9)]));
        assert!(!restored(&[a(4, None, 4), a(7, None, 7)]));
    }
}
