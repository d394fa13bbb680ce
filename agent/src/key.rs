//! The device key as the app hands it over: a 32-byte ed25519 seed, or a PKCS#8 PEM (the
//! sidecar's key file, as `peersync init` writes it).
use crate::code::{Failure, PeersyncCode};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::SigningKey;

/// Reads `bytes` as a raw 32-byte seed, or as PEM text starting `-----BEGIN`.
pub fn parse(bytes: &[u8]) -> Result<SigningKey, Failure> {
    let bad = |why: &str| {
        Failure::new(
            PeersyncCode::PeersyncKey,
            format!("the key must be a 32-byte ed25519 seed or a PKCS#8 PEM private key ({why})"),
        )
    };
    if let Ok(seed) = <[u8; 32]>::try_from(bytes) {
        return Ok(SigningKey::from_bytes(&seed));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad(&format!("got {} bytes that are not a PEM", bytes.len())))?;
    if !text.trim_start().starts_with("-----BEGIN") {
        return Err(bad(&format!("got {} bytes", bytes.len())));
    }
    SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| bad(&format!("the PEM does not hold one: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey;

    #[test]
    fn seed_and_pem_give_the_same_key() {
        let seed = [7u8; 32];
        let key = parse(&seed).unwrap();
        let pem = ed25519_dalek::pkcs8::KeypairBytes { secret_key: seed, public_key: None }
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        assert_eq!(parse(pem.as_bytes()).unwrap().to_bytes(), key.to_bytes());
        for bad in
            [&[1u8; 31][..], &[0u8; 33][..], b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", b""]
        {
            assert_eq!(parse(bad).unwrap_err().code, PeersyncCode::PeersyncKey);
        }
    }
}
