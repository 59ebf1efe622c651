//! Attacks through a phone's drops (`SyncRequest::dropped`): telling the server a document left
//! the phone must not undo what the server knows the phone had seen of it.

use std::time::Duration;

use serde_json::json;
use server::demo::{CHIEF, SUPERVISOR};
use server::state::now_ms;
use sync_core::doc::{IssueDoc, Record};
use sync_core::workflow::{Action, Assignee};

use super::workflow::{act, detail, reported};
use crate::harness::TestServer;
use crate::phone::Phone;

const DAY: i64 = 86_400_000;

/// A modified phone receives an assignment and its receipt, drops the problem (a sync that
/// pushes something else, so no sync of its own vouches for the time), then sends a
/// rectification built on the assignment alone and stamped before the receipt. The server
/// sent the phone that receipt: the rectification counts no earlier than it.
#[actix_web::test]
async fn dropping_a_problem_does_not_lower_the_time_its_events_count_from() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let office = Phone::login(&s, SUPERVISOR, "sup-phone").await;
    let id = reported(&chief, "丢弃后补记测试").await;
    act(&s, &sup, &id, json!({"kind": "accepted"})).await;
    let accepted_at = now_ms();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    // The office assigns from a phone: the event and the server's receipt are two changes.
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
    let assigned = detail(&s, &sup, &id).await;
    let assigned_received = assigned["timeline"].as_array().unwrap().last().unwrap()
        ["received_at_ms"]
        .as_i64()
        .unwrap();

    // The chief's next syncs each push a new report: the assignment and its receipt arrive
    // with the first, the drop goes up with the second.
    reported(&chief, "另一处垃圾").await;
    let mut held = chief.issue(&id).expect("the assignment reached the chief");
    assert_eq!(chief.drop_docs(std::slice::from_ref(&id)), vec![id.clone()]);
    reported(&chief, "第三处垃圾").await;
    assert!(chief.issue(&id).is_none(), "dropped");

    let mut forked = IssueDoc::from_automerge(held.am_mut().fork_at(&[assignment]).unwrap())
        .unwrap()
        .with_actor(chief.actor.clone());
    let backdated = accepted_at + 50;
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

    let after = detail(&s, &sup, &id).await;
    let last = after["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "rectification_submitted", "{after}");
    assert_eq!(last["at_ms"], backdated, "the device time is kept: {last}");
    assert!(
        last["counted_at_ms"].as_i64().unwrap() >= assigned_received,
        "counted before the assignment it answers reached the chief: {last}"
    );
    s.stop().await;
}
