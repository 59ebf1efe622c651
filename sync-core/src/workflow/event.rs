//! The events an issue's timeline is made of: who appended what, from which device, when.
//!
//! Events are facts recorded on a device and never edited; whether one counts is decided later
//! by the fold. This module only describes them; it must not judge them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The device name events carry when appended on the web dashboard.
pub const WEB_DEVICE: &str = "web";
/// The device name of the server's deadline job.
pub const DEADLINE_JOB_DEVICE: &str = "deadline-job";
/// The device name of reports the server records for the public (signboard QR code, hotline,
/// letters).
pub const PUBLIC_DEVICE: &str = "public-report";
/// Device names only the server writes: a phone's event claiming one is refused.
pub const SERVER_DEVICES: [&str; 3] = [WEB_DEVICE, DEADLINE_JOB_DEVICE, PUBLIC_DEVICE];

/// Who is told to rectify an issue. (Its schema for `/openapi.json` is in `api_types`.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignee {
    /// A responsible department (e.g. 区水务局); any handler of that department acts for it.
    Department(String),
    /// One user, e.g. the village chief told to clear the rubbish himself.
    User(String),
}

impl Assignee {
    /// The department name or user id.
    pub fn name(&self) -> &str {
        match self {
            Assignee::Department(name) | Assignee::User(name) => name,
        }
    }
}

/// What an event does, with its payload. A note (of a rectification, a verification or an
/// escalation) may be left out: it is then empty. Reasons, comment texts and the original of a
/// duplicate must hold more than blanks (`check`); the schema says so with `pattern`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Reported,
    Accepted,
    Assigned {
        assignee: Assignee,
        /// A whole number of milliseconds; `5.0` reads as `5`, as JSON Schema's integer allows.
        #[serde(deserialize_with = "crate::api_types::json_integer")]
        deadline_ms: i64,
    },
    RectificationSubmitted {
        #[serde(default)]
        note: String,
        /// SHA-256 (lower-case hex) of the after photos.
        #[cfg_attr(
            feature = "openapi",
            schema(min_items = 1, inline, value_type = Vec<Sha256Hex>)
        )]
        photos: Vec<String>,
    },
    Verified {
        #[serde(default)]
        note: String,
    },
    Rejected {
        #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
        reason: String,
    },
    Invalidated {
        #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
        reason: String,
    },
    DuplicateOf {
        #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
        issue: String,
    },
    Escalated {
        #[serde(default)]
        note: String,
    },
    Reopened {
        #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
        reason: String,
    },
    Comment {
        #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
        text: String,
    },
}

/// A photo's name in the API's schema: its SHA-256 in 64 lower-case hex digits.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[0-9a-f]{64}$")]
pub struct Sha256Hex(#[allow(dead_code)] String);

impl Action {
    pub fn kind(&self) -> EventKind {
        match self {
            Action::Reported => EventKind::Reported,
            Action::Accepted => EventKind::Accepted,
            Action::Assigned { .. } => EventKind::Assigned,
            Action::RectificationSubmitted { .. } => EventKind::RectificationSubmitted,
            Action::Verified { .. } => EventKind::Verified,
            Action::Rejected { .. } => EventKind::Rejected,
            Action::Invalidated { .. } => EventKind::Invalidated,
            Action::DuplicateOf { .. } => EventKind::DuplicateOf,
            Action::Escalated { .. } => EventKind::Escalated,
            Action::Reopened { .. } => EventKind::Reopened,
            Action::Comment { .. } => EventKind::Comment,
        }
    }
}

/// The kind of an event without its payload: what the transition table and the API talk about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Reported,
    Accepted,
    Assigned,
    RectificationSubmitted,
    Verified,
    Rejected,
    Invalidated,
    DuplicateOf,
    Escalated,
    Reopened,
    Comment,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Reported,
        EventKind::Accepted,
        EventKind::Assigned,
        EventKind::RectificationSubmitted,
        EventKind::Verified,
        EventKind::Rejected,
        EventKind::Invalidated,
        EventKind::DuplicateOf,
        EventKind::Escalated,
        EventKind::Reopened,
        EventKind::Comment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Reported => "reported",
            EventKind::Accepted => "accepted",
            EventKind::Assigned => "assigned",
            EventKind::RectificationSubmitted => "rectification_submitted",
            EventKind::Verified => "verified",
            EventKind::Rejected => "rejected",
            EventKind::Invalidated => "invalidated",
            EventKind::DuplicateOf => "duplicate_of",
            EventKind::Escalated => "escalated",
            EventKind::Reopened => "reopened",
            EventKind::Comment => "comment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an issue's append-only event list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUIDv7 text); a second event with the same id is a re-delivery, not news.
    pub id: String,
    /// The user who appended it.
    pub by: String,
    pub device: String,
    /// Device time, Unix milliseconds. Phones' clocks drift, so the fold orders by list position,
    /// never by this.
    pub at_ms: i64,
    #[serde(flatten)]
    pub action: Action,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        assert_eq!(EventKind::parse("closed"), None);
    }

    #[test]
    fn events_serialize_flat_with_a_kind_tag() {
        let event = Event {
            id: "0190f2a4-0000-7000-8000-000000000001".into(),
            by: "u-supervisor".into(),
            device: "d-1".into(),
            at_ms: 1_700_000_000_000,
            action: Action::Assigned {
                assignee: Assignee::Department("区水务局".into()),
                deadline_ms: 1_700_600_000_000,
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "assigned");
        assert_eq!(json["assignee"]["department"], "区水务局");
        assert_eq!(json["deadline_ms"], 1_700_600_000_000_i64);
        assert_eq!(json["by"], "u-supervisor");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);

        let reported: Event = serde_json::from_str(
            r#"{"id":"e1","by":"u","device":"d","at_ms":5,"kind":"reported"}"#,
        )
        .unwrap();
        assert_eq!(reported.action, Action::Reported);
        assert_eq!(reported.action.kind(), EventKind::Reported);
    }
}
