//! A change as the wire and the log carry it ([`Entry`]): its fields, its hash, its `device:version` name.
use std::sync::Arc;

/// A sealed change, as logged and as sent to peers (the wire form of a change).
///
/// Its table name, operation and device id are shared ([`name`]): a batch's thousands of
/// entries hold a few distinct ones.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(deserialize_with = "shared_name")]
    pub table_name: Arc<str>,
    pub record_id: String,
    #[serde(deserialize_with = "shared_name")]
    pub operation: Arc<str>,
    pub change_data: String,
    #[serde(deserialize_with = "shared_name")]
    pub device_id: Arc<str>,
    pub version: i64,
    pub timestamp: i64,
    pub bases: String,
    pub resolution: bool,
    pub hash: String,
}

/// An [`Entry`] borrowed from where it is stored: it serializes as the entry does, without
/// copying the text.
#[derive(serde::Serialize)]
pub struct EntryRef<'r> {
    pub table_name: &'r str,
    pub record_id: &'r str,
    pub operation: &'r str,
    pub change_data: &'r str,
    pub device_id: &'r str,
    pub version: i64,
    pub timestamp: i64,
    pub bases: &'r str,
    pub resolution: bool,
    pub hash: &'r str,
}

impl From<EntryRef<'_>> for Entry {
    fn from(e: EntryRef<'_>) -> Entry {
        Entry {
            table_name: name(e.table_name),
            record_id: e.record_id.to_string(),
            operation: name(e.operation),
            change_data: e.change_data.to_string(),
            device_id: name(e.device_id),
            version: e.version,
            timestamp: e.timestamp,
            bases: e.bases.to_string(),
            resolution: e.resolution,
            hash: e.hash.to_string(),
        }
    }
}

impl Entry {
    /// The hash of this entry's canonical encoding on the chain whose previous hash is `prev_hash`.
    pub fn compute_hash(&self, prev_hash: &str) -> String {
        self.as_ref().compute_hash(prev_hash)
    }

    /// This entry, borrowed.
    pub fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            table_name: &self.table_name,
            record_id: &self.record_id,
            operation: &self.operation,
            change_data: &self.change_data,
            device_id: &self.device_id,
            version: self.version,
            timestamp: self.timestamp,
            bases: &self.bases,
            resolution: self.resolution,
            hash: &self.hash,
        }
    }

    /// `device:version`, how bases name a change.
    pub fn reference(&self) -> String {
        reference(&self.device_id, self.version)
    }
}

/// `device:version`, how bases name a change (as `format!("{device}:{version}")` spells it,
/// without the formatting machinery: seal and apply name a writer for every slot they base a
/// change on).
pub fn reference(device: &str, version: i64) -> String {
    let mut digits = [0u8; 20];
    let version = super::digits::integer(version, &mut digits);
    let mut s = String::with_capacity(device.len() + 1 + version.len());
    s.push_str(device);
    s.push(':');
    // (ASCII digits and a sign)
    s.extend(version.iter().map(|&b| b as char));
    s
}

thread_local! {
    /// The names [`name`] handed out last on this thread.
    static NAMES: std::cell::RefCell<Vec<Arc<str>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `s` as a shared string, the same allocation as for the last equal names on this thread:
/// table names, operations and device ids repeat across a batch's entries.
pub fn name(s: &str) -> Arc<str> {
    const KEEP: usize = 16;
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(n) = names.iter().find(|n| ***n == *s) {
            return n.clone();
        }
        let n: Arc<str> = s.into();
        if names.len() == KEEP {
            names.remove(0);
        }
        names.push(n.clone());
        n
    })
}

/// Deserializes a string with [`name`] (serde's error for a non-string is the same as for a
/// `String` field).
fn shared_name<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Arc<str>, D::Error> {
    struct Name;
    impl serde::de::Visitor<'_> for Name {
        type Value = Arc<str>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Arc<str>, E> {
            Ok(name(s))
        }
    }
    d.deserialize_str(Name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_as_format_spells_it() {
        for v in [0, 1, 9, 10, 123456789, -1, i64::MAX, i64::MIN] {
            assert_eq!(
                super::reference("00112233445566778899aabbccddeeff", v),
                format!("00112233445566778899aabbccddeeff:{v}")
            );
        }
    }
}
