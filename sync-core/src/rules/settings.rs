//! Checks the settings an administrator writes — patrol rules and quotas, problem categories and
//! check items — before the server stores them, so a rule set that cannot judge a patrol sensibly
//! (a negative duration, a share above one, a region no division has) never takes effect. Each
//! refusal names the field, as a path into the written value (`overrides[0].rules.min_minutes`),
//! and says in Chinese what is wrong.

use std::collections::HashSet;

use super::{PatrolRules, Quota, RuleSet};
use crate::model::{Category, CheckItem, DivisionCode};

/// A setting refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingError {
    /// Path of the refused field in the written value, e.g. `quotas[2].count`.
    pub field: String,
    /// What is wrong, in Chinese.
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> SettingError {
    SettingError {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads a rule set as an administrator wrote it (JSON), naming the part that cannot be read —
/// an unknown system, level or period, a missing or mistyped field — by its path
/// (`quotas[0]: unknown variant \`day\`…`), then checks it ([`RuleSet::check`]).
pub fn rules_from_json(
    value: serde_json::Value,
    known_division: impl Fn(&DivisionCode) -> bool,
) -> Result<RuleSet, SettingError> {
    fn part<T: serde::de::DeserializeOwned>(
        at: String,
        value: &serde_json::Value,
    ) -> Result<T, SettingError> {
        serde_json::from_value(value.clone()).map_err(|e| refuse(at, e.to_string()))
    }
    let serde_json::Value::Object(fields) = &value else {
        return Err(refuse("", "须为对象：default、overrides、quotas"));
    };
    for (name, field) in fields {
        match name.as_str() {
            "default" => {
                part::<PatrolRules>("default".into(), field)?;
            }
            "overrides" | "quotas" => {
                let serde_json::Value::Array(rows) = field else {
                    return Err(refuse(name.clone(), "须为数组"));
                };
                for (i, row) in rows.iter().enumerate() {
                    let at = format!("{name}[{i}]");
                    if name == "overrides" {
                        part::<super::RuleOverride>(at, row)?;
                    } else {
                        part::<super::Quota>(at, row)?;
                    }
                }
            }
            other => return Err(refuse(other, "不是巡查规则的字段")),
        }
    }
    let rules: RuleSet = part(String::new(), &value)?;
    rules.check(known_division)?;
    Ok(rules)
}

/// Longest minimum patrol time a rule may ask for: a working day.
const MAX_MIN_MINUTES: f64 = 12.0 * 60.0;
/// Longest minimum distance a rule may ask for.
const MAX_MIN_KM: f64 = 100.0;

impl PatrolRules {
    /// Refuses thresholds no patrol could sensibly be judged by; `at` is the rules' path.
    pub fn check(&self, at: &str) -> Result<(), SettingError> {
        let field = |name: &str| format!("{at}.{name}");
        let range = |name: &str, v: f64, lo: f64, hi: f64, what: &str| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(refuse(
                    field(name),
                    format!("{what}须在 {lo} 至 {hi} 之间，收到 {v}"),
                ))
            }
        };
        let positive = |name: &str, v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(refuse(field(name), format!("{what}须大于 0，收到 {v}")))
            }
        };
        range(
            "min_minutes",
            self.min_minutes,
            0.0,
            MAX_MIN_MINUTES,
            "最短时长（分钟）",
        )?;
        range("min_km", self.min_km, 0.0, MAX_MIN_KM, "最短里程（公里）")?;
        positive("max_speed_kmh", self.max_speed_kmh, "最高速度")?;
        positive("jump_m", self.jump_m, "跳点距离")?;
        positive("jump_kmh", self.jump_kmh, "跳点速度")?;
        positive("corridor_m", self.corridor_m, "巡查范围宽度")?;
        range(
            "min_inside_share",
            self.min_inside_share,
            0.0,
            1.0,
            "范围内定位点比例",
        )?;
        positive("max_gap_s", self.max_gap_s, "最长定位间隔")?;
        range(
            "max_lost_share",
            self.max_lost_share,
            0.0,
            1.0,
            "信号中断时间比例",
        )?;
        if !(self.max_passes.is_finite() && self.max_passes >= 1.0) {
            return Err(refuse(
                field("max_passes"),
                format!("往返次数上限须不小于 1，收到 {}", self.max_passes),
            ));
        }
        Ok(())
    }
}

impl RuleSet {
    /// Refuses a rule set that cannot take effect: thresholds out of range (see
    /// [`PatrolRules::check`]), an override that names nothing or a region no division has
    /// (`known_division`), two overrides or two quotas for the same chiefs (the later would
    /// silently win), a quota of no patrols.
    pub fn check(
        &self,
        known_division: impl Fn(&DivisionCode) -> bool,
    ) -> Result<(), SettingError> {
        self.default.check("default")?;
        let mut criteria = HashSet::new();
        for (i, o) in self.overrides.iter().enumerate() {
            let at = format!("overrides[{i}]");
            if o.system.is_none() && o.level.is_none() && o.region.is_none() {
                return Err(refuse(
                    at,
                    "特别规则须至少指定体系、层级或区域之一（否则请修改默认规则）",
                ));
            }
            if let Some(region) = &o.region {
                if !known_division(region) {
                    return Err(refuse(
                        format!("{at}.region"),
                        format!("没有行政区划 {}", region.as_str()),
                    ));
                }
            }
            if !criteria.insert((o.system, o.level, o.region.clone())) {
                return Err(refuse(at, "与前面的一条特别规则适用于同一范围"));
            }
            o.rules.check(&format!("{at}.rules"))?;
        }
        let mut quotas = HashSet::new();
        for (i, q) in self.quotas.iter().enumerate() {
            let at = format!("quotas[{i}]");
            if q.count == 0 {
                return Err(refuse(
                    format!("{at}.count"),
                    "巡查次数须至少为 1（不要求巡查请删除该条）",
                ));
            }
            if q.count > Quota::MAX_COUNT {
                return Err(refuse(
                    format!("{at}.count"),
                    format!("巡查次数须不多于 {}，收到 {}", Quota::MAX_COUNT, q.count),
                ));
            }
            if !quotas.insert((q.system, q.level)) {
                return Err(refuse(at, "与前面的一条频次要求适用于同一体系和层级"));
            }
        }
        Ok(())
    }
}

fn check_codes<'a>(
    list: &str,
    rows: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), SettingError> {
    let mut seen = HashSet::new();
    for (i, (code, name_zh)) in rows.enumerate() {
        let at = format!("{list}[{i}]");
        let valid = !code.is_empty()
            && code.len() <= 64
            && code.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            });
        if !valid {
            return Err(refuse(
                format!("{at}.code"),
                format!("代码须为 1–64 个小写字母、数字、点、下划线或连字符，收到「{code}」"),
            ));
        }
        if !seen.insert(code) {
            return Err(refuse(format!("{at}.code"), format!("代码 {code} 重复")));
        }
        if name_zh.trim().is_empty() {
            return Err(refuse(format!("{at}.name_zh"), "中文名称不能为空"));
        }
    }
    Ok(())
}

/// Refuses categories and check items with an empty, malformed or repeated code or an empty
/// Chinese name, and the removal of a category issues already use (`in_use`: the codes of
/// recorded issues' categories): such issues must keep a category the desk can name.
pub fn check_categories(
    categories: &[Category],
    check_items: &[CheckItem],
    in_use: &HashSet<String>,
) -> Result<(), SettingError> {
    check_codes(
        "categories",
        categories
            .iter()
            .map(|c| (c.code.as_str(), c.name_zh.as_str())),
    )?;
    check_codes(
        "check_items",
        check_items
            .iter()
            .map(|c| (c.code.as_str(), c.name_zh.as_str())),
    )?;
    let kept: HashSet<&str> = categories.iter().map(|c| c.code.as_str()).collect();
    let mut missing: Vec<&str> = in_use
        .iter()
        .map(String::as_str)
        .filter(|code| !kept.contains(code))
        .collect();
    missing.sort_unstable();
    if let Some(code) = missing.first() {
        return Err(refuse(
            "categories",
            format!("问题类别 {code} 已被已上报的问题使用，不能删除"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, System};
    use crate::rules::{Period, RuleOverride};

    fn any(_: &DivisionCode) -> bool {
        true
    }

    #[test]
    fn unreadable_parts_are_named() {
        let mut value = serde_json::to_value(RuleSet::default()).unwrap();
        value["quotas"][1]["period"] = "day".into();
        let err = rules_from_json(value.clone(), any).unwrap_err();
        assert_eq!(err.field, "quotas[1]");
        assert!(err.message.contains("day"), "{err}");
        value["quotas"][1]["period"] = "month".into();
        assert_eq!(rules_from_json(value.clone(), any), Ok(RuleSet::default()));
        value["default"]["min_minutes"] = "ten".into();
        assert_eq!(rules_from_json(value, any).unwrap_err().field, "default");
    }

    #[test]
    fn defaults_pass() {
        assert_eq!(RuleSet::default().check(any), Ok(()));
    }

    #[test]
    fn nonsense_is_refused_by_field() {
        let mut rules = RuleSet::default();
        rules.overrides.push(RuleOverride {
            system: Some(System::River),
            level: Some(Level::Village),
            region: None,
            rules: PatrolRules {
                min_minutes: -5.0,
                ..PatrolRules::default()
            },
        });
        assert_eq!(
            rules.check(any).unwrap_err().field,
            "overrides[0].rules.min_minutes"
        );
        rules.overrides[0].rules.min_minutes = 5.0;
        rules.overrides[0].rules.min_inside_share = 1.5;
        assert_eq!(
            rules.check(any).unwrap_err().field,
            "overrides[0].rules.min_inside_share"
        );
        rules.overrides[0].rules.min_inside_share = 0.5;
        assert_eq!(rules.check(any), Ok(()));
        rules.overrides[0].region = Some(DivisionCode::new("110000000000").unwrap());
        assert_eq!(
            rules.check(|_| false).unwrap_err().field,
            "overrides[0].region"
        );
        rules.quotas.push(Quota {
            system: None,
            level: Level::Village,
            count: 2,
            period: Period::Month,
        });
        assert_eq!(rules.check(any).unwrap_err().field, "quotas[3]");
        rules.quotas[3].level = Level::District;
        rules.quotas[3].system = Some(System::Forest);
        rules.quotas[3].count = 0;
        assert_eq!(rules.check(any).unwrap_err().field, "quotas[3].count");
        rules.quotas[3].count = 101;
        assert_eq!(rules.check(any).unwrap_err().field, "quotas[3].count");
    }

    #[test]
    fn categories_need_unique_codes_names_and_keep_used_ones() {
        let cat = |code: &str, name: &str| Category {
            code: code.into(),
            system: System::River,
            name_zh: name.into(),
            name_en: String::new(),
        };
        let none = HashSet::new();
        let cats = vec![cat("a", "甲"), cat("a", "乙")];
        assert_eq!(
            check_categories(&cats, &[], &none).unwrap_err().field,
            "categories[1].code"
        );
        let cats = vec![cat("a", "甲"), cat("b", " ")];
        assert_eq!(
            check_categories(&cats, &[], &none).unwrap_err().field,
            "categories[1].name_zh"
        );
        let used: HashSet<String> = ["c".to_owned()].into();
        let cats = vec![cat("a", "甲"), cat("b", "乙")];
        assert_eq!(
            check_categories(&cats, &[], &used).unwrap_err().field,
            "categories"
        );
        assert_eq!(check_categories(&cats, &[], &none), Ok(()));
    }
}
