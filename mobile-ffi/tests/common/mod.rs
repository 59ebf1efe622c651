//! A real ChiefSync server with the Tianqiao demo, started in its own thread on 127.0.0.1 for
//! the phone's tests; it serves until the test process ends.

use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;

use actix_web::web;
use server::auth::password::PasswordCost;
use server::{http_server, AppState, Settings};

/// Starts the demo server over `dir` with access tokens living `access_ttl_secs`; returns its
/// root URL.
#[allow(dead_code)] // not every test binary uses the defaults
pub fn start_demo_server(dir: &Path, access_ttl_secs: u64) -> String {
    start_tuned_demo_server(dir, access_ttl_secs, |_| {})
}

/// [`start_demo_server`] with settings changed by `tune`.
pub fn start_tuned_demo_server(
    dir: &Path,
    access_ttl_secs: u64,
    tune: impl FnOnce(&mut Settings),
) -> String {
    let mut settings = Settings {
        signing_key: Some("phone-test-signing-key-0123456789abcdef".into()),
        password_cost: PasswordCost::FAST_FOR_TESTS,
        access_ttl_secs,
        ..Settings::new(dir)
    };
    tune(&mut settings);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let state = AppState::open(&settings).expect("open server state");
            server::demo::seed(&state).expect("seed the demo");
            // The phones of these tests run on a simulated clock in 2025, before they were
            // signed in: the server allows their times that far back, as a deployment that
            // brings in earlier work does (`settings::DeviceTimes`).
            state
                .store
                .put_meta(
                    server::settings::DEVICE_TIMES_KEY,
                    br#"{"binding_grace_ms": 63072000000}"#,
                )
                .expect("device time settings");
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let base = format!("http://{}", listener.local_addr().expect("local address"));
            let server = http_server(web::Data::new(state), listener, Some(2)).expect("server");
            tx.send(base).expect("hand over the address");
            server.await.expect("server runs");
        });
    });
    rx.recv().expect("server started")
}

/// `(lat, lon)` of a point on the demo asset `id`, where its chief would stand to report: the
/// server refuses reports placed far from their asset.
#[allow(dead_code)] // not every test binary reports problems
pub fn spot(id: &str) -> (f64, f64) {
    let [lon, lat] = match &server::demo::facts()
        .asset(id)
        .expect("demo asset")
        .geometry
    {
        sync_core::model::Geometry::LineString(line) => line[line.len() / 2],
        sync_core::model::Geometry::Polygon(rings) => rings[0][0],
    };
    (lat, lon)
}
