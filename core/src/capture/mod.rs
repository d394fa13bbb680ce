//! Capturing local writes: `sync_track`'s plain-SQL triggers and stage tables, and sealing what
//! they captured into this device's versioned, hashed changes.
pub mod follow;
pub mod seal;
mod stage;
pub mod track;

pub use stage::{pause_capture, resume_capture};
