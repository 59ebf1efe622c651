//! Background work on a timer: the deadline job (督办), patrol-quota reminders, and removing
//! photo uploads abandoned half-way.
//!
//! Every `deadline_check_every` the job looks at each assigned issue; one whose deadline passed
//! more than the grace period ago gets an `escalated` event, appended by the server in the name
//! of the system user through the hub (`Hub::escalate_if_overdue`), so the supervisor and the
//! chiefs above see it on the board and on their phones. Whether an issue is due is decided by
//! sync-core from the document itself (one escalation per assignment), under the document's
//! lock, so the job is idempotent across runs and restarts and needs no bookkeeping of its own.
//!
//! Servers sharing one database take turns: each turn runs under [`DEADLINE_JOB_LOCK`], and a
//! server that finds it held skips that turn (`storage::Shared::exclusively`).
//!
//! Reminders list the chiefs whose patrol quota for the current period is not yet met; the
//! same computation serves `GET /api/v1/reminders` and the job's log line.

use actix_web::web;
use serde::Serialize;
use sync_core::authz::oversees;
use sync_core::doc::{DocKind, IssueDoc};
use sync_core::hub::{ActError, HubError};
use sync_core::model::{Level, Role, System, User};
use sync_core::rules::{quota_progress, Period, QuotaProgress};
use sync_core::workflow::{needs_escalation, Status};
use utoipa::ToSchema;

use crate::derived::{self, Judging, Work, CHANGES};
use crate::error::ApiError;
use crate::state::{now_ms, AppState};

/// What one run of the deadline job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadlineRun {
    /// Assigned issues looked at.
    pub checked: usize,
    /// Of those, issues past their deadline.
    pub overdue: usize,
    /// Issues escalated in this run.
    pub escalated: Vec<String>,
}

/// One run of the deadline job at `now_ms`.
pub fn run_deadlines(state: &AppState, now_ms: i64) -> Result<DeadlineRun, HubError> {
    let grace = state.workflow.overdue_grace_ms;
    let mut run = DeadlineRun::default();
    for meta in state.store.all_documents()? {
        if meta.kind != DocKind::Issue || meta.status != Some(Status::Assigned) {
            continue;
        }
        let Some(stored) = state.store.document(&meta.id)? else {
            continue;
        };
        // A cheap look without the lock first; the hub decides again under it.
        let Ok(issue_state) = IssueDoc::load(&stored.bytes).and_then(|i| i.state()) else {
            tracing::warn!(issue = %meta.id, "deadline job cannot read issue");
            continue;
        };
        run.checked += 1;
        if issue_state.overdue_days(now_ms).is_some() {
            run.overdue += 1;
        }
        if !needs_escalation(&issue_state, now_ms, grace) {
            continue;
        }
        match state.hub.escalate_if_overdue(&meta.id, now_ms, grace) {
            Ok(Some(acted)) => {
                tracing::info!(issue = %meta.id, event = %acted.event.id, "escalated overdue issue");
                run.escalated.push(meta.id.clone());
            }
            Ok(None) => {}
            Err(ActError::Hub(err)) => return Err(err),
            Err(err) => tracing::warn!(issue = %meta.id, error = %err, "escalation refused"),
        }
    }
    Ok(run)
}

/// A chief whose patrol quota for the current period is not yet met.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reminder {
    pub chief: String,
    pub username: String,
    pub display_name: String,
    #[schema(value_type = String)]
    pub system: System,
    #[schema(value_type = String)]
    pub level: Level,
    pub division: String,
    #[schema(value_type = String)]
    pub period: Period,
    pub period_start_ms: i64,
    /// The quota is due before this instant.
    pub period_end_ms: i64,
    pub required: u32,
    /// Valid patrols so far in this period.
    pub done: u32,
}

fn reminder(user: &User, progress: &QuotaProgress) -> Option<Reminder> {
    let Role::Chief {
        system,
        level,
        jurisdiction,
    } = &user.role
    else {
        return None;
    };
    Some(Reminder {
        chief: user.id.clone(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        system: *system,
        level: *level,
        division: jurisdiction.division.as_str().to_string(),
        period: progress.period,
        period_start_ms: progress.period_start_ms,
        period_end_ms: progress.period_end_ms,
        required: progress.required,
        done: progress.done,
    })
}

/// The active chiefs `viewer` oversees whose quota for the period containing `now_ms` is not
/// met yet, counting valid patrols only (checked with the rules that apply to each chief).
/// Only patrols that count as walked in the current period are looked at, each judged once until it,
/// its chief, its asset or the rules change (`crate::derived`).
pub fn reminders(
    state: &AppState,
    viewer: &User,
    now_ms: i64,
    work: &mut Work,
) -> Result<Vec<Reminder>, ApiError> {
    let store = state.store.as_ref();
    let judging = Judging::new(crate::settings::patrol_rules(store)?);
    let (kept, caught_up) = state.derived.current(store)?;
    state.metrics.count_work(CHANGES, &caught_up);
    let mut due = Vec::new();
    for record in store.list_users()? {
        let chief = record.user;
        let Role::Chief { system, level, .. } = &chief.role else {
            continue;
        };
        if !chief.active || !oversees(viewer, &chief) {
            continue;
        }
        let Some(quota) = judging.rules.quota_for(*system, *level).cloned() else {
            continue;
        };
        let period = quota.period.index(now_ms);
        let (start, end) = (
            quota.period.start_ms(period),
            quota.period.start_ms(period + 1),
        );
        let patrols: Vec<_> = kept.patrols_of(&chief.id, start, end).cloned().collect();
        due.push((chief, quota, patrols));
    }
    drop(kept);
    let mut out = Vec::new();
    for (chief, quota, patrols) in due {
        let mut starts = Vec::new();
        for patrol in patrols {
            match derived::judge(store, &judging, &patrol, false, work) {
                Ok(judged) if judged.validation.is_valid() => {
                    starts.push(patrol.at_ms);
                }
                Ok(_) => {}
                // A patrol that cannot be read does not count, as before.
                Err(HubError::Damaged { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let progress = quota_progress(&quota, &starts, now_ms);
        if !progress.is_met() {
            out.extend(reminder(&chief, &progress));
        }
    }
    out.sort_by(|a, b| (a.period_end_ms, &a.chief).cmp(&(b.period_end_ms, &b.chief)));
    Ok(out)
}

/// The lock the deadline job runs under: on a store shared by several servers, one of them at
/// a time runs it (`storage::Shared::exclusively`), and the others skip that turn.
pub const DEADLINE_JOB_LOCK: &str = "deadline job";

/// What one whole turn of the job did: the deadline run, the chiefs behind their quota, the
/// abandoned uploads removed.
pub type JobTurn = (DeadlineRun, usize, usize);

/// One turn of the job at `now`: deadlines, reminders, abandoned uploads and unreferenced
/// photos, under [`DEADLINE_JOB_LOCK`]. `Ok(None)` when another server holds the lock (its turn
/// is under way). Blocking.
pub fn run_turn(job: &AppState, now: i64) -> Result<Option<JobTurn>, HubError> {
    let mut outcome = None;
    let ran = job
        .store
        .exclusively(DEADLINE_JOB_LOCK, &mut || {
            outcome = Some(run_turn_held(job, now));
        })
        .map_err(|e| HubError::Storage(e.to_string()))?;
    if !ran {
        return Ok(None);
    }
    outcome.transpose()
}

fn run_turn_held(job: &AppState, now: i64) -> Result<JobTurn, HubError> {
    let run = run_deadlines(job, now)?;
    let mut work = Work::default();
    let system = sync_core::hub::system_user();
    let due = reminders(job, &system, now, &mut work)
        .map(|r| r.len())
        .unwrap_or(0);
    let cutoff = std::time::SystemTime::now()
        .checked_sub(job.workflow.abandoned_upload_after)
        .unwrap_or(std::time::UNIX_EPOCH);
    let expired = job.blobs.expire_abandoned(cutoff).unwrap_or_else(|err| {
        tracing::error!(error = %err, "removing abandoned uploads failed");
        0
    });
    if let Err(err) = crate::photos::collect_unreferenced(job, now) {
        tracing::error!(error = %err, "removing unreferenced photos failed");
    }
    // Residents' phone numbers are kept for a stated period only.
    if let Err(err) = crate::public::cases::erase_expired_phones(job.store.as_ref(), now) {
        tracing::error!(error = %err, "erasing expired phone numbers failed");
    }
    Ok((run, due, expired))
}

/// Starts the deadline job on the current actix runtime: a run right away, then one every
/// `deadline_check_every`. Work runs off the async workers; a turn another server is taking is
/// skipped.
pub fn spawn(state: web::Data<AppState>) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(state.workflow.deadline_check_every);
        loop {
            tick.tick().await;
            let job = state.clone();
            let result = web::block(move || run_turn(&job, now_ms())).await;
            match result {
                Ok(Ok(None)) => {
                    tracing::debug!("deadline job under way on another server; turn skipped")
                }
                Ok(Ok(Some((run, due, expired)))) => tracing::info!(
                    checked = run.checked,
                    overdue = run.overdue,
                    escalated = run.escalated.len(),
                    chiefs_behind_quota = due,
                    abandoned_uploads_removed = expired,
                    "deadline job"
                ),
                Ok(Err(err)) => tracing::error!(error = %err, "deadline job failed"),
                Err(err) => tracing::error!(error = %err, "deadline job did not run"),
            }
        }
    })
}
