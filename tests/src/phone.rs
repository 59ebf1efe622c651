//! A simulated phone: logs in over HTTP, keeps its documents in a real device store (sled), and
//! syncs with sync-core's engine through `POST /api/v1/sync`, exactly as the app does.
//! [`Phone::sync`] makes one attempt per round trip; [`Phone::sync_over`] goes through a
//! [`Link`] that keeps its connections, times requests out and retries by sync-core's
//! [`RetryPolicy`], as the app does in the field.

use std::path::Path;
use std::time::Duration;

use automerge::ActorId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sync_core::client::retry::{parse_retry_after, retryable_io, retryable_status, RetryPolicy};
use sync_core::client::{ClientError, SyncClient, SyncReport, Transport};
use sync_core::doc::{parse_actor, DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
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

/// An HTTP answer: status and body (JSON when it parses).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub bytes: Vec<u8>,
}

impl Answer {
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

fn try_answer(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, String> {
    let mut response = result.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(Answer { status, bytes })
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    try_answer(result).expect("request reaches the server")
}

/// Logs in and returns the token grant (access token, user, actor id).
pub fn login(base: &str, username: &str, password: &str, device_id: &str) -> Value {
    let reply = answer(
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
pub fn get(base: &str, token: &str, path: &str) -> Answer {
    answer(
        agent()
            .get(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .call(),
    )
}

/// `POST` of raw bytes with a bearer token (`None`: no Authorization header).
pub fn post_bytes(base: &str, token: Option<&str>, path: &str, body: &[u8]) -> Answer {
    let mut request = agent()
        .post(format!("{base}{path}"))
        .content_type("application/octet-stream");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    answer(request.send(body))
}

/// `POST` of JSON with a bearer token.
pub fn post_json(base: &str, token: &str, path: &str, body: &Value) -> Answer {
    answer(
        agent()
            .post(format!("{base}{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(body),
    )
}

/// `PUT`/`PATCH`-style JSON with a method of the caller's choosing.
pub fn send_json(base: &str, token: &str, method: &str, path: &str, body: &Value) -> Answer {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {token}");
    let request = match method {
        "PUT" => agent().put(url),
        "PATCH" => agent().patch(url),
        _ => agent().post(url),
    };
    answer(request.header("Authorization", auth).send_json(body))
}

/// The sync transport of a phone: one POST per round trip.
struct HttpTransport<'a> {
    base: &'a str,
    token: &'a str,
}

impl Transport for HttpTransport<'_> {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        // A server that is down or dies mid-request is an error the engine reports; the
        // device keeps its changes and sends them again next time.
        let reply = try_answer(
            agent()
                .post(format!("{}/api/v1/sync", self.base))
                .content_type("application/octet-stream")
                .header("Authorization", format!("Bearer {}", self.token))
                .send(&body[..]),
        )
        .map_err(ClientError::Transport)?;
        if reply.status == 200 {
            Ok(reply.bytes)
        } else {
            Err(ClientError::Transport(format!(
                "{}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.bytes)
            )))
        }
    }
}

/// A phone's connection to the server as the app keeps it: one agent whose connections are
/// reused, request timeouts, and retries with backoff and jitter by a [`RetryPolicy`]
/// (honouring `Retry-After`). It counts what it retried, for the load figures.
#[derive(Debug)]
pub struct Link {
    agent: ureq::Agent,
    policy: RetryPolicy,
    rng: StdRng,
    /// Answers 503 (load shed) that were sent again.
    pub shed: u64,
    /// Other retried failures: gateway statuses and connections cut after they were made.
    pub cut: u64,
    /// Time spent waiting before retries.
    pub waited: Duration,
}

impl Link {
    /// A link retrying by `policy`, its jitter drawn from `seed`.
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_global(Some(Duration::from_secs(60)))
                .http_status_as_error(false)
                .build()
                .into(),
            policy,
            rng: StdRng::seed_from_u64(seed),
            shed: 0,
            cut: 0,
            waited: Duration::ZERO,
        }
    }

    /// One POST of `body`, sent again while the policy allows after a retryable failure.
    /// Returns the 200 body; any other outcome is the last failure.
    fn post(&mut self, url: &str, token: &str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut failed = 0;
        loop {
            let sent = self
                .agent
                .post(url)
                .content_type("application/octet-stream")
                .header("Authorization", format!("Bearer {token}"))
                .send(body);
            let (retry_after, error) = match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let bytes = response
                        .body_mut()
                        .with_config()
                        .limit(64 * 1024 * 1024)
                        .read_to_vec()
                        .map_err(|e| ClientError::Transport(e.to_string()))?;
                    if status == 200 {
                        return Ok(bytes);
                    }
                    let error = ClientError::Transport(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&bytes)
                    ));
                    if !retryable_status(status) {
                        return Err(error);
                    }
                    if status == 503 {
                        self.shed += 1;
                    } else {
                        self.cut += 1;
                    }
                    (retry_after, error)
                }
                Err(ureq::Error::Io(e)) if retryable_io(e.kind()) => {
                    self.cut += 1;
                    (None, ClientError::Transport(e.to_string()))
                }
                Err(e) => return Err(ClientError::Transport(e.to_string())),
            };
            failed += 1;
            let Some(wait) = self.policy.delay(failed, retry_after, self.rng.random()) else {
                return Err(error);
            };
            self.waited += wait;
            std::thread::sleep(wait);
        }
    }
}

/// The sync transport over a [`Link`].
struct LinkTransport<'a> {
    url: String,
    token: &'a str,
    link: &'a mut Link,
}

impl Transport for LinkTransport<'_> {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        self.link.post(&self.url, self.token, &body)
    }
}

/// One chief's (or supervisor's, or handler's) phone.
#[derive(Debug)]
pub struct Phone {
    pub base: String,
    pub user: User,
    pub device_id: String,
    pub actor: ActorId,
    pub token: String,
    pub store: LocalStore,
}

impl Phone {
    /// Logs in as `username` (password `demo`) from `device_id`, with its store in `dir`.
    pub fn login(base: &str, username: &str, device_id: &str, dir: &Path) -> Self {
        let grant = login(base, username, "demo", device_id);
        Self {
            base: base.to_owned(),
            user: serde_json::from_value(grant["user"].clone()).expect("user in the grant"),
            device_id: device_id.to_owned(),
            actor: parse_actor(grant["actor_id"].as_str().expect("actor id")).expect("actor"),
            token: grant["access_token"].as_str().expect("token").to_owned(),
            store: LocalStore::open(dir).expect("open the device store"),
        }
    }

    pub fn client(&self) -> SyncClient<'_> {
        SyncClient::new(&self.store)
    }

    /// One sync with the server.
    pub fn sync(&self, now_ms: i64) -> Result<SyncReport, ClientError> {
        let mut transport = HttpTransport {
            base: &self.base,
            token: &self.token,
        };
        self.client().sync(&mut transport, now_ms)
    }

    /// One sync over `link`: each round trip retried by the link's policy.
    pub fn sync_over(&self, link: &mut Link, now_ms: i64) -> Result<SyncReport, ClientError> {
        let mut transport = LinkTransport {
            url: format!("{}/api/v1/sync", self.base),
            token: &self.token,
            link,
        };
        self.client().sync(&mut transport, now_ms)
    }

    /// The device's copy of an issue, continuing with this device's actor.
    pub fn issue(&self, id: &str) -> Option<IssueDoc> {
        let bytes = self.store.load_doc(id).expect("device store")?;
        Some(
            IssueDoc::load(&bytes)
                .expect("issue loads")
                .with_actor(self.actor.clone()),
        )
    }

    /// The device's copy of a patrol, continuing with this device's actor.
    pub fn patrol(&self, id: &str) -> Option<PatrolDoc> {
        let bytes = self.store.load_doc(id).expect("device store")?;
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
            for id in self.store.doc_ids(kind).expect("doc ids") {
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
