//! Authorized CRDT sync end to end: phones with real device stores sync with a real server on
//! 127.0.0.1 (temporary sled directory) through `/api/v1/sync`, and a foreign automerge client
//! through `/api/v1/docs/{id}/automerge-sync`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc, ROOT};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use server::demo::{self, CHIEF, CHIEF_2, FOREST_CHIEF, HANDLER, SUPERVISOR};
use sync_core::doc::{actor_for, DocKind, IssueDoc, NewIssue, PatrolDoc, Record};
use sync_core::model::{Role, Severity, System, User};
use sync_core::protocol::{DocPush, SyncRequest, MAX_MESSAGE_BYTES};
use sync_core::workflow::{Action, Assignee, Status};
use tests::phone::{self, spot_on, Phone};
use tests::server::RunningServer;

const DAY_MS: i64 = 86_400_000;
/// The phones' clock reads the real time, as the server's does: an event a phone dates before
/// its last acknowledged sync counts at that sync (`rules::times`), so a phone whose clock lags
/// the server by a year would see its deadlines refused as earlier than its reports.
static NOW: LazyLock<i64> = LazyLock::new(|| {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
});
const DEPARTMENT: &str = "区水务局";

/// The server's heads of every document it holds, as sorted hex, by id.
fn server_heads(server: &RunningServer) -> BTreeMap<String, Vec<String>> {
    let store = &server.state().store;
    let mut out = BTreeMap::new();
    for meta in store.all_documents().unwrap() {
        let stored = store.document(&meta.id).unwrap().unwrap();
        let mut doc = AutoCommit::load(&stored.bytes).unwrap();
        let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
        heads.sort();
        out.insert(meta.id, heads);
    }
    out
}

fn heads_of(server: &RunningServer, id: &str) -> Vec<String> {
    server_heads(server).remove(id).unwrap_or_default()
}

fn new_patrol(phone: &Phone, asset_id: &str, started: i64, seed: u64) -> (String, PatrolDoc) {
    phone.record_patrol(asset_id, started, 120, seed)
}

fn new_issue(phone: &Phone, asset_id: &str, at: i64, text: &str) -> String {
    phone.report(asset_id, at, text)
}

fn demo_server(dir: &Path) -> RunningServer {
    RunningServer::start(dir, true)
}

fn first_asset(user: &User) -> String {
    match &user.role {
        Role::Chief { jurisdiction, .. } => jurisdiction.assets[0].clone(),
        _ => panic!("{} is not a chief", user.id),
    }
}

/// One round of offline work on every phone, as their users would do it.
fn offline_work(phones: &[Phone], round: usize, rng: &mut StdRng) {
    let at = *NOW + round as i64 * DAY_MS;
    for phone in phones {
        match &phone.user.role {
            Role::Chief { .. } => {
                if rng.random_bool(0.7) {
                    let asset = first_asset(&phone.user);
                    let (id, mut patrol) = new_patrol(phone, &asset, at, rng.random());
                    patrol.set_notes(&format!("第{round}轮巡查")).unwrap();
                    phone.save(&mut patrol, DocKind::Patrol, &id);
                }
                if rng.random_bool(0.5) {
                    let asset = first_asset(&phone.user);
                    new_issue(
                        phone,
                        &asset,
                        at,
                        &format!("{} 第{round}轮发现", phone.device_id),
                    );
                }
                // Edit one of the user's own issues from this device, concurrently with the
                // user's other devices.
                for id in phone
                    .store()
                    .doc_ids(sync_core::store::DocKind::Issue)
                    .unwrap()
                {
                    let mut issue = phone.issue(&id).unwrap();
                    if issue.view().unwrap().reporter == phone.user.id && rng.random_bool(0.3) {
                        issue
                            .set_description(&format!("{} 补充 {round}", phone.device_id))
                            .unwrap();
                        phone.save(&mut issue, DocKind::Issue, &id);
                        break;
                    }
                }
            }
            Role::Supervisor { .. } | Role::Handler { .. } => {
                for id in phone
                    .store()
                    .doc_ids(sync_core::store::DocKind::Issue)
                    .unwrap()
                {
                    let mut issue = phone.issue(&id).unwrap();
                    let status = issue.state().unwrap().status;
                    let action = match (&phone.user.role, status) {
                        (Role::Supervisor { .. }, Some(Status::Reported)) => Action::Accepted,
                        (Role::Supervisor { .. }, Some(Status::Accepted)) => Action::Assigned {
                            assignee: Assignee::Department(DEPARTMENT.into()),
                            deadline_ms: at + 7 * DAY_MS,
                        },
                        (Role::Handler { .. }, Some(Status::Assigned)) => {
                            Action::RectificationSubmitted {
                                note: "已清理".into(),
                                photos: vec!["ab".repeat(32)],
                            }
                        }
                        _ => continue,
                    };
                    if issue.act(&phone.user, &phone.device_id, at, action).is_ok() {
                        phone.save(&mut issue, DocKind::Issue, &id);
                    }
                }
            }
            Role::Admin => {}
        }
    }
}

/// Every phone's documents equal the server's, and the phone holds exactly what its user's
/// phones receive (`authz::delivered`, at the server's clock).
fn assert_converged(server: &RunningServer, phones: &[Phone]) {
    let on_server = server_heads(server);
    for phone in phones {
        let held = phone.heads();
        for (id, heads) in &held {
            assert_eq!(
                Some(heads),
                on_server.get(id),
                "{} holds {id} at other heads than the server",
                phone.device_id
            );
        }
        let store = &server.state().store;
        for meta in store.all_documents().unwrap() {
            let visible = sync_core::authz::delivered(&phone.user, &meta, server::state::now_ms());
            assert_eq!(
                visible,
                held.contains_key(&meta.id),
                "{} and document {} ({:?})",
                phone.device_id,
                meta.id,
                meta.kind
            );
        }
    }
}

#[test]
fn phones_editing_offline_converge_in_any_order_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = demo_server(dir.path());
    let devices = [
        (CHIEF, "chief-phone"),
        (CHIEF, "chief-tablet"),
        (CHIEF_2, "chief2-phone"),
        (FOREST_CHIEF, "forest-phone"),
        (SUPERVISOR, "supervisor-phone"),
        (HANDLER, "handler-phone"),
    ];
    let stores: Vec<_> = devices
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let phones: Vec<Phone> = devices
        .iter()
        .zip(&stores)
        .map(|((user, device), store)| Phone::login(&server.base, user, device, store.path()))
        .collect();
    let mut rng = StdRng::seed_from_u64(20_261_129);
    for phone in &phones {
        phone.sync(*NOW).unwrap();
    }
    let mut created = 0;
    for round in 0..4 {
        let before: usize = phones.iter().map(|p| p.heads().len()).sum();
        offline_work(&phones, round, &mut rng);
        created += phones.iter().map(|p| p.heads().len()).sum::<usize>() - before;
        let mut order: Vec<&Phone> = phones.iter().collect();
        order.shuffle(&mut rng);
        if round % 2 == 0 {
            for phone in order {
                let report = phone.sync(*NOW).unwrap();
                assert_eq!(report.refused, 0, "{}: {report:?}", phone.device_id);
            }
        } else {
            // All phones at once: the server's per-document locks keep concurrent merges whole.
            std::thread::scope(|s| {
                for phone in order {
                    s.spawn(move || {
                        let report = phone.sync(*NOW).unwrap();
                        assert_eq!(report.refused, 0, "{}: {report:?}", phone.device_id);
                    });
                }
            });
        }
    }
    assert!(created >= 8, "the rounds created documents ({created})");
    for _ in 0..2 {
        for phone in &phones {
            phone.sync(*NOW).unwrap();
        }
    }
    assert_converged(&server, &phones);
    let progressed = server_heads(&server)
        .keys()
        .filter_map(|id| server.state().store.document(id).unwrap())
        .filter(|d| d.meta.status == Some(Status::Submitted))
        .count();
    assert!(progressed > 0, "handlers submitted rectifications");

    // Everything acknowledged survives a restart of the server on the same data.
    let acknowledged = server_heads(&server);
    server.stop();
    server = demo_server(dir.path());
    assert_eq!(server_heads(&server), acknowledged);
    // The phones' apps start again against the restarted server (on another port).
    let phones: Vec<Phone> = phones
        .into_iter()
        .map(|phone| phone.reopen(&server.base))
        .collect();
    for phone in &phones {
        let report = phone.sync(*NOW).unwrap();
        assert_eq!(
            (report.refused, report.changes_received),
            (0, 0),
            "{report:?}"
        );
    }
    assert_converged(&server, &phones);
}

#[test]
fn the_common_case_takes_one_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", a.path());
    let supervisor = Phone::login(&server.base, SUPERVISOR, "supervisor-phone", b.path());
    assert_eq!(chief.sync(*NOW).unwrap().round_trips, 1, "first sync");
    assert_eq!(supervisor.sync(*NOW).unwrap().round_trips, 1, "first sync");
    let id = new_issue(&chief, "river-thh-01", *NOW, "岸边堆放建筑垃圾");
    let up = chief.sync(*NOW).unwrap();
    assert_eq!(
        (up.round_trips, up.docs_sent, up.refused),
        (1, 1, 0),
        "{up:?}"
    );

    // The supervisor receives it and accepts it; the chief receives the event. One round trip
    // each, every time.
    let down = supervisor.sync(*NOW).unwrap();
    assert_eq!((down.round_trips, down.docs_received), (1, 1), "{down:?}");
    let mut issue = supervisor.issue(&id).unwrap();
    issue
        .act(
            &supervisor.user,
            "supervisor-phone",
            *NOW + 1,
            Action::Accepted,
        )
        .unwrap();
    supervisor.save(&mut issue, DocKind::Issue, &id);
    let up = supervisor.sync(*NOW).unwrap();
    assert_eq!((up.round_trips, up.refused), (1, 0), "{up:?}");
    // The acceptance, and the server's receipt of it.
    let down = chief.sync(*NOW).unwrap();
    assert_eq!(
        (down.round_trips, down.changes_received),
        (1, 2),
        "{down:?}"
    );
    assert_eq!(
        chief.issue(&id).unwrap().state().unwrap().status,
        Some(Status::Accepted)
    );
    // A retried request changes nothing: same answer, nothing twice.
    let again = chief.sync(*NOW).unwrap();
    assert_eq!((again.round_trips, again.changes_received), (1, 0));
}

/// A chief who pretends, locally, to hold another role: the device lets them write what that
/// role may write; the server judges the change by who they really are.
fn pretending(user: &User, role: Role) -> User {
    User {
        role,
        ..user.clone()
    }
}

fn supervisor_role() -> Role {
    demo::facts().user(SUPERVISOR).unwrap().role.clone()
}

/// Drives `/docs/{id}/automerge-sync` with plain automerge until the server has nothing more to
/// say. Returns the number of round trips, or the first non-2xx answer.
fn automerge_sync_loop(
    base: &str,
    token: &str,
    id: &str,
    doc: &mut AutoCommit,
) -> Result<usize, phone::HttpReply> {
    let mut state = sync::State::new();
    let mut trips = 0;
    loop {
        let Some(message) = doc.sync().generate_sync_message(&mut state) else {
            break;
        };
        trips += 1;
        assert!(trips < 20, "sync with the server does not settle");
        let reply = phone::post_bytes(
            base,
            Some(token),
            &format!("/api/v1/docs/{id}/automerge-sync"),
            &message.encode(),
        );
        match reply.status {
            200 => {
                let message = sync::Message::decode(&reply.bytes).expect("a sync message");
                doc.sync()
                    .receive_sync_message(&mut state, message)
                    .unwrap();
            }
            204 => {}
            _ => return Err(reply),
        }
    }
    Ok(trips)
}

/// Makes a forbidden change on a copy of a document, as the given phone.
type Write = Box<dyn Fn(&Phone, &mut AutoCommit)>;

struct Forbidden {
    name: &'static str,
    phone: usize,
    doc: String,
    /// Makes the forbidden change on a copy of the document.
    write: Write,
}

#[test]
fn forbidden_writes_are_refused_through_both_endpoints_and_allowed_ones_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let names = [CHIEF, CHIEF_2, SUPERVISOR, HANDLER, FOREST_CHIEF];
    let stores: Vec<_> = names.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let phones: Vec<Phone> = names
        .iter()
        .zip(&stores)
        .map(|(name, store)| {
            Phone::login(&server.base, name, &format!("{name}-phone"), store.path())
        })
        .collect();
    let [chief, _, supervisor, _, forest] = &phones[..] else {
        unreachable!()
    };
    for phone in &phones {
        phone.sync(*NOW).unwrap();
    }
    let (patrol, _) = new_patrol(chief, "river-thh-01", *NOW, 7);
    let issue = new_issue(chief, "river-thh-01", *NOW, "排污口异常");
    chief.sync(*NOW).unwrap();
    let forest_issue = {
        let asset = first_asset(&forest.user);
        let id = new_issue(forest, &asset, *NOW, "林下堆放垃圾");
        forest.sync(*NOW).unwrap();
        id
    };
    supervisor.sync(*NOW).unwrap();

    let cases: Vec<Forbidden> = vec![
        Forbidden {
            name: "another chief writes a chief's patrol",
            phone: 1,
            doc: patrol.clone(),
            write: Box::new(|p, doc| {
                let mut patrol = PatrolDoc::from_automerge(doc.clone()).unwrap();
                patrol.set_notes("改写别人的巡查").unwrap();
                *doc = patrol.am().clone();
                assert_ne!(p.user.id, "u-demo-chief");
            }),
        },
        Forbidden {
            name: "a chief verifies their own issue",
            phone: 0,
            doc: issue.clone(),
            write: Box::new(|p, doc| {
                let mut issue = IssueDoc::from_automerge(doc.clone()).unwrap();
                let me = pretending(&p.user, supervisor_role());
                issue
                    .act(&me, &p.device_id, *NOW, Action::Accepted)
                    .unwrap();
                *doc = issue.am().clone();
            }),
        },
        Forbidden {
            name: "a chief appends an event in the supervisor's name",
            phone: 0,
            doc: issue.clone(),
            write: Box::new(|p, doc| {
                let mut issue = IssueDoc::from_automerge(doc.clone()).unwrap();
                let boss = demo::facts().user(SUPERVISOR).unwrap().clone();
                issue
                    .act(&boss, &p.device_id, *NOW, Action::Accepted)
                    .unwrap();
                *doc = issue.am().clone();
            }),
        },
        Forbidden {
            name: "a chief writes under an actor id not bound to the device",
            phone: 0,
            doc: patrol.clone(),
            write: Box::new(|_, doc| {
                let mut patrol = PatrolDoc::from_automerge(doc.clone())
                    .unwrap()
                    .with_actor(actor_for(4242));
                patrol.set_notes("换了身份").unwrap();
                *doc = patrol.am().clone();
            }),
        },
        Forbidden {
            name: "a chief deletes an event from the history",
            phone: 0,
            doc: issue.clone(),
            write: Box::new(|_, doc| {
                let (_, events) = doc.get(ROOT, "events").unwrap().unwrap();
                doc.delete(&events, 0).unwrap();
            }),
        },
        Forbidden {
            name: "a chief rewrites who reported",
            phone: 0,
            doc: issue.clone(),
            write: Box::new(|_, doc| {
                let (_, events) = doc.get(ROOT, "events").unwrap().unwrap();
                let (_, first) = doc.get(&events, 0).unwrap().unwrap();
                doc.put(&first, "by", "u-demo-chief-2").unwrap();
            }),
        },
        Forbidden {
            name: "a chief rewrites the reporter of the record",
            phone: 0,
            doc: issue.clone(),
            write: Box::new(|_, doc| {
                doc.put(ROOT, "reporter", "u-demo-chief-2").unwrap();
            }),
        },
        Forbidden {
            name: "a chief accepts and assigns their own issue",
            phone: 0,
            doc: issue.clone(),
            write: Box::new(move |p, doc| {
                let mut issue = IssueDoc::from_automerge(doc.clone()).unwrap();
                let boss = pretending(&p.user, supervisor_role());
                issue
                    .act(&boss, &p.device_id, *NOW, Action::Accepted)
                    .unwrap();
                issue
                    .act(
                        &boss,
                        &p.device_id,
                        *NOW,
                        Action::Assigned {
                            assignee: Assignee::Department(DEPARTMENT.into()),
                            deadline_ms: *NOW + DAY_MS,
                        },
                    )
                    .unwrap();
                *doc = issue.am().clone();
            }),
        },
        Forbidden {
            name: "a handler acts on an issue not assigned to their department",
            phone: 3,
            doc: issue.clone(),
            write: Box::new(move |p, doc| {
                let mut issue = IssueDoc::from_automerge(doc.clone()).unwrap();
                issue
                    .act(
                        &pretending(&p.user, supervisor_role()),
                        &p.device_id,
                        *NOW,
                        Action::Accepted,
                    )
                    .unwrap();
                *doc = issue.am().clone();
            }),
        },
        Forbidden {
            name: "the river supervisor accepts a forest issue",
            phone: 2,
            doc: forest_issue.clone(),
            write: Box::new(|p, doc| {
                let mut issue = IssueDoc::from_automerge(doc.clone()).unwrap();
                let forest_boss = pretending(
                    &p.user,
                    Role::Supervisor {
                        system: System::Forest,
                        division: sync_core::model::DivisionCode::new("370105000000").unwrap(),
                    },
                );
                issue
                    .act(&forest_boss, &p.device_id, *NOW, Action::Accepted)
                    .unwrap();
                *doc = issue.am().clone();
            }),
        },
    ];

    for case in &cases {
        let phone = &phones[case.phone];
        let before = server_heads(&server);
        let stored = server.state().store.document(&case.doc).unwrap().unwrap();

        // Through the batch protocol: the change is pushed and refused, nothing merged.
        let mut doc = AutoCommit::load(&stored.bytes)
            .unwrap()
            .with_actor(phone.actor.clone());
        let known = doc.get_heads();
        (case.write)(phone, &mut doc);
        let changes: Vec<Vec<u8>> = doc
            .get_changes(&known)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        assert!(
            !changes.is_empty(),
            "{}: the case writes something",
            case.name
        );
        let request = SyncRequest {
            cursor: 0,
            docs: vec![DocPush {
                doc_id: case.doc.clone(),
                server_heads: known.iter().map(|h| h.0).collect(),
                changes,
            }],
            dropped: Vec::new(),
        };
        let reply = phone::post_bytes(
            &server.base,
            Some(&phone.token()),
            "/api/v1/sync",
            &request.encode(),
        );
        assert_eq!(reply.status, 200, "{}: {}", case.name, reply.json());
        let response = sync_core::protocol::SyncResponse::decode(&reply.bytes).unwrap();
        let update = response.docs.iter().find(|u| u.doc_id == case.doc).unwrap();
        assert!(
            !update.refused.is_empty(),
            "{}: refused through /sync",
            case.name
        );
        assert_eq!(
            server_heads(&server),
            before,
            "{}: nothing merged",
            case.name
        );

        // Through the standard automerge endpoint: the message is refused whole.
        let mut doc = AutoCommit::load(&stored.bytes)
            .unwrap()
            .with_actor(phone.actor.clone());
        (case.write)(phone, &mut doc);
        let refused = automerge_sync_loop(&server.base, &phone.token(), &case.doc, &mut doc)
            .expect_err(case.name);
        assert!(
            [403, 404].contains(&refused.status),
            "{}: {} {}",
            case.name,
            refused.status,
            refused.json()
        );
        assert!(refused.json()["error"].is_string(), "{}", case.name);
        assert_eq!(
            server_heads(&server),
            before,
            "{}: nothing merged",
            case.name
        );
    }

    // The allowed counterparts are accepted through both endpoints.
    let stored = server.state().store.document(&issue).unwrap().unwrap();
    let mut doc = IssueDoc::load(&stored.bytes)
        .unwrap()
        .with_actor(supervisor.actor.clone());
    doc.act(
        &supervisor.user,
        &supervisor.device_id,
        *NOW,
        Action::Accepted,
    )
    .unwrap();
    let mut doc = doc.am().clone();
    automerge_sync_loop(&server.base, &supervisor.token(), &issue, &mut doc).unwrap();
    let accepted = server.state().store.document(&issue).unwrap().unwrap();
    assert_eq!(accepted.meta.status, Some(Status::Accepted));

    let mut patrol_doc = chief.patrol(&patrol).unwrap();
    patrol_doc.set_notes("巡查完毕，一切正常").unwrap();
    chief.save(&mut patrol_doc, DocKind::Patrol, &patrol);
    let report = chief.sync(*NOW).unwrap();
    assert_eq!(report.refused, 0, "{report:?}");
    let view = phone::get(
        &server.base,
        &chief.token(),
        &format!("/api/v1/docs/{patrol}"),
    );
    assert_eq!(view.json()["record"]["notes"], "巡查完毕，一切正常");

    // The audit says who sent what from which device, to supervisors only.
    let history = phone::get(
        &server.base,
        &supervisor.token(),
        &format!("/api/v1/docs/{issue}/history"),
    );
    assert_eq!(history.status, 200, "{}", history.json());
    let rows = history.json();
    let users: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["u-demo-chief", "u-demo-supervisor"]);
    phone::get(
        &server.base,
        &chief.token(),
        &format!("/api/v1/docs/{issue}/history"),
    )
    .expect_error(403, "forbidden");
    phone::get(
        &server.base,
        &phones[1].token(),
        &format!("/api/v1/docs/{issue}"),
    )
    .expect_error(404, "not_found");
}

#[test]
fn a_refused_offline_change_goes_to_quarantine_and_the_phone_keeps_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let store = tempfile::tempdir().unwrap();
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", store.path());
    chief.sync(*NOW).unwrap();
    let id = new_issue(&chief, "river-thh-01", *NOW, "河道淤堵");
    chief.sync(*NOW).unwrap();

    // Offline, the chief's app (a modified one) closes the issue itself, and also writes a
    // legitimate patrol.
    let mut issue = chief.issue(&id).unwrap();
    let boss = pretending(&chief.user, supervisor_role());
    issue
        .act(
            &boss,
            "chief-phone",
            *NOW,
            Action::Invalidated {
                reason: "自己关掉".into(),
            },
        )
        .unwrap();
    chief.save(&mut issue, DocKind::Issue, &id);
    let (patrol, _) = new_patrol(&chief, "river-thh-01", *NOW, 3);
    let report = chief.sync(*NOW).unwrap();
    assert_eq!(report.refused, 1, "{report:?}");

    let quarantined = chief.store().quarantined().unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].doc_id, id);
    assert!(
        !quarantined[0].change.is_empty(),
        "the refused change is kept"
    );
    assert!(
        quarantined[0].reason.contains(':'),
        "{}",
        quarantined[0].reason
    );
    // The device is realigned with the server: the issue is open again, the patrol arrived.
    assert_eq!(chief.heads()[&id], heads_of(&server, &id));
    assert_eq!(
        chief.issue(&id).unwrap().state().unwrap().status,
        Some(Status::Reported)
    );
    assert_eq!(chief.heads()[&patrol], heads_of(&server, &patrol));

    // And syncs normally afterwards.
    let mut issue = chief.issue(&id).unwrap();
    issue.set_description("河道淤堵，约50米").unwrap();
    chief.save(&mut issue, DocKind::Issue, &id);
    let report = chief.sync(*NOW).unwrap();
    assert_eq!((report.refused, report.round_trips), (0, 1), "{report:?}");
    let stored = server.state().store.document(&id).unwrap().unwrap();
    assert_eq!(
        IssueDoc::load(&stored.bytes)
            .unwrap()
            .view()
            .unwrap()
            .description,
        "河道淤堵，约50米"
    );
}

#[test]
fn an_edit_over_the_servers_limits_is_held_back_and_the_rest_of_the_work_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let store = tempfile::tempdir().unwrap();
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", store.path());
    chief.sync(*NOW).unwrap();
    let id = new_issue(&chief, "river-thh-01", *NOW, "河道淤堵");
    chief.sync(*NOW).unwrap();
    let before = heads_of(&server, &id);

    // Offline, a description pasted far over the operations one change may hold (text is one
    // operation per character), then a patrol.
    let mut issue = chief.issue(&id).unwrap();
    let pasted = "淤".repeat(sync_core::hub::limits::MAX_CHANGE_OPS + 1);
    issue.set_description(&pasted).unwrap();
    chief.save(&mut issue, DocKind::Issue, &id);
    let (patrol, _) = new_patrol(&chief, "river-thh-01", *NOW, 4);
    let report = chief.sync(*NOW).unwrap();

    // The sync went through: the patrol arrived, the oversized edit never left the phone.
    assert_eq!((report.refused, report.round_trips), (1, 1), "{report:?}");
    assert_eq!(chief.heads()[&patrol], heads_of(&server, &patrol));
    assert_eq!(
        heads_of(&server, &id),
        before,
        "the server's issue is unchanged"
    );
    let quarantined = chief.store().quarantined().unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].doc_id, id);
    assert!(!quarantined[0].change.is_empty(), "the edit is kept");
    assert!(
        quarantined[0].reason.starts_with("too_many_ops"),
        "{}",
        quarantined[0].reason
    );
    // The phone's copy shows what the server holds, and the next sync has nothing to send.
    assert_eq!(chief.heads()[&id], before);
    assert_eq!(
        chief.issue(&id).unwrap().view().unwrap().description,
        "河道淤堵"
    );
    let again = chief.sync(*NOW).unwrap();
    assert_eq!((again.refused, again.docs_sent), (0, 0), "{again:?}");
}

#[test]
fn malformed_truncated_and_oversized_bodies_get_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let store = tempfile::tempdir().unwrap();
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", store.path());
    chief.sync(*NOW).unwrap();
    new_issue(&chief, "river-thh-01", *NOW, "垃圾");
    let request = chief.client().build_request(*NOW).unwrap().encode();
    let before = server_heads(&server);
    let head = server.state().store.feed_head().unwrap();
    let token = chief.token();
    let token = Some(token.as_str());

    let post = |body: &[u8]| phone::post_bytes(&server.base, token, "/api/v1/sync", body);
    post(b"GET / HTTP/1.1").expect_error(400, "bad_magic");
    post(&request[..request.len() / 2]).expect_error(400, "malformed");
    let mut wrong_version = request.clone();
    wrong_version[4] = 99;
    post(&wrong_version).expect_error(400, "unsupported_version");
    let garbage_change = SyncRequest {
        cursor: 0,
        docs: vec![DocPush {
            doc_id: "issue-x".into(),
            server_heads: vec![],
            changes: vec![vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]],
        }],
        dropped: Vec::new(),
    };
    post(&garbage_change.encode()).expect_error(400, "malformed_change");
    post(&vec![0u8; MAX_MESSAGE_BYTES + 1]).expect_error(413, "payload_too_large");
    phone::post_bytes(&server.base, None, "/api/v1/sync", &request)
        .expect_error(401, "missing_token");
    phone::post_bytes(
        &server.base,
        Some("forged.token.here"),
        "/api/v1/sync",
        &request,
    )
    .expect_error(401, "invalid_token");

    let id = before.keys().next().unwrap().clone();
    let path = format!("/api/v1/docs/{id}/automerge-sync");
    phone::post_bytes(&server.base, token, &path, b"\x42not a sync message")
        .expect_error(400, "malformed_message");
    phone::post_bytes(&server.base, token, &path, &[]).expect_error(400, "malformed_message");
    phone::post_bytes(
        &server.base,
        token,
        &path,
        &vec![7u8; MAX_MESSAGE_BYTES + 1],
    )
    .expect_error(413, "payload_too_large");

    assert_eq!(server_heads(&server), before, "stored documents untouched");
    assert_eq!(server.state().store.feed_head().unwrap(), head);
    // The well-formed request still goes through afterwards.
    assert_eq!(post(&request).status, 200);
    assert_eq!(server_heads(&server).len(), before.len() + 1);
}

#[test]
fn a_plain_automerge_client_discovers_syncs_and_creates_documents() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let grant = phone::login(&server.base, CHIEF, "demo", "automerge-js-app");
    let token = grant["access_token"].as_str().unwrap();
    let actor = sync_core::doc::parse_actor(grant["actor_id"].as_str().unwrap()).unwrap();

    // Discover the documents in scope, page by page.
    let mut listed = Vec::new();
    let mut after = String::new();
    loop {
        let page = phone::get(
            &server.base,
            token,
            &format!("/api/v1/docs?kind=issue&limit=3&after={after}"),
        )
        .json();
        for doc in page["docs"].as_array().unwrap() {
            assert_eq!(doc["kind"], "issue");
            listed.push((
                doc["id"].as_str().unwrap().to_owned(),
                doc["heads"].as_array().unwrap().len(),
            ));
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    let chief = demo::facts().user(CHIEF).unwrap().clone();
    let expected: Vec<String> = server
        .state()
        .store
        .all_documents()
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == DocKind::Issue && sync_core::authz::in_scope(&chief, m))
        .map(|m| m.id)
        .collect();
    assert!(expected.len() > 3, "several pages");
    assert_eq!(
        listed.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        expected
    );

    // Sync one from nothing with the standard protocol: the client ends at the server's heads.
    let id = &listed[0].0;
    let mut doc = AutoCommit::new().with_actor(actor.clone());
    let trips = automerge_sync_loop(&server.base, token, id, &mut doc).unwrap();
    assert!(trips >= 2, "{trips}");
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    assert_eq!(heads, heads_of(&server, id));

    // Edit it and sync again: the server merges the edit.
    let mut issue = IssueDoc::from_automerge(doc).unwrap();
    issue.set_description("automerge 客户端补充说明").unwrap();
    let mut doc = issue.am().clone();
    automerge_sync_loop(&server.base, token, id, &mut doc).unwrap();
    let stored = server.state().store.document(id).unwrap().unwrap();
    assert_eq!(
        IssueDoc::load(&stored.bytes)
            .unwrap()
            .view()
            .unwrap()
            .description,
        "automerge 客户端补充说明"
    );

    // A new issue is created on the server by its first sync.
    let asset = demo::facts().asset("river-thh-01").unwrap().clone();
    let new = IssueDoc::report(
        actor,
        &chief,
        "automerge-js-app",
        *NOW,
        &NewIssue {
            system: System::River,
            category: "river.outfall".into(),
            severity: Severity::Urgent,
            asset: asset.id,
            location: spot_on(&asset.geometry),
            division: asset.division,
            description: "新发现排污口".into(),
            patrol: None,
        },
    )
    .unwrap();
    let new_id = new.view().unwrap().id;
    let mut doc = new.am().clone();
    automerge_sync_loop(&server.base, token, &new_id, &mut doc).unwrap();
    let stored = server.state().store.document(&new_id).unwrap().unwrap();
    assert_eq!(stored.meta.owner, chief.id);
    assert_eq!(stored.meta.status, Some(Status::Reported));
}

#[test]
fn a_new_jurisdiction_adds_and_removes_documents_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The supervisor reports a problem on 耿庄村's river: the chief there receives it.
    let supervisor = Phone::login(&server.base, SUPERVISOR, "supervisor-phone", a.path());
    supervisor.sync(*NOW).unwrap();
    let reported = new_issue(&supervisor, "river-thh-03", *NOW, "桥下垃圾");
    supervisor.sync(*NOW).unwrap();
    let chief2 = Phone::login(&server.base, CHIEF_2, "chief2-phone", b.path());
    chief2.sync(*NOW).unwrap();
    assert!(chief2.heads().contains_key(&reported));
    let before: Vec<String> = chief2.heads().into_keys().collect();
    assert!(!before.is_empty());

    // The admin moves the chief to 小寨村 (the first chief's village and rivers).
    let admin = phone::login(&server.base, demo::ADMIN, "demo", "admin-web");
    let admin_token = admin["access_token"].as_str().unwrap();
    let first = demo::facts().user(CHIEF).unwrap().role.clone();
    let reply = phone::send_json(
        &server.base,
        admin_token,
        "PATCH",
        &format!("/api/v1/admin/users/{}", chief2.user.id),
        &json!({ "role": first }),
    );
    assert_eq!(reply.status, 200, "{}", reply.json());

    let report = chief2.sync(*NOW).unwrap();
    let moved = User {
        role: first,
        ..chief2.user.clone()
    };
    let after: Vec<String> = chief2.heads().into_keys().collect();
    let expected: Vec<String> = server
        .state()
        .store
        .all_documents()
        .unwrap()
        .into_iter()
        .filter(|m| sync_core::authz::delivered(&moved, m, server::state::now_ms()))
        .map(|m| m.id)
        .collect();
    assert_eq!(after, expected);
    assert!(report.removed > 0 && report.docs_received > 0, "{report:?}");
    let left = before.iter().filter(|id| !after.contains(id)).count();
    assert_eq!(
        report.removed, left,
        "each document that left is removed once"
    );
    assert!(!after.contains(&reported), "left with the old jurisdiction");
    assert!(
        after.iter().any(|id| !before.contains(id)),
        "the new one arrived"
    );
}

#[test]
fn an_edit_saved_while_a_sync_is_on_its_way_is_sent_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let store = tempfile::tempdir().unwrap();
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", store.path());
    chief.sync(*NOW).unwrap();
    let id = new_issue(&chief, "river-thh-01", *NOW, "护栏损坏");

    // The app's background sync builds its request; meanwhile the chief keeps typing.
    let client = chief.client();
    let request = client.build_request(*NOW).unwrap();
    let mut issue = chief.issue(&id).unwrap();
    issue.set_description("护栏损坏，约3米").unwrap();
    chief.save(&mut issue, DocKind::Issue, &id);
    let reply = phone::post_bytes(
        &server.base,
        Some(&chief.token()),
        "/api/v1/sync",
        &request.encode(),
    );
    let response = sync_core::protocol::SyncResponse::decode(&reply.bytes).unwrap();
    let mut report = sync_core::client::SyncReport::default();
    client
        .apply_response(&request, &response, *NOW, &mut report)
        .unwrap();
    assert!(
        client.dirty().unwrap().contains(&id),
        "the edit is still to send"
    );

    chief.sync(*NOW).unwrap();
    let stored = server.state().store.document(&id).unwrap().unwrap();
    assert_eq!(
        IssueDoc::load(&stored.bytes)
            .unwrap()
            .view()
            .unwrap()
            .description,
        "护栏损坏，约3米"
    );
    assert!(client.dirty().unwrap().is_empty());
}

/// A phone back with many documents has them received on every core of the server; each
/// answer still belongs to its own document, in the order pushed, refusals included.
#[test]
fn a_large_push_is_received_on_every_core_and_answered_document_by_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path());
    let store = tempfile::tempdir().unwrap();
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", store.path());
    chief.sync(*NOW).unwrap();
    let asset = first_asset(&chief.user);
    let mut ids: Vec<String> = (0..40)
        .map(|n| new_issue(&chief, &asset, *NOW + n, &format!("问题 {n}")))
        .collect();
    // One in the middle names another chief as its reporter: refused, alone.
    let other = demo::facts().user(CHIEF_2).unwrap().clone();
    let facts = demo::facts();
    let place = facts.asset(&first_asset(&other)).unwrap();
    let mut forged = IssueDoc::report(
        chief.actor.clone(),
        &other,
        "chief-phone",
        *NOW,
        &NewIssue {
            system: place.system,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: place.id.clone(),
            division: place.division.clone(),
            location: spot_on(&place.geometry),
            description: "冒名上报".into(),
            patrol: None,
        },
    )
    .unwrap();
    let forged_id = forged.view().unwrap().id;
    chief.save(&mut forged, DocKind::Issue, &forged_id);
    ids.insert(20, forged_id.clone());

    let client = chief.client();
    let request = client.build_request(*NOW).unwrap();
    assert!(request.docs.len() >= 41, "{} pushed", request.docs.len());
    let reply = phone::post_bytes(
        &server.base,
        Some(&chief.token()),
        "/api/v1/sync",
        &request.encode(),
    );
    assert_eq!(reply.status, 200);
    let response = sync_core::protocol::SyncResponse::decode(&reply.bytes).unwrap();
    let answered: Vec<&str> = response.docs.iter().map(|u| u.doc_id.as_str()).collect();
    let pushed: Vec<&str> = request.docs.iter().map(|p| p.doc_id.as_str()).collect();
    assert_eq!(
        &answered[..pushed.len()],
        &pushed[..],
        "answers in push order"
    );
    for update in &response.docs[..pushed.len()] {
        let refused = !update.refused.is_empty();
        assert_eq!(refused, update.doc_id == forged_id, "{}", update.doc_id);
    }
    let on_server = server_heads(&server);
    for id in ids.iter().filter(|id| **id != forged_id) {
        // Stored as pushed: everything the phone sent, plus the server's receipt of the report.
        let stored = server.state().store.document(id).unwrap().unwrap();
        let doc = AutoCommit::load(&stored.bytes).unwrap();
        for head in chief.issue(id).unwrap().heads() {
            assert!(
                doc.get_change_by_hash(&head).is_some(),
                "{id} stored as pushed"
            );
        }
        let receipts = IssueDoc::from_automerge(doc).unwrap().receipts().unwrap();
        assert_eq!(receipts.len(), 1, "{id}");
    }
    assert!(!on_server.contains_key(&forged_id));
}
