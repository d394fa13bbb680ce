//! What the engine stores: the log, each origin's chain anchor, and where each origin's changes sit in it (runs), origin
//! heads, each record's slot state, each table's shared strategy, the tracked tables' rows, this device's own logging, and
//! the layout's setup and migration.
pub mod anchors;
pub mod format;
pub mod local;
pub mod log;
pub mod relabel;
pub mod rows;
pub mod runs;
pub mod settings;
pub mod slots;
