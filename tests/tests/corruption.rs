//! Damaged documents on the server: bytes flipped inside stored values (the sled files
//! themselves intact) are detected by the integrity check, never served as valid data, and the
//! rest of the store keeps working: phones in scope of a damaged document still sync the others.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use server::demo::{CHIEF, SUPERVISOR};
use server::integrity::check_documents;
use server::storage::SledStore;
use tests::phone::{self, Phone};
use tests::server::RunningServer;

#[test]
fn flipped_bytes_in_stored_documents_are_reported_and_the_rest_keeps_syncing() {
    let data = tempfile::tempdir().unwrap();
    let server = RunningServer::start(data.path(), true);
    server.stop();

    // Flip one random byte in three stored documents, through sled itself.
    let mut rng = StdRng::seed_from_u64(7);
    let damaged: BTreeSet<String> = {
        let db = sled::open(data.path().join("db")).unwrap();
        let docs = db.open_tree("doc_bytes").unwrap();
        let ids: Vec<String> = docs
            .iter()
            .keys()
            .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
            .collect();
        assert!(ids.len() > 10, "the demo stored documents");
        let chosen: Vec<String> = ids.choose_multiple(&mut rng, 3).cloned().collect();
        for id in &chosen {
            let mut value = docs.get(id).unwrap().unwrap().to_vec();
            let at = rng.random_range(0..value.len());
            value[at] ^= 1 << rng.random_range(0..8);
            docs.insert(id.as_bytes(), value).unwrap();
        }
        db.flush().unwrap();
        chosen.into_iter().collect()
    };

    let report = {
        let store = SledStore::open(&data.path().join("db")).unwrap();
        check_documents(&store).unwrap()
    };
    let found: BTreeSet<String> = report.damaged.iter().map(|d| d.id.clone()).collect();
    assert_eq!(found, damaged, "{report:?}");
    assert!(report.documents_checked > 10);

    let server = RunningServer::start(data.path(), true);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let supervisor = Phone::login(&server.base, SUPERVISOR, "supervisor-phone", a.path());
    let chief = Phone::login(&server.base, CHIEF, "chief-phone", b.path());
    for phone in [&supervisor, &chief] {
        let report = phone.sync(1_764_400_000_000).unwrap();
        assert!(report.docs_received > 0, "{report:?}");
        let held: BTreeSet<String> = phone.heads().into_keys().collect();
        assert!(
            held.is_disjoint(&damaged),
            "a damaged document reached a phone"
        );
    }
    let store = &server.state().store;
    for id in &damaged {
        let reply = phone::get(
            &server.base,
            &supervisor.token(),
            &format!("/api/v1/docs/{id}"),
        );
        assert_eq!(reply.status, 500, "{id}: {}", reply.json());
        assert_eq!(reply.json()["error"], "internal");
        assert!(store.document(id).is_err(), "{id} loads as valid data");
    }
    let intact = store
        .all_documents()
        .unwrap()
        .into_iter()
        .find(|m| !damaged.contains(&m.id) && sync_core::authz::in_scope(&supervisor.user, m))
        .unwrap();
    let reply = phone::get(
        &server.base,
        &supervisor.token(),
        &format!("/api/v1/docs/{}", intact.id),
    );
    assert_eq!(reply.status, 200, "{}", reply.json());
}
