//! Attacks: amplification. A small request that makes the server do, keep or answer far more
//! than it carries: the same document pushed thousands of times, an answer or a load without
//! bound, an operation counter pushed to the end of its range so the document can never take
//! another change, and automerge sync messages for made-up document ids that the server
//! answered and remembered.

use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::{transaction::Transactable, AutoCommit, ReadDoc, ROOT};
use serde_json::Value;
use server::demo::{self, CHIEF};
use sync_core::doc::{parse_actor, NewPatrol, PatrolDoc, Record};
use sync_core::protocol::{DocPush, SyncRequest, SyncResponse, MAX_PUSHED_DOCS};
use sync_core::track::walk_along;

use crate::harness::TestServer;

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts a JSON error with this status and code.
    fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.json());
        assert_eq!(self.json()["error"], code, "{}", self.json());
        assert!(self.json()["message"].is_string(), "{}", self.json());
    }

    fn sync(&self) -> SyncResponse {
        assert_eq!(self.status, 200, "{}", self.json());
        SyncResponse::decode(&self.body).expect("a sync response")
    }
}

async fn post(s: &TestServer, path: &str, token: &str, body: Vec<u8>) -> Answer {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut res = client
        .post(format!("{}{path}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .content_type("application/octet-stream")
        .send_body(body)
        .await
        .expect("request sent");
    Answer {
        status: res.status().as_u16(),
        body: res
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .expect("body")
            .to_vec(),
    }
}

async fn sync(s: &TestServer, token: &str, request: &SyncRequest) -> Answer {
    post(s, "/api/v1/sync", token, request.encode()).await
}

fn raw_changes(doc: &mut AutoCommit, since: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(since)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

fn push(id: &str, changes: Vec<Vec<u8>>) -> DocPush {
    DocPush {
        doc_id: id.to_owned(),
        server_heads: Vec::new(),
        changes,
    }
}

/// A new patrol of `demo-chief` on the device of `grant`, with `points` track points.
fn new_patrol(grant: &Value, points: usize, seed: u64) -> PatrolDoc {
    let facts = demo::facts();
    let asset = facts.asset("river-thh-01").unwrap();
    let started = server::state::now_ms() - 3_600_000;
    let mut patrol = PatrolDoc::create(
        parse_actor(grant["actor_id"].as_str().unwrap()).unwrap(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: facts.user(CHIEF).unwrap().id.clone(),
            division: asset.division.clone(),
            device: grant["device_id"].as_str().unwrap().to_owned(),
            started_at_ms: started,
        },
    )
    .unwrap();
    patrol
        .append_track(&walk_along(&asset.geometry, started, points, seed))
        .unwrap();
    patrol
}

/// A patrol of `demo-chief`, stored through `/sync`; returns it with its id.
async fn stored_patrol(s: &TestServer, grant: &Value, points: usize) -> (String, PatrolDoc) {
    let mut patrol = new_patrol(grant, points, 3);
    let id = patrol.id().to_owned();
    let changes = raw_changes(patrol.am_mut(), &[]);
    let token = grant["access_token"].as_str().unwrap();
    let reply = sync(
        s,
        token,
        &SyncRequest {
            cursor: 0,
            docs: vec![push(&id, changes)],
            dropped: Vec::new(),
        },
    )
    .await;
    let response = reply.sync();
    assert!(response.docs.iter().all(|d| d.refused.is_empty()));
    (id, patrol)
}

/// One small request that names the same stored patrol twenty thousand times (2 KB on the wire,
/// deflated) made the server load it and answer it whole twenty thousand times. Now a request names each
/// document once, and pushes at most `MAX_PUSHED_DOCS` documents; anything else is a 400 that
/// stores nothing.
#[actix_web::test]
async fn one_request_pushing_the_same_document_thousands_of_times_is_refused() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let (id, mut patrol) = stored_patrol(&s, &grant, 300).await;
    let changes = raw_changes(patrol.am_mut(), &[]);
    let history = s.get(&format!("/api/v1/docs/{id}/history"), &token).await;

    // Each push holds nothing and claims the device holds nothing: each would be answered with
    // the whole patrol.
    let repeated = SyncRequest {
        cursor: 0,
        docs: vec![push(&id, Vec::new()); 20_000],
        dropped: Vec::new(),
    };
    let body = repeated.encode();
    assert!(body.len() < 4 * 1024, "{} bytes", body.len());
    let started = Instant::now();
    let reply = post(&s, "/api/v1/sync", &token, body).await;
    reply.refused(400, "too_many_documents");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Under the cap, a repeat is refused as such; twice is already once too many.
    let repeated = SyncRequest {
        cursor: 0,
        docs: vec![push(&id, Vec::new()); MAX_PUSHED_DOCS],
        dropped: Vec::new(),
    };
    sync(&s, &token, &repeated)
        .await
        .refused(400, "duplicate_document");
    let twice = SyncRequest {
        cursor: 0,
        docs: vec![push(&id, changes.clone()), push(&id, Vec::new())],
        dropped: Vec::new(),
    };
    sync(&s, &token, &twice)
        .await
        .refused(400, "duplicate_document");

    // More documents than a request may push, each named once.
    let many = SyncRequest {
        cursor: 0,
        dropped: Vec::new(),
        docs: (0..=MAX_PUSHED_DOCS)
            .map(|i| push(&format!("0193c7a0-0000-7000-8000-{i:012}"), Vec::new()))
            .collect(),
    };
    sync(&s, &token, &many)
        .await
        .refused(400, "too_many_documents");
    // A document id of thirty thousand characters.
    let long = SyncRequest {
        cursor: 0,
        docs: vec![push(&"x".repeat(30_000), Vec::new())],
        dropped: Vec::new(),
    };
    sync(&s, &token, &long)
        .await
        .refused(400, "bad_document_id");

    // Nothing was stored, and the patrol still syncs once.
    let after = s.get(&format!("/api/v1/docs/{id}/history"), &token).await;
    assert_eq!(after.body, history.body);
    let once = SyncRequest {
        cursor: 0,
        docs: vec![push(&id, changes)],
        dropped: Vec::new(),
    };
    let response = sync(&s, &token, &once).await.sync();
    assert!(response.docs.iter().all(|d| d.refused.is_empty()));
}

/// A chief's phone forges a change whose operation numbers start near `u32::MAX`: once the
/// server merged it, no later change to the patrol could be numbered, and every sync that
/// touched the patrol failed. Now the change is refused (`op_counter_jump`), nothing of it is
/// stored, and the patrol takes the chief's next edit and reaches another phone as before.
#[actix_web::test]
async fn a_change_numbering_its_operations_near_the_end_of_the_range_is_refused() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let (id, mut patrol) = stored_patrol(&s, &grant, 30).await;
    let history = s.get(&format!("/api/v1/docs/{id}/history"), &token).await;

    // One honest edit, renumbered by hand with automerge's own change encoding.
    let doc = patrol.am_mut();
    let heads = doc.get_heads();
    let mut forged = doc.fork().with_actor(doc.get_actor().clone());
    let notes = forged.get(ROOT, "notes").unwrap().unwrap().1;
    forged.splice_text(&notes, 0, 0, "巡").unwrap();
    forged.commit();
    let honest = forged.get_changes(&heads)[0].clone();
    let mut expanded = honest.decode();
    expanded.start_op = std::num::NonZeroU64::new(u64::from(u32::MAX) - 2).unwrap();
    expanded.hash = None;
    let poisoned = automerge::Change::from(expanded);
    assert_eq!(poisoned.deps(), honest.deps());
    let reply = sync(
        &s,
        &token,
        &SyncRequest {
            cursor: 0,
            docs: vec![DocPush {
                doc_id: id.clone(),
                server_heads: heads.iter().map(|h| h.0).collect(),
                changes: vec![poisoned.raw_bytes().to_vec()],
            }],
            dropped: Vec::new(),
        },
    )
    .await
    .sync();
    let update = reply.docs.iter().find(|d| d.doc_id == id).unwrap();
    assert_eq!(update.refused.len(), 1, "{update:?}");
    assert_eq!(update.refused[0].code, "op_counter_jump");
    assert_eq!(update.refused[0].hash, poisoned.hash().0);
    let after = s.get(&format!("/api/v1/docs/{id}/history"), &token).await;
    assert_eq!(after.body, history.body, "the forged change was stored");

    // The chief's next edit goes through.
    let notes = doc.get(ROOT, "notes").unwrap().unwrap().1;
    doc.splice_text(&notes, 0, 0, "堤岸完好").unwrap();
    doc.commit();
    let edit = raw_changes(doc, &heads);
    let reply = sync(
        &s,
        &token,
        &SyncRequest {
            cursor: 0,
            docs: vec![DocPush {
                doc_id: id.clone(),
                server_heads: heads.iter().map(|h| h.0).collect(),
                changes: edit,
            }],
            dropped: Vec::new(),
        },
    )
    .await
    .sync();
    assert!(reply.docs.iter().all(|d| d.refused.is_empty()), "{reply:?}");

    // Another phone of the chief receives the whole patrol and reads it.
    let tablet = s.token(CHIEF, "tablet").await;
    let first = sync(&s, &tablet, &SyncRequest::default()).await.sync();
    let update = first.docs.iter().find(|d| d.doc_id == id).expect("sent");
    let mut copy = AutoCommit::new();
    for change in &update.changes {
        copy.load_incremental(change).unwrap();
    }
    assert_eq!(copy.get_heads(), doc.get_heads());
    let notes = copy.get(ROOT, "notes").unwrap().unwrap().1;
    assert!(copy.text(&notes).unwrap().starts_with("堤岸完好"));
}

async fn automerge_sync(s: &TestServer, token: &str, id: &str, message: Vec<u8>) -> Answer {
    post(
        s,
        &format!("/api/v1/docs/{id}/automerge-sync"),
        token,
        message,
    )
    .await
}

/// The handler (the weakest role) posted one empty automerge sync message for each of hundreds
/// of made-up document ids: each was answered 200 while a document outside the handler's scope
/// was answered 404 (so the answers told which ids exist), and each left a sync state on disk
/// for good. Now a document outside the caller's scope and one that does not exist get the same
/// answer, nothing is stored for either, an id longer than a document id is a 400, and a device
/// sending for ever new ids is stopped by its own rate.
#[actix_web::test]
async fn automerge_sync_for_made_up_ids_tells_nothing_and_keeps_nothing() {
    let s = TestServer::demo().await;
    let chief = s.login(CHIEF, "phone-1").await;
    let (patrol, _) = stored_patrol(&s, &chief, 30).await;
    let handler = s.token(demo::HANDLER, "handler-phone").await;
    let device = format!(
        "{}/handler-phone",
        demo::facts().user(demo::HANDLER).unwrap().id
    );
    let opening = AutoCommit::new()
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .unwrap()
        .encode();

    // The chief's patrol is outside the handler's scope: answered as a made-up id is.
    let hidden = automerge_sync(&s, &handler, &patrol, opening.clone()).await;
    let made_up = automerge_sync(
        &s,
        &handler,
        "0193c7a0-0000-7000-8000-00000000beef",
        opening.clone(),
    )
    .await;
    assert_eq!(
        (hidden.status, &hidden.body),
        (made_up.status, &made_up.body),
        "{} / {}",
        hidden.json(),
        made_up.json()
    );
    // Asking the hidden patrol for its changes gets nothing of it either.
    let mut empty = AutoCommit::new();
    let mut state = sync::State::new();
    let mut rounds = 0;
    loop {
        let Some(message) = empty.sync().generate_sync_message(&mut state) else {
            break;
        };
        let reply = automerge_sync(&s, &handler, &patrol, message.encode()).await;
        if reply.status == 204 {
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.json());
        empty
            .sync()
            .receive_sync_message(&mut state, sync::Message::decode(&reply.body).unwrap())
            .unwrap();
        rounds += 1;
        assert!(rounds < 10, "the exchange does not settle");
    }
    assert!(empty.get_heads().is_empty(), "the hidden patrol leaked");

    // Hundreds of made-up ids, each once: nothing is kept for any of them.
    for i in 0..300 {
        let id = format!("0193c7a0-0000-7000-8000-{i:012}");
        let reply = automerge_sync(&s, &handler, &id, opening.clone()).await;
        assert_eq!(reply.status, made_up.status, "{}", reply.json());
    }
    let kept = s.state.store.sync_states(&device).unwrap();
    assert!(kept.is_empty(), "{} sync states kept", kept.len());

    // An id of thirty thousand characters is not a document id.
    automerge_sync(&s, &handler, &"x".repeat(30_000), opening.clone())
        .await
        .refused(400, "bad_document_id");

    // New ids are no fresh allowance: the device's own rate stops it.
    let mut answered = 300;
    let refusal = loop {
        let id = format!("0193c7a0-0000-7000-8000-1{answered:011}");
        let reply = automerge_sync(&s, &handler, &id, opening.clone()).await;
        if reply.status != made_up.status {
            break reply;
        }
        answered += 1;
        assert!(answered < 2_000, "the device was never stopped");
    };
    refusal.refused(429, "rate_limited");
    assert!(kept.is_empty());

    // The chief still syncs the patrol with automerge, and that state is kept.
    let chief_token = chief["access_token"].as_str().unwrap();
    let mut copy = AutoCommit::new();
    let mut state = sync::State::new();
    let mut rounds = 0;
    loop {
        let Some(message) = copy.sync().generate_sync_message(&mut state) else {
            break;
        };
        let reply = automerge_sync(&s, chief_token, &patrol, message.encode()).await;
        if reply.status == 204 {
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.json());
        copy.sync()
            .receive_sync_message(&mut state, sync::Message::decode(&reply.body).unwrap())
            .unwrap();
        rounds += 1;
        assert!(rounds < 20, "the exchange does not settle");
    }
    assert!(!copy.get_heads().is_empty());
    let chief_device = format!("{}/phone-1", demo::facts().user(CHIEF).unwrap().id);
    assert_eq!(s.state.store.sync_states(&chief_device).unwrap().len(), 1);
}

/// Every document id an answer carries.
fn ids(response: &SyncResponse) -> Vec<String> {
    response.docs.iter().map(|d| d.doc_id.clone()).collect()
}

/// Syncs from `cursor` until an answer says nothing more waits; returns every id received, the
/// answers it took and the last cursor. Each answer carries at most `most` documents.
async fn sync_to_the_end(
    s: &TestServer,
    token: &str,
    mut cursor: u64,
    most: usize,
) -> (Vec<String>, usize, u64) {
    let mut received = Vec::new();
    let mut answers = 0;
    loop {
        let response = sync(
            s,
            token,
            &SyncRequest {
                cursor,
                docs: vec![],
                dropped: Vec::new(),
            },
        )
        .await
        .sync();
        answers += 1;
        assert!(answers < 100, "the pages never end");
        assert!(response.docs.len() <= most, "{:?}", ids(&response));
        cursor = response.cursor;
        received.extend(ids(&response));
        if !response.more {
            return (received, answers, cursor);
        }
        assert!(
            !response.docs.is_empty(),
            "a page of nothing says more waits"
        );
    }
}

/// A sync answer used to carry everything the device lacked, however large: a district's
/// documents, or a thousand large documents pushed with nothing in them, each answered whole.
/// Now an answer carries at most `MAX_ANSWER_BYTES` of documents and `MAX_ANSWER_DOCS`
/// documents besides the pushed ones, says so when more waits, and the rest come at the next
/// round trip, from the answer's cursor; a lost answer is sent again. Pushes whose answers alone exceed the budget are a 413.
/// (The server's limits are lowered here so that a few patrols exceed them.)
#[actix_web::test]
async fn an_answer_is_bounded_and_the_rest_comes_at_the_next_sync() {
    use sync_core::hub::limits::{AnswerLimits, MAX_ANSWER_BYTES, MAX_ANSWER_DOCS};

    let s = TestServer::demo().await;
    assert_eq!(
        s.state.hub.answer_limits(),
        AnswerLimits {
            bytes: MAX_ANSWER_BYTES,
            docs: MAX_ANSWER_DOCS
        }
    );
    let grant = s.login(CHIEF, "phone-1").await;
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let mut patrols = Vec::new();
    for seed in 0..4 {
        let mut patrol = new_patrol(&grant, 30, seed);
        let id = patrol.id().to_owned();
        let changes = raw_changes(patrol.am_mut(), &[]);
        patrols.push((id, changes));
    }
    let request = SyncRequest {
        cursor: 0,
        docs: patrols
            .iter()
            .map(|(id, changes)| push(id, changes.clone()))
            .collect(),
        dropped: Vec::new(),
    };
    assert!(sync(&s, &token, &request)
        .await
        .sync()
        .docs
        .iter()
        .all(|d| d.refused.is_empty()));

    // Everything in one answer, as before.
    let laptop = s.token(CHIEF, "laptop").await;
    let (all, answers, _) = sync_to_the_end(&s, &laptop, 0, usize::MAX).await;
    assert_eq!(answers, 1);
    for (id, _) in &patrols {
        assert!(all.contains(id));
    }

    // One document per answer: a new tablet's first sync comes in pages, each document once.
    s.state.hub.set_answer_limits(AnswerLimits {
        bytes: 1,
        docs: MAX_ANSWER_DOCS,
    });
    let tablet = s.token(CHIEF, "tablet").await;
    let (paged, answers, cursor) = sync_to_the_end(&s, &tablet, 0, 1).await;
    let mut sorted = paged.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        paged.len(),
        "a document came twice: {paged:?}"
    );
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    assert_eq!(answers, all.len());

    // A phone whose app is not yet updated speaks version 2 and is answered in it: the same
    // page without the word that more waits, which that phone would refuse as a byte too
    // many (it gets the next page at its next sync). Version 1 is refused.
    let first_page = SyncRequest {
        cursor: 0,
        docs: vec![],
        dropped: Vec::new(),
    }
    .encode();
    let mut old = first_page.clone();
    old[4] = 2;
    let old_phone = s.token(CHIEF, "old-phone").await;
    let (now, then) = (
        post(&s, "/api/v1/sync", &old_phone, first_page).await,
        post(&s, "/api/v1/sync", &old_phone, old.clone()).await,
    );
    assert!(now.sync().more);
    assert_eq!(then.status, 200, "{}", then.json());
    assert_eq!(then.body[..5], [b'C', b'S', b'Y', b'N', 2]);
    let inflate = |body: &[u8]| {
        assert_eq!(body[5], 1, "a page of a patrol is deflated");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(&body[6..]), &mut out)
            .unwrap();
        out
    };
    assert_eq!([inflate(&then.body), vec![1]].concat(), inflate(&now.body));
    old[4] = 1;
    post(&s, "/api/v1/sync", &old_phone, old)
        .await
        .refused(400, "unsupported_version");

    // New patrols reach the tablet from its cursor, two per answer; an answer lost on the way
    // is sent again.
    s.state.hub.set_answer_limits(AnswerLimits {
        bytes: MAX_ANSWER_BYTES,
        docs: 2,
    });
    let mut newer = Vec::new();
    for seed in 10..15 {
        let mut patrol = new_patrol(&grant, 30, seed);
        newer.push(patrol.id().to_owned());
        let changes = raw_changes(patrol.am_mut(), &[]);
        let request = SyncRequest {
            cursor: 0,
            docs: vec![push(patrol.id(), changes)],
            dropped: Vec::new(),
        };
        sync(&s, &token, &request).await.sync();
    }
    let first = sync(
        &s,
        &tablet,
        &SyncRequest {
            cursor,
            docs: vec![],
            dropped: Vec::new(),
        },
    )
    .await
    .sync();
    assert_eq!(first.docs.len(), 2, "{:?}", ids(&first));
    let (rest, _, _) = sync_to_the_end(&s, &tablet, cursor, 2).await;
    assert_eq!(rest[..2], ids(&first)[..], "the lost answer came again");
    let mut got = rest.clone();
    got.sort();
    newer.sort();
    assert_eq!(got, newer);

    // Pushes that claim to hold nothing of large documents, each answered whole: refused at
    // the limit.
    s.state.hub.set_answer_limits(AnswerLimits {
        bytes: 1,
        docs: MAX_ANSWER_DOCS,
    });
    let pull = SyncRequest {
        cursor: 0,
        docs: patrols.iter().map(|(id, _)| push(id, Vec::new())).collect(),
        dropped: Vec::new(),
    };
    sync(&s, &token, &pull)
        .await
        .refused(413, "answer_too_large");
}

/// Operations compress to almost nothing on the wire: one request of 401 pushes, each carrying
/// the same change of 5,000 operations (a few hundred bytes), asked the server to check and
/// merge two million operations. Now a request holds at most `MAX_REQUEST_OPS` operations,
/// counted from the changes' headers before any is read, or it is a 422 that stores nothing.
#[actix_web::test]
async fn a_request_of_millions_of_operations_is_refused_before_it_is_read() {
    use sync_core::hub::limits::MAX_REQUEST_OPS;

    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let actor = parse_actor(grant["actor_id"].as_str().unwrap()).unwrap();
    let mut doc = AutoCommit::new().with_actor(actor);
    let list = doc
        .put_object(ROOT, "track", automerge::ObjType::List)
        .unwrap();
    for i in 0..4_999 {
        doc.insert(&list, i, automerge::ScalarValue::Null).unwrap();
    }
    doc.commit();
    let change = raw_changes(&mut doc, &[]).remove(0);
    assert!(change.len() < 16 * 1024, "{} bytes", change.len());
    let count = MAX_REQUEST_OPS / 5_000 + 1;
    let request = SyncRequest {
        cursor: 0,
        dropped: Vec::new(),
        docs: (0..count)
            .map(|i| {
                push(
                    &format!("0193c7a0-0000-7000-8000-{i:012}"),
                    vec![change.clone()],
                )
            })
            .collect(),
    };
    let started = Instant::now();
    sync(&s, &token, &request)
        .await
        .refused(422, "request_too_many_ops");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let kept: Vec<_> = (0..count)
        .filter(|i| {
            s.state
                .store
                .document(&format!("0193c7a0-0000-7000-8000-{i:012}"))
                .unwrap()
                .is_some()
        })
        .collect();
    assert!(kept.is_empty());
}
