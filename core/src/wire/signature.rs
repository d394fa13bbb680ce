//! What devices sign: the heads of their own chains, and introductions of the devices they trust.
//!
//! A device signs (ed25519) the head of its own chain when it sends changes: the message is
//! `peersync-head-v1\n<device_id>\n<version>\n<hash>`. Because each origin's log is a hash
//! chain, a valid signature on the last change of an origin in a batch vouches for all of
//! that origin's changes before it. An introduction is a device vouching for another device's
//! key: `peersync-intro-v1\n<by>\n<device_id>\n<public_key>\n<name>`.
use super::batch::{HeadSignature, Introduction};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The bytes a device signs for the head of its chain at `version`.
pub fn message(device_id: &str, version: i64, hash: &str) -> Vec<u8> {
    format!("peersync-head-v1\n{device_id}\n{version}\n{hash}").into_bytes()
}

/// `device_id`'s signature, made with its `key`, on its chain's head at `version` (`hash`).
pub fn sign(key: &SigningKey, device_id: &str, version: i64, hash: &str) -> HeadSignature {
    let signature = key.sign(&message(device_id, version, hash));
    HeadSignature {
        device_id: device_id.to_string(),
        version,
        hash: hash.to_string(),
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Whether `s` is a valid signature by the holder of `public_key_hex` (strict ed25519).
pub fn verify(public_key_hex: &str, s: &HeadSignature) -> bool {
    verify_bytes(public_key_hex, &message(&s.device_id, s.version, &s.hash), &s.signature)
}

/// The bytes device `by` signs to vouch for device `device_id`'s key and name.
fn intro_message(by: &str, device_id: &str, public_key: &str, name: &str) -> Vec<u8> {
    format!("peersync-intro-v1\n{by}\n{device_id}\n{public_key}\n{name}").into_bytes()
}

/// `by`'s introduction, made with its `key`, of device `device_id` with `public_key` and `name`.
pub fn introduce(key: &SigningKey, by: &str, device_id: &str, public_key: &str, name: &str) -> Introduction {
    let signature = key.sign(&intro_message(by, device_id, public_key, name));
    Introduction {
        by: by.to_string(),
        device_id: device_id.to_string(),
        public_key: public_key.to_string(),
        name: name.to_string(),
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Whether `i` is signed by the holder of `public_key_hex`, the introducer's key.
pub fn verify_introduction(public_key_hex: &str, i: &Introduction) -> bool {
    verify_bytes(public_key_hex, &intro_message(&i.by, &i.device_id, &i.public_key, &i.name), &i.signature)
}

/// Whether `signature` (128 lowercase hex characters) is the holder of `public_key_hex`'s on `msg`.
pub(super) fn verify_bytes(public_key_hex: &str, msg: &[u8], signature: &str) -> bool {
    let Ok(pk) = hex::decode(public_key_hex) else { return false };
    let Ok(pk) = <[u8; 32]>::try_from(pk.as_slice()) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(&pk) else { return false };
    // Strictly lowercase, as made: an altered spelling of the same bytes is an altered batch.
    if !signature.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return false;
    }
    let Ok(sig) = hex::decode(signature) else { return false };
    let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else { return false };
    key.verify_strict(msg, &Signature::from_bytes(&sig)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn public(k: &SigningKey) -> String {
        hex::encode(k.verifying_key().to_bytes())
    }

    #[test]
    fn the_message_is_the_documented_text() {
        assert_eq!(message("ab", 7, "cd"), b"peersync-head-v1\nab\n7\ncd".to_vec());
    }

    #[test]
    fn a_signature_verifies_only_as_made() {
        let (k, other) = (key(1), key(2));
        let s = sign(&k, "00112233445566778899aabbccddeeff", 3, &"a".repeat(64));
        assert!(verify(&public(&k), &s));
        assert!(!verify(&public(&other), &s), "another device's key");
        for tampered in [
            HeadSignature { version: 4, ..s.clone() },
            HeadSignature { hash: "b".repeat(64), ..s.clone() },
            HeadSignature { device_id: "ffffffffffffffffffffffffffffffff".into(), ..s.clone() },
            HeadSignature { signature: s.signature.to_uppercase(), ..s.clone() },
            HeadSignature { signature: s.signature[..126].to_string(), ..s.clone() },
            HeadSignature { signature: "zz".repeat(64), ..s.clone() },
        ] {
            assert!(!verify(&public(&k), &tampered), "{tampered:?}");
        }
        assert!(!verify("not hex", &s));
        assert!(!verify(&public(&k)[..62], &s), "a short key");
    }

    #[test]
    fn an_introduction_verifies_only_as_made() {
        let (k, other) = (key(1), key(2));
        let i = introduce(&k, "aa", "bb", &public(&other), "phone");
        assert!(verify_introduction(&public(&k), &i));
        assert!(!verify_introduction(&public(&other), &i), "signed by the introducer, not the introduced");
        for tampered in [
            Introduction { by: "ab".into(), ..i.clone() },
            Introduction { device_id: "bc".into(), ..i.clone() },
            Introduction { public_key: public(&k), ..i.clone() },
            Introduction { name: "laptop".into(), ..i.clone() },
            Introduction { signature: i.signature.to_uppercase(), ..i.clone() },
        ] {
            assert!(!verify_introduction(&public(&k), &tampered), "{tampered:?}");
        }
    }
}
