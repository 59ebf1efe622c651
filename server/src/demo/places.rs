//! The Tianqiao district as demo reference data: 天桥区 (370105), its 14 subdistricts, villages of
//! 桑梓店街道, river segments as LineStrings, forests and farmland grids as Polygons.
//!
//! Subdistrict codes follow the order of the district's plan (`TIANQIAO.md`), village codes the
//! `2xx` pattern of administrative villages; geometry is plausible, not surveyed, and lies inside
//! lat 36.66–36.86, lon 116.90–117.06. Pure data: nothing here touches storage.

use sync_core::model::{Asset, Division, DivisionCode, Geometry, System};

pub const DISTRICT: &str = "370105000000";
pub const SANGZIDIAN: &str = "370105014000";

const SUBDISTRICTS: [&str; 14] = [
    "制锦市街道",
    "北坦街道",
    "纬北路街道",
    "天桥东街街道",
    "官扎营街道",
    "宝华街街道",
    "堤口路街道",
    "无影山街道",
    "工人新村南村街道",
    "工人新村北村街道",
    "药山街道",
    "北园街道",
    "泺口街道",
    "桑梓店街道",
];

const SANGZIDIAN_VILLAGES: [(&str, &str); 8] = [
    ("201", "小寨村"),
    ("202", "耿庄村"),
    ("203", "高王村"),
    ("204", "石门孙村"),
    ("205", "小吴村"),
    ("206", "刘庙子村"),
    ("207", "北董村"),
    ("208", "怀庄村"),
];

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).expect("demo division codes are 12 digits")
}

/// The code of the `n`th subdistrict (1-based), e.g. 14 → `370105014000`.
pub fn subdistrict(n: usize) -> String {
    format!("370105{n:03}000")
}

/// The code of a 桑梓店街道 village by its three-digit suffix, e.g. `201` → `370105014201`.
pub fn village(suffix: &str) -> String {
    format!("370105014{suffix}")
}

pub fn divisions() -> Vec<Division> {
    let mut all = vec![Division {
        code: code(DISTRICT),
        name: "天桥区".into(),
        parent: None,
    }];
    all.extend(SUBDISTRICTS.iter().enumerate().map(|(i, name)| Division {
        code: code(&subdistrict(i + 1)),
        name: (*name).into(),
        parent: Some(code(DISTRICT)),
    }));
    all.extend(SANGZIDIAN_VILLAGES.iter().map(|(suffix, name)| Division {
        code: code(&village(suffix)),
        name: (*name).into(),
        parent: Some(code(SANGZIDIAN)),
    }));
    all
}

/// A river as a polyline and the (division, segment count) of each stretch it is cut into;
/// the polyline's points are shared out evenly, neighbouring segments sharing their end point.
struct River {
    key: &'static str,
    name: &'static str,
    line: &'static [[f64; 2]],
    stretches: &'static [&'static str],
}

const RIVERS: &[River] = &[
    River {
        key: "yr",
        name: "黄河天桥段",
        line: &[
            [116.900, 36.706],
            [116.925, 36.712],
            [116.950, 36.718],
            [116.975, 36.724],
            [117.000, 36.729],
            [117.030, 36.740],
            [117.060, 36.752],
        ],
        stretches: &["370105011000", "370105013000", "370105014202"],
    },
    River {
        key: "xqh",
        name: "小清河",
        line: &[
            [116.900, 36.688],
            [116.930, 36.692],
            [116.960, 36.697],
            [116.990, 36.700],
            [117.020, 36.699],
            [117.040, 36.701],
            [117.060, 36.703],
        ],
        stretches: &["370105011000", "370105012000", "370105012000"],
    },
    River {
        key: "gsh",
        name: "工商河",
        line: &[
            [116.985, 36.672],
            [116.986, 36.678],
            [116.987, 36.684],
            [116.990, 36.699],
        ],
        stretches: &["370105002000", "370105010000"],
    },
    River {
        key: "qjh",
        name: "齐济河",
        line: &[
            [116.905, 36.670],
            [116.910, 36.675],
            [116.915, 36.680],
            [116.925, 36.690],
        ],
        stretches: &["370105007000", "370105008000"],
    },
    River {
        key: "xjh",
        name: "兴济河",
        line: &[
            [116.945, 36.668],
            [116.948, 36.674],
            [116.950, 36.680],
            [116.955, 36.693],
        ],
        stretches: &["370105007000", "370105008000"],
    },
    River {
        key: "btp",
        name: "北太平河",
        line: &[
            [117.010, 36.700],
            [117.015, 36.706],
            [117.020, 36.712],
            [117.035, 36.722],
        ],
        stretches: &["370105012000", "370105013000"],
    },
    River {
        key: "thh",
        name: "徒骇河",
        line: &[
            [116.920, 36.830],
            [116.935, 36.834],
            [116.950, 36.838],
            [116.965, 36.840],
            [116.980, 36.842],
            [117.010, 36.848],
            [117.025, 36.850],
            [117.040, 36.853],
        ],
        stretches: &[
            "370105014201",
            "370105014201",
            "370105014202",
            "370105014204",
        ],
    },
];

fn river_segments(river: &River) -> Vec<Asset> {
    let n = river.stretches.len();
    let last = river.line.len() - 1;
    river
        .stretches
        .iter()
        .enumerate()
        .map(|(i, division)| {
            let from = i * last / n;
            let to = (i + 1) * last / n;
            Asset {
                id: format!("river-{}-{:02}", river.key, i + 1),
                system: System::River,
                name: format!("{} 第{}段", river.name, i + 1),
                division: code(division),
                geometry: Geometry::LineString(river.line[from..=to].to_vec()),
            }
        })
        .collect()
}

/// A closed rectangle ring from its south-west and north-east corners.
fn rectangle(sw: [f64; 2], ne: [f64; 2]) -> Geometry {
    Geometry::Polygon(vec![vec![sw, [ne[0], sw[1]], ne, [sw[0], ne[1]], sw]])
}

/// (asset id, name, division code, south-west corner, north-east corner)
type Forest = (&'static str, &'static str, &'static str, [f64; 2], [f64; 2]);

const FORESTS: &[Forest] = &[
    (
        "forest-beijiao",
        "北郊林场",
        SANGZIDIAN,
        [116.940, 36.780],
        [116.990, 36.805],
    ),
    (
        "forest-yaoshan",
        "药山",
        "370105011000",
        [116.968, 36.705],
        [116.978, 36.712],
    ),
    (
        "forest-fenghuangshan",
        "凤凰山",
        "370105013000",
        [117.015, 36.735],
        [117.025, 36.742],
    ),
    (
        "forest-biaoshan",
        "标山",
        "370105012000",
        [116.995, 36.705],
        [117.002, 36.711],
    ),
    (
        "forest-beimaanshan",
        "北马鞍山",
        "370105011000",
        [116.955, 36.712],
        [116.962, 36.717],
    ),
    (
        "forest-sushan",
        "粟山",
        "370105011000",
        [116.944, 36.704],
        [116.951, 36.709],
    ),
];

/// Farmland grids of 桑梓店街道: 0.01° cells assigned to villages.
const FIELDS: &[(&str, &str, [f64; 2])] = &[
    ("field-szd-01", "203", [116.960, 36.815]),
    ("field-szd-02", "203", [116.970, 36.815]),
    ("field-szd-03", "205", [116.980, 36.815]),
    ("field-szd-04", "205", [116.960, 36.825]),
    ("field-szd-05", "206", [116.970, 36.825]),
    ("field-szd-06", "207", [116.980, 36.825]),
];

pub fn assets() -> Vec<Asset> {
    let mut all: Vec<Asset> = RIVERS.iter().flat_map(river_segments).collect();
    all.extend(FORESTS.iter().map(|&(id, name, division, sw, ne)| Asset {
        id: id.into(),
        system: System::Forest,
        name: name.into(),
        division: code(division),
        geometry: rectangle(sw, ne),
    }));
    let village_name = |suffix: &str| {
        SANGZIDIAN_VILLAGES
            .iter()
            .find(|(s, _)| *s == suffix)
            .map_or("桑梓店", |(_, name)| *name)
    };
    all.extend(
        FIELDS
            .iter()
            .enumerate()
            .map(|(i, &(id, suffix, sw))| Asset {
                id: id.into(),
                system: System::Field,
                name: format!("{}耕地网格{}", village_name(suffix), i + 1),
                division: code(&village(suffix)),
                geometry: rectangle(sw, [sw[0] + 0.01, sw[1] + 0.01]),
            }),
    );
    all
}
