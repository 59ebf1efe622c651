//! Times a phone supplies, bounded by what the server knows (one rule for every such time: GPS
//! fixes, a patrol's start and end, event and report times, photo capture times).
//!
//! A phone's clock can be wrong or set on purpose, so a time it writes counts only inside the
//! window the server can vouch for:
//!
//! - **not earlier** than the later of the device's binding (its first sign-in: a phone cannot
//!   record for a chief before it was signed in) and the device's previous acknowledged sync
//!   before the record arrived, less [`EARLY_TOLERANCE_MS`] for an ordinary clock error;
//! - **not later** than the server's receive time plus [`LATE_TOLERANCE_MS`].
//!
//! The device's *acknowledged sync* is a sync the server answered at which the device pushed
//! nothing, so held nothing the server lacked (`hub::DeviceLedger::device_synced`); the one that
//! bounds a record is the latest before the record first arrived (kept with the record's first
//! audit entry). A sync that pushes does not count: a phone back from weeks offline sends its
//! backlog over several requests, and a later part is no less old than the first.
//!
//! A time outside the window is kept as recorded and shown as recorded; figures (the week a
//! patrol counts for, hours, deadlines) use the bounded time, and the record is flagged. A phone
//! that was offline for weeks is not penalised: its previous sync was before it went offline,
//! so what it recorded meanwhile lies inside the window and counts where it belongs.
//!
//! A sync whose cursor is past the server's feed (the server was restored from a backup and
//! lacks what the phone sent since; the phone sends it again after the answer) is no
//! acknowledged sync either.
//!
//! A workflow event (a report, an assignment, a rectification) is bounded by the same window
//! without the tolerances ([`DeviceClock::bound_strict`]): its receipt fixes deadlines and the
//! order of the history, and there the server's knowledge is exact — never later than it received
//! the event, never earlier than the receipts the sender had already seen, the sending device's
//! last acknowledged sync or its binding (`Hub::give_receipts`).
//!
//! A photo's capture time is judged by the record's window (`photo::evidence`): flagged
//! `taken_too_early` before the recording device's binding or its previous acknowledged sync
//! (less the tolerance), and for an after photo before the problem's report; flagged
//! `clock_skew` after the photo's own receipt (plus the tolerance). Photos are evidence for a
//! person to weigh, so they are flagged, never moved.
//!
//! Bounds the server does not know (documents stored before it kept receive times, a device
//! without a binding record) leave that side open. This module only compares numbers; callers
//! look the times up.

use serde::{Deserialize, Serialize};

/// How far before the device's binding or previous sync a time may lie: a phone clock a few
/// minutes slow is ordinary and not a forgery.
pub const EARLY_TOLERANCE_MS: i64 = 10 * 60_000;
/// How far after the server received it a time may lie: the same allowance for a fast clock.
pub const LATE_TOLERANCE_MS: i64 = 10 * 60_000;

/// What the server knows about the device that supplied a record, Unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceClock {
    /// When the device was bound to the user (first sign-in).
    pub bound_ms: Option<i64>,
    /// The device's latest acknowledged sync (one at which it pushed nothing) before the record
    /// first arrived.
    pub previous_sync_ms: Option<i64>,
    /// When the server received the record (its last change).
    pub received_ms: Option<i64>,
}

/// Which side of the window a time fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfBounds {
    /// Before the device's binding or previous sync (less the tolerance): backdated.
    Early,
    /// After the server received it (plus the tolerance): dated in the future.
    Late,
}

impl DeviceClock {
    /// The earliest time that counts, `None` when unknown.
    pub fn not_before_ms(&self) -> Option<i64> {
        let floor = match (self.bound_ms, self.previous_sync_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        floor.map(|t| t.saturating_sub(EARLY_TOLERANCE_MS))
    }

    /// The latest time that counts, `None` when unknown.
    pub fn not_after_ms(&self) -> Option<i64> {
        self.received_ms
            .map(|t| t.saturating_add(LATE_TOLERANCE_MS))
    }

    /// Whether `t_ms` lies outside the window, and on which side.
    pub fn check(&self, t_ms: i64) -> Option<OutOfBounds> {
        if self.not_before_ms().is_some_and(|floor| t_ms < floor) {
            Some(OutOfBounds::Early)
        } else if self.not_after_ms().is_some_and(|ceiling| t_ms > ceiling) {
            Some(OutOfBounds::Late)
        } else {
            None
        }
    }

    /// The time that counts for `t_ms`: itself inside the window, else the nearest end.
    pub fn bound(&self, t_ms: i64) -> i64 {
        clamp(t_ms, self.not_before_ms(), self.not_after_ms())
    }

    /// The time a workflow event counts at: `t_ms` bounded by the window without the
    /// tolerances, so never later than the server received it and never earlier than the
    /// binding or the previous sync. (A floor after the receipt gives the receipt.)
    pub fn bound_strict(&self, t_ms: i64) -> i64 {
        let floor = match (self.bound_ms, self.previous_sync_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        clamp(t_ms, floor, self.received_ms)
    }
}

/// `t` raised to `floor`, then lowered to `ceiling` (which wins if they cross).
fn clamp(t: i64, floor: Option<i64>, ceiling: Option<i64>) -> i64 {
    let t = floor.map_or(t, |floor| t.max(floor));
    ceiling.map_or(t, |ceiling| t.min(ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn inside_the_window_a_time_counts_as_recorded() {
        let clock = DeviceClock {
            bound_ms: Some(NOW - 300 * DAY),
            previous_sync_ms: Some(NOW - 2 * DAY),
            received_ms: Some(NOW),
        };
        for t in [NOW - 2 * DAY, NOW - DAY, NOW, NOW + LATE_TOLERANCE_MS] {
            assert_eq!((clock.check(t), clock.bound(t)), (None, t));
        }
        // A few minutes' clock error either side is tolerated.
        let slow = NOW - 2 * DAY - EARLY_TOLERANCE_MS;
        assert_eq!(clock.check(slow), None);
    }

    #[test]
    fn a_backdated_time_counts_at_the_previous_sync() {
        let clock = DeviceClock {
            bound_ms: Some(NOW - 300 * DAY),
            previous_sync_ms: Some(NOW - DAY),
            received_ms: Some(NOW),
        };
        let backdated = NOW - 60 * DAY;
        assert_eq!(clock.check(backdated), Some(OutOfBounds::Early));
        assert_eq!(clock.bound(backdated), NOW - DAY - EARLY_TOLERANCE_MS);
        // Before the phone was ever signed in, even without a previous sync.
        let fresh = DeviceClock {
            bound_ms: Some(NOW - DAY),
            ..DeviceClock::default()
        };
        assert_eq!(fresh.check(backdated), Some(OutOfBounds::Early));
    }

    #[test]
    fn absurd_times_are_bounded_without_overflow() {
        let clock = DeviceClock {
            bound_ms: Some(i64::MIN),
            previous_sync_ms: None,
            received_ms: Some(i64::MAX),
        };
        assert_eq!(clock.bound(i64::MIN), i64::MIN);
        assert_eq!(clock.bound(i64::MAX), i64::MAX);
        let clock = DeviceClock {
            received_ms: Some(NOW),
            ..DeviceClock::default()
        };
        assert_eq!(clock.check(i64::MAX), Some(OutOfBounds::Late));
        assert_eq!(clock.bound(i64::MAX), NOW + LATE_TOLERANCE_MS);
        assert_eq!(clock.bound((1 << 53) - 1), NOW + LATE_TOLERANCE_MS);
        assert_eq!(clock.check(i64::MIN), None, "no floor known");
    }

    #[test]
    fn a_workflow_event_is_bounded_without_the_tolerances() {
        let clock = DeviceClock {
            bound_ms: None,
            previous_sync_ms: Some(NOW - DAY),
            received_ms: Some(NOW),
        };
        // A fast clock counts at the receipt, a slow one at what the sender had seen.
        assert_eq!(clock.bound_strict(NOW + 60_000), NOW);
        assert_eq!(clock.bound_strict(NOW - DAY - 60_000), NOW - DAY);
        assert_eq!(clock.bound_strict(NOW - 60_000), NOW - 60_000);
        // A floor after the receipt (a receipt seen from a later request) gives the receipt.
        let crossed = DeviceClock {
            previous_sync_ms: Some(NOW + DAY),
            ..clock
        };
        assert_eq!(crossed.bound_strict(NOW - DAY), NOW);
        assert_eq!(DeviceClock::default().bound_strict(i64::MIN), i64::MIN);
    }

    #[test]
    fn a_phone_offline_for_three_weeks_keeps_its_dates() {
        // Last synced 22 days ago, walked every week since, syncs today.
        let clock = DeviceClock {
            bound_ms: Some(NOW - 90 * DAY),
            previous_sync_ms: Some(NOW - 22 * DAY),
            received_ms: Some(NOW),
        };
        for walked in [NOW - 21 * DAY, NOW - 14 * DAY, NOW - 7 * DAY] {
            assert_eq!((clock.check(walked), clock.bound(walked)), (None, walked));
        }
    }
}
