//! The one error type handlers return, and its mapping to an HTTP status and the JSON body
//! `{"error": code, "message": text}` that every client of the API can rely on.
//!
//! Internal failures (storage, hashing) are logged here with their detail and reported to the
//! client only as `internal`, so that no storage paths or library messages leak over the wire.
//! This module knows nothing about routes or roles.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use sync_core::hub::HubError;
use sync_core::protocol::ProtocolError;

use crate::storage::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `invalid_token` or `not_found`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// 401: the request carries no valid credentials; `code` says which check failed.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// No route matches the path and method; distinct from an unknown id on a known route.
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a well-formed request whose content is refused; `code` says why.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 503 with `Retry-After`: the server is busy with others; the same request may succeed later.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("storage failure")]
    Storage(StoreError),
    /// A sync or document decision of the hub (malformed body, refused change, unknown id).
    #[error("{0}")]
    Hub(HubError),
    #[error("internal failure")]
    Internal(String),
}

impl ApiError {
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::NoRoute(_) => "no_route",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Hub(err) if err.is_client_error() => err.code(),
            ApiError::Storage(_) | ApiError::Internal(_) | ApiError::Hub(_) => "internal",
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
            other => ApiError::Storage(other),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(err: HubError) -> Self {
        ApiError::Hub(err)
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
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
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
                HubError::Limit(limit) if limit.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
                HubError::Limit(_) => StatusCode::UNPROCESSABLE_ENTITY,
                HubError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
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
            ApiError::Hub(err) if !err.is_client_error() => {
                tracing::error!(error = %err, "document storage failure");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Overloaded {
            retry_after_secs, ..
        }
        | ApiError::Hub(HubError::RateLimited { retry_after_secs }) = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::Unauthorized { .. } = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorBody {
            error: self.code().to_owned(),
            message,
        })
    }
}
