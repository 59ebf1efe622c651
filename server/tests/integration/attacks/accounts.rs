//! Attacks: accounts. Slow request bodies that hold every place of the server, sign-in floods
//! that starve the threads authenticating every request, strangers locking owners out, a
//! refresh token sent twice at once, tokens revived by reactivating an account, a logout that
//! leaves the refresh token alive, and device revocation as an oracle and across systems.
//!
//! Some attacks need a server tuned differently from the harness's (a short body grace, the
//! real password cost); [`Tuned`] starts those the way the harness does.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web;
use serde_json::{json, Value};
use server::auth::password::PasswordCost;
use server::demo::{self, ADMIN, CHIEF, CHIEF_2, FOREST_CHIEF, SUPERVISOR};
use server::{http_server, AppState, Settings};
use sync_core::protocol::SyncRequest;

use crate::harness::{TestServer, SIGNING_KEY};

/// A demo server with settings of the attack's choosing.
struct Tuned {
    base: String,
    addr: std::net::SocketAddr,
    state: web::Data<AppState>,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Tuned {
    async fn demo(tune: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            signing_key: Some(SIGNING_KEY.into()),
            password_cost: PasswordCost::FAST_FOR_TESTS,
            ..Settings::new(dir.path())
        };
        tune(&mut settings);
        let state = AppState::open(&settings).expect("open state");
        demo::seed(&state).expect("seed demo");
        let state = web::Data::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = http_server(state.clone(), listener, Some(1)).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            addr,
            state,
            handle,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.state.store.flush().unwrap();
    }
}

/// A client whose connections come from `ip` (any 127.x.y.z reaches the server on Linux), so
/// an attack can come from another address than its victim.
fn client_from(ip: IpAddr) -> awc::Client {
    awc::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(60))
        .finish()
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// POSTs JSON; status and JSON body.
async fn post_json(
    client: &awc::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = client.post(format!("{base}{path}"));
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut res = req.send_json(&body).await.expect("request sent");
    let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (res.status().as_u16(), json)
}

async fn login_from(
    client: &awc::Client,
    base: &str,
    username: &str,
    password: &str,
    device: &str,
) -> (u16, Value) {
    let body = json!({"username": username, "password": password, "device_id": device});
    post_json(client, base, "/api/v1/auth/login", None, body).await
}

async fn get_status(client: &awc::Client, base: &str, path: &str, token: &str) -> u16 {
    client
        .get(format!("{base}{path}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// Reads what the server answers on a raw connection until it closes it (or `within` passes).
fn answer_until_closed(mut stream: TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[actix_web::test]
async fn slow_bodies_from_one_user_leave_the_places_of_other_phones_free_and_are_cut_off() {
    let grace = Duration::from_secs(1);
    let s = Tuned::demo(|settings| {
        settings.body_rate.grace = grace;
        settings.body_rate.min_bytes_per_sec = 1024;
    })
    .await;
    let local = awc::Client::default();
    let (_, attacker) = login_from(&local, &s.base, CHIEF, "demo", "attacker-phone").await;
    let attacker = attacker["access_token"].as_str().unwrap().to_owned();
    let (_, honest) = login_from(&local, &s.base, CHIEF_2, "demo", "phone").await;
    let honest = honest["access_token"].as_str().unwrap().to_owned();

    // 70 connections, each announcing a 1 MB sync and sending one byte of it.
    let head = format!(
        "POST /api/v1/sync HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {attacker}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\nX",
        s.addr
    );
    let streams: Vec<TcpStream> = (0..70)
        .map(|_| {
            let mut stream = TcpStream::connect(s.addr).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    // Another chief's phone syncs at once and is served.
    let started = Instant::now();
    let mut res = local
        .post(format!("{}/api/v1/sync", s.base))
        .insert_header(("Authorization", format!("Bearer {honest}")))
        .content_type("application/octet-stream")
        .send_body(
            SyncRequest {
                cursor: 0,
                docs: Vec::new(),
                dropped: Vec::new(),
            }
            .encode(),
        )
        .await
        .unwrap();
    let body = res.body().limit(32 * 1024 * 1024).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "an honest sync during the flood: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Every slow connection is answered and closed soon after the grace: 503 at once beyond the
    // user's share, 408 for those that held a place.
    let answers = web::block(move || {
        streams
            .into_iter()
            .map(|stream| answer_until_closed(stream, Duration::from_secs(5)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut timed_out = 0;
    for (answer, closed) in &answers {
        assert!(closed, "a slow connection still open: {answer:?}");
        let status = answer.get(9..12).unwrap_or("");
        assert!(
            status == "408" || status == "503",
            "unexpected answer: {answer:?}"
        );
        timed_out += usize::from(status == "408");
    }
    assert!(
        (1..=server::shed::DEFAULT_MAX_IN_FLIGHT_PER_USER).contains(&timed_out),
        "{timed_out} slow bodies held places"
    );
    assert_eq!(s.state.load.in_flight(), 0);
    s.stop().await;
}

/// How long an honest signed-in request takes while sign-ins with random usernames arrive from
/// several addresses, each costing a full password check at the real cost.
#[actix_web::test]
async fn a_flood_of_random_sign_ins_does_not_delay_signed_in_phones() {
    let s = Tuned::demo(|settings| settings.password_cost = PasswordCost::DEFAULT).await;
    let local = client_from(loopback(1));
    let (status, grant) = login_from(&local, &s.base, CHIEF, "demo", "phone").await;
    assert_eq!(status, 200, "{grant}");
    let token = grant["access_token"].as_str().unwrap().to_owned();

    let flood: Vec<_> = (0..80u32)
        .map(|i| {
            let base = s.base.clone();
            actix_web::rt::spawn(async move {
                let client = client_from(loopback(2 + (i % 8) as u8));
                let name = format!("nobody-{i}-{}", uuid::Uuid::new_v4().simple());
                login_from(&client, &base, &name, "guess-123", &format!("d{i}")).await
            })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;

    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get_status(&local, &s.base, "/api/v1/me", &token).await, 200);
        slowest = slowest.max(started.elapsed());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slowest < Duration::from_millis(1_000),
        "a signed-in request waited {slowest:?} behind password checks"
    );
    for answer in flood {
        let (status, body) = answer.await.unwrap();
        assert!(
            [401, 429, 503].contains(&status),
            "a guessed sign-in answered {status} {body}"
        );
        assert!(body["error"].is_string(), "{body}");
    }
    s.stop().await;
}

#[actix_web::test]
async fn one_address_trying_many_usernames_is_throttled() {
    let s = TestServer::demo().await;
    let stranger = client_from(loopback(9));
    let mut statuses = Vec::new();
    for i in 0..30 {
        let (status, _) = login_from(&stranger, &s.base, &format!("user-{i}"), "x", "d").await;
        statuses.push(status);
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another address is not affected.
    s.login(CHIEF, "phone").await;
}

/// One address sprays wrong passwords over many usernames and signs into an account of its own
/// every few tries. Before, each of those sign-ins forgave every failure counted for the
/// address, so the spray never reached the per-address limit. Now a success forgives only the
/// failures made for its own username.
#[actix_web::test]
async fn signing_into_ones_own_account_does_not_forgive_guesses_at_others() {
    let s = TestServer::demo().await;
    let attacker = client_from(loopback(12));
    let mut statuses = Vec::new();
    for i in 0..30 {
        if i % 3 == 0 {
            let (status, body) = login_from(
                &attacker,
                &s.base,
                CHIEF_2,
                demo::DEMO_PASSWORD,
                "own-phone",
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, _) = login_from(&attacker, &s.base, &format!("user-{i}"), "x", "d").await;
        statuses.push(status);
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // His own account still signs in from the device it already uses; a new device of another
    // account, from his address, waits.
    let (status, body) = login_from(
        &attacker,
        &s.base,
        CHIEF_2,
        demo::DEMO_PASSWORD,
        "own-phone",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        login_from(&attacker, &s.base, CHIEF, demo::DEMO_PASSWORD, "new-phone").await;
    assert_eq!(status, 429, "{body}");
    // Another address is not affected.
    s.login(CHIEF, "phone").await;
    s.stop().await;
}

#[actix_web::test]
async fn strangers_cannot_lock_an_owner_out() {
    let s = TestServer::demo().await;
    // The administrator works from the office PC.
    s.login(ADMIN, "admin-pc").await;

    // Someone elsewhere guesses the administrator's password.
    let stranger = client_from(loopback(2));
    for _ in 0..5 {
        let (status, _) = login_from(&stranger, &s.base, ADMIN, "wrong", "x").await;
        assert_eq!(status, 401);
    }
    let (status, body) = login_from(&stranger, &s.base, ADMIN, "demo", "x").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited");

    // The administrator still signs in, from the office PC and from a new device.
    s.login(ADMIN, "admin-pc").await;
    s.login(ADMIN, "new-laptop").await;

    // Guessing from many addresses (one try each, 20 in all) holds back new devices only.
    for n in 10..25 {
        let (status, _) = login_from(&client_from(loopback(n)), &s.base, ADMIN, "wrong", "y").await;
        assert_eq!(status, 401);
    }
    s.login_reply(ADMIN, "demo", "another-new-device")
        .await
        .expect_error(429, "rate_limited");
    s.login(ADMIN, "admin-pc").await;
    s.login(ADMIN, "new-laptop").await;
}

#[actix_web::test]
async fn a_refresh_token_sent_several_times_at_once_has_one_successor() {
    let s = TestServer::demo().await;
    let client = awc::Client::default();
    for parallel in [2, 8] {
        let grant = s.login(CHIEF, "phone").await;
        let token = grant["refresh_token"].as_str().unwrap().to_owned();
        let sends: Vec<_> = (0..parallel)
            .map(|_| {
                let (client, base, token) = (client.clone(), s.base.clone(), token.clone());
                actix_web::rt::spawn(async move {
                    let body = json!({ "refresh_token": token });
                    post_json(&client, &base, "/api/v1/auth/refresh", None, body).await
                })
            })
            .collect();
        let mut successors = std::collections::BTreeSet::new();
        let mut access = Vec::new();
        for send in sends {
            let (status, body) = send.await.unwrap();
            assert_eq!(status, 200, "{parallel} at once: {body}");
            successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
            access.push(body["access_token"].as_str().unwrap().to_owned());
        }
        assert_eq!(successors.len(), 1, "{parallel} at once: {successors:?}");
        for token in &access {
            s.get("/api/v1/me", token).await.expect_ok();
        }
        // The one successor goes on as usual.
        let successor = successors.into_iter().next().unwrap();
        let next = s
            .request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({ "refresh_token": successor })),
            )
            .await;
        let next = next.expect_ok().clone();
        s.get("/api/v1/me", next["access_token"].as_str().unwrap())
            .await
            .expect_ok();
        // The first token again, now that its successor was used, is a copy.
        s.request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": token })),
        )
        .await
        .expect_error(401, "refresh_token_reused");
    }
}

#[actix_web::test]
async fn reactivating_an_account_revives_none_of_its_old_tokens() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "admin-pc").await;
    let grant = s.login(CHIEF, "phone").await;
    let access = grant["access_token"].as_str().unwrap();
    let refresh = grant["refresh_token"].as_str().unwrap();
    let id = grant["user"]["id"].as_str().unwrap();

    s.post(
        &format!("/api/v1/admin/users/{id}/deactivate"),
        &admin,
        json!({}),
    )
    .await
    .expect_ok();
    s.get("/api/v1/me", access)
        .await
        .expect_error(401, "user_inactive");
    s.request(
        "PATCH",
        &format!("/api/v1/admin/users/{id}"),
        Some(&admin),
        Some(json!({"active": true})),
    )
    .await
    .expect_ok();

    s.get("/api/v1/me", access)
        .await
        .expect_error(401, "device_revoked");
    let again = s
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh })),
        )
        .await;
    assert_eq!(again.status, 401, "{}", again.body);
    // The chief signs in again on the same phone and carries on.
    s.login(CHIEF, "phone").await;
}

#[actix_web::test]
async fn logging_out_ends_the_refresh_token_too() {
    let s = TestServer::demo().await;
    let grant = s.login(SUPERVISOR, "web-0a1b2c3d4e5f").await;
    let refresh = grant["refresh_token"].as_str().unwrap();
    let logout = s
        .request(
            "POST",
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": refresh })),
        )
        .await;
    assert_eq!(logout.status, 204, "{}", logout.body);
    s.request(
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": refresh })),
    )
    .await
    .expect_error(401, "device_revoked");
    s.get("/api/v1/me", grant["access_token"].as_str().unwrap())
        .await
        .expect_error(401, "device_revoked");
    // Logging out with a token that is no longer (or never was) live says nothing more.
    for token in [refresh, "not-a-token"] {
        let again = s
            .request(
                "POST",
                "/api/v1/auth/logout",
                None,
                Some(json!({ "refresh_token": token })),
            )
            .await;
        assert_eq!(again.status, 204, "{}", again.body);
    }
    s.login(SUPERVISOR, "web-0a1b2c3d4e5f").await;
}

#[actix_web::test]
async fn device_revocation_reveals_no_device_ids_and_keeps_to_the_supervisors_system() {
    let s = TestServer::demo().await;
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let chief = s.token(CHIEF, "chief-phone").await;
    let chief2 = s.token(CHIEF_2, "chief2-phone").await;
    let forest = s.token(FOREST_CHIEF, "forest-phone").await;

    // A device of someone else and a device that does not exist answer alike.
    let theirs = s
        .post("/api/v1/devices/chief-phone/revoke", &chief2, json!({}))
        .await;
    let nobodys = s
        .post("/api/v1/devices/no-such-device/revoke", &chief2, json!({}))
        .await;
    assert_eq!(theirs.status, nobodys.status);
    assert_eq!(theirs.body["error"], nobodys.body["error"]);
    theirs.expect_error(404, "not_found");

    // The district river office does not oversee the forest chief of its district.
    s.post(
        "/api/v1/devices/forest-phone/revoke",
        &supervisor,
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
    s.get("/api/v1/me", &forest).await.expect_ok();

    // It does oversee the river chiefs.
    s.post("/api/v1/devices/chief-phone/revoke", &supervisor, json!({}))
        .await
        .expect_ok();
    s.get("/api/v1/me", &chief)
        .await
        .expect_error(401, "device_revoked");
}

/// Logout is open to anyone (its token is the credential), so it is attacked like a sign-in: a
/// stranger's made-up tokens, another user's access token in place of a refresh token, a huge
/// body and a flood must end no one's session but the one whose refresh token was presented.
#[actix_web::test]
async fn logout_ends_only_the_session_of_the_refresh_token_presented() {
    let s = TestServer::demo().await;
    let victim = s.login(CHIEF, "chief-phone").await;
    let victim_access = victim["access_token"].as_str().unwrap().to_owned();
    let victim_refresh = victim["refresh_token"].as_str().unwrap().to_owned();
    let logout = |body: serde_json::Value| {
        let s = &s;
        async move {
            s.request("POST", "/api/v1/auth/logout", None, Some(body))
                .await
        }
    };
    // A flood of made-up tokens, and the victim's access token where a refresh token belongs.
    for n in 0..200 {
        let reply = logout(json!({ "refresh_token": format!("guess-{n}") })).await;
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
    let reply = logout(json!({ "refresh_token": victim_access })).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    // A body over the JSON limit, and a body of the wrong shape: a JSON error, nothing ended.
    let huge = logout(json!({ "refresh_token": "x".repeat(300 * 1024) })).await;
    assert_eq!(huge.status, 413, "{}", huge.body);
    assert!(huge.body["error"].is_string(), "{}", huge.body);
    let wrong = logout(json!({ "token": victim_refresh })).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.body["error"].is_string(), "{}", wrong.body);
    // The victim's session lives on: the access token works and the refresh token rotates.
    s.get("/api/v1/me", &victim_access).await.expect_ok();
    s.request(
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": victim_refresh })),
    )
    .await
    .expect_ok();
}
