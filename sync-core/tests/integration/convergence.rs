//! Replicas that edit the same patrol and issue offline, then receive each other's changes in a
//! random order with duplicates, end with identical documents and identical workflow state.

use automerge::Change;
use proptest::prelude::*;
use sync_core::doc::{actor_for, IssueDoc, PatrolDoc, Record};
use sync_core::model::{CheckResult, Severity, User};
use sync_core::workflow::{Action, Assignee};

use crate::fixtures::*;

#[derive(Debug, Clone)]
enum Op {
    Describe(u8),
    Severity(u8),
    Notes(u8),
    Check(u8, u8),
    Act(u8, u8),
    /// Merge everything another replica holds, as a partial sync would.
    Sync(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => any::<u8>().prop_map(Op::Describe),
        1 => any::<u8>().prop_map(Op::Severity),
        1 => any::<u8>().prop_map(Op::Notes),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Check(a, b)),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Act(a, b)),
        2 => any::<u8>().prop_map(Op::Sync),
    ]
}

fn action(n: u8) -> Action {
    match n % 9 {
        0 => Action::Accepted,
        1 => Action::Assigned {
            assignee: Assignee::Department("区水务局".into()),
            deadline_ms: T0 + 86_400_000 * i64::from(n % 5 + 1),
        },
        2 => Action::RectificationSubmitted {
            note: format!("整改 {n}"),
            photos: vec![format!("{:064x}", n)],
        },
        3 => Action::Verified {
            note: "通过".into(),
        },
        4 => Action::Rejected {
            reason: format!("不合格 {n}"),
        },
        5 => Action::Invalidated {
            reason: "非本河段".into(),
        },
        6 => Action::Escalated {
            note: "督办".into(),
        },
        7 => Action::Reopened {
            reason: "复发".into(),
        },
        _ => Action::Comment {
            text: format!("意见 {n}"),
        },
    }
}

struct Replica {
    issue: IssueDoc,
    patrol: PatrolDoc,
}

impl Replica {
    fn apply(&mut self, n: usize, op: &Op, others: &mut [Replica]) {
        let users: [User; 3] = [chief(), supervisor(), handler()];
        let at = T0 + 1_000 * n as i64;
        match *op {
            Op::Describe(k) => self
                .issue
                .set_description(&format!("河面垃圾 {k}"))
                .unwrap(),
            Op::Severity(k) => {
                let severity =
                    [Severity::General, Severity::Urgent, Severity::Critical][k as usize % 3];
                self.issue.set_severity(severity).unwrap();
            }
            Op::Notes(k) => self.patrol.set_notes(&format!("巡查记录 {k}")).unwrap(),
            Op::Check(item, result) => {
                let items = ["river.water_color", "river.outfalls", "river.banks"];
                let results = [
                    CheckResult::Ok,
                    CheckResult::Problem,
                    CheckResult::NotApplicable,
                ];
                self.patrol
                    .set_check_item(
                        items[item as usize % 3],
                        results[result as usize % 3],
                        "",
                        at,
                    )
                    .unwrap();
            }
            Op::Act(user, kind) => {
                // A refused action is a typed error on the device and leaves nothing behind.
                let _ = self
                    .issue
                    .act(&users[user as usize % 3], "d", at, action(kind));
            }
            Op::Sync(from) => {
                let from = &mut others[from as usize % others.len()];
                self.issue.merge(&mut from.issue).unwrap();
                self.patrol.merge(&mut from.patrol).unwrap();
            }
        }
    }
}

fn raw_changes(doc: &mut automerge::AutoCommit) -> Vec<Vec<u8>> {
    doc.get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

fn shuffle<T>(items: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_whatever_the_delivery_order(
        replicas in 2usize..=5,
        ops in prop::collection::vec((any::<u8>(), op()), 1..60),
        seed in any::<u64>(),
        duplicates in 0usize..20,
    ) {
        let mut origin = IssueDoc::report(actor_for(1), &chief(), "phone-1", T0, &new_issue()).unwrap();
        let mut patrol = PatrolDoc::create(actor_for(1), &new_patrol()).unwrap();
        let (issue_bytes, patrol_bytes) = (origin.save(), patrol.save());
        let mut all: Vec<Replica> = (0..replicas)
            .map(|i| Replica {
                issue: IssueDoc::load(&issue_bytes).unwrap().with_actor(actor_for(i as u64 + 1)),
                patrol: PatrolDoc::load(&patrol_bytes).unwrap().with_actor(actor_for(i as u64 + 1)),
            })
            .collect();

        for (n, (who, op)) in ops.iter().enumerate() {
            let at = *who as usize % replicas;
            let mut me = all.remove(at);
            me.apply(n, op, &mut all);
            all.insert(at, me);
        }

        // Every change anyone made, in a random order, some of them twice.
        let mut issue_changes = Vec::new();
        let mut patrol_changes = Vec::new();
        for replica in &mut all {
            issue_changes.extend(raw_changes(replica.issue.am_mut()));
            patrol_changes.extend(raw_changes(replica.patrol.am_mut()));
        }
        for i in 0..duplicates.min(issue_changes.len()) {
            issue_changes.push(issue_changes[i].clone());
        }
        for (i, replica) in all.iter_mut().enumerate() {
            let mut issue_order = issue_changes.clone();
            let mut patrol_order = patrol_changes.clone();
            shuffle(&mut issue_order, seed.wrapping_add(i as u64));
            shuffle(&mut patrol_order, seed.wrapping_mul(31).wrapping_add(i as u64));
            for raw in issue_order {
                replica.issue.am_mut().apply_changes([Change::from_bytes(raw).unwrap()]).unwrap();
            }
            for raw in patrol_order {
                replica.patrol.am_mut().apply_changes([Change::from_bytes(raw).unwrap()]).unwrap();
            }
        }

        let first_heads = (all[0].issue.heads(), all[0].patrol.heads());
        let first_state = all[0].issue.state().unwrap();
        let first_views = (all[0].issue.view().unwrap(), all[0].patrol.view().unwrap());
        for replica in &mut all[1..] {
            prop_assert_eq!(&(replica.issue.heads(), replica.patrol.heads()), &first_heads);
            prop_assert_eq!(&replica.issue.state().unwrap(), &first_state);
            prop_assert_eq!(&(replica.issue.view().unwrap(), replica.patrol.view().unwrap()), &first_views);
        }
        prop_assert!(first_state.status.is_some());
    }
}
