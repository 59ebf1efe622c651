//! Two `chiefsync` server processes on one PostgreSQL database, every request going to either:
//! what one server decides, the other honours, and what must happen once happens once however
//! the requests are spread. A refresh token is exchanged once (a phone's retries through both
//! servers at the same moment all get the one successor, and a copy replayed through the other
//! server signs the device out); administrative imports are applied one at a time across the
//! servers (no change is audited from a state another import had already replaced) and a
//! one-time setup code is used once; a
//! resident's challenge, ticket, photo and report may each reach a different server, a ticket
//! is spent once, and the per-network and per-place counts are the same on both; a server
//! stopped in the middle of a save stops no other server's syncs, and photo collection gives up
//! its run instead of waiting on it for ever. Separate
//! processes, so nothing one server keeps in memory can reach the other. Without
//! `CHIEFSYNC_TEST_POSTGRES` each test says `skipped:` and passes.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use server::demo::{ADMIN, CHIEF, DEMO_PASSWORD};
use server::public::pow::solve;
use server::state::now_ms;
use server::storage::{PostgresStore, Store};
use sync_core::doc::{IssueDoc, NewIssue};
use sync_core::hub::DocumentStore;
use sync_core::model::{Role, Severity, System};

use crate::harness::TestServer;
use crate::phone::Phone;
use crate::postgres::Database;

/// The signing key both servers share (tokens signed by one are honoured by the other).
const SIGNING_KEY: &str = "two-processes-test-signing-key-0123456789";

/// One `chiefsync` process serving the database.
struct Node {
    child: Child,
    base: String,
    client: awc::Client,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(database: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        // The port is free when chosen but another test may take it first: then the server
        // exits at once and another port is tried.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_chiefsync"))
                .arg("--data-dir")
                .arg(dir.path())
                .args(["--database", database])
                .args(["--addr", &format!("127.0.0.1:{port}"), "--workers", "2"])
                .args(["--signing-key", SIGNING_KEY])
                .env_remove("CHIEFSYNC_DEMO")
                .env_remove("CHIEFSYNC_BLOBS")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("start chiefsync");
            let base = format!("http://127.0.0.1:{port}");
            for _ in 0..1200 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(res) = client.get(format!("{base}/healthz")).send().await {
                    if res.status().is_success() {
                        return Node {
                            child,
                            base,
                            client,
                            _dir: dir,
                        };
                    }
                }
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chiefsync did not come up on {database}");
    }

    /// `json` on a task of its own, so several requests are under way at once.
    fn spawn_json(
        &self,
        method: &'static str,
        path: &'static str,
        body: Value,
    ) -> actix_web::rt::task::JoinHandle<(u16, Value)> {
        let node = Sender {
            client: self.client.clone(),
            base: self.base.clone(),
        };
        actix_web::rt::spawn(async move { node.json(method, path, body).await })
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        Sender {
            client: self.client.clone(),
            base: self.base.clone(),
        }
        .send(method, path, token, headers, body)
        .await
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(method, path, None, &[], Some(body)).await
    }

    async fn login(&self, username: &str, device: &str) -> Value {
        let (status, grant) = self
            .json(
                "POST",
                "/auth/login",
                json!({"username": username, "password": DEMO_PASSWORD, "device_id": device}),
            )
            .await;
        assert_eq!(status, 200, "{grant}");
        grant
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.json("POST", "/auth/refresh", json!({"refresh_token": token}))
            .await
    }

    /// A file posted on a task of its own, so several are under way at once.
    fn spawn_upload(
        &self,
        path: &str,
        token: &str,
        bytes: Vec<u8>,
    ) -> actix_web::rt::task::JoinHandle<(u16, Value)> {
        let request = self
            .client
            .post(format!("{}/api/v1{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/octet-stream"));
        actix_web::rt::spawn(async move {
            let mut res = request.send_body(bytes).await.unwrap();
            let body = res.body().limit(16 * 1024 * 1024).await.unwrap();
            (
                res.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        })
    }
}

/// What a request needs of a node, apart from the node.
struct Sender {
    client: awc::Client,
    base: String,
}

impl Sender {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request sent");
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body read");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(method, path, None, &[], Some(body)).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database with the demo seeded (by a server in this process, stopped again) and two
/// server processes on it; `None` (the test skipped) without `CHIEFSYNC_TEST_POSTGRES`.
async fn two_nodes(test: &str) -> Option<(Database, Node, Node)> {
    let db = Database::create(test)?;
    let url = db.url.clone();
    TestServer::demo_with(|s| s.database = Some(url.clone()))
        .await
        .stop()
        .await;
    let a = Node::start(&db.url).await;
    let b = Node::start(&db.url).await;
    Some((db, a, b))
}

fn refresh_token(grant: &Value) -> String {
    grant["refresh_token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_refresh_token_is_exchanged_once_whichever_servers_its_copies_reach() {
    let Some((db, a, b)) = two_nodes("shared_refresh_once").await else {
        return;
    };
    let nodes = [&a, &b];
    let mut token = refresh_token(&a.login(CHIEF, "phone-1").await);
    for round in 0..8 {
        // The phone exchanges its token through one server; the answer is lost, and the phone
        // (and the network, which repeats requests) sends the same token again and again,
        // reaching both servers at the same moment. Every answer is the one successor.
        let (status, first) = nodes[round % 2].refresh(&token).await;
        assert_eq!(status, 200, "round {round}: {first}");
        let successor = refresh_token(&first);
        let retries: Vec<_> = (0..8)
            .map(|n| {
                nodes[(round + n) % 2].spawn_json(
                    "POST",
                    "/auth/refresh",
                    json!({"refresh_token": token}),
                )
            })
            .collect();
        for retry in retries {
            let (status, retried) = retry.await.unwrap();
            assert_eq!(status, 200, "round {round}: a retry was refused: {retried}");
            assert_eq!(refresh_token(&retried), successor, "round {round}");
        }
        // Two copies of the fresh successor exchanged at the same moment through the two
        // servers: never two different successors.
        let body = json!({"refresh_token": successor});
        let (one, two) = (
            a.spawn_json("POST", "/auth/refresh", body.clone()),
            b.spawn_json("POST", "/auth/refresh", body),
        );
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        assert_eq!(
            (one.0, two.0),
            (200, 200),
            "round {round}: {} {}",
            one.1,
            two.1
        );
        assert_eq!(
            refresh_token(&one.1),
            refresh_token(&two.1),
            "round {round}"
        );
        token = refresh_token(&one.1);
    }
    // The token is exchanged through B and its successor through A: a copy of the token
    // replayed through A afterwards is a stolen copy, and signs the device out on both.
    let (status, successor) = b.refresh(&token).await;
    assert_eq!(status, 200, "{successor}");
    let (status, next) = a.refresh(&refresh_token(&successor)).await;
    assert_eq!(status, 200, "{next}");
    let (status, replayed) = a.refresh(&token).await;
    assert_eq!(status, 401, "{replayed}");
    assert_eq!(replayed["error"], "refresh_token_reused", "{replayed}");
    let (status, after) = b.refresh(&refresh_token(&next)).await;
    assert_eq!(status, 401, "{after}");
    drop((a, b));
    drop(db);
}

#[actix_web::test]
async fn imports_through_two_servers_are_applied_one_after_the_other() {
    let Some((db, a, b)) = two_nodes("shared_imports").await else {
        return;
    };
    let admin_a = a.login(ADMIN, "office-a").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_b = b.login(ADMIN, "office-b").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    const VILLAGE: &str = "370105014201";
    // Two offices rename the same village at the same moment, each through its own server,
    // round after round. Applied one after the other, each change starts from the name the
    // one before left; two applied at once would both start from the same name.
    for round in 0..6 {
        let list = |name: String| format!("代码,名称\n{VILLAGE},{name}\n").into_bytes();
        let (one, two) = (
            a.spawn_upload(
                "/admin/import/divisions?dry_run=false",
                &admin_a,
                list(format!("甲村{round}")),
            ),
            b.spawn_upload(
                "/admin/import/divisions?dry_run=false",
                &admin_b,
                list(format!("乙村{round}")),
            ),
        );
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        assert_eq!(one.0, 200, "{}", one.1);
        assert_eq!(two.0, 200, "{}", two.1);
    }
    let (status, audit) = a
        .send("GET", "/admin/audit?limit=2000", Some(&admin_a), &[], None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let changes: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "division_change" && e["before"]["code"] == VILLAGE)
        .map(|e| {
            (
                e["before"]["name"].as_str().unwrap().to_owned(),
                e["after"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 12, "{changes:?}");
    let mut befores: Vec<&str> = changes.iter().map(|(before, _)| before.as_str()).collect();
    befores.sort_unstable();
    befores.dedup();
    assert_eq!(
        befores.len(),
        changes.len(),
        "two changes started from the same name: {changes:?}"
    );

    // A one-time setup code used at the same moment through both servers, with two
    // passwords: one use is taken, and only its password signs in.
    let chief_id = a.login(CHIEF, "old-phone").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, issued) = b
        .send(
            "POST",
            &format!("/admin/users/{chief_id}/setup-code"),
            Some(&admin_b),
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let code = issued["code"].as_str().unwrap();
    let setup = |password: &str, device: &str| json!({"username": CHIEF, "code": code, "password": password, "device_id": device});
    let (one, two) = (
        a.spawn_json("POST", "/auth/setup", setup("first-new-pass", "phone-a")),
        b.spawn_json("POST", "/auth/setup", setup("second-new-pass", "phone-b")),
    );
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    let mut statuses = [one.0, two.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{} {}", one.1, two.1);
    let (taken, refused) = if one.0 == 200 {
        ("first-new-pass", "second-new-pass")
    } else {
        ("second-new-pass", "first-new-pass")
    };
    let sign_in =
        |password: &str| json!({"username": CHIEF, "password": password, "device_id": "phone-c"});
    assert_eq!(b.json("POST", "/auth/login", sign_in(refused)).await.0, 401);
    assert_eq!(a.json("POST", "/auth/login", sign_in(taken)).await.0, 200);
    drop((a, b));
    drop(db);
}

/// The middle of the demo asset `id`.
fn asset_middle(id: &str) -> [f64; 2] {
    match &server::demo::facts().asset(id).unwrap().geometry {
        sync_core::model::Geometry::LineString(line) => line[line.len() / 2],
        sync_core::model::Geometry::Polygon(rings) => rings[0][0],
    }
}

/// A camera-like JPEG and its SHA-256.
fn jpeg(seed: u8) -> (String, Vec<u8>) {
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, seed.wrapping_mul(37)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    let bytes = out.into_inner();
    (sync_core::photo::sha256_hex(&bytes), bytes)
}

/// A challenge fetched from `from`, solved, and the ticket bought from `to`.
/// A ticket for `asset` (challenge from `from`, answered at `to`), then the report `report`
/// makes of it, without photos, sent through `from`: the report's status and body.
async fn ticket_and_report(
    from: &Node,
    to: &Node,
    asset: &str,
    report: impl Fn(&str, Vec<String>) -> Value,
) -> (u16, Value) {
    let (status, grant) = ticket(from, to, asset).await;
    assert_eq!(status, 200, "{grant}");
    from.json(
        "POST",
        "/public/reports",
        report(grant["ticket"].as_str().unwrap(), vec![]),
    )
    .await
}

async fn ticket(from: &Node, to: &Node, asset: &str) -> (u16, Value) {
    let (status, challenge) = from.send("GET", "/public/challenge", None, &[], None).await;
    assert_eq!(status, 200, "{challenge}");
    let text = challenge["challenge"].as_str().unwrap();
    let nonce = solve(text, challenge["bits"].as_u64().unwrap() as u32);
    to.json(
        "POST",
        "/public/tickets",
        json!({"asset": asset, "challenge": text, "nonce": nonce}),
    )
    .await
}

#[actix_web::test]
async fn a_residents_report_may_reach_any_server_at_every_step() {
    let Some((db, a, b)) = two_nodes("shared_public").await else {
        return;
    };
    const ASSET: &str = "river-thh-01";
    let report = |ticket: &str, photos: Vec<String>| {
        json!({"ticket": ticket, "category": "river.garbage", "description": "桥下河面漂浮垃圾",
               "location": asset_middle(ASSET), "photos": photos})
    };

    // The challenge from A answered at B buys a ticket; the same answer again, at A, does not.
    let (status, challenge) = a.send("GET", "/public/challenge", None, &[], None).await;
    assert_eq!(status, 200);
    let text = challenge["challenge"].as_str().unwrap();
    let answer = json!({"asset": ASSET, "challenge": text,
                        "nonce": solve(text, challenge["bits"].as_u64().unwrap() as u32)});
    let (status, grant) = b.json("POST", "/public/tickets", answer.clone()).await;
    assert_eq!(status, 200, "a challenge from A answered at B: {grant}");
    let (status, again) = a.json("POST", "/public/tickets", answer).await;
    assert_eq!(status, 403, "{again}");
    assert_eq!(again["error"], "proof_of_work_invalid");
    let first = grant["ticket"].as_str().unwrap().to_owned();

    // The ticket from B carries a photo uploaded through A, and the report filed through A.
    let (sha, bytes) = jpeg(1);
    let mut res = a
        .client
        .put(format!("{}/api/v1/public/photos/{sha}", a.base))
        .insert_header(("X-Report-Ticket", first.as_str()))
        .send_body(bytes)
        .await
        .unwrap();
    let body = res.body().await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Two copies of the report at the same moment, one through each server: one is taken.
    let (one, two) = (
        a.spawn_json("POST", "/public/reports", report(&first, vec![sha.clone()])),
        b.spawn_json("POST", "/public/reports", report(&first, vec![sha.clone()])),
    );
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    let mut statuses = [one.0, two.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 403], "{} {}", one.1, two.1);
    let refused = if one.0 == 403 { &one.1 } else { &two.1 };
    assert_eq!(refused["error"], "ticket_invalid", "{refused}");
    // Replayed later through either server, the spent ticket is refused.
    for node in [&a, &b] {
        let (status, replayed) = node
            .json("POST", "/public/reports", report(&first, vec![sha.clone()]))
            .await;
        assert_eq!(status, 403, "{replayed}");
    }

    // Reports from one network are counted on both servers together (the two copies above
    // counted one each, as every report sent does): three more, spread over the two, and the
    // sixth within the hour is refused by either.
    for n in 0..3 {
        let (from, to) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (status, filed) = ticket_and_report(from, to, ASSET, report).await;
        assert_eq!(status, 201, "report {n}: {filed}");
    }
    for node in [&a, &b] {
        let (status, refused) = ticket_and_report(node, node, ASSET, report).await;
        assert_eq!(status, 429, "{refused}");
        assert_eq!(refused["error"], "rate_limited_address", "{refused}");
    }
    drop((a, b));
    drop(db);
}

/// The demo chief signs in on `node` from "phone-1" and reports a problem on their river with
/// `description`, saved on the phone (it goes up at the next sync); the phone and the id.
async fn report_on_phone(node: &Node, description: &str) -> (std::sync::Arc<Phone>, String) {
    let grant = node.login(CHIEF, "phone-1").await;
    let chief = Phone::at(&node.base, &grant, "phone-1");
    let facts = server::demo::facts();
    let Role::Chief { jurisdiction, .. } = &facts.user(CHIEF).unwrap().role else {
        panic!("a chief");
    };
    let asset = facts.asset(&jurisdiction.assets[0]).unwrap();
    let mut issue = IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        now_ms(),
        &NewIssue {
            system: System::River,
            category: "river.dumping".into(),
            severity: Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: asset_middle(&asset.id),
            description: description.into(),
            patrol: None,
        },
    )
    .unwrap();
    let id = issue.id().to_string();
    chief.save(&mut issue);
    (chief, id)
}

/// While one server holds document saves back (its photo collection asks whether a week-old
/// photo is referenced, and removes it, in between), a phone's sync through another server
/// waits, and lands once the hold ends. The holder here is this test's own store on the
/// database, as a third server would be; the sync goes through a server process.
#[actix_web::test]
async fn saves_through_any_server_wait_while_one_holds_them() {
    let Some((db, a, b)) = two_nodes("shared_hold_saves").await else {
        return;
    };
    drop(b);
    let (chief, id) = report_on_phone(&a, "保存暂停测试：岸边倾倒渣土").await;

    let holder = PostgresStore::open(&db.url).unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holding = std::thread::spawn(move || {
        let held = holder.hold_saves();
        held_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        drop(held);
        holder
    });
    held_rx.recv().unwrap();
    let phone = chief.clone();
    let sync = actix_web::rt::spawn(async move { phone.sync(now_ms()).await });
    actix_web::rt::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        !sync.is_finished(),
        "a sync through another server stored a document while saves were held"
    );
    release_tx.send(()).unwrap();
    let holder = holding.join().unwrap();
    assert_eq!(sync.await.unwrap().docs_sent, 1);
    assert!(holder.document(&id).unwrap().is_some());
    drop(a);
    drop(db);
}

/// A server stopped in the middle of a save: a connection of its own that drew a feed position
/// in an open transaction (so it holds the save side of the hold on saves) and sends nothing
/// more, until `release` is sent; then it rolls back.
fn stopped_save(url: &str) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (opened_tx, opened) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let url = url.to_owned();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
                .batch_execute("BEGIN; SELECT feed_position()")
                .await
                .expect("a save's first steps");
            opened_tx.send(()).unwrap();
            tokio::task::spawn_blocking(move || released.recv())
                .await
                .unwrap()
                .ok();
            client.batch_execute("ROLLBACK").await.expect("rollback");
        });
    });
    opened.recv().expect("the stopped save opened");
    (release, thread)
}

/// Photo collection on one server asks for the hold on saves while another server is stopped
/// in the middle of a save. Before, the hold waited for ever and every server's saves queued
/// behind it in the database. Now a phone's sync through another server process goes through
/// meanwhile, collection gives up its run within seconds, saying so, and removes the photo at
/// its next run once the stopped save has ended.
#[actix_web::test]
async fn a_stopped_save_elsewhere_skips_photo_collection_and_stops_no_sync() {
    let Some(db) = crate::postgres::Database::create("stopped_save_elsewhere") else {
        return;
    };
    let url = db.url.clone();
    let collector = TestServer::demo_with(|s| s.database = Some(url.clone())).await;
    let a = Node::start(&db.url).await;

    // A photo no record names, past its grace period at `late`.
    let chief_token = collector.token(CHIEF, "chief-pc").await;
    let (orphan, bytes) = jpeg(77);
    let mut res = collector
        .client
        .put(format!("{}/api/v1/blobs/{orphan}", collector.base))
        .insert_header(("Authorization", format!("Bearer {chief_token}")))
        .send_body(bytes)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "{:?}", res.body().await);
    let grace = server::photos::DEFAULT_UNREFERENCED_PHOTO_AFTER.as_millis() as i64;
    let late = now_ms() + grace + 60_000;

    let (chief, _) = report_on_phone(&a, "保存停住测试：岸边倾倒渣土").await;

    let (release, stopped) = stopped_save(&db.url);
    let collecting = {
        let state = collector.state.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let run = server::photos::collect_unreferenced(&state, late);
            (run.map_err(|e| e.to_string()), started.elapsed())
        })
    };
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let phone = chief.clone();
    let sync = actix_web::rt::spawn(async move { phone.sync(now_ms()).await });
    let synced = actix_web::rt::time::timeout(Duration::from_secs(4), sync)
        .await
        .expect("a sync through another server stopped behind the waiting hold")
        .unwrap();
    assert_eq!(synced.docs_sent, 1);

    let (run, took) = collecting.join().unwrap();
    let why = run.expect_err("photos were collected over a save under way");
    assert!(why.contains("looked at again at the next run"), "{why}");
    assert!(took < Duration::from_secs(10), "collection waited {took:?}");
    assert!(
        collector
            .state
            .blobs
            .store()
            .record(&orphan)
            .unwrap()
            .is_some(),
        "nothing is removed in a run that gave up"
    );

    release.send(()).unwrap();
    stopped.join().unwrap();
    let state = collector.state.clone();
    let removed = std::thread::spawn(move || server::photos::collect_unreferenced(&state, late))
        .join()
        .unwrap()
        .expect("the next run");
    assert_eq!(removed, 1);
    assert!(collector
        .state
        .blobs
        .store()
        .record(&orphan)
        .unwrap()
        .is_none());
    drop(a);
    collector.stop().await;
    drop(db);
}
