//! Statistics facts kept in the store: a server started again over a data directory with many
//! patrols answers its first report from the stored facts, working out only the documents saved
//! after the facts' cursor;
//! new rules work every fact out once, and the new facts are what the next start reads; and of
//! two servers on one PostgreSQL database, a patrol one of them worked out reaches the other's
//! report through the stored facts. Counted by the `chiefsync_stats_facts_*` counters, which
//! are also on `/metrics`.

use serde_json::{json, Value};
use server::demo::{self, ADMIN, SUPERVISOR};
use server::stats::query::day_string;

use crate::harness::TestServer;
use crate::postgres::{admin_sql, Database};

const DAY_MS: i64 = 86_400_000;

/// Extra patrols stored besides the demo's, walked over the last three weeks.
const EXTRA_PATROLS: u64 = 120;

/// (worked out from documents, read back from the store, generations started) so far.
fn counted(s: &TestServer) -> (u64, u64, u64) {
    let (derived, stored, generations) = s.state.stats.counters();
    (derived.get(), stored.get(), generations.get())
}

fn report_path() -> String {
    let now = server::state::now_ms();
    format!(
        "/api/v1/stats/patrols?from={}&to={}",
        day_string(now - 29 * DAY_MS),
        day_string(now)
    )
}

async fn report(s: &TestServer, token: &str) -> Value {
    s.get(&report_path(), token).await.expect_ok().clone()
}

/// Stores `n` patrols of demo-chief-2 on its river, one every few hours back from now, as a
/// phone's sync would store them (through the store's hub part).
fn store_patrols(s: &TestServer, first: u64, n: u64) {
    let facts = demo::facts();
    let chief = facts.user(demo::CHIEF_2).unwrap();
    let asset = facts.asset("river-thh-03").unwrap();
    let now = server::state::now_ms();
    for k in first..first + n {
        let walked = now - DAY_MS / 2 - (k as i64 % 80) * 6 * 3_600_000;
        s.store_walked_patrol(chief, asset, (10_000 + k, "many-phone"), walked, 25 * 60, k);
    }
}

fn total(report: &Value) -> u64 {
    report["totals"]["patrols"]
        .as_u64()
        .unwrap_or_else(|| panic!("{report}"))
}

#[actix_web::test]
async fn a_restart_answers_the_first_report_from_stored_facts() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), true).await;
    store_patrols(&s, 0, EXTRA_PATROLS);
    let token = s.token(SUPERVISOR, "pc").await;
    let first = report(&s, &token).await;
    let documents = s.state.store.feed_head().unwrap();
    let (derived, stored, generations) = counted(&s);
    // The first report ever works every document out, once, and stores the facts.
    assert_eq!((stored, generations), (0, 1));
    assert!(
        derived >= EXTRA_PATROLS && derived <= documents,
        "{derived} of {documents}"
    );
    assert!(total(&first) >= EXTRA_PATROLS, "{first}");
    // Three more arrive and the server stops before their facts are worked out (as a crash
    // between a save and its fact would leave it).
    store_patrols(&s, EXTRA_PATROLS, 3);
    s.stop().await;

    // Started again: the first report reads the stored facts back and works out only the three
    // documents saved past their cursor.
    let s = TestServer::start_in(dir.path(), false).await;
    let token = s.token(SUPERVISOR, "pc").await;
    let again = report(&s, &token).await;
    assert_eq!(counted(&s), (3, derived, 0));
    assert_eq!(total(&again), total(&first) + 3);
    let metrics = s.request("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().expect("metrics are text");
    for line in [
        format!("chiefsync_stats_facts_stored_total {derived}"),
        "chiefsync_stats_facts_derived_total 3".to_owned(),
        "chiefsync_stats_facts_generations_total 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }

    // A patrol saved afterwards is the only document the next report works out.
    store_patrols(&s, EXTRA_PATROLS + 3, 1);
    let more = report(&s, &token).await;
    assert_eq!(counted(&s), (4, derived, 0));
    assert_eq!(total(&more), total(&first) + 4);

    // New rules: every fact is worked out once more, in a new generation ...
    let admin = s.token(ADMIN, "pc").await;
    let mut rules = s
        .get("/api/v1/admin/rules", &admin)
        .await
        .expect_ok()
        .clone();
    rules["default"]["min_minutes"] = json!(30.0);
    s.request("PUT", "/api/v1/admin/rules", Some(&admin), Some(rules))
        .await
        .expect_ok();
    let judged_again = report(&s, &token).await;
    assert_eq!(counted(&s), (4 + derived + 4, derived, 1));
    assert_ne!(
        judged_again["totals"], more["totals"],
        "a 30-minute minimum counts fewer"
    );
    s.stop().await;

    // ... and those are what the next start reads.
    let s = TestServer::start_in(dir.path(), false).await;
    let token = s.token(SUPERVISOR, "pc").await;
    assert_eq!(report(&s, &token).await, judged_again);
    assert_eq!(counted(&s), (0, derived + 4, 0));
    s.stop().await;
}

#[actix_web::test]
async fn a_patrol_worked_out_on_one_node_reaches_the_other_through_the_store() {
    let Some(db) = Database::create("facts_two_nodes") else {
        return;
    };
    let settings = |s: &mut server::state::Settings| s.database = Some(db.url.clone());
    let a = TestServer::demo_with(settings).await;
    let b = TestServer::demo_with(settings).await;
    let on_a = a.token(SUPERVISOR, "desk-a").await;
    let on_b = b.token(SUPERVISOR, "desk-b").await;

    // Both warm: A works the demo out, B reads A's facts back.
    let before = report(&a, &on_a).await;
    assert_eq!(report(&b, &on_b).await, before);
    let (a_derived, _, _) = counted(&a);
    assert!(a_derived > 0);
    assert_eq!(counted(&b).0, 0, "B worked out nothing A had stored");

    // A patrol saved through A, worked out by A ...
    store_patrols(&a, 0, 1);
    let after = report(&a, &on_a).await;
    assert_eq!(total(&after), total(&before) + 1);
    assert_eq!(counted(&a).0, a_derived + 1);

    // ... is in B's report, read from the stored facts, not from the document.
    let (_, b_stored, _) = counted(&b);
    assert_eq!(report(&b, &on_b).await, after);
    assert_eq!(counted(&b), (0, b_stored + 1, 0));

    // One saved through B and not yet worked out anywhere: B works it out itself.
    store_patrols(&b, 1, 1);
    assert_eq!(total(&report(&b, &on_b).await), total(&before) + 2);
    assert_eq!(counted(&b).0, 1);
    assert_eq!(total(&report(&a, &on_a).await), total(&before) + 2);
    assert_eq!(counted(&a).0, a_derived + 1, "A read B's fact back");

    a.stop().await;
    b.stop().await;
}

/// A step of facts the database refuses keeps the stored cursor behind it: were a later step's
/// cursor stored anyway, the store would claim facts it lacks, and every server reading it (and
/// this one after a restart) would leave those documents out of its statistics for good.
#[actix_web::test]
async fn a_refused_step_of_facts_keeps_the_stored_cursor_behind_it() {
    let Some(db) = Database::create("facts_refused_step") else {
        return;
    };
    let settings = |s: &mut server::state::Settings| s.database = Some(db.url.clone());
    let a = TestServer::demo_with(settings).await;
    let on_a = a.token(SUPERVISOR, "desk-a").await;
    let before = report(&a, &on_a).await;
    // The database refuses the next statement that writes facts, once (a sequence is not
    // rolled back with the transaction it was drawn in).
    admin_sql(
        &db.url,
        vec![
            "CREATE SEQUENCE refuse_facts_once".into(),
            "CREATE FUNCTION refuse_facts_once() RETURNS trigger AS $$ BEGIN \
             IF nextval('refuse_facts_once') = 1 THEN RAISE EXCEPTION 'refused once'; END IF; \
             RETURN NULL; END $$ LANGUAGE plpgsql"
                .into(),
            "CREATE TRIGGER refuse_facts_once BEFORE INSERT ON stats_facts \
             FOR EACH STATEMENT EXECUTE FUNCTION refuse_facts_once()"
                .into(),
        ],
    )
    .expect("trigger");
    // More patrols than one step stores: the first step is refused, the last one stored.
    store_patrols(&a, 0, 510);
    let after = report(&a, &on_a).await;
    assert_eq!(total(&after), total(&before) + 510);

    // A second server reads the store: what it lacks it works out, so it agrees.
    let b = TestServer::demo_with(settings).await;
    let on_b = b.token(SUPERVISOR, "desk-b").await;
    assert_eq!(
        total(&report(&b, &on_b).await),
        total(&after),
        "a server reading the stored facts left the refused step's patrols out"
    );
    a.stop().await;
    b.stop().await;
}
