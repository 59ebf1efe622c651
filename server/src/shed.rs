//! Load shedding: when more sync and photo upload requests are being served than the server is
//! configured for (`--max-in-flight`), the next one is answered at once with
//! `503 Service Unavailable`, a `Retry-After` header and the usual JSON error body, before its
//! body is read or any work is done for it.
//!
//! A thousand phones regaining signal together (a sync storm) would otherwise pile up behind
//! the store and the blocking pool, each holding its request body in memory, until requests
//! time out or the process runs out of memory. Answering 503 costs a few microseconds and no
//! memory; phones wait by `sync_core::client::retry` (at least `Retry-After`, plus jitter) and
//! come back spread out. Sync and uploads are idempotent, so a shed request is simply sent
//! again. Logins, dashboards and health checks are never shed: they are cheap or rate-limited
//! elsewhere, and operators must be able to see a server under load.
//!
//! No single user holds more than `--max-in-flight-per-user` of those places (the user is read
//! from the bearer token, whose signature is checked here; everything else about the caller is
//! checked by the handler). Beyond that, that user's next request is answered 503 the same way,
//! so one account opening many connections cannot take the places of everyone else's phones.
//!
//! Every request body, on every route, must keep arriving ([`BodyRate`]): after a grace period,
//! at least a minimum number of bytes per second on average. A body that falls behind ends its
//! request with `408 Request Timeout` and a closed connection, giving its place back — a client
//! that announces a large body and sends it a byte at a time holds nothing for long.
//!
//! This module decides only whether a request may start and how slowly it may arrive; it knows
//! nothing of what sync does.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::rt::time::{sleep_until, Instant, Sleep};
use actix_web::web::Bytes;
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};
use futures_core::Stream;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Default of `--max-in-flight`. On the 2-core reference machine a sync takes a few
/// milliseconds of CPU, so 64 requests in progress already mean a wait of the order of a
/// second for the last one; more would add only latency and memory, not throughput.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Default of `--max-in-flight-per-user`: a phone syncs and uploads one request at a time, so
/// four leave room for a user's second device and a retry whose predecessor is still running.
pub const DEFAULT_MAX_IN_FLIGHT_PER_USER: usize = 4;

/// How slowly a request body may arrive: after `grace`, on average at least `min_bytes_per_sec`.
/// That is, by `grace + n / min_bytes_per_sec` after the request started at least `n + 1` bytes
/// must have come (or the body ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    pub grace: Duration,
    pub min_bytes_per_sec: u64,
}

impl Default for BodyRate {
    /// 30 s of grace (as for the request head) and then 1 KiB/s: a photo of 8 MiB may take
    /// more than two hours on the worst field link, but a body cannot stall.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            min_bytes_per_sec: 1024,
        }
    }
}

/// Seconds a shed client is asked to wait. Phones add their own backoff and jitter on top, so
/// a storm comes back spread over the following seconds rather than at this instant.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The requests that cost the server real work per device and that phones send again on 503:
/// the route pattern they are counted under, or `None` for requests never shed.
pub fn shed_route(method: &Method, path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/api/v1/")?;
    if method == Method::POST && rest == "sync" {
        return Some("/api/v1/sync");
    }
    if method == Method::POST && rest.starts_with("docs/") && rest.ends_with("/automerge-sync") {
        return Some("/api/v1/docs/{id}/automerge-sync");
    }
    if method == Method::PUT && rest.starts_with("blobs/") {
        return Some("/api/v1/blobs/{sha256}");
    }
    None
}

/// The count of sheddable requests in progress, in all and per user, against the limits.
#[derive(Debug)]
pub struct LoadShed {
    limit: usize,
    per_user: usize,
    body_rate: BodyRate,
    in_flight: AtomicUsize,
    by_user: Mutex<HashMap<String, usize>>,
}

/// A place taken by a request in progress; given back when dropped, also when the client hangs
/// up and actix drops the request's future.
#[derive(Debug)]
pub struct Slot<'a> {
    load: &'a LoadShed,
    user: Option<String>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(user) = &self.user {
            let mut by_user = self.load.by_user.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = by_user.get_mut(user) {
                *n -= 1;
                if *n == 0 {
                    by_user.remove(user);
                }
            }
        }
        self.load.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every place is taken.
    Server,
    /// This user holds as many places as one user may.
    User,
}

impl LoadShed {
    /// At most `limit` requests at once (at least one), `per_user` of them for one user (at
    /// least one); bodies arrive at `body_rate` or end their request.
    pub fn new(limit: usize, per_user: usize, body_rate: BodyRate) -> Self {
        Self {
            limit: limit.max(1),
            per_user: per_user.max(1),
            body_rate,
            in_flight: AtomicUsize::new(0),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A place for one more request of `user` (`None`: a request whose token did not verify,
    /// which its handler refuses at once), or why not.
    pub fn try_acquire(&self, user: Option<&str>) -> Result<Slot<'_>, Full> {
        if let Some(user) = user {
            let mut by_user = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
            let held = by_user.get(user).copied().unwrap_or(0);
            if held >= self.per_user {
                return Err(Full::User);
            }
            self.take_place()?;
            by_user.insert(user.to_owned(), held + 1);
        } else {
            self.take_place()?;
        }
        Ok(Slot {
            load: self,
            user: user.map(str::to_owned),
        })
    }

    fn take_place(&self) -> Result<(), Full> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .map(drop)
            .map_err(|_| Full::Server)
    }
}

/// A request body that must keep arriving at [`BodyRate`]; when it falls behind it ends with an
/// error, and `stalled` tells the middleware to answer 408.
struct MinRate {
    inner: Payload,
    rate: BodyRate,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    stalled: Rc<Cell<bool>>,
}

impl MinRate {
    fn new(inner: Payload, rate: BodyRate, stalled: Rc<Cell<bool>>) -> Self {
        let started = Instant::now();
        Self {
            inner,
            rate,
            started,
            received: 0,
            timer: Box::pin(sleep_until(started + rate.grace)),
            stalled,
        }
    }

    /// When the next byte is due at the latest.
    fn due(&self) -> Instant {
        let rate = self.rate.min_bytes_per_sec.max(1);
        let earned = Duration::from_secs(self.received / rate)
            + Duration::from_nanos((self.received % rate) * 1_000_000_000 / rate);
        self.started + self.rate.grace + earned
    }
}

impl Stream for MinRate {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stalled.get() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.received = this.received.saturating_add(bytes.len() as u64);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let due = this.due();
                if this.timer.deadline() != due {
                    this.timer.as_mut().reset(due);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.stalled.set(true);
                        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request body arrives too slowly",
                        )))))
                    }
                }
            }
        }
    }
}

/// The answer to a shed request.
pub fn overloaded() -> HttpResponse {
    busy(format!(
        "the server is busy with other devices; send this again in {RETRY_AFTER_SECS} s or later"
    ))
}

/// The answer to a request of a user who holds as many places as one user may.
fn user_busy(per_user: usize) -> HttpResponse {
    busy(format!(
        "this account already has {per_user} requests in progress; send this again when one has finished"
    ))
}

fn busy(message: String) -> HttpResponse {
    ApiError::Overloaded {
        message,
        retry_after_secs: RETRY_AFTER_SECS,
    }
    .error_response()
}

/// The answer to a request whose body fell behind [`BodyRate`]; the connection is closed.
fn too_slow(rate: BodyRate) -> HttpResponse {
    let mut response = ApiError::refused(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::BodyTooSlow,
        format!(
            "the request body must arrive at {} bytes per second or faster after {} s",
            rate.min_bytes_per_sec,
            rate.grace.as_secs()
        ),
    )
    .error_response();
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    response
}

/// The user a bearer token is for, if its signature and claims check out.
fn token_user(req: &ServiceRequest, state: &AppState) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    state.tokens.verify(token).ok().map(|claims| claims.sub)
}

/// Sheds sync and upload requests beyond the limits and holds every request body to
/// [`BodyRate`] (`App::wrap(from_fn(shed_load))`). It is the outermost middleware, so a shed
/// request is neither logged nor timed as a request (a storm would flood the log); it is
/// counted in `chiefsync_load_shed_total` by route.
pub async fn shed_load<B: MessageBody>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let rate = state.load.body_rate;
    let stalled = Rc::new(Cell::new(false));
    let payload = req.take_payload();
    if !matches!(payload, Payload::None) {
        let body: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(MinRate::new(payload, rate, stalled.clone()));
        req.set_payload(Payload::from(body));
    }
    let slot = match shed_route(req.method(), req.path()) {
        None => None,
        Some(route) => {
            let user = token_user(&req, &state);
            match state.load.try_acquire(user.as_deref()) {
                Ok(slot) => Some(slot),
                Err(full) => {
                    state.metrics.count_shed(route);
                    tracing::debug!(route, ?full, limit = state.load.limit(), "shed");
                    let answer = match full {
                        Full::Server => overloaded(),
                        Full::User => user_busy(state.load.per_user),
                    };
                    return Ok(req.into_response(answer).map_into_right_body());
                }
            }
        }
    };
    if slot.is_some() {
        state.metrics.set_in_flight(state.load.in_flight());
    }
    let response = next.call(req).await;
    if slot.is_some() {
        drop(slot);
        state.metrics.set_in_flight(state.load.in_flight());
    }
    if stalled.get() {
        let response = response?;
        tracing::info!(path = %response.request().path(), "request body too slow; connection closed");
        return Ok(response.into_response(too_slow(rate)).map_into_right_body());
    }
    response.map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_only_sync_and_uploads() {
        let post = Method::POST;
        assert_eq!(shed_route(&post, "/api/v1/sync"), Some("/api/v1/sync"));
        assert_eq!(
            shed_route(&post, "/api/v1/docs/abc/automerge-sync"),
            Some("/api/v1/docs/{id}/automerge-sync")
        );
        assert_eq!(
            shed_route(&Method::PUT, "/api/v1/blobs/00ff"),
            Some("/api/v1/blobs/{sha256}")
        );
        for (method, path) in [
            (Method::GET, "/api/v1/sync"),
            (Method::POST, "/api/v1/auth/login"),
            (Method::GET, "/api/v1/blobs/00ff"),
            (Method::HEAD, "/api/v1/blobs/00ff"),
            (Method::GET, "/metrics"),
            (Method::GET, "/healthz"),
            (Method::POST, "/api/v1/issues/x/events"),
            (Method::POST, "/sync"),
        ] {
            assert_eq!(shed_route(&method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn places_are_limited_and_given_back() {
        let load = LoadShed::new(2, 2, BodyRate::default());
        let a = load.try_acquire(None).unwrap();
        let b = load.try_acquire(Some("u1")).unwrap();
        assert_eq!(load.try_acquire(None).unwrap_err(), Full::Server);
        assert_eq!(load.in_flight(), 2);
        drop(a);
        let c = load.try_acquire(None).unwrap();
        drop((b, c));
        assert_eq!(load.in_flight(), 0);
        assert_eq!(LoadShed::new(0, 0, BodyRate::default()).limit(), 1);
    }

    #[test]
    fn one_user_holds_at_most_its_share() {
        let load = LoadShed::new(10, 2, BodyRate::default());
        let a = load.try_acquire(Some("u1")).unwrap();
        let b = load.try_acquire(Some("u1")).unwrap();
        assert_eq!(load.try_acquire(Some("u1")).unwrap_err(), Full::User);
        let other = load.try_acquire(Some("u2")).unwrap();
        drop(a);
        let c = load.try_acquire(Some("u1")).unwrap();
        drop((b, c, other));
        assert_eq!(load.in_flight(), 0);
        assert!(load.by_user.lock().unwrap().is_empty());
    }

    #[actix_web::test]
    async fn a_body_that_stalls_ends_after_grace_and_rate() {
        let rate = BodyRate {
            grace: Duration::from_millis(100),
            min_bytes_per_sec: 1000,
        };
        // A client that sends 100 bytes and then nothing more.
        struct Trickle(bool);
        impl Stream for Trickle {
            type Item = Result<Bytes, PayloadError>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                if std::mem::replace(&mut self.0, true) {
                    Poll::Pending
                } else {
                    Poll::Ready(Some(Ok(Bytes::from_static(&[0; 100]))))
                }
            }
        }
        let inner: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(Trickle(false));
        let stalled = Rc::new(Cell::new(false));
        let mut body = MinRate::new(Payload::from(inner), rate, stalled.clone());
        let started = std::time::Instant::now();
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert_eq!(first.unwrap().unwrap().len(), 100);
        // 100 bytes earn 100 ms beyond the grace; then the body is due and ends.
        let second = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert!(matches!(second, Some(Err(PayloadError::Io(_)))));
        assert!(stalled.get());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[actix_web::test]
    async fn the_answer_is_503_with_retry_after_and_a_json_error() {
        let response = overloaded();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "overloaded");
        assert!(body["message"].is_string());
    }
}
