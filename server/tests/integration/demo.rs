//! `--demo` seeds once: a second start over the same data seeds nothing, and what was seeded
//! (including device sessions and signing key) survives the restart.

use server::demo::{self, SeedOutcome, LOGIN_USERNAMES};

use crate::harness::TestServer;

#[actix_web::test]
async fn demo_seeds_on_first_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestServer::start_in(dir.path(), true).await;
    assert_eq!(first.seeded, Some(SeedOutcome::Seeded));
    let facts = demo::facts();
    let counts = |s: &TestServer| {
        (
            s.state.store.list_users().unwrap().len(),
            s.state.store.list_divisions().unwrap().len(),
            s.state.store.list_assets().unwrap().len(),
        )
    };
    let seeded = counts(&first);
    assert_eq!(
        seeded,
        (
            facts.people.len(),
            facts.divisions.len(),
            facts.assets.len()
        )
    );
    for username in LOGIN_USERNAMES {
        first.login(username, "phone").await;
    }
    let token = first.token(demo::CHIEF, "phone").await;
    first.stop().await;

    let second = TestServer::start_in(dir.path(), true).await;
    assert_eq!(second.seeded, Some(SeedOutcome::AlreadySeeded));
    assert_eq!(counts(&second), seeded);
    // The store and the signing key outlived the restart, so the session still works.
    let me = second.get("/api/v1/me", &token).await;
    assert_eq!(me.expect_ok()["user"]["username"], demo::CHIEF);
    second.stop().await;
}

#[actix_web::test]
async fn without_demo_nothing_is_seeded_and_no_one_can_log_in() {
    let s = TestServer::empty().await;
    assert!(s.state.store.list_users().unwrap().is_empty());
    assert!(s
        .state
        .store
        .get_meta(demo::SEEDED_MARKER)
        .unwrap()
        .is_none());
    s.login_reply(demo::ADMIN, "demo", "pc")
        .await
        .expect_error(401, "invalid_credentials");
}
