//! No panic crosses the FFI boundary: every exported call of `FieldClient` is driven with
//! hostile arguments, in random sequences, against a real demo server and a real device store.
//!
//! Arguments: NaN, infinite and out-of-range coordinates; `i64::MIN`/`MAX` and negative
//! timestamps and deadlines; empty, huge, NUL-carrying, path-like and random unicode ids and
//! texts; ids of the wrong kind (an issue id as a patrol, a photo name as an issue); missing
//! files, directories, devices, symlink loops, text and truncated files as photos; calls before
//! login, after logout, after another user signed in, on finished patrols, twice in a row.
//! Every call must return `Ok` or a `ChiefsyncError` — a panic fails the test with the call that
//! caused it — and afterwards the store opens again and lists what it holds.
//!
//! `CHIEFSYNC_HOSTILE_CASES=<n>` runs more sequences (default 48); proptest prints the failing
//! sequence, shrunk, and its seed.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mobile_ffi::{
    AssigneeDraft, CheckResult, ChiefsyncError, ClientConfig, Clock, EventDraft, FieldClient,
    IssueDraft, IssueFilter, IssueStatus, PhotoRole, Severity,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const T0: i64 = 1_764_291_600_000;

/// A clock the sequence moves, including to absurd times.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The demo server every case talks to, and files the photo calls are given.
struct World {
    base: String,
    _dir: tempfile::TempDir,
    files: Files,
}

struct Files {
    jpeg: PathBuf,
    truncated: PathBuf,
    html_as_jpeg: PathBuf,
    png_bomb: PathBuf,
    empty: PathBuf,
    directory: PathBuf,
    symlink_loop: PathBuf,
    missing: PathBuf,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // The hostile sign-ins spray wrong passwords over made-up names from 127.0.0.1, which
        // is what the server's per-address throttle exists to stop, and a successful sign-in no
        // longer forgives failures made for other usernames; every case signs in from a new
        // device, which that throttle holds back. The throttle has its own attack tests
        // (server `attacks::accounts`); here it is out of reach, the other two counts as usual.
        let base = common::start_tuned_demo_server(&dir.path().join("server"), 900, |s| {
            s.login_limit.max_failures_per_address = usize::MAX;
        });
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let mut picture = image::RgbImage::new(64, 48);
        for (x, y, p) in picture.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]);
        }
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(picture)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = files.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let symlink_loop = files.join("loop.jpg");
        std::os::unix::fs::symlink(&symlink_loop, &symlink_loop).unwrap();
        let directory = files.join("a-directory.jpg");
        std::fs::create_dir_all(&directory).unwrap();
        let files = Files {
            jpeg: write("camera.jpg", &jpeg),
            truncated: write("truncated.jpg", &jpeg[..jpeg.len() / 2]),
            html_as_jpeg: write(
                "page.jpg",
                b"\xff\xd8<html><script>alert(1)</script></html>",
            ),
            png_bomb: write("bomb.png", &png_header_only(100_000, 100_000)),
            empty: write("empty.jpg", b""),
            directory,
            symlink_loop,
            missing: files.join("never-written.jpg"),
        };
        World {
            base,
            _dir: dir,
            files,
        }
    })
}

/// A PNG that declares `width`×`height` RGBA and carries no pixels.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32(kind, 0xffff_ffff);
        crc = crc32(data, crc);
        out.extend_from_slice(&(!crc).to_be_bytes());
    }
    fn crc32(bytes: &[u8], mut crc: u32) -> u32 {
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[]);
    chunk(&mut png, b"IEND", &[]);
    png
}

// ---------------------------------------------------------------------------------------------
// Hostile arguments

/// What an id names; the device keeps the ids it has seen of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Asset,
    Patrol,
    Issue,
    Photo,
    User,
    /// Category and check item codes.
    Code,
}

/// A string argument: a hostile literal or random unicode, an id of the kind the call expects,
/// or any id the device has seen (often of the wrong kind).
#[derive(Debug, Clone)]
enum Text {
    Lit(String),
    Known(Kind, usize),
    AnyKnown(usize),
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" \t\n".to_owned()),
        Just("\0".to_owned()),
        Just("river\0.garbage".to_owned()),
        Just("../../../../etc/passwd".to_owned()),
        Just("%00%2e%2e/ffi.session".to_owned()),
        Just("ffi.session".to_owned()),
        Just("\u{202e}\u{feff}\u{200b}河长\u{fffd}".to_owned()),
        Just("0192f0c0-0000-7000-8000-000000000000".to_owned()),
        Just("a".repeat(64)),
        Just("f".repeat(64)),
        Just("river.garbage".to_owned()),
        Just("river.banks".to_owned()),
        Just("区水务局".to_owned()),
        Just("x".repeat(70_000)),
        Just("長".repeat(20_000)),
        ".{0,40}",
    ]
}

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        3 => hostile_string().prop_map(Text::Lit),
        2 => (0usize..64).prop_map(Text::AnyKnown),
    ]
}

/// An id argument: mostly one of the expected kind, so sequences get deep enough to finish
/// patrols and move issues; otherwise hostile.
fn id(kind: Kind) -> impl Strategy<Value = Text> {
    prop_oneof![
        4 => (0usize..64).prop_map(move |i| Text::Known(kind, i)),
        1 => text(),
    ]
}

fn category() -> impl Strategy<Value = Text> {
    prop_oneof![
        2 => Just(Text::Lit("river.garbage".into())),
        1 => Just(Text::Lit("forest.fire_hazard".into())),
        1 => Just(Text::Lit("field.non_agricultural".into())),
        1 => (0usize..64).prop_map(|i| Text::Known(Kind::Code, i)),
        1 => text(),
    ]
}

fn coordinate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::MIN_POSITIVE),
        Just(-0.0),
        Just(90.000_000_1),
        Just(-180.000_000_1),
        Just(90.0),
        Just(-180.0),
        Just(36.70),
        Just(117.00),
        -1e6f64..1e6,
        -200.0f64..200.0,
        36.0f64..37.0,
        36.0f64..37.0,
        36.0f64..37.0,
    ]
}

/// The largest magnitude of a timestamp in the random sequences. `i64::MIN`/`MAX` themselves
/// make sync-core's patrol validation overflow (see `extreme_timestamps_are_errors_not_panics`),
/// so the sequences stay within ±2^60 ms (36 million years), where no difference of two times
/// overflows.
const FAR: i64 = 1 << 60;

/// Mostly a plausible latitude or longitude of the demo district, otherwise hostile.
fn plausible(range: std::ops::Range<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![2 => range, 1 => coordinate()]
}

/// Mostly plain words, otherwise hostile.
fn words() -> impl Strategy<Value = Text> {
    prop_oneof![2 => Just(Text::Lit("河道有垃圾".into())), 1 => text()]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(-FAR),
        Just(FAR),
        Just(-1),
        Just(0),
        Just(T0),
        Just(T0 + 1_000),
        Just(T0 - 86_400_000 * 365 * 100),
        Just(253_402_300_800_000), // year 10000
        -FAR..FAR,
        (T0 - 10_000_000)..(T0 + 10_000_000),
        (T0 - 10_000_000)..(T0 + 10_000_000),
    ]
}

fn accuracy() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(-1.0),
        Just(f32::MAX),
        Just(0.0),
        Just(5.0),
        any::<f32>(),
    ]
}

/// A file given to `attach_photo`.
#[derive(Debug, Clone)]
enum FileArg {
    Jpeg,
    Truncated,
    HtmlAsJpeg,
    PngBomb,
    Empty,
    Directory,
    SymlinkLoop,
    Missing,
    DevNull,
    DevZero,
    /// The device's own store directory.
    OwnStore,
    TooLongName,
    Nul,
    Lit(String),
}

fn file_arg() -> impl Strategy<Value = FileArg> {
    prop_oneof![
        4 => Just(FileArg::Jpeg),
        1 => Just(FileArg::Truncated),
        1 => Just(FileArg::HtmlAsJpeg),
        1 => Just(FileArg::PngBomb),
        1 => Just(FileArg::Empty),
        1 => Just(FileArg::Directory),
        1 => Just(FileArg::SymlinkLoop),
        1 => Just(FileArg::Missing),
        1 => Just(FileArg::DevNull),
        1 => Just(FileArg::DevZero),
        1 => Just(FileArg::OwnStore),
        1 => Just(FileArg::TooLongName),
        1 => Just(FileArg::Nul),
        1 => hostile_string().prop_map(FileArg::Lit),
    ]
}

fn check_result() -> impl Strategy<Value = CheckResult> {
    prop_oneof![
        Just(CheckResult::Ok),
        Just(CheckResult::Problem),
        Just(CheckResult::NotApplicable)
    ]
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::General),
        Just(Severity::Urgent),
        Just(Severity::Critical)
    ]
}

fn role() -> impl Strategy<Value = PhotoRole> {
    prop_oneof![
        Just(PhotoRole::Before),
        Just(PhotoRole::After),
        Just(PhotoRole::Evidence)
    ]
}

fn status() -> impl Strategy<Value = IssueStatus> {
    prop_oneof![
        Just(IssueStatus::Reported),
        Just(IssueStatus::Accepted),
        Just(IssueStatus::Assigned),
        Just(IssueStatus::Submitted),
        Just(IssueStatus::Closed),
        Just(IssueStatus::Invalid),
        Just(IssueStatus::Duplicate),
    ]
}

/// A workflow step whose strings are hostile or known ids.
#[derive(Debug, Clone)]
enum Event {
    Accept,
    AssignDepartment(Text, i64),
    AssignUser(Text, i64),
    Submit(Text, Vec<Text>),
    Verify(Text),
    Reject(Text),
    Invalidate(Text),
    DuplicateOf(Text),
    Escalate(Text),
    Reopen(Text),
    Comment(Text),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Accept),
        (text(), timestamp()).prop_map(|(t, d)| Event::AssignDepartment(t, d)),
        (id(Kind::User), timestamp()).prop_map(|(t, d)| Event::AssignUser(t, d)),
        (text(), prop::collection::vec(id(Kind::Photo), 0..4))
            .prop_map(|(t, p)| Event::Submit(t, p)),
        text().prop_map(Event::Verify),
        text().prop_map(Event::Reject),
        text().prop_map(Event::Invalidate),
        id(Kind::Issue).prop_map(Event::DuplicateOf),
        text().prop_map(Event::Escalate),
        text().prop_map(Event::Reopen),
        text().prop_map(Event::Comment),
    ]
}

/// The accounts a sequence may sign in as (password `demo`). Wrong passwords are only ever
/// tried for `demo-admin` and made-up names, so the server's failed-login throttling per
/// username never locks out the accounts the other cases use (the per-address one is set out
/// of reach in [`world`]).
const ACCOUNTS: [&str; 6] = [
    "demo-chief",
    "demo-chief-2",
    "demo-forest-chief",
    "demo-field-chief",
    "demo-supervisor",
    "demo-handler",
];

/// One exported call with its arguments.
#[derive(Debug, Clone)]
enum Call {
    Login(usize),
    LoginHostile(Text, Text),
    Logout,
    Me,
    Assets,
    CheckItems,
    Categories,
    Sync,
    PendingUploads,
    Quarantine,
    StartPatrol(Text),
    AddTrackPoint(Text, f64, f64, i64, f32),
    /// A minute of plausible fixes, so patrols fill whole track chunks.
    Walk(Text, u8),
    SetCheckItem(Text, Text, CheckResult, Text),
    SetPatrolFlag(Text, Text, bool),
    FinishPatrol(Text, Text),
    Patrol(Text),
    Patrols,
    ReportIssue {
        category: Text,
        severity: Severity,
        asset: Text,
        lat: f64,
        lon: f64,
        description: Text,
        patrol: Option<Text>,
    },
    AppendEvent(Text, Event),
    Issues(Option<IssueStatus>, bool, Option<Text>),
    Issue(Text),
    AttachPhoto(Text, FileArg, PhotoRole),
    /// The app is closed and started again on the same store.
    Restart,
    /// The phone's clock jumps.
    SetClock(i64),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        3 => (0..ACCOUNTS.len()).prop_map(Call::Login),
        1 => (text(), text()).prop_map(|(u, p)| Call::LoginHostile(u, p)),
        1 => Just(Call::Logout),
        1 => Just(Call::Me),
        1 => Just(Call::Assets),
        1 => Just(Call::CheckItems),
        1 => Just(Call::Categories),
        2 => Just(Call::Sync),
        1 => Just(Call::PendingUploads),
        1 => Just(Call::Quarantine),
        4 => id(Kind::Asset).prop_map(Call::StartPatrol),
        4 => (
            id(Kind::Patrol),
            plausible(36.6..36.8),
            plausible(116.9..117.1),
            timestamp(),
            accuracy()
        )
            .prop_map(|(p, lat, lon, t, a)| Call::AddTrackPoint(p, lat, lon, t, a)),
        2 => (id(Kind::Patrol), any::<u8>()).prop_map(|(p, seed)| Call::Walk(p, seed)),
        2 => (id(Kind::Patrol), id(Kind::Code), check_result(), text())
            .prop_map(|(p, i, r, n)| Call::SetCheckItem(p, i, r, n)),
        1 => (id(Kind::Patrol), text(), any::<bool>())
            .prop_map(|(p, f, on)| Call::SetPatrolFlag(p, f, on)),
        3 => (id(Kind::Patrol), text()).prop_map(|(p, n)| Call::FinishPatrol(p, n)),
        1 => id(Kind::Patrol).prop_map(Call::Patrol),
        1 => Just(Call::Patrols),
        4 => (
            category(),
            severity(),
            id(Kind::Asset),
            plausible(36.6..36.8),
            plausible(116.9..117.1),
            words(),
            prop::option::of(id(Kind::Patrol))
        )
            .prop_map(|(category, severity, asset, lat, lon, description, patrol)| {
                Call::ReportIssue {
                    category,
                    severity,
                    asset,
                    lat,
                    lon,
                    description,
                    patrol,
                }
            }),
        4 => (id(Kind::Issue), event()).prop_map(|(i, e)| Call::AppendEvent(i, e)),
        1 => (prop::option::of(status()), any::<bool>(), prop::option::of(id(Kind::Asset)))
            .prop_map(|(s, o, a)| Call::Issues(s, o, a)),
        1 => id(Kind::Issue).prop_map(Call::Issue),
        3 => (
            prop_oneof![id(Kind::Patrol), id(Kind::Issue)],
            file_arg(),
            role()
        )
            .prop_map(|(r, f, role)| Call::AttachPhoto(r, f, role)),
        1 => Just(Call::Restart),
        1 => timestamp().prop_map(Call::SetClock),
    ]
}

// ---------------------------------------------------------------------------------------------
// Running a sequence

/// One phone under attack and the ids it has seen, which hostile calls reuse in wrong places.
struct Device {
    dir: PathBuf,
    clock: Arc<TestClock>,
    client: Option<Arc<FieldClient>>,
    known: BTreeMap<Kind, Vec<String>>,
}

impl Device {
    fn open(dir: &Path, server_url: &str) -> Result<Self, ChiefsyncError> {
        let clock = Arc::new(TestClock(AtomicI64::new(T0)));
        let client = FieldClient::open(ClientConfig {
            clock: clock.clone(),
            ..ClientConfig::new(dir, server_url)
        })?;
        Ok(Device {
            dir: dir.to_owned(),
            clock,
            client: Some(client),
            known: BTreeMap::new(),
        })
    }

    fn client(&self) -> &FieldClient {
        self.client.as_ref().expect("the device is open")
    }

    fn text(&self, t: &Text) -> String {
        let all: Vec<&String> = self.known.values().flatten().collect();
        match t {
            Text::Lit(s) => s.clone(),
            Text::Known(kind, i) => match self.known.get(kind) {
                Some(ids) if !ids.is_empty() => ids[i % ids.len()].clone(),
                _ => format!("unknown-{i}"),
            },
            Text::AnyKnown(_) if all.is_empty() => String::new(),
            Text::AnyKnown(i) => all[i % all.len()].clone(),
        }
    }

    fn learn(&mut self, kind: Kind, id: impl Into<String>) {
        let id = id.into();
        let ids = self.known.entry(kind).or_default();
        if !ids.contains(&id) && ids.len() < 64 {
            ids.push(id);
        }
    }

    fn file(&self, f: &FileArg) -> String {
        let files = &world().files;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        match f {
            FileArg::Jpeg => path(&files.jpeg),
            FileArg::Truncated => path(&files.truncated),
            FileArg::HtmlAsJpeg => path(&files.html_as_jpeg),
            FileArg::PngBomb => path(&files.png_bomb),
            FileArg::Empty => path(&files.empty),
            FileArg::Directory => path(&files.directory),
            FileArg::SymlinkLoop => path(&files.symlink_loop),
            FileArg::Missing => path(&files.missing),
            FileArg::DevNull => "/dev/null".into(),
            FileArg::DevZero => "/dev/zero".into(),
            FileArg::OwnStore => path(&self.dir.join("store")),
            FileArg::TooLongName => format!("{}/{}.jpg", self.dir.display(), "n".repeat(5_000)),
            FileArg::Nul => format!("{}\0.jpg", files.jpeg.display()),
            FileArg::Lit(s) => s.clone(),
        }
    }

    fn event(&self, e: &Event) -> EventDraft {
        match e {
            Event::Accept => EventDraft::Accept,
            Event::AssignDepartment(name, deadline_ms) => EventDraft::Assign {
                assignee: AssigneeDraft::Department {
                    name: self.text(name),
                },
                deadline_ms: *deadline_ms,
            },
            Event::AssignUser(user_id, deadline_ms) => EventDraft::Assign {
                assignee: AssigneeDraft::User {
                    user_id: self.text(user_id),
                },
                deadline_ms: *deadline_ms,
            },
            Event::Submit(note, photos) => EventDraft::SubmitRectification {
                note: self.text(note),
                photos: photos.iter().map(|p| self.text(p)).collect(),
            },
            Event::Verify(t) => EventDraft::Verify { note: self.text(t) },
            Event::Reject(t) => EventDraft::Reject {
                reason: self.text(t),
            },
            Event::Invalidate(t) => EventDraft::Invalidate {
                reason: self.text(t),
            },
            Event::DuplicateOf(t) => EventDraft::DuplicateOf {
                issue_id: self.text(t),
            },
            Event::Escalate(t) => EventDraft::Escalate { note: self.text(t) },
            Event::Reopen(t) => EventDraft::Reopen {
                reason: self.text(t),
            },
            Event::Comment(t) => EventDraft::Comment { text: self.text(t) },
        }
    }

    /// Runs one call; `Ok` carries the name of the outcome (`ok` or the error's variant).
    fn run(&mut self, call: &Call) -> &'static str {
        let c = self.client.clone().expect("the device is open");
        let outcome: Result<(), ChiefsyncError> = match call {
            Call::Login(i) => c.login(ACCOUNTS[*i].into(), "demo".into()).map(|me| {
                self.learn(Kind::User, me.user_id);
                for asset in me.assets {
                    self.learn(Kind::Asset, asset);
                }
            }),
            Call::LoginHostile(user, password) => {
                let user = self.text(user);
                let user = if ACCOUNTS.iter().any(|a| a.eq_ignore_ascii_case(user.trim())) {
                    "demo-admin".to_owned()
                } else {
                    user
                };
                c.login(user, self.text(password)).map(drop)
            }
            Call::Logout => c.logout(),
            Call::Me => c.me().map(drop),
            Call::Assets => c.assets().map(|assets| {
                for a in assets {
                    self.learn(Kind::Asset, a.id);
                }
            }),
            Call::CheckItems => c.check_items().map(|items| {
                for i in items {
                    self.learn(Kind::Code, i.code);
                }
            }),
            Call::Categories => c.categories().map(|cats| {
                for cat in cats {
                    self.learn(Kind::Code, cat.code);
                }
            }),
            Call::Sync => c.sync().map(drop),
            Call::PendingUploads => c.pending_uploads().map(drop),
            Call::Quarantine => c.quarantine().map(drop),
            Call::StartPatrol(asset) => c
                .start_patrol(self.text(asset))
                .map(|id| self.learn(Kind::Patrol, id)),
            Call::AddTrackPoint(p, lat, lon, t, acc) => {
                c.add_track_point(self.text(p), *lat, *lon, *t, *acc, false, String::new())
            }
            Call::Walk(p, seed) => {
                let patrol = self.text(p);
                let start = self.clock.now_ms();
                (0..60i64).try_for_each(|i| {
                    let wiggle = f64::from(*seed) * 1e-6;
                    c.add_track_point(
                        patrol.clone(),
                        36.70 + i as f64 * 1e-5 + wiggle,
                        117.00 + wiggle,
                        start.saturating_add(i * 1_000),
                        4.0,
                        false,
                        String::new(),
                    )
                })
            }
            Call::SetCheckItem(p, item, result, note) => {
                c.set_check_item(self.text(p), self.text(item), *result, self.text(note))
            }
            Call::SetPatrolFlag(p, flag, on) => {
                c.set_patrol_flag(self.text(p), self.text(flag), *on)
            }
            Call::FinishPatrol(p, notes) => {
                c.finish_patrol(self.text(p), self.text(notes)).map(drop)
            }
            Call::Patrol(p) => c.patrol(self.text(p)).map(drop),
            Call::Patrols => c.patrols().map(|all| {
                for p in all {
                    self.learn(Kind::Patrol, p.patrol_id);
                }
            }),
            Call::ReportIssue {
                category,
                severity,
                asset,
                lat,
                lon,
                description,
                patrol,
            } => {
                let draft = IssueDraft {
                    category: self.text(category),
                    severity: *severity,
                    asset_id: self.text(asset),
                    lat: *lat,
                    lon: *lon,
                    description: self.text(description),
                    patrol_id: patrol.as_ref().map(|p| self.text(p)),
                };
                c.report_issue(draft).map(|id| self.learn(Kind::Issue, id))
            }
            Call::AppendEvent(issue, e) => c.append_event(self.text(issue), self.event(e)),
            Call::Issues(status, open_only, asset) => c
                .issues(IssueFilter {
                    status: *status,
                    open_only: *open_only,
                    asset_id: asset.as_ref().map(|a| self.text(a)),
                })
                .map(|all| {
                    for i in all {
                        self.learn(Kind::Issue, i.issue_id);
                    }
                }),
            Call::Issue(i) => c.issue(self.text(i)).map(drop),
            Call::AttachPhoto(record, file, role) => c
                .attach_photo(self.text(record), self.file(file), *role)
                .map(|photo| self.learn(Kind::Photo, photo.sha256)),
            Call::Restart => {
                drop(c);
                self.client = None;
                let reopened = FieldClient::open(ClientConfig {
                    clock: self.clock.clone(),
                    ..ClientConfig::new(&self.dir, &world().base)
                })
                .expect("the store opens again after a restart");
                self.client = Some(reopened);
                Ok(())
            }
            Call::SetClock(t) => {
                self.clock.0.store(*t, Ordering::SeqCst);
                Ok(())
            }
        };
        match outcome {
            Ok(()) => "ok",
            Err(err) => variant(&err),
        }
    }
}

fn variant(err: &ChiefsyncError) -> &'static str {
    match err {
        ChiefsyncError::NotLoggedIn { .. } => "NotLoggedIn",
        ChiefsyncError::Auth { .. } => "Auth",
        ChiefsyncError::InvalidSetupCode { .. } => "InvalidSetupCode",
        ChiefsyncError::WeakPassword { .. } => "WeakPassword",
        ChiefsyncError::Network { .. } => "Network",
        ChiefsyncError::Server { .. } => "Server",
        ChiefsyncError::InvalidInput { .. } => "InvalidInput",
        ChiefsyncError::NotFound { .. } => "NotFound",
        ChiefsyncError::InvalidTransition { .. } => "InvalidTransition",
        ChiefsyncError::Forbidden { .. } => "Forbidden",
        ChiefsyncError::Photo { .. } => "Photo",
        ChiefsyncError::Storage { .. } => "Storage",
        ChiefsyncError::UnsyncedWork { .. } => "UnsyncedWork",
        ChiefsyncError::Internal { .. } => "Internal",
    }
}

fn call_name(call: &Call) -> &'static str {
    match call {
        Call::Login(_) => "login",
        Call::LoginHostile(..) => "login (hostile)",
        Call::Logout => "logout",
        Call::Me => "me",
        Call::Assets => "assets",
        Call::CheckItems => "check_items",
        Call::Categories => "categories",
        Call::Sync => "sync",
        Call::PendingUploads => "pending_uploads",
        Call::Quarantine => "quarantine",
        Call::StartPatrol(_) => "start_patrol",
        Call::AddTrackPoint(..) => "add_track_point",
        Call::Walk(..) => "add_track_point ×60",
        Call::SetCheckItem(..) => "set_check_item",
        Call::SetPatrolFlag(..) => "set_patrol_flag",
        Call::FinishPatrol(..) => "finish_patrol",
        Call::Patrol(_) => "patrol",
        Call::Patrols => "patrols",
        Call::ReportIssue { .. } => "report_issue",
        Call::AppendEvent(..) => "append_event",
        Call::Issues(..) => "issues",
        Call::Issue(_) => "issue",
        Call::AttachPhoto(..) => "attach_photo",
        Call::Restart => "(restart)",
        Call::SetClock(_) => "(clock)",
    }
}

/// Outcomes of every call of every case, by call and outcome.
type Tally = Mutex<BTreeMap<(&'static str, &'static str), usize>>;

fn count(tally: &Tally, call: &'static str, outcome: &'static str) {
    *tally.lock().unwrap().entry((call, outcome)).or_default() += 1;
}

fn print_tally(what: &str, tally: &Tally, cases: usize) {
    let tally = tally.lock().unwrap();
    let calls: usize = tally.values().sum();
    println!("{what}: {cases} sequences, {calls} calls without a panic");
    let mut by_call: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((call, outcome), n) in tally.iter() {
        by_call
            .entry(call)
            .or_default()
            .push(format!("{outcome} {n}"));
    }
    for (call, outcomes) in by_call {
        println!("  {call:<22} {}", outcomes.join(", "));
    }
}

fn cases() -> u32 {
    std::env::var("CHIEFSYNC_HOSTILE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

/// Runs `call` and fails the case, naming the call, if it panicked.
fn no_panic<T>(what: &str, call: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        TestCaseError::fail(format!("{what} panicked: {message}"))
    })
}

/// After a sequence: the store opens again, and every listing call answers without a panic.
fn reopens(dir: &Path) -> Result<(), TestCaseError> {
    let client = FieldClient::open(ClientConfig::new(dir, &world().base))
        .map_err(|e| TestCaseError::fail(format!("the store does not open again: {e}")))?;
    let listed = no_panic("listing after reopening", || {
        client.patrols().map(drop)?;
        client.issues(IssueFilter::default()).map(drop)?;
        client.pending_uploads().map(drop)?;
        client.quarantine().map(drop)
    })?;
    prop_assert!(listed.is_ok(), "listing after reopening: {listed:?}");
    Ok(())
}

#[test]
fn no_exported_call_panics_on_hostile_arguments() {
    let tally: Tally = Mutex::new(BTreeMap::new());
    let sequences = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..ACCOUNTS.len() + 1, prop::collection::vec(call(), 1..40));
    let result = runner.run(&strategy, |(first_login, calls)| {
        sequences.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let mut device = Device::open(dir.path(), &world().base)
            .map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
        // Most sequences start signed in; the rest call everything before any login.
        if let Some(account) = ACCOUNTS.get(first_login) {
            let me = device
                .client()
                .login((*account).into(), "demo".into())
                .map_err(|e| TestCaseError::fail(format!("login {account}: {e}")))?;
            device.learn(Kind::User, me.user_id);
            for asset in me.assets {
                device.learn(Kind::Asset, asset);
            }
        }
        for call in &calls {
            let outcome = no_panic(&format!("{call:?}"), || device.run(call))?;
            count(&tally, call_name(call), outcome);
        }
        device.client = None;
        reopens(dir.path())
    });
    print_tally(
        "hostile call sequences",
        &tally,
        sequences.load(Ordering::Relaxed),
    );
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// The named situations, each once, so they are covered whatever the random sequences draw.
#[test]
fn calls_out_of_order_and_on_missing_things_are_errors_not_panics() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::open(dir.path(), &w.base).unwrap();
    let c = device.client.clone().unwrap();
    let not_logged_in = |r: Result<(), ChiefsyncError>| {
        assert!(
            matches!(r, Err(ChiefsyncError::NotLoggedIn { .. })),
            "{r:?}"
        )
    };

    // Before any login.
    not_logged_in(c.me().map(drop));
    not_logged_in(c.sync().map(drop));
    not_logged_in(c.start_patrol("anything".into()).map(drop));
    assert!(c.assets().unwrap().is_empty());
    assert!(c.patrols().unwrap().is_empty());
    assert!(matches!(
        c.patrol("0192f0c0-0000-7000-8000-000000000000".into()),
        Err(ChiefsyncError::NotFound { .. })
    ));

    // Signed in: a patrol finished twice, then edited.
    let me = c.login("demo-chief".into(), "demo".into()).unwrap();
    let patrol = c.start_patrol(me.assets[0].clone()).unwrap();
    c.add_track_point(patrol.clone(), 36.7, 117.0, T0, 5.0, false, String::new())
        .unwrap();
    let first = c.finish_patrol(patrol.clone(), "一".into()).unwrap();
    let second = c.finish_patrol(patrol.clone(), "二".into()).unwrap();
    assert_eq!(first, second, "finishing twice changes nothing");
    assert!(c
        .add_track_point(
            patrol.clone(),
            36.7,
            117.0,
            T0 + 1_000,
            5.0,
            false,
            String::new()
        )
        .is_err());

    // Ids of the wrong kind and hostile ids.
    let issue = c
        .report_issue(IssueDraft {
            category: "river.garbage".into(),
            severity: Severity::General,
            asset_id: me.assets[0].clone(),
            lat: common::spot(&me.assets[0]).0,
            lon: common::spot(&me.assets[0]).1,
            description: "垃圾".into(),
            patrol_id: None,
        })
        .unwrap();
    assert!(c.patrol(issue.clone()).is_err());
    assert!(c.issue(patrol.clone()).is_err());
    assert!(c.finish_patrol(issue.clone(), String::new()).is_err());
    assert!(c.append_event(patrol.clone(), EventDraft::Accept).is_err());
    for id in ["", "\0", "../store", &"x".repeat(100_000)] {
        assert!(c.patrol(id.into()).is_err());
        assert!(c.issue(id.into()).is_err());
        assert!(c.start_patrol(id.into()).is_err());
    }

    // Coordinates and times no phone should send.
    for (lat, lon) in [
        (f64::NAN, 117.0),
        (36.7, f64::INFINITY),
        (91.0, 0.0),
        (0.0, -181.0),
    ] {
        assert!(matches!(
            c.add_track_point(patrol.clone(), lat, lon, T0, 5.0, false, String::new()),
            Err(ChiefsyncError::InvalidInput { .. })
        ));
    }
    // Times far from now, but whose differences fit in an i64.
    let open = c.start_patrol(me.assets[0].clone()).unwrap();
    for t in [-FAR, FAR, -1, 0, T0, -FAR] {
        no_panic("add_track_point", || {
            c.add_track_point(open.clone(), 36.7, 117.0, t, f32::NAN, false, String::new())
        })
        .unwrap()
        .unwrap();
    }
    no_panic("finish_patrol", || {
        c.finish_patrol(open.clone(), String::new())
    })
    .unwrap()
    .unwrap();

    // Files that are not photos.
    for file in [
        FileArg::Missing,
        FileArg::Directory,
        FileArg::SymlinkLoop,
        FileArg::DevNull,
        FileArg::Empty,
        FileArg::HtmlAsJpeg,
        FileArg::Truncated,
        FileArg::PngBomb,
        FileArg::OwnStore,
        FileArg::TooLongName,
        FileArg::Nul,
    ] {
        let r = c.attach_photo(issue.clone(), device.file(&file), PhotoRole::Evidence);
        assert!(r.is_err(), "{file:?}: {r:?}");
    }
    let photo = c
        .attach_photo(
            issue.clone(),
            device.file(&FileArg::Jpeg),
            PhotoRole::Evidence,
        )
        .unwrap();
    assert!(c
        .attach_photo(
            photo.sha256.clone(),
            device.file(&FileArg::Jpeg),
            PhotoRole::Evidence
        )
        .is_err());

    // Another user may not take over the device while this one's work is unsynced.
    assert!(matches!(
        c.login("demo-chief-2".into(), "demo".into()),
        Err(ChiefsyncError::UnsyncedWork { .. })
    ));

    // After logout: recording stays possible offline, syncing is refused.
    c.logout().unwrap();
    c.logout().unwrap();
    not_logged_in(c.sync().map(drop));
    not_logged_in(c.me().map(drop));
    assert!(c.patrol(patrol.clone()).is_ok());

    // A client over a data directory that cannot be one, and unusable server URLs.
    let file_as_dir = dir.path().join("a-file");
    std::fs::write(&file_as_dir, b"not a directory").unwrap();
    for (data_dir, url) in [
        (String::new(), w.base.clone()),
        ("   ".into(), w.base.clone()),
        (file_as_dir.display().to_string(), w.base.clone()),
        ("/dev/null/phone".into(), w.base.clone()),
        ("/proc/self/no-such-dir/phone".into(), w.base.clone()),
        (
            dir.path().join("x\0y").display().to_string(),
            w.base.clone(),
        ),
        (
            dir.path().join("bad-url-1").display().to_string(),
            String::new(),
        ),
        (
            dir.path().join("bad-url-2").display().to_string(),
            "ftp://127.0.0.1".into(),
        ),
        (
            dir.path().join("bad-url-3").display().to_string(),
            "127.0.0.1:8080".into(),
        ),
    ] {
        let r = no_panic("new", || FieldClient::new(data_dir.clone(), url.clone())).unwrap();
        assert!(r.is_err(), "{data_dir:?} {url:?}");
    }
    // The store already open in this process.
    let twice = no_panic("new", || {
        FieldClient::new(dir.path().display().to_string(), w.base.clone())
    })
    .unwrap();
    assert!(twice.is_err());
    // URLs that pass the scheme check but lead nowhere: errors at the first request.
    for url in [
        "http://",
        "http://[::1",
        "http://127.0.0.1:1",
        "https://127.0.0.1:1/\0",
    ] {
        let d = tempfile::tempdir().unwrap();
        let r = no_panic("new + login", || {
            let client = FieldClient::new(d.path().display().to_string(), url.into())?;
            client.login("demo-admin".into(), "wrong".into())
        })
        .unwrap();
        assert!(r.is_err(), "{url}");
    }

    device.client = None;
    drop(c);
    reopens(dir.path()).unwrap();
}

/// The extreme times: every call that takes or shows a time, with `i64::MIN` and `i64::MAX`
/// as fix times, deadlines and the phone's clock. Collects every panic and names the calls
/// (it found the patrol validation's fastest-window speed subtracting two fix times).
#[test]
fn extreme_timestamps_are_errors_not_panics() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(dir.path(), &w.base).unwrap();
    let c = device.client.clone().unwrap();
    let chief = c.login("demo-chief".into(), "demo".into()).unwrap();
    let mut panics = Vec::new();
    let mut attempt = |what: &str, call: &mut dyn FnMut() -> Result<(), ChiefsyncError>| {
        if let Err(err) = no_panic(what, call) {
            panics.push(err.to_string());
        }
    };
    for extreme in [i64::MIN, i64::MAX] {
        let patrol = c.start_patrol(chief.assets[0].clone()).unwrap();
        for t in [T0, extreme, T0 + 1_000, -extreme.saturating_add(1)] {
            attempt("add_track_point", &mut || {
                c.add_track_point(patrol.clone(), 36.7, 117.0, t, 5.0, false, String::new())
            });
        }
        attempt("patrol", &mut || c.patrol(patrol.clone()).map(drop));
        attempt("finish_patrol", &mut || {
            c.finish_patrol(patrol.clone(), String::new()).map(drop)
        });
        attempt("patrols", &mut || c.patrols().map(drop));
        attempt("sync", &mut || c.sync().map(drop));
    }
    let issue = c
        .report_issue(IssueDraft {
            category: "river.garbage".into(),
            severity: Severity::General,
            asset_id: chief.assets[0].clone(),
            lat: common::spot(&chief.assets[0]).0,
            lon: common::spot(&chief.assets[0]).1,
            description: "垃圾".into(),
            patrol_id: None,
        })
        .unwrap();
    attempt("sync", &mut || c.sync().map(drop));
    let office_dir = tempfile::tempdir().unwrap();
    let office = Device::open(office_dir.path(), &w.base).unwrap();
    let o = office.client.clone().unwrap();
    o.login("demo-supervisor".into(), "demo".into()).unwrap();
    attempt("sync", &mut || o.sync().map(drop));
    attempt("append_event", &mut || {
        o.append_event(issue.clone(), EventDraft::Accept)
    });
    for deadline_ms in [i64::MIN, i64::MAX] {
        attempt("append_event", &mut || {
            o.append_event(
                issue.clone(),
                EventDraft::Assign {
                    assignee: AssigneeDraft::Department {
                        name: "区水务局".into(),
                    },
                    deadline_ms,
                },
            )
        });
        attempt("issue", &mut || o.issue(issue.clone()).map(drop));
        attempt("issues", &mut || o.issues(IssueFilter::default()).map(drop));
        attempt("sync", &mut || o.sync().map(drop));
    }
    for now in [i64::MIN, i64::MAX] {
        office.clock.0.store(now, Ordering::SeqCst);
        device.clock.0.store(now, Ordering::SeqCst);
        attempt("issue", &mut || o.issue(issue.clone()).map(drop));
        attempt("issues", &mut || o.issues(IssueFilter::default()).map(drop));
        attempt("start_patrol", &mut || {
            c.start_patrol(chief.assets[0].clone()).map(drop)
        });
        attempt("patrols", &mut || c.patrols().map(drop));
        attempt("sync", &mut || c.sync().map(drop));
    }
    assert!(panics.is_empty(), "{panics:#?}");
}
