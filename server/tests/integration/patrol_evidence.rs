//! A patrol is evidence of walking, judged once: crafted patrols synced by a chief's phone through
//! the real `/sync`, then read back from `/patrols/{id}`, the statistics and the reminders.
//!
//! Each attack here passed as a valid patrol before (two fixes at the ends of a segment, bouncing
//! over one stretch, a walk backdated 60 days or to before the phone's last sync, one fix dated
//! `i64::MAX`), or showed that the figures disagreed between routes; a chief cannot choose laxer
//! rules by writing another division into the patrol; and damaged patrol rules are an error, not
//! the defaults.

use std::sync::Arc;

use serde_json::{json, Value};
use server::demo::{self, CHIEF, SUPERVISOR};
use sync_core::doc::{NewPatrol, PatrolDoc};
use sync_core::hub::DeviceLedger;
use sync_core::model::{Asset, DivisionCode, Role, TrackPoint};
use sync_core::protocol::{SyncRequest, SyncResponse};
use sync_core::rules::{Period, RuleOverride, RuleSet};
use sync_core::track::{walk_along, CHUNK_POINTS};

use crate::harness::TestServer;
use crate::phone::Phone;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

fn now() -> i64 {
    server::state::now_ms()
}

fn chief_asset() -> Asset {
    let facts = demo::facts();
    let chief = facts.user(CHIEF).unwrap();
    let Role::Chief { jurisdiction, .. } = &chief.role else {
        panic!("demo-chief is a chief")
    };
    facts.asset(&jurisdiction.assets[0]).unwrap().clone()
}

/// Writes a patrol on the phone with this track and start time, as the chief's phone would, and
/// syncs it. `division` is what the phone writes into the record.
async fn sync_patrol(
    phone: &Arc<Phone>,
    asset: &Asset,
    division: DivisionCode,
    started_at_ms: i64,
    track: &[TrackPoint],
) -> String {
    let id = save_patrol(phone, asset, division, started_at_ms, track);
    let report = phone.sync(now()).await;
    assert_eq!(report.refused, 0, "{report:?}");
    id
}

/// Writes a finished patrol on the phone without syncing it (the phone is offline).
fn save_patrol(
    phone: &Arc<Phone>,
    asset: &Asset,
    division: DivisionCode,
    started_at_ms: i64,
    track: &[TrackPoint],
) -> String {
    let mut patrol = PatrolDoc::create(
        phone.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: phone.user.id.clone(),
            division,
            device: phone.device.clone(),
            started_at_ms,
        },
    )
    .unwrap();
    for chunk in track.chunks(CHUNK_POINTS) {
        patrol.append_track(chunk).unwrap();
    }
    patrol
        .finish(track.last().map_or(started_at_ms, |p| p.t_ms))
        .unwrap();
    let id = patrol.id().to_string();
    phone.save_record(&mut patrol, sync_core::doc::DocKind::Patrol, &id);
    id
}

async fn patrol_detail(s: &TestServer, token: &str, id: &str) -> Value {
    s.get(&format!("/api/v1/patrols/{id}"), token)
        .await
        .expect_ok()
        .clone()
}

fn codes(detail: &Value) -> Vec<String> {
    detail["flag_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap().to_owned())
        .collect()
}

/// The chief's row of the patrol statistics over `[from, to]` (dates in China time).
async fn stats_row(s: &TestServer, token: &str, from_ms: i64, to_ms: i64, chief: &str) -> Value {
    let (from, to) = (
        server::stats::query::day_string(from_ms),
        server::stats::query::day_string(to_ms),
    );
    let report = s
        .get(&format!("/api/v1/stats/patrols?from={from}&to={to}"), token)
        .await;
    let report = report.expect_ok();
    report["chiefs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chief"] == chief)
        .unwrap_or_else(|| panic!("no row for {chief}: {report}"))
        .clone()
}

/// A fix `metres` along the asset's first segment from its first vertex.
fn east_of(asset: &Asset, metres: f64, t_ms: i64) -> TrackPoint {
    let sync_core::model::Geometry::LineString(line) = &asset.geometry else {
        panic!("a river")
    };
    let ([lon0, lat0], [lon1, lat1]) = (line[0], line[1]);
    let length = sync_core::geo::haversine_m(lat0, lon0, lat1, lon1);
    let f = metres / length;
    TrackPoint::new(
        lat0 + (lat1 - lat0) * f,
        lon0 + (lon1 - lon0) * f,
        t_ms,
        5.0,
    )
}

/// The chief's phone, signed in `days` ago (its binding), logged in now.
async fn phone_bound_days_ago(s: &TestServer, device: &str, days: i64) -> Arc<Phone> {
    bind_days_ago(s, device, days);
    Phone::login(s, CHIEF, device).await
}

/// Binds `device` to the chief `days` ago (the first sign-in on it).
fn bind_days_ago(s: &TestServer, device: &str, days: i64) {
    let chief = s
        .state
        .store
        .find_user_by_username(CHIEF)
        .unwrap()
        .unwrap()
        .user;
    let actor = format!("{:032x}", device.len() as u128 * 7_919 + days as u128);
    s.state
        .store
        .start_session(&chief.id, device, &actor, now() - days * DAY_MS)
        .unwrap();
}

#[actix_web::test]
async fn two_fixes_at_the_ends_of_a_segment_and_bouncing_are_not_patrols() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = phone_bound_days_ago(&s, "evidence-phone", 30).await;
    let asset = chief_asset();
    let t0 = now() - 12 * 3_600_000;

    // Two fixes 11 minutes apart, 1.4 km apart.
    let sparse = [
        east_of(&asset, 0.0, t0),
        east_of(&asset, 1_400.0, t0 + 11 * MINUTE_MS),
    ];
    let sparse = sync_patrol(&phone, &asset, asset.division.clone(), t0, &sparse).await;
    let detail = patrol_detail(&s, &sup, &sparse).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    assert!(
        codes(&detail).contains(&"sparse_fixes".to_owned()),
        "{}",
        detail["flag_details"]
    );
    assert_eq!(detail["distance_m"], 0.0, "a gap is not walking: {detail}");
    assert!(
        detail["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("最长间隔 660 秒")),
        "{}",
        detail["flag_details"]
    );

    // 100 fixes five minutes apart bouncing between the two ends: 139 km claimed.
    let bouncing: Vec<TrackPoint> = (0..100)
        .map(|i| {
            let x = if i % 2 == 0 { 0.0 } else { 1_400.0 };
            east_of(&asset, x, t0 + i * 5 * MINUTE_MS / 10)
        })
        .collect();
    // Every step here is 30 s long: 1.4 km in 30 s is a jump; and at walking pace over the same
    // 200 m for half an hour, retracing.
    let jumpy = sync_patrol(&phone, &asset, asset.division.clone(), t0, &bouncing).await;
    let detail = patrol_detail(&s, &sup, &jumpy).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    assert!(
        detail["distance_m"].as_f64().unwrap() < 1_000.0,
        "{}",
        detail["flag_details"]
    );
    let five_minutes: Vec<TrackPoint> = (0..100)
        .map(|i| {
            let x = if i % 2 == 0 { 0.0 } else { 1_400.0 };
            east_of(&asset, x, t0 + i * 5 * MINUTE_MS)
        })
        .collect();
    let slow = sync_patrol(&phone, &asset, asset.division.clone(), t0, &five_minutes).await;
    let detail = patrol_detail(&s, &sup, &slow).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    assert!(
        codes(&detail).contains(&"sparse_fixes".to_owned()),
        "{}",
        detail["flag_details"]
    );
    assert!(
        detail["distance_m"].as_f64().unwrap() < 1_000.0,
        "{}",
        detail["flag_details"]
    );
    let dense: Vec<TrackPoint> = (0..1_800)
        .map(|i| {
            let phase = (i as f64 * 1.3) % 400.0;
            let x = if phase < 200.0 { phase } else { 400.0 - phase };
            east_of(&asset, x, t0 + i * 1_000)
        })
        .collect();
    let retraced = sync_patrol(&phone, &asset, asset.division.clone(), t0, &dense).await;
    let detail = patrol_detail(&s, &sup, &retraced).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    assert!(
        codes(&detail).contains(&"retraced".to_owned()),
        "{}",
        detail["flag_details"]
    );

    // None of them counts, and their kilometres do not swell the chief's figures.
    let row = stats_row(&s, &sup, t0 - DAY_MS, now(), &phone.user.id).await;
    let detail_ids = [&sparse, &jumpy, &slow, &retraced];
    assert_eq!(row["valid"], 0, "{row}");
    assert_eq!(
        row["invalid"].as_u64(),
        Some(detail_ids.len() as u64),
        "{row}"
    );
    assert!(row["km"].as_f64().unwrap() < 4.0, "{row}");
    s.stop().await;
}

#[actix_web::test]
async fn one_fix_dated_at_the_end_of_time_poisons_no_total() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = phone_bound_days_ago(&s, "evidence-phone", 30).await;
    let asset = chief_asset();
    let t0 = now() - 3_600_000;
    let mut walk = walk_along(&asset.geometry, t0, 12 * 60, 5);
    let last = *walk.last().unwrap();
    walk.push(TrackPoint {
        t_ms: i64::MAX,
        ..last
    });
    let id = sync_patrol(&phone, &asset, asset.division.clone(), t0, &walk).await;
    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    assert!(
        codes(&detail).contains(&"time_out_of_bounds".to_owned()),
        "{}",
        detail["flag_details"]
    );
    assert!(
        detail["duration_ms"].as_i64().unwrap() <= 13 * MINUTE_MS,
        "{}",
        detail["flag_details"]
    );
    // Shown as recorded.
    assert_eq!(
        detail["track"].as_array().unwrap().last().unwrap()["t_ms"],
        i64::MAX
    );

    let row = stats_row(&s, &sup, t0 - DAY_MS, now(), &phone.user.id).await;
    assert!(row["hours"].as_f64().unwrap() < 1.0, "{row}");
    let (from, to) = (
        server::stats::query::day_string(t0 - 30 * DAY_MS),
        server::stats::query::day_string(now()),
    );
    let all = s
        .get(&format!("/api/v1/stats/patrols?from={from}&to={to}"), &sup)
        .await;
    let hours = all.expect_ok()["totals"]["hours"].as_f64().unwrap();
    assert!(hours < 100.0, "district hours {hours}");
    s.stop().await;
}

#[actix_web::test]
async fn a_walk_backdated_sixty_days_does_not_count_for_the_week_it_claims() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = Phone::login(&s, CHIEF, "new-phone").await;
    let asset = chief_asset();
    let claimed = now() - 60 * DAY_MS;
    let claimed_week = (
        Period::Week.start_ms(Period::Week.index(claimed)),
        Period::Week.start_ms(Period::Week.index(claimed) + 1) - 1,
    );
    let before = stats_row(&s, &sup, claimed_week.0, claimed_week.1, &phone.user.id).await;
    let walk = walk_along(&asset.geometry, claimed, 25 * 60, 11);
    let id = sync_patrol(&phone, &asset, asset.division.clone(), claimed, &walk).await;

    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    let flag = detail["flag_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flag"] == "time_out_of_bounds")
        .unwrap_or_else(|| panic!("{}", detail["flag_details"]))
        .clone();
    assert_eq!(flag["early"].as_u64(), Some(walk.len() as u64), "{flag}");
    // It counts (as invalid) at the earliest time the server vouches for: the phone's binding.
    let counted = detail["counted_at_ms"].as_i64().unwrap();
    assert!(counted > now() - DAY_MS, "{}", detail["flag_details"]);
    assert_eq!(detail["started_at_ms"], claimed, "kept as recorded");
    let after = stats_row(&s, &sup, claimed_week.0, claimed_week.1, &phone.user.id).await;
    assert_eq!(after, before, "the claimed week is unchanged");
    let today = stats_row(&s, &sup, now() - DAY_MS, now(), &phone.user.id).await;
    assert!(today["invalid"].as_u64() >= Some(1), "{today}");
    s.stop().await;
}

/// A phone signed in long ago syncs with nothing to send, then its clock is set back and it
/// sends a walk dated ten days before that sync: it did not hold the walk at the sync (it would
/// have sent it), so the walk is flagged and counts at the sync, not in the week it claims.
#[actix_web::test]
async fn a_walk_dated_before_the_phones_last_sync_counts_at_that_sync() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    // Bound five weeks ago: the binding alone would vouch for the claimed date.
    let phone = phone_bound_days_ago(&s, "reset-phone", 35).await;
    let asset = chief_asset();
    let synced = now();
    let report = phone.sync(synced).await;
    assert_eq!(
        report.docs_sent, 0,
        "a sync with nothing to send: {report:?}"
    );

    let claimed = now() - 10 * DAY_MS;
    let claimed_week = (
        Period::Week.start_ms(Period::Week.index(claimed)),
        Period::Week.start_ms(Period::Week.index(claimed) + 1) - 1,
    );
    let before = stats_row(&s, &sup, claimed_week.0, claimed_week.1, &phone.user.id).await;
    let walk = walk_along(&asset.geometry, claimed, 25 * 60, 23);
    let id = sync_patrol(&phone, &asset, asset.division.clone(), claimed, &walk).await;

    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    let flag = detail["flag_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flag"] == "time_out_of_bounds")
        .unwrap_or_else(|| panic!("{}", detail["flag_details"]))
        .clone();
    assert_eq!(flag["early"].as_u64(), Some(walk.len() as u64), "{flag}");
    // Counted at the sync less the ten minutes' tolerance, as the rule states.
    let counted = detail["counted_at_ms"].as_i64().unwrap();
    let tolerance = sync_core::rules::EARLY_TOLERANCE_MS;
    assert!(
        (synced - tolerance - MINUTE_MS..=now() - tolerance).contains(&counted),
        "counted at {counted}, synced at {synced}: {}",
        detail["flag_details"]
    );
    assert_eq!(detail["started_at_ms"], claimed, "kept as recorded");
    let after = stats_row(&s, &sup, claimed_week.0, claimed_week.1, &phone.user.id).await;
    assert_eq!(after, before, "the claimed week is unchanged");
    let today = stats_row(&s, &sup, now() - DAY_MS, now(), &phone.user.id).await;
    assert!(today["invalid"].as_u64() >= Some(1), "{today}");
    s.stop().await;
}

/// The device's last acknowledged sync as the server keeps it (by `user/device`), as if the
/// phone had synced with nothing to send at `at_ms`.
fn acknowledged_sync_at(s: &TestServer, phone: &Phone, at_ms: i64) {
    s.state
        .store
        .put_device_synced(&format!("{}/{}", phone.user.id, phone.device), at_ms)
        .unwrap();
}

/// The flag `code` of a patrol's detail, with its numbers.
fn flag(detail: &Value, code: &str) -> Option<Value> {
    detail["flag_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flag"] == code)
        .cloned()
}

/// The chief's row for the week holding `t_ms`.
async fn week_row(s: &TestServer, token: &str, t_ms: i64, chief: &str) -> Value {
    let week = Period::Week.index(t_ms);
    stats_row(
        s,
        token,
        Period::Week.start_ms(week),
        Period::Week.start_ms(week + 1) - 1,
        chief,
    )
    .await
}

/// Last acknowledged sync 22 days ago, then three weeks without signal: the walks recorded
/// meanwhile all arrive in one sync and each counts in the week it was walked. A walk dated
/// before that sync, sent with them, was not on the phone at that sync (it would have gone up
/// then), so it counts at the sync, flagged.
#[actix_web::test]
async fn a_phone_offline_for_three_weeks_gets_its_patrols_where_they_belong() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    // The phone was signed in five weeks ago, synced 22 days ago with nothing to send, then
    // went where there is no signal.
    let phone = phone_bound_days_ago(&s, "mountain-phone", 35).await;
    let went_offline = now() - 22 * DAY_MS;
    acknowledged_sync_at(&s, &phone, went_offline);
    let asset = chief_asset();
    let mut ids = Vec::new();
    for days in [21, 14, 7] {
        let walked = now() - days * DAY_MS;
        let walk = walk_along(&asset.geometry, walked, 25 * 60, days as u64);
        ids.push((
            walked,
            save_patrol(&phone, &asset, asset.division.clone(), walked, &walk),
        ));
    }
    // A week before it went offline, after its sign-in: only the sync bounds it.
    let claimed = now() - 30 * DAY_MS;
    let claimed_before = week_row(&s, &sup, claimed, &phone.user.id).await;
    let walk = walk_along(&asset.geometry, claimed, 25 * 60, 30);
    let backdated = save_patrol(&phone, &asset, asset.division.clone(), claimed, &walk);
    let report = phone.sync(now()).await;
    assert_eq!((report.docs_sent, report.refused), (4, 0), "{report:?}");

    for (walked, id) in &ids {
        let detail = patrol_detail(&s, &sup, id).await;
        assert_eq!(detail["valid"], true, "{}", detail["flag_details"]);
        assert_eq!(
            detail["counted_at_ms"].as_i64(),
            Some(*walked),
            "{}",
            detail["flag_details"]
        );
        let row = week_row(&s, &sup, *walked, &phone.user.id).await;
        assert!(row["valid"].as_u64() >= Some(1), "{row}");
        assert_eq!(row["periods_met"], 1, "{row}");
    }
    let detail = patrol_detail(&s, &sup, &backdated).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    let early = flag(&detail, "time_out_of_bounds").expect("flagged");
    assert_eq!(early["early"].as_u64(), Some(walk.len() as u64), "{early}");
    assert_eq!(
        detail["counted_at_ms"].as_i64(),
        Some(went_offline - sync_core::rules::EARLY_TOLERANCE_MS)
    );
    assert_eq!(
        week_row(&s, &sup, claimed, &phone.user.id).await,
        claimed_before,
        "the week it claims is unchanged"
    );
    s.stop().await;
}

/// A patrol goes up while it is under way (the phone sends what it holds), the phone then syncs
/// with nothing new to send, and the rest of the walk goes up after that sync: fixes taken
/// before the sync are not backdated, because the patrol was on the server before it.
#[actix_web::test]
async fn a_patrol_started_before_a_sync_and_finished_after_it_counts_as_walked() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = phone_bound_days_ago(&s, "long-walk-phone", 35).await;
    let asset = chief_asset();
    let started = now() - 50 * MINUTE_MS;
    let walk = walk_along(&asset.geometry, started, 45 * 60, 45);
    let mut patrol = PatrolDoc::create(
        phone.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: phone.user.id.clone(),
            division: asset.division.clone(),
            device: phone.device.clone(),
            started_at_ms: started,
        },
    )
    .unwrap();
    let id = patrol.id().to_string();
    let (first, rest) = walk.split_at(10 * 60);
    patrol.append_track(first).unwrap();
    phone.save_record(&mut patrol, sync_core::doc::DocKind::Patrol, &id);
    assert_eq!(phone.sync(now()).await.docs_sent, 1);
    // Nothing to send: an acknowledged sync, 40 minutes after the first fix.
    assert_eq!(phone.sync(now()).await.docs_sent, 0);
    for chunk in rest.chunks(CHUNK_POINTS) {
        patrol.append_track(chunk).unwrap();
    }
    patrol.finish(walk.last().unwrap().t_ms).unwrap();
    phone.save_record(&mut patrol, sync_core::doc::DocKind::Patrol, &id);
    assert_eq!(phone.sync(now()).await.docs_sent, 1);

    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], true, "{}", detail["flag_details"]);
    assert_eq!(flag(&detail, "time_out_of_bounds"), None);
    assert_eq!(detail["counted_at_ms"].as_i64(), Some(walk[0].t_ms));
    s.stop().await;
}

/// A server restored from a backup lacks what phones sent after the backup. A phone's first
/// request to it pushes nothing (the old server had acknowledged everything) and carries a
/// cursor past the restored feed; only the answer tells the phone to send everything again.
/// That request says nothing about what the phone holds, so it is no acknowledged sync: the
/// walks sent again count where they were walked.
#[actix_web::test]
async fn a_phone_back_at_a_restored_server_keeps_its_walks_where_they_belong() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    bind_days_ago(&s, "restored-phone", 35);
    // The phone's first request to the restored server, as its sync engine sends it: no
    // documents, the cursor the lost server had given it.
    let token = s.token(CHIEF, "restored-phone").await;
    let first = SyncRequest {
        cursor: 1 << 40,
        dropped: Vec::new(),
        docs: Vec::new(),
    };
    let mut answer = awc::Client::new()
        .post(format!("{}/api/v1/sync", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .content_type("application/octet-stream")
        .send_body(first.encode())
        .await
        .expect("request sent");
    assert_eq!(answer.status().as_u16(), 200);
    let body = answer.body().limit(64 << 20).await.unwrap();
    let answer = SyncResponse::decode(&body).unwrap();
    assert!(
        answer.cursor < first.cursor,
        "the server is behind the phone"
    );
    // The walk goes up again, as the phone's next round trip sends it (the same phone, signed
    // in again here because the test's phone cannot send a request of its choosing).
    let phone = Phone::login(&s, CHIEF, "restored-phone").await;
    let asset = chief_asset();
    let walked = now() - 3 * DAY_MS;
    let walk = walk_along(&asset.geometry, walked, 25 * 60, 3);
    let id = save_patrol(&phone, &asset, asset.division.clone(), walked, &walk);
    assert_eq!(phone.sync(now()).await.docs_sent, 1);

    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], true, "{}", detail["flag_details"]);
    assert_eq!(detail["counted_at_ms"].as_i64(), Some(walk[0].t_ms));
    assert_eq!(
        week_row(&s, &sup, walked, &phone.user.id).await["periods_met"],
        1
    );
    s.stop().await;
}

/// Rules with a lax override for a division that is not the chief's.
fn lax_elsewhere() -> RuleSet {
    let mut rules = RuleSet::default();
    rules.overrides.push(RuleOverride {
        system: None,
        level: None,
        region: Some(DivisionCode::new("370102000000").unwrap()),
        rules: sync_core::rules::PatrolRules {
            min_minutes: 1.0,
            min_km: 0.1,
            ..Default::default()
        },
    });
    rules
}

#[actix_web::test]
async fn a_chief_cannot_pick_laxer_rules_by_writing_another_division() {
    let s = TestServer::demo().await;
    s.state
        .store
        .put_meta(
            server::settings::RULES_KEY,
            &serde_json::to_vec(&lax_elsewhere()).unwrap(),
        )
        .unwrap();
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = phone_bound_days_ago(&s, "evidence-phone", 30).await;
    let asset = chief_asset();
    let t0 = now() - 3_600_000;
    // Four minutes, 300 m: enough under the lax rules, not under the chief's own.
    let walk = walk_along(&asset.geometry, t0, 4 * 60, 3);
    // Writing the lax division into the patrol is refused by the hub outright.
    let elsewhere = DivisionCode::new("370102001001").unwrap();
    let mut patrol = PatrolDoc::create(
        phone.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: phone.user.id.clone(),
            division: elsewhere,
            device: phone.device.clone(),
            started_at_ms: t0,
        },
    )
    .unwrap();
    patrol.append_track(&walk).unwrap();
    let refused_id = patrol.id().to_string();
    phone.save_record(&mut patrol, sync_core::doc::DocKind::Patrol, &refused_id);
    let report = phone.sync(now()).await;
    assert_eq!(report.refused, 1, "{report:?}");
    s.get(&format!("/api/v1/patrols/{refused_id}"), &sup)
        .await
        .expect_error(404, "not_found");
    // In its own division the same walk is judged by the chief's rules (the default ones), in
    // the patrol page, the list and the statistics alike.
    let phone = phone_bound_days_ago(&s, "evidence-phone-2", 30).await;
    let id = sync_patrol(&phone, &asset, asset.division.clone(), t0, &walk).await;
    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], false, "{}", detail["flag_details"]);
    assert_eq!(
        codes(&detail),
        ["too_short", "too_short_distance"],
        "{}",
        detail["flag_details"]
    );
    let row = stats_row(&s, &sup, t0 - DAY_MS, now(), &phone.user.id).await;
    let listed = s
        .get(&format!("/api/v1/patrols?chief={}", phone.user.id), &sup)
        .await;
    let listed = listed.expect_ok()[0].clone();
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["valid"], false);
    assert_eq!(
        (row["valid"].as_u64(), row["invalid"].as_u64()),
        (Some(0), Some(1)),
        "{row}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn damaged_patrol_rules_are_an_error_not_the_defaults() {
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let chief = s.token(CHIEF, "phone").await;
    let listed = s.get("/api/v1/patrols", &sup).await;
    let id = listed.expect_ok()[0]["id"].as_str().unwrap().to_owned();
    s.state
        .store
        .put_meta(server::settings::RULES_KEY, b"{\"default\": \"damaged")
        .unwrap();
    for (path, token) in [
        (format!("/api/v1/patrols/{id}"), &sup),
        ("/api/v1/patrols".to_owned(), &sup),
        ("/api/v1/reminders".to_owned(), &sup),
        ("/api/v1/stats/patrols".to_owned(), &sup),
        ("/api/v1/reference".to_owned(), &chief),
    ] {
        let reply = s.get(&path, token).await;
        assert_eq!(reply.status.as_u16(), 500, "{path}: {}", reply.body);
        assert_eq!(reply.body["error"], "internal", "{path}: {}", reply.body);
    }
    s.stop().await;
}

/// A patrol whose phone start time lies in this week but whose walk was last week: before, the
/// reminders counted it for this week (the phone's start time) and the statistics for last week
/// (the first fix). Now `/patrols/{id}`, the statistics and the reminders all place it by the one
/// counted time.
#[actix_web::test]
async fn the_patrol_page_statistics_and_reminders_agree_on_the_week() {
    let s = TestServer::demo().await;
    let admin = s.token(demo::ADMIN, "pc").await;
    let facts = demo::facts();
    let role = serde_json::to_value(&facts.user(CHIEF).unwrap().role).unwrap();
    s.post(
        "/api/v1/admin/users",
        &admin,
        json!({"username": "week-chief", "display_name": "小寨村河长（新）", "password": "s3cret-pass", "role": role}),
    )
    .await
    .expect_ok();
    let chief = s
        .state
        .store
        .find_user_by_username("week-chief")
        .unwrap()
        .unwrap()
        .user;
    s.state
        .store
        .start_session(
            &chief.id,
            "week-phone",
            "00112233445566778899aabbccddeeff",
            now() - 30 * DAY_MS,
        )
        .unwrap();
    let phone = Phone::login_with(&s, "week-chief", "s3cret-pass", "week-phone").await;
    let week = Period::Week.index(now());
    let last_week = Period::Week.start_ms(week) - 2 * DAY_MS;
    let asset = chief_asset();
    let walk = walk_along(&asset.geometry, last_week, 25 * 60, 21);
    let id = sync_patrol(
        &phone,
        &asset,
        asset.division.clone(),
        now() - MINUTE_MS,
        &walk,
    )
    .await;

    let sup = s.token(SUPERVISOR, "pc").await;
    let detail = patrol_detail(&s, &sup, &id).await;
    assert_eq!(detail["valid"], true, "{}", detail["flag_details"]);
    assert_eq!(detail["counted_at_ms"].as_i64(), Some(last_week));
    let row = stats_row(&s, &sup, Period::Week.start_ms(week), now(), &chief.id).await;
    assert_eq!(
        (row["patrols"].as_u64(), row["periods_met"].as_u64()),
        (Some(0), Some(0)),
        "{row}"
    );
    let reminders = s.get("/api/v1/reminders", &sup).await;
    let due = reminders
        .expect_ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chief"] == chief.id.as_str())
        .cloned();
    let due = due.unwrap_or_else(|| panic!("week-chief has not patrolled this week"));
    assert_eq!(due["done"], 0, "{due}");
    s.stop().await;
}

/// A report whose phone time is 2^53-1 (the largest integer a JavaScript client reads exactly):
/// it counts at the server's receive time, so the office can assign it with an ordinary deadline,
/// and the statistics and the GeoJSON export include it.
#[actix_web::test]
async fn a_report_dated_far_ahead_can_be_assigned_and_is_counted() {
    use sync_core::doc::{IssueDoc, NewIssue};
    let s = TestServer::demo().await;
    let sup = s.token(SUPERVISOR, "pc").await;
    let phone = Phone::login(&s, CHIEF, "future-phone").await;
    let asset = chief_asset();
    let far = (1i64 << 53) - 1;
    let location = match &asset.geometry {
        sync_core::model::Geometry::LineString(line) => line[0],
        _ => panic!("a river"),
    };
    let (from, to) = (
        server::stats::query::day_string(now() - DAY_MS),
        server::stats::query::day_string(now()),
    );
    let stats_path = format!("/api/v1/stats/issues?from={from}&to={to}");
    let before = s.get(&stats_path, &sup).await.expect_ok()["totals"]["reported"]
        .as_u64()
        .unwrap();
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        far,
        &NewIssue {
            system: asset.system,
            category: "river.garbage".into(),
            severity: sync_core::model::Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location,
            description: "河面漂浮垃圾（手机时间错误）".into(),
            patrol: None,
        },
    )
    .unwrap();
    phone.save(&mut issue);
    let report = phone.sync(now()).await;
    assert_eq!(report.refused, 0, "{report:?}");
    let id = issue.id().to_string();

    let events = format!("/api/v1/issues/{id}/events");
    let accepted = s.post(&events, &sup, json!({"kind": "accepted"})).await;
    assert_eq!(accepted.status.as_u16(), 201, "{}", accepted.body);
    let assigned = s
        .post(
            &events,
            &sup,
            json!({"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": now() + 7 * DAY_MS}),
        )
        .await;
    assert_eq!(assigned.status.as_u16(), 201, "{}", assigned.body);

    let after = s.get(&stats_path, &sup).await.expect_ok()["totals"]["reported"]
        .as_u64()
        .unwrap();
    assert_eq!(
        after,
        before + 1,
        "counted on the day the server received it"
    );
    let geojson = s
        .get(
            &format!("/api/v1/export/issues.geojson?from={from}&to={to}"),
            &sup,
        )
        .await;
    let features = geojson.expect_ok()["features"].as_array().unwrap().clone();
    assert!(
        features
            .iter()
            .any(|f| f["properties"]["id"] == id.as_str()),
        "{} features, none is {id}",
        features.len()
    );
    s.stop().await;
}
