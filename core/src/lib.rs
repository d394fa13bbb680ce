//! peersync's sync engine: capture, sealing, hashing, export/apply, merge and conflicts.
//!
//! It knows SQL and nothing of networks. The extension (`ext/`) and the sidecar register the
//! same SQL functions through [`register_functions`]; the sidecar also calls the Rust API.
pub mod apply;
pub mod change;
pub mod changes;
pub mod clock;
pub mod conflicts;
pub mod devices;
pub mod error;
pub mod functions;
pub mod hash;
pub mod hot;
pub mod ident;
pub mod local;
pub mod log;
pub mod merge;
pub mod meta;
pub mod peers;
pub mod prepare;
pub mod quarantine;
pub mod resolve;
pub mod rows;
pub mod runs;
pub mod schema;
pub mod seal;
pub mod sign;
pub mod status;
pub mod table;
pub mod track;
pub mod tx;
pub mod value;
pub mod verify;

pub use apply::{apply, parse_batch, Applied};
pub use changes::{changes, changes_json, Batch, HeadSignature, Vector};
pub use error::{Error, Result};
pub use functions::register_functions;
pub use resolve::{resolve, Choice};
pub use schema::{device_id, init};
pub use seal::seal;
pub use status::status;
pub use track::{track, untrack};
pub use verify::{hash_of, verify};

/// The version of peersync (what `sync_version()` returns).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `sync_vector()`: `{device_id: highest contiguous version held}` for every origin.
pub fn vector(conn: &rusqlite::Connection) -> Result<Vector> {
    schema::device_id(conn)?;
    seal(conn)?;
    let mut stmt = conn.prepare_cached("SELECT device_id, version FROM sync_vector")?;
    let v = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}
