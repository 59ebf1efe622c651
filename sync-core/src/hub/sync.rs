//! `POST /sync`: one request with a device's changes for many documents, one response with
//! everything the device lacks of what its user's phones receive (`authz::delivered`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::delivery::DocChanges;
use super::placement::PlacedAgainst;
use super::store::NEVER_APPLIED;
use super::{store, Caller, ChangesRead, DeviceDoc, Hub, HubError, HubStore};
use crate::authz::{delivered, DocMeta, Reach, DELIVERY_RULE};
use crate::protocol::{DocUpdate, Heads, PackedUpdate, SyncRequest, SyncResponse};

/// Documents to send are read from the store several at a time (`Hub::docs_changes`): one
/// request for their versions and one for the saves the delivery cache lacks, instead of one
/// or two each. The first read takes `FIRST_READ`; each next one as many as the answer's room
/// left holds at the size read so far, at most `READ_TOGETHER`, so what is read ahead stays
/// within about one read of what the answer carries.
const FIRST_READ: usize = 16;
const READ_TOGETHER: usize = 256;
/// Feed positions read in one call when a walk looks for what earlier pages sent.
const SEQS_TOGETHER: usize = 1024;

/// The device an answer is for, as read once at its start: its caller, what its records say
/// it holds (`Hub::forget_unapplied`) and its last acknowledged sync. Nothing else writes them
/// while the answer holds the device's claim.
pub(super) struct Device<'a> {
    pub(super) caller: &'a Caller,
    pub(super) held: &'a HashMap<String, DeviceDoc>,
    pub(super) synced: Option<i64>,
    /// The reference data the answer's new records were placed against.
    pub(super) placed: PlacedAgainst,
}

/// A fingerprint of what decides what a user's phones receive (the user's role and the rule of
/// `authz::delivered`); when it changes, the next sync re-routes.
fn scope_key(caller: &Caller) -> String {
    serde_json::json!({
        "role": caller.user.role,
        "active": caller.user.active,
        "delivery": DELIVERY_RULE,
    })
    .to_string()
}

/// What the hub keeps of a device's last complete walk of its scope: the fingerprint, and the
/// cursor of the answer that completed it.
fn scope_walked_at(scope: &str, cursor: u64) -> String {
    format!("{scope}\n{cursor}")
}

/// Whether the device's scope was walked whole under `scope` in an answer it applied: the kept
/// fingerprint is `scope`, and the device presents that answer's cursor or a later one. An
/// answer the device never applied (lost, or a request answered twice) must not spare the next
/// sync its walk: that answer may be the only one that sent what the new scope brought in.
/// A fingerprint kept without a cursor (before cursors were kept) counts as applied.
fn scope_walked(kept: Option<&str>, scope: &str, cursor: u64) -> bool {
    match kept.map(|kept| kept.rsplit_once('\n')) {
        Some(Some((kept, at))) => kept == scope && at.parse::<u64>().is_ok_and(|at| cursor >= at),
        Some(None) => kept == Some(scope),
        None => false,
    }
}

/// A sync response, with the packed form of every document it sends whole (kept by the hub for
/// each stored version), ready to be encoded for the wire.
#[derive(Debug)]
pub struct PackedResponse {
    /// The response, as [`Hub::sync`] returns it.
    pub response: SyncResponse,
    packed: Vec<Option<Arc<PackedUpdate>>>,
}

impl PackedResponse {
    /// The response's bytes on the wire, as [`SyncResponse::encode_packed`] makes them.
    pub fn encode(&self) -> Vec<u8> {
        self.response.encode_packed(&self.packed)
    }

    /// [`Self::encode`] in the request's protocol `version`, with the user's overview after
    /// the response when the phone's is out of date ([`SyncResponse::encode_packed_in`]).
    pub fn encode_in(
        &self,
        version: u8,
        overview: Option<&crate::protocol::OverviewUpdate>,
    ) -> Vec<u8> {
        self.response
            .encode_packed_in(version, &self.packed, overview)
    }
}

impl<S: HubStore> Hub<S> {
    /// Handles one batch sync request. Nothing is acknowledged before it is stored durably; a
    /// retried request changes nothing twice.
    pub fn sync(
        &self,
        caller: &Caller,
        request: &SyncRequest,
        now_ms: i64,
    ) -> Result<SyncResponse, HubError> {
        Ok(self.answer(caller, request, now_ms)?.response)
    }

    /// [`Self::sync`], answered with the packed documents it sends whole, for the wire.
    pub fn answer(
        &self,
        caller: &Caller,
        request: &SyncRequest,
        now_ms: i64,
    ) -> Result<PackedResponse, HubError> {
        self.answer_within(caller, request, now_ms, None)
    }

    /// [`Self::answer`] carrying at most the document bytes the phone asked for
    /// (`protocol::ANSWER_BYTES_HEADER`, bounded by `AnswerLimits::asked`); what does not fit
    /// comes in the next pages.
    pub fn answer_within(
        &self,
        caller: &Caller,
        request: &SyncRequest,
        now_ms: i64,
        asked_bytes: Option<u64>,
    ) -> Result<PackedResponse, HubError> {
        // Parse everything before touching anything: a malformed body changes nothing.
        request.check()?;
        let mut pushes = Vec::with_capacity(request.docs.len());
        for push in &request.docs {
            pushes.push((push, self.parse_push(push)?));
        }
        let sizes = self.check_pushes(&pushes)?;
        // From the first read of the device's records to the last write of them, this answer
        // is the device's only one (`claims`).
        let Some(_claim) = self.store.claim_device(&caller.device)? else {
            return Err(HubError::SyncInProgress);
        };
        // What the phone asked for bounds the documents this answer walks to; the answers to
        // its own pushes keep the server's limit (a phone cannot take them later, and asking
        // small must not turn a push into a refusal).
        let server_limits = self.answer_limits();
        let limits = server_limits.asked(asked_bytes);
        // What the server records the device as holding, read once; first, what answers it
        // never applied had sent is taken back (`forget_unapplied`).
        let mut held_all = self.forget_unapplied(caller, request.cursor)?;
        // The device's last acknowledged sync bounds the times of what it pushes (`rules::
        // times`); only the end of this answer moves it.
        let synced = self.store.device_synced(&caller.device)?;

        let scope = scope_key(caller);
        let kept_scope = self.store.device_scope(&caller.device)?;
        let rescope = !scope_walked(kept_scope.as_deref(), &scope, request.cursor);
        // A walk of a new scope while nothing was saved since the device's cursor would answer
        // with that very cursor, and an answer lost or answered twice could not be told from
        // the one before it (`forget_unapplied`). A position of its own, taken before the
        // head is read, names it; saves made meanwhile come after it.
        if rescope && self.store.feed_head()? == request.cursor {
            self.store.mark_feed()?;
        }
        // The response's cursor is the feed position *before* this request's own saves: a
        // document another device changes while this request runs gets a later position, so
        // the next sync from this cursor still finds it, even if this request pushed to it too.
        let head = self.store.feed_head()?;
        let mut updates = Vec::new();
        let mut touched = BTreeSet::new();
        let mut device_docs = Vec::new();
        // What the answers to the pushes carry, counted as they are made: a request pushing
        // many large documents it claims to hold nothing of is refused at the limit instead
        // of gathering them all.
        let spent = AtomicUsize::new(0);
        let device = Device {
            caller,
            held: &held_all,
            synced,
            placed: PlacedAgainst::default(),
        };
        let received =
            self.receive_all(&device, pushes, &sizes, &spent, server_limits.bytes, now_ms);
        let mut removed = Vec::new();
        let mut forget = Vec::new();
        for (push, outcome) in request.docs.iter().zip(received) {
            let received = outcome?;
            let id = &push.doc_id;
            touched.insert(id.clone());
            match received.heads {
                // The phone's own work took a document sync sent it out of what its phones
                // receive (an office assigned the problem, a department submitted its
                // rectification): it is removed from the phone in this answer, not sent the
                // server's receipts of that work to hold until the next sync removes it. The
                // same push again (its answer was lost), or work saved while it was on its way,
                // is answered alike. The server's heads are the floor of the device's receipts
                // (`DeviceDoc::gone`), as if they had been sent: its work's own receipt bounds
                // what it sends on top of that work, whatever the change names.
                Some(heads) if received.leaves => {
                    removed.push(id.clone());
                    let held = held_all.get(id).cloned().unwrap_or_default();
                    forget.push((id.clone(), Some(held.gone_after(&heads))));
                }
                Some(heads) => device_docs.push((id.clone(), heads)),
                None => {}
            }
            updates.push(received.update);
        }

        // What the phone dropped leaves its records first (only its receipts' floor stays), so
        // the walk below treats it as never held. One dropped as the server has it stays away; one that changed since
        // what the phone held comes back whole in this very answer if it is still delivered:
        // the phone chose what to drop from the facts of its last sync, and a problem assigned
        // to the chief since must not be dropped with them.
        for (id, known) in self.forget_dropped(caller, request, &held_all)? {
            held_all.insert(id.clone(), known.gone());
            let unchanged = match self.deliverable(&id)? {
                Some(doc) => doc.after(known.known(request.cursor)).is_empty(),
                None => true,
            };
            if unchanged {
                touched.insert(id);
            }
        }
        // Only documents delivered to the user's phones (`authz::delivered`: what they work on,
        // not all they may read), or held by the device (one no longer delivered is removed
        // from it): copying the routing facts of every changed document for every phone cost
        // more than routing them.
        let delivers = |meta: &DocMeta| delivered(&caller.user, meta, now_ms);
        let holds = |id: &str| held_all.get(id).is_some_and(DeviceDoc::holds);
        let wanted = |meta: &DocMeta| delivers(meta) || holds(&meta.id);
        let candidates = if rescope {
            // Walked over the user's own and assigned documents and the issues of their place
            // only (`Reach`: all that `delivered` can accept); what the device holds besides
            // is read after the walk.
            self.store
                .delivered_page(&Reach::of(&caller.user), None, usize::MAX, &delivers)?
        } else {
            self.store.changed_since(request.cursor, head, &wanted)?
        };
        if rescope {
            // A walk of the scope comes in pages (a first sync, a phone asking for small
            // answers), and each page walks it again: a document an earlier page sent as it
            // still stands is passed without reading it.
            touched.extend(self.sent_as_it_stands(&candidates, &held_all, request.cursor)?);
        }
        let held_of = |id: &str| -> Option<DeviceDoc> { held_all.get(id).cloned() };
        // `packed[i]`, when there, is `updates[i]` packed.
        let mut packed: Vec<Option<Arc<PackedUpdate>>> = Vec::new();
        // An answer carries at most `limits`; the documents past them come at the next sync.
        // The answer's cursor then stops short of the first document left out (it and all
        // after it have later feed positions), and what this answer sends is pending at that
        // cursor; after a change of scope, the scope is recorded only once all was sent.
        let mut spent = spent.into_inner();
        let mut sent = 0usize;
        let mut cursor = head;
        let mut complete = true;
        let mut pageable = true;
        let to_send = |meta: &&DocMeta| !touched.contains(&meta.id) && delivers(meta);
        let mut read: HashMap<String, ChangesRead> = HashMap::new();
        let mut window = FIRST_READ;
        for (at, meta) in candidates.iter().enumerate() {
            if touched.contains(&meta.id) {
                continue;
            }
            let held = held_of(&meta.id);
            if !delivers(meta) {
                if let Some(held) = held.filter(DeviceDoc::holds) {
                    removed.push(meta.id.clone());
                    forget.push((meta.id.clone(), Some(held.gone())));
                }
                continue;
            }
            if !read.contains_key(&meta.id) {
                let ids: Vec<&str> = candidates[at..]
                    .iter()
                    .filter(to_send)
                    .take(window.min(limits.docs.saturating_sub(sent)).max(1))
                    .map(|meta| meta.id.as_str())
                    .collect();
                let changes = self.docs_changes(&ids)?;
                let (docs, bytes) = changes
                    .iter()
                    .filter_map(|read| read.as_ref().ok()?.as_ref())
                    .fold((0, 0), |(docs, bytes), doc| (docs + 1, bytes + doc.bytes()));
                let room = limits.bytes.saturating_sub(spent);
                window = match bytes / docs.max(1) {
                    0 => READ_TOGETHER,
                    size => (room / size).clamp(1, READ_TOGETHER),
                };
                read = ids.iter().map(|id| id.to_string()).zip(changes).collect();
            }
            // A damaged stored document is reported by the server's integrity check; it must
            // not stop every device in its scope from syncing everything else.
            let doc = match read.remove(&meta.id).expect("read above") {
                Ok(Some(doc)) => doc,
                Ok(None) | Err(HubError::Damaged { .. }) => continue,
                Err(err) => return Err(err),
            };
            let known = held.clone().unwrap_or_default();
            let changes = doc.after(known.known(request.cursor));
            if changes.is_empty() {
                continue;
            }
            let size = changes.iter().map(Vec::len).sum::<usize>();
            if pageable && sent > 0 && (spent + size > limits.bytes || sent >= limits.docs) {
                if rescope {
                    complete = false;
                    break;
                }
                match self.resume_before(&candidates[at..], request.cursor, head)? {
                    Some(resume) => {
                        cursor = resume;
                        complete = false;
                        break;
                    }
                    // A store that does not number its saves cannot be paged: all is sent.
                    None => pageable = false,
                }
            }
            spent += size;
            sent += 1;
            packed.resize(updates.len(), None);
            if changes.len() == doc.change_count() {
                packed.push(Some(doc.whole()));
            }
            let heads = doc.heads().to_vec();
            device_docs.push((meta.id.clone(), heads.clone()));
            updates.push(DocUpdate {
                doc_id: meta.id.clone(),
                kind: Some(meta.kind),
                heads: Heads::Listed(heads),
                changes,
                refused: Vec::new(),
                missing: Vec::new(),
                snapshot: None,
            });
        }
        if rescope {
            // The listing above holds every delivered document: each held one of them was
            // kept, sent, or is left for the next sync when this answer is full (the scope is
            // then not recorded, so that sync re-routes too). The rest of what the device holds
            // is read here: documents no longer delivered, gone from the store, or whose facts
            // do not read.
            let listed: HashSet<&str> = candidates.iter().map(|m| m.id.as_str()).collect();
            let unlisted: Vec<&str> = held_all
                .keys()
                .map(String::as_str)
                .filter(|id| !listed.contains(id) && holds(id))
                .collect();
            let mut stored = Vec::with_capacity(unlisted.len());
            for ids in unlisted.chunks(FIRST_READ) {
                let read = store::read_documents(&self.store, ids)?;
                stored.extend(
                    read.into_iter()
                        .map(|read| read.map(|doc| doc.map(|d| d.meta))),
                );
            }
            for (id, stored) in unlisted.iter().zip(stored) {
                let still = match stored {
                    Ok(Some(meta)) => delivers(&meta),
                    Ok(None) => false,
                    Err(HubError::Damaged { .. }) => true,
                    Err(err) => return Err(err),
                };
                if !still && !touched.contains(*id) {
                    removed.push(id.to_string());
                    forget.push((id.to_string(), held_of(id).map(|d| d.gone())));
                }
            }
        }

        let mut records = forget;
        for (id, heads) in device_docs {
            let previous = held_of(&id).unwrap_or_default();
            records.push((id, Some(previous.sent(request.cursor, heads, cursor))));
        }
        self.store.put_device_docs(&caller.device, &records)?;
        if rescope && complete {
            self.store
                .put_device_scope(&caller.device, &scope_walked_at(&scope, cursor))?;
        } else if rescope && kept_scope.is_some_and(|kept| !kept.is_empty()) {
            // A page of the walk: the next sync walks the scope again, whatever cursor it
            // presents, even past that of a complete walk the device never applied.
            self.store.put_device_scope(&caller.device, "")?;
        }
        // A request that pushes nothing shows the device held nothing the server lacked: what
        // it sends later was recorded after this answer, and its times are bounded by it
        // (`rules::times`). A request that pushes is not such a sync: a phone back after weeks
        // offline sends its backlog over several requests, and each part keeps its own dates.
        // Nor is one whose cursor is past the feed: the server was restored from a backup and
        // lacks what the phone sent since, which the phone sends again only after this answer.
        if request.docs.is_empty() && request.cursor <= head {
            // Never moved back: another server's clock may run behind the one that vouched.
            let vouched = synced.map_or(now_ms, |synced| synced.max(now_ms));
            self.store.put_device_synced(&caller.device, vouched)?;
            // Every receipt a record of a document the device no longer holds keeps as its
            // floor is older than the time just vouched for: those records can go.
            self.forget_floors(caller, &held_all, &records)?;
        }
        // The answer acknowledges the merged changes: durable first.
        self.store.durable()?;
        Ok(PackedResponse {
            response: SyncResponse {
                cursor,
                docs: updates,
                removed,
                more: !complete,
            },
            packed,
        })
    }

    /// What the device's records say it holds, after taking back what answers it never
    /// applied had sent: the device presents the cursor of the last answer it applied, and
    /// its cursor only moves forward, so a record sent in an answer whose cursor is past the
    /// one presented now was never received. Such a record falls back to what the device held
    /// before (what it sent stays as the floor of the device's receipts). Left alone, a later
    /// answer whose cursor passes that one without visiting the document (it was saved again
    /// meanwhile, past that answer's walk or page) would make the record stand, and the next
    /// change sent would build on changes the phone never got.
    fn forget_unapplied(
        &self,
        caller: &Caller,
        cursor: u64,
    ) -> Result<HashMap<String, DeviceDoc>, HubError> {
        let mut held: HashMap<String, DeviceDoc> = self
            .store
            .device_docs(&caller.device)?
            .into_iter()
            .collect();
        let mut unapplied = Vec::new();
        for (id, record) in &mut held {
            if record.pending_cursor > cursor && record.pending_cursor != NEVER_APPLIED {
                // Still what was sent: a phone cannot lower the floor its receipts are
                // counted from by presenting an old cursor.
                record.pending_cursor = NEVER_APPLIED;
                unapplied.push((id.clone(), Some(record.clone())));
            }
        }
        if !unapplied.is_empty() {
            self.store.put_device_docs(&caller.device, &unapplied)?;
        }
        Ok(held)
    }

    /// The documents among `candidates` the device holds as they stand: an answer sent each
    /// one and the device presented that answer's cursor, and nothing was saved to it since
    /// (its feed position is not past that cursor; the version sent was read after every save
    /// up to it).
    fn sent_as_it_stands(
        &self,
        candidates: &[DocMeta],
        held: &HashMap<String, DeviceDoc>,
        cursor: u64,
    ) -> Result<Vec<String>, HubError> {
        let sent_at = |id: &str| {
            let record = held.get(id)?;
            let at = record.pending_cursor;
            (at != 0 && at != NEVER_APPLIED && cursor >= at).then_some(at)
        };
        let sent: Vec<&str> = candidates
            .iter()
            .map(|meta| meta.id.as_str())
            .filter(|id| sent_at(id).is_some())
            .collect();
        let mut passed = Vec::new();
        for ids in sent.chunks(SEQS_TOGETHER) {
            let seqs = self.store.document_seqs(ids)?;
            for id in ids {
                if seqs.get(*id).is_some_and(|seq| Some(*seq) <= sent_at(id)) {
                    passed.push(id.to_string());
                }
            }
        }
        Ok(passed)
    }

    /// Forgets the device's records that only keep a floor, as they stand after this answer
    /// wrote `written` over `held`; called once the device's sync time passed them.
    fn forget_floors(
        &self,
        caller: &Caller,
        held: &HashMap<String, DeviceDoc>,
        written: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError> {
        let mut now: HashMap<&str, Option<&DeviceDoc>> =
            held.iter().map(|(id, d)| (id.as_str(), Some(d))).collect();
        now.extend(written.iter().map(|(id, d)| (id.as_str(), d.as_ref())));
        let floors: Vec<(String, Option<DeviceDoc>)> = now
            .into_iter()
            .filter(|(_, d)| d.is_some_and(|d| !d.holds()))
            .map(|(id, _)| (id.to_string(), None))
            .collect();
        if !floors.is_empty() {
            self.store.put_device_docs(&caller.device, &floors)?;
        }
        Ok(())
    }

    /// The cursor from which a sync finds every document of `rest` again: just before the
    /// earliest feed position among them (a document saved since has a later one). `None`
    /// when the store does not number its saves or no such cursor is past `after`.
    fn resume_before(
        &self,
        rest: &[DocMeta],
        after: u64,
        head: u64,
    ) -> Result<Option<u64>, HubError> {
        let ids: Vec<&str> = rest.iter().map(|meta| meta.id.as_str()).collect();
        let seqs = self.store.document_seqs(&ids)?;
        let mut resume = head;
        for id in ids {
            match seqs.get(id) {
                Some(seq) => resume = resume.min(seq.saturating_sub(1)),
                None => return Ok(None),
            }
        }
        Ok((resume > after).then_some(resume))
    }

    /// The stored document's changes, or `None` when it is absent or damaged.
    fn deliverable(&self, id: &str) -> Result<Option<Arc<DocChanges>>, HubError> {
        match self.doc_changes(id) {
            Ok(doc) => Ok(doc),
            Err(HubError::Damaged { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}
