//! The administration pages in a real browser (headless Debian chromium over WebDriver): the
//! demo administrator signs in at `/admin`, downloads the roster template, imports a roster of
//! 300 chiefs generated from the demo's divisions and assets and a GeoJSON of new river
//! segments in GCJ-02 (each dry run shown, then applied), sees the segments on the map and the
//! people in the list, and moves one imported chief to another division. That chief's phone —
//! signed in with the setup code the page printed — receives the new division's problems at
//! its next sync. Screenshots at desktop and phone sizes go to `target/tmp/dashboard/admin-*.png`.
//!
//! Needs `chromedriver` (Debian `chromium-driver`); without it the test says so and passes
//! locally, and fails under CI (`CI` set).

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use server::demo::ADMIN;
use server::state::now_ms;
use sync_core::import::coords::wgs84_to_gcj02;
use sync_core::import::roster::{level_name, COLUMNS};
use sync_core::model::{DivisionCode, System};

use crate::harness::TestServer;
use crate::phone::Phone;

const ROSTER_SIZE: usize = 300;

use crate::dashboard::{chromedriver, start_driver, wait_for};

/// A headless browser at the desk's desktop size (1280 × 800).
async fn browser(driver: &crate::dashboard::Driver) -> Client {
    let client = crate::dashboard::browser(driver).await;
    client.set_window_size(1280, 800).await.unwrap();
    client
}

async fn text(client: &Client, css: &str) -> String {
    wait_for(client, css).await.text().await.unwrap()
}

async fn shot(client: &Client, name: &str) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(format!("admin-{name}.png"));
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot: {}", path.display());
}

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗",
];
const GIVEN: [&str; 15] = [
    "建国", "海燕", "志强", "秀英", "伟", "敏", "晓东", "丽华", "春生", "玉兰", "国庆", "文博",
    "雪梅", "立新", "桂芳",
];

/// A roster of `ROSTER_SIZE` chiefs over the demo's divisions and assets, in the template's
/// columns, with `first` as its first row.
fn generated_roster(header: &[String], first: [&str; 7]) -> Vec<u8> {
    let facts = server::demo::facts();
    let systems = [System::River, System::Forest, System::Field];
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).unwrap();
    w.write_record(first).unwrap();
    for i in 1..ROSTER_SIZE {
        let d = &facts.divisions[i % facts.divisions.len()];
        let system = systems[(i / facts.divisions.len()) % 3];
        let inside: Vec<&str> = facts
            .assets
            .iter()
            .filter(|a| a.system == system && d.code.contains(&a.division))
            .map(|a| a.name.as_str())
            .collect();
        let assets = if inside.is_empty() {
            String::new()
        } else {
            inside[i % inside.len()].to_owned()
        };
        let post = match d.code.level() {
            sync_core::model::Level::District => "区人民政府副区长",
            sync_core::model::Level::Subdistrict => "街道党工委书记",
            sync_core::model::Level::Village => "村党支部书记",
        };
        let name = format!("{}{}", SURNAMES[i % 20], GIVEN[(i / 20) % 15]);
        w.write_record([
            name.as_str(),
            post,
            level_name(d.code.level()),
            system.chief_title(),
            d.name.as_str(),
            assets.as_str(),
            &format!("139{:08}", 1000 + i),
        ])
        .unwrap();
    }
    w.into_inner().unwrap()
}

#[actix_web::test]
async fn an_office_sets_up_its_district_from_files_in_the_browser() {
    let Some(binary) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing under CI; .ci/run installs chromium-driver");
        }
        eprintln!("SKIPPED admin browser test: chromedriver not found on PATH");
        return;
    };
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "admin-api").await;

    // Where the moved chief will go: the division of a demo river problem. Where they start: a
    // village without river problems.
    let issues = s
        .get("/api/v1/issues?limit=200", &admin)
        .await
        .expect_ok()
        .clone();
    let rivers: Vec<&Value> = issues["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["system"] == "river")
        .collect();
    let problem = rivers[0];
    let target = DivisionCode::new(problem["division"].as_str().unwrap()).unwrap();
    let facts = server::demo::facts();
    let start = facts
        .divisions
        .iter()
        .find(|d| {
            d.code.level() == sync_core::model::Level::Village
                && !rivers.iter().any(|i| {
                    d.code
                        .contains(&DivisionCode::new(i["division"].as_str().unwrap()).unwrap())
                })
        })
        .expect("a village without river problems");
    let tmp = tempfile::tempdir().unwrap();

    let driver = start_driver(&binary).await;
    let client = browser(&driver).await;
    crate::dashboard::sign_in(&client, &format!("{}/admin", s.base), ADMIN).await;
    wait_for(&client, "#people-table tbody tr").await;

    // The template, downloaded from the page, has the seven Chinese titles.
    client
        .goto(&format!("{}/admin#/import", s.base))
        .await
        .unwrap();
    wait_for(&client, "#download-template")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&client, "a#last-download").await;
    let bytes = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             lastDownload.arrayBuffer().then(b => done(Array.from(new Uint8Array(b))));",
            vec![],
        )
        .await
        .unwrap();
    let template: Vec<u8> = serde_json::from_value(bytes).unwrap();
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(template)).unwrap();
    let header: Vec<String> = book
        .worksheet_range_at(0)
        .unwrap()
        .unwrap()
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header, COLUMNS);

    // A roster of 300 chiefs: dry run shown, then applied.
    let moved_phone = "13900000001";
    let roster = generated_roster(
        &header,
        [
            "韩晓河",
            "村党支部书记",
            "村级",
            "河长",
            &start.name,
            "",
            moved_phone,
        ],
    );
    let roster_path = tmp.path().join("河长名录.csv");
    std::fs::write(&roster_path, roster).unwrap();
    client
        .find(Locator::Css("#roster-file"))
        .await
        .unwrap()
        .send_keys(roster_path.to_str().unwrap())
        .await
        .unwrap();
    client
        .find(Locator::Css("#roster-dry-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#roster-plan").await;
    assert_eq!(
        text(&client, "#roster-plan .summary [data-kind='create']").await,
        format!("新增 {ROSTER_SIZE}")
    );
    assert_eq!(
        text(&client, "#roster-plan .summary [data-kind='refused']").await,
        "拒绝 0"
    );
    let planned = client
        .find_all(Locator::Css("#roster-plan tr[data-outcome='create']"))
        .await
        .unwrap();
    assert_eq!(planned.len(), ROSTER_SIZE);
    assert!(
        s.state
            .store
            .find_user_by_username(moved_phone)
            .unwrap()
            .is_none(),
        "a dry run stores nothing"
    );
    shot(&client, "roster-dry-run").await;
    // The demo's river chiefs this roster leaves out are listed, kept unless the office ticks
    // the box to deactivate them.
    let missing = wait_for(&client, "#roster-missing").await;
    let listed = missing.text().await.unwrap();
    assert!(
        listed.contains("不在本名录中") && listed.contains("保留"),
        "{listed}"
    );
    client
        .execute(
            "document.getElementById('roster-missing').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, "roster-missing").await;
    client.set_window_size(390, 844).await.unwrap();
    client
        .execute(
            "document.getElementById('roster-missing').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, "roster-missing-phone").await;
    client.set_window_size(1280, 800).await.unwrap();
    client
        .find(Locator::Css("#roster-apply"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#roster-plan[data-applied]").await;
    let code = wait_for(
        &client,
        &format!("#codes tr[data-username='{moved_phone}']"),
    )
    .await
    .attr("data-code")
    .await
    .unwrap()
    .expect("a setup code for the new chief");
    let second_phone = "13900001001";
    let second_code = wait_for(
        &client,
        &format!("#codes tr[data-username='{second_phone}']"),
    )
    .await
    .attr("data-code")
    .await
    .unwrap()
    .expect("a setup code for the second chief");
    let codes = client
        .find_all(Locator::Css("#codes tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        codes.len(),
        ROSTER_SIZE,
        "one printed setup code per imported person"
    );
    shot(&client, "setup-codes").await;

    // New river segments as GeoJSON in GCJ-02: dry run, then applied.
    let subdistricts: Vec<_> = facts
        .divisions
        .iter()
        .filter(|d| d.code.level() == sync_core::model::Level::Subdistrict)
        .collect();
    let features: Vec<Value> = (0..12)
        .map(|i| {
            let (lon, lat) = (
                116.95 + 0.008 * f64::from(i),
                36.70 + 0.01 * f64::from(i % 6),
            );
            let line: Vec<[f64; 2]> = [
                [lon, lat],
                [lon + 0.004, lat + 0.003],
                [lon + 0.009, lat + 0.004],
            ]
            .iter()
            .map(|p| wgs84_to_gcj02(*p))
            .collect();
            json!({"type": "Feature",
                   "properties": {"名称": format!("新建排涝河道第{}段", i + 1), "体系": "河长",
                                  "行政区划": subdistricts[i as usize % subdistricts.len()].name},
                   "geometry": {"type": "LineString", "coordinates": line}})
        })
        .collect();
    let geojson_path = tmp.path().join("河段.geojson");
    std::fs::write(
        &geojson_path,
        serde_json::to_vec(&json!({"type": "FeatureCollection", "features": features})).unwrap(),
    )
    .unwrap();
    client
        .find(Locator::Css("#assets-file"))
        .await
        .unwrap()
        .send_keys(geojson_path.to_str().unwrap())
        .await
        .unwrap();
    client
        .find(Locator::Css("#assets-crs"))
        .await
        .unwrap()
        .select_by_value("gcj02")
        .await
        .unwrap();
    client
        .find(Locator::Css("#assets-dry-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#assets-plan").await;
    assert_eq!(
        text(&client, "#assets-plan .summary [data-kind='create']").await,
        "新增 12"
    );
    shot(&client, "assets-dry-run").await;
    client
        .find(Locator::Css("#assets-apply"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#assets-plan[data-applied]").await;

    // The segments are on the map, drawn from their geometry.
    let assets = s
        .get("/api/v1/admin/assets", &admin)
        .await
        .expect_ok()
        .clone();
    let new_ids: Vec<String> = assets
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("新建排涝河道"))
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new_ids.len(), 12);
    client
        .goto(&format!("{}/admin#/map", s.base))
        .await
        .unwrap();
    for id in &new_ids {
        wait_for(
            &client,
            &format!("svg#asset-map polyline.river[data-asset='{id}']"),
        )
        .await;
    }
    let tracks = client
        .find_all(Locator::Css("svg#asset-map polyline.track"))
        .await
        .unwrap();
    assert!(
        !tracks.is_empty(),
        "the district's patrol tracks are drawn under the assets"
    );
    shot(&client, "map").await;

    // The chief signs in on a phone with the printed code; their village has no river problem.
    let grant = s
        .request("POST", "/api/v1/auth/setup", None,
            Some(json!({"username": moved_phone, "code": code, "password": "hanxiaohe-2026", "device_id": "han-phone"})))
        .await
        .expect_ok()
        .clone();
    let phone = Phone::with_grant(&s, &grant, "han-phone");
    phone.sync(now_ms()).await;
    let problem_id = problem["id"].as_str().unwrap();
    assert!(
        phone.issue(problem_id).is_none(),
        "outside the chief's first jurisdiction"
    );

    // In the people list, the office moves the chief to the problem's division.
    client
        .goto(&format!("{}/admin#/people", s.base))
        .await
        .unwrap();
    wait_for(&client, "#people-table tbody tr").await;
    let rows = client
        .find_all(Locator::Css("#people-table tbody tr"))
        .await
        .unwrap();
    assert!(
        rows.len() >= ROSTER_SIZE + facts.people.len(),
        "{} people listed",
        rows.len()
    );
    wait_for(&client, "#people-filter")
        .await
        .send_keys("韩晓河")
        .await
        .unwrap();
    let row = wait_for(
        &client,
        &format!("#people-table tr[data-username='{moved_phone}']"),
    )
    .await;
    assert_eq!(
        row.find(Locator::Css(".division"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        start.name
    );
    row.find(Locator::Css("button.edit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#edit-level")
        .await
        .select_by_value(target.level().as_str())
        .await
        .unwrap();
    wait_for(&client, &format!("#edit-division option[value='{target}']")).await;
    client
        .find(Locator::Css("#edit-division"))
        .await
        .unwrap()
        .select_by_value(target.as_str())
        .await
        .unwrap();
    // One of the division's river segments picked on the map ticks it in the list.
    let picked = wait_for(&client, "#edit-asset-map [data-asset]")
        .await
        .attr("data-asset")
        .await
        .unwrap()
        .unwrap();
    let box_css = format!("#edit-assets input[data-asset='{picked}']");
    assert!(!client
        .find(Locator::Css(&box_css))
        .await
        .unwrap()
        .is_selected()
        .await
        .unwrap());
    client
        .execute(
            "document.querySelector(\"#edit-asset-map [data-asset='\" + arguments[0] + \"']\")
               .dispatchEvent(new MouseEvent('click', { bubbles: true }));",
            vec![json!(picked)],
        )
        .await
        .unwrap();
    assert!(client
        .find(Locator::Css(&box_css))
        .await
        .unwrap()
        .is_selected()
        .await
        .unwrap());
    wait_for(
        &client,
        &format!("#edit-asset-map .chosen[data-asset='{picked}']"),
    )
    .await;
    client
        .execute(
            "document.getElementById('edit-asset-map').scrollIntoView({ block: 'center' })",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, "edit-pick-map").await;
    client.set_window_size(390, 844).await.unwrap();
    client
        .execute(
            "document.getElementById('edit-asset-map').scrollIntoView({ block: 'center' })",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, "edit-pick-map-phone").await;
    client.set_window_size(1280, 800).await.unwrap();
    client
        .find(Locator::Css("#edit-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#edit-result[data-saved]").await;
    let target_name = facts
        .divisions
        .iter()
        .find(|d| d.code == target)
        .unwrap()
        .name
        .clone();
    // The people list is drawn again after the save: wait for the row to show the new post.
    let mut shown = String::new();
    for _ in 0..100 {
        shown = text(
            &client,
            &format!("#people-table tr[data-username='{moved_phone}'] .division"),
        )
        .await;
        if shown.ends_with(&target_name) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown.ends_with(&target_name), "{shown}");
    let saved = s
        .state
        .store
        .find_user_by_username(moved_phone)
        .unwrap()
        .unwrap();
    let sync_core::model::Role::Chief { jurisdiction, .. } = &saved.user.role else {
        panic!("{:?}", saved.user.role);
    };
    assert_eq!(
        jurisdiction.assets,
        vec![picked.clone()],
        "the asset picked on the map"
    );
    shot(&client, "people").await;

    // The phone receives the new scope at its next sync.
    phone.sync(now_ms()).await;
    let received = phone
        .issue(problem_id)
        .expect("the new division's problem reached the chief's phone");
    assert_eq!(received.view().unwrap().division.as_str(), target.as_str());

    // The change is in the audit, with before and after.
    client
        .goto(&format!("{}/admin#/audit", s.base))
        .await
        .unwrap();
    let entry = wait_for(&client, "#audit tr[data-action='user_update']")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        entry.contains("韩晓河") && entry.contains(&target_name),
        "{entry}"
    );
    shot(&client, "audit").await;

    // One patrol rule edited in the rules tab: the default minimum time, saved after its
    // preview, is the rule the server holds and is audited.
    client
        .goto(&format!("{}/admin#/rules", s.base))
        .await
        .unwrap();
    let minutes = wait_for(
        &client,
        "#rules-editor label[data-field='min_minutes'] input",
    )
    .await;
    minutes.clear().await.unwrap();
    minutes.send_keys("9").await.unwrap();
    client
        .find(Locator::Css("#rules-preview-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let preview = text(&client, "#rules-preview").await;
    assert!(
        preview.contains("最短时长") && preview.contains("→ 9"),
        "{preview}"
    );
    shot(&client, "rules").await;
    client
        .find(Locator::Css("#rules-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#rules-result.ok").await;
    client
        .find(Locator::XPath("//button[text()='新增特别规则']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#rule-overrides fieldset select").await;
    client
        .execute(
            "document.querySelector('#rule-overrides').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, "rules-override").await;
    client
        .execute(
            "document.querySelector('#catalogue-editor').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, "rules-categories").await;
    let rules = s
        .get("/api/v1/admin/rules", &admin)
        .await
        .expect_ok()
        .clone();
    assert_eq!(rules["default"]["min_minutes"], 9.0, "{rules}");
    client
        .goto(&format!("{}/admin#/audit", s.base))
        .await
        .unwrap();
    let entry = text(&client, "#audit tr[data-action='rules_change']").await;
    assert!(
        entry.contains("最短时长") && entry.contains("→ 9"),
        "{entry}"
    );

    // Phone size.
    client.set_window_size(390, 844).await.unwrap();
    client
        .goto(&format!("{}/admin#/people", s.base))
        .await
        .unwrap();
    wait_for(&client, "#people-table tbody tr").await;
    shot(&client, "people-phone").await;
    client
        .goto(&format!("{}/admin#/map", s.base))
        .await
        .unwrap();
    wait_for(&client, "svg#asset-map polyline").await;
    shot(&client, "map-phone").await;
    client
        .goto(&format!("{}/admin#/import", s.base))
        .await
        .unwrap();
    wait_for(&client, "#download-template").await;
    shot(&client, "import-phone").await;
    client
        .goto(&format!("{}/admin#/rules", s.base))
        .await
        .unwrap();
    wait_for(&client, "#quotas tbody tr").await;
    shot(&client, "rules-phone").await;
    client.set_window_size(1280, 800).await.unwrap();
    client
        .goto(&format!("{}/admin#/divisions", s.base))
        .await
        .unwrap();
    wait_for(
        &client,
        &format!("#division-tree li[data-division='{}']", start.code),
    )
    .await;
    shot(&client, "divisions").await;

    // Another imported chief chooses a password at first sign-in on the desk.
    client
        .find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#setup summary")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&client, "#setup-username")
        .await
        .send_keys(second_phone)
        .await
        .unwrap();
    client
        .find(Locator::Css("#setup-code"))
        .await
        .unwrap()
        .send_keys(&second_code)
        .await
        .unwrap();
    client
        .find(Locator::Css("#setup-password"))
        .await
        .unwrap()
        .send_keys("lijianguo-2026")
        .await
        .unwrap();
    client
        .find(Locator::Css("#setup-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#setup-result[data-done]").await;
    s.login_reply(second_phone, "lijianguo-2026", "li-phone")
        .await
        .expect_ok();
    client.close().await.unwrap();
    drop(driver);
    s.stop().await;
}

/// Clicks at fractions of the asset map's box, as a person clicking there would (the page's own
/// click handler turns each into a position).
async fn click_map(client: &Client, at: &[(f64, f64)]) {
    let at: Vec<Value> = at.iter().map(|(x, y)| json!([x, y])).collect();
    client
        .execute(
            "const map = document.querySelector('svg#asset-map');
             const r = map.getBoundingClientRect();
             for (const [fx, fy] of arguments[0]) {
               map.dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true,
                 clientX: r.left + fx * r.width, clientY: r.top + fy * r.height }));
             }",
            vec![json!(at)],
        )
        .await
        .unwrap();
}

/// A stored asset, by name, from the API.
async fn asset_named(s: &TestServer, admin: &str, name: &str) -> Option<Value> {
    s.get("/api/v1/admin/assets", admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

#[actix_web::test]
async fn an_office_draws_assets_on_the_map_and_starts_a_stopped_chief_again() {
    let Some(binary) = chromedriver() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromedriver is missing under CI; .ci/run installs chromium-driver");
        }
        eprintln!("SKIPPED admin browser test: chromedriver not found on PATH");
        return;
    };
    let s = TestServer::demo().await;
    let admin = s.token(ADMIN, "admin-api").await;
    let facts = server::demo::facts();
    let assets_before = s
        .get("/api/v1/admin/assets", &admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
        .len();
    // Every demo position, to check drawn points land inside the map's extent.
    let (mut lons, mut lats) = (Vec::new(), Vec::new());
    for a in s
        .get("/api/v1/admin/assets", &admin)
        .await
        .expect_ok()
        .as_array()
        .unwrap()
    {
        let g = &a["geometry"];
        let points: Vec<&Value> = if g["type"] == "LineString" {
            g["coordinates"].as_array().unwrap().iter().collect()
        } else {
            g["coordinates"][0].as_array().unwrap().iter().collect()
        };
        for p in points {
            lons.push(p[0].as_f64().unwrap());
            lats.push(p[1].as_f64().unwrap());
        }
    }
    let within = |p: &Value| {
        let (lon, lat) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
        let pad = 0.05;
        lons.iter().cloned().fold(f64::MAX, f64::min) - pad <= lon
            && lon <= lons.iter().cloned().fold(f64::MIN, f64::max) + pad
            && lats.iter().cloned().fold(f64::MAX, f64::min) - pad <= lat
            && lat <= lats.iter().cloned().fold(f64::MIN, f64::max) + pad
    };
    let division = facts
        .divisions
        .iter()
        .find(|d| d.code.level() == sync_core::model::Level::Subdistrict)
        .unwrap()
        .clone();

    let driver = start_driver(&binary).await;
    let client = browser(&driver).await;
    crate::dashboard::sign_in(&client, &format!("{}/admin", s.base), ADMIN).await;
    wait_for(&client, "#people-table tbody tr").await;
    client
        .goto(&format!("{}/admin#/map", s.base))
        .await
        .unwrap();
    wait_for(&client, "#draw-start").await;

    // A river segment: three clicks, west to east with a dip in the middle.
    wait_for(&client, "#draw-name")
        .await
        .send_keys("绘制的小河段")
        .await
        .unwrap();
    client
        .find(Locator::Css(&format!(
            "#draw-division option[value='{}']",
            division.code
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .find(Locator::Css("#draw-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_map(&client, &[(0.40, 0.40), (0.50, 0.50), (0.60, 0.40)]).await;
    assert!(text(&client, "#draw-count").await.contains('3'));
    shot(&client, "draw").await;
    client
        .find(Locator::Css("#draw-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let said = text(
        &client,
        "#draw-result[data-saved], #draw-result[data-failed]",
    )
    .await;
    assert!(said.contains("已保存：绘制的小河段"), "{said}");
    wait_for(&client, "svg#asset-map [data-asset^='drawn-']").await;
    let river = asset_named(&s, &admin, "绘制的小河段")
        .await
        .expect("the drawn segment is stored");
    assert_eq!(river["system"], "river");
    assert_eq!(river["division"], division.code.as_str());
    assert_eq!(river["geometry"]["type"], "LineString");
    let line = river["geometry"]["coordinates"].as_array().unwrap();
    assert_eq!(line.len(), 3, "{river}");
    assert!(
        line.iter().all(within),
        "drawn inside the district: {river}"
    );
    let at = |i: usize, k: usize| line[i][k].as_f64().unwrap();
    // East along the clicks; the middle click is south of the others (a lower latitude).
    assert!(at(0, 0) < at(1, 0) && at(1, 0) < at(2, 0), "{river}");
    assert!(
        at(1, 1) < at(0, 1) && (at(0, 1) - at(2, 1)).abs() < 1e-6,
        "{river}"
    );

    // A forest area: three corners make a closed ring.
    wait_for(&client, "#draw-start").await;
    client
        .find(Locator::Css("#draw-system option[value='forest']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .find(Locator::Css("#draw-name"))
        .await
        .unwrap()
        .send_keys("绘制的小林区")
        .await
        .unwrap();
    client
        .find(Locator::Css(&format!(
            "#draw-division option[value='{}']",
            division.code
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .find(Locator::Css("#draw-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Two clicks are not an area: refused on the page, nothing stored.
    click_map(&client, &[(0.30, 0.60), (0.40, 0.70)]).await;
    client
        .find(Locator::Css("#draw-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(&client, "#draw-result")
        .await
        .contains("至少点 3 个点"));
    click_map(&client, &[(0.30, 0.70)]).await;
    client
        .find(Locator::Css("#draw-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let said = text(
        &client,
        "#draw-result[data-saved], #draw-result[data-failed]",
    )
    .await;
    assert!(said.contains("已保存：绘制的小林区"), "{said}");
    wait_for(
        &client,
        "svg#asset-map polygon.forest[data-asset^='drawn-']",
    )
    .await;
    let forest = asset_named(&s, &admin, "绘制的小林区")
        .await
        .expect("the drawn area is stored");
    assert_eq!(forest["geometry"]["type"], "Polygon");
    let ring = forest["geometry"]["coordinates"][0].as_array().unwrap();
    assert_eq!(ring.len(), 4, "{forest}");
    assert_eq!(ring[0], ring[3], "closed: {forest}");
    assert!(ring.iter().all(within), "{forest}");
    assert_eq!(
        s.get("/api/v1/admin/assets", &admin)
            .await
            .expect_ok()
            .as_array()
            .unwrap()
            .len(),
        assets_before + 2
    );
    // Both are audited as the administrator's.
    let audit = s
        .get("/api/v1/admin/audit", &admin)
        .await
        .expect_ok()
        .clone();
    for name in ["绘制的小河段", "绘制的小林区"] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "asset_create"
                    && e["target"] == name
                    && e["after"]["geometry"].is_object()),
            "{name} audited"
        );
    }
    client.set_window_size(390, 844).await.unwrap();
    client
        .goto(&format!("{}/admin#/map", s.base))
        .await
        .unwrap();
    wait_for(&client, "#draw-start").await;
    client
        .execute("document.querySelector('#draw').scrollIntoView()", vec![])
        .await
        .unwrap();
    shot(&client, "draw-phone").await;
    client.set_window_size(1280, 800).await.unwrap();

    // A stopped chief is started again from the people editor.
    let stopped = facts.user(server::demo::CHIEF_2).unwrap().clone();
    s.post(
        &format!("/api/v1/admin/users/{}/deactivate", stopped.id),
        &admin,
        json!({}),
    )
    .await
    .expect_ok();
    client
        .goto(&format!("{}/admin#/people", s.base))
        .await
        .unwrap();
    let row = format!("#people-table tr[data-user='{}']", stopped.id);
    assert!(text(&client, &row).await.contains("已停用"));
    wait_for(&client, &format!("{row} button.edit"))
        .await
        .click()
        .await
        .unwrap();
    // A chief's form shows what a chief has, not a department.
    wait_for(&client, "#edit-level").await;
    for (field, shown) in [("#edit-level", true), ("#edit-department", false)] {
        let displayed = client
            .find(Locator::Css(field))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap();
        assert_eq!(displayed, shown, "{field}");
    }
    wait_for(&client, "#edit-activate")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&client, "#edit-result[data-activated]").await;
    shot(&client, "activate").await;
    let record = s
        .get(&format!("/api/v1/admin/users/{}", stopped.id), &admin)
        .await
        .expect_ok()
        .clone();
    assert_eq!(record["user"]["active"], true, "{record}");
    assert!(!text(&client, &row).await.contains("已停用"));
    client.close().await.unwrap();
    drop(driver);
    s.stop().await;
}
