//! The engine's one error type: what went wrong, phrased for the person who called the function.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// Bad arguments or bad input from the caller (names the problem; nothing changed).
    #[error("{0}")]
    Invalid(String),
    /// A change whose hash or chain does not verify (names the change; nothing applied).
    #[error("{0}")]
    Integrity(String),
    /// A change that forks a chain this database holds (its sender is quarantined).
    #[error("{}", .0.message)]
    Fork(Fork),
    /// A batch signed badly, unsigned where a signature is required, or from a revoked device.
    #[error("{0}")]
    Unauthorized(String),
    /// What a peer asks for was compacted away here: it must join by snapshot.
    #[error("{0}")]
    Compacted(String),
    /// The database is not set up for sync yet.
    #[error("peersync is not initialised in this database: run `select sync_init()` first")]
    NotInitialised,
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a forked change looked like: which chain, where, and the message for people.
#[derive(Debug, Clone)]
pub struct Fork {
    pub origin: String,
    pub version: i64,
    pub message: String,
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// True for errors that mean "this write violates a constraint here".
    pub fn is_constraint(&self) -> bool {
        matches!(self, Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
