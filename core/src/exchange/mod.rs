//! Exchanging changes with peers: export (`sync_changes`, signed batches), the checks and merge
//! of a received batch (`sync_apply`), what peers hold, revoking a device, and the audits
//! (`sync_verify`, `sync_status`, `sync_digest`), bounded history (`sync_compact`) and joining by snapshot, the configured peers and what a pairing
//! device learns.
pub mod apply;
pub mod audit;
pub mod compact;
pub mod digest;
pub mod export;
pub mod held;
pub mod joining;
pub mod peer_list;
pub mod peers;
mod prepare;
pub mod recover;
pub mod revoke;
pub mod sign;
pub mod snapshot;
pub mod status;
pub mod verify;
