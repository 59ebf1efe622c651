//! Hostile sync against a real server: a foreign automerge client that never stops sending is
//! answered 429 with `Retry-After` while a normal one finishes, changes over the stored
//! document limits are refused with a JSON error and change nothing, and a phone that sends
//! again while its first sync is still being answered is told to wait, with nothing done.

use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::{transaction::Transactable, AutoCommit, ReadDoc, ROOT};
use serde_json::Value;
use server::demo::{self, CHIEF};
use sync_core::doc::{parse_actor, NewPatrol, PatrolDoc, Record};
use sync_core::hub::limits::{MAX_STRING_BYTES, SYNC_MESSAGE_BURST};
use sync_core::protocol::{DocPush, SyncRequest, SyncResponse};
use sync_core::track::walk_along;

use crate::harness::TestServer;

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn post(s: &TestServer, path: &str, token: &str, body: Vec<u8>) -> Answer {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
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
        retry_after: res
            .headers()
            .get("Retry-After")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res
            .body()
            .limit(32 * 1024 * 1024)
            .await
            .expect("body")
            .to_vec(),
    }
}

/// A patrol `demo-chief` started an hour ago on the phone of `grant`, not yet sent; with its
/// start and the geometry of its river.
fn new_patrol(grant: &Value) -> (PatrolDoc, i64, sync_core::model::Geometry) {
    let facts = demo::facts();
    let asset = facts.asset("river-thh-01").unwrap();
    let started = server::state::now_ms() - 3_600_000;
    let patrol = PatrolDoc::create(
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
    (patrol, started, asset.geometry.clone())
}

/// A patrol of `demo-chief`, stored through `/sync`; returns it with its id.
async fn stored_patrol(s: &TestServer, grant: &Value) -> (String, PatrolDoc) {
    let (mut patrol, started, river) = new_patrol(grant);
    patrol
        .append_track(&walk_along(&river, started, 300, 3))
        .unwrap();
    let id = patrol.id().to_owned();
    let changes = raw_changes(patrol.am_mut(), &[]);
    let reply = push(s, grant, &id, changes).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let response = SyncResponse::decode(&reply.body).unwrap();
    assert!(response.docs.iter().all(|d| d.refused.is_empty()));
    (id, patrol)
}

fn raw_changes(doc: &mut AutoCommit, since: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(since)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

async fn push(s: &TestServer, grant: &Value, id: &str, changes: Vec<Vec<u8>>) -> Answer {
    let request = SyncRequest {
        cursor: 0,
        docs: vec![DocPush {
            doc_id: id.to_owned(),
            server_heads: Vec::new(),
            changes,
        }],
        dropped: Vec::new(),
    };
    let token = grant["access_token"].as_str().unwrap();
    post(s, "/api/v1/sync", token, request.encode()).await
}

#[actix_web::test]
async fn an_automerge_client_looping_forever_gets_429_and_a_normal_one_finishes() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let (id, _) = stored_patrol(&s, &grant).await;
    let path = format!("/api/v1/docs/{id}/automerge-sync");

    // A client that repeats its opening message, never listening to the answers.
    let looping = s.token(CHIEF, "looping-tablet").await;
    let opening = AutoCommit::new()
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .unwrap()
        .encode();
    let mut answered = 0;
    let refusal = loop {
        let answer = post(&s, &path, &looping, opening.clone()).await;
        match answer.status {
            200 | 204 => answered += 1,
            _ => break answer,
        }
        assert!(answered <= 1_000, "the server never stopped the loop");
    };
    assert_eq!(refusal.status, 429, "{}", refusal.json());
    assert_eq!(
        refusal.json()["error"],
        "rate_limited",
        "{}",
        refusal.json()
    );
    assert!(refusal.json()["message"].is_string());
    let wait: u64 = refusal.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The burst, plus what the sustained rate allowed while the loop ran.
    let burst = SYNC_MESSAGE_BURST as usize;
    assert!(
        (burst..2 * burst).contains(&answered),
        "{answered} answered"
    );

    // Meanwhile the chief's laptop syncs the same document to the end, as automerge does.
    let laptop = s.token(CHIEF, "laptop").await;
    let mut copy = AutoCommit::new();
    let mut state = sync::State::new();
    let mut rounds = 0;
    loop {
        let Some(message) = copy.sync().generate_sync_message(&mut state) else {
            break;
        };
        let answer = post(&s, &path, &laptop, message.encode()).await;
        rounds += 1;
        match answer.status {
            200 => copy
                .sync()
                .receive_sync_message(&mut state, sync::Message::decode(&answer.body).unwrap())
                .unwrap(),
            204 => break,
            other => panic!("round {rounds}: {other} {}", answer.json()),
        }
        assert!(rounds < 20, "the sync does not finish");
    }
    match copy.get(ROOT, "id").unwrap() {
        Some((automerge::Value::Scalar(value), _)) => assert_eq!(value.as_str(), Some(id.as_str())),
        other => panic!("the laptop's copy has no id: {other:?}"),
    }
}

#[actix_web::test]
async fn changes_over_the_document_limits_are_refused_and_change_nothing() {
    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let (id, mut patrol) = stored_patrol(&s, &grant).await;
    let before = s.get(&format!("/api/v1/docs/{id}"), &token).await;
    before.expect_ok();
    let history_before = s.get(&format!("/api/v1/docs/{id}/history"), &token).await;

    let actor = parse_actor(grant["actor_id"].as_str().unwrap()).unwrap();
    let mut doc = patrol.am_mut().fork().with_actor(actor);
    let heads = doc.get_heads();
    let notes = doc.get(ROOT, "notes").unwrap().unwrap().1;
    doc.splice_text(&notes, 0, 0, &"河".repeat(30)).unwrap();
    doc.put(ROOT, "remark", "岸".repeat(MAX_STRING_BYTES / 3 + 1))
        .unwrap();
    doc.commit();
    let giant = raw_changes(&mut doc, &heads);
    let reply = push(&s, &grant, &id, giant).await;
    assert_eq!(reply.status, 422, "{}", reply.json());
    assert_eq!(reply.json()["error"], "string_too_long", "{}", reply.json());

    let after = s.get(&format!("/api/v1/docs/{id}"), &token).await;
    assert_eq!(
        after.body, before.body,
        "a refused change reached the document"
    );
    let history = s.get(&format!("/api/v1/docs/{id}/history"), &token).await;
    assert_eq!(history.body, history_before.body);

    // The same edit without the giant value goes through.
    let doc = patrol.am_mut();
    let heads = doc.get_heads();
    let notes = doc.get(ROOT, "notes").unwrap().unwrap().1;
    doc.splice_text(&notes, 0, 0, "堤岸完好").unwrap();
    doc.commit();
    let fine = raw_changes(doc, &heads);
    let reply = push(&s, &grant, &id, fine).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
}

/// A 32 KiB deflated `/sync` body that names tens of millions of empty dropped ids (it inflates
/// to 32 MiB of zero bytes, each one an id): it was decoded whole, a gigabyte of ids held for
/// one signed-in phone, before its length was checked. Now the decoder refuses the list at its
/// length: a 400 with a JSON error, at once, and the phone's next sync works.
#[actix_web::test]
async fn a_small_body_naming_millions_of_dropped_ids_is_refused_at_its_length() {
    use std::io::Write;

    use sync_core::protocol::{MAGIC, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let token = grant["access_token"].as_str().unwrap();

    // The postcard of the request by hand: cursor 0, no pushed documents, then the ids.
    let ids = MAX_MESSAGE_BYTES - 64;
    let mut body = vec![0u8, 0];
    let mut n = ids;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.resize(body.len() + ids, 0);
    let mut wire = MAGIC.to_vec();
    wire.extend_from_slice(&[PROTOCOL_VERSION, 1]);
    let mut deflate = flate2::write::DeflateEncoder::new(wire, flate2::Compression::best());
    deflate.write_all(&body).unwrap();
    let wire = deflate.finish().unwrap();
    drop(body);
    assert!(wire.len() < 64 * 1024, "{} bytes", wire.len());

    let started = std::time::Instant::now();
    let refused = post(&s, "/api/v1/sync", token, wire).await;
    let took = started.elapsed();
    assert_eq!(refused.status, 400, "{}", refused.json());
    assert_eq!(
        refused.json()["error"],
        "too_many_documents",
        "{}",
        refused.json()
    );
    assert!(
        refused.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("dropped documents")),
        "{}",
        refused.json()
    );
    // Inflating 32 MiB takes a moment in a debug build; decoding 32 million ids took many.
    assert!(
        took < std::time::Duration::from_secs(5),
        "answered after {took:?}"
    );

    // The phone's next, ordinary sync is answered.
    let ordinary = SyncRequest {
        cursor: 0,
        docs: Vec::new(),
        dropped: vec!["0193c7a0-0000-7000-8000-000000000001".into()],
    };
    let answer = post(&s, "/api/v1/sync", token, ordinary.encode()).await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    SyncResponse::decode(&answer.body).expect("an answer");
}

/// A phone that sends its sync again while the first is still being answered (it gave up
/// waiting; or the first went to another server) would have two answers write its records.
/// The second is answered 503 `sync_in_progress` with `Retry-After`, having stored nothing,
/// and the same request is answered once the first ends.
#[actix_web::test]
async fn a_sync_sent_again_while_the_first_is_answered_waits_and_changes_nothing() {
    use sync_core::hub::{DeviceLedger, DocumentStore};

    let s = TestServer::demo().await;
    let grant = s.login(CHIEF, "phone-1").await;
    let device = format!("{}/phone-1", demo::facts().user(CHIEF).unwrap().id);
    let (mut patrol, _, _) = new_patrol(&grant);
    let id = patrol.id().to_owned();
    let changes = raw_changes(patrol.am_mut(), &[]);

    // The first answer to the phone is running.
    let store = s.state.hub.store();
    let first = store
        .claim_device(&device)
        .unwrap()
        .expect("no answer runs");
    let again = push(&s, &grant, &id, changes.clone()).await;
    assert_eq!(again.status, 503, "{}", again.json());
    assert_eq!(
        again.json()["error"],
        "sync_in_progress",
        "{}",
        again.json()
    );
    assert_eq!(again.retry_after.as_deref(), Some("1"));
    assert!(store.document(&id).unwrap().is_none(), "nothing stored");

    // The first answer ends: the phone's request is answered.
    drop(first);
    let answered = push(&s, &grant, &id, changes).await;
    assert_eq!(answered.status, 200, "{}", answered.json());
    assert!(store.document(&id).unwrap().is_some());
}
