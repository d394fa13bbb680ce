//! The wire: what peers exchange and what the hash chains cover. Values and their encodings,
//! changes (entries) and their canonical hash, shared settings (a table's strategy, a revocation) as entries, batches, head signatures, identifier shapes.
//! Pure data and checks: no SQL, no database.
mod batch;
mod digits;
mod entry;
mod hash;
mod ids;
mod revocation;
mod setting;
mod signature;
mod succession;
mod value;

pub use batch::{
    check_entry, describe, hash_mismatch, parse_batch, parse_vector, Batch, Chains, HeadSignature, Introduction, Place,
    Vector, BATCH_FORMAT, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use entry::{name, reference, Entry, EntryRef};
pub use ids::{check_device_id, check_device_name, check_public_key, is_device_id, is_hex, parse_reference, shown};
pub use revocation::{is_revocation, parse_revocation, revocation_record_id, REVOCATIONS_TABLE, REVOCATION_DATA};
pub use setting::{
    is_setting, parse_setting, setting_data, setting_record_id, SETTINGS_TABLE, SETTING_BASES, SETTING_OPERATION,
};
pub use signature::{introduce, sign, verify, verify_introduction};
pub use succession::{is_succession, parse_succession, Succession};
pub use value::{parse_literals, quote_literal, record_id, write_json_string, Value};

/// The version of peersync (what `sync_version()` returns).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
