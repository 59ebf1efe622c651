//! Possible duplicate reports: two chiefs often report the same rubbish heap or outfall. A new
//! issue lying within a configurable distance of an earlier open issue of the same category is
//! marked as a possible duplicate, so a supervisor can close it with `duplicate_of`.
//!
//! Only a suggestion: nothing is closed automatically. An issue is suggested only while the
//! transition table still allows `duplicate_of` in its status. Pure logic, no I/O.

use std::collections::BTreeMap;

use super::event::EventKind;
use super::table::{Status, Transition};
use crate::geo::haversine_m;

/// What the duplicate check needs of one issue.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateCandidate {
    pub id: String,
    pub category: String,
    /// `[lon, lat]`
    pub location: [f64; 2],
    pub reported_at_ms: i64,
    pub status: Option<Status>,
}

/// For each issue that may be a duplicate, the nearest earlier open issue of the same category
/// within `radius_m` metres (ties on report time broken by id, so the answer is stable).
pub fn possible_duplicates(
    issues: &[DuplicateCandidate],
    radius_m: f64,
) -> BTreeMap<String, String> {
    let duplicable = Transition::of(EventKind::DuplicateOf);
    let earlier = |a: &DuplicateCandidate, b: &DuplicateCandidate| {
        (a.reported_at_ms, &a.id) < (b.reported_at_ms, &b.id)
    };
    let mut found = BTreeMap::new();
    for issue in issues.iter().filter(|i| duplicable.allowed_in(i.status)) {
        let nearest = issues
            .iter()
            .filter(|o| o.id != issue.id && o.category == issue.category)
            .filter(|o| o.status.is_some_and(Status::is_open) && earlier(o, issue))
            .map(|o| {
                let [lon, lat] = issue.location;
                let metres = haversine_m(lat, lon, o.location[1], o.location[0]);
                (metres, o)
            })
            .filter(|(metres, _)| *metres <= radius_m)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, original)) = nearest {
            found.insert(issue.id.clone(), original.id.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(id: &str, category: &str, lon: f64, at: i64, status: Status) -> DuplicateCandidate {
        DuplicateCandidate {
            id: id.into(),
            category: category.into(),
            location: [lon, 36.7],
            reported_at_ms: at,
            status: Some(status),
        }
    }

    #[test]
    fn a_later_report_nearby_of_the_same_category_is_suggested() {
        // 0.001° of longitude at 36.7° N is about 89 m.
        let issues = vec![
            issue("a", "river.garbage", 117.000, 1, Status::Assigned),
            issue("b", "river.garbage", 117.001, 2, Status::Reported),
            issue("c", "river.outfall", 117.000, 3, Status::Reported),
            issue("d", "river.garbage", 117.010, 4, Status::Reported),
            issue("e", "river.garbage", 117.0005, 5, Status::Submitted),
        ];
        let found = possible_duplicates(&issues, 100.0);
        assert_eq!(found.get("b").map(String::as_str), Some("a"));
        assert!(
            !found.contains_key("a"),
            "the original is not its own duplicate"
        );
        assert!(!found.contains_key("c"), "another category");
        assert!(!found.contains_key("d"), "too far");
        assert!(
            !found.contains_key("e"),
            "duplicate_of is no longer allowed"
        );
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn finished_issues_are_not_originals_and_the_nearest_wins() {
        let issues = vec![
            issue("a", "river.garbage", 117.000, 1, Status::Closed),
            issue("b", "river.garbage", 117.0009, 2, Status::Accepted),
            issue("c", "river.garbage", 117.0002, 3, Status::Accepted),
            issue("d", "river.garbage", 117.0003, 4, Status::Reported),
        ];
        let found = possible_duplicates(&issues, 100.0);
        assert!(!found.contains_key("b"), "a is closed");
        assert_eq!(found.get("c").map(String::as_str), Some("b"));
        assert_eq!(found.get("d").map(String::as_str), Some("c"));
    }
}
