//! Which issues a list shows: the one filter behind the dashboard's issue board (`GET /issues`)
//! and the phone's issue list. Each criterion left `None` selects every issue; the record's
//! place and kind and the derived workflow state are all that is looked at.

use super::fold::IssueState;
use super::table::Status;
use crate::doc::Issue;
use crate::model::{DivisionCode, Severity, System};

/// What an issue list asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IssueFilter {
    /// Any of these statuses.
    pub statuses: Option<Vec<Status>>,
    /// `true`: issues that still need work; `false`: those that are finished.
    pub open: Option<bool>,
    pub system: Option<System>,
    /// Issues inside this division.
    pub division: Option<DivisionCode>,
    pub asset: Option<String>,
    /// The department name or user id the issue is assigned to.
    pub assignee: Option<String>,
    pub category: Option<String>,
    pub severity: Option<Severity>,
    /// `true`: only issues past their deadline; `false`: only those that are not.
    pub overdue: Option<bool>,
    /// `true`: only possible duplicates of an earlier open issue nearby.
    pub possible_duplicate: Option<bool>,
    /// Reported at or after this time, Unix milliseconds.
    pub reported_from: Option<i64>,
    /// Reported before this time, Unix milliseconds.
    pub reported_to: Option<i64>,
}

impl IssueFilter {
    /// Whether the issue (`record`, `state`) passes, with overdue judged at `now_ms`.
    /// `duplicate` says which earlier issue this one may repeat; it is asked only when the
    /// filter needs it (finding it is the costly part).
    pub fn matches(
        &self,
        (record, state): (&Issue, &IssueState),
        now_ms: i64,
        duplicate: &mut dyn FnMut() -> Option<String>,
    ) -> bool {
        let (r, s) = (record, state);
        self.statuses
            .as_ref()
            .is_none_or(|list| list.iter().any(|st| s.status == Some(*st)))
            && self.open.is_none_or(|want| s.is_open() == want)
            && self.system.is_none_or(|sys| r.system == sys)
            && self
                .division
                .as_ref()
                .is_none_or(|d| d.contains(&r.division))
            && self.asset.as_ref().is_none_or(|a| r.asset == *a)
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| s.assignee.as_ref().is_some_and(|x| x.name() == a))
            && self.category.as_ref().is_none_or(|c| r.category == *c)
            && self.severity.is_none_or(|sev| r.severity == sev)
            && self
                .overdue
                .is_none_or(|want| s.overdue_days(now_ms).is_some() == want)
            && self.reported_from.is_none_or(|t| r.reported_at_ms >= t)
            && self.reported_to.is_none_or(|t| r.reported_at_ms < t)
            && self
                .possible_duplicate
                .is_none_or(|want| duplicate().is_some() == want)
    }
}

/// Parses a comma-separated list of statuses (`reported,accepted`); blanks are skipped.
pub fn parse_statuses(list: &str) -> Result<Vec<Status>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Status::parse(s).ok_or_else(|| format!("unknown status {s}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{fold, Action, Assignee, Event};

    const DAY: i64 = 86_400_000;

    fn issue() -> Issue {
        Issue {
            id: "i-1".into(),
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::Urgent,
            asset: "river-thh-01".into(),
            division: DivisionCode::new("370105014201").unwrap(),
            location: [116.98, 36.72],
            reporter: "chief".into(),
            reported_at_ms: 10 * DAY,
            description: "河面漂浮垃圾".into(),
            photos: Vec::new(),
            patrol: None,
        }
    }

    fn event(id: &str, at_ms: i64, action: Action) -> Event {
        Event {
            id: id.into(),
            by: "office".into(),
            device: "web".into(),
            at_ms,
            action,
        }
    }

    #[test]
    fn every_criterion_narrows_and_none_selects_all() {
        let record = issue();
        let state = fold(&[
            event("e1", 10 * DAY, Action::Reported),
            event("e2", 11 * DAY, Action::Accepted),
            event(
                "e3",
                11 * DAY,
                Action::Assigned {
                    assignee: Assignee::Department("区水务局".into()),
                    deadline_ms: 12 * DAY,
                },
            ),
        ]);
        let now = 20 * DAY;
        let pass = |f: IssueFilter| f.matches((&record, &state), now, &mut || None);
        assert!(pass(IssueFilter::default()));
        let township = DivisionCode::new("370105014000").unwrap();
        assert!(pass(IssueFilter {
            statuses: Some(vec![Status::Reported, Status::Assigned]),
            open: Some(true),
            system: Some(System::River),
            division: Some(township),
            asset: Some("river-thh-01".into()),
            assignee: Some("区水务局".into()),
            category: Some("river.garbage".into()),
            severity: Some(Severity::Urgent),
            overdue: Some(true),
            possible_duplicate: Some(false),
            reported_from: Some(10 * DAY),
            reported_to: Some(10 * DAY + 1),
        }));
        for f in [
            IssueFilter {
                statuses: Some(vec![Status::Closed]),
                ..Default::default()
            },
            IssueFilter {
                open: Some(false),
                ..Default::default()
            },
            IssueFilter {
                system: Some(System::Forest),
                ..Default::default()
            },
            IssueFilter {
                division: Some(DivisionCode::new("370105015000").unwrap()),
                ..Default::default()
            },
            IssueFilter {
                assignee: Some("区林业局".into()),
                ..Default::default()
            },
            IssueFilter {
                overdue: Some(false),
                ..Default::default()
            },
            IssueFilter {
                possible_duplicate: Some(true),
                ..Default::default()
            },
            IssueFilter {
                reported_to: Some(10 * DAY),
                ..Default::default()
            },
        ] {
            assert!(!pass(f.clone()), "{f:?}");
        }
        // The duplicate search runs only when the filter asks for it.
        let mut asked = 0;
        IssueFilter::default().matches((&record, &state), now, &mut || {
            asked += 1;
            None
        });
        assert_eq!(asked, 0);
        assert_eq!(
            parse_statuses("reported, closed,"),
            Ok(vec![Status::Reported, Status::Closed])
        );
        assert!(parse_statuses("reported,nope").is_err());
    }
}
