//! peersync-agent: the phone's peersync, a library the app links (C ABI, no sidecar process).
//!
//! The app's own writes are captured by the triggers `sync_track` installed (plain SQL, any
//! SQLite); this library does the rest on the app's behalf, as a client only: it opens the
//! database with its own bundled SQLite, signs with a key the app hands it as bytes, and pushes
//! and pulls with a peer's `peersync serve` through the sidecar's own client and sync loop (the
//! `peersync` crate without its CLI). The layers, bottom up:
//!
//! | module | owns |
//! | --- | --- |
//! | `code.rs` | the result codes of the C ABI, and which code each error gets |
//! | `key.rs` | the key bytes: a 32-byte ed25519 seed or a PKCS#8 PEM |
//! | `agent.rs` | one open database: open, `sync_once`, status, conflicts, resolve, pair, cancel |
//! | `handles.rs` | the handles the C side holds, checked on every call (a closed one is refused) |
//! | `abi.rs` | the `extern "C"` functions: arguments checked, panics caught, results as JSON |
//! | `ext.rs` | `sqlite3_peersync_init` for `sqlite3_auto_extension` on the bundled SQLite |
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod abi;
mod agent;
mod code;
mod ext;
mod handles;
mod key;

pub use abi::*;
pub use agent::Agent;
pub use code::{Failure, PeersyncCode};
pub use ext::sqlite3_peersync_init;
