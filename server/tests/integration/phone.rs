//! A phone for the tests: sync-core's own `SyncClient` over a real sled `LocalStore`, talking to
//! the test server's `/api/v1/sync` over HTTP. The engine is blocking (as on a phone), so each
//! sync runs on a plain thread with its own small HTTP runtime while the test's runtime waits.

use std::sync::Arc;
use std::time::Duration;

use automerge::ActorId;
use sync_core::client::{ClientError, SyncClient, SyncReport, Transport};
use sync_core::doc::{parse_actor, DocKind, IssueDoc, Record};
use sync_core::model::User;
use sync_core::store::LocalStore;

use crate::harness::TestServer;

fn sync_core_demo_password() -> &'static str {
    server::demo::DEMO_PASSWORD
}

pub struct Phone {
    pub user: User,
    pub actor: ActorId,
    pub device: String,
    base: std::sync::Mutex<String>,
    token: String,
    store: LocalStore,
    _dir: tempfile::TempDir,
}

struct Http {
    url: String,
    token: String,
}

impl Transport for Http {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let (url, token) = (self.url.clone(), self.token.clone());
        actix_web::rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish();
            let mut res = client
                .post(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Content-Type", "application/octet-stream"))
                .send_body(body)
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            let bytes = res
                .body()
                .limit(64 * 1024 * 1024)
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            if res.status().is_success() {
                Ok(bytes.to_vec())
            } else {
                Err(ClientError::Transport(format!(
                    "{}: {}",
                    res.status(),
                    String::from_utf8_lossy(&bytes)
                )))
            }
        })
    }
}

/// Runs blocking phone work on its own thread (outside any async runtime) and awaits it.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(move || {
        std::thread::spawn(work)
            .join()
            .expect("phone thread panicked")
    })
    .await
    .expect("blocking task")
}

impl Phone {
    /// Logs in as a demo user from `device` with an empty store.
    pub async fn login(server: &TestServer, username: &str, device: &str) -> Arc<Phone> {
        Self::login_with(server, username, sync_core_demo_password(), device).await
    }

    /// Logs in as a demo user from `device`, a phone first signed in for them `days` ago (its
    /// binding): the times it supplies may go back that far (`rules::times`).
    pub async fn login_bound_days_ago(
        server: &TestServer,
        username: &str,
        device: &str,
        days: i64,
    ) -> Arc<Phone> {
        let store = &server.state.store;
        let user = store.find_user_by_username(username).unwrap().unwrap().user;
        // One actor per (device, binding): phones of one test never share one.
        let device_key = device
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let actor = format!(
            "{:032x}",
            u128::from(device_key) << 64 | days.unsigned_abs() as u128
        );
        let bound = server::state::now_ms() - days * 86_400_000;
        store
            .start_session(&user.id, device, &actor, bound)
            .unwrap();
        Self::login(server, username, device).await
    }

    /// Logs in with a password from `device` with an empty store.
    pub async fn login_with(
        server: &TestServer,
        username: &str,
        password: &str,
        device: &str,
    ) -> Arc<Phone> {
        let grant = server
            .login_reply(username, password, device)
            .await
            .expect_ok()
            .clone();
        Self::with_grant(server, &grant, device)
    }

    /// A phone signed in with `grant` (from a login or a first sign-in with a setup code).
    pub fn with_grant(server: &TestServer, grant: &serde_json::Value, device: &str) -> Arc<Phone> {
        Self::at(&server.base, grant, device)
    }

    /// A phone of `grant` talking to the server at `base` (`http://127.0.0.1:PORT`).
    pub fn at(base: &str, grant: &serde_json::Value, device: &str) -> Arc<Phone> {
        let dir = tempfile::tempdir().unwrap();
        Arc::new(Phone {
            user: serde_json::from_value(grant["user"].clone()).unwrap(),
            actor: parse_actor(grant["actor_id"].as_str().unwrap()).unwrap(),
            device: device.to_string(),
            base: std::sync::Mutex::new(base.to_owned()),
            token: grant["access_token"].as_str().unwrap().to_string(),
            store: LocalStore::open(dir.path().join("store")).unwrap(),
            _dir: dir,
        })
    }

    /// One sync with the server, at device time `now_ms`.
    pub async fn sync(self: &Arc<Self>, now_ms: i64) -> SyncReport {
        let phone = self.clone();
        off_runtime(move || {
            let mut http = Http {
                url: format!("{}/api/v1/sync", phone.base.lock().unwrap()),
                token: phone.token.clone(),
            };
            SyncClient::new(&phone.store).sync(&mut http, now_ms)
        })
        .await
        .expect("sync")
    }

    /// The ids of every document the phone holds, in order.
    pub fn doc_ids(&self) -> std::collections::BTreeSet<String> {
        use sync_core::store::DocKind as Stored;
        [Stored::Patrol, Stored::Issue]
            .into_iter()
            .flat_map(|kind| self.store.doc_ids(kind).unwrap())
            .collect()
    }

    /// Points the phone at a restarted server (its session and store carry over).
    pub fn reconnect(&self, server: &TestServer) {
        self.reconnect_to(&server.base);
    }

    /// Points the phone at the server at `base`.
    pub fn reconnect_to(&self, base: &str) {
        *self.base.lock().unwrap() = base.to_owned();
    }

    /// Heads of every document the phone holds, as hex, by id.
    pub fn heads(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        use sync_core::store::DocKind as Stored;
        for kind in [Stored::Patrol, Stored::Issue] {
            for id in self.store.doc_ids(kind).unwrap() {
                let mut doc = SyncClient::new(&self.store).load(&id).unwrap().unwrap();
                let mut heads: Vec<String> =
                    doc.get_heads().iter().map(|h| h.to_string()).collect();
                heads.sort();
                out.insert(id, heads);
            }
        }
        out
    }

    /// The device's copy of an issue, continuing with this device's actor.
    pub fn issue(&self, id: &str) -> Option<IssueDoc> {
        let bytes = self.store.load_doc(id).unwrap()?;
        Some(
            IssueDoc::load(&bytes)
                .unwrap()
                .with_actor(self.actor.clone()),
        )
    }

    /// Saves any document written on the phone (a patrol, say); it goes up at the next sync.
    pub fn save_record<R: Record>(&self, record: &mut R, kind: DocKind, id: &str) {
        SyncClient::new(&self.store).save(record, kind, id).unwrap();
    }

    /// Drops documents from the phone's store, to be named to the server at the next sync, as
    /// `SyncClient::drop_docs` does (without the eviction table's choice of what may go).
    pub fn drop_docs(&self, ids: &[String]) -> Vec<String> {
        SyncClient::new(&self.store).drop_docs(ids).unwrap()
    }

    /// Saves an offline edit; it goes up at the next sync.
    pub fn save(&self, record: &mut IssueDoc) {
        let id = record.id().to_string();
        SyncClient::new(&self.store)
            .save(record, DocKind::Issue, &id)
            .unwrap();
    }
}
