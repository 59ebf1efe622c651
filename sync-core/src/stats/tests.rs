//! Ground truth built from real documents: patrols and issues created with the document API,
//! stored as bytes, read back into facts; the expected figures are worked out here by hand or
//! from the raw points, never by the code under test.

use super::*;
use crate::doc::{actor_for, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
use crate::geo::haversine_m;
use crate::model::{default_categories, Jurisdiction, Role, Severity, TrackPoint};
use crate::rules::days_from_civil;
use crate::track::{quantize, walking_track};
use crate::workflow::{Action, Assignee};

const HOUR: i64 = 3_600_000;

/// Unix milliseconds of midnight of a date in China.
fn china(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * DAY_MS - CHINA_OFFSET_MS
}

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).unwrap()
}

fn user(id: &str, role: Role) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: format!("name of {id}"),
        role,
        active: true,
    }
}

fn chief(id: &str, system: System, level: Level, division: &str, assets: &[&str]) -> User {
    user(
        id,
        Role::Chief {
            system,
            level,
            jurisdiction: Jurisdiction {
                division: code(division),
                assets: assets.iter().map(|a| (*a).to_owned()).collect(),
            },
        },
    )
}

fn people() -> Vec<User> {
    vec![
        chief("a", System::River, Level::Village, "370105014201", &["r1"]),
        chief("b", System::River, Level::Village, "370105014202", &["r2"]),
        chief(
            "c",
            System::Forest,
            Level::Subdistrict,
            "370105014000",
            &["f1"],
        ),
        chief("d", System::River, Level::District, "370105000000", &[]),
        chief(
            "e",
            System::River,
            Level::Subdistrict,
            "370105012000",
            &["r3"],
        ),
        user(
            "sup",
            Role::Supervisor {
                system: System::River,
                division: code("370105000000"),
            },
        ),
        user(
            "handler",
            Role::Handler {
                department: "区水务局".into(),
            },
        ),
    ]
}

struct World {
    users: Vec<User>,
    rules: RuleSet,
    categories: Vec<Category>,
}

impl World {
    fn new() -> Self {
        Self {
            users: people(),
            rules: RuleSet::default(),
            categories: default_categories(),
        }
    }

    fn reference(&self) -> Reference<'_> {
        Reference {
            users: &self.users,
            divisions: &[],
            assets: &[],
            rules: &self.rules,
            categories: &self.categories,
        }
    }

    fn user(&self, id: &str) -> &User {
        self.users.iter().find(|u| u.id == id).unwrap()
    }
}

/// A saved patrol by `chief` on `asset` whose GPS fixes start at `gps_start` and last
/// `seconds`; the phone's own start time is `phone_start`.
fn patrol_bytes(
    chief: &str,
    asset: &str,
    system: System,
    phone_start: i64,
    gps_start: i64,
    seconds: usize,
    seed: u64,
) -> (Vec<u8>, Vec<TrackPoint>) {
    let mut doc = PatrolDoc::create(
        actor_for(seed),
        &NewPatrol {
            system,
            asset: asset.into(),
            chief: chief.into(),
            division: code("370105014201"),
            device: "phone".into(),
            started_at_ms: phone_start,
        },
    )
    .unwrap();
    let walk = walking_track(36.75, 116.98, gps_start, seconds, seed);
    for chunk in walk.chunks(60) {
        doc.append_track(chunk).unwrap();
    }
    doc.finish(gps_start + seconds as i64 * 1000).unwrap();
    (doc.save(), walk.iter().map(quantize).collect())
}

fn km_of(points: &[TrackPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon))
        .sum::<f64>()
        / 1000.0
}

/// Four weeks of July 2024 (1 July was a Monday) and the patrols walked in them.
struct PatrolSet {
    docs: Vec<(String, Vec<u8>)>,
    /// Expected km per chief.
    km: BTreeMap<&'static str, f64>,
    window: Window,
}

use std::collections::BTreeMap;

fn patrol_set() -> PatrolSet {
    let july = china(2024, 7, 1);
    let window = Window {
        from_ms: july,
        to_ms: july + 28 * DAY_MS,
    };
    let mut docs = Vec::new();
    let mut km: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut add = |name: &'static str, chief: &str, asset, system, day: i64, secs, seed| {
        let t = july + day * DAY_MS + 9 * HOUR;
        let (bytes, points) = patrol_bytes(chief, asset, system, t, t, secs, seed);
        *km.entry(chief_key(chief)).or_default() += km_of(&points);
        docs.push((name.to_owned(), bytes));
    };
    fn chief_key(c: &str) -> &'static str {
        match c {
            "a" => "a",
            "b" => "b",
            "c" => "c",
            _ => "other",
        }
    }
    // Chief a: one 20-minute walk every week, plus one 5-minute walk that does not count.
    for week in 0..4 {
        add(
            "a-valid",
            "a",
            "r1",
            System::River,
            week * 7 + 1,
            1_200,
            10 + week as u64,
        );
    }
    add("a-short", "a", "r1", System::River, 9, 300, 20);
    // Chief b: two walks in the first week only.
    add("b-1", "b", "r2", System::River, 0, 1_500, 30);
    add("b-2", "b", "r2", System::River, 3, 1_500, 31);
    // Chief c (subdistrict forest, one a month): three walks.
    for k in 0..3 {
        add(
            "c",
            "c",
            "f1",
            System::Forest,
            2 + 7 * k,
            900,
            40 + k as u64,
        );
    }
    // Before and after the window: never counted.
    add("a-june", "a", "r1", System::River, -3, 1_200, 50);
    add("a-aug", "a", "r1", System::River, 29, 1_200, 51);
    km.insert("a-outside", 0.0);
    PatrolSet { docs, km, window }
}

fn index_of(docs: &[(String, Vec<u8>)], reference: &Reference) -> FactIndex {
    let mut index = FactIndex::default();
    for (_, bytes) in docs {
        index.upsert_bytes(bytes, reference).unwrap();
    }
    index
}

#[test]
fn patrol_compliance_matches_the_hand_count() {
    let world = World::new();
    let reference = world.reference();
    let set = patrol_set();
    let index = index_of(&set.docs, &reference);
    let report = patrol_report(&index, &reference, &Filter::new(set.window));
    let row = |id: &str| {
        report
            .chiefs
            .iter()
            .find(|r| r.chief == id)
            .unwrap()
            .clone()
    };

    let a = row("a");
    assert_eq!((a.required, a.valid, a.invalid, a.patrols), (4, 4, 1, 5));
    assert_eq!((a.periods, a.periods_met), (4, 4));
    assert_eq!(a.compliance, Some(1.0));
    let reasons: Vec<&str> = a
        .invalid_reasons
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(reasons, ["too_short", "too_short_distance"]);
    // The June and August walks are outside: km is the five July walks, from their raw points.
    let june_aug: f64 = set
        .docs
        .iter()
        .filter(|(n, _)| n == "a-june" || n == "a-aug")
        .map(|(_, b)| {
            let p = PatrolDoc::load(b).unwrap().track().unwrap();
            km_of(&p)
        })
        .sum();
    assert!(
        (a.km - (set.km["a"] - june_aug)).abs() < 1e-9,
        "{} {}",
        a.km,
        set.km["a"]
    );
    assert!(
        (a.hours - (4.0 * 1_199.0 + 299.0) / 3600.0).abs() < 0.01,
        "{}",
        a.hours
    );

    let b = row("b");
    // Two valid walks in one week and none in three others: one period of four met. The
    // second walk of a week does not make up for a week without one.
    assert_eq!((b.required, b.valid, b.periods_met), (4, 2, 1));
    assert_eq!(b.compliance, Some(0.25));
    assert!((b.km - set.km["b"]).abs() < 1e-9);

    let c = row("c");
    assert_eq!((c.required, c.valid), (1, 3));
    assert_eq!((c.periods, c.periods_met), (1, 1));
    assert_eq!(c.compliance, Some(1.0));
    assert_eq!(c.compliance_display, Some(1.0));

    let d = row("d");
    assert_eq!((d.required, d.patrols), (1, 0));
    assert_eq!(d.compliance, Some(0.0));
    assert_eq!(report.without_patrols, ["d", "e"]);

    // Totals count chief-periods: (4 + 1 + 1 + 0 + 0) met of (4 + 4 + 1 + 1 + 1); and chiefs
    // fully compliant: a and c of the five.
    assert_eq!(report.totals.required, 11);
    assert_eq!(report.totals.valid, 9);
    assert_eq!((report.totals.periods, report.totals.periods_met), (11, 6));
    assert!((report.totals.compliance.unwrap() - 6.0 / 11.0).abs() < 1e-12);
    assert_eq!(
        (
            report.totals.chiefs_required,
            report.totals.chiefs_compliant
        ),
        (5, 2)
    );
    assert_eq!(report.totals.chiefs_compliant_share, Some(0.4));
    let village = report.by_level.iter().find(|g| g.key == "village").unwrap();
    assert_eq!((village.chiefs, village.required, village.valid), (2, 8, 6));
    // Grouped by subdistrict: a, b and c are all in 桑梓店街道 (014).
    let szd = report
        .by_division
        .iter()
        .find(|g| g.key == "370105014000")
        .unwrap();
    assert_eq!((szd.chiefs, szd.valid), (3, 9));

    // Filters: river village chiefs of one asset.
    let filter = Filter {
        system: Some(System::River),
        level: Some(Level::Village),
        asset: Some("r2".into()),
        ..Filter::new(set.window)
    };
    let only_b = patrol_report(&index, &reference, &filter);
    assert_eq!(only_b.chiefs.len(), 1);
    assert_eq!(only_b.chiefs[0].chief, "b");
}

#[test]
fn late_patrols_only_add_to_the_period_they_were_walked_in() {
    let world = World::new();
    let reference = world.reference();
    let set = patrol_set();
    let filter = Filter::new(set.window);
    let mut index = index_of(&set.docs, &reference);
    let before = patrol_report(&index, &reference, &filter);

    // Chief b walked in week 3 (15 July) with a phone whose clock said 19 July; the patrol
    // reaches the server only now, weeks later.
    let gps = set.window.from_ms + 14 * DAY_MS + 10 * HOUR;
    let (late, points) = patrol_bytes("b", "r2", System::River, gps + 4 * DAY_MS, gps, 1_300, 77);
    index.upsert_bytes(&late, &reference).unwrap();
    let after = patrol_report(&index, &reference, &filter);

    for (old, new) in before.chiefs.iter().zip(&after.chiefs) {
        if old.chief != "b" {
            assert_eq!(old, new, "nothing but b's row changes");
        }
    }
    let (old, new) = (
        before.chiefs.iter().find(|r| r.chief == "b").unwrap(),
        after.chiefs.iter().find(|r| r.chief == "b").unwrap(),
    );
    assert_eq!(new.valid, old.valid + 1);
    assert_eq!(new.periods_met, old.periods_met + 1);
    assert_eq!(new.clock_skew, 1);
    assert!((new.km - old.km - km_of(&points)).abs() < 1e-9);
    assert_eq!(after.totals.valid, before.totals.valid + 1);

    // Counted by its GPS time, it belongs to week 3 and not to the week its clock claimed.
    let week3 = Window {
        from_ms: set.window.from_ms + 14 * DAY_MS,
        to_ms: set.window.from_ms + 21 * DAY_MS,
    };
    let w3 = patrol_report(&index, &reference, &Filter::new(week3));
    assert_eq!(w3.chiefs.iter().find(|r| r.chief == "b").unwrap().valid, 1);

    // Storing the same document again, or every document in another order, changes nothing.
    index.upsert_bytes(&late, &reference).unwrap();
    assert_eq!(patrol_report(&index, &reference, &filter), after);
    let mut all = set.docs.clone();
    all.push(("late".into(), late));
    all.reverse();
    assert_eq!(
        patrol_report(&index_of(&all, &reference), &reference, &filter),
        after
    );
}

/// Issues with a known history, relative to `day0`.
fn issue_docs(world: &World, day0: i64) -> Vec<(String, Vec<u8>)> {
    let at = |d: f64| day0 + (d * DAY_MS as f64) as i64;
    let reporter = world.user("a");
    let sup = world.user("sup");
    let handler = world.user("handler");
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut report = |day: f64, category: &str, severity, location: [f64; 2]| {
        n += 1;
        IssueDoc::report(
            actor_for(500 + n),
            reporter,
            "phone",
            at(day),
            &NewIssue {
                system: System::River,
                category: category.into(),
                severity,
                asset: "r1".into(),
                division: code("370105014201"),
                location,
                description: String::new(),
                patrol: None,
            },
        )
        .unwrap()
    };
    let assign = |doc: &mut IssueDoc, day: f64, deadline: f64| {
        doc.act(
            sup,
            "web",
            at(day),
            Action::Assigned {
                assignee: Assignee::Department("区水务局".into()),
                deadline_ms: at(deadline),
            },
        )
        .unwrap();
    };
    let submit = |doc: &mut IssueDoc, day: f64| {
        doc.act(
            handler,
            "phone-h",
            at(day),
            Action::RectificationSubmitted {
                note: String::new(),
                photos: vec!["a".repeat(64)],
            },
        )
        .unwrap();
    };
    let verify = |doc: &mut IssueDoc, day: f64| {
        doc.act(
            sup,
            "web",
            at(day),
            Action::Verified {
                note: String::new(),
            },
        )
        .unwrap();
    };
    let here = [116.98, 36.75];
    // 1: closed on time after 6 days.
    let mut i1 = report(0.0, "river.garbage", Severity::General, here);
    assign(&mut i1, 0.5, 7.0);
    submit(&mut i1, 5.0);
    verify(&mut i1, 6.0);
    // 2: closed late after 7 days.
    let mut i2 = report(1.0, "river.outfall", Severity::Urgent, [116.99, 36.76]);
    assign(&mut i2, 1.5, 3.0);
    submit(&mut i2, 5.0);
    verify(&mut i2, 8.0);
    // 3: assigned, deadline day 4, still open: overdue.
    let mut i3 = report(2.0, "river.dumping", Severity::Critical, [116.97, 36.74]);
    assign(&mut i3, 2.5, 4.0);
    // 4: invalid; 5: duplicate of 1; 6: only reported.
    let mut i4 = report(3.0, "river.garbage", Severity::General, [117.0, 36.8]);
    i4.act(
        sup,
        "web",
        at(3.5),
        Action::Invalidated { reason: "x".into() },
    )
    .unwrap();
    let mut i5 = report(3.2, "river.garbage", Severity::General, here);
    let i1_id = i1.id().to_owned();
    i5.act(sup, "web", at(3.6), Action::DuplicateOf { issue: i1_id })
        .unwrap();
    let i6 = report(4.0, "river.garbage", Severity::General, [116.9, 36.7]);
    // 7: reported before the window, overdue now: only the department table sees it.
    let mut i7 = report(-10.0, "river.garbage", Severity::General, [116.91, 36.71]);
    assign(&mut i7, -9.0, -2.0);
    // 8: the garbage of issue 1 is back 40 m away on day 9, after issue 1 was closed.
    let back = [here[0] + 0.0004, here[1]];
    let i8 = report(9.0, "river.garbage", Severity::General, back);
    for (name, mut doc) in [
        ("i1", i1),
        ("i2", i2),
        ("i3", i3),
        ("i4", i4),
        ("i5", i5),
        ("i6", i6),
        ("i7", i7),
        ("i8", i8),
    ] {
        out.push((name.to_owned(), doc.save()));
    }
    out
}

#[test]
fn issue_figures_match_the_hand_count() {
    let world = World::new();
    let reference = world.reference();
    let day0 = china(2024, 7, 1) + 9 * HOUR;
    let index = index_of(&issue_docs(&world, day0), &reference);
    let window = Window {
        from_ms: china(2024, 7, 1),
        to_ms: china(2024, 7, 8),
    };
    let now = day0 + 10 * DAY_MS;
    let report = issue_report(&index, &reference, &Filter::new(window), now);
    let t = &report.totals;
    // Issues 1–6 were reported in the first week; 7 before it, 8 after it.
    assert_eq!(t.reported, 6);
    assert_eq!((t.accepted, t.closed, t.open), (3, 2, 2));
    assert_eq!((t.overdue, t.invalid, t.duplicate), (1, 1, 1));
    assert_eq!((t.on_time, t.rectified), (1, 2));
    assert_eq!(t.on_time_rate, Some(0.5));
    assert!((t.median_days_to_close.unwrap() - 6.5).abs() < 1e-9);
    assert!((t.p90_days_to_close.unwrap() - 6.9).abs() < 1e-9);

    let garbage = report
        .by_category
        .iter()
        .find(|g| g.key == "river.garbage")
        .unwrap();
    assert_eq!(garbage.name, "河面垃圾");
    assert_eq!((garbage.counts.reported, garbage.counts.closed), (4, 1));
    let severities: Vec<(&str, u64)> = report
        .by_severity
        .iter()
        .map(|g| (g.key.as_str(), g.counts.reported))
        .collect();
    assert_eq!(severities, [("general", 4), ("urgent", 1), ("critical", 1)]);
    assert_eq!(report.by_division.len(), 1);
    assert_eq!(report.by_division[0].key, "370105014000");

    // Overdue work by department includes issue 7, reported before the window.
    assert_eq!(report.overdue_by_department.len(), 1);
    let dept = &report.overdue_by_department[0];
    assert_eq!(
        (dept.department.as_str(), dept.assigned, dept.overdue),
        ("区水务局", 2, 2)
    );
    assert_eq!(dept.max_overdue_days, 12);

    assert_eq!(report.weekly.len(), 1);
    assert_eq!((report.weekly[0].opened, report.weekly[0].closed), (6, 1));
    assert_eq!(report.weekly[0].week, "2024-07-01");
    assert_eq!(report.monthly.len(), 1);
    assert_eq!(
        (report.monthly[0].month.as_str(), report.monthly[0].reported),
        ("2024-07", 6)
    );
}

#[test]
fn hotspots_join_recurrences_near_closed_issues() {
    let world = World::new();
    let reference = world.reference();
    let day0 = china(2024, 7, 1) + 9 * HOUR;
    let index = index_of(&issue_docs(&world, day0), &reference);
    let window = Window {
        from_ms: china(2024, 7, 1),
        to_ms: china(2024, 8, 1),
    };
    let filter = Filter::new(window);
    let found = hotspots(&index, &reference, &filter, &HotspotParams::default());
    assert_eq!(found.len(), 1, "{found:?}");
    let h = &found[0];
    assert_eq!((h.rank, h.recurrences, h.issues.len()), (1, 1, 2));
    assert_eq!(h.category, "river.garbage");
    assert_eq!(h.asset, "r1");
    assert!(h.spread_m > 10.0 && h.spread_m < 30.0, "{}", h.spread_m);
    assert_eq!(h.open, 1);
    // Issue 8 is 36 m from issue 1: a 20 m radius finds nothing, nor does a 5-day window.
    let tight = HotspotParams {
        radius_m: 20.0,
        ..HotspotParams::default()
    };
    assert!(hotspots(&index, &reference, &filter, &tight).is_empty());
    let soon = HotspotParams {
        within_days: 2.0,
        ..HotspotParams::default()
    };
    assert!(hotspots(&index, &reference, &filter, &soon).is_empty());
}

#[test]
fn rollup_keeps_codes_above_the_level() {
    assert_eq!(
        rollup(&code("370105014201"), Level::Subdistrict),
        code("370105014000")
    );
    assert_eq!(
        rollup(&code("370105014201"), Level::District),
        code("370105000000")
    );
    assert_eq!(
        rollup(&code("370105000000"), Level::Village),
        code("370105000000")
    );
    assert_eq!(china_date(china(2024, 2, 29) + 23 * HOUR), (2024, 2, 29));
}
