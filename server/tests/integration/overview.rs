//! The overview delivered with the sync (`x-chiefsync-overview`) is kept per user between syncs
//! (`stats::overview`); what is kept must never be older than the facts: a new patrol or a new
//! problem in the office's district changes the overview its next sync brings, and every
//! overview delivered is the one computed afresh from the statistics facts.

use server::demo::{self, CHIEF, SUPERVISOR};
use server::state::now_ms;
use sync_core::doc::{DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc};
use sync_core::model::{Severity, User};
use sync_core::overview::{self, Overview};
use sync_core::protocol::{OverviewUpdate, SyncRequest, SyncResponse, OVERVIEW_HEADER};
use sync_core::track::walk_along;

use crate::harness::TestServer;
use crate::phone::Phone;

/// One sync pushing nothing from `cursor`, naming the overview version the phone holds.
async fn raw_sync(
    s: &TestServer,
    token: &str,
    cursor: u64,
    held: u64,
) -> (SyncResponse, Option<OverviewUpdate>) {
    let body = SyncRequest {
        cursor,
        dropped: Vec::new(),
        docs: Vec::new(),
    }
    .encode();
    let mut res = s
        .client
        .post(format!("{}/api/v1/sync", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/octet-stream"))
        .insert_header((OVERVIEW_HEADER, held.to_string()))
        .send_body(body)
        .await
        .expect("sync sent");
    assert_eq!(res.status(), 200);
    let bytes = res.body().limit(64 << 20).await.expect("answer read");
    SyncResponse::decode_with_overview(&bytes).expect("an answer")
}

/// `user`'s overview computed now from the statistics facts, bypassing what is kept.
fn afresh(s: &TestServer, user: &User) -> Option<Overview> {
    s.state
        .stats
        .with_facts(s.state.store.as_ref(), |index, reference| {
            overview::overview(user, index, reference, now_ms())
        })
        .unwrap()
}

fn user(s: &TestServer, username: &str) -> User {
    s.state
        .store
        .find_user_by_username(username)
        .unwrap()
        .unwrap()
        .user
}

/// The village chief's patrol on their stretch this hour and, with `problem`, a problem
/// reported at its end; both synced from the chief's phone.
async fn village_work(s: &TestServer, problem: bool) {
    let village = Phone::login(s, CHIEF, "village-phone").await;
    let facts = demo::facts();
    let asset = facts.asset("river-thh-01").unwrap();
    // Ten minutes' walk ending before now, inside this month.
    let started = (now_ms() - 900_000).max(overview::period(now_ms()).from_ms);
    let track = walk_along(&asset.geometry, started, 600, 7);
    let mut patrol = PatrolDoc::create(
        village.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: village.user.id.clone(),
            division: asset.division.clone(),
            device: village.device.clone(),
            started_at_ms: started,
        },
    )
    .unwrap();
    patrol.append_track(&track).unwrap();
    patrol.finish(track.last().unwrap().t_ms).unwrap();
    let patrol_id = patrol.id().to_string();
    village.save_record(&mut patrol, DocKind::Patrol, &patrol_id);
    if problem {
        let last = track.last().unwrap();
        let mut issue = IssueDoc::report(
            village.actor.clone(),
            &village.user,
            &village.device,
            last.t_ms,
            &NewIssue {
                system: asset.system,
                category: "river.garbage".into(),
                severity: Severity::General,
                asset: asset.id.clone(),
                division: asset.division.clone(),
                location: [last.lon, last.lat],
                description: "桥下漂浮垃圾".into(),
                patrol: None,
            },
        )
        .unwrap();
        village.save(&mut issue);
    }
    let report = village.sync(now_ms()).await;
    assert_eq!(report.refused, 0, "{report:?}");
    assert_eq!(report.docs_sent, 1 + usize::from(problem), "{report:?}");
}

fn patrols_of(overview: &Overview, chief: &str) -> u64 {
    overview
        .chiefs
        .iter()
        .find(|c| c.chief == chief)
        .map_or(0, |c| c.patrols)
}

fn open_problems(overview: &Overview) -> u64 {
    overview.divisions.iter().map(|d| d.open).sum()
}

#[actix_web::test]
async fn a_kept_overview_follows_new_patrols_and_problems() {
    let s = TestServer::demo().await;
    let office = user(&s, SUPERVISOR);
    let chief = user(&s, CHIEF);
    let token = s.token(SUPERVISOR, "office-phone").await;

    let (response, first) = raw_sync(&s, &token, 0, 0).await;
    let first = first.expect("the office's first sync brings its overview");
    let before = first.overview.clone().unwrap();
    assert_eq!(Some(&before), afresh(&s, &office).as_ref());
    assert_eq!(first.version, before.version());
    // Nothing changed: nothing attached, whatever the cursor.
    let cursor = response.cursor;
    assert_eq!(raw_sync(&s, &token, cursor, first.version).await.1, None);
    assert_eq!(raw_sync(&s, &token, 0, first.version).await.1, None);
    assert_eq!(s.state.overviews.len(), 1);

    // A patrol of a village chief below the office: the next sync brings the new count.
    village_work(&s, false).await;
    let (_, second) = raw_sync(&s, &token, cursor, first.version).await;
    let second = second.expect("a new patrol changes the overview");
    let after_patrol = second.overview.clone().unwrap();
    assert_eq!(
        patrols_of(&after_patrol, &chief.id),
        patrols_of(&before, &chief.id) + 1
    );
    assert_eq!(Some(&after_patrol), afresh(&s, &office).as_ref());
    assert_eq!(raw_sync(&s, &token, cursor, second.version).await.1, None);

    // A new problem: one more open problem in the office's district.
    village_work(&s, true).await;
    let (_, third) = raw_sync(&s, &token, cursor, second.version).await;
    let after_problem = third
        .expect("a new problem changes the overview")
        .overview
        .unwrap();
    assert_eq!(
        open_problems(&after_problem),
        open_problems(&after_patrol) + 1
    );
    assert_eq!(
        patrols_of(&after_problem, &chief.id),
        patrols_of(&after_patrol, &chief.id) + 1
    );
    assert_eq!(Some(&after_problem), afresh(&s, &office).as_ref());

    // A phone naming an older version is brought up to date from what is kept.
    let (_, again) = raw_sync(&s, &token, cursor, first.version).await;
    assert_eq!(again.unwrap().overview, Some(after_problem));

    // A village chief has none and costs no overview.
    let village = s.token(CHIEF, "raw").await;
    assert_eq!(raw_sync(&s, &village, 0, 0).await.1, None);
    assert_eq!(s.state.overviews.len(), 1);
    s.stop().await;
}

/// An administrator renaming a chief changes the names in the overview at once: the reference
/// data is part of what a kept overview is labelled with.
#[actix_web::test]
async fn a_renamed_chief_is_renamed_in_the_kept_overview() {
    let s = TestServer::demo().await;
    let office = user(&s, SUPERVISOR);
    let token = s.token(SUPERVISOR, "office-phone").await;
    let (_, first) = raw_sync(&s, &token, 0, 0).await;
    let first = first.unwrap();
    let chief_id = demo::user_id(CHIEF);
    let mut record = s
        .state
        .store
        .get_user(&chief_id)
        .unwrap()
        .expect("the demo chief");
    record.user.display_name = "小寨村新河长".into();
    s.state.store.update_user(&record).unwrap();

    let (_, renamed) = raw_sync(&s, &token, 0, first.version).await;
    let renamed = renamed
        .expect("a rename changes the overview")
        .overview
        .unwrap();
    let line = renamed.chiefs.iter().find(|c| c.chief == chief_id).unwrap();
    assert_eq!(line.name, "小寨村新河长");
    assert_eq!(Some(&renamed), afresh(&s, &office).as_ref());
    s.stop().await;
}

/// The cost of an overview kept against one computed afresh, over the district demo (what
/// `--demo` seeds), for the river office: printed, and the kept one must be the same.
#[actix_web::test]
async fn a_kept_overview_costs_a_lookup() {
    let s = TestServer::empty().await;
    demo::seed_sized(&s.state, demo::DemoSize::District).expect("seed");
    let office = user(&s, SUPERVISOR);
    let store = s.state.store.as_ref();
    let median = |mut runs: Vec<std::time::Duration>| {
        runs.sort();
        runs[runs.len() / 2]
    };
    let time = |f: &dyn Fn()| {
        median(
            (0..7)
                .map(|_| {
                    let started = std::time::Instant::now();
                    f();
                    started.elapsed()
                })
                .collect(),
        )
    };
    let fresh = time(&|| {
        let now = now_ms();
        s.state
            .stats
            .with_facts(store, |index, reference| {
                let computed = overview::computed(&office, index, reference, now);
                overview::version_of(computed.overview.as_ref())
            })
            .unwrap();
    });
    let kept = time(&|| {
        server::stats::overview::current(
            store,
            &s.state.stats,
            &s.state.overviews,
            &office,
            now_ms(),
        )
        .unwrap();
    });
    let version = time(&|| {
        server::stats::overview::facts_version(store).unwrap();
    });
    let current = server::stats::overview::current(
        store,
        &s.state.stats,
        &s.state.overviews,
        &office,
        now_ms(),
    )
    .unwrap();
    assert_eq!(current.overview.as_deref(), afresh(&s, &office).as_ref());
    eprintln!(
        "the river office's overview over the district demo: computed {fresh:?}, kept {kept:?} (of which reading the facts' version {version:?})"
    );
    s.stop().await;
}
