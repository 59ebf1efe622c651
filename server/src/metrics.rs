//! Prometheus metrics and the request middleware that feeds them and logs each request.
//!
//! Requests are counted by route pattern (e.g. `/api/v1/admin/users/{id}`, never the concrete
//! path, so ids cannot blow up label cardinality), method and status, and timed in a histogram.
//! The text exposition is produced by `prometheus-client`, not by hand.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Work done for the board, the patrol list and reminders: `request` is the route pattern, or
/// `changes` for documents re-read because the change feed says they changed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkLabels {
    pub request: String,
    /// `loaded`, `folded`, `validated` (documents) or `compared` (duplicate candidates).
    pub work: String,
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 1 ms … ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    /// Requests answered 503 by load shedding (`crate::shed`), by route pattern.
    shed: Family<RouteLabels, Counter>,
    /// Sync and upload requests in progress (what `--max-in-flight` limits).
    in_flight: Gauge,
    /// Documents and bytes in the hub's delivery cache (`sync_core::hub::delivery`).
    cached_documents: Gauge,
    cached_bytes: Gauge,
    /// Documents loaded, folded and validated, and duplicate candidates compared, per request.
    board_work: Family<WorkLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chiefsync");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: DurationFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request handling time by route pattern",
            durations.clone(),
        );
        let shed = Family::<RouteLabels, Counter>::default();
        let in_flight = Gauge::default();
        registry.register(
            "load_shed",
            "Sync and upload requests answered 503 with Retry-After because too many were in progress",
            shed.clone(),
        );
        registry.register(
            "sync_in_flight",
            "Sync and upload requests in progress",
            in_flight.clone(),
        );
        let (cached_documents, cached_bytes) = (Gauge::default(), Gauge::default());
        registry.register(
            "delivery_cache_documents",
            "Stored documents whose decoded changes are kept for delivery",
            cached_documents.clone(),
        );
        registry.register(
            "delivery_cache_bytes",
            "Bytes the delivery cache holds (bounded at 512 MiB)",
            cached_bytes.clone(),
        );
        let board_work = Family::<WorkLabels, Counter>::default();
        registry.register(
            "board_work",
            "Documents loaded, folded and validated, and duplicate candidates compared, for the issue board, patrol list and reminders, by route (changes: documents re-read because they changed)",
            board_work.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            shed,
            in_flight,
            cached_documents,
            cached_bytes,
            board_work,
        }
    }

    /// Adds statistics' fact counters (`crate::stats::StatsCache`): facts worked out from
    /// documents, read back from the store, and generations started (a full rebuild each).
    pub fn with_stats_facts(mut self, stats: &crate::stats::StatsCache) -> Self {
        let (derived, stored, generations) = stats.counters();
        self.registry.register(
            "stats_facts_derived",
            "Statistics facts worked out from patrol and issue documents",
            derived,
        );
        self.registry.register(
            "stats_facts_stored",
            "Statistics facts read back from the store (after a start, or written by another server)",
            stored,
        );
        self.registry.register(
            "stats_facts_generations",
            "Statistics fact generations started: every fact worked out again because the rules, reference data or the facts' format changed, or none were stored",
            generations,
        );
        self
    }

    /// Adds what one request (or one catch-up with the feed) did.
    pub fn count_work(&self, request: &str, work: &crate::derived::Work) {
        for (name, n) in work.named() {
            if n > 0 {
                self.board_work
                    .get_or_create(&WorkLabels {
                        request: request.to_owned(),
                        work: name.to_owned(),
                    })
                    .inc_by(n);
            }
        }
    }

    pub fn set_delivery_cache(&self, (documents, bytes): (usize, usize)) {
        self.cached_documents
            .set(i64::try_from(documents).unwrap_or(i64::MAX));
        self.cached_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn count_shed(&self, route: &str) {
        self.shed
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .inc();
    }

    pub fn set_in_flight(&self, requests: usize) {
        self.in_flight
            .set(i64::try_from(requests).unwrap_or(i64::MAX));
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text exposition (which Prometheus scrapes).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts, times and logs every request (`App::wrap(from_fn(track_requests))`).
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = state {
        state
            .metrics
            .observe(&route, &method, status, elapsed.as_secs_f64());
    }
    tracing::info!(
        %method,
        %path,
        %route,
        status,
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
