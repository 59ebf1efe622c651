//! The monthly report's charts as SVG, drawn on the server by plotters' SVG backend: patrol
//! compliance by division, issues opened vs closed per week, overdue issues by department.
//!
//! Text goes into the SVG as `<text>` elements and the viewer's fonts draw it, so the server
//! needs no font files (plotters is built without its TrueType feature) and Chinese labels show
//! in any browser. Each chart is a plain grouped bar chart; the numbers come from the reports.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use sync_core::stats::{IssueReport, PatrolReport};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 340;
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(0x2f, 0x6f, 0xb5);
const GREEN: RGBColor = RGBColor(0x3a, 0x9a, 0x5b);
const ORANGE: RGBColor = RGBColor(0xd9, 0x7a, 0x1e);
const RED: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

/// One coloured series of bars, one value per label.
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    values: Vec<f64>,
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing a chart: {e:?}")
}

/// Shortens long division or department names so labels do not run into each other.
fn short(label: &str, max_chars: usize) -> String {
    if label.chars().count() <= max_chars {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(max_chars - 1).collect();
        s.push('…');
        s
    }
}

/// The top of a count axis and how many labels it gets: a whole number of steps of 1, 2, 5,
/// 10, 20, 50 … above `top` (with a little headroom), at most six steps.
fn count_axis(top: f64) -> (f64, usize) {
    let wanted = (top * 1.1).ceil().max(1.0);
    let mut step = 1.0;
    for k in 0.. {
        step = [1.0, 2.0, 5.0][k % 3] * 10f64.powi((k / 3) as i32);
        if wanted / step <= 6.0 {
            break;
        }
    }
    let steps = (wanted / step).ceil();
    (steps * step, steps as usize + 1)
}

fn bars(
    title: &str,
    labels: &[String],
    series: &[Series],
    percent: bool,
    target: Option<f64>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        if labels.is_empty() {
            draw_empty(&root, title)?;
            root.present().map_err(err)?;
            drop(root);
            return Ok(svg);
        }
        let n = labels.len();
        let top = series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .chain(target)
            .fold(0.0, f64::max);
        // Counts get whole-number ticks: the axis ends on a whole step of 1, 2, 5, 10, …
        // with at most six steps, and only whole numbers are labelled.
        let (y_max, y_labels) = if percent {
            (if top <= 0.0 { 1.0 } else { top * 1.15 }, 6)
        } else {
            count_axis(top)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(y_labels)
            .y_label_formatter(&|y| {
                if percent {
                    format!("{:.0}%", y * 100.0)
                } else if (y - y.round()).abs() < 1e-6 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        let width = 0.8 / series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            let color = s.color;
            chart
                .draw_series(s.values.iter().enumerate().map(move |(i, &v)| {
                    let x0 = i as f64 + 0.1 + k as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
                }))
                .map_err(err)?
                .label(s.name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        if let Some(t) = target {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, t), (n as f64, t)],
                    RED.stroke_width(1),
                ))
                .map_err(err)?;
        }
        let max_chars = (70 / n).clamp(3, 10);
        let style = TextStyle::from((FONT, 12).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, label) in labels.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                short(label, max_chars),
                (px, py + 6),
                style.clone(),
            ))
            .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn draw_empty(root: &DrawingArea<SVGBackend, Shift>, title: &str) -> Result<(), String> {
    let centre = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(
        title.to_owned(),
        (WIDTH as i32 / 2, 24),
        TextStyle::from((FONT, 20).into_font()).pos(centre),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "本期无数据".to_owned(),
        (WIDTH as i32 / 2, HEIGHT as i32 / 2),
        TextStyle::from((FONT, 16).into_font())
            .color(&BLACK.mix(0.5))
            .pos(centre),
    ))
    .map_err(err)
}

/// Patrol compliance per division (capped chiefs over required), with the 100 % line.
pub fn compliance_by_division(report: &PatrolReport) -> Result<String, String> {
    let groups: Vec<_> = report
        .by_division
        .iter()
        .filter(|g| g.compliance.is_some())
        .collect();
    let labels: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let values = groups.iter().map(|g| g.compliance.unwrap_or(0.0)).collect();
    bars(
        "巡查达标率（按区划）",
        &labels,
        &[Series {
            name: "达标率",
            color: BLUE,
            values,
        }],
        true,
        Some(1.0),
    )
}

/// Issues opened and closed (销号) per week.
pub fn opened_vs_closed(report: &IssueReport) -> Result<String, String> {
    let labels: Vec<String> = report
        .weekly
        .iter()
        .map(|w| w.week.get(5..).unwrap_or(&w.week).to_owned())
        .collect();
    bars(
        "每周新增与销号问题",
        &labels,
        &[
            Series {
                name: "新增",
                color: ORANGE,
                values: report.weekly.iter().map(|w| w.opened as f64).collect(),
            },
            Series {
                name: "销号",
                color: GREEN,
                values: report.weekly.iter().map(|w| w.closed as f64).collect(),
            },
        ],
        false,
        None,
    )
}

/// Open and overdue issues per responsible department.
pub fn overdue_by_department(report: &IssueReport) -> Result<String, String> {
    let rows = &report.overdue_by_department;
    bars(
        "责任部门在办与超期问题",
        &rows
            .iter()
            .map(|d| d.department.clone())
            .collect::<Vec<_>>(),
        &[
            Series {
                name: "在办",
                color: BLUE,
                values: rows.iter().map(|d| d.assigned as f64).collect(),
            },
            Series {
                name: "超期",
                color: RED,
                values: rows.iter().map(|d| d.overdue as f64).collect(),
            },
        ],
        false,
        None,
    )
}

#[cfg(test)]
mod axis_tests {
    use super::*;

    #[test]
    fn count_axes_have_whole_distinct_ticks() {
        assert_eq!(count_axis(0.0), (1.0, 2));
        assert_eq!(count_axis(1.0), (2.0, 3));
        assert_eq!(count_axis(3.0), (4.0, 5));
        assert_eq!(count_axis(7.0), (8.0, 5));
        assert_eq!(count_axis(46.0), (60.0, 7));
        let svg = bars(
            "每周新增与销号",
            &["第1周".into(), "第2周".into()],
            &[Series {
                name: "新增",
                values: vec![1.0, 0.0],
                color: BLUE,
            }],
            false,
            None,
        )
        .unwrap();
        // The y-axis labels are the text elements that are whole numbers: each appears once.
        let labels: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| t.split('>').nth(1)?.split('<').next())
            .map(str::trim)
            .filter(|t| t.parse::<i64>().is_ok())
            .collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(labels, unique, "{labels:?}");
        assert!(labels.contains(&"0") && labels.contains(&"1"), "{labels:?}");
    }
}
