//! Division code lists (统计用区划代码): `代码, 名称` rows. A row's parent follows from its code
//! (a village's subdistrict, a subdistrict's district) and must be on record or earlier in the
//! same list.

use std::collections::HashMap;

use super::{Outcome, PlanRow};
use crate::model::{Division, DivisionCode, Level};

/// The enclosing division a code implies; `None` for a district.
pub fn implied_parent(code: &DivisionCode) -> Option<DivisionCode> {
    let s = code.as_str();
    let parent = match code.level() {
        Level::District => return None,
        Level::Subdistrict => format!("{}000000", &s[..6]),
        Level::Village => format!("{}000", &s[..9]),
    };
    DivisionCode::new(parent).ok()
}

/// Plans a code list `(row number, code, name)` against the divisions on record.
pub fn plan_divisions(
    rows: &[(usize, String, String)],
    existing: &[Division],
) -> Vec<PlanRow<Division>> {
    let mut known: HashMap<String, Division> = existing
        .iter()
        .map(|d| (d.code.as_str().to_owned(), d.clone()))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut plan = Vec::new();
    for (row, code, name) in rows {
        let (code, name) = (code.trim(), name.trim());
        let mut reasons = Vec::new();
        let parsed = DivisionCode::new(code).ok();
        if parsed.is_none() {
            reasons.push(format!("区划代码“{code}”不是12位数字"));
        }
        if name.is_empty() {
            reasons.push("缺少名称".into());
        }
        if let Some(first) = seen.get(code) {
            reasons.push(format!("与第{first}行的代码重复"));
        }
        seen.entry(code.to_owned()).or_insert(*row);
        let label = format!("{name}（{code}）");
        let Some(code) = parsed.filter(|_| reasons.is_empty()) else {
            plan.push(PlanRow {
                row: *row,
                label,
                outcome: Outcome::Refused { reasons },
                warning: None,
            });
            continue;
        };
        let parent = implied_parent(&code);
        if let Some(p) = &parent {
            if !known.contains_key(p.as_str()) {
                plan.push(PlanRow {
                    row: *row,
                    label,
                    outcome: Outcome::Refused {
                        reasons: vec![format!("上级区划 {p} 不存在（须已登记或在本表前面）")],
                    },
                    warning: None,
                });
                continue;
            }
        }
        let after = Division {
            code: code.clone(),
            name: name.to_owned(),
            parent,
        };
        let outcome = match known.get(code.as_str()) {
            Some(before) if *before == after => Outcome::Unchanged,
            Some(before) => Outcome::Change {
                before: before.clone(),
                after: after.clone(),
            },
            None => Outcome::Create {
                after: after.clone(),
            },
        };
        known.insert(code.as_str().to_owned(), after);
        plan.push(PlanRow {
            row: *row,
            label,
            outcome,
            warning: None,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, code: &str, name: &str) -> (usize, String, String) {
        (n, code.into(), name.into())
    }

    #[test]
    fn parents_follow_codes_and_unknown_parents_are_refused() {
        let rows = [
            row(2, "370105000000", "天桥区"),
            row(3, "370105014000", "桑梓店街道"),
            row(4, "370105014201", "小寨村"),
            row(5, "370105099201", "无上级村"),
            row(6, "3701", "坏代码"),
            row(7, "370105014201", "重复村"),
        ];
        let plan = plan_divisions(&rows, &[]);
        assert!(matches!(plan[0].outcome, Outcome::Create { .. }));
        let Outcome::Create { after } = &plan[2].outcome else {
            panic!("{:?}", plan[2]);
        };
        assert_eq!(after.parent.as_ref().unwrap().as_str(), "370105014000");
        assert!(plan[3].outcome.is_refused());
        assert!(plan[4].outcome.is_refused());
        assert!(plan[5].outcome.is_refused());
        // Once on record, the same list changes nothing.
        let stored: Vec<Division> = plan
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Create { after } => Some(after.clone()),
                _ => None,
            })
            .collect();
        let again = plan_divisions(&rows[..3], &stored);
        assert!(again.iter().all(|r| r.outcome == Outcome::Unchanged));
    }
}
