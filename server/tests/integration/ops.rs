//! Health, metrics, the OpenAPI document kept in step with the served routes, body limits and
//! JSON errors for unknown routes and ids.

use serde_json::{json, Value};
use server::demo::ADMIN;

use crate::harness::TestServer;

#[actix_web::test]
async fn healthz_and_metrics() {
    let s = TestServer::empty().await;
    let health = s.request("GET", "/healthz", None, None).await;
    assert_eq!(health.expect_ok()["status"], "ok");
    s.request("GET", "/api/v1/me", None, None)
        .await
        .expect_error(401, "missing_token");
    s.request("GET", "/api/v1/admin/users/x", None, None)
        .await
        .expect_error(401, "missing_token");
    let metrics = s.request("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status.as_u16(), 200);
    let text = metrics.body.as_str().expect("metrics are text");
    for line in [
        r#"chiefsync_http_requests_total{route="/healthz",method="GET",status="200"} 1"#,
        r#"chiefsync_http_requests_total{route="/api/v1/me",method="GET",status="401"} 1"#,
        r#"chiefsync_http_requests_total{route="/api/v1/admin/users/{id}",method="GET",status="401"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains("# TYPE chiefsync_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // Nothing was delivered yet, so the delivery cache holds nothing.
    for line in [
        "chiefsync_delivery_cache_documents 0",
        "chiefsync_delivery_cache_bytes 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[actix_web::test]
async fn unknown_routes_and_ids_are_json_404s() {
    let s = TestServer::demo().await;
    s.request("GET", "/api/v1/nothing-here", None, None)
        .await
        .expect_error(404, "no_route");
    s.request("DELETE", "/healthz", None, None)
        .await
        .expect_error(404, "no_route");
    let admin = s.token(ADMIN, "pc").await;
    s.get("/api/v1/admin/users/u-nobody", &admin)
        .await
        .expect_error(404, "not_found");
    s.request(
        "PUT",
        "/api/v1/admin/assets/no-such-asset",
        Some(&admin),
        Some(json!({
            "system": "river", "name": "x", "division": "370105000000",
            "geometry": {"type": "LineString", "coordinates": [[117.0, 36.7], [117.01, 36.7]]}
        })),
    )
    .await
    .expect_error(404, "not_found");
}

#[actix_web::test]
async fn oversized_and_malformed_bodies_get_json_errors() {
    let s = TestServer::demo().await;
    let huge = json!({"username": "x".repeat(300 * 1024), "password": "p", "device_id": "d"});
    s.request("POST", "/api/v1/auth/login", None, Some(huge))
        .await
        .expect_error(413, "payload_too_large");
    let admin = s.token(ADMIN, "pc").await;
    let big_line: Vec<[f64; 2]> = (0..20_000)
        .map(|i| [117.0, 36.7 + f64::from(i) * 1e-6])
        .collect();
    s.post(
        "/api/v1/admin/assets",
        &admin,
        json!({
            "id": "big", "system": "river", "name": "big", "division": "370105000000",
            "geometry": {"type": "LineString", "coordinates": big_line}
        }),
    )
    .await
    .expect_error(413, "payload_too_large");
    s.post("/api/v1/admin/users", &admin, json!({"username": 5}))
        .await
        .expect_error(400, "bad_request");
}

/// Replaces `{param}` segments with a placeholder value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "placeholder"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_web::test]
async fn openapi_lists_exactly_the_served_routes() {
    let s = TestServer::demo().await;
    let spec = s.request("GET", "/openapi.json", None, None).await;
    let spec = spec.expect_ok().clone();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().expect("paths");
    let admin = s.token(ADMIN, "pc").await;
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let body = (method != "get").then(|| json!({}));
            let reply = s
                .request(&method.to_uppercase(), &concrete(path), Some(&admin), body)
                .await;
            assert_ne!(
                reply.body["error"], "no_route",
                "{method} {path} is documented but not served"
            );
            assert_ne!(reply.status.as_u16(), 405, "{method} {path}");
        }
    }
    assert!(operations >= 20, "{operations} operations documented");

    // Every route pattern the server matched while serving those requests is documented.
    let metrics = s.request("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    for line in text
        .lines()
        .filter(|l| l.starts_with("chiefsync_http_requests_total{"))
    {
        let route = line
            .split("route=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        if route != "unmatched" {
            assert!(
                paths.contains_key(route),
                "served route {route} is missing from the spec"
            );
        }
    }
    let schemas: &Value = &spec["components"]["schemas"];
    assert!(schemas.get("ErrorBody").is_some());
    assert!(spec["components"]["securitySchemes"]
        .get("bearer")
        .is_some());
}
