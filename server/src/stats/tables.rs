//! Statistics as tables: the rows of sync-core's reports with Chinese column titles and a kind
//! per column (which number format a spreadsheet shows). CSV and XLSX are written from these
//! tables, so both carry exactly the figures of the JSON answer. This file formats nothing.

use sync_core::model::{Level, System};
use sync_core::stats::{
    level_name, IssueCounts, IssueGroup, IssueReport, PatrolGroup, PatrolReport,
};

/// How a column's values are shown in a spreadsheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Count,
    /// Kilometres, hours, days: two decimals.
    Decimal,
    /// A ratio shown as a percentage.
    Percent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u64),
    Number(f64),
    Empty,
}

impl Cell {
    fn opt(v: Option<f64>) -> Self {
        v.map_or(Cell::Empty, Cell::Number)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The English key, as in the JSON answer.
    pub key: &'static str,
    pub title: &'static str,
    pub kind: Kind,
}

const fn col(key: &'static str, title: &'static str, kind: Kind) -> Column {
    Column { key, title, kind }
}

#[derive(Debug, Clone)]
pub struct Table {
    /// Selects the table in `table=` (CSV); the JSON field it comes from.
    pub key: &'static str,
    /// Sheet name and heading.
    pub title: &'static str,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

pub fn system_name(system: System) -> &'static str {
    match system {
        System::River => "河长制",
        System::Forest => "林长制",
        System::Field => "田长制",
    }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

const PATROL_GROUP_COLUMNS: [Column; 17] = [
    col("key", "代码", Kind::Text),
    col("name", "名称", Kind::Text),
    col("chiefs", "责任人数", Kind::Count),
    col("chiefs_without_patrols", "零巡查人数", Kind::Count),
    col("required", "应巡次数", Kind::Count),
    col("patrols", "巡查次数", Kind::Count),
    col("valid", "有效巡查", Kind::Count),
    col("invalid", "无效巡查", Kind::Count),
    col("periods", "考核周期数(人次)", Kind::Count),
    col("periods_met", "达标周期数(人次)", Kind::Count),
    col("compliance", "周期达标率", Kind::Percent),
    col("chiefs_required", "应考核人数", Kind::Count),
    col("chiefs_compliant", "全部达标人数", Kind::Count),
    col("chiefs_compliant_share", "全部达标人数占比", Kind::Percent),
    col("km", "巡查里程(公里)", Kind::Decimal),
    col("hours", "巡查时长(小时)", Kind::Decimal),
    col("issues_found", "发现问题数", Kind::Count),
];

fn patrol_group_row(g: &PatrolGroup) -> Vec<Cell> {
    vec![
        text(&g.key),
        text(&g.name),
        Cell::Count(g.chiefs),
        Cell::Count(g.chiefs_without_patrols),
        Cell::Count(g.required),
        Cell::Count(g.patrols),
        Cell::Count(g.valid),
        Cell::Count(g.invalid),
        Cell::Count(g.periods),
        Cell::Count(g.periods_met),
        Cell::opt(g.compliance),
        Cell::Count(g.chiefs_required),
        Cell::Count(g.chiefs_compliant),
        Cell::opt(g.chiefs_compliant_share),
        Cell::Number(g.km),
        Cell::Number(g.hours),
        Cell::Count(g.issues_found),
    ]
}

fn level_label(level: Level) -> &'static str {
    level_name(level)
}

/// The patrol report's tables: chiefs first (the CSV default), then the totals.
pub fn patrol_tables(report: &PatrolReport) -> Vec<Table> {
    let chiefs = Table {
        key: "chiefs",
        title: "巡查考核明细",
        columns: vec![
            col("chief", "责任人ID", Kind::Text),
            col("name", "姓名", Kind::Text),
            col("level", "级别", Kind::Text),
            col("system", "体系", Kind::Text),
            col("division", "区划代码", Kind::Text),
            col("division_name", "区划名称", Kind::Text),
            col("required", "应巡次数", Kind::Count),
            col("periods", "考核周期数", Kind::Count),
            col("periods_met", "达标周期数", Kind::Count),
            col("patrols", "巡查次数", Kind::Count),
            col("valid", "有效巡查", Kind::Count),
            col("invalid", "无效巡查", Kind::Count),
            col("invalid_reasons", "无效原因", Kind::Text),
            col("compliance", "周期达标率", Kind::Percent),
            col("compliance_display", "达标率", Kind::Percent),
            col("km", "巡查里程(公里)", Kind::Decimal),
            col("hours", "巡查时长(小时)", Kind::Decimal),
            col("issues_found", "发现问题数", Kind::Count),
            col("clock_skew", "时钟异常次数", Kind::Count),
        ],
        rows: report
            .chiefs
            .iter()
            .map(|r| {
                let reasons: Vec<String> = r
                    .invalid_reasons
                    .iter()
                    .map(|c| {
                        let name = sync_core::rules::PatrolFlag::name_zh_of(&c.reason)
                            .unwrap_or(c.reason.as_str());
                        format!("{name}×{}", c.count)
                    })
                    .collect();
                vec![
                    text(&r.chief),
                    text(&r.name),
                    text(level_label(r.level)),
                    text(system_name(r.system)),
                    text(r.division.as_str()),
                    text(&r.division_name),
                    Cell::Count(r.required),
                    Cell::Count(r.periods),
                    Cell::Count(r.periods_met),
                    Cell::Count(r.patrols),
                    Cell::Count(r.valid),
                    Cell::Count(r.invalid),
                    text(reasons.join("; ")),
                    Cell::opt(r.compliance),
                    Cell::opt(r.compliance_display),
                    Cell::Number(r.km),
                    Cell::Number(r.hours),
                    Cell::Count(r.issues_found),
                    Cell::Count(r.clock_skew),
                ]
            })
            .collect(),
    };
    let mut totals = report
        .by_division
        .iter()
        .map(patrol_group_row)
        .collect::<Vec<_>>();
    totals.push(patrol_group_row(&report.totals));
    let zero = Table {
        key: "without_patrols",
        title: "零巡查名单",
        columns: vec![
            col("chief", "责任人ID", Kind::Text),
            col("name", "姓名", Kind::Text),
            col("level", "级别", Kind::Text),
            col("division_name", "区划名称", Kind::Text),
            col("required", "应巡次数", Kind::Count),
        ],
        rows: report
            .chiefs
            .iter()
            .filter(|r| r.patrols == 0)
            .map(|r| {
                vec![
                    text(&r.chief),
                    text(&r.name),
                    text(level_label(r.level)),
                    text(&r.division_name),
                    Cell::Count(r.required),
                ]
            })
            .collect(),
    };
    vec![
        chiefs,
        Table {
            key: "by_division",
            title: "按区划汇总",
            columns: PATROL_GROUP_COLUMNS.to_vec(),
            rows: totals,
        },
        Table {
            key: "by_level",
            title: "按级别汇总",
            columns: PATROL_GROUP_COLUMNS.to_vec(),
            rows: report.by_level.iter().map(patrol_group_row).collect(),
        },
        zero,
    ]
}

const ISSUE_COUNT_COLUMNS: [Column; 11] = [
    col("reported", "上报数", Kind::Count),
    col("accepted", "受理数", Kind::Count),
    col("closed", "销号数", Kind::Count),
    col("open", "未办结", Kind::Count),
    col("overdue", "超期数", Kind::Count),
    col("invalid", "无效", Kind::Count),
    col("duplicate", "重复", Kind::Count),
    col("on_time", "按期整改数", Kind::Count),
    col("on_time_rate", "按期整改率", Kind::Percent),
    col("median_days_to_close", "办结天数中位数", Kind::Decimal),
    col("p90_days_to_close", "办结天数P90", Kind::Decimal),
];

fn count_cells(c: &IssueCounts) -> Vec<Cell> {
    vec![
        Cell::Count(c.reported),
        Cell::Count(c.accepted),
        Cell::Count(c.closed),
        Cell::Count(c.open),
        Cell::Count(c.overdue),
        Cell::Count(c.invalid),
        Cell::Count(c.duplicate),
        Cell::Count(c.on_time),
        Cell::opt(c.on_time_rate),
        Cell::opt(c.median_days_to_close),
        Cell::opt(c.p90_days_to_close),
    ]
}

fn group_table(
    key: &'static str,
    title: &'static str,
    groups: &[IssueGroup],
    totals: Option<&IssueCounts>,
) -> Table {
    let mut columns = vec![
        col("key", "代码", Kind::Text),
        col("name", "名称", Kind::Text),
        col("system", "体系", Kind::Text),
    ];
    columns.extend(ISSUE_COUNT_COLUMNS);
    let mut rows: Vec<Vec<Cell>> = groups
        .iter()
        .map(|g| {
            let mut row = vec![
                text(&g.key),
                text(&g.name),
                text(g.system.map_or("", system_name)),
            ];
            row.extend(count_cells(&g.counts));
            row
        })
        .collect();
    if let Some(t) = totals {
        let mut row = vec![text("total"), text("合计"), text("")];
        row.extend(count_cells(t));
        rows.push(row);
    }
    Table {
        key,
        title,
        columns,
        rows,
    }
}

/// The issue report's tables: per division and system first (the CSV default).
pub fn issue_tables(report: &IssueReport) -> Vec<Table> {
    vec![
        group_table(
            "by_division",
            "按区划和体系",
            &report.by_division,
            Some(&report.totals),
        ),
        group_table("by_category", "按问题类别", &report.by_category, None),
        group_table("by_severity", "按紧急程度", &report.by_severity, None),
        Table {
            key: "monthly",
            title: "月度趋势",
            columns: vec![
                col("month", "月份", Kind::Text),
                col("reported", "上报数", Kind::Count),
                col("closed", "销号数", Kind::Count),
            ],
            rows: report
                .monthly
                .iter()
                .map(|m| {
                    vec![
                        text(&m.month),
                        Cell::Count(m.reported),
                        Cell::Count(m.closed),
                    ]
                })
                .collect(),
        },
        Table {
            key: "weekly",
            title: "周度新增与销号",
            columns: vec![
                col("week", "周(周一)", Kind::Text),
                col("opened", "新增", Kind::Count),
                col("closed", "销号", Kind::Count),
            ],
            rows: report
                .weekly
                .iter()
                .map(|w| vec![text(&w.week), Cell::Count(w.opened), Cell::Count(w.closed)])
                .collect(),
        },
        Table {
            key: "overdue_by_department",
            title: "责任部门超期",
            columns: vec![
                col("department", "责任部门", Kind::Text),
                col("assigned", "在办数", Kind::Count),
                col("overdue", "超期数", Kind::Count),
                col("max_overdue_days", "最长超期天数", Kind::Count),
            ],
            rows: report
                .overdue_by_department
                .iter()
                .map(|d| {
                    vec![
                        text(&d.department),
                        Cell::Count(d.assigned),
                        Cell::Count(d.overdue),
                        Cell::Count(d.max_overdue_days.max(0) as u64),
                    ]
                })
                .collect(),
        },
    ]
}
