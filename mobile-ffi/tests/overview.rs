//! The overview a phone reads instead of the documents of the chiefs below its user, against a
//! real demo server: the figures are those `GET /stats` gives for the same chiefs, an unchanged
//! overview costs no bytes in the next sync's answer, it reads offline after a restart, a
//! village chief has none, and nobody gets figures outside their jurisdiction.

mod common;

use std::collections::BTreeMap;

use mobile_ffi::{ClientConfig, FieldClient, Level, Overview, System};
use serde_json::Value;
use sync_core::model::DivisionCode;
use sync_core::protocol::{SyncRequest, SyncResponse, OVERVIEW_HEADER};

const DAY_MS: i64 = 86_400_000;

fn token(base: &str, user: &str, device: &str) -> String {
    let grant: Value = ureq::post(format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({
            "username": user,
            "password": "demo",
            "device_id": device,
        }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    grant["access_token"].as_str().unwrap().to_owned()
}

fn get(base: &str, path: &str, token: &str) -> Value {
    ureq::get(format!("{base}/api/v1{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// One raw sync (no document pushed) from `cursor`, naming the overview held (or not).
fn raw_sync(base: &str, token: &str, cursor: u64, held: Option<u64>) -> Vec<u8> {
    let body = SyncRequest {
        cursor,
        dropped: Vec::new(),
        docs: vec![],
    }
    .encode();
    let mut request = ureq::post(format!("{base}/api/v1/sync"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/octet-stream");
    if let Some(held) = held {
        request = request.header(OVERVIEW_HEADER, held.to_string());
    }
    request
        .send(&body[..])
        .unwrap()
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap()
}

fn day(at_ms: i64) -> String {
    let (y, m, d) = sync_core::stats::china_date(at_ms);
    format!("{y:04}-{m:02}-{d:02}")
}

fn synced_phone(dir: &std::path::Path, base: &str, user: &str) -> std::sync::Arc<FieldClient> {
    let phone = FieldClient::open(ClientConfig::new(dir.join(user), base.to_owned())).unwrap();
    phone.login(user.into(), "demo".into()).unwrap();
    phone.sync().unwrap();
    phone
}

#[test]
fn the_overview_agrees_with_the_statistics_and_stays_within_the_jurisdiction() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let office = synced_phone(dir.path(), &base, "demo-supervisor");
    let overview: Overview = office
        .overview()
        .unwrap()
        .expect("the office has chiefs below");
    assert!(!overview.chiefs.is_empty());
    let desk = token(&base, "demo-supervisor", "desk");

    // Patrols this month, chief by chief, as /stats/patrols counts them for the same period.
    let from = day(overview.period_from_ms);
    let to = day(overview.period_to_ms - 1);
    assert_eq!(
        &from[8..],
        "01",
        "the period starts on the first of the month"
    );
    let stats = get(&base, &format!("/stats/patrols?from={from}&to={to}"), &desk);
    let rows: BTreeMap<&str, &Value> = stats["chiefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["chief"].as_str().unwrap(), r))
        .collect();
    assert_eq!(rows.len(), overview.chiefs.len(), "the same chiefs");
    for line in &overview.chiefs {
        let row = rows[line.chief_id.as_str()];
        let n = |k: &str| row[k].as_u64().unwrap();
        assert_eq!(
            (
                line.required,
                line.periods,
                line.periods_met,
                line.patrols,
                line.valid,
                line.flagged
            ),
            (
                n("required"),
                n("periods"),
                n("periods_met"),
                n("patrols"),
                n("valid"),
                n("invalid")
            ),
            "{}",
            line.chief_id
        );
        assert!((line.km - row["km"].as_f64().unwrap()).abs() < 1e-9);
        // The office's own system and division only.
        assert_eq!(line.system, System::River);
        assert!(line.division.starts_with("370105"));
    }
    assert!(overview.chiefs.iter().any(|c| c.required > 0));

    // Problems open now, by subdistrict, as /stats/issues counts them over every report.
    let since = day(overview.period_to_ms - 1000 * DAY_MS);
    let issues = get(
        &base,
        &format!("/stats/issues?from={since}&to={to}&group=subdistrict"),
        &desk,
    );
    let open: BTreeMap<String, (u64, u64)> = issues["by_division"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["open"].as_u64().unwrap() > 0)
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                (g["open"].as_u64().unwrap(), g["overdue"].as_u64().unwrap()),
            )
        })
        .collect();
    let ours: BTreeMap<String, (u64, u64)> = overview
        .divisions
        .iter()
        .map(|d| (d.division.clone(), (d.open, d.overdue)))
        .collect();
    assert!(!ours.is_empty(), "the demo has open problems");
    assert_eq!(ours, open);
    for line in &overview.divisions {
        assert!(line.escalated <= line.open);
        assert_eq!(line.system, System::River);
    }

    // A subdistrict forest chief sees forest chiefs below them inside their subdistrict only,
    // and problems of their subdistrict counted by village.
    let forest = synced_phone(dir.path(), &base, "demo-forest-chief");
    let me = forest.me().unwrap();
    let theirs = DivisionCode::new(me.division.clone().unwrap()).unwrap();
    let forest_view = forest
        .overview()
        .unwrap()
        .expect("a subdistrict chief has one");
    for line in &forest_view.chiefs {
        assert_eq!((line.system, line.level), (System::Forest, Level::Village));
        assert!(theirs.contains(&DivisionCode::new(line.division.clone()).unwrap()));
    }
    for line in &forest_view.divisions {
        assert_eq!(line.system, System::Forest);
        assert!(theirs.contains(&DivisionCode::new(line.division.clone()).unwrap()));
    }

    // A village chief has nobody below them: no overview, and none is attached to the answer.
    let village = synced_phone(dir.path(), &base, "demo-chief");
    assert_eq!(village.overview().unwrap(), None);
    let village_token = token(&base, "demo-chief", "raw");
    let answer = raw_sync(&base, &village_token, 0, Some(0));
    assert_eq!(SyncResponse::decode_with_overview(&answer).unwrap().1, None);
}

#[test]
fn an_unchanged_overview_costs_no_bytes_and_reads_offline_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);

    // On the wire: the first answer carries the overview; from the version it named, the next
    // answer is byte for byte what a phone naming no overview receives.
    let raw = token(&base, "demo-supervisor", "raw-phone");
    let first = raw_sync(&base, &raw, 0, Some(0));
    let (response, update) = SyncResponse::decode_with_overview(&first).unwrap();
    let update = update.expect("an office's first sync brings its overview");
    assert_ne!(update.version, 0);
    let cursor = response.cursor;
    let unchanged = raw_sync(&base, &raw, cursor, Some(update.version));
    let without = raw_sync(&base, &raw, cursor, None);
    assert_eq!(unchanged, without, "an unchanged overview adds no byte");
    assert_eq!(
        SyncResponse::decode_with_overview(&unchanged).unwrap().1,
        None
    );
    let again = raw_sync(&base, &raw, cursor, Some(0));
    println!(
        "overview answer sizes: unchanged {} bytes, with the overview {} bytes",
        unchanged.len(),
        again.len()
    );
    assert!(again.len() > unchanged.len() + 100);
    // A version the phone cannot have named is a 400, not a sync.
    let refused = ureq::post(format!("{base}/api/v1/sync"))
        .header("Authorization", format!("Bearer {raw}"))
        .header(OVERVIEW_HEADER, "many")
        .send(&SyncRequest::default().encode()[..]);
    assert!(matches!(refused, Err(ureq::Error::StatusCode(400))));

    // Through the phone library: the second sync keeps the overview, then the phone restarts
    // with no server to reach and reads it from its store.
    let data = dir.path().join("office-phone");
    let phone = FieldClient::open(ClientConfig::new(&data, base.clone())).unwrap();
    phone
        .login("demo-supervisor".into(), "demo".into())
        .unwrap();
    phone.sync().unwrap();
    let before = phone.overview().unwrap().expect("kept after the sync");
    assert_eq!(before.version, update.version);
    let second = phone.sync_documents(now_ms()).unwrap();
    assert_eq!(phone.overview().unwrap(), Some(before.clone()));
    assert!(
        second.bytes_down < again.len(),
        "the unchanged overview is not sent again: {} bytes down",
        second.bytes_down
    );
    drop(phone);
    let offline =
        FieldClient::open(ClientConfig::new(&data, "http://127.0.0.1:9".to_owned())).unwrap();
    assert_eq!(offline.overview().unwrap(), Some(before));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
