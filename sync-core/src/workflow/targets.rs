//! Whom an issue may be handed to: the target of an assignment must exist, be of the right
//! kind and lie within the assigning office's authority, and an issue marked a duplicate must
//! name an issue that exists. The same rule for the web dashboard (checked before the event is
//! appended) and for phones (checked when the server accepts the event; a target that fails it
//! leaves the event in the timeline as superseded, with the reason).

use super::check::TransitionError;
use super::event::{Action, Assignee};
use super::fold::IssueState;
use super::relations::{relations, IssueContext};
use super::table::Who;
use crate::model::{DivisionCode, Role, System, User};

/// What the reference data says of the targets an action names.
pub trait Targets {
    /// The user of this id, active or not; `None` when there is none.
    fn user(&self, id: &str) -> Option<User>;
    /// Whether an active handler works for the department of exactly this name.
    fn department(&self, name: &str) -> bool;
    /// The system and division of the issue of this id; `None` when there is none.
    fn issue(&self, id: &str) -> Option<(System, DivisionCode)>;
}

/// The targets `action` names (users, departments, issues), for callers that fetch them
/// before checking.
pub fn named_targets(action: &Action) -> (Option<&str>, Option<&str>, Option<&str>) {
    match action {
        Action::Assigned {
            assignee: Assignee::User(id),
            ..
        } => (Some(id), None, None),
        Action::Assigned {
            assignee: Assignee::Department(name),
            ..
        } => (None, Some(name), None),
        Action::DuplicateOf { issue } => (None, None, Some(issue)),
        _ => (None, None, None),
    }
}

/// Whether the targets `action` names (appended by `by` to the issue at `ctx`) are acceptable.
pub fn check_targets(
    by: &User,
    ctx: &IssueContext,
    action: &Action,
    targets: &dyn Targets,
) -> Result<(), TransitionError> {
    let invalid = |reason: String| Err(TransitionError::Invalid { reason });
    match action {
        Action::Assigned {
            assignee: Assignee::User(id),
            ..
        } => {
            let Some(user) = targets.user(id).filter(|u| u.active) else {
                return invalid(format!("there is no active user {id:?} to assign to"));
            };
            // Only a chief responsible for where the problem is may be told to rectify it.
            let stands = relations(&user, ctx, &IssueState::default());
            if !stands.contains(&Who::ChiefInScope) {
                return invalid(format!(
                    "{} is not a {} chief responsible for this issue's place",
                    user.display_name, ctx.system
                ));
            }
            if let (Role::Supervisor { division, .. }, Role::Chief { jurisdiction, .. }) =
                (&by.role, &user.role)
            {
                if !division.contains(&jurisdiction.division) {
                    return invalid(format!(
                        "{} works outside the office's division {division}",
                        user.display_name
                    ));
                }
            }
            Ok(())
        }
        Action::Assigned {
            assignee: Assignee::Department(name),
            ..
        } => {
            if targets.department(name) {
                Ok(())
            } else {
                invalid(format!("there is no department {name:?} to assign to"))
            }
        }
        Action::DuplicateOf { issue } => match targets.issue(issue) {
            Some((system, division)) if system == ctx.system && by_oversees(by, &division) => {
                Ok(())
            }
            _ => invalid(format!(
                "there is no {} issue {issue:?} in your scope to be a duplicate of",
                ctx.system
            )),
        },
        _ => Ok(()),
    }
}

/// Whether the office of `by` covers `division` (administrators cover everything).
fn by_oversees(by: &User, division: &DivisionCode) -> bool {
    match &by.role {
        Role::Supervisor { division: own, .. } => own.contains(division),
        Role::Chief { jurisdiction, .. } => jurisdiction.division.contains(division),
        Role::Admin => true,
        Role::Handler { .. } => false,
    }
}
