//! Patrol and issue documents: fields round-trip, offline edits merge field by field, the
//! workflow refuses what the transition table forbids, and the saved track stays compact.

use sync_core::doc::{self, actor_for, DocError, DocKind, IssueDoc, PatrolDoc, Record};
use sync_core::model::{CheckResult, PhotoRef, PhotoRole, Severity};
use sync_core::track;
use sync_core::workflow::{Action, Assignee, Status, TransitionError};

use crate::fixtures::*;

#[test]
fn a_patrol_round_trips_through_its_saved_bytes() {
    let mut patrol = PatrolDoc::create(actor_for(1), &new_patrol()).unwrap();
    let points = track::walking_track(36.742, 116.985, T0, 150, 7);
    patrol.append_track(&points[..60]).unwrap();
    patrol.append_track(&points[60..]).unwrap();
    patrol
        .set_check_item(
            "river.floating_garbage",
            CheckResult::Problem,
            "北岸",
            T0 + 1,
        )
        .unwrap();
    patrol.set_notes("巡河正常，北岸有垃圾").unwrap();
    patrol
        .add_photo(&PhotoRef {
            sha256: "ab".repeat(32),
            role: PhotoRole::Evidence,
            taken_at_ms: Some(T0 + 5),
            position: Some([116.985, 36.742]),
            bytes: 120_000,
        })
        .unwrap();
    patrol.add_issue("issue-1").unwrap();
    patrol.set_flag("mock_location", false).unwrap();
    patrol.finish(T0 + 150_000).unwrap();

    let loaded = PatrolDoc::load(&patrol.save()).unwrap();
    let view = loaded.view().unwrap();
    assert_eq!(view, patrol.view().unwrap());
    assert_eq!(view.ended_at_ms, Some(T0 + 150_000));
    assert_eq!(
        view.checks["river.floating_garbage"].result,
        CheckResult::Problem
    );
    assert_eq!(view.notes, "巡河正常，北岸有垃圾");
    assert_eq!(view.photos.len(), 1);
    assert_eq!(view.issues, vec!["issue-1".to_string()]);
    let expected: Vec<_> = points.iter().map(track::quantize).collect();
    assert_eq!(loaded.track().unwrap(), expected);
}

#[test]
fn offline_edits_to_one_patrol_merge_field_by_field() {
    let mut phone = PatrolDoc::create(actor_for(1), &new_patrol()).unwrap();
    phone.set_notes("北岸正常").unwrap();
    let mut tablet = PatrolDoc::load(&phone.save())
        .unwrap()
        .with_actor(actor_for(2));

    phone
        .set_check_item("river.water_color", CheckResult::Ok, "", T0 + 10)
        .unwrap();
    phone.set_notes("北岸正常。南岸有垃圾").unwrap();
    tablet
        .set_check_item("river.outfalls", CheckResult::Problem, "新增排口", T0 + 11)
        .unwrap();
    tablet.set_notes("巡查：北岸正常").unwrap();

    phone.merge(&mut tablet).unwrap();
    tablet.merge(&mut phone).unwrap();
    let merged = phone.view().unwrap();
    assert_eq!(merged, tablet.view().unwrap());
    assert_eq!(
        merged.checks.len(),
        2,
        "neither check item clobbers the other"
    );
    assert!(merged.notes.contains("巡查："), "{}", merged.notes);
    assert!(merged.notes.contains("南岸有垃圾"), "{}", merged.notes);
}

#[test]
fn documents_refuse_the_wrong_kind_a_newer_schema_and_garbage() {
    let mut patrol = PatrolDoc::create(actor_for(1), &new_patrol()).unwrap();
    let bytes = patrol.save();
    assert!(matches!(
        IssueDoc::load(&bytes),
        Err(DocError::WrongKind {
            expected: "issue",
            ..
        })
    ));
    let (_, header) = doc::load(&bytes).unwrap();
    assert_eq!(header.kind, DocKind::Patrol);
    assert_eq!(header.schema, doc::SCHEMA_VERSION);

    let mut future = automerge::AutoCommit::load(&bytes).unwrap();
    automerge::transaction::Transactable::put(
        &mut future,
        automerge::ROOT,
        "schema",
        automerge::ScalarValue::Uint(doc::SCHEMA_VERSION + 1),
    )
    .unwrap();
    assert!(matches!(
        PatrolDoc::load(&future.save()),
        Err(DocError::UnsupportedSchema { .. })
    ));
    assert!(matches!(
        PatrolDoc::load(b"not a document"),
        Err(DocError::Automerge(_))
    ));
}

#[test]
fn an_issue_runs_the_whole_loop_on_phone_and_web() {
    let mut issue = IssueDoc::report(actor_for(1), &chief(), "phone-1", T0, &new_issue()).unwrap();
    let view = issue.view().unwrap();
    assert_eq!(view.reporter, "u-chief");
    assert_eq!(view.location, [116.985, 36.742]);
    assert_eq!(issue.state().unwrap().status, Some(Status::Reported));

    let web = supervisor();
    issue
        .act(&web, "web", T0 + 1_000, Action::Accepted)
        .unwrap();
    let deadline = T0 + 3 * 86_400_000;
    issue
        .act(
            &web,
            "web",
            T0 + 2_000,
            Action::Assigned {
                assignee: Assignee::Department("区水务局".into()),
                deadline_ms: deadline,
            },
        )
        .unwrap();
    issue
        .act(
            &handler(),
            "phone-h",
            T0 + 86_400_000,
            Action::RectificationSubmitted {
                note: "已清理".into(),
                photos: vec!["cd".repeat(32)],
            },
        )
        .unwrap();
    issue
        .act(
            &web,
            "web",
            T0 + 90_000_000,
            Action::Verified {
                note: "核查通过".into(),
            },
        )
        .unwrap();

    let state = IssueDoc::load(&issue.save()).unwrap().state().unwrap();
    assert_eq!(state.status, Some(Status::Closed));
    assert_eq!(state.deadline_ms, Some(deadline));
    assert_eq!(state.time_to_close_ms(), Some(90_000_000));
    assert_eq!(state.rectified_on_time(), Some(true));
    assert_eq!(state.timeline.len(), 5);
}

#[test]
fn forbidden_and_invalid_actions_are_typed_errors_and_change_nothing() {
    let mut issue = IssueDoc::report(actor_for(1), &chief(), "phone-1", T0, &new_issue()).unwrap();
    let before = issue.heads();

    let err = issue
        .act(
            &chief(),
            "phone-1",
            T0 + 1,
            Action::Verified {
                note: String::new(),
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            DocError::Transition(TransitionError::InvalidTransition { .. })
                | DocError::Transition(TransitionError::Forbidden { .. })
        ),
        "{err}"
    );
    let err = issue
        .act(&chief(), "phone-1", T0 + 1, Action::Accepted)
        .unwrap_err();
    assert!(
        matches!(err, DocError::Transition(TransitionError::Forbidden { .. })),
        "{err}"
    );
    let err = issue
        .act(
            &supervisor(),
            "web",
            T0 + 1,
            Action::Verified {
                note: String::new(),
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            DocError::Transition(TransitionError::InvalidTransition { .. })
        ),
        "{err}"
    );
    assert_eq!(
        issue.heads(),
        before,
        "a refused action leaves the document untouched"
    );

    let err =
        IssueDoc::report(actor_for(2), &other_chief(), "phone-2", T0, &new_issue()).unwrap_err();
    assert!(
        matches!(err, DocError::Transition(TransitionError::Forbidden { .. })),
        "{err}"
    );
}

#[test]
fn concurrent_verify_and_reject_resolve_the_same_way_everywhere() {
    let mut issue = IssueDoc::report(actor_for(1), &chief(), "phone-1", T0, &new_issue()).unwrap();
    let web = supervisor();
    issue
        .act(
            &web,
            "web",
            T0 + 1,
            Action::Assigned {
                assignee: Assignee::User("u-chief".into()),
                deadline_ms: T0 + 86_400_000,
            },
        )
        .unwrap();
    issue
        .act(
            &chief(),
            "phone-1",
            T0 + 2,
            Action::RectificationSubmitted {
                note: "已整改".into(),
                photos: vec!["ef".repeat(32)],
            },
        )
        .unwrap();
    let mut office_a = IssueDoc::load(&issue.save())
        .unwrap()
        .with_actor(actor_for(10));
    let mut office_b = IssueDoc::load(&issue.save())
        .unwrap()
        .with_actor(actor_for(11));
    office_a
        .act(
            &web,
            "web-a",
            T0 + 3,
            Action::Verified {
                note: "通过".into(),
            },
        )
        .unwrap();
    office_b
        .act(
            &web,
            "web-b",
            T0 + 3,
            Action::Rejected {
                reason: "仍有垃圾".into(),
            },
        )
        .unwrap();

    office_a.merge(&mut office_b).unwrap();
    office_b.merge(&mut office_a).unwrap();
    let (a, b) = (office_a.state().unwrap(), office_b.state().unwrap());
    assert_eq!(a, b);
    let superseded: Vec<_> = a
        .timeline
        .iter()
        .filter(|e| e.superseded.is_some())
        .collect();
    assert_eq!(superseded.len(), 1, "exactly one of verify/reject loses");
    assert!(matches!(
        a.status,
        Some(Status::Closed) | Some(Status::Assigned)
    ));
}

#[test]
fn severity_edits_merge_as_a_field_not_a_record() {
    let mut phone = IssueDoc::report(actor_for(1), &chief(), "phone-1", T0, &new_issue()).unwrap();
    let mut web = IssueDoc::load(&phone.save())
        .unwrap()
        .with_actor(actor_for(2));
    web.set_severity(Severity::Urgent).unwrap();
    phone.set_description("河面漂浮垃圾，有异味").unwrap();
    phone.merge(&mut web).unwrap();
    let view = phone.view().unwrap();
    assert_eq!(view.severity, Severity::Urgent);
    assert_eq!(view.description, "河面漂浮垃圾，有异味");
}

#[test]
fn an_hour_of_walking_costs_under_six_bytes_a_point_in_the_saved_patrol() {
    let mut patrol = PatrolDoc::create(actor_for(1), &new_patrol()).unwrap();
    let empty = patrol.save().len();
    let points = track::walking_track(36.742, 116.985, T0, 3_600, 42);
    for chunk in points.chunks(track::CHUNK_POINTS) {
        patrol.append_track(chunk).unwrap();
    }
    let per_point = (patrol.save().len() - empty) as f64 / points.len() as f64;
    assert!(per_point <= 6.0, "{per_point:.2} bytes per point");
}
