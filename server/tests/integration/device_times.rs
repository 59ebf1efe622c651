//! Event times and photo capture times go by the one rule for times a phone supplies
//! (`rules::times`). A report dated before the phone's last acknowledged sync counts at that
//! sync. A photo
//! taken before what the server vouches for — the phone's sign-in, its last acknowledged sync
//! before the record arrived, and for an after photo the problem's report — is flagged on the
//! issue page and in the document view with its minutes. Before, only a capture time after the
//! photo's receipt was judged, so a gallery photo weeks old passed as today's evidence and an
//! old photo as the problem put right.

use serde_json::Value;
use server::demo::{self, CHIEF, SUPERVISOR};
use server::state::now_ms;
use sync_core::doc::{IssueDoc, NewIssue};
use sync_core::model::{Geometry, PhotoRef, PhotoRole, Role, Severity};

use crate::harness::TestServer;
use crate::phone::Phone;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// A problem on the chief's first asset, reported on the phone now (not yet synced).
fn report(phone: &Phone, s: &TestServer) -> IssueDoc {
    report_at(phone, s, now_ms())
}

/// A problem on the chief's first asset, reported on the phone with its clock at `at_ms`.
fn report_at(phone: &Phone, s: &TestServer, at_ms: i64) -> IssueDoc {
    let facts = demo::facts();
    let Role::Chief { jurisdiction, .. } = &facts.user(CHIEF).unwrap().role else {
        panic!("demo-chief is a chief")
    };
    let asset = facts.asset(&jurisdiction.assets[0]).unwrap();
    let here = match &asset.geometry {
        Geometry::LineString(line) => line[0],
        Geometry::Polygon(rings) => rings[0][0],
    };
    let category = sync_core::hub::ReferenceSource::categories(s.state.store.as_ref())
        .unwrap()
        .into_iter()
        .find(|c| c.system == asset.system)
        .unwrap()
        .code;
    IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        at_ms,
        &NewIssue {
            system: asset.system,
            category,
            severity: Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: here,
            description: "河岸有垃圾".into(),
            patrol: None,
        },
    )
    .unwrap()
}

fn photo(n: u8, role: PhotoRole, taken_at_ms: i64, at: [f64; 2]) -> PhotoRef {
    PhotoRef {
        sha256: format!("{n:02x}").repeat(32),
        role,
        taken_at_ms: Some(taken_at_ms),
        position: Some(at),
        bytes: 200_000,
    }
}

/// The evidence flags of each photo on the issue page, by SHA-256, after checking the document
/// view says the same.
async fn flags(s: &TestServer, token: &str, id: &str) -> Vec<(String, Vec<Value>)> {
    let page = s.get(&format!("/api/v1/issues/{id}"), token).await;
    let page = page.expect_ok().clone();
    let doc = s.get(&format!("/api/v1/docs/{id}"), token).await;
    let doc = doc.expect_ok().clone();
    let photos = page["photos"].as_array().unwrap();
    for (shown, viewed) in photos
        .iter()
        .zip(doc["photos"]["photos"].as_array().unwrap())
    {
        assert_eq!(shown["warnings"], viewed["evidence_text"], "{doc}");
    }
    photos
        .iter()
        .map(|p| {
            (
                p["sha256"].as_str().unwrap().to_owned(),
                p["evidence"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

fn too_early(flags: &[Value]) -> Option<i64> {
    flags
        .iter()
        .find(|f| f["flag"] == "taken_too_early")
        .map(|f| f["minutes"].as_i64().unwrap())
}

#[actix_web::test]
async fn a_photo_older_than_the_server_vouches_for_is_flagged_with_its_minutes() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = Phone::login_bound_days_ago(&s, CHIEF, "gallery-phone", 35).await;

    // 1. Before the phone's sign-in, and an after photo from before the report.
    let mut issue = report(&phone, &s);
    let here = issue.view().unwrap().location;
    let reported = now_ms();
    let ancient = photo(1, PhotoRole::Before, reported - 40 * DAY_MS, here);
    let fresh = photo(2, PhotoRole::Evidence, reported - 2 * MINUTE_MS, here);
    issue.add_photo(&ancient).unwrap();
    issue.add_photo(&fresh).unwrap();
    let id = issue.id().to_owned();
    phone.save(&mut issue);
    assert_eq!(phone.sync(now_ms()).await.refused, 0);
    // The chief puts it right himself and adds the after photo to his report, an old one.
    let old_after = photo(3, PhotoRole::After, reported - 5 * DAY_MS, here);
    let mut issue = phone.issue(&id).unwrap();
    issue.add_photo(&old_after).unwrap();
    phone.save(&mut issue);
    assert_eq!(phone.sync(now_ms()).await.refused, 0);

    let judged = flags(&s, &sup, &id).await;
    let of = |p: &PhotoRef| {
        judged
            .iter()
            .find(|(sha, _)| *sha == p.sha256)
            .unwrap_or_else(|| panic!("{} not shown: {judged:?}", p.sha256))
            .1
            .clone()
    };
    // Five days before sign-in (35 days ago), to the minute give or take the test's run.
    let minutes = too_early(&of(&ancient)).expect("flagged");
    assert!(
        (5 * 24 * 60 - 5..=5 * 24 * 60 + 5).contains(&minutes),
        "{minutes}"
    );
    assert_eq!(too_early(&of(&fresh)), None, "{:?}", of(&fresh));
    let minutes = too_early(&of(&old_after)).expect("an after photo before the report");
    assert!(
        (5 * 24 * 60 - 5..=5 * 24 * 60 + 5).contains(&minutes),
        "{minutes}"
    );

    // 2. The phone syncs with nothing to send; a photo taken three hours before that sync is
    // then offered with a new report.
    assert_eq!(phone.sync(now_ms()).await.docs_sent, 0);
    let synced = now_ms();
    let mut issue = report(&phone, &s);
    let gallery = photo(4, PhotoRole::Before, synced - 3 * 60 * MINUTE_MS, here);
    issue.add_photo(&gallery).unwrap();
    let second = issue.id().to_owned();
    phone.save(&mut issue);
    assert_eq!(phone.sync(now_ms()).await.refused, 0);
    let judged = flags(&s, &sup, &second).await;
    let minutes = too_early(&judged[0].1).expect("older than the last sync");
    assert!((178..=182).contains(&minutes), "{minutes}: {judged:?}");
    s.stop().await;
}

/// A phone syncs with nothing to send, then sends a report dated three days earlier (its clock
/// set back, so the problem looks found sooner and its days to close longer, or it takes the
/// place of a report made since). The phone did not hold that report at the sync — it would
/// have sent it — so the report counts at the sync, as patrols do; it is kept as recorded.
/// Before, an event's floor was only the server's receipts the phone had seen, and a new issue
/// has none: the report counted three days back.
#[actix_web::test]
async fn a_report_dated_before_the_phones_last_sync_counts_at_that_sync() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = Phone::login_bound_days_ago(&s, CHIEF, "set-back-phone", 35).await;
    assert_eq!(phone.sync(now_ms()).await.docs_sent, 0);
    let synced = now_ms();
    let claimed = synced - 3 * DAY_MS;
    let mut issue = report_at(&phone, &s, claimed);
    let id = issue.id().to_owned();
    phone.save(&mut issue);
    assert_eq!(phone.sync(now_ms()).await.refused, 0);

    let page = s.get(&format!("/api/v1/issues/{id}"), &sup).await;
    let page = page.expect_ok().clone();
    let reported = &page["timeline"][0];
    assert_eq!(reported["kind"], "reported", "{page}");
    assert_eq!(reported["at_ms"], claimed, "kept as recorded");
    let counted = reported["counted_at_ms"].as_i64().unwrap();
    assert!(
        (synced - 2_000..=now_ms()).contains(&counted),
        "counted at {counted}, synced at {synced}, claimed {claimed}"
    );
    s.stop().await;
}

/// A phone signed in five days ago (its binding) reports, at its very first sync, a problem dated
/// twenty days back: it has no acknowledged sync and no receipt of the problem, so before, the
/// report counted twenty days back, a problem "found" before the phone was ever the chief's.
/// It counts at the binding now; it is kept as recorded.
#[actix_web::test]
async fn a_first_report_dated_before_the_phones_binding_counts_at_the_binding() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let bound = now_ms() - 5 * DAY_MS;
    let phone = Phone::login_bound_days_ago(&s, CHIEF, "new-phone", 5).await;
    let claimed = bound - 15 * DAY_MS;
    let mut issue = report_at(&phone, &s, claimed);
    let id = issue.id().to_owned();
    phone.save(&mut issue);
    assert_eq!(phone.sync(now_ms()).await.refused, 0);

    let page = s.get(&format!("/api/v1/issues/{id}"), &sup).await;
    let page = page.expect_ok().clone();
    let reported = &page["timeline"][0];
    assert_eq!(reported["kind"], "reported", "{page}");
    assert_eq!(reported["at_ms"], claimed, "kept as recorded");
    let counted = reported["counted_at_ms"].as_i64().unwrap();
    assert!(
        (bound - 2_000..=bound + 2_000).contains(&counted),
        "counted at {counted}, bound at {bound}, claimed {claimed}"
    );
    s.stop().await;
}
