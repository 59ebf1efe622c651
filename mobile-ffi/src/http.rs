//! The phone's HTTP: the few calls the app makes to the server, over a small blocking client.
//!
//! sync-core does no network I/O, so this is where requests are built and answers read. Every
//! non-2xx answer becomes a typed [`ChiefsyncError`] from the server's JSON error body
//! `{"error": code, "message": text}`; a connection that fails becomes `Network`. This module
//! knows nothing of tokens' lifetimes or of the store: `session` and `upload` decide when to call.
//!
//! Every request carries timeouts, and a request the server shed (503 with `Retry-After`) or a
//! gateway could not deliver is sent again after the wait sync-core's [`RetryPolicy`] gives
//! (the phone's is [`RetryPolicy::PHONE`]: backoff with jitter, never sooner than
//! `Retry-After`). Sync, reference and photo requests are idempotent, so they are also sent
//! again when the connection broke midway; login, setup and refresh only after a 503, which the
//! server answers before doing anything. Every attempt, retry, wait and body byte is counted
//! ([`Traffic`]) for the app's network screen.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sync_core::api_types::{ErrorBody, ErrorCode, LoginRequest, RefreshRequest, SetupRequest};
use sync_core::client::retry::{parse_retry_after, retryable_io, retryable_status, RetryPolicy};
use ureq::http::Response;
use ureq::Body;

use crate::error::{ChiefsyncError, Result};

/// The largest answer read from the server: a sync response is bounded by the protocol's limit.
const MAX_ANSWER_BYTES: u64 = sync_core::protocol::MAX_MESSAGE_BYTES as u64;

/// Tokens, the user and the actor id the server grants at login and refresh: the server's own
/// wire type.
pub use sync_core::api_types::TokenGrant as Grant;

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
    policy: RetryPolicy,
    counters: Arc<Counters>,
}

/// What the phone sent and received since it was opened: requests (each attempt counted),
/// retries and what caused them, time spent waiting before retries, and body bytes each way
/// (headers and TLS not counted). For the app's network screen, and for load figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct Traffic {
    /// Requests sent, every attempt counted (a request sent three times counts three).
    pub requests: u64,
    /// Attempts that were sent again after a failure worth retrying.
    pub retries: u64,
    /// Answers 503, retried or not: the server did nothing and asked for the request again
    /// (load shed, its database unavailable, or another sync of this phone still answered).
    pub shed: u64,
    /// Gateway failures (502, 504) and connections broken after they were made (retried or
    /// not).
    pub cut: u64,
    /// Time spent waiting before retries, milliseconds.
    pub waited_ms: u64,
    /// Request and answer body bytes.
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Traffic {
    /// What happened between `earlier` (a reading of the same phone) and this reading.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            requests: self.requests.saturating_sub(earlier.requests),
            retries: self.retries.saturating_sub(earlier.retries),
            shed: self.shed.saturating_sub(earlier.shed),
            cut: self.cut.saturating_sub(earlier.cut),
            waited_ms: self.waited_ms.saturating_sub(earlier.waited_ms),
            bytes_up: self.bytes_up.saturating_sub(earlier.bytes_up),
            bytes_down: self.bytes_down.saturating_sub(earlier.bytes_down),
        }
    }
}

/// [`Traffic`] as it is counted, from any thread.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    shed: AtomicU64,
    cut: AtomicU64,
    waited_ms: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn read(&self) -> Traffic {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Traffic {
            requests: get(&self.requests),
            retries: get(&self.retries),
            shed: get(&self.shed),
            cut: get(&self.cut),
            waited_ms: get(&self.waited_ms),
            bytes_up: get(&self.bytes_up),
            bytes_down: get(&self.bytes_down),
        }
    }
}

/// Whether a request may be sent again after its connection broke midway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Sending it twice has the effect of sending it once (sync, reference, photo bytes).
    Idempotent,
    /// Only when the server said it did nothing (503): a second login or refresh could
    /// spend a refresh token whose answer was lost.
    OnlyIfShed,
}

/// A random number in `[0, 1)` for the retry jitter. `RandomState` is seeded per process from
/// the OS and differs per instance, which is all jitter needs: phones must not wait in step.
fn jitter() -> f64 {
    (RandomState::new().hash_one(0u8) >> 11) as f64 / (1u64 << 53) as f64
}

/// A whole HTTP reply: status, the headers we read, body.
#[derive(Debug)]
struct HttpReply {
    status: u16,
    upload_offset: Option<u64>,
    /// `Upload-Complete: ?1` (true) or `?0` (false), when the server sent it.
    upload_complete: Option<bool>,
    body: Vec<u8>,
}

impl HttpReply {
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
        Ok(HttpReply {
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

    /// The server's error code and message, or the status alone (`http_<status>`) when the
    /// body is not ours (a proxy's page).
    fn code_and_message(&self) -> (ErrorCode, String) {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => (body.error, body.message),
            Err(_) => (
                ErrorCode::Other(format!("http_{}", self.status)),
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect(),
            ),
        }
    }

    fn error(&self) -> ChiefsyncError {
        let (code, detail) = self.code_and_message();
        if code == ErrorCode::InvalidSetupCode {
            return ChiefsyncError::InvalidSetupCode { detail };
        }
        let code = code.to_string();
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
    /// Requests that fail in a way worth retrying are sent again as `policy` allows
    /// ([`RetryPolicy::PHONE`] for the apps, [`RetryPolicy::NONE`] for one attempt each).
    pub fn new(server_url: &str, policy: RetryPolicy) -> Result<Self> {
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
            policy,
            counters: Arc::new(Counters::default()),
        })
    }

    /// What this phone sent and received so far.
    pub fn traffic(&self) -> Traffic {
        self.counters.read()
    }

    /// Reads a whole reply, counting its body.
    fn read(&self, response: Response<Body>) -> Result<HttpReply> {
        let reply = HttpReply::read(response)?;
        Counters::add(&self.counters.bytes_down, reply.body.len() as u64);
        Ok(reply)
    }

    /// Sends the request `send` builds (with a body of `body_len` bytes), again after the
    /// policy's wait while the failure is one worth retrying. The last answer (or failure) is
    /// returned as it came. Every attempt is counted.
    fn send(
        &self,
        resend: Resend,
        body_len: usize,
        mut send: impl FnMut() -> std::result::Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>> {
        let counters = &self.counters;
        let mut failed = 0;
        loop {
            Counters::add(&counters.requests, 1);
            Counters::add(&counters.bytes_up, body_len as u64);
            let wait = match send() {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status == 503 {
                        Counters::add(&counters.shed, 1);
                    } else if retryable_status(status) {
                        Counters::add(&counters.cut, 1);
                    }
                    let again = match resend {
                        Resend::Idempotent => retryable_status(status),
                        Resend::OnlyIfShed => status == 503,
                    };
                    if !again {
                        return Ok(response);
                    }
                    let retry_after = response
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    failed += 1;
                    match self.policy.delay(failed, retry_after, jitter()) {
                        Some(wait) => wait,
                        None => return Ok(response),
                    }
                }
                Err(ureq::Error::Io(e)) if retryable_io(e.kind()) => {
                    Counters::add(&counters.cut, 1);
                    if resend != Resend::Idempotent {
                        return Err(ureq::Error::Io(e).into());
                    }
                    failed += 1;
                    match self.policy.delay(failed, None, jitter()) {
                        Some(wait) => wait,
                        None => return Err(ureq::Error::Io(e).into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            Counters::add(&counters.retries, 1);
            Counters::add(
                &counters.waited_ms,
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            );
            std::thread::sleep(wait);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A JSON request that may be sent again only when the server shed it.
    fn post_json_once(&self, path: &str, body: &impl serde::Serialize) -> Result<Grant> {
        let body = serde_json::to_vec(body)?;
        let response = self.send(Resend::OnlyIfShed, body.len(), || {
            self.agent
                .post(self.url(path))
                .content_type("application/json")
                .send(&body[..])
        })?;
        Ok(serde_json::from_slice(&self.read(response)?.ok()?)?)
    }

    pub fn login(&self, username: &str, password: &str, device_id: &str) -> Result<Grant> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
            device_id: device_id.into(),
        };
        self.post_json_once("/auth/login", &body)
    }

    /// The first sign-in with a one-time setup code from the office, choosing a password.
    pub fn setup(
        &self,
        username: &str,
        code: &str,
        password: &str,
        device_id: &str,
    ) -> Result<Grant> {
        let body = SetupRequest {
            username: username.into(),
            code: code.into(),
            password: password.into(),
            device_id: device_id.into(),
        };
        self.post_json_once("/auth/setup", &body)
    }

    pub fn refresh(&self, refresh_token: &str) -> Result<Grant> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        self.post_json_once("/auth/refresh", &body)
    }

    /// The caller's reference data, or `None` when the copy tagged `etag` is current.
    pub fn reference(
        &self,
        token: &str,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let response = self.send(Resend::Idempotent, 0, || {
            let mut request = self
                .agent
                .get(self.url("/reference"))
                .header("Authorization", format!("Bearer {token}"));
            if let Some(etag) = etag {
                request = request.header("If-None-Match", etag);
            }
            request.call()
        })?;
        let tag = response
            .headers()
            .get("ETag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reply = self.read(response)?;
        if reply.status == 304 {
            return Ok(None);
        }
        Ok(Some((reply.ok()?, tag)))
    }

    /// One round trip of the batch sync protocol: request bytes in, response bytes out. Names
    /// no overview and asks for no size, as phones before them did.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn sync(&self, token: &str, body: &[u8]) -> Result<Vec<u8>> {
        self.sync_asking(token, body, None, None)
    }

    /// [`Self::sync`] naming the version of the overview the phone holds (`Some(0)`: none),
    /// so that the answer carries the overview when it changed
    /// (`sync_core::protocol::OVERVIEW_HEADER`), and the most document bytes it wants in the
    /// answer (`sync_core::protocol::ANSWER_BYTES_HEADER`).
    pub fn sync_asking(
        &self,
        token: &str,
        body: &[u8],
        held: Option<u64>,
        answer_bytes: Option<u64>,
    ) -> Result<Vec<u8>> {
        let response = self.send(Resend::Idempotent, body.len(), || {
            let mut request = self
                .agent
                .post(self.url("/sync"))
                .header("Authorization", format!("Bearer {token}"));
            if let Some(held) = held {
                request = request.header(sync_core::protocol::OVERVIEW_HEADER, held.to_string());
            }
            if let Some(bytes) = answer_bytes {
                request =
                    request.header(sync_core::protocol::ANSWER_BYTES_HEADER, bytes.to_string());
            }
            request.content_type("application/octet-stream").send(body)
        })?;
        self.read(response)?.ok()
    }

    /// One message of the standard automerge sync of one document: the server's next message,
    /// or `None` when it has nothing to send.
    pub fn automerge_sync(
        &self,
        token: &str,
        doc_id: &str,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let response = self.send(Resend::Idempotent, body.len(), || {
            self.agent
                .post(self.url(&format!("/docs/{doc_id}/automerge-sync")))
                .header("Authorization", format!("Bearer {token}"))
                .content_type("application/octet-stream")
                .send(body)
        })?;
        let reply = self.read(response)?;
        if reply.status == 204 {
            return Ok(None);
        }
        reply.ok().map(Some)
    }

    /// How much of photo `sha256` (of `size` bytes) the server holds.
    pub fn blob_head(&self, token: &str, sha256: &str, size: u64) -> Result<BlobHead> {
        let response = self.send(Resend::Idempotent, 0, || {
            self.agent
                .head(self.url(&format!("/blobs/{sha256}")))
                .header("Authorization", format!("Bearer {token}"))
                .call()
        })?;
        let reply = self.read(response)?;
        match reply.status {
            404 => Ok(BlobHead::Missing),
            200..=299 => Ok(match (reply.upload_complete, reply.upload_offset) {
                // Every byte held but not stored: the server stopped between the last chunk and
                // the commit. Sending the last byte again makes it check and commit the photo.
                (Some(false), Some(offset)) => {
                    BlobHead::Partial(offset.min(size.saturating_sub(1)))
                }
                (_, Some(offset)) if offset < size => BlobHead::Partial(offset),
                _ => BlobHead::Complete,
            }),
            _ => Err(reply.error()),
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
        let reply = self.read(self.send(Resend::Idempotent, chunk.len(), || {
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
            request.send(chunk)
        })?)?;
        let (code, message) = reply.code_and_message();
        Ok(match reply.status {
            200..=299 => PutOutcome::Stored(reply.upload_offset.unwrap_or(end).min(size)),
            404 | 405
                if matches!(code, ErrorCode::NoRoute | ErrorCode::MethodNotAllowed)
                    || code.as_str().starts_with("http_") =>
            {
                PutOutcome::NoRoute
            }
            409 | 416 => PutOutcome::OffsetMismatch,
            400 | 413 | 415 | 422 => PutOutcome::Refused(format!("{code}: {message}")),
            _ => return Err(reply.error()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server that answers each connection with the next canned response, reading the
    /// request (headers and a `Content-Length` body) first.
    fn canned(responses: Vec<&'static str>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let mut served = 0;
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                reader.get_mut().write_all(response.as_bytes()).unwrap();
                served += 1;
            }
            served
        });
        (url, served)
    }

    const SHED: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Type: application/json\r\nContent-Length: 41\r\nConnection: close\r\n\r\n{\"error\":\"overloaded\",\"message\":\"later.\"}";
    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    #[test]
    fn a_shed_sync_is_sent_again_and_succeeds() {
        let (url, served) = canned(vec![SHED, SHED, OK]);
        let api = Api::new(&url, RetryPolicy::PHONE).unwrap();
        assert_eq!(api.sync("token", b"request").unwrap(), b"ok");
        assert_eq!(served.join().unwrap(), 3);
    }

    #[test]
    fn retries_end_with_the_servers_error_when_the_policy_gives_up() {
        let (url, served) = canned(vec![SHED, SHED]);
        let mut api = Api::new(&url, RetryPolicy::PHONE).unwrap();
        api.policy = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::PHONE
        };
        let err = api.sync("token", b"request").unwrap_err();
        assert!(
            matches!(&err, ChiefsyncError::Server { status: 503, code, .. }
                if ErrorCode::from_wire(code) == ErrorCode::Overloaded),
            "{err:?}"
        );
        assert_eq!(served.join().unwrap(), 2);
    }

    #[test]
    fn every_attempt_retry_and_body_byte_is_counted() {
        let (url, served) = canned(vec![SHED, SHED, OK]);
        let api = Api::new(&url, RetryPolicy::PHONE).unwrap();
        api.sync("token", b"request").unwrap();
        assert_eq!(served.join().unwrap(), 3);
        let traffic = api.traffic();
        assert_eq!(
            Traffic {
                waited_ms: 0,
                ..traffic
            },
            Traffic {
                requests: 3,
                retries: 2,
                shed: 2,
                cut: 0,
                waited_ms: 0,
                bytes_up: 3 * 7,
                bytes_down: 2,
            }
        );
        // Two waits of at least half the first and second backoff windows (0.5 s, 1 s).
        assert!(traffic.waited_ms >= 1_500, "{traffic:?}");
        let later = api.traffic();
        assert_eq!(later.since(&traffic), Traffic::default());
    }

    #[test]
    fn with_no_retries_a_shed_request_is_sent_once_and_counted() {
        let (url, served) = canned(vec![SHED]);
        let api = Api::new(&url, RetryPolicy::NONE).unwrap();
        let err = api.sync("token", b"request").unwrap_err();
        assert!(
            matches!(err, ChiefsyncError::Server { status: 503, .. }),
            "{err:?}"
        );
        assert_eq!(served.join().unwrap(), 1);
        let traffic = api.traffic();
        assert_eq!((traffic.requests, traffic.retries, traffic.shed), (1, 0, 1));
        assert_eq!(
            traffic.bytes_down, 41,
            "the server's error body, read for its code"
        );
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
