//! What the board, the patrol list and reminders work out from stored documents, kept per
//! document so that a request costs its page rather than the whole district.
//!
//! For every issue the server keeps its record and folded workflow state (the status, assignee,
//! deadline and photos a list row shows), in report order and in the duplicate search's grid
//! (`sync_core::workflow::DuplicateIndex`); for every patrol its record, what the server knows of
//! the clock of the phone that sent it, the time it counts as walked (in that order and by
//! chief), and its validity verdict once a page or a reminder asked for it. The facts follow the
//! change feed as the statistics do: a request first re-reads the documents saved since the last
//! one (each changed document once), then reads the kept facts. A verdict is kept with what it
//! was judged against (the rules, the chief's role, the asset), so changing any of them judges
//! the patrol again when it is next shown.
//!
//! Every rule is sync-core's: the fold (through `IssueDoc::state`), the duplicate check, the
//! patrol validation (`rules::validate_patrol`), who may read what (`hub::read::ReadScope`).
//! This module only decides what to re-read.
//!
//! [`Work`] counts what a request did, for the `chiefsync_board_work` metric.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use sync_core::authz::DocMeta;
use sync_core::doc::{DocKind, Patrol, PatrolDoc};
use sync_core::hub::read::ReadScope;
use sync_core::hub::HubError;
use sync_core::rules::{counted_time, validate_patrol, DeviceClock, PatrolValidation, RuleSet};
use sync_core::workflow::{DuplicateCandidate, DuplicateIndex};

use crate::board::{self, IssueSummary};
use crate::storage::{Store, StoreError};

/// The `request` label of work done catching up with the change feed.
pub const CHANGES: &str = "changes";

/// Work done for one request: documents loaded from the store, issues folded into their
/// workflow state, patrols validated, and duplicate candidates compared. Exposed as the
/// `chiefsync_board_work` metric, so an office can see that a page costs a page.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub loaded: u64,
    pub folded: u64,
    pub validated: u64,
    pub compared: u64,
}

impl Work {
    pub fn named(&self) -> [(&'static str, u64); 4] {
        [
            ("loaded", self.loaded),
            ("folded", self.folded),
            ("validated", self.validated),
            ("compared", self.compared),
        ]
    }
}

/// A patrol as kept: its record, and its verdict once judged.
#[derive(Debug)]
pub struct PatrolSummary {
    pub meta: DocMeta,
    pub record: Patrol,
    /// What the server knows of the sending phone's clock ([`device_clock`]).
    pub clock: DeviceClock,
    /// When the patrol counts as walked: `rules::counted_time` of its first fix.
    pub at_ms: i64,
    /// The verdict with the fingerprint of what it was judged against.
    verdict: Mutex<Option<(u64, Arc<PatrolValidation>)>>,
}

impl PatrolSummary {
    pub fn load(clocks: &mut Clocks<'_>, meta: DocMeta, bytes: &[u8]) -> Result<Self, HubError> {
        let damaged = |e: sync_core::doc::DocError| HubError::Damaged {
            id: meta.id.clone(),
            reason: e.to_string(),
        };
        let doc = PatrolDoc::load(bytes).map_err(damaged)?;
        let record = doc.view().map_err(damaged)?;
        let first = doc
            .track()
            .map_err(damaged)?
            .into_iter()
            .take(1)
            .collect::<Vec<_>>();
        let clock = clocks.of(&meta.id)?;
        Ok(Self {
            at_ms: counted_time(record.started_at_ms, &first, &clock),
            clock,
            meta,
            record,
            verdict: Mutex::new(None),
        })
    }
}

/// What the server knows of the clock of the phone that sent a document: when its device was
/// bound (the first sign-in of the user on it, from the device record) and when the server
/// received the document's changes (the audit; the latest one bounds the times it carries).
/// A document stored without an audit (seeded, or from before the audit) has no bounds.
pub fn device_clock(store: &dyn Store, doc_id: &str) -> Result<DeviceClock, HubError> {
    Clocks::read(store)?.of(doc_id)
}

/// [`device_clock`] for many documents in one pass (the statistics catching up, the patrol
/// list re-reading): the bounds of phone times are read once, and each phone's binding once,
/// however many of its patrols the pass meets.
#[derive(Debug)]
pub struct Clocks<'a> {
    store: &'a dyn Store,
    grace_ms: i64,
    /// (user, device) → when it was bound (`None`: no binding stored).
    bound: HashMap<(String, String), Option<i64>>,
}

impl<'a> Clocks<'a> {
    /// With the bounds of phone times in force (`settings::device_times`).
    pub fn new(store: &'a dyn Store, times: &crate::settings::DeviceTimes) -> Self {
        Self {
            store,
            grace_ms: times.binding_grace_ms.max(0),
            bound: HashMap::new(),
        }
    }

    /// Reading the bounds of phone times from the store.
    pub fn read(store: &'a dyn Store) -> Result<Self, HubError> {
        let times = crate::settings::device_times(store).map_err(StoreError::into_hub)?;
        Ok(Self::new(store, &times))
    }

    /// The clock of the phone that sent `doc_id`.
    pub fn of(&mut self, doc_id: &str) -> Result<DeviceClock, HubError> {
        let history = self.store.history(doc_id)?;
        let Some(first) = history.iter().min_by_key(|e| e.received_at_ms) else {
            return Ok(DeviceClock::default());
        };
        // The audit names the device as the sync session does: `user/device`.
        let prefix = format!("{}/", first.user);
        let device_id = first.device.strip_prefix(&prefix).unwrap_or(&first.device);
        let key = (first.user.clone(), device_id.to_owned());
        let bound = match self.bound.get(&key) {
            Some(bound) => *bound,
            None => {
                let device = self
                    .store
                    .get_device(&first.user, device_id)
                    .map_err(StoreError::into_hub)?;
                let bound = device.map(|d| d.created_at_ms);
                self.bound.insert(key, bound);
                bound
            }
        };
        Ok(DeviceClock {
            bound_ms: bound.map(|at| at.saturating_sub(self.grace_ms)),
            // The device's previous acknowledged sync when the document first arrived: a
            // phone that held this record then would have sent it then.
            previous_sync_ms: first.previous_sync_ms,
            received_ms: history.iter().map(|e| e.received_at_ms).max(),
        })
    }
}

/// The kept facts, as of feed position `cursor`.
#[derive(Debug, Default)]
pub struct Kept {
    cursor: u64,
    issues: HashMap<String, Arc<IssueSummary>>,
    /// (reported at, id): walked backwards, newest report first.
    issue_order: BTreeSet<(i64, String)>,
    duplicates: DuplicateIndex,
    patrols: HashMap<String, Arc<PatrolSummary>>,
    /// (started at, id): walked backwards, newest patrol first.
    patrol_order: BTreeSet<(i64, String)>,
    /// (chief, started at, id).
    patrols_by_chief: BTreeSet<(String, i64, String)>,
    /// Documents whose bytes are damaged, with their routing facts and the reason: whoever's
    /// scope holds one is told, as when every document was read on every request.
    damaged: HashMap<String, (DocMeta, String)>,
}

impl Kept {
    fn remove(&mut self, id: &str) {
        if let Some(old) = self.issues.remove(id) {
            self.issue_order
                .remove(&(old.record.reported_at_ms, id.to_owned()));
            self.duplicates.remove(id);
        }
        if let Some(old) = self.patrols.remove(id) {
            let started = old.at_ms;
            self.patrol_order.remove(&(started, id.to_owned()));
            self.patrols_by_chief
                .remove(&(old.meta.owner.clone(), started, id.to_owned()));
        }
        self.damaged.remove(id);
    }

    fn put_issue(&mut self, summary: IssueSummary) {
        let id = summary.record.id.clone();
        self.remove(&id);
        self.issue_order
            .insert((summary.record.reported_at_ms, id.clone()));
        self.duplicates.insert(DuplicateCandidate {
            id: id.clone(),
            category: summary.record.category.clone(),
            location: summary.record.location,
            reported_at_ms: summary.record.reported_at_ms,
            status: summary.state.status,
        });
        self.issues.insert(id, Arc::new(summary));
    }

    fn put_patrol(&mut self, summary: PatrolSummary) {
        let id = summary.meta.id.clone();
        self.remove(&id);
        let started = summary.at_ms;
        self.patrol_order.insert((started, id.clone()));
        self.patrols_by_chief
            .insert((summary.meta.owner.clone(), started, id.clone()));
        self.patrols.insert(id, Arc::new(summary));
    }

    /// A damaged document of `kind` the reader may read, as the error a full read would have
    /// met.
    pub fn damage_in_scope(&self, reads: &ReadScope<'_>, kind: DocKind) -> Result<(), HubError> {
        match self
            .damaged
            .iter()
            .find(|(_, (meta, _))| reads.sees_as(kind, meta))
        {
            Some((id, (_, reason))) => Err(HubError::Damaged {
                id: id.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    pub fn issue(&self, id: &str) -> Option<&Arc<IssueSummary>> {
        self.issues.get(id)
    }

    /// Every issue, newest report first (ties: larger id first).
    pub fn issues_newest_first(&self) -> impl Iterator<Item = &Arc<IssueSummary>> + '_ {
        self.issue_order
            .iter()
            .rev()
            .filter_map(|(_, id)| self.issues.get(id))
    }

    /// The issues the reader may read, newest report first (ties: larger id first).
    pub fn visible_issues<'a>(
        &'a self,
        reads: &'a ReadScope<'_>,
    ) -> impl Iterator<Item = &'a Arc<IssueSummary>> + 'a {
        self.issues_newest_first()
            .filter(move |issue| reads.sees(&issue.meta))
    }

    /// The earlier open issue nearby that issue `id` may repeat, among those the reader may
    /// read.
    pub fn duplicate_of(
        &self,
        reads: &ReadScope<'_>,
        id: &str,
        radius_m: f64,
        work: &mut Work,
    ) -> Option<String> {
        let visible = |other: &str| self.issues.get(other).is_some_and(|s| reads.sees(&s.meta));
        let (found, compared) = self.duplicates.duplicate_of(id, radius_m, &visible);
        work.compared += compared as u64;
        found.map(str::to_owned)
    }

    /// Patrol `id` when the reader may read it.
    pub fn visible_patrol(&self, reads: &ReadScope<'_>, id: &str) -> Option<&Arc<PatrolSummary>> {
        self.patrols.get(id).filter(|p| reads.sees(&p.meta))
    }

    /// Every patrol, newest first by the time it counts as walked (ties: larger id first).
    pub fn patrols_newest_first(&self) -> impl Iterator<Item = &Arc<PatrolSummary>> + '_ {
        self.patrol_order
            .iter()
            .rev()
            .filter_map(|(_, id)| self.patrols.get(id))
    }

    /// The patrols the reader may read, newest first as [`Kept::patrols_newest_first`].
    pub fn visible_patrols<'a>(
        &'a self,
        reads: &'a ReadScope<'_>,
    ) -> impl Iterator<Item = &'a Arc<PatrolSummary>> + 'a {
        self.patrols_newest_first()
            .filter(move |patrol| reads.sees(&patrol.meta))
    }

    /// The chief's patrols that count as walked in `[from_ms, until_ms)`.
    pub fn patrols_of(
        &self,
        chief: &str,
        from_ms: i64,
        until_ms: i64,
    ) -> impl Iterator<Item = &Arc<PatrolSummary>> + '_ {
        let from = (chief.to_owned(), from_ms, String::new());
        let until = (chief.to_owned(), until_ms, String::new());
        self.patrols_by_chief
            .range(from..until)
            .filter_map(|(_, _, id)| self.patrols.get(id))
    }
}

/// The kept facts of every issue and patrol. One per server.
#[derive(Debug, Default)]
pub struct Derived {
    kept: RwLock<Kept>,
}

impl Derived {
    /// Re-reads the documents saved since the last call (each once) and returns the kept
    /// facts, with the work the re-reading did. Blocking: call inside `web::block`.
    pub fn current(
        &self,
        store: &dyn Store,
    ) -> Result<(RwLockReadGuard<'_, Kept>, Work), HubError> {
        let mut work = Work::default();
        let head = store.feed_head()?;
        let behind = self.read().cursor < head;
        if behind {
            let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
            if kept.cursor < head {
                let mut clocks = Clocks::read(store)?;
                for meta in store.changed_since(kept.cursor, head, &|_| true)? {
                    reread(&mut kept, store, &mut clocks, meta, &mut work)?;
                }
                kept.cursor = head;
            }
        }
        Ok((self.read(), work))
    }

    fn read(&self) -> RwLockReadGuard<'_, Kept> {
        self.kept.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Re-reads one changed document into the kept facts. A document that cannot be read is kept
/// as damage; only a failing store stops the catch-up (to be retried by the next request).
fn reread(
    kept: &mut Kept,
    store: &dyn Store,
    clocks: &mut Clocks<'_>,
    meta: DocMeta,
    work: &mut Work,
) -> Result<(), HubError> {
    let id = meta.id.clone();
    let stored = match store.document(&id) {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            kept.remove(&id);
            return Ok(());
        }
        Err(HubError::Damaged { reason, .. }) => {
            kept.remove(&id);
            kept.damaged.insert(id, (meta, reason));
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    work.loaded += 1;
    let outcome = match stored.meta.kind {
        DocKind::Issue => {
            work.folded += 1;
            board::IssueSummary::load(stored.meta.clone(), &id, &stored.bytes)
                .map(|summary| kept.put_issue(summary))
        }
        DocKind::Patrol => PatrolSummary::load(clocks, stored.meta.clone(), &stored.bytes)
            .map(|summary| kept.put_patrol(summary)),
    };
    if let Err(HubError::Damaged { reason, .. }) = outcome {
        kept.remove(&id);
        kept.damaged.insert(id, (stored.meta, reason));
    }
    Ok(())
}

/// What a patrol's verdict depends on besides the patrol itself: the rule set, the chief's
/// role (level and division pick the rules) and the asset (its corridor).
#[derive(Debug)]
pub struct Judging {
    pub rules: RuleSet,
    rules_hash: u64,
}

impl Judging {
    pub fn new(rules: RuleSet) -> Self {
        let mut hasher = DefaultHasher::new();
        serde_json::to_vec(&rules)
            .unwrap_or_default()
            .hash(&mut hasher);
        Self {
            rules_hash: hasher.finish(),
            rules,
        }
    }
}

/// A patrol judged: its verdict, and its track when it had to be loaded for it.
#[derive(Debug)]
pub struct Judged {
    pub validation: Arc<PatrolValidation>,
    pub track: Option<Vec<sync_core::model::TrackPoint>>,
    pub asset: Option<sync_core::model::Asset>,
}

/// The patrol's verdict with the rules that apply to its chief (sync-core's
/// `validate_patrol`): the kept one when rules, chief and asset are unchanged, else judged
/// now from the stored track. `with_track` loads the track even when the verdict is kept.
pub fn judge(
    store: &dyn Store,
    judging: &Judging,
    patrol: &PatrolSummary,
    with_track: bool,
    work: &mut Work,
) -> Result<Judged, HubError> {
    let storage = crate::storage::StoreError::into_hub;
    let asset = store.get_asset(&patrol.record.asset).map_err(storage)?;
    let chief = store
        .get_user(&patrol.record.chief)
        .map_err(storage)?
        .map(|r| r.user.role);
    let mut hasher = DefaultHasher::new();
    judging.rules_hash.hash(&mut hasher);
    serde_json::to_vec(&(&chief, &asset))
        .unwrap_or_default()
        .hash(&mut hasher);
    let inputs = hasher.finish();
    let kept = patrol
        .verdict
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|(key, _)| *key == inputs)
        .map(|(_, v)| v.clone());
    if let (Some(validation), false) = (&kept, with_track) {
        return Ok(Judged {
            validation: validation.clone(),
            track: None,
            asset,
        });
    }
    let id = &patrol.meta.id;
    let damaged = |e: sync_core::doc::DocError| HubError::Damaged {
        id: id.clone(),
        reason: e.to_string(),
    };
    let stored = store.document(id)?.ok_or_else(|| HubError::Damaged {
        id: id.clone(),
        reason: "a listed patrol is no longer stored".into(),
    })?;
    work.loaded += 1;
    let track = PatrolDoc::load(&stored.bytes)
        .and_then(|doc| doc.track())
        .map_err(damaged)?;
    let validation = match kept {
        Some(validation) => validation,
        None => {
            work.validated += 1;
            let assets: Vec<_> = asset.iter().cloned().collect();
            let judged = Arc::new(validate_patrol(
                &patrol.record,
                &track,
                chief.as_ref(),
                &judging.rules,
                &assets,
                &patrol.clock,
            ));
            *patrol.verdict.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((inputs, judged.clone()));
            judged
        }
    };
    Ok(Judged {
        validation,
        track: Some(track),
        asset,
    })
}
