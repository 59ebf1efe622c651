//! The monthly report (月报) as one self-contained, printable HTML document: heading, key
//! figures, the three SVG charts inline, division and department tables, and the hotspots for
//! concentrated remediation. No scripts, fonts or images from anywhere else.
//!
//! `/report` itself is a small page (`SHELL`) that signs in like the dashboard and then loads
//! this document with the bearer token, since a browser cannot send one on plain navigation.

use std::fmt::Write as _;

use sync_core::stats::{Hotspot, IssueReport, PatrolReport};

use crate::public::api::{PublicStats, SourceCounts};

use super::files::Heading;
use super::query::day_string;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Marks a division code after its name, `天桥区（370105000000）`, as a detail to copy rather
/// than to read (`class="code"`: smaller and grey).
fn codes_as_details(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('（') {
        let after = &rest[i + '（'.len_utf8()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits == 12 && after[digits..].starts_with('）') {
            let end = i + '（'.len_utf8() + digits + '）'.len_utf8();
            out.push_str(&rest[..i]);
            let _ = write!(out, "<span class=\"code\">{}</span>", &rest[i..end]);
            rest = &rest[end..];
        } else {
            out.push_str(&rest[..i + '（'.len_utf8()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.1}%", v * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1}"))
}

const STYLE: &str = "
body{font-family:'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif;margin:24px auto;max-width:820px;color:#222}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;border-bottom:2px solid #2f6fb5;padding-bottom:3px;margin-top:28px}
.meta{color:#555;font-size:13px;margin:2px 0}.figures{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.figure{border:1px solid #ccd;border-radius:4px;padding:8px 12px;min-width:120px}.figure b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #bbb;padding:3px 6px;text-align:right}
th{background:#ddebf7}td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}
.wide{overflow-x:auto;margin-bottom:10px}.chart{page-break-inside:avoid;margin:10px 0}.code{color:#52606d;font-size:11px}
@page{size:A4;margin:15mm 12mm}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}tr,.figure{page-break-inside:avoid}th{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
";

/// Everything the report shows.
pub struct ReportContent<'a> {
    pub heading: &'a Heading,
    pub patrols: &'a PatrolReport,
    pub issues: &'a IssueReport,
    pub hotspots: &'a [Hotspot],
    /// Reports by source and the public's satisfaction (处置后督查), by division and department.
    pub public: &'a PublicStats,
    /// An asset's name by its id (hotspots name the asset they lie on).
    pub asset_name: &'a dyn Fn(&str) -> Option<String>,
    /// SVG documents: compliance by division, opened vs closed per week, overdue by department.
    pub charts: [String; 3],
}

impl std::fmt::Debug for ReportContent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportContent")
            .field("heading", &self.heading)
            .field("hotspots", &self.hotspots.len())
            .finish_non_exhaustive()
    }
}

pub fn report_html(c: &ReportContent) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&c.heading.title),
        escape(&c.heading.title)
    );
    for line in &c.heading.lines {
        let _ = write!(
            h,
            "<p class=\"meta\">{}</p>",
            codes_as_details(&escape(line))
        );
    }
    let p = &c.patrols.totals;
    let i = &c.issues.totals;
    let figures = [
        ("责任人", p.chiefs.to_string()),
        ("有效巡查", format!("{} / 应巡 {}", p.valid, p.required)),
        ("周期达标率", pct(p.compliance)),
        ("全部达标人数占比", pct(p.chiefs_compliant_share)),
        ("巡查里程", format!("{:.1} 公里", p.km)),
        ("上报问题", i.reported.to_string()),
        ("已销号", i.closed.to_string()),
        ("超期", i.overdue.to_string()),
        ("按期整改率", pct(i.on_time_rate)),
    ];
    h.push_str("<div class=\"figures\">");
    for (label, value) in figures {
        let _ = write!(
            h,
            "<div class=\"figure\">{label}<b>{}</b></div>",
            escape(&value)
        );
    }
    h.push_str("</div>");

    h.push_str("<h2>一、巡查考核</h2>");
    let _ = write!(h, "<div class=\"chart\">{}</div>", c.charts[0]);
    h.push_str("<div class=\"wide\"><table><tr><th>区划</th><th>责任人</th><th>零巡查</th><th>应巡</th><th>有效</th><th>无效</th><th>周期达标率</th><th>全部达标人数</th><th>里程(公里)</th></tr>");
    for g in c.patrols.by_division.iter().chain([&c.patrols.totals]) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{:.1}</td></tr>",
            escape(&g.name),
            g.chiefs,
            g.chiefs_without_patrols,
            g.required,
            g.valid,
            g.invalid,
            pct(g.compliance),
            g.chiefs_compliant,
            g.chiefs_required,
            g.km
        );
    }
    h.push_str("</table></div>");

    h.push_str("<h2>二、问题处置</h2>");
    let _ = write!(h, "<div class=\"chart\">{}</div>", c.charts[1]);
    h.push_str("<div class=\"wide\"><table><tr><th>区划</th><th>上报</th><th>销号</th><th>未办结</th><th>超期</th><th>按期整改率</th><th>办结天数中位数</th><th>P90</th></tr>");
    for g in &c.issues.by_division {
        let k = &g.counts;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&g.name),
            k.reported,
            k.closed,
            k.open,
            k.overdue,
            pct(k.on_time_rate),
            num(k.median_days_to_close),
            num(k.p90_days_to_close)
        );
    }
    h.push_str("</table></div>");

    h.push_str("<h2>三、责任部门超期情况</h2>");
    let _ = write!(h, "<div class=\"chart\">{}</div>", c.charts[2]);

    h.push_str("<h2>四、分析研判：问题反复点位（集中治理）</h2>");
    if c.hotspots.is_empty() {
        h.push_str("<p>本期无销号后复发的问题点位。</p>");
    } else {
        h.push_str("<div class=\"wide\"><table><tr><th>排名</th><th>问题类别</th><th>资产</th><th>复发次数</th><th>问题数</th><th>在办</th><th>最近上报</th><th>位置</th></tr>");
        for s in c.hotspots.iter().take(20) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.5}, {:.5}</td></tr>",
                s.rank,
                escape(&s.category_name),
                escape(&(c.asset_name)(&s.asset).unwrap_or_else(|| "（已撤销的对象）".into())),
                s.recurrences,
                s.issues.len(),
                s.open,
                day_string(s.last_reported_ms),
                s.location[0],
                s.location[1]
            );
        }
        h.push_str("</table></div>");
    }

    h.push_str("<h2>五、问题来源与群众满意度</h2>");
    let t = &c.public.total;
    let _ = write!(
        h,
        "<p>本期上报问题中，巡查发现 {} 件，群众扫码举报 {} 件，12369热线 {} 件，信访 {} 件；\
         群众评价满意 {} 件、不满意 {} 件，办结后尚未评价 {} 件，满意率 {}。</p>",
        t.patrol,
        t.public,
        t.hotline,
        t.letter,
        t.satisfied,
        t.not_satisfied,
        t.unrated,
        pct(satisfaction_rate(t))
    );
    for (first, groups) in [
        ("区划", &c.public.by_division),
        ("责任单位", &c.public.by_department),
    ] {
        let _ = write!(
            h,
            "<div class=\"wide\"><table><tr><th>{first}</th><th>巡查发现</th><th>群众扫码举报</th><th>12369热线</th><th>信访</th><th>满意</th><th>不满意</th><th>未评价</th><th>满意率</th></tr>"
        );
        for (name, k) in groups.iter().chain([(&"合计".to_string(), t)]) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                k.patrol,
                k.public,
                k.hotline,
                k.letter,
                k.satisfied,
                k.not_satisfied,
                k.unrated,
                pct(satisfaction_rate(k))
            );
        }
        h.push_str("</table></div>");
    }
    h.push_str("</body></html>");
    h
}

/// Satisfied among the rated reports; none when nobody has rated yet.
fn satisfaction_rate(k: &SourceCounts) -> Option<f64> {
    let rated = k.satisfied + k.not_satisfied;
    (rated > 0).then(|| k.satisfied as f64 / rated as f64)
}

/// `/report`: signs in (or reuses the dashboard's token) and shows the report for the chosen
/// period. Self-contained; everything it loads comes from this server.
pub const SHELL: &str = r#"<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>ChiefSync 月报</title>
<style>body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:24px auto;max-width:820px;padding:0 10px}form{margin:8px 0}label{margin-right:10px;display:inline-block}
.note{background:#fef3c7;color:#713f12;padding:6px 10px;border-radius:4px}
a:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
@media print{.controls{display:none}body{margin:0;max-width:none}}#report{border:0;width:100%}</style></head>
<body>
<div class="controls">
<p><a href="/">← 返回工作台</a></p>
<form id="login" hidden><b>登录</b> <input id="u" placeholder="用户名" aria-label="用户名" autocomplete="username">
<input id="p" type="password" placeholder="密码" aria-label="密码" autocomplete="current-password"> <button>登录</button> <span id="msg" role="alert"></span></form>
<form id="period"><label>开始 <input type="date" name="from"></label><label>结束 <input type="date" name="to"></label>
<button>生成月报</button> <button type="button" id="print">打印</button></form>
<p id="period-note" class="note" hidden></p>
</div>
<div id="out">加载中…</div>
<script src="/report.js"></script>
</body></html>
"#;

/// The script of the report page, served as `/report.js` so the page's Content-Security-Policy
/// can refuse every inline script.
pub const SHELL_JS: &str = r#"const KEY = "chiefsync.access_token";
const token = () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
const q = new URLSearchParams(location.search);
const period = document.getElementById("period");
for (const k of ["from", "to"]) if (q.get(k)) period.elements[k].value = q.get(k);
// By default the current month in China time; in its first week, which has too little to
// report, the last complete month, and the page says so.
if (!q.get("from")) {
  const now = new Date(Date.now() + 8 * 3600e3);
  const y = now.getUTCFullYear(), m = now.getUTCMonth();
  const day = (d) => d.toISOString().slice(0, 10);
  const note = document.getElementById("period-note");
  if (now.getUTCDate() <= 7) {
    period.elements.from.value = day(new Date(Date.UTC(y, m - 1, 1)));
    period.elements.to.value = day(new Date(Date.UTC(y, m, 0)));
    note.textContent = "本月（" + (m + 1) + "月）刚开始，默认显示上月（" + (new Date(Date.UTC(y, m - 1, 1)).getUTCMonth() + 1) + "月）的完整月报；可在上方改选日期。";
  } else {
    period.elements.from.value = day(new Date(Date.UTC(y, m, 1)));
    period.elements.to.value = day(now);
    note.textContent = "本月（" + (m + 1) + "月）截至今天的月报。";
  }
  note.hidden = false;
}
document.getElementById("print").onclick = () => window.print();
period.onsubmit = (e) => { e.preventDefault(); load(); };
document.getElementById("login").onsubmit = async (e) => {
  e.preventDefault();
  const r = await fetch("/api/v1/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: u.value, password: p.value, device_id: "web-report"})});
  const body = await r.json();
  if (!r.ok) { msg.textContent = body.message; return; }
  sessionStorage.setItem(KEY, body.access_token);
  document.getElementById("login").hidden = true;
  load();
};
async function load() {
  const params = new URLSearchParams(q);
  for (const k of ["from", "to"]) if (period.elements[k].value) params.set(k, period.elements[k].value);
  history.replaceState(null, "", "?" + params);
  if (!token()) { document.getElementById("login").hidden = false; out.textContent = ""; return; }
  const r = await fetch("/api/v1/stats/report.html?" + params, {headers: {Authorization: "Bearer " + token()}});
  if (r.status === 401) { sessionStorage.removeItem(KEY); document.getElementById("login").hidden = false; out.textContent = ""; return; }
  if (!r.ok) { out.textContent = (await r.json()).message; return; }
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  out.replaceChildren(...doc.head.querySelectorAll("style"), ...doc.body.childNodes);
}
load();
"#;

/// The report page's policy: its own script only; inline styles, since the report document's
/// stylesheet and its SVG charts are placed into the page.
pub const SHELL_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                             img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; \
                             form-action 'self'; frame-ancestors 'none'";

/// The report document's policy, should it be opened on its own: nothing runs or loads, its
/// own stylesheet and SVG apply.
pub const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                              base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[cfg(test)]
mod code_tests {
    #[test]
    fn division_codes_are_marked_as_details() {
        assert_eq!(
            super::codes_as_details("区划：天桥区（370105000000）；体系（全部）"),
            "区划：天桥区<span class=\"code\">（370105000000）</span>；体系（全部）"
        );
    }
}
