//! A simulated phone, and the server's API as the tests call it directly.
//!
//! [`Phone`] is mobile-ffi's [`PhoneApp`], the application layer the Android and iOS apps run,
//! with its device store (sled) in a test directory: it signs in, sends and retries its
//! requests, and syncs through sync-core's engine exactly as the app does. A phone opened with
//! [`Phone::login`] sends each request once; [`Phone::sign_in`] takes the retry policy (the
//! app's [`RetryPolicy::PHONE`] for load, a more patient one for a storm), and
//! [`Phone::traffic`] counts what was sent, shed and retried. Documents are written at chosen
//! device times through sync-core's document API (`record_patrol`, `report`, or `issue` and
//! `save` for any edit, forged ones included), as a phone's own code would write them.
//!
//! The free functions (`login`, `get`, `post_bytes` …) are not a phone: they are single
//! requests of the server's API for the tests to make and check by hand ([`HttpReply`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use automerge::ActorId;
use mobile_ffi::{ChiefsyncError, ClientConfig, PhoneApp, RetryPolicy, Traffic};
use serde_json::{json, Value};
use sync_core::client::{SyncClient, SyncReport};
use sync_core::doc::{DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
use sync_core::model::{Severity, System, User};
use sync_core::store::LocalStore;
use sync_core::track::walk_along;

/// A blocking HTTP agent for loopback tests: errors are answers, not failures.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// An HTTP reply: status and body (JSON when it parses).
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub bytes: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// Asserts a JSON error body with this status and code.
    pub fn expect_error(&self, status: u16, code: &str) {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
}

fn try_reply(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<HttpReply, String> {
    let mut response = result.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(HttpReply { status, bytes })
}

fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> HttpReply {
    try_reply(result).expect("request reaches the server")
}

/// Logs in and returns the token grant (access token, user, actor id).
pub fn login(base: &str, username: &str, password: &str, device_id: &str) -> Value {
    let reply = reply(
        agent()
            .post(format!("{base}/api/v1/auth/login"))
            .send_json(json!({
                "username": username,
                "password": password,
                "device_id": device_id,
            })),
    );
    assert_eq!(reply.status, 200, "login {username}: {}", reply.json());
    reply.json()
}

/// `GET` with a bearer token.
pub fn get(base: &str, token: &str, path: &str) -> HttpReply {
    reply(
        agent()
            .get(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .call(),
    )
}

/// `POST` of raw bytes with a bearer token (`None`: no Authorization header).
pub fn post_bytes(base: &str, token: Option<&str>, path: &str, body: &[u8]) -> HttpReply {
    let mut request = agent()
        .post(format!("{base}{path}"))
        .content_type("application/octet-stream");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    reply(request.send(body))
}

/// `POST` of JSON with a bearer token.
pub fn post_json(base: &str, token: &str, path: &str, body: &Value) -> HttpReply {
    reply(
        agent()
            .post(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(body),
    )
}

/// `PUT`/`PATCH`-style JSON with a method of the caller's choosing.
pub fn send_json(base: &str, token: &str, method: &str, path: &str, body: &Value) -> HttpReply {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {token}");
    let request = match method {
        "PUT" => agent().put(url),
        "PATCH" => agent().patch(url),
        _ => agent().post(url),
    };
    reply(request.header("Authorization", auth).send_json(body))
}

/// One chief's (or supervisor's, or handler's) phone: mobile-ffi's [`PhoneApp`] on a real
/// device store, signed in over HTTP. Sign-in, transport, retries and sync are the app's own;
/// the phone's user and actor are read from its session.
#[derive(Debug)]
pub struct Phone {
    pub app: PhoneApp,
    pub base: String,
    pub user: User,
    pub device_id: String,
    pub actor: ActorId,
    /// The app's data directory (its store is in `store/`).
    dir: PathBuf,
    retry: RetryPolicy,
}

impl Phone {
    /// Logs in as `username` (password `demo`) from `device_id`, with its data in `dir`. Every
    /// request is sent once ([`RetryPolicy::NONE`]): a failed round trip fails the sync, and
    /// the device keeps its changes for the next one.
    pub fn login(base: &str, username: &str, device_id: &str, dir: &Path) -> Self {
        Self::sign_in(base, username, "demo", device_id, dir, RetryPolicy::NONE)
    }

    /// Signs `username` in from `device_id`, with its data in `dir`, sending requests again by
    /// `retry` as the app does in the field ([`RetryPolicy::PHONE`]).
    pub fn sign_in(
        base: &str,
        username: &str,
        password: &str,
        device_id: &str,
        dir: &Path,
        retry: RetryPolicy,
    ) -> Self {
        let app = Self::open(base, device_id, dir, retry);
        app.login(username.into(), password.into())
            .unwrap_or_else(|e| panic!("login {username}: {e}"));
        Self::over(app, base, dir, retry)
    }

    fn open(base: &str, device_id: &str, dir: &Path, retry: RetryPolicy) -> PhoneApp {
        let mut config = ClientConfig::new(dir, base);
        config.retry = retry;
        config.device_id = Some(device_id.to_owned());
        PhoneApp::open(config).expect("open the phone")
    }

    fn over(app: PhoneApp, base: &str, dir: &Path, retry: RetryPolicy) -> Self {
        let me = app.me().expect("signed in");
        Self {
            user: app.user().expect("the signed-in user"),
            actor: app.actor().expect("the device's actor"),
            device_id: me.device_id,
            base: base.to_owned(),
            dir: dir.to_path_buf(),
            retry,
            app,
        }
    }

    /// The app closed and started again against `base` (the server moved to another port):
    /// same store, same session.
    pub fn reopen(self, base: &str) -> Self {
        let Phone {
            app,
            device_id,
            dir,
            retry,
            ..
        } = self;
        drop(app);
        let app = Self::open(base, &device_id, &dir, retry);
        Self::over(app, base, &dir, retry)
    }

    /// The session's current access token, for the tests' own calls of the server's API.
    pub fn token(&self) -> String {
        self.app.access_token().expect("signed in")
    }

    /// The device store.
    pub fn store(&self) -> &LocalStore {
        self.app.store()
    }

    /// sync-core's engine over the device store, to look at what it would send.
    pub fn client(&self) -> SyncClient<'_> {
        SyncClient::new(self.store())
    }

    /// The app's sync of the documents at device time `now_ms`: every local change up, the
    /// jurisdiction's changes down, each request sent again as the phone's policy allows.
    pub fn sync(&self, now_ms: i64) -> Result<SyncReport, ChiefsyncError> {
        self.app.sync_documents(now_ms)
    }

    /// Requests, retries (503s shed, cut connections), waits and bytes since the app opened.
    pub fn traffic(&self) -> Traffic {
        self.app.traffic()
    }

    /// The device's copy of an issue, continuing with this device's actor.
    pub fn issue(&self, id: &str) -> Option<IssueDoc> {
        let bytes = self.store().load_doc(id).expect("device store")?;
        Some(
            IssueDoc::load(&bytes)
                .expect("issue loads")
                .with_actor(self.actor.clone()),
        )
    }

    /// The device's copy of a patrol, continuing with this device's actor.
    pub fn patrol(&self, id: &str) -> Option<PatrolDoc> {
        let bytes = self.store().load_doc(id).expect("device store")?;
        Some(
            PatrolDoc::load(&bytes)
                .expect("patrol loads")
                .with_actor(self.actor.clone()),
        )
    }

    /// Saves local edits of a record (offline; they go up at the next sync).
    pub fn save(&self, record: &mut impl Record, kind: DocKind, id: &str) {
        self.client()
            .save(record, kind, id)
            .expect("save on the device");
    }

    /// Heads of every document the device holds, as hex, by id.
    pub fn heads(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        for kind in [
            sync_core::store::DocKind::Patrol,
            sync_core::store::DocKind::Issue,
        ] {
            for id in self.store().doc_ids(kind).expect("doc ids") {
                let mut doc = self.client().load(&id).expect("load").expect("present");
                let mut heads: Vec<String> =
                    doc.get_heads().iter().map(|h| h.to_string()).collect();
                heads.sort();
                out.insert(id, heads);
            }
        }
        out
    }
}

impl Phone {
    /// Records a patrol of `points` 1 Hz fixes along a demo asset, saved on the device.
    pub fn record_patrol(
        &self,
        asset_id: &str,
        started_ms: i64,
        points: usize,
        seed: u64,
    ) -> (String, PatrolDoc) {
        let asset = server::demo::facts()
            .asset(asset_id)
            .expect("a demo asset")
            .clone();
        let mut patrol = PatrolDoc::create(
            self.actor.clone(),
            &NewPatrol {
                system: asset.system,
                asset: asset.id.clone(),
                chief: self.user.id.clone(),
                division: asset.division.clone(),
                device: self.device_id.clone(),
                started_at_ms: started_ms,
            },
        )
        .expect("create the patrol");
        patrol
            .append_track(&walk_along(&asset.geometry, started_ms, points, seed))
            .expect("record the track");
        let id = patrol.view().expect("patrol view").id;
        self.save(&mut patrol, DocKind::Patrol, &id);
        (id, patrol)
    }

    /// Reports a problem of the asset's system on a demo asset, saved on the device.
    pub fn report(&self, asset_id: &str, at_ms: i64, text: &str) -> String {
        let asset = server::demo::facts()
            .asset(asset_id)
            .expect("a demo asset")
            .clone();
        let category = match asset.system {
            System::River => "river.garbage",
            System::Forest => "forest.fire_hazard",
            System::Field => "field.non_agricultural",
        };
        let mut issue = IssueDoc::report(
            self.actor.clone(),
            &self.user,
            &self.device_id,
            at_ms,
            &NewIssue {
                system: asset.system,
                category: category.into(),
                severity: Severity::General,
                asset: asset.id.clone(),
                division: asset.division.clone(),
                location: spot_on(&asset.geometry),
                description: text.into(),
                patrol: None,
            },
        )
        .expect("report the issue");
        let id = issue.view().expect("issue view").id;
        self.save(&mut issue, DocKind::Issue, &id);
        id
    }
}

/// A point on an asset, where its chief would stand to report a problem: the middle vertex of a
/// river line, the first corner of an area.
pub fn spot_on(geometry: &sync_core::model::Geometry) -> [f64; 2] {
    match geometry {
        sync_core::model::Geometry::LineString(line) => line[line.len() / 2],
        sync_core::model::Geometry::Polygon(rings) => rings[0][0],
    }
}
