//! The admin API: every call as an admin, and every call refused for everyone else.

use serde_json::{json, Value};
use server::demo::{ADMIN, CHIEF, FIELD_CHIEF, HANDLER, SUPERVISOR};

use crate::harness::TestServer;

fn line(points: &[[f64; 2]]) -> Value {
    json!({"type": "LineString", "coordinates": points})
}

#[actix_web::test]
async fn users_can_be_created_changed_deactivated_and_reset() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;

    let users = s.get("/api/v1/admin/users", &admin).await;
    let users = users.expect_ok().as_array().unwrap().clone();
    assert_eq!(users.len(), server::demo::facts().people.len());
    assert!(users
        .iter()
        .any(|u| u["user"]["username"] == CHIEF && u["has_password"] == true));
    assert!(users
        .iter()
        .any(|u| u["user"]["username"] == "tq-river-chief" && u["has_password"] == false));

    let role = json!({"kind": "chief", "system": "river", "level": "village",
        "jurisdiction": {"division": "370105014204", "assets": ["river-thh-04"]}});
    let created = s
        .post("/api/v1/admin/users", &admin, json!({"username": "new-chief", "display_name": "石门孙村河长", "password": "s3cret-pass", "role": role}))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    let id = created.body["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["user"]["active"], true);
    s.post("/api/v1/admin/users", &admin, json!({"username": "NEW-chief", "display_name": "x", "password": "s3cret-pass", "role": {"kind": "admin"}}))
        .await
        .expect_error(409, "conflict");
    s.post("/api/v1/admin/users", &admin, json!({"username": "short-pw", "display_name": "x", "password": "1234", "role": {"kind": "admin"}}))
        .await
        .expect_error(400, "bad_request");
    let wrong_level = json!({"kind": "chief", "system": "river", "level": "subdistrict",
        "jurisdiction": {"division": "370105014204", "assets": []}});
    s.post("/api/v1/admin/users", &admin, json!({"username": "lvl", "display_name": "x", "password": "s3cret-pass", "role": wrong_level}))
        .await
        .expect_error(400, "bad_request");
    let wrong_system = json!({"kind": "chief", "system": "forest", "level": "village",
        "jurisdiction": {"division": "370105014204", "assets": ["river-thh-04"]}});
    s.post("/api/v1/admin/users", &admin, json!({"username": "sys", "display_name": "x", "password": "s3cret-pass", "role": wrong_system}))
        .await
        .expect_error(400, "bad_request");

    let login = s.login_reply("new-chief", "s3cret-pass", "p1").await;
    let login = login.expect_ok();
    let chief_token = login["access_token"].as_str().unwrap().to_owned();
    let chief_refresh = login["refresh_token"].as_str().unwrap().to_owned();

    let fetched = s.get(&format!("/api/v1/admin/users/{id}"), &admin).await;
    assert_eq!(fetched.expect_ok()["user"]["username"], "new-chief");

    let supervisor_role =
        json!({"kind": "supervisor", "system": "field", "division": "370105014000"});
    let patched = s
        .request(
            "PATCH",
            &format!("/api/v1/admin/users/{id}"),
            Some(&admin),
            Some(json!({"display_name": "桑梓店田长办", "role": supervisor_role})),
        )
        .await;
    let patched = patched.expect_ok();
    assert_eq!(patched["user"]["display_name"], "桑梓店田长办");
    assert_eq!(patched["user"]["role"]["kind"], "supervisor");
    let me = s.get("/api/v1/me", &chief_token).await;
    assert_eq!(
        me.expect_ok()["user"]["role"]["kind"],
        "supervisor",
        "role changes apply at once"
    );
    s.request(
        "PATCH",
        &format!("/api/v1/admin/users/{id}"),
        Some(&admin),
        Some(
            json!({"role": {"kind": "supervisor", "system": "field", "division": "370105099000"}}),
        ),
    )
    .await
    .expect_error(400, "bad_request");
    s.request(
        "PATCH",
        "/api/v1/admin/users/u-nobody",
        Some(&admin),
        Some(json!({"display_name": "x"})),
    )
    .await
    .expect_error(404, "not_found");

    let reset = s
        .post(
            &format!("/api/v1/admin/users/{id}/password"),
            &admin,
            json!({"password": "another-pass"}),
        )
        .await;
    assert_eq!(reset.status.as_u16(), 204, "{}", reset.body);
    // Whoever knew the old password is signed out everywhere: access and refresh tokens die.
    s.get("/api/v1/me", &chief_token)
        .await
        .expect_error(401, "device_revoked");
    s.request(
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": chief_refresh})),
    )
    .await
    .expect_error(401, "device_revoked");
    s.login_reply("new-chief", "s3cret-pass", "p1")
        .await
        .expect_error(401, "invalid_credentials");
    s.login_reply("new-chief", "another-pass", "p1")
        .await
        .expect_ok();
    s.post(
        &format!("/api/v1/admin/users/{id}/password"),
        &admin,
        json!({"password": "short"}),
    )
    .await
    .expect_error(400, "bad_request");

    let devices = s
        .get(&format!("/api/v1/admin/devices?user_id={id}"), &admin)
        .await;
    let devices = devices.expect_ok().as_array().unwrap().clone();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["device_id"], "p1");
    assert_eq!(devices[0]["actor_id"].as_str().unwrap().len(), 32);
    let all = s.get("/api/v1/admin/devices", &admin).await;
    assert_eq!(
        all.expect_ok().as_array().unwrap().len(),
        2,
        "admin's pc and new-chief's p1"
    );

    let deactivated = s
        .post(
            &format!("/api/v1/admin/users/{id}/deactivate"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(deactivated.expect_ok()["user"]["active"], false);
    s.login_reply("new-chief", "another-pass", "p1")
        .await
        .expect_error(401, "user_inactive");
    s.post(
        "/api/v1/admin/users/u-demo-admin/deactivate",
        &admin,
        json!({}),
    )
    .await
    .expect_error(409, "conflict");
    let reactivated = s
        .request(
            "PATCH",
            &format!("/api/v1/admin/users/{id}"),
            Some(&admin),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(reactivated.expect_ok()["user"]["active"], true);
    s.login_reply("new-chief", "another-pass", "p1")
        .await
        .expect_ok();
}

#[actix_web::test]
async fn divisions_and_assets_can_be_created_and_edited() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;

    let divisions = s.get("/api/v1/admin/divisions", &admin).await;
    assert_eq!(divisions.expect_ok().as_array().unwrap().len(), 23);
    let new_village = json!({"code": "370105014209", "name": "新村", "parent": "370105014000"});
    let created = s
        .post("/api/v1/admin/divisions", &admin, new_village.clone())
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    s.post("/api/v1/admin/divisions", &admin, new_village)
        .await
        .expect_error(409, "conflict");
    s.post(
        "/api/v1/admin/divisions",
        &admin,
        json!({"code": "370105013201", "name": "x", "parent": "370105014000"}),
    )
    .await
    .expect_error(400, "bad_request");
    s.post(
        "/api/v1/admin/divisions",
        &admin,
        json!({"code": "3701", "name": "x", "parent": null}),
    )
    .await
    .expect_error(400, "bad_request");
    let renamed = s
        .request(
            "PUT",
            "/api/v1/admin/divisions/370105014209",
            Some(&admin),
            Some(json!({"name": "新村社区", "parent": "370105014000"})),
        )
        .await;
    assert_eq!(renamed.expect_ok()["name"], "新村社区");
    s.request(
        "PUT",
        "/api/v1/admin/divisions/370105014299",
        Some(&admin),
        Some(json!({"name": "x", "parent": "370105014000"})),
    )
    .await
    .expect_error(404, "not_found");

    let assets = s.get("/api/v1/admin/assets", &admin).await;
    let count = assets.expect_ok().as_array().unwrap().len();
    let asset = json!({"id": "river-new-01", "system": "river", "name": "新河 第1段", "division": "370105014209",
        "geometry": line(&[[116.95, 36.82], [116.96, 36.825]])});
    let created = s.post("/api/v1/admin/assets", &admin, asset.clone()).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    assert_eq!(created.body["geometry"]["type"], "LineString");
    s.post("/api/v1/admin/assets", &admin, asset)
        .await
        .expect_error(409, "conflict");
    s.post(
        "/api/v1/admin/assets",
        &admin,
        json!({"id": "bad", "system": "river", "name": "x", "division": "370105014209",
        "geometry": line(&[[116.95, 36.82]])}),
    )
    .await
    .expect_error(400, "bad_request");
    s.post("/api/v1/admin/assets", &admin, json!({"id": "open", "system": "forest", "name": "x", "division": "370105014209",
        "geometry": {"type": "Polygon", "coordinates": [[[116.9, 36.8], [116.91, 36.8], [116.91, 36.81], [116.9, 36.81]]]}}))
        .await
        .expect_error(400, "bad_request");
    s.post(
        "/api/v1/admin/assets",
        &admin,
        json!({"id": "nowhere", "system": "river", "name": "x", "division": "370105099000",
        "geometry": line(&[[116.95, 36.82], [116.96, 36.825]])}),
    )
    .await
    .expect_error(400, "bad_request");
    s.post(
        "/api/v1/admin/assets",
        &admin,
        json!({"id": "point", "system": "river", "name": "x", "division": "370105014209",
        "geometry": {"type": "Point", "coordinates": [116.95, 36.82]}}),
    )
    .await
    .expect_error(400, "bad_request");
    let square = json!({"type": "Polygon", "coordinates": [[[116.95, 36.82], [116.96, 36.82], [116.96, 36.83], [116.95, 36.82]]]});
    let edited = s
        .request("PUT", "/api/v1/admin/assets/river-new-01", Some(&admin), Some(json!({"system": "field", "name": "新村耕地", "division": "370105014209", "geometry": square})))
        .await;
    let edited = edited.expect_ok();
    assert_eq!(edited["system"], "field");
    assert_eq!(edited["geometry"]["type"], "Polygon");
    let assets = s.get("/api/v1/admin/assets", &admin).await;
    assert_eq!(assets.expect_ok().as_array().unwrap().len(), count + 1);
}

#[actix_web::test]
async fn every_admin_call_is_refused_for_non_admins() {
    let s = TestServer::demo().await;
    let calls: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/v1/admin/users", None),
        (
            "POST",
            "/api/v1/admin/users",
            Some(
                json!({"username": "x-user", "display_name": "x", "password": "s3cret-pass", "role": {"kind": "admin"}}),
            ),
        ),
        ("GET", "/api/v1/admin/users/u-demo-chief", None),
        (
            "PATCH",
            "/api/v1/admin/users/u-demo-chief",
            Some(json!({"display_name": "x"})),
        ),
        (
            "POST",
            "/api/v1/admin/users/u-demo-chief/deactivate",
            Some(json!({})),
        ),
        (
            "POST",
            "/api/v1/admin/users/u-demo-chief/password",
            Some(json!({"password": "s3cret-pass"})),
        ),
        ("GET", "/api/v1/admin/devices", None),
        ("GET", "/api/v1/admin/divisions", None),
        (
            "POST",
            "/api/v1/admin/divisions",
            Some(json!({"code": "370105014210", "name": "x", "parent": "370105014000"})),
        ),
        (
            "PUT",
            "/api/v1/admin/divisions/370105014201",
            Some(json!({"name": "x", "parent": "370105014000"})),
        ),
        ("GET", "/api/v1/admin/assets", None),
        (
            "POST",
            "/api/v1/admin/assets",
            Some(
                json!({"id": "x", "system": "river", "name": "x", "division": "370105014201", "geometry": line(&[[116.95, 36.82], [116.96, 36.825]])}),
            ),
        ),
        (
            "PUT",
            "/api/v1/admin/assets/river-thh-01",
            Some(
                json!({"system": "river", "name": "x", "division": "370105014201", "geometry": line(&[[116.95, 36.82], [116.96, 36.825]])}),
            ),
        ),
    ];
    for who in [SUPERVISOR, CHIEF, FIELD_CHIEF, HANDLER] {
        let token = s.token(who, "phone").await;
        for (method, path, body) in &calls {
            let reply = s.request(method, path, Some(&token), body.clone()).await;
            assert_eq!(
                reply.status.as_u16(),
                403,
                "{who} {method} {path}: {}",
                reply.body
            );
            assert_eq!(reply.body["error"], "forbidden");
        }
    }
    for (method, path, body) in &calls {
        let reply = s.request(method, path, None, body.clone()).await;
        assert_eq!(reply.status.as_u16(), 401, "anonymous {method} {path}");
    }
    // Nothing was changed by the refused calls.
    let admin = s.token(ADMIN, "pc").await;
    let chief = s.get("/api/v1/admin/users/u-demo-chief", &admin).await;
    assert_eq!(
        chief.expect_ok()["user"]["display_name"],
        "小寨村河长 张建国"
    );
    assert_eq!(chief.body["user"]["active"], true);
}
