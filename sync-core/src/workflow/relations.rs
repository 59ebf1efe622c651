//! How a user stands towards one issue (reporter, chief in scope, supervisor, assignee, the
//! server's deadline job), worked out from the user's role and the issue's place.
//!
//! Relations are all the transition table looks at; what a relation may do is decided there,
//! not here.

use super::event::Assignee;
use super::fold::IssueState;
use super::table::Who;
use crate::model::{DivisionCode, Role, System, User};
use serde::{Deserialize, Serialize};

/// The user id the server's deadline job appends escalations under.
pub const SYSTEM_USER: &str = "system";

/// Where an issue sits and who reported it: the parts of the issue document relations need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueContext {
    pub system: System,
    pub division: DivisionCode,
    pub asset: String,
    pub reporter: String,
}

impl IssueContext {
    /// The context of a reported issue: every caller that judges an action on a stored issue
    /// (the server's authorization, the board, the phone) builds it here.
    pub fn of(issue: &crate::doc::Issue) -> Self {
        Self {
            system: issue.system,
            division: issue.division.clone(),
            asset: issue.asset.clone(),
            reporter: issue.reporter.clone(),
        }
    }
}

/// Every relation `user` has to the issue, in `Who::ALL` order. An inactive user has none.
pub fn relations(user: &User, ctx: &IssueContext, state: &IssueState) -> Vec<Who> {
    if !user.active {
        return Vec::new();
    }
    let mut who = Vec::new();
    if user.id == ctx.reporter {
        who.push(Who::Reporter);
    }
    match &user.role {
        Role::Chief {
            system,
            jurisdiction,
            ..
        } if *system == ctx.system
            && (jurisdiction.assets.contains(&ctx.asset)
                || jurisdiction.division.contains(&ctx.division)) =>
        {
            who.push(Who::ChiefInScope);
        }
        Role::Supervisor { system, division }
            if *system == ctx.system && division.contains(&ctx.division) =>
        {
            who.push(Who::Supervisor);
        }
        _ => {}
    }
    let assigned = match (&state.assignee, &user.role) {
        (Some(Assignee::User(id)), _) => *id == user.id,
        (Some(Assignee::Department(d)), Role::Handler { department }) => d == department,
        _ => false,
    };
    if assigned {
        who.push(Who::Assignee);
    }
    if user.id == SYSTEM_USER {
        who.push(Who::System);
    }
    who
}

/// Whether someone in these relations to an issue may edit its record fields (description,
/// severity, photo list): its reporter or a supervisor. Everyone else speaks through events.
pub fn edits_record(who: &[Who]) -> bool {
    who.iter()
        .any(|w| matches!(w, Who::Reporter | Who::Supervisor))
}
