//! The three programs of the weak-network test (`tests/tests/weak_network.rs`), each started by
//! the test inside its own network namespace with `ip netns exec`:
//!
//! - `weaknet server <data-dir> <addr>`: the ChiefSync service as `http_server` builds it, plus
//!   a record of every request it received, one JSON line each on stdout (method, path,
//!   status, body bytes, `Content-Range`, `Upload-Offset`, the documents a sync pushed, or how
//!   a request was cut), so the test judges resumption by what reached the server.
//! - `weaknet link <seed> [<spec>]`: the emulated field link (`tests::weaklink`; another link
//!   with `LinkSpec::parse`'s `delay=25ms,loss=0,rate=10mbit`).
//! - `weaknet phone <dir> <server-url> login [<user> <password>] | record … | sync`: a phone
//!   (the demo chief's unless another account is named), which is
//!   mobile-ffi's `FieldClient` (sync-core's engine, store and photo outbox) as the apps use
//!   it. The test kills this process at a random moment to cut a sync.
//!
//! Every role prints JSON lines; none is a tool for anything else.

use std::error::Error;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use mobile_ffi::{CheckResult, ClientConfig, Clock, FieldClient, IssueDraft, PhotoRole, Severity};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use server::auth::password::PasswordCost;
use server::{demo, AppState, Settings};
use sync_core::protocol::SyncRequest;
use sync_core::track::walk_along;
use tests::netns;
use tests::weaklink::{self, LinkSpec};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const DAY_MS: i64 = 86_400_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["server", data, addr] => serve(Path::new(data), addr),
        ["link", seed] => link(seed.parse().unwrap_or(0), LinkSpec::FIELD),
        ["link", seed, spec] => LinkSpec::parse(spec)
            .map_err(Into::into)
            .and_then(|spec| link(seed.parse().unwrap_or(0), spec)),
        ["phone", dir, url, rest @ ..] => phone(Path::new(dir), url, rest),
        _ => Err(
            "usage: weaknet server <data-dir> <addr> | link <seed> [<spec>] | phone <dir> <url> …"
                .into(),
        ),
    };
    if let Err(err) = outcome {
        println!("{}", json!({ "error": err.to_string() }));
        std::process::exit(1);
    }
}

fn serve(data_dir: &Path, addr: &str) -> Result<()> {
    let settings = Settings {
        signing_key: Some(tests::server::SIGNING_KEY.into()),
        password_cost: PasswordCost::FAST_FOR_TESTS,
        ..Settings::new(data_dir)
    };
    let state = AppState::open(&settings)?;
    demo::seed(&state)?;
    let listener = TcpListener::bind(addr)?;
    let state = web::Data::new(state);
    let served = state.clone();
    // The same app as `server::http_server`, with the request record outermost.
    let server = HttpServer::new(move || {
        App::new()
            .app_data(served.clone())
            .wrap(from_fn(server::metrics::track_requests))
            .wrap(from_fn(record))
            .configure(server::configure)
    })
    .client_request_timeout(server::CLIENT_REQUEST_TIMEOUT)
    .listen(listener)?
    .workers(2)
    .run();
    println!("{}", json!({ "ready": addr }));
    actix_web::rt::System::new().block_on(server)?;
    state.store.flush()?;
    Ok(())
}

/// Reads the whole body first (so a request cut mid-body is seen and recorded as cut), hands
/// it on unchanged, and prints what the server answered.
async fn record(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> std::result::Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let header = |req: &ServiceRequest, name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let range = header(&req, "Content-Range");
    // The phone's port tells its connections apart: after a cut, the killed phone's kernel may
    // still deliver the rest of a request it had buffered.
    let port = req.peer_addr().map(|a| a.port());
    let payload = req.extract::<web::Payload>().await?;
    let body = match payload.to_bytes_limited(64 * 1024 * 1024).await {
        Ok(Ok(body)) => body,
        outcome => {
            let why = match outcome {
                Ok(Err(err)) => err.to_string(),
                _ => "body over 64 MiB".into(),
            };
            println!(
                "{}",
                json!({ "method": method, "path": path, "range": range, "port": port, "cut": why })
            );
            return Err(actix_web::error::ErrorBadRequest(why));
        }
    };
    let docs: Option<Vec<String>> = (path == "/api/v1/sync")
        .then(|| SyncRequest::decode(&body).ok())
        .flatten()
        .map(|request| request.docs.into_iter().map(|d| d.doc_id).collect());
    let bytes = body.len();
    req.set_payload(actix_web::dev::Payload::from(body));
    let response = next.call(req).await?;
    let offset = response
        .headers()
        .get("Upload-Offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    println!(
        "{}",
        json!({
            "method": method,
            "path": path,
            "status": response.status().as_u16(),
            "bytes": bytes,
            "range": range,
            "offset": offset,
            "docs": docs,
            "port": port,
        })
    );
    Ok(response)
}

fn link(seed: u64, spec: LinkSpec) -> Result<()> {
    let bind = |addr: &str| -> Result<UdpSocket> { Ok(UdpSocket::bind(addr)?) };
    let device_side = bind(netns::LINK_DEVICE_SIDE)?;
    let server_side = bind(netns::LINK_SERVER_SIDE)?;
    let device: SocketAddr = netns::DEVICE_UNDERLAY.parse()?;
    let server: SocketAddr = netns::SERVER_UNDERLAY.parse()?;
    println!("{}", json!({ "ready": true }));
    std::io::stdout().flush()?;
    weaklink::run(
        spec,
        seed,
        (device_side, device),
        (server_side, server),
        std::io::stdin().lock(),
        std::io::stdout(),
    )?;
    Ok(())
}

/// The phone's clock: the real one, or moved along a recorded week.
#[derive(Debug)]
struct PhoneClock(AtomicI64);

impl Clock for PhoneClock {
    fn now_ms(&self) -> i64 {
        match self.0.load(Ordering::SeqCst) {
            0 => mobile_ffi::SystemClock.now_ms(),
            at => at,
        }
    }
}

fn phone(dir: &Path, url: &str, command: &[&str]) -> Result<()> {
    let clock = Arc::new(PhoneClock(AtomicI64::new(0)));
    let mut config = ClientConfig::new(dir, url);
    config.clock = clock.clone();
    let client = FieldClient::open(config)?;
    match command {
        ["login"] => {
            let me = client.login(demo::CHIEF.into(), "demo".into())?;
            println!("{}", json!({ "user": me.username }));
        }
        ["login", username, password] => {
            let me = client.login((*username).into(), (*password).into())?;
            println!("{}", json!({ "user": me.username }));
        }
        ["record", days, points, photos, side, seed] => {
            let week = Week {
                days: days.parse()?,
                points: points.parse()?,
                photos_per_issue: photos.parse()?,
                photo_side: side.parse()?,
                seed: seed.parse()?,
            };
            week.record(&client, &clock, dir)?;
        }
        ["sync"] => sync_until_done(&client)?,
        _ => return Err(format!("unknown phone command {command:?}").into()),
    }
    Ok(())
}

/// Days of offline work: a patrol a day at 1 Hz, and on every other day a problem reported
/// with photos.
struct Week {
    days: u32,
    points: usize,
    photos_per_issue: u32,
    photo_side: u32,
    seed: u64,
}

impl Week {
    fn record(&self, client: &FieldClient, clock: &PhoneClock, dir: &Path) -> Result<()> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let asset_id = client
            .assets()?
            .first()
            .ok_or("a chief without assets")?
            .id
            .clone();
        let asset = demo::facts()
            .asset(&asset_id)
            .ok_or("a demo asset")?
            .clone();
        let items: Vec<String> = client
            .check_items()?
            .into_iter()
            .filter(|c| c.system == asset.system)
            .map(|c| c.code)
            .collect();
        let category = client
            .categories()?
            .into_iter()
            .find(|c| c.system == asset.system)
            .ok_or("no category")?
            .code;
        let first_day = mobile_ffi::SystemClock.now_ms() - i64::from(self.days) * DAY_MS;
        let (mut patrols, mut issues, mut photos) = (0, 0, 0);
        for day in 0..self.days {
            let start = first_day + i64::from(day) * DAY_MS + 9 * 3_600_000;
            clock.0.store(start, Ordering::SeqCst);
            let patrol = client.start_patrol(asset.id.clone())?;
            let track = walk_along(&asset.geometry, start, self.points, rng.random());
            for p in &track {
                clock.0.store(p.t_ms, Ordering::SeqCst);
                client.add_track_point(
                    patrol.clone(),
                    p.lat,
                    p.lon,
                    p.t_ms,
                    p.accuracy_m,
                    p.mock,
                    p.provider.name().into(),
                )?;
            }
            for item in &items {
                client.set_check_item(
                    patrol.clone(),
                    item.clone(),
                    CheckResult::Ok,
                    String::new(),
                )?;
            }
            if day % 2 == 0 {
                let at = track[track.len() / 2];
                let issue = client.report_issue(IssueDraft {
                    category: category.clone(),
                    severity: Severity::General,
                    asset_id: asset.id.clone(),
                    lat: at.lat,
                    lon: at.lon,
                    description: format!("第{}天巡查发现河道垃圾", day + 1),
                    patrol_id: Some(patrol.clone()),
                })?;
                issues += 1;
                for n in 0..self.photos_per_issue {
                    let file = self.take_photo(dir, &mut rng, day * 100 + n)?;
                    client.attach_photo(issue.clone(), file, PhotoRole::Before)?;
                    photos += 1;
                }
            }
            clock.0.store(
                track.last().map_or(start, |p| p.t_ms) + 1_000,
                Ordering::SeqCst,
            );
            client.finish_patrol(patrol, "巡查完毕".into())?;
            patrols += 1;
        }
        let outbox = client.store().outbox()?;
        println!(
            "{}",
            json!({
                "patrols": patrols,
                "points": patrols * self.points,
                "issues": issues,
                "photos": photos,
                "photo_bytes": outbox.iter().map(|e| e.size).sum::<u64>(),
            })
        );
        Ok(())
    }

    /// A camera picture of `photo_side` pixels across: smooth light with sensor noise, so it
    /// compresses like a photo rather than like a test pattern.
    fn take_photo(&self, dir: &Path, rng: &mut StdRng, n: u32) -> Result<String> {
        let (w, h) = (self.photo_side, self.photo_side * 3 / 4);
        let tint: u32 = rng.random_range(0..64);
        let picture = image::RgbImage::from_fn(w, h, |x, y| {
            let base = (x * 96 / w + y * 96 / h + tint) as i32;
            let noise = |rng: &mut StdRng| rng.random_range(-28..28);
            let px = |v: i32| v.clamp(0, 255) as u8;
            image::Rgb([
                px(base + 40 + noise(rng)),
                px(base + 70 + noise(rng)),
                px(base + 20 + noise(rng)),
            ])
        });
        let path: PathBuf = dir.join(format!("camera-{n}.jpg"));
        image::DynamicImage::ImageRgb8(picture)
            .save_with_format(&path, image::ImageFormat::Jpeg)?;
        Ok(path.to_string_lossy().into_owned())
    }
}

/// Syncs until every photo is on the server, as the app does when it has signal: a sync that
/// fails (a request cut or timed out on the weak link) is tried again a second later, and a
/// photo whose upload failed waits for its backoff. Prints each sync's report or error and,
/// last, the time it all took.
fn sync_until_done(client: &FieldClient) -> Result<()> {
    let started = Instant::now();
    for _ in 0..90 {
        match client.sync() {
            Ok(report) => {
                println!(
                    "{}",
                    json!({
                        "docs_sent": report.docs_sent,
                        "docs_received": report.docs_received,
                        "round_trips": report.round_trips,
                        "bytes_up": report.bytes_up,
                        "bytes_down": report.bytes_down,
                        "photos_uploaded": report.photos_uploaded,
                        "photo_bytes_up": report.photo_bytes_up,
                        "photos_waiting": report.photos_waiting,
                        "refused": report.refused,
                        "errors": report.errors,
                    })
                );
                if report.photos_waiting == 0 {
                    println!("{}", json!({ "done": started.elapsed().as_secs_f64() }));
                    return Ok(());
                }
            }
            Err(err) => println!("{}", json!({ "sync_error": err.to_string() })),
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    Err("not everything was on the server after 90 syncs".into())
}
