//! The server-side record of each report from the public, hotline or letter ([`Case`]): the
//! tracking code, the issue it became, the reporter's phone number and what he said of the
//! outcome. Kept in the store's meta records, never in a document (documents reach phones) and
//! never in an export.

use serde::{Deserialize, Serialize};
use sync_core::authz::DocMeta;
use sync_core::doc::{IssueDoc, NewIssue, Record};
use sync_core::hub::{server_actor, AuditEntry, HubStore};
use sync_core::model::User;
use sync_core::public::{IssueSource, Satisfaction};
use sync_core::workflow::{Targets, PUBLIC_DEVICE};

use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Hold, Store, StoreError};

/// How long a reporter's phone number is kept after the report: long enough to call back about
/// the rectification and its follow-up check, then erased.
pub const PHONE_RETENTION_DAYS: i64 = 180;
const DAY_MS: i64 = 86_400_000;

const CASE: &str = "public.case.";
const BY_ISSUE: &str = "public.issue.";
const PHONE: &str = "public.supervision_phone.";

/// Holds the lock of the case `code` until the answer drops: every change of a stored case is
/// made under it, on every server of the store (a resident's answer, an expired phone number
/// erased), so a case read, changed and stored again never loses what another server stored
/// in between. One lock per case: a write to one case never waits for another's, so a script
/// sending answer after answer to its own report holds up no one else's. Taken only for the
/// read and write of the case itself, after every check of the request.
pub fn hold_case<'a>(store: &'a dyn Store, code: &str) -> Result<Hold<'a>, StoreError> {
    store.hold(&format!("public case {code}"))
}

/// What the person said once the issue was finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feedback {
    #[schema(value_type = String)]
    pub satisfaction: Satisfaction,
    pub reason: String,
    pub at_ms: i64,
}

/// One report and its answer back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The tracking code (unguessable: 100 random bits).
    pub code: String,
    pub issue: String,
    pub asset: String,
    pub source: IssueSource,
    pub created_ms: i64,
    /// The reporter's phone number while it is kept.
    pub phone: Option<String>,
    pub feedback: Option<Feedback>,
}

impl Case {
    /// When the phone number is erased.
    pub fn phone_until_ms(&self) -> i64 {
        self.created_ms + PHONE_RETENTION_DAYS * DAY_MS
    }
}

fn corrupt(key: &str, e: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

/// A new tracking code: 20 characters of an alphabet without look-alikes.
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).expect("the system's random source");
    raw.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Stores a case (a new one, or one changed under its lock, [`hold_case`]).
pub fn put_case(store: &dyn Store, case: &Case) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(case).map_err(|e| corrupt(&case.code, e))?;
    store.put_meta(&format!("{CASE}{}", case.code), &bytes)?;
    store.put_meta(&format!("{BY_ISSUE}{}", case.issue), case.code.as_bytes())
}

fn read(store: &dyn Store, code: &str) -> Result<Option<Case>, StoreError> {
    let key = format!("{CASE}{code}");
    match store.get_meta(&key)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(&key, e)),
        None => Ok(None),
    }
}

/// Erases the phone number if its period is over; whether it did.
fn erase_expired(case: &mut Case, now_ms: i64) -> bool {
    let expired = case.phone.is_some() && now_ms >= case.phone_until_ms();
    if expired {
        case.phone = None;
    }
    expired
}

/// The case of a tracking code, with an expired phone number erased first (in the store too,
/// under the case's lock).
pub fn case(store: &dyn Store, code: &str, now_ms: i64) -> Result<Option<Case>, StoreError> {
    let Some(mut case) = read(store, code)? else {
        return Ok(None);
    };
    if erase_expired(&mut case, now_ms) {
        let _writes = hold_case(store, code)?;
        return case_held(store, code, now_ms);
    }
    Ok(Some(case))
}

/// [`case`] for a caller that holds the case's lock ([`hold_case`]) already.
pub fn case_held(store: &dyn Store, code: &str, now_ms: i64) -> Result<Option<Case>, StoreError> {
    let Some(mut case) = read(store, code)? else {
        return Ok(None);
    };
    if erase_expired(&mut case, now_ms) {
        put_case(store, &case)?;
    }
    Ok(Some(case))
}

pub fn case_of_issue(
    store: &dyn Store,
    issue: &str,
    now_ms: i64,
) -> Result<Option<Case>, StoreError> {
    match store.get_meta(&format!("{BY_ISSUE}{issue}"))? {
        Some(code) => case(store, &String::from_utf8_lossy(&code), now_ms),
        None => Ok(None),
    }
}

/// Every case as stored, by code.
fn stored_cases(store: &dyn Store) -> Result<Vec<Case>, StoreError> {
    store
        .list_meta(CASE)?
        .into_iter()
        .map(|(key, bytes)| serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e)))
        .collect()
}

/// Erases every phone number kept past its period, whether or not anyone reads its case again;
/// returns how many. The timer job runs it with the other clean-ups.
pub fn erase_expired_phones(store: &dyn Store, now_ms: i64) -> Result<usize, StoreError> {
    let mut erased = 0;
    for mut case in stored_cases(store)? {
        if erase_expired(&mut case, now_ms) {
            let _writes = hold_case(store, &case.code)?;
            if case_held(store, &case.code, now_ms)?.is_some() {
                erased += 1;
            }
        }
    }
    Ok(erased)
}

/// Every case, phone numbers past their period erased on the way.
pub fn all_cases(store: &dyn Store, now_ms: i64) -> Result<Vec<Case>, StoreError> {
    let mut out = Vec::new();
    for mut case in stored_cases(store)? {
        if erase_expired(&mut case, now_ms) {
            let _writes = hold_case(store, &case.code)?;
            if let Some(case) = case_held(store, &case.code, now_ms)? {
                out.push(case);
            }
        } else {
            out.push(case);
        }
    }
    Ok(out)
}

/// The supervision phone number printed on the signboards of one system's assets.
pub fn supervision_phone(
    store: &dyn Store,
    system: sync_core::model::System,
) -> Result<Option<String>, StoreError> {
    Ok(store
        .get_meta(&format!("{PHONE}{}", system.as_str()))?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

pub fn set_supervision_phone(
    store: &dyn Store,
    system: sync_core::model::System,
    phone: &str,
) -> Result<(), StoreError> {
    store.put_meta(&format!("{PHONE}{}", system.as_str()), phone.as_bytes())
}

struct NoTargets;
impl Targets for NoTargets {
    fn user(&self, _: &str) -> Option<User> {
        None
    }
    fn department(&self, _: &str) -> bool {
        false
    }
    fn issue(&self, _: &str) -> Option<(sync_core::model::System, sync_core::model::DivisionCode)> {
        None
    }
}

/// Records a report as an ordinary issue document under the server's actor, in `reporter`'s
/// name, with its source and its `reported` event already received; stored like any accepted
/// change (routing facts, an audit entry, a feed position), so it reaches the board and the
/// asset's chiefs. Returns the issue id.
pub fn record_issue(
    state: &AppState,
    reporter: &User,
    new: &NewIssue,
    source: IssueSource,
    photos: &[sync_core::model::PhotoRef],
    now_ms: i64,
) -> Result<String, ApiError> {
    let damaged = |e: sync_core::doc::DocError| ApiError::Internal(e.to_string());
    let mut issue = IssueDoc::report(server_actor(), reporter, PUBLIC_DEVICE, now_ms, new)
        .map_err(|e| ApiError::Unprocessable {
            code: sync_core::api_types::ErrorCode::NotReportable,
            message: e.to_string(),
        })?;
    issue.set_source(source).map_err(damaged)?;
    for photo in photos {
        issue.add_photo(photo).map_err(damaged)?;
    }
    let reported = issue.events().map_err(damaged)?;
    let appended: Vec<_> = reported
        .iter()
        .map(|e| sync_core::doc::Appended {
            event: e.id.clone(),
            not_before_ms: now_ms,
            judged: None,
        })
        .collect();
    issue
        .accept(reporter, &appended, now_ms, &NoTargets)
        .map_err(damaged)?;
    issue.am_mut().commit();
    let change = issue
        .am_mut()
        .get_last_local_change()
        .ok_or_else(|| ApiError::Internal("the report made no change".into()))?;
    let id = issue.id().to_string();
    let meta = DocMeta::of(issue.am()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let audit = AuditEntry {
        doc_id: id.clone(),
        change: hex::encode(change.hash().0),
        user: reporter.id.clone(),
        device: PUBLIC_DEVICE.to_string(),
        actor: server_actor().to_hex_string(),
        received_at_ms: now_ms,
        previous_sync_ms: None,
    };
    let hub_store = state.hub.store();
    hub_store
        .save_document(&id, &meta, &issue.save(), &[audit])
        .map_err(ApiError::from)?;
    hub_store.durable().map_err(ApiError::from)?;
    Ok(id)
}
