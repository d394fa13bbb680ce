//! The sidecar as a library: its modules, so the binary, the fuzz targets and tests can reach them.
#![forbid(unsafe_code)]
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod coding;
pub mod compactor;
pub mod db;
pub mod error;
pub mod httpsig;
pub mod instance;
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
pub mod ui;
