//! The phone asks sync-core the same questions as the server: which steps a user may take next
//! on an issue, which problem categories an asset's system has, what is a position. Against a
//! real demo server, the phone's answers are compared with the dashboard's (`GET /issues/{id}`)
//! and with what `/sync` accepts.

mod common;

use std::sync::Arc;

use mobile_ffi::{ChiefsyncError, ClientConfig, EventDraft, FieldClient, IssueDraft, Severity};
use serde_json::Value;

fn signed_in(dir: &std::path::Path, base: &str, user: &str) -> Arc<FieldClient> {
    let phone = FieldClient::open(ClientConfig::new(dir, base)).expect("open the phone's store");
    phone.login(user.into(), "demo".into()).unwrap();
    phone
}

/// A desk session of `user` and the dashboard's answer for one issue.
fn desk_issue(base: &str, user: &str, id: &str) -> Value {
    let grant: Value = ureq::post(format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({
            "username": user,
            "password": "demo",
            "device_id": "web-rules-test",
        }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let token = grant["access_token"].as_str().unwrap();
    ureq::get(format!("{base}/api/v1/issues/{id}"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

#[test]
fn the_phone_offers_the_steps_the_dashboard_offers_and_refuses_what_sync_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let chief = signed_in(&dir.path().join("chief"), &base, "demo-chief");
    let office = signed_in(&dir.path().join("office"), &base, "demo-supervisor");
    let asset = chief.me().unwrap().assets[0].clone();
    let (lat, lon) = common::spot(&asset);
    let draft = |category: &str| IssueDraft {
        category: category.into(),
        severity: Severity::General,
        asset_id: asset.clone(),
        lat,
        lon,
        description: "河面漂浮垃圾".into(),
        patrol_id: None,
    };

    // A forest category on a river asset: the phone refuses it by the rule `/sync` applies
    // (`authz::check_category`). The phone holds only its own system's categories, so to it the
    // category does not exist; the server, holding all, names its system.
    match chief.report_issue(draft("forest.fire_hazard")) {
        Err(ChiefsyncError::InvalidInput { detail: message }) => assert!(
            message.contains("place does not agree with the reference data")
                && message.contains("forest.fire_hazard"),
            "{message}"
        ),
        other => panic!("a forest category on a river asset was recorded: {other:?}"),
    }
    // A position that is no WGS84 position is refused by the same check the server uses.
    let swapped = IssueDraft {
        lat: lon,
        lon: lat,
        ..draft("river.garbage")
    };
    assert!(matches!(
        chief.report_issue(swapped),
        Err(ChiefsyncError::InvalidInput { .. })
    ));

    let issue = chief.report_issue(draft("river.garbage")).unwrap();
    assert_eq!(chief.sync().unwrap().refused, 0);
    office.sync().unwrap();
    office
        .append_event(issue.clone(), EventDraft::Accept)
        .unwrap();
    assert_eq!(office.sync().unwrap().refused, 0);
    chief.sync().unwrap();

    for (phone, user) in [(&chief, "demo-chief"), (&office, "demo-supervisor")] {
        let on_phone: Vec<String> = phone
            .issue(issue.clone())
            .unwrap()
            .allowed_actions
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        let desk = desk_issue(&base, user, &issue);
        let on_desk: Vec<String> = desk["allowed_actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        assert!(!on_desk.is_empty(), "{user}: {desk}");
        assert_eq!(on_phone, on_desk, "{user}");
    }
}
