//! The overview a chief above the village, or an office, reads offline instead of the
//! documents of the chiefs below them (sync-core's `overview`: the rule of what it holds, and
//! its figures from the statistics). It arrives with the sync: the phone names the version it
//! holds in every sync request, and the server attaches the overview after its answer only when
//! it changed. The phone keeps the latest in its store, so it reads offline and after a
//! restart. Nothing here computes a figure.

use serde::{Deserialize, Serialize};
use sync_core::model::{Level, System};
use sync_core::overview as rule;
use sync_core::protocol::OverviewUpdate;
use sync_core::store::LocalStore;

use crate::client::PhoneApp;
use crate::error::{ChiefsyncError, Result};

/// The store entry holding the latest overview and whose it is.
const KEY: &str = "overview";

/// What the store keeps: the user the overview is of, and the server's update.
#[derive(Serialize, Deserialize)]
struct Kept {
    user_id: String,
    update: OverviewUpdate,
}

fn kept(store: &LocalStore, user_id: &str) -> Result<Option<OverviewUpdate>> {
    let Some(bytes) = store.meta(KEY)? else {
        return Ok(None);
    };
    let kept: Kept = serde_json::from_slice(&bytes)
        .map_err(|e| ChiefsyncError::invalid(format!("stored overview: {e}")))?;
    Ok((kept.user_id == user_id).then_some(kept.update))
}

/// The version of the overview this phone holds for `user_id` (0 for none), named in every
/// sync request.
pub(crate) fn held_version(store: &LocalStore, user_id: &str) -> u64 {
    // An unreadable entry counts as none: the server then sends the overview again.
    kept(store, user_id).ok().flatten().map_or(0, |u| u.version)
}

/// Keeps the overview the server attached to an answer. An answer without one leaves the
/// kept overview as it is: it is still current.
pub(crate) fn keep(store: &LocalStore, user_id: &str, update: OverviewUpdate) -> Result<()> {
    let bytes = serde_json::to_vec(&Kept {
        user_id: user_id.to_owned(),
        update,
    })
    .map_err(|e| ChiefsyncError::invalid(format!("overview: {e}")))?;
    store.put_meta(KEY, &bytes)?;
    Ok(())
}

/// The chiefs and problems below the user, as of the last sync.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Overview {
    /// The server's version of these figures.
    pub version: u64,
    /// The period patrols are counted in (this month to the end of the day of the last sync,
    /// China time), Unix milliseconds, end exclusive.
    pub period_from_ms: i64,
    pub period_to_ms: i64,
    pub chiefs: Vec<OverviewChief>,
    pub divisions: Vec<OverviewDivision>,
}

/// One chief's patrols this period.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OverviewChief {
    pub chief_id: String,
    pub name: String,
    pub level: Level,
    pub system: System,
    pub division: String,
    pub division_name: String,
    /// Patrols the quota asks for in the period (0 without a quota).
    pub required: u64,
    /// Quota periods in the period, and those met.
    pub periods: u64,
    pub periods_met: u64,
    pub patrols: u64,
    pub valid: u64,
    /// Patrols that do not count.
    pub flagged: u64,
    pub km: f64,
}

/// Problems of one division and system now.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct OverviewDivision {
    pub division: String,
    pub name: String,
    pub system: System,
    pub open: u64,
    pub overdue: u64,
    /// Open problems escalated (督办) at least once.
    pub escalated: u64,
}

impl Overview {
    fn of(version: u64, overview: rule::Overview) -> Self {
        Overview {
            version,
            period_from_ms: overview.period.from_ms,
            period_to_ms: overview.period.to_ms,
            chiefs: overview
                .chiefs
                .into_iter()
                .map(|c| OverviewChief {
                    chief_id: c.chief,
                    name: c.name,
                    level: c.level,
                    system: c.system,
                    division: c.division.to_string(),
                    division_name: c.division_name,
                    required: c.required,
                    periods: c.periods,
                    periods_met: c.periods_met,
                    patrols: c.patrols,
                    valid: c.valid,
                    flagged: c.flagged,
                    km: c.km,
                })
                .collect(),
            divisions: overview
                .divisions
                .into_iter()
                .map(|d| OverviewDivision {
                    division: d.division.to_string(),
                    name: d.name,
                    system: d.system,
                    open: d.open,
                    overdue: d.overdue,
                    escalated: d.escalated,
                })
                .collect(),
        }
    }
}

impl PhoneApp {
    /// The overview of the chiefs and problems below the signed-in user as of the last sync,
    /// read from the phone's store (offline). `None` before the first sync that brought one,
    /// and for users with nobody below them (village chiefs, departments).
    pub fn overview(&self) -> Result<Option<Overview>> {
        let user = self.account.user()?.user;
        Ok(kept(&self.store, &user.id)?
            .and_then(|u| u.overview.map(|o| Overview::of(u.version, o))))
    }
}
