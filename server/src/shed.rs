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
//! This module decides only whether a request may start; it knows nothing of what sync does.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::error::ErrorBody;
use crate::state::AppState;

/// Default of `--max-in-flight`. On the 2-core reference machine a sync takes a few
/// milliseconds of CPU, so 64 requests in progress already mean a wait of the order of a
/// second for the last one; more would add only latency and memory, not throughput.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

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

/// The count of sheddable requests in progress, against the configured limit.
#[derive(Debug)]
pub struct LoadShed {
    limit: usize,
    in_flight: AtomicUsize,
}

/// A place taken by a request in progress; given back when dropped, also when the client hangs
/// up and actix drops the request's future.
#[derive(Debug)]
pub struct Slot<'a>(&'a LoadShed);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LoadShed {
    /// At most `limit` requests at once (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A place for one more request, or `None` when all are taken.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self))
    }
}

/// The answer to a shed request.
pub fn overloaded() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
        .json(ErrorBody {
            error: "overloaded".into(),
            message: format!(
                "the server is busy with other devices; send this again in {RETRY_AFTER_SECS} s or later"
            ),
        })
}

/// Sheds sync and upload requests beyond the limit (`App::wrap(from_fn(shed_load))`). It is
/// the outermost middleware, so a shed request is neither logged nor timed as a request (a
/// storm would flood the log); it is counted in `chiefsync_load_shed_total` by route.
pub async fn shed_load<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(state), Some(route)) = (state, shed_route(req.method(), req.path())) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let Some(slot) = state.load.try_acquire() else {
        state.metrics.count_shed(route);
        tracing::debug!(route, limit = state.load.limit(), "shed");
        return Ok(req.into_response(overloaded()).map_into_right_body());
    };
    state.metrics.set_in_flight(state.load.in_flight());
    let response = next.call(req).await;
    drop(slot);
    state.metrics.set_in_flight(state.load.in_flight());
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
        let load = LoadShed::new(2);
        let a = load.try_acquire().unwrap();
        let b = load.try_acquire().unwrap();
        assert!(load.try_acquire().is_none());
        assert_eq!(load.in_flight(), 2);
        drop(a);
        let c = load.try_acquire().unwrap();
        drop((b, c));
        assert_eq!(load.in_flight(), 0);
        assert_eq!(LoadShed::new(0).limit(), 1);
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
