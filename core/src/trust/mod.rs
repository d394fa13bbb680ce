//! Whom this device trusts: paired, introduced, revoked and quarantined devices and their keys,
//! and the changes that wait here for want of a key (or of time).
pub mod devices;
pub mod introductions;
pub mod quarantine;
pub mod quota;
pub mod succession;
pub mod waiting;
