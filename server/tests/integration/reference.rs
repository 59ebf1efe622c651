//! `GET /api/v1/reference`: scoped by role, with a strong ETag and 304 on `If-None-Match`.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use server::demo::{ADMIN, CHIEF, FOREST_CHIEF, HANDLER, SUPERVISOR};

use crate::harness::TestServer;

fn ids(reply: &Value, list: &str, key: &str) -> BTreeSet<String> {
    reply[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[actix_web::test]
async fn each_role_gets_its_scope() {
    let s = TestServer::demo().await;
    let facts = server::demo::facts();

    let chief = s.get("/api/v1/reference", &s.token(CHIEF, "p").await).await;
    let chief = chief.expect_ok();
    assert_eq!(
        ids(chief, "assets", "id"),
        set(&["river-thh-01", "river-thh-02"])
    );
    assert_eq!(
        ids(chief, "divisions", "code"),
        set(&["370105000000", "370105014000", "370105014201"])
    );
    assert!(chief["categories"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["system"] == "river"));
    assert!(chief["check_items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["system"] == "river"));
    assert!(!chief["categories"].as_array().unwrap().is_empty());
    assert_eq!(chief["assets"][0]["geometry"]["type"], "LineString");
    assert_eq!(chief["rules"]["default"]["min_minutes"], 10.0);
    assert_eq!(chief["rules"]["quotas"].as_array().unwrap().len(), 3);

    let forest = s
        .get("/api/v1/reference", &s.token(FOREST_CHIEF, "p").await)
        .await;
    assert_eq!(
        ids(forest.expect_ok(), "assets", "id"),
        set(&["forest-beijiao"])
    );
    assert_eq!(forest.body["assets"][0]["geometry"]["type"], "Polygon");

    let supervisor = s
        .get("/api/v1/reference", &s.token(SUPERVISOR, "p").await)
        .await;
    let rivers: BTreeSet<String> = facts
        .assets
        .iter()
        .filter(|a| a.system == sync_core::model::System::River)
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(ids(supervisor.expect_ok(), "assets", "id"), rivers);
    assert_eq!(
        supervisor.body["divisions"].as_array().unwrap().len(),
        facts.divisions.len()
    );

    for who in [ADMIN, HANDLER] {
        let all = s.get("/api/v1/reference", &s.token(who, "p").await).await;
        assert_eq!(
            all.expect_ok()["assets"].as_array().unwrap().len(),
            facts.assets.len(),
            "{who}"
        );
        assert_eq!(
            all.body["categories"].as_array().unwrap().len(),
            sync_core::model::default_categories().len()
        );
    }
}

#[actix_web::test]
async fn etag_gives_304_until_the_data_changes() {
    let s = TestServer::demo().await;
    let token = s.token(CHIEF, "p").await;
    let first = s.get("/api/v1/reference", &token).await;
    first.expect_ok();
    let etag = first
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    assert_eq!(
        s.get("/api/v1/reference", &token)
            .await
            .headers
            .get("etag")
            .unwrap()
            .to_str()
            .unwrap(),
        etag,
        "stable"
    );

    let conditional = |tag: String| {
        let token = token.clone();
        let s = &s;
        async move {
            let req = awc::Client::default()
                .get(format!("{}/api/v1/reference", s.base))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("If-None-Match", tag));
            let mut res = req.send().await.unwrap();
            let body = res.body().await.unwrap();
            (
                res.status().as_u16(),
                res.headers().get("etag").cloned(),
                body,
            )
        }
    };
    let (status, tag, body) = conditional(etag.clone()).await;
    assert_eq!(status, 304);
    assert_eq!(tag.unwrap().to_str().unwrap(), etag);
    assert!(body.is_empty());
    let (status, _, _) = conditional(format!("\"other\", {etag}")).await;
    assert_eq!(status, 304);
    let (status, _, body) = conditional("\"stale\"".into()).await;
    assert_eq!(status, 200);
    assert!(!body.is_empty());

    let admin = s.token(ADMIN, "pc").await;
    s.request(
        "PUT",
        "/api/v1/admin/assets/river-thh-01",
        Some(&admin),
        Some(json!({
            "system": "river", "name": "徒骇河 第1段（改线）", "division": "370105014201",
            "geometry": {"type": "LineString", "coordinates": [[116.92, 36.83], [116.936, 36.835]]}
        })),
    )
    .await
    .expect_ok();
    let (status, tag, _) = conditional(etag.clone()).await;
    assert_eq!(status, 200, "an edit in scope changes the ETag");
    assert_ne!(tag.unwrap().to_str().unwrap(), etag);
}
