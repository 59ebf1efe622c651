//! The workflow API against a real server over the demo: filters and paging, the timeline with
//! receive times and superseded events, 409 with the allowed next steps, 403, web actions
//! reaching a phone's next sync, and the deadline job escalating once per issue across restarts.

use serde_json::{json, Value};
use server::demo::{self, CHIEF, CHIEF_2, HANDLER, SUPERVISOR};
use server::jobs::run_deadlines;
use server::state::now_ms;
use sync_core::doc::{IssueDoc, NewIssue};
use sync_core::model::{DivisionCode, Geometry, Role, Severity, System};
use sync_core::workflow::{Action, Status};

use crate::harness::TestServer;
use crate::phone::Phone;

const DAY: i64 = 86_400_000;

/// The demo issue whose description starts with `text`, from the supervisor's list.
async fn demo_issue(s: &TestServer, token: &str, text: &str) -> Value {
    let page = s.get("/api/v1/issues?limit=500", token).await;
    page.expect_ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["description"].as_str().unwrap().starts_with(text))
        .unwrap_or_else(|| panic!("no demo issue {text}"))
        .clone()
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn the_list_filters_pages_and_derives_state() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let all = s.get("/api/v1/issues", &sup).await.expect_ok().clone();
    assert_eq!(all["total"], 10, "{all}");
    let by_status = all["by_status"].as_object().unwrap();
    for status in Status::ALL {
        assert!(by_status.contains_key(status.as_str()), "{status}");
    }
    assert_eq!(by_status["assigned"], 3);

    let assigned = s
        .get("/api/v1/issues?status=assigned,submitted", &sup)
        .await;
    let rows = assigned.expect_ok()["items"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert!(["assigned", "submitted"].contains(&row["status"].as_str().unwrap()));
        assert_eq!(row["assignee"]["name"], "区水务局");
        assert!(row["deadline_ms"].is_i64());
    }

    let overdue = s.get("/api/v1/issues?overdue=true", &sup).await;
    let overdue = overdue.expect_ok().clone();
    assert_eq!(overdue["total"], 1, "{overdue}");
    let late = &overdue["items"][0];
    assert_eq!(late["severity"], "critical");
    assert_eq!(late["status_zh"], "整改中");
    assert!(late["overdue_days"].as_i64().unwrap() >= 9, "{late}");
    assert_eq!(late["escalations"], 1);

    let critical = s.get("/api/v1/issues?severity=critical", &sup).await;
    assert_eq!(ids(critical.expect_ok()), ids(&overdue));
    let garbage = s
        .get(
            "/api/v1/issues?category=river.garbage&status=reported",
            &sup,
        )
        .await;
    assert_eq!(garbage.expect_ok()["total"], 1);
    let by_department = s
        .get(
            &format!("/api/v1/issues?assignee={}", encode("区水务局")),
            &sup,
        )
        .await;
    // Assigned, overdue, submitted, reworked and closed; the reopened one lost its assignee.
    assert_eq!(by_department.expect_ok()["total"], 5);

    // Newest first, paged; the pages add up to the whole list.
    let first = s
        .get("/api/v1/issues?limit=4", &sup)
        .await
        .expect_ok()
        .clone();
    let second = s
        .get("/api/v1/issues?limit=4&offset=4", &sup)
        .await
        .expect_ok()
        .clone();
    let mut paged = ids(&first);
    paged.extend(ids(&second));
    assert_eq!(paged, ids(&all)[..8].to_vec());
    let times: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reported_at_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    // Reported between: the three newest reports.
    let from = times[2];
    let recent = s
        .get(&format!("/api/v1/issues?reported_from={from}"), &sup)
        .await;
    assert_eq!(recent.expect_ok()["total"], 3);
    let division = s
        .get("/api/v1/issues?division=370105000000&system=river", &sup)
        .await;
    assert_eq!(division.expect_ok()["total"], 10);
    let forest = s.get("/api/v1/issues?system=forest", &sup).await;
    assert_eq!(forest.expect_ok()["total"], 0);

    // A chief sees the issues of their own jurisdiction only.
    let chief = s.token(CHIEF, "phone").await;
    let mine = s
        .get("/api/v1/issues?limit=500", &chief)
        .await
        .expect_ok()
        .clone();
    let mine_ids = ids(&mine);
    assert!(!mine_ids.is_empty() && mine_ids.len() < 10, "{mine}");
    assert!(mine_ids.iter().all(|id| ids(&all).contains(id)));

    s.get("/api/v1/issues?status=done", &sup)
        .await
        .expect_error(400, "bad_request");
    s.get("/api/v1/issues?division=37", &sup)
        .await
        .expect_error(400, "bad_request");
    s.stop().await;
}

#[actix_web::test]
async fn a_nearby_report_of_the_same_category_is_a_possible_duplicate() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let original = demo_issue(&s, &sup, "河面漂浮生活垃圾").await;
    let phone = Phone::login(&s, CHIEF, "chief-phone").await;
    let [lon, lat] = [
        original["location"][0].as_f64().unwrap(),
        original["location"][1].as_f64().unwrap(),
    ];
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        now_ms(),
        &NewIssue {
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: original["asset"].as_str().unwrap().into(),
            division: DivisionCode::new(original["division"].as_str().unwrap()).unwrap(),
            // About 20 m from the first report.
            location: [lon + 0.0002, lat],
            description: "又见漂浮垃圾".into(),
            patrol: None,
        },
    )
    .unwrap();
    phone.save(&mut issue);
    phone.sync(now_ms()).await;

    let row = demo_issue(&s, &sup, "又见漂浮垃圾").await;
    assert_eq!(row["possible_duplicate_of"], original["id"], "{row}");
    let dups = s.get("/api/v1/issues?possible_duplicate=true", &sup).await;
    assert_eq!(ids(dups.expect_ok()), vec![row["id"].as_str().unwrap()]);
    // The supervisor closes it as a duplicate; it is no longer suggested.
    let path = format!("/api/v1/issues/{}/events", row["id"].as_str().unwrap());
    let closed = s
        .post(
            &path,
            &sup,
            json!({"kind": "duplicate_of", "issue": original["id"]}),
        )
        .await;
    assert_eq!(closed.expect_ok()["status"], "duplicate");
    let dups = s.get("/api/v1/issues?possible_duplicate=true", &sup).await;
    assert_eq!(dups.expect_ok()["total"], 0);
    s.stop().await;
}

#[actix_web::test]
async fn every_web_transition_and_its_refusals() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let handler = s.token(HANDLER, "handler-pc").await;
    let chief = s.token(CHIEF, "chief-phone").await;
    let reported = demo_issue(&s, &sup, "河面漂浮生活垃圾").await;
    let events = format!("/api/v1/issues/{}/events", reported["id"].as_str().unwrap());

    // Verifying a report that was never rectified: 409 with what may come next.
    let early = s
        .post(&events, &sup, json!({"kind": "verified", "note": ""}))
        .await;
    early.expect_error(409, "invalid_transition");
    assert_eq!(early.body["status"], "reported");
    assert_eq!(
        early.body["allowed"],
        json!([
            "accepted",
            "assigned",
            "invalidated",
            "duplicate_of",
            "escalated",
            "comment"
        ])
    );
    // A chief may not accept: 403, naming the relations needed.
    let forbidden = s.post(&events, &chief, json!({"kind": "accepted"})).await;
    forbidden.expect_error(403, "forbidden");
    assert_eq!(forbidden.body["needs"], json!(["supervisor"]));
    // A handler does not even see an unassigned issue.
    s.post(
        &events,
        &handler,
        json!({"kind": "comment", "text": "看看"}),
    )
    .await
    .expect_error(404, "not_found");
    s.post(&events, &sup, json!({"kind": "closed"}))
        .await
        .expect_error(400, "bad_request");

    // The whole loop from the web, checking each step's status and the caller's next actions.
    let deadline = now_ms() + 7 * DAY;
    let steps = [
        (&sup, json!({"kind": "accepted"}), "accepted"),
        (
            &chief,
            json!({"kind": "comment", "text": "现场照片已补充"}),
            "accepted",
        ),
        (
            &sup,
            json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": deadline}),
            "assigned",
        ),
        (
            &sup,
            json!({"kind": "escalated", "note": "请加快"}),
            "assigned",
        ),
        (
            &handler,
            json!({"kind": "rectification_submitted", "note": "已清理", "photos": ["ab".repeat(32)]}),
            "submitted",
        ),
        (
            &sup,
            json!({"kind": "rejected", "reason": "仍有垃圾"}),
            "assigned",
        ),
        (
            &handler,
            json!({"kind": "rectification_submitted", "note": "再次清理", "photos": ["cd".repeat(32)]}),
            "submitted",
        ),
        (&sup, json!({"kind": "verified", "note": "销号"}), "closed"),
        (
            &sup,
            json!({"kind": "reopened", "reason": "群众投诉"}),
            "accepted",
        ),
        (
            &sup,
            json!({"kind": "invalidated", "reason": "核实为误报"}),
            "invalid",
        ),
    ];
    for (token, body, status) in steps {
        let reply = s.post(&events, token, body.clone()).await;
        assert_eq!(reply.status.as_u16(), 201, "{body} → {}", reply.body);
        assert_eq!(reply.body["status"], status, "{body}");
    }
    // A rejection needs a reason: 422, and nothing was appended.
    let reopened = s
        .post(&events, &sup, json!({"kind": "reopened", "reason": " "}))
        .await;
    reopened.expect_error(422, "invalid_payload");
    // The handler lost the issue with the reopening, so it is out of their scope again.
    s.get(
        &format!("/api/v1/issues/{}", reported["id"].as_str().unwrap()),
        &handler,
    )
    .await
    .expect_error(404, "not_found");

    let detail = s
        .get(
            &format!("/api/v1/issues/{}", reported["id"].as_str().unwrap()),
            &sup,
        )
        .await
        .expect_ok()
        .clone();
    assert_eq!(detail["status"], "invalid");
    assert_eq!(detail["rejections"], 1);
    let timeline = detail["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 11);
    for row in &timeline[1..] {
        assert_eq!(row["device"], "web");
        assert!(row["received_at_ms"].is_i64(), "{row}");
        assert!(row["superseded"].is_null());
    }
    // The seeded report has no receipt: it was never sent by a device.
    assert!(timeline[0]["received_at_ms"].is_null());
    assert_eq!(timeline[2]["by"], demo::user_id(CHIEF));
    assert_eq!(timeline[3]["payload"]["assignee"]["department"], "区水务局");
    assert_eq!(detail["allowed_actions"], json!(["reopened", "comment"]));
    assert_eq!(detail["photos"].as_array().unwrap().len(), 2);
    // Neither after photo was uploaded.
    assert_eq!(detail["photo_completeness"]["referenced"], 2);
    assert_eq!(detail["photo_completeness"]["complete"], false);
    assert_eq!(detail["photos"][0]["stored"], false);
    assert_eq!(detail["photos"][0]["role"], "after");
    assert_eq!(
        detail["photos"][0]["warnings"][0],
        "the photo does not record its capture time and position"
    );

    // The audit trail names the user, the web device and the server's actor.
    let history = s
        .get(
            &format!("/api/v1/docs/{}/history", reported["id"].as_str().unwrap()),
            &sup,
        )
        .await;
    let history = history.expect_ok().as_array().unwrap().clone();
    assert_eq!(history.len(), 10);
    assert!(history.iter().all(|h| h["device"] == "web"));
    assert_eq!(
        history[0]["actor"],
        sync_core::hub::server_actor().to_hex_string()
    );
    s.stop().await;
}

#[actix_web::test]
async fn a_web_action_reaches_the_phone_and_offline_conflicts_are_marked_superseded() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    chief.sync(now_ms()).await;
    let reported = demo_issue(&s, &sup, "河面漂浮生活垃圾").await;
    let id = reported["id"].as_str().unwrap().to_string();
    assert_eq!(
        chief.issue(&id).unwrap().state().unwrap().status,
        Some(Status::Reported)
    );

    s.post(
        &format!("/api/v1/issues/{id}/events"),
        &sup,
        json!({"kind": "accepted"}),
    )
    .await
    .expect_ok();
    let report = chief.sync(now_ms()).await;
    assert!(report.changes_received >= 1, "{report:?}");
    let state = chief.issue(&id).unwrap().state().unwrap();
    assert_eq!(state.status, Some(Status::Accepted));
    let accepted = &state.timeline.last().unwrap().event;
    assert_eq!(accepted.device, "web");
    assert_eq!(accepted.by, demo::user_id(SUPERVISOR));

    // Two supervisor phones, both offline with the submitted rectification: one verifies, the
    // other rejects. Both changes are accepted; the fold keeps one and marks the other.
    let submitted = demo_issue(&s, &sup, "桥下淤积塑料袋").await;
    let sid = submitted["id"].as_str().unwrap().to_string();
    let a = Phone::login(&s, SUPERVISOR, "sup-phone-a").await;
    let b = Phone::login(&s, SUPERVISOR, "sup-phone-b").await;
    a.sync(now_ms()).await;
    b.sync(now_ms()).await;
    let mut on_a = a.issue(&sid).unwrap();
    on_a.act(
        &a.user,
        &a.device,
        now_ms(),
        Action::Verified {
            note: "合格".into(),
        },
    )
    .unwrap();
    a.save(&mut on_a);
    let mut on_b = b.issue(&sid).unwrap();
    on_b.act(
        &b.user,
        &b.device,
        now_ms(),
        Action::Rejected {
            reason: "不合格".into(),
        },
    )
    .unwrap();
    b.save(&mut on_b);
    assert_eq!(a.sync(now_ms()).await.refused, 0);
    assert_eq!(b.sync(now_ms()).await.refused, 0);

    let detail = s
        .get(&format!("/api/v1/issues/{sid}"), &sup)
        .await
        .expect_ok()
        .clone();
    let timeline = detail["timeline"].as_array().unwrap();
    let last_two: Vec<&Value> = timeline.iter().rev().take(2).collect();
    let superseded: Vec<&&Value> = last_two
        .iter()
        .filter(|e| e["superseded"].is_string())
        .collect();
    assert_eq!(superseded.len(), 1, "{detail}");
    for event in &last_two {
        assert!(event["received_at_ms"].is_i64());
        let from = event["received_from"].as_str().unwrap();
        assert!(
            from.ends_with("sup-phone-a") || from.ends_with("sup-phone-b"),
            "{from}"
        );
    }
    // Every replica agrees on the outcome. A supervisor's phone keeps only the problems waiting
    // for the office (`authz::delivered`): after the next sync each phone holds the problem
    // exactly when it still waits for the office, and then in the server's state.
    a.sync(now_ms()).await;
    b.sync(now_ms()).await;
    let meta = s.state.store.document(&sid).unwrap().unwrap().meta;
    let waits = sync_core::authz::delivered(&a.user, &meta, now_ms());
    for phone in [&a, &b] {
        let held = phone.issue(&sid).map(|doc| doc.state().unwrap().status);
        assert_eq!(held.is_some(), waits, "{}: {detail}", phone.device);
        if let Some(status) = held {
            assert_eq!(
                status.map(|s| s.as_str().to_string()),
                detail["status"].as_str().map(String::from)
            );
        }
    }
    s.stop().await;
}

#[actix_web::test]
async fn the_deadline_job_escalates_each_overdue_issue_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), true).await;
    let sup = s.token(SUPERVISOR, "pc").await;
    // A chief reported ten days ago (offline since); the office gives it a deadline already past.
    let chief = Phone::login_bound_days_ago(&s, CHIEF_2, "chief2-phone", 30).await;
    let facts = demo::facts();
    let user = facts.user(CHIEF_2).unwrap();
    let Role::Chief { jurisdiction, .. } = &user.role else {
        panic!("a chief");
    };
    let asset = facts.asset(&jurisdiction.assets[0]).unwrap();
    let reported_at = now_ms() - 10 * DAY;
    let mut issue = IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        reported_at,
        &NewIssue {
            system: System::River,
            category: "river.dumping".into(),
            severity: Severity::Urgent,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: match &asset.geometry {
                Geometry::LineString(line) => line[0],
                Geometry::Polygon(rings) => rings[0][0],
            },
            description: "岸边倾倒渣土".into(),
            patrol: None,
        },
    )
    .unwrap();
    let id = issue.id().to_string();
    chief.save(&mut issue);
    chief.sync(now_ms()).await;
    s.post(
        &format!("/api/v1/issues/{id}/events"),
        &sup,
        json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": reported_at + 3 * DAY}),
    )
    .await
    .expect_ok();

    let first = run_deadlines(&s.state, now_ms()).unwrap();
    // The demo's overdue issue was escalated by hand already, so only the new one is due.
    assert_eq!(first.escalated, vec![id.clone()]);
    assert_eq!(first.overdue, 2);
    let again = run_deadlines(&s.state, now_ms()).unwrap();
    assert!(again.escalated.is_empty());
    s.stop().await;

    let s = TestServer::start_in(dir.path(), true).await;
    let after_restart = run_deadlines(&s.state, now_ms() + DAY).unwrap();
    assert!(after_restart.escalated.is_empty());
    let sup = s.token(SUPERVISOR, "pc").await;
    let detail = s
        .get(&format!("/api/v1/issues/{id}"), &sup)
        .await
        .expect_ok()
        .clone();
    assert_eq!(detail["escalations"], 1);
    let escalation = detail["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(escalation["kind"], "escalated");
    assert_eq!(escalation["by"], "system");
    assert_eq!(escalation["device"], "deadline-job");
    assert!(escalation["payload"]["note"]
        .as_str()
        .unwrap()
        .contains("系统自动督办"));
    // The chief's phone gets the escalation at its next sync.
    chief.reconnect(&s);
    chief.sync(now_ms()).await;
    assert_eq!(chief.issue(&id).unwrap().state().unwrap().escalations, 1);
    s.stop().await;
}

#[actix_web::test]
async fn reminders_and_patrols_for_supervisors() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let reminders = s.get("/api/v1/reminders", &sup).await.expect_ok().clone();
    for r in reminders.as_array().unwrap() {
        assert!(r["done"].as_u64() < r["required"].as_u64(), "{r}");
        assert_eq!(r["system"], "river");
    }
    let patrols = s
        .get("/api/v1/patrols?limit=500", &sup)
        .await
        .expect_ok()
        .clone();
    let rows = patrols.as_array().unwrap();
    assert_eq!(rows.len(), 12, "two river chiefs, six patrols each");
    assert_eq!(rows.iter().filter(|r| r["valid"] == false).count(), 2);
    let short = rows.iter().find(|r| r["valid"] == false).unwrap();
    let detail = s
        .get(
            &format!("/api/v1/patrols/{}", short["id"].as_str().unwrap()),
            &sup,
        )
        .await
        .expect_ok()
        .clone();
    assert!(
        detail["flags"][0].as_str().unwrap().contains("分钟"),
        "{}",
        detail["flags"]
    );
    assert_eq!(detail["flag_details"][0]["flag"], "too_short");
    assert!(detail["track"].as_array().unwrap().len() > 100);
    assert_eq!(detail["asset_detail"]["geometry"]["type"], "LineString");
    s.stop().await;
}

#[actix_web::test]
async fn a_web_action_replayed_with_its_idempotency_key_happens_once() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let reported = demo_issue(&s, &sup, "河面漂浮生活垃圾").await;
    let id = reported["id"].as_str().unwrap().to_owned();
    let events = format!("/api/v1/issues/{id}/events");
    let timeline_len = || async {
        let detail = s.get(&format!("/api/v1/issues/{id}"), &sup).await;
        detail.expect_ok()["timeline"].as_array().unwrap().len()
    };
    let before = timeline_len().await;

    // A comment may be appended any number of times, so only the key keeps a resent request
    // from appending it again. Sent five times (answers lost, a double click): one event.
    let key = "0190f3a2-7c1e-7000-8000-00000000c0de";
    let comment = json!({"kind": "comment", "text": "已电话通知村委会"});
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = s
            .request_with(
                "POST",
                &events,
                Some(&sup),
                Some(comment.clone()),
                &[("Idempotency-Key", key)],
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        ids.push(r.body["event_id"].as_str().unwrap().to_owned());
    }
    assert!(ids.iter().all(|i| i == key), "{ids:?}");
    assert_eq!(timeline_len().await, before + 1);

    // The same key for another action is refused, and changes nothing.
    let other = json!({"kind": "comment", "text": "另一条"});
    s.request_with(
        "POST",
        &events,
        Some(&sup),
        Some(other),
        &[("Idempotency-Key", key)],
    )
    .await
    .expect_error(422, "idempotency_key_reused");
    s.request_with(
        "POST",
        &events,
        Some(&sup),
        Some(comment.clone()),
        &[("Idempotency-Key", "not-a-uuid")],
    )
    .await
    .expect_error(422, "idempotency_key_reused");
    assert_eq!(timeline_len().await, before + 1);
    // Without a key every request is a new action.
    for _ in 0..2 {
        let r = s.post(&events, &sup, comment.clone()).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    }
    assert_eq!(timeline_len().await, before + 3);
    s.stop().await;
}

/// A note may be left out of a rectification, a verification or an escalation (the schema
/// lists it as optional, and the server takes the action without it); a reason may not.
#[actix_web::test]
async fn notes_may_be_left_out_of_a_web_action() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let handler = s.token(HANDLER, "handler-pc").await;
    let reported = demo_issue(&s, &sup, "河面漂浮生活垃圾").await;
    let id = reported["id"].as_str().unwrap();
    let events = format!("/api/v1/issues/{id}/events");
    let deadline = now_ms() + 7 * DAY;
    let steps = [
        (&sup, json!({"kind": "accepted"}), "accepted"),
        (
            &sup,
            json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": deadline}),
            "assigned",
        ),
        (&sup, json!({"kind": "escalated"}), "assigned"),
        (
            &handler,
            json!({"kind": "rectification_submitted", "photos": ["ab".repeat(32)]}),
            "submitted",
        ),
        (&sup, json!({"kind": "verified"}), "closed"),
    ];
    for (token, body, status) in steps {
        let reply = s.post(&events, token, body.clone()).await;
        assert_eq!(reply.status.as_u16(), 201, "{body} → {}", reply.body);
        assert_eq!(reply.body["status"], status, "{body}");
    }
    // A reopening without its reason is not a workflow action at all.
    s.post(&events, &sup, json!({"kind": "reopened"}))
        .await
        .expect_error(400, "bad_request");

    // The schema says the same: `note` is optional where the server takes it so, `reason` is not.
    let spec = s.request("GET", "/openapi.json", None, None).await;
    let action = &spec.expect_ok()["components"]["schemas"]["Action"];
    let variants = action["oneOf"]
        .as_array()
        .expect("Action is one of its kinds");
    let required = |kind: &str| -> Vec<String> {
        let variant = variants
            .iter()
            .find(|v| v["properties"]["kind"]["enum"][0] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {action}"));
        serde_json::from_value(variant["required"].clone()).unwrap()
    };
    for kind in ["verified", "escalated", "rectification_submitted"] {
        assert!(!required(kind).contains(&"note".to_owned()), "{kind}");
    }
    assert!(required("rejected").contains(&"reason".to_owned()));
    assert!(required("rectification_submitted").contains(&"photos".to_owned()));
}
