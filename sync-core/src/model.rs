//! The typed domain model: systems, divisions, assets, users and roles, categories, check items,
//! photo references and track points. Plain data shared by the phone and the server; reference
//! data (divisions, assets, users, categories, check items, rules) is server-owned and read-only
//! on devices. This module holds no I/O and no automerge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three chief systems (河长制, 林长制, 田长制).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum System {
    River,
    Forest,
    Field,
}

impl System {
    pub const ALL: [System; 3] = [System::River, System::Forest, System::Field];

    pub fn as_str(self) -> &'static str {
        match self {
            System::River => "river",
            System::Forest => "forest",
            System::Field => "field",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sys| sys.as_str() == s)
    }

    /// The chief title in Chinese, as printed on notice boards and reports.
    pub fn chief_title(self) -> &'static str {
        match self {
            System::River => "河长",
            System::Forest => "林长",
            System::Field => "田长",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Administrative level of a division and of a chief (区, 街道/乡镇, 村/社区).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    District,
    Subdistrict,
    Village,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::District, Level::Subdistrict, Level::Village];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::District => "district",
            Level::Subdistrict => "subdistrict",
            Level::Village => "village",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// A 12-digit statistical division code (统计用区划代码), e.g. `370105000000` for 天桥区.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9]{12}$"))]
pub struct DivisionCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("division code must be 12 ASCII digits, got {0:?}")]
pub struct InvalidDivisionCode(pub String);

impl DivisionCode {
    pub fn new(code: impl Into<String>) -> Result<Self, InvalidDivisionCode> {
        let code = code.into();
        if code.len() == 12 && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(code))
        } else {
            Err(InvalidDivisionCode(code))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The level implied by the code's trailing zeros: `370105000000` is a district,
    /// `370105001000` a subdistrict, `370105001001` a village.
    pub fn level(&self) -> Level {
        if &self.0[6..] == "000000" {
            Level::District
        } else if &self.0[9..] == "000" {
            Level::Subdistrict
        } else {
            Level::Village
        }
    }

    /// Whether `other` lies inside this division (or is this division).
    pub fn contains(&self, other: &DivisionCode) -> bool {
        other.0.starts_with(self.significant())
    }

    /// The digits every code inside this division starts with: `370105` of the district
    /// `370105000000`, so the codes inside it sort together.
    pub fn significant(&self) -> &str {
        let digits = match self.level() {
            Level::District => 6,
            Level::Subdistrict => 9,
            Level::Village => 12,
        };
        &self.0[..digits]
    }
}

impl TryFrom<String> for DivisionCode {
    type Error = InvalidDivisionCode;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DivisionCode> for String {
    fn from(code: DivisionCode) -> Self {
        code.0
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Division {
    pub code: DivisionCode,
    pub name: String,
    pub parent: Option<DivisionCode>,
}

impl Division {
    pub fn level(&self) -> Level {
        self.code.level()
    }
}

/// Asset geometry in GeoJSON form; coordinates are `[longitude, latitude]` in WGS84.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "coordinates")]
pub enum Geometry {
    /// A river segment or patrol route.
    LineString(Vec<[f64; 2]>),
    /// A forest area or farmland grid: an outer ring followed by holes.
    Polygon(Vec<Vec<[f64; 2]>>),
}

/// A river segment, forest area or farmland grid that chiefs patrol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Asset {
    pub id: String,
    pub system: System,
    pub name: String,
    pub division: DivisionCode,
    pub geometry: Geometry,
}

/// What a chief is responsible for: a division and the assets patrolled in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jurisdiction {
    pub division: DivisionCode,
    pub assets: Vec<String>,
}

/// A user's role; it decides which documents they receive and which changes they may make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    /// A river, forest or field chief at some level.
    Chief {
        system: System,
        level: Level,
        jurisdiction: Jurisdiction,
    },
    /// Staff of a chief office (河长办, 林长办, 田长办) overseeing a system in a division.
    Supervisor {
        system: System,
        division: DivisionCode,
    },
    /// Someone in a responsible department (e.g. 区水务局) who rectifies assigned problems.
    Handler {
        department: String,
    },
    Admin,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Chief { .. } => "chief",
            Role::Supervisor { .. } => "supervisor",
            Role::Handler { .. } => "handler",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
}

/// Problem severity (一般, 紧急, 特急).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    General,
    Urgent,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::General, Severity::Urgent, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "general",
            Severity::Urgent => "urgent",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Severity::General => "一般",
            Severity::Urgent => "紧急",
            Severity::Critical => "特急",
        }
    }
}

/// A problem category a chief can report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9_.-]{1,64}$"))]
    pub code: String,
    pub system: System,
    /// Shown to chiefs; not blank.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S"))]
    pub name_zh: String,
    pub name_en: String,
}

/// An item on a patrol checklist.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9_.-]{1,64}$"))]
    pub code: String,
    pub system: System,
    /// Shown to chiefs; not blank.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S"))]
    pub name_zh: String,
}

/// Result of one check item on a patrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Ok,
    Problem,
    NotApplicable,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Ok => "ok",
            CheckResult::Problem => "problem",
            CheckResult::NotApplicable => "not_applicable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Problem, Self::NotApplicable]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

const CATEGORIES: &[(&str, System, &str, &str)] = &[
    ("river.encroachment", System::River, "乱占", "encroachment"),
    (
        "river.illegal_mining",
        System::River,
        "乱采",
        "illegal sand mining",
    ),
    ("river.dumping", System::River, "乱堆", "dumping"),
    (
        "river.illegal_building",
        System::River,
        "乱建",
        "illegal building",
    ),
    ("river.outfall", System::River, "排污口", "sewage outfall"),
    (
        "river.garbage",
        System::River,
        "河面垃圾",
        "floating garbage",
    ),
    (
        "river.black_odorous",
        System::River,
        "黑臭水体",
        "black-odorous water",
    ),
    (
        "forest.fire_hazard",
        System::Forest,
        "火灾隐患",
        "fire hazard",
    ),
    (
        "forest.illegal_logging",
        System::Forest,
        "乱砍滥伐",
        "illegal logging",
    ),
    (
        "forest.pests",
        System::Forest,
        "病虫害",
        "pests and disease",
    ),
    (
        "forest.encroachment",
        System::Forest,
        "侵占林地",
        "encroachment",
    ),
    (
        "field.non_agricultural",
        System::Field,
        "非农化",
        "non-agricultural use",
    ),
    ("field.abandonment", System::Field, "撂荒", "abandonment"),
    (
        "field.illegal_building",
        System::Field,
        "违法占地建房",
        "illegal building",
    ),
];

const CHECK_ITEMS: &[(&str, System, &str)] = &[
    ("river.water_color", System::River, "水体颜色、气味正常"),
    ("river.floating_garbage", System::River, "水面无漂浮物"),
    ("river.outfalls", System::River, "无新增排污口、无直排"),
    ("river.banks", System::River, "岸线无乱占乱采乱堆乱建"),
    ("river.facilities", System::River, "公示牌及护栏设施完好"),
    (
        "forest.fire_sources",
        System::Forest,
        "无野外用火、火灾隐患",
    ),
    ("forest.logging", System::Forest, "无乱砍滥伐"),
    ("forest.pests", System::Forest, "无明显病虫害"),
    ("forest.land_use", System::Forest, "无侵占林地"),
    ("field.crops", System::Field, "耕地正常耕种、无撂荒"),
    ("field.building", System::Field, "无违法占地建房"),
    ("field.soil", System::Field, "无取土、堆放废弃物"),
];

/// The built-in problem categories (DESIGN.md), the server's default reference data.
pub fn default_categories() -> Vec<Category> {
    CATEGORIES
        .iter()
        .map(|&(code, system, zh, en)| Category {
            code: code.into(),
            system,
            name_zh: zh.into(),
            name_en: en.into(),
        })
        .collect()
}

/// The built-in check-item templates per system.
pub fn default_check_items() -> Vec<CheckItem> {
    CHECK_ITEMS
        .iter()
        .map(|&(code, system, zh)| CheckItem {
            code: code.into(),
            system,
            name_zh: zh.into(),
        })
        .collect()
}

/// How a photo relates to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoRole {
    Before,
    After,
    Evidence,
}

impl PhotoRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoRole::Before => "before",
            PhotoRole::After => "after",
            PhotoRole::Evidence => "evidence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Before, Self::After, Self::Evidence]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A content-addressed photo referenced from a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoRef {
    /// Lower-case hex SHA-256 of the stored JPEG bytes; the blob's name on the server.
    pub sha256: String,
    pub role: PhotoRole,
    /// EXIF capture time, Unix milliseconds, when the camera recorded one.
    pub taken_at_ms: Option<i64>,
    /// EXIF position `[lon, lat]` when the camera recorded one.
    pub position: Option<[f64; 2]>,
    pub bytes: u64,
}

/// One GPS fix of a patrol track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackPoint {
    pub lat: f64,
    pub lon: f64,
    /// Device time, Unix milliseconds.
    pub t_ms: i64,
    /// Horizontal accuracy reported by the phone, metres.
    pub accuracy_m: f32,
    /// The operating system's own verdict that the fix did not come from the phone's receiver:
    /// Android's mock-location flag (`Location.isMock()`), iOS's simulated-by-software flag.
    #[serde(default)]
    pub mock: bool,
    /// Which of the phone's location sources produced the fix, as the OS names it.
    #[serde(default)]
    pub provider: Provider,
}

impl TrackPoint {
    /// A fix from an unknown source that the OS did not call simulated.
    pub fn new(lat: f64, lon: f64, t_ms: i64, accuracy_m: f32) -> Self {
        Self {
            lat,
            lon,
            t_ms,
            accuracy_m,
            mock: false,
            provider: Provider::Unknown,
        }
    }
}

/// The location source of a fix as the phone's OS reports it (Android's provider name; iOS
/// tells only whether an accessory produced the fix).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Not reported (fixes recorded before phones said, or an OS that does not tell).
    #[default]
    Unknown,
    /// Satellite receiver (`gps`).
    Gps,
    /// Cell and Wi-Fi positioning (`network`).
    Network,
    /// Google's fused provider (`fused`).
    Fused,
    /// Another app's fixes (`passive`).
    Passive,
    /// An external receiver (iOS `isProducedByAccessory`).
    Accessory,
}

impl Provider {
    /// The provider's number in a track chunk (three bits).
    pub fn code(self) -> u8 {
        match self {
            Provider::Unknown => 0,
            Provider::Gps => 1,
            Provider::Network => 2,
            Provider::Fused => 3,
            Provider::Passive => 4,
            Provider::Accessory => 5,
        }
    }

    /// The provider numbered `code`; `None` for a number no provider has.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Provider::Unknown,
            1 => Provider::Gps,
            2 => Provider::Network,
            3 => Provider::Fused,
            4 => Provider::Passive,
            5 => Provider::Accessory,
            _ => return None,
        })
    }

    /// The provider's name as [`Provider::from_name`] reads it (`"unknown"` for `Unknown`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Unknown => "unknown",
            Provider::Gps => "gps",
            Provider::Network => "network",
            Provider::Fused => "fused",
            Provider::Passive => "passive",
            Provider::Accessory => "accessory",
        }
    }

    /// Reads the name an OS gives its provider (`"gps"`, `"network"`, `"fused"`, `"passive"`,
    /// `"accessory"`); anything else is `Unknown`.
    pub fn from_name(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "gps" => Provider::Gps,
            "network" => Provider::Network,
            "fused" => Provider::Fused,
            "passive" => Provider::Passive,
            "accessory" => Provider::Accessory,
            _ => Provider::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_codes_know_their_level_and_containment() {
        let district = DivisionCode::new("370105000000").unwrap();
        let sub = DivisionCode::new("370105014000").unwrap();
        let village = DivisionCode::new("370105014201").unwrap();
        let other_sub = DivisionCode::new("370105001000").unwrap();
        assert_eq!(district.level(), Level::District);
        assert_eq!(sub.level(), Level::Subdistrict);
        assert_eq!(village.level(), Level::Village);
        assert!(district.contains(&village));
        assert!(sub.contains(&village));
        assert!(!other_sub.contains(&village));
        assert!(!village.contains(&sub));
        assert!(DivisionCode::new("37010500000").is_err());
        assert!(DivisionCode::new("37010500000x").is_err());
    }

    #[test]
    fn every_system_has_categories_and_check_items() {
        for system in System::ALL {
            assert!(default_categories().iter().any(|c| c.system == system));
            assert!(default_check_items().iter().any(|c| c.system == system));
        }
    }

    #[test]
    fn geometry_serializes_as_geojson() {
        let g = Geometry::LineString(vec![[116.98, 36.7], [116.99, 36.71]]);
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["type"], "LineString");
        assert_eq!(json["coordinates"][1][0], 116.99);
    }
}
