//! SQLite plumbing: quoting identifiers, write transactions, statements bound without copies,
//! value conversions, and the sync tables' DDL and state. Knows no sync rule.
pub mod host;
pub mod hot;
pub mod ident;
pub mod schema;
pub mod tx;
mod values;

pub use values::read_values;
