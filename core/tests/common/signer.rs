//! Peers with key pairs, as the sidecar runs them: signed batches, pairing, the mesh.
use super::Peer;
use ed25519_dalek::SigningKey;
use peersync_core::{Batch, Vector};

/// A peer with a key pair: its identity row holds the public key.
pub struct Signer {
    pub p: Peer,
    pub key: SigningKey,
}

impl Signer {
    pub fn new(name: &str, seed: u8) -> Signer {
        let p = Peer::standard(name, "timestamp_wins", "timestamp_wins");
        let key = SigningKey::from_bytes(&[seed; 32]);
        peersync_core::set_identity(&p.conn, Some(name), &public(&key)).unwrap();
        Signer { p, key }
    }

    /// What the sidecar sends `to`: a page of at most `limit` changes it lacks, signed by this device.
    pub fn batch_for(&self, to: &Peer, limit: i64) -> Batch {
        peersync_core::outgoing(&self.p.conn, &self.key, &vector(to), limit).unwrap()
    }

    /// What the sidecar sends `to`: a page of what it lacks, signed by this device.
    pub fn outgoing(&self, to: &Signer) -> Batch {
        self.batch_for(&to.p, 1000)
    }

    /// Sends `to` what it lacks (one page), and returns what it made of it.
    pub fn send(&self, to: &Signer) -> peersync_core::Applied {
        peersync_core::apply(&to.p.conn, &self.outgoing(to)).unwrap()
    }

    /// Sends `to` what it lacks until nothing is left, both ways.
    pub fn sync_with(&self, to: &Signer) {
        for _ in 0..3 {
            self.send(to);
            to.send(self);
        }
    }

    pub fn trusts(&self, other: &Signer) {
        peersync_core::trust(&self.p.conn, &other.p.dev, &public(&other.key), Some(&other.p.name), None).unwrap();
    }

    pub fn authorized(&self, other: &Signer) -> bool {
        peersync_core::device(&self.p.conn, &other.p.dev).unwrap().unwrap().is_authorized
    }
}

pub fn public(k: &SigningKey) -> String {
    hex::encode(k.verifying_key().to_bytes())
}

pub fn vector(p: &Peer) -> Vector {
    peersync_core::vector(&p.conn).unwrap()
}

/// Devices that all trust each other.
pub fn mesh<const N: usize>(names: [&str; N]) -> [Signer; N] {
    let s: [Signer; N] = std::array::from_fn(|i| Signer::new(names[i], i as u8 + 1));
    for x in &s {
        for y in &s {
            if x.p.dev != y.p.dev {
                x.trusts(y);
            }
        }
    }
    s
}
