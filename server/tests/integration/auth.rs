//! Login, refresh rotation and reuse, `/me`, device revocation, deactivation and login throttling.

use serde_json::json;
use server::demo::{ADMIN, CHIEF, CHIEF_2, SUPERVISOR};

use crate::harness::TestServer;

#[actix_web::test]
async fn login_grants_tokens_user_and_a_stable_actor_id() {
    let s = TestServer::demo().await;
    let first = s.login(CHIEF, "phone-a").await;
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    assert_eq!(first["user"]["username"], CHIEF);
    assert_eq!(first["user"]["role"]["kind"], "chief");
    assert_eq!(first["device_id"], "phone-a");
    let actor = first["actor_id"].as_str().unwrap().to_owned();
    assert_eq!(actor.len(), 32);
    assert!(actor.bytes().all(|b| b.is_ascii_hexdigit()));

    let again = s.login(CHIEF, "phone-a").await;
    assert_eq!(
        again["actor_id"],
        actor.as_str(),
        "same (user, device), same actor id"
    );
    let other_device = s.login(CHIEF, "phone-b").await;
    assert_ne!(other_device["actor_id"], actor.as_str());
    let other_user = s.login(CHIEF_2, "phone-a").await;
    assert_ne!(other_user["actor_id"], actor.as_str());

    let me = s
        .get("/api/v1/me", again["access_token"].as_str().unwrap())
        .await;
    let me = me.expect_ok();
    assert_eq!(me["user"]["username"], CHIEF);
    assert_eq!(me["device_id"], "phone-a");
    assert_eq!(me["actor_id"], actor.as_str());

    // The earlier login's token belongs to a session the new login replaced.
    s.get("/api/v1/me", first["access_token"].as_str().unwrap())
        .await
        .expect_error(401, "device_revoked");
}

#[actix_web::test]
async fn wrong_credentials_and_bad_requests_are_refused() {
    let s = TestServer::demo().await;
    s.login_reply(CHIEF, "wrong", "phone")
        .await
        .expect_error(401, "invalid_credentials");
    s.login_reply("nobody", "demo", "phone")
        .await
        .expect_error(401, "invalid_credentials");
    s.login_reply("tq-river-chief", "demo", "phone")
        .await
        .expect_error(401, "invalid_credentials");
    s.login_reply(CHIEF, "demo", "bad device id")
        .await
        .expect_error(400, "bad_request");
    let missing_field = s
        .request(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": CHIEF})),
        )
        .await;
    missing_field.expect_error(400, "bad_request");
    s.request("GET", "/api/v1/me", None, None)
        .await
        .expect_error(401, "missing_token");
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_device() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone").await;
    let r1 = grant["refresh_token"].as_str().unwrap();
    let rotated = s
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    let rotated = rotated.expect_ok().clone();
    let r2 = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(rotated["actor_id"], grant["actor_id"]);
    let access2 = rotated["access_token"].as_str().unwrap();
    s.get("/api/v1/me", access2).await.expect_ok();
    // The first access token is still valid: rotation keeps the device session.
    s.get("/api/v1/me", grant["access_token"].as_str().unwrap())
        .await
        .expect_ok();

    // The phone goes on with r2, so r1 presented again is not a retry but a copy.
    let r3 = s
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r2})),
        )
        .await;
    let r3 = r3.expect_ok()["refresh_token"].as_str().unwrap().to_owned();
    let reuse = s
        .request(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    reuse.expect_error(401, "refresh_token_reused");
    // Reuse means the token was copied: every token of the device stops working.
    s.get("/api/v1/me", access2)
        .await
        .expect_error(401, "device_revoked");
    s.request(
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": r3})),
    )
    .await
    .expect_error(401, "device_revoked");
    s.request(
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": "0".repeat(64)})),
    )
    .await
    .expect_error(401, "invalid_refresh_token");

    // A password login starts a new session on the device.
    let fresh = s.login(CHIEF, "phone").await;
    assert_eq!(fresh["actor_id"], grant["actor_id"]);
    s.get("/api/v1/me", fresh["access_token"].as_str().unwrap())
        .await
        .expect_ok();
}

#[actix_web::test]
async fn admin_and_supervisor_revoke_devices_others_may_not() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "admin-pc").await;
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let chief = s.token(CHIEF, "chief-phone").await;
    let chief2 = s.token(CHIEF_2, "chief2-phone").await;

    // A device the caller does not oversee answers like one that does not exist.
    s.post("/api/v1/devices/chief-phone/revoke", &chief2, json!({}))
        .await
        .expect_error(404, "not_found");
    s.post("/api/v1/devices/no-such-device/revoke", &admin, json!({}))
        .await
        .expect_error(404, "not_found");
    // The district river office oversees the village chiefs but not the admin.
    s.post("/api/v1/devices/admin-pc/revoke", &supervisor, json!({}))
        .await
        .expect_error(404, "not_found");

    let revoked = s
        .post("/api/v1/devices/chief-phone/revoke", &supervisor, json!({}))
        .await;
    assert_eq!(
        revoked.expect_ok()["revoked"],
        json!([{"user_id": "u-demo-chief", "device_id": "chief-phone"}])
    );
    s.get("/api/v1/me", &chief)
        .await
        .expect_error(401, "device_revoked");
    s.get("/api/v1/me", &chief2).await.expect_ok();

    s.post("/api/v1/devices/chief2-phone/revoke", &admin, json!({}))
        .await
        .expect_ok();
    s.get("/api/v1/me", &chief2)
        .await
        .expect_error(401, "device_revoked");
}

#[actix_web::test]
async fn failed_logins_are_throttled_per_username() {
    let s = TestServer::demo().await;
    for _ in 0..5 {
        s.login_reply(CHIEF, "wrong", "phone")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let limited = s.login_reply(CHIEF, "demo", "phone").await;
    limited.expect_error(429, "rate_limited");
    let retry: u64 = limited
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    // Other usernames are unaffected.
    s.login(CHIEF_2, "phone").await;
}

#[actix_web::test]
async fn a_refresh_retried_after_a_lost_answer_gets_the_same_successor_and_a_copy_is_caught() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone").await;
    let r1 = grant["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let s = &s;
        async move {
            s.request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({ "refresh_token": token })),
            )
            .await
        }
    };
    // The answer to the first exchange is lost on the way (the phone never sees r2_lost).
    let lost = refresh(r1.clone()).await;
    let r2_lost = lost.expect_ok()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The phone sends r1 again, up to five times, as its retries do: each answer works and
    // carries the same successor.
    for _ in 0..5 {
        let again = refresh(r1.clone()).await;
        let again = again.expect_ok().clone();
        assert_eq!(again["refresh_token"], r2_lost.as_str());
        s.get("/api/v1/me", again["access_token"].as_str().unwrap())
            .await
            .expect_ok();
    }
    // The phone goes on with it.
    let next = refresh(r2_lost.clone()).await;
    let next = next.expect_ok()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // r1 once more, now that its successor was used, is a copy: the device is signed out.
    refresh(r1).await.expect_error(401, "refresh_token_reused");
    refresh(next).await.expect_error(401, "device_revoked");
}
