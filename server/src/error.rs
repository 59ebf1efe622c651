//! The one error type handlers return, and its mapping to an HTTP status and the JSON body
//! `{"error": code, "message": text}` that every client of the API can rely on. Every error
//! answer of the API goes through [`ApiError::error_response`]; the body and its codes are
//! `sync_core::api_types::{ErrorBody, ErrorCode}`, the same types the phone library reads.
//! A workflow refusal adds its details beside the two fields (`status` and `allowed` for 409,
//! `who` and `needs` for 403). A refusal with a code of its own (the public channel's
//! `unknown_asset`, `ticket_invalid`, `rate_limited_address`, …) is [`ApiError::Refused`] or
//! [`ApiError::Throttled`]: the same body, never one built elsewhere.
//!
//! Internal failures (storage, hashing) are logged here with their detail and reported to the
//! client only as `internal`, so that no storage paths or library messages leak over the wire.
//! This module knows nothing about routes or roles.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

pub use sync_core::api_types::{ErrorBody, ErrorCode};
use sync_core::hub::HubError;
use sync_core::protocol::ProtocolError;
use sync_core::workflow::TransitionError;

use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// 401: the request carries no valid credentials; `code` says which check failed.
    #[error("{message}")]
    Unauthorized { code: ErrorCode, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// No route matches the path and method; distinct from an unknown id on a known route.
    #[error("no route for {0}")]
    NoRoute(String),
    /// 405: the path is served, but not with this method; `allowed` goes into `Allow`.
    #[error("{method} is not served at {path}; allowed: {}", allowed.join(", "))]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: Vec<String>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a well-formed request whose content is refused; `code` says why.
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    /// A workflow action refused (409, 403 or 422, with the details beside the message).
    #[error("{0}")]
    Transition(TransitionError),
    /// 409 with `Upload-Offset`: a photo chunk that starts elsewhere than the held bytes end.
    #[error("chunk starts at byte {first}, but {held} bytes are held")]
    OffsetMismatch { first: u64, held: u64 },
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 429 with `Retry-After` and a code of its own (`rate_limited_address`,
    /// `rate_limited_asset`): too many requests of one kind; `message` says which.
    #[error("{message}; retry in {retry_after_secs} s")]
    Throttled {
        code: ErrorCode,
        message: String,
        retry_after_secs: u64,
    },
    /// A refusal answered with a code of its own beside its status (400, 403, 404, 409 or
    /// 503; 422 is [`ApiError::Unprocessable`]): e.g. `proof_of_work_required`,
    /// `ticket_invalid`, `unknown_code`, `not_finished`, `signboard_font_missing`. Build it
    /// with [`ApiError::refused`].
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    /// 429 with `Retry-After`: the user's photo bytes for today are used up.
    #[error(
        "you have uploaded your {limit} bytes of photos for today; retry in {retry_after_secs} s"
    )]
    PhotoQuotaExceeded { limit: u64, retry_after_secs: u64 },
    /// 503 with `Retry-After`: the server is busy with others; the same request may succeed later.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("storage failure")]
    Storage(StoreError),
    /// 503 with `Retry-After`: the database cannot be reached for now, or another server
    /// saved the same document meanwhile; nothing was done, the same request may succeed
    /// later. The detail is logged, not answered.
    #[error(
        "the database cannot be reached for now, or another server was saving the same record; \
         send the request again shortly"
    )]
    Unavailable(String),
    /// A sync or document decision of the hub (malformed body, refused change, unknown id).
    #[error("{0}")]
    Hub(HubError),
    #[error("internal failure")]
    Internal(String),
}

impl ApiError {
    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// 422 with its own code: a well-formed request whose content is refused.
    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// A refusal with its own code; `status` is a client error's or 503 (anything else is
    /// answered as 500 `internal`, the server's fault).
    pub fn refused(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE {
            ApiError::Refused {
                status,
                code,
                message: message.into(),
            }
        } else {
            ApiError::Internal(format!("refusal {code} built with status {status}"))
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Refused { code, .. }
            | ApiError::Throttled { code, .. } => code.clone(),
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::NoRoute(_) => ErrorCode::NoRoute,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Transition(TransitionError::InvalidTransition { .. }) => {
                ErrorCode::InvalidTransition
            }
            ApiError::Transition(TransitionError::Forbidden { .. }) => ErrorCode::Forbidden,
            ApiError::Transition(TransitionError::Invalid { .. }) => ErrorCode::InvalidPayload,
            ApiError::OffsetMismatch { .. } => ErrorCode::OffsetMismatch,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::PhotoQuotaExceeded { .. } => ErrorCode::PhotoQuotaExceeded,
            ApiError::Overloaded { .. } => ErrorCode::Overloaded,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            // The hub's codes (sync-core's protocol, limit and refusal codes) are named in
            // `ErrorCode`; a test there keeps them so.
            ApiError::Hub(err) if err.is_client_error() => ErrorCode::from_wire(err.code()),
            ApiError::Storage(_) | ApiError::Internal(_) | ApiError::Hub(_) => ErrorCode::Internal,
        }
    }

    /// What a workflow refusal tells beside the message: the status and the allowed next
    /// steps (409), or how the caller stands to the issue and what would do (403).
    fn details(&self) -> Option<serde_json::Value> {
        match self {
            ApiError::Transition(TransitionError::InvalidTransition {
                status, allowed, ..
            }) => Some(json!({"status": status, "allowed": allowed})),
            ApiError::Transition(TransitionError::Forbidden { who, needs, .. }) => {
                Some(json!({"who": who, "needs": needs}))
            }
            _ => None,
        }
    }

    /// Maps a rejected JSON body; registered as the `JsonConfig` error handler.
    pub fn from_json(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
        let api = match &err {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                ApiError::PayloadTooLarge(err.to_string())
            }
            JsonPayloadError::ContentType => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            _ => ApiError::BadRequest(err.to_string()),
        };
        api.into()
    }

    /// Maps an unparsable path segment; registered as the `PathConfig` error handler.
    pub fn from_path(err: PathError, _req: &HttpRequest) -> actix_web::Error {
        ApiError::BadRequest(err.to_string()).into()
    }

    /// Maps an unparsable query string; registered as the `QueryConfig` error handler.
    pub fn from_query(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
        ApiError::BadRequest(err.to_string()).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ApiError::Conflict(format!("already exists: {what}")),
            StoreError::NotFound(what) => ApiError::NotFound(format!("not found: {what}")),
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            other => ApiError::Storage(other),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(err: HubError) -> Self {
        match err {
            HubError::Unavailable(detail) => ApiError::Unavailable(detail),
            err @ HubError::SavedMeanwhile { .. } => ApiError::Unavailable(err.to_string()),
            other => ApiError::Hub(other),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(err.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::OffsetMismatch { .. } => StatusCode::CONFLICT,
            ApiError::Transition(err) => match err {
                TransitionError::InvalidTransition { .. } => StatusCode::CONFLICT,
                TransitionError::Forbidden { .. } => StatusCode::FORBIDDEN,
                TransitionError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            },
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. }
            | ApiError::Throttled { .. }
            | ApiError::PhotoQuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Refused { status, .. } => *status,
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Hub(err) => match err {
                HubError::Protocol(ProtocolError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
                HubError::Protocol(_)
                | HubError::MalformedChange(_)
                | HubError::MalformedMessage(_) => StatusCode::BAD_REQUEST,
                HubError::UnknownDocument(_) => StatusCode::NOT_FOUND,
                HubError::Refused { .. } => StatusCode::FORBIDDEN,
                HubError::Damaged { .. } | HubError::Storage(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                HubError::Unavailable(_) | HubError::SavedMeanwhile { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                HubError::Limit(limit) if limit.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
                HubError::Limit(_) => StatusCode::UNPROCESSABLE_ENTITY,
                HubError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                HubError::SyncInProgress => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Storage(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Storage(err) => {
                tracing::error!(error = %err, "storage failure");
                "internal server error".to_owned()
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal failure");
                "internal server error".to_owned()
            }
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "storage unavailable");
                self.to_string()
            }
            ApiError::Hub(err) if !err.is_client_error() => {
                tracing::error!(error = %err, "document storage failure");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Throttled {
            retry_after_secs, ..
        }
        | ApiError::PhotoQuotaExceeded {
            retry_after_secs, ..
        }
        | ApiError::Overloaded {
            retry_after_secs, ..
        }
        | ApiError::Hub(HubError::RateLimited { retry_after_secs }) = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::Unavailable(_) = self {
            // A database restarts in seconds.
            response.insert_header((header::RETRY_AFTER, "2"));
        }
        if let ApiError::Hub(HubError::SyncInProgress) = self {
            // Answers are bounded: the one running ends within moments.
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        match self {
            ApiError::Unauthorized { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allowed, .. } => {
                response.insert_header((header::ALLOW, allowed.join(", ")));
            }
            ApiError::OffsetMismatch { held, .. } => {
                response.insert_header(("Upload-Offset", held.to_string()));
            }
            _ => {}
        }
        let body = ErrorBody {
            error: self.code(),
            message,
        };
        match self.details() {
            Some(serde_json::Value::Object(details)) => {
                let mut value = json!(body);
                if let Some(fields) = value.as_object_mut() {
                    fields.extend(details);
                }
                response.json(value)
            }
            _ => response.json(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: HttpResponse) -> serde_json::Value {
        let bytes = actix_web::rt::System::new()
            .block_on(actix_web::body::to_bytes(response.into_body()))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_refusal_with_its_own_code_answers_the_one_body() {
        let err = ApiError::refused(
            StatusCode::CONFLICT,
            ErrorCode::NotFinished,
            "the report is still being handled",
        );
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(
            body_of(response),
            json!({"error": "not_finished", "message": "the report is still being handled"})
        );

        let err = ApiError::Throttled {
            code: ErrorCode::RateLimitedAsset,
            message: "many reports".into(),
            retry_after_secs: 7,
        };
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "7");
        assert_eq!(
            body_of(response),
            json!({"error": "rate_limited_asset", "message": "many reports; retry in 7 s"})
        );
    }

    #[test]
    fn a_database_out_of_reach_answers_send_again_without_its_detail() {
        for err in [
            ApiError::from(StoreError::Unavailable(
                "connection refused on 10.0.0.5".into(),
            )),
            ApiError::from(HubError::Unavailable("connection closed".into())),
        ] {
            let response = err.error_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
            let body = body_of(response);
            assert_eq!(body["error"], "unavailable");
            assert!(!body["message"].as_str().unwrap().contains("10.0.0.5"));
        }
        // Any other failure of the store stays the server's fault.
        let err = ApiError::from(StoreError::Backend("disk full".into()));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_refusal_cannot_pass_for_a_success() {
        let err = ApiError::refused(StatusCode::OK, ErrorCode::NotFound, "x");
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code(), ErrorCode::Internal);
    }
}
