//! The public's channel: a resident reports from the signboard's QR link without an account,
//! the report becomes an ordinary issue on the supervisor's board and the chiefs' phones, goes
//! through the loop, and the answer comes back through the tracking code; every refusal of the
//! unauthenticated endpoints; the reporter's phone number never leaving the office's views; the
//! signboard PDF's chiefs and QR code; and, in a real browser at phone size, the whole loop.

use std::io::Cursor;
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use server::demo::{CHIEF, HANDLER, SUPERVISOR};
use server::public::pow::solve;
use server::public::PublicLimits;
use server::state::now_ms;
use sync_core::doc::Record;
use sync_core::model::Geometry;
use sync_core::workflow::Action;

use crate::harness::TestServer;
use crate::phone::Phone;

/// The demo's first river segment (on demo-chief's list).
const ASSET: &str = "river-thh-01";
const PHONE_NUMBER: &str = "13905310042";

/// A camera-like JPEG of `w`×`h`, as the page's canvas makes it.
fn jpeg(w: u32, h: u32, seed: u8) -> (String, Vec<u8>) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, seed.wrapping_mul(37)])
    });
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    let bytes = out.into_inner();
    (sha256_hex(&bytes), bytes)
}

/// A camera photo with grain, which JPEG cannot squeeze: resized to 1600 px by the page it is
/// still several upload chunks.
fn grainy_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let grain = (seed % 96) as u8;
        image::Rgb([
            ((x / 8) % 160) as u8 + grain,
            ((y / 8) % 160) as u8 + grain / 2,
            90 + grain,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out.into_inner()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn middle(geometry: &Geometry) -> [f64; 2] {
    match geometry {
        Geometry::LineString(line) => line[line.len() / 2],
        Geometry::Polygon(rings) => rings[0][0],
    }
}

fn asset_middle(id: &str) -> [f64; 2] {
    middle(&server::demo::facts().asset(id).unwrap().geometry)
}

/// Buys a ticket the honest way: a challenge, solved.
async fn ticket(s: &TestServer, asset: &str) -> String {
    let ch = s
        .request("GET", "/api/v1/public/challenge", None, None)
        .await;
    let ch = ch.expect_ok();
    let challenge = ch["challenge"].as_str().unwrap();
    let nonce = solve(challenge, ch["bits"].as_u64().unwrap() as u32);
    let grant = s
        .request(
            "POST",
            "/api/v1/public/tickets",
            None,
            Some(json!({"asset": asset, "challenge": challenge, "nonce": nonce})),
        )
        .await;
    grant.expect_ok()["ticket"].as_str().unwrap().to_string()
}

async fn put_photo(s: &TestServer, ticket: &str, sha: &str, bytes: Vec<u8>) -> (u16, Value) {
    let mut res = s
        .client
        .put(format!("{}/api/v1/public/photos/{sha}", s.base))
        .insert_header(("X-Report-Ticket", ticket))
        .send_body(bytes)
        .await
        .unwrap();
    let body = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn report(s: &TestServer, body: Value) -> crate::harness::Reply {
    s.request("POST", "/api/v1/public/reports", None, Some(body))
        .await
}

/// Sets small limits and a cheap proof of work, so tests run fast and reach the limits.
fn cheap(s: &TestServer, change: impl FnOnce(&mut PublicLimits)) {
    let mut limits = PublicLimits {
        pow_bits: 8,
        ..PublicLimits::default()
    };
    change(&mut limits);
    s.state.public.set_limits(limits);
}

/// A resident's report with one photo and a phone number; answers (tracking code, issue id).
async fn file_report(s: &TestServer) -> (String, String, String) {
    let t = ticket(s, ASSET).await;
    let (sha, bytes) = jpeg(320, 240, 1);
    let (status, body) = put_photo(s, &t, &sha, bytes).await;
    assert_eq!(status, 201, "{body}");
    let answer = report(
        s,
        json!({"ticket": t, "category": "river.garbage", "description": "桥下河面漂浮垃圾",
               "location": asset_middle(ASSET), "photos": [sha], "phone": PHONE_NUMBER}),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 201, "{}", answer.body);
    let code = answer.body["code"].as_str().unwrap().to_string();
    assert!(answer.body["link"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/t/{code}")));
    assert!(answer.body["next"].as_str().unwrap().contains("受理"));
    let case = server::public::cases::case(s.state.store.as_ref(), &code, now_ms())
        .unwrap()
        .expect("the case is kept");
    (code, case.issue, sha)
}

#[actix_web::test]
async fn a_public_report_goes_round_the_loop_and_the_answer_comes_back() {
    let s = TestServer::demo().await;
    cheap(&s, |_| {});
    let (code, issue, sha) = file_report(&s).await;

    // On the supervisor's board as reported, marked as the public's, with its photo counted.
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let board = s
        .get(
            &format!("/api/v1/issues?asset={ASSET}&status=reported"),
            &supervisor,
        )
        .await;
    let row = board.expect_ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == issue.as_str())
        .cloned()
        .expect("the report is on the board");
    assert_eq!(row["public"]["source"], "public");
    assert_eq!(row["reporter"], "public");
    assert_eq!(row["photo_completeness"]["complete"], true, "{row}");

    // The chief of the asset receives it at his next sync, as an issue of source public.
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    chief.sync(now_ms()).await;
    let held = chief
        .issue(&issue)
        .expect("the chief's phone has the report");
    assert_eq!(
        held.source().unwrap(),
        sync_core::public::IssueSource::Public
    );

    // Nothing finished yet: no rating.
    let early = s
        .request(
            "POST",
            &format!("/api/v1/public/track/{code}/feedback"),
            None,
            Some(json!({"satisfied": true})),
        )
        .await;
    early.expect_error(409, "not_finished");

    // The office accepts and assigns, the handler rectifies with an after photo, the office
    // verifies: closed.
    let act = |body: Value| {
        let s = &s;
        let supervisor = supervisor.clone();
        let issue = issue.clone();
        async move {
            s.post(&format!("/api/v1/issues/{issue}/events"), &supervisor, body)
                .await
                .expect_ok()
                .clone()
        }
    };
    act(json!({"kind": "accepted"})).await;
    act(
        json!({"kind": "assigned", "assignee": {"department": "区水务局"},
               "deadline_ms": now_ms() + 10 * 86_400_000i64}),
    )
    .await;
    let handler = Phone::login(&s, HANDLER, "handler-phone").await;
    handler.sync(now_ms()).await;
    let mut assigned = handler.issue(&issue).unwrap();
    let (after_sha, after_bytes) = jpeg(300, 200, 9);
    assigned
        .act(
            &handler.user,
            &handler.device,
            now_ms(),
            Action::RectificationSubmitted {
                note: "已打捞清理".into(),
                photos: vec![after_sha.clone()],
            },
        )
        .unwrap();
    handler.save(&mut assigned);
    handler.sync(now_ms()).await;
    let handler_token = s.token(HANDLER, "handler-pc").await;
    let mut put = s
        .client
        .put(format!("{}/api/v1/blobs/{after_sha}", s.base))
        .insert_header(("Authorization", format!("Bearer {handler_token}")))
        .send_body(after_bytes.clone())
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.body().await);
    act(json!({"kind": "verified", "note": "现场核查已清理"})).await;

    // The tracking answer: closed, plain steps naming the department, the after photo.
    let track = s
        .request("GET", &format!("/api/v1/public/track/{code}"), None, None)
        .await;
    let track = track.expect_ok().clone();
    assert_eq!(track["status"], "closed", "{track}");
    let steps = track["steps"].to_string();
    assert!(
        steps.contains("区水务局") && steps.contains("销号"),
        "{steps}"
    );
    assert!(
        !steps.contains("王敏") && !steps.contains("赵磊"),
        "no names: {steps}"
    );
    assert_eq!(track["may_rate"], true);
    let link = track["after_photos"][0].as_str().unwrap().to_string();
    assert!(link.ends_with(&after_sha));
    let mut photo = s
        .client
        .get(format!("{}{link}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status().as_u16(), 200);
    assert_eq!(photo.body().await.unwrap().to_vec(), after_bytes);
    // The resident's own problem photo is not served through the tracking link.
    let mut other = s
        .client
        .get(format!(
            "{}/api/v1/public/track/{code}/photos/{sha}",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404, "{:?}", other.body().await);

    // Not satisfied needs a reason, then flags the issue on the board without reopening it.
    s.request(
        "POST",
        &format!("/api/v1/public/track/{code}/feedback"),
        None,
        Some(json!({"satisfied": false, "reason": ""})),
    )
    .await
    .expect_error(422, "reason_required");
    s.request(
        "POST",
        &format!("/api/v1/public/track/{code}/feedback"),
        None,
        Some(json!({"satisfied": false, "reason": "岸边仍有垃圾"})),
    )
    .await
    .expect_ok();
    s.request(
        "POST",
        &format!("/api/v1/public/track/{code}/feedback"),
        None,
        Some(json!({"satisfied": true})),
    )
    .await
    .expect_error(409, "already_answered");
    let board = s
        .get(&format!("/api/v1/issues?asset={ASSET}"), &supervisor)
        .await;
    let row = board.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == issue.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["status"], "closed", "not reopened by itself");
    assert_eq!(row["public"]["not_satisfied"], "岸边仍有垃圾");
    let detail = s.get(&format!("/api/v1/issues/{issue}"), &supervisor).await;
    assert_eq!(
        detail.expect_ok()["public"]["not_satisfied"],
        "岸边仍有垃圾"
    );

    // A hotline report entered by the office, into the same loop.
    let hotline = s
        .post(
            "/api/v1/office/reports",
            &supervisor,
            json!({"source": "hotline", "asset": "river-thh-02", "category": "river.outfall",
                   "description": "12369来电：排污口夜间排放", "phone": "0531-88886666"}),
        )
        .await;
    assert_eq!(hotline.status.as_u16(), 201, "{}", hotline.body);
    let hotline_issue = hotline.body["issue"].as_str().unwrap().to_string();
    let detail = s
        .get(&format!("/api/v1/issues/{hotline_issue}"), &supervisor)
        .await;
    assert_eq!(detail.expect_ok()["status"], "reported");
    // A chief may not enter office reports.
    let chief_token = s.token(CHIEF, "chief-pc").await;
    s.post(
        "/api/v1/office/reports",
        &chief_token,
        json!({"source": "letter", "asset": ASSET, "category": "river.garbage", "description": "信访"}),
    )
    .await
    .expect_error(403, "forbidden");

    // Statistics: reports by source and satisfaction, by division and department.
    let stats = s.get("/api/v1/stats/public", &supervisor).await;
    let stats = stats.expect_ok().clone();
    assert_eq!(stats["total"]["public"], 1, "{stats}");
    assert_eq!(stats["total"]["hotline"], 1, "{stats}");
    assert_eq!(stats["total"]["not_satisfied"], 1, "{stats}");
    assert_eq!(stats["total"]["satisfied"], 0, "{stats}");
    assert!(
        stats["total"]["patrol"].as_u64().unwrap() > 0,
        "the demo's issues count as patrol"
    );
    assert_eq!(
        stats["by_department"]["区水务局"]["not_satisfied"], 1,
        "{stats}"
    );
    let mut csv = s
        .client
        .get(format!("{}/api/v1/stats/public?format=csv", s.base))
        .insert_header(("Authorization", format!("Bearer {supervisor}")))
        .send()
        .await
        .unwrap();
    let csv = String::from_utf8(csv.body().await.unwrap().to_vec()).unwrap();
    assert!(csv.contains("不满意") && csv.contains("区水务局"), "{csv}");
    s.get("/api/v1/stats/public", &chief_token)
        .await
        .expect_error(403, "forbidden");

    // The monthly report carries the same counts, by division and by department, with the
    // share of satisfied answers.
    let mut html = s
        .client
        .get(format!("{}/api/v1/stats/report.html", s.base))
        .insert_header(("Authorization", format!("Bearer {supervisor}")))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status().as_u16(), 200);
    let html = String::from_utf8(html.body().await.unwrap().to_vec()).unwrap();
    assert!(html.contains("问题来源与群众满意度"), "{html}");
    let row = |name: &str, c: &Value| {
        let n = |k: &str| c[k].as_u64().unwrap();
        let rated = n("satisfied") + n("not_satisfied");
        let rate = if rated == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", n("satisfied") as f64 * 100.0 / rated as f64)
        };
        format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rate}</td></tr>",
            n("patrol"), n("public"), n("hotline"), n("letter"), n("satisfied"), n("not_satisfied"), n("unrated")
        )
    };
    let department = &stats["by_department"]["区水务局"];
    assert!(html.contains(&row("区水务局", department)), "{html}");
    let (division, counts) = stats["by_division"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, c)| c["not_satisfied"] == 1)
        .expect("the resident's division");
    assert!(html.contains(&row(division, counts)), "{html}");
    assert!(html.contains("群众评价满意 0 件、不满意 1 件"), "{html}");
    s.stop().await;
}

#[actix_web::test]
async fn the_reporters_phone_number_stays_in_the_office() {
    let s = TestServer::demo().await;
    cheap(&s, |_| {});
    let (code, issue, _) = file_report(&s).await;
    let supervisor = s.token(SUPERVISOR, "office-pc").await;

    // The supervising office sees it, with how long it is kept.
    let case = s
        .get(&format!("/api/v1/office/cases/{issue}"), &supervisor)
        .await;
    let case = case.expect_ok();
    assert_eq!(case["phone"], PHONE_NUMBER);
    assert_eq!(case["code"], code.as_str());
    assert!(case["phone_kept_until_ms"].as_i64().unwrap() > now_ms() + 170 * 86_400_000i64);

    // Not in the stored document (what every sync sends), not on the chief's phone, not in
    // the chief's or the office's document and issue views, not in the tracking answer.
    let stored = s.state.store.document(&issue).unwrap().unwrap();
    let needle = PHONE_NUMBER.as_bytes();
    assert!(!stored.bytes.windows(needle.len()).any(|w| w == needle));
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    chief.sync(now_ms()).await;
    let mut held = chief.issue(&issue).expect("synced");
    assert!(!held.save().windows(needle.len()).any(|w| w == needle));
    let chief_token = s.token(CHIEF, "chief-pc").await;
    s.get(&format!("/api/v1/office/cases/{issue}"), &chief_token)
        .await
        .expect_error(404, "not_found");
    for (path, token) in [
        (format!("/api/v1/docs/{issue}"), &chief_token),
        (format!("/api/v1/issues/{issue}"), &chief_token),
        (format!("/api/v1/issues/{issue}"), &supervisor),
        (format!("/api/v1/issues?asset={ASSET}"), &supervisor),
        ("/api/v1/export/issues.geojson".to_string(), &supervisor),
        ("/api/v1/stats/issues?format=csv".to_string(), &supervisor),
        ("/api/v1/stats/public?format=csv".to_string(), &supervisor),
        ("/api/v1/stats/public".to_string(), &supervisor),
        ("/api/v1/stats/report.html".to_string(), &supervisor),
    ] {
        let mut res = s
            .client
            .get(format!("{}{path}", s.base))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .unwrap();
        let body = res.body().limit(64 << 20).await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        assert!(
            !body.windows(needle.len()).any(|w| w == needle),
            "{path} shows the phone number"
        );
    }
    let track = s
        .request("GET", &format!("/api/v1/public/track/{code}"), None, None)
        .await;
    assert!(!track.expect_ok().to_string().contains(PHONE_NUMBER));
    s.stop().await;
}

#[actix_web::test]
async fn each_refusal_of_the_public_endpoints_says_why() {
    let s = TestServer::demo().await;
    cheap(&s, |l| {
        l.reports_per_address = 2;
        l.tickets_per_address = 50;
        l.reports_per_asset = 100;
    });
    let at = asset_middle(ASSET);

    // Unknown asset: on the page's data, on a ticket, on a signboard.
    s.request("GET", "/api/v1/public/assets/no-such-river", None, None)
        .await
        .expect_error(404, "unknown_asset");
    let ch = s
        .request("GET", "/api/v1/public/challenge", None, None)
        .await;
    let ch = ch.expect_ok().clone();
    let challenge = ch["challenge"].as_str().unwrap();
    s.request(
        "POST",
        "/api/v1/public/tickets",
        None,
        Some(json!({"asset": "no-such-river", "challenge": challenge,
                    "nonce": solve(challenge, 8)})),
    )
    .await
    .expect_error(404, "unknown_asset");
    s.request("GET", "/api/v1/public/signboards/no-such-river", None, None)
        .await
        .expect_error(404, "unknown_asset");

    // Missing and wrong proof of work; a report without a ticket.
    s.request(
        "POST",
        "/api/v1/public/tickets",
        None,
        Some(json!({"asset": ASSET})),
    )
    .await
    .expect_error(400, "proof_of_work_required");
    s.state.public.set_limits(PublicLimits {
        pow_bits: 16,
        ..s.state.public.limits()
    });
    let ch = s
        .request("GET", "/api/v1/public/challenge", None, None)
        .await;
    let challenge = ch.body["challenge"].as_str().unwrap().to_string();
    let wrong = (0..)
        .map(|n: u32| n.to_string())
        .find(|n| server::public::pow::zero_bits(&challenge, n) < 16)
        .unwrap();
    s.request(
        "POST",
        "/api/v1/public/tickets",
        None,
        Some(json!({"asset": ASSET, "challenge": challenge, "nonce": wrong})),
    )
    .await
    .expect_error(403, "proof_of_work_invalid");
    // A right answer to a challenge that was already used does not count either.
    s.request(
        "POST",
        "/api/v1/public/tickets",
        None,
        Some(json!({"asset": ASSET, "challenge": challenge, "nonce": solve(&challenge, 16)})),
    )
    .await
    .expect_error(403, "proof_of_work_invalid");
    s.state.public.set_limits(PublicLimits {
        pow_bits: 8,
        ..s.state.public.limits()
    });
    report(
        &s,
        json!({"ticket": "made-up", "category": "river.garbage", "location": at}),
    )
    .await
    .expect_error(403, "ticket_invalid");

    // A bad photo: not an image, bytes that do not hash to the name, too large; without a
    // ticket.
    let t = ticket(&s, ASSET).await;
    let junk = b"this is not a photo".to_vec();
    let (status, body) = put_photo(&s, &t, &sha256_hex(&junk), junk).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("not_an_image"))
    );
    let (sha, bytes) = jpeg(64, 64, 3);
    let (status, body) = put_photo(&s, &t, &"0".repeat(64), bytes.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("hash_mismatch")),
        "{body}"
    );
    let (status, _) = put_photo(&s, "made-up", &sha, bytes.clone()).await;
    assert_eq!(status, 403);
    s.state.public.set_limits(PublicLimits {
        max_photo_bytes: 1000,
        ..s.state.public.limits()
    });
    let (big_sha, big) = jpeg(400, 400, 4);
    let (status, body) = put_photo(&s, &t, &big_sha, big).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    s.state.public.set_limits(PublicLimits {
        max_photo_bytes: 2 << 20,
        ..s.state.public.limits()
    });
    // A photo the ticket did not upload cannot be named in the report.
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at, "photos": [sha]}),
    )
    .await
    .expect_error(422, "photo_missing");

    // Oversized and malformed fields.
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at,
               "description": "垃".repeat(501)}),
    )
    .await
    .expect_error(422, "field_too_long");
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at, "phone": "call me maybe"}),
    )
    .await
    .expect_error(422, "bad_phone");
    report(
        &s,
        json!({"ticket": t, "category": "forest.fire", "location": at}),
    )
    .await
    .expect_error(422, "unknown_category");
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": [120.0, 30.0]}),
    )
    .await
    .expect_error(422, "far_from_asset");
    s.request(
        "POST",
        &format!("/api/v1/public/track/{}/feedback", "nosuchcode"),
        None,
        Some(json!({"satisfied": false, "reason": "差".repeat(301)})),
    )
    .await
    .expect_error(422, "field_too_long");

    // The ticket still works after all those refusals; one report spends it.
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at}),
    )
    .await
    .expect_ok();
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at}),
    )
    .await
    .expect_error(403, "ticket_invalid");

    // Rate limit per client address: the second report of the hour is the last.
    let t = ticket(&s, ASSET).await;
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at}),
    )
    .await
    .expect_ok();
    let t = ticket(&s, ASSET).await;
    let limited = report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": at}),
    )
    .await;
    limited.expect_error(429, "rate_limited_address");
    assert!(limited.headers.contains_key("retry-after"));

    // Rate limit per asset, whoever reports.
    cheap(&s, |l| {
        l.reports_per_asset = 0;
    });
    let t = ticket(&s, "river-thh-02").await;
    report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": asset_middle("river-thh-02")}),
    )
    .await
    .expect_error(429, "rate_limited_asset");
    s.stop().await;
}

/// The public pages read `error`, `message`, the status and the `Retry-After` and
/// `Upload-Offset` headers of a refusal. Each kind of refusal goes through the API's one error
/// path and answers exactly what the pages were written against: the two fields and nothing
/// else, the same status, code, message and headers.
#[actix_web::test]
async fn the_public_refusals_answer_the_one_error_body_exactly() {
    let s = TestServer::demo().await;
    cheap(&s, |l| {
        l.reports_per_address = 0;
        l.tickets_per_address = 50;
    });
    let exact = |reply: &crate::harness::Reply, status: u16, code: &str, message: &str| {
        assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
        assert_eq!(reply.body, json!({"error": code, "message": message}));
    };

    let r = s
        .request("GET", "/api/v1/public/assets/no-such-river", None, None)
        .await;
    exact(&r, 404, "unknown_asset", "no asset \"requested\"");
    let r = s
        .request(
            "POST",
            "/api/v1/public/tickets",
            None,
            Some(json!({"asset": ASSET})),
        )
        .await;
    exact(
        &r,
        400,
        "proof_of_work_required",
        "a ticket needs the answer to a challenge from /api/v1/public/challenge",
    );
    let r = s
        .request("GET", "/api/v1/public/track/nosuchcode", None, None)
        .await;
    exact(&r, 404, "unknown_code", "no report has this tracking code");
    let r = s
        .request(
            "POST",
            "/api/v1/public/track/nosuchcode/feedback",
            None,
            Some(json!({"satisfied": true})),
        )
        .await;
    exact(&r, 404, "unknown_code", "no report has this tracking code");
    let r = s
        .request(
            "POST",
            "/api/v1/public/track/nosuchcode/feedback",
            None,
            Some(json!({"satisfied": false})),
        )
        .await;
    exact(&r, 422, "reason_required", "say what is still wrong");
    let r = report(
        &s,
        json!({"ticket": "made-up", "category": "river.garbage", "location": asset_middle(ASSET)}),
    )
    .await;
    exact(
        &r,
        403,
        "ticket_invalid",
        "the ticket is unknown, used or expired; reload the page",
    );

    // A chunk that starts past what is held: 409 with the held length in `Upload-Offset`, which
    // the page resumes from.
    let t = ticket(&s, ASSET).await;
    let (sha, bytes) = jpeg(64, 64, 5);
    let mut res = s
        .client
        .put(format!("{}/api/v1/public/photos/{sha}", s.base))
        .insert_header(("X-Report-Ticket", t.as_str()))
        .insert_header(("Content-Range", format!("bytes 10-19/{}", bytes.len())))
        .send_body(bytes[10..20].to_vec())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(res.status().as_u16(), 409, "{body}");
    assert_eq!(res.headers().get("upload-offset").unwrap(), "0");
    assert_eq!(
        body,
        json!({"error": "offset_mismatch", "message": "chunk starts at byte 10, but 0 bytes are held"})
    );

    // No report from this address this hour: 429 with `Retry-After`, its seconds in the message.
    let r = report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": asset_middle(ASSET)}),
    )
    .await;
    let wait = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(wait.parse::<u64>().is_ok(), "{wait}");
    exact(
        &r,
        429,
        "rate_limited_address",
        &format!("too many reports from this network; retry in {wait} s"),
    );

    // A rating before the report is finished: 409 (`already_answered` is in the loop's test).
    cheap(&s, |l| l.tickets_per_address = 50);
    let (code, _, _) = file_report(&s).await;
    let r = s
        .request(
            "POST",
            &format!("/api/v1/public/track/{code}/feedback"),
            None,
            Some(json!({"satisfied": true})),
        )
        .await;
    exact(&r, 409, "not_finished", "the report is still being handled");
    s.stop().await;
}

/// The signboard PDF of `asset` turned into a PNG by pdftoppm, its text by pdftotext, and the
/// link its QR code holds.
async fn signboard(s: &TestServer, asset: &str, sheet: &str) -> Option<(String, String)> {
    let have = |tool: &str| std::process::Command::new(tool).arg("-v").output().is_ok();
    if !have("pdftoppm") || !have("pdftotext") {
        if std::env::var_os("CI").is_some() {
            panic!("poppler-utils is missing under CI; .ci/run installs it");
        }
        eprintln!(
            "SKIPPED signboard image check: pdftoppm not found (apt-get install poppler-utils)"
        );
        return None;
    }
    // A fresh connection: decoding the previous board may outlast the server's keep-alive.
    let mut res = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .get(format!(
            "{}/api/v1/public/signboards/{asset}?format=pdf&sheet={sheet}",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/pdf"
    );
    let pdf = res.body().limit(16 << 20).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("board.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let dpi = if sheet == "a4" { "150" } else { "25" };
    let out = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", dpi, "-singlefile"])
        .arg(&path)
        .arg(dir.path().join("board"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = dir.path().join("board.png");
    let keep = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("signboard-{sheet}.png"));
    std::fs::copy(&png, &keep).unwrap();
    std::fs::copy(&path, keep.with_extension("pdf")).unwrap();
    let text = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let img = image::open(&png).unwrap().to_luma8();
    let links = qr_codes(&img);
    assert_eq!(
        links.len(),
        1,
        "one QR code on the {sheet} sheet: {links:?}"
    );
    let link = links.into_iter().next().unwrap();
    Some((link, text))
}

/// The contents of the QR codes found in `img`. The page is searched in overlapping tiles: the
/// decoder gives up on a whole page whose text makes too many separate shapes.
fn qr_codes(img: &image::GrayImage) -> std::collections::BTreeSet<String> {
    let (w, h) = (img.width(), img.height());
    let (tw, th) = (w / 2, h / 2);
    let mut found = std::collections::BTreeSet::new();
    let starts = |len: u32, tile: u32| (0..=4).map(move |i| i * (len - tile) / 4);
    for y0 in starts(h, th) {
        for x0 in starts(w, tw) {
            let (cw, ch) = (tw, th);
            let mut prepared =
                rqrr::PreparedImage::prepare_from_greyscale(cw as usize, ch as usize, |x, y| {
                    img.get_pixel(x0 + x as u32, y0 + y as u32)[0]
                });
            for grid in prepared.detect_grids() {
                if let Ok((_, content)) = grid.decode() {
                    found.insert(content);
                }
            }
        }
    }
    found
}

#[actix_web::test]
async fn the_signboard_pdf_names_the_chiefs_and_its_qr_code_opens_the_report_page() {
    let s = TestServer::demo().await;
    // The demo has no river chief of 桑梓店街道 (its boards would skip that level): the office
    // records one, and the board names him between the village's and the district's.
    let admin = s.token(server::demo::ADMIN, "admin-pc").await;
    let created = s
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"username": "szd-river-chief", "display_name": "桑梓店街道河长 孙立平",
                   "password": "s3cret-pass",
                   "role": {"kind": "chief", "system": "river", "level": "subdistrict",
                            "jurisdiction": {"division": "370105014000", "assets": []}}}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    for sheet in ["a4", "board"] {
        let Some((link, text)) = signboard(&s, ASSET, sheet).await else {
            return;
        };
        assert_eq!(link, format!("{}/r/{ASSET}", s.base));
        let compact: String = text.split_whitespace().collect();
        for name in [
            "张建国",
            "孙立平",
            "天桥区总河长",
            "0531-85901369",
            "河长制公示牌",
        ] {
            assert!(
                compact.contains(name),
                "{sheet}: {name} not on the board: {compact}"
            );
        }
        // Every chief of the asset at every level, with level, post and name; the duties.
        let asset = s.state.store.get_asset(ASSET).unwrap().unwrap();
        let users: Vec<_> = s
            .state
            .store
            .list_users()
            .unwrap()
            .into_iter()
            .map(|r| r.user)
            .collect();
        let chiefs = server::public::signboard::chiefs_of(&asset, &users);
        let levels: std::collections::BTreeSet<_> =
            chiefs.iter().map(|c| c.level.as_str()).collect();
        assert_eq!(
            levels,
            ["区级河长", "村级河长", "街道级河长"].into_iter().collect(),
            "{chiefs:?}"
        );
        for chief in &chiefs {
            for part in [&chief.level, &chief.post, &chief.name] {
                assert!(
                    compact.contains(part.as_str()),
                    "{sheet}: {part} of {chief:?} not on the board: {compact}"
                );
            }
        }
        let duties: String = server::public::signboard::duties(asset.system)
            .split_whitespace()
            .collect();
        assert!(compact.contains(&duties), "{sheet}: duties: {compact}");
        // The sheet's proportions: A4 portrait (297:210), the board 3:2 landscape.
        let png = image::open(
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("signboard-{sheet}.png")),
        )
        .unwrap();
        let ratio = f64::from(png.height()) / f64::from(png.width());
        let expected = if sheet == "a4" {
            297.0 / 210.0
        } else {
            2.0 / 3.0
        };
        assert!(
            (ratio - expected).abs() < 0.01,
            "{sheet}: {}x{}",
            png.width(),
            png.height()
        );
    }
    // The SVG of the same board, and the print page of the district's boards, on a fresh
    // connection: decoding the boards above may outlast the server's keep-alive.
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut svg = client
        .get(format!("{}/api/v1/public/signboards/{ASSET}", s.base))
        .send()
        .await
        .unwrap();
    let svg = String::from_utf8(svg.body().await.unwrap().to_vec()).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("张建国"));
    let mut page = client
        .get(format!("{}/signboards?division=370105000000", s.base))
        .send()
        .await
        .unwrap();
    let page = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
    assert!(page.contains(&format!("/api/v1/public/signboards/{ASSET}?sheet=a4")));
    s.stop().await;
}

use crate::dashboard::{chromedriver, wait_for};

/// A headless browser the size of a phone (390 × 844).
async fn phone_browser(binary: &std::path::PathBuf) -> (crate::dashboard::Driver, Client) {
    let driver = crate::dashboard::start_driver(binary).await;
    let client = crate::dashboard::browser(&driver).await;
    client.set_window_size(390, 844).await.unwrap();
    (driver, client)
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(path, png).unwrap();
}

#[actix_web::test]
async fn a_resident_reports_from_the_signboard_and_hears_back_in_a_real_phone_browser() {
    let Some(binary) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing under CI; .ci/run installs chromium-driver");
        }
        eprintln!("SKIPPED public browser test: chromedriver not found on PATH");
        return;
    };
    let s = TestServer::demo().await;
    // The page's real proof of work, at a cost a test can wait for.
    s.state.public.set_limits(PublicLimits {
        pow_bits: 12,
        ..PublicLimits::default()
    });
    let Some((link, _)) = signboard(&s, ASSET, "a4").await else {
        return;
    };
    let (_driver, client) = phone_browser(&binary).await;

    // The QR link on the phone: choose what is wrong, take a photo, tap the map, leave a phone.
    client.goto(&link).await.unwrap();
    wait_for(&client, "input[name=category][value='river.garbage']")
        .await
        .click()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("camera.jpg");
    std::fs::write(&photo, grainy_jpeg(2400, 1800)).unwrap();
    client
        .find(Locator::Css("#photo-input"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    wait_for(&client, "img.photo-thumb").await;
    client
        .find(Locator::Css("#description"))
        .await
        .unwrap()
        .send_keys("桥下有人倾倒垃圾（浏览器测试）")
        .await
        .unwrap();
    client
        .find(Locator::Css("#map"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#position[data-set='1']").await;
    client
        .find(Locator::Css("#phone"))
        .await
        .unwrap()
        .send_keys(PHONE_NUMBER)
        .await
        .unwrap();
    screenshot(&client, "public-report-phone.png").await;
    // A weak connection: the answer to the first photo upload is lost after the server took
    // it, and the next upload request never leaves the phone. The page must ask what is held
    // and carry on from there, not start the photo again.
    client
        .execute(
            r#"
            const weak = { puts: [], heads: 0, lost: 0, dropped: 0 };
            window.__weak = weak;
            const real = window.fetch.bind(window);
            window.fetch = async (url, opts) => {
              opts = opts || {};
              if (String(url).includes("/public/photos/")) {
                if (opts.method === "HEAD") { weak.heads++; return real(url, opts); }
                if (opts.method === "PUT") {
                  const n = weak.puts.push(opts.headers["Content-Range"]);
                  if (n === 1) { await real(url, opts); weak.lost++; throw new TypeError("answer lost"); }
                  if (n === 2) { weak.dropped++; throw new TypeError("no network"); }
                }
              }
              return real(url, opts);
            };
            "#,
            vec![],
        )
        .await
        .unwrap();
    client
        .find(Locator::Css("#submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let tracking = wait_for(&client, "#done:not([hidden]) #tracking-link").await;
    let tracking = tracking.attr("href").await.unwrap().unwrap();
    screenshot(&client, "public-report-done-phone.png").await;
    let weak = client
        .execute("return window.__weak", vec![])
        .await
        .unwrap();
    assert_eq!(weak["lost"], 1, "{weak}");
    assert!(weak["heads"].as_u64().unwrap() >= 1, "{weak}");
    let puts: Vec<String> = serde_json::from_value(weak["puts"].clone()).unwrap();
    assert!(puts[0].starts_with("bytes 0-"), "{puts:?}");
    // The resized photo is several chunks: after the lost answer the page resumed past what
    // the server held, and after the dropped request from where it stood.
    assert!(puts.len() > 2, "{puts:?}");
    assert!(
        puts[1..].iter().all(|r| !r.starts_with("bytes 0-")),
        "the upload started again from zero: {puts:?}"
    );
    assert_eq!(weak["dropped"], 1, "{weak}");
    assert_eq!(
        puts[1], puts[2],
        "the dropped chunk is sent again: {puts:?}"
    );
    let code = tracking.trim_start_matches("/t/").to_string();
    let case = server::public::cases::case(s.state.store.as_ref(), &code, now_ms())
        .unwrap()
        .expect("the report was recorded");
    let issue = case.issue.clone();
    assert_eq!(case.phone.as_deref(), Some(PHONE_NUMBER));
    // The photo arrived resized by the page's canvas, and verified.
    let record = s.state.store.document(&issue).unwrap().unwrap();
    let doc = sync_core::doc::IssueDoc::load(&record.bytes).unwrap();
    let view = doc.view().unwrap();
    assert_eq!(view.photos.len(), 1);
    let (_, stored) = s.state.blobs.read(&view.photos[0].sha256).unwrap().unwrap();
    let img = image::load_from_memory(&stored).unwrap();
    assert!(
        img.width().max(img.height()) <= 1600,
        "{}x{}",
        img.width(),
        img.height()
    );
    let facts = server::demo::facts();
    let geometry = &facts.asset(ASSET).unwrap().geometry;
    let d = sync_core::geo::distance_to_geometry_m(view.location[1], view.location[0], geometry);
    assert!(d < 500.0, "the tapped position lies by the river: {d} m");

    // The supervisor's board shows it, marked as the public's.
    crate::dashboard::sign_in(&client, &format!("{}/", s.base), SUPERVISOR).await;
    wait_for(
        &client,
        &format!(".card[data-issue='{issue}'] .public-source"),
    )
    .await;

    // Through the loop to closed.
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let events = format!("/api/v1/issues/{issue}/events");
    s.post(&events, &supervisor, json!({"kind": "accepted"}))
        .await
        .expect_ok();
    s.post(
        &events,
        &supervisor,
        json!({"kind": "assigned", "assignee": {"department": "区水务局"},
               "deadline_ms": now_ms() + 10 * 86_400_000i64}),
    )
    .await
    .expect_ok();
    let handler = Phone::login(&s, HANDLER, "handler-phone").await;
    handler.sync(now_ms()).await;
    let mut assigned = handler.issue(&issue).unwrap();
    let (after_sha, after_bytes) = jpeg(640, 480, 11);
    assigned
        .act(
            &handler.user,
            &handler.device,
            now_ms(),
            Action::RectificationSubmitted {
                note: "已清理".into(),
                photos: vec![after_sha.clone()],
            },
        )
        .unwrap();
    handler.save(&mut assigned);
    handler.sync(now_ms()).await;
    let handler_token = s.token(HANDLER, "handler-pc").await;
    let put = s
        .client
        .put(format!("{}/api/v1/blobs/{after_sha}", s.base))
        .insert_header(("Authorization", format!("Bearer {handler_token}")))
        .send_body(after_bytes)
        .await
        .unwrap();
    assert!(put.status().is_success());
    s.post(
        &events,
        &supervisor,
        json!({"kind": "verified", "note": "已核查"}),
    )
    .await
    .expect_ok();

    // The tracking link: closed, the after photo shown; not satisfied, with a reason.
    client.goto(&format!("{}{tracking}", s.base)).await.unwrap();
    wait_for(&client, "#status[data-status='closed']").await;
    let after = wait_for(&client, "img.after-photo").await;
    let loaded = client
        .execute(
            "return arguments[0].complete && arguments[0].naturalWidth",
            vec![serde_json::to_value(&after).unwrap()],
        )
        .await
        .unwrap();
    let mut shown = loaded.as_u64().unwrap_or(0);
    for _ in 0..50 {
        if shown > 0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        shown = client
            .execute(
                "return document.querySelector('img.after-photo').naturalWidth",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0);
    }
    assert_eq!(shown, 640, "the after photo is shown");
    client
        .find(Locator::Css("#not-satisfied"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#reason")
        .await
        .send_keys("桥下仍有垃圾")
        .await
        .unwrap();
    client
        .find(Locator::Css("#send-reason"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#rated[data-satisfaction='not_satisfied']").await;
    screenshot(&client, "public-track-phone.png").await;

    // Back on the board, the issue carries the resident's "not satisfied".
    client.goto(&format!("{}/", s.base)).await.unwrap();
    wait_for(
        &client,
        &format!(".card[data-issue='{issue}'] .public-unsatisfied"),
    )
    .await;
    screenshot(&client, "public-board-flag-phone.png").await;
    // The issue page itself shows the flag with the resident's reason.
    client
        .goto(&format!("{}/#/issue/{issue}", s.base))
        .await
        .unwrap();
    let flag = wait_for(&client, "#public-unsatisfied").await;
    let text = flag.text().await.unwrap();
    assert!(
        text.contains("群众回访不满意") && text.contains("桥下仍有垃圾"),
        "{text}"
    );
    screenshot(&client, "public-issue-flag-phone.png").await;

    // The office's form for a 12369 call, opened from the dashboard in the same session.
    client
        .goto(&format!("{}/office/report", s.base))
        .await
        .unwrap();
    wait_for(&client, "#office-form:not([hidden]) #category option").await;
    client
        .find(Locator::Css("#description"))
        .await
        .unwrap()
        .send_keys("12369来电：河道有异味")
        .await
        .unwrap();
    client
        .find(Locator::Css("#office-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let code = wait_for(&client, "#office-done:not([hidden]) #office-code")
        .await
        .text()
        .await
        .unwrap();
    let case = server::public::cases::case(s.state.store.as_ref(), &code, now_ms())
        .unwrap()
        .expect("the hotline report was recorded");
    assert_eq!(case.source, sync_core::public::IssueSource::Hotline);
    client.close().await.unwrap();
    s.stop().await;
}

#[actix_web::test]
async fn a_phone_cannot_pass_its_report_off_as_the_publics() {
    let s = TestServer::demo().await;
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let facts = server::demo::facts();
    let asset = facts.asset(ASSET).unwrap();
    let new = sync_core::doc::NewIssue {
        system: asset.system,
        category: "river.garbage".into(),
        severity: sync_core::model::Severity::General,
        asset: asset.id.clone(),
        division: asset.division.clone(),
        location: middle(&asset.geometry),
        description: "自称群众举报".into(),
        patrol: None,
    };
    // A new issue that claims the public as its source is refused whole.
    let mut forged = sync_core::doc::IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        now_ms(),
        &new,
    )
    .unwrap();
    forged
        .set_source(sync_core::public::IssueSource::Public)
        .unwrap();
    let forged_id = forged.id().to_string();
    chief.save(&mut forged);
    let report = chief.sync(now_ms()).await;
    assert_eq!(report.refused, 1, "{report:?}");
    assert!(s.state.store.document(&forged_id).unwrap().is_none());

    // Nor may a phone relabel a resident's report it holds.
    s.state.public.set_limits(PublicLimits {
        pow_bits: 8,
        ..PublicLimits::default()
    });
    let (_, issue, _) = file_report(&s).await;
    let other = Phone::login(&s, CHIEF, "chief-phone-2").await;
    other.sync(now_ms()).await;
    let mut held = other.issue(&issue).unwrap();
    held.set_source(sync_core::public::IssueSource::Patrol)
        .unwrap();
    other.save(&mut held);
    let report = other.sync(now_ms()).await;
    assert_eq!(report.refused, 1, "{report:?}");
    let stored = s.state.store.document(&issue).unwrap().unwrap();
    assert_eq!(
        sync_core::doc::IssueDoc::load(&stored.bytes)
            .unwrap()
            .source()
            .unwrap(),
        sync_core::public::IssueSource::Public
    );
    s.stop().await;
}

/// `/openapi.json` states the public channel's limits as the server applies them, so that a
/// value the schema allows is one the server accepts (schemathesis checks the rest in CI), and
/// a value it refuses the server refuses too.
#[actix_web::test]
async fn the_schema_states_the_public_channels_limits_as_applied() {
    let s = TestServer::demo().await;
    let spec = s.request("GET", "/openapi.json", None, None).await;
    let schemas = &spec.body["components"]["schemas"];
    let limits = PublicLimits::default();
    let report = &schemas["PublicReport"]["properties"];
    assert_eq!(
        report["description"]["maxLength"],
        json!(limits.description_chars)
    );
    assert_eq!(
        report["photos"]["maxItems"],
        json!(limits.photos_per_report)
    );
    assert_eq!(report["location"]["minItems"], json!(2));
    assert_eq!(report["location"]["maxItems"], json!(2));
    assert_eq!(
        schemas["OfficeReport"]["properties"]["description"]["maxLength"],
        json!(limits.description_chars)
    );
    let answers = schemas["FeedbackRequest"]["oneOf"].as_array().unwrap();
    assert_eq!(answers.len(), 2);
    for answer in answers {
        assert_eq!(
            answer["properties"]["reason"]["maxLength"],
            json!(limits.reason_chars)
        );
    }
    let ticket = schemas["TicketRequest"]["required"].as_array().unwrap();
    assert!(ticket.contains(&json!("challenge")) && ticket.contains(&json!("nonce")));

    // A sheet the schema does not list is refused even without a division (it was ignored).
    s.request("GET", "/signboards?sheet=poster", None, None)
        .await
        .expect_error(400, "bad_request");
    let page = s
        .request("GET", "/signboards?sheet=board", None, None)
        .await;
    assert_eq!(page.status.as_u16(), 200);
    s.stop().await;
}

// --- Attacks on the public surface: each through the real endpoints, as a script would. ---

/// A ticket is bought once; a script then begins uploads under made-up names and never finishes
/// them, each one bytes on the server's disk. A ticket begins at most twice as many uploads as
/// a report carries photos (room for a photo refused on verification); the next is refused.
#[actix_web::test]
async fn a_ticket_cannot_fill_the_disk_with_unfinished_uploads() {
    let s = TestServer::demo().await;
    cheap(&s, |l| l.photos_per_report = 3);
    let t = ticket(&s, ASSET).await;
    let chunk = |n: u8| {
        let fake = sha256_hex(&[n; 32]);
        let client = s.client.clone();
        let url = format!("{}/api/v1/public/photos/{fake}", s.base);
        let t = t.clone();
        async move {
            let mut res = client
                .put(url)
                .insert_header(("X-Report-Ticket", t.as_str()))
                .insert_header(("Content-Range", "bytes 0-999/1000000"))
                .send_body(vec![n; 1000])
                .await
                .unwrap();
            let body: Value =
                serde_json::from_slice(&res.body().await.unwrap()).unwrap_or(Value::Null);
            (res.status().as_u16(), body)
        }
    };
    for n in 0..6 {
        let (status, body) = chunk(n).await;
        assert_eq!(status, 202, "upload {n} begins: {body}");
    }
    // A begun upload resumes under the same ticket; a seventh name is refused.
    let (status, body) = chunk(7).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("too_many_photos")),
        "{body}"
    );
    // The real photo of a resident with a fresh ticket still goes through.
    let t = ticket(&s, ASSET).await;
    let (sha, bytes) = jpeg(64, 64, 8);
    let (status, body) = put_photo(&s, &t, &sha, bytes).await;
    assert_eq!(status, 201, "{body}");
    s.stop().await;
}

/// Tracking codes are long and random, but a script may try them at the speed of the network.
/// After a few wrong codes in the hour, every tracking lookup from that address is refused
/// (429 with Retry-After), including a right one: a guess that happens to hit learns nothing.
#[actix_web::test]
async fn guessing_tracking_codes_is_cut_off_for_the_address() {
    let s = TestServer::demo().await;
    cheap(&s, |l| l.unknown_codes_per_address = 3);
    let (code, _, _) = file_report(&s).await;
    s.request("GET", &format!("/api/v1/public/track/{code}"), None, None)
        .await
        .expect_ok();
    for guess in ["23456789abcdefghjkmn", "nmkjhgfedcba98765432", "x"] {
        s.request("GET", &format!("/api/v1/public/track/{guess}"), None, None)
            .await
            .expect_error(404, "unknown_code");
    }
    let limited = s
        .request(
            "GET",
            "/api/v1/public/track/pqrstuvwxyz234567892",
            None,
            None,
        )
        .await;
    limited.expect_error(429, "rate_limited_address");
    assert!(limited.headers.contains_key("retry-after"));
    s.request("GET", &format!("/api/v1/public/track/{code}"), None, None)
        .await
        .expect_error(429, "rate_limited_address");
    s.request(
        "POST",
        &format!("/api/v1/public/track/{code}/feedback"),
        None,
        Some(json!({"satisfied": true})),
    )
    .await
    .expect_error(429, "rate_limited_address");
    let mut photo = s
        .client
        .get(format!(
            "{}/api/v1/public/track/{code}/photos/{}",
            s.base,
            "a".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status().as_u16(), 429, "{:?}", photo.body().await);
    // Feedback guesses count too.
    let s2 = TestServer::demo().await;
    cheap(&s2, |l| l.unknown_codes_per_address = 1);
    s2.request(
        "POST",
        "/api/v1/public/track/23456789abcdefghjkmn/feedback",
        None,
        Some(json!({"satisfied": true})),
    )
    .await
    .expect_error(404, "unknown_code");
    s2.request(
        "GET",
        "/api/v1/public/track/23456789abcdefghjkmm",
        None,
        None,
    )
    .await
    .expect_error(429, "rate_limited_address");
    s2.stop().await;
    s.stop().await;
}

/// One answer per report, even when a script sends many at the same moment: exactly one is
/// taken, every other is `already_answered`, and the stored answer is the one that was taken.
#[actix_web::test]
async fn one_answer_per_report_even_when_many_arrive_at_once() {
    let s = TestServer::demo().await;
    // All 24 from one address: its count of answers is `answers_are_counted_per_address`'s.
    cheap(&s, |l| l.feedback_per_address = 24);
    let (code, issue, _) = file_report(&s).await;
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    for body in [
        json!({"kind": "accepted"}),
        json!({"kind": "invalidated", "reason": "经核实不属实"}),
    ] {
        s.post(&format!("/api/v1/issues/{issue}/events"), &supervisor, body)
            .await
            .expect_ok();
    }
    let tasks: Vec<_> = (0..24)
        .map(|n| {
            let client = s.client.clone();
            let url = format!("{}/api/v1/public/track/{code}/feedback", s.base);
            let body = if n % 2 == 0 {
                json!({"satisfied": true})
            } else {
                json!({"satisfied": false, "reason": format!("第{n}次：仍未处理")})
            };
            actix_web::rt::spawn(async move {
                let mut res = client.post(url).send_json(&body).await.unwrap();
                let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
                (res.status().as_u16(), body)
            })
        })
        .collect();
    let mut taken = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => taken.push(body),
            409 => assert_eq!(body["error"], "already_answered", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(taken.len(), 1, "answers taken: {taken:?}");
    let case = server::public::cases::case(s.state.store.as_ref(), &code, now_ms())
        .unwrap()
        .unwrap();
    let stored = serde_json::to_value(case.feedback.unwrap()).unwrap();
    assert_eq!(stored, taken[0]);
    s.stop().await;
}

/// A script asking for challenge after challenge (each held in memory for ten minutes) is cut
/// off per address; a page load needs one.
#[actix_web::test]
async fn challenges_are_counted_per_address() {
    let s = TestServer::demo().await;
    cheap(&s, |l| l.challenges_per_address = 3);
    for _ in 0..3 {
        s.request("GET", "/api/v1/public/challenge", None, None)
            .await
            .expect_ok();
    }
    let limited = s
        .request("GET", "/api/v1/public/challenge", None, None)
        .await;
    limited.expect_error(429, "rate_limited_address");
    assert!(limited.headers.contains_key("retry-after"));
    s.stop().await;
}

/// A body past the JSON limit is refused; a ticket bought for one asset files on that asset
/// whatever the body names; one photo named three times is recorded once.
#[actix_web::test]
async fn a_ticket_reports_on_its_own_asset_only_and_huge_bodies_are_refused() {
    let s = TestServer::demo().await;
    cheap(&s, |_| {});
    let t = ticket(&s, ASSET).await;
    let huge = report(
        &s,
        json!({"ticket": t, "category": "river.garbage", "location": asset_middle(ASSET),
               "description": "垃".repeat(100_000)}),
    )
    .await;
    huge.expect_error(413, "payload_too_large");
    let (sha, bytes) = jpeg(64, 64, 6);
    assert_eq!(put_photo(&s, &t, &sha, bytes).await.0, 201);
    let filed = report(
        &s,
        json!({"ticket": t, "asset": "river-thh-02", "category": "river.garbage",
               "location": asset_middle(ASSET), "photos": [sha, sha, sha]}),
    )
    .await;
    assert_eq!(filed.status.as_u16(), 201, "{}", filed.body);
    let code = filed.body["code"].as_str().unwrap();
    let case = server::public::cases::case(s.state.store.as_ref(), code, now_ms())
        .unwrap()
        .unwrap();
    assert_eq!(case.asset, ASSET);
    let record = s.state.store.document(&case.issue).unwrap().unwrap();
    let view = sync_core::doc::IssueDoc::load(&record.bytes)
        .unwrap()
        .view()
        .unwrap();
    assert_eq!(view.asset, ASSET);
    let names: Vec<_> = view.photos.iter().map(|p| p.sha256.as_str()).collect();
    assert_eq!(names, [sha.as_str()], "one photo, recorded once");
    s.stop().await;
}

/// Two residents report the same rubbish at the same spot: the second report comes to the
/// board with the usual hint that it may duplicate the first, open one.
#[actix_web::test]
async fn a_second_report_at_the_same_spot_is_hinted_as_a_possible_duplicate() {
    let s = TestServer::demo().await;
    cheap(&s, |_| {});
    let (_, first, _) = file_report(&s).await;
    let (_, second, _) = file_report(&s).await;
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let board = s
        .get(&format!("/api/v1/issues?asset={ASSET}"), &supervisor)
        .await;
    let row = |id: &str| {
        board.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    let hinted = [row(&first), row(&second)]
        .iter()
        .filter_map(|r| r["possible_duplicate_of"].as_str().map(str::to_string))
        .collect::<Vec<_>>();
    assert!(
        hinted.contains(&first) || hinted.contains(&second),
        "one of the two reports is hinted as the other's duplicate: {hinted:?}"
    );
    let detail = s
        .get(&format!("/api/v1/issues/{second}"), &supervisor)
        .await;
    assert!(
        detail.expect_ok()["possible_duplicate_of"].is_string(),
        "{}",
        detail.body
    );
    s.stop().await;
}

/// Each signboard PDF is seconds of a blocking thread and needs no account: a script asking
/// for PDF after PDF is cut off per address, while the SVG (what the print page shows) still
/// serves.
#[actix_web::test]
async fn signboard_pdfs_are_counted_per_address() {
    let s = TestServer::demo().await;
    cheap(&s, |l| l.signboard_pdfs_per_address = 1);
    let pdf = format!("/api/v1/public/signboards/{ASSET}?format=pdf&sheet=board");
    let mut first = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .get(format!("{}{pdf}", s.base))
        .send()
        .await
        .unwrap();
    let status = first.status().as_u16();
    let _ = first.body().limit(16 << 20).await;
    assert!(status == 200 || status == 503, "{status}");
    let limited = s.request("GET", &pdf, None, None).await;
    limited.expect_error(429, "rate_limited_address");
    assert!(limited.headers.contains_key("retry-after"));
    let mut svg = s
        .client
        .get(format!("{}/api/v1/public/signboards/{ASSET}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status().as_u16(), 200, "{:?}", svg.body().await);
    s.stop().await;
}

/// A route as the schema must state it: method, path, request body schema, answer status and
/// its schema.
type Route = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);

/// `/openapi.json` lists every route of the public channel with the schemas of its bodies and
/// of its refusals, so a client can be written from it alone.
#[actix_web::test]
async fn the_schema_lists_every_public_route_with_its_bodies() {
    let s = TestServer::demo().await;
    let spec = s.request("GET", "/openapi.json", None, None).await;
    let spec = spec.expect_ok();
    let paths = &spec["paths"];
    let schemas = &spec["components"]["schemas"];
    let routes: [Route; 14] = [
        (
            "get",
            "/api/v1/public/assets/{asset}",
            None,
            "200",
            Some("PublicAsset"),
        ),
        (
            "get",
            "/api/v1/public/challenge",
            None,
            "200",
            Some("Challenge"),
        ),
        (
            "post",
            "/api/v1/public/tickets",
            Some("TicketRequest"),
            "200",
            Some("TicketGrant"),
        ),
        ("put", "/api/v1/public/photos/{sha256}", None, "201", None),
        ("head", "/api/v1/public/photos/{sha256}", None, "200", None),
        (
            "post",
            "/api/v1/public/reports",
            Some("PublicReport"),
            "201",
            Some("Tracking"),
        ),
        (
            "get",
            "/api/v1/public/track/{code}",
            None,
            "200",
            Some("TrackView"),
        ),
        (
            "get",
            "/api/v1/public/track/{code}/photos/{sha256}",
            None,
            "200",
            None,
        ),
        (
            "post",
            "/api/v1/public/track/{code}/feedback",
            Some("FeedbackRequest"),
            "200",
            Some("Feedback"),
        ),
        (
            "get",
            "/api/v1/public/signboards/{asset}",
            None,
            "200",
            None,
        ),
        (
            "post",
            "/api/v1/office/reports",
            Some("OfficeReport"),
            "201",
            Some("OfficeReported"),
        ),
        (
            "get",
            "/api/v1/office/cases/{issue}",
            None,
            "200",
            Some("OfficeCase"),
        ),
        (
            "put",
            "/api/v1/admin/supervision-phones/{system}",
            Some("PhoneSetting"),
            "204",
            None,
        ),
        (
            "get",
            "/api/v1/stats/public",
            None,
            "200",
            Some("PublicStats"),
        ),
    ];
    let refers = |node: &Value, name: &str| {
        node.to_string()
            .contains(&format!("#/components/schemas/{name}\""))
    };
    for (method, path, request, status, answer) in routes {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not in the schema");
        if let Some(request) = request {
            assert!(
                refers(&op["requestBody"], request),
                "{method} {path}: {}",
                op["requestBody"]
            );
            assert!(schemas[request].is_object(), "{request}");
        }
        assert!(
            op["responses"][status].is_object(),
            "{method} {path}: {status}"
        );
        if let Some(answer) = answer {
            assert!(
                refers(&op["responses"][status], answer),
                "{method} {path}: {}",
                op["responses"][status]
            );
            assert!(schemas[answer].is_object(), "{answer}");
        }
        // Every refusal a JSON route answers has the one error body.
        for (code, response) in op["responses"].as_object().unwrap() {
            if code.starts_with('4') && method != "head" {
                assert!(
                    refers(response, "ErrorBody"),
                    "{method} {path} {code}: {response}"
                );
            }
        }
    }
    for page in ["/r/{asset}", "/t/{code}", "/signboards", "/office/report"] {
        assert!(paths[page]["get"].is_object(), "page {page}");
    }
    // Rate limits are documented where they apply.
    for (method, path) in [
        ("get", "/api/v1/public/challenge"),
        ("post", "/api/v1/public/tickets"),
        ("post", "/api/v1/public/reports"),
        ("get", "/api/v1/public/track/{code}"),
        ("post", "/api/v1/public/track/{code}/feedback"),
    ] {
        assert!(
            paths[path][method]["responses"]["429"].is_object(),
            "{method} {path}: 429"
        );
    }
    s.stop().await;
}

/// The reporter's phone number is erased once its period is over, by the timer's clean-up,
/// even if nobody reads the case again; the office then sees none. A number still within its
/// period stays.
#[actix_web::test]
async fn the_reporters_phone_number_is_erased_after_its_period() {
    let s = TestServer::demo().await;
    cheap(&s, |_| {});
    let (old_code, old_issue, _) = file_report(&s).await;
    let (new_code, _, _) = file_report(&s).await;
    let store = s.state.store.as_ref();
    let day = 86_400_000i64;
    let key = format!("public.case.{old_code}");
    let mut case: Value = serde_json::from_slice(&store.get_meta(&key).unwrap().unwrap()).unwrap();
    let created = case["created_ms"].as_i64().unwrap();
    case["created_ms"] = json!(created - (server::public::PHONE_RETENTION_DAYS + 1) * day);
    store
        .put_meta(&key, &serde_json::to_vec(&case).unwrap())
        .unwrap();

    let erased = server::public::cases::erase_expired_phones(store, now_ms()).unwrap();
    assert_eq!(erased, 1);
    let needle = PHONE_NUMBER.as_bytes();
    let raw = store.get_meta(&key).unwrap().unwrap();
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle),
        "still kept"
    );
    let kept = store
        .get_meta(&format!("public.case.{new_code}"))
        .unwrap()
        .unwrap();
    assert!(
        kept.windows(needle.len()).any(|w| w == needle),
        "erased too early"
    );
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let office = s
        .get(&format!("/api/v1/office/cases/{old_issue}"), &supervisor)
        .await;
    assert!(office.expect_ok()["phone"].is_null());
    s.stop().await;
}

/// One host commonly has a whole IPv6 /64 to pick addresses from: the public channel's limits
/// counted each full address, so a script guessing tracking codes or fetching challenges moved
/// to the next address of its /64 at every limit. Now every limit counts an IPv6 client by its
/// /64, the rule sign-in throttling uses. The clients are named by a trusted reverse proxy
/// (`--trusted-proxy`); a header from anyone else is not read.
#[actix_web::test]
async fn ipv6_addresses_of_one_network_share_the_public_limits() {
    let s = TestServer::demo_with(|settings| {
        settings.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    })
    .await;
    cheap(&s, |l| {
        l.unknown_codes_per_address = 3;
        l.challenges_per_address = 4;
    });
    let track = |from: String, guess: &'static str| {
        let s = &s;
        async move {
            s.request_with(
                "GET",
                &format!("/api/v1/public/track/{guess}"),
                None,
                None,
                &[("X-Forwarded-For", &from)],
            )
            .await
        }
    };
    // Three wrong codes, each from another address of 2001:db8:1:2::/64.
    for i in 1..=3 {
        track(format!("2001:db8:1:2::{i:x}"), "23456789abcdefghjkmn")
            .await
            .expect_error(404, "unknown_code");
    }
    // Any other address of that network is cut off too.
    let limited = track(
        "2001:db8:1:2:ffff:ffff:ffff:ffff".into(),
        "nmkjhgfedcba98765432",
    )
    .await;
    limited.expect_error(429, "rate_limited_address");
    assert!(limited.headers.contains_key("retry-after"));
    // What the client itself wrote before the proxy's entry does not get it out.
    track("2001:db8:9:9::1, 2001:db8:1:2::77".into(), "x")
        .await
        .expect_error(429, "rate_limited_address");
    // Another network, and the proxy's own address, are counted apart.
    track("2001:db8:1:3::1".into(), "x")
        .await
        .expect_error(404, "unknown_code");
    s.request("GET", "/api/v1/public/track/x", None, None)
        .await
        .expect_error(404, "unknown_code");
    // An IPv4 client keeps its own address; the same one mapped into IPv6 is the same client.
    for from in ["203.0.113.7", "::ffff:203.0.113.7", "203.0.113.7"] {
        track(from.into(), "x")
            .await
            .expect_error(404, "unknown_code");
    }
    track("203.0.113.7".into(), "x")
        .await
        .expect_error(429, "rate_limited_address");
    track("203.0.113.8".into(), "x")
        .await
        .expect_error(404, "unknown_code");

    // Challenges: four for the network, however many addresses ask.
    for i in 1..=4 {
        let from = format!("2001:db8:5:6::{i:x}");
        s.request_with(
            "GET",
            "/api/v1/public/challenge",
            None,
            None,
            &[("X-Forwarded-For", &from)],
        )
        .await
        .expect_ok();
    }
    s.request_with(
        "GET",
        "/api/v1/public/challenge",
        None,
        None,
        &[("X-Forwarded-For", "2001:db8:5:6:abcd::1")],
    )
    .await
    .expect_error(429, "rate_limited_address");

    // Sign-in throttling counts the same client by the same rule: five wrong passwords from
    // five addresses of one /64 hold back the sixth address of it.
    for i in 1..=5 {
        let from = format!("2001:db8:7:8::{i:x}");
        s.request_with(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": CHIEF, "password": "wrong", "device_id": "phone"})),
            &[("X-Forwarded-For", &from)],
        )
        .await
        .expect_error(401, "invalid_credentials");
    }
    s.request_with(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": CHIEF, "password": "demo", "device_id": "phone"})),
        &[("X-Forwarded-For", "2001:db8:7:8:1:2:3:4")],
    )
    .await
    .expect_error(429, "rate_limited");
    s.stop().await;
}

/// Without `--trusted-proxy`, `X-Forwarded-For` is anyone's word and is not read: a script
/// naming a new address in every request is still counted by its connection's own.
#[actix_web::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_not_read() {
    let s = TestServer::demo().await;
    cheap(&s, |l| l.unknown_codes_per_address = 2);
    for i in 1..=2 {
        s.request_with(
            "GET",
            "/api/v1/public/track/x",
            None,
            None,
            &[("X-Forwarded-For", &format!("198.51.100.{i}"))],
        )
        .await
        .expect_error(404, "unknown_code");
    }
    s.request_with(
        "GET",
        "/api/v1/public/track/x",
        None,
        None,
        &[("X-Forwarded-For", "198.51.100.3")],
    )
    .await
    .expect_error(429, "rate_limited_address");
    s.stop().await;
}

/// The office closes the report of `issue` (accepted, then found untrue), so its resident may
/// answer.
async fn finish(s: &TestServer, supervisor: &str, issue: &str) {
    for body in [
        json!({"kind": "accepted"}),
        json!({"kind": "invalidated", "reason": "经核实不属实"}),
    ] {
        s.post(&format!("/api/v1/issues/{issue}/events"), supervisor, body)
            .await
            .expect_ok();
    }
}

async fn answer(s: &TestServer, code: &str, body: Value, from: &str) -> crate::harness::Reply {
    s.request_with(
        "POST",
        &format!("/api/v1/public/track/{code}/feedback"),
        None,
        Some(body),
        &[("X-Forwarded-For", from)],
    )
    .await
}

/// A resident's answer takes the lock of its own report only, and only once every check has
/// passed. While an answer to report A is being stored (A's lock held, as by another server in
/// the middle of it), an answer to report B is taken at once, and answers that are refused
/// anyway (not finished, already answered, an unknown code, a bad body) are refused at once;
/// only an answer to A that will be stored waits, and is taken once A's write is done. Before,
/// one lock for every report on every server was taken before anything was checked, so a
/// script sending answer after answer with its one tracking code held up everyone's.
#[actix_web::test]
async fn an_answer_waits_for_no_other_report_and_a_refused_one_waits_for_nothing() {
    let s = TestServer::demo().await;
    let store = s.state.store.clone();
    answers_wait_only_for_their_own_report(&s, store.as_ref()).await;
    s.stop().await;
}

/// The same on PostgreSQL, A's write in progress on another server of the database.
#[actix_web::test]
async fn on_postgresql_an_answer_waits_for_no_other_servers_write_of_another_report() {
    let Some(db) = crate::postgres::Database::create("case_locks_elsewhere") else {
        return;
    };
    let url = db.url.clone();
    let s = TestServer::demo_with(|settings| settings.database = Some(url.clone())).await;
    let other_server = server::storage::PostgresStore::open(&db.url).unwrap();
    answers_wait_only_for_their_own_report(&s, &other_server).await;
    s.stop().await;
    drop(other_server);
    drop(db);
}

/// Files three reports on `s` and closes two (A, B); holds A's lock through `writing` (the
/// server's own store, or another server's on its database) and answers.
async fn answers_wait_only_for_their_own_report(
    s: &TestServer,
    writing: &dyn server::storage::Store,
) {
    cheap(s, |_| {});
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let (a, issue_a, _) = file_report(s).await;
    let (b, issue_b, _) = file_report(s).await;
    let (open, _, _) = file_report(s).await;
    finish(s, &supervisor, &issue_a).await;
    finish(s, &supervisor, &issue_b).await;
    let at_once = |reply| async {
        actix_web::rt::time::timeout(Duration::from_secs(4), reply)
            .await
            .expect("the answer waited for another report's write")
    };
    let satisfied = || json!({"satisfied": true});
    let here = "127.0.0.1";

    let writing_a = server::public::cases::hold_case(writing, &a).unwrap();
    at_once(answer(s, &b, satisfied(), here)).await.expect_ok();
    at_once(answer(s, &b, satisfied(), here))
        .await
        .expect_error(409, "already_answered");
    at_once(answer(s, &open, satisfied(), here))
        .await
        .expect_error(409, "not_finished");
    at_once(answer(s, "23456789abcdefghjkmn", satisfied(), here))
        .await
        .expect_error(404, "unknown_code");
    at_once(answer(
        s,
        &a,
        json!({"satisfied": false, "reason": " "}),
        here,
    ))
    .await
    .expect_error(422, "reason_required");
    at_once(answer(s, &a, json!({"satisfied": "yes"}), here))
        .await
        .expect_error(400, "bad_request");

    // An answer to A that will be stored waits for A's write in progress.
    let waiting = {
        let client = s.client.clone();
        let url = format!("{}/api/v1/public/track/{a}/feedback", s.base);
        actix_web::rt::spawn(async move {
            let body = json!({"satisfied": false, "reason": "河面仍有垃圾"});
            let mut res = client
                .post(url)
                .timeout(Duration::from_secs(30))
                .send_json(&body)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
            (res.status().as_u16(), body)
        })
    };
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "an answer was stored during another write of its report"
    );
    drop(writing_a);
    let (status, taken) = waiting.await.unwrap();
    assert_eq!(status, 200, "{taken}");
    let case = server::public::cases::case(s.state.store.as_ref(), &a, now_ms())
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::to_value(case.feedback.unwrap()).unwrap(), taken);
    assert_eq!(taken["reason"], "河面仍有垃圾");
}

/// A script with one tracking code sending answer after answer is cut off per address (the
/// rule every public limit counts by: an IPv6 client by its /64), with a 429 and a JSON body
/// saying when to come back; the refused answers count too, and a resident elsewhere answers
/// his own report as before.
#[actix_web::test]
async fn answers_are_counted_per_address() {
    let s = TestServer::demo_with(|settings| {
        settings.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    cheap(&s, |l| l.feedback_per_address = 3);
    let supervisor = s.token(SUPERVISOR, "office-pc").await;
    let (a, issue_a, _) = file_report(&s).await;
    let (b, issue_b, _) = file_report(&s).await;
    finish(&s, &supervisor, &issue_a).await;
    finish(&s, &supervisor, &issue_b).await;
    let satisfied = || json!({"satisfied": true});

    // Three answers from one /64, taken or refused, then the network is cut off.
    answer(&s, &a, satisfied(), "2001:db8:4:5::1")
        .await
        .expect_ok();
    answer(&s, &a, satisfied(), "2001:db8:4:5::2")
        .await
        .expect_error(409, "already_answered");
    answer(&s, "23456789abcdefghjkmn", satisfied(), "2001:db8:4:5::3")
        .await
        .expect_error(404, "unknown_code");
    let limited = answer(&s, &a, satisfied(), "2001:db8:4:5:ffff::9").await;
    limited.expect_error(429, "rate_limited_address");
    assert!(
        limited.body["message"]
            .as_str()
            .unwrap()
            .contains("too many answers from this network"),
        "{}",
        limited.body
    );
    let wait: u64 = limited
        .headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 3600, "{wait}");
    // Cut off for its other reports too, before anything is read.
    answer(&s, &b, satisfied(), "2001:db8:4:5::1")
        .await
        .expect_error(429, "rate_limited_address");
    // Someone else answers his report; the one answer taken stays as it was.
    let taken = answer(&s, &b, satisfied(), "203.0.113.40").await;
    assert_eq!(taken.expect_ok()["satisfaction"], "satisfied");
    let case = server::public::cases::case(s.state.store.as_ref(), &a, now_ms())
        .unwrap()
        .unwrap();
    assert_eq!(case.feedback.unwrap().satisfaction.as_str(), "satisfied");
    s.stop().await;
}
