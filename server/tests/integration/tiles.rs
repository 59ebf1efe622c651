//! The local basemap (`--tiles`): tiles served from a PMTiles archive written here, at the
//! route the desk's maps use.

use std::io::Cursor;

use pmtiles::{PmTilesWriter, TileCoord, TileType};
use serde_json::Value;

use crate::harness::TestServer;

/// A small PNG of one colour, as a real basemap tile would be.
fn png(rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(256, 256, image::Rgb(rgb));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn fetch(s: &TestServer, path: &str) -> (u16, Option<String>, Vec<u8>) {
    let mut res = s
        .client
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.body().await.unwrap().to_vec();
    (res.status().as_u16(), kind, body)
}

#[actix_web::test]
async fn the_desk_map_draws_tiles_from_a_local_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("tianqiao.pmtiles");
    let (blue, green) = (png([40, 90, 200]), png([60, 160, 70]));
    let mut writer = PmTilesWriter::new(TileType::Png)
        .max_zoom(1)
        .create(std::fs::File::create(&archive).unwrap())
        .unwrap();
    writer
        .add_tile(TileCoord::new(0, 0, 0).unwrap(), &blue)
        .unwrap();
    writer
        .add_tile(TileCoord::new(1, 1, 0).unwrap(), &green)
        .unwrap();
    writer.finalize().unwrap();

    let path = archive.clone();
    let s = TestServer::demo_with(move |settings| settings.desk.tiles = Some(path.clone())).await;

    // The stored bytes, as PNG.
    let (status, kind, body) = fetch(&s, "/tiles/0/0/0").await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("image/png"));
    assert_eq!(body, blue);
    let (status, _, body) = fetch(&s, "/tiles/1/1/0").await;
    assert_eq!(status, 200);
    assert_eq!(body, green);

    // A tile the archive does not hold: nothing to draw there.
    let (status, _, body) = fetch(&s, "/tiles/1/0/1").await;
    assert_eq!(status, 204);
    assert!(body.is_empty());

    // Not a tile: 400 with the reason as JSON.
    for bad in [
        "/tiles/1/2/0",
        "/tiles/40/0/0",
        "/tiles/a/0/0",
        "/tiles/1/0/-1",
    ] {
        let (status, kind, body) = fetch(&s, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(kind.unwrap().starts_with("application/json"), "{bad}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }

    // The desk's map uses the route, and knows how deep the archive goes.
    let token = s.token(server::demo::SUPERVISOR, "desk").await;
    let desk = s.get("/api/v1/desk", &token).await.expect_ok().clone();
    assert_eq!(desk["map"]["tile_url"], "/tiles/{z}/{x}/{y}", "{desk}");
    assert_eq!(desk["map"]["max_native_zoom"], 1);

    // In a real browser the desk's map draws the archive's tile (enlarged past zoom 1) under
    // the district, with no failed request.
    if let Some(binary) = crate::dashboard::chromedriver() {
        let driver = crate::dashboard::start_driver(&binary).await;
        let client = crate::dashboard::browser(&driver).await;
        crate::dashboard::sign_in(&client, &format!("{}/", s.base), server::demo::SUPERVISOR).await;
        crate::dashboard::wait_for(&client, ".column .card").await;
        for (size, (w, h)) in [("desktop", (1280u32, 800u32)), ("phone", (390, 844))] {
            client.set_window_size(w, h).await.unwrap();
            client.goto(&format!("{}/#/map", s.base)).await.unwrap();
            let tile =
                crate::dashboard::wait_for(&client, "#map img.leaflet-tile.leaflet-tile-loaded")
                    .await;
            let src = tile.attr("src").await.unwrap().unwrap();
            assert!(src.contains("/tiles/1/1/0"), "{src}");
            let failed = client
                .execute(
                    "return performance.getEntriesByType('resource')
                       .filter((e) => e.name.includes('/tiles/') && e.responseStatus >= 400)
                       .map((e) => e.name);",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(failed, serde_json::json!([]), "{size}");
            let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            std::fs::write(
                out.join(format!("tiles-map-{size}.png")),
                client.screenshot().await.unwrap(),
            )
            .unwrap();
        }
        client.close().await.unwrap();
        drop(driver);
    } else {
        eprintln!("SKIPPED the browser part: chromedriver not found on PATH");
    }
    s.stop().await;

    // Without an archive the route says so; the desk has no basemap.
    let s = TestServer::demo().await;
    let (status, _, body) = fetch(&s, "/tiles/0/0/0").await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("--tiles"),
        "{body}"
    );
    let token = s.token(server::demo::SUPERVISOR, "desk").await;
    let desk = s.get("/api/v1/desk", &token).await.expect_ok().clone();
    assert!(desk["map"]["tile_url"].is_null(), "{desk}");
    s.stop().await;
}
