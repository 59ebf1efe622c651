//! What happens in the field: each person's phone is a `PhoneApp` (mobile-ffi's application
//! layer, what the apps' `FieldClient` passes every call to), driven with a simulated clock.
//! Chiefs patrol offline for days; the office and the departments then work the reported
//! problems through the loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mobile_ffi::{
    AssigneeDraft, CheckResult, ClientConfig, Clock, EventDraft, IssueDraft, IssueFilter, PhoneApp,
    PhotoRole, Severity,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_core::client::SyncClient;
use sync_core::doc::{parse_actor, DocKind, PatrolDoc};
use sync_core::model::{Asset, TrackPoint};
use sync_core::track::{walk_along, CHANGE_POINTS};
use sync_core::workflow::Status;

use crate::http::{Relay, Result};
use crate::people::{department, Person, PASSWORD};

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;

/// The phone's clock, moved by the simulation.
#[derive(Debug, Default)]
pub struct SimClock(AtomicI64);

impl SimClock {
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One person's phone. Its `PhoneApp` is opened when the phone is used and closed after
/// each step of the simulation (`close`), as an app is started and stopped: a thousand open
/// device stores would hold a thousand caches at once.
#[derive(Debug)]
pub struct Phone {
    pub person: Person,
    client: Mutex<Option<Arc<PhoneApp>>>,
    pub clock: Arc<SimClock>,
    /// Set for phones whose first sync loses the server's answer: one relay per server node.
    relays: Vec<Relay>,
    dir: PathBuf,
    /// The server nodes the phone may sync with (through its relays when it has them).
    nodes: Vec<String>,
    /// The node in use: the phone's store is opened against it.
    node: AtomicUsize,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Phone {
    /// A phone signed in on `servers[node]`; it may later sync with any of `servers`, nodes of
    /// one service on one database.
    pub fn open(
        dir: &Path,
        servers: &[String],
        node: usize,
        person: Person,
        interrupted: bool,
        now: i64,
    ) -> Result<Self> {
        let relays = if interrupted {
            servers
                .iter()
                .map(|s| Relay::start(s))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let nodes = if relays.is_empty() {
            servers.to_vec()
        } else {
            relays.iter().map(|r| r.url.clone()).collect()
        };
        let clock = Arc::new(SimClock::default());
        clock.set(now);
        let phone = Phone {
            person,
            client: Mutex::new(None),
            clock,
            relays,
            dir: dir.to_path_buf(),
            node: AtomicUsize::new(node % nodes.len().max(1)),
            nodes,
        };
        phone
            .client()?
            .login(phone.person.user.username.clone(), PASSWORD.into())
            .map_err(|e| format!("{} logs in: {e}", phone.person.user.username))?;
        Ok(phone)
    }

    /// How many server nodes the phone may use.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node in use.
    pub fn node(&self) -> usize {
        self.node.load(Ordering::SeqCst)
    }

    /// Talks to node `node` from now on (the app reopened against another address).
    pub fn use_node(&self, node: usize) {
        let node = node % self.nodes.len().max(1);
        if self.node.swap(node, Ordering::SeqCst) != node {
            self.close();
        }
    }

    /// Loses the answer to the phone's next request, when it has relays.
    pub fn lose_next_answer(&self) -> bool {
        match self.relays.get(self.node.load(Ordering::SeqCst)) {
            Some(relay) => {
                relay.arm();
                true
            }
            None => false,
        }
    }

    /// Where the phone keeps its store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The phone's `PhoneApp`, opened on its store if it is closed.
    pub fn client(&self) -> Result<Arc<PhoneApp>> {
        let mut open = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = open.as_ref() {
            return Ok(client.clone());
        }
        let url = &self.nodes[self.node.load(Ordering::SeqCst) % self.nodes.len()];
        let mut config = ClientConfig::new(&self.dir, url);
        config.clock = self.clock.clone();
        let client = Arc::new(PhoneApp::open(config).map_err(err)?);
        *open = Some(client.clone());
        Ok(client)
    }

    /// Closes the app: the store is released once the last call using it returns.
    pub fn close(&self) {
        self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// A small camera JPEG, different for every `n`, written where the camera would leave it.
    fn take_photo(&self, n: u64) -> Result<String> {
        // `n` also salts the blue channel, so every photo of a run is a different picture (the
        // server stores identical photos once, which would hide upload work).
        let salt = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let picture = image::RgbImage::from_fn(480, 360, |x, y| {
            let v = (x as u64 * 7 + y as u64 * 13 + n * 101) % 251;
            let blue = u64::from(x ^ y) + (salt >> ((x + y) % 56));
            image::Rgb([v as u8, (v * 3 % 251) as u8, blue as u8])
        });
        let path = self.dir.join(format!("camera-{n}.jpg"));
        image::DynamicImage::ImageRgb8(picture)
            .save_with_format(&path, image::ImageFormat::Jpeg)
            .map_err(err)?;
        Ok(path.to_string_lossy().into_owned())
    }
}

/// How a simulated patrol goes. Besides honest walks and honest failures (too short, driven),
/// a known share are fabricated tracks of the kinds offices meet (刷轨迹): a spoofed position,
/// fixes minutes apart, bouncing over one stretch, a walk backdated 60 days, a fix dated at the
/// end of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    Normal,
    /// Six minutes: too short to count.
    TooShort,
    /// Driven along the river at about 13 m/s.
    Driven,
    /// A mock-location app: fixes jump kilometres away.
    Spoofed,
    /// A fix every three minutes: the time between them is not walking.
    Sparse,
    /// Twenty minutes back and forth over the same 150 m.
    Bouncing,
    /// An ordinary walk whose fixes are dated 60 days earlier.
    Backdated,
    /// An ordinary walk and one last fix dated `i64::MAX`.
    AbsurdTime,
}

impl Walk {
    /// The kind's name in the simulator's output.
    pub fn name(self) -> &'static str {
        match self {
            Walk::Normal => "normal",
            Walk::TooShort => "too_short",
            Walk::Driven => "driven",
            Walk::Spoofed => "spoofed",
            Walk::Sparse => "sparse",
            Walk::Bouncing => "bouncing",
            Walk::Backdated => "backdated",
            Walk::AbsurdTime => "absurd_time",
        }
    }

    /// The flags the server must give a patrol of this kind (among others it may add).
    pub fn reasons(self) -> &'static [&'static str] {
        match self {
            Walk::Normal => &[],
            Walk::TooShort => &["too_short"],
            Walk::Driven => &["too_fast"],
            Walk::Spoofed => &["mock_location", "jump"],
            Walk::Sparse => &["sparse_fixes"],
            Walk::Bouncing => &["retraced"],
            Walk::Backdated => &["time_out_of_bounds"],
            Walk::AbsurdTime => &["time_out_of_bounds", "sparse_fixes"],
        }
    }

    /// Whether the kind is a fabrication (as opposed to an honest walk, valid or not).
    pub fn fabricated(self) -> bool {
        !matches!(self, Walk::Normal | Walk::TooShort | Walk::Driven)
    }
}

/// The fabricated kinds, drawn with equal chance for a fabricated patrol.
const FABRICATED: [Walk; 5] = [
    Walk::Spoofed,
    Walk::Sparse,
    Walk::Bouncing,
    Walk::Backdated,
    Walk::AbsurdTime,
];

/// `metres` along the first segment of the asset from its first vertex, `[lon, lat]`.
fn along_first_segment(asset: &Asset, metres: f64) -> [f64; 2] {
    let line: &[[f64; 2]] = match &asset.geometry {
        sync_core::model::Geometry::LineString(line) => line,
        sync_core::model::Geometry::Polygon(rings) => rings.first().map_or(&[][..], Vec::as_slice),
    };
    match line {
        [a, b, ..] => {
            let length = sync_core::geo::haversine_m(a[1], a[0], b[1], b[0]).max(1.0);
            let f = (metres / length).min(1.0);
            [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f]
        }
        [a] => *a,
        [] => [0.0, 0.0],
    }
}

fn track(walk: Walk, asset: &Asset, start: i64, rng: &mut StdRng) -> Vec<TrackPoint> {
    let seed = rng.random();
    match walk {
        Walk::Normal | Walk::Spoofed | Walk::Backdated | Walk::AbsurdTime => {
            let mut points = walk_along(&asset.geometry, start, rng.random_range(900..2_400), seed);
            if walk == Walk::Spoofed {
                let len = points.len();
                for i in [len / 3, len / 2, 2 * len / 3] {
                    points[i].lat += 0.05;
                }
            }
            if walk == Walk::Backdated {
                for p in &mut points {
                    p.t_ms -= 60 * DAY_MS;
                }
            }
            if walk == Walk::AbsurdTime {
                let last = points[points.len() - 1];
                points.push(TrackPoint {
                    t_ms: i64::MAX,
                    ..last
                });
            }
            points
        }
        Walk::Sparse => walk_along(&asset.geometry, start, 1_800, seed)
            .into_iter()
            .step_by(180)
            .collect(),
        Walk::Bouncing => {
            let [lon0, lat0] = along_first_segment(asset, 0.0);
            let [lon1, lat1] = along_first_segment(asset, 150.0);
            let stretch = sync_core::model::Geometry::LineString(vec![[lon0, lat0], [lon1, lat1]]);
            let out = walk_along(&stretch, start, 115, seed);
            let back: Vec<TrackPoint> = out.iter().rev().copied().collect();
            out.iter()
                .chain(&back)
                .cycle()
                .take(1_200)
                .enumerate()
                .map(|(i, p)| TrackPoint {
                    t_ms: start + 1_000 * i as i64,
                    ..*p
                })
                .collect()
        }
        Walk::TooShort => walk_along(&asset.geometry, start, 360, seed),
        Walk::Driven => walk_along(&asset.geometry, start, 12_000, seed)
            .into_iter()
            .step_by(10)
            .enumerate()
            .map(|(i, p)| TrackPoint {
                t_ms: start + 1_000 * i as i64,
                ..p
            })
            .collect(),
    }
}

/// How GPS fixes reach a patrol document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Recorder {
    /// Fix by fix through `PhoneApp::add_track_point`, each fix flushed to the phone's crash
    /// buffer before the next: the app's own path, point for point.
    Fix,
    /// Ten minutes of fixes at a time: appended to the patrol document and saved as the app's
    /// recorder does when its buffer fills (same chunks, same changes, same document). Only the
    /// per-fix crash buffer, which never leaves the phone, is not written.
    Chunk,
}

/// Records `points` into the patrol as the chosen recorder does.
fn record(phone: &Phone, recorder: Recorder, patrol: &str, points: &[TrackPoint]) -> Result<()> {
    match recorder {
        Recorder::Fix => {
            for p in points {
                // A fix dated at the end of time leaves the phone's clock where it was.
                if p.t_ms < i64::MAX / 2 {
                    phone.clock.set(p.t_ms);
                }
                phone
                    .client()?
                    .add_track_point(
                        patrol.to_owned(),
                        p.lat,
                        p.lon,
                        p.t_ms,
                        p.accuracy_m,
                        p.mock,
                        p.provider.name().into(),
                    )
                    .map_err(err)?;
            }
        }
        Recorder::Chunk => {
            let client = phone.client()?;
            let store = client.store();
            let actor = parse_actor(&client.me().map_err(err)?.actor_id).map_err(err)?;
            let bytes = store
                .load_doc(patrol)
                .map_err(err)?
                .ok_or("a started patrol is not in the store")?;
            let mut doc = PatrolDoc::load(&bytes).map_err(err)?.with_actor(actor);
            for chunk in points.chunks(CHANGE_POINTS) {
                let last = chunk[chunk.len() - 1].t_ms;
                if last < i64::MAX / 2 {
                    phone.clock.set(last);
                }
                doc.append_track(chunk).map_err(err)?;
                SyncClient::new(store)
                    .save(&mut doc, DocKind::Patrol, patrol)
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// One patrol as the simulator made it, and what the server must say of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatrolLog {
    pub id: String,
    pub walk: Walk,
    /// Valid as the server judges it: what the phone judged, except that the phone cannot know
    /// its fixes are dated before it was signed in.
    pub valid: bool,
}

/// What one chief's phone recorded, as the statistics should count it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChiefLog {
    /// Patrols the statistics count in the simulated days (a backdated one counts at the
    /// phone's binding, before them).
    pub patrols: u64,
    pub valid: u64,
    pub km: f64,
    pub walks: Vec<PatrolLog>,
    pub issues: Vec<String>,
    pub photos: u64,
}

impl ChiefLog {
    /// Adds a later period's work.
    pub fn absorb(&mut self, later: ChiefLog) {
        self.patrols += later.patrols;
        self.valid += later.valid;
        self.km += later.km;
        self.walks.extend(later.walks);
        self.issues.extend(later.issues);
        self.photos += later.photos;
    }
}

/// `days` days of a chief's work, offline, from `first_day` (a China-time midnight); each
/// patrol is fabricated with chance `fabricated`.
pub fn chief_days(
    phone: &Phone,
    recorder: Recorder,
    first_day: i64,
    days: u32,
    seed: u64,
    fabricated: f64,
) -> Result<ChiefLog> {
    let mut rng = StdRng::seed_from_u64(seed);
    let asset = phone
        .person
        .asset
        .clone()
        .ok_or("a chief without an asset")?;
    let items: Vec<String> = phone
        .client()?
        .check_items()
        .map_err(err)?
        .into_iter()
        .filter(|c| c.system == asset.system)
        .map(|c| c.code)
        .collect();
    let categories: Vec<String> = phone
        .client()?
        .categories()
        .map_err(err)?
        .into_iter()
        .filter(|c| c.system == asset.system)
        .map(|c| c.code)
        .collect();
    let mut log = ChiefLog::default();
    for day in 0..days {
        if !rng.random_bool(0.7) {
            continue;
        }
        let start =
            first_day + i64::from(day) * DAY_MS + rng.random_range(8 * 60..16 * 60) * MINUTE_MS;
        let walk = if rng.random_bool(fabricated.clamp(0.0, 1.0)) {
            FABRICATED[rng.random_range(0..FABRICATED.len())]
        } else {
            match rng.random_range(0..100) {
                0..8 => Walk::TooShort,
                8..14 => Walk::Driven,
                _ => Walk::Normal,
            }
        };
        phone.clock.set(start);
        let patrol = phone
            .client()?
            .start_patrol(asset.id.clone())
            .map_err(err)?;
        let points = track(walk, &asset, start, &mut rng);
        record(phone, recorder, &patrol, &points)?;
        for item in &items {
            let result = if rng.random_bool(0.1) {
                CheckResult::Problem
            } else {
                CheckResult::Ok
            };
            phone
                .client()?
                .set_check_item(patrol.clone(), item.clone(), result, String::new())
                .map_err(err)?;
        }
        if walk == Walk::Spoofed {
            phone
                .client()?
                .set_patrol_flag(patrol.clone(), "mock_location".into(), true)
                .map_err(err)?;
        }
        if !categories.is_empty() && rng.random_bool(0.35) {
            // Reported where the chief stands: a fix of the walk next to the middle one, which
            // a mock-location walk moved kilometres away. A report placed there would be
            // refused as misplaced (more than 1 km from its asset), and rightly so.
            let at = points[points.len() / 2 + 1];
            let issue = phone
                .client()?
                .report_issue(IssueDraft {
                    category: categories[rng.random_range(0..categories.len())].clone(),
                    severity: match rng.random_range(0..10) {
                        0 => Severity::Critical,
                        1..3 => Severity::Urgent,
                        _ => Severity::General,
                    },
                    asset_id: asset.id.clone(),
                    lat: at.lat,
                    lon: at.lon,
                    description: format!("巡查发现问题，第{}天", day + 1),
                    patrol_id: Some(patrol.clone()),
                })
                .map_err(err)?;
            let photo = phone.take_photo(seed.wrapping_mul(1_000) + u64::from(day))?;
            phone
                .client()?
                .attach_photo(issue.clone(), photo.clone(), PhotoRole::Before)
                .map_err(err)?;
            // The app keeps its own prepared copy; the camera's file is not the app's (10,000
            // phones' camera rolls would fill the disk the phones are simulated on).
            let _ = std::fs::remove_file(&photo);
            log.photos += 1;
            log.issues.push(issue);
        }
        let end = points
            .iter()
            .map(|p| p.t_ms)
            .filter(|&t| t < i64::MAX / 2)
            .max()
            .unwrap_or(start)
            .saturating_add(1_000);
        phone.clock.set(end);
        let summary = phone
            .client()?
            .finish_patrol(patrol.clone(), "巡查完毕".into())
            .map_err(err)?;
        let valid = summary.valid && walk != Walk::Backdated;
        log.walks.push(PatrolLog {
            id: patrol,
            walk,
            valid,
        });
        if walk == Walk::Backdated {
            // Counted at the phone's binding, before the simulated days: not in their figures.
            continue;
        }
        log.patrols += 1;
        log.valid += u64::from(valid);
        log.km += summary.distance_m / 1_000.0;
    }
    Ok(log)
}

/// Issues of this run (`ours`) in `status` on the phone, with their system.
fn with_status(
    phone: &Phone,
    ours: &BTreeSet<String>,
    status: Status,
) -> Result<Vec<(String, String)>> {
    Ok(phone
        .client()?
        .issues(IssueFilter {
            status: Some(status),
            open_only: false,
            asset_id: None,
        })
        .map_err(err)?
        .into_iter()
        .filter(|s| ours.contains(&s.issue_id))
        .map(|s| (s.issue_id, format!("{:?}", s.system).to_lowercase()))
        .collect())
}

fn act(phone: &Phone, issue: &str, event: EventDraft) -> Result<()> {
    phone
        .client()?
        .append_event(issue.to_owned(), event)
        .map_err(|e| format!("{} on {issue}: {e}", phone.person.user.username))
}

/// The office accepts and assigns what was reported (a few are not real problems).
pub fn office_assigns(
    phone: &Phone,
    ours: &BTreeSet<String>,
    now: i64,
    rng: &mut StdRng,
) -> Result<BTreeMap<String, Status>> {
    let mut outcome = BTreeMap::new();
    for (id, system) in with_status(phone, ours, Status::Reported)? {
        if rng.random_bool(0.1) {
            act(
                phone,
                &id,
                EventDraft::Invalidate {
                    reason: "现场核实不属于问题".into(),
                },
            )?;
            outcome.insert(id, Status::Invalid);
            continue;
        }
        act(phone, &id, EventDraft::Accept)?;
        let system = sync_core::model::System::parse(&system).ok_or("system")?;
        act(
            phone,
            &id,
            EventDraft::Assign {
                assignee: AssigneeDraft::Department {
                    name: department(system).into(),
                },
                deadline_ms: now + 7 * DAY_MS,
            },
        )?;
        outcome.insert(id, Status::Assigned);
    }
    Ok(outcome)
}

/// The department rectifies most of what it was given, naming an "after" photo. The phone
/// library attaches photos by adding them to the issue's photo list, which only the reporter
/// and supervisors may edit, so the photo is prepared with sync-core and uploaded by the
/// simulator itself (`camera`, the handler's own account). Returns the new statuses and the
/// photos uploaded.
pub fn handler_rectifies(
    phone: &Phone,
    ours: &BTreeSet<String>,
    camera: &crate::http::Api,
    rng: &mut StdRng,
    n: u64,
) -> Result<(BTreeMap<String, Status>, u64)> {
    let mut outcome = BTreeMap::new();
    let mut uploaded = 0;
    for (k, (id, _)) in with_status(phone, ours, Status::Assigned)?
        .into_iter()
        .enumerate()
    {
        if !rng.random_bool(0.8) {
            continue;
        }
        let file = phone.take_photo(n * 100_000 + k as u64)?;
        let raw = std::fs::read(&file).map_err(err)?;
        let _ = std::fs::remove_file(&file);
        let prepared =
            sync_core::photo::prepare(&raw, &sync_core::photo::PrepareOptions::default())
                .map_err(err)?;
        let sha256 = prepared.photo_ref(PhotoRole::After).sha256;
        if matches!(camera.put_blob(&sha256, &prepared.jpeg)?, 200 | 201) {
            uploaded += 1;
        }
        act(
            phone,
            &id,
            EventDraft::SubmitRectification {
                note: "已清理完毕".into(),
                photos: vec![sha256],
            },
        )?;
        outcome.insert(id, Status::Submitted);
    }
    Ok((outcome, uploaded))
}

/// The office verifies most rectifications and sends the rest back.
pub fn office_verifies(
    phone: &Phone,
    ours: &BTreeSet<String>,
    rng: &mut StdRng,
) -> Result<BTreeMap<String, Status>> {
    let mut outcome = BTreeMap::new();
    for (id, _) in with_status(phone, ours, Status::Submitted)? {
        if rng.random_bool(0.75) {
            act(
                phone,
                &id,
                EventDraft::Verify {
                    note: "现场核查通过，销号".into(),
                },
            )?;
            outcome.insert(id, Status::Closed);
        } else {
            act(
                phone,
                &id,
                EventDraft::Reject {
                    reason: "整改不到位".into(),
                },
            )?;
            outcome.insert(id, Status::Assigned);
        }
    }
    Ok(outcome)
}
