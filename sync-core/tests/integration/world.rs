//! The district in which the phone tests work, served by the real hub over its in-memory store:
//! a village river chief reporting problems, the district river office assigning them, a
//! handler of 区水务局, and phones that sync with the hub directly (no network between).

use std::sync::Arc;

use automerge::AutoCommit;
use sync_core::client::{ClientError, SyncClient, SyncReport, Transport};
use sync_core::doc::{actor_for, DocKind, IssueDoc};
use sync_core::hub::testing::{MemoryHubStore, Reference};
use sync_core::hub::{Caller, DocumentStore, Hub, WEB_DEVICE};
use sync_core::model::{Asset, Category, Geometry, System, User};
use sync_core::protocol::SyncRequest;
use sync_core::store::{testing::MemoryStorage, LocalStore};
use sync_core::workflow::{Action, Assignee};

use crate::fixtures::{chief, handler, new_issue, supervisor, village};

pub const DAY: i64 = 24 * 60 * 60 * 1000;
pub const DEPARTMENT: &str = "区水务局";

pub struct Direct<'a> {
    pub hub: &'a Hub<MemoryHubStore>,
    pub caller: &'a Caller,
    pub now: i64,
}

impl Transport for Direct<'_> {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let request = SyncRequest::decode(&body)?;
        let answer = self.hub.answer(self.caller, &request, self.now);
        Ok(answer
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .encode())
    }
}

pub struct World {
    pub hub: Hub<MemoryHubStore>,
}

pub fn caller(user: User, device: &str, actor: u64) -> Caller {
    Caller {
        device: format!("{}/{device}", user.id),
        user,
        actor: actor_for(actor),
        bound_at_ms: None,
    }
}

pub fn phone() -> LocalStore {
    LocalStore::new(Arc::new(MemoryStorage::default()))
}

impl World {
    pub fn new() -> Self {
        let river = Asset {
            id: "xqh-01".into(),
            system: System::River,
            name: "小清河".into(),
            division: village(),
            geometry: Geometry::LineString(vec![[116.98, 36.742], [116.99, 36.742]]),
        };
        let garbage = Category {
            code: "river.garbage".into(),
            system: System::River,
            name_zh: "河面垃圾".into(),
            name_en: "Garbage".into(),
        };
        World {
            hub: Hub::new(MemoryHubStore::with_reference(Reference {
                assets: vec![river],
                categories: vec![garbage],
                users: vec![chief(), supervisor(), handler()],
            })),
        }
    }

    pub fn sync(&self, store: &LocalStore, caller: &Caller, now: i64) -> SyncReport {
        let mut direct = Direct {
            hub: &self.hub,
            caller,
            now,
        };
        SyncClient::new(store).sync(&mut direct, now).expect("sync")
    }

    /// The chief reports a problem from their phone; returns its id.
    pub fn report(&self, store: &LocalStore, caller: &Caller, at: i64) -> String {
        let id = record(store, caller, at);
        self.sync(store, caller, at);
        id
    }

    pub fn assign(&self, id: &str, to: Assignee, at: i64) {
        let action = Action::Assigned {
            assignee: to,
            deadline_ms: at + 7 * DAY,
        };
        self.hub
            .act(&supervisor(), WEB_DEVICE, id, action, at)
            .expect("the office assigns");
    }

    pub fn server_heads(&self, id: &str) -> Vec<automerge::ChangeHash> {
        let stored = self.hub.store().document(id).unwrap().expect("stored");
        AutoCommit::load(&stored.bytes).unwrap().get_heads()
    }

    /// [`Self::server_heads`] as the protocol names them.
    pub fn server_heads_raw(&self, id: &str) -> Vec<[u8; 32]> {
        self.server_heads(id).into_iter().map(|h| h.0).collect()
    }
}

pub fn held_heads(store: &LocalStore, id: &str) -> Option<Vec<automerge::ChangeHash>> {
    SyncClient::new(store)
        .load(id)
        .unwrap()
        .map(|mut doc| doc.get_heads())
}

/// `who` edits the problem `id` their phone holds, saved on the phone and not yet sent.
pub fn edit_held(store: &LocalStore, who: &Caller, id: &str, edit: impl FnOnce(&mut IssueDoc)) {
    let bytes = store
        .load_doc(id)
        .unwrap()
        .expect("the phone holds the problem");
    let mut issue = IssueDoc::load(&bytes)
        .unwrap()
        .with_actor(who.actor.clone());
    edit(&mut issue);
    SyncClient::new(store)
        .save(&mut issue, DocKind::Issue, id)
        .unwrap();
}

/// The chief records a problem on their phone, not yet sent; returns its id.
pub fn record(store: &LocalStore, caller: &Caller, at: i64) -> String {
    let mut issue = IssueDoc::report(
        caller.actor.clone(),
        &caller.user,
        &caller.device,
        at,
        &new_issue(),
    )
    .expect("report");
    let id = issue.id().to_string();
    SyncClient::new(store)
        .save(&mut issue, DocKind::Issue, &id)
        .expect("save");
    id
}
