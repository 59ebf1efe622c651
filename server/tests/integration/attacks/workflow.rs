//! Attacks on the workflow's state: events built on old heads, reused event ids, backdated
//! rectifications. What must hold: no change takes effect away from an event the server has
//! already accepted; an event built on old heads is judged after everything the server holds.

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use serde_json::{json, Value};
use server::demo::{CHIEF, HANDLER, SUPERVISOR};
use server::state::now_ms;
use sync_core::doc::{IssueDoc, NewIssue, Record};
use sync_core::model::Severity;
use sync_core::workflow::{Action, Assignee, Status};

use crate::harness::TestServer;
use crate::phone::Phone;
use std::sync::Arc;

const DAY: i64 = 86_400_000;

/// A point on the demo asset `id`, where its chief would stand to report.
fn spot(id: &str) -> [f64; 2] {
    match &server::demo::facts().asset(id).unwrap().geometry {
        sync_core::model::Geometry::LineString(line) => line[line.len() / 2],
        sync_core::model::Geometry::Polygon(rings) => rings[0][0],
    }
}

/// A new issue reported by `phone`'s chief on their first river segment, synced to the server.
pub(super) async fn reported(phone: &Arc<Phone>, description: &str) -> String {
    let sync_core::model::Role::Chief {
        jurisdiction,
        system,
        ..
    } = &phone.user.role
    else {
        panic!("not a chief");
    };
    let new = NewIssue {
        system: *system,
        category: "river.garbage".into(),
        severity: Severity::General,
        asset: jurisdiction.assets[0].clone(),
        division: jurisdiction.division.clone(),
        location: spot(&jurisdiction.assets[0]),
        description: description.into(),
        patrol: None,
    };
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        now_ms(),
        &new,
    )
    .unwrap();
    phone.save(&mut issue);
    let report = phone.sync(now_ms()).await;
    assert_eq!(report.refused, 0, "{report:?}");
    issue.id().to_string()
}

async fn act(s: &TestServer, token: &str, id: &str, body: Value) -> Value {
    let reply = s
        .post(&format!("/api/v1/issues/{id}/events"), token, body.clone())
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{body} → {}", reply.body);
    reply.body
}

async fn detail(s: &TestServer, token: &str, id: &str) -> Value {
    s.get(&format!("/api/v1/issues/{id}"), token)
        .await
        .expect_ok()
        .clone()
}

/// The office accepts the issue and hands it to 区水务局 with a week's deadline, from the desk.
async fn accept_and_assign_to_the_bureau(s: &TestServer, sup: &str, id: &str) {
    act(s, sup, id, json!({"kind": "accepted"})).await;
    act(
        s,
        sup,
        id,
        json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": now_ms() + 7 * DAY}),
    )
    .await;
}

#[actix_web::test]
async fn a_comment_reusing_a_verifications_id_cannot_reopen_a_closed_issue() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let handler = s.token(HANDLER, "handler-pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "河面漂浮垃圾，待清理").await;
    accept_and_assign_to_the_bureau(&s, &sup, &id).await;
    act(
        &s,
        &handler,
        &id,
        json!({"kind": "rectification_submitted", "note": "已清理", "photos": ["ab".repeat(32)]}),
    )
    .await;
    // The chief's phone holds the issue as submitted, just before the supervisor verifies.
    chief.sync(now_ms()).await;
    let closed = act(&s, &sup, &id, json!({"kind": "verified", "note": "销号"})).await;
    assert_eq!(closed["status"], "closed");
    let verified_id = closed["event_id"].as_str().unwrap().to_string();

    // The reporting chief builds on the state before the verification: first pushes its op
    // counter far ahead with edits that cancel out (so its insert sorts before the verification
    // in automerge's list order), then appends a comment carrying the verification's id.
    let mut forged = chief.issue(&id).unwrap();
    let doc = forged.am_mut();
    let description = doc.get(ROOT, "description").unwrap().unwrap().1;
    let padding = "垃".repeat(2_000);
    doc.splice_text(&description, 0, 0, &padding).unwrap();
    doc.splice_text(&description, 0, 2_000, "").unwrap();
    doc.commit();
    let events = doc.get(ROOT, "events").unwrap().unwrap().1;
    let at = doc.length(&events);
    let comment = doc
        .insert_object(&events, at, automerge::ObjType::Map)
        .unwrap();
    for (key, value) in [
        ("id", verified_id.as_str()),
        ("by", chief.user.id.as_str()),
        ("device", chief.device.as_str()),
        ("kind", "comment"),
        ("text", "补充说明"),
    ] {
        doc.put(&comment, key, value).unwrap();
    }
    doc.put(&comment, "at_ms", now_ms()).unwrap();
    doc.commit();
    chief.save(&mut forged);
    chief.sync(now_ms()).await;

    let after = detail(&s, &sup, &id).await;
    assert_eq!(after["status"], "closed", "{after}");
    let verification = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "verified")
        .unwrap_or_else(|| panic!("no verification in {after}"));
    assert!(verification["superseded"].is_null(), "{after}");
    // The phone agrees with the server.
    chief.sync(now_ms()).await;
    let on_phone = chief.issue(&id).unwrap().state().unwrap();
    assert_eq!(on_phone.status, Some(Status::Closed));
    s.stop().await;
}

#[actix_web::test]
async fn a_former_assignees_rectification_built_on_old_heads_does_not_count() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "岸边垃圾需村里清理").await;
    act(&s, &sup, &id, json!({"kind": "accepted"})).await;
    act(
        &s,
        &sup,
        &id,
        json!({"kind": "assigned", "assignee": {"user": chief.user.id}, "deadline_ms": now_ms() + 7 * DAY}),
    )
    .await;
    chief.sync(now_ms()).await;
    // The office hands the issue to the water bureau; the chief's phone has not heard of it.
    act(
        &s,
        &sup,
        &id,
        json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": now_ms() + 7 * DAY}),
    )
    .await;
    let mut old = chief.issue(&id).unwrap();
    old.act(
        &chief.user,
        &chief.device,
        now_ms(),
        Action::RectificationSubmitted {
            note: "已清理".into(),
            photos: vec!["cd".repeat(32)],
        },
    )
    .unwrap();
    chief.save(&mut old);
    chief.sync(now_ms()).await;

    let after = detail(&s, &sup, &id).await;
    assert_eq!(after["status"], "assigned", "{after}");
    assert_eq!(after["assignee"]["name"], "区水务局", "{after}");
    let timeline = after["timeline"].as_array().unwrap();
    let last = timeline.last().unwrap();
    assert_eq!(last["kind"], "rectification_submitted", "{after}");
    assert!(last["superseded"].is_string(), "{after}");
    chief.sync(now_ms()).await;
    let on_phone = chief.issue(&id).unwrap().state().unwrap();
    assert_eq!(on_phone.status, Some(Status::Assigned));
    assert_eq!(
        on_phone.assignee,
        Some(Assignee::Department("区水务局".into()))
    );
    s.stop().await;
}

#[actix_web::test]
async fn a_backdated_rectification_counts_no_earlier_than_what_its_sender_had_seen() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "排污口异味，需整改").await;
    act(&s, &sup, &id, json!({"kind": "accepted"})).await;
    let assigned_at = now_ms();
    act(
        &s,
        &sup,
        &id,
        json!({"kind": "assigned", "assignee": {"user": chief.user.id}, "deadline_ms": assigned_at + DAY}),
    )
    .await;
    chief.sync(now_ms()).await;
    // The chief stamps the rectification thirty days before the assignment reached them.
    let mut issue = chief.issue(&id).unwrap();
    let backdated = assigned_at - 30 * DAY;
    issue
        .act(
            &chief.user,
            &chief.device,
            backdated,
            Action::RectificationSubmitted {
                note: "早已清理".into(),
                photos: vec!["ef".repeat(32)],
            },
        )
        .unwrap();
    chief.save(&mut issue);
    chief.sync(now_ms()).await;

    let after = detail(&s, &sup, &id).await;
    assert_eq!(after["status"], "submitted", "{after}");
    let last = after["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["at_ms"], backdated, "the device time is kept: {last}");
    let counted = last["counted_at_ms"].as_i64().unwrap();
    assert!(counted >= assigned_at, "{last}");
    assert!(
        counted <= last["received_at_ms"].as_i64().unwrap(),
        "{last}"
    );

    s.stop().await;
}

#[actix_web::test]
async fn a_device_cannot_write_the_servers_receipts() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "护栏损坏").await;
    act(&s, &sup, &id, json!({"kind": "accepted"})).await;
    chief.sync(now_ms()).await;
    let mut forged = chief.issue(&id).unwrap();
    let doc = forged.am_mut();
    let order = doc.get(ROOT, "order").unwrap().expect("receipts").1;
    doc.delete(&order, 1).unwrap();
    doc.commit();
    chief.save(&mut forged);
    let report = chief.sync(now_ms()).await;
    assert_eq!(report.refused, 1, "{report:?}");
    let after = detail(&s, &sup, &id).await;
    assert_eq!(after["status"], "accepted", "{after}");
    s.stop().await;
}

/// Pushes one document's changes as a phone would, and returns the server's verdicts.
async fn push(s: &TestServer, token: &str, doc: &mut automerge::AutoCommit) -> Value {
    use sync_core::protocol::{DocPush, SyncRequest, SyncResponse};
    let id = sync_core::doc::header(doc).unwrap().id;
    let request = SyncRequest {
        cursor: 0,
        docs: vec![DocPush {
            doc_id: id,
            server_heads: Vec::new(),
            changes: doc
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
        }],
        dropped: Vec::new(),
    };
    let client = awc::Client::default();
    let mut res = client
        .post(format!("{}/api/v1/sync", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .content_type("application/octet-stream")
        .send_body(request.encode())
        .await
        .unwrap();
    let body = res.body().limit(1 << 24).await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let response = SyncResponse::decode(&body).unwrap();
    let refused: Vec<String> = response.docs[0]
        .refused
        .iter()
        .map(|r| r.code.clone())
        .collect();
    json!(refused)
}

fn new_issue_of(phone: &Phone) -> NewIssue {
    let sync_core::model::Role::Chief {
        jurisdiction,
        system,
        ..
    } = &phone.user.role
    else {
        panic!("not a chief");
    };
    NewIssue {
        system: *system,
        category: "river.garbage".into(),
        severity: Severity::General,
        asset: jurisdiction.assets[0].clone(),
        division: jurisdiction.division.clone(),
        location: spot(&jurisdiction.assets[0]),
        description: "放置测试".into(),
        patrol: None,
    }
}

#[actix_web::test]
async fn a_new_record_must_be_placed_where_its_asset_is() {
    use sync_core::doc::{NewPatrol, PatrolDoc};
    use sync_core::model::DivisionCode;
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let grant = s.login(CHIEF, "chief-phone").await;
    let token = grant["access_token"].as_str().unwrap().to_string();
    let elsewhere = DivisionCode::new("370112001001").unwrap();

    let honest = new_issue_of(&chief);
    let cases = [
        NewIssue {
            division: elsewhere.clone(),
            ..honest.clone()
        },
        NewIssue {
            location: [117.5, 36.2],
            ..honest.clone()
        },
        NewIssue {
            category: "forest.fire_hazard".into(),
            ..honest.clone()
        },
        NewIssue {
            category: "river.made-up".into(),
            ..honest.clone()
        },
    ];
    let before = s.get("/api/v1/issues", &sup).await.expect_ok()["total"].clone();
    for case in cases {
        let mut issue = IssueDoc::report(
            chief.actor.clone(),
            &chief.user,
            &chief.device,
            now_ms(),
            &case,
        )
        .unwrap();
        let refused = push(&s, &token, issue.am_mut()).await;
        assert_eq!(refused, json!(["misplaced"]), "{case:?}");
        s.get(&format!("/api/v1/issues/{}", issue.id()), &sup)
            .await
            .expect_error(404, "not_found");
    }
    let after = s.get("/api/v1/issues", &sup).await.expect_ok()["total"].clone();
    assert_eq!(before, after);

    // A patrol that names another district's division.
    let sync_core::model::Role::Chief {
        jurisdiction,
        system,
        ..
    } = &chief.user.role
    else {
        unreachable!()
    };
    let mut patrol = PatrolDoc::create(
        chief.actor.clone(),
        &NewPatrol {
            system: *system,
            asset: jurisdiction.assets[0].clone(),
            chief: chief.user.id.clone(),
            division: elsewhere,
            device: chief.device.clone(),
            started_at_ms: now_ms(),
        },
    )
    .unwrap();
    assert_eq!(
        push(&s, &token, patrol.am_mut()).await,
        json!(["misplaced"])
    );

    // The honest report goes through.
    let mut issue = IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        now_ms(),
        &honest,
    )
    .unwrap();
    assert_eq!(push(&s, &token, issue.am_mut()).await, json!([]));
    s.stop().await;
}

#[actix_web::test]
async fn assignments_must_name_real_targets_within_the_offices_authority() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "指派目标测试").await;
    act(&s, &sup, &id, json!({"kind": "accepted"})).await;
    let deadline = now_ms() + 7 * DAY;
    let forest_chief = server::demo::user_id(server::demo::FOREST_CHIEF);
    for body in [
        json!({"kind": "assigned", "assignee": {"user": forest_chief}, "deadline_ms": deadline}),
        json!({"kind": "assigned", "assignee": {"user": "u-nobody"}, "deadline_ms": deadline}),
        json!({"kind": "assigned", "assignee": {"department": "区水务局 "}, "deadline_ms": deadline}),
        json!({"kind": "duplicate_of", "issue": "0190f2a4-0000-7000-8000-000000000001"}),
    ] {
        s.post(&format!("/api/v1/issues/{id}/events"), &sup, body.clone())
            .await
            .expect_error(422, "invalid_payload");
    }
    assert_eq!(detail(&s, &sup, &id).await["status"], "accepted");

    // The same rule for a supervisor's phone: the event stays in the timeline, superseded.
    let office = Phone::login(&s, SUPERVISOR, "sup-phone").await;
    office.sync(now_ms()).await;
    let mut on_phone = office.issue(&id).unwrap();
    on_phone
        .act(
            &office.user,
            &office.device,
            now_ms(),
            Action::Assigned {
                assignee: Assignee::Department("区水务局 ".into()),
                deadline_ms: deadline,
            },
        )
        .unwrap();
    office.save(&mut on_phone);
    office.sync(now_ms()).await;
    let after = detail(&s, &sup, &id).await;
    assert_eq!(after["status"], "accepted", "{after}");
    let last = after["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "assigned");
    assert!(
        last["superseded"].as_str().unwrap().contains("区水务局"),
        "{last}"
    );
    // A real department works from both.
    act(
        &s,
        &sup,
        &id,
        json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": deadline}),
    )
    .await;
    s.stop().await;
}

#[actix_web::test]
async fn a_phone_cannot_sign_its_events_as_the_web_desk_or_the_deadline_job() {
    let s = TestServer::demo().await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "设备名称测试").await;
    for device in ["web", "deadline-job"] {
        let mut issue = chief.issue(&id).unwrap();
        issue
            .act(
                &chief.user,
                device,
                now_ms(),
                Action::Comment {
                    text: "冒充".into(),
                },
            )
            .unwrap();
        chief.save(&mut issue);
        let report = chief.sync(now_ms()).await;
        assert_eq!(report.refused, 1, "{device}: {report:?}");
    }
    s.stop().await;
}

#[actix_web::test]
async fn a_web_comment_meets_the_limits_a_phones_comment_meets() {
    use sync_core::hub::limits::MAX_STRING_BYTES;
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "超长评论测试").await;
    let before = detail(&s, &sup, &id).await;
    // Under the JSON body limit, over the string limit every phone change meets.
    let long = "河".repeat(MAX_STRING_BYTES / 3 + 1);
    let reply = s
        .post(
            &format!("/api/v1/issues/{id}/events"),
            &sup,
            json!({"kind": "comment", "text": long}),
        )
        .await;
    reply.expect_error(422, "string_too_long");
    let after = detail(&s, &sup, &id).await;
    assert_eq!(before["timeline"], after["timeline"]);
    s.stop().await;
}

/// When a problem was accepted and assigned to `chief`, and by which change.
pub(super) struct Assigned {
    pub accepted_at: i64,
    /// The office's assignment, without the server's receipt of it.
    pub assignment: automerge::ChangeHash,
    /// When the server received the assignment.
    pub received_at: i64,
}

/// `chief` reports a problem; the office accepts it from the desk and, 200 ms later, assigns
/// it to `chief` from `office`'s phone, so the event and the server's receipt of it are two
/// changes.
pub(super) async fn assigned_from_a_phone(
    s: &TestServer,
    sup: &str,
    office: &Arc<Phone>,
    chief: &Arc<Phone>,
    description: &str,
) -> (String, Assigned) {
    let id = reported(chief, description).await;
    act(s, sup, &id, json!({"kind": "accepted"})).await;
    let accepted_at = now_ms();
    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    office.sync(now_ms()).await;
    let mut on_office = office.issue(&id).unwrap();
    on_office
        .act(
            &office.user,
            &office.device,
            now_ms(),
            Action::Assigned {
                assignee: Assignee::User(chief.user.id.clone()),
                deadline_ms: now_ms() + DAY,
            },
        )
        .unwrap();
    let assignment = on_office.am_mut().get_last_local_change().unwrap().hash();
    office.save(&mut on_office);
    office.sync(now_ms()).await;
    let assigned = detail(s, sup, &id).await;
    let received_at = assigned["timeline"].as_array().unwrap().last().unwrap()["received_at_ms"]
        .as_i64()
        .unwrap();
    let assigned = Assigned {
        accepted_at,
        assignment,
        received_at,
    };
    (id, assigned)
}

/// `chief` builds a rectification on `held` as of the assignment alone (leaving the server's
/// receipt out of its dependencies), stamps it just after the acceptance and sends it; returns
/// the issue's timeline entry for it, after checking that it was accepted as sent.
pub(super) async fn rectification_stamped_before_the_assignment(
    s: &TestServer,
    sup: &str,
    chief: &Arc<Phone>,
    id: &str,
    mut held: IssueDoc,
    assigned: &Assigned,
) -> Value {
    let fork = held.am_mut().fork_at(&[assigned.assignment]).unwrap();
    let mut forked = IssueDoc::from_automerge(fork)
        .unwrap()
        .with_actor(chief.actor.clone());
    let backdated = assigned.accepted_at + 50;
    forked
        .act(
            &chief.user,
            &chief.device,
            backdated,
            Action::RectificationSubmitted {
                note: "早已清理".into(),
                photos: vec!["ab".repeat(32)],
            },
        )
        .unwrap();
    chief.save(&mut forked);
    let report = chief.sync(now_ms()).await;
    assert_eq!(report.refused, 0, "{report:?}");
    let after = detail(s, sup, id).await;
    let last = after["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "rectification_submitted", "{after}");
    assert_eq!(last["at_ms"], backdated, "the device time is kept: {last}");
    last
}

#[actix_web::test]
async fn leaving_the_servers_receipts_out_of_a_changes_dependencies_does_not_lower_its_time() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let office = Phone::login(&s, SUPERVISOR, "sup-phone").await;
    let (id, assigned) = assigned_from_a_phone(&s, &sup, &office, &chief, "依赖省略测试").await;
    chief.sync(now_ms()).await;

    // The chief builds on the assignment alone, leaving its receipt out, and stamps the
    // rectification between the acceptance and the assignment.
    let held = chief.issue(&id).unwrap();
    let last =
        rectification_stamped_before_the_assignment(&s, &sup, &chief, &id, held, &assigned).await;
    assert!(
        last["counted_at_ms"].as_i64().unwrap() >= assigned.received_at,
        "counted before the assignment it answers reached the chief: {last}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn an_offline_verification_does_not_close_a_rectification_its_author_never_saw() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let handler = s.token(HANDLER, "handler-pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = reported(&chief, "过期核查测试").await;
    accept_and_assign_to_the_bureau(&s, &sup, &id).await;
    act(
        &s,
        &handler,
        &id,
        json!({"kind": "rectification_submitted", "note": "第一次", "photos": ["ab".repeat(32)]}),
    )
    .await;
    // A supervisor's phone holds the first rectification and goes offline.
    let office = Phone::login(&s, SUPERVISOR, "sup-phone").await;
    office.sync(now_ms()).await;
    // Meanwhile the office rejects it from the desk and the bureau submits again.
    act(
        &s,
        &sup,
        &id,
        json!({"kind": "rejected", "reason": "仍有垃圾"}),
    )
    .await;
    act(
        &s,
        &handler,
        &id,
        json!({"kind": "rectification_submitted", "note": "第二次", "photos": ["cd".repeat(32)]}),
    )
    .await;
    // The offline phone verifies what it saw: the first rectification.
    let mut on_phone = office.issue(&id).unwrap();
    on_phone
        .act(
            &office.user,
            &office.device,
            now_ms(),
            Action::Verified {
                note: "合格".into(),
            },
        )
        .unwrap();
    office.save(&mut on_phone);
    office.sync(now_ms()).await;

    let after = detail(&s, &sup, &id).await;
    assert_eq!(
        after["status"], "submitted",
        "nobody judged the second one: {after}"
    );
    let last = after["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "verified");
    assert!(
        last["superseded"]
            .as_str()
            .unwrap()
            .contains("judges rectification"),
        "{last}"
    );
    // Verified from the desk, on the rectification it shows, it closes.
    act(&s, &sup, &id, json!({"kind": "verified", "note": "合格"})).await;
    assert_eq!(detail(&s, &sup, &id).await["status"], "closed");
    s.stop().await;
}
