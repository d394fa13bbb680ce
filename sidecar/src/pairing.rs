//! The pairing protocol: one-time codes, SPAKE2 over the code, key confirmation, and the
//! authenticated exchange of what each device needs to trust and reach the other.
//!
//! The inviter shows `SECRET@HOST:PORT` (SECRET: 8 characters, 40 bits, from a 32-letter
//! alphabet without look-alikes; HOST:PORT: where its pairing endpoint listens). The joiner
//! sends `POST /pair/start {"msg"}` (its SPAKE2 message, side B); the inviter answers with its
//! own (side A) and a session id. Both hold the same 32-byte key only if both used the same
//! SECRET. The joiner then sends `POST /pair/finish {"session", "payload", "tag"}`: its
//! [`Payload`] and an HMAC-SHA256 over the transcript and payload with the joiner's key (so it
//! proves it knows the code first). The inviter checks it and only then answers with its own
//! payload and tag (the inviter's key). Keys come from HKDF-SHA256 over the SPAKE2 key.
use crate::error::{Error, Result};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

/// The letters a code's secret is made of (no 0/o, 1/l).
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Characters in a code's secret (5 bits each).
pub const SECRET_LEN: usize = 8;
const ID_A: &[u8] = b"peersync-pair-v1 inviter";
const ID_B: &[u8] = b"peersync-pair-v1 joiner";

/// A pairing code: the secret and where the inviter's pairing endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub secret: String,
    pub addr: String,
}

impl Code {
    /// A new code with a random secret for an endpoint at `addr`.
    pub fn new(addr: &str) -> Result<Code> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        let secret = bytes.iter().map(|b| ALPHABET[(*b & 31) as usize] as char).collect();
        Ok(Code { secret, addr: addr.to_string() })
    }

    /// Parses `abcd-efgh@HOST:PORT` (dashes and case in the secret do not matter).
    pub fn parse(text: &str) -> Result<Code> {
        let bad = || Error::Cli(format!("\"{}\" is not a pairing code (like abcd-efgh@100.64.0.1:7447)", text.trim()));
        let (secret, addr) = text.trim().split_once('@').ok_or_else(bad)?;
        let secret: String = secret.chars().filter(|c| *c != '-').map(|c| c.to_ascii_lowercase()).collect();
        if secret.len() != SECRET_LEN || !secret.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(bad());
        }
        let port = addr.rsplit_once(':').map(|(_, p)| p).ok_or_else(bad)?;
        if addr.is_empty() || port.parse::<u16>().is_err() || addr.contains(['/', ' ', '@']) {
            return Err(bad());
        }
        Ok(Code { secret, addr: addr.to_string() })
    }

    /// As shown and typed: `abcd-efgh@HOST:PORT`.
    pub fn shown(&self) -> String {
        format!("{}-{}@{}", &self.secret[..4], &self.secret[4..], self.addr)
    }
}

/// Which side of the exchange.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Inviter,
    Joiner,
}

/// One side's SPAKE2 state until the other's message arrives.
pub struct Pake(Spake2<Ed25519Group>);

impl Pake {
    /// Starts this side's SPAKE2 with the code's secret; returns the message to send.
    pub fn start(side: Side, secret: &str) -> (Pake, Vec<u8>) {
        let (pw, a, b) = (Password::new(secret.as_bytes()), Identity::new(ID_A), Identity::new(ID_B));
        let (s, msg) = match side {
            Side::Inviter => Spake2::<Ed25519Group>::start_a(&pw, &a, &b),
            Side::Joiner => Spake2::<Ed25519Group>::start_b(&pw, &a, &b),
        };
        (Pake(s), msg)
    }

    /// Finishes with the other side's message: the session keys (equal on both sides only if
    /// both used the same secret).
    pub fn finish(self, theirs: &[u8], msg_a: &[u8], msg_b: &[u8]) -> Result<Keys> {
        let key = self.0.finish(theirs).map_err(|e| Error::BadRequest(format!("bad pairing message: {e:?}")))?;
        let hk = hkdf::Hkdf::<Sha256>::new(None, &key);
        let (mut inviter, mut joiner) = ([0u8; 32], [0u8; 32]);
        hk.expand(ID_A, &mut inviter).map_err(|e| Error::Internal(e.to_string()))?;
        hk.expand(ID_B, &mut joiner).map_err(|e| Error::Internal(e.to_string()))?;
        let mut transcript = Vec::with_capacity(msg_a.len() + msg_b.len() + 8);
        transcript.extend_from_slice(&(msg_a.len() as u32).to_be_bytes());
        transcript.extend_from_slice(msg_a);
        transcript.extend_from_slice(&(msg_b.len() as u32).to_be_bytes());
        transcript.extend_from_slice(msg_b);
        Ok(Keys { inviter, joiner, transcript })
    }
}

/// The keys one pairing session derived, and its transcript (both SPAKE2 messages).
pub struct Keys {
    inviter: [u8; 32],
    joiner: [u8; 32],
    transcript: Vec<u8>,
}

impl Keys {
    fn mac(&self, side: Side, payload: &[u8]) -> Hmac<Sha256> {
        let key = if side == Side::Inviter { &self.inviter } else { &self.joiner };
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(&self.transcript);
        m.update(payload);
        m
    }

    /// `side`'s tag over `payload` (hex).
    pub fn tag(&self, side: Side, payload: &[u8]) -> String {
        hex::encode(self.mac(side, payload).finalize().into_bytes())
    }

    /// True if `tag` is `side`'s tag over `payload` (compared in constant time).
    pub fn check(&self, side: Side, payload: &[u8], tag: &str) -> bool {
        hex::decode(tag).is_ok_and(|t| self.mac(side, payload).verify_slice(&t).is_ok())
    }
}

/// A peer this device syncs with, as the inviter lists it for the joiner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerUrl {
    pub url: String,
    pub device_id: Option<String>,
}

/// What each side tells the other once the code is confirmed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    pub device_id: String,
    pub public_key: String,
    pub name: Option<String>,
    /// Where this device's `peersync serve` is reached, if it serves.
    pub url: Option<String>,
    /// The inviter's configured peers (the rest of the mesh), for the joiner.
    #[serde(default)]
    pub peers: Vec<PeerUrl>,
    /// The inviter's tracked tables, for the joiner.
    #[serde(default)]
    pub tables: Vec<peersync_core::TrackedTable>,
}

#[derive(Serialize, Deserialize)]
pub struct Start {
    /// hex
    pub msg: String,
}

#[derive(Serialize, Deserialize)]
pub struct Started {
    pub session: String,
    /// hex
    pub msg: String,
}

#[derive(Serialize, Deserialize)]
pub struct Finish {
    pub session: String,
    /// The sender's [`Payload`] as JSON text (the tag covers these exact bytes).
    pub payload: String,
    pub tag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secret_a: &str, secret_b: &str) -> (Keys, Keys) {
        let (a, ma) = Pake::start(Side::Inviter, secret_a);
        let (b, mb) = Pake::start(Side::Joiner, secret_b);
        (a.finish(&mb, &ma, &mb).unwrap(), b.finish(&ma, &ma, &mb).unwrap())
    }

    #[test]
    fn same_code_confirms_and_another_does_not() {
        let (ka, kb) = run("abcdefgh", "abcdefgh");
        let tag = kb.tag(Side::Joiner, b"payload");
        assert!(ka.check(Side::Joiner, b"payload", &tag));
        assert!(!ka.check(Side::Joiner, b"payload2", &tag));
        assert!(!ka.check(Side::Inviter, b"payload", &tag), "a side's tag is not the other's");
        let (ka, kb) = run("abcdefgh", "abcdefgj");
        assert!(!ka.check(Side::Joiner, b"payload", &kb.tag(Side::Joiner, b"payload")));
    }

    #[test]
    fn codes_parse_and_show() {
        let c = Code::new("127.0.0.1:7447").unwrap();
        assert_eq!(Code::parse(&c.shown()).unwrap(), c);
        assert_eq!(Code::parse(" ABCD-EFGH@[::1]:80 ").unwrap().addr, "[::1]:80");
        for bad in ["abcd-efgh", "abcd-efg@h:1", "abcd-efgh@host", "abcd-efgh@h/x:1", "abc0-efgh@h:1"] {
            assert!(Code::parse(bad).is_err(), "{bad}");
        }
    }
}
