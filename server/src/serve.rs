//! Building the HTTP server around the app: state, load shedding, request metrics and logging,
//! and the routes of `api::configure`. The binary and the integration tests start the service
//! through this one function, so tests exercise exactly what production runs.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::metrics::track_requests;
use crate::shed::shed_load;
use crate::state::AppState;

/// How long a client may take to send its request head. The body that follows is held to
/// `shed::BodyRate` (actix itself times only the head).
pub const CLIENT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Threads per worker for the work run off the async workers (`web::block`: syncs, photos,
/// sign-ins, store reads). That work is CPU-bound, so two per worker (two per core by default)
/// keep the cores busy while one waits on the disk. More threads (actix's default is 512 across
/// the workers) only let a burst of syncs run on dozens of threads at once, each with its own
/// allocator heap: more memory, no more throughput.
pub const BLOCKING_THREADS_PER_WORKER: usize = 2;

/// A running-on-await server listening on `listener`. Stops gracefully on SIGINT/SIGTERM or
/// through its handle; the caller flushes the store afterwards.
pub fn http_server(
    state: web::Data<AppState>,
    listener: TcpListener,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(track_requests))
            // Wrapped last, so outermost: a shed request costs nothing more.
            .wrap(from_fn(shed_load))
            .configure(crate::api::configure)
    })
    // A phone on a field link (300 ms round trips, lost packets) can take several seconds to
    // get its request head through; actix's default of 5 s answered such phones 408. Set
    // before `listen`, which takes the settings as they are.
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server
        .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
        .run())
}
