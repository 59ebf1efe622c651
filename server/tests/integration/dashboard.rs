//! The dashboard in a real browser (headless Debian chromium driven over WebDriver): a chief's
//! phone reports a problem; the demo supervisor logs in, finds it on the board, assigns it; the
//! handler's phone submits the rectification with an after photo through sync and uploads the
//! photo; the supervisor sees it, verifies it in the browser, and the chief's phone has the issue
//! `closed` after its next sync. A screenshot of the issue page is saved under the test's output
//! folder.
//!
//! Needs `chromedriver` (Debian `chromium-driver`, installed by `.ci/run`). Without it the test
//! says so and passes locally; under CI (`CI` set) a missing driver is a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use server::demo::{CHIEF, HANDLER, SUPERVISOR};
use server::state::now_ms;
use sync_core::doc::{IssueDoc, NewIssue};
use sync_core::model::{DivisionCode, Role, Severity, System};
use sync_core::photo::{prepare, PrepareOptions};
use sync_core::workflow::{Action, Status};

use crate::harness::TestServer;
use crate::phone::Phone;

const WAIT: Duration = Duration::from_secs(20);

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

fn chromium() -> Option<&'static str> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

/// A chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(binary: &PathBuf) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = awc::Client::default();
    for _ in 0..100 {
        if let Ok(res) = client.get(format!("{}/status", driver.url)).send().await {
            if res.status().is_success() {
                return driver;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

async fn browser(driver: &Driver) -> Client {
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1100", "--lang=zh-CN"],
    });
    if let Some(binary) = chromium() {
        options["binary"] = json!(binary);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
}

/// A small after photo: a gradient PNG (stored, uncompressed) prepared by sync-core into the
/// JPEG a phone would upload.
fn after_photo() -> (String, Vec<u8>) {
    let (w, h) = (64u32, 48u32);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0u8);
        for x in 0..w {
            raw.extend([(x * 4) as u8, (y * 5) as u8, 120]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    for (i, block) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        zlib.push(u8::from(last));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        png.extend(kind);
        png.extend(data);
        png.extend(crc.finalize().to_be_bytes());
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(w.to_be_bytes());
    header.extend(h.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    let prepared = prepare(&png, &PrepareOptions::default()).expect("prepare the photo");
    (prepared.sha256, prepared.jpeg)
}

async fn status_is(client: &Client, status: &str) {
    wait_for(client, &format!("#issue-status[data-status='{status}']")).await;
}

#[actix_web::test]
async fn a_supervisor_closes_the_loop_in_a_real_browser() {
    let Some(binary) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing under CI; .ci/run installs chromium-driver");
        }
        eprintln!("SKIPPED dashboard browser test: chromedriver not found on PATH (apt-get install chromium chromium-driver)");
        return;
    };
    let s = TestServer::demo().await;

    // A chief's phone reports a problem from the river bank.
    let chief = Phone::login(&s, CHIEF, "chief-phone").await;
    let Role::Chief { jurisdiction, .. } = &chief.user.role else {
        panic!("a chief");
    };
    let facts = server::demo::facts();
    let asset = facts.asset(&jurisdiction.assets[0]).unwrap().clone();
    let mut issue = IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        now_ms() - 3_600_000,
        &NewIssue {
            system: System::River,
            category: "river.dumping".into(),
            severity: Severity::Urgent,
            asset: asset.id.clone(),
            division: DivisionCode::new(asset.division.as_str()).unwrap(),
            location: match &asset.geometry {
                sync_core::model::Geometry::LineString(line) => line[line.len() / 2],
                sync_core::model::Geometry::Polygon(rings) => rings[0][0],
            },
            description: "河岸新倾倒建筑垃圾（浏览器测试）".into(),
            patrol: None,
        },
    )
    .unwrap();
    let id = issue.id().to_string();
    chief.save(&mut issue);
    chief.sync(now_ms()).await;

    let driver = start_driver(&binary).await;
    let client = browser(&driver).await;

    // Log in as the demo supervisor and open the new issue from the board.
    client.goto(&format!("{}/", s.base)).await.unwrap();
    wait_for(&client, "#username")
        .await
        .send_keys(SUPERVISOR)
        .await
        .unwrap();
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("demo")
        .await
        .unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let card = wait_for(
        &client,
        &format!(".column[data-status='reported'] .card[data-issue='{id}']"),
    )
    .await;
    let login_form = client.find(Locator::Css("#login")).await.unwrap();
    assert!(
        !login_form.is_displayed().await.unwrap(),
        "the login form is gone"
    );
    card.click().await.unwrap();
    status_is(&client, "reported").await;

    // Assign it to the water bureau with the form's default deadline.
    wait_for(&client, "button[data-action='assigned']")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&client, "#action-submit")
        .await
        .click()
        .await
        .unwrap();
    status_is(&client, "assigned").await;
    // A verification is not offered before a rectification.
    assert!(client
        .find(Locator::Css("button[data-action='verified']"))
        .await
        .is_err());

    // The handler's phone receives the assignment, submits the rectification with an after
    // photo, and uploads the photo.
    let handler = Phone::login(&s, HANDLER, "handler-phone").await;
    handler.sync(now_ms()).await;
    let mut assigned = handler
        .issue(&id)
        .expect("the assignment reached the handler");
    let (sha, jpeg) = after_photo();
    assigned
        .act(
            &handler.user,
            &handler.device,
            now_ms(),
            Action::RectificationSubmitted {
                note: "已清运完毕".into(),
                photos: vec![sha.clone()],
            },
        )
        .unwrap();
    handler.save(&mut assigned);
    assert_eq!(handler.sync(now_ms()).await.refused, 0);
    let token = s.token(HANDLER, "handler-phone").await;
    let upload = awc::Client::default()
        .put(format!("{}/api/v1/blobs/{sha}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/octet-stream"))
        .send_body(jpeg)
        .await
        .unwrap();
    assert!(upload.status().is_success(), "{}", upload.status());
    let detail = s
        .get(&format!("/api/v1/issues/{id}"), &token)
        .await
        .expect_ok()
        .clone();
    assert_eq!(detail["photo_completeness"]["complete"], true, "{detail}");
    assert_eq!(detail["photos"][0]["stored"], true, "{detail}");

    // The supervisor reloads the issue, sees the after photo and verifies.
    client
        .goto(&format!("{}/#/issue/{id}", s.base))
        .await
        .unwrap();
    client.refresh().await.unwrap();
    status_is(&client, "submitted").await;
    let photo = wait_for(
        &client,
        &format!("#photos img[data-sha='{sha}'][src^='blob:']"),
    )
    .await;
    let loaded = client
        .execute(
            "return arguments[0].complete && arguments[0].naturalWidth > 0;",
            vec![serde_json::to_value(&photo).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(loaded, json!(true), "the after photo shows");
    wait_for(&client, "button[data-action='verified']")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&client, "#action-submit")
        .await
        .click()
        .await
        .unwrap();
    status_is(&client, "closed").await;
    wait_for(&client, "#timeline tr[data-kind='verified']").await;

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out).unwrap();
    let shot = out.join("issue-page.png");
    std::fs::write(&shot, client.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot of the issue page: {}", shot.display());

    // The map draws the district's rivers and every issue, with no tile server.
    client.goto(&format!("{}/#/map", s.base)).await.unwrap();
    wait_for(&client, &format!("svg#map circle.issue[data-issue='{id}']")).await;
    let rivers = client
        .find_all(Locator::Css("svg#map polyline.river"))
        .await
        .unwrap();
    let issues = client
        .find_all(Locator::Css("svg#map circle.issue"))
        .await
        .unwrap();
    assert!(rivers.len() >= 14, "{} river segments drawn", rivers.len());
    assert_eq!(issues.len(), 11, "the ten demo issues and the new one");
    std::fs::write(out.join("map.png"), client.screenshot().await.unwrap()).unwrap();
    client.close().await.unwrap();

    // The chief's phone has the issue closed after its next sync.
    chief.sync(now_ms()).await;
    let state = chief.issue(&id).unwrap().state().unwrap();
    assert_eq!(state.status, Some(Status::Closed));
    let verified = &state.timeline.last().unwrap().event;
    assert_eq!(verified.device, "web");
    drop(driver);
    s.stop().await;
}
