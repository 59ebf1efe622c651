//! What reaches a phone at sync (sync-core `authz::delivered`): a chief's own work and the
//! problems they act on, not every document of their jurisdiction. Phones are sync-core's own
//! engine over sled talking to the real server over HTTP; the expected sets are computed from
//! the server's stored routing facts with the same rule, and the rows of the rule's table are
//! checked one by one.

use std::collections::BTreeSet;

use serde_json::json;
use server::demo::{self, DemoSize, ADMIN, CHIEF, CHIEF_2, SUPERVISOR};
use server::state::now_ms;
use sync_core::authz::{delivered, in_scope, DocMeta, CLOSED_KEPT_DAYS};
use sync_core::doc::{DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc};
use sync_core::hub::{DeviceDoc, DeviceLedger, DocumentStore};
use sync_core::model::{Level, Role, Severity, System, User};
use sync_core::track::walk_along;
use sync_core::workflow::Status;

use crate::harness::TestServer;
use crate::phone::Phone;

const DAY: i64 = 86_400_000;

/// Syncs until the server has nothing more; returns the documents and answer bytes received.
async fn sync_all(phone: &std::sync::Arc<Phone>) -> (usize, usize) {
    let (mut docs, mut bytes) = (0, 0);
    for _ in 0..50 {
        let report = phone.sync(now_ms()).await;
        bytes += report.bytes_down;
        if report.docs_received == 0 {
            return (docs, bytes);
        }
        docs += report.docs_received;
    }
    panic!("the phone kept receiving documents");
}

/// The stored routing facts of every document.
fn metas(s: &TestServer) -> Vec<DocMeta> {
    s.state.store.all_documents().unwrap()
}

/// The ids of the documents `user` receives, by the stored facts.
fn expected(s: &TestServer, user: &User) -> BTreeSet<String> {
    let now = now_ms();
    metas(s)
        .into_iter()
        .filter(|m| delivered(user, m, now))
        .map(|m| m.id)
        .collect()
}

/// `GET /docs?delivered=true`, every page.
async fn listed_as_delivered(s: &TestServer, token: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut after = String::new();
    loop {
        let path = if after.is_empty() {
            "/api/v1/docs?delivered=true&limit=500".to_owned()
        } else {
            format!("/api/v1/docs?delivered=true&limit=500&after={after}")
        };
        let page = s.get(&path, token).await.expect_ok().clone();
        for doc in page["docs"].as_array().unwrap() {
            ids.insert(doc["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return ids,
        }
    }
}

/// The first sync of a new phone for the district's existing river chief (the district demo:
/// eight weeks of patrols of every chief, problems in every state) brings their work, the
/// escalated problems and nothing of the district's history.
#[actix_web::test]
async fn a_new_phone_of_a_district_chief_brings_what_they_work_on_not_the_districts_history() {
    let s = TestServer::empty().await;
    demo::seed_sized(&s.state, DemoSize::District).expect("seed");
    let admin = s.token(ADMIN, "pc").await;
    let id = demo::user_id("tq-river-chief");
    let reply = s
        .post(
            &format!("/api/v1/admin/users/{id}/password"),
            &admin,
            json!({ "password": "district-chief-1" }),
        )
        .await;
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    let phone = Phone::login_with(&s, "tq-river-chief", "district-chief-1", "new-phone").await;
    assert!(matches!(
        phone.user.role,
        Role::Chief {
            level: Level::District,
            ..
        }
    ));

    let (docs, bytes) = sync_all(&phone).await;
    let held = phone.doc_ids();
    assert_eq!(docs, held.len(), "each document is delivered once");
    assert_eq!(held, expected(&s, &phone.user));

    // What the district chief may read, against what reached the phone, row by row.
    let now = now_ms();
    let all = metas(&s);
    let readable: Vec<&DocMeta> = all.iter().filter(|m| in_scope(&phone.user, m)).collect();
    let patrols: Vec<&&DocMeta> = readable
        .iter()
        .filter(|m| m.kind == DocKind::Patrol)
        .collect();
    assert!(patrols.len() > 100, "the district's history has patrols");
    assert!(
        patrols.iter().all(|m| !held.contains(&m.id)),
        "no patrol of a chief below"
    );
    let escalated: Vec<&&DocMeta> = readable.iter().filter(|m| m.escalated).collect();
    assert!(!escalated.is_empty(), "the demo has overdue problems");
    assert!(escalated.iter().all(|m| held.contains(&m.id)));
    let aged: Vec<&&DocMeta> = readable
        .iter()
        .filter(|m| {
            m.closed_at_ms
                .is_some_and(|at| at < now - CLOSED_KEPT_DAYS * DAY)
        })
        .collect();
    assert!(!aged.is_empty(), "the demo has problems closed long ago");
    assert!(aged.iter().all(|m| !held.contains(&m.id)));
    assert!(
        held.len() * 10 < readable.len(),
        "{} delivered of {} readable",
        held.len(),
        readable.len()
    );

    // The phone may still read any of them on demand.
    let token = phone_token(&s, "tq-river-chief", "district-chief-1").await;
    let one = &patrols[0].id;
    s.get(&format!("/api/v1/docs/{one}"), &token)
        .await
        .expect_ok();
    assert_eq!(listed_as_delivered(&s, &token).await, held);
    eprintln!(
        "district chief's new phone: {docs} documents, {bytes} bytes, of {} readable ({} patrols)",
        readable.len(),
        patrols.len()
    );
    s.stop().await;
}

async fn phone_token(s: &TestServer, username: &str, password: &str) -> String {
    s.login_reply(username, password, "pc").await.expect_ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The village chief records a patrol and reports a problem on `asset` from their phone.
async fn village_work(s: &TestServer, asset_id: &str) -> (String, String) {
    let village = Phone::login(s, CHIEF, "village-phone").await;
    let facts = demo::facts();
    let asset = facts.asset(asset_id).unwrap();
    let started = now_ms() - 3_600_000;
    let track = walk_along(&asset.geometry, started, 600, 7);
    let mut patrol = PatrolDoc::create(
        village.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: village.user.id.clone(),
            division: asset.division.clone(),
            device: village.device.clone(),
            started_at_ms: started,
        },
    )
    .unwrap();
    patrol.append_track(&track).unwrap();
    patrol.finish(track.last().unwrap().t_ms).unwrap();
    let patrol_id = patrol.id().to_string();
    village.save_record(&mut patrol, DocKind::Patrol, &patrol_id);
    let last = track.last().unwrap();
    let mut issue = IssueDoc::report(
        village.actor.clone(),
        &village.user,
        &village.device,
        last.t_ms,
        &NewIssue {
            system: asset.system,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: [last.lon, last.lat],
            description: "桥下漂浮垃圾".into(),
            patrol: None,
        },
    )
    .unwrap();
    let issue_id = issue.id().to_string();
    village.save(&mut issue);
    let report = village.sync(now_ms()).await;
    assert_eq!((report.docs_sent, report.refused), (2, 0), "{report:?}");
    (patrol_id, issue_id)
}

/// A chief promoted to lead the district's river from one of its stretches: the village
/// chief's patrol there stays on the server, the problem reported there reaches the phone, an
/// escalation brings another problem until it is assigned again, a closing keeps it for a
/// while; the office receives the problems and no patrols.
#[actix_web::test]
async fn a_district_chiefs_phone_follows_leadership_escalation_and_closing() {
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "pc").await;
    let office = s.token(SUPERVISOR, "pc").await;
    // The village chief's second stretch, where the demo has no documents yet.
    let led = "river-thh-02";
    let chief_2 = demo::user_id(CHIEF_2);
    let role = json!({
        "kind": "chief",
        "system": "river",
        "level": "district",
        "jurisdiction": { "division": "370105000000", "assets": [led] },
    });
    let reply = s
        .request(
            "PATCH",
            &format!("/api/v1/admin/users/{chief_2}"),
            Some(&admin),
            Some(json!({ "role": role })),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let district = Phone::login(&s, CHIEF_2, "district-phone").await;
    sync_all(&district).await;
    let held = district.doc_ids();
    assert_eq!(held, expected(&s, &district.user));
    let all = metas(&s);
    let own: Vec<&DocMeta> = all.iter().filter(|m| m.owner == chief_2).collect();
    assert!(!own.is_empty() && own.iter().all(|m| held.contains(&m.id)));
    let village_chief = demo::user_id(CHIEF);
    let village_docs: Vec<&DocMeta> = all.iter().filter(|m| m.owner == village_chief).collect();
    assert!(village_docs.iter().any(|m| m.kind == DocKind::Patrol));
    assert!(
        village_docs.iter().all(|m| !held.contains(&m.id)),
        "nothing of the village chief's own stretch"
    );

    // The village chief patrols the led stretch and reports a problem there: the problem
    // reaches the district chief, the patrol does not.
    let (patrol, issue) = village_work(&s, led).await;
    let report = district.sync(now_ms()).await;
    assert_eq!(report.docs_received, 1, "{report:?}");
    let held = district.doc_ids();
    assert!(
        held.contains(&issue),
        "an open problem on the stretch they lead"
    );
    assert!(!held.contains(&patrol), "a village chief's patrol");
    s.get(
        &format!("/api/v1/docs/{patrol}"),
        &phone_token(&s, CHIEF_2, "demo").await,
    )
    .await
    .expect_ok();

    // The office escalates an open problem of the village chief's other stretch: it reaches
    // the district chief.
    let elsewhere = village_docs
        .iter()
        .find(|m| {
            m.kind == DocKind::Issue
                && m.status.is_some_and(|st| st.is_open())
                && m.status != Some(Status::Submitted)
                && !m.escalated
        })
        .expect("an open problem off the led stretch");
    let events = format!("/api/v1/issues/{}/events", elsewhere.id);
    s.post(
        &events,
        &office,
        json!({"kind": "escalated", "note": "逾期督办"}),
    )
    .await
    .expect_ok();
    let report = district.sync(now_ms()).await;
    assert_eq!(report.docs_received, 1, "{report:?}");
    assert!(district.doc_ids().contains(&elsewhere.id));

    // Assigned (again) with a new deadline, the escalation is answered: it leaves the phone.
    let assign = json!({
        "kind": "assigned",
        "assignee": { "department": "区水务局" },
        "deadline_ms": now_ms() + 7 * DAY,
    });
    s.post(&events, &office, assign).await.expect_ok();
    let report = district.sync(now_ms()).await;
    assert_eq!(report.removed, 1, "{report:?}");
    assert!(!district.doc_ids().contains(&elsewhere.id));

    // The problem on the led stretch closes: it stays on the phone for a while.
    s.post(
        &format!("/api/v1/issues/{issue}/events"),
        &office,
        json!({"kind": "invalidated", "reason": "经核实不属实"}),
    )
    .await
    .expect_ok();
    let report = district.sync(now_ms()).await;
    assert_eq!((report.docs_received, report.removed), (1, 0), "{report:?}");
    assert!(district.doc_ids().contains(&issue));
    assert_eq!(district.doc_ids(), expected(&s, &district.user));

    // The office's new phone: the river problems of its district waiting for the office
    // (reported, accepted, submitted, escalated), none with a department, no patrol.
    let office_phone = Phone::login(&s, SUPERVISOR, "office-phone").await;
    sync_all(&office_phone).await;
    let office_held = office_phone.doc_ids();
    assert_eq!(office_held, expected(&s, &office_phone.user));
    let all = metas(&s);
    let waiting = |m: &&DocMeta| {
        m.kind == DocKind::Issue
            && m.system == System::River
            && (m.escalated
                || matches!(
                    m.status,
                    Some(Status::Reported | Status::Accepted | Status::Submitted)
                ))
    };
    let river_waiting = all.iter().filter(waiting).count();
    assert!(river_waiting > 0 && office_held.len() == river_waiting);
    assert!(all
        .iter()
        .filter(|m| m.kind == DocKind::Issue && m.status == Some(Status::Assigned) && !m.escalated)
        .all(|m| !office_held.contains(&m.id)));
    assert!(all
        .iter()
        .filter(|m| m.kind == DocKind::Patrol)
        .all(|m| !office_held.contains(&m.id)));
    s.stop().await;
}

/// A phone that synced under the earlier rule holds documents it no longer receives (all of its
/// jurisdiction); its next sync re-routes it once and removes them, and the one after is
/// incremental again.
#[actix_web::test]
async fn a_phone_routed_by_the_earlier_rule_sheds_what_it_no_longer_receives() {
    let s = TestServer::demo().await;
    let office = Phone::login(&s, SUPERVISOR, "office-phone").await;
    sync_all(&office).await;
    let store = &s.state.store;
    let device = format!("{}/{}", office.user.id, office.device);
    let patrol = metas(&s)
        .into_iter()
        .find(|m| m.kind == DocKind::Patrol && in_scope(&office.user, m))
        .expect("a patrol the office may read");
    assert!(store.device_doc(&device, &patrol.id).unwrap().is_none());
    // What the server recorded of a phone routed before: it held the patrol, under the
    // fingerprint of the earlier rule.
    store
        .put_device_docs(&device, &[(patrol.id.clone(), Some(DeviceDoc::default()))])
        .unwrap();
    let earlier = json!({ "role": office.user.role, "active": true }).to_string();
    store.put_device_scope(&device, &earlier).unwrap();

    let report = office.sync(now_ms()).await;
    assert_eq!((report.removed, report.docs_received), (1, 0), "{report:?}");
    assert!(store.device_doc(&device, &patrol.id).unwrap().is_none());
    assert_ne!(store.device_scope(&device).unwrap(), Some(earlier));
    let report = office.sync(now_ms()).await;
    assert_eq!((report.removed, report.docs_received), (0, 0), "{report:?}");
    assert_eq!(office.doc_ids(), expected(&s, &office.user));
    s.stop().await;
}
