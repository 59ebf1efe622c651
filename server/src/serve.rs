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
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
