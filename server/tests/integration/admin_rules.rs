//! Patrol rules, quotas, categories and check items edited through the admin API: a change
//! takes effect in what `/patrols` and the statistics judge and in what phones may report, is
//! audited with before and after, and nonsense is refused with nothing stored.

use serde_json::{json, Value};
use server::demo::{ADMIN, CHIEF, FIELD_CHIEF, SUPERVISOR};

use crate::harness::TestServer;

const DAY_MS: i64 = 86_400_000;

async fn chief_row(s: &TestServer, token: &str, chief_id: &str) -> Value {
    let now = server::state::now_ms();
    let (from, to) = (
        server::stats::query::day_string(now - 30 * DAY_MS),
        server::stats::query::day_string(now),
    );
    let report = s
        .get(&format!("/api/v1/stats/patrols?from={from}&to={to}"), token)
        .await;
    report.expect_ok()["chiefs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chief"] == chief_id)
        .unwrap_or_else(|| panic!("no row for {chief_id}: {}", report.body))
        .clone()
}

async fn audit(s: &TestServer, admin: &str) -> Vec<Value> {
    s.get("/api/v1/admin/audit?limit=50", admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .clone()
}

#[actix_web::test]
async fn a_lowered_minimum_for_a_chiefs_level_makes_their_short_patrol_count() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let sup = s.token(SUPERVISOR, "pc").await;

    // demo-chief's system and level as the server knows them.
    let users = s
        .get("/api/v1/admin/users", &admin)
        .await
        .expect_ok()
        .clone();
    let chief = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"]["username"] == CHIEF)
        .unwrap()["user"]
        .clone();
    let chief_id = chief["id"].as_str().unwrap().to_owned();
    let (system, level) = (
        chief["role"]["system"].clone(),
        chief["role"]["level"].clone(),
    );

    // The demo's walk cut short (six minutes) is refused for its time.
    let patrols = s
        .get("/api/v1/patrols?limit=500", &sup)
        .await
        .expect_ok()
        .clone();
    let short = patrols
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chief"] == chief_id.as_str() && r["valid"] == false)
        .unwrap_or_else(|| panic!("a short patrol of {CHIEF}: {patrols}"))
        .clone();
    let id = short["id"].as_str().unwrap();
    let minutes = short["duration_ms"].as_f64().unwrap() / 60_000.0;
    assert!((5.0..10.0).contains(&minutes), "{short}");
    assert!(short["flag_details"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["flag"] == "too_short"));
    let row = chief_row(&s, &sup, &chief_id).await;
    let valid_before = row["valid"].as_u64().unwrap();

    let before = s
        .get("/api/v1/admin/rules", &admin)
        .await
        .expect_ok()
        .clone();
    let mut rules = before.clone();
    let mut lowered = before["default"].clone();
    lowered["min_minutes"] = json!(5.0);
    // Half the distance the short walk covered, so that only time decides.
    lowered["min_km"] = json!(short["distance_m"].as_f64().unwrap() / 2_000.0);
    rules["overrides"]
        .as_array_mut()
        .unwrap()
        .push(json!({"system": system, "level": level, "region": null, "rules": lowered}));
    let stored = s
        .request(
            "PUT",
            "/api/v1/admin/rules",
            Some(&admin),
            Some(rules.clone()),
        )
        .await
        .expect_ok()
        .clone();
    assert_eq!(stored, rules);

    let detail = s
        .get(&format!("/api/v1/patrols/{id}"), &sup)
        .await
        .expect_ok()
        .clone();
    assert_eq!(detail["valid"], true, "{}", detail["flag_details"]);
    let row = chief_row(&s, &sup, &chief_id).await;
    assert_eq!(row["valid"].as_u64().unwrap(), valid_before + 1, "{row}");

    // Another system's chief keeps the default: the forest or field chief's short walk stays
    // invalid.
    let field = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"]["username"] == FIELD_CHIEF)
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let field_row = chief_row(&s, &admin, &field).await;
    assert!(field_row["invalid"].as_u64().unwrap() >= 1, "{field_row}");

    let entry = audit(&s, &admin)
        .await
        .into_iter()
        .find(|e| e["action"] == "rules_change")
        .expect("the change is audited");
    assert_eq!(entry["before"], before);
    assert_eq!(entry["after"], rules);
    s.stop().await;
}

#[actix_web::test]
async fn nonsense_rules_are_refused_by_field_and_nothing_is_stored() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let before = s
        .get("/api/v1/admin/rules", &admin)
        .await
        .expect_ok()
        .clone();
    let audited = audit(&s, &admin).await.len();

    let put = |body: Value| {
        let (s, admin) = (&s, &admin);
        async move {
            s.request("PUT", "/api/v1/admin/rules", Some(admin), Some(body))
                .await
        }
    };
    let mut negative = before.clone();
    negative["default"]["min_minutes"] = json!(-5);
    let reply = put(negative).await;
    reply.expect_error(422, "invalid_setting");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("default.min_minutes"));

    let mut nowhere = before.clone();
    nowhere["overrides"] = json!([{"system": "river", "level": null, "region": "999999999999",
        "rules": before["default"]}]);
    let reply = put(nowhere).await;
    reply.expect_error(422, "invalid_setting");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("overrides[0].region"));

    let mut no_patrols = before.clone();
    no_patrols["quotas"][0]["count"] = json!(0);
    put(no_patrols).await.expect_error(422, "invalid_setting");
    let mut unknown_period = before.clone();
    unknown_period["quotas"][0]["period"] = json!("day");
    let reply = put(unknown_period).await;
    reply.expect_error(422, "invalid_setting");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("quotas[0]"));
    let mut unknown_level = before.clone();
    unknown_level["overrides"] = json!([{"system": "sea", "level": null, "region": null,
        "rules": before["default"]}]);
    let reply = put(unknown_level).await;
    reply.expect_error(422, "invalid_setting");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("overrides[0]"));
    put(json!("not rules"))
        .await
        .expect_error(422, "invalid_setting");

    assert_eq!(
        s.get("/api/v1/admin/rules", &admin).await.expect_ok(),
        &before
    );
    assert_eq!(audit(&s, &admin).await.len(), audited, "nothing audited");

    // Administrators only.
    let chief = s.token(CHIEF, "p1").await;
    s.get("/api/v1/admin/rules", &chief)
        .await
        .expect_error(403, "forbidden");
    s.request(
        "PUT",
        "/api/v1/admin/rules",
        Some(&chief),
        Some(before.clone()),
    )
    .await
    .expect_error(403, "forbidden");
    s.request(
        "PUT",
        "/api/v1/admin/categories",
        Some(&chief),
        Some(json!({"categories": [], "check_items": []})),
    )
    .await
    .expect_error(403, "forbidden");
    s.request("GET", "/api/v1/admin/rules", None, None)
        .await
        .expect_error(401, "missing_token");
    assert_eq!(
        s.get("/api/v1/admin/rules", &admin).await.expect_ok(),
        &before
    );
    s.stop().await;
}

#[actix_web::test]
async fn a_new_category_reaches_that_systems_phones_and_a_used_one_stays() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let field_phone = s.token(FIELD_CHIEF, "p-field").await;
    let river_phone = s.token(CHIEF, "p-river").await;
    let codes = |reference: &Value| -> Vec<String> {
        reference["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap().to_owned())
            .collect()
    };

    let before = s
        .get("/api/v1/admin/categories", &admin)
        .await
        .expect_ok()
        .clone();
    let mut after = before.clone();
    after["categories"].as_array_mut().unwrap().push(json!({
        "code": "field.straw_burning", "system": "field", "name_zh": "焚烧秸秆", "name_en": "straw burning"}));
    let stored = s
        .request(
            "PUT",
            "/api/v1/admin/categories",
            Some(&admin),
            Some(after.clone()),
        )
        .await
        .expect_ok()
        .clone();
    assert_eq!(stored, after);
    let field_ref = s
        .get("/api/v1/reference", &field_phone)
        .await
        .expect_ok()
        .clone();
    assert!(codes(&field_ref).contains(&"field.straw_burning".to_owned()));
    let river_ref = s
        .get("/api/v1/reference", &river_phone)
        .await
        .expect_ok()
        .clone();
    assert!(!codes(&river_ref).contains(&"field.straw_burning".to_owned()));
    let entry = audit(&s, &admin)
        .await
        .into_iter()
        .find(|e| e["action"] == "categories_change")
        .expect("the change is audited");
    assert_eq!(entry["before"], before);
    assert_eq!(entry["after"], after);

    // A category the demo's issues use cannot be removed; an empty name or a repeated code is
    // refused; nothing of it is stored.
    let issues = s
        .get("/api/v1/issues?limit=500", &admin)
        .await
        .expect_ok()
        .clone();
    let used = issues["items"][0]["category"].as_str().unwrap().to_owned();
    let mut without = after.clone();
    without["categories"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["code"] != used.as_str());
    let reply = s
        .request(
            "PUT",
            "/api/v1/admin/categories",
            Some(&admin),
            Some(without),
        )
        .await;
    reply.expect_error(422, "invalid_setting");
    assert!(reply.body["message"].as_str().unwrap().contains(&used));
    let mut unnamed = after.clone();
    unnamed["categories"][0]["name_zh"] = json!("  ");
    s.request(
        "PUT",
        "/api/v1/admin/categories",
        Some(&admin),
        Some(unnamed),
    )
    .await
    .expect_error(422, "invalid_setting");
    let mut twice = after.clone();
    let first = twice["check_items"][0].clone();
    twice["check_items"].as_array_mut().unwrap().push(first);
    s.request("PUT", "/api/v1/admin/categories", Some(&admin), Some(twice))
        .await
        .expect_error(422, "invalid_setting");
    assert_eq!(
        s.get("/api/v1/admin/categories", &admin).await.expect_ok(),
        &after
    );
    s.stop().await;
}
