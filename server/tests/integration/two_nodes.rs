//! Two servers on one PostgreSQL database (and, where SeaweedFS is here, one S3 bucket) serve
//! the same phones and offices with every request going to either, no sticky sessions: a
//! sign-in throttled through one is throttled through the other, an action retried through the
//! other with its idempotency key gets the same answer, a document written through one is read
//! fresh through the other (whose kept facts were warm), the deadline job runs on one server at
//! a time, and a photo upload cut on one resumes on the other. Without `CHIEFSYNC_TEST_POSTGRES`
//! the test says `skipped:` and passes; without `CHIEFSYNC_TEST_WEED` only the upload part is
//! skipped, saying so.

use actix_web::web;
use serde_json::{json, Value};
use server::blobs::BlobLocation;
use server::demo::{self, CHIEF, CHIEF_2, SUPERVISOR};
use server::jobs::{run_turn, DEADLINE_JOB_LOCK};
use server::state::now_ms;
use sync_core::doc::{IssueDoc, NewIssue};
use sync_core::model::{Geometry, Role, Severity, System};
use sync_core::photo::sha256_hex;

use crate::blobs::{cut_chunk, head, jpeg, put_chunk};
use crate::harness::TestServer;
use crate::phone::Phone;
use crate::postgres::{issue_row, Database};
use crate::weed::Weed;

const DAY: i64 = 86_400_000;

async fn timeline(s: &TestServer, token: &str, id: &str) -> Value {
    s.get(&format!("/api/v1/issues/{id}"), token)
        .await
        .expect_ok()
        .clone()
}

#[actix_web::test]
async fn two_nodes_on_one_database_serve_the_same_phones_request_by_request() {
    let Some(db) = Database::create("two_nodes") else {
        return;
    };
    let weed = match Weed::shared() {
        Ok(weed) => Some(weed),
        Err(why) => {
            println!("skipped: the upload through two nodes: {why}");
            None
        }
    };
    let bucket = weed.as_ref().map(|w| {
        BlobLocation::parse(&w.url(&format!("two-nodes-{}", uuid::Uuid::new_v4().simple())))
            .unwrap()
    });
    let settings = |s: &mut server::state::Settings| {
        s.database = Some(db.url.clone());
        if let Some(bucket) = &bucket {
            s.blobs = bucket.clone();
        }
    };
    let a = TestServer::demo_with(settings).await;
    let b = TestServer::demo_with(settings).await;

    // The office signs in on A and works on B; B's kept facts are warm before A writes.
    let supervisor = a.token(SUPERVISOR, "desk").await;
    assert!(issue_row(&b, &supervisor, "两节点测试").await.is_none());

    // A chief reported ten days ago, offline since; the report reaches A.
    let chief = Phone::login_bound_days_ago(&a, CHIEF_2, "chief2-phone", 30).await;
    let facts = demo::facts();
    let Role::Chief { jurisdiction, .. } = &facts.user(CHIEF_2).unwrap().role else {
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
            description: "两节点测试：岸边倾倒渣土".into(),
            patrol: None,
        },
    )
    .unwrap();
    let id = issue.id().to_string();
    chief.save(&mut issue);
    assert_eq!(chief.sync(now_ms()).await.docs_sent, 1);

    // B reads it at once, though it had listed the issues before A stored it.
    let row = issue_row(&b, &supervisor, "两节点测试").await;
    assert_eq!(row.expect("listed on B")["status"], "reported");

    // The office assigns it on A with an idempotency key; the answer is lost and the browser
    // sends again, this time reaching B: the same event, appended once.
    let events = format!("/api/v1/issues/{id}/events");
    let key = "0190f3a2-7c1e-7000-8000-0000000a0b0c";
    let assign = json!({
        "kind": "assigned",
        "assignee": {"department": "区水务局"},
        "deadline_ms": reported_at + 3 * DAY,
    });
    let first = a
        .request_with(
            "POST",
            &events,
            Some(&supervisor),
            Some(assign.clone()),
            &[("Idempotency-Key", key)],
        )
        .await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.body);
    // B's list shows A's assignment (its facts of the issue were kept from before).
    let row = issue_row(&b, &supervisor, "两节点测试").await.unwrap();
    assert_eq!(row["status"], "assigned");
    let again = b
        .request_with(
            "POST",
            &events,
            Some(&supervisor),
            Some(assign),
            &[("Idempotency-Key", key)],
        )
        .await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.body);
    assert_eq!(again.body["event_id"], first.body["event_id"]);
    assert_eq!(again.body["event_id"], key);
    let detail = timeline(&a, &supervisor, &id).await;
    let assigned = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "assigned")
        .count();
    assert_eq!(assigned, 1, "{}", detail["timeline"]);

    // The deadline job: while A runs its turn (holds the job's lock), B's turn is skipped and
    // nothing is escalated by it; afterwards B's turn escalates the overdue issue, and A's next
    // turn finds nothing left to do.
    let (on_a, on_b) = (a.state.clone(), b.state.clone());
    let skipped = web::block(move || {
        let mut during = None;
        let held = on_a
            .store
            .exclusively(DEADLINE_JOB_LOCK, &mut || {
                during = Some(run_turn(&on_b, now_ms()).unwrap());
            })
            .unwrap();
        assert!(held, "A takes the job's lock");
        during.unwrap()
    })
    .await
    .unwrap();
    assert!(skipped.is_none(), "B ran a turn while A held the lock");
    assert_eq!(timeline(&b, &supervisor, &id).await["escalations"], 0);
    let on_b = b.state.clone();
    let (run, _, _) = web::block(move || run_turn(&on_b, now_ms()).unwrap())
        .await
        .unwrap()
        .expect("B's turn runs once the lock is free");
    assert!(run.escalated.contains(&id), "{run:?}");
    let on_a = a.state.clone();
    let (run, _, _) = web::block(move || run_turn(&on_a, now_ms()).unwrap())
        .await
        .unwrap()
        .expect("A's turn");
    assert!(!run.escalated.contains(&id), "escalated twice: {run:?}");
    assert_eq!(timeline(&a, &supervisor, &id).await["escalations"], 1);

    // Wrong passwords for one account from one place, sent to A and B in turn: after five the
    // next sign-in waits on either server, even with the right password.
    for attempt in 0..5 {
        let node = if attempt % 2 == 0 { &a } else { &b };
        node.login_reply(demo::FIELD_CHIEF, "not-the-password", "field-phone")
            .await
            .expect_error(401, "invalid_credentials");
    }
    for node in [&b, &a] {
        let held = node
            .login_reply(demo::FIELD_CHIEF, "demo", "field-phone")
            .await;
        held.expect_error(429, "rate_limited");
        assert!(held.headers.contains_key("retry-after"));
    }
    // Other accounts from the same place still sign in.
    b.login_reply(CHIEF, "demo", "chief-phone")
        .await
        .expect_ok();

    // A photo upload cut on A resumes on B from the offset A stored.
    if bucket.is_some() {
        let photo = jpeg(900, 700, 31);
        let sha = sha256_hex(&photo);
        let third = photo.len() / 3;
        let on_a = a.token(CHIEF, "phone-1").await;
        put_chunk(&a, &on_a, &sha, &photo, 0, third)
            .await
            .expect(202, "");
        cut_chunk(&a, &on_a, &sha, &photo, third, 2 * third);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
        let on_b = b.token(CHIEF, "phone-1").await;
        let held = head(&b, &on_b, &sha).await;
        held.expect(200, "");
        assert_eq!(held.offset(), Some(third as u64));
        let rest = put_chunk(&b, &on_b, &sha, &photo, third, photo.len()).await;
        rest.expect(201, "");
        assert_eq!(rest.json()["complete"], true);
        // A has the photo B completed.
        assert_eq!(a.state.blobs.store().read(&sha).unwrap(), Some(photo));
    }

    a.stop().await;
    b.stop().await;
    drop(db);
}
