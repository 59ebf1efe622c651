//! Possible duplicate reports: two chiefs often report the same rubbish heap or outfall. A new
//! issue lying within a configurable distance of an earlier open issue of the same category is
//! marked as a possible duplicate, so a supervisor can close it with `duplicate_of`.
//!
//! Only a suggestion: nothing is closed automatically. An issue is suggested only while the
//! transition table still allows `duplicate_of` in its status. Pure logic, no I/O.
//!
//! A district holds tens of thousands of reports, so the search for one issue looks only at the
//! issues of its category in the grid cells its radius reaches ([`DuplicateIndex`]), never at
//! every pair.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::event::EventKind;
use super::table::{Status, Transition};
use crate::geo::{haversine_m, EARTH_RADIUS_M};

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

/// Side of a grid cell, degrees: about 111 m north–south (less east–west away from the
/// equator), so the default 50 m radius reaches a handful of cells.
const CELL_DEG: f64 = 0.001;

type Cell = (i64, i64);

fn cell_of([lon, lat]: [f64; 2]) -> Option<Cell> {
    (lon.is_finite() && lat.is_finite()).then(|| {
        (
            (lon / CELL_DEG).floor() as i64,
            (lat / CELL_DEG).floor() as i64,
        )
    })
}

/// The issues of one category by grid cell. An issue whose location is not a number lies in
/// no cell: it is within no distance of anything.
#[derive(Debug, Clone, Default)]
struct Category {
    cells: HashMap<Cell, BTreeSet<String>>,
    placed: usize,
}

/// Issues by category and place, so that finding the issue one may repeat looks only nearby.
/// Kept current by the caller: [`DuplicateIndex::insert`] when an issue is stored or changes,
/// [`DuplicateIndex::remove`] when it goes.
#[derive(Debug, Clone, Default)]
pub struct DuplicateIndex {
    issues: HashMap<String, DuplicateCandidate>,
    categories: HashMap<String, Category>,
}

impl DuplicateIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.issues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&DuplicateCandidate> {
        self.issues.get(id)
    }

    /// Adds an issue, or replaces what was known of it.
    pub fn insert(&mut self, issue: DuplicateCandidate) {
        self.remove(&issue.id);
        if let Some(cell) = cell_of(issue.location) {
            let category = self.categories.entry(issue.category.clone()).or_default();
            category
                .cells
                .entry(cell)
                .or_default()
                .insert(issue.id.clone());
            category.placed += 1;
        }
        self.issues.insert(issue.id.clone(), issue);
    }

    pub fn remove(&mut self, id: &str) -> Option<DuplicateCandidate> {
        let old = self.issues.remove(id)?;
        if let (Some(cell), Some(category)) = (
            cell_of(old.location),
            self.categories.get_mut(&old.category),
        ) {
            if let Some(ids) = category.cells.get_mut(&cell) {
                if ids.remove(id) {
                    category.placed -= 1;
                }
                if ids.is_empty() {
                    category.cells.remove(&cell);
                }
            }
            if category.placed == 0 {
                self.categories.remove(&old.category);
            }
        }
        Some(old)
    }

    /// The ids of the issues of `issue`'s category that may lie within `radius_m` of it: those
    /// in the grid cells the radius reaches, or every one of the category when that is fewer
    /// (or the circle reaches a pole or the date line).
    fn near<'a>(&'a self, issue: &DuplicateCandidate, radius_m: f64) -> Vec<&'a String> {
        let Some(category) = self.categories.get(&issue.category) else {
            return Vec::new();
        };
        let [lon, lat] = issue.location;
        if cell_of(issue.location).is_none() || radius_m.is_nan() || radius_m < 0.0 {
            return Vec::new();
        }
        let every = || category.cells.values().flatten().collect();
        // On the sphere haversine_m measures, a circle of angular radius d around latitude φ
        // spans d of latitude and asin(sin d / cos φ) of longitude, unless it holds a pole.
        let angular = radius_m / EARTH_RADIUS_M;
        let (sin_d, cos_lat) = (angular.sin(), lat.to_radians().cos());
        if angular >= std::f64::consts::FRAC_PI_2 || sin_d >= cos_lat {
            return every();
        }
        // A hair wider than exact, so rounding never leaves out an issue on the circle.
        let margin = |deg: f64| deg * (1.0 + 1e-9) + 1e-9;
        let d_lat = margin(angular.to_degrees());
        let d_lon = margin((sin_d / cos_lat).asin().to_degrees());
        if lon - d_lon < -180.0 || lon + d_lon > 180.0 {
            return every();
        }
        let span = |a: f64, b: f64| ((a / CELL_DEG).floor() as i64, (b / CELL_DEG).floor() as i64);
        let (x0, x1) = span(lon - d_lon, lon + d_lon);
        let (y0, y1) = span(lat - d_lat, lat + d_lat);
        let cells = (x1 - x0 + 1).saturating_mul(y1 - y0 + 1);
        if cells >= i64::try_from(category.cells.len()).unwrap_or(i64::MAX) {
            return every();
        }
        let mut out = Vec::new();
        for x in x0..=x1 {
            for y in y0..=y1 {
                if let Some(ids) = category.cells.get(&(x, y)) {
                    out.extend(ids);
                }
            }
        }
        out
    }

    /// For issue `id`: the nearest earlier open issue of the same category within `radius_m`
    /// metres among those `visible` accepts (ties on distance broken by id, so the answer is
    /// stable), when `id` may still be closed as a duplicate; with the number of candidates
    /// compared.
    pub fn duplicate_of(
        &self,
        id: &str,
        radius_m: f64,
        visible: &dyn Fn(&str) -> bool,
    ) -> (Option<&str>, usize) {
        let Some(issue) = self.issues.get(id) else {
            return (None, 0);
        };
        if !Transition::of(EventKind::DuplicateOf).allowed_in(issue.status) {
            return (None, 0);
        }
        let near = self.near(issue, radius_m);
        let compared = near.len();
        let nearest = near
            .into_iter()
            .filter_map(|other| self.issues.get(other))
            .filter(|o| o.id != issue.id && o.status.is_some_and(Status::is_open))
            .filter(|o| (o.reported_at_ms, &o.id) < (issue.reported_at_ms, &issue.id))
            .filter_map(|o| {
                let [lon, lat] = issue.location;
                let metres = haversine_m(lat, lon, o.location[1], o.location[0]);
                (metres <= radius_m).then_some((metres, o))
            })
            .filter(|(_, o)| visible(&o.id))
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        (nearest.map(|(_, o)| o.id.as_str()), compared)
    }
}

/// For each issue that may be a duplicate, the nearest earlier open issue of the same category
/// within `radius_m` metres (ties on report time broken by id, on distance by id, so the answer
/// is stable).
pub fn possible_duplicates(
    issues: &[DuplicateCandidate],
    radius_m: f64,
) -> BTreeMap<String, String> {
    let mut index = DuplicateIndex::new();
    for issue in issues {
        index.insert(issue.clone());
    }
    let mut found = BTreeMap::new();
    for issue in issues {
        if let (Some(original), _) = index.duplicate_of(&issue.id, radius_m, &|_| true) {
            found.insert(issue.id.clone(), original.to_owned());
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

    /// The grid search finds exactly what comparing every pair finds, wherever the issues lie
    /// and whatever the radius.
    #[test]
    fn the_grid_search_agrees_with_comparing_every_pair() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let statuses = [
            Status::Reported,
            Status::Accepted,
            Status::Assigned,
            Status::Closed,
        ];
        for (centre, spread) in [
            ([117.0, 36.7], 0.01),
            ([126.6, 53.4], 0.02),
            ([179.9995, 0.0], 0.002),
        ] {
            let issues: Vec<DuplicateCandidate> = (0..300)
                .map(|n| DuplicateCandidate {
                    id: format!("i{n:03}"),
                    category: if n % 3 == 0 {
                        "river.outfall"
                    } else {
                        "river.garbage"
                    }
                    .into(),
                    location: [
                        (centre[0] + (next() - 0.5) * spread).min(180.0),
                        centre[1] + (next() - 0.5) * spread,
                    ],
                    reported_at_ms: (next() * 50.0) as i64,
                    status: Some(statuses[n % statuses.len()]),
                })
                .collect();
            for radius in [0.0, 10.0, 50.0, 120.0, 400.0, 5_000.0] {
                assert_eq!(
                    possible_duplicates(&issues, radius),
                    every_pair(&issues, radius),
                    "around {centre:?} within {radius} m"
                );
            }
        }
    }

    /// The answer by comparing every pair, as the check was first written.
    fn every_pair(issues: &[DuplicateCandidate], radius_m: f64) -> BTreeMap<String, String> {
        let duplicable = Transition::of(EventKind::DuplicateOf);
        let mut found = BTreeMap::new();
        for issue in issues.iter().filter(|i| duplicable.allowed_in(i.status)) {
            let nearest = issues
                .iter()
                .filter(|o| o.id != issue.id && o.category == issue.category)
                .filter(|o| o.status.is_some_and(Status::is_open))
                .filter(|o| (o.reported_at_ms, &o.id) < (issue.reported_at_ms, &issue.id))
                .map(|o| {
                    let [lon, lat] = issue.location;
                    (haversine_m(lat, lon, o.location[1], o.location[0]), o)
                })
                .filter(|(metres, _)| *metres <= radius_m)
                .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
            if let Some((_, original)) = nearest {
                found.insert(issue.id.clone(), original.id.clone());
            }
        }
        found
    }

    #[test]
    fn a_search_compares_only_the_neighbourhood() {
        // A thousand issues a kilometre apart along a line, and one more next to the last.
        let mut index = DuplicateIndex::new();
        for n in 0..1_000 {
            index.insert(issue(
                &format!("i{n:04}"),
                "river.garbage",
                117.0 + 0.01 * n as f64,
                n,
                Status::Accepted,
            ));
        }
        index.insert(issue(
            "new",
            "river.garbage",
            117.0 + 0.01 * 999.0 + 0.0002,
            5_000,
            Status::Reported,
        ));
        let (found, compared) = index.duplicate_of("new", 50.0, &|_| true);
        assert_eq!(found, Some("i0999"));
        assert!(compared <= 2, "compared {compared}");
        // What the caller may not see is not suggested.
        let (found, _) = index.duplicate_of("new", 50.0, &|id| id != "i0999");
        assert_eq!(found, None);
        // A changed or removed issue is searched as it is now.
        index.insert(issue(
            "i0999",
            "river.garbage",
            117.0 + 0.01 * 999.0,
            999,
            Status::Closed,
        ));
        assert_eq!(index.duplicate_of("new", 50.0, &|_| true).0, None);
        assert!(index.remove("i0999").is_some());
        assert_eq!(index.len(), 1_000);
        assert_eq!(index.duplicate_of("new", 50.0, &|_| true).0, None);
        assert_eq!(
            index.duplicate_of("new", 5_000.0, &|_| true).0,
            Some("i0998")
        );
    }
}
