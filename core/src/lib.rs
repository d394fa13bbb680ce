//! peersync's sync engine: capture, sealing, hashing, export/apply, merge and conflicts.
//!
//! It knows SQL and nothing of networks. The extension (`ext/`) and the sidecar register the
//! same SQL functions through [`register_functions`]; the sidecar and apps also call the Rust
//! API re-exported here, and nothing else: every module is private.
//!
//! The layers, from the bottom up; each imports only the layers below it:
//!
//! | layer | owns |
//! | --- | --- |
//! | `error.rs` | the one error type |
//! | `wire/` | what peers exchange and hash chains cover: values and their encodings, entries and their canonical hash, batches, head signatures, identifier shapes. No SQL |
//! | `db/` | SQLite plumbing: identifier quoting, write transactions, statements bound without copies, the sync tables' DDL and state, the host library's version (the WAL-reset bug) |
//! | `model/` | tracked tables and strategies, a change's writes and bases, the hybrid logical clock |
//! | `store/` | the log and its runs, origin heads, slot state, table rows, this device's own logging, setup and the one migration path |
//! | `trust/` | paired, introduced, revoked and quarantined devices (whether a device may talk to us), the changes that wait here, each origin's write quota |
//! | `capture/` | `sync_track`'s triggers and stage tables, sealing |
//! | `merge/` | the merge rules, conflicts, `sync_resolve` |
//! | `exchange/` | `sync_changes` and signed batches, `sync_apply`, peers' vectors and links, `sync_verify`, `sync_digest` and the audit, `sync_status`, `sync_compact` and snapshots |
//! | `functions.rs` | the SQL functions, each a thin call into the layer that owns it |
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod capture;
mod db;
mod error;
mod exchange;
mod functions;
mod merge;
mod model;
mod store;
mod trust;
mod wire;

pub use error::{Error, Fork, Result};
pub use functions::register_functions;

// The wire format.
pub use wire::{
    introduce, is_device_id, parse_batch, parse_literals, parse_reference, parse_vector, record_id, shown, sign, Batch,
    Entry, HeadSignature, Introduction, Value, Vector, BATCH_FORMAT, DEFAULT_LIMIT, MAX_LIMIT, VERSION,
};
// Setting up, capturing and sealing.
pub use capture::follow::seal;
pub use capture::track::untrack;
pub use exchange::held::{list as schema_waiting, track, Waiting as SchemaWaiting};
pub use model::clock::set_max_skew as set_max_clock_skew;
pub use store::format::{device_id, init, instance, new_identity, set_instance};
pub use store::log::tail as log_tail;
pub use store::settings::{of as strategy_of, StrategyInfo};
// Exchanging changes.
pub use exchange::apply::{apply, Applied};
pub use exchange::export::{
    changes, changes_json, changes_within, hello, outgoing, outgoing_to, outgoing_within, vector, ENTRY_OVERHEAD,
};
pub use exchange::joining::{create_table, table_exists, tracked_tables, TrackedTable};
pub use exchange::peer_list::{add as add_peer, list as configured_peers, remove as remove_peer, ConfiguredPeer};
pub use exchange::peers::{
    exchanged as note_exchange, known as known_vectors, note_known, note_link, note_vector as note_peer_vector, Link,
};
// Comparing content across devices.
pub use exchange::audit::{
    audit, compare as compare_audit, divergences, note_records as note_divergent_records, Audit, Divergence, Outcome,
};
pub use exchange::compact::{anchors as compaction_anchors, compact, AnchorInfo, Compacted, STEP as COMPACT_STEP};
pub use exchange::digest::{digest, range as digest_range, Digest, Range, TableDigest, RANGE_ROWS};
pub use exchange::snapshot::{bootstrap, take as take_snapshot, Snapshot, SNAPSHOT_FORMAT};
pub use exchange::status::status;
pub use exchange::verify::{hash_of, verify};
pub use trust::waiting::{list as waiting, Held, Waiting};
// Conflicts.
pub use merge::conflicts::{
    context as conflict_context, get as conflict, list as conflicts, pending_count as pending_conflicts, Conflict,
    Context as ConflictContext,
};
pub use merge::resolve::{resolve, Choice};
// Devices and trust.
pub use exchange::recover::{
    keep_through, pending_recovery, probe, recover, restored, set_pending_recovery, take_succession, Agreement,
    ChainSearch, Probe, Recovered, MAX_PROBES,
};
pub use exchange::revoke::revoke;
pub use trust::devices::{
    get as device, list as devices, recovery_standing, set_identity, standing, trust, Device, Standing,
};
pub use trust::introductions::introduced_by;
pub use trust::quarantine::{list as quarantined, release, Quarantined};
pub use trust::quota::set as set_origin_quota;
pub use trust::succession::Outcome as SuccessionOutcome;
pub use wire::Succession;
