//! What each fuzz target does with its bytes, written once so that the fuzz targets and
//! sync-core's regression test (`sync-core/tests/regressions.rs`, which includes this file)
//! drive exactly the same code path.
//!
//! Every function takes untrusted bytes and returns `Err(Refused)` with the typed error the
//! product code gave; a panic anywhere is a finding. Some targets also check a property of
//! what was accepted (a decoded message encodes back to itself, a change the server accepted
//! leaves a document that still reads by the schema) and panic when it does not hold.
//!
//! The documents the server already holds come from `fuzz/fixtures/`, saved once, so that an
//! input refers to the same change hashes in every run.

use automerge::{transaction::Transactable, AutoCommit, ObjId, ObjType, ReadDoc, ROOT};
use automerge::{Change, ScalarValue};

use sync_core::authz::{authorize_batch, DocMeta};
use sync_core::doc::{actor_for, DocView};
use sync_core::hub::testing::{MemoryHubStore, Reference};
use sync_core::hub::{Caller, DocumentStore, Hub, HubError};
use sync_core::model::{
    default_categories, Asset, DivisionCode, Geometry, Jurisdiction, Role, System, User,
};
use sync_core::photo::{sha256_hex, validate_upload, PhotoError, UploadLimits};
use sync_core::protocol::{DocPush, ProtocolError, SyncRequest, SyncResponse};
use sync_core::track::{decode_chunk, encode_chunk, TrackError};

/// The fuzz targets, by name: the names of `fuzz/fuzz_targets/*.rs` and of the directories
/// under `fuzz/regressions/`.
pub const TARGETS: &[&str] = &[
    "sync_envelope",
    "hub_sync",
    "hub_automerge_sync",
    "authz_changes",
    "track_chunk",
    "photo_upload",
];

/// Runs the target called `name` on `data`.
pub fn run(name: &str, data: &[u8]) -> Result<(), Refused> {
    match name {
        "sync_envelope" => sync_envelope(data),
        "hub_sync" => hub_sync(data),
        "hub_automerge_sync" => hub_automerge_sync(data),
        "authz_changes" => authz_changes(data),
        "track_chunk" => track_chunk(data),
        "photo_upload" => photo_upload(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// The typed error the product code refused an input with.
#[derive(Debug)]
pub enum Refused {
    Protocol(ProtocolError),
    Hub(HubError),
    Track(TrackError),
    Photo(PhotoError),
    /// A change or sync message that automerge itself does not parse.
    Automerge(String),
    /// Changes that authorization refused, with their codes.
    Authz(Vec<String>),
    /// Too few bytes to mean anything to the target.
    Empty,
}

// ---------------------------------------------------------------------------------------------
// Targets

/// The batch sync envelope, both directions; whatever decodes must encode back to itself.
pub fn sync_envelope(data: &[u8]) -> Result<(), Refused> {
    let request = SyncRequest::decode(data);
    let response = SyncResponse::decode(data);
    if let Ok(request) = &request {
        assert_eq!(SyncRequest::decode(&request.encode()).as_ref(), Ok(request));
    }
    if let Ok(response) = &response {
        assert_eq!(
            SyncResponse::decode(&response.encode()).as_ref(),
            Ok(response)
        );
    }
    match (request, response) {
        (Err(e), Err(_)) => Err(Refused::Protocol(e)),
        _ => Ok(()),
    }
}

/// `POST /sync` as the hub handles it, against a server holding the fixture documents. The
/// first byte picks the caller and how the rest is read: a whole envelope, one raw change for a
/// fixture document, or a genuine chief's push with some bytes overwritten.
pub fn hub_sync(data: &[u8]) -> Result<(), Refused> {
    let (&head, rest) = data.split_first().ok_or(Refused::Empty)?;
    let people = people();
    let caller = &people[usize::from(head & 0x07) % people.len()];
    let fixture = Fixture::get();
    let request = match head >> 6 {
        0 => SyncRequest::decode(rest).map_err(Refused::Protocol)?,
        1 => SyncRequest {
            cursor: 0,
            docs: vec![DocPush {
                doc_id: fixture.doc_id(head & 0x08 != 0).to_string(),
                server_heads: Vec::new(),
                changes: vec![rest.to_vec()],
            }],
            dropped: Vec::new(),
        },
        _ => {
            let (doc_id, mut changes) = fixture.chief_edits(head & 0x08 != 0);
            overwrite(&mut changes, rest);
            SyncRequest {
                cursor: u64::from(head & 0x10),
                docs: vec![DocPush {
                    doc_id,
                    server_heads: Vec::new(),
                    changes,
                }],
                dropped: Vec::new(),
            }
        }
    };
    let hub = Hub::new(fixture.store());
    let answer = hub.answer(caller, &request, T0).map_err(Refused::Hub)?;
    let response = &answer.response;
    // What the hub says, as the server sends it, must be something a device can decode.
    let bytes = answer.encode();
    assert_eq!(SyncResponse::decode(&bytes).as_ref(), Ok(response));
    let refused: Vec<String> = response
        .docs
        .iter()
        .flat_map(|d| d.refused.iter().map(|r| r.code.clone()))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Refused::Authz(refused))
    }
}

/// `POST /docs/{id}/automerge-sync`: one standard automerge sync message for a fixture
/// document, either as sent or as a genuine message with some bytes overwritten.
pub fn hub_automerge_sync(data: &[u8]) -> Result<(), Refused> {
    let (&head, rest) = data.split_first().ok_or(Refused::Empty)?;
    let people = people();
    let caller = &people[usize::from(head & 0x07) % people.len()];
    let fixture = Fixture::get();
    let patrol = head & 0x08 != 0;
    let message = if head & 0x80 == 0 {
        rest.to_vec()
    } else {
        let mut message = vec![fixture.sync_message(patrol)];
        overwrite(&mut message, rest);
        message.remove(0)
    };
    let hub = Hub::new(fixture.store());
    let doc_id = fixture.doc_id(patrol);
    hub.automerge_sync(caller, doc_id, &message, T0)
        .map_err(Refused::Hub)?;
    // A second message in the same session must not trip over the state the first one left.
    hub.automerge_sync(caller, doc_id, &message, T0 + 1)
        .map_err(Refused::Hub)?;
    Ok(())
}

/// Change authorization against forged edits: the bytes are a small program of raw automerge
/// edits (any key, any list, any value, header fields included) made by some person with
/// some actor on a fixture document. Whatever the server accepts must leave a document that
/// still reads by the schema.
pub fn authz_changes(data: &[u8]) -> Result<(), Refused> {
    let (&head, program) = data.split_first().ok_or(Refused::Empty)?;
    let people = people();
    let caller = &people[usize::from(head & 0x07) % people.len()];
    let fixture = Fixture::get();
    let patrol = head & 0x08 != 0;
    // Mostly the bound actor, sometimes someone else's: forgery must be refused.
    let actor = if head & 0x30 == 0x30 {
        actor_for(u64::from(head >> 6) + 1)
    } else {
        caller.actor.clone()
    };
    let mut server = fixture.doc(patrol);
    let mut forged = server.fork().with_actor(actor);
    let before = server.get_heads();
    Forger::new(&mut forged).run(program);
    let changes = forged.get_changes(&before);
    if changes.is_empty() {
        return Err(Refused::Empty);
    }
    let outcome = authorize_batch(
        &caller.user,
        &caller.actor,
        fixture.doc_id(patrol),
        &mut server,
        changes,
    );
    if !outcome.accepted.is_empty() {
        let meta = DocMeta::of(&server);
        assert!(
            meta.is_ok(),
            "accepted changes broke the document's routing facts: {meta:?}"
        );
        let view = DocView::of_bytes(&server.save());
        assert!(
            view.is_ok(),
            "accepted changes left a document that does not read: {view:?}"
        );
    }
    if outcome.refused.is_empty() {
        Ok(())
    } else {
        Err(Refused::Authz(
            outcome
                .refused
                .iter()
                .map(|(_, why)| why.code().to_string())
                .collect(),
        ))
    }
}

/// One compact GPS track chunk; whatever decodes must survive encoding and decoding again.
pub fn track_chunk(data: &[u8]) -> Result<(), Refused> {
    let points = decode_chunk(data).map_err(Refused::Track)?;
    let again = decode_chunk(&encode_chunk(&points)).map_err(Refused::Track)?;
    assert_eq!(
        again, points,
        "a decoded chunk does not encode back to itself"
    );
    Ok(())
}

/// A photo upload under its correct name, so that the checks reach the image decoders.
pub fn photo_upload(data: &[u8]) -> Result<(), Refused> {
    validate_upload(data, &sha256_hex(data), &UploadLimits::default())
        .map(|_| ())
        .map_err(Refused::Photo)
}

// ---------------------------------------------------------------------------------------------
// People and documents

/// 2026-05-01 00:00 China time, the fixtures' clock.
pub const T0: i64 = 1_777_564_800_000;
pub const VILLAGE: &str = "370105014201";
pub const DISTRICT: &str = "370105000000";
pub const WATER_BUREAU: &str = "区水务局";

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).expect("fixture division codes are valid")
}

fn caller(n: u64, id: &str, role: Role, active: bool) -> Caller {
    Caller {
        user: User {
            id: id.into(),
            username: id.into(),
            display_name: id.into(),
            role,
            active,
        },
        device: format!("phone-{n}"),
        actor: actor_for(n),
        bound_at_ms: None,
    }
}

/// The people who send bytes to the server, each on a device with a bound actor: the village
/// river chief who owns the fixtures, a neighbouring chief, the district river office, a
/// forest office, a water bureau handler, an administrator and a deactivated chief.
pub fn people() -> Vec<Caller> {
    let chief = |village: &str, asset: &str| Role::Chief {
        system: System::River,
        level: code(village).level(),
        jurisdiction: Jurisdiction {
            division: code(village),
            assets: vec![asset.into()],
        },
    };
    vec![
        caller(1, "u-chief", chief(VILLAGE, "xqh-01"), true),
        caller(2, "u-chief-2", chief("370105014202", "xqh-02"), true),
        caller(
            3,
            "u-office",
            Role::Supervisor {
                system: System::River,
                division: code(DISTRICT),
            },
            true,
        ),
        caller(
            4,
            "u-forest-office",
            Role::Supervisor {
                system: System::Forest,
                division: code(DISTRICT),
            },
            true,
        ),
        caller(
            5,
            "u-handler",
            Role::Handler {
                department: WATER_BUREAU.into(),
            },
            true,
        ),
        caller(6, "u-admin", Role::Admin, true),
        caller(7, "u-chief", chief(VILLAGE, "xqh-01"), false),
    ]
}

/// The saved fixture documents: a patrol of `u-chief` on `xqh-01` with a track, notes and a
/// check item, and an issue `u-chief` reported there that the district office accepted and
/// assigned to the water bureau.
pub const PATROL_FIXTURE: &[u8] = include_bytes!("../fixtures/patrol.automerge");
pub const ISSUE_FIXTURE: &[u8] = include_bytes!("../fixtures/issue.automerge");

/// The fixtures, loaded once per process, and the server store holding them.
#[derive(Debug)]
pub struct Fixture {
    patrol: AutoCommit,
    issue: AutoCommit,
    patrol_id: String,
    issue_id: String,
    store: MemoryHubStore,
}

impl Fixture {
    pub fn get() -> &'static Fixture {
        static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        FIXTURE.get_or_init(|| {
            let load = |bytes: &[u8]| AutoCommit::load(bytes).expect("fixtures load");
            let (patrol, issue) = (load(PATROL_FIXTURE), load(ISSUE_FIXTURE));
            let store = MemoryHubStore::with_reference(reference());
            for doc in [&patrol, &issue] {
                let meta = DocMeta::of(doc).expect("fixtures follow the schema");
                let mut doc = doc.clone();
                store
                    .save_document(&meta.id.clone(), &meta, &doc.save(), &[])
                    .expect("memory store");
            }
            Fixture {
                patrol_id: DocMeta::of(&patrol).expect("patrol").id,
                issue_id: DocMeta::of(&issue).expect("issue").id,
                patrol,
                issue,
                store,
            }
        })
    }

    pub fn doc_id(&self, patrol: bool) -> &str {
        if patrol {
            &self.patrol_id
        } else {
            &self.issue_id
        }
    }

    pub fn doc(&self, patrol: bool) -> AutoCommit {
        if patrol {
            self.patrol.clone()
        } else {
            self.issue.clone()
        }
    }

    /// A fresh copy of the server's store, so no input sees another's effects.
    pub fn store(&self) -> MemoryHubStore {
        self.store.clone()
    }

    /// A genuine push: the owning chief edits notes, description and lists of a fixture.
    fn chief_edits(&self, patrol: bool) -> (String, Vec<Vec<u8>>) {
        let mut doc = self.doc(patrol).with_actor(actor_for(1));
        let before = doc.get_heads();
        let text = |doc: &AutoCommit, key: &str| match doc.get(ROOT, key) {
            Ok(Some((_, id))) => id,
            _ => panic!("fixture lacks {key}"),
        };
        let notes = text(&doc, if patrol { "notes" } else { "description" });
        doc.splice_text(&notes, 0, 0, "堤岸完好，")
            .expect("edit fixture");
        let list = text(&doc, if patrol { "issues" } else { "photos" });
        let at = doc.length(&list);
        if patrol {
            doc.insert(&list, at, "0196a000-0000-7000-8000-000000000009")
                .expect("edit fixture");
        }
        doc.commit();
        let changes = doc
            .get_changes(&before)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        (self.doc_id(patrol).to_string(), changes)
    }

    /// A genuine first automerge sync message from the owning chief's phone, which holds one
    /// change the server lacks.
    fn sync_message(&self, patrol: bool) -> Vec<u8> {
        use automerge::sync::{State, SyncDoc};
        let (_, changes) = self.chief_edits(patrol);
        let mut phone = self.doc(patrol);
        for raw in changes {
            let change = Change::from_bytes(raw).expect("genuine change");
            phone.apply_changes([change]).expect("genuine change");
        }
        let mut state = State::new();
        let message = phone
            .sync()
            .generate_sync_message(&mut state)
            .expect("a fresh peer always has something to say");
        message.encode()
    }
}

/// Overwrites bytes of the first message: `edits` is read as (position, byte) pairs, the
/// position taken modulo the message length. A trailing odd byte truncates the message there.
fn overwrite(messages: &mut [Vec<u8>], edits: &[u8]) {
    let Some(message) = messages.first_mut() else {
        return;
    };
    let mut pairs = edits.chunks_exact(2);
    for pair in &mut pairs {
        if message.is_empty() {
            return;
        }
        let at = usize::from(pair[0]) * 7 % message.len();
        message[at] = pair[1];
    }
    if let [cut] = pairs.remainder() {
        let len = message.len();
        message.truncate(usize::from(*cut) * len / 256);
    }
}

// ---------------------------------------------------------------------------------------------
// Forged edits

/// Keys a forger writes: every root key of both document kinds, event and photo fields, and
/// one the schema does not know.
const KEYS: &[&str] = &[
    "schema",
    "kind",
    "id",
    "system",
    "asset",
    "chief",
    "division",
    "device",
    "started_at",
    "ended_at",
    "notes",
    "checks",
    "track",
    "photos",
    "issues",
    "flags",
    "category",
    "severity",
    "location",
    "reporter",
    "reported_at",
    "patrol",
    "description",
    "events",
    "by",
    "at_ms",
    "assignee",
    "deadline_ms",
    "reason",
    "note",
    "sha256",
    "role",
    "lon",
    "lat",
    "result",
    "unknown",
];

/// Strings a forger writes: ids of the people, event kinds, enum spellings, codes and junk.
const STRINGS: &[&str] = &[
    "u-chief",
    "u-chief-2",
    "u-office",
    "u-handler",
    "u-admin",
    "reported",
    "accepted",
    "assigned",
    "rectification_submitted",
    "verified",
    "rejected",
    "invalidated",
    "duplicate_of",
    "escalated",
    "reopened",
    "comment",
    "river",
    "forest",
    "field",
    "patrol",
    "issue",
    "general",
    "critical",
    "xqh-01",
    "xqh-02",
    VILLAGE,
    DISTRICT,
    WATER_BUREAU,
    "department",
    "user",
    "",
    "\u{0}",
];

/// Interprets bytes as raw automerge edits: an object cursor that can descend into the map or
/// list under a key, and puts, inserts, deletes, text splices and new objects at it.
struct Forger<'a> {
    doc: &'a mut AutoCommit,
    at: ObjId,
}

impl<'a> Forger<'a> {
    fn new(doc: &'a mut AutoCommit) -> Self {
        Self { doc, at: ROOT }
    }

    fn run(&mut self, program: &[u8]) {
        let mut bytes = program.iter().copied();
        // Automerge refuses some edits (a list index past the end, a key on a list); a forger
        // simply moves on, like a hand-written client that ignores its errors would.
        while let (Some(op), Some(arg)) = (bytes.next(), bytes.next()) {
            let key = KEYS[usize::from(arg) % KEYS.len()];
            let value = |b: u8| -> ScalarValue {
                match b % 6 {
                    0 => ScalarValue::Str(STRINGS[usize::from(b / 6) % STRINGS.len()].into()),
                    1 => ScalarValue::Int(i64::from(b) * 86_400_000 + T0),
                    2 => ScalarValue::Uint(u64::from(b)),
                    3 => ScalarValue::F64(f64::from(b) / 7.0 + 36.0),
                    4 => ScalarValue::Boolean(b & 0x80 != 0),
                    _ => ScalarValue::Null,
                }
            };
            let len = self.doc.length(&self.at);
            let index = |b: u8| {
                if len == 0 {
                    0
                } else {
                    usize::from(b) % (len + 1)
                }
            };
            match op % 9 {
                0 => self.at = ROOT,
                1 => {
                    if let Ok(Some((automerge::Value::Object(_), id))) = self.doc.get(&self.at, key)
                    {
                        self.at = id;
                    }
                }
                2 => {
                    let i = index(arg);
                    if let Ok(Some((automerge::Value::Object(_), id))) = self.doc.get(&self.at, i) {
                        self.at = id;
                    }
                }
                3 => {
                    let _ = self.doc.put(&self.at, key, value(op / 9));
                }
                4 => {
                    let _ = self.doc.insert(&self.at, index(op), value(arg));
                }
                5 => {
                    let kind =
                        [ObjType::Map, ObjType::List, ObjType::Text][usize::from(op / 9) % 3];
                    let made = match self.doc.object_type(&self.at) {
                        Ok(ObjType::List) => self.doc.insert_object(&self.at, index(arg), kind),
                        _ => self.doc.put_object(&self.at, key, kind),
                    };
                    if let Ok(id) = made {
                        self.at = id;
                    }
                }
                6 => {
                    let _ = self.doc.delete(&self.at, key);
                    if len > 0 {
                        let _ = self.doc.delete(&self.at, usize::from(arg) % len);
                    }
                }
                7 => {
                    let text = STRINGS[usize::from(arg) % STRINGS.len()];
                    let del = isize::from(op / 9 % 4);
                    let _ = self.doc.splice_text(&self.at, index(op), del, text);
                }
                _ => {
                    let _ = self.doc.increment(&self.at, key, i64::from(arg));
                }
            }
        }
        self.doc.commit();
    }
}

// ---------------------------------------------------------------------------------------------
// The server's reference data

/// What the fixtures' server knows: the two river segments of the fixtures' chiefs, along the
/// fixtures' walk, the default categories and the people.
fn reference() -> Reference {
    let river = |id: &str, village: &str| Asset {
        id: id.into(),
        system: System::River,
        name: "小清河".into(),
        division: code(village),
        geometry: Geometry::LineString(vec![[116.97, 36.72], [116.99, 36.72]]),
    };
    Reference {
        assets: vec![river("xqh-01", VILLAGE), river("xqh-02", "370105014202")],
        categories: default_categories(),
        users: people().into_iter().map(|c| c.user).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture writer

/// Builds the fixture documents through the document API, as the phones would. Run by
/// `cargo test -p sync-core --test regressions -- --ignored write_fuzz_fixtures`; the bytes are
/// kept in the repository because document and event ids are random.
pub fn build_fixtures() -> (Vec<u8>, Vec<u8>) {
    use sync_core::doc::{IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
    use sync_core::model::{CheckResult, Severity};
    use sync_core::track::walking_track;
    use sync_core::workflow::{Action, Assignee};

    let people = people();
    let (chief, office) = (&people[0], &people[2]);
    let mut patrol = PatrolDoc::create(
        chief.actor.clone(),
        &NewPatrol {
            system: System::River,
            asset: "xqh-01".into(),
            chief: chief.user.id.clone(),
            division: code(VILLAGE),
            device: chief.device.clone(),
            started_at_ms: T0,
        },
    )
    .expect("patrol");
    let track = walking_track(36.72, 116.98, T0, 180, 7);
    for chunk in track.chunks(60) {
        patrol.append_track(chunk).expect("track");
    }
    patrol.set_notes("河面清洁").expect("notes");
    patrol
        .set_check_item("river.garbage", CheckResult::Ok, "", T0 + 60_000)
        .expect("check");
    patrol.finish(T0 + 180_000).expect("finish");

    let mut issue = IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        T0 + 90_000,
        &NewIssue {
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: "xqh-01".into(),
            division: code(VILLAGE),
            location: [116.98, 36.72],
            description: "河面漂浮垃圾".into(),
            patrol: Some(patrol.id().to_string()),
        },
    )
    .expect("issue");
    let mut issue = IssueDoc::load(&issue.save())
        .expect("issue")
        .with_actor(office.actor.clone());
    issue
        .act(
            &office.user,
            &office.device,
            T0 + 3_600_000,
            Action::Accepted,
        )
        .expect("accept");
    issue
        .act(
            &office.user,
            &office.device,
            T0 + 3_700_000,
            Action::Assigned {
                assignee: Assignee::Department(WATER_BUREAU.into()),
                deadline_ms: T0 + 7 * 86_400_000,
            },
        )
        .expect("assign");
    (patrol.save(), issue.save())
}
