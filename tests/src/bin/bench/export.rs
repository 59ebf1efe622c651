//! `export`: what a supervisor waits for when downloading a district-year of statistics — about
//! 2,000 chiefs of the Tianqiao district at the three levels and systems, 100,000 patrols and
//! 20,000 issues — as XLSX and CSV, with the server's own report, table and file functions.
//!
//! The data set is generated deterministically in the form the server's statistics keep between
//! requests: a [`FactIndex`] (one fact per patrol and issue document, issue states folded from
//! real workflow events) and the reference data (users, divisions, assets, rules, categories).
//! Timed separately, median of `runs`: (a) computing both reports and their tables from the
//! facts, (b) writing both XLSX workbooks, (c) writing every table as CSV, and their total.
//!
//! Facts are built once per document as the change feed moves, not per request; what building
//! them costs is measured on a sample of real automerge documents (patrols with 1 Hz tracks,
//! issues with their workflow events) and scaled up, printed as an extrapolation.

use std::time::{Duration, Instant};

use server::demo;
use server::stats::files::{self, Heading};
use server::stats::query::heading;
use server::stats::tables::{issue_tables, patrol_tables, Table};
use server::stats::StatsInputs;
use sync_core::doc::{actor_for, Issue, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
use sync_core::model::{
    default_categories, Asset, Division, DivisionCode, Jurisdiction, Level, Role, Severity, System,
    User,
};
use sync_core::rules::{days_from_civil, PatrolFlag, RuleSet, CHINA_OFFSET_MS};
use sync_core::stats::{
    issue_report, patrol_report, FactIndex, Filter, IssueFact, PatrolFact, Window,
};
use sync_core::track::{walk_along, CHUNK_POINTS};
use sync_core::workflow::{fold, Action, Assignee, Event};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const YEAR: i64 = 2025;
/// 天桥区
const DISTRICT: &str = "370105000000";
const SYSTEMS: [System; 3] = [System::River, System::Forest, System::Field];
/// Villages or communities generated under each of the 14 subdistricts.
const PLACES_PER_SUBDISTRICT: usize = 15;
const SURNAMES: [&str; 16] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
];
const GIVEN: [&str; 12] = [
    "建国", "秀英", "志强", "丽", "伟", "敏", "军", "磊", "洋", "静", "海燕", "德明",
];
const DEPARTMENTS: [(System, &str); 6] = [
    (System::River, "区水务局"),
    (System::River, "区城管局"),
    (System::Forest, "区园林和林业绿化局"),
    (System::Forest, "区自然资源局"),
    (System::Field, "区农业农村局"),
    (System::Field, "区自然资源局"),
];

/// What the command line asks for.
pub struct Params {
    pub runs: usize,
    pub chiefs: usize,
    pub patrols: usize,
    pub issues: usize,
    pub sample_patrols: usize,
    pub sample_issues: usize,
}

/// A small deterministic generator (SplitMix64), so every run measures the same district-year.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Unix milliseconds of a wall-clock time in China.
fn china(y: i64, m: u32, d: u32, hour: i64) -> i64 {
    days_from_civil(y, m, d) * DAY_MS + hour * HOUR_MS - CHINA_OFFSET_MS
}

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).expect("generated division codes are 12 digits")
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The district, its 14 subdistricts, the demo villages of 桑梓店街道, and generated villages
/// (桑梓店, `2xx`) or communities (elsewhere, `0xx`) up to [`PLACES_PER_SUBDISTRICT`] each.
fn divisions() -> (Vec<Division>, Vec<DivisionCode>, Vec<DivisionCode>) {
    let mut all = demo::facts().divisions;
    let district = code(DISTRICT);
    let subdistricts: Vec<DivisionCode> = all
        .iter()
        .filter(|d| d.parent.as_ref() == Some(&district))
        .map(|d| d.code.clone())
        .collect();
    let mut places = Vec::new();
    for sub in &subdistricts {
        let sub_name = all
            .iter()
            .find(|d| d.code == *sub)
            .map(|d| d.name.trim_end_matches("街道").to_owned())
            .unwrap_or_default();
        let mut mine: Vec<DivisionCode> = all
            .iter()
            .filter(|d| d.parent.as_ref() == Some(sub))
            .map(|d| d.code.clone())
            .collect();
        let rural = mine.iter().any(|c| c.as_str().as_bytes()[9] == b'2');
        let mut n = mine.len();
        while mine.len() < PLACES_PER_SUBDISTRICT {
            n += 1;
            let prefix = &sub.as_str()[..9];
            let (suffix, name) = if rural {
                (format!("2{n:02}"), format!("{sub_name}{n}村"))
            } else {
                (format!("0{n:02}"), format!("{sub_name}第{n}社区"))
            };
            let c = code(&format!("{prefix}{suffix}"));
            all.push(Division {
                code: c.clone(),
                name,
                parent: Some(sub.clone()),
            });
            mine.push(c);
        }
        places.extend(mine);
    }
    (all, subdistricts, places)
}

fn chief(i: usize, system: System, level: Level, division: DivisionCode, asset: &Asset) -> User {
    User {
        id: format!("u-chief-{i:04}"),
        username: format!("chief-{i:04}"),
        display_name: format!(
            "{}{}",
            SURNAMES[i % SURNAMES.len()],
            GIVEN[(i / SURNAMES.len()) % GIVEN.len()]
        ),
        role: Role::Chief {
            system,
            level,
            jurisdiction: Jurisdiction {
                division,
                assets: vec![asset.id.clone()],
            },
        },
        active: true,
    }
}

/// Chiefs at the three levels and systems: 5 per system for the district, 3 per system for each
/// subdistrict, the rest one per village or community and system in turn.
fn chiefs(
    count: usize,
    subdistricts: &[DivisionCode],
    places: &[DivisionCode],
    assets: &[Asset],
) -> Vec<User> {
    let of_system: Vec<Vec<&Asset>> = SYSTEMS
        .iter()
        .map(|s| assets.iter().filter(|a| a.system == *s).collect())
        .collect();
    let district = code(DISTRICT);
    let mut slots: Vec<(System, Level, DivisionCode)> = Vec::new();
    for system in SYSTEMS {
        for _ in 0..5 {
            slots.push((system, Level::District, district.clone()));
        }
    }
    for sub in subdistricts {
        for system in SYSTEMS {
            for _ in 0..3 {
                slots.push((system, Level::Subdistrict, sub.clone()));
            }
        }
    }
    let mut i = 0;
    while slots.len() < count {
        let place = &places[i % places.len()];
        slots.push((
            SYSTEMS[(i / places.len()) % 3],
            Level::Village,
            place.clone(),
        ));
        i += 1;
    }
    slots.truncate(count);
    slots
        .into_iter()
        .enumerate()
        .map(|(i, (system, level, division))| {
            let pool = &of_system[SYSTEMS.iter().position(|s| *s == system).unwrap_or(0)];
            chief(i, system, level, division, pool[i % pool.len()])
        })
        .collect()
}

fn supervisors(district: &DivisionCode) -> Vec<User> {
    SYSTEMS
        .iter()
        .enumerate()
        .map(|(i, system)| User {
            id: format!("u-supervisor-{i}"),
            username: format!("supervisor-{i}"),
            display_name: format!("{}长办", &["河", "林", "田"][i]),
            role: Role::Supervisor {
                system: *system,
                division: district.clone(),
            },
            active: true,
        })
        .collect()
}

/// Expected valid-looking patrols a year by level: a bit above the quota (quarterly, monthly,
/// weekly), as diligent districts do.
fn yearly_patrols(level: Level) -> f64 {
    match level {
        Level::District => 6.0,
        Level::Subdistrict => 16.0,
        Level::Village => 56.0,
    }
}

/// Cumulative weights for picking a chief: each chief's level times a diligence drawn once
/// (3 in 100 never patrol).
fn diligence(users: &[User], rng: &mut Rng) -> Vec<f64> {
    let mut total = 0.0;
    users
        .iter()
        .map(|u| {
            let level = match &u.role {
                Role::Chief { level, .. } => *level,
                _ => return total,
            };
            let d = if rng.chance(0.03) {
                0.0
            } else {
                rng.range(0.3, 1.4)
            };
            total += yearly_patrols(level) * d;
            total
        })
        .collect()
}

fn pick(cumulative: &[f64], rng: &mut Rng) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = rng.unit() * total;
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len() - 1)
}

fn role_of(user: &User) -> (System, Level, &Jurisdiction) {
    match &user.role {
        Role::Chief {
            system,
            level,
            jurisdiction,
        } => (*system, *level, jurisdiction),
        _ => unreachable!("only chiefs patrol and report here"),
    }
}

/// A patrol's fact as the rules would have judged its track: 1 Hz points, walking speeds,
/// about one in ten invalid for the reasons phones actually give.
fn patrol_fact(n: usize, user: &User, window: Window, rng: &mut Rng) -> PatrolFact {
    let (system, _, jurisdiction) = role_of(user);
    let day = rng.below(((window.to_ms - window.from_ms) / DAY_MS) as usize) as i64;
    let at_ms =
        window.from_ms + day * DAY_MS + (7 * HOUR_MS + (rng.unit() * 11.0 * HOUR_MS as f64) as i64);
    let mut hours = rng.range(0.35, 2.2);
    let mut km = hours * rng.range(2.5, 5.0);
    let mut flags = Vec::new();
    if rng.chance(0.1) {
        let reasons = if rng.chance(0.1) { 2 } else { 1 };
        for _ in 0..reasons {
            let r = rng.unit();
            let flag = if r < 0.35 {
                hours = rng.range(0.03, 0.16);
                km = hours * rng.range(2.5, 5.0);
                PatrolFlag::TooShort {
                    minutes: hours * 60.0,
                    required: 10.0,
                }
            } else if r < 0.55 {
                km = rng.range(0.1, 0.99);
                PatrolFlag::TooShortDistance { km, required: 1.0 }
            } else if r < 0.75 {
                PatrolFlag::OutsideCorridor {
                    inside_share: rng.range(0.0, 0.59),
                    required: 0.6,
                }
            } else if r < 0.85 {
                PatrolFlag::Jump {
                    at_ms: at_ms + (rng.unit() * hours * HOUR_MS as f64) as i64,
                    metres: rng.range(300.0, 5_000.0),
                    seconds: rng.range(0.0, 5.0),
                }
            } else if r < 0.93 {
                PatrolFlag::TooFast {
                    speed_kmh: rng.range(20.5, 60.0),
                    limit_kmh: 20.0,
                }
            } else if r < 0.97 {
                PatrolFlag::MockLocation
            } else {
                hours = 0.0;
                km = 0.0;
                PatrolFlag::NoTrack
            };
            if !flags.contains(&flag) {
                flags.push(flag);
            }
        }
    }
    let asset = jurisdiction.assets[0].clone();
    PatrolFact {
        id: format!("p-{n:06}"),
        system,
        asset,
        chief: user.id.clone(),
        division: jurisdiction.division.clone(),
        at_ms,
        km,
        hours,
        valid: flags.is_empty(),
        points: (hours * 3_600.0) as usize,
        clock_skew: rng.chance(0.015),
        flags,
    }
}

/// The events of an issue's life so far: most closed, some on the way, some overdue, some
/// invalid or duplicate, a few reopened. Events later than `now_ms` have not happened yet.
fn issue_events(
    n: usize,
    reporter: &User,
    supervisor: &User,
    reported_at_ms: i64,
    severity: Severity,
    now_ms: i64,
    rng: &mut Rng,
) -> Vec<Event> {
    let (system, _, _) = role_of(reporter);
    let departments: Vec<&str> = DEPARTMENTS
        .iter()
        .filter(|(s, _)| *s == system)
        .map(|(_, d)| *d)
        .collect();
    let department = departments[rng.below(departments.len())];
    let mut events = Vec::new();
    let mut at = reported_at_ms;
    let mut push = |by: &str, at: i64, action: Action| {
        events.push(Event {
            id: format!("e-{n:05}-{}", events.len()),
            by: by.to_owned(),
            device: "bench".into(),
            at_ms: at,
            action,
        });
    };
    push(&reporter.id, at, Action::Reported);
    let path = rng.unit();
    let sup = supervisor.id.as_str();
    if path < 0.07 {
        at += (rng.range(0.1, 3.0) * DAY_MS as f64) as i64;
        push(
            sup,
            at,
            Action::Invalidated {
                reason: "非本辖区问题".into(),
            },
        );
    } else if path < 0.11 && n > 0 {
        at += (rng.range(0.1, 2.0) * DAY_MS as f64) as i64;
        push(
            sup,
            at,
            Action::DuplicateOf {
                issue: format!("i-{:05}", rng.below(n)),
            },
        );
    } else if path >= 0.15 {
        at += (rng.range(0.1, 3.0) * DAY_MS as f64) as i64;
        push(sup, at, Action::Accepted);
        if path >= 0.19 {
            let rounds = if path >= 0.97 { 2 } else { 1 };
            for round in 0..rounds {
                if round == 1 {
                    at += (rng.range(5.0, 60.0) * DAY_MS as f64) as i64;
                    push(
                        sup,
                        at,
                        Action::Reopened {
                            reason: "问题反弹".into(),
                        },
                    );
                }
                let days = match severity {
                    Severity::Critical => 3.0,
                    Severity::Urgent => 7.0,
                    Severity::General => [15.0, 30.0][rng.below(2)],
                };
                at += (rng.range(0.0, 1.0) * DAY_MS as f64) as i64;
                let deadline_ms = at + (days * DAY_MS as f64) as i64;
                push(
                    sup,
                    at,
                    Action::Assigned {
                        assignee: Assignee::Department(department.into()),
                        deadline_ms,
                    },
                );
                if path < 0.31 && round + 1 == rounds {
                    break; // still being rectified
                }
                let attempts = if rng.chance(0.1) { 2 } else { 1 };
                for attempt in 0..attempts {
                    let late = if rng.chance(0.8) {
                        rng.range(0.2, 1.0)
                    } else {
                        rng.range(1.0, 1.6)
                    };
                    at += (late * days * DAY_MS as f64 / attempts as f64) as i64;
                    push(
                        department,
                        at,
                        Action::RectificationSubmitted {
                            note: "已整改".into(),
                            photos: vec![format!("{:064x}", n * 4 + attempt)],
                        },
                    );
                    if path < 0.36 && round + 1 == rounds {
                        break; // waiting for verification
                    }
                    at += (rng.range(0.5, 5.0) * DAY_MS as f64) as i64;
                    let action = if attempt + 1 < attempts {
                        Action::Rejected {
                            reason: "整改不到位".into(),
                        }
                    } else {
                        Action::Verified {
                            note: "现场核查通过".into(),
                        }
                    };
                    push(sup, at, action);
                }
            }
        }
    }
    events.retain(|e| e.at_ms <= now_ms);
    events
}

/// A generated district-year in the form the server's statistics consume.
struct DistrictYear {
    reference: StatsInputs,
    index: FactIndex,
    filter: Filter,
    now_ms: i64,
}

fn district_year(p: &Params) -> DistrictYear {
    let mut rng = Rng(20_250_101);
    let window = Window {
        from_ms: china(YEAR, 1, 1, 0),
        to_ms: china(YEAR + 1, 1, 1, 0),
    };
    let now_ms = china(YEAR + 1, 1, 5, 9);
    let (divisions, subdistricts, places) = divisions();
    let assets = demo::facts().assets;
    let district = code(DISTRICT);
    let mut users = chiefs(p.chiefs, &subdistricts, &places, &assets);
    let weights = diligence(&users, &mut rng);
    let sups = supervisors(&district);
    let categories = default_categories();

    let mut index = FactIndex::default();
    for n in 0..p.patrols {
        let user = &users[pick(&weights, &mut rng)];
        index.upsert_patrol(patrol_fact(n, user, window, &mut rng));
    }
    let mut superseded = 0;
    for n in 0..p.issues {
        let reporter = &users[pick(&weights, &mut rng)];
        let (system, _, jurisdiction) = role_of(reporter);
        let supervisor = &sups[SYSTEMS.iter().position(|s| *s == system).unwrap_or(0)];
        let mine: Vec<&str> = categories
            .iter()
            .filter(|c| c.system == system)
            .map(|c| c.code.as_str())
            .collect();
        let severity = match rng.unit() {
            x if x < 0.8 => Severity::General,
            x if x < 0.95 => Severity::Urgent,
            _ => Severity::Critical,
        };
        let reported_at_ms =
            window.from_ms + (rng.unit() * (window.to_ms - window.from_ms - DAY_MS) as f64) as i64;
        let asset = &jurisdiction.assets[0];
        let near = assets
            .iter()
            .find(|a| a.id == *asset)
            .map(|a| match &a.geometry {
                sync_core::model::Geometry::LineString(line) => line[0],
                sync_core::model::Geometry::Polygon(rings) => rings[0][0],
            })
            .unwrap_or([117.0, 36.7]);
        let issue = Issue {
            id: format!("i-{n:05}"),
            system,
            category: mine[rng.below(mine.len())].to_owned(),
            severity,
            asset: asset.clone(),
            division: jurisdiction.division.clone(),
            location: [
                near[0] + rng.range(-0.005, 0.005),
                near[1] + rng.range(-0.005, 0.005),
            ],
            reporter: reporter.id.clone(),
            reported_at_ms,
            patrol: None,
            description: String::new(),
            photos: Vec::new(),
        };
        let events = issue_events(
            n,
            reporter,
            supervisor,
            reported_at_ms,
            severity,
            now_ms,
            &mut rng,
        );
        let state = fold(&events);
        superseded += state
            .timeline
            .iter()
            .filter(|e| e.superseded.is_some())
            .count();
        index.upsert_issue(IssueFact::of(&issue, state));
    }
    assert_eq!(
        superseded, 0,
        "the generated workflow events must all be admissible"
    );
    users.extend(sups);
    DistrictYear {
        reference: StatsInputs {
            users,
            divisions,
            assets,
            rules: RuleSet::default(),
            categories,
            device_times: Default::default(),
        },
        index,
        filter: Filter::new(window),
        now_ms,
    }
}

struct Timings {
    patrol_report: Duration,
    issue_report: Duration,
    tables: Duration,
    xlsx: Duration,
    csv: Duration,
    total: Duration,
    xlsx_bytes: usize,
    csv_bytes: usize,
    rows: usize,
    sheets: usize,
}

/// One export of both reports, timed step by step with the server's own functions.
fn export_once(year: &DistrictYear) -> Timings {
    let reference = year.reference.view();
    let filter = &year.filter;
    let start = Instant::now();
    let patrols = patrol_report(&year.index, &reference, filter);
    let patrol_time = start.elapsed();
    let issues = issue_report(&year.index, &reference, filter, year.now_ms);
    let issue_time = start.elapsed() - patrol_time;
    let books: Vec<(Heading, Vec<Table>)> = vec![
        (
            heading("巡查考核统计", filter, &reference, year.now_ms),
            patrol_tables(&patrols),
        ),
        (
            heading("问题处置统计", filter, &reference, year.now_ms),
            issue_tables(&issues),
        ),
    ];
    let tables = start.elapsed();

    let start = Instant::now();
    let mut xlsx_bytes = 0;
    for (heading, tables) in &books {
        xlsx_bytes += files::xlsx(heading, tables).expect("write XLSX").len();
    }
    let xlsx = start.elapsed();

    let start = Instant::now();
    let mut csv_bytes = 0;
    for table in books.iter().flat_map(|(_, tables)| tables) {
        csv_bytes += files::csv(table).expect("write CSV").len();
    }
    let csv = start.elapsed();

    let all = || books.iter().flat_map(|(_, tables)| tables);
    Timings {
        patrol_report: patrol_time,
        issue_report: issue_time,
        tables,
        xlsx,
        csv,
        total: tables + xlsx + csv,
        xlsx_bytes,
        csv_bytes,
        rows: all().map(|t| t.rows.len()).sum(),
        sheets: all().count(),
    }
}

/// Saved patrol and issue documents, built with the document API as phones build them.
fn sample_documents(p: &Params, reference: &StatsInputs) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
    let start_of_year = china(YEAR, 1, 1, 0);
    let mut rng = Rng(7);
    let chiefs: Vec<&User> = reference
        .users
        .iter()
        .filter(|u| {
            matches!(
                u.role,
                Role::Chief {
                    system: System::River,
                    level: Level::Village,
                    ..
                }
            )
        })
        .collect();
    let mut patrols = Vec::with_capacity(p.sample_patrols);
    let mut points = 0;
    for n in 0..p.sample_patrols {
        let user = chiefs[n % chiefs.len()];
        let (system, _, jurisdiction) = role_of(user);
        let asset = reference
            .assets
            .iter()
            .find(|a| a.id == jurisdiction.assets[0])
            .expect("the chief's asset");
        let started_at_ms = start_of_year + rng.below(360) as i64 * DAY_MS + 8 * HOUR_MS;
        let mut doc = PatrolDoc::create(
            actor_for(n as u64 + 1),
            &NewPatrol {
                system,
                asset: asset.id.clone(),
                chief: user.id.clone(),
                division: jurisdiction.division.clone(),
                device: format!("phone-{n}"),
                started_at_ms,
            },
        )
        .expect("new patrol");
        // 15 to 75 minutes at one fix a second, appended in chunks as the phone does.
        let track = walk_along(
            &asset.geometry,
            started_at_ms,
            900 + rng.below(3_600),
            n as u64,
        );
        points += track.len();
        for chunk in track.chunks(CHUNK_POINTS) {
            doc.append_track(chunk).expect("append chunk");
        }
        doc.finish(track.last().map_or(started_at_ms, |t| t.t_ms))
            .expect("finish");
        patrols.push(doc.save());
    }

    let supervisor = reference
        .users
        .iter()
        .find(|u| {
            matches!(
                u.role,
                Role::Supervisor {
                    system: System::River,
                    ..
                }
            )
        })
        .expect("river supervisor");
    let handler = User {
        id: "u-handler".into(),
        username: "handler".into(),
        display_name: "水务局经办人".into(),
        role: Role::Handler {
            department: "区水务局".into(),
        },
        active: true,
    };
    let mut issues = Vec::with_capacity(p.sample_issues);
    for n in 0..p.sample_issues {
        let user = chiefs[n % chiefs.len()];
        let (system, _, jurisdiction) = role_of(user);
        let at = start_of_year + rng.below(300) as i64 * DAY_MS + 10 * HOUR_MS;
        let mut doc = IssueDoc::report(
            actor_for(10_000 + n as u64),
            user,
            "phone",
            at,
            &NewIssue {
                system,
                category: "river.garbage".into(),
                severity: Severity::General,
                asset: jurisdiction.assets[0].clone(),
                division: jurisdiction.division.clone(),
                location: [117.0, 36.7],
                description: "河面漂浮垃圾约20平方米，需打捞".into(),
                patrol: None,
            },
        )
        .expect("report");
        let steps = [
            (supervisor, DAY_MS, Action::Accepted),
            (
                supervisor,
                2 * DAY_MS,
                Action::Assigned {
                    assignee: Assignee::Department("区水务局".into()),
                    deadline_ms: at + 16 * DAY_MS,
                },
            ),
            (
                &handler,
                9 * DAY_MS,
                Action::RectificationSubmitted {
                    note: "已打捞清理".into(),
                    photos: vec![format!("{n:064x}")],
                },
            ),
            (
                supervisor,
                11 * DAY_MS,
                Action::Verified {
                    note: "现场核查通过".into(),
                },
            ),
        ];
        // Three in four issues are closed, the rest stop somewhere on the way.
        let keep = if n % 4 == 3 { n % 3 + 1 } else { steps.len() };
        for (who, after, action) in steps.into_iter().take(keep) {
            doc.act(who, "bench", at + after, action).expect("act");
        }
        issues.push(doc.save());
    }
    (patrols, issues, points)
}

/// Opening the saved bytes alone (automerge's load), the floor under building facts.
fn time_load(documents: &[Vec<u8>]) -> Duration {
    let start = Instant::now();
    for bytes in documents {
        sync_core::doc::load(bytes).expect("load document");
    }
    start.elapsed()
}

fn time_facts(documents: &[Vec<u8>], reference: &StatsInputs) -> (Duration, FactIndex) {
    let view = reference.view();
    let mut index = FactIndex::default();
    let start = Instant::now();
    for bytes in documents {
        index
            .upsert_bytes(bytes, &view)
            .expect("fact from document");
    }
    (start.elapsed(), index)
}

pub fn run(p: &Params) {
    let runs = p.runs.max(1);
    let setup = Instant::now();
    let year = district_year(p);
    let chiefs = year
        .reference
        .users
        .iter()
        .filter(|u| matches!(u.role, Role::Chief { .. }))
        .count();
    let count = |level: Level| {
        year.reference
            .users
            .iter()
            .filter(|u| matches!(&u.role, Role::Chief { level: l, .. } if *l == level))
            .count()
    };
    println!(
        "export: district-year {YEAR} of 天桥区 — {} chiefs ({} district, {} subdistrict, {} village; \
         3 systems) in {} divisions, {} patrols, {} issues (generated in {:.1} s, not timed)",
        thousands(chiefs),
        count(Level::District),
        count(Level::Subdistrict),
        count(Level::Village),
        year.reference.divisions.len(),
        thousands(p.patrols),
        thousands(p.issues),
        setup.elapsed().as_secs_f64(),
    );

    let reference = year.reference.view();
    let patrols = patrol_report(&year.index, &reference, &year.filter);
    let issues = issue_report(&year.index, &reference, &year.filter, year.now_ms);
    let (p_total, i_total) = (&patrols.totals, &issues.totals);
    println!(
        "  what is exported: {} valid + {} invalid patrols, {:.0} km, {:.0} h, compliance {:.1}%, \
         {} chiefs without patrols; issues {} closed, {} open ({} overdue), {} invalid, \
         {} duplicate, on time {:.1}%, median {:.1} days to close",
        thousands(p_total.valid as usize),
        thousands(p_total.invalid as usize),
        p_total.km,
        p_total.hours,
        100.0 * p_total.compliance.unwrap_or(0.0),
        patrols.without_patrols.len(),
        thousands(i_total.closed as usize),
        thousands(i_total.open as usize),
        thousands(i_total.overdue as usize),
        thousands(i_total.invalid as usize),
        thousands(i_total.duplicate as usize),
        100.0 * i_total.on_time_rate.unwrap_or(0.0),
        i_total.median_days_to_close.unwrap_or(0.0),
    );

    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        all.push(export_once(&year));
    }
    let last = all.last().expect("at least one run");
    let (sheets, rows, xlsx_bytes, csv_bytes) =
        (last.sheets, last.rows, last.xlsx_bytes, last.csv_bytes);
    let column = |f: fn(&Timings) -> Duration| median(all.iter().map(f).collect());
    let (tables, xlsx, csv, total) = (
        column(|t| t.tables),
        column(|t| t.xlsx),
        column(|t| t.csv),
        column(|t| t.total),
    );
    println!("  per export request (median of {runs} runs), from the facts the server keeps:");
    println!(
        "    (a) reports + tables from facts : {:>9}   patrol and issue reports, {sheets} tables, {} rows",
        secs(tables),
        thousands(rows)
    );
    println!(
        "        of which patrol_report {} and issue_report {}",
        secs(column(|t| t.patrol_report)),
        secs(column(|t| t.issue_report))
    );
    println!(
        "    (b) XLSX, 2 workbooks           : {:>9}   {} bytes",
        secs(xlsx),
        thousands(xlsx_bytes)
    );
    println!(
        "    (c) CSV, every table            : {:>9}   {} bytes",
        secs(csv),
        thousands(csv_bytes)
    );
    println!(
        "    total (a)+(b)+(c)               : {:>9}   goal under 5 s: {}",
        secs(total),
        if total.as_secs_f64() < 5.0 {
            "met"
        } else {
            "NOT met"
        }
    );

    let (patrol_docs, issue_docs, points) = sample_documents(p, &year.reference);
    let mut patrol_times = Vec::new();
    let mut load_times = Vec::new();
    let mut issue_times = Vec::new();
    let mut valid = 0;
    for _ in 0..3 {
        let (t, index) = time_facts(&patrol_docs, &year.reference);
        valid = index.patrols().filter(|f| f.valid).count();
        patrol_times.push(t);
        load_times.push(time_load(&patrol_docs));
        issue_times.push(time_facts(&issue_docs, &year.reference).0);
    }
    let (patrol_time, issue_time, load_time) = (
        median(patrol_times),
        median(issue_times),
        median(load_times),
    );
    let patrol_bytes: usize = patrol_docs.iter().map(Vec::len).sum();
    let issue_bytes: usize = issue_docs.iter().map(Vec::len).sum();
    let per = |t: Duration, n: usize, to: usize| t.as_secs_f64() * to as f64 / n.max(1) as f64;
    println!(
        "  building the facts from real automerge documents (done once per changed document as \
         the feed moves, not per request; median of 3):"
    );
    println!(
        "    {} patrol documents, 1 Hz tracks ({} points, {:.1} MB saved, {valid} valid): {}",
        thousands(patrol_docs.len()),
        thousands(points),
        patrol_bytes as f64 / 1e6,
        secs(patrol_time)
    );
    println!(
        "        of which opening the saved bytes (automerge load) {}",
        secs(load_time)
    );
    println!(
        "    {} issue documents with workflow events ({:.1} MB saved): {}",
        thousands(issue_docs.len()),
        issue_bytes as f64 / 1e6,
        secs(issue_time)
    );
    let rebuild = per(patrol_time, patrol_docs.len(), p.patrols)
        + per(issue_time, issue_docs.len(), p.issues);
    println!(
        "    EXTRAPOLATED, not measured: {} patrols ≈ {:.0} s, {} issues ≈ {:.1} s \
         (a change of rules, users or assets, or a store without stored facts; one core)",
        thousands(p.patrols),
        per(patrol_time, patrol_docs.len(), p.patrols),
        thousands(p.issues),
        per(issue_time, issue_docs.len(), p.issues),
    );
    restart(&year, rebuild);
}

/// The first monthly report after a restart: the district-year's facts stored in a sled store
/// (as the server keeps them), the store closed and opened again, and the server's statistics
/// cache asked for June's patrol and issue reports twice — the first answer reads the stored
/// facts back, the second is the one every later request gets.
fn restart(year: &DistrictYear, rebuild_secs: f64) {
    use server::stats::StatsCache;
    use server::storage::{AdminBatch, FactStore, SledStore, Store, StoredFact, UserRecord};
    use sync_core::stats::DocFact;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let facts = year.index.len();
    let stored_at = {
        let store = SledStore::open(&path).expect("open sled");
        store
            .apply_admin_batch(&AdminBatch {
                divisions: year.reference.divisions.clone(),
                assets: year.reference.assets.clone(),
                new_users: year
                    .reference
                    .users
                    .iter()
                    .map(|user| UserRecord {
                        user: user.clone(),
                        password_hash: None,
                        created_at_ms: 1,
                        updated_at_ms: 1,
                    })
                    .collect(),
                ..AdminBatch::default()
            })
            .expect("reference data");
        let generation = StatsInputs::load(&store).expect("reference").generation();
        store.start_facts(&generation).expect("start facts");
        let cursor = facts as u64;
        let start = Instant::now();
        let all: Vec<StoredFact> = year
            .index
            .patrols()
            .cloned()
            .map(DocFact::Patrol)
            .chain(
                year.index
                    .issues()
                    .map(|fact| DocFact::Issue(Box::new(fact.clone()))),
            )
            .map(|fact| StoredFact { seq: cursor, fact })
            .collect();
        for batch in all.chunks(500) {
            store.put_facts(&generation, batch, 0).expect("store facts");
        }
        store.put_facts(&generation, &[], cursor).expect("cursor");
        store.flush().expect("flush");
        start.elapsed()
    };
    // The store as a server finds it when it starts.
    let store = SledStore::open(&path).expect("reopen sled");
    let june = Filter::new(Window {
        from_ms: china(YEAR, 6, 1, 0),
        to_ms: china(YEAR, 7, 1, 0),
    });
    let cache = StatsCache::default();
    let month = |cache: &StatsCache| {
        let start = Instant::now();
        let valid = cache
            .with_facts(&store, |index, reference| {
                let patrols = patrol_report(index, reference, &june);
                let issues = issue_report(index, reference, &june, year.now_ms);
                (patrols.totals.valid, issues.totals.closed)
            })
            .expect("monthly report");
        (start.elapsed(), valid)
    };
    let (first, answer) = month(&cache);
    let (next, again) = month(&cache);
    assert_eq!(answer, again);
    let (derived, read_back, _) = cache.counters();
    assert_eq!(derived.get(), 0, "no document worked out at the restart");
    println!(
        "  the first monthly report (June: {} valid patrols, {} issues closed) after a restart, \
         facts kept in the store (sled):",
        thousands(answer.0 as usize),
        thousands(answer.1 as usize)
    );
    println!(
        "    first request {} ({} facts read back, none worked out), next request {}; \
         storing the {} facts took {}",
        secs(first),
        thousands(read_back.get() as usize),
        secs(next),
        thousands(facts),
        secs(stored_at)
    );
    println!(
        "    before (facts in memory only): the first request worked every document out again, \
         ≈ {rebuild_secs:.0} s extrapolated above"
    );
}
