//! The chief roster (河长名录): one row per chief with the template's seven columns. A row names
//! its division and assets by name (or a division by its code), never by internal id; the
//! person is identified by the 手机号 column, which is their username.
//!
//! Refusals: a missing name, an unknown level or system, a division not on record, a level that
//! does not match the division, an asset not on record (or of another system, or outside the
//! division), a phone number that is not 11 digits, a person listed twice, an account of that
//! number that is not a chief, a chief whose account is stopped (a roster never restarts one).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{split_names, Outcome, PlanRow};
use crate::model::{Asset, Division, DivisionCode, Jurisdiction, Level, Role, System, User};

/// The template's column titles, in order.
pub const COLUMNS: [&str; 7] = [
    "姓名",
    "职务",
    "层级",
    "体系",
    "行政区划",
    "负责河段/林区/网格",
    "手机号",
];

/// One row as read from the file, cells trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRow {
    pub name: String,
    pub post: String,
    pub level: String,
    pub system: String,
    pub division: String,
    pub assets: String,
    pub phone: String,
}

impl RosterRow {
    /// From the seven cells in template order (missing cells are blank).
    pub fn from_cells(cells: &[String]) -> Self {
        let cell = |i: usize| {
            cells
                .get(i)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            name: cell(0),
            post: cell(1),
            level: cell(2),
            system: cell(3),
            division: cell(4),
            assets: cell(5),
            phone: cell(6),
        }
    }

    pub fn cells(&self) -> [&str; 7] {
        [
            &self.name,
            &self.post,
            &self.level,
            &self.system,
            &self.division,
            &self.assets,
            &self.phone,
        ]
    }
}

/// A chief as the roster describes them, with ids resolved and names for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chief {
    /// The phone number, which is the username.
    pub username: String,
    pub display_name: String,
    pub post: String,
    pub role: Role,
    pub division_name: String,
    pub asset_names: Vec<String>,
}

/// A chief on record: the account and their post.
#[derive(Debug, Clone)]
pub struct OnRecord<'a> {
    pub user: &'a User,
    pub post: &'a str,
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::District => "区级",
        Level::Subdistrict => "街道级",
        Level::Village => "村级",
    }
}

pub fn parse_level(s: &str) -> Option<Level> {
    match s.trim() {
        "区级" | "区" | "县级" | "县" | "district" => Some(Level::District),
        "街道级" | "街道" | "乡镇级" | "镇级" | "乡级" | "乡镇" | "subdistrict" => {
            Some(Level::Subdistrict)
        }
        "村级" | "村" | "社区" | "村（社区）级" | "village" => Some(Level::Village),
        _ => None,
    }
}

pub fn parse_system(s: &str) -> Option<System> {
    match s.trim() {
        "河长" | "河长制" | "河湖长" | "河湖长制" | "river" => Some(System::River),
        "林长" | "林长制" | "forest" => Some(System::Forest),
        "田长" | "田长制" | "field" => Some(System::Field),
        _ => None,
    }
}

/// Divisions and assets on record, looked up by name.
#[derive(Debug)]
pub struct Places<'a> {
    divisions: HashMap<&'a str, &'a Division>,
    by_name: HashMap<&'a str, Vec<&'a Division>>,
    assets: HashMap<&'a str, &'a Asset>,
    assets_by_name: HashMap<(System, &'a str), Vec<&'a Asset>>,
}

impl<'a> Places<'a> {
    pub fn new(divisions: &'a [Division], assets: &'a [Asset]) -> Self {
        let mut by_name: HashMap<&str, Vec<&Division>> = HashMap::new();
        for d in divisions {
            by_name.entry(d.name.as_str()).or_default().push(d);
        }
        let mut assets_by_name: HashMap<(System, &str), Vec<&Asset>> = HashMap::new();
        for a in assets {
            assets_by_name
                .entry((a.system, a.name.as_str()))
                .or_default()
                .push(a);
        }
        Self {
            divisions: divisions.iter().map(|d| (d.code.as_str(), d)).collect(),
            by_name,
            assets: assets.iter().map(|a| (a.id.as_str(), a)).collect(),
            assets_by_name,
        }
    }

    pub fn division(&self, code: &DivisionCode) -> Option<&'a Division> {
        self.divisions.get(code.as_str()).copied()
    }

    /// A division named by its 12-digit code, its name when no other division has it, or a path
    /// of names from an enclosing division (`桑梓店街道/小寨村`).
    pub fn resolve_division(&self, cell: &str) -> Result<&'a Division, String> {
        let cell = cell.trim();
        if cell.is_empty() {
            return Err("缺少行政区划".into());
        }
        if let Ok(code) = DivisionCode::new(cell) {
            return self
                .division(&code)
                .ok_or_else(|| format!("行政区划代码 {cell} 未登记"));
        }
        let parts: Vec<&str> = cell
            .split(['/', '／', '>', '＞'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let Some(last) = parts.last() else {
            return Err("缺少行政区划".into());
        };
        let candidates: Vec<&Division> = self
            .by_name
            .get(last)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|d| self.path_ends_with(d, &parts))
                    .collect()
            })
            .unwrap_or_default();
        match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("行政区划“{cell}”未登记")),
            _ => Err(format!("行政区划“{cell}”有重名，请写上级，如“街道/村”")),
        }
    }

    fn path_ends_with(&self, d: &Division, parts: &[&str]) -> bool {
        let mut current = Some(d);
        for part in parts.iter().rev() {
            match current {
                Some(c) if c.name == *part => {
                    current = c.parent.as_ref().and_then(|p| self.division(p));
                }
                _ => return false,
            }
        }
        true
    }

    /// How a division is written in the roster: its name, or with its parent when the name
    /// alone is ambiguous.
    pub fn division_label(&self, code: &DivisionCode) -> String {
        let Some(d) = self.division(code) else {
            return code.to_string();
        };
        if self.by_name.get(d.name.as_str()).map_or(0, Vec::len) <= 1 {
            return d.name.clone();
        }
        match d.parent.as_ref().and_then(|p| self.division(p)) {
            Some(parent) => format!("{}/{}", parent.name, d.name),
            None => d.code.to_string(),
        }
    }

    pub fn asset_name(&self, id: &str) -> String {
        self.assets
            .get(id)
            .map_or_else(|| id.to_owned(), |a| a.name.clone())
    }

    /// The assets a cell names, each of `system` and inside `division`.
    pub fn resolve_assets(
        &self,
        system: System,
        division: &Division,
        cell: &str,
    ) -> Result<Vec<&'a Asset>, Vec<String>> {
        let mut found = Vec::new();
        let mut reasons = Vec::new();
        for name in split_names(cell) {
            let named = self
                .assets_by_name
                .get(&(system, name.as_str()))
                .cloned()
                .unwrap_or_default();
            let inside: Vec<&Asset> = named
                .iter()
                .copied()
                .filter(|a| division.code.contains(&a.division))
                .collect();
            match (named.len(), inside.as_slice()) {
                (0, _) => {
                    let other = System::ALL
                        .into_iter()
                        .any(|s| self.assets_by_name.contains_key(&(s, name.as_str())));
                    reasons.push(if other {
                        format!("“{name}”不属于{}体系", system.chief_title())
                    } else {
                        format!("“{name}”未登记")
                    });
                }
                (_, []) => reasons.push(format!("“{name}”不在{}内", division.name)),
                (_, [one]) => found.push(*one),
                _ => reasons.push(format!("“{name}”在{}内有重名", division.name)),
            }
        }
        if reasons.is_empty() {
            Ok(found)
        } else {
            Err(reasons)
        }
    }

    /// The roster row of a chief on record (for the export).
    pub fn row_of(&self, user: &User, post: &str) -> Option<RosterRow> {
        let Role::Chief {
            system,
            level,
            jurisdiction,
        } = &user.role
        else {
            return None;
        };
        Some(RosterRow {
            name: user.display_name.clone(),
            post: post.to_owned(),
            level: level_name(*level).into(),
            system: system.chief_title().into(),
            division: self.division_label(&jurisdiction.division),
            assets: jurisdiction
                .assets
                .iter()
                .map(|id| self.asset_name(id))
                .collect::<Vec<_>>()
                .join("、"),
            phone: user.username.clone(),
        })
    }

    fn chief_of(&self, user: &User, post: &str) -> Option<Chief> {
        let Role::Chief { jurisdiction, .. } = &user.role else {
            return None;
        };
        Some(Chief {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            post: post.to_owned(),
            role: user.role.clone(),
            division_name: self.division_label(&jurisdiction.division),
            asset_names: jurisdiction
                .assets
                .iter()
                .map(|id| self.asset_name(id))
                .collect(),
        })
    }
}

fn valid_phone(s: &str) -> bool {
    s.len() == 11 && s.starts_with('1') && s.bytes().all(|b| b.is_ascii_digit())
}

/// Plans a roster `(row number, row)` against the accounts on record (keyed by username,
/// case-insensitively).
pub fn plan_roster(
    rows: &[(usize, RosterRow)],
    places: &Places<'_>,
    on_record: &HashMap<String, OnRecord<'_>>,
) -> Vec<PlanRow<Chief>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut plan = Vec::with_capacity(rows.len());
    for (number, row) in rows {
        let mut reasons = Vec::new();
        if row.name.is_empty() {
            reasons.push("缺少姓名".to_owned());
        }
        let level = parse_level(&row.level);
        if level.is_none() {
            reasons.push(format!("层级“{}”应为区级、街道级或村级", row.level));
        }
        let system = parse_system(&row.system);
        if system.is_none() {
            reasons.push(format!("体系“{}”应为河长、林长或田长", row.system));
        }
        let key = row.phone.to_lowercase();
        let existing = on_record.get(&key);
        if existing.is_none() && !valid_phone(&row.phone) {
            reasons.push(format!("手机号“{}”应为11位数字", row.phone));
        }
        if let Some(first) = seen.get(&key) {
            reasons.push(format!("与第{first}行是同一人（手机号重复）"));
        } else if !row.phone.is_empty() {
            seen.insert(key.clone(), *number);
        }
        if let Some(e) = existing {
            if !matches!(e.user.role, Role::Chief { .. }) {
                reasons.push(format!("手机号“{}”已是非河湖林田长账号", row.phone));
            } else if !e.user.active {
                // A roster never brings a stopped account back: it may have been stopped for a
                // reason the roster cannot know, and it still holds its old password.
                reasons.push(format!(
                    "{}的账号已停用；名录不会重新启用账号，请先在“人员”中启用",
                    e.user.display_name
                ));
            }
        }
        let division = match places.resolve_division(&row.division) {
            Ok(d) => Some(d),
            Err(reason) => {
                reasons.push(reason);
                None
            }
        };
        if let (Some(level), Some(d)) = (level, division) {
            if d.level() != level {
                reasons.push(format!(
                    "{}是{}区划，与层级“{}”不符",
                    d.name,
                    level_name(d.level()).trim_end_matches('级'),
                    row.level
                ));
            }
        }
        let mut assets = Vec::new();
        if let (Some(system), Some(d)) = (system, division) {
            match places.resolve_assets(system, d, &row.assets) {
                Ok(found) => assets = found,
                Err(more) => reasons.extend(more),
            }
        }
        let label = format!("{}（{}）", row.name, row.phone);
        let (Some(level), Some(system), Some(division), true) =
            (level, system, division, reasons.is_empty())
        else {
            plan.push(PlanRow {
                row: *number,
                label,
                outcome: Outcome::Refused { reasons },
                warning: None,
            });
            continue;
        };
        let after = Chief {
            username: existing.map_or_else(|| row.phone.clone(), |e| e.user.username.clone()),
            display_name: row.name.clone(),
            post: row.post.clone(),
            role: Role::Chief {
                system,
                level,
                jurisdiction: Jurisdiction {
                    division: division.code.clone(),
                    assets: assets.iter().map(|a| a.id.clone()).collect(),
                },
            },
            division_name: places.division_label(&division.code),
            asset_names: assets.iter().map(|a| a.name.clone()).collect(),
        };
        let outcome = match existing.and_then(|e| places.chief_of(e.user, e.post)) {
            Some(before) if before == after => Outcome::Unchanged,
            Some(before) => Outcome::Change { before, after },
            None => Outcome::Create { after },
        };
        plan.push(PlanRow {
            row: *number,
            label,
            outcome,
            warning: None,
        });
    }
    plan
}

/// A chief on record whom a newer roster no longer lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    pub user_id: String,
    #[serde(flatten)]
    pub chief: Chief,
}

/// The active chiefs on record that a roster leaves out, among the systems the roster covers:
/// a roster of river chiefs says nothing about forest chiefs. They are not deactivated by the
/// import itself; the office decides (the import may deactivate them when asked to).
pub fn missing_from_roster(
    rows: &[(usize, RosterRow)],
    places: &Places<'_>,
    on_record: &HashMap<String, OnRecord<'_>>,
) -> Vec<Missing> {
    let systems: Vec<System> = rows
        .iter()
        .filter_map(|(_, r)| parse_system(&r.system))
        .collect();
    let listed: std::collections::HashSet<String> =
        rows.iter().map(|(_, r)| r.phone.to_lowercase()).collect();
    let mut missing: Vec<Missing> = on_record
        .iter()
        .filter(|(key, r)| {
            r.user.active
                && !listed.contains(*key)
                && matches!(&r.user.role, Role::Chief { system, .. } if systems.contains(system))
        })
        .filter_map(|(_, r)| {
            places.chief_of(r.user, r.post).map(|chief| Missing {
                user_id: r.user.id.clone(),
                chief,
            })
        })
        .collect();
    missing.sort_by(|a, b| {
        (&a.chief.division_name, &a.chief.username)
            .cmp(&(&b.chief.division_name, &b.chief.username))
    });
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Geometry;

    fn code(s: &str) -> DivisionCode {
        DivisionCode::new(s).unwrap()
    }

    fn places() -> (Vec<Division>, Vec<Asset>) {
        let d = |c: &str, n: &str, p: Option<&str>| Division {
            code: code(c),
            name: n.into(),
            parent: p.map(code),
        };
        let divisions = vec![
            d("370105000000", "天桥区", None),
            d("370105014000", "桑梓店街道", Some("370105000000")),
            d("370105012000", "北园街道", Some("370105000000")),
            d("370105014201", "小寨村", Some("370105014000")),
            d("370105012201", "小寨村", Some("370105012000")),
        ];
        let a = |id: &str, system, name: &str, div: &str| Asset {
            id: id.into(),
            system,
            name: name.into(),
            division: code(div),
            geometry: Geometry::LineString(vec![[117.0, 36.8], [117.01, 36.81]]),
        };
        let assets = vec![
            a("r1", System::River, "小清河桑梓店段", "370105014000"),
            a("r2", System::River, "小清河北园段", "370105012000"),
            a("f1", System::Forest, "鹊山林区", "370105014000"),
        ];
        (divisions, assets)
    }

    fn row(cells: [&str; 7]) -> RosterRow {
        RosterRow::from_cells(&cells.map(String::from))
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let (divisions, assets) = places();
        let places = Places::new(&divisions, &assets);
        let rows = vec![
            (
                2,
                row([
                    "张三",
                    "街道办主任",
                    "街道级",
                    "河长",
                    "桑梓店街道",
                    "小清河桑梓店段",
                    "13800000001",
                ]),
            ),
            (
                3,
                row([
                    "李四",
                    "",
                    "街道级",
                    "河长",
                    "不存在街道",
                    "",
                    "13800000002",
                ]),
            ),
            (
                4,
                row([
                    "王五",
                    "",
                    "街道级",
                    "河长",
                    "桑梓店街道",
                    "不存在河段",
                    "13800000003",
                ]),
            ),
            (
                5,
                row([
                    "赵六",
                    "",
                    "街道级",
                    "河长",
                    "桑梓店街道",
                    "小清河北园段",
                    "13800000004",
                ]),
            ),
            (
                6,
                row(["钱七", "", "村级", "河长", "桑梓店街道", "", "13800000005"]),
            ),
            (
                7,
                row([
                    "孙八",
                    "",
                    "街道级",
                    "河长",
                    "桑梓店街道",
                    "鹊山林区",
                    "13800000006",
                ]),
            ),
            (
                8,
                row(["周九", "", "街道级", "河长", "桑梓店街道", "", "138"]),
            ),
            (
                9,
                row([
                    "张三",
                    "",
                    "街道级",
                    "河长",
                    "桑梓店街道",
                    "",
                    "13800000001",
                ]),
            ),
            (
                10,
                row(["吴十", "", "村级", "河长", "小寨村", "", "13800000007"]),
            ),
            (
                11,
                row([
                    "郑一",
                    "",
                    "村级",
                    "河长",
                    "桑梓店街道/小寨村",
                    "",
                    "13800000008",
                ]),
            ),
            (
                12,
                row(["", "", "省级", "海长", "桑梓店街道", "", "13800000009"]),
            ),
        ];
        let plan = plan_roster(&rows, &places, &HashMap::new());
        let reasons = |i: usize| match &plan[i].outcome {
            Outcome::Refused { reasons } => reasons.join("；"),
            other => panic!("row {} was not refused: {other:?}", plan[i].row),
        };
        assert!(
            matches!(plan[0].outcome, Outcome::Create { .. }),
            "{:?}",
            plan[0]
        );
        assert!(reasons(1).contains("未登记"));
        assert!(reasons(2).contains("“不存在河段”未登记"));
        assert!(reasons(3).contains("不在桑梓店街道内"));
        assert!(reasons(4).contains("不符"));
        assert!(reasons(5).contains("不属于河长体系"));
        assert!(reasons(6).contains("11位"));
        assert!(reasons(7).contains("与第2行是同一人"));
        assert!(reasons(8).contains("重名"));
        assert!(
            matches!(plan[9].outcome, Outcome::Create { .. }),
            "{:?}",
            plan[9]
        );
        let all = reasons(10);
        assert!(
            all.contains("缺少姓名") && all.contains("层级") && all.contains("体系"),
            "{all}"
        );
    }

    #[test]
    fn a_chief_on_record_is_unchanged_or_changed_with_before_and_after() {
        let (divisions, assets) = places();
        let places = Places::new(&divisions, &assets);
        let user = User {
            id: "u1".into(),
            username: "13800000001".into(),
            display_name: "张三".into(),
            role: Role::Chief {
                system: System::River,
                level: Level::Subdistrict,
                jurisdiction: Jurisdiction {
                    division: code("370105014000"),
                    assets: vec!["r1".into()],
                },
            },
            active: true,
        };
        let exported = places.row_of(&user, "街道办主任").unwrap();
        let on_record = HashMap::from([(
            "13800000001".to_owned(),
            OnRecord {
                user: &user,
                post: "街道办主任",
            },
        )]);
        let plan = plan_roster(&[(2, exported.clone())], &places, &on_record);
        assert_eq!(plan[0].outcome, Outcome::Unchanged);
        let mut moved = exported;
        moved.division = "北园街道".into();
        moved.assets = "小清河北园段".into();
        let plan = plan_roster(&[(2, moved)], &places, &on_record);
        let Outcome::Change { before, after } = &plan[0].outcome else {
            panic!("{:?}", plan[0]);
        };
        assert_eq!(before.division_name, "桑梓店街道");
        assert_eq!(after.asset_names, vec!["小清河北园段".to_owned()]);
    }

    #[test]
    fn chiefs_a_newer_roster_leaves_out_are_listed_only_for_the_systems_it_covers_and_stopped_ones_are_refused(
    ) {
        let (divisions, assets) = places();
        let places = Places::new(&divisions, &assets);
        let chief = |id: &str, phone: &str, name: &str, system, asset: &str, active| User {
            id: id.into(),
            username: phone.into(),
            display_name: name.into(),
            role: Role::Chief {
                system,
                level: Level::Subdistrict,
                jurisdiction: Jurisdiction {
                    division: code("370105014000"),
                    assets: vec![asset.into()],
                },
            },
            active,
        };
        let users = [
            chief("u1", "13800000001", "张三", System::River, "r1", true),
            chief("u2", "13800000002", "李四", System::River, "r1", true),
            chief("u3", "13800000003", "王五", System::Forest, "f1", true),
            chief("u4", "13800000004", "赵六", System::River, "r1", false),
        ];
        let on_record: HashMap<String, OnRecord<'_>> = users
            .iter()
            .map(|u| (u.username.clone(), OnRecord { user: u, post: "" }))
            .collect();
        // A stopped chief listed again is refused, never quietly left stopped or started.
        let listed_again = vec![(2, places.row_of(&users[3], "").unwrap())];
        let plan = plan_roster(&listed_again, &places, &on_record);
        assert!(
            matches!(&plan[0].outcome, Outcome::Refused { reasons } if reasons[0].contains("已停用")),
            "{:?}",
            plan[0]
        );
        let rows = vec![(2, places.row_of(&users[0], "").unwrap())];
        let missing = missing_from_roster(&rows, &places, &on_record);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].user_id, "u2");
        assert_eq!(missing[0].chief.display_name, "李四");
        assert_eq!(
            missing[0].chief.asset_names,
            vec!["小清河桑梓店段".to_owned()]
        );
        // Listing everyone leaves nobody out.
        let rows: Vec<_> = users[..3]
            .iter()
            .enumerate()
            .map(|(i, u)| (i + 2, places.row_of(u, "").unwrap()))
            .collect();
        assert!(missing_from_roster(&rows, &places, &on_record).is_empty());
    }
}
