//! Every way an access token can be wrong gets a 401 with a JSON body naming the failed check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use server::auth::jwt::{AUDIENCE, ISSUER};
use server::demo::{ADMIN, CHIEF};

use crate::harness::{TestServer, SIGNING_KEY};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(sub: &str, dev: &str, sess: u64) -> Value {
    json!({"sub": sub, "dev": dev, "sess": sess, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_secret(SIGNING_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[actix_web::test]
async fn forged_and_stale_tokens_get_401() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone").await;
    let good = grant["access_token"].as_str().unwrap();
    s.get("/api/v1/me", good).await.expect_ok();
    let kid = s.state.tokens.kid().to_owned();
    let ok_claims = claims("u-demo-chief", "phone", 1);
    // The forging helper itself produces accepted tokens, so each refusal below is the one change.
    s.get("/api/v1/me", &sign(Algorithm::HS256, &kid, &ok_claims))
        .await
        .expect_ok();

    let [header, payload, _] = <[&str; 3]>::try_from(good.split('.').collect::<Vec<_>>()).unwrap();
    let none_header = b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{none_header}.{payload}."),
            "invalid_token",
        ),
        (
            "HS384",
            sign(Algorithm::HS384, &kid, &ok_claims),
            "invalid_algorithm",
        ),
        (
            "RS256 header",
            format!(
                "{}.{payload}.{}",
                b64(&json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
                "c2ln"
            ),
            "invalid_algorithm",
        ),
        (
            "bad signature",
            format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode([7u8; 32])),
            "invalid_signature",
        ),
        (
            "tampered payload",
            format!(
                "{header}.{}.{}",
                b64(&claims("u-demo-admin", "phone", 1)),
                good.rsplit('.').next().unwrap()
            ),
            "invalid_signature",
        ),
        (
            "expired",
            sign(
                Algorithm::HS256,
                &kid,
                &json!({"sub": "u-demo-chief", "dev": "phone", "sess": 1, "iss": ISSUER, "aud": AUDIENCE, "iat": now() - 7200, "exp": now() - 3600}),
            ),
            "token_expired",
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                &kid,
                &json!({"sub": "u-demo-chief", "dev": "phone", "sess": 1, "iss": ISSUER, "aud": "someone-else", "iat": now(), "exp": now() + 600}),
            ),
            "invalid_audience",
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                &kid,
                &json!({"sub": "u-demo-chief", "dev": "phone", "sess": 1, "iss": "evil", "aud": AUDIENCE, "iat": now(), "exp": now() + 600}),
            ),
            "invalid_issuer",
        ),
        (
            "unknown kid",
            sign(Algorithm::HS256, "0000000000000000", &ok_claims),
            "unknown_key",
        ),
        (
            "no kid",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &ok_claims,
                &EncodingKey::from_secret(SIGNING_KEY.as_bytes()).unwrap(),
            )
            .unwrap(),
            "unknown_key",
        ),
        ("garbage", "abc".to_owned(), "invalid_token"),
        (
            "old session",
            sign(Algorithm::HS256, &kid, &claims("u-demo-chief", "phone", 0)),
            "device_revoked",
        ),
        (
            "unbound device",
            sign(Algorithm::HS256, &kid, &claims("u-demo-chief", "stolen", 1)),
            "device_revoked",
        ),
        (
            "unknown user",
            sign(Algorithm::HS256, &kid, &claims("u-nobody", "phone", 1)),
            "user_inactive",
        ),
    ];
    for (name, token, code) in cases {
        let reply = s.get("/api/v1/me", &token).await;
        assert_eq!(reply.status.as_u16(), 401, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"], code, "{name}: {}", reply.body);
    }
    let raw = s.request("GET", "/api/v1/me", None, None).await;
    raw.expect_error(401, "missing_token");
}

/// Signs `claims` with `secret` under `kid`, as someone holding another key would.
fn sign_with(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

fn claims_with(changes: Value) -> Value {
    let mut claims = claims("u-demo-chief", "phone", 1);
    for (key, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(key),
            _ => claims
                .as_object_mut()
                .unwrap()
                .insert(key.clone(), value.clone()),
        };
    }
    claims
}

#[actix_web::test]
async fn tokens_from_another_key_the_future_or_another_issuer_get_401() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone").await;
    let issued = grant["access_token"].as_str().unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(issued.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["iss"], ISSUER, "{payload}");
    let nbf = payload["nbf"].as_u64().expect("issued tokens carry nbf");
    assert!(
        nbf <= now() && nbf >= payload["iat"].as_u64().unwrap(),
        "{payload}"
    );

    let kid = s.state.tokens.kid().to_owned();
    let other_secret = b"another-server-signing-key-9876543210-abc";
    let other_kid = server::auth::signing_key::SigningKey::from_secret(other_secret)
        .unwrap()
        .kid()
        .to_owned();
    // Each refused token differs from an accepted one in the single claim or key named.
    let accepted = [
        ("as issued", claims_with(json!({}))),
        ("nbf now", claims_with(json!({"nbf": now()}))),
        (
            "nbf within the clock leeway",
            claims_with(json!({"nbf": now() + 2})),
        ),
        (
            "numeric exp far ahead",
            claims_with(json!({"exp": 9_999_999_999u64})),
        ),
    ];
    for (name, claims) in accepted {
        let reply = s
            .get("/api/v1/me", &sign(Algorithm::HS256, &kid, &claims))
            .await;
        assert!(
            reply.status.is_success(),
            "{name}: {} {}",
            reply.status,
            reply.body
        );
    }

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another key under our kid",
            sign_with(other_secret, &kid, &claims_with(json!({}))),
            "invalid_signature",
        ),
        (
            "another key under its own kid",
            sign_with(other_secret, &other_kid, &claims_with(json!({}))),
            "unknown_key",
        ),
        (
            "nbf an hour ahead",
            sign(
                Algorithm::HS256,
                &kid,
                &claims_with(json!({"nbf": now() + 3600})),
            ),
            "token_not_yet_valid",
        ),
        (
            "nbf as a string",
            sign(Algorithm::HS256, &kid, &claims_with(json!({"nbf": "0"}))),
            "invalid_claim",
        ),
        (
            "exp as a string",
            sign(
                Algorithm::HS256,
                &kid,
                &claims_with(json!({"exp": "9999999999"})),
            ),
            "invalid_claim",
        ),
        (
            "exp missing",
            sign(Algorithm::HS256, &kid, &claims_with(json!({"exp": null}))),
            "invalid_claim",
        ),
        (
            "iss of another service",
            sign(
                Algorithm::HS256,
                &kid,
                &claims_with(json!({"iss": "keycloak"})),
            ),
            "invalid_issuer",
        ),
        (
            "iss empty",
            sign(Algorithm::HS256, &kid, &claims_with(json!({"iss": ""}))),
            "invalid_issuer",
        ),
        (
            "sess as a string",
            sign(Algorithm::HS256, &kid, &claims_with(json!({"sess": "1"}))),
            "invalid_claim",
        ),
        (
            "iss missing",
            sign(Algorithm::HS256, &kid, &claims_with(json!({"iss": null}))),
            "invalid_claim",
        ),
        (
            "iss as a list holding ours",
            sign(
                Algorithm::HS256,
                &kid,
                &claims_with(json!({"iss": ["keycloak", ISSUER]})),
            ),
            "invalid_claim",
        ),
    ];
    for (name, token, code) in cases {
        let reply = s.get("/api/v1/me", &token).await;
        assert_eq!(reply.status.as_u16(), 401, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"], code, "{name}: {}", reply.body);
        assert!(reply.body["message"].is_string(), "{name}: {}", reply.body);
    }
}

#[actix_web::test]
async fn revoked_devices_and_deactivated_users_fail_at_once() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "admin-pc").await;
    let phone = s.token(CHIEF, "phone").await;
    let tablet = s.token(CHIEF, "tablet").await;
    s.post("/api/v1/devices/phone/revoke", &admin, json!({}))
        .await
        .expect_ok();
    s.get("/api/v1/me", &phone)
        .await
        .expect_error(401, "device_revoked");
    s.get("/api/v1/me", &tablet).await.expect_ok();

    s.post(
        "/api/v1/admin/users/u-demo-chief/deactivate",
        &admin,
        json!({}),
    )
    .await
    .expect_ok();
    s.get("/api/v1/me", &tablet)
        .await
        .expect_error(401, "user_inactive");
    s.login_reply(CHIEF, "demo", "tablet")
        .await
        .expect_error(401, "user_inactive");
}
