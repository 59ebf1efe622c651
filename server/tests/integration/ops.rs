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
    // A served path with another method: 405, naming what it takes.
    let delete = s.request("DELETE", "/healthz", None, None).await;
    delete.expect_error(405, "method_not_allowed");
    assert_eq!(delete.headers.get("allow").unwrap(), "GET");
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

/// The methods an OpenAPI path item documents, upper-case.
fn documented_methods(item: &Value) -> Vec<String> {
    ["get", "head", "post", "put", "patch", "delete"]
        .into_iter()
        .filter(|m| item.get(*m).is_some())
        .map(str::to_uppercase)
        .collect()
}

/// Every documented path answers every method it does not document with 405, `Allow` naming
/// exactly the documented ones and the JSON error body: no route is served that the schema does
/// not list, and an integrator probing a path learns what it takes.
#[actix_web::test]
async fn undocumented_methods_answer_405_with_the_documented_ones() {
    let s = TestServer::demo().await;
    let spec = s.request("GET", "/openapi.json", None, None).await;
    let paths = spec.expect_ok()["paths"].as_object().unwrap().clone();
    let admin = s.token(ADMIN, "pc").await;
    let mut probed = 0;
    // A concrete path can fit more than one template (a literal segment where another route
    // takes an `{id}`): what it serves is what every template it fits documents.
    let fits = |template: &str, concrete: &str| {
        let (t, c): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), concrete.split('/').collect());
        t.len() == c.len() && t.iter().zip(&c).all(|(t, c)| t.starts_with('{') || t == c)
    };
    for (path, _) in &paths {
        let mut documented: Vec<String> = paths
            .iter()
            .filter(|(template, _)| fits(template, &concrete(path)))
            .flat_map(|(_, item)| documented_methods(item))
            .collect();
        documented.sort_unstable();
        documented.dedup();
        for method in [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
        ] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let reply = s.request(method, &concrete(path), Some(&admin), None).await;
            assert_eq!(
                reply.status.as_u16(),
                405,
                "{method} {path}: {}",
                reply.body
            );
            if method != "HEAD" {
                reply.expect_error(405, "method_not_allowed");
            }
            let allow = reply.headers.get("allow").expect("Allow").to_str().unwrap();
            let mut allowed: Vec<&str> = allow.split(", ").collect();
            allowed.sort_unstable();
            let mut expected: Vec<&str> = documented.iter().map(String::as_str).collect();
            expected.sort_unstable();
            assert_eq!(allowed, expected, "{method} {path}");
            probed += 1;
        }
    }
    assert!(probed > 100, "{probed} probes");
    // A path of no route's shape stays 404 `no_route`.
    s.request("TRACE", "/api/v1/nothing/here", Some(&admin), None)
        .await
        .expect_error(404, "no_route");
}

/// The schema is well formed and says what the shared layers answer: every `$ref` resolves,
/// every `{param}` of a path is a required path parameter, every status is a 3-digit code with
/// a description, every authenticated operation documents 401, and every operation that reads
/// parameters or a body documents 400 (and, for a JSON body, 413 and 415).
#[actix_web::test]
async fn openapi_is_well_formed_and_documents_the_shared_answers() {
    let s = TestServer::empty().await;
    let spec = s
        .request("GET", "/openapi.json", None, None)
        .await
        .expect_ok()
        .clone();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(spec.pointer(pointer).is_some(), "{r} does not resolve");
    }

    let mut ids = std::collections::HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let named: Vec<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for method in documented_methods(item) {
            let op = &item[method.to_lowercase()];
            let what = format!("{method} {path}");
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "{what}: operationId {id} twice");
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in params.iter().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                assert!(
                    named.contains(&name),
                    "{what}: path parameter {name} is not in the path"
                );
            }
            for name in &named {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == *name && p["in"] == "path" && p["required"] == true),
                    "{what}: path parameter {name} is not declared"
                );
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{what}");
            for (status, response) in responses {
                assert!(
                    status.len() == 3
                        && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                    "{what}: status {status}"
                );
                assert!(response["description"].is_string(), "{what} {status}");
            }
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                assert!(responses.contains_key("401"), "{what}: 401 undocumented");
            }
            let body = op["requestBody"]["content"].as_object();
            if !params.is_empty() || body.is_some() {
                assert!(responses.contains_key("400"), "{what}: 400 undocumented");
            }
            if body.is_some_and(|c| c.contains_key("application/json")) {
                for status in ["408", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{what}: {status} undocumented"
                    );
                }
            }
        }
    }
}
