//! The canonical encoding of a log entry and its SHA-256 hash (each origin's log is a hash chain).
//!
//! The encoding is a sequence of netstrings, `<byte length in decimal>:<bytes>,`, one for each
//! of: the tag `peersync-v1`, table_name, record_id, operation, change_data, device_id,
//! version (decimal), timestamp (decimal), bases, resolution (`1` or `0`), and the previous
//! hash of the same origin (64 lowercase hex characters, or empty for version 1). The hash is
//! the lowercase hex SHA-256 of those bytes.
use super::digits::{decimal, integer};
use super::entry::EntryRef;
use sha2::{Digest, Sha256};

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update(decimal(bytes.len() as u64, &mut [0u8; 20]));
    h.update(b":");
    h.update(bytes);
    h.update(b",");
}

/// Lowercase hex of `bytes`.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

impl EntryRef<'_> {
    /// The hash of this entry's canonical encoding on the chain whose previous hash is
    /// `prev_hash` (its own `hash` field is not part of it).
    pub fn compute_hash(&self, prev_hash: &str) -> String {
        let mut h = Sha256::new();
        field(&mut h, b"peersync-v1");
        field(&mut h, self.table_name.as_bytes());
        field(&mut h, self.record_id.as_bytes());
        field(&mut h, self.operation.as_bytes());
        field(&mut h, self.change_data.as_bytes());
        field(&mut h, self.device_id.as_bytes());
        field(&mut h, integer(self.version, &mut [0u8; 20]));
        field(&mut h, integer(self.timestamp, &mut [0u8; 20]));
        field(&mut h, self.bases.as_bytes());
        field(&mut h, if self.resolution { b"1" } else { b"0" });
        field(&mut h, prev_hash.as_bytes());
        lower_hex(&h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn known_vector() {
        let h = EntryRef {
            table_name: "loans",
            record_id: "'L1'",
            operation: "INSERT",
            change_data: "{\"id\":\"L1\"}",
            device_id: "00112233445566778899aabbccddeeff",
            version: 1,
            timestamp: 1700000000000000,
            bases: "{\"live\":[],\"cols\":{\"id\":[]}}",
            resolution: false,
            hash: "not part of the encoding",
        };
        // The same bytes, spelled out, hashed independently of `field`.
        let enc = "11:peersync-v1,5:loans,4:'L1',6:INSERT,11:{\"id\":\"L1\"},32:00112233445566778899aabbccddeeff,1:1,16:1700000000000000,28:{\"live\":[],\"cols\":{\"id\":[]}},1:0,0:,";
        assert_eq!(h.compute_hash(""), hex::encode(Sha256::digest(enc.as_bytes())));
    }

    #[test]
    fn integers_and_hex_as_the_standard_library_spells_them() {
        for n in [0, 1, 9, 10, 1700000000000000, -1, -42, i64::MAX, i64::MIN] {
            assert_eq!(integer(n, &mut [0u8; 20]), n.to_string().as_bytes());
        }
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&bytes), hex::encode(&bytes));
    }
}
