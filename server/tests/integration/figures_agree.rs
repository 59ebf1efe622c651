//! Compliance is one figure wherever an office reads it: the JSON answer, the CSV tables, the
//! XLSX workbook, the monthly report (月报) and the desk's patrol reminders all carry the same
//! periods, periods met, compliance and chiefs fully compliant, for every chief, division,
//! level and the total, on the demo's own documents.

use std::collections::BTreeSet;
use std::io::Cursor;

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use serde_json::Value;
use server::demo::SUPERVISOR;
use server::stats::query::day_string;

use crate::harness::TestServer;

const DAY_MS: i64 = 86_400_000;

async fn raw(s: &TestServer, path: &str, token: &str) -> Vec<u8> {
    let mut res = awc::Client::new()
        .get(format!("{}{path}", s.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("request sent");
    assert_eq!(res.status().as_u16(), 200, "{path}");
    res.body().limit(64 << 20).await.expect("body").to_vec()
}

/// A share as JSON gives it (`null` when nothing is required).
fn share(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn same(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}"),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

/// The monthly report's percentage, as it prints one.
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.1}%", v * 100.0))
}

/// CSV rows of one table, keyed by the first column, with the titles.
fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let titles = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (titles, rows)
}

fn csv_f64(cell: &str) -> Option<f64> {
    (!cell.is_empty()).then(|| cell.parse().unwrap())
}

/// The rows of one sheet below its title row, and the titles.
fn sheet_rows(book: &mut Xlsx<Cursor<Vec<u8>>>, name: &str) -> (Vec<String>, Vec<Vec<Data>>) {
    let range = book.worksheet_range(name).unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    let at = rows
        .iter()
        .position(|r| r.iter().any(|c| *c == "周期达标率"))
        .unwrap_or_else(|| panic!("no title row in {name}"));
    let titles = rows[at].iter().map(ToString::to_string).collect();
    (titles, rows[at + 1..].to_vec())
}

fn xlsx_f64(cell: &Data) -> Option<f64> {
    match cell {
        Data::Float(x) => Some(*x),
        Data::Int(n) => Some(*n as f64),
        Data::Empty => None,
        other => panic!("not a number: {other:?}"),
    }
}

/// Each group of the JSON (`by_division` rows, then `totals`; or `by_level`) against the CSV
/// and the sheet holding it.
fn groups_agree(
    groups: &[&Value],
    csv: &(Vec<String>, Vec<Vec<String>>),
    sheet: &(Vec<String>, Vec<Vec<Data>>),
) {
    let csv_col = |t: &str| csv.0.iter().position(|x| x == t).unwrap();
    let sheet_col = |t: &str| sheet.0.iter().position(|x| x == t).unwrap();
    assert_eq!(csv.1.len(), groups.len());
    for g in groups {
        let key = g["key"].as_str().unwrap();
        let c = csv.1.iter().find(|r| r[0] == key).unwrap();
        let x = sheet.1.iter().find(|r| r[0] == key).unwrap();
        for (field, title) in [
            ("periods", "考核周期数(人次)"),
            ("periods_met", "达标周期数(人次)"),
            ("chiefs_required", "应考核人数"),
            ("chiefs_compliant", "全部达标人数"),
        ] {
            let want = g[field].as_u64().unwrap();
            assert_eq!(c[csv_col(title)], want.to_string(), "CSV {key} {field}");
            assert_eq!(
                xlsx_f64(&x[sheet_col(title)]),
                Some(want as f64),
                "XLSX {key} {field}"
            );
        }
        for (field, title) in [
            ("compliance", "周期达标率"),
            ("chiefs_compliant_share", "全部达标人数占比"),
        ] {
            let want = share(&g[field]);
            same(
                csv_f64(&c[csv_col(title)]),
                want,
                &format!("CSV {key} {field}"),
            );
            same(
                xlsx_f64(&x[sheet_col(title)]),
                want,
                &format!("XLSX {key} {field}"),
            );
        }
    }
}

#[actix_web::test]
async fn json_csv_xlsx_the_report_and_the_desk_agree_on_compliance() {
    let s = TestServer::demo().await;
    let token = s.token(SUPERVISOR, "pc").await;
    let now = server::state::now_ms();
    let q = format!(
        "from={}&to={}",
        day_string(now - 29 * DAY_MS),
        day_string(now)
    );
    let json = s.get(&format!("/api/v1/stats/patrols?{q}"), &token).await;
    let json = json.expect_ok().clone();
    let chiefs = json["chiefs"].as_array().unwrap();
    // The demo's first regression: its chiefs miss one week in five, so compliance is below 1.
    assert!(
        chiefs
            .iter()
            .any(|r| r["periods_met"].as_u64() < r["periods"].as_u64()),
        "{json}"
    );

    // CSV, table by table.
    let csv = |table: &str| {
        let path = format!("/api/v1/stats/patrols?{q}&format=csv&table={table}");
        let s = &s;
        let token = &token;
        async move { csv_rows(&raw(s, &path, token).await) }
    };
    let chief_csv = csv("chiefs").await;
    let division_csv = csv("by_division").await;
    let level_csv = csv("by_level").await;
    // XLSX, sheet by sheet.
    let xlsx = raw(
        &s,
        &format!("/api/v1/stats/patrols?{q}&format=xlsx"),
        &token,
    )
    .await;
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(xlsx)).unwrap();
    let chief_sheet = sheet_rows(&mut book, "巡查考核明细");
    let division_sheet = sheet_rows(&mut book, "按区划汇总");
    let level_sheet = sheet_rows(&mut book, "按级别汇总");

    // Every chief.
    let ccol = |t: &str| chief_csv.0.iter().position(|x| x == t).unwrap();
    let xcol = |t: &str| chief_sheet.0.iter().position(|x| x == t).unwrap();
    assert_eq!(chief_csv.1.len(), chiefs.len());
    for row in chiefs {
        let id = row["chief"].as_str().unwrap();
        let c = chief_csv.1.iter().find(|r| r[0] == id).unwrap();
        let x = chief_sheet.1.iter().find(|r| r[0] == id).unwrap();
        for (field, title) in [
            ("periods", "考核周期数"),
            ("periods_met", "达标周期数"),
            ("valid", "有效巡查"),
        ] {
            let want = row[field].as_u64().unwrap();
            assert_eq!(c[ccol(title)], want.to_string(), "CSV {id} {field}");
            assert_eq!(
                xlsx_f64(&x[xcol(title)]),
                Some(want as f64),
                "XLSX {id} {field}"
            );
        }
        let want = share(&row["compliance"]);
        same(csv_f64(&c[ccol("周期达标率")]), want, &format!("CSV {id}"));
        same(
            xlsx_f64(&x[xcol("周期达标率")]),
            want,
            &format!("XLSX {id}"),
        );
        // Compliance is periods met over periods required, nothing else.
        let (met, periods) = (
            row["periods_met"].as_u64().unwrap(),
            row["periods"].as_u64().unwrap(),
        );
        same(
            want,
            (periods > 0).then(|| met as f64 / periods as f64),
            &format!("{id}: periods met / periods"),
        );
    }

    // Every group.
    let mut divisions: Vec<&Value> = json["by_division"].as_array().unwrap().iter().collect();
    divisions.push(&json["totals"]);
    groups_agree(&divisions, &division_csv, &division_sheet);
    let levels: Vec<&Value> = json["by_level"].as_array().unwrap().iter().collect();
    groups_agree(&levels, &level_csv, &level_sheet);

    // The monthly report prints the same figures, rounded as it rounds.
    let html = String::from_utf8(raw(&s, &format!("/api/v1/stats/report.html?{q}"), &token).await)
        .unwrap();
    let t = &json["totals"];
    for (label, value) in [
        ("周期达标率", pct(share(&t["compliance"]))),
        ("全部达标人数占比", pct(share(&t["chiefs_compliant_share"]))),
    ] {
        let figure = format!("<div class=\"figure\">{label}<b>{value}</b></div>");
        assert!(html.contains(&figure), "{figure} not in the report");
    }
    for g in &divisions {
        let cells = format!(
            "<td>{}</td><td>{} / {}</td>",
            pct(share(&g["compliance"])),
            g["chiefs_compliant"],
            g["chiefs_required"]
        );
        assert!(
            html.contains(&cells),
            "{} of {}: {cells} not in the report",
            g["name"],
            g["key"]
        );
    }

    // The desk's reminders: a chief is reminded for the current period exactly when the
    // statistics for that period say it is not met, with the same count of valid patrols.
    let reminders = s.get("/api/v1/reminders", &token).await;
    let reminders = reminders.expect_ok().as_array().unwrap().clone();
    assert!(
        !reminders.is_empty(),
        "the demo's chiefs owe this week's patrol"
    );
    let periods: BTreeSet<(i64, i64)> = reminders
        .iter()
        .map(|r| {
            (
                r["period_start_ms"].as_i64().unwrap(),
                r["period_end_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    for (start, end) in periods {
        let window = format!("from={}&to={}", day_string(start), day_string(end - 1));
        let stats = s
            .get(&format!("/api/v1/stats/patrols?{window}"), &token)
            .await;
        let stats = stats.expect_ok().clone();
        let reminded: Vec<&Value> = reminders
            .iter()
            .filter(|r| r["period_start_ms"] == start)
            .collect();
        for r in &reminded {
            let row = stats["chiefs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["chief"] == r["chief"])
                .unwrap_or_else(|| panic!("no statistics for {}", r["chief"]));
            assert_eq!(row["valid"], r["done"], "{row} vs {r}");
            assert_eq!(
                (&row["periods"], &row["periods_met"]),
                (&1.into(), &0.into()),
                "{row}"
            );
        }
        // And every chief of the reminded levels whose period is not met is reminded.
        let levels: BTreeSet<&str> = reminded
            .iter()
            .map(|r| r["level"].as_str().unwrap())
            .collect();
        let systems: BTreeSet<&str> = reminded
            .iter()
            .map(|r| r["system"].as_str().unwrap())
            .collect();
        for row in stats["chiefs"].as_array().unwrap() {
            let behind = row["periods"] == 1 && row["periods_met"] == 0;
            if behind
                && levels.contains(row["level"].as_str().unwrap())
                && systems.contains(row["system"].as_str().unwrap())
            {
                assert!(
                    reminded.iter().any(|r| r["chief"] == row["chief"]),
                    "{} is behind in the statistics but not reminded",
                    row["chief"]
                );
            }
        }
    }
    s.stop().await;
}
