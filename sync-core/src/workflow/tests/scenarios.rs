//! The main paths through the loop and what concurrent offline actions resolve to.

use super::*;

fn office_ev(id: &str, at_ms: i64, action: Action) -> Event {
    ev(id, "office-wang", at_ms, action)
}

fn handler_ev(id: &str, at_ms: i64, action: Action) -> Event {
    ev(id, "handler-zhao", at_ms, action)
}

#[test]
fn happy_path_derives_assignee_deadline_and_closure() {
    let events = vec![
        ev("e1", "chief-li", T0, Action::Reported),
        office_ev("e2", T0 + 2 * 3_600_000, Action::Accepted),
        office_ev(
            "e3",
            T0 + 3 * 3_600_000,
            assign_to(Assignee::Department(WATER_BUREAU.into())),
        ),
        handler_ev("e4", T0 + 5 * DAY, submit()),
        office_ev(
            "e5",
            T0 + 6 * DAY,
            Action::Verified {
                note: "现场核查通过".into(),
            },
        ),
    ];
    let state = fold(&events);
    assert_eq!(state.status, Some(Status::Closed));
    assert_eq!(state.reporter.as_deref(), Some("chief-li"));
    assert_eq!(state.reported_at_ms, Some(T0));
    assert_eq!(state.accepted_at_ms, Some(T0 + 2 * 3_600_000));
    assert_eq!(
        state.assignee,
        Some(Assignee::Department(WATER_BUREAU.into()))
    );
    assert_eq!(state.deadline_ms, Some(T0 + 8 * DAY));
    assert_eq!(state.submitted_at_ms, Some(T0 + 5 * DAY));
    assert_eq!(state.closed_at_ms, Some(T0 + 6 * DAY));
    assert_eq!(state.time_to_close_ms(), Some(6 * DAY));
    assert_eq!(state.rectified_on_time(), Some(true));
    assert_eq!(state.overdue_days(T0 + 30 * DAY), None);
    assert!(!state.is_open());
    assert_eq!(
        state.next_steps(),
        vec![EventKind::Reopened, EventKind::Comment]
    );
    assert_eq!(superseded(&state), vec![]);
    assert_eq!(state.timeline.len(), 5);

    let back: IssueState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(back, state);
}

#[test]
fn state_moves_step_by_step() {
    let events = events_to(Some(Status::Closed));
    let seen: Vec<_> = (0..=events.len())
        .map(|n| fold(&events[..n]).status)
        .collect();
    use Status::*;
    assert_eq!(
        seen,
        vec![
            None,
            Some(Reported),
            Some(Accepted),
            Some(Assigned),
            Some(Submitted),
            Some(Closed)
        ]
    );
    let open: Vec<_> = (0..=events.len())
        .map(|n| fold(&events[..n]).is_open())
        .collect();
    assert_eq!(open, vec![false, true, true, true, true, false]);
}

#[test]
fn assigning_straight_from_report_counts_as_taking_it_on() {
    let state = fold(&[
        ev("e1", "chief-li", T0, Action::Reported),
        office_ev("e2", T0 + DAY, assign_to(Assignee::User("chief-li".into()))),
    ]);
    assert_eq!(state.status, Some(Status::Assigned));
    assert_eq!(state.accepted_at_ms, Some(T0 + DAY));
}

#[test]
fn rejected_rectification_goes_back_to_the_same_assignee_and_is_resubmitted() {
    let mut events = events_to(Some(Status::Submitted));
    events.push(office_ev(
        "r1",
        T0 + 4 * DAY,
        Action::Rejected {
            reason: "岸边仍有堆放".into(),
        },
    ));
    let rework = fold(&events);
    assert_eq!(rework.status, Some(Status::Assigned));
    assert_eq!(rework.rejections, 1);
    assert_eq!(
        rework.assignee,
        Some(Assignee::Department(WATER_BUREAU.into()))
    );
    assert_eq!(rework.deadline_ms, Some(T0 + 8 * DAY));
    assert!(rework
        .next_steps()
        .contains(&EventKind::RectificationSubmitted));

    events.push(handler_ev("r2", T0 + 9 * DAY, submit()));
    events.push(office_ev(
        "r3",
        T0 + 10 * DAY,
        Action::Verified {
            note: String::new(),
        },
    ));
    let state = fold(&events);
    assert_eq!(state.status, Some(Status::Closed));
    assert_eq!(state.submitted_at_ms, Some(T0 + 9 * DAY));
    assert_eq!(
        state.rectified_on_time(),
        Some(false),
        "resubmitted after the deadline"
    );
    assert_eq!(state.time_to_close_ms(), Some(10 * DAY));
}

#[test]
fn overdue_days_round_up_and_stop_while_a_rectification_waits() {
    let deadline = T0 + 8 * DAY;
    let assigned = fold(&events_to(Some(Status::Assigned)));
    assert_eq!(assigned.overdue_days(deadline - 1), None);
    assert_eq!(assigned.overdue_days(deadline), None);
    assert_eq!(assigned.overdue_days(deadline + 1), Some(1));
    assert_eq!(assigned.overdue_days(deadline + DAY), Some(1));
    assert_eq!(assigned.overdue_days(deadline + DAY + 1), Some(2));
    assert_eq!(assigned.overdue_days(deadline + 10 * DAY), Some(10));
    assert!(assigned.overdue_days(i64::MAX).is_some());
    assert_eq!(assigned.overdue_days(i64::MIN), None);

    let on_time = fold(&events_to(Some(Status::Submitted)));
    assert_eq!(on_time.overdue_days(deadline + 10 * DAY), None);

    let mut events = events_to(Some(Status::Assigned));
    events.push(handler_ev("late", deadline + 2 * DAY + 5, submit()));
    let late = fold(&events);
    assert_eq!(late.overdue_days(deadline + 10 * DAY), Some(3));

    events.push(office_ev(
        "rej",
        deadline + 4 * DAY,
        Action::Rejected {
            reason: "未整改到位".into(),
        },
    ));
    assert_eq!(fold(&events).overdue_days(deadline + 10 * DAY), Some(10));

    events.push(handler_ev("again", deadline + 11 * DAY, submit()));
    events.push(office_ev(
        "ok",
        deadline + 12 * DAY,
        Action::Verified {
            note: String::new(),
        },
    ));
    let closed = fold(&events);
    assert_eq!(closed.overdue_days(deadline + 20 * DAY), None);
    assert_eq!(closed.rectified_on_time(), Some(false));
    assert_eq!(
        fold(&events_to(Some(Status::Accepted))).overdue_days(i64::MAX),
        None
    );
}

#[test]
fn escalations_count_while_open_and_not_after() {
    let mut events = events_to(Some(Status::Assigned));
    events.push(ev(
        "x1",
        SYSTEM_USER,
        T0 + 9 * DAY,
        Action::Escalated {
            note: "逾期1天".into(),
        },
    ));
    events.push(office_ev(
        "x2",
        T0 + 10 * DAY,
        Action::Escalated {
            note: String::new(),
        },
    ));
    let state = fold(&events);
    assert_eq!(state.escalations, 2);
    assert_eq!(state.status, Some(Status::Assigned));

    let mut closed = events_to(Some(Status::Closed));
    closed.push(ev(
        "x3",
        SYSTEM_USER,
        T0 + 9 * DAY,
        Action::Escalated {
            note: String::new(),
        },
    ));
    let state = fold(&closed);
    assert_eq!(state.escalations, 0);
    assert_eq!(
        superseded(&state),
        vec![("x3", "escalated is not allowed when the issue is closed")]
    );
}

#[test]
fn reopening_starts_over_from_acceptance() {
    let mut events = events_to(Some(Status::Submitted));
    events.push(office_ev(
        "rej",
        T0 + 4 * DAY,
        Action::Rejected {
            reason: "不彻底".into(),
        },
    ));
    events.push(handler_ev("sub", T0 + 5 * DAY, submit()));
    events.push(office_ev(
        "ver",
        T0 + 6 * DAY,
        Action::Verified {
            note: String::new(),
        },
    ));
    events.push(office_ev(
        "re",
        T0 + 20 * DAY,
        Action::Reopened {
            reason: "问题反弹".into(),
        },
    ));
    let state = fold(&events);
    assert_eq!(state.status, Some(Status::Accepted));
    assert!(state.is_open());
    assert_eq!(state.closed_at_ms, None);
    assert_eq!(state.assignee, None);
    assert_eq!(state.deadline_ms, None);
    assert_eq!(state.submitted_at_ms, None);
    assert_eq!(state.time_to_close_ms(), None);
    assert_eq!(state.rectified_on_time(), None);
    assert_eq!(
        state.accepted_at_ms,
        Some(T0 + DAY),
        "first acceptance is kept"
    );
    assert_eq!(state.rejections, 1, "history counts are kept");

    events.push(office_ev(
        "a2",
        T0 + 21 * DAY,
        assign_to(Assignee::User("chief-wu".into())),
    ));
    let state = fold(&events);
    assert_eq!(state.status, Some(Status::Assigned));
    assert_eq!(state.assignee, Some(Assignee::User("chief-wu".into())));

    let mut dup = events_to(Some(Status::Duplicate));
    assert!(fold(&dup).duplicate_of.is_some());
    assert!(fold(&dup).closed_at_ms.is_some());
    dup.push(office_ev(
        "re",
        T0 + 3 * DAY,
        Action::Reopened {
            reason: "并非重复".into(),
        },
    ));
    let state = fold(&dup);
    assert_eq!(state.status, Some(Status::Accepted));
    assert_eq!(state.duplicate_of, None);
    assert_eq!(state.accepted_at_ms, Some(T0 + 3 * DAY));
}

#[test]
fn verify_and_reject_appended_concurrently_whichever_comes_first_counts() {
    let base = events_to(Some(Status::Submitted));
    let verify = office_ev(
        "v",
        T0 + 4 * DAY,
        Action::Verified {
            note: "通过".into(),
        },
    );
    let reject = ev(
        "r",
        "office-sun",
        T0 + 4 * DAY - 60_000,
        Action::Rejected {
            reason: "仍有垃圾".into(),
        },
    );

    let mut verify_first = base.clone();
    verify_first.extend([verify.clone(), reject.clone()]);
    let state = fold(&verify_first);
    assert_eq!(state.status, Some(Status::Closed));
    assert_eq!(state.rejections, 0);
    assert_eq!(
        superseded(&state),
        vec![("r", "rejected is not allowed when the issue is closed")]
    );

    let mut reject_first = base;
    reject_first.extend([reject, verify]);
    let state = fold(&reject_first);
    assert_eq!(state.status, Some(Status::Assigned));
    assert_eq!(state.rejections, 1);
    assert_eq!(state.closed_at_ms, None);
    assert_eq!(
        superseded(&state),
        vec![("v", "verified is not allowed when the issue is assigned")]
    );
    assert_eq!(state.timeline.len(), 6, "the loser stays visible");
    assert_eq!(
        fold(&reject_first),
        state,
        "the same list always folds the same"
    );
}

#[test]
fn assign_and_invalidate_appended_concurrently_end_invalid_either_way() {
    let base = events_to(Some(Status::Accepted));
    let assign = office_ev(
        "a",
        T0 + 2 * DAY,
        assign_to(Assignee::Department(WATER_BUREAU.into())),
    );
    let invalidate = ev(
        "i",
        "office-sun",
        T0 + 2 * DAY,
        Action::Invalidated {
            reason: "不属于河道管理范围".into(),
        },
    );

    let mut invalidate_first = base.clone();
    invalidate_first.extend([invalidate.clone(), assign.clone()]);
    let state = fold(&invalidate_first);
    assert_eq!(state.status, Some(Status::Invalid));
    assert_eq!(state.assignee, None);
    assert_eq!(
        superseded(&state),
        vec![("a", "assigned is not allowed when the issue is invalid")]
    );

    // Invalidating an assigned issue is allowed, so here both count and the issue still ends
    // invalid: the assignee sees the assignment withdrawn rather than a lost invalidation.
    let mut assign_first = base;
    assign_first.extend([assign, invalidate]);
    let state = fold(&assign_first);
    assert_eq!(state.status, Some(Status::Invalid));
    assert_eq!(
        state.assignee,
        Some(Assignee::Department(WATER_BUREAU.into()))
    );
    assert_eq!(state.closed_at_ms, Some(T0 + 2 * DAY));
    assert_eq!(superseded(&state), vec![]);
    assert_eq!(state.overdue_days(T0 + 30 * DAY), None);
}

#[test]
fn repeated_event_ids_count_once() {
    let mut events = events_to(Some(Status::Assigned));
    let escalate = ev(
        "x",
        SYSTEM_USER,
        T0 + 9 * DAY,
        Action::Escalated {
            note: String::new(),
        },
    );
    events.push(escalate.clone());
    events.push(escalate);
    events.push(handler_ev("x", T0 + 9 * DAY, submit()));
    let state = fold(&events);
    assert_eq!(state.escalations, 1);
    assert_eq!(state.status, Some(Status::Assigned));
    assert_eq!(
        superseded(&state),
        vec![("x", "repeats event x"), ("x", "repeats event x")]
    );
}

#[test]
fn the_first_event_must_be_a_report() {
    let state = fold(&[
        office_ev("a", T0, Action::Accepted),
        ev(
            "c",
            "chief-li",
            T0,
            Action::Comment {
                text: "现场照片见附件".into(),
            },
        ),
        ev("r", "chief-li", T0 + 1, Action::Reported),
        ev("r2", "chief-wu", T0 + 2, Action::Reported),
    ]);
    assert_eq!(state.status, Some(Status::Reported));
    assert_eq!(state.reporter.as_deref(), Some("chief-li"));
    assert_eq!(state.reported_at_ms, Some(T0 + 1));
    assert_eq!(
        superseded(&state),
        vec![
            ("a", "accepted is not allowed before the issue is reported"),
            ("c", "comment is not allowed before the issue is reported"),
            ("r2", "the issue is already reported"),
        ]
    );
    assert_eq!(fold(&[]), IssueState::default());
    assert_eq!(
        IssueState::default().next_steps(),
        vec![EventKind::Reported]
    );
}

#[test]
fn a_finish_stamped_before_the_report_takes_no_time() {
    let state = fold(&[
        ev("r", "chief-li", T0, Action::Reported),
        office_ev(
            "i",
            T0 - 5_000,
            Action::Invalidated {
                reason: "误报".into(),
            },
        ),
    ]);
    assert_eq!(state.status, Some(Status::Invalid));
    assert_eq!(state.time_to_close_ms(), Some(0));
}
