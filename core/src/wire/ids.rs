//! The shapes of the wire's identifiers: device ids, hashes, public keys, `device:version` references; and how errors show a peer's text.
use crate::error::{Error, Result};

/// `s` is `n` lowercase hex characters.
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `s` is a device id: 32 lowercase hex characters.
pub fn is_device_id(s: &str) -> bool {
    is_hex(s, 32)
}

/// `s` is a change's hash: 64 lowercase hex characters.
pub fn is_hash(s: &str) -> bool {
    is_hex(s, 64)
}

pub fn check_device_id(id: &str) -> Result<()> {
    if is_device_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(format!("device id \"{id}\" must be 32 lowercase hex characters")))
    }
}

/// Longest device name, in characters.
pub const MAX_DEVICE_NAME: usize = 200;

/// A device name: at most [`MAX_DEVICE_NAME`] characters, no control characters (names travel
/// in signed introductions, one per line of the signed text).
pub fn check_device_name(name: &str) -> Result<()> {
    if name.chars().count() > MAX_DEVICE_NAME || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "device name {} is longer than {MAX_DEVICE_NAME} characters or holds control characters",
            shown(name)
        )));
    }
    Ok(())
}

pub fn check_public_key(key: &str) -> Result<()> {
    let ok = is_hex(key, 64)
        && hex::decode(key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .is_some_and(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("public key \"{key}\" must be an ed25519 public key: 64 lowercase hex characters")))
    }
}

/// Splits `device:version`, how bases name a change.
pub fn parse_reference(s: &str) -> Option<(&str, i64)> {
    let (d, v) = s.rsplit_once(':')?;
    let v: i64 = v.parse().ok()?;
    (v > 0 && !d.is_empty()).then_some((d, v))
}

/// `text` as shown in an error message: a hostile 10,000-character name is cut, not echoed.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
    }
}
