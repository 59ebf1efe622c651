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

pub(crate) fn chromedriver() -> Option<PathBuf> {
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
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_driver(binary: &PathBuf) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Chromium on Linux takes its language from LANGUAGE (its --lang switch is ignored there):
    // the browser runs in Chinese, as an office's does, so date fields read 年/月/日. Needs
    // Chromium's Chinese language pack (Debian chromium-l10n, installed by `.ci/run`).
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .env("LANGUAGE", "zh_CN")
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

pub(crate) async fn browser(driver: &Driver) -> Client {
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

/// Opens `url` and signs in there as `username` (password `demo`) through the page's form.
pub(crate) async fn sign_in(client: &Client, url: &str, username: &str) {
    client.goto(url).await.unwrap();
    wait_for(client, "#username")
        .await
        .send_keys(username)
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
}

pub(crate) async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
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
    sign_in(&client, &format!("{}/", s.base), SUPERVISOR).await;
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

    // Assign it to the water bureau, chosen by name, with the form's default deadline. The
    // form offers the departments of the district's handlers and, as 责任人, the chiefs of the
    // issue's place by their names.
    wait_for(&client, "button[data-action='assigned']")
        .await
        .click()
        .await
        .unwrap();
    let options = |kind: &'static str| {
        let client = client.clone();
        async move {
            client
                .execute(
                    "const f = document.getElementById('action-form');
                     f.elements.assignee_kind.value = arguments[0];
                     f.elements.assignee_kind.dispatchEvent(new Event('change'));
                     return [...f.elements.assignee.options].map((o) => [o.value, o.textContent]);",
                    vec![json!(kind)],
                )
                .await
                .unwrap()
        }
    };
    wait_for(&client, "#action-form select[name='assignee']").await;
    let chiefs = options("user").await;
    let chiefs = chiefs.as_array().unwrap();
    let token = s.token(SUPERVISOR, "check").await;
    let desk = s.get("/api/v1/desk", &token).await;
    let chief_id = server::demo::user_id(CHIEF);
    let chief_name = desk.body["people"][&chief_id].as_str().unwrap();
    assert!(
        chiefs.iter().any(|o| o == &json!([chief_id, chief_name])),
        "the chief of the place is offered by name: {chiefs:?}"
    );
    assert_eq!(
        options("department").await,
        json!([["区水务局", "区水务局"]]),
        "the departments of the demo's handlers"
    );
    wait_for(&client, "#action-submit")
        .await
        .click()
        .await
        .unwrap();
    status_is(&client, "assigned").await;
    let assigned = s.get(&format!("/api/v1/issues/{id}"), &token).await;
    assert_eq!(
        assigned.body["assignee"],
        json!({ "kind": "department", "name": "区水务局" })
    );
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
        &format!("#view img[data-sha='{sha}'][src^='blob:']"),
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
    wait_for(&client, &format!("#map path.issue[data-issue='{id}']")).await;
    let rivers = client
        .find_all(Locator::Css("#map path.river"))
        .await
        .unwrap();
    let issues = client
        .find_all(Locator::Css("#map path.issue"))
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

/// Everything the page shows, as text, except the copyable codes of detail rows (`.code`),
/// and Leaflet's attribution.
const VISIBLE_TEXT: &str = r#"
const out = [];
const walk = (node) => {
  if (node.nodeType === Node.TEXT_NODE) { out.push(node.textContent); return; }
  if (node.nodeType !== Node.ELEMENT_NODE) return;
  if (node.matches(".code, .leaflet-control-attribution, script, style, [hidden]")) return;
  const style = getComputedStyle(node);
  if (style.display === "none" || style.visibility === "hidden") return;
  for (const child of node.childNodes) walk(child);
};
walk(document.body);
return out.join(" ");
"#;

/// Text whose contrast with what is behind it is below WCAG 2.1 AA: 4.5:1, or 3:1 for large
/// text (24 px, or 18.7 px bold). The background is the element's own colour over its
/// ancestors' (semi-transparent ones blended down to the first opaque one, white at the root);
/// the text colour counts the element's and its ancestors' opacity. Text drawn over the map's
/// tiles or in SVG charts is left out: what lies behind it is a picture.
const LOW_CONTRAST: &str = r#"
const rgba = (c) => {
  const m = /rgba?\(([^)]*)\)/.exec(c);
  if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const out = [];
for (const node of document.body.querySelectorAll("*")) {
  if (node.closest("svg, script, style, [hidden], .leaflet-marker-pane, .leaflet-tile-pane, .leaflet-overlay-pane")) continue;
  const own = [...node.childNodes].some((c) => c.nodeType === Node.TEXT_NODE && c.textContent.trim())
    || (node.matches("input, select, textarea, button") && node.value);
  if (!own || node.matches("option")) continue;
  const cs = getComputedStyle(node);
  const box = node.getBoundingClientRect();
  if (cs.display === "none" || cs.visibility === "hidden" || box.width < 2 || box.height < 2 || box.right < 0 || box.bottom < 0) continue;
  const layers = [];
  let opacity = 1;
  for (let n = node; n; n = n.parentElement) {
    const s = getComputedStyle(n);
    opacity *= Number(s.opacity);
    const c = rgba(s.backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = [255, 255, 255, 1];
  for (const l of layers.reverse()) bg = over(l, bg);
  const fg = rgba(cs.color);
  fg[3] *= opacity;
  const r = ratio(over(fg, bg), bg);
  const size = parseFloat(cs.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
  if (r < (large ? 3 : 4.5)) {
    out.push((node.value || node.textContent).trim().slice(0, 30) + " (" + cs.color + " on rgb(" + bg.slice(0, 3).map(Math.round) + "), " + r.toFixed(2) + ":1)");
  }
}
return out;
"#;

/// The ASCII words of `text` that are codes people should not have to read: enum keys of the
/// label table, user ids, asset ids, division codes, category codes (`river.garbage`),
/// snake_case keys and document ids.
fn raw_codes(text: &str, keys: &std::collections::BTreeSet<String>) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '-'))
        .filter(|w| !w.is_empty())
        .filter(|w| {
            let letters = w.chars().any(|c| c.is_ascii_alphabetic());
            keys.contains(*w)
                || w.starts_with("u-")
                || ["river-", "forest-", "field-", "demo-"]
                    .iter()
                    .any(|p| w.starts_with(p))
                || (w.len() == 12 && w.chars().all(|c| c.is_ascii_digit()))
                || (letters && (w.contains('_') || w.contains('.')))
                || w.matches('-').count() >= 3
                || *w == "null"
                || *w == "undefined"
                || *w == "NaN"
        })
        .map(str::to_owned)
        .collect()
}

/// Saves a screenshot and checks the page for raw codes, for horizontal overflow on a phone,
/// and for form controls without a label.
async fn check_page(
    client: &Client,
    out: &std::path::Path,
    name: &str,
    keys: &std::collections::BTreeSet<String>,
) {
    std::fs::write(
        out.join(format!("{name}.png")),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    let text = client.execute(VISIBLE_TEXT, vec![]).await.unwrap();
    let text = text.as_str().unwrap();
    let found = raw_codes(text, keys);
    assert!(found.is_empty(), "{name} shows codes {found:?}");
    let unlabelled = client
        .execute(
            "return [...document.querySelectorAll('#view input, #view select, #view textarea')]
               .filter((c) => c.type !== 'hidden' && !c.closest('label') && !c.getAttribute('aria-label'))
               .map((c) => c.name || c.id);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "{name}: controls without a label");
    let low = client.execute(LOW_CONTRAST, vec![]).await.unwrap();
    assert_eq!(low, json!([]), "{name}: text below WCAG AA contrast");
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 1,
        "{name}: the page is {overflow} px wider than the screen"
    );
}

/// Waits for `css` after navigating to `url` and returns how long the page took.
async fn open(client: &Client, url: &str, css: &str) -> Duration {
    let started = std::time::Instant::now();
    client.goto(url).await.unwrap();
    wait_for(client, css).await;
    started.elapsed()
}

async fn images_loaded(client: &Client, css: &str) -> usize {
    let reply = client
        .execute(
            &format!(
                "const imgs = [...document.querySelectorAll({css:?})];
                 return imgs.every((i) => i.complete && i.naturalWidth > 0) ? imgs.length : -1;"
            ),
            vec![],
        )
        .await
        .unwrap();
    let n = reply.as_i64().unwrap();
    assert!(n >= 0, "an image under {css} did not load");
    n as usize
}

/// The desk as a district uses it: the district demo (hundreds of patrols, tens of issues with
/// painted photos) walked at desktop and phone sizes. Every page shows names, not codes; the
/// photos and thumbnails load; the map zooms and an issue's popup opens the issue; this
/// month's report has patrols; the before/after pairing shows a distance.
#[actix_web::test]
async fn the_desk_at_district_size_shows_names_photos_and_a_real_map() {
    let Some(binary) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing under CI; .ci/run installs chromium-driver");
        }
        eprintln!("SKIPPED dashboard browser test: chromedriver not found on PATH");
        return;
    };
    let s = TestServer::empty().await;
    let seeding = std::time::Instant::now();
    server::demo::seed_sized(&s.state, server::demo::DemoSize::District).expect("seed");
    eprintln!("district demo seeded in {:?}", seeding.elapsed());
    let token = s.token(SUPERVISOR, "desk-test").await;
    let desk = s.get("/api/v1/desk", &token).await.expect_ok().clone();
    let mut keys = std::collections::BTreeSet::new();
    for table in desk["labels"].as_object().unwrap().values() {
        if let Some(t) = table.as_object() {
            keys.extend(t.keys().cloned());
        }
    }
    // A closed issue whose after photo was taken near the before photo, and the patrols.
    let closed = s
        .get("/api/v1/issues?status=closed&limit=500", &token)
        .await
        .expect_ok()
        .clone();
    let mut paired = None;
    for row in closed["items"].as_array().unwrap() {
        let id = row["id"].as_str().unwrap();
        let detail = s.get(&format!("/api/v1/issues/{id}"), &token).await;
        let pairs = detail.body["pairs"].as_array().unwrap().clone();
        if pairs.iter().any(|p| p["distance_m"].is_number()) && detail.body["patrol"].is_string() {
            paired = Some(id.to_owned());
            break;
        }
    }
    let issue = paired.expect("a closed demo issue with paired photos");
    let patrols = s
        .get("/api/v1/patrols?limit=500", &token)
        .await
        .expect_ok()
        .clone();
    let patrols = patrols.as_array().unwrap();
    assert!(
        patrols.len() >= 150,
        "{} patrols in the river office's scope",
        patrols.len()
    );
    let invalid = patrols
        .iter()
        .find(|p| p["valid"] == false)
        .expect("an invalid patrol")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let driver = start_driver(&binary).await;
    let client = browser(&driver).await;
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out).unwrap();
    client.goto(&format!("{}/", s.base)).await.unwrap();
    // Keyboard order of the sign-in form: user name, password, the button.
    let username = wait_for(&client, "#username").await;
    username.click().await.unwrap();
    let mut order = Vec::new();
    for _ in 0..2 {
        client
            .active_element()
            .await
            .unwrap()
            .send_keys("\u{E004}")
            .await
            .unwrap();
        order.push(
            client
                .active_element()
                .await
                .unwrap()
                .attr("id")
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        order,
        [Some("password".to_owned()), Some("login-submit".to_owned())]
    );
    username.send_keys(SUPERVISOR).await.unwrap();
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
    wait_for(&client, ".column .card").await;
    // The browser runs in Chinese, as an office's does: its date fields read 年/月/日.
    let locale = client
        .execute(
            "return Intl.DateTimeFormat().resolvedOptions().locale;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        locale, "zh-CN",
        "Chromium runs in English: install its Chinese language pack (chromium-l10n)"
    );
    // The contrast check finds grey text on white, so its silence on the pages means something.
    let low = client
        .execute(
            "const p = document.createElement('p'); p.id = 'grey'; p.textContent = '浅灰文字';
             p.style.color = '#aaaaaa'; p.style.background = '#ffffff';
             document.getElementById('view').append(p);",
            vec![],
        )
        .await
        .and(client.execute(LOW_CONTRAST, vec![]).await)
        .unwrap();
    assert!(
        low.to_string().contains("浅灰文字"),
        "the contrast check misses grey on white: {low}"
    );
    client
        .execute("document.getElementById('grey').remove();", vec![])
        .await
        .unwrap();

    let today = server::stats::query::day_string(now_ms());
    let month_start = format!("{}-01", &today[..7]);
    let mut timings = Vec::new();
    for (size, (w, h)) in [("desktop", (1280u32, 800u32)), ("phone", (390, 844))] {
        client.set_window_size(w, h).await.unwrap();
        // The viewport, not the window, is what the page gets; make it exactly the size.
        let inner = client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap();
        let (iw, ih) = (
            inner[0].as_u64().unwrap() as u32,
            inner[1].as_u64().unwrap() as u32,
        );
        client
            .set_window_size(2 * w - iw, 2 * h - ih)
            .await
            .unwrap();
        let page = |name: &str| format!("{size}-{name}");

        // The board: hundreds of issues paged per column, searchable by names.
        let t = open(&client, &format!("{}/#/board", s.base), ".column .card").await;
        timings.push((page("board"), t));
        check_page(&client, &out, &page("board"), &keys).await;
        let total = client
            .find(Locator::Css("#board-total"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        client
            .goto(&format!("{}/#/board?q=%E5%B0%8F%E6%B8%85%E6%B2%B3", s.base))
            .await
            .unwrap();
        wait_for(&client, "#filter-q[value='小清河']").await;
        wait_for(&client, ".column .card").await;
        let filtered = client
            .find(Locator::Css("#board-total"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_ne!(total, filtered, "searching 小清河 narrows the board");
        let metas = client.find_all(Locator::Css(".card .meta")).await.unwrap();
        let mut any = false;
        for m in metas {
            any |= m.text().await.unwrap().contains("小清河");
        }
        assert!(any, "the cards found are on 小清河");
        // The board filters by department, chosen by name among the district's departments.
        let departments = client
            .execute(
                "return [...document.querySelectorAll('#filters select[name=assignee] option')].map((o) => o.textContent);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            departments,
            json!([
                "全部",
                "区农业农村局",
                "区水务局",
                "区环卫管护服务中心",
                "区自然资源局"
            ])
        );
        client
            .goto(&format!("{}/#/board?assignee=区环卫管护服务中心", s.base))
            .await
            .unwrap();
        wait_for(
            &client,
            "#filters select[name=assignee] option[value='区环卫管护服务中心'][selected]",
        )
        .await;
        let handled = client
            .execute(
                "return [...document.querySelectorAll('.card .meta')].map((m) => m.textContent).filter((t) => t.startsWith('承办'));",
                vec![],
            )
            .await
            .unwrap();
        let handled = handled.as_array().unwrap();
        assert!(
            !handled.is_empty()
                && handled
                    .iter()
                    .all(|t| t.as_str().unwrap().contains("区环卫管护服务中心")),
            "the board shows 区环卫管护服务中心's issues only: {handled:?}"
        );

        // The issue page: names, photos and thumbnails, the pairing with its distance, a small map.
        let t = open(
            &client,
            &format!("{}/#/issue/{issue}", s.base),
            "#pairs .distance[data-distance]",
        )
        .await;
        timings.push((page("issue"), t));
        wait_for(&client, "#issue-map path.issue").await;
        wait_for(&client, "#pairs img.thumb[src^='blob:']").await;
        let distance = client
            .find(Locator::Css("#pairs .distance"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            distance.contains("相距") && distance.contains('米'),
            "{distance}"
        );
        assert!(images_loaded(&client, "#pairs img").await >= 2);
        // A thumbnail opens the full photo.
        client
            .find(Locator::Css("#pairs img.thumb"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&client, "#pairs img.full").await;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        images_loaded(&client, "#pairs img").await;
        check_page(&client, &out, &page("issue"), &keys).await;

        // The map: named layers, zoom, and an issue's popup that opens the issue.
        let t = open(&client, &format!("{}/#/map", s.base), "#map path.issue").await;
        timings.push((page("map"), t));
        wait_for(&client, "#map path.river").await;
        wait_for(&client, "#map path.track").await;
        // Each subdistrict is outlined around its rivers, forests and fields (the reference
        // data has no boundaries), not boxed: a hull, not four corners.
        let corners = client
            .execute(
                "return [...document.querySelectorAll('#map path.division')]
                   .map((p) => (p.getAttribute('d').match(/[ML]/g) || []).length);",
                vec![],
            )
            .await
            .unwrap();
        let corners: Vec<u64> = serde_json::from_value(corners).unwrap();
        assert!(corners.len() >= 8, "subdistrict outlines: {corners:?}");
        assert!(
            corners.iter().filter(|&&n| n > 4).count() * 2 > corners.len(),
            "most subdistrict outlines follow their assets, not a box: {corners:?}"
        );
        check_page(&client, &out, &page("map"), &keys).await;
        let zoom = || async {
            client
                .execute("return window.deskMap.getZoom();", vec![])
                .await
                .unwrap()
                .as_f64()
                .unwrap()
        };
        let before = zoom().await;
        client
            .find(Locator::Css(".leaflet-control-zoom-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        actix_web::rt::time::sleep(Duration::from_millis(600)).await;
        assert!(zoom().await > before, "the map zoomed in from {before}");
        client
            .execute(
                "const m = document.querySelector(\"#map path.issue[data-issue='\" + arguments[0] + \"']\");
                 window.deskMap.setView(window.deskMap.getCenter(), window.deskMap.getZoom(), { animate: false });
                 m.dispatchEvent(new MouseEvent('click', { bubbles: true, clientX: 1, clientY: 1 }));",
                vec![json!(issue)],
            )
            .await
            .unwrap();
        let link = wait_for(
            &client,
            &format!(".leaflet-popup a.popup-link[data-issue='{issue}']"),
        )
        .await;
        // Past the popup's fade-in.
        actix_web::rt::time::sleep(Duration::from_millis(400)).await;
        std::fs::write(
            out.join(format!("{size}-map-popup.png")),
            client.screenshot().await.unwrap(),
        )
        .unwrap();
        link.click().await.unwrap();
        wait_for(&client, "#issue-status[data-status='closed']").await;
        assert!(client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(&issue));

        // Patrols: names and validity in Chinese with their numbers.
        let t = open(
            &client,
            &format!("{}/#/patrols", s.base),
            "#patrols tbody tr",
        )
        .await;
        timings.push((page("patrols"), t));
        check_page(&client, &out, &page("patrols"), &keys).await;
        let t = open(
            &client,
            &format!("{}/#/patrol/{invalid}", s.base),
            "#patrol-map path.river",
        )
        .await;
        timings.push((page("patrol"), t));
        let flags = wait_for(&client, "#view ul.warnings")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            flags.contains("分钟"),
            "the short patrol says by how much: {flags}"
        );
        check_page(&client, &out, &page("patrol"), &keys).await;

        let t = open(&client, &format!("{}/#/reminders", s.base), "#view h1").await;
        timings.push((page("reminders"), t));
        check_page(&client, &out, &page("reminders"), &keys).await;

        // The report opens on this month, or in a month's first week (too little to report)
        // on the last complete month, and says which.
        client.goto(&format!("{}/report", s.base)).await.unwrap();
        wait_for(&client, "#out .figure").await;
        let shown = client
            .execute(
                "const f = document.getElementById('period').elements;
                 return [f.from.value, f.to.value, document.getElementById('period-note').textContent];",
                vec![],
            )
            .await
            .unwrap();
        let now = now_ms();
        let day: i64 = today[8..].parse().unwrap();
        let (from, to, says) = if day <= 7 {
            let last = server::stats::query::day_string(now - day * 86_400_000);
            (format!("{}-01", &last[..7]), last, "刚开始，默认显示上月")
        } else {
            (month_start.clone(), today.clone(), "截至今天")
        };
        assert_eq!(shown[0], from.as_str(), "{shown}");
        assert_eq!(shown[1], to.as_str(), "{shown}");
        assert!(shown[2].as_str().unwrap().contains(says), "{shown}");

        // This month's report has patrols.
        let t = open(
            &client,
            &format!("{}/report?from={month_start}&to={today}", s.base),
            "#out .figure",
        )
        .await;
        timings.push((page("report"), t));
        let figures = client
            .find(Locator::Css("#out .figures"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let valid: u64 = figures
            .split("有效巡查")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no patrol figure in {figures}"));
        assert!(valid > 0, "this month's report has patrols: {figures}");
        // Every issue the report counts appears once among the sources (patrol, public,
        // hotline, letter) of the section on sources and the public's satisfaction.
        let reported: u64 = figures
            .split("上报问题")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no issue figure in {figures}"));
        let sources = client
            .execute(
                "const h = [...document.querySelectorAll('#out h2')].find((e) => e.textContent.includes('群众满意度'));
                 return h ? h.nextElementSibling.textContent : null;",
                vec![],
            )
            .await
            .unwrap();
        let sources = sources
            .as_str()
            .expect("the report has a section on satisfaction");
        let by_source: u64 = ["巡查发现", "群众扫码举报", "12369热线", "信访"]
            .iter()
            .map(|k| {
                sources
                    .split(k)
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no {k} in {sources}"))
            })
            .sum();
        assert_eq!(by_source, reported, "{sources} / {figures}");
        assert!(reported > 0, "{figures}");
        check_page(&client, &out, &page("report"), &keys).await;
        if size == "desktop" {
            print_report(&client, &out).await;
        }
    }
    for (page, t) in &timings {
        eprintln!("{page}: {} ms", t.as_millis());
    }
    client.close().await.unwrap();
    drop(driver);
    s.stop().await;
}

/// Prints the report page through Chromium's PDF output and turns the PDF into page images
/// (poppler's pdftoppm, installed by `.ci/run`); the printed text has the report and none of
/// the page's controls.
async fn print_report(client: &Client, out: &std::path::Path) {
    let pdf = client
        .print(fantoccini::wd::PrintConfiguration::default())
        .await
        .expect("Chromium prints the report");
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let file = out.join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let tool = |name: &str| Command::new(name).arg("-v").output().is_ok();
    if !tool("pdftoppm") || !tool("pdftotext") {
        if std::env::var_os("CI").is_some() {
            panic!("pdftoppm is missing under CI; .ci/run installs poppler-utils");
        }
        eprintln!("SKIPPED the printed report's page images: poppler-utils not installed");
        return;
    }
    let pages = Command::new("pdftoppm")
        .args(["-r", "50", "-png"])
        .arg(&file)
        .arg(out.join("report-print"))
        .status()
        .unwrap();
    assert!(pages.success());
    let images = std::fs::read_dir(out)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("report-print"))
        .count();
    assert!(images >= 1, "the report prints on at least one page");
    let text = Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("工作月报") && text.contains("巡查考核"),
        "{text}"
    );
    for control in ["生成月报", "返回工作台", "打印"] {
        assert!(
            !text.contains(control),
            "the printed report shows the control {control}"
        );
    }
}
