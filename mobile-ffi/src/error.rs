//! The one error the apps see, and every conversion into it, in this one place.
//!
//! sync-core's errors are rich and internal (store, document, workflow, photo, sync engine); the
//! apps need to know what to do: sign in again, retry later, fix the input, or tell the chief
//! that the action is not allowed. Each variant says which. Fields are called `detail`, never
//! `message`, because Kotlin exceptions already own a `message` property.

use sync_core::api_types::ErrorCode;
use sync_core::client::{AttachError, ClientError};
use sync_core::doc::DocError;
use sync_core::photo::PhotoError;
use sync_core::protocol::ProtocolError;
use sync_core::store::StoreError;
use sync_core::workflow::TransitionError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ChiefsyncError {
    /// No one is signed in on this device; call `login` first.
    #[error("not signed in: {detail}")]
    NotLoggedIn { detail: String },
    /// The server refused the credentials or the session (`code` as sent by the server, e.g.
    /// `invalid_credentials`, `device_revoked`, `refresh_token_reused`): sign in again.
    #[error("{code}: {detail}")]
    Auth { code: String, detail: String },
    /// The setup code is wrong, already used or expired, or the username is not the one it was
    /// issued for (the server does not say which): ask the office for a new code.
    #[error("setup code not accepted: {detail}")]
    InvalidSetupCode { detail: String },
    /// The chosen password is too short: at least `min_chars` characters.
    #[error("{detail}")]
    WeakPassword { min_chars: u32, detail: String },
    /// The server could not be reached or the connection broke; retry later. Nothing was lost.
    #[error("network: {detail}")]
    Network { detail: String },
    /// The server answered with an error (`status`, and `code` from its JSON body).
    #[error("server answered {status} {code}: {detail}")]
    Server {
        status: u16,
        code: String,
        detail: String,
    },
    /// The call's arguments are unusable (unknown asset, malformed id, empty reason …).
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    /// No such patrol, issue or photo on this device.
    #[error("not found: {detail}")]
    NotFound { detail: String },
    /// The status does not allow this step; `allowed` lists what it does allow.
    #[error("{detail}")]
    InvalidTransition {
        kind: String,
        status: Option<String>,
        allowed: Vec<String>,
        detail: String,
    },
    /// The signed-in user may not take this step (e.g. a chief verifying a rectification).
    #[error("{detail}")]
    Forbidden { detail: String },
    /// The photo could not be prepared or was refused (not an image, too large, unreadable).
    #[error("photo: {detail}")]
    Photo { detail: String },
    /// The device store failed or holds damaged data.
    #[error("device storage: {detail}")]
    Storage { detail: String },
    /// Another user signs in while the previous user's work is not on the server yet.
    #[error("{detail}")]
    UnsyncedWork { detail: String },
    /// A bug or an impossible state; please report.
    #[error("internal: {detail}")]
    Internal { detail: String },
}

pub type Result<T, E = ChiefsyncError> = std::result::Result<T, E>;

impl ChiefsyncError {
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        ChiefsyncError::InvalidInput {
            detail: detail.into(),
        }
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        ChiefsyncError::NotFound {
            detail: detail.into(),
        }
    }

    pub(crate) fn not_logged_in() -> Self {
        ChiefsyncError::NotLoggedIn {
            detail: "sign in before recording or syncing".into(),
        }
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        ChiefsyncError::Internal {
            detail: detail.into(),
        }
    }

    /// Whether the server rejected the access token in a way a refresh may cure.
    pub(crate) fn is_expired_token(&self) -> bool {
        matches!(self, ChiefsyncError::Auth { code, .. }
            if matches!(ErrorCode::from_wire(code),
                ErrorCode::TokenExpired | ErrorCode::InvalidToken | ErrorCode::MissingToken))
    }
}

impl From<StoreError> for ChiefsyncError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidId { .. } => ChiefsyncError::invalid(err.to_string()),
            StoreError::UnknownDoc { .. } | StoreError::UnknownPhoto { .. } => {
                ChiefsyncError::not_found(err.to_string())
            }
            StoreError::Backend(_)
            | StoreError::Corrupt { .. }
            | StoreError::Codec { .. }
            | StoreError::KindMismatch { .. } => ChiefsyncError::Storage {
                detail: err.to_string(),
            },
        }
    }
}

impl From<TransitionError> for ChiefsyncError {
    fn from(err: TransitionError) -> Self {
        let detail = err.to_string();
        match err {
            TransitionError::InvalidTransition {
                kind,
                status,
                allowed,
            } => ChiefsyncError::InvalidTransition {
                kind: kind.as_str().into(),
                status: status.map(|s| s.as_str().into()),
                allowed: allowed.iter().map(|k| k.as_str().into()).collect(),
                detail,
            },
            TransitionError::Forbidden { .. } => ChiefsyncError::Forbidden { detail },
            TransitionError::Invalid { .. } => ChiefsyncError::InvalidInput { detail },
        }
    }
}

impl From<DocError> for ChiefsyncError {
    fn from(err: DocError) -> Self {
        match err {
            DocError::Transition(t) => t.into(),
            DocError::Actor(_) => ChiefsyncError::Auth {
                code: "invalid_actor".into(),
                detail: err.to_string(),
            },
            DocError::Automerge(_)
            | DocError::WrongKind { .. }
            | DocError::UnsupportedSchema { .. }
            | DocError::Schema(_)
            | DocError::Track(_) => ChiefsyncError::Storage {
                detail: format!("document: {err}"),
            },
        }
    }
}

impl From<ProtocolError> for ChiefsyncError {
    fn from(err: ProtocolError) -> Self {
        ChiefsyncError::Server {
            status: 200,
            code: err.code().into(),
            detail: err.to_string(),
        }
    }
}

impl From<ClientError> for ChiefsyncError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Store(e) => e.into(),
            ClientError::Doc(e) => e.into(),
            ClientError::Protocol(e) => e.into(),
            ClientError::Transport(detail) => ChiefsyncError::Network { detail },
            ClientError::BadChange(detail) => ChiefsyncError::Server {
                status: 200,
                code: "bad_change".into(),
                detail,
            },
        }
    }
}

impl From<AttachError> for ChiefsyncError {
    fn from(err: AttachError) -> Self {
        match err {
            AttachError::Photo(e) => e.into(),
            AttachError::Store(e) => e.into(),
        }
    }
}

impl From<PhotoError> for ChiefsyncError {
    fn from(err: PhotoError) -> Self {
        match err {
            PhotoError::Doc(e) => e.into(),
            PhotoError::Io { .. }
            | PhotoError::TooLarge { .. }
            | PhotoError::TooManyPixels { .. }
            | PhotoError::OverAllocation { .. }
            | PhotoError::NotAnImage
            | PhotoError::Unsupported { .. }
            | PhotoError::Corrupt { .. }
            | PhotoError::HashMismatch { .. }
            | PhotoError::Render { .. } => ChiefsyncError::Photo {
                detail: err.to_string(),
            },
        }
    }
}

impl From<ureq::Error> for ChiefsyncError {
    fn from(err: ureq::Error) -> Self {
        ChiefsyncError::Network {
            detail: err.to_string(),
        }
    }
}

impl From<serde_json::Error> for ChiefsyncError {
    fn from(err: serde_json::Error) -> Self {
        ChiefsyncError::internal(format!("JSON: {err}"))
    }
}
