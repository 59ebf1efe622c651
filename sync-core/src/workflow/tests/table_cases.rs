//! The transition table case by case: every (status, kind) pair, every relation, and real users
//! in and out of scope. Expectations are written out here independently of `TRANSITIONS`, so a
//! change to the table fails these tests until it is meant.

use super::*;
use crate::model::System;

/// Where `kind` leads from `status`, or `None` when it is not allowed there.
fn expected(status: Option<Status>, kind: EventKind) -> Option<Status> {
    use EventKind as K;
    use Status::*;
    let Some(s) = status else {
        return (kind == K::Reported).then_some(Reported);
    };
    match kind {
        K::Reported => None,
        K::Accepted => (s == Reported).then_some(Accepted),
        K::Assigned => matches!(s, Reported | Accepted | Assigned).then_some(Assigned),
        K::RectificationSubmitted => (s == Assigned).then_some(Submitted),
        K::Verified => (s == Submitted).then_some(Closed),
        K::Rejected => (s == Submitted).then_some(Assigned),
        K::Invalidated => matches!(s, Reported | Accepted | Assigned).then_some(Invalid),
        K::DuplicateOf => matches!(s, Reported | Accepted).then_some(Duplicate),
        K::Escalated => matches!(s, Reported | Accepted | Assigned | Submitted).then_some(s),
        K::Reopened => matches!(s, Closed | Invalid | Duplicate).then_some(Accepted),
        K::Comment => Some(s),
    }
}

fn expected_who(kind: EventKind) -> &'static [Who] {
    use EventKind as K;
    match kind {
        K::Reported => &[Who::ChiefInScope, Who::Supervisor],
        K::RectificationSubmitted => &[Who::Assignee],
        K::Escalated => &[Who::Supervisor, Who::System],
        K::Comment => &[
            Who::Reporter,
            Who::ChiefInScope,
            Who::Supervisor,
            Who::Assignee,
        ],
        K::Accepted
        | K::Assigned
        | K::Verified
        | K::Rejected
        | K::Invalidated
        | K::DuplicateOf
        | K::Reopened => &[Who::Supervisor],
    }
}

fn statuses() -> impl Iterator<Item = Option<Status>> {
    std::iter::once(None).chain(Status::ALL.into_iter().map(Some))
}

#[test]
fn check_and_fold_agree_with_the_table_for_every_status_and_kind() {
    let mut allowed_pairs = 0;
    for status in statuses() {
        let events = events_to(status);
        let before = fold(&events);
        assert_eq!(before.status, status);
        for kind in EventKind::ALL {
            let action = sample(kind);
            let result = check(&before, &Who::ALL, &action);
            let mut longer = events.clone();
            longer.push(ev("new", "office-wang", T0 + 10 * DAY, action));
            let after = fold(&longer);
            let last = after.timeline.last().unwrap();
            match expected(status, kind) {
                Some(to) => {
                    allowed_pairs += 1;
                    assert_eq!(result, Ok(()), "{kind} in {status:?}");
                    assert_eq!(after.status, Some(to), "{kind} in {status:?}");
                    assert_eq!(last.superseded, None);
                    assert!(before.next_steps().contains(&kind));
                }
                None => {
                    let err = result.expect_err(kind.as_str());
                    assert_eq!(
                        err,
                        TransitionError::InvalidTransition {
                            kind,
                            status,
                            allowed: before.next_steps(),
                        }
                    );
                    assert_eq!(derived(&after), derived(&before), "{kind} in {status:?}");
                    assert_eq!(last.superseded, Some(err.to_string()));
                    assert!(!before.next_steps().contains(&kind));
                }
            }
        }
    }
    assert_eq!(allowed_pairs, 27);
}

#[test]
fn each_kind_is_forbidden_to_every_relation_the_table_does_not_name() {
    for kind in EventKind::ALL {
        let status = statuses().find(|s| expected(*s, kind).is_some()).unwrap();
        let state = fold(&events_to(status));
        for who in Who::ALL {
            let result = check(&state, &[who], &sample(kind));
            if expected_who(kind).contains(&who) {
                assert_eq!(result, Ok(()), "{who} {kind}");
                assert!(allowed_for_relations(&state, &[who]).contains(&kind));
            } else {
                assert_eq!(
                    result,
                    Err(TransitionError::Forbidden {
                        kind,
                        who: vec![who],
                        needs: expected_who(kind).to_vec(),
                    }),
                    "{who} {kind}"
                );
                assert!(!allowed_for_relations(&state, &[who]).contains(&kind));
            }
        }
        assert!(matches!(
            check(&state, &[], &sample(kind)),
            Err(TransitionError::Forbidden { .. })
        ));
    }
    let submitted = fold(&events_to(Some(Status::Submitted)));
    let verify = sample(EventKind::Verified);
    assert_eq!(
        check(&submitted, &[Who::Reporter, Who::ChiefInScope], &verify)
            .unwrap_err()
            .to_string(),
        "verified needs one of: supervisor; the user is: reporter, chief_in_scope"
    );
    assert_eq!(
        check(&submitted, &[], &verify).unwrap_err().to_string(),
        "verified needs one of: supervisor; the user has no part in this issue"
    );
}

#[test]
fn relations_follow_role_system_and_jurisdiction() {
    let state = fold(&events_to(Some(Status::Assigned)));
    let cases: Vec<(User, Vec<Who>)> = vec![
        (office(), vec![Who::Supervisor]),
        (
            supervisor("office-sub", System::River, "370105014000"),
            vec![Who::Supervisor],
        ),
        (
            supervisor("office-lixia", System::River, "370102000000"),
            vec![],
        ),
        (
            supervisor("office-other-sub", System::River, "370105001000"),
            vec![],
        ),
        (
            supervisor("forest-office", System::Forest, "370105000000"),
            vec![],
        ),
        (reporter(), vec![Who::Reporter, Who::ChiefInScope]),
        (
            chief("chief-village", System::River, "370105014201", &[]),
            vec![Who::ChiefInScope],
        ),
        (
            chief("chief-district", System::River, "370105000000", &[]),
            vec![Who::ChiefInScope],
        ),
        (
            chief(
                "chief-elsewhere",
                System::River,
                "370105001001",
                &["river.gongshanghe.01"],
            ),
            vec![],
        ),
        (
            chief("forest-chief", System::Forest, "370105000000", &[ASSET]),
            vec![],
        ),
        (water_handler(), vec![Who::Assignee]),
        (handler("handler-qian", "区城管局"), vec![]),
        (system_user(), vec![Who::System]),
    ];
    for (user, who) in cases {
        assert_eq!(relations(&user, &ctx(), &state), who, "{}", user.id);
        let mut inactive = user.clone();
        inactive.active = false;
        assert_eq!(relations(&inactive, &ctx(), &state), vec![], "{}", user.id);
    }

    let mut events = events_to(Some(Status::Accepted));
    events.push(ev(
        "e9",
        "office-wang",
        T0 + DAY,
        assign_to(Assignee::User("chief-li".into())),
    ));
    let to_chief = fold(&events);
    assert_eq!(
        relations(&reporter(), &ctx(), &to_chief),
        vec![Who::Reporter, Who::ChiefInScope, Who::Assignee]
    );
    assert_eq!(relations(&water_handler(), &ctx(), &to_chief), vec![]);
}

fn forbidden(result: Result<(), TransitionError>) -> bool {
    matches!(result, Err(TransitionError::Forbidden { .. }))
}

#[test]
fn a_chief_cannot_verify_only_a_supervisor_in_scope_can() {
    let state = fold(&events_to(Some(Status::Submitted)));
    let verify = sample(EventKind::Verified);
    let auth = |user: &User| authorize(user, &ctx(), "issue-1", &state, &verify);
    assert!(forbidden(auth(&reporter())));
    assert!(forbidden(auth(&chief(
        "chief-district",
        System::River,
        "370105000000",
        &[]
    ))));
    assert!(forbidden(auth(&water_handler())));
    assert!(forbidden(auth(&system_user())));
    assert!(forbidden(auth(&supervisor(
        "office-lixia",
        System::River,
        "370102000000"
    ))));
    assert!(forbidden(auth(&supervisor(
        "forest-office",
        System::Forest,
        "370105000000"
    ))));
    assert_eq!(auth(&office()), Ok(()));
    let mut retired = office();
    retired.active = false;
    assert!(forbidden(auth(&retired)));
}

#[test]
fn only_the_assignee_submits_the_rectification() {
    let state = fold(&events_to(Some(Status::Assigned)));
    let auth =
        |user: &User, state: &IssueState| authorize(user, &ctx(), "issue-1", state, &submit());
    assert_eq!(auth(&water_handler(), &state), Ok(()));
    assert!(forbidden(auth(
        &handler("handler-qian", "区城管局"),
        &state
    )));
    assert!(forbidden(auth(&office(), &state)));
    assert!(forbidden(auth(&reporter(), &state)));

    let mut events = events_to(Some(Status::Accepted));
    events.push(ev(
        "e9",
        "office-wang",
        T0 + DAY,
        assign_to(Assignee::User("chief-wu".into())),
    ));
    let to_wu = fold(&events);
    let wu = chief("chief-wu", System::River, "370105001001", &[]);
    assert_eq!(auth(&wu, &to_wu), Ok(()));
    assert!(forbidden(auth(&water_handler(), &to_wu)));
}

#[test]
fn what_each_user_is_offered() {
    let at = |status| fold(&events_to(status));
    let offered = |user: &User, state: &IssueState| allowed_actions(user, &ctx(), state);
    use EventKind as K;
    assert_eq!(offered(&reporter(), &at(None)), vec![K::Reported]);
    let outsider = chief("chief-elsewhere", System::River, "370105001001", &[]);
    assert_eq!(offered(&outsider, &at(None)), vec![]);
    assert_eq!(
        offered(&office(), &at(Some(Status::Submitted))),
        vec![K::Verified, K::Rejected, K::Escalated, K::Comment]
    );
    assert_eq!(
        offered(&water_handler(), &at(Some(Status::Assigned))),
        vec![K::RectificationSubmitted, K::Comment]
    );
    assert_eq!(
        offered(&reporter(), &at(Some(Status::Assigned))),
        vec![K::Comment]
    );
    assert_eq!(
        offered(&system_user(), &at(Some(Status::Assigned))),
        vec![K::Escalated]
    );
    assert_eq!(offered(&system_user(), &at(Some(Status::Closed))), vec![]);
    assert_eq!(
        offered(&office(), &at(Some(Status::Closed))),
        vec![K::Reopened, K::Comment]
    );
    let mut inactive = office();
    inactive.active = false;
    for status in statuses() {
        assert_eq!(offered(&inactive, &at(status)), vec![]);
    }
}

#[test]
fn bad_payloads_are_refused_and_never_count() {
    let reported = events_to(Some(Status::Reported));
    let submitted = events_to(Some(Status::Submitted));
    let cases: Vec<(&[Event], Action, &str)> = vec![
        (
            &submitted,
            Action::Rejected {
                reason: "  ".into(),
            },
            "a rejection needs a reason",
        ),
        (
            &reported,
            Action::Assigned {
                assignee: Assignee::Department(WATER_BUREAU.into()),
                deadline_ms: T0,
            },
            "the deadline must be after the report",
        ),
        (
            &reported,
            Action::Assigned {
                assignee: Assignee::User(String::new()),
                deadline_ms: T0 + DAY,
            },
            "an assignment needs a department or user",
        ),
        (
            &reported,
            Action::Invalidated {
                reason: String::new(),
            },
            "invalidating needs a reason",
        ),
        (
            &reported,
            Action::DuplicateOf {
                issue: String::new(),
            },
            "duplicate_of needs the original issue",
        ),
        (
            &reported,
            Action::Comment { text: "\n".into() },
            "a comment needs text",
        ),
    ];
    for (events, action, reason) in cases {
        let before = fold(events);
        let err = check(&before, &Who::ALL, &action).unwrap_err();
        assert_eq!(
            err,
            TransitionError::Invalid {
                reason: reason.into()
            }
        );
        let mut longer = events.to_vec();
        longer.push(ev("bad", "office-wang", T0 + 5 * DAY, action));
        let after = fold(&longer);
        assert_eq!(derived(&after), derived(&before));
        assert_eq!(superseded(&after), vec![("bad", reason)]);
    }

    let assigned = fold(&events_to(Some(Status::Assigned)));
    let no_photo = Action::RectificationSubmitted {
        note: "done".into(),
        photos: vec![],
    };
    assert!(matches!(
        check(&assigned, &[Who::Assignee], &no_photo),
        Err(TransitionError::Invalid { .. })
    ));
    let bad_photo = Action::RectificationSubmitted {
        note: "done".into(),
        photos: vec![photo(1), photo(0xab).to_uppercase()],
    };
    assert!(matches!(
        check(&assigned, &[Who::Assignee], &bad_photo),
        Err(TransitionError::Invalid { .. })
    ));

    let just_after = Action::Assigned {
        assignee: Assignee::Department(WATER_BUREAU.into()),
        deadline_ms: T0 + 1,
    };
    assert_eq!(check(&fold(&reported), &Who::ALL, &just_after), Ok(()));

    let self_duplicate = Action::DuplicateOf {
        issue: "issue-1".into(),
    };
    assert_eq!(
        authorize(
            &office(),
            &ctx(),
            "issue-1",
            &fold(&reported),
            &self_duplicate
        ),
        Err(TransitionError::Invalid {
            reason: "an issue cannot be a duplicate of itself".into()
        })
    );
    let other = Action::DuplicateOf {
        issue: "issue-0".into(),
    };
    assert_eq!(
        authorize(&office(), &ctx(), "issue-1", &fold(&reported), &other),
        Ok(())
    );
}
