//! Merging: how a received change meets the record's current writers (DESIGN.md "Merging and
//! conflicts", the model in shared/model), the conflicts it records, and settling them.
pub mod conflicts;
pub mod merger;
mod remote;
pub mod resolve;
mod rules;
