//! The result codes of the C ABI (`PeersyncCode`), and the code each failure is given.
use peersync::error::Error;

/// What a `peersync_*` call returns: 0 on success, else what kind of failure (the message is
/// `peersync_last_error()`). Codes are stable: new ones are only ever added.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum PeersyncCode {
    /// Success.
    PeersyncOk = 0,
    /// A NULL pointer, text that is not UTF-8, a malformed URL, code or choice, an unknown
    /// conflict id. Nothing was done.
    PeersyncInvalidArgument = 1,
    /// The key bytes are not an ed25519 key, or not this database's device key.
    PeersyncKey = 2,
    /// The database cannot be opened or written (missing file, busy past the timeout, disk
    /// full, not a database).
    PeersyncDatabase = 3,
    /// The peer could not be reached (refused, no route, no reply in time).
    PeersyncUnreachable = 4,
    /// The peer answered with an error, or something that is not its protocol.
    PeersyncPeer = 5,
    /// This device or the peer does not trust the other (not paired, revoked).
    PeersyncForbidden = 6,
    /// `peersync_agent_cancel` stopped the call; what was applied before it stays.
    PeersyncCancelled = 7,
    /// The handle is NULL, closed, or never was one.
    PeersyncClosed = 8,
    /// Pairing failed: a wrong, expired or used code, or the other device stopped pairing.
    PeersyncPairing = 9,
    /// A change failed verification (its hash, signature or chain): nothing of it was applied.
    PeersyncIntegrity = 10,
    /// A bug: a panic was caught, or an internal invariant failed.
    PeersyncInternal = 99,
}

/// A failed call: its code and the message for `peersync_last_error()`.
#[derive(Debug)]
pub struct Failure {
    pub code: PeersyncCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: PeersyncCode, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        use peersync_core::Error as Core;
        use PeersyncCode::*;
        let code = match &e {
            Error::Core(Core::Invalid(_) | Core::Json(_)) | Error::BadRequest(_) | Error::Json(_) => {
                PeersyncInvalidArgument
            }
            Error::Core(Core::Integrity(_) | Core::Fork(_)) => PeersyncIntegrity,
            Error::Core(Core::Unauthorized(_)) | Error::Forbidden(_) | Error::Unauthenticated(_) => PeersyncForbidden,
            Error::Peer { status: 401 | 403, .. } => PeersyncForbidden,
            Error::Core(_) | Error::Sqlite(_) => PeersyncDatabase,
            Error::Key(_) => PeersyncKey,
            Error::Unreachable { .. } => PeersyncUnreachable,
            Error::Peer { .. } | Error::ChangeTooLarge(_) => PeersyncPeer,
            Error::ShuttingDown => PeersyncCancelled,
            _ => PeersyncInternal,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<peersync_core::Error> for Failure {
    fn from(e: peersync_core::Error) -> Failure {
        Error::Core(e).into()
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Error::Sqlite(e).into()
    }
}
