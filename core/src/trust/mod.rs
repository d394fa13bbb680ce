//! Whom this device trusts: paired, revoked and quarantined devices and their keys.
pub mod devices;
pub mod quarantine;
