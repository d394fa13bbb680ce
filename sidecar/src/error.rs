//! The sidecar's one error type: what went wrong at its boundary (HTTP, keys, peers), and its HTTP status.
use hyper::StatusCode;
use peersync_core::Error as CoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from the engine (bad batch, hash mismatch, revoked origin, database).
    #[error("{0}")]
    Core(#[from] CoreError),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The request is not signed well enough to say who sent it (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The sender is known but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what this device holds (409).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body is larger than {0} bytes; send smaller batches (a lower page size)")]
    TooLarge(usize),
    /// The body's Content-Encoding decodes to more than this many bytes (413).
    #[error("the request body decodes to more than {0} bytes (its Content-Encoding); nothing was applied")]
    DecodedTooLarge(usize),
    /// A Content-Encoding not spoken here (415).
    #[error("{0}")]
    Unsupported(String),
    /// One change is larger than a body between this device and a peer may be: says which
    /// change and whose --max-body to raise (413 when answered).
    #[error("{0}")]
    ChangeTooLarge(String),
    #[error("{0}")]
    Timeout(String),
    /// One device sends more than its share (429).
    #[error("{0}")]
    TooMany(String),
    /// The server is at a limit all devices share (503).
    #[error("{0}")]
    Busy(String),
    /// The request's header fields are larger than the server accepts (431).
    #[error("the request's headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The private key file is missing, unreadable, too open, or does not match the database.
    #[error("{0}")]
    Key(String),
    /// A peer answered with an error status.
    #[error("peer {url} answered {status}: {message}")]
    Peer { url: String, status: u16, message: String },
    /// A peer could not be reached (connection refused, reset, timed out).
    #[error("peer {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("internal error: {0}")]
    Internal(String),
    /// A command line mistake or a state the person has to fix (says what to do).
    #[error("{0}")]
    Cli(String),
    #[error("shutting down")]
    ShuttingDown,
    /// A command's outcome that has its own exit status (e.g. `check`: 1 diverged, 2 not compared).
    #[error("{1}")]
    Exit(u8, String),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Core(CoreError::Invalid(_) | CoreError::Json(_)) => StatusCode::BAD_REQUEST,
            Error::Core(CoreError::Integrity(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Core(CoreError::Fork(_)) => StatusCode::CONFLICT,
            Error::Core(CoreError::Unauthorized(_)) => StatusCode::FORBIDDEN,
            Error::Core(CoreError::NotInitialised) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Core(CoreError::Compacted(_)) => StatusCode::GONE,
            Error::Core(CoreError::Sqlite(e)) | Error::Sqlite(e) if is_busy(e) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Core(CoreError::Sqlite(e)) | Error::Sqlite(e) if is_full(e) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::BadRequest(_) | Error::Json(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::TooLarge(_) | Error::DecodedTooLarge(_) | Error::ChangeTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Core(CoreError::Integrity(_)) => "integrity",
            Error::Core(CoreError::Fork(_)) => "fork",
            Error::Core(CoreError::Compacted(_)) => "compacted",
            Error::Core(CoreError::Sqlite(e)) | Error::Sqlite(e) if is_full(e) => "disk_full",
            Error::Core(CoreError::Unauthorized(_)) | Error::Forbidden(_) => "forbidden",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Peer { .. } => "peer",
            Error::Unreachable { .. } => "unreachable",
            Error::TooLarge(_) | Error::DecodedTooLarge(_) => "too_large",
            Error::ChangeTooLarge(_) => "change_too_large",
            Error::Unsupported(_) => "bad_request",
            Error::Timeout(_) => "timeout",
            Error::TooMany(_) | Error::Busy(_) => "too_many",
            Error::HeadersTooLarge(_) => "too_large",
            Error::Core(CoreError::Invalid(_) | CoreError::Json(_)) | Error::BadRequest(_) | Error::Json(_) => {
                "bad_request"
            }
            Error::NotFound(_) | Error::MethodNotAllowed(_) => "not_found",
            Error::Conflict(_) => "conflict",
            _ => "internal",
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

pub type Result<T> = std::result::Result<T, Error>;
