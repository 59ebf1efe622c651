//! The phone's HTTP: the few calls the app makes to the server, over a small blocking client.
//!
//! sync-core does no network I/O, so this is where requests are built and answers read. Every
//! non-2xx answer becomes a typed [`ChiefsyncError`] from the server's JSON error body
//! `{"error": code, "message": text}`; a connection that fails becomes `Network`. This module
//! knows nothing of tokens' lifetimes or of the store: `session` and `upload` decide when to call.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::model::User;
use ureq::http::Response;
use ureq::Body;

use crate::error::{ChiefsyncError, Result};

/// The largest answer read from the server: a sync response is bounded by the protocol's limit.
const MAX_ANSWER_BYTES: u64 = sync_core::protocol::MAX_MESSAGE_BYTES as u64;

/// Tokens, the user and the actor id the server grants at login and refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
    pub device_id: String,
    pub actor_id: String,
}

/// What the server holds of a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobHead {
    /// Nothing yet.
    Missing,
    /// The first `n` bytes of an interrupted upload.
    Partial(u64),
    Complete,
}

/// How the server took one `PUT` of photo bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored; the server now holds this many bytes (the whole photo when it equals the size).
    Stored(u64),
    /// The server has no photo upload endpoint (an older server): keep the photo for later.
    NoRoute,
    /// The server holds a different offset than the chunk assumed: ask again with `HEAD`.
    OffsetMismatch,
    /// The server will not take this photo (not an image, wrong hash, too large).
    Refused(String),
}

/// One server, reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

/// A whole answer: status, the headers we read, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    upload_offset: Option<u64>,
    /// `Upload-Complete: ?1` (true) or `?0` (false), when the server sent it.
    upload_complete: Option<bool>,
    body: Vec<u8>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

impl Answer {
    fn read(mut response: Response<Body>) -> Result<Self> {
        let status = response.status().as_u16();
        let upload_offset = response
            .headers()
            .get("Upload-Offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let upload_complete = response
            .headers()
            .get("Upload-Complete")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| match v.trim() {
                "?1" => Some(true),
                "?0" => Some(false),
                _ => None,
            });
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()?;
        Ok(Answer {
            status,
            upload_offset,
            upload_complete,
            body,
        })
    }

    fn ok(self) -> Result<Vec<u8>> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(self.error())
        }
    }

    /// The server's error code and message, or the status alone when the body is not ours.
    fn code_and_message(&self) -> (String, String) {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => (body.error, body.message),
            Err(_) => (
                format!("http_{}", self.status),
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect(),
            ),
        }
    }

    fn error(&self) -> ChiefsyncError {
        let (code, detail) = self.code_and_message();
        if self.status == 401 {
            ChiefsyncError::Auth { code, detail }
        } else {
            ChiefsyncError::Server {
                status: self.status,
                code,
                detail,
            }
        }
    }
}

impl Api {
    /// `server_url` is the server's root, e.g. `https://chiefsync.example.cn`; the API lives
    /// under `/api/v1`.
    pub fn new(server_url: &str) -> Result<Self> {
        let base = server_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ChiefsyncError::invalid(format!(
                "server URL must start with http:// or https://, got {server_url:?}"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Api {
            base: format!("{base}/api/v1"),
            agent,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn login(&self, username: &str, password: &str, device_id: &str) -> Result<Grant> {
        let body = serde_json::json!({
            "username": username,
            "password": password,
            "device_id": device_id,
        });
        let answer = Answer::read(self.agent.post(self.url("/auth/login")).send_json(body)?)?;
        Ok(serde_json::from_slice(&answer.ok()?)?)
    }

    pub fn refresh(&self, refresh_token: &str) -> Result<Grant> {
        let body = serde_json::json!({ "refresh_token": refresh_token });
        let answer = Answer::read(self.agent.post(self.url("/auth/refresh")).send_json(body)?)?;
        Ok(serde_json::from_slice(&answer.ok()?)?)
    }

    /// The caller's reference data, or `None` when the copy tagged `etag` is current.
    pub fn reference(
        &self,
        token: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let mut request = self
            .agent
            .get(self.url("/reference"))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let response = request.call()?;
        let tag = response
            .headers()
            .get("ETag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = Answer::read(response)?;
        if answer.status == 304 {
            return Ok(None);
        }
        Ok(Some((answer.ok()?, tag)))
    }

    /// One round trip of the batch sync protocol: request bytes in, response bytes out.
    pub fn sync(&self, token: &str, body: &[u8]) -> Result<Vec<u8>> {
        let response = self
            .agent
            .post(self.url("/sync"))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("application/octet-stream")
            .send(body)?;
        Answer::read(response)?.ok()
    }

    /// How much of photo `sha256` (of `size` bytes) the server holds.
    pub fn blob_head(&self, token: &str, sha256: &str, size: u64) -> Result<BlobHead> {
        let response = self
            .agent
            .head(self.url(&format!("/blobs/{sha256}")))
            .header("Authorization", format!("Bearer {token}"))
            .call()?;
        let answer = Answer::read(response)?;
        match answer.status {
            404 => Ok(BlobHead::Missing),
            200..=299 => Ok(match (answer.upload_complete, answer.upload_offset) {
                // Every byte held but not stored: the server stopped between the last chunk and
                // the commit. Sending the last byte again makes it check and commit the photo.
                (Some(false), Some(offset)) => {
                    BlobHead::Partial(offset.min(size.saturating_sub(1)))
                }
                (_, Some(offset)) if offset < size => BlobHead::Partial(offset),
                _ => BlobHead::Complete,
            }),
            _ => Err(answer.error()),
        }
    }

    /// Sends bytes `start..start + chunk.len()` of photo `sha256` (of `size` bytes): the whole
    /// photo as a plain body, a part of it with `Content-Range`.
    pub fn blob_put(
        &self,
        token: &str,
        sha256: &str,
        start: u64,
        size: u64,
        chunk: &[u8],
    ) -> Result<PutOutcome> {
        let end = start + chunk.len() as u64;
        let mut request = self
            .agent
            .put(self.url(&format!("/blobs/{sha256}")))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("application/octet-stream");
        if start != 0 || end != size {
            request = request.header(
                "Content-Range",
                format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
            );
        }
        let answer = Answer::read(request.send(chunk)?)?;
        let (code, message) = answer.code_and_message();
        Ok(match answer.status {
            200..=299 => PutOutcome::Stored(answer.upload_offset.unwrap_or(end).min(size)),
            404 | 405 if code == "no_route" || code.starts_with("http_") => PutOutcome::NoRoute,
            409 | 416 => PutOutcome::OffsetMismatch,
            400 | 413 | 415 | 422 => PutOutcome::Refused(format!("{code}: {message}")),
            _ => return Err(answer.error()),
        })
    }
}
