//! The storage conformance suite of what only the server stores (users, sessions, refresh
//! tokens, divisions, assets, settings), written once and run against every [`Store`] backend
//! (`store_conformance_tests!(harness)` in the backend's test module). What the sync hub
//! stores (documents, feed, audit, device ledger) has its own suite beside its traits,
//! `sync_core::hub::testing`, which every backend runs too (`sync_core::hub_store_conformance!`).
//!
//! A [`Harness`] opens the backend's store; calling `open` again after dropping the previous
//! handle must reopen the same data, which is how "reopen after close" is tested. Test-only.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ReadDoc};
use sync_core::doc::{actor_for, NewPatrol, PatrolDoc, Record};
use sync_core::model::TrackPoint;
use sync_core::model::{
    Asset, Division, DivisionCode, Geometry, Jurisdiction, Level, Role, System, User,
};

use sync_core::authz::DocMeta;
use sync_core::doc::DocKind;
use sync_core::hub::testing::doc_meta;
use sync_core::hub::{DocumentStore, ReferenceSource};

use super::{
    Exchanged, FactsMark, RefreshExchange, RefreshRecord, RefreshUse, Store, StoreError,
    StoredFact, UserRecord,
};

/// Opens a backend's store; a second `open` after the first handle is dropped sees the same data.
pub(crate) trait Harness {
    fn open(&self) -> Arc<dyn Store>;
    /// A second server on the same data while `first` is open: another store on the same
    /// database where the backend allows several, else `first` itself (one process).
    fn second_node(&self, first: &Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::clone(first)
    }
}

/// Expands to one `#[test]` per conformance case, each with a fresh harness from `$harness`.
macro_rules! store_conformance_tests {
    ($harness:expr) => {
        store_conformance_tests!(@cases $harness;
            users_round_trip,
            users_conflict_on_id_and_username,
            update_user_renames_and_refuses_unknown,
            sessions_keep_actor_and_retire_old_sessions,
            revocation_is_kept_until_next_login,
            a_user_and_their_device_read_together_are_read_as_one_by_one,
            refresh_tokens_are_consumed_once,
            concurrent_refresh_has_one_winner,
            a_refresh_exchange_is_granted_once_and_retried_with_the_same_successor,
            racing_exchanges_on_two_servers_name_one_successor,
            divisions_and_assets_round_trip,
            assignment_targets_read_the_users,
            meta_round_trip,
            saves_wait_while_held,
            reopen_after_close_keeps_everything,
            login_failures_are_counted_per_key_and_forgiven_by_tag,
            upload_bytes_add_up_per_user_and_day,
            parallel_upload_charges_never_pass_the_limit,
            a_job_lock_has_one_holder_at_a_time,
            a_hold_is_held_on_every_server_until_it_drops,
            counted_events_stop_at_the_limit_on_every_server,
            kept_records_are_written_by_version_and_taken_once,
            a_migration_places_bindings_tokens_and_feed_positions,
            many_saves_keep_few_records_and_every_change,
            a_compaction_cut_short_loses_nothing,
            two_nodes_saving_one_document_converge,
            facts_are_stored_with_their_cursor_and_read_back,
            a_fact_worked_out_earlier_never_replaces_a_later_one,
            a_new_facts_generation_starts_empty_and_refuses_the_old,
        );
    };
    (@cases $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::storage::conformance::$case(&$harness);
            }
        )+
    };
}

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).expect("valid code")
}

fn user(id: &str, username: &str) -> UserRecord {
    UserRecord {
        user: User {
            id: id.into(),
            username: username.into(),
            display_name: format!("{username} 河长"),
            role: Role::Chief {
                system: System::River,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: code("370105014201"),
                    assets: vec!["river-1".into()],
                },
            },
            active: true,
        },
        password_hash: Some("$argon2id$stub".into()),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

fn division(c: &str, name: &str, parent: Option<&str>) -> Division {
    Division {
        code: code(c),
        name: name.into(),
        parent: parent.map(code),
    }
}

fn asset(id: &str) -> Asset {
    Asset {
        id: id.into(),
        system: System::River,
        name: "小清河 1".into(),
        division: code("370105014201"),
        geometry: Geometry::LineString(vec![[116.95, 36.70], [116.96, 36.71]]),
    }
}

fn refresh(hash: &str) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.into(),
        user_id: "u1".into(),
        device_id: "phone".into(),
        session: 1,
        expires_at_ms: 10_000,
        used_at_ms: None,
        replaced_by: None,
    }
}

pub(crate) fn users_round_trip(h: &impl Harness) {
    let store = h.open();
    let b = user("u2", "Bravo");
    let a = user("u1", "alpha");
    store.create_user(&b).unwrap();
    store.create_user(&a).unwrap();
    assert_eq!(store.get_user("u1").unwrap(), Some(a.clone()));
    assert_eq!(store.get_user("nobody").unwrap(), None);
    assert_eq!(
        store.find_user_by_username("ALPHA").unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.find_user_by_username("bravo").unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.find_user_by_username("charlie").unwrap(), None);
    assert_eq!(store.list_users().unwrap(), vec![a, b]);
}

pub(crate) fn users_conflict_on_id_and_username(h: &impl Harness) {
    let store = h.open();
    store.create_user(&user("u1", "alpha")).unwrap();
    let same_id = store.create_user(&user("u1", "other"));
    assert!(
        matches!(same_id, Err(StoreError::Conflict(_))),
        "{same_id:?}"
    );
    let same_name = store.create_user(&user("u9", "Alpha"));
    assert!(
        matches!(same_name, Err(StoreError::Conflict(_))),
        "{same_name:?}"
    );
    assert_eq!(store.list_users().unwrap().len(), 1);
    assert_eq!(store.find_user_by_username("other").unwrap(), None);
}

pub(crate) fn update_user_renames_and_refuses_unknown(h: &impl Harness) {
    let store = h.open();
    store.create_user(&user("u1", "alpha")).unwrap();
    store.create_user(&user("u2", "bravo")).unwrap();

    let mut renamed = user("u1", "alpha-2");
    renamed.user.active = false;
    store.update_user(&renamed).unwrap();
    assert_eq!(store.get_user("u1").unwrap(), Some(renamed.clone()));
    assert_eq!(store.find_user_by_username("alpha").unwrap(), None);
    assert_eq!(
        store.find_user_by_username("alpha-2").unwrap(),
        Some(renamed)
    );

    let collision = store.update_user(&user("u1", "BRAVO"));
    assert!(
        matches!(collision, Err(StoreError::Conflict(_))),
        "{collision:?}"
    );
    let unknown = store.update_user(&user("u3", "charlie"));
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    assert_eq!(store.find_user_by_username("charlie").unwrap(), None);
}

pub(crate) fn sessions_keep_actor_and_retire_old_sessions(h: &impl Harness) {
    let store = h.open();
    let first = store
        .start_session("u1", "phone", "aa".repeat(16).as_str(), 100)
        .unwrap();
    assert_eq!(first.actor_id, "aa".repeat(16));
    assert_eq!(first.session, 1);
    assert!(first.accepts(1));

    let second = store
        .start_session("u1", "phone", "bb".repeat(16).as_str(), 200)
        .unwrap();
    assert_eq!(
        second.actor_id, first.actor_id,
        "actor id is bound once per (user, device)"
    );
    assert_eq!(second.session, 2);
    assert_eq!(second.created_at_ms, 100);
    assert_eq!(second.last_login_ms, 200);
    assert!(!second.accepts(1) && second.accepts(2));

    let other_user = store
        .start_session("u2", "phone", "cc".repeat(16).as_str(), 300)
        .unwrap();
    assert_eq!(other_user.actor_id, "cc".repeat(16));
    assert_eq!(store.get_device("u1", "phone").unwrap(), Some(second));
    assert_eq!(store.get_device("u1", "tablet").unwrap(), None);
    let listed: Vec<_> = store
        .list_devices()
        .unwrap()
        .into_iter()
        .map(|d| (d.user_id, d.device_id))
        .collect();
    assert_eq!(
        listed,
        vec![("u1".into(), "phone".into()), ("u2".into(), "phone".into())]
    );
}

pub(crate) fn revocation_is_kept_until_next_login(h: &impl Harness) {
    let store = h.open();
    assert_eq!(store.revoke_device("u1", "phone", 50).unwrap(), None);
    store
        .start_session("u1", "phone", &"ab".repeat(16), 100)
        .unwrap();
    let revoked = store.revoke_device("u1", "phone", 150).unwrap().unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(150));
    assert!(!revoked.accepts(1));
    let again = store.revoke_device("u1", "phone", 160).unwrap().unwrap();
    assert_eq!(
        again.revoked_at_ms,
        Some(150),
        "the first revocation time is kept"
    );
    assert_eq!(store.get_device("u1", "phone").unwrap(), Some(again));

    let relogin = store
        .start_session("u1", "phone", &"cd".repeat(16), 200)
        .unwrap();
    assert_eq!(relogin.revoked_at_ms, None);
    assert!(relogin.accepts(2) && !relogin.accepts(1));
}

pub(crate) fn a_user_and_their_device_read_together_are_read_as_one_by_one(h: &impl Harness) {
    let store = h.open();
    let other = h.second_node(&store);
    let both = |user: &str, device: &str| {
        let together = other.user_and_device(user, device).unwrap();
        let one_by_one = (
            other.get_user(user).unwrap(),
            other.get_device(user, device).unwrap(),
        );
        assert_eq!(together, one_by_one, "{user}/{device}");
        together
    };
    assert_eq!(both("u1", "phone"), (None, None));
    store.create_user(&user("u1", "alpha")).unwrap();
    let (found, device) = both("u1", "phone");
    assert_eq!(found.map(|u| u.user.id), Some("u1".into()));
    assert_eq!(device, None, "a user without the binding");
    store
        .start_session("u2", "phone", &"ab".repeat(16), 100)
        .unwrap();
    let (found, device) = both("u2", "phone");
    assert_eq!(found, None, "a binding without the user");
    assert_eq!(device.map(|d| d.session), Some(1));
    let bound = store
        .start_session("u1", "phone", &"cd".repeat(16), 200)
        .unwrap();
    assert_eq!(both("u1", "phone").1, Some(bound));
    assert_eq!(
        both("u1", "tablet").1,
        None,
        "another device of the same user"
    );
    // What one server changes, the other reads at once: a revoked phone and a deactivated
    // account are refused on the next request whichever server takes it.
    let revoked = store.revoke_device("u1", "phone", 300).unwrap();
    let mut inactive = store.get_user("u1").unwrap().unwrap();
    inactive.user.active = false;
    store.update_user(&inactive).unwrap();
    assert_eq!(both("u1", "phone"), (Some(inactive), revoked));
}

pub(crate) fn refresh_tokens_are_consumed_once(h: &impl Harness) {
    let store = h.open();
    assert_eq!(
        store.consume_refresh_token("nope", 1).unwrap(),
        RefreshUse::Unknown
    );
    store.put_refresh_token(&refresh("h1")).unwrap();
    assert_eq!(
        store.consume_refresh_token("h1", 5).unwrap(),
        RefreshUse::Fresh(refresh("h1"))
    );
    let used = RefreshRecord {
        used_at_ms: Some(5),
        ..refresh("h1")
    };
    assert_eq!(
        store.consume_refresh_token("h1", 6).unwrap(),
        RefreshUse::Reused(used)
    );
}

pub(crate) fn concurrent_refresh_has_one_winner(h: &impl Harness) {
    let store = h.open();
    store.put_refresh_token(&refresh("race")).unwrap();
    let outcomes: Vec<RefreshUse> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                scope.spawn(move || store.consume_refresh_token("race", i).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshUse::Fresh(_)))
        .count();
    assert_eq!(fresh, 1, "{outcomes:?}");
}

fn exchange<'a>(token: &'a str, successor: &'a str, now_ms: i64) -> RefreshExchange<'a> {
    RefreshExchange {
        token_hash: token,
        successor_hash: successor,
        successor_expires_ms: now_ms + 5_000,
        retry_ms: 100,
        now_ms,
    }
}

/// An exchange marks the token used with its successor named and stores the successor unused,
/// in the token's session; presented again within the retry time it is granted again and the
/// successor is not written over; once the successor is used, or past the retry time, or for
/// another successor, it is a reuse; an expired token is refused; an unknown one is unknown.
pub(crate) fn a_refresh_exchange_is_granted_once_and_retried_with_the_same_successor(
    h: &impl Harness,
) {
    let store = h.open();
    let by_hash = |hash: &str| {
        store
            .list_refresh_tokens()
            .unwrap()
            .into_iter()
            .find(|r| r.token_hash == hash)
    };
    store.put_refresh_token(&refresh("t1")).unwrap();
    assert_eq!(
        store
            .exchange_refresh_token(&exchange("t1", "s1", 1_000))
            .unwrap(),
        Exchanged::Granted(refresh("t1"))
    );
    let spent = by_hash("t1").unwrap();
    assert_eq!(spent.used_at_ms, Some(1_000));
    assert_eq!(spent.replaced_by.as_deref(), Some("s1"));
    let successor = by_hash("s1").expect("the successor is stored");
    assert_eq!(
        successor,
        RefreshRecord {
            token_hash: "s1".into(),
            expires_at_ms: 6_000,
            ..refresh("t1")
        }
    );
    // A retry: granted again, the successor as it was (its expiry not moved on).
    let retried = store
        .exchange_refresh_token(&exchange("t1", "s1", 1_050))
        .unwrap();
    assert_eq!(retried, Exchanged::Granted(spent.clone()));
    assert_eq!(by_hash("s1").unwrap(), successor);
    // For another successor (another signing key): a copy.
    assert_eq!(
        store
            .exchange_refresh_token(&exchange("t1", "s9", 1_060))
            .unwrap(),
        Exchanged::Reused(spent.clone())
    );
    // Past the retry time: a copy.
    assert_eq!(
        store
            .exchange_refresh_token(&exchange("t1", "s1", 1_101))
            .unwrap(),
        Exchanged::Reused(spent.clone())
    );
    // The successor used: the token presented again within the retry time is a copy.
    assert!(matches!(
        store
            .exchange_refresh_token(&exchange("s1", "s2", 1_070))
            .unwrap(),
        Exchanged::Granted(_)
    ));
    assert_eq!(
        store
            .exchange_refresh_token(&exchange("t1", "s1", 1_080))
            .unwrap(),
        Exchanged::Reused(spent)
    );
    assert!(
        by_hash("s1").unwrap().used_at_ms.is_some(),
        "used stays used"
    );
    // Expired before its exchange: refused, spent, nothing stored for it.
    store.put_refresh_token(&refresh("old")).unwrap();
    assert_eq!(
        store
            .exchange_refresh_token(&exchange("old", "old-next", 10_000))
            .unwrap(),
        Exchanged::Expired(refresh("old"))
    );
    assert!(by_hash("old-next").is_none());
    assert_eq!(by_hash("old").unwrap().used_at_ms, Some(10_000));
    assert_eq!(
        store
            .exchange_refresh_token(&exchange("nope", "x", 1))
            .unwrap(),
        Exchanged::Unknown
    );
    // Spent by a sign-out (no successor named): presented again at once it is granted, its
    // successor named now.
    store.put_refresh_token(&refresh("t2")).unwrap();
    store.consume_refresh_token("t2", 2_000).unwrap();
    assert!(matches!(
        store
            .exchange_refresh_token(&exchange("t2", "s3", 2_010))
            .unwrap(),
        Exchanged::Granted(_)
    ));
    assert_eq!(by_hash("t2").unwrap().replaced_by.as_deref(), Some("s3"));
}

/// Copies of one token exchanged at the same moment through two servers, and copies of its
/// successor beside them: the token is granted fresh once, every grant names the one
/// successor, and the successor is exchanged fresh once, never made unused again.
pub(crate) fn racing_exchanges_on_two_servers_name_one_successor(h: &impl Harness) {
    let first = h.open();
    let second = h.second_node(&first);
    first.put_refresh_token(&refresh("race")).unwrap();
    let outcomes: Vec<(bool, Exchanged)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
                scope.spawn(move || {
                    // A third of them present the successor, once it is there.
                    if i % 3 == 2 {
                        (
                            true,
                            store
                                .exchange_refresh_token(&exchange("next", "after", 1_000 + i))
                                .unwrap(),
                        )
                    } else {
                        (
                            false,
                            store
                                .exchange_refresh_token(&exchange("race", "next", 1_000 + i))
                                .unwrap(),
                        )
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = |successor: bool| {
        outcomes
            .iter()
            .filter(|(s, o)| {
                *s == successor && matches!(o, Exchanged::Granted(r) if r.used_at_ms.is_none())
            })
            .count()
    };
    assert_eq!(fresh(false), 1, "{outcomes:?}");
    assert!(fresh(true) <= 1, "{outcomes:?}");
    for (successor, outcome) in &outcomes {
        if !successor {
            assert!(
                matches!(outcome, Exchanged::Granted(_) | Exchanged::Reused(_)),
                "{outcome:?}"
            );
        }
    }
    let tokens = first.list_refresh_tokens().unwrap();
    let next = tokens.iter().find(|r| r.token_hash == "next").unwrap();
    assert_eq!(
        next.used_at_ms.is_some(),
        fresh(true) == 1,
        "the successor is used exactly when one exchange of it was granted fresh"
    );
}

pub(crate) fn divisions_and_assets_round_trip(h: &impl Harness) {
    let store = h.open();
    let village = division("370105014201", "小寨村", Some("370105014000"));
    let sub = division("370105014000", "桑梓店街道", Some("370105000000"));
    store.put_division(&village).unwrap();
    store.put_division(&sub).unwrap();
    assert_eq!(
        store.get_division(&code("370105014000")).unwrap(),
        Some(sub.clone())
    );
    assert_eq!(store.get_division(&code("370105001000")).unwrap(), None);
    assert_eq!(store.list_divisions().unwrap(), vec![sub, village.clone()]);
    let renamed = Division {
        name: "小寨村村委会".into(),
        ..village
    };
    store.put_division(&renamed).unwrap();
    assert_eq!(store.get_division(&renamed.code).unwrap(), Some(renamed));

    let a = asset("river-2");
    let b = asset("river-1");
    store.put_asset(&a).unwrap();
    store.put_asset(&b).unwrap();
    assert_eq!(store.get_asset("river-2").unwrap(), Some(a.clone()));
    assert_eq!(store.get_asset("river-3").unwrap(), None);
    assert_eq!(store.list_assets().unwrap(), vec![b, a.clone()]);
    let moved = Asset {
        geometry: Geometry::LineString(vec![[117.0, 36.7], [117.01, 36.7]]),
        ..a
    };
    store.put_asset(&moved).unwrap();
    assert_eq!(store.get_asset("river-2").unwrap(), Some(moved.clone()));
    // What the hub places new records against reads the same reference data.
    assert_eq!(
        ReferenceSource::asset(&*store, "river-2").unwrap(),
        Some(moved)
    );
    assert_eq!(ReferenceSource::asset(&*store, "river-3").unwrap(), None);
    assert_eq!(
        ReferenceSource::categories(&*store).unwrap(),
        sync_core::model::default_categories()
    );
    let only = vec![sync_core::model::default_categories().remove(0)];
    store
        .put_meta(
            crate::reference::CATEGORIES_KEY,
            &serde_json::to_vec(&only).unwrap(),
        )
        .unwrap();
    assert_eq!(ReferenceSource::categories(&*store).unwrap(), only);
}

pub(crate) fn assignment_targets_read_the_users(h: &impl Harness) {
    let store = h.open();
    let mut handler = user("u-handler", "handler");
    handler.user.role = Role::Handler {
        department: "区水务局".into(),
    };
    store.create_user(&handler).unwrap();
    store.create_user(&user("u-chief", "chief")).unwrap();
    assert_eq!(
        ReferenceSource::user(&*store, "u-chief")
            .unwrap()
            .map(|u| u.id),
        Some("u-chief".to_string())
    );
    assert_eq!(ReferenceSource::user(&*store, "u-nobody").unwrap(), None);
    assert!(ReferenceSource::department_exists(&*store, "区水务局").unwrap());
    assert!(!ReferenceSource::department_exists(&*store, "区水务局 ").unwrap());
    assert!(!ReferenceSource::department_exists(&*store, "区林业局").unwrap());
    // Moved to another department, or deactivated: the answer follows at once.
    handler.user.role = Role::Handler {
        department: "区林业局".into(),
    };
    store.update_user(&handler).unwrap();
    assert!(!ReferenceSource::department_exists(&*store, "区水务局").unwrap());
    assert!(ReferenceSource::department_exists(&*store, "区林业局").unwrap());
    handler.user.active = false;
    store.update_user(&handler).unwrap();
    assert!(!ReferenceSource::department_exists(&*store, "区林业局").unwrap());
}

pub(crate) fn meta_round_trip(h: &impl Harness) {
    let store = h.open();
    assert_eq!(store.get_meta("k").unwrap(), None);
    store.put_meta("k", b"v1").unwrap();
    store.put_meta("k", b"v2").unwrap();
    assert_eq!(store.get_meta("k").unwrap(), Some(b"v2".to_vec()));
}

/// While `hold_saves`' guard is held no save completes, and once it drops the waiting save
/// lands: photo collection relies on this to decide and remove without a reference appearing
/// in between.
pub(crate) fn saves_wait_while_held(h: &impl Harness) {
    let store = h.open();
    let other = h.second_node(&store);
    store
        .save_document("p1", &doc_meta("p1", DocKind::Patrol), b"one", &[])
        .unwrap();
    let held = store.hold_saves().unwrap();
    // A save through this server and one through another server on the same store.
    let savers: Vec<_> = [("p2", &store), ("p3", &other)]
        .into_iter()
        .map(|(id, store)| {
            let store = Arc::clone(store);
            std::thread::spawn(move || {
                store
                    .save_document(id, &doc_meta(id, DocKind::Patrol), b"two", &[])
                    .unwrap()
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(store.feed_head().unwrap(), 1);
    assert!(store.document("p2").unwrap().is_none());
    assert!(
        store.document("p3").unwrap().is_none(),
        "another server saved while saves were held"
    );
    drop(held);
    let mut positions: Vec<u64> = savers.into_iter().map(|s| s.join().unwrap()).collect();
    positions.sort_unstable();
    assert_eq!(positions, [2, 3]);
    assert_eq!(store.feed_head().unwrap(), 3);
}

/// Failed sign-ins: listed per key within the time asked, oldest first; forgiven whole or by
/// the username they were made for; forgotten once older than asked at the next failure.
pub(crate) fn login_failures_are_counted_per_key_and_forgiven_by_tag(h: &impl Harness) {
    let store = h.open();
    store
        .record_login_failure(&["pair a alice", "address a"], "alice", 1_000, 0)
        .unwrap();
    store
        .record_login_failure(&["pair a bob", "address a"], "bob", 3_000, 0)
        .unwrap();
    store
        .record_login_failure(&["pair a alice", "address a"], "alice", 2_000, 0)
        .unwrap();
    let found = store
        .login_failures(&["pair a alice", "address a", "pair a carol"], 0)
        .unwrap();
    assert_eq!(
        found,
        vec![vec![1_000, 2_000], vec![1_000, 2_000, 3_000], vec![]]
    );
    assert_eq!(
        store.login_failures(&["address a"], 2_000).unwrap(),
        vec![vec![2_000, 3_000]]
    );
    // Alice signs in: her typos go, the guess at bob's account stays.
    store.forgive_login_failures("pair a alice", None).unwrap();
    store
        .forgive_login_failures("address a", Some("alice"))
        .unwrap();
    assert_eq!(
        store
            .login_failures(&["pair a alice", "address a", "pair a bob"], 0)
            .unwrap(),
        vec![vec![], vec![3_000], vec![3_000]]
    );
    // A later failure forgets what is older than asked.
    store
        .record_login_failure(&["address b"], "dave", 10_000, 5_000)
        .unwrap();
    assert_eq!(
        store
            .login_failures(&["pair a bob", "address b"], 0)
            .unwrap(),
        vec![vec![], vec![10_000]]
    );
}

/// Photo bytes add up per user and day; a new day starts from nothing; a charge that would go
/// over the limit adds nothing.
pub(crate) fn upload_bytes_add_up_per_user_and_day(h: &impl Harness) {
    let store = h.open();
    assert_eq!(store.uploaded("u1", 20_000).unwrap(), 0);
    assert_eq!(
        store.charge_upload("u1", 20_000, 700, 1_000).unwrap(),
        Some(700)
    );
    assert_eq!(store.charge_upload("u1", 20_000, 301, 1_000).unwrap(), None);
    assert_eq!(
        store.charge_upload("u1", 20_000, 300, 1_000).unwrap(),
        Some(1_000)
    );
    assert_eq!(store.charge_upload("u1", 20_000, 1, 1_000).unwrap(), None);
    assert_eq!(
        store.charge_upload("u2", 20_000, 5, 1_000).unwrap(),
        Some(5)
    );
    assert_eq!(
        store.charge_upload("u3", 20_000, 1_001, 1_000).unwrap(),
        None
    );
    assert_eq!(store.uploaded("u3", 20_000).unwrap(), 0);
    assert_eq!(store.uploaded("u1", 20_000).unwrap(), 1_000);
    assert_eq!(
        store.charge_upload("u1", 20_001, 10, 1_000).unwrap(),
        Some(10)
    );
    assert_eq!(store.uploaded("u1", 20_001).unwrap(), 10);
    assert_eq!(store.uploaded("u2", 20_000).unwrap(), 5);
}

/// Charges made at once from many threads (many requests, on any server of the store) are
/// added one after another: the day's total reaches the limit exactly and never passes it.
pub(crate) fn parallel_upload_charges_never_pass_the_limit(h: &impl Harness) {
    let store = h.open();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..20)
                    .filter(|_| {
                        store
                            .charge_upload("u1", 20_000, 100, 5_000)
                            .unwrap()
                            .is_some()
                    })
                    .count()
            })
        })
        .collect();
    let charged: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(charged, 50, "charges admitted");
    assert_eq!(store.uploaded("u1", 20_000).unwrap(), 5_000);
}

/// While one holder runs under a job lock, no one else (another thread, another handle on the
/// store) gets it; another name is free; once the work ends it is free again.
pub(crate) fn a_job_lock_has_one_holder_at_a_time(h: &impl Harness) {
    let store = h.open();
    let mut inner = None;
    let mut other_name = None;
    let ran = store
        .exclusively("deadline job", &mut || {
            let again = Arc::clone(&store);
            inner = Some(
                std::thread::spawn(move || again.exclusively("deadline job", &mut || {}).unwrap())
                    .join()
                    .unwrap(),
            );
            other_name = Some(store.exclusively("another job", &mut || {}).unwrap());
        })
        .unwrap();
    assert!(ran);
    assert_eq!(inner, Some(false), "a second holder got the lock");
    assert_eq!(other_name, Some(true));
    let mut runs = 0;
    assert!(store
        .exclusively("deadline job", &mut || runs += 1)
        .unwrap());
    assert_eq!(runs, 1);
}

/// A hold taken on one server is waited for by a holder of the same name on another server
/// (or another thread) until it drops; another name is free meanwhile.
pub(crate) fn a_hold_is_held_on_every_server_until_it_drops(h: &impl Harness) {
    let first = h.open();
    let second = h.second_node(&first);
    let held = first.hold("roster import").unwrap();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let waiter = {
        let second = Arc::clone(&second);
        std::thread::spawn(move || {
            let _held = second.hold("roster import").unwrap();
            got_tx.send(()).unwrap();
        })
    };
    drop(second.hold("another").unwrap());
    assert!(
        got_rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "a second holder got the lock"
    );
    drop(held);
    got_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the waiting holder gets the lock once it is let go");
    waiter.join().unwrap();
    drop(first.hold("roster import").unwrap());
}

/// Events are counted per key up to the limit in the window, on both servers together and
/// however many count at once; a refusal says when the oldest leaves the window; checking
/// counts nothing; the window passing lets counting start again.
pub(crate) fn counted_events_stop_at_the_limit_on_every_server(h: &impl Harness) {
    let first = h.open();
    let second = h.second_node(&first);
    const WINDOW: i64 = 1_000;
    assert_eq!(first.count_event("a", 2, WINDOW, 100).unwrap(), Ok(()));
    assert_eq!(second.events_below("a", 2, WINDOW, 150).unwrap(), Ok(()));
    assert_eq!(second.count_event("a", 2, WINDOW, 200).unwrap(), Ok(()));
    assert_eq!(first.count_event("a", 2, WINDOW, 300).unwrap(), Err(1_100));
    assert_eq!(
        second.events_below("a", 2, WINDOW, 300).unwrap(),
        Err(1_100)
    );
    assert_eq!(first.count_event("b", 2, WINDOW, 300).unwrap(), Ok(()));
    assert!(first.count_event("zero", 0, WINDOW, 300).unwrap().is_err());
    // The first event has left the window: one more.
    assert_eq!(second.count_event("a", 2, WINDOW, 1_100).unwrap(), Ok(()));
    assert_eq!(
        first.count_event("a", 2, WINDOW, 1_150).unwrap(),
        Err(1_200)
    );
    // Sixteen counting at once on two servers: the limit and no more.
    let counted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
                scope.spawn(move || {
                    usize::from(store.count_event("race", 5, WINDOW, 5_000).unwrap().is_ok())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(counted, 5);
}

/// A short-lived record is written when absent or at the version read, refused when another
/// write came first; it is gone once expired (and may be written anew); taken once, whichever
/// of two servers takes it.
pub(crate) fn kept_records_are_written_by_version_and_taken_once(h: &impl Harness) {
    let first = h.open();
    let second = h.second_node(&first);
    assert!(first.kept("t", 0).unwrap().is_none());
    assert!(first.keep("t", None, b"one", 1_000, 0).unwrap());
    assert!(
        !second.keep("t", None, b"again", 1_000, 1).unwrap(),
        "written twice as new"
    );
    let read = second.kept("t", 2).unwrap().unwrap();
    assert_eq!(read.value, b"one");
    assert!(first
        .keep("t", Some(read.version), b"two", 1_000, 3)
        .unwrap());
    assert!(
        !second
            .keep("t", Some(read.version), b"stale", 1_000, 4)
            .unwrap(),
        "a write from a stale read"
    );
    let now = first.kept("t", 5).unwrap().unwrap();
    assert_eq!(now.value, b"two");
    assert_ne!(now.version, read.version);
    // Expired: gone, not writable by its old version, writable anew.
    assert!(second.kept("t", 1_000).unwrap().is_none());
    assert!(!first
        .keep("t", Some(now.version), b"late", 2_000, 1_000)
        .unwrap());
    assert!(first.keep("t", None, b"anew", 2_000, 1_001).unwrap());
    assert_eq!(second.kept("t", 1_002).unwrap().unwrap().value, b"anew");
    assert_eq!(second.take_kept("expired", 0).unwrap(), None);
    assert!(first.keep("old", None, b"x", 10, 0).unwrap());
    assert_eq!(first.take_kept("old", 10).unwrap(), None, "expired");
    // Taken by one of many takers on two servers.
    assert!(first.keep("c", None, b"challenge", 5_000, 0).unwrap());
    let taken: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
                scope.spawn(move || store.take_kept("c", 10).unwrap())
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(taken, [b"challenge".to_vec()]);
    assert!(first.kept("c", 11).unwrap().is_none());
}

pub(crate) fn reopen_after_close_keeps_everything(h: &impl Harness) {
    {
        let store = h.open();
        store.create_user(&user("u1", "alpha")).unwrap();
        store
            .start_session("u1", "phone", &"ef".repeat(16), 10)
            .unwrap();
        store.put_refresh_token(&refresh("h1")).unwrap();
        store.consume_refresh_token("h1", 11).unwrap();
        store
            .put_division(&division("370105000000", "天桥区", None))
            .unwrap();
        store.put_asset(&asset("river-1")).unwrap();
        store.put_meta("demo", b"seeded").unwrap();
        store
            .save_document("i1", &doc_meta("i1", DocKind::Issue), b"bytes", &[])
            .unwrap();
    }
    let store = h.open();
    assert_eq!(
        store.find_user_by_username("alpha").unwrap(),
        Some(user("u1", "alpha"))
    );
    assert_eq!(
        store.get_device("u1", "phone").unwrap().unwrap().actor_id,
        "ef".repeat(16)
    );
    assert!(matches!(
        store.consume_refresh_token("h1", 12).unwrap(),
        RefreshUse::Reused(_)
    ));
    assert_eq!(store.list_divisions().unwrap().len(), 1);
    assert_eq!(store.get_asset("river-1").unwrap(), Some(asset("river-1")));
    assert_eq!(store.get_meta("demo").unwrap(), Some(b"seeded".to_vec()));
    assert_eq!(store.document("i1").unwrap().unwrap().bytes, b"bytes");
    assert_eq!(store.feed_head().unwrap(), 1);
    // Every walk over the documents finds them after a reopen, with their facts.
    let every = |_: &DocMeta| true;
    let issue = doc_meta("i1", DocKind::Issue);
    assert_eq!(
        store.changed_since(0, 1, &every).unwrap(),
        vec![issue.clone()]
    );
    assert_eq!(
        store.documents_page(None, 10, &every).unwrap(),
        vec![issue.clone()]
    );
    assert_eq!(store.all_documents().unwrap(), vec![issue]);
    assert_eq!(
        store
            .save_document("p1", &doc_meta("p1", DocKind::Patrol), b"more", &[])
            .unwrap(),
        2,
        "feed positions continue after a reopen"
    );
}

/// What a migration writes as it was: a binding with its actor and session, every refresh
/// token listed back, and a document at the feed position it had.
pub(crate) fn a_migration_places_bindings_tokens_and_feed_positions(h: &impl Harness) {
    let store = h.open();
    let binding = super::DeviceRecord {
        user_id: "u-1".into(),
        device_id: "phone-9".into(),
        actor_id: "cd".repeat(16),
        session: 7,
        created_at_ms: 11,
        last_login_ms: 22,
        revoked_at_ms: Some(33),
    };
    store.put_device(&binding).expect("put device");
    assert_eq!(
        store.get_device("u-1", "phone-9").expect("get"),
        Some(binding.clone())
    );
    assert_eq!(store.list_devices().expect("list"), vec![binding]);

    let (a, b) = (refresh(&"bb".repeat(32)), refresh(&"aa".repeat(32)));
    store.put_refresh_token(&a).expect("put a");
    store.put_refresh_token(&b).expect("put b");
    store
        .consume_refresh_token(&a.token_hash, 5)
        .expect("consume");
    let listed = store.list_refresh_tokens().expect("list tokens");
    assert_eq!(
        listed
            .iter()
            .map(|t| t.token_hash.as_str())
            .collect::<Vec<_>>(),
        vec![b.token_hash.as_str(), a.token_hash.as_str()],
        "ordered by hash"
    );
    assert_eq!(listed[1].used_at_ms, Some(5), "used ones are listed too");

    store.advance_feed(41).expect("advance");
    assert_eq!(store.feed_head().expect("head"), 41);
    let bytes = automerge::AutoCommit::new().save();
    let seq = store
        .save_document("placed", &doc_meta("placed", DocKind::Patrol), &bytes, &[])
        .expect("save");
    assert_eq!(seq, 42);
    assert!(store.advance_feed(41).is_err(), "never back");
    store.advance_feed(50).expect("past the last document");
    assert_eq!(store.feed_head().expect("head"), 50);
    assert_eq!(store.document_seq("placed").expect("seq"), Some(42));
}

/// A patrol two hours in: 1,440 track points, five seconds apart.
pub(crate) fn patrol_doc() -> PatrolDoc {
    let mut patrol = PatrolDoc::create(
        actor_for(7),
        &NewPatrol {
            system: System::River,
            asset: "river-1".into(),
            chief: "u1".into(),
            division: code("370105014201"),
            device: "phone".into(),
            started_at_ms: 1_700_000_000_000,
        },
    )
    .expect("patrol");
    patrol
        .append_track(&minute_of_track(0, 1440))
        .expect("track");
    patrol
}

/// `count` track points from point `from` on, five seconds apart, wandering as a walk along a
/// river bank does (a straight line would compress to nothing).
pub(crate) fn minute_of_track(from: i64, count: i64) -> Vec<TrackPoint> {
    let jitter = |i: i64, salt: i64| {
        let x = (i * 2_654_435_761 + salt * 40_503).rem_euclid(1_000_003);
        x as f64 / 1_000_003.0 - 0.5
    };
    (from..from + count)
        .map(|i| TrackPoint {
            lat: 36.70 + i as f64 * 1e-5 + jitter(i, 1) * 4e-5,
            lon: 116.95 + i as f64 * 1e-5 + jitter(i, 2) * 4e-5,
            t_ms: 1_700_000_000_000 + i * 5_000 + (jitter(i, 3) * 400.0) as i64,
            accuracy_m: 3.0 + (jitter(i, 4) + 0.5) as f32 * 12.0,
            ..TrackPoint::default()
        })
        .collect()
}

/// Reads the document as the hub does, lets `edit` change it, and saves what the edit added as
/// the hub does (`save_merged`, with the version read).
fn merge_and_save(
    store: &dyn Store,
    id: &str,
    edit: &mut dyn FnMut(&mut AutoCommit),
) -> Result<u64, sync_core::hub::HubError> {
    let stored = store.document(id)?;
    let mut doc = match &stored {
        Some(stored) => AutoCommit::load(&stored.bytes).expect("a stored document loads"),
        None => AutoCommit::new(),
    };
    let read = doc.get_heads();
    edit(&mut doc);
    let added = doc.save_after(&read);
    store.save_merged(
        id,
        &doc_meta(id, DocKind::Patrol),
        stored.map(|s| s.version),
        Some(&added),
        &mut || doc.save(),
        &[],
    )
}

/// The document as stored, loaded.
fn stored_doc(store: &dyn Store, id: &str) -> AutoCommit {
    let stored = store.document(id).unwrap().expect("stored");
    AutoCommit::load(&stored.bytes).expect("loads")
}

fn footprint(store: &dyn Store, id: &str) -> super::Footprint {
    store.document_footprint(id).unwrap().expect("stored")
}

/// Sixty syncs of one patrol, a minute of track each: most saves add an incremental save, the
/// document is compacted again and again, its records never exceed a snapshot and the bounded
/// number of incremental saves, and what is read holds every change, with the heads of the
/// phone's copy, also after a reopen.
pub(crate) fn many_saves_keep_few_records_and_every_change(h: &impl Harness) {
    let store = h.open();
    let mut phone = patrol_doc();
    let mut synced = Vec::new();
    let first = phone.save();
    store
        .save_document("p1", &doc_meta("p1", DocKind::Patrol), &first, &[])
        .unwrap();
    synced.extend(phone.heads());
    let (mut incremental, mut compactions, mut most) = (0, 0, 0);
    let mut before = footprint(&*store, "p1");
    for minute in 0..60 {
        phone
            .append_track(&minute_of_track(1440 + minute * 12, 12))
            .unwrap();
        let changes: Vec<Vec<u8>> = phone
            .am_mut()
            .get_changes(&synced)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        synced = phone.heads();
        merge_and_save(&*store, "p1", &mut |doc| {
            for change in &changes {
                doc.load_incremental(change).expect("change");
            }
        })
        .unwrap();
        let after = footprint(&*store, "p1");
        if after.incremental_saves == before.incremental_saves + 1 {
            incremental += 1;
        } else {
            assert_eq!(after.incremental_saves, 0, "{before:?} then {after:?}");
            compactions += 1;
        }
        most = most.max(after.records());
        before = after;
    }
    assert!(incremental >= 30, "{incremental} incremental saves of 60");
    assert!(compactions >= 3, "{compactions} compactions of 60 saves");
    assert!(
        most <= 1 + sync_core::hub::MAX_INCREMENTAL_SAVES,
        "{most} records for one document"
    );
    let expected = phone.heads();
    let mut stored = stored_doc(&*store, "p1");
    assert_eq!(stored.get_heads(), expected);
    let track = PatrolDoc::from_automerge(stored).unwrap().track().unwrap();
    assert_eq!(track.len(), 1440 + 60 * 12, "every point of the track");
    drop(store);
    let store = h.open();
    assert_eq!(stored_doc(&*store, "p1").get_heads(), expected);
    assert_eq!(store.document_seq("p1").unwrap(), Some(61));
}

/// A compaction that wrote its snapshot but kept the incremental saves it covers, as a crash
/// between the two steps would leave it (the stores do both in one transaction; the test
/// keeps them apart): the document reads whole with the same heads, and the next compaction
/// deletes what was left.
pub(crate) fn a_compaction_cut_short_loses_nothing(h: &impl Harness) {
    let store = h.open();
    let mut phone = patrol_doc();
    let first = phone.save();
    store
        .save_document("p1", &doc_meta("p1", DocKind::Patrol), &first, &[])
        .unwrap();
    let mut minute = 0;
    let mut sync = |store: &dyn Store, phone: &mut PatrolDoc| {
        let read = stored_doc(store, "p1").get_heads();
        phone
            .append_track(&minute_of_track(1440 + minute * 12, 12))
            .unwrap();
        minute += 1;
        let changes = phone.am_mut().save_after(&read);
        merge_and_save(store, "p1", &mut |doc| {
            doc.load_incremental(&changes).expect("changes");
        })
        .unwrap();
    };
    // Saves until one compacts, with the deletion left out.
    super::chunks::leave_covered(true);
    let mut left = None;
    for _ in 0..40 {
        let before = footprint(&*store, "p1");
        sync(&*store, &mut phone);
        let after = footprint(&*store, "p1");
        if after.snapshot_bytes != before.snapshot_bytes {
            left = Some(after);
            break;
        }
    }
    super::chunks::leave_covered(false);
    let left = left.expect("a compaction within 40 saves");
    assert!(
        left.incremental_saves > 0,
        "the covered incremental saves are still there: {left:?}"
    );
    let expected = phone.heads();
    assert_eq!(stored_doc(&*store, "p1").get_heads(), expected);
    drop(store);
    let store = h.open();
    assert_eq!(stored_doc(&*store, "p1").get_heads(), expected);
    // Saved on until the next compaction, which deletes them.
    let mut cleaned = false;
    for _ in 0..40 {
        sync(&*store, &mut phone);
        if footprint(&*store, "p1").records() == 1 {
            cleaned = true;
            break;
        }
    }
    assert!(cleaned, "{:?}", footprint(&*store, "p1"));
    let mut stored = stored_doc(&*store, "p1");
    assert_eq!(stored.get_heads(), phone.heads());
    let track = PatrolDoc::from_automerge(stored).unwrap().track().unwrap();
    assert_eq!(track.len(), 1440 + minute as usize * 12);
}

/// Two servers save the same document at once, each merging its own chiefs' changes into
/// what it read: a save from a version another server has replaced meanwhile is refused and
/// made again, and at the end both read one document holding every change.
pub(crate) fn two_nodes_saving_one_document_converge(h: &impl Harness) {
    let first = h.open();
    let second = h.second_node(&first);
    let mut patrol = patrol_doc();
    let bytes = patrol.save();
    first
        .save_document("p1", &doc_meta("p1", DocKind::Patrol), &bytes, &[])
        .unwrap();
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (node, store) in [(1u64, &first), (2u64, &second)] {
            let refused = &refused;
            scope.spawn(move || {
                for n in 0..25 {
                    loop {
                        let saved = merge_and_save(&**store, "p1", &mut |doc| {
                            doc.set_actor(actor_for(100 + node));
                            doc.put(automerge::ROOT, format!("node {node} note {n}"), n)
                                .expect("put");
                        });
                        match saved {
                            Ok(_) => break,
                            Err(sync_core::hub::HubError::SavedMeanwhile { .. }) => {
                                refused.fetch_add(1, AtomicOrdering::Relaxed);
                            }
                            Err(err) => panic!("{err}"),
                        }
                    }
                }
            });
        }
    });
    let mut a = stored_doc(&*first, "p1");
    let mut b = stored_doc(&*second, "p1");
    assert_eq!(a.get_heads(), b.get_heads());
    for node in [1, 2] {
        for n in 0..25 {
            let key = format!("node {node} note {n}");
            assert!(a.get(automerge::ROOT, &key).unwrap().is_some(), "{key}");
        }
    }
    // The patrol's own changes, then one per note.
    let patrol_changes = patrol.am_mut().get_changes(&[]).len();
    assert_eq!(a.get_changes(&[]).len(), patrol_changes + 50);
    assert_eq!(first.document_seq("p1").unwrap(), Some(51));
    println!(
        "merges refused and made again: {}",
        refused.load(AtomicOrdering::Relaxed)
    );
}

/// A document of a few kilobytes, as a store written before incremental saves holds one: its
/// full save. Test-only, for the stores' own tests of such stores.
pub(crate) fn older_document() -> AutoCommit {
    let mut doc = patrol_doc().am().clone();
    doc.set_actor(actor_for(8));
    doc
}

/// Adds one note to `doc` (a change of a few hundred bytes) and returns what it added since
/// `read`.
pub(crate) fn add_note(doc: &mut AutoCommit, n: u64) -> Vec<u8> {
    let read = doc.get_heads();
    doc.put(
        automerge::ROOT,
        format!("note {n}"),
        format!("巡河记录 {n}"),
    )
    .expect("put");
    doc.save_after(&read)
}

fn patrol_fact(id: &str, km: f64, seq: u64) -> StoredFact {
    use sync_core::rules::PatrolFlag;
    StoredFact {
        seq,
        fact: sync_core::stats::DocFact::Patrol(sync_core::stats::PatrolFact {
            id: id.into(),
            system: System::River,
            asset: "river-1".into(),
            chief: "u-1".into(),
            division: code("370105014201"),
            at_ms: 1_717_344_000_123,
            km,
            hours: 1.0 / 3.0,
            valid: km > 1.0,
            flags: if km > 1.0 {
                vec![]
            } else {
                vec![PatrolFlag::NoTrack]
            },
            clock_skew: false,
            points: 42,
        }),
    }
}

fn issue_fact(id: &str, seq: u64) -> StoredFact {
    let mut state = sync_core::workflow::IssueState::default();
    state.status = Some(sync_core::workflow::Status::Reported);
    state.reporter = Some("u-1".into());
    state.reported_at_ms = Some(1_717_344_000_000);
    StoredFact {
        seq,
        fact: sync_core::stats::DocFact::Issue(Box::new(sync_core::stats::IssueFact {
            id: id.into(),
            system: System::River,
            category: "river.dumping".into(),
            severity: sync_core::model::Severity::Urgent,
            asset: "river-1".into(),
            division: code("370105014201"),
            location: [116.981_234_5, 36.721_098_7],
            reporter: "u-1".into(),
            reported_at_ms: 1_717_344_000_000,
            state,
            reopened: 1,
        })),
    }
}

fn sorted(mut facts: Vec<StoredFact>) -> Vec<StoredFact> {
    facts.sort_by(|a, b| a.fact.id().cmp(b.fact.id()));
    facts
}

/// Facts go in with the cursor they reach, come back exactly (kilometres to the last bit),
/// only those worked out past a given head, and survive a reopen.
pub(crate) fn facts_are_stored_with_their_cursor_and_read_back(h: &impl Harness) {
    let store = h.open();
    assert_eq!(store.facts_mark().unwrap(), None);
    store.start_facts("1-abc").unwrap();
    assert_eq!(
        store.facts_mark().unwrap(),
        Some(FactsMark {
            generation: "1-abc".into(),
            cursor: 0
        })
    );
    let first = vec![
        patrol_fact("p-1", 2.417_938_561_237_891, 5),
        issue_fact("i-1", 5),
    ];
    assert!(store.put_facts("1-abc", &first, 5).unwrap());
    let later = vec![patrol_fact("p-2", 0.1, 9)];
    assert!(store.put_facts("1-abc", &later, 9).unwrap());
    assert_eq!(store.facts_mark().unwrap().unwrap().cursor, 9);
    let everything = sorted(first.iter().chain(&later).cloned().collect());
    assert_eq!(sorted(store.facts_since("1-abc", 0).unwrap()), everything);
    assert_eq!(store.facts_since("1-abc", 5).unwrap(), later);
    assert!(store.facts_since("1-abc", 9).unwrap().is_empty());
    assert!(store.facts_since("1-other", 0).unwrap().is_empty());
    // A step that stores facts without reaching a new cursor leaves the cursor where it was.
    assert!(store
        .put_facts("1-abc", &[patrol_fact("p-3", 3.0, 12)], 0)
        .unwrap());
    assert_eq!(store.facts_mark().unwrap().unwrap().cursor, 9);

    drop(store);
    let store = h.open();
    assert_eq!(
        store.facts_mark().unwrap(),
        Some(FactsMark {
            generation: "1-abc".into(),
            cursor: 9
        })
    );
    let mut again = everything;
    again.push(patrol_fact("p-3", 3.0, 12));
    assert_eq!(
        sorted(store.facts_since("1-abc", 0).unwrap()),
        sorted(again)
    );
}

/// Two servers working out one document: the fact worked out at the later head stays,
/// whichever is stored last; the cursor never moves back.
pub(crate) fn a_fact_worked_out_earlier_never_replaces_a_later_one(h: &impl Harness) {
    let store = h.open();
    store.start_facts("1-abc").unwrap();
    assert!(store
        .put_facts("1-abc", &[patrol_fact("p-1", 5.0, 20)], 20)
        .unwrap());
    assert!(store
        .put_facts("1-abc", &[patrol_fact("p-1", 0.5, 12)], 12)
        .unwrap());
    assert_eq!(
        store.facts_since("1-abc", 0).unwrap(),
        vec![patrol_fact("p-1", 5.0, 20)]
    );
    assert_eq!(store.facts_mark().unwrap().unwrap().cursor, 20);
    // At the same head or a later one, the fact is replaced.
    assert!(store
        .put_facts("1-abc", &[patrol_fact("p-1", 6.0, 20)], 20)
        .unwrap());
    assert!(store
        .put_facts("1-abc", &[patrol_fact("p-1", 7.0, 31)], 31)
        .unwrap());
    assert_eq!(
        store.facts_since("1-abc", 0).unwrap(),
        vec![patrol_fact("p-1", 7.0, 31)]
    );
}

/// New rules (a new generation) start from cursor 0 with no facts; a server still judging by
/// the old ones stores nothing; starting the current generation again keeps its facts.
pub(crate) fn a_new_facts_generation_starts_empty_and_refuses_the_old(h: &impl Harness) {
    let store = h.open();
    assert!(
        !store
            .put_facts("1-old", &[patrol_fact("p-0", 1.0, 1)], 1)
            .unwrap(),
        "no generation started yet"
    );
    store.start_facts("1-old").unwrap();
    assert!(store
        .put_facts(
            "1-old",
            &[patrol_fact("p-1", 2.0, 8), issue_fact("i-1", 8)],
            8
        )
        .unwrap());
    store.start_facts("1-new").unwrap();
    assert_eq!(
        store.facts_mark().unwrap(),
        Some(FactsMark {
            generation: "1-new".into(),
            cursor: 0
        })
    );
    assert!(store.facts_since("1-old", 0).unwrap().is_empty());
    assert!(store.facts_since("1-new", 0).unwrap().is_empty());
    assert!(!store
        .put_facts("1-old", &[patrol_fact("p-2", 2.0, 9)], 9)
        .unwrap());
    assert!(store.facts_since("1-old", 0).unwrap().is_empty());
    assert_eq!(store.facts_mark().unwrap().unwrap().cursor, 0);

    assert!(store
        .put_facts("1-new", &[patrol_fact("p-1", 3.0, 9)], 9)
        .unwrap());
    store.start_facts("1-new").unwrap();
    assert_eq!(store.facts_mark().unwrap().unwrap().cursor, 9);
    assert_eq!(
        store.facts_since("1-new", 0).unwrap(),
        vec![patrol_fact("p-1", 3.0, 9)]
    );
}
