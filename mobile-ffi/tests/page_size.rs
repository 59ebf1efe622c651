//! The phone names the most it wants in an answer (`x-chiefsync-answer-bytes`): a new phone,
//! which has measured nothing of its link, asks for a first page a field link carries within
//! its request timeout (`sync_core::client::LinkRate`), and measures its link anew at every
//! sync. Seen on the wire, through a relay between the phone and a real demo server.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mobile_ffi::{ClientConfig, FieldClient};
use sync_core::client::FIRST_ASKED_BYTES;
use sync_core::protocol::ANSWER_BYTES_HEADER;

/// Forwards every connection to `upstream` unchanged and keeps what the phone sent.
fn relay(upstream: &str) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let target = upstream.trim_start_matches("http://").to_owned();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let kept = sent.clone();
    std::thread::spawn(move || {
        for phone in listener.incoming() {
            let Ok(mut phone) = phone else { continue };
            let mut server = TcpStream::connect(&target).unwrap();
            let (mut from_server, mut to_phone) =
                (server.try_clone().unwrap(), phone.try_clone().unwrap());
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = phone.read(&mut buf) {
                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_phone);
                let _ = to_phone.shutdown(Shutdown::Write);
            });
        }
    });
    (url, sent)
}

#[test]
fn a_new_phone_asks_for_a_first_page_a_field_link_carries() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let (url, sent) = relay(&base);
    let phone = FieldClient::open(ClientConfig::new(dir.path().join("phone"), url)).unwrap();
    phone.login("demo-chief".into(), "demo".into()).unwrap();
    let report = phone.sync().unwrap();
    assert_eq!(report.errors, Vec::<String>::new());
    let wire = String::from_utf8_lossy(&sent.lock().unwrap()).to_ascii_lowercase();
    let asked = format!("{ANSWER_BYTES_HEADER}: {FIRST_ASKED_BYTES}\r\n");
    assert!(
        wire.contains("post /api/v1/sync") && wire.contains(&asked),
        "no {asked:?} in what the phone sent"
    );
}

/// A phone that measured a fast link (here loopback) does not size its next sync's first page
/// by it: the next sync may be over a field link, where a page sized for Wi-Fi outlasts the
/// request timeout.
#[test]
fn a_phone_measures_its_link_anew_at_every_sync() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    // The chief's old phone records a long patrol: what their new phone's first sync brings
    // is large enough to be measured.
    let old = FieldClient::open(ClientConfig::new(dir.path().join("old"), base.clone())).unwrap();
    old.login("demo-chief".into(), "demo".into()).unwrap();
    let asset = old.me().unwrap().assets[0].clone();
    let (lat, lon) = common::spot(&asset);
    let patrol = old.start_patrol(asset).unwrap();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut jitter = 12_345u64;
    for i in 0..6_000u32 {
        jitter = jitter
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let wobble = (jitter >> 40) as f64 / f64::from(1u32 << 24) * 1e-4;
        old.add_track_point(
            patrol.clone(),
            lat + f64::from(i) * 1e-6 + wobble,
            lon + wobble,
            started_ms + i64::from(i) * 1_000,
            5.0,
            false,
            String::new(),
        )
        .unwrap();
    }
    old.finish_patrol(patrol, "巡河完毕".into()).unwrap();
    assert_eq!(old.sync().unwrap().errors, Vec::<String>::new());

    let (url, sent) = relay(&base);
    let phone = FieldClient::open(ClientConfig::new(dir.path().join("phone"), url)).unwrap();
    phone.login("demo-chief".into(), "demo".into()).unwrap();
    let first = phone.sync().unwrap();
    assert_eq!(first.errors, Vec::<String>::new());
    // Large enough to be measured: a phone that kept the rate would now ask for more.
    assert!(
        first.bytes_down >= 32 * 1024,
        "the first sync brought only {} bytes",
        first.bytes_down
    );
    sent.lock().unwrap().clear();
    phone.sync().unwrap();
    let wire = String::from_utf8_lossy(&sent.lock().unwrap()).to_ascii_lowercase();
    let header = format!("{ANSWER_BYTES_HEADER}: ");
    let asks: Vec<&str> = wire
        .match_indices(&header)
        .map(|(at, _)| wire[at + header.len()..].split("\r\n").next().unwrap())
        .collect();
    assert!(!asks.is_empty(), "the second sync sent no ask");
    assert_eq!(asks[0], FIRST_ASKED_BYTES.to_string(), "asks: {asks:?}");
}
