//! Properties of the fold over arbitrary event lists: deterministic, total, and explained by
//! the events that counted alone.

use super::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just(" ".to_string()), "[a-z]{1,6}"]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => (T0 - 5 * DAY)..(T0 + 40 * DAY),
        1 => any::<i64>(),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let assignee = prop_oneof![
        Just(Assignee::Department(WATER_BUREAU.into())),
        Just(Assignee::User("chief-li".into())),
        Just(Assignee::User(String::new())),
    ];
    let photos = prop::collection::vec(
        prop_oneof![3 => (0u8..4).prop_map(photo), 1 => Just("not-a-hash".to_string())],
        0..3,
    );
    prop_oneof![
        3 => Just(Action::Reported),
        2 => Just(Action::Accepted),
        3 => (assignee, time()).prop_map(|(assignee, deadline_ms)| Action::Assigned { assignee, deadline_ms }),
        3 => (text(), photos).prop_map(|(note, photos)| Action::RectificationSubmitted { note, photos }),
        2 => text().prop_map(|note| Action::Verified { note }),
        2 => text().prop_map(|reason| Action::Rejected { reason }),
        1 => text().prop_map(|reason| Action::Invalidated { reason }),
        1 => text().prop_map(|issue| Action::DuplicateOf { issue }),
        2 => text().prop_map(|note| Action::Escalated { note }),
        1 => text().prop_map(|reason| Action::Reopened { reason }),
        2 => text().prop_map(|text| Action::Comment { text }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        0u8..40,
        prop::sample::select(vec!["chief-li", "office-wang", "handler-zhao"]),
        time(),
        action(),
    )
        .prop_map(|(n, by, at_ms, action)| ev(&format!("e{n}"), by, at_ms, action))
}

/// Mostly lists that start with a report, so that the fold gets somewhere.
fn events() -> impl Strategy<Value = Vec<Event>> {
    (
        prop::option::weighted(0.8, time()),
        prop::collection::vec(event(), 0..40),
    )
        .prop_map(|(report, mut rest)| {
            if let Some(at) = report {
                rest.insert(0, ev("first", "chief-li", at, Action::Reported));
            }
            rest
        })
}

fn assert_consistent(state: &IssueState) {
    let status = state.status;
    let has_effective = state.timeline.iter().any(|e| e.superseded.is_none());
    assert_eq!(status.is_some(), has_effective);
    assert_eq!(status.is_some(), state.reported_at_ms.is_some());
    if matches!(status, Some(Status::Assigned | Status::Submitted)) {
        assert!(state.assignee.is_some() && state.deadline_ms.is_some());
        assert!(state.accepted_at_ms.is_some());
    }
    if status == Some(Status::Submitted) {
        assert!(state.submitted_at_ms.is_some());
    }
    assert_eq!(
        state.closed_at_ms.is_some(),
        status.is_some_and(|s| !s.is_open())
    );
    assert_eq!(
        state.duplicate_of.is_some(),
        status == Some(Status::Duplicate)
    );
    assert_eq!(
        state.rectified_on_time().is_some(),
        status == Some(Status::Closed)
    );
    for now in [T0, T0 + 20 * DAY, i64::MIN, i64::MAX] {
        assert!(state.overdue_days(now).is_none_or(|d| d >= 1));
    }
    assert!(state.time_to_close_ms().is_none_or(|t| t >= 0));
}

proptest! {
    #[test]
    fn fold_is_deterministic_and_explained_by_the_events_that_counted(events in events()) {
        let state = fold(&events);
        prop_assert_eq!(&fold(&events), &state);
        let json = serde_json::to_string(&events).unwrap();
        let replayed: Vec<Event> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&fold(&replayed), &state);

        let kept: Vec<Event> = state.timeline.iter().map(|e| e.event.clone()).collect();
        prop_assert_eq!(&kept, &events);

        let counted: Vec<Event> = state
            .timeline
            .iter()
            .filter(|e| e.superseded.is_none())
            .map(|e| e.event.clone())
            .collect();
        let from_counted = fold(&counted);
        prop_assert_eq!(derived(&from_counted), derived(&state));
        prop_assert!(from_counted.timeline.iter().all(|e| e.superseded.is_none()));
        assert_consistent(&state);
    }

    #[test]
    fn superseded_events_change_nothing_and_check_agrees_with_the_fold(events in events()) {
        let mut state = IssueState::default();
        let mut seen = std::collections::HashSet::new();
        for event in &events {
            let before = state.clone();
            let allowed = check(&before, &Who::ALL, &event.action);
            state.apply(event);
            let entry = state.timeline.last().unwrap();
            if !seen.insert(event.id.clone()) {
                prop_assert!(entry.superseded.is_some());
            } else {
                prop_assert_eq!(allowed.is_ok(), entry.superseded.is_none());
                if let Err(why) = allowed {
                    prop_assert_eq!(entry.superseded.clone(), Some(why.to_string()));
                }
            }
            if entry.superseded.is_some() {
                prop_assert_eq!(derived(&state), derived(&before));
            } else {
                prop_assert!(before.next_steps().contains(&event.action.kind()));
            }
            assert_consistent(&state);
        }
        prop_assert_eq!(state, fold(&events));
    }
}
