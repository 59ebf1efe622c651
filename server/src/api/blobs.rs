//! Photo blobs over HTTP: resumable, hash-verified upload (`PUT`, `HEAD`) by any signed-in user
//! within a daily quota, and download of the photo and its thumbnail (`GET`) by those who may see
//! a record that references it by its uploader's hand (`photos::PhotoIndex`).
//!
//! A photo's name is its hash, which can leak; so no answer tells a caller that a photo is
//! stored unless he uploaded it, may see it, or has just sent all of its bytes. For anyone else
//! `HEAD` and `PUT` answer exactly as for a photo the server does not have.
//!
//! The upload contract the phones rely on:
//! - `PUT /blobs/{sha256}` with the whole photo as the body; or with
//!   `Content-Range: bytes first-last/total` for one chunk, where `first` is at most the bytes
//!   already held. Answers carry `Upload-Offset` (bytes held): 202 for a chunk kept, 201 when the
//!   photo is now stored, 200 when it was stored before (nothing changes). 409 with
//!   `Upload-Offset` when a chunk starts after the bytes held; 413 when the photo is larger than
//!   the configured limit; 422 when it does not hash to its name or is not a sound JPEG, PNG or
//!   WebP within the decode limits — then the partial bytes are discarded.
//! - `HEAD /blobs/{sha256}`: 200 with `Upload-Offset` (the whole size when complete) and
//!   `Upload-Complete: ?1` or `?0`; 404 when nothing is held for this caller.
//! - 429 `photo_quota_exceeded` with `Retry-After` once the caller has sent his bytes for the
//!   day (`--photo-bytes-per-user-per-day`).
//!
//! Decoding and file I/O run in `web::block`; this file only parses requests and shapes answers.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{get, head, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::photo::PhotoError;
use utoipa::ToSchema;

use super::sync::read_body;
use crate::auth::Caller;
use crate::blobs::{is_sha256, BlobError, ChunkRange, Held, Put, UploadError, UploadKey};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::photos::{QuotaCheck, Uploader};
use crate::state::{now_ms, AppState};
use sync_core::model::User;

/// The bytes held, in every upload answer.
pub const UPLOAD_OFFSET: &str = "Upload-Offset";
/// `?1` when the blob is stored complete, `?0` while an upload is partial.
pub const UPLOAD_COMPLETE: &str = "Upload-Complete";

/// What an accepted `PUT` did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadState {
    pub sha256: String,
    /// Whether the photo is now stored whole and verified.
    pub complete: bool,
    /// Bytes held (the whole size when complete).
    pub offset: u64,
}

fn blob_name(path: web::Path<String>) -> Result<String, ApiError> {
    let name = path.into_inner();
    if is_sha256(&name) {
        Ok(name)
    } else {
        Err(ApiError::BadRequest(
            "a photo's name is its SHA-256 in 64 lower-case hex digits".into(),
        ))
    }
}

fn not_visible(sha256: &str) -> ApiError {
    ApiError::NotFound(format!("no photo {sha256} in your scope"))
}

fn internal(err: BlobError) -> ApiError {
    ApiError::Internal(err.to_string())
}

pub(crate) fn refused(err: PhotoError) -> ApiError {
    let code = match &err {
        PhotoError::TooLarge { .. } => return ApiError::PayloadTooLarge(err.to_string()),
        PhotoError::HashMismatch { .. } => ErrorCode::HashMismatch,
        PhotoError::NotAnImage => ErrorCode::NotAnImage,
        PhotoError::Unsupported { .. } => ErrorCode::UnsupportedImage,
        PhotoError::Corrupt { .. } => ErrorCode::CorruptImage,
        PhotoError::TooManyPixels { .. } | PhotoError::OverAllocation { .. } => {
            ErrorCode::ImageTooLarge
        }
        _ => return ApiError::Internal(err.to_string()),
    };
    ApiError::Unprocessable {
        code,
        message: err.to_string(),
    }
}

/// What the caller may know of a stored photo.
#[derive(Debug, Clone, Copy)]
struct Access {
    /// That it is stored: he uploaded it or may see it.
    shown: bool,
    /// Its bytes: a record in his scope references it by its uploader's hand.
    visible: bool,
}

/// Works out [`Access`] for `user` to the photo `sha256`, from its receipt record and the
/// records that reference it. Blocking.
fn access(state: &AppState, user: &User, sha256: &str) -> Result<Access, ApiError> {
    let Some(record) = state.blobs.store().record(sha256).map_err(internal)? else {
        return Ok(Access {
            shown: false,
            visible: false,
        });
    };
    let uploader = Uploader {
        user: state
            .store
            .get_user(&record.uploaded_by)?
            .map(|found| found.user),
        id: record.uploaded_by,
    };
    let visible = state
        .photo_index
        .visible_to(&*state.store, user, sha256, &uploader)?;
    Ok(Access {
        shown: visible || uploader.id == user.id,
        visible,
    })
}

fn with_offset(status: StatusCode, sha256: String, complete: bool, offset: u64) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((UPLOAD_OFFSET, offset.to_string()))
        .insert_header((UPLOAD_COMPLETE, if complete { "?1" } else { "?0" }))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(UploadState {
            sha256,
            complete,
            offset,
        })
}

/// Uploads a photo under its SHA-256: the whole photo, or one chunk with `Content-Range`.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(
        ("sha256" = String, Path, pattern = "^[0-9a-f]{64}$", description = "lower-case hex SHA-256 of the photo bytes"),
        ("Content-Range" = Option<String>, Header, nullable = false, pattern = "^bytes [0-9]+-[0-9]+/[0-9]+$", description = "bytes first-last/total, for one chunk"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the photo, or one chunk of it"),
    responses(
        (status = 200, body = UploadState, description = "already stored; nothing changed"),
        (status = 201, body = UploadState, description = "stored whole and verified"),
        (status = 202, body = UploadState, description = "chunk kept; Upload-Offset says how many bytes are held"),
        (status = 400, body = ErrorBody, description = "bad name, bad Content-Range, or a body of another length"),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the chunk starts after the bytes held (Upload-Offset)"),
        (status = 413, body = ErrorBody, description = "larger than the configured limit"),
        (status = 422, body = ErrorBody, description = "hash_mismatch, not_an_image, unsupported_image, corrupt_image or image_too_large"),
        (status = 429, body = ErrorBody, description = "photo_quota_exceeded: the caller's bytes for the day are used up (Retry-After)"),
        (status = 503, body = ErrorBody, description = "overloaded: too many uploads in progress; send again after Retry-After"),
    )
)]
#[put("/blobs/{sha256}")]
pub async fn put_blob(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let sha256 = blob_name(path)?;
    let max = state.blobs.max_bytes();
    let range =
        match req.headers().get(header::CONTENT_RANGE) {
            None => None,
            Some(value) => Some(value.to_str().ok().and_then(ChunkRange::parse).ok_or_else(
                || ApiError::BadRequest("Content-Range must be `bytes first-last/total`".into()),
            )?),
        };
    if let Some(range) = range {
        if range.total > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "photo is {} bytes, more than the {max} allowed",
                range.total
            )));
        }
    }
    let limit = range.map_or(max, |r| r.chunk_len());
    // Refused before the body is read when its announced length is over the day's quota.
    let announced = range.map(|r| r.chunk_len()).or_else(|| {
        req.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    });
    let (quota, user_id, asked) = (
        state.clone(),
        caller.user.id.clone(),
        announced.unwrap_or(1).min(max),
    );
    if let QuotaCheck::Exceeded {
        limit,
        retry_after_secs,
    } = web::block(move || quota.photo_quota.check(&user_id, asked, now_ms())).await??
    {
        return Err(ApiError::PhotoQuotaExceeded {
            limit,
            retry_after_secs,
        });
    }
    let body = read_body(payload, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|err| match (range, err) {
            (Some(_), ApiError::PayloadTooLarge(_)) => {
                ApiError::BadRequest("body is longer than its Content-Range".into())
            }
            (_, err) => err,
        })?;
    if let Some(range) = range {
        if body.len() as u64 != range.chunk_len() {
            return Err(ApiError::BadRequest(format!(
                "Content-Range announces {} bytes, the body has {}",
                range.chunk_len(),
                body.len()
            )));
        }
    }
    let received = body.len() as u64;
    let (quota, user_id) = (state.clone(), caller.user.id.clone());
    if let QuotaCheck::Exceeded {
        limit,
        retry_after_secs,
    } = web::block(move || quota.photo_quota.take(&user_id, received, now_ms())).await??
    {
        return Err(ApiError::PhotoQuotaExceeded {
            limit,
            retry_after_secs,
        });
    }
    let key = UploadKey {
        sha256: sha256.clone(),
        user: caller.user.id.clone(),
    };
    let work = state.clone();
    let user = caller.user.clone();
    let outcome = web::block(move || -> Result<_, ApiError> {
        let shown = access(&work, &user, &key.sha256)?.shown;
        Ok(match range {
            None => work.blobs.put_whole(&key, &body, now_ms(), shown),
            Some(range) => work.blobs.put_chunk(&key, range, &body, now_ms(), shown),
        })
    })
    .await??;
    match outcome {
        Ok(Put::Created(bytes)) => {
            tracing::info!(sha256 = %sha256, bytes, user = %caller.user.id, "photo stored");
            Ok(with_offset(StatusCode::CREATED, sha256, true, bytes))
        }
        Ok(Put::AlreadyStored(bytes)) => Ok(with_offset(StatusCode::OK, sha256, true, bytes)),
        Ok(Put::Partial(held)) => Ok(with_offset(StatusCode::ACCEPTED, sha256, false, held)),
        Err(UploadError::OffsetMismatch { first, held }) => {
            Err(ApiError::OffsetMismatch { first, held })
        }
        Err(UploadError::Refused(err)) => {
            tracing::info!(sha256 = %sha256, user = %caller.user.id, error = %err, "photo refused");
            Err(refused(err))
        }
        Err(UploadError::Store(err)) => Err(internal(err)),
    }
}

/// How much of a photo the server holds for the caller: `Upload-Offset` (the whole size once
/// complete) and `Upload-Complete`; 404 when nothing is held. Complete is said only to the
/// photo's uploader and those who may see it (so a phone of the same user, or a supervisor,
/// need not send it again); anyone else hears only of his own partial upload, exactly as if the
/// photo were not stored.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, pattern = "^[0-9a-f]{64}$", description = "lower-case hex SHA-256 of the photo bytes")),
    responses(
        (status = 200, description = "held: Upload-Offset and Upload-Complete headers"),
        (status = 400, description = "not a SHA-256 name"),
        (status = 401, description = "not signed in"),
        (status = 404, description = "nothing held for the caller"),
    )
)]
#[head("/blobs/{sha256}")]
pub async fn head_blob(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = UploadKey {
        sha256: blob_name(path)?,
        user: caller.user.id.clone(),
    };
    let work = state.clone();
    let held = web::block(move || -> Result<Held, ApiError> {
        let shown = access(&work, &caller.user, &key.sha256)?.shown;
        work.blobs.held(&key, shown).map_err(internal)
    })
    .await??;
    let (offset, complete) = match held {
        Held::Complete(n) => (n, true),
        Held::Partial(n) => (n, false),
        Held::Missing => return Ok(HttpResponse::NotFound().finish()),
    };
    Ok(HttpResponse::Ok()
        .insert_header((UPLOAD_OFFSET, offset.to_string()))
        .insert_header((UPLOAD_COMPLETE, if complete { "?1" } else { "?0" }))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Whether the caller may see a record referencing the blob by its uploader's hand; checked
/// before any byte is read.
async fn authorize(
    state: &web::Data<AppState>,
    caller: Caller,
    sha256: &str,
) -> Result<(), ApiError> {
    let state = state.clone();
    let name = sha256.to_owned();
    let visible = web::block(move || access(&state, &caller.user, &name))
        .await??
        .visible;
    if visible {
        Ok(())
    } else {
        Err(not_visible(sha256))
    }
}

fn etag(sha256: &str, suffix: &str) -> String {
    format!("\"{sha256}{suffix}\"")
}

fn not_modified(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
}

fn immutable(status: StatusCode, tag: String) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::ETAG, tag))
        // Content-addressed: the bytes behind a name never change; only the caller may cache.
        .insert_header((
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        ))
        // Served as the type its bytes were found to be, never as a browser guesses it, and
        // never able to run anything even if opened on its own.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ));
    response
}

/// The photo, as uploaded, for users who may see a document that references it.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, pattern = "^[0-9a-f]{64}$", description = "lower-case hex SHA-256 of the photo bytes")),
    responses(
        (status = 200, content_type = "image/jpeg", description = "the photo (image/jpeg, image/png or image/webp)"),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown, not yet uploaded, or referenced by no document in the caller's scope"),
    )
)]
#[get("/blobs/{sha256}")]
pub async fn get_blob(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let sha256 = blob_name(path)?;
    authorize(&state, caller, &sha256).await?;
    let tag = etag(&sha256, "");
    if not_modified(&req, &tag) {
        return Ok(immutable(StatusCode::NOT_MODIFIED, tag).finish());
    }
    let blobs = state.blobs.clone();
    let name = sha256.clone();
    let (record, bytes) = web::block(move || blobs.read(&name))
        .await?
        .map_err(internal)?
        .ok_or_else(|| not_visible(&sha256))?;
    Ok(immutable(StatusCode::OK, tag)
        .content_type(record.format.mime())
        .body(bytes))
}

/// A JPEG thumbnail at most 320 px on its long side, upright; rendered on the first request and
/// kept. Same access as the photo.
#[utoipa::path(
    tag = "photos",
    security(("bearer" = [])),
    params(("sha256" = String, Path, pattern = "^[0-9a-f]{64}$", description = "lower-case hex SHA-256 of the photo bytes")),
    responses(
        (status = 200, content_type = "image/jpeg", description = "the thumbnail"),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown, not yet uploaded, or referenced by no document in the caller's scope"),
    )
)]
#[get("/blobs/{sha256}/thumbnail")]
pub async fn get_thumbnail(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let sha256 = blob_name(path)?;
    authorize(&state, caller, &sha256).await?;
    let tag = etag(&sha256, "-thumbnail");
    if not_modified(&req, &tag) {
        return Ok(immutable(StatusCode::NOT_MODIFIED, tag).finish());
    }
    let blobs = state.blobs.clone();
    let name = sha256.clone();
    let jpeg = web::block(move || blobs.thumbnail(&name))
        .await?
        .map_err(internal)?
        .ok_or_else(|| not_visible(&sha256))?;
    Ok(immutable(StatusCode::OK, tag)
        .content_type("image/jpeg")
        .body(jpeg))
}
