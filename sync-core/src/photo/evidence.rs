//! Evidence checks: what is doubtful about a photo offered as proof of a patrol or a problem.
//!
//! The server records the flags with the photo and the issue detail shows them to supervisors,
//! each with its numbers. They inform a person's judgement; nothing is corrected or refused
//! because of them, and a photo with flags is still stored. The checks use what the phone read
//! from the photo's EXIF into its [`PhotoRef`]; a check whose input is missing is skipped and the
//! gap itself is flagged. This module does no I/O.
//!
//! [`evidence`] is the one judgement of a record's photos: the issue page of the dashboard, the
//! issue list's completeness and the document view (`/docs/{id}`) all show what it answers, so
//! they cannot warn differently about the same photo. A record's photos are judged against its
//! [`EvidenceContext`] (an issue raised on a patrol: the patrol's time window too), each by
//! when the server received the photo itself ([`Arrival`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::doc::{Issue, Patrol};
use crate::geo;
use crate::model::{PhotoRef, PhotoRole, TrackPoint};
use crate::rules::{DeviceClock, OutOfBounds, EARLY_TOLERANCE_MS};
use crate::workflow::{Action, IssueState};

/// Thresholds of the evidence checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvidenceRules {
    /// A photo may be taken this long before its patrol starts or after it ends (a chief
    /// photographs the river gate on arrival, or a problem after stopping the patrol).
    pub window_slack_ms: i64,
    /// A photo taken farther than this from the place it documents is doubtful. Generous, since
    /// problems are often photographed from across a river and phone GPS drifts by tens of metres.
    pub max_distance_m: f64,
}

impl Default for EvidenceRules {
    fn default() -> Self {
        Self {
            window_slack_ms: 15 * 60_000,
            max_distance_m: 500.0,
        }
    }
}

/// One doubt about a photo, with the numbers a supervisor needs to weigh it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum EvidenceFlag {
    /// The photo's EXIF lacks the capture time and/or the position (stripped by an editing or
    /// messaging app, or a camera without GPS); the checks needing them were skipped.
    MissingExif { capture_time: bool, position: bool },
    /// Taken this many minutes outside the record's time window: negative before it opened,
    /// positive after it closed (counted from the window itself, not from the slack).
    TakenOutsideWindow { minutes: i64 },
    /// The capture time is this many seconds after the server received the photo.
    ClockSkew { seconds: i64 },
    /// The capture time is this many minutes before the earliest time the server vouches for
    /// (`rules::times`): the phone's binding, its last acknowledged sync before the record
    /// reached the server, and for an after photo the problem's report. An older photo.
    TakenTooEarly { minutes: i64 },
    /// Taken this many metres from the nearest point of the place it documents.
    FarFromPlace { metres: f64 },
}

impl fmt::Display for EvidenceFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EvidenceFlag::MissingExif {
                capture_time,
                position,
            } => {
                let missing = match (capture_time, position) {
                    (true, true) => "capture time and position",
                    (true, false) => "capture time",
                    _ => "position",
                };
                write!(f, "the photo does not record its {missing}")
            }
            EvidenceFlag::TakenOutsideWindow { minutes } if minutes < 0 => write!(
                f,
                "taken {} min before the patrol started",
                minutes.unsigned_abs()
            ),
            EvidenceFlag::TakenOutsideWindow { minutes } => {
                write!(f, "taken {minutes} min after the patrol ended")
            }
            EvidenceFlag::ClockSkew { seconds } => write!(
                f,
                "capture time is {seconds} s after the server received it: the phone's clock is wrong"
            ),
            EvidenceFlag::TakenTooEarly { minutes } => write!(
                f,
                "taken {minutes} min before the earliest time the server vouches for (the phone's \
                 sign-in, its last sync before the record, or for an after photo the report)"
            ),
            EvidenceFlag::FarFromPlace { metres } => {
                write!(f, "taken {metres:.0} m from the place it documents")
            }
        }
    }
}

/// The doubts about `photo`.
///
/// `window` is the record's `(start, end)` in Unix milliseconds (a patrol's start and end; for a
/// patrol still under way, end at the receive time), or `None` to skip that check.
/// `received_at_ms` is when the server received the photo. `reference_points` are `[lon, lat]`:
/// one point for an issue's location, or a patrol's track as a line; empty skips the distance
/// check.
pub fn evidence_checks(
    photo: &PhotoRef,
    window: Option<(i64, i64)>,
    received_at_ms: i64,
    reference_points: &[[f64; 2]],
    rules: &EvidenceRules,
) -> Vec<EvidenceFlag> {
    let mut flags = Vec::new();
    if photo.taken_at_ms.is_none() || photo.position.is_none() {
        flags.push(EvidenceFlag::MissingExif {
            capture_time: photo.taken_at_ms.is_none(),
            position: photo.position.is_none(),
        });
    }
    if let Some(taken) = photo.taken_at_ms {
        if let Some((start, end)) = window {
            let outside_by = if taken < start.saturating_sub(rules.window_slack_ms) {
                Some(taken.saturating_sub(start))
            } else if taken > end.saturating_add(rules.window_slack_ms) {
                Some(taken.saturating_sub(end))
            } else {
                None
            };
            if let Some(ms) = outside_by {
                flags.push(EvidenceFlag::TakenOutsideWindow {
                    minutes: (ms as f64 / 60_000.0).round() as i64,
                });
            }
        }
        // The one rule for times a phone supplies (`rules::times`): a capture time later than
        // the server's receipt plus its tolerance means the phone's clock (or time zone) is wrong.
        let clock = DeviceClock {
            received_ms: Some(received_at_ms),
            ..DeviceClock::default()
        };
        if clock.check(taken) == Some(OutOfBounds::Late) {
            flags.push(EvidenceFlag::ClockSkew {
                seconds: taken.saturating_sub(received_at_ms) / 1_000,
            });
        }
    }
    if let (Some([lon, lat]), false) = (photo.position, reference_points.is_empty()) {
        let metres = geo::distance_to_polyline_m(lat, lon, reference_points);
        if metres > rules.max_distance_m {
            flags.push(EvidenceFlag::FarFromPlace {
                metres: metres.round(),
            });
        }
    }
    flags
}

/// What a record's photos are judged against.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceContext {
    /// The patrol's `(start, end)`, Unix milliseconds; `None` skips the time-window check.
    /// Applied to before and evidence photos only: after photos are taken when the problem is
    /// rectified, days later.
    pub window: Option<(i64, i64)>,
    /// `[lon, lat]`: the issue's location, or the patrol's track; empty skips the distance check.
    pub place: Vec<[f64; 2]>,
    pub rules: EvidenceRules,
    /// What the server knows of the clock of the phone that recorded the record (its binding
    /// and its last acknowledged sync before the record arrived; the receive time is each
    /// photo's own): no capture time counts before them.
    pub clock: DeviceClock,
    /// When the problem was reported, as the server counts it: an after photo taken before it
    /// cannot show the problem put right.
    pub reported_ms: Option<i64>,
}

impl EvidenceContext {
    /// A patrol's photos against its time window (until `now_ms` while still under way) and its
    /// track.
    pub fn of_patrol(patrol: &Patrol, track: &[TrackPoint], now_ms: i64) -> Self {
        Self {
            window: Some(patrol_window(patrol, now_ms)),
            place: track.iter().map(|p| [p.lon, p.lat]).collect(),
            rules: EvidenceRules::default(),
            clock: DeviceClock::default(),
            reported_ms: None,
        }
    }

    /// An issue's photos against its location and, when it was raised on a patrol the viewer
    /// may see, that patrol's window ([`patrol_window`]).
    pub fn of_issue(issue: &Issue, patrol_window: Option<(i64, i64)>) -> Self {
        Self {
            window: patrol_window,
            place: vec![issue.location],
            rules: EvidenceRules::default(),
            clock: DeviceClock::default(),
            reported_ms: None,
        }
    }

    /// The same context with what the server knows of the recording phone's clock (`clock`,
    /// as `server::derived::device_clock` gives it for the record) and, for an issue, when its
    /// report counts (`IssueState::reported_at_ms`).
    pub fn with_device(self, clock: DeviceClock, reported_ms: Option<i64>) -> Self {
        Self {
            clock,
            reported_ms,
            ..self
        }
    }

    /// The earliest capture time the server vouches for a photo in `role`, less the tolerance
    /// every phone time gets (`rules::times`).
    fn not_before_ms(&self, role: PhotoRole) -> Option<i64> {
        let clock = match (role, self.reported_ms) {
            (PhotoRole::After, Some(reported)) => DeviceClock {
                previous_sync_ms: Some(
                    self.clock
                        .previous_sync_ms
                        .map_or(reported, |s| s.max(reported)),
                ),
                ..self.clock
            },
            _ => self.clock,
        };
        DeviceClock {
            received_ms: None,
            ..clock
        }
        .not_before_ms()
    }
}

/// A patrol's `(start, end)`, ending at `now_ms` while it is still under way.
pub fn patrol_window(patrol: &Patrol, now_ms: i64) -> (i64, i64) {
    (patrol.started_at_ms, patrol.ended_at_ms.unwrap_or(now_ms))
}

/// Where a referenced photo stands on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Stored, complete and verified as this record's photo (uploaded by one who may put it
    /// there), received at this time.
    Received { at_ms: i64 },
    /// Not (yet) stored as this record's photo.
    NotReceived,
    /// Its receipt could not be read: whether it arrived is not known.
    Unknown,
}

impl Arrival {
    /// When it was received, if it was.
    pub fn received_at_ms(self) -> Option<i64> {
        match self {
            Arrival::Received { at_ms } => Some(at_ms),
            _ => None,
        }
    }

    /// Whether the server holds it; `None` when unknown.
    pub fn stored(self) -> Option<bool> {
        match self {
            Arrival::Received { .. } => Some(true),
            Arrival::NotReceived => Some(false),
            Arrival::Unknown => None,
        }
    }
}

/// One photo of a record as judged: where it stands and its doubts.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoEvidence {
    pub photo: PhotoRef,
    pub arrival: Arrival,
    pub flags: Vec<EvidenceFlag>,
}

/// Every photo an issue references, in order: the record's own photos, then the after photos
/// named by rectifications (superseded ones included; their photos stay in the timeline) that
/// the record does not list. An after photo named only by an event carries no EXIF facts in
/// the issue, so it is judged as a photo that records neither time nor place.
pub fn issue_photos(record: &Issue, state: &IssueState) -> Vec<PhotoRef> {
    let mut refs = record.photos.clone();
    let mut seen: BTreeSet<String> = refs.iter().map(|p| p.sha256.clone()).collect();
    for entry in &state.timeline {
        if let Action::RectificationSubmitted { photos, .. } = &entry.event.action {
            for sha in photos {
                if seen.insert(sha.clone()) {
                    refs.push(PhotoRef {
                        sha256: sha.clone(),
                        role: PhotoRole::After,
                        taken_at_ms: None,
                        position: None,
                        bytes: 0,
                    });
                }
            }
        }
    }
    refs
}

/// The judgement of each of `photos` (in order) against `context`, with `arrival` saying
/// whether and when the server received each (by its SHA-256). The clock-skew check compares
/// the capture time with the photo's own arrival, so it waits until the photo has arrived; the
/// time window applies to before and evidence photos only.
pub fn evidence(
    photos: &[PhotoRef],
    context: &EvidenceContext,
    arrival: &dyn Fn(&str) -> Arrival,
) -> Vec<PhotoEvidence> {
    photos
        .iter()
        .map(|photo| {
            let arrival = arrival(&photo.sha256);
            let window = match photo.role {
                PhotoRole::After => None,
                PhotoRole::Before | PhotoRole::Evidence => context.window,
            };
            let mut flags = evidence_checks(
                photo,
                window,
                arrival.received_at_ms().unwrap_or(i64::MAX),
                &context.place,
                &context.rules,
            );
            // The one rule for times a phone supplies, its early side: a capture time before
            // what the server vouches for is an older photo offered as this record's.
            let floor = context.not_before_ms(photo.role);
            if let (Some(taken), Some(floor)) = (photo.taken_at_ms, floor) {
                if taken < floor {
                    let vouched = floor.saturating_add(EARLY_TOLERANCE_MS);
                    flags.push(EvidenceFlag::TakenTooEarly {
                        minutes: (vouched.saturating_sub(taken) as f64 / 60_000.0).round() as i64,
                    });
                }
            }
            PhotoEvidence {
                photo: photo.clone(),
                arrival,
                flags,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// 2025-11-28 09:00 in Jinan.
    const T0: i64 = 1_764_291_600_000;
    /// A stretch of 小清河 in 天桥区, `[lon, lat]`.
    const RIVER: [[f64; 2]; 3] = [[116.970, 36.720], [116.980, 36.722], [116.990, 36.723]];

    fn photo(taken_at_ms: Option<i64>, position: Option<[f64; 2]>) -> PhotoRef {
        PhotoRef {
            sha256: "ab".repeat(32),
            role: PhotoRole::Evidence,
            taken_at_ms,
            position,
            bytes: 300_000,
        }
    }

    fn check(p: &PhotoRef, received: i64, place: &[[f64; 2]]) -> Vec<EvidenceFlag> {
        evidence_checks(
            p,
            Some((T0, T0 + 60 * MIN)),
            received,
            place,
            &EvidenceRules::default(),
        )
    }

    #[test]
    fn a_photo_taken_on_the_river_during_the_patrol_raises_nothing() {
        let on_bank = photo(Some(T0 + 20 * MIN), Some([116.980, 36.7225]));
        assert!(check(&on_bank, T0 + 2 * 60 * MIN, &RIVER).is_empty());
        // Within the slack on both ends.
        let early = photo(Some(T0 - 10 * MIN), Some(RIVER[0]));
        assert!(check(&early, T0 + 2 * 60 * MIN, &RIVER).is_empty());
    }

    #[test]
    fn missing_exif_is_flagged_and_the_dependent_checks_skipped() {
        let bare = photo(None, None);
        assert_eq!(
            check(&bare, T0, &RIVER),
            vec![EvidenceFlag::MissingExif {
                capture_time: true,
                position: true
            }]
        );
        let no_gps = photo(Some(T0 + 5 * MIN), None);
        assert_eq!(
            check(&no_gps, T0 + 90 * MIN, &RIVER),
            vec![EvidenceFlag::MissingExif {
                capture_time: false,
                position: true
            }]
        );
        assert_eq!(
            EvidenceFlag::MissingExif {
                capture_time: false,
                position: true
            }
            .to_string(),
            "the photo does not record its position"
        );
    }

    #[test]
    fn photos_taken_outside_the_patrol_say_by_how_many_minutes() {
        let place = [RIVER[1]];
        let before = photo(Some(T0 - 3 * 60 * MIN), Some(RIVER[1]));
        assert_eq!(
            check(&before, T0 + 2 * 60 * MIN, &place),
            vec![EvidenceFlag::TakenOutsideWindow { minutes: -180 }]
        );
        let after = photo(Some(T0 + 60 * MIN + 40 * MIN), Some(RIVER[1]));
        let flags = check(&after, T0 + 5 * 60 * MIN, &place);
        assert_eq!(
            flags,
            vec![EvidenceFlag::TakenOutsideWindow { minutes: 40 }]
        );
        assert_eq!(flags[0].to_string(), "taken 40 min after the patrol ended");
        assert!(evidence_checks(&before, None, T0, &place, &EvidenceRules::default()).is_empty());
    }

    #[test]
    fn a_capture_time_after_receipt_is_clock_skew() {
        let received = T0 + 30 * MIN;
        let from_the_future = photo(Some(received + 2 * 60 * MIN), Some(RIVER[0]));
        let flags = evidence_checks(
            &from_the_future,
            None,
            received,
            &RIVER,
            &EvidenceRules::default(),
        );
        assert_eq!(flags, vec![EvidenceFlag::ClockSkew { seconds: 7_200 }]);
        // A few minutes ahead is within the tolerance; weeks behind is a phone that was offline.
        let slightly = photo(Some(received + 2 * MIN), Some(RIVER[0]));
        assert!(
            evidence_checks(&slightly, None, received, &RIVER, &EvidenceRules::default())
                .is_empty()
        );
        // The tolerance is the one every phone time gets (`rules::times`): a clock as fast as
        // a patrol's fixes may be is as fast as a photo's capture time may be.
        let tolerance = crate::rules::LATE_TOLERANCE_MS;
        for (ahead, skewed) in [(tolerance, false), (tolerance + MIN, true)] {
            let p = photo(Some(received + ahead), Some(RIVER[0]));
            let flags = evidence_checks(&p, None, received, &RIVER, &EvidenceRules::default());
            assert_eq!(!flags.is_empty(), skewed, "{ahead} ms ahead: {flags:?}");
        }
        let weeks_old = photo(Some(received - 21 * 24 * 60 * MIN), Some(RIVER[0]));
        assert!(evidence_checks(
            &weeks_old,
            None,
            received,
            &RIVER,
            &EvidenceRules::default()
        )
        .is_empty());
    }

    #[test]
    fn far_photos_give_the_distance_to_the_place_or_track() {
        // About 2.2 km north of the river line.
        let far = photo(Some(T0 + 10 * MIN), Some([116.980, 36.742]));
        let flags = check(&far, T0 + 90 * MIN, &RIVER);
        let [EvidenceFlag::FarFromPlace { metres }] = flags[..] else {
            panic!("expected FarFromPlace, got {flags:?}");
        };
        assert!((2_150.0..2_250.0).contains(&metres), "{metres}");
        // Near the line between two track points counts as near, though far from each point.
        let between = photo(Some(T0 + 10 * MIN), Some([116.980, 36.7218]));
        let ends_only = [RIVER[0], RIVER[2]];
        assert!(check(&between, T0 + 90 * MIN, &ends_only).is_empty());
        // No reference place: nothing to compare with.
        assert!(check(&far, T0 + 90 * MIN, &[]).is_empty());
    }

    #[test]
    fn evidence_judges_before_photos_by_the_window_and_waits_for_arrival_to_judge_the_clock() {
        let context = EvidenceContext {
            window: Some((T0, T0 + 60 * MIN)),
            place: RIVER.to_vec(),
            rules: EvidenceRules::default(),
            clock: DeviceClock::default(),
            reported_ms: None,
        };
        let early = PhotoRef {
            role: PhotoRole::Before,
            ..photo(Some(T0 - 3 * 60 * MIN), Some(RIVER[1]))
        };
        let after = PhotoRef {
            sha256: "cd".repeat(32),
            role: PhotoRole::After,
            ..early.clone()
        };
        let future = PhotoRef {
            sha256: "ef".repeat(32),
            ..photo(Some(T0 + 50 * MIN), Some(RIVER[1]))
        };
        let arrived = |sha: &str| match sha.as_bytes()[0] {
            b'a' => Arrival::Received { at_ms: T0 },
            b'c' => Arrival::Unknown,
            _ => Arrival::NotReceived,
        };
        let judged = evidence(&[early, after, future.clone()], &context, &arrived);
        assert_eq!(
            judged[0].flags,
            vec![EvidenceFlag::TakenOutsideWindow { minutes: -180 }]
        );
        assert_eq!(judged[0].arrival.stored(), Some(true));
        // After photos are taken days later, on rectification: no window.
        assert!(judged[1].flags.is_empty(), "{:?}", judged[1]);
        assert_eq!(judged[1].arrival.stored(), None);
        // Not arrived yet: the clock cannot be judged.
        assert!(judged[2].flags.is_empty(), "{:?}", judged[2]);
        let arrived_early = |_: &str| Arrival::Received { at_ms: T0 };
        assert_eq!(
            evidence(&[future], &context, &arrived_early)[0].flags,
            vec![EvidenceFlag::ClockSkew { seconds: 3_000 }]
        );
    }

    #[test]
    fn a_photo_older_than_the_server_vouches_for_says_by_how_much() {
        const DAY: i64 = 24 * 60 * MIN;
        let tolerance = EARLY_TOLERANCE_MS;
        let context = EvidenceContext {
            window: None,
            place: vec![RIVER[1]],
            rules: EvidenceRules::default(),
            clock: DeviceClock::default(),
            reported_ms: None,
        };
        let unknown = context.clone();
        let context = context.with_device(
            DeviceClock {
                bound_ms: Some(T0 - 30 * DAY),
                previous_sync_ms: Some(T0 - DAY),
                received_ms: Some(T0),
            },
            Some(T0),
        );
        let at = |sha: char, role: PhotoRole, taken: i64| PhotoRef {
            sha256: sha.to_string().repeat(64),
            role,
            ..photo(Some(taken), Some(RIVER[1]))
        };
        let photos = [
            // Taken before the phone's last sync before the report: an older photo.
            at('a', PhotoRole::Before, T0 - DAY - 3 * 60 * MIN),
            // Within the tolerance of that sync: a slow clock, not an old photo.
            at('b', PhotoRole::Before, T0 - DAY - tolerance),
            // Weeks older, before the phone was even signed in.
            at('c', PhotoRole::Evidence, T0 - 40 * DAY),
            // An after photo taken before the problem was reported cannot show it put right.
            at('d', PhotoRole::After, T0 - 2 * 60 * MIN),
            at('e', PhotoRole::After, T0 + DAY),
        ];
        let judged = evidence(&photos, &context, &|_| Arrival::Received {
            at_ms: T0 + 2 * DAY,
        });
        let flags: Vec<_> = judged.iter().map(|j| j.flags.clone()).collect();
        assert_eq!(
            flags,
            vec![
                vec![EvidenceFlag::TakenTooEarly { minutes: 180 }],
                vec![],
                vec![EvidenceFlag::TakenTooEarly {
                    minutes: 39 * 24 * 60
                }],
                vec![EvidenceFlag::TakenTooEarly { minutes: 120 }],
                vec![],
            ]
        );
        // Without what the server knows of the phone, nothing is judged early.
        assert!(
            evidence(&photos[..1], &unknown, &|_| Arrival::NotReceived)[0]
                .flags
                .is_empty()
        );
    }
}
