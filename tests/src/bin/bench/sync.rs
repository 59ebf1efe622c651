//! `sync`: one chief's phone syncing with the server, in one process on the same documents, with
//! ChiefSync's batch protocol (`SyncClient` against the hub, as `POST /sync` runs it) and with
//! plain automerge sync messages (the `POST /docs/{id}/automerge-sync` loop against the same
//! hub). Both sides keep their documents and sync state in the real stores: the server's sled
//! store and the phone's device store.
//!
//! Scenarios, on a village river chief's 250 reported issues:
//! - `one event`: the chief adds one comment to one issue;
//! - `50 + 200`: the chief comments on 50 issues while the district river office accepted 200
//!   others;
//! - `30 days`: the chief comes back after 30 days offline with 30 patrols (30 min, 1 Hz) and 5
//!   new issues, while the office accepted, assigned and escalated 40 issues and reported 20.
//!
//! The automerge client keeps its sync state per document across sessions. It must learn which
//! documents changed on the server: it reads `GET /docs` (ids and heads of everything in scope,
//! JSON, counted as one round trip per page of 500) and syncs the documents whose heads differ
//! plus its own changed ones. In `one event` it only syncs the one document it changed, its best
//! case (it learns nothing else). Each measured sync is checked: afterwards the phone holds
//! exactly the server's heads for every document in its scope.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, Change, ChangeHash};
use server::api::docs::{DocEntry, DocPage};
use server::storage::{SledStore, Store, UserRecord};
use sync_core::authz::in_scope;
use sync_core::client::{ClientError, SyncClient, Transport};
use sync_core::doc::{actor_for, DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
use sync_core::hub::{AutomergeSyncOutcome, Caller, DocumentStore, Hub, HubError};
use sync_core::model::{Asset, CheckResult, Geometry, Severity, User};
use sync_core::protocol::{DocPush, SyncRequest};
use sync_core::store::{self, LocalStore};
use sync_core::track::{self, walk_along};
use sync_core::workflow::{Action, Assignee};

const NOW: i64 = 1_764_288_000_000;
const DAY_MS: i64 = 86_400_000;
const BASE_ISSUES: usize = 250;
const PHONE: &str = "bench-phone";
const PEER: &str = "server";
/// `GET /docs` pages hold at most this many documents.
const LISTING_PAGE: usize = 500;

/// One document's new changes, as raw automerge changes.
#[derive(Clone)]
struct Edit {
    id: String,
    kind: DocKind,
    changes: Vec<Vec<u8>>,
}

struct Scenario {
    name: &'static str,
    local: Vec<Edit>,
    remote: Vec<Edit>,
    /// Whether the automerge client reads the listing to discover remote changes.
    listing: bool,
}

impl Scenario {
    fn raw_bytes(&self) -> usize {
        self.local
            .iter()
            .chain(&self.remote)
            .flat_map(|e| &e.changes)
            .map(Vec::len)
            .sum()
    }
}

struct People {
    chief: Caller,
    office: Caller,
    asset: Asset,
}

fn people() -> People {
    let facts = server::demo::facts();
    let user = |name: &str| -> User { facts.user(name).expect("demo person").clone() };
    let chief = user(server::demo::CHIEF);
    let asset_id = match &chief.role {
        sync_core::model::Role::Chief { jurisdiction, .. } => jurisdiction.assets[0].clone(),
        _ => unreachable!("the demo chief is a chief"),
    };
    People {
        asset: facts.asset(&asset_id).expect("chief's asset").clone(),
        chief: Caller {
            user: chief,
            device: PHONE.into(),
            actor: actor_for(1),
            bound_at_ms: None,
        },
        office: Caller {
            user: user(server::demo::SUPERVISOR),
            device: "bench-office".into(),
            actor: actor_for(2),
            bound_at_ms: None,
        },
    }
}

/// Issue `n`'s place: on the asset, a few centimetres along from its first point, as a chief
/// reports what he sees from the bank (the server refuses reports far from the asset).
fn on_asset(asset: &Asset, n: usize) -> [f64; 2] {
    let [lon, lat] = match &asset.geometry {
        Geometry::LineString(points) => points[0],
        Geometry::Polygon(rings) => rings[0][0],
    };
    [lon + n as f64 * 1e-6, lat]
}

fn new_issue(asset: &Asset, n: usize) -> NewIssue {
    NewIssue {
        system: asset.system,
        category: "river.garbage".into(),
        severity: Severity::General,
        asset: asset.id.clone(),
        division: asset.division.clone(),
        location: on_asset(asset, n),
        description: format!("河面漂浮垃圾，第{n}处"),
        patrol: None,
    }
}

fn changes_since(doc: &mut AutoCommit, heads: &[ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(heads)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

/// New events on existing issues, one change each, written by `who` with `actor`.
fn events(
    base: &[(String, Vec<u8>)],
    who: &Caller,
    device: &str,
    actions: &dyn Fn(usize) -> Vec<Action>,
) -> Vec<Edit> {
    base.iter()
        .enumerate()
        .map(|(n, (id, bytes))| {
            let mut issue = IssueDoc::load(bytes)
                .expect("base issue")
                .with_actor(who.actor.clone());
            let heads = issue.heads();
            for (k, action) in actions(n).into_iter().enumerate() {
                issue
                    .act(&who.user, device, NOW + n as i64 * 1_000 + k as i64, action)
                    .expect("allowed event");
                issue.am_mut().commit();
            }
            Edit {
                id: id.clone(),
                kind: DocKind::Issue,
                changes: changes_since(issue.am_mut(), &heads),
            }
        })
        .collect()
}

fn reported(who: &Caller, device: &str, asset: &Asset, count: usize, from: usize) -> Vec<Edit> {
    (from..from + count)
        .map(|n| {
            let mut issue = IssueDoc::report(
                who.actor.clone(),
                &who.user,
                device,
                NOW,
                &new_issue(asset, n),
            )
            .expect("report");
            Edit {
                id: issue.id().to_string(),
                kind: DocKind::Issue,
                changes: changes_since(issue.am_mut(), &[]),
            }
        })
        .collect()
}

/// A 30-minute patrol at 1 Hz, saved a minute of fixes at a time as the phone does.
fn patrol(who: &Caller, asset: &Asset, day: usize) -> Edit {
    let started = NOW - (30 - day as i64) * DAY_MS;
    let mut doc = PatrolDoc::create(
        who.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: who.user.id.clone(),
            division: asset.division.clone(),
            device: PHONE.into(),
            started_at_ms: started,
        },
    )
    .expect("patrol");
    let walk = walk_along(&asset.geometry, started, 1_800, day as u64);
    // As the phone's recorder writes it: ten minutes of fixes per change.
    for part in walk.chunks(track::CHANGE_POINTS) {
        doc.append_track(part).expect("track chunks");
        doc.am_mut().commit();
    }
    for item in sync_core::model::default_check_items()
        .iter()
        .filter(|c| c.system == asset.system)
    {
        doc.set_check_item(&item.code, CheckResult::Ok, "", started + 60_000)
            .expect("check item");
    }
    doc.set_notes("巡查正常").expect("notes");
    doc.finish(walk.last().map_or(started, |p| p.t_ms))
        .expect("finish");
    Edit {
        id: doc.id().to_string(),
        kind: DocKind::Patrol,
        changes: changes_since(doc.am_mut(), &[]),
    }
}

fn comment(n: usize) -> Vec<Action> {
    vec![Action::Comment {
        text: format!("复查：垃圾仍在，第{n}次提醒"),
    }]
}

/// `days` of patrols in `30 days` (30 in the bench; fewer in the test of the scenarios).
fn scenarios(people: &People, base: &[(String, Vec<u8>)], days: usize) -> Vec<Scenario> {
    let (chief, office, asset) = (&people.chief, &people.office, &people.asset);
    let accept = |_: usize| vec![Action::Accepted];
    let handle = |n: usize| {
        vec![
            Action::Accepted,
            Action::Assigned {
                assignee: Assignee::Department("区水务局".into()),
                deadline_ms: NOW + (1 + n as i64 % 7) * DAY_MS,
            },
            Action::Escalated {
                note: "超期未整改，督办".into(),
            },
        ]
    };
    let mut back = events(&base[..10], chief, PHONE, &comment);
    back.extend(reported(chief, PHONE, asset, 5, base.len()));
    back.extend((0..days).map(|day| patrol(chief, asset, 30 - days + day)));
    let mut office_month = events(&base[50..90], office, "bench-web", &handle);
    office_month.extend(reported(office, "bench-web", asset, 20, base.len() + 5));
    vec![
        Scenario {
            name: "one event",
            local: events(&base[..1], chief, PHONE, &comment),
            remote: Vec::new(),
            listing: false,
        },
        Scenario {
            name: "50 + 200",
            local: events(&base[..50], chief, PHONE, &comment),
            remote: events(&base[50..], office, "bench-web", &accept),
            listing: true,
        },
        Scenario {
            name: "30 days",
            local: back,
            remote: office_month,
            listing: true,
        },
    ]
}

/// The district's reference data the server checks pushed records against: divisions, assets
/// (a new issue must lie within a kilometre of a known asset of its system and division),
/// categories and check items, and the district's people, as the server the phone talks to
/// holds them.
fn seed_reference(store: &SledStore) {
    let facts = server::demo::facts();
    for division in &facts.divisions {
        store.put_division(division).expect("division");
    }
    for asset in &facts.assets {
        store.put_asset(asset).expect("asset");
    }
    server::settings::seed_defaults(store).expect("reference defaults");
    for person in &facts.people {
        store
            .create_user(&UserRecord {
                user: person.user.clone(),
                password_hash: None,
                created_at_ms: NOW - 60 * DAY_MS,
                updated_at_ms: NOW - 60 * DAY_MS,
            })
            .expect("user");
    }
}

/// The server and the chief's phone, each on its own temporary sled directory.
struct World {
    _dir: tempfile::TempDir,
    hub: Hub<SledStore>,
    phone: LocalStore,
    /// The server's time for the automerge client's messages, ms: it moves on only while the
    /// client waits out the server's rate limit.
    clock: std::cell::Cell<i64>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = SledStore::open(&dir.path().join("server")).expect("server store");
        seed_reference(&server);
        Self {
            hub: Hub::new(server),
            phone: LocalStore::open(dir.path().join("phone")).expect("phone store"),
            clock: std::cell::Cell::new(NOW),
            _dir: dir,
        }
    }

    /// What another device of the district's river office pushes while the phone is away.
    fn push_remote(&self, office: &Caller, remote: &[Edit]) {
        if remote.is_empty() {
            return;
        }
        let mut docs = Vec::new();
        for edit in remote {
            let server_heads = match self.hub.store().document(&edit.id).expect("read") {
                Some(stored) => AutoCommit::load(&stored.bytes)
                    .expect("stored doc")
                    .get_heads()
                    .iter()
                    .map(|h| h.0)
                    .collect(),
                None => Vec::new(),
            };
            docs.push(DocPush {
                doc_id: edit.id.clone(),
                server_heads,
                changes: edit.changes.clone(),
            });
        }
        let response = self
            .hub
            .sync(
                office,
                &SyncRequest {
                    cursor: 0,
                    docs,
                    dropped: Vec::new(),
                },
                NOW,
            )
            .expect("office sync");
        assert!(response.docs.iter().all(|d| d.refused.is_empty()));
    }

    /// The server's heads of every document in the chief's scope.
    fn server_heads(&self, chief: &Caller) -> BTreeMap<String, Vec<ChangeHash>> {
        let store = self.hub.store();
        store
            .all_documents()
            .expect("documents")
            .into_iter()
            .filter(|m| in_scope(&chief.user, m))
            .map(|m| {
                let stored = store.document(&m.id).expect("read").expect("present");
                let mut doc = AutoCommit::load(&stored.bytes).expect("stored doc");
                (m.id, sorted(doc.get_heads()))
            })
            .collect()
    }

    fn phone_heads(&self) -> BTreeMap<String, Vec<ChangeHash>> {
        let mut out = BTreeMap::new();
        for kind in [store::DocKind::Patrol, store::DocKind::Issue] {
            for id in self.phone.doc_ids(kind).expect("ids") {
                out.insert(id.clone(), sorted(self.load(&id).expect("doc").get_heads()));
            }
        }
        out
    }

    fn load(&self, id: &str) -> Option<AutoCommit> {
        let bytes = self.phone.load_doc(id).expect("phone store")?;
        Some(AutoCommit::load(&bytes).expect("phone doc"))
    }

    fn assert_converged(&self, chief: &Caller, what: &str) {
        assert!(
            self.server_heads(chief) == self.phone_heads(),
            "{what}: the phone and the server differ after the sync"
        );
    }
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

fn store_kind(kind: DocKind) -> store::DocKind {
    match kind {
        DocKind::Patrol => store::DocKind::Patrol,
        DocKind::Issue => store::DocKind::Issue,
    }
}

/// What one measured sync cost.
#[derive(Clone, Copy, Default)]
struct Cost {
    round_trips: usize,
    up: usize,
    down: usize,
    micros: u128,
    /// Time the server's rate limit made the client wait (simulated, not in `micros`), ms.
    waited_ms: i64,
}

/// `POST /sync` without HTTP: the body goes through the same codec and hub call.
struct InProcess<'a> {
    hub: &'a Hub<SledStore>,
    caller: &'a Caller,
}

impl Transport for InProcess<'_> {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let request = SyncRequest::decode(&body)?;
        let answer = self
            .hub
            .answer(self.caller, &request, NOW)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(answer.encode())
    }
}

/// Applies an edit to the phone's copy and marks it for the next batch sync, as the app's save.
fn edit_batch_phone(world: &World, edit: &Edit) {
    let client = SyncClient::new(&world.phone);
    let mut doc = world.load(&edit.id).unwrap_or_default();
    let changes = edit
        .changes
        .iter()
        .map(|raw| Change::from_bytes(raw.clone()).expect("change"))
        .collect::<Vec<_>>();
    doc.apply_changes(changes).expect("apply");
    match edit.kind {
        DocKind::Issue => {
            let mut issue = IssueDoc::from_automerge(doc).expect("issue");
            client.save(&mut issue, edit.kind, &edit.id).expect("save");
        }
        DocKind::Patrol => {
            let mut patrol = PatrolDoc::from_automerge(doc).expect("patrol");
            client.save(&mut patrol, edit.kind, &edit.id).expect("save");
        }
    }
}

/// The server took every change the phone sent: a refused change is quarantined on the phone
/// and its document realigned, so the scenario would no longer be the one it claims to measure.
fn assert_nothing_refused(world: &World, refused: usize, what: &str) {
    let quarantined = world.phone.quarantined().expect("quarantine");
    assert!(
        refused == 0 && quarantined.is_empty(),
        "{what}: the server refused {refused} changes; quarantined: {:?}",
        quarantined
            .iter()
            .map(|q| format!("{} {}", q.doc_id, q.reason))
            .take(3)
            .collect::<Vec<_>>()
    );
}

fn run_batch(people: &People, base: &[Edit], scenario: &Scenario) -> Cost {
    let world = World::new();
    let chief = &people.chief;
    let mut transport = InProcess {
        hub: &world.hub,
        caller: chief,
    };
    for edit in base {
        edit_batch_phone(&world, edit);
    }
    let client = SyncClient::new(&world.phone);
    // Two syncs: a phone that has synced before, in the steady state the scenarios start from.
    for _ in 0..2 {
        let report = client.sync(&mut transport, NOW).expect("earlier sync");
        assert_nothing_refused(&world, report.refused, "the phone's earlier sync");
    }
    world.push_remote(&people.office, &scenario.remote);
    for edit in &scenario.local {
        edit_batch_phone(&world, edit);
    }
    let started = Instant::now();
    let report = client.sync(&mut transport, NOW).expect("sync");
    let micros = started.elapsed().as_micros();
    assert_nothing_refused(&world, report.refused, scenario.name);
    world.assert_converged(chief, scenario.name);
    Cost {
        round_trips: report.round_trips as usize,
        up: report.bytes_up,
        down: report.bytes_down,
        micros,
        waited_ms: 0,
    }
}

/// The plain automerge client: a sync-message loop per document, sync state kept per document.
fn automerge_doc(world: &World, chief: &Caller, id: &str, kind: DocKind, cost: &mut Cost) {
    let mut doc = world.load(id).unwrap_or_default();
    let mut state = match world.phone.sync_state(id, PEER).expect("sync state") {
        Some(bytes) => sync::State::decode(&bytes).expect("stored sync state"),
        None => sync::State::new(),
    };
    let before = doc.get_heads();
    let mut exchanges = 0;
    loop {
        let Some(message) = doc.sync().generate_sync_message(&mut state) else {
            break;
        };
        let body = message.encode();
        cost.up += body.len();
        cost.round_trips += 1;
        exchanges += 1;
        // The server rates each device's automerge messages (`limits::DEVICE_SYNC_MESSAGES_PER_MINUTE`);
        // a client that honours its Retry-After waits, here on the bench's clock, and sends the
        // same message again. The wait is reported apart from the measured time.
        let outcome = loop {
            match world
                .hub
                .automerge_sync(chief, id, &body, world.clock.get())
            {
                Err(HubError::RateLimited { retry_after_secs }) => {
                    let wait = retry_after_secs as i64 * 1_000;
                    world.clock.set(world.clock.get() + wait);
                    cost.waited_ms += wait;
                }
                other => break other.expect("automerge sync"),
            }
        };
        match outcome {
            AutomergeSyncOutcome::Reply(reply) => {
                cost.down += reply.len();
                let reply = sync::Message::decode(&reply).expect("server message");
                doc.sync()
                    .receive_sync_message(&mut state, reply)
                    .expect("receive");
            }
            AutomergeSyncOutcome::NothingToSend => {}
        }
        assert!(exchanges < 50, "{id}: the automerge sync does not settle");
    }
    if doc.get_heads() != before || world.phone.load_doc(id).expect("read").is_none() {
        let bytes = if before.is_empty() {
            doc.save()
        } else {
            doc.save_incremental()
        };
        world
            .phone
            .append_doc_changes(id, store_kind(kind), &bytes)
            .expect("store");
    }
    world
        .phone
        .put_sync_state(id, PEER, &state.encode())
        .expect("store sync state");
}

/// `GET /docs?limit=500`, paged: what the automerge client learns the server's heads from.
fn listing(world: &World, chief: &Caller, cost: &mut Cost) -> Vec<DocEntry> {
    let server = world.server_heads(chief);
    let kinds: BTreeMap<String, DocKind> = world
        .hub
        .store()
        .all_documents()
        .expect("documents")
        .into_iter()
        .map(|m| (m.id, m.kind))
        .collect();
    let entries: Vec<DocEntry> = server
        .into_iter()
        .map(|(id, heads)| DocEntry {
            kind: kinds[&id].as_str().to_owned(),
            heads: heads.iter().map(|h| h.to_string()).collect(),
            id,
        })
        .collect();
    for page in entries.chunks(LISTING_PAGE) {
        cost.round_trips += 1;
        cost.up += format!("GET /api/v1/docs?limit={LISTING_PAGE}").len();
        let body = DocPage {
            docs: page
                .iter()
                .map(|e| DocEntry {
                    id: e.id.clone(),
                    kind: e.kind.clone(),
                    heads: e.heads.clone(),
                })
                .collect(),
            next: None,
        };
        cost.down += serde_json::to_vec(&body).expect("json").len();
    }
    entries
}

fn edit_automerge_phone(world: &World, edit: &Edit) {
    let mut doc = world.load(&edit.id).unwrap_or_default();
    let fresh = doc.get_heads().is_empty();
    let changes = edit
        .changes
        .iter()
        .map(|raw| Change::from_bytes(raw.clone()).expect("change"))
        .collect::<Vec<_>>();
    doc.apply_changes(changes).expect("apply");
    let bytes = if fresh {
        doc.save()
    } else {
        doc.save_incremental()
    };
    world
        .phone
        .append_doc_changes(&edit.id, store_kind(edit.kind), &bytes)
        .expect("store");
}

fn run_automerge(people: &People, base: &[Edit], scenario: &Scenario) -> Cost {
    let world = World::new();
    let chief = &people.chief;
    let mut setup = Cost::default();
    for edit in base {
        edit_automerge_phone(&world, edit);
        automerge_doc(&world, chief, &edit.id, edit.kind, &mut setup);
    }
    world.push_remote(&people.office, &scenario.remote);
    for edit in &scenario.local {
        edit_automerge_phone(&world, edit);
    }
    let started = Instant::now();
    let mut cost = Cost::default();
    let mut todo: BTreeMap<String, DocKind> = scenario
        .local
        .iter()
        .map(|e| (e.id.clone(), e.kind))
        .collect();
    if scenario.listing {
        let mine: BTreeSet<(String, Vec<String>)> = world
            .phone_heads()
            .into_iter()
            .map(|(id, heads)| (id, heads.iter().map(|h| h.to_string()).collect()))
            .collect();
        for entry in listing(&world, chief, &mut cost) {
            if !mine.contains(&(entry.id.clone(), entry.heads.clone())) {
                let kind = DocKind::parse(&entry.kind).expect("kind");
                todo.insert(entry.id, kind);
            }
        }
    }
    for (id, kind) in &todo {
        automerge_doc(&world, chief, id, *kind, &mut cost);
    }
    cost.micros = started.elapsed().as_micros();
    world.assert_converged(chief, scenario.name);
    cost
}

fn median(mut values: Vec<u128>) -> u128 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:.2}x", a / b)
    }
}

/// The chief's `issues` reported issues, as changes and as saved documents.
fn base(people: &People, issues: usize) -> (Vec<Edit>, Vec<(String, Vec<u8>)>) {
    let base = reported(&people.chief, PHONE, &people.asset, issues, 0);
    let base_bytes = base
        .iter()
        .map(|e| {
            let mut doc = AutoCommit::new();
            let changes = e
                .changes
                .iter()
                .map(|raw| Change::from_bytes(raw.clone()).expect("change"));
            doc.apply_changes(changes).expect("apply");
            (e.id.clone(), doc.save())
        })
        .collect();
    (base, base_bytes)
}

pub fn run(runs: usize) {
    let people = people();
    let (base, base_bytes) = base(&people, BASE_ISSUES);
    let runs = runs.max(1);
    println!(
        "sync: a village river chief's phone, {BASE_ISSUES} issues on the server; \
         median time of {runs} runs"
    );
    println!(
        "{:<10} {:<9} {:>5} {:>10} {:>10} {:>10} {:>9} {:>10}",
        "scenario",
        "protocol",
        "trips",
        "bytes up",
        "bytes down",
        "raw new",
        "wire/raw",
        "median ms"
    );
    for scenario in scenarios(&people, &base_bytes, 30) {
        let raw = scenario.raw_bytes();
        let mut results = Vec::new();
        for (name, measure) in [
            (
                "chiefsync",
                run_batch as fn(&People, &[Edit], &Scenario) -> Cost,
            ),
            ("automerge", run_automerge),
        ] {
            let costs: Vec<Cost> = (0..runs)
                .map(|_| measure(&people, &base, &scenario))
                .collect();
            let cost = Cost {
                micros: median(costs.iter().map(|c| c.micros).collect()),
                ..costs[0]
            };
            println!(
                "{:<10} {:<9} {:>5} {:>10} {:>10} {:>10} {:>9} {:>10.1}",
                scenario.name,
                name,
                cost.round_trips,
                cost.up,
                cost.down,
                raw,
                ratio((cost.up + cost.down) as f64, raw as f64),
                cost.micros as f64 / 1_000.0
            );
            if cost.waited_ms > 0 {
                println!(
                    "{:<10} {:<9} waits {:.0} s for the server's rate limit (not in the time)",
                    "",
                    name,
                    cost.waited_ms as f64 / 1_000.0
                );
            }
            results.push(cost);
        }
        let (ours, theirs) = (results[0], results[1]);
        println!(
            "{:<10} {:<9} {:>5} {:>10} {:>10} {:>10} {:>9} {:>10}",
            "",
            "am/ours",
            ratio(theirs.round_trips as f64, ours.round_trips as f64),
            ratio(theirs.up as f64, ours.up as f64),
            ratio(theirs.down as f64, ours.down as f64),
            "",
            ratio(
                (theirs.up + theirs.down) as f64,
                (ours.up + ours.down) as f64
            ),
            ratio(theirs.micros as f64, ours.micros as f64),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scenario, once, on 100 issues and 3 days of patrols: the server takes all the
    /// chief's and the office's changes (no refusal, nothing quarantined), ChiefSync's batch
    /// brings the phone level with the server in one round trip, and the automerge loop
    /// converges too. Guards the bench's synthetic district against the server's checks.
    #[test]
    fn every_scenario_converges_in_one_round_trip() {
        let people = people();
        let (base, base_bytes) = base(&people, 100);
        for scenario in scenarios(&people, &base_bytes, 3) {
            let ours = run_batch(&people, &base, &scenario);
            assert_eq!(
                ours.round_trips, 1,
                "{}: chiefsync round trips",
                scenario.name
            );
            assert!(
                ours.up > 0 && ours.down > 0,
                "{}: nothing on the wire",
                scenario.name
            );
            let theirs = run_automerge(&people, &base, &scenario);
            assert!(
                theirs.round_trips >= 1,
                "{}: automerge did not sync",
                scenario.name
            );
        }
    }
}
