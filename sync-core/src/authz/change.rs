//! Authorizing one change: apply it to a copy of the document as its author saw it, then judge
//! the difference by who the user is.
//!
//! Only the rules about users live here; the shape of documents is `schema`'s, the workflow's
//! rules are the transition table's (`workflow::authorize`), and this module must not grow
//! rules of its own about event kinds.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};

use automerge::{ActorId, AutoCommit, Change};

use super::meta::{in_scope, DocMeta};
use super::schema::{self, Diff, Frame, Reading};
use super::Refusal;
use crate::doc::{Appended, Issue, Patrol};
use crate::model::{Role, User};
use crate::workflow::{self, Event, IssueContext, Receipt};

/// How far past the operations of its dependencies a change may start numbering its own.
/// Automerge starts a change right after the largest operation number it was made on, so an
/// honest change has no slack at all; some is allowed for other implementations. Without a
/// bound, one change starting near `u32::MAX` leaves no numbers for any later change, and the
/// document can never take another edit.
pub const MAX_OP_COUNTER_SLACK: u64 = 1_024;

/// The record fields of an issue, as opposed to its workflow events.
const ISSUE_RECORD: &[&str] = &["description", "severity", "photos"];

/// Whether `user`, whose device is bound to `bound_actor`, may apply `change` to the document
/// `doc_id` as it stood at the change's dependencies (`before`; an empty document when the
/// change creates it). `before` must hold no uncommitted operations.
pub fn authorize_change(
    user: &User,
    bound_actor: &ActorId,
    doc_id: &str,
    before: &AutoCommit,
    change: &Change,
) -> Result<(), Refusal> {
    admit(
        user,
        bound_actor,
        doc_id,
        before,
        None,
        before.clone(),
        change,
    )
    .map(|_| ())
}

/// What an allowed change leaves: the document with the change applied, its frame and reading,
/// and the events it appended.
pub(super) struct Admitted {
    pub doc: AutoCommit,
    pub frame: Frame,
    pub reading: Reading,
    pub appended: Vec<Appended>,
}

/// `authorize_change` with the copy of `before` to apply the change to supplied by the caller,
/// who gets it back with the change applied when the change is allowed; `before_frame` is
/// `before`'s frame when the caller has it already.
pub(super) fn admit(
    user: &User,
    bound_actor: &ActorId,
    doc_id: &str,
    before: &AutoCommit,
    before_frame: Option<Frame>,
    mut after: AutoCommit,
    change: &Change,
) -> Result<Admitted, Refusal> {
    if change.actor_id() != bound_actor {
        return Err(Refusal::ActorNotBound {
            actor: change.actor_id().clone(),
        });
    }
    if !user.active {
        return Err(Refusal::Inactive {
            user: user.id.clone(),
        });
    }
    guarded(move || {
        check_op_counter(&mut after, change)?;
        after
            .apply_changes([change.clone()])
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        // A change new to the document is one of its heads once applied (nothing there can
        // depend on it); one still waiting for dependencies is not.
        if !after.get_heads().contains(&change.hash())
            && after.get_change_by_hash(&change.hash()).is_none()
        {
            return Err(Refusal::Malformed(
                "it depends on changes the document does not have".into(),
            ));
        }
        let (after, reading) = schema::read(doc_id, after)?;
        let existed = !before.is_empty();
        let was = match (existed, before_frame) {
            (false, _) => None,
            (true, Some(frame)) => Some(frame),
            (true, None) => Some(Frame::of(before)?),
        };
        let frame = Frame::of(&after)?;
        let diff = schema::diff(reading.kind(), was.as_ref(), &frame)?;
        let appended = match &reading {
            Reading::Patrol(patrol) => {
                patrol_rules(user, existed, patrol)?;
                Vec::new()
            }
            Reading::Issue {
                issue,
                events,
                receipts,
            } => issue_rules(user, existed, &diff, issue, events, receipts)?,
        };
        Ok(Admitted {
            doc: after,
            frame,
            reading,
            appended,
        })
    })
}

/// Refuses a change whose operation numbers start further past those of its dependencies
/// (held by `before`, the document as its author saw it) than [`MAX_OP_COUNTER_SLACK`].
fn check_op_counter(before: &mut AutoCommit, change: &Change) -> Result<(), Refusal> {
    // Every change numbers its operations after all of its own dependencies', so the largest
    // number among the dependencies is the largest the author had seen.
    let seen = change
        .deps()
        .iter()
        .filter_map(|dep| before.get_change_by_hash(dep))
        .map(|dep| dep.max_op())
        .max()
        .unwrap_or(0);
    let justified = seen + 1 + MAX_OP_COUNTER_SLACK;
    let start_op = change.start_op().get();
    if start_op > justified {
        return Err(Refusal::OpCounterJump {
            start_op,
            justified,
        });
    }
    Ok(())
}

/// Runs `check` so that a panic inside automerge on hostile bytes refuses the change instead of
/// taking the server down. Only copies are touched inside, so nothing half-applied survives.
pub(super) fn guarded<T>(check: impl FnOnce() -> Result<T, Refusal>) -> Result<T, Refusal> {
    panic::catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|_| {
        Err(Refusal::Malformed(
            "the document could not apply or read it".into(),
        ))
    })
}

fn patrol_rules(user: &User, existed: bool, patrol: &Patrol) -> Result<(), Refusal> {
    if existed && !in_scope(user, &DocMeta::of_patrol(patrol)) {
        return Err(Refusal::OutOfScope);
    }
    if patrol.chief != user.id {
        return Err(Refusal::NotOwner(
            "only the patrol's own chief writes a patrol".into(),
        ));
    }
    if existed {
        return Ok(());
    }
    match &user.role {
        Role::Chief {
            system,
            jurisdiction,
            ..
        } if *system == patrol.system && jurisdiction.assets.contains(&patrol.asset) => Ok(()),
        Role::Chief { .. } => Err(Refusal::NotOwner(format!(
            "{} asset {} is not in the chief's jurisdiction",
            patrol.system, patrol.asset
        ))),
        _ => Err(Refusal::NotOwner("only chiefs record patrols".into())),
    }
}

/// The issue's rules. Who the user is towards the issue is worked out from the events the
/// author had seen; each appended event is judged against the state folded from the events
/// before it, so a change carrying "assign, then comment" is judged step by step. Returns the
/// appended events, each with the latest server receive time its author had seen.
fn issue_rules(
    user: &User,
    existed: bool,
    diff: &Diff,
    issue: &Issue,
    events: &[Event],
    receipts: &[Receipt],
) -> Result<Vec<Appended>, Refusal> {
    let seen = diff.appended("events").start.min(events.len());
    let mut state = workflow::fold_ordered(&events[..seen], receipts);
    let not_before_ms = receipts
        .iter()
        .filter_map(|r| r.received_ms)
        .max()
        .unwrap_or(i64::MIN);
    let ctx = IssueContext::of(issue);
    if existed {
        if !in_scope(user, &DocMeta::of_issue(issue, &state)) {
            return Err(Refusal::OutOfScope);
        }
        let who = workflow::relations(user, &ctx, &state);
        if diff.touched(ISSUE_RECORD) && !workflow::edits_record(&who) {
            return Err(Refusal::NotOwner(
                "only the reporter or a supervisor of the issue edits its description, \
                 severity and photos"
                    .into(),
            ));
        }
    } else {
        if issue.reporter != user.id {
            return Err(Refusal::NotOwner(
                "a new issue must name the user who reports it as its reporter".into(),
            ));
        }
        if events.is_empty() {
            return Err(Refusal::Schema(
                "a new issue starts with its reported event".into(),
            ));
        }
    }
    let mut appended = Vec::with_capacity(events.len() - seen);
    let mut ids: HashSet<&str> = events[..seen].iter().map(|e| e.id.as_str()).collect();
    for event in &events[seen..] {
        if event.by != user.id {
            return Err(Refusal::ForgedAuthor {
                event: event.id.clone(),
                by: event.by.clone(),
                user: user.id.clone(),
            });
        }
        if workflow::SERVER_DEVICES.contains(&event.device.as_str()) {
            return Err(Refusal::ForgedDevice {
                event: event.id.clone(),
                device: event.device.clone(),
            });
        }
        if !ids.insert(event.id.as_str()) {
            return Err(Refusal::DuplicateEvent(event.id.clone()));
        }
        workflow::authorize(user, &ctx, &issue.id, &state, &event.action)?;
        let judged = state.submission.clone();
        state.apply(event);
        appended.push(Appended {
            event: event.id.clone(),
            not_before_ms,
            judged,
        });
    }
    Ok(appended)
}
