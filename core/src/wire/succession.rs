//! Successions as the wire carries them: a device restored from a backup (`peersync recover`)
//! goes on under a new identity, and its old identity, with its own key, names the new one.
//!
//! The statement is signed by the old identity's key over
//! `peersync-succession-v1\n<from>\n<to>\n<public_key>\n<name>` (a tag of its own, so no
//! introduction or head signature can be read as one). It travels two ways: in the body of
//! `POST /sync/recover` to the peers the restored device reaches, and as an entry of the new
//! identity's chain, so every other device learns it at its next sync. The entry's one
//! spelling: table_name `sync_devices`, record_id the old id as a text literal, operation
//! `UPDATE`, bases `{}`, not a resolution, change_data exactly
//! `{"succeeded_by":"<to>","public_key":"<hex>","name":"<name>","signature":"<hex>"}`.
use super::batch::describe;
use super::entry::Entry;
use super::ids::{check_device_id, check_device_name, check_public_key, is_device_id};
use super::setting::{event_envelope, event_name};
use super::value::write_json_string;
use crate::error::{Error, Result};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

/// How a succession's change_data starts (a revocation's never does).
const DATA_START: &str = "{\"succeeded_by\":";

/// Device `from` goes on as device `to`, whose key is `public_key`; signed with `from`'s key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Succession {
    pub from: String,
    pub to: String,
    pub public_key: String,
    pub name: String,
    pub signature: String,
}

fn message(from: &str, to: &str, public_key: &str, name: &str) -> Vec<u8> {
    format!("peersync-succession-v1\n{from}\n{to}\n{public_key}\n{name}").into_bytes()
}

impl Succession {
    /// `from`'s statement, made with its `key`, that it goes on as `to` with `public_key`.
    pub fn new(key: &SigningKey, from: &str, to: &str, public_key: &str, name: &str) -> Succession {
        let signature = hex::encode(key.sign(&message(from, to, public_key, name)).to_bytes());
        Succession {
            from: from.to_string(),
            to: to.to_string(),
            public_key: public_key.to_string(),
            name: name.to_string(),
            signature,
        }
    }

    /// Checks the shape of every field (not the signature: that needs `from`'s key).
    pub fn check(&self) -> Result<()> {
        check_device_id(&self.from)?;
        check_device_id(&self.to)?;
        check_public_key(&self.public_key)?;
        check_device_name(&self.name)?;
        if self.from == self.to {
            return Err(Error::invalid("a device cannot succeed itself"));
        }
        Ok(())
    }

    /// Whether it is signed by the holder of `public_key_hex` (the old identity's key).
    pub fn verifies(&self, public_key_hex: &str) -> bool {
        let msg = message(&self.from, &self.to, &self.public_key, &self.name);
        super::signature::verify_bytes(public_key_hex, &msg, &self.signature)
    }

    /// Its entry's change_data (the one spelling).
    pub fn data(&self) -> String {
        let mut s = String::from(DATA_START);
        for (i, (k, v)) in
            [("", &self.to), ("public_key", &self.public_key), ("name", &self.name), ("signature", &self.signature)]
                .into_iter()
                .enumerate()
        {
            if i > 0 {
                s.push(',');
                write_json_string(k, &mut s);
                s.push(':');
            }
            write_json_string(v, &mut s);
        }
        s.push('}');
        s
    }
}

/// Whether entry `e` of the pseudo-table `sync_devices` is a succession (else a revocation).
pub fn is_succession(e: &Entry) -> bool {
    e.change_data.starts_with(DATA_START)
}

/// Reads succession `e`; any spelling but the one [`Succession::data`] writes is refused.
pub fn parse_succession(e: &Entry) -> Result<Succession> {
    let bad = |why: &str| Err(Error::invalid(format!("{}: malformed succession: {why}", describe(e))));
    if !event_envelope(e) {
        return bad("a succession's operation is UPDATE, its bases {} and it is no resolution");
    }
    let from = match event_name(e) {
        Some(d) if is_device_id(&d) => d,
        _ => return bad("record_id must be a device id (32 lowercase hex) as one text literal"),
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Data {
        succeeded_by: String,
        public_key: String,
        name: String,
        signature: String,
    }
    let Ok(d) = serde_json::from_str::<Data>(&e.change_data) else {
        return bad("change_data must be {\"succeeded_by\", \"public_key\", \"name\", \"signature\"}");
    };
    let s = Succession { from, to: d.succeeded_by, public_key: d.public_key, name: d.name, signature: d.signature };
    if let Err(why) = s.check() {
        return bad(&why.to_string());
    }
    if s.data() != e.change_data {
        return bad("change_data is not written the one way a succession is");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{name, revocation::REVOCATIONS_TABLE, setting::event_record_id};

    const FROM: &str = "00112233445566778899aabbccddeeff";
    const TO: &str = "ffeeddccbbaa99887766554433221100";

    fn entry(rid: &str, data: &str) -> Entry {
        Entry {
            table_name: name(REVOCATIONS_TABLE),
            record_id: rid.into(),
            operation: name("UPDATE"),
            change_data: data.into(),
            device_id: name(TO),
            version: 1,
            timestamp: 1,
            bases: "{}".into(),
            resolution: false,
            hash: String::new(),
        }
    }

    #[test]
    fn signed_by_the_old_key_and_spelled_one_way() {
        let old = SigningKey::from_bytes(&[1; 32]);
        let new = SigningKey::from_bytes(&[2; 32]);
        let pk = hex::encode(new.verifying_key().to_bytes());
        let s = Succession::new(&old, FROM, TO, &pk, "laptop");
        assert!(s.verifies(&hex::encode(old.verifying_key().to_bytes())));
        assert!(!s.verifies(&pk), "the new key does not vouch for itself");
        let mut other = s.clone();
        other.to = FROM.replace('0', "1");
        assert!(!other.verifies(&hex::encode(old.verifying_key().to_bytes())), "the successor is signed");

        let e = entry(&event_record_id(FROM), &s.data());
        assert!(is_succession(&e));
        assert_eq!(parse_succession(&e).unwrap(), s);
        assert!(!is_succession(&entry(&event_record_id(FROM), "{\"authorized\":false}")));
        let spaced = s.data().replacen("\":\"", "\": \"", 1);
        for bad in [
            entry(&event_record_id(FROM), &s.data().replace(TO, FROM)),
            entry(&event_record_id(FROM), &spaced),
            entry("'abc'", &s.data()),
            entry(&event_record_id(FROM), "{\"succeeded_by\":1}"),
            entry(&event_record_id(FROM), &s.data().replace("laptop", "lap\ntop")),
        ] {
            let m = parse_succession(&bad).unwrap_err().to_string();
            assert!(m.contains("malformed succession"), "{m}");
        }
    }
}
