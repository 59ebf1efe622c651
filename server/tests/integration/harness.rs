//! Starting and stopping a real server, and a small JSON client for it.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web;
use serde_json::{json, Value};
use server::auth::password::PasswordCost;
use server::demo::{self, SeedOutcome};
use server::{http_server, AppState, Settings};

/// The signing key of test servers, so tests can forge tokens with chosen claims.
pub const SIGNING_KEY: &str = "integration-test-signing-key-0123456789";

pub struct TestServer {
    pub base: String,
    pub state: web::Data<AppState>,
    pub seeded: Option<SeedOutcome>,
    handle: ServerHandle,
    pub client: awc::Client,
    _dir: Option<tempfile::TempDir>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts a JSON error body with this status and code.
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"], code, "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
    }

    pub fn expect_ok(&self) -> &Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.body);
        &self.body
    }
}

fn settings(dir: &Path) -> Settings {
    Settings {
        signing_key: Some(SIGNING_KEY.into()),
        password_cost: PasswordCost::FAST_FOR_TESTS,
        ..Settings::new(dir)
    }
}

impl TestServer {
    /// Stores a patrol `chief` walked along `asset` from `started_ms`, `points` seconds long
    /// (the walk drawn with `seed`), recorded by actor `actor` on `device`, as a phone's sync
    /// would store it (through the store's hub part).
    pub fn store_walked_patrol(
        &self,
        chief: &sync_core::model::User,
        asset: &sync_core::model::Asset,
        (actor, device): (u64, &str),
        started_ms: i64,
        points: usize,
        seed: u64,
    ) {
        use sync_core::doc::{actor_for, NewPatrol, PatrolDoc, Record};
        let mut patrol = PatrolDoc::create(
            actor_for(actor),
            &NewPatrol {
                system: asset.system,
                asset: asset.id.clone(),
                chief: chief.id.clone(),
                division: asset.division.clone(),
                device: device.into(),
                started_at_ms: started_ms,
            },
        )
        .unwrap();
        let walk = sync_core::track::walk_along(&asset.geometry, started_ms, points, seed);
        for chunk in walk.chunks(sync_core::track::CHUNK_POINTS) {
            patrol.append_track(chunk).unwrap();
        }
        patrol.finish(walk.last().unwrap().t_ms).unwrap();
        let bytes = patrol.save();
        let meta =
            sync_core::authz::DocMeta::of(&automerge::AutoCommit::load(&bytes).unwrap()).unwrap();
        self.state
            .store
            .save_document(patrol.id(), &meta, &bytes, &[])
            .unwrap();
    }

    /// A fresh server with the demo seeded.
    pub async fn demo() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(dir.path(), true).await;
        server._dir = Some(dir);
        server
    }

    /// A fresh server with nothing seeded.
    pub async fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(dir.path(), false).await;
        server._dir = Some(dir);
        server
    }

    /// A server over `dir` (which the caller keeps), optionally with `--demo`.
    pub async fn start_in(dir: &Path, demo: bool) -> Self {
        Self::start_with(dir, demo, |_| {}).await
    }

    /// A fresh demo server with settings changed by `change` (as command-line flags would).
    pub async fn demo_with(change: impl Fn(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_with(dir.path(), true, change).await;
        server._dir = Some(dir);
        server
    }

    /// A server over `dir` (which the caller keeps) with settings changed by `change`.
    pub async fn start_with(dir: &Path, demo: bool, change: impl Fn(&mut Settings)) -> Self {
        let settings = {
            let mut s = settings(dir);
            change(&mut s);
            s
        };
        // A previous server over the same directory may still be releasing the database lock.
        let mut attempts = 0;
        let state = loop {
            match AppState::open(&settings) {
                Ok(state) => break state,
                Err(_) if attempts < 50 => {
                    attempts += 1;
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("open state: {err}"),
            }
        };
        let seeded = demo.then(|| demo::seed(&state).expect("seed demo"));
        let state = web::Data::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = http_server(state.clone(), listener, Some(1)).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base,
            state,
            seeded,
            handle,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
            _dir: None,
        }
    }

    /// Stops the server gracefully and flushes the store.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.state.store.flush().unwrap();
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.request_with(method, path, token, body, &[]).await
    }

    /// [`TestServer::request`] with extra headers.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request sent");
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body read");
        Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            },
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request("POST", path, Some(token), Some(body)).await
    }

    pub async fn login_reply(&self, username: &str, password: &str, device: &str) -> Reply {
        let body = json!({"username": username, "password": password, "device_id": device});
        self.request("POST", "/api/v1/auth/login", None, Some(body))
            .await
    }

    /// Logs in with the demo password and returns the grant.
    pub async fn login(&self, username: &str, device: &str) -> Value {
        self.login_reply(username, demo::DEMO_PASSWORD, device)
            .await
            .expect_ok()
            .clone()
    }

    /// Logs in with the demo password and returns the access token.
    pub async fn token(&self, username: &str, device: &str) -> String {
        self.login(username, device).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
