//! The field simulator end to end: a real server in this process (sled in a temporary
//! directory, HTTP on 127.0.0.1), the `fieldsim` program run against it as an operator would,
//! and its figures checked against what the server says: every phone converged, and the patrol
//! statistics show what the simulator expects, to the patrol: every fabricated patrol (sparse,
//! bouncing, backdated, dated at the end of time, spoofed) is invalid on the server for the reasons
//! the simulator predicts, and every honest one is judged as the phone judged it. Once with the
//! phone library's own recorder (fix by fix) and once with the simulator's minute-chunk recorder
//! the `server` bench uses.
//!
//! The simulated days lie before the run, but the phones are signed in (bound) when the run
//! starts; the server is told to accept times up to five days before a binding
//! (`settings.device_times`), as a deployment bringing in earlier work would. A walk backdated 60
//! days is still out of bounds.
//!
//! Then the same district against two server nodes on one PostgreSQL database (`--server
//! A,B --spread random`: every sync to a node drawn at random), when `CHIEFSYNC_TEST_POSTGRES`
//! names a PostgreSQL server (a user who may create databases); without it that test says
//! `skipped:` and passes.

use std::net::TcpListener;
use std::process::Command;

use serde_json::{json, Value};
use tests::phone::{get, login};
use tests::server::RunningServer;

#[test]
fn a_small_district_converges_and_the_statistics_match() {
    district(5, "fix");
}

#[test]
fn recorded_a_minute_at_a_time_the_statistics_match_too() {
    district(3, "chunk");
}

fn district(devices: usize, recorder: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = RunningServer::start(dir.path(), true);
    server
        .state()
        .store
        .put_meta(
            server::settings::DEVICE_TIMES_KEY,
            &serde_json::to_vec(&json!({"binding_grace_ms": 5 * 86_400_000i64})).unwrap(),
        )
        .expect("device time settings");
    let output = Command::new(env!("CARGO_BIN_EXE_fieldsim"))
        .args(["--server", &server.base])
        .args([
            "--devices",
            &devices.to_string(),
            "--days",
            "3",
            "--seed",
            "17",
        ])
        .args(["--concurrency", "4", "--interrupted", "0.5"])
        .args(["--fabricated", "0.6"])
        .args(["--recorder", recorder])
        .args(["--json", "--expect"])
        .output()
        .expect("run fieldsim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fieldsim failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");

    assert_eq!(run["lost"], 0, "{run}");
    assert_eq!(run["refusals"], 0, "{run}");
    assert_eq!(run["quarantined"], 0, "{run}");
    assert_eq!(run["devices"], devices);
    assert!(run["patrols"].as_u64().unwrap_or(0) > 0, "{run}");
    assert_eq!(run["round_trips"]["max"], 1.0, "{run}");
    assert_eq!(run["photos"]["waiting_at_end"], 0, "{run}");

    let expect = &run["expect"];
    let admin = login(&server.base, "demo-admin", "demo", "fieldsim-test");
    let token = admin["access_token"].as_str().expect("token");
    let path = format!(
        "/api/v1/stats/patrols?from={}&to={}",
        expect["from"].as_str().expect("from"),
        expect["to"].as_str().expect("to")
    );
    let stats = get(&server.base, token, &path);
    if stats.status == 404 && stats.json()["error"] == "no_route" {
        eprintln!("GET /stats/patrols is not served: statistics not compared");
        return;
    }
    assert_eq!(stats.status, 200, "{}", stats.json());
    let stats = stats.json();
    for want in expect["chiefs"].as_array().expect("chiefs") {
        let row = stats["chiefs"]
            .as_array()
            .expect("chief rows")
            .iter()
            .find(|row| row["chief"] == want["chief"]);
        let Some(row) = row else {
            assert_eq!(want["patrols"], 0, "{want} missing from the statistics");
            continue;
        };
        assert_eq!(row["patrols"], want["patrols"], "{want} vs {row}");
        assert_eq!(row["valid"], want["valid"], "{want} vs {row}");
        let (got, wanted) = (
            row["km"].as_f64().unwrap_or(-1.0),
            want["km"].as_f64().unwrap_or(-2.0),
        );
        assert!(
            (got - wanted).abs() < 0.01,
            "km {got} vs {wanted} for {want}"
        );
    }
    // Patrol by patrol: the server agrees with the simulator's prediction, reasons included.
    let predicted = expect["patrols"].as_array().expect("patrols");
    let fabricated = predicted.iter().filter(|p| p["fabricated"] == true).count();
    assert_eq!(
        expect["fabricated_patrols"].as_u64(),
        Some(fabricated as u64)
    );
    for want in predicted {
        let id = want["id"].as_str().expect("id");
        let got = get(&server.base, token, &format!("/api/v1/patrols/{id}"));
        assert_eq!(got.status, 200, "{id}: {}", got.json());
        let got = got.json();
        assert_eq!(
            got["valid"], want["valid"],
            "{want} vs {}",
            got["flag_details"]
        );
        let codes: Vec<&str> = got["flag_details"]
            .as_array()
            .expect("flag details")
            .iter()
            .filter_map(|f| f["flag"].as_str())
            .collect();
        for reason in want["reasons"].as_array().expect("reasons") {
            assert!(
                codes.contains(&reason.as_str().expect("reason")),
                "{want}: server flags {codes:?}"
            );
        }
        if want["fabricated"] == true {
            assert_eq!(got["valid"], false, "a fabricated patrol passed: {want}");
        }
    }
    eprintln!(
        "{} patrols compared one by one, {fabricated} of them fabricated",
        predicted.len()
    );
    server.stop();
}

/// A server node on the PostgreSQL database `url`, in a thread of this process, answering on
/// 127.0.0.1; stopped when the test process ends.
fn node(dir: &std::path::Path, url: &str) -> (String, actix_web::web::Data<server::AppState>) {
    let settings = server::Settings {
        signing_key: Some(tests::server::SIGNING_KEY.into()),
        password_cost: server::auth::password::PasswordCost::FAST_FOR_TESTS,
        database: Some(url.to_owned()),
        ..server::Settings::new(dir)
    };
    let state = server::AppState::open(&settings).expect("open the node on PostgreSQL");
    server::demo::seed(&state).expect("seed the demo");
    let state = actix_web::web::Data::new(state);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let served = state.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            server::http_server(served, listener, Some(2))
                .expect("http server")
                .await
                .expect("server ran");
        });
    });
    (base, state)
}

/// Runs one statement with `psql` (PostgreSQL's client, installed with the server).
fn psql(url: &str, sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .args([url, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// A database of the test's own, dropped afterwards.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn database() -> Option<Database> {
    let Some(admin) = std::env::var("CHIEFSYNC_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        println!("skipped: CHIEFSYNC_TEST_POSTGRES is not set (a postgres:// address)");
        return None;
    };
    let name = format!("chiefsync_fieldsim_{}", std::process::id());
    if let Err(err) = psql(&admin, &format!("CREATE DATABASE {name}")) {
        println!("skipped: PostgreSQL at CHIEFSYNC_TEST_POSTGRES cannot be used: {err}");
        return None;
    }
    let (server, _) = admin
        .rsplit_once('/')
        .expect("postgres://user:password@host:port/database");
    let url = format!("{server}/{name}");
    Some(Database { admin, name, url })
}

#[test]
fn phones_spread_over_two_nodes_on_one_database_converge() {
    let Some(db) = database() else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, state) = node(dir_a.path(), &db.url);
    let (b, _) = node(dir_b.path(), &db.url);
    state
        .store
        .put_meta(
            server::settings::DEVICE_TIMES_KEY,
            &serde_json::to_vec(&json!({"binding_grace_ms": 5 * 86_400_000i64})).unwrap(),
        )
        .expect("device time settings");
    let output = Command::new(env!("CARGO_BIN_EXE_fieldsim"))
        .args(["--server", &format!("{a},{b}"), "--spread", "random"])
        .args(["--devices", "4", "--days", "4", "--sync-every", "2"])
        .args(["--seed", "23", "--concurrency", "4", "--interrupted", "0.5"])
        .args(["--recorder", "chunk", "--json"])
        .output()
        .expect("run fieldsim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fieldsim failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(run["lost"], 0, "{run}");
    assert_eq!(run["refusals"], 0, "{run}");
    assert_eq!(run["quarantined"], 0, "{run}");
    assert_eq!(run["photos"]["waiting_at_end"], 0, "{run}");
    assert!(run["patrols"].as_u64().unwrap_or(0) > 0, "{run}");
    // Both nodes served syncs.
    let by_node = run["syncs_by_node"].as_array().expect("syncs by node");
    assert_eq!(by_node.len(), 2, "{run}");
    assert!(
        by_node.iter().all(|n| n.as_u64().unwrap_or(0) > 0),
        "a node served no sync: {run}"
    );
    // Both nodes list the same documents with the same heads, as many as the run made.
    let heads = |base: &str| {
        let admin = login(base, "demo-admin", "demo", "fieldsim-test");
        let token = admin["access_token"].as_str().expect("token").to_owned();
        let mut docs = Vec::new();
        let mut after = String::new();
        loop {
            let page = get(base, &token, &format!("/api/v1/docs?limit=500{after}")).json();
            docs.extend(page["docs"].as_array().expect("docs").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return docs,
            }
        }
    };
    let (on_a, on_b) = (heads(&a), heads(&b));
    assert_eq!(on_a, on_b, "the two nodes list different documents");
    assert_eq!(Some(on_a.len() as u64), run["documents"].as_u64(), "{run}");
    eprintln!(
        "two nodes: syncs {:?}, {} documents, {} answers lost and retried",
        by_node, run["documents"], run["interrupted"]
    );
}
