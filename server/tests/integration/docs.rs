//! The document reads (`GET /docs`, `/docs/{id}`, `/docs/{id}/history`) against a real server
//! over the demo, as chiefs, offices and a chief of another system see them: pages hold only
//! what the reader may read, and a document outside the reader's scope answers like one that
//! does not exist, the audit trail included.

use std::collections::BTreeSet;

use serde_json::Value;
use server::demo::{CHIEF, FOREST_CHIEF, SUPERVISOR};

use crate::harness::TestServer;

/// Every document `token` lists, page by page, with the size of each page.
async fn listing(
    s: &TestServer,
    token: &str,
    query: &str,
    limit: usize,
) -> (Vec<Value>, Vec<usize>) {
    let mut docs = Vec::new();
    let mut sizes = Vec::new();
    let mut after = String::new();
    loop {
        let page = s
            .get(&format!("/api/v1/docs?limit={limit}{query}{after}"), token)
            .await;
        let page = page.expect_ok().clone();
        let entries = page["docs"].as_array().unwrap().clone();
        sizes.push(entries.len());
        docs.extend(entries);
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return (docs, sizes),
        }
    }
}

fn ids(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn documents_are_read_by_scope_and_the_audit_trail_by_office() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "phone").await;
    let office = s.token(SUPERVISOR, "pc").await;
    let forest = s.token(FOREST_CHIEF, "phone").await;

    // Small pages are full until the last, and together list what one large page lists.
    let (whole, _) = listing(&s, &chief, "", 500).await;
    let (paged, sizes) = listing(&s, &chief, "", 3).await;
    assert!(
        whole.len() > 3,
        "the demo chief holds {} documents",
        whole.len()
    );
    assert_eq!(ids(&paged), ids(&whole));
    assert_eq!(paged.len(), whole.len(), "a document listed twice");
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.iter().all(|n| *n == 3), "{sizes:?}");
    assert!((1..=3).contains(last), "{sizes:?}");
    let (patrols, _) = listing(&s, &chief, "&kind=patrol", 500).await;
    assert!(!patrols.is_empty());
    assert!(patrols.iter().all(|d| d["kind"] == "patrol"));
    assert!(ids(&patrols).is_subset(&ids(&whole)));

    // The river office above the chief reads more; what only it reads is, for the chief, not
    // there: the document, and its audit trail answered 404 rather than 403.
    let (supervised, _) = listing(&s, &office, "", 500).await;
    assert!(ids(&whole).is_subset(&ids(&supervised)));
    let elsewhere = ids(&supervised)
        .difference(&ids(&whole))
        .next()
        .cloned()
        .expect("a document outside the village chief's scope");
    s.get(&format!("/api/v1/docs/{elsewhere}"), &chief)
        .await
        .expect_error(404, "not_found");
    s.get(&format!("/api/v1/docs/{elsewhere}/history"), &chief)
        .await
        .expect_error(404, "not_found");

    // The chief reads their own documents, but not who delivered each change when.
    let own = whole[0]["id"].as_str().unwrap();
    s.get(&format!("/api/v1/docs/{own}"), &chief)
        .await
        .expect_ok();
    s.get(&format!("/api/v1/docs/{own}/history"), &chief)
        .await
        .expect_error(403, "forbidden");
    s.get(&format!("/api/v1/docs/{own}/history"), &office)
        .await
        .expect_ok();

    // The forest chief reads none of the river records, and learns nothing from the trail.
    let (forest_docs, _) = listing(&s, &forest, "", 500).await;
    assert!(ids(&forest_docs).is_disjoint(&ids(&whole)));
    s.get(&format!("/api/v1/docs/{own}"), &forest)
        .await
        .expect_error(404, "not_found");
    s.get(&format!("/api/v1/docs/{own}/history"), &forest)
        .await
        .expect_error(404, "not_found");
    s.stop().await;
}

/// A page size of any size the schema allows is clamped, not refused (schemathesis sent one
/// past 64 bits); anything but digits is a 400 with the error body.
#[actix_web::test]
async fn a_page_size_past_any_integer_is_clamped_and_words_are_refused() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "phone").await;
    for path in [
        "/api/v1/docs?limit=65320880781449368698880",
        "/api/v1/issues?limit=65320880781449368698880&offset=99999999999999999999999",
        "/api/v1/patrols?limit=65320880781449368698880",
    ] {
        let reply = s.get(path, &chief).await;
        reply.expect_ok();
    }
    let (whole, _) = listing(&s, &chief, "", 500).await;
    let huge = s
        .get("/api/v1/docs?limit=65320880781449368698880", &chief)
        .await;
    let huge = huge.expect_ok();
    assert_eq!(huge["docs"].as_array().unwrap().len(), whole.len().min(500));
    s.get("/api/v1/docs?limit=many", &chief)
        .await
        .expect_error(400, "bad_request");
}
