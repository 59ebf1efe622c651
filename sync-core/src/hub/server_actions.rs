//! Acting on an issue from the server itself: supervisors and handlers on the web dashboard, and
//! the deadline job. The server appends the event under its own automerge actor, in the name of
//! the user, after the same checks a phone's change goes through (scope, then the workflow's
//! `authorize`), and stores it like any accepted change: routing facts recomputed, an audit
//! entry for the user, a new feed position — so phones receive it at their next sync.
//!
//! The read, check and write happen under the document's lock, so a web action and a phone's
//! push never overwrite each other and the deadline job's "escalate once" holds under
//! concurrency. Also here: which accepted change first carried each event, for timelines.

use std::collections::{BTreeSet, HashMap};

use automerge::{ActorId, AutoCommit, ChangeHash};

use super::{store, AuditEntry, Caller, Hub, HubError, HubStore};
use crate::authz::{in_scope, DocMeta};
use crate::doc::{Appended, DocError, DocKind, IssueDoc, Record};
use crate::model::{DivisionCode, Role, System, User};
use crate::workflow::{self, Action, Event, IssueContext, IssueState, Targets, TransitionError};

pub use crate::workflow::{DEADLINE_JOB_DEVICE, WEB_DEVICE};

/// The automerge actor the server writes with. No device is ever bound to it, so a phone that
/// sent a change under it would be refused.
pub fn server_actor() -> ActorId {
    ActorId::from(b"chiefsync-server".as_slice())
}

/// The user the deadline job acts as: related to every issue as `Who::System` only.
pub fn system_user() -> User {
    User {
        id: workflow::SYSTEM_USER.to_string(),
        username: workflow::SYSTEM_USER.to_string(),
        display_name: "督办系统".to_string(),
        role: Role::Admin,
        active: true,
    }
}

/// What the server appended.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The event as appended, with its receipt.
    pub event: Event,
    /// The issue's state after the event.
    pub state: IssueState,
    /// Where the issue sits, for working out what the user may do next.
    pub context: IssueContext,
    /// The feed position of the save (0 for a replay, which saved nothing).
    pub feed: u64,
}

/// Why the server could not act on an issue for a user.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// Unknown, not an issue, or outside the user's scope (all look the same, so ids don't leak).
    #[error("no issue {0} in your scope")]
    NotFound(String),
    /// The workflow does not allow this action, by this user, now.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// An idempotency key that is not a UUID, or names another action or user's event.
    #[error("{0}")]
    KeyReused(String),
    /// Reading or storing the issue failed.
    #[error(transparent)]
    Hub(#[from] HubError),
}

fn damaged(id: &str, e: impl ToString) -> HubError {
    HubError::Damaged {
        id: id.to_string(),
        reason: e.to_string(),
    }
}

impl<S: HubStore> Hub<S> {
    /// Appends `action` to the issue `doc_id` on behalf of `user` (from `device`, e.g.
    /// [`WEB_DEVICE`]), if the issue is in the user's scope and the workflow allows it.
    pub fn act(
        &self,
        user: &User,
        device: &str,
        doc_id: &str,
        action: Action,
        now_ms: i64,
    ) -> Result<Acted, ActError> {
        self.append(user, device, doc_id, now_ms, None, |_| Some(action))?
            .ok_or_else(|| ActError::NotFound(doc_id.to_string()))
    }

    /// [`Hub::act`] exactly once per `event_id` (a UUID the client chose for this action): a
    /// replay — after a lost answer, or a crash between the save and the answer — finds the
    /// event already in the document, decided under the document's lock, and appends nothing.
    /// The same id with another action or user is [`ActError::KeyReused`].
    pub fn act_once(
        &self,
        user: &User,
        device: &str,
        doc_id: &str,
        event_id: &str,
        action: Action,
        now_ms: i64,
    ) -> Result<Acted, ActError> {
        if uuid::Uuid::parse_str(event_id).is_err() {
            return Err(ActError::KeyReused(format!(
                "the idempotency key {event_id:?} is not a UUID"
            )));
        }
        let event_id = event_id.to_ascii_lowercase();
        self.append(
            user,
            device,
            doc_id,
            now_ms,
            Some((event_id, action.clone())),
            |_| Some(action),
        )?
        .ok_or_else(|| ActError::NotFound(doc_id.to_string()))
    }

    /// The deadline job's step for one issue: appends an `escalated` event if
    /// [`workflow::needs_escalation`] says so, decided under the document's lock. `None` when
    /// nothing was due.
    pub fn escalate_if_overdue(
        &self,
        doc_id: &str,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<Option<Acted>, ActError> {
        let days = grace_ms / 86_400_000;
        self.append(
            &system_user(),
            DEADLINE_JOB_DEVICE,
            doc_id,
            now_ms,
            None,
            |state| {
                workflow::needs_escalation(state, now_ms, grace_ms).then(|| Action::Escalated {
                    note: match state.overdue_days(now_ms) {
                        Some(late) if days > 0 => {
                            format!("超期{late}天未整改（宽限{days}天），系统自动督办")
                        }
                        Some(late) => format!("超期{late}天未整改，系统自动督办"),
                        None => "超期未整改，系统自动督办".to_string(),
                    },
                })
            },
        )
    }

    fn append(
        &self,
        user: &User,
        device: &str,
        doc_id: &str,
        now_ms: i64,
        once: Option<(String, Action)>,
        decide: impl FnOnce(&IssueState) -> Option<Action>,
    ) -> Result<Option<Acted>, ActError> {
        let _guard = self.lock(doc_id);
        let stored = self
            .store
            .document(doc_id)?
            .filter(|s| s.meta.kind == DocKind::Issue && in_scope(user, &s.meta))
            .ok_or_else(|| ActError::NotFound(doc_id.to_string()))?;
        let mut issue = IssueDoc::load(&stored.bytes)
            .map_err(|e| damaged(doc_id, e))?
            .with_actor(server_actor());
        let before = issue.state().map_err(|e| damaged(doc_id, e))?;
        // What the store holds: the save below adds the action's change to it.
        let read_heads = issue.heads();
        if let Some((event_id, action)) = &once {
            let events = issue.events().map_err(|e| damaged(doc_id, e))?;
            if let Some(event) = events.into_iter().find(|e| &e.id == event_id) {
                if event.by != user.id || &event.action != action {
                    return Err(ActError::KeyReused(format!(
                        "the idempotency key {event_id} belongs to another action"
                    )));
                }
                let context = issue.context().map_err(|e| damaged(doc_id, e))?;
                return Ok(Some(Acted {
                    event,
                    state: before,
                    context,
                    feed: 0,
                }));
            }
        }
        let Some(action) = decide(&before) else {
            return Ok(None);
        };
        // The targets are checked before anything is appended: a web action naming a user,
        // department or issue that is not there is refused, not recorded as superseded.
        let targets = self.targets([&action])?;
        let context = issue.context().map_err(|e| damaged(doc_id, e))?;
        workflow::check_targets(user, &context, &action, &targets)?;
        let acted = match &once {
            Some((event_id, _)) => issue.act_as(event_id.clone(), user, device, now_ms, action),
            None => issue.act(user, device, now_ms, action),
        };
        let event = match acted {
            Ok(event) => event,
            Err(DocError::Transition(e)) => return Err(ActError::Transition(e)),
            Err(e) => return Err(damaged(doc_id, e).into()),
        };
        issue
            .accept(
                user,
                &[Appended {
                    event: event.id.clone(),
                    not_before_ms: now_ms,
                    judged: before.submission.clone(),
                }],
                now_ms,
                &targets,
            )
            .map_err(|e| damaged(doc_id, e))?;
        let change = issue
            .am_mut()
            .get_last_local_change()
            .ok_or_else(|| damaged(doc_id, "the appended event made no change"))?;
        // The limits a phone's change meets, for the same event typed on the web.
        crate::limits::check_changes(std::slice::from_ref(&change), stored.bytes.len())
            .map_err(HubError::from)?;
        let meta = DocMeta::of(issue.am()).map_err(|e| damaged(doc_id, e))?;
        let audit = AuditEntry {
            doc_id: doc_id.to_string(),
            change: hex::encode(change.hash().0),
            user: user.id.clone(),
            device: device.to_string(),
            actor: server_actor().to_hex_string(),
            received_at_ms: now_ms,
            previous_sync_ms: None,
        };
        let (feed, _) = store::save_merge(
            &self.store,
            doc_id,
            &meta,
            issue.am_mut(),
            (Some(stored.version), &read_heads),
            &[audit],
        )?;
        self.store.durable()?;
        let state = issue.state().map_err(|e| damaged(doc_id, e))?;
        Ok(Some(Acted {
            event,
            state,
            context,
            feed,
        }))
    }
}

/// The targets some actions name, fetched from the store before they are checked, so that a
/// storage failure fails the request instead of deciding the check.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    users: HashMap<String, User>,
    departments: BTreeSet<String>,
    issues: HashMap<String, (System, DivisionCode)>,
}

impl Targets for Fetched {
    fn user(&self, id: &str) -> Option<User> {
        self.users.get(id).cloned()
    }
    fn department(&self, name: &str) -> bool {
        self.departments.contains(name)
    }
    fn issue(&self, id: &str) -> Option<(System, DivisionCode)> {
        self.issues.get(id).cloned()
    }
}

impl<S: HubStore> Hub<S> {
    /// Fetches what `actions` name as targets.
    pub(super) fn targets<'a>(
        &self,
        actions: impl IntoIterator<Item = &'a Action>,
    ) -> Result<Fetched, HubError> {
        let mut fetched = Fetched::default();
        for action in actions {
            let (user, department, issue) = workflow::named_targets(action);
            if let Some(id) = user {
                if let Some(found) = self.store.user(id)? {
                    fetched.users.insert(id.to_string(), found);
                }
            }
            if let Some(name) = department {
                if self.store.department_exists(name)? {
                    fetched.departments.insert(name.to_string());
                }
            }
            if let Some(id) = issue {
                match self.store.document(id) {
                    Ok(Some(stored)) if stored.meta.kind == DocKind::Issue => {
                        fetched
                            .issues
                            .insert(id.to_string(), (stored.meta.system, stored.meta.division));
                    }
                    Ok(_) | Err(HubError::Damaged { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(fetched)
    }

    /// Gives receipts to the events of `doc` (an issue) that the server just accepted from
    /// `user`, in one change under the server's actor, and returns the routing facts after
    /// and how many of those events did not count.
    /// No event counts earlier than the receipts among the heads `floor` says the sending
    /// device holds, whatever dependencies its change names (a sender may leave the server's
    /// receipts out of them), nor earlier than the device's last acknowledged sync: an event
    /// the device held then would have gone up then; nor earlier than the device's binding to
    /// the user (`Caller::bound_at_ms`): a phone cannot record for a chief before it was
    /// theirs (`rules::times`, the one rule for times a phone supplies).
    pub(super) fn give_receipts(
        &self,
        caller: &Caller,
        doc_id: &str,
        doc: &mut AutoCommit,
        appended: &[Appended],
        floor: &Floor<'_>,
        now_ms: i64,
    ) -> Result<(DocMeta, usize), HubError> {
        let user = &caller.user;
        let floor = received_floor(doc, floor.held)
            .max(floor.synced.unwrap_or(i64::MIN))
            .max(caller.bound_at_ms.unwrap_or(i64::MIN));
        let appended: Vec<Appended> = appended
            .iter()
            .map(|a| Appended {
                not_before_ms: a.not_before_ms.max(floor),
                ..a.clone()
            })
            .collect();
        let appended = appended.as_slice();
        let mut issue = IssueDoc::from_automerge(std::mem::take(doc))
            .map_err(|e| damaged(doc_id, e))?
            .with_actor(server_actor());
        let accepted = issue
            .events()
            .map_err(|e| damaged(doc_id, e))
            .and_then(|events| {
                let actions = events
                    .iter()
                    .filter(|e| appended.iter().any(|a| a.event == e.id))
                    .map(|e| &e.action);
                self.targets(actions)
            })
            .and_then(|targets| {
                issue
                    .accept(user, appended, now_ms, &targets)
                    .map_err(|e| damaged(doc_id, e))
            });
        issue.am_mut().commit();
        *doc = std::mem::take(issue.am_mut());
        let not_counted = accepted?;
        Ok((
            DocMeta::of(doc).map_err(|e| damaged(doc_id, e))?,
            not_counted,
        ))
    }
}

/// What bounds the times of the events a device sends ([`Hub::give_receipts`]).
pub(super) struct Floor<'a> {
    /// Heads the server knows the device holds: what it sent the device, and what the device
    /// says it holds.
    pub held: &'a [ChangeHash],
    /// The device's last acknowledged sync (`DeviceLedger::device_synced`).
    pub synced: Option<i64>,
}

/// The latest server receive time among the receipts of `doc` as of `heads` (those of them
/// `doc` holds); `i64::MIN` when there are none.
fn received_floor(doc: &mut AutoCommit, heads: &[ChangeHash]) -> i64 {
    let mut heads: Vec<ChangeHash> = heads
        .iter()
        .filter(|h| doc.get_change_by_hash(h).is_some())
        .copied()
        .collect();
    heads.sort();
    heads.dedup();
    if heads.is_empty() {
        return i64::MIN;
    }
    doc.fork_at(&heads)
        .ok()
        .and_then(|fork| IssueDoc::from_automerge(fork).ok())
        .and_then(|issue| issue.receipts().ok())
        .and_then(|receipts| receipts.iter().filter_map(|r| r.received_ms).max())
        .unwrap_or(i64::MIN)
}

/// For each event id of an issue, the audit entry of the accepted change that appended it.
/// Events written before the server kept an audit (e.g. seeded ones) have none.
pub fn event_receipts(
    bytes: &[u8],
    history: &[AuditEntry],
) -> Result<HashMap<String, AuditEntry>, DocError> {
    let mut doc = AutoCommit::load(bytes)?;
    let mut found = HashMap::new();
    for entry in history {
        let Some(hash) = parse_hash(&entry.change) else {
            continue;
        };
        let Some(change) = doc.get_change_by_hash(&hash) else {
            continue;
        };
        let deps = change.deps().to_vec();
        let before = event_ids_at(&mut doc, &deps);
        for id in event_ids_at(&mut doc, &[hash]) {
            if !before.contains(&id) {
                found.entry(id).or_insert_with(|| entry.clone());
            }
        }
    }
    Ok(found)
}

fn parse_hash(hex: &str) -> Option<ChangeHash> {
    hex.parse().ok()
}

/// The event ids in the document as of `heads` (none before the document had events).
fn event_ids_at(doc: &mut AutoCommit, heads: &[ChangeHash]) -> BTreeSet<String> {
    if heads.is_empty() {
        return BTreeSet::new();
    }
    doc.fork_at(heads)
        .ok()
        .and_then(|fork| IssueDoc::from_automerge(fork).ok())
        .and_then(|issue| issue.events().ok())
        .map(|events| events.into_iter().map(|e| e.id).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{actor_for, NewIssue};
    use crate::model::{DivisionCode, Jurisdiction, Level, Severity, System};

    fn chief() -> User {
        User {
            id: "u-chief".into(),
            username: "chief".into(),
            display_name: "河长".into(),
            role: Role::Chief {
                system: System::River,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: DivisionCode::new("370105014201").unwrap(),
                    assets: vec!["xqh-01".into()],
                },
            },
            active: true,
        }
    }

    fn receipt(doc: &mut IssueDoc, device: &str, at: i64) -> AuditEntry {
        let change = doc.am_mut().get_last_local_change().unwrap();
        AuditEntry {
            doc_id: doc.id().to_string(),
            change: hex::encode(change.hash().0),
            user: "u-chief".into(),
            device: device.into(),
            actor: String::new(),
            received_at_ms: at,
            previous_sync_ms: None,
        }
    }

    #[test]
    fn each_event_is_credited_to_the_change_that_appended_it() {
        let chief = chief();
        let new = NewIssue {
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: "xqh-01".into(),
            division: DivisionCode::new("370105014201").unwrap(),
            location: [116.98, 36.72],
            description: "垃圾".into(),
            patrol: None,
        };
        let mut issue = IssueDoc::report(actor_for(1), &chief, "phone", 10, &new).unwrap();
        issue.am_mut().commit();
        // The report arrived without an audit entry (as seeded documents do).
        issue.set_description("河面垃圾").unwrap();
        issue.am_mut().commit();
        let edit = receipt(&mut issue, "phone", 20);
        let comment = issue
            .act(
                &chief,
                "phone",
                30,
                Action::Comment {
                    text: "补充".into(),
                },
            )
            .unwrap();
        let commented = receipt(&mut issue, "phone", 40);
        let found = event_receipts(&issue.save(), &[edit, commented.clone()]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[&comment.id], commented);
    }
}
