//! Tests of change authorization against real automerge documents built with the document API,
//! and against changes forged with raw automerge edits. Fixtures: a village river chief who
//! owns a patrol and reported an issue, the people around them, and the issue saved at each
//! step of its workflow.

mod batch;
mod forgery;
mod issue_matrix;
mod need;
mod patrol_matrix;
mod scope;

use automerge::{transaction::Transactable, ActorId, AutoCommit, Change, ObjId, ObjType, ROOT};
use serde_json::Value as Json;

use super::{authorize_batch, DocMeta};
use crate::doc::{actor_for, new_doc_id, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
use crate::model::{
    CheckResult, DivisionCode, Jurisdiction, PhotoRef, PhotoRole, Role, Severity, System,
    TrackPoint, User,
};
use crate::workflow::{Action, Assignee, Event};

pub(super) const T0: i64 = 1_777_593_600_000;
pub(super) const DAY: i64 = 86_400_000;
pub(super) const WATER_BUREAU: &str = "区水务局";
pub(super) const VILLAGE: &str = "370105014201";

pub(super) fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).unwrap()
}

fn user(id: &str, role: Role) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: id.into(),
        role,
        active: true,
    }
}

pub(super) fn chief(id: &str, system: System, division: &str, assets: &[&str]) -> User {
    user(
        id,
        Role::Chief {
            system,
            level: code(division).level(),
            jurisdiction: Jurisdiction {
                division: code(division),
                assets: assets.iter().map(|a| a.to_string()).collect(),
            },
        },
    )
}

pub(super) fn supervisor(id: &str, system: System, division: &str) -> User {
    user(
        id,
        Role::Supervisor {
            system,
            division: code(division),
        },
    )
}

pub(super) fn handler(id: &str, department: &str) -> User {
    user(
        id,
        Role::Handler {
            department: department.into(),
        },
    )
}

/// Someone acting in the matrix, with the actor bound to their device.
#[derive(Debug, Clone)]
pub(super) struct Person {
    pub user: User,
    pub actor: ActorId,
}

/// The eight people of the matrix, in the order of its columns.
pub(super) fn people() -> Vec<Person> {
    let mut retired = owner();
    retired.active = false;
    [
        owner(),
        chief("u-chief-2", System::River, "370105014202", &["xqh-02"]),
        supervisor("u-office", System::River, "370105000000"),
        supervisor("u-forest-office", System::Forest, "370105000000"),
        handler("u-handler", WATER_BUREAU),
        handler("u-handler-2", "区城管局"),
        user("u-admin", Role::Admin),
        retired,
    ]
    .into_iter()
    .enumerate()
    .map(|(n, user)| Person {
        user,
        actor: actor_for(n as u64 + 1),
    })
    .collect()
}

/// The village river chief who owns the patrol and reported the issue.
pub(super) fn owner() -> User {
    chief("u-chief", System::River, VILLAGE, &["xqh-01"])
}

pub(super) fn person(n: usize) -> Person {
    people().swap_remove(n)
}

pub(super) fn photo(n: u8) -> PhotoRef {
    PhotoRef {
        sha256: format!("{n:02x}").repeat(32),
        role: PhotoRole::Before,
        taken_at_ms: Some(T0),
        position: Some([116.985, 36.742]),
        bytes: 180_000,
    }
}

pub(super) fn points(n: i64) -> Vec<TrackPoint> {
    (0..n)
        .map(|i| TrackPoint {
            lat: 36.742 + i as f64 * 0.0001,
            lon: 116.985,
            t_ms: T0 + i * 5_000,
            accuracy_m: 5.0,
            ..TrackPoint::default()
        })
        .collect()
}

pub(super) fn new_patrol(chief: &str) -> NewPatrol {
    NewPatrol {
        system: System::River,
        asset: "xqh-01".into(),
        chief: chief.into(),
        division: code(VILLAGE),
        device: "phone-1".into(),
        started_at_ms: T0,
    }
}

pub(super) fn new_issue() -> NewIssue {
    NewIssue {
        system: System::River,
        category: "river.garbage".into(),
        severity: Severity::General,
        asset: "xqh-01".into(),
        division: code(VILLAGE),
        location: [116.985, 36.742],
        description: "河面漂浮垃圾".into(),
        patrol: None,
    }
}

/// A saved document and its id.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    pub id: String,
    pub bytes: Vec<u8>,
}

impl Saved {
    pub fn load(&self) -> AutoCommit {
        if self.bytes.is_empty() {
            AutoCommit::new()
        } else {
            AutoCommit::load(&self.bytes).unwrap()
        }
    }
}

/// The owner's patrol with a track chunk, a photo, a check item and notes.
pub(super) fn patrol() -> Saved {
    let mut patrol = PatrolDoc::create(actor_for(1), &new_patrol("u-chief")).unwrap();
    patrol.append_track(&points(12)).unwrap();
    patrol.add_photo(&photo(1)).unwrap();
    patrol
        .set_check_item("river.banks", CheckResult::Ok, "", T0)
        .unwrap();
    patrol.set_notes("岸线整洁").unwrap();
    Saved {
        id: patrol.id().to_string(),
        bytes: patrol.save(),
    }
}

/// The owner's issue saved after each step: reported (with a photo), accepted, assigned to
/// 区水务局, rectification submitted, verified.
pub(super) struct IssueSteps {
    pub reported: Saved,
    pub accepted: Saved,
    pub assigned: Saved,
    pub submitted: Saved,
    pub closed: Saved,
}

pub(super) fn issue_steps() -> IssueSteps {
    let people = people();
    let (office, bureau) = (&people[2], &people[4]);
    let mut issue = IssueDoc::report(actor_for(1), &owner(), "phone-1", T0, &new_issue()).unwrap();
    issue.add_photo(&photo(1)).unwrap();
    let id = issue.id().to_string();
    let save = |issue: &mut IssueDoc| Saved {
        id: id.clone(),
        bytes: issue.save(),
    };
    let reported = save(&mut issue);
    let act = |issue: IssueDoc, who: &Person, at: i64, action| {
        let mut issue = issue.with_actor(who.actor.clone());
        issue.act(&who.user, "phone", at, action).unwrap();
        issue
    };
    let mut issue = act(issue, office, T0 + DAY, Action::Accepted);
    let accepted = save(&mut issue);
    let mut issue = act(issue, office, T0 + DAY, assign(WATER_BUREAU));
    let assigned = save(&mut issue);
    let mut issue = act(issue, bureau, T0 + 3 * DAY, submit());
    let submitted = save(&mut issue);
    let mut issue = act(issue, office, T0 + 4 * DAY, verify());
    let closed = save(&mut issue);
    IssueSteps {
        reported,
        accepted,
        assigned,
        submitted,
        closed,
    }
}

pub(super) fn assign(department: &str) -> Action {
    Action::Assigned {
        assignee: Assignee::Department(department.into()),
        deadline_ms: T0 + 10 * DAY,
    }
}

pub(super) fn submit() -> Action {
    Action::RectificationSubmitted {
        note: "已清理".into(),
        photos: vec!["ab".repeat(32)],
    }
}

pub(super) fn verify() -> Action {
    Action::Verified {
        note: "核查通过".into(),
    }
}

pub(super) fn event(by: &str, action: Action) -> Event {
    Event {
        id: new_doc_id(),
        by: by.into(),
        device: "phone".into(),
        at_ms: T0 + 5 * DAY,
        action,
    }
}

/// The one change `edit` makes to `base`, made by `actor`.
pub(super) fn change(base: &Saved, actor: &ActorId, edit: impl FnOnce(&mut AutoCommit)) -> Change {
    let mut device = base.load().with_actor(actor.clone());
    let heads = device.get_heads();
    edit(&mut device);
    let mut changes = device.get_changes(&heads);
    assert_eq!(changes.len(), 1, "the edit makes one change");
    changes.pop().unwrap()
}

pub(super) fn as_patrol(doc: &mut AutoCommit, edit: impl FnOnce(&mut PatrolDoc)) {
    let mut patrol = PatrolDoc::from_automerge(std::mem::take(doc)).unwrap();
    edit(&mut patrol);
    *doc = std::mem::take(patrol.am_mut());
}

pub(super) fn as_issue(doc: &mut AutoCommit, edit: impl FnOnce(&mut IssueDoc)) {
    let mut issue = IssueDoc::from_automerge(std::mem::take(doc)).unwrap();
    edit(&mut issue);
    *doc = std::mem::take(issue.am_mut());
}

pub(super) fn root_object(doc: &AutoCommit, key: &str) -> ObjId {
    use automerge::ReadDoc;
    match doc.get(ROOT, key).unwrap() {
        Some((automerge::Value::Object(_), id)) => id,
        other => panic!("{key} is {other:?}"),
    }
}

/// Appends `record` to the list `key` with raw automerge writes, whatever it holds: how a
/// hostile client forges events the document API would refuse to write.
pub(super) fn push_raw(doc: &mut AutoCommit, key: &str, record: &Json) {
    use automerge::ReadDoc;
    let list = root_object(doc, key);
    let index = doc.length(&list);
    let map = doc.insert_object(&list, index, ObjType::Map).unwrap();
    write_map(doc, &map, record);
}

pub(super) fn push_event(doc: &mut AutoCommit, event: &Event) {
    push_raw(doc, "events", &serde_json::to_value(event).unwrap());
}

fn write_map(doc: &mut AutoCommit, map: &ObjId, record: &Json) {
    for (key, value) in record.as_object().expect("a record is an object") {
        match value {
            Json::Object(_) => {
                let child = doc.put_object(map, key.as_str(), ObjType::Map).unwrap();
                write_map(doc, &child, value);
            }
            Json::Array(items) => {
                let child = doc.put_object(map, key.as_str(), ObjType::List).unwrap();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Json::String(s) => doc.insert(&child, i, s.as_str()).unwrap(),
                        Json::Number(n) => doc.insert(&child, i, n.as_f64().unwrap()).unwrap(),
                        other => panic!("unsupported list item {other}"),
                    }
                }
            }
            Json::String(s) => doc.put(map, key.as_str(), s.as_str()).unwrap(),
            Json::Number(n) => match n.as_i64() {
                Some(i) => doc.put(map, key.as_str(), i).unwrap(),
                None => doc.put(map, key.as_str(), n.as_f64().unwrap()).unwrap(),
            },
            Json::Bool(b) => doc.put(map, key.as_str(), *b).unwrap(),
            Json::Null => doc
                .put(map, key.as_str(), automerge::ScalarValue::Null)
                .unwrap(),
        }
    }
}

/// Sends one change as `person` to the server holding `base`. Returns the server's document
/// when accepted, the refusal code when refused, after checking that a refused change left
/// the document exactly as it was and an accepted one leaves it readable.
pub(super) fn send(
    person: &Person,
    base: &Saved,
    change: Change,
) -> Result<AutoCommit, &'static str> {
    let mut doc = base.load();
    let heads = doc.get_heads();
    let hash = change.hash();
    let outcome = authorize_batch(
        &person.user,
        &person.actor,
        &base.id,
        &mut doc,
        vec![change],
    );
    assert!(outcome.missing_deps.is_empty());
    match outcome.refused.as_slice() {
        [] => {
            assert_eq!(outcome.accepted, vec![hash]);
            assert!(doc.get_change_by_hash(&hash).is_some());
            DocMeta::of(&doc).expect("an accepted change leaves a readable document");
            Ok(doc)
        }
        [(refused, why)] => {
            assert_eq!(*refused, hash);
            assert!(outcome.accepted.is_empty());
            assert_eq!(
                doc.get_heads(),
                heads,
                "a refused change must leave the document alone"
            );
            Err(why.code())
        }
        more => panic!("one change, {} refusals", more.len()),
    }
}

/// `send`, reduced to the code the matrix tables use.
pub(super) fn verdict(person: &Person, base: &Saved, change: Change) -> &'static str {
    match send(person, base, change) {
        Ok(_) => "ok",
        Err(code) => code,
    }
}

/// Runs one row of a matrix: `make` builds the change each person sends to `base`, and
/// `expected` says, column by column, what must become of it.
pub(super) fn row(
    action: &str,
    base: &Saved,
    expected: [&str; 8],
    make: impl Fn(&Person) -> Change,
) -> Vec<String> {
    people()
        .iter()
        .zip(expected)
        .filter_map(|(person, expected)| {
            let got = verdict(person, base, make(person));
            (got != expected).then(|| {
                format!(
                    "{action} by {}: expected {expected}, got {got}",
                    person.user.id
                )
            })
        })
        .collect()
}

pub(super) const OK: &str = "ok";
pub(super) const OUT: &str = "out_of_scope";
pub(super) const NOT_OWNER: &str = "not_owner";
pub(super) const TRANSITION: &str = "transition";
pub(super) const IMMUTABLE: &str = "immutable_field";
pub(super) const REWRITE: &str = "history_rewrite";
pub(super) const INACTIVE: &str = "inactive_user";
pub(super) const FORGED: &str = "forged_author";
pub(super) const UNBOUND: &str = "actor_not_bound";
