//! A phone on a slow link names the most it wants in an answer (`x-chiefsync-answer-bytes`): its
//! first sync comes in pages of that size and brings everything a phone that asked nothing gets;
//! a size below the floor is raised to it (a phone cannot make the server walk its scope once
//! per document); a size that is not a whole number is a 400 with a JSON error.

use std::collections::BTreeSet;

use server::demo::{self, CHIEF_2};
use sync_core::limits::MIN_ASKED_ANSWER_BYTES;
use sync_core::protocol::{DocPush, SyncRequest, SyncResponse, ANSWER_BYTES_HEADER};

use crate::harness::TestServer;

/// One request with nothing to push from `cursor`, asking for at most `asked` (a header value).
async fn ask(s: &TestServer, token: &str, cursor: u64, asked: Option<&str>) -> (u16, Vec<u8>) {
    let request = SyncRequest {
        cursor,
        dropped: Vec::new(),
        docs: Vec::new(),
    };
    send(s, token, &request, asked).await
}

/// One request, asking for at most `asked` (a header value).
async fn send(
    s: &TestServer,
    token: &str,
    request: &SyncRequest,
    asked: Option<&str>,
) -> (u16, Vec<u8>) {
    let body = request.encode();
    let mut request = s
        .client
        .post(format!("{}/api/v1/sync", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/octet-stream"));
    if let Some(asked) = asked {
        request = request.insert_header((ANSWER_BYTES_HEADER, asked));
    }
    let mut res = request.send_body(body).await.expect("sync sent");
    let bytes = res.body().limit(64 << 20).await.expect("answer read");
    (res.status().as_u16(), bytes.to_vec())
}

/// Every page of a first sync from a new device, each asking for `asked`.
async fn first_sync(s: &TestServer, device: &str, asked: Option<&str>) -> Vec<SyncResponse> {
    let token = s.token(CHIEF_2, device).await;
    let (mut cursor, mut pages) = (0, Vec::new());
    loop {
        let (status, bytes) = ask(s, &token, cursor, asked).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        let page = SyncResponse::decode(&bytes).expect("an answer");
        cursor = page.cursor;
        let more = page.more;
        pages.push(page);
        if !more {
            return pages;
        }
        assert!(pages.len() < 500, "the pages never end");
    }
}

fn doc_bytes(page: &SyncResponse) -> usize {
    page.docs
        .iter()
        .flat_map(|d| &d.changes)
        .map(Vec::len)
        .sum()
}

fn ids(pages: &[SyncResponse]) -> BTreeSet<String> {
    pages
        .iter()
        .flat_map(|p| &p.docs)
        .map(|d| d.doc_id.clone())
        .collect()
}

#[actix_web::test]
async fn a_phone_asking_for_small_answers_gets_its_first_sync_in_pages_of_that_size() {
    let s = TestServer::demo().await;
    // A month of the chief's patrols, twenty-five minutes each.
    let facts = demo::facts();
    let chief = facts.user(CHIEF_2).unwrap();
    let asset = facts.asset("river-thh-03").unwrap();
    let now = server::state::now_ms();
    for k in 0..60u64 {
        let walked = now - (k as i64 + 1) * 12 * 3_600_000;
        s.store_walked_patrol(chief, asset, (20_000 + k, "old-phone"), walked, 25 * 60, k);
    }
    let whole = first_sync(&s, "desk-phone", None).await;
    assert_eq!(
        whole.len(),
        1,
        "the server's own limit carries it in one answer"
    );
    let total = doc_bytes(&whole[0]);
    assert!(
        total > 2 * MIN_ASKED_ANSWER_BYTES,
        "the chief's first sync is {total} bytes: too small to page"
    );

    let asked = MIN_ASKED_ANSWER_BYTES + MIN_ASKED_ANSWER_BYTES / 2;
    let paged = first_sync(&s, "field-phone", Some(&asked.to_string())).await;
    assert!(paged.len() >= 2, "{} pages", paged.len());
    for page in &paged {
        let largest = page
            .docs
            .iter()
            .map(|d| d.changes.iter().map(Vec::len).sum::<usize>())
            .max()
            .unwrap_or(0);
        // A page stops before the document that would pass the size (one document always goes).
        assert!(
            doc_bytes(page) <= asked || page.docs.len() == 1,
            "a page of {} bytes ({} documents, the largest {largest}) for {asked} asked",
            doc_bytes(page),
            page.docs.len()
        );
    }
    assert_eq!(ids(&paged), ids(&whole), "the pages bring everything");

    // Below the floor: pages of the floor, not of one document each.
    let floored = first_sync(&s, "tiny-phone", Some("1")).await;
    assert!(
        floored.len() < ids(&whole).len() / 2,
        "{} pages for {} documents",
        floored.len(),
        ids(&whole).len()
    );
    assert_eq!(ids(&floored), ids(&whole));

    // The answers to a phone's own pushes are not held to its ask: a phone that names every
    // patrol as held of nothing is answered with all of them whole (before, a 413).
    let token = s.token(CHIEF_2, "pushing-phone").await;
    let pushes = SyncRequest {
        cursor: 0,
        dropped: Vec::new(),
        docs: ids(&whole)
            .into_iter()
            .map(|doc_id| DocPush {
                doc_id,
                server_heads: Vec::new(),
                changes: Vec::new(),
            })
            .collect(),
    };
    let (status, bytes) = send(&s, &token, &pushes, Some("1")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let answered = SyncResponse::decode(&bytes).unwrap();
    assert_eq!(answered.docs.len(), ids(&whole).len());
    assert!(doc_bytes(&answered) > MIN_ASKED_ANSWER_BYTES);

    // Not a whole number: refused with a JSON error, nothing answered.
    let token = s.token(CHIEF_2, "bad-phone").await;
    for bad in ["abc", "-5", "1.5", ""] {
        let (status, body) = ask(&s, &token, 0, Some(bad)).await;
        assert_eq!(status, 400, "{bad:?}");
        let error: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(ANSWER_BYTES_HEADER)),
            "{error}"
        );
    }
    s.stop().await;
}
