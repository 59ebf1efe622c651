//! Each domain rule is asked in one place: what the dashboard shows about an issue (the board's
//! `/issues` answers) and what the document view shows (`/docs/{id}`) come from the same
//! sync-core functions, so the two can never tell a supervisor different things about the same
//! record.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::Value;
use server::demo::{self, CHIEF};
use server::state::now_ms;
use sync_core::authz::in_scope;
use sync_core::doc::{DocKind, IssueDoc, NewIssue, PatrolDoc};
use sync_core::model::{Geometry, PhotoRef, PhotoRole, Severity};
use sync_core::photo::sha256_hex;

use crate::harness::TestServer;
use crate::phone::Phone;

const DAY_MS: i64 = 86_400_000;

fn jpeg(seed: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(320, 240, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

async fn put_photo(s: &TestServer, token: &str, sha: &str, bytes: Vec<u8>) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let res = client
        .put(format!("{}/api/v1/blobs/{sha}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .content_type("application/octet-stream")
        .send_body(bytes)
        .await
        .expect("request sent");
    assert!(res.status().is_success(), "{}", res.status());
}

fn words(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

/// A chief raises a problem on one of his patrols with a photo taken long before the patrol
/// (a picture from the phone's gallery). The issue page of the dashboard and the document view
/// judge the photo by the same rule: both say it was taken outside the patrol, in the same
/// words, and both agree on which photos have arrived. Before, the board judged without the
/// patrol's window and said nothing.
#[actix_web::test]
async fn the_issue_page_and_the_document_view_judge_a_photo_alike() {
    let s = TestServer::demo().await;
    let phone = Phone::login(&s, CHIEF, "chief-phone").await;
    let token = s.token(CHIEF, "chief-pc").await;
    let store = s.state.store.as_ref();
    let patrol = store
        .all_documents()
        .unwrap()
        .into_iter()
        .find(|m| m.kind == DocKind::Patrol && in_scope(&phone.user, m))
        .expect("a demo patrol of demo-chief");
    let stored = store.document(&patrol.id).unwrap().unwrap();
    let patrol_view = PatrolDoc::load(&stored.bytes).unwrap().view().unwrap();

    let facts = demo::facts();
    let asset = facts.asset(&patrol_view.asset).unwrap();
    let here = match &asset.geometry {
        Geometry::LineString(line) => line[0],
        Geometry::Polygon(rings) => rings[0][0],
    };
    let category = sync_core::hub::ReferenceSource::categories(store)
        .unwrap()
        .into_iter()
        .find(|c| c.system == asset.system)
        .unwrap()
        .code;
    let bytes = jpeg(7);
    let sha = sha256_hex(&bytes);
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        now_ms(),
        &NewIssue {
            system: asset.system,
            category,
            severity: Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: here,
            description: "河岸有垃圾".into(),
            patrol: Some(patrol.id.clone()),
        },
    )
    .unwrap();
    issue
        .add_photo(&PhotoRef {
            sha256: sha.clone(),
            role: PhotoRole::Before,
            taken_at_ms: Some(patrol_view.started_at_ms - 30 * DAY_MS),
            position: Some(here),
            bytes: bytes.len() as u64,
        })
        .unwrap();
    let id = issue.id().to_owned();
    phone.save(&mut issue);
    assert_eq!(phone.sync(now_ms()).await.refused, 0);

    for uploaded in [false, true] {
        if uploaded {
            put_photo(&s, &token, &sha, bytes.clone()).await;
        }
        let doc = s.get(&format!("/api/v1/docs/{id}"), &token).await;
        let doc = doc.expect_ok()["photos"].clone();
        let page = s.get(&format!("/api/v1/issues/{id}"), &token).await;
        let page = page.expect_ok().clone();

        let from_doc = words(&doc["photos"][0]["evidence_text"]);
        let from_board = words(&page["photos"][0]["warnings"]);
        assert!(
            from_doc
                .iter()
                .any(|w| w.contains("before the patrol started")),
            "{doc}"
        );
        assert_eq!(from_board, from_doc, "uploaded: {uploaded}");
        assert_eq!(page["photos"][0]["stored"], uploaded, "{page}");
        assert_eq!(doc["photos"][0]["present"], uploaded, "{doc}");
        let missing = |v: &Value| -> BTreeSet<String> { words(v).into_iter().collect() };
        assert_eq!(
            missing(&page["photo_completeness"]["missing"]),
            missing(&doc["missing"]),
            "uploaded: {uploaded}"
        );
        assert_eq!(page["photo_completeness"]["complete"], doc["complete"]);
    }
    s.stop().await;
}
