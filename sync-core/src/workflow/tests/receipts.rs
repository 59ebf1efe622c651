//! The server's receipts decide the order events count in, not where a sender put them in the
//! list; what a receipt says did not count stays superseded; times follow the receipts.

use super::*;

fn receipt(event: &str, received_ms: i64, at_ms: i64) -> Receipt {
    Receipt {
        event: event.into(),
        received_ms: Some(received_ms),
        at_ms,
        superseded: None,
    }
}

#[test]
fn receipts_order_the_fold_whatever_the_list_order() {
    let events = vec![
        ev("r", "chief-li", T0, Action::Reported),
        ev(
            "g",
            "office",
            T0,
            assign_to(Assignee::User("chief-li".into())),
        ),
        ev("s", "chief-li", T0 + DAY, submit()),
        // Inserted before the verification by a sender who steered automerge's list order.
        ev(
            "j",
            "office",
            T0 + 2 * DAY,
            Action::Rejected { reason: "x".into() },
        ),
        ev(
            "v",
            "office",
            T0 + 2 * DAY,
            Action::Verified {
                note: "销号".into(),
            },
        ),
    ];
    let by_list = fold(&events);
    assert_eq!(by_list.status, Some(Status::Assigned));
    let receipts: Vec<Receipt> = ["r", "g", "s", "v", "j"]
        .iter()
        .enumerate()
        .map(|(i, id)| receipt(id, T0 + i as i64, T0 + i as i64))
        .collect();
    let by_server = fold_ordered(&events, &receipts);
    let ids: Vec<&str> = by_server
        .timeline
        .iter()
        .map(|e| e.event.id.as_str())
        .collect();
    assert_eq!(ids, ["r", "g", "s", "v", "j"]);
    assert_eq!(by_server.status, Some(Status::Closed));
    assert_eq!(superseded(&by_server).len(), 1);
    assert_eq!(superseded(&by_server)[0].0, "j");
}

#[test]
fn a_reused_id_is_a_repeat_of_the_event_the_server_accepted_first() {
    let events = vec![
        ev("r", "chief-li", T0, Action::Reported),
        ev(
            "v",
            "chief-li",
            T0,
            Action::Comment {
                text: "伪造".into(),
            },
        ),
        ev("v", "office", T0, Action::Accepted),
    ];
    let receipts = vec![receipt("r", T0, T0), receipt("v", T0, T0)];
    let state = fold_ordered(&events, &receipts);
    // The receipt binds the first event of that id in the list, so the server's judgment of
    // the list is what counts; the other copy is a repeat and changes nothing.
    assert_eq!(superseded(&state), vec![("v", "repeats event v")]);
}

#[test]
fn a_receipts_verdict_stays_and_provisional_events_follow_the_accepted_ones() {
    let events = vec![
        ev("r", "chief-li", T0, Action::Reported),
        ev("s", "chief-li", T0 + DAY, submit()),
        ev("a", "office", T0 + DAY, Action::Accepted),
    ];
    let mut refused = receipt("s", T0 + DAY, T0 + DAY);
    refused.superseded = Some("rectification_submitted needs one of: assignee".into());
    let state = fold_ordered(&events, &[receipt("r", T0, T0), refused]);
    assert_eq!(
        superseded(&state),
        vec![("s", "rectification_submitted needs one of: assignee")]
    );
    // The acceptance has no receipt yet: it follows, provisionally, at its device time.
    let last = state.timeline.last().unwrap();
    assert_eq!(last.event.id, "a");
    assert_eq!(last.received_at_ms, None);
    assert_eq!(state.status, Some(Status::Accepted));
}

#[test]
fn deadlines_and_overdue_days_use_the_bounded_time() {
    let deadline = T0 + 8 * DAY;
    let events = vec![
        ev("r", "chief-li", T0, Action::Reported),
        ev(
            "g",
            "office",
            T0,
            assign_to(Assignee::User("chief-li".into())),
        ),
        // Stamped on time by the device clock, received ten days after the deadline.
        ev("s", "chief-li", T0 + DAY, submit()),
    ];
    let state = fold_ordered(
        &events,
        &[
            receipt("r", T0, T0),
            receipt("g", T0, T0),
            receipt("s", deadline + 10 * DAY, deadline + 10 * DAY),
        ],
    );
    let last = state.timeline.last().unwrap();
    assert_eq!(last.event.at_ms, T0 + DAY);
    assert_eq!(last.at_ms, deadline + 10 * DAY);
    assert_eq!(state.submitted_at_ms, Some(deadline + 10 * DAY));
    assert_eq!(state.overdue_days(deadline + 20 * DAY), Some(10));
    // Folded by device time alone it would have been on time.
    assert_eq!(fold(&events).overdue_days(deadline + 20 * DAY), None);
}
