//! The district-sized part of the demo (`DemoSize::District`, what `--demo` seeds): a chief for
//! every river segment, forest and farmland grid that the demo accounts do not already patrol,
//! eight weeks of patrols for each of them, the forest and field offices and the departments
//! problems are assigned to, and some tens of issues across every system and workflow state,
//! each with painted before photos and, once rectified, after photos — a few of them taken
//! far from the problem, so the desk's before/after check has something to say. Everything is
//! drawn from a seeded generator and dated back from the seeding day.

use sync_core::doc::{
    actor_for, DocError, DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record,
};
use sync_core::model::{
    Asset, CheckResult, DivisionCode, Jurisdiction, PhotoRole, Role, Severity, System, User,
};
use sync_core::track::{self, walk_along};
use sync_core::workflow::{Action, Assignee};

use super::documents::DemoDoc;
use super::photos::{photo, DemoPhoto, Rng};
use super::{
    DemoFacts, DemoPerson, CHIEF, CHIEF_2, FIELD_CHIEF, FOREST_CHIEF, HANDLER, SUPERVISOR,
};

/// The district forest and field offices' accounts (password `demo`, district demo only).
pub const FOREST_OFFICE: &str = "demo-forest-office";
pub const FIELD_OFFICE: &str = "demo-field-office";

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
/// Days of patrols before the seeding day.
const PATROL_DAYS: i64 = 56;
/// Issues raised on the generated chiefs' patrols.
const ISSUES: usize = 60;
/// One fix every this many seconds (phones thin their fixes to save battery).
const FIX_EVERY: usize = 5;

const SURNAMES: &str = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎";
const GIVEN: [&str; 24] = [
    "建华", "秀兰", "志强", "桂英", "海燕", "国庆", "玉梅", "立新", "凤霞", "德明", "淑珍", "红军",
    "晓东", "丽娟", "永刚", "春梅", "振华", "金凤", "文杰", "雪梅", "宏伟", "爱华", "明亮", "静",
];

fn name(n: usize) -> String {
    let surname: Vec<char> = SURNAMES.chars().collect();
    format!(
        "{}{}",
        surname[n * 7 % surname.len()],
        GIVEN[n * 5 % GIVEN.len()]
    )
}

fn chief_title(system: System) -> &'static str {
    match system {
        System::River => "河长",
        System::Forest => "林长",
        System::Field => "田长",
    }
}

/// The department problems of `system` go to, and its generated handler's username.
fn department(system: System, n: usize) -> (&'static str, &'static str) {
    match (system, n % 3) {
        (System::River, 0) => ("区环卫管护服务中心", "demo-gen-sanitation"),
        (System::River, _) => ("区水务局", HANDLER),
        (System::Forest, _) => ("区自然资源局", "demo-gen-resources"),
        (System::Field, _) => ("区农业农村局", "demo-gen-agriculture"),
    }
}

fn user(username: &str, display_name: String, role: Role) -> DemoPerson {
    DemoPerson {
        user: User {
            id: super::user_id(username),
            username: username.into(),
            display_name,
            role,
            active: true,
        },
        can_log_in: false,
    }
}

/// The offices, departments and generated chiefs the district demo adds.
pub fn people(facts: &DemoFacts) -> Vec<DemoPerson> {
    let district = DivisionCode::new(super::places::DISTRICT).expect("district code");
    // The forest and field offices sign in with the demo password too, to see their systems.
    let office = |username: &str, name: &str, system: System| DemoPerson {
        can_log_in: true,
        ..user(
            username,
            name.into(),
            Role::Supervisor {
                system,
                division: district.clone(),
            },
        )
    };
    let mut out = vec![
        office(FOREST_OFFICE, "区林长办 孙丽", System::Forest),
        office(FIELD_OFFICE, "区田长办 周伟", System::Field),
        user(
            "demo-gen-sanitation",
            "区环卫管护服务中心 钱进".into(),
            Role::Handler {
                department: "区环卫管护服务中心".into(),
            },
        ),
        user(
            "demo-gen-resources",
            "区自然资源局 郑涛".into(),
            Role::Handler {
                department: "区自然资源局".into(),
            },
        ),
        user(
            "demo-gen-agriculture",
            "区农业农村局 韩梅".into(),
            Role::Handler {
                department: "区农业农村局".into(),
            },
        ),
    ];
    let patrolled: Vec<String> = [CHIEF, CHIEF_2, FOREST_CHIEF, FIELD_CHIEF]
        .iter()
        .filter_map(|u| facts.user(u))
        .filter_map(|u| match &u.role {
            Role::Chief { jurisdiction, .. } => Some(jurisdiction.assets.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    for (n, asset) in facts
        .assets
        .iter()
        .filter(|a| !patrolled.contains(&a.id))
        .enumerate()
    {
        let division = facts
            .divisions
            .iter()
            .find(|d| d.code == asset.division)
            .map_or("", |d| d.name.as_str());
        out.push(user(
            &format!("demo-gen-chief-{}", asset.id),
            format!("{division}{} {}", chief_title(asset.system), name(n)),
            Role::Chief {
                system: asset.system,
                level: asset.division.level(),
                jurisdiction: Jurisdiction {
                    division: asset.division.clone(),
                    assets: vec![asset.id.clone()],
                },
            },
        ));
    }
    out
}

struct Walked {
    id: String,
    track: Vec<sync_core::model::TrackPoint>,
}

fn patrols_of(
    chief: &User,
    asset: &Asset,
    n: u64,
    now_ms: i64,
    out: &mut Vec<DemoDoc>,
) -> Result<Vec<Walked>, DocError> {
    let mut rng = Rng(0x5eed_0000 + n);
    let mut walked = Vec::new();
    // 08:00 China time on the seeding day (00:00 UTC); patrols start between 8 and 11 o'clock.
    let morning = (now_ms + 8 * 3_600_000).div_euclid(DAY_MS) * DAY_MS;
    let mut day = PATROL_DAYS - rng.below(3) as i64;
    while day >= 0 {
        // Today's patrols finished an hour ago, so the current month has patrols from its
        // first hour on.
        let started = if day == 0 {
            now_ms - 60 * MINUTE_MS
        } else {
            morning - day * DAY_MS + rng.below(180) as i64 * MINUTE_MS
        };
        // About one patrol in twelve is cut short and does not count.
        let minutes = if rng.below(12) == 0 {
            4 + rng.below(4)
        } else {
            22 + rng.below(25)
        };
        let mut patrol = PatrolDoc::create(
            actor_for(10_000 + n * 100 + day as u64),
            &NewPatrol {
                system: asset.system,
                asset: asset.id.clone(),
                chief: chief.id.clone(),
                division: asset.division.clone(),
                device: format!("demo-gen-phone-{n}"),
                started_at_ms: started,
            },
        )?;
        let track: Vec<_> = walk_along(
            &asset.geometry,
            started,
            minutes as usize * 60,
            n * 1_000 + day as u64,
        )
        .into_iter()
        .step_by(FIX_EVERY)
        .collect();
        for chunk in track.chunks(track::CHUNK_POINTS) {
            patrol.append_track(chunk)?;
        }
        for item in sync_core::model::default_check_items()
            .iter()
            .filter(|c| c.system == asset.system)
        {
            patrol.set_check_item(&item.code, CheckResult::Ok, "", started + MINUTE_MS)?;
        }
        patrol.set_notes(if minutes < 10 {
            "临时有事，提前结束"
        } else {
            "巡查正常"
        })?;
        patrol.finish(track.last().map_or(started, |p| p.t_ms))?;
        walked.push(Walked {
            id: patrol.id().to_string(),
            track,
        });
        out.push(DemoDoc {
            id: patrol.id().to_string(),
            kind: DocKind::Patrol,
            bytes: patrol.save(),
        });
        day -= 3 + rng.below(3) as i64;
    }
    Ok(walked)
}

/// Problems by system: category and what the chief wrote.
const PROBLEMS: [(System, &str, &str); 18] = [
    (System::River, "river.garbage", "河面漂浮塑料瓶和泡沫"),
    (System::River, "river.outfall", "雨污混接口晴天有污水流出"),
    (System::River, "river.dumping", "岸坡堆放装修垃圾"),
    (System::River, "river.black_odorous", "支流入河口水体发黑"),
    (System::River, "river.encroachment", "沿河私搭菜园占用岸线"),
    (
        System::River,
        "river.illegal_building",
        "河道管理范围内新建彩钢棚",
    ),
    (System::River, "river.garbage", "闸口拦污栅垃圾堆积"),
    (System::River, "river.illegal_mining", "滩地有挖沙痕迹"),
    (
        System::Forest,
        "forest.fire_hazard",
        "林下枯枝落叶堆积，有焚烧痕迹",
    ),
    (System::Forest, "forest.illegal_logging", "林缘发现新伐树桩"),
    (System::Forest, "forest.pests", "杨树成片出现美国白蛾网幕"),
    (System::Forest, "forest.encroachment", "林地边缘被开垦种菜"),
    (System::Forest, "forest.fire_hazard", "防火通道被杂物堵塞"),
    (System::Field, "field.illegal_building", "耕地上新建看护房"),
    (
        System::Field,
        "field.non_agricultural",
        "基本农田内堆放建材",
    ),
    (System::Field, "field.abandonment", "地块连续两季未耕种"),
    (System::Field, "field.non_agricultural", "耕地取土形成深坑"),
    (System::Field, "field.illegal_building", "大棚内违规建房"),
];

/// Where an issue's life ends in the demo.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Reported,
    Accepted,
    Assigned,
    Overdue,
    Submitted,
    Reworking,
    Closed,
    Invalid,
    Duplicate,
}

const STAGES: [Stage; 12] = [
    Stage::Reported,
    Stage::Accepted,
    Stage::Assigned,
    Stage::Overdue,
    Stage::Submitted,
    Stage::Closed,
    Stage::Reworking,
    Stage::Closed,
    Stage::Invalid,
    Stage::Duplicate,
    Stage::Closed,
    Stage::Assigned,
];

/// A point `metres` east and north of `[lon, lat]`.
fn offset([lon, lat]: [f64; 2], east_m: f64, north_m: f64) -> [f64; 2] {
    let per_degree = 111_320.0;
    [
        lon + east_m / (per_degree * lat.to_radians().cos()),
        lat + north_m / per_degree,
    ]
}

/// Everything the district demo adds: patrols and issues as documents, and the photos the
/// issues reference.
pub fn build(
    facts: &DemoFacts,
    generated: &[DemoPerson],
    now_ms: i64,
    photos: &mut Vec<DemoPhoto>,
) -> Result<Vec<DemoDoc>, DocError> {
    let mut out = Vec::new();
    let find = |username: &str| {
        generated
            .iter()
            .map(|p| &p.user)
            .chain(facts.people.iter().map(|p| &p.user))
            .find(|u| u.username == username)
            .ok_or_else(|| DocError::Schema(format!("demo lacks {username}")))
    };
    let chiefs: Vec<(&User, &Asset)> = generated
        .iter()
        .filter_map(|p| match &p.user.role {
            Role::Chief { jurisdiction, .. } => {
                Some((&p.user, facts.asset(&jurisdiction.assets[0])?))
            }
            _ => None,
        })
        .collect();
    let mut walks = Vec::new();
    for (n, (chief, asset)) in chiefs.iter().enumerate() {
        walks.push(patrols_of(chief, asset, n as u64, now_ms, &mut out)?);
    }
    let mut rng = Rng(0xd15c_0de5);
    let mut originals: Vec<(System, String, [f64; 2])> = Vec::new();
    for i in 0..ISSUES {
        let stage = STAGES[i % STAGES.len()];
        // Spread over the chiefs of every system: the problem kinds cycle within the system.
        let (k, (chief, asset)) = chiefs
            .iter()
            .enumerate()
            .cycle()
            .nth(i * 7 % chiefs.len())
            .map(|(k, c)| (k, *c))
            .expect("generated chiefs");
        let kinds: Vec<_> = PROBLEMS.iter().filter(|p| p.0 == asset.system).collect();
        let (_, category, description) = *kinds[i % kinds.len()];
        let walk = &walks[k];
        // Newest issues on the latest patrols: the open ones are recent, the closed ones older.
        let recent = matches!(stage, Stage::Reported | Stage::Accepted | Stage::Submitted);
        let pick = if recent {
            walk.len().saturating_sub(1 + i % 3)
        } else {
            (i * 3) % walk.len().max(1)
        };
        let Some(patrol) = walk.get(pick) else {
            continue;
        };
        let fix = &patrol.track[patrol.track.len() * (1 + i % 3) / 4];
        let location = [fix.lon, fix.lat];
        let reported = fix.t_ms;
        let severity = [
            Severity::General,
            Severity::General,
            Severity::Urgent,
            Severity::Critical,
        ][i % 4];
        let mut issue = IssueDoc::report(
            actor_for(20_000 + i as u64),
            chief,
            &format!("demo-gen-phone-{k}"),
            reported,
            &NewIssue {
                system: asset.system,
                category: category.into(),
                severity,
                asset: asset.id.clone(),
                division: asset.division.clone(),
                location,
                description: description.into(),
                patrol: Some(patrol.id.clone()),
            },
        )?;
        for b in 0..1 + i % 2 {
            let at = offset(
                location,
                rng.unit() * 8.0 - 4.0,
                rng.unit() * 8.0 - 4.0 + 6.0 * b as f64,
            );
            let p = photo(
                asset.system,
                PhotoRole::Before,
                reported + 20_000 * b as i64,
                at,
                1_000 + 10 * i as u64 + b as u64,
                &chief.id,
            );
            issue.add_photo(&p.photo_ref)?;
            photos.push(p);
        }
        let office = find(match asset.system {
            System::River => SUPERVISOR,
            System::Forest => FOREST_OFFICE,
            System::Field => FIELD_OFFICE,
        })?;
        let (dept, handler) = department(asset.system, i);
        let handler = find(handler)?;
        let web = "demo-web";
        let step = |h: i64| reported + h * 60 * MINUTE_MS;
        let assign = |issue: &mut IssueDoc, days: i64| {
            issue.act(
                office,
                web,
                step(4),
                Action::Assigned {
                    assignee: Assignee::Department(dept.into()),
                    deadline_ms: reported + days * DAY_MS,
                },
            )
        };
        // The after photo: mostly taken where the before photo was, a few far away.
        let mut submit = |issue: &mut IssueDoc, h: i64, photos: &mut Vec<DemoPhoto>| {
            let far = i % 5 == 4;
            let at = if far {
                offset(location, 55.0 + rng.unit() * 30.0, 20.0)
            } else {
                offset(location, rng.unit() * 10.0 - 5.0, rng.unit() * 10.0 - 5.0)
            };
            let p = photo(
                asset.system,
                PhotoRole::After,
                step(h),
                at,
                1_000 + 10 * i as u64,
                &handler.id,
            );
            issue.add_photo(&p.photo_ref)?;
            let sha = p.photo_ref.sha256.clone();
            photos.push(p);
            issue.act(
                handler,
                "demo-gen-handler-phone",
                step(h),
                Action::RectificationSubmitted {
                    note: "已按要求整改完毕，附整改后照片".into(),
                    photos: vec![sha],
                },
            )
        };
        match stage {
            Stage::Reported => {}
            Stage::Accepted => {
                issue.act(office, web, step(2), Action::Accepted)?;
            }
            Stage::Assigned => {
                issue.act(office, web, step(2), Action::Accepted)?;
                assign(&mut issue, 30)?;
            }
            Stage::Overdue => {
                issue.act(office, web, step(2), Action::Accepted)?;
                assign(&mut issue, 3)?;
                if reported + 4 * DAY_MS < now_ms {
                    issue.act(
                        office,
                        web,
                        reported + 4 * DAY_MS,
                        Action::Escalated {
                            note: "超期未整改，请加快办理".into(),
                        },
                    )?;
                }
            }
            Stage::Submitted => {
                assign(&mut issue, 10)?;
                submit(&mut issue, 30, photos)?;
            }
            Stage::Reworking => {
                assign(&mut issue, 14)?;
                submit(&mut issue, 30, photos)?;
                issue.act(
                    office,
                    web,
                    step(40),
                    Action::Rejected {
                        reason: "整改不彻底，现场仍有残留".into(),
                    },
                )?;
            }
            Stage::Closed => {
                issue.act(office, web, step(2), Action::Accepted)?;
                assign(&mut issue, 7)?;
                submit(&mut issue, 48, photos)?;
                issue.act(
                    office,
                    web,
                    step(60),
                    Action::Verified {
                        note: "现场核查通过，予以销号".into(),
                    },
                )?;
            }
            Stage::Invalid => {
                issue.act(
                    office,
                    web,
                    step(3),
                    Action::Invalidated {
                        reason: "现场核实不属于问题，属正常作业".into(),
                    },
                )?;
            }
            Stage::Duplicate => match originals.iter().find(|(s, _, _)| *s == asset.system) {
                Some((_, original, _)) => {
                    issue.act(
                        office,
                        web,
                        step(3),
                        Action::DuplicateOf {
                            issue: original.clone(),
                        },
                    )?;
                }
                None => {
                    issue.act(office, web, step(3), Action::Accepted)?;
                }
            },
        }
        originals.push((asset.system, issue.id().to_string(), location));
        out.push(DemoDoc {
            id: issue.id().to_string(),
            kind: DocKind::Issue,
            bytes: issue.save(),
        });
    }
    Ok(out)
}
