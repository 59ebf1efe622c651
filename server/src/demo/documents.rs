//! Sample patrols and issues for the demo, built with sync-core's document API exactly as the
//! phones and the web would build them: three weeks of patrols with 1 Hz tracks along the
//! chiefs' assets (a few deliberately too short), and river issues in every workflow state, so
//! the dashboard and statistics show real content on first start.

use sync_core::doc::{
    self, actor_for, DocError, DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record,
};
use sync_core::model::{Asset, CheckResult, PhotoRole, Severity, User};
use sync_core::track::{self, walk_along};
use sync_core::workflow::{Action, Assignee};

use super::photos::{photo as painted, DemoPhoto};
use super::{DemoFacts, CHIEF, CHIEF_2, FIELD_CHIEF, FOREST_CHIEF, HANDLER, SUPERVISOR};

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// One sample document, ready to store.
#[derive(Debug, Clone)]
pub struct DemoDoc {
    pub id: String,
    pub kind: DocKind,
    pub bytes: Vec<u8>,
}

fn person<'a>(facts: &'a DemoFacts, username: &str) -> Result<&'a User, DocError> {
    facts
        .user(username)
        .ok_or_else(|| DocError::Schema(format!("demo lacks {username}")))
}

fn first_asset<'a>(facts: &'a DemoFacts, user: &User) -> Result<&'a Asset, DocError> {
    let assets = match &user.role {
        sync_core::model::Role::Chief { jurisdiction, .. } => &jurisdiction.assets,
        _ => return Err(DocError::Schema(format!("{} is not a chief", user.id))),
    };
    assets
        .iter()
        .find_map(|id| facts.asset(id))
        .ok_or_else(|| DocError::Schema(format!("{} has no asset", user.id)))
}

/// Every chief with a login patrols twice a week for three weeks; the second patrol of the
/// middle week is cut short, so the statistics have an invalid patrol to explain.
fn patrols(facts: &DemoFacts, now_ms: i64, out: &mut Vec<DemoDoc>) -> Result<(), DocError> {
    for (n, username) in [CHIEF, CHIEF_2, FOREST_CHIEF, FIELD_CHIEF]
        .iter()
        .enumerate()
    {
        let chief = person(facts, username)?;
        let asset = first_asset(facts, chief)?;
        for k in 0..6u64 {
            let started =
                now_ms - (21 - 3 * k as i64) * DAY_MS + (8 * 60 + 17 * n as i64) * MINUTE_MS;
            let minutes = if k == 3 { 6 } else { 25 + 5 * (k as usize % 3) };
            let mut patrol = PatrolDoc::create(
                actor_for(100 + n as u64),
                &NewPatrol {
                    system: asset.system,
                    asset: asset.id.clone(),
                    chief: chief.id.clone(),
                    division: asset.division.clone(),
                    device: format!("demo-phone-{n}"),
                    started_at_ms: started,
                },
            )?;
            let walk = walk_along(&asset.geometry, started, minutes * 60, 1_000 * n as u64 + k);
            for chunk in walk.chunks(track::CHUNK_POINTS) {
                patrol.append_track(chunk)?;
            }
            for item in sync_core::model::default_check_items()
                .iter()
                .filter(|c| c.system == asset.system)
            {
                patrol.set_check_item(&item.code, CheckResult::Ok, "", started + MINUTE_MS)?;
            }
            patrol.set_notes(if k == 3 {
                "雨大，提前结束巡查"
            } else {
                "巡查正常"
            })?;
            let ended = walk.last().map_or(started, |p| p.t_ms);
            patrol.finish(ended)?;
            out.push(DemoDoc {
                id: patrol.id().to_string(),
                kind: DocKind::Patrol,
                bytes: patrol.save(),
            });
        }
    }
    Ok(())
}

/// The steps a river issue goes through to reach each workflow state.
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
    Reopened,
}

const STAGES: [(Stage, &str, Severity, &str); 10] = [
    (
        Stage::Reported,
        "river.garbage",
        Severity::General,
        "河面漂浮生活垃圾约10平方米",
    ),
    (
        Stage::Accepted,
        "river.outfall",
        Severity::Urgent,
        "岸边新增一处排污口，有异味",
    ),
    (
        Stage::Assigned,
        "river.dumping",
        Severity::General,
        "河道管理范围内堆放建筑垃圾",
    ),
    (
        Stage::Overdue,
        "river.black_odorous",
        Severity::Critical,
        "局部水体发黑发臭",
    ),
    (
        Stage::Submitted,
        "river.garbage",
        Severity::General,
        "桥下淤积塑料袋",
    ),
    (
        Stage::Reworking,
        "river.encroachment",
        Severity::Urgent,
        "岸线被临时摊位占用",
    ),
    (
        Stage::Closed,
        "river.garbage",
        Severity::General,
        "护栏内侧垃圾堆积",
    ),
    (
        Stage::Invalid,
        "river.illegal_mining",
        Severity::General,
        "疑似采砂，现场核实为正常清淤",
    ),
    (
        Stage::Duplicate,
        "river.garbage",
        Severity::General,
        "河面漂浮垃圾（重复上报）",
    ),
    (
        Stage::Reopened,
        "river.outfall",
        Severity::Urgent,
        "排污口整改后再次排放",
    ),
];

/// The river issues in every state. With `photos`, each gets a painted before photo and each
/// rectification a painted after photo (the district demo); without, the rectifications name
/// photos that never arrive (the small demo the tests start from).
fn issues(
    facts: &DemoFacts,
    now_ms: i64,
    out: &mut Vec<DemoDoc>,
    mut photos: Option<&mut Vec<DemoPhoto>>,
) -> Result<(), DocError> {
    let supervisor = person(facts, SUPERVISOR)?;
    let handler = person(facts, HANDLER)?;
    let mut first_id = None;
    for (i, (stage, category, severity, description)) in STAGES.into_iter().enumerate() {
        let chief = person(facts, if i % 2 == 0 { CHIEF } else { CHIEF_2 })?;
        let asset = first_asset(facts, chief)?;
        let reported = now_ms - (18 - i as i64) * DAY_MS;
        let at = walk_along(&asset.geometry, reported, 120 + 30 * i, i as u64)
            .last()
            .map_or([0.0, 0.0], |p| [p.lon, p.lat]);
        let mut issue = IssueDoc::report(
            actor_for(200 + i as u64),
            chief,
            "demo-phone",
            reported,
            &NewIssue {
                system: asset.system,
                category: category.into(),
                severity,
                asset: asset.id.clone(),
                division: asset.division.clone(),
                location: at,
                description: description.into(),
                patrol: None,
            },
        )?;
        let web = "demo-web";
        let deadline = |days: i64| reported + days * DAY_MS;
        let step = |n: i64| reported + n * 6 * 60 * MINUTE_MS;
        let assign = |issue: &mut IssueDoc, days: i64| {
            issue.act(
                supervisor,
                web,
                step(2),
                Action::Assigned {
                    assignee: Assignee::Department("区水务局".into()),
                    deadline_ms: deadline(days),
                },
            )
        };
        let mut photo = format!("{:064x}", 0xdead_0000_u64 + i as u64);
        if let Some(photos) = photos.as_deref_mut() {
            let before = painted(
                asset.system,
                PhotoRole::Before,
                reported,
                at,
                i as u64,
                &chief.id,
            );
            issue.add_photo(&before.photo_ref)?;
            photos.push(before);
            if matches!(
                stage,
                Stage::Submitted | Stage::Reworking | Stage::Closed | Stage::Reopened
            ) {
                let near = [at[0] + 0.00004 * (i % 3) as f64, at[1] + 0.00003];
                let submitted = reported + 8 * 6 * 60 * MINUTE_MS;
                let after = painted(
                    asset.system,
                    PhotoRole::After,
                    submitted,
                    near,
                    i as u64,
                    &handler.id,
                );
                issue.add_photo(&after.photo_ref)?;
                photo = after.photo_ref.sha256.clone();
                photos.push(after);
            }
        }
        let submit = |issue: &mut IssueDoc, n: i64| {
            issue.act(
                handler,
                "demo-handler-phone",
                step(n),
                Action::RectificationSubmitted {
                    note: "已按要求整改".into(),
                    photos: vec![photo.clone()],
                },
            )
        };
        match stage {
            Stage::Reported => {}
            Stage::Accepted => {
                issue.act(supervisor, web, step(1), Action::Accepted)?;
            }
            Stage::Assigned => {
                issue.act(supervisor, web, step(1), Action::Accepted)?;
                assign(&mut issue, 30)?;
            }
            Stage::Overdue => {
                assign(&mut issue, 5)?;
                issue.act(
                    supervisor,
                    web,
                    deadline(6),
                    Action::Escalated {
                        note: "超期未整改，督办".into(),
                    },
                )?;
            }
            Stage::Submitted => {
                assign(&mut issue, 20)?;
                submit(&mut issue, 8)?;
            }
            Stage::Reworking => {
                assign(&mut issue, 20)?;
                submit(&mut issue, 6)?;
                issue.act(
                    supervisor,
                    web,
                    step(9),
                    Action::Rejected {
                        reason: "现场仍有摊位，整改不到位".into(),
                    },
                )?;
            }
            Stage::Closed | Stage::Reopened => {
                issue.act(supervisor, web, step(1), Action::Accepted)?;
                assign(&mut issue, 7)?;
                submit(&mut issue, 8)?;
                issue.act(
                    supervisor,
                    web,
                    step(10),
                    Action::Verified {
                        note: "现场核查通过，销号".into(),
                    },
                )?;
                if matches!(stage, Stage::Reopened) {
                    issue.act(
                        supervisor,
                        web,
                        step(20),
                        Action::Reopened {
                            reason: "群众12369投诉再次排放".into(),
                        },
                    )?;
                }
            }
            Stage::Invalid => {
                issue.act(
                    supervisor,
                    web,
                    step(1),
                    Action::Invalidated {
                        reason: "现场核实为正常河道清淤".into(),
                    },
                )?;
            }
            Stage::Duplicate => {
                let original = first_id.clone().unwrap_or_default();
                issue.act(
                    supervisor,
                    web,
                    step(1),
                    Action::DuplicateOf { issue: original },
                )?;
            }
        }
        if i == 0 {
            first_id = Some(issue.id().to_string());
        }
        out.push(DemoDoc {
            id: issue.id().to_string(),
            kind: DocKind::Issue,
            bytes: issue.save(),
        });
    }
    Ok(())
}

/// Builds every sample document, relative to `now_ms`; with `photos`, the issues' photos are
/// painted and collected there.
pub fn build(
    facts: &DemoFacts,
    now_ms: i64,
    photos: Option<&mut Vec<DemoPhoto>>,
) -> Result<Vec<DemoDoc>, DocError> {
    let mut out = Vec::new();
    patrols(facts, now_ms, &mut out)?;
    issues(facts, now_ms, &mut out, photos)?;
    // Every document must load back as what it claims to be.
    for d in &out {
        let (_, header) = doc::load(&d.bytes)?;
        debug_assert_eq!(header.kind, d.kind);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use sync_core::workflow::Status;

    #[test]
    fn the_demo_has_patrols_and_issues_in_every_state() {
        let docs = build(&crate::demo::facts(), 1_764_288_000_000, None).unwrap();
        let mut statuses = BTreeSet::new();
        let mut escalated = false;
        let mut invalid_patrols = 0;
        for d in &docs {
            match d.kind {
                DocKind::Issue => {
                    let state = IssueDoc::load(&d.bytes).unwrap().state().unwrap();
                    assert!(state.timeline.iter().all(|e| e.superseded.is_none()));
                    escalated |= state.escalations > 0;
                    statuses.insert(state.status.unwrap().as_str());
                }
                DocKind::Patrol => {
                    let patrol = PatrolDoc::load(&d.bytes).unwrap();
                    let points = patrol.track().unwrap();
                    let check = sync_core::rules::validate(
                        &points,
                        None,
                        false,
                        &sync_core::rules::PatrolRules::default(),
                    );
                    invalid_patrols += usize::from(!check.is_valid());
                }
            }
        }
        let all: BTreeSet<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(statuses, all);
        assert!(escalated);
        assert_eq!(invalid_patrols, 4, "one short patrol per chief");
        assert_eq!(
            docs.iter().filter(|d| d.kind == DocKind::Patrol).count(),
            24
        );
    }
}
