//! Photo upload and download against a real server: whole and chunked uploads (cut mid-body and
//! resumed from `HEAD`), every refusal with its status, duplicate uploads, download only for
//! users who see a referencing document, thumbnails, and photo completeness in document views.

use std::io::{Cursor, Write};
use std::net::TcpStream;
use std::time::Duration;

use actix_web::http::StatusCode;
use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::Value;
use server::demo::{self, CHIEF, CHIEF_2, SUPERVISOR};
use sync_core::doc::{parse_actor, NewPatrol, PatrolDoc, Record};
use sync_core::model::{PhotoRef, PhotoRole};
use sync_core::photo::sha256_hex;
use sync_core::protocol::{DocPush, SyncRequest, SyncResponse};
use sync_core::track::walk_along;

use crate::harness::TestServer;

/// A camera-like JPEG: textured, so it does not compress to nothing.
pub(crate) fn jpeg(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(width, height, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

/// A PNG that declares 100 000 × 100 000 pixels and carries almost nothing: a decompression bomb.
fn png_bomb() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

pub(crate) struct Raw {
    pub(crate) status: StatusCode,
    pub(crate) headers: actix_web::http::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Raw {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub(crate) fn offset(&self) -> Option<u64> {
        self.headers
            .get("Upload-Offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    pub(crate) fn expect(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        if !code.is_empty() {
            assert_eq!(self.json()["error"], code, "{}", self.json());
        }
    }
}

pub(crate) async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Raw {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(method, format!("{}{path}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")));
    for (name, value) in headers {
        req = req.insert_header((*name, value.clone()));
    }
    let mut res = match body {
        Some(body) => {
            req.content_type("application/octet-stream")
                .send_body(body.to_vec())
                .await
        }
        None => req.send().await,
    }
    .expect("request sent");
    let body = res
        .body()
        .limit(32 * 1024 * 1024)
        .await
        .expect("body")
        .to_vec();
    Raw {
        status: res.status(),
        headers: res.headers().clone(),
        body,
    }
}

async fn put(s: &TestServer, token: &str, sha: &str, body: &[u8]) -> Raw {
    send(
        s,
        "PUT",
        &format!("/api/v1/blobs/{sha}"),
        token,
        &[],
        Some(body),
    )
    .await
}

pub(crate) async fn put_chunk(
    s: &TestServer,
    token: &str,
    sha: &str,
    photo: &[u8],
    first: usize,
    end: usize,
) -> Raw {
    let range = format!("bytes {first}-{}/{}", end - 1, photo.len());
    let headers = [("Content-Range", range)];
    send(
        s,
        "PUT",
        &format!("/api/v1/blobs/{sha}"),
        token,
        &headers,
        Some(&photo[first..end]),
    )
    .await
}

pub(crate) async fn head(s: &TestServer, token: &str, sha: &str) -> Raw {
    send(s, "HEAD", &format!("/api/v1/blobs/{sha}"), token, &[], None).await
}

/// Sends a chunk's headers and only part of its body, then drops the connection: a phone
/// losing signal mid-upload.
pub(crate) fn cut_chunk(
    s: &TestServer,
    token: &str,
    sha: &str,
    photo: &[u8],
    first: usize,
    end: usize,
) {
    let addr = s.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Range: bytes {first}-{}/{}\r\n\
         Content-Length: {}\r\n\r\n",
        end - 1,
        photo.len(),
        end - first
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .write_all(&photo[first..first + (end - first) / 2])
        .unwrap();
    stream.flush().unwrap();
    drop(stream);
}

/// A small deterministic generator for cut points.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

#[actix_web::test]
async fn whole_upload_is_stored_once_and_a_duplicate_changes_nothing() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "phone-1").await;
    let photo = jpeg(640, 480, 1);
    let sha = sha256_hex(&photo);
    assert_eq!(head(&s, &chief, &sha).await.status, StatusCode::NOT_FOUND);

    let stored = put(&s, &chief, &sha, &photo).await;
    stored.expect(201, "");
    assert_eq!(stored.offset(), Some(photo.len() as u64));
    assert_eq!(stored.json()["complete"], true);
    let record = s.state.blobs.store().record(&sha).unwrap().unwrap();
    assert_eq!((record.width, record.height), (640, 480));
    assert_eq!(record.uploaded_by, "u-demo-chief");

    let held = head(&s, &chief, &sha).await;
    held.expect(200, "");
    assert_eq!(held.offset(), Some(photo.len() as u64));
    assert_eq!(held.headers.get("Upload-Complete").unwrap(), "?1");

    // Another phone sends the same photo: 200, nothing rewritten, first receipt kept.
    let other = s.token(SUPERVISOR, "pc").await;
    put(&s, &other, &sha, &photo).await.expect(200, "");
    // A chunk from someone who neither uploaded the photo nor may see it is kept like any new
    // upload's: only a caller who sent every byte hears that the photo is stored.
    let again = put_chunk(&s, &other, &sha, &photo, 0, 1000).await;
    again.expect(202, "");
    assert_eq!(again.offset(), Some(1000));
    let last = put_chunk(&s, &other, &sha, &photo, 1000, photo.len()).await;
    last.expect(200, "");
    assert_eq!(last.offset(), Some(photo.len() as u64));
    // The uploader's own phone hears it at once.
    let mine = put_chunk(&s, &chief, &sha, &photo, 0, 1000).await;
    mine.expect(200, "");
    assert_eq!(s.state.blobs.store().record(&sha).unwrap(), Some(record));
    assert_eq!(s.state.blobs.store().read(&sha).unwrap(), Some(photo));
}

#[actix_web::test]
async fn chunked_upload_cut_mid_body_resumes_from_the_head_offset() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "phone-1").await;
    let photo = jpeg(900, 700, 2);
    assert!(photo.len() > 60_000, "{} bytes", photo.len());
    let sha = sha256_hex(&photo);
    let mut rng = SplitMix(0x5eed);
    let mut offset = 0usize;
    let mut cuts = 0;
    let mut last = None;
    while offset < photo.len() {
        let end = (offset + 1 + rng.below(20_000)).min(photo.len());
        if cuts < 3 && rng.below(3) == 0 {
            cut_chunk(&s, &chief, &sha, &photo, offset, end);
            cuts += 1;
            // The phone comes back and asks how far the server got.
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            let held = head(&s, &chief, &sha).await;
            if offset == 0 {
                assert!(matches!(held.status.as_u16(), 200 | 404));
            } else {
                held.expect(200, "");
                assert_eq!(held.headers.get("Upload-Complete").unwrap(), "?0");
            }
            offset = held.offset().unwrap_or(0) as usize;
            continue;
        }
        let reply = put_chunk(&s, &chief, &sha, &photo, offset, end).await;
        assert!(reply.status.is_success(), "{}", reply.json());
        assert_eq!(reply.offset(), Some(end as u64));
        offset = end;
        last = Some(reply);
    }
    assert!(cuts > 0, "the walk never cut a chunk");
    let last = last.unwrap();
    last.expect(201, "");
    assert_eq!(last.json()["complete"], true);
    assert_eq!(
        s.state.blobs.store().read(&sha).unwrap(),
        Some(photo.clone())
    );

    // A chunk that starts after the held bytes is refused with the offset to resume from.
    let next = jpeg(300, 200, 3);
    let next_sha = sha256_hex(&next);
    put_chunk(&s, &chief, &next_sha, &next, 0, 1000)
        .await
        .expect(202, "");
    let gap = put_chunk(&s, &chief, &next_sha, &next, 2000, 3000).await;
    gap.expect(409, "offset_mismatch");
    assert_eq!(gap.offset(), Some(1000));
    // A resent chunk (its answer was lost) replaces itself.
    put_chunk(&s, &chief, &next_sha, &next, 500, 1000)
        .await
        .expect(202, "");
    // Partial uploads are the uploader's own: another user starts from nothing.
    let other = s.token(SUPERVISOR, "pc").await;
    assert_eq!(
        head(&s, &other, &next_sha).await.status,
        StatusCode::NOT_FOUND
    );
    put_chunk(&s, &chief, &next_sha, &next, 1000, next.len())
        .await
        .expect(201, "");
    assert_eq!(s.state.blobs.store().read(&next_sha).unwrap(), Some(next));
}

#[actix_web::test]
async fn refused_uploads_get_their_status_and_leave_nothing_behind() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "phone-1").await;
    let photo = jpeg(400, 300, 4);

    let wrong = sha256_hex(b"another photo");
    put(&s, &chief, &wrong, &photo)
        .await
        .expect(422, "hash_mismatch");

    let text = b"this is a text file someone named photo.jpg".to_vec();
    put(&s, &chief, &sha256_hex(&text), &text)
        .await
        .expect(422, "not_an_image");

    let truncated = photo[..photo.len() * 2 / 3].to_vec();
    put(&s, &chief, &sha256_hex(&truncated), &truncated)
        .await
        .expect(422, "corrupt_image");

    let bomb = png_bomb();
    put(&s, &chief, &sha256_hex(&bomb), &bomb)
        .await
        .expect(422, "image_too_large");

    // Too big: announced by Content-Range before any byte is read, or found while reading.
    let max = s.state.blobs.max_bytes() as usize;
    let big = vec![0xffu8; max + 1];
    let big_sha = sha256_hex(&big);
    put_chunk(&s, &chief, &big_sha, &big, 0, 1000)
        .await
        .expect(413, "payload_too_large");
    put(&s, &chief, &big_sha, &big)
        .await
        .expect(413, "payload_too_large");

    // A refused chunked upload is discarded whole: the next attempt starts from zero.
    let bad_sha = sha256_hex(b"not these bytes");
    put_chunk(&s, &chief, &bad_sha, &photo, 0, 2000)
        .await
        .expect(202, "");
    put_chunk(&s, &chief, &bad_sha, &photo, 2000, photo.len())
        .await
        .expect(422, "hash_mismatch");

    put(&s, &chief, "not-a-hash", &photo)
        .await
        .expect(400, "bad_request");
    let lying = [("Content-Range", format!("bytes 0-99/{}", photo.len()))];
    send(
        &s,
        "PUT",
        &format!("/api/v1/blobs/{}", sha256_hex(&photo)),
        &chief,
        &lying,
        Some(&photo[..50]),
    )
    .await
    .expect(400, "bad_request");

    for sha in [
        wrong,
        sha256_hex(&text),
        sha256_hex(&truncated),
        sha256_hex(&bomb),
        big_sha,
        bad_sha,
    ] {
        assert_eq!(
            head(&s, &chief, &sha).await.status,
            StatusCode::NOT_FOUND,
            "{sha}"
        );
    }
    // The server keeps serving, and still takes a good photo.
    assert!(s
        .request("GET", "/healthz", None, None)
        .await
        .status
        .is_success());
    put(&s, &chief, &sha256_hex(&photo), &photo)
        .await
        .expect(201, "");
}

/// Uploads `body` whole, declared as `content_type` (the type a client claims, which must not
/// matter).
async fn put_as(s: &TestServer, token: &str, body: &[u8], content_type: &str) -> Raw {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut res = client
        .put(format!("{}/api/v1/blobs/{}", s.base, sha256_hex(body)))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", content_type))
        .insert_header(("Content-Disposition", "attachment; filename=\"photo.jpg\""))
        .send_body(body.to_vec())
        .await
        .expect("request sent");
    let body = res.body().await.expect("body").to_vec();
    Raw {
        status: res.status(),
        headers: res.headers().clone(),
        body,
    }
}

/// A minimal ZIP archive holding one stored file, as a GIFAR-style polyglot appends it.
fn zip_with(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(data);
    let mut out = Vec::new();
    let local = |out: &mut Vec<u8>, sig: &[u8]| {
        out.extend_from_slice(sig);
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
    };
    local(&mut out, b"PK\x03\x04");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    let directory = out.len() as u32;
    out.extend_from_slice(b"PK\x01\x02\x14\x00");
    local(&mut out, b"");
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(name.as_bytes());
    let directory_len = out.len() as u32 - directory;
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    out.extend_from_slice(&directory_len.to_le_bytes());
    out.extend_from_slice(&directory.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// A JPEG with a comment segment right after its start-of-image marker.
fn with_comment(jpeg: &[u8], comment: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&(comment.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(comment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[actix_web::test]
async fn markup_and_polyglots_sent_as_jpeg_are_refused_by_their_bytes() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "phone-1").await;
    let photo = jpeg(400, 300, 6);
    let page = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/issues')</script></body></html>";
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>"#;
    let xml_svg = [b"<?xml version=\"1.0\"?>\n".as_slice(), svg].concat();
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::from_pixel(32, 32, image::Rgb([20, 90, 160])))
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    // The comment is valid JPEG; it is the markup in the first kilobyte that is refused.
    let commented = with_comment(&photo, b"<html><script>alert(1)</script></html>");
    let jpeg_magic_html = [b"\xFF\xD8\xFF\xE0".as_slice(), page].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("an HTML page", page.to_vec(), "not_an_image"),
        ("an SVG named photo.jpg", svg.to_vec(), "not_an_image"),
        ("an SVG with an XML declaration", xml_svg, "not_an_image"),
        (
            "HTML behind a JPEG signature",
            jpeg_magic_html,
            "corrupt_image",
        ),
        (
            "a JPEG followed by a page",
            [photo.as_slice(), page].concat(),
            "unsupported_image",
        ),
        (
            "a JPEG that is also a ZIP (GIFAR)",
            [
                photo.as_slice(),
                &zip_with("Evil.class", b"\xCA\xFE\xBA\xBE"),
            ]
            .concat(),
            "unsupported_image",
        ),
        (
            "a JPEG whose ZIP directory hides in a comment",
            {
                let zip = zip_with("x.html", page);
                let mut out = with_comment(&photo, b"x");
                // The archive's end record must end the file: put the JPEG's end inside the
                // archive comment instead.
                out.truncate(out.len() - 2);
                let mut tail = zip;
                let n = tail.len();
                tail[n - 2..].copy_from_slice(&2u16.to_le_bytes());
                out.extend_from_slice(&tail);
                out.extend_from_slice(&[0xFF, 0xD9]);
                out
            },
            "",
        ),
        ("markup in a JPEG comment", commented, "unsupported_image"),
        (
            "a PNG followed by a page",
            [png.as_slice(), page].concat(),
            "unsupported_image",
        ),
    ];
    for (name, body, code) in &cases {
        let reply = put_as(&s, &chief, body, "image/jpeg").await;
        assert_eq!(
            reply.status.as_u16(),
            422,
            "{name}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        if !code.is_empty() {
            assert_eq!(reply.json()["error"], *code, "{name}: {}", reply.json());
        }
        assert!(reply.json()["message"].is_string(), "{name}");
        assert_eq!(
            head(&s, &chief, &sha256_hex(body)).await.status,
            StatusCode::NOT_FOUND,
            "{name} was kept"
        );
    }
    // The very same picture without the extra bytes is a photo, whatever type it is sent as.
    put_as(&s, &chief, &photo, "text/html")
        .await
        .expect(201, "");
    put_as(&s, &chief, &png, "image/jpeg").await.expect(201, "");
}

/// Creates a patrol of `demo-chief` on his first river segment referencing `photos`, and pushes
/// it through `/sync` as his phone would. Returns the patrol id.
pub(crate) async fn push_patrol(
    s: &TestServer,
    grant: &Value,
    photos: &[PhotoRef],
    started_at_ms: i64,
) -> String {
    let facts = demo::facts();
    let chief = facts.user(CHIEF).unwrap();
    let asset = facts.asset("river-thh-01").unwrap();
    let actor = parse_actor(grant["actor_id"].as_str().unwrap()).unwrap();
    let mut patrol = PatrolDoc::create(
        actor,
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: chief.id.clone(),
            division: asset.division.clone(),
            device: grant["device_id"].as_str().unwrap().to_owned(),
            started_at_ms,
        },
    )
    .unwrap();
    let track = walk_along(&asset.geometry, started_at_ms, 600, 7);
    patrol.append_track(&track).unwrap();
    for photo in photos {
        patrol.add_photo(photo).unwrap();
    }
    patrol.finish(track.last().unwrap().t_ms).unwrap();
    let id = patrol.id().to_owned();
    let request = SyncRequest {
        cursor: 0,
        docs: vec![DocPush {
            doc_id: id.clone(),
            server_heads: vec![],
            changes: patrol
                .am_mut()
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
        }],
        dropped: Vec::new(),
    };
    let token = grant["access_token"].as_str().unwrap();
    let reply = send(
        s,
        "POST",
        "/api/v1/sync",
        token,
        &[],
        Some(&request.encode()),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let response = SyncResponse::decode(&reply.body).unwrap();
    let pushed = response.docs.iter().find(|d| d.doc_id == id).unwrap();
    assert!(pushed.refused.is_empty(), "{:?}", pushed.refused);
    id
}

#[actix_web::test]
async fn photos_are_served_to_those_who_see_a_referencing_document() {
    let s = TestServer::demo().await;
    // The chief's phone was signed in before the patrol it sends: a photo taken on it before
    // that would be flagged as older than the server vouches for.
    let chief_id = s
        .state
        .store
        .find_user_by_username(CHIEF)
        .unwrap()
        .unwrap()
        .user
        .id;
    let two_hours_ago = server::state::now_ms() - 2 * 3_600_000;
    s.state
        .store
        .start_session(
            &chief_id,
            "phone-1",
            &format!("{:032x}", 1_u128),
            two_hours_ago,
        )
        .unwrap();
    let grant = s.login(CHIEF, "phone-1").await;
    let chief = grant["access_token"].as_str().unwrap().to_owned();
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let other_chief = s.token(CHIEF_2, "phone-2").await;

    let now = server::state::now_ms();
    let photo = jpeg(1200, 900, 5);
    let sha = sha256_hex(&photo);
    let never_sent = sha256_hex(b"a photo still on the phone");
    put(&s, &chief, &sha, &photo).await.expect(201, "");
    // Stored but referenced by no document yet: nobody may fetch it, not even its uploader.
    for token in [&chief, &supervisor] {
        send(&s, "GET", &format!("/api/v1/blobs/{sha}"), token, &[], None)
            .await
            .expect(404, "not_found");
    }

    let started = now - 3_600_000;
    let asset = demo::facts().asset("river-thh-01").unwrap().clone();
    let on_river = match &asset.geometry {
        sync_core::model::Geometry::LineString(line) => line[0],
        sync_core::model::Geometry::Polygon(rings) => rings[0][0],
    };
    let photos = [
        PhotoRef {
            sha256: sha.clone(),
            role: PhotoRole::Evidence,
            taken_at_ms: Some(started + 5 * 60_000),
            position: Some(on_river),
            bytes: photo.len() as u64,
        },
        PhotoRef {
            sha256: never_sent.clone(),
            role: PhotoRole::Evidence,
            taken_at_ms: None,
            position: None,
            bytes: 1234,
        },
    ];
    let patrol = push_patrol(&s, &grant, &photos, started).await;

    for token in [&chief, &supervisor] {
        let got = send(&s, "GET", &format!("/api/v1/blobs/{sha}"), token, &[], None).await;
        got.expect(200, "");
        assert_eq!(got.headers.get("content-type").unwrap(), "image/jpeg");
        assert_eq!(
            got.headers.get("x-content-type-options").unwrap(),
            "nosniff"
        );
        assert!(got
            .headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("sandbox"));
        assert_eq!(got.body, photo);
    }
    // A chief of another village does not see the patrol, so not its photos either.
    send(
        &s,
        "GET",
        &format!("/api/v1/blobs/{sha}"),
        &other_chief,
        &[],
        None,
    )
    .await
    .expect(404, "not_found");
    send(
        &s,
        "GET",
        &format!("/api/v1/blobs/{sha}/thumbnail"),
        &other_chief,
        &[],
        None,
    )
    .await
    .expect(404, "not_found");
    // Referenced but not uploaded yet: 404 for everyone.
    send(
        &s,
        "GET",
        &format!("/api/v1/blobs/{never_sent}"),
        &supervisor,
        &[],
        None,
    )
    .await
    .expect(404, "not_found");

    let thumb = send(
        &s,
        "GET",
        &format!("/api/v1/blobs/{sha}/thumbnail"),
        &supervisor,
        &[],
        None,
    )
    .await;
    thumb.expect(200, "");
    assert_eq!(thumb.headers.get("content-type").unwrap(), "image/jpeg");
    let small = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!((small.width(), small.height()), (320, 240));
    assert_eq!(
        s.state.blobs.store().thumbnail(&sha).unwrap(),
        Some(thumb.body.clone())
    );
    let again = send(
        &s,
        "GET",
        &format!("/api/v1/blobs/{sha}/thumbnail"),
        &chief,
        &[],
        None,
    )
    .await;
    assert_eq!(again.body, thumb.body);
    let etag = thumb
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let cached = send(
        &s,
        "GET",
        &format!("/api/v1/blobs/{sha}/thumbnail"),
        &chief,
        &[("If-None-Match", etag)],
        None,
    )
    .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);

    // The patrol's view says which photo is missing and what is doubtful.
    let view = s.get(&format!("/api/v1/docs/{patrol}"), &supervisor).await;
    let photos_state = &view.expect_ok()["photos"];
    assert_eq!(view.body["kind"], "patrol");
    assert_eq!(photos_state["complete"], false, "{photos_state}");
    assert_eq!(photos_state["missing"], serde_json::json!([never_sent]));
    let first = &photos_state["photos"][0];
    assert_eq!(first["sha256"], sha.as_str());
    assert_eq!(first["present"], true);
    assert!(first["received_at_ms"].as_i64().unwrap() >= now);
    assert_eq!(first["evidence"], serde_json::json!([]), "{first}");
    let second = &photos_state["photos"][1];
    assert_eq!(second["present"], false);
    assert_eq!(second["evidence"][0]["flag"], "missing_exif");
    assert_eq!(
        second["evidence_text"][0],
        "the photo does not record its capture time and position"
    );

    // The phone catches up; the record is complete.
    let late_photo = jpeg(200, 150, 6);
    let late_sha = sha256_hex(&late_photo);
    assert_ne!(late_sha, never_sent);
    let complete_patrol = push_patrol(
        &s,
        &grant,
        &[PhotoRef {
            sha256: late_sha.clone(),
            role: PhotoRole::Evidence,
            taken_at_ms: Some(started - 5 * 3_600_000),
            position: Some([on_river[0] + 0.05, on_river[1]]),
            bytes: late_photo.len() as u64,
        }],
        started,
    )
    .await;
    let before = s
        .get(&format!("/api/v1/docs/{complete_patrol}"), &chief)
        .await;
    assert_eq!(before.expect_ok()["photos"]["complete"], false);
    put(&s, &chief, &late_sha, &late_photo)
        .await
        .expect(201, "");
    let after = s
        .get(&format!("/api/v1/docs/{complete_patrol}"), &chief)
        .await;
    let late_state = &after.expect_ok()["photos"];
    assert_eq!(late_state["complete"], true, "{late_state}");
    let flags: Vec<&str> = late_state["photos"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap())
        .collect();
    // Taken five hours before the patrol, so before the phone was signed in too.
    assert_eq!(
        flags,
        ["taken_outside_window", "far_from_place", "taken_too_early"]
    );
}

/// Photo uploads of one user arriving at once: the day's quota was checked and then charged in
/// two steps, so uploads checked together all passed and the day went over by as many as ran
/// at once. Now each upload is checked and counted in one step of the store: however many
/// arrive together, no more are taken than fit, on sled and on PostgreSQL (when
/// `CHIEFSYNC_TEST_POSTGRES` names a server).
#[actix_web::test]
async fn parallel_uploads_never_pass_the_days_quota() {
    const PHOTO: usize = 4_000;
    const FIT: u64 = 6;
    async fn attack(s: &TestServer) {
        let token = s.token(CHIEF, "phone-1").await;
        let tasks: Vec<_> = (0..48u32)
            .map(|i| {
                let (base, token) = (s.base.clone(), token.clone());
                // Not a picture: refused after it is counted, as every received byte is.
                let body: Vec<u8> = (0..PHOTO).map(|b| (b as u32 * 31 + i) as u8).collect();
                actix_web::rt::spawn(async move {
                    let client = awc::Client::builder()
                        .timeout(Duration::from_secs(60))
                        .finish();
                    let mut res = client
                        .put(format!("{base}/api/v1/blobs/{}", sha256_hex(&body)))
                        .insert_header(("Authorization", format!("Bearer {token}")))
                        .content_type("application/octet-stream")
                        .send_body(body)
                        .await
                        .expect("request sent");
                    let answer = res.body().await.unwrap_or_default();
                    (res.status(), String::from_utf8_lossy(&answer).into_owned())
                })
            })
            .collect();
        let mut counted = 0u64;
        for task in tasks {
            let (status, answer) = task.await.unwrap();
            match status {
                StatusCode::TOO_MANY_REQUESTS => {}
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    counted += 1
                }
                other => panic!("{other}: {answer}"),
            }
        }
        let user = s
            .state
            .store
            .find_user_by_username(CHIEF)
            .unwrap()
            .unwrap()
            .user
            .id;
        let used = s
            .state
            .photo_quota
            .used(&user, server::state::now_ms())
            .unwrap();
        assert_eq!(counted, FIT, "uploads taken");
        assert_eq!(used, FIT * PHOTO as u64, "bytes counted");
    }
    let quota = |settings: &mut server::Settings| {
        settings.photos.daily_bytes_per_user = FIT * PHOTO as u64;
        // All of them in flight at once, none shed.
        settings.max_in_flight = 1_000;
        settings.max_in_flight_per_user = 1_000;
    };
    let s = TestServer::demo_with(quota).await;
    attack(&s).await;
    s.stop().await;
    if let Some(db) = crate::postgres::Database::create("holes_photo_quota") {
        let url = db.url.clone();
        let s = TestServer::demo_with(|settings| {
            quota(settings);
            settings.database = Some(url.clone());
        })
        .await;
        attack(&s).await;
        s.stop().await;
    }
}
