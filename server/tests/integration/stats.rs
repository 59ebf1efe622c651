//! Statistics and exports against a real server with the demo seeded: the JSON figures are the
//! ones sync-core computes over the stored demo documents (and agree with what the demo was built
//! to contain), CSV and XLSX carry the same figures, GeoJSON parses with the right geometries,
//! a patrol arriving late only adds to its own period, and chiefs are refused.

use std::io::Cursor;

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use serde_json::Value;
use server::demo::{self, CHIEF, FOREST_CHIEF, HANDLER, SUPERVISOR};
use server::stats::query::{day_string, scope, StatsQuery};
use server::stats::StatsInputs;
use sync_core::authz::DocMeta;
use sync_core::doc::{actor_for, NewPatrol, PatrolDoc, Record};
use sync_core::stats::{issue_report, patrol_report, FactIndex};
use sync_core::track::{walk_along, CHUNK_POINTS};

use crate::harness::TestServer;

const DAY_MS: i64 = 86_400_000;

/// A GET returning the raw body and content type.
async fn raw(s: &TestServer, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let mut res = awc::Client::new()
        .get(format!("{}{path}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("request sent");
    let body = res.body().limit(64 * 1024 * 1024).await.expect("body");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (res.status().as_u16(), content_type, body.to_vec())
}

/// The demo's documents lie in the last three weeks: a 30-day period ending today.
fn period() -> (String, String) {
    let now = server::state::now_ms();
    (day_string(now - 29 * DAY_MS), day_string(now))
}

fn query_string() -> String {
    let (from, to) = period();
    format!("from={from}&to={to}")
}

/// What sync-core computes over the stored documents for the supervisor's scope.
fn expected(s: &TestServer, issues_now_ms: i64) -> (Value, Value) {
    let (from, to) = period();
    let store = s.state.store.as_ref();
    let reference = StatsInputs::load(store).unwrap();
    let supervisor = store
        .find_user_by_username(SUPERVISOR)
        .unwrap()
        .unwrap()
        .user;
    let query = StatsQuery {
        from: Some(from),
        to: Some(to),
        ..StatsQuery::default()
    };
    let filter = scope(&supervisor, query.filter(issues_now_ms).unwrap()).unwrap();
    let mut index = FactIndex::default();
    for meta in store.all_documents().unwrap() {
        let doc = store.document(&meta.id).unwrap().unwrap();
        let clock = server::derived::device_clock(store, &meta.id).unwrap();
        index
            .upsert_bytes_at(&doc.bytes, &reference.view(), &clock)
            .unwrap();
    }
    let patrols = patrol_report(&index, &reference.view(), &filter);
    let issues = issue_report(&index, &reference.view(), &filter, issues_now_ms);
    (
        serde_json::to_value(patrols).unwrap(),
        serde_json::to_value(issues).unwrap(),
    )
}

/// `value` as a client reads it off the wire: serde_json parses decimal text into the nearest
/// f64 only with its `float_roundtrip` feature, so the last bit of a figure can differ from the
/// in-process value. Sending both through the same text makes the comparison exact.
fn as_on_the_wire(value: Value) -> Value {
    serde_json::from_str(&value.to_string()).unwrap()
}

fn chief_row<'a>(report: &'a Value, username: &str) -> &'a Value {
    let id = demo::user_id(username);
    report["chiefs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chief"] == id.as_str())
        .unwrap_or_else(|| panic!("no row for {username}: {report}"))
}

#[actix_web::test]
async fn json_figures_are_sync_cores_over_the_demo_documents() {
    let s = TestServer::demo().await;
    let token = s.token(SUPERVISOR, "pc").await;
    let q = query_string();
    let patrols = s.get(&format!("/api/v1/stats/patrols?{q}"), &token).await;
    let patrols = patrols.expect_ok().clone();
    let issues = s.get(&format!("/api/v1/stats/issues?{q}"), &token).await;
    let issues = issues.expect_ok().clone();
    let (want_patrols, want_issues) = expected(&s, issues["now_ms"].as_i64().unwrap());
    assert_eq!(patrols, as_on_the_wire(want_patrols));
    assert_eq!(issues, as_on_the_wire(want_issues));

    // And what the demo was built to contain: the district river office sees the five river
    // chiefs; the two village chiefs patrolled six times each, one walk cut short.
    assert_eq!(patrols["chiefs"].as_array().unwrap().len(), 5, "{patrols}");
    for chief in [CHIEF, demo::CHIEF_2] {
        let row = chief_row(&patrols, chief);
        assert_eq!(row["patrols"], 6, "{row}");
        assert!(row["invalid"].as_u64().unwrap() >= 1, "{row}");
        assert!(row["km"].as_f64().unwrap() > 5.0, "{row}");
    }
    assert_eq!(patrols["without_patrols"].as_array().unwrap().len(), 3);
    assert_eq!(issues["totals"]["reported"], 10);
    assert_eq!(issues["totals"]["closed"], 1);
    assert_eq!(issues["totals"]["invalid"], 1);
    assert_eq!(issues["totals"]["duplicate"], 1);
    assert!(issues["totals"]["overdue"].as_u64().unwrap() >= 1);
    s.stop().await;
}

/// The demo's own figures, computed from the demo's patrol pattern: demo-chief and demo-chief-2
/// walk 21, 18, 15, 12, 9 and 6 days before the seeding (the walk 12 days before is cut short and
/// invalid). Compliance counts weeks met, not walks: the five valid walks fall in at most four
/// calendar weeks, so two of them share a week and cannot make up for a week without one (on the
/// day this was found: 4 of 5 weeks met, compliance 0.8, where counting walks said 1.0).
#[actix_web::test]
async fn compliance_counts_weeks_met_not_walks_on_the_demo() {
    use sync_core::rules::Period;
    let seeded_about = server::state::now_ms();
    let s = TestServer::demo().await;
    let token = s.token(SUPERVISOR, "pc").await;
    let q = query_string();
    let report = s.get(&format!("/api/v1/stats/patrols?{q}"), &token).await;
    let report = report.expect_ok().clone();
    let from = report["filter"]["window"]["from_ms"].as_i64().unwrap();
    let to = report["filter"]["window"]["to_ms"].as_i64().unwrap();
    let periods = Period::Week.overlapping(from, to);
    for (n, chief) in [CHIEF, demo::CHIEF_2].into_iter().enumerate() {
        let walked = |days: i64| seeded_about - days * DAY_MS + (8 * 60 + 17 * n as i64) * 60_000;
        let weeks: std::collections::BTreeSet<i64> = [21, 18, 15, 9, 6]
            .into_iter()
            .map(walked)
            .filter(|t| (from..to).contains(t))
            .map(|t| Period::Week.index(t))
            .collect();
        let met = weeks.len() as u64;
        assert!(met < 5, "two valid walks share a week");
        let row = chief_row(&report, chief);
        assert_eq!(row["valid"], 5, "{row}");
        assert_eq!(row["periods"].as_u64(), Some(periods), "{row}");
        assert_eq!(row["periods_met"].as_u64(), Some(met), "{row}");
        let compliance = row["compliance"].as_f64().unwrap();
        assert!(
            (compliance - met as f64 / periods as f64).abs() < 1e-12,
            "{row}"
        );
        assert!(compliance < 1.0, "{row}");
    }
    // Groups: the share of chief-periods met and the share of chiefs who met every week, each
    // from the chiefs' own rows.
    for group in report["by_division"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&report["totals"]])
    {
        let rows: Vec<&serde_json::Value> = report["chiefs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                let code =
                    sync_core::model::DivisionCode::new(r["division"].as_str().unwrap()).unwrap();
                group["key"] == "total"
                    || sync_core::stats::rollup(&code, sync_core::model::Level::Subdistrict)
                        .as_str()
                        == group["key"].as_str().unwrap()
            })
            .collect();
        let sum = |field: &str| rows.iter().map(|r| r[field].as_u64().unwrap()).sum::<u64>();
        let (periods, met) = (sum("periods"), sum("periods_met"));
        assert_eq!(group["periods"].as_u64(), Some(periods), "{group}");
        assert_eq!(group["periods_met"].as_u64(), Some(met), "{group}");
        let required: Vec<_> = rows
            .iter()
            .filter(|r| r["periods"].as_u64() > Some(0))
            .collect();
        let full = required
            .iter()
            .filter(|r| r["periods_met"] == r["periods"])
            .count() as u64;
        assert_eq!(
            group["chiefs_required"].as_u64(),
            Some(required.len() as u64)
        );
        assert_eq!(group["chiefs_compliant"].as_u64(), Some(full), "{group}");
        if periods > 0 {
            let c = group["compliance"].as_f64().unwrap();
            assert!((c - met as f64 / periods as f64).abs() < 1e-12, "{group}");
        }
    }
    let sangzidian = report["by_division"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "370105014000")
        .unwrap();
    assert!(
        sangzidian["compliance"].as_f64().unwrap() < 1.0,
        "{sangzidian}"
    );

    // CSV, XLSX and the report carry these same figures: `csv_and_xlsx_carry_the_json_figures`.
    s.stop().await;
}

#[actix_web::test]
async fn csv_and_xlsx_carry_the_json_figures() {
    let s = TestServer::demo().await;
    let token = s.token(SUPERVISOR, "pc").await;
    let q = query_string();
    // CSV and XLSX text is read back with Rust's exact parser, so compare with the in-process
    // figures bit for bit.
    let (json, _) = expected(&s, server::state::now_ms());
    let row = chief_row(&json, CHIEF);

    let (status, content_type, csv) =
        raw(&s, &format!("/api/v1/stats/patrols?{q}&format=csv"), &token).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(
        csv.starts_with(b"\xEF\xBB\xBF"),
        "UTF-8 byte-order mark first"
    );
    let mut reader = csv::Reader::from_reader(&csv[3..]);
    let titles: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(titles[0], "责任人ID");
    assert!(titles.contains(&"有效巡查".to_owned()), "{titles:?}");
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), json["chiefs"].as_array().unwrap().len());
    let column = |title: &str| titles.iter().position(|t| t == title).unwrap();
    let mine = records
        .iter()
        .find(|r| &r[0] == row["chief"].as_str().unwrap())
        .unwrap();
    assert_eq!(mine[column("有效巡查")], row["valid"].to_string());
    assert_eq!(
        mine[column("巡查里程(公里)")].parse::<f64>().unwrap(),
        row["km"].as_f64().unwrap()
    );
    assert_eq!(&mine[column("姓名")], "小寨村河长 张建国");

    let (status, content_type, xlsx) = raw(
        &s,
        &format!("/api/v1/stats/patrols?{q}&format=xlsx"),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type.contains("spreadsheetml"), "{content_type}");
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(xlsx)).expect("a workbook");
    assert_eq!(
        book.sheet_names(),
        ["巡查考核明细", "按区划汇总", "按级别汇总", "零巡查名单"]
    );
    let sheet = book.worksheet_range("巡查考核明细").unwrap();
    let cells: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    let text = |d: &Data| d.to_string();
    assert!(text(&cells[0][0]).contains("巡查考核统计"));
    assert!(text(&cells[1][0]).starts_with("统计期间"), "{:?}", cells[1]);
    let header = cells
        .iter()
        .position(|r| text(&r[0]) == "责任人ID")
        .expect("title row");
    assert_eq!(text(&cells[header][10]), "有效巡查");
    let mine = cells[header + 1..]
        .iter()
        .find(|r| text(&r[0]) == row["chief"].as_str().unwrap())
        .unwrap();
    assert_eq!(mine[10], Data::Float(row["valid"].as_f64().unwrap()));
    assert_eq!(mine[15], Data::Float(row["km"].as_f64().unwrap()));

    let issues = s.get(&format!("/api/v1/stats/issues?{q}"), &token).await;
    let issues = issues.expect_ok().clone();
    let (_, _, xlsx) = raw(&s, &format!("/api/v1/stats/issues?{q}&format=xlsx"), &token).await;
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(xlsx)).unwrap();
    assert_eq!(book.sheet_names().len(), 6);
    let sheet = book.worksheet_range("按区划和体系").unwrap();
    let total = sheet
        .rows()
        .find(|r| r[0] == Data::String("total".into()))
        .unwrap();
    assert_eq!(
        total[3],
        Data::Float(issues["totals"]["reported"].as_f64().unwrap())
    );
    s.stop().await;
}

#[actix_web::test]
async fn geojson_exports_points_and_tracks() {
    let s = TestServer::demo().await;
    let q = query_string();
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let admin = s.token(demo::ADMIN, "pc").await;
    let geometries = |body: &[u8]| -> Vec<String> {
        let v: Value = serde_json::from_slice(body).expect("GeoJSON parses");
        assert_eq!(v["type"], "FeatureCollection");
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["type"], "Feature");
                f["geometry"]["type"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let (status, content_type, body) = raw(
        &s,
        &format!("/api/v1/export/issues.geojson?{q}"),
        &supervisor,
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/geo+json")
    );
    let points = geometries(&body);
    assert_eq!(points.len(), 10);
    assert!(points.iter().all(|g| g == "Point"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["features"][0]["properties"]["status"].is_string());

    // The river office sees the river patrols; the administrator every patrol of the demo.
    let (_, _, body) = raw(
        &s,
        &format!("/api/v1/export/patrols.geojson?{q}"),
        &supervisor,
    )
    .await;
    let lines = geometries(&body);
    assert_eq!(lines.len(), 12);
    assert!(lines.iter().all(|g| g == "LineString"));
    let (_, _, body) = raw(&s, &format!("/api/v1/export/patrols.geojson?{q}"), &admin).await;
    assert_eq!(geometries(&body).len(), 24);
    s.stop().await;
}

#[actix_web::test]
async fn a_late_patrol_adds_to_the_week_it_was_walked_in_only() {
    let s = TestServer::demo().await;
    let token = s.token(SUPERVISOR, "pc").await;
    let q = query_string();
    let before = s.get(&format!("/api/v1/stats/patrols?{q}"), &token).await;
    let before = before.expect_ok().clone();

    // demo-chief-2 walked ten days ago; the phone syncs only now.
    let facts = demo::facts();
    let chief = facts.user(demo::CHIEF_2).unwrap();
    let asset = facts.asset("river-thh-03").unwrap();
    let walked = server::state::now_ms() - 10 * DAY_MS;
    let mut patrol = PatrolDoc::create(
        actor_for(900),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: chief.id.clone(),
            division: asset.division.clone(),
            device: "late-phone".into(),
            started_at_ms: walked,
        },
    )
    .unwrap();
    let walk = walk_along(&asset.geometry, walked, 25 * 60, 9);
    for chunk in walk.chunks(CHUNK_POINTS) {
        patrol.append_track(chunk).unwrap();
    }
    patrol.finish(walk.last().unwrap().t_ms).unwrap();
    let bytes = patrol.save();
    let meta = DocMeta::of(&automerge::AutoCommit::load(&bytes).unwrap()).unwrap();
    s.state
        .store
        .save_document(patrol.id(), &meta, &bytes, &[])
        .unwrap();

    let after = s.get(&format!("/api/v1/stats/patrols?{q}"), &token).await;
    let after = after.expect_ok().clone();
    for (old, new) in before["chiefs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["chiefs"].as_array().unwrap())
    {
        if old["chief"] != chief.id.as_str() {
            assert_eq!(old, new);
        }
    }
    let (old, new) = (
        chief_row(&before, demo::CHIEF_2),
        chief_row(&after, demo::CHIEF_2),
    );
    assert_eq!(
        new["patrols"].as_u64(),
        old["patrols"].as_u64().map(|n| n + 1)
    );
    assert_eq!(
        new["valid"].as_u64(),
        old["valid"].as_u64().map(|n| n + 1),
        "{new}"
    );
    assert_eq!(
        after["totals"]["valid"].as_u64(),
        before["totals"]["valid"].as_u64().map(|n| n + 1)
    );

    // A period that ended before the walk does not see it.
    let (from, _) = period();
    let early = day_string(walked - 2 * DAY_MS);
    let old_period = s
        .get(
            &format!("/api/v1/stats/patrols?from={from}&to={early}"),
            &token,
        )
        .await;
    let old_row = chief_row(old_period.expect_ok(), demo::CHIEF_2).clone();
    let again = s
        .get(
            &format!("/api/v1/stats/patrols?from={from}&to={early}"),
            &token,
        )
        .await;
    assert_eq!(chief_row(again.expect_ok(), demo::CHIEF_2), &old_row);
    s.stop().await;
}

#[actix_web::test]
async fn hotspots_charts_and_the_monthly_report() {
    let s = TestServer::demo().await;
    let token = s.token(SUPERVISOR, "pc").await;
    let q = query_string();
    let hot = s.get(&format!("/api/v1/stats/hotspots?{q}"), &token).await;
    let hot = hot.expect_ok().clone();
    // The demo's reopened outfall came back after it was closed.
    let list = hot["hotspots"].as_array().unwrap();
    assert!(!list.is_empty(), "{hot}");
    assert_eq!(list[0]["rank"], 1);
    assert_eq!(list[0]["category"], "river.outfall");
    assert_eq!(hot["geojson"]["features"][0]["geometry"]["type"], "Point");

    for chart in ["compliance", "weekly", "overdue"] {
        let (status, content_type, body) = raw(
            &s,
            &format!("/api/v1/stats/report.svg?{q}&chart={chart}"),
            &token,
        )
        .await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "image/svg+xml"),
            "{chart}"
        );
        let svg = String::from_utf8(body).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<rect"),
            "{chart}: {svg:.200}"
        );
    }
    let (status, _, html) = raw(&s, &format!("/api/v1/stats/report.html?{q}"), &token).await;
    assert_eq!(status, 200);
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("月报") && html.matches("<svg").count() == 3);
    // Self-contained: nothing is loaded from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    let page = s.request("GET", "/report", None, None).await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.body.as_str().unwrap().contains("/report.js"));
    // The page's script, served on its own so that the page runs no inline script.
    let script = s.request("GET", "/report.js", None, None).await;
    assert_eq!(script.status.as_u16(), 200);
    assert!(script
        .body
        .as_str()
        .unwrap()
        .contains("/api/v1/stats/report.html"));
    s.stop().await;
}

#[actix_web::test]
async fn only_supervisors_and_administrators_in_their_scope() {
    let s = TestServer::demo().await;
    let q = query_string();
    let paths = [
        "/api/v1/stats/patrols",
        "/api/v1/stats/issues",
        "/api/v1/stats/hotspots",
        "/api/v1/export/issues.geojson",
        "/api/v1/export/patrols.geojson",
        "/api/v1/stats/report.html",
    ];
    for user in [CHIEF, FOREST_CHIEF, HANDLER] {
        let token = s.token(user, "phone").await;
        for path in paths {
            s.get(&format!("{path}?{q}"), &token)
                .await
                .expect_error(403, "forbidden");
        }
    }
    let supervisor = s.token(SUPERVISOR, "pc").await;
    s.get(
        &format!("/api/v1/stats/patrols?{q}&system=forest"),
        &supervisor,
    )
    .await
    .expect_error(403, "forbidden");
    s.get(
        &format!("/api/v1/stats/issues?{q}&division=370102000000"),
        &supervisor,
    )
    .await
    .expect_error(403, "forbidden");
    s.get(
        "/api/v1/stats/issues?from=2024-02-30&to=2024-03-01",
        &supervisor,
    )
    .await
    .expect_error(400, "bad_request");
    s.get(
        &format!("/api/v1/stats/patrols?{q}&format=pdf"),
        &supervisor,
    )
    .await
    .expect_error(400, "bad_request");
    s.request("GET", "/api/v1/stats/patrols", None, None)
        .await
        .expect_error(401, "missing_token");
    s.stop().await;
}
