//! Attacks: proportional. A chief (or a script with a chief's account) can report and patrol
//! as much as they like; the supervisor's board, patrol list and reminders must still cost a
//! page, not the whole district. Each test grows the store tenfold through the real store and
//! counts, with the server's own `chiefsync_board_work` metric, the documents a request loaded,
//! folded and validated and the duplicate candidates it compared. Wall-clock times are printed
//! for the curious, never asserted.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use server::demo::{self, CHIEF, SUPERVISOR};
use server::state::now_ms;
use sync_core::authz::DocMeta;
use sync_core::doc::{actor_for, IssueDoc, NewIssue, Record};
use sync_core::model::{Role, Severity, System, User};

use crate::harness::TestServer;

/// Documents of each kind in the smaller store; the larger one holds ten times as many.
const N: usize = 30;
const PAGE: usize = 20;

/// The work counters for one route, by kind of work (`loaded`, `folded`, `validated`,
/// `compared`).
async fn work(s: &TestServer, route: &str) -> BTreeMap<String, u64> {
    let reply = s.request("GET", "/metrics", None, None).await;
    let text = reply.body.as_str().expect("metrics are text").to_owned();
    let mut out = BTreeMap::new();
    let prefix = format!("chiefsync_board_work_total{{request=\"{route}\",work=\"");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let (kind, value) = rest.split_once("\"} ").expect("a counter line");
            out.insert(kind.to_owned(), value.trim().parse().expect("a count"));
        }
    }
    out
}

/// The work one GET did: the counters' difference across it.
async fn work_of(s: &TestServer, path: &str, route: &str, token: &str) -> BTreeMap<String, u64> {
    let before = work(s, route).await;
    let started = Instant::now();
    s.get(path, token).await.expect_ok();
    let elapsed = started.elapsed();
    let after = work(s, route).await;
    let delta: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    println!("GET {path}: {delta:?} in {elapsed:?}");
    delta
}

fn total(work: &BTreeMap<String, u64>) -> u64 {
    work.values().sum()
}

/// The first river segment in the chief's jurisdiction.
fn chiefs_river(chief: &User) -> String {
    match &chief.role {
        Role::Chief { jurisdiction, .. } => jurisdiction.assets[0].clone(),
        _ => panic!("{} is a chief", chief.username),
    }
}

/// Stores `count` more issues reported by demo-chief on its own river, spread one every
/// ~130 m so that no two are within the duplicate radius, starting at number `from`.
fn report_issues(s: &TestServer, from: usize, count: usize) {
    let facts = demo::facts();
    let chief = facts.user(CHIEF).unwrap();
    let asset = facts.asset(&chiefs_river(chief)).unwrap();
    let now = now_ms();
    for n in from..from + count {
        let mut issue = IssueDoc::report(
            actor_for(7_000 + n as u64),
            chief,
            "flood-phone",
            now - n as i64 * 60_000,
            &NewIssue {
                system: System::River,
                category: "river.garbage".into(),
                severity: Severity::General,
                asset: asset.id.clone(),
                division: asset.division.clone(),
                location: [
                    116.90 + 0.0015 * (n % 100) as f64,
                    36.70 + 0.0015 * (n / 100) as f64,
                ],
                description: format!("第{n}处垃圾"),
                patrol: None,
            },
        )
        .unwrap();
        let bytes = issue.save();
        let meta = DocMeta::of(&automerge::AutoCommit::load(&bytes).unwrap()).unwrap();
        s.state
            .store
            .save_document(issue.id(), &meta, &bytes, &[])
            .unwrap();
    }
}

/// Stores `count` more patrols walked by demo-chief along its river an hour ago, `seconds` long.
fn walk_patrols(s: &TestServer, from: usize, count: usize, seconds: usize) {
    let facts = demo::facts();
    let chief = facts.user(CHIEF).unwrap();
    let asset = facts.asset(&chiefs_river(chief)).unwrap();
    let now = now_ms();
    for n in from..from + count {
        let started = now - 3_600_000 - n as i64 * 1_000;
        let actor = (9_000 + n as u64, "flood-phone");
        s.store_walked_patrol(chief, asset, actor, started, seconds, n as u64);
    }
}

/// The work of each request a supervisor's desk makes, after one request has caught up with
/// what changed.
async fn desk_work(s: &TestServer, sup: &str) -> Vec<(String, BTreeMap<String, u64>)> {
    let list = format!("/api/v1/issues?limit={PAGE}");
    let patrols = format!("/api/v1/patrols?limit={PAGE}");
    let first = s.get(&list, sup).await;
    let id = first.expect_ok()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("/api/v1/issues/{id}");
    let requests = [
        (list.as_str(), "/api/v1/issues"),
        (one.as_str(), "/api/v1/issues/{id}"),
        (patrols.as_str(), "/api/v1/patrols"),
        ("/api/v1/reminders", "/api/v1/reminders"),
    ];
    // The first request after the growth re-reads what changed (counted as `changes`); for
    // itself it still does at most a page's work, except that reminders judge each patrol of
    // the current period once.
    for (path, route) in &requests {
        let first = work_of(s, path, route, sup).await;
        if *route != "/api/v1/reminders" {
            assert!(
                total(&first) <= (2 * PAGE) as u64,
                "{route}: {first:?} for a page of {PAGE}"
            );
        }
    }
    let mut out = Vec::new();
    for (path, route) in requests {
        out.push((route.to_owned(), work_of(s, path, route, sup).await));
    }
    out
}

#[actix_web::test]
async fn a_store_ten_times_larger_costs_a_supervisors_desk_the_same() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    report_issues(&s, 0, N);
    walk_patrols(&s, 0, N, 120);
    let small = desk_work(&s, &sup).await;
    let changes_before = work(&s, "changes").await;

    report_issues(&s, N, 9 * N);
    walk_patrols(&s, N, 9 * N, 120);
    let large = desk_work(&s, &sup).await;
    // Catching up with the feed re-read each new document once, not the store: 9N issues
    // loaded and folded, 9N patrols loaded.
    let changes = work(&s, "changes").await;
    let grew = |kind: &str| {
        changes.get(kind).copied().unwrap_or(0) - changes_before.get(kind).copied().unwrap_or(0)
    };
    assert_eq!(grew("loaded"), (2 * 9 * N) as u64, "{changes:?}");
    assert_eq!(grew("folded"), (9 * N) as u64, "{changes:?}");

    for ((route, small), (_, large)) in small.iter().zip(&large) {
        assert_eq!(
            small, large,
            "{route}: the same request did more work in a store ten times larger"
        );
        assert!(
            total(large) <= (2 * PAGE) as u64,
            "{route}: {large:?} for a page of {PAGE}"
        );
    }
    // The pages still hold what they held: the newest issues and patrols.
    let page = s
        .get(&format!("/api/v1/issues?limit={PAGE}"), &sup)
        .await
        .expect_ok()
        .clone();
    assert!(page["total"].as_u64().unwrap() >= (10 * N) as u64, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), PAGE);
    let patrols = s
        .get(&format!("/api/v1/patrols?limit={PAGE}"), &sup)
        .await
        .expect_ok()
        .clone();
    assert_eq!(patrols.as_array().unwrap().len(), PAGE);
    assert!(patrols
        .as_array()
        .unwrap()
        .iter()
        .all(|p: &Value| p["valid"].is_boolean()));
    s.stop().await;
}

/// Kept verdicts are not stale: when an admin moves the river a patrol was walked along, the
/// patrol list and the patrol judge it again against the new course, and a web action shows
/// on the board at once.
#[actix_web::test]
async fn kept_facts_follow_what_they_were_derived_from() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let admin = s.token(demo::ADMIN, "admin-pc").await;
    walk_patrols(&s, 0, 1, 25 * 60);
    report_issues(&s, 0, 1);
    let facts = demo::facts();
    let river = chiefs_river(facts.user(CHIEF).unwrap());
    let newest = |list: &Value| list[0].clone();
    let list = format!("/api/v1/patrols?limit=1&asset={river}");
    let before = newest(s.get(&list, &sup).await.expect_ok());
    assert_eq!(before["valid"], true, "{before}");

    // The river moves two kilometres north (as if first drawn in the wrong place).
    let mut asset = serde_json::to_value(facts.asset(&river).unwrap()).unwrap();
    for point in asset["geometry"]["coordinates"].as_array_mut().unwrap() {
        point[1] = (point[1].as_f64().unwrap() + 0.02).into();
    }
    s.request(
        "PUT",
        &format!("/api/v1/admin/assets/{river}"),
        Some(&admin),
        Some(asset),
    )
    .await
    .expect_ok();
    let after = newest(s.get(&list, &sup).await.expect_ok());
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["valid"], false, "{after}");
    let detail = s
        .get(
            &format!("/api/v1/patrols/{}", after["id"].as_str().unwrap()),
            &sup,
        )
        .await;
    assert_eq!(detail.expect_ok()["valid"], false, "{}", detail.body);

    // An issue accepted from the web is listed as accepted by the next page.
    let page = s.get("/api/v1/issues?limit=1", &sup).await;
    let id = page.expect_ok()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(page.body["items"][0]["status"], "reported");
    s.post(
        &format!("/api/v1/issues/{id}/events"),
        &sup,
        serde_json::json!({"kind": "accepted"}),
    )
    .await
    .expect_ok();
    let page = s.get("/api/v1/issues?limit=1&status=accepted", &sup).await;
    assert_eq!(page.expect_ok()["items"][0]["id"], id.as_str());
    s.stop().await;
}

/// An issue whose stored bytes do not read is reported to whoever's board holds it (500 with a
/// JSON error, as when every document was read on every request), never listed as something
/// else; once a readable version is stored the board lists it.
#[actix_web::test]
async fn an_unreadable_issue_is_reported_until_it_reads_again() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    report_issues(&s, 0, 1);
    let page = s.get("/api/v1/issues?limit=1", &sup).await;
    let id = page.expect_ok()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = s.state.store.document(&id).unwrap().unwrap();

    s.state
        .store
        .save_document(&id, &stored.meta, b"not an automerge document", &[])
        .unwrap();
    s.get("/api/v1/issues?limit=1", &sup)
        .await
        .expect_error(500, "internal");
    // A chief of the forest system does not hold it, and their board is unaffected.
    let forest = s.token(demo::FOREST_CHIEF, "forest-phone").await;
    s.get("/api/v1/issues", &forest).await.expect_ok();

    s.state
        .store
        .save_document(&id, &stored.meta, &stored.bytes, &[])
        .unwrap();
    let page = s.get("/api/v1/issues?limit=1", &sup).await;
    assert_eq!(page.expect_ok()["items"][0]["id"], id.as_str());
    s.stop().await;
}
