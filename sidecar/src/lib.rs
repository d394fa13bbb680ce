//! The sidecar as a library: its modules, so the binary, the fuzz targets and tests can reach them.
#![forbid(unsafe_code)]
pub mod audit;
pub mod auth;
pub mod backoff;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod coding;
pub mod db;
pub mod error;
pub mod httpsig;
pub mod instance;
pub mod joining;
pub mod keys;
pub mod metrics;
pub mod nonces;
pub mod pages;
pub mod pairing;
pub mod pushed;
pub mod routes;
pub mod scheduler;
pub mod server;
pub mod serving;
pub mod shutdown;
pub mod sync;
#[cfg(feature = "cli")]
pub mod ui;
