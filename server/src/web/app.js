// ChiefSync supervisor dashboard. Plain JavaScript, no framework, nothing loaded from outside.
//
// Safety: every piece of text from the server is put into the page with textContent or as an
// attribute value through el(), never as HTML. Requests carry the access token in the
// Authorization header (no cookies), so another site cannot make the browser act on a
// supervisor's behalf. The session ends when the tab closes (sessionStorage), after 30 minutes
// without activity, or when the refresh token is refused.
"use strict";

const TOKEN = "chiefsync.access_token"; // shared with the monthly report page
const REFRESH = "chiefsync.refresh_token";
const USER = "chiefsync.user";
const IDLE_MS = 30 * 60 * 1000;
const DAY_MS = 86400000;

const STATUSES = [
  ["reported", "待受理", "#6b7280"],
  ["accepted", "已受理", "#2563eb"],
  ["assigned", "整改中", "#d97706"],
  ["submitted", "待核查", "#7c3aed"],
  ["closed", "已销号", "#16a34a"],
  ["invalid", "无效", "#9ca3af"],
  ["duplicate", "重复", "#a16207"],
];
const STATUS_NAME = Object.fromEntries(STATUSES.map(([k, zh]) => [k, zh]));
const STATUS_COLOR = Object.fromEntries(STATUSES.map(([k, , c]) => [k, c]));
const SEVERITY = { general: "一般", urgent: "紧急", critical: "特急" };
const KIND = {
  reported: "上报", accepted: "受理", assigned: "交办", rectification_submitted: "提交整改",
  verified: "核查销号", rejected: "退回整改", invalidated: "认定无效", duplicate_of: "重复问题",
  escalated: "督办", reopened: "重新打开", comment: "备注",
};
// The actions the web offers, with the fields each needs. rectification_submitted is done on a
// phone, where the after photos are taken.
const ACTIONS = {
  accepted: { label: "受理", fields: [] },
  assigned: { label: "交办", fields: [
    ["assignee_kind", "交办对象类型", "select", { department: "部门", user: "用户" }],
    ["assignee", "部门或用户", "text", "区水务局"],
    ["deadline", "整改期限", "date"],
  ] },
  verified: { label: "核查通过（销号）", fields: [["note", "核查意见", "text", ""]] },
  rejected: { label: "退回整改", fields: [["reason", "退回原因（必填）", "text", ""]] },
  invalidated: { label: "认定无效", fields: [["reason", "原因（必填）", "text", ""]] },
  duplicate_of: { label: "标记重复", fields: [["issue", "原问题编号", "text", ""]] },
  escalated: { label: "督办", fields: [["note", "督办意见", "text", ""]] },
  reopened: { label: "重新打开", fields: [["reason", "原因（必填）", "text", ""]] },
  comment: { label: "备注", fields: [["text", "内容", "text", ""]] },
};

// ---- small helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// Times are shown in China time, whatever the browser's zone.
function fmtTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms + 8 * 3600e3);
  return d.toISOString().slice(0, 16).replace("T", " ");
}
function fmtDate(ms) {
  return ms === null || ms === undefined ? "—" : fmtTime(ms).slice(0, 10);
}
function chinaDateToMs(value, endOfDay) {
  if (!value) return null;
  const ms = Date.parse(value + "T00:00:00+08:00");
  return endOfDay ? ms + DAY_MS : ms;
}

function flash(text) {
  const f = document.getElementById("flash");
  f.textContent = text;
  f.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { f.hidden = true; }, 4000);
}

// ---- session -------------------------------------------------------------------------------

let lastActivity = Date.now();
for (const ev of ["click", "keydown"]) document.addEventListener(ev, () => { lastActivity = Date.now(); });
setInterval(() => {
  if (sessionStorage.getItem(TOKEN) && Date.now() - lastActivity > IDLE_MS) logout("长时间未操作，已退出登录");
}, 60000);

function deviceId() {
  let id = sessionStorage.getItem("chiefsync.device");
  if (!id) {
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("chiefsync.device", id);
  }
  return id;
}

function keepGrant(grant) {
  sessionStorage.setItem(TOKEN, grant.access_token);
  sessionStorage.setItem(REFRESH, grant.refresh_token);
  sessionStorage.setItem(USER, JSON.stringify(grant.user));
}

function currentUser() {
  try { return JSON.parse(sessionStorage.getItem(USER)); } catch { return null; }
}

// Ends the session on the server too, so the refresh token left behind is worthless.
function logout(message) {
  const refreshToken = sessionStorage.getItem(REFRESH);
  if (refreshToken) {
    fetch("/api/v1/auth/logout", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    }).catch(() => {});
  }
  for (const k of [TOKEN, REFRESH, USER]) sessionStorage.removeItem(k);
  showLogin(message || "");
}

async function refresh() {
  const token = sessionStorage.getItem(REFRESH);
  if (!token) return false;
  const r = await fetch("/api/v1/auth/refresh", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: token }),
  });
  if (!r.ok) return false;
  keepGrant(await r.json());
  return true;
}

// Calls the API; on an expired access token refreshes once, otherwise ends the session.
// A random UUID (version 4) from the browser's CSPRNG; crypto.randomUUID needs a secure
// context, which a server reached by plain http on the office network is not.
function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
}

async function api(method, path, body, raw, extraHeaders) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { Authorization: "Bearer " + (sessionStorage.getItem(TOKEN) || ""), ...extraHeaders };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch("/api/v1" + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401 && attempt === 0 && await refresh()) continue;
    if (r.status === 401) { logout("登录已过期，请重新登录"); throw new Error("unauthorized"); }
    if (raw) return r;
    const text = await r.text();
    const json = text ? JSON.parse(text) : null;
    return { ok: r.ok, status: r.status, body: json };
  }
  throw new Error("unreachable");
}

async function getJson(path) {
  const r = await api("GET", path);
  if (!r.ok) throw new Error((r.body && r.body.message) || "请求失败 " + r.status);
  return r.body;
}

// ---- login ---------------------------------------------------------------------------------

function showLogin(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("view").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
}

async function login(event) {
  event.preventDefault();
  const username = document.getElementById("username").value.trim();
  const password = document.getElementById("password").value;
  const r = await fetch("/api/v1/auth/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password, device_id: deviceId() }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    document.getElementById("login-error").textContent = body.message || "登录失败";
    return;
  }
  keepGrant(body);
  document.getElementById("password").value = "";
  document.getElementById("login").hidden = true;
  if (!location.hash || location.hash === "#/") location.hash = "#/board";
  else route();
}

// ---- board ---------------------------------------------------------------------------------

const FILTERS = ["system", "category", "severity", "asset", "assignee", "division", "from", "to", "overdue", "possible_duplicate"];

function boardQuery(params) {
  const q = new URLSearchParams({ limit: "500" });
  for (const k of ["system", "category", "severity", "asset", "assignee", "division"]) {
    if (params.get(k)) q.set(k, params.get(k));
  }
  if (params.get("from")) q.set("reported_from", chinaDateToMs(params.get("from"), false));
  if (params.get("to")) q.set("reported_to", chinaDateToMs(params.get("to"), true));
  if (params.get("overdue")) q.set("overdue", "true");
  if (params.get("possible_duplicate")) q.set("possible_duplicate", "true");
  return q;
}

function filterForm(params, ref) {
  const categories = (ref.categories || []).map((c) => [c.code, c.name_zh]);
  const select = (name, label, options) => el("label", {}, label,
    el("select", { name }, el("option", { value: "" }, "全部"),
      options.map(([v, t]) => el("option", { value: v, selected: params.get(name) === v }, t))));
  const input = (name, label, type) => el("label", {}, label,
    el("input", { name, type: type || "text", value: params.get(name) || "" }));
  const check = (name, label) => el("label", {}, label,
    el("input", { name, type: "checkbox", value: "1", checked: !!params.get(name) }));
  const form = el("form", { class: "filters", id: "filters" },
    select("system", "体系", [["river", "河长制"], ["forest", "林长制"], ["field", "田长制"]]),
    select("category", "问题类别", categories),
    select("severity", "紧急程度", Object.entries(SEVERITY)),
    select("asset", "河段/林区/网格", (ref.assets || []).map((a) => [a.id, a.name])),
    input("assignee", "承办单位/人"),
    input("division", "行政区划代码"),
    input("from", "上报起", "date"),
    input("to", "上报止", "date"),
    check("overdue", "仅超期"),
    check("possible_duplicate", "疑似重复"),
    el("button", { type: "submit" }, "筛选"),
    el("button", { type: "button", on: { click: () => { location.hash = "#/board"; } } }, "清除"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const k of FILTERS) {
      const f = form.elements[k];
      const v = f.type === "checkbox" ? (f.checked ? "1" : "") : f.value.trim();
      if (v) q.set(k, v);
    }
    location.hash = "#/board?" + q;
  });
  return form;
}

function card(row) {
  const badges = [];
  if (row.overdue_days) badges.push(el("span", { class: "badge late" }, "超期" + row.overdue_days + "天"));
  if (row.escalations) badges.push(el("span", { class: "badge late" }, "督办×" + row.escalations));
  if (row.possible_duplicate_of) badges.push(el("span", { class: "badge dup" }, "疑似重复"));
  if (row.photo_completeness && row.photo_completeness.complete === false) badges.push(el("span", { class: "badge dup" }, "照片未齐"));
  if (row.public) badges.push(el("span", { class: "badge dup public-source" }, row.public.source_zh));
  if (row.public && row.public.not_satisfied) badges.push(el("span", { class: "badge late public-unsatisfied", title: row.public.not_satisfied }, "群众不满意：" + row.public.not_satisfied));
  return el("a", { class: "card sev-" + row.severity, href: "#/issue/" + encodeURIComponent(row.id), "data-issue": row.id },
    el("div", {}, row.description),
    el("div", { class: "meta" }, SEVERITY[row.severity] || row.severity, " · ", row.category),
    el("div", { class: "meta" }, "上报 ", fmtTime(row.reported_at_ms)),
    row.assignee ? el("div", { class: "meta" }, "承办 ", row.assignee.name, row.deadline_ms ? " · 期限 " + fmtDate(row.deadline_ms) : "") : null,
    badges.length ? el("div", {}, badges) : null);
}

async function showBoard(params) {
  const view = document.getElementById("view");
  const [ref, page] = await Promise.all([getJson("/reference"), getJson("/issues?" + boardQuery(params))]);
  const columns = STATUSES.map(([status, zh]) => {
    const rows = page.items.filter((r) => r.status === status);
    return el("div", { class: "column", "data-status": status },
      el("h2", {}, zh, " ", el("span", { class: "badge" }, rows.length)),
      rows.map(card));
  });
  view.replaceChildren(
    el("h1", {}, "问题看板 ", el("span", { class: "badge" }, "共 " + page.total + " 件")),
    filterForm(params, ref),
    el("div", { class: "board" }, columns));
}

// ---- issue page ----------------------------------------------------------------------------

const photoUrls = new Map();
async function photoImg(sha) {
  const img = el("img", { alt: "照片 " + sha.slice(0, 12), "data-sha": sha });
  const fig = el("figure", {}, img, el("figcaption", { class: "meta" }, sha.slice(0, 16) + "…"));
  try {
    let url = photoUrls.get(sha);
    if (!url) {
      const r = await api("GET", "/blobs/" + encodeURIComponent(sha), undefined, true);
      if (!r.ok) throw new Error(r.status === 404 ? "照片尚未上传" : "照片无法读取");
      url = URL.createObjectURL(await r.blob());
      photoUrls.set(sha, url);
    }
    img.src = url;
  } catch (e) {
    if (e.message === "unauthorized") throw e;
    fig.replaceChildren(el("div", { class: "warnings" }, e.message), el("figcaption", { class: "meta" }, sha.slice(0, 16) + "…"));
  }
  return fig;
}

function actionForm(kind, issue, done) {
  const spec = ACTIONS[kind];
  const form = el("form", { class: "action-form panel", id: "action-form", "data-kind": kind },
    el("strong", {}, spec.label));
  for (const [name, label, type, init] of spec.fields) {
    let input;
    if (type === "select") {
      input = el("select", { name }, Object.entries(init).map(([v, t]) => el("option", { value: v }, t)));
    } else {
      let value = init || "";
      if (name === "issue" && issue.possible_duplicate_of) value = issue.possible_duplicate_of;
      if (type === "date") value = fmtDate(Date.now() + 7 * DAY_MS);
      input = el("input", { name, type, value });
    }
    form.append(el("label", {}, label, input));
  }
  form.append(el("div", { class: "actions" },
    el("button", { type: "submit", id: "action-submit" }, "确认" + spec.label),
    el("button", { type: "button", on: { click: () => form.remove() } }, "取消")));
  // One key per form: a double click or a resent request acts once.
  const actionKey = uuid4();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    const body = { kind };
    if (kind === "assigned") {
      body.assignee = { [f.assignee_kind.value]: f.assignee.value.trim() };
      body.deadline_ms = chinaDateToMs(f.deadline.value, true) - 1;
    }
    for (const k of ["note", "reason", "text", "issue"]) if (f[k]) body[k] = f[k].value.trim();
    const r = await api("POST", "/issues/" + encodeURIComponent(issue.id) + "/events", body,
      false, { "Idempotency-Key": actionKey });
    if (r.ok) { flash(spec.label + "成功"); done(); return; }
    let message = (r.body && r.body.message) || "操作失败";
    if (r.status === 409 && r.body.allowed) {
      message += "。当前可进行：" + r.body.allowed.map((k) => KIND[k] || k).join("、");
    }
    form.querySelector(".error")?.remove();
    form.append(el("p", { class: "error", role: "alert" }, message));
  });
  return form;
}

async function showIssue(id) {
  const view = document.getElementById("view");
  const issue = await getJson("/issues/" + encodeURIComponent(id));
  const reload = () => showIssue(id);
  const actionsBox = el("div", {});
  const buttons = issue.allowed_actions.filter((k) => ACTIONS[k]).map((k) =>
    el("button", { type: "button", "data-action": k, on: { click: () => actionsBox.replaceChildren(actionForm(k, issue, reload)) } },
      ACTIONS[k].label));
  const warnings = issue.photos.flatMap((p) => p.warnings.map((w) => (p.role === "after" ? "整改后照片" : "现场照片") + " " + p.sha256.slice(0, 8) + "：" + w));
  if (issue.possible_duplicate_of) warnings.unshift("可能与问题 " + issue.possible_duplicate_of + " 重复");
  if (issue.photos.some((p) => p.stored === false)) warnings.push("有照片尚未上传到服务器");
  const before = issue.photos.filter((p) => p.role !== "after");
  const after = issue.photos.filter((p) => p.role === "after");
  const timeline = el("table", { id: "timeline" },
    el("thead", {}, el("tr", {}, ["环节", "操作人", "设备", "设备时间", "服务器接收", "说明"].map((h) => el("th", {}, h)))),
    el("tbody", {}, issue.timeline.map((t) => el("tr", { class: t.superseded ? "superseded" : "", "data-kind": t.kind },
      el("td", {}, KIND[t.kind] || t.kind),
      el("td", {}, t.by),
      el("td", {}, t.device),
      el("td", {}, fmtTime(t.counted_at_ms),
        t.counted_at_ms !== t.at_ms ? el("div", { class: "meta" }, "设备时间 " + fmtTime(t.at_ms)) : null),
      el("td", {}, t.received_at_ms ? fmtTime(t.received_at_ms) + (t.received_from ? "（" + t.received_from + "）" : "") : "—"),
      el("td", { class: t.superseded ? "why" : "" }, t.superseded ? "已被取代：" + t.superseded : describe(t))))));
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/board" }, "← 返回看板")),
    el("h1", {}, issue.description, " ",
      el("span", { class: "badge status", id: "issue-status", "data-status": issue.status || "" }, STATUS_NAME[issue.status] || issue.status || "—")),
    el("div", { class: "grid2" },
      el("div", { class: "panel" }, el("dl", { class: "facts" },
        el("dt", {}, "编号"), el("dd", {}, issue.id),
        el("dt", {}, "类别"), el("dd", {}, issue.category),
        el("dt", {}, "紧急程度"), el("dd", {}, SEVERITY[issue.severity] || issue.severity),
        el("dt", {}, "位置"), el("dd", {}, issue.asset, " · ", issue.division, " · ", issue.location.map((x) => x.toFixed(5)).join(", ")),
        el("dt", {}, "上报"), el("dd", {}, issue.reporter, " · ", fmtTime(issue.reported_at_ms)),
        el("dt", {}, "承办"), el("dd", {}, issue.assignee ? issue.assignee.name : "—"),
        el("dt", {}, "期限"), el("dd", {}, fmtDate(issue.deadline_ms), issue.overdue_days ? el("span", { class: "badge late" }, " 超期" + issue.overdue_days + "天") : ""),
        el("dt", {}, "督办/退回"), el("dd", {}, issue.escalations + " / " + issue.rejections))),
      el("div", { class: "panel" },
        el("h2", {}, "可进行的操作"),
        buttons.length ? el("div", { class: "actions", id: "actions" }, buttons) : el("p", {}, "当前没有您可进行的操作。"),
        actionsBox,
        warnings.length ? el("div", {}, el("h2", {}, "证据提示"), el("ul", { class: "warnings" }, warnings.map((w) => el("li", {}, w)))) : null)),
    el("div", { class: "panel" }, el("h2", {}, "照片对比"),
      el("div", { class: "photos", id: "photos" },
        el("div", {}, el("h2", {}, "整改前"), before.length ? null : el("p", {}, "无")),
        el("div", {}, el("h2", {}, "整改后"), after.length ? null : el("p", {}, "无")))),
    el("div", { class: "panel" }, el("h2", {}, "处理过程"), timeline));
  const [beforeBox, afterBox] = view.querySelectorAll("#photos > div");
  for (const p of before) beforeBox.append(await photoImg(p.sha256));
  for (const p of after) afterBox.append(await photoImg(p.sha256));
}

function describe(t) {
  const p = t.payload || {};
  if (t.kind === "assigned") return "交办 " + (p.assignee ? Object.values(p.assignee)[0] : "") + "，期限 " + fmtDate(p.deadline_ms);
  return p.reason || p.note || p.text || (p.issue ? "原问题 " + p.issue : "") || (p.photos ? p.photos.length + " 张照片" : "");
}

// ---- map -----------------------------------------------------------------------------------

// An equirectangular projection fitted to the points: at district scale the distortion is far
// below what a supervisor can see.
function projection(points, width, height) {
  const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
  const [minLon, maxLon, minLat, maxLat] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const spanX = Math.max((maxLon - minLon) * kx, 1e-6), spanY = Math.max(maxLat - minLat, 1e-6);
  const scale = 0.92 * Math.min(width / spanX, height / spanY);
  const ox = (width - spanX * scale) / 2, oy = (height - spanY * scale) / 2;
  return ([lon, lat]) => [ox + (lon - minLon) * kx * scale, height - oy - (lat - minLat) * scale];
}

function geometryPoints(g) {
  return g.type === "LineString" ? g.coordinates : g.coordinates.flat();
}

function drawAsset(project, asset) {
  const g = asset.geometry;
  const title = svg("title", {}, asset.name);
  if (g.type === "LineString") {
    return svg("polyline", { class: "river", points: g.coordinates.map((p) => project(p).join(",")).join(" ") }, title);
  }
  const d = g.coordinates.map((ring) => "M" + ring.map((p) => project(p).join(",")).join("L") + "Z").join(" ");
  return svg("path", { class: asset.system === "forest" ? "forest" : "field", d, "fill-rule": "evenodd" }, title);
}

async function showMap() {
  const view = document.getElementById("view");
  const [ref, page] = await Promise.all([getJson("/reference"), getJson("/issues?limit=500")]);
  const points = ref.assets.flatMap((a) => geometryPoints(a.geometry)).concat(page.items.map((i) => i.location));
  const [w, h] = [1000, 700];
  const map = svg("svg", { class: "map", id: "map", viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "辖区地图" });
  if (points.length) {
    const project = projection(points, w, h);
    for (const a of ref.assets) map.append(drawAsset(project, a));
    for (const i of page.items) {
      const [x, y] = project(i.location);
      map.append(svg("circle", {
        class: "issue", cx: x, cy: y, r: 7, fill: STATUS_COLOR[i.status] || "#000", "data-issue": i.id,
        on: { click: () => { location.hash = "#/issue/" + encodeURIComponent(i.id); } },
      }, svg("title", {}, (STATUS_NAME[i.status] || "") + " · " + i.description)));
    }
  }
  view.replaceChildren(
    el("h1", {}, "地图"),
    el("p", { class: "legend" },
      el("span", {}, "— 河段"), el("span", {}, "▰ 林区"), el("span", {}, "▰ 农田网格"),
      STATUSES.map(([, zh, c]) => el("span", {}, legendDot(c), zh))),
    map);
}

// The CSP forbids style attributes; setting the property through the DOM is allowed.
function legendDot(color) {
  const dot = el("i", { class: "dot" });
  dot.style.background = color;
  return dot;
}

// ---- patrols and reminders -----------------------------------------------------------------

async function showPatrols() {
  const view = document.getElementById("view");
  const rows = await getJson("/patrols?limit=200");
  view.replaceChildren(el("h1", {}, "巡查记录"),
    el("table", {}, el("thead", {}, el("tr", {}, ["开始", "河长", "对象", "里程", "时长", "有效", "提示"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, el("a", { href: "#/patrol/" + encodeURIComponent(r.id) }, fmtTime(r.started_at_ms))),
        el("td", {}, r.chief), el("td", {}, r.asset),
        el("td", {}, (r.distance_m / 1000).toFixed(2) + " km"),
        el("td", {}, Math.round(r.duration_ms / 60000) + " 分钟"),
        el("td", {}, r.valid ? el("span", { class: "badge ok" }, "有效") : el("span", { class: "badge late" }, "无效")),
        el("td", {}, r.flags.join("；")))))));
}

async function showPatrol(id) {
  const view = document.getElementById("view");
  const p = await getJson("/patrols/" + encodeURIComponent(id));
  const track = p.track.map((t) => [t.lon, t.lat]);
  const shapes = p.asset_detail ? geometryPoints(p.asset_detail.geometry) : [];
  const [w, h] = [900, 560];
  const map = svg("svg", { class: "map", id: "patrol-map", viewBox: `0 0 ${w} ${h}` });
  if (track.length + shapes.length) {
    const project = projection(track.concat(shapes), w, h);
    if (p.asset_detail) map.append(drawAsset(project, p.asset_detail));
    if (track.length) map.append(svg("polyline", { class: "track", points: track.map((q) => project(q).join(",")).join(" ") }));
  }
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/patrols" }, "← 返回巡查记录")),
    el("h1", {}, "巡查 ", fmtTime(p.started_at_ms), " ", p.valid ? el("span", { class: "badge ok" }, "有效") : el("span", { class: "badge late" }, "无效")),
    el("div", { class: "panel" }, el("dl", { class: "facts" },
      el("dt", {}, "河长"), el("dd", {}, p.chief),
      el("dt", {}, "对象"), el("dd", {}, p.asset_detail ? p.asset_detail.name : p.asset),
      el("dt", {}, "里程"), el("dd", {}, (p.distance_m / 1000).toFixed(2) + " km"),
      el("dt", {}, "时长"), el("dd", {}, Math.round(p.duration_ms / 60000) + " 分钟"),
      el("dt", {}, "在管护范围内"), el("dd", {}, p.inside_share === null ? "—" : Math.round(p.inside_share * 100) + "%")),
      p.flags.length ? el("ul", { class: "warnings" }, p.flags.map((f) => el("li", {}, f))) : el("p", {}, "符合巡查规则。")),
    map);
}

async function showReminders() {
  const view = document.getElementById("view");
  const rows = await getJson("/reminders");
  const period = { week: "本周", month: "本月", quarter: "本季度" };
  view.replaceChildren(el("h1", {}, "巡查提醒"),
    rows.length ? el("table", {}, el("thead", {}, el("tr", {}, ["河长", "层级", "区划", "周期", "已巡", "应巡", "截止"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, r.display_name), el("td", {}, r.level), el("td", {}, r.division),
        el("td", {}, period[r.period] || r.period), el("td", {}, r.done), el("td", {}, r.required),
        el("td", {}, fmtTime(r.period_end_ms))))))
      : el("p", {}, "所有河长本期巡查次数均已达标。"));
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  const user = currentUser();
  if (!sessionStorage.getItem(TOKEN) || !user) { showLogin(""); return; }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = user.display_name + "（" + user.username + "）";
  const [path, query] = (location.hash.slice(1) || "/board").split("?");
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] || "board";
  for (const a of document.querySelectorAll("#nav a[data-view]")) a.classList.toggle("active", a.dataset.view === name || (name === "issue" && a.dataset.view === "board") || (name === "patrol" && a.dataset.view === "patrols"));
  try {
    if (name === "issue" && parts[1]) await showIssue(decodeURIComponent(parts[1]));
    else if (name === "map") await showMap();
    else if (name === "patrols") await showPatrols();
    else if (name === "patrol" && parts[1]) await showPatrol(decodeURIComponent(parts[1]));
    else if (name === "reminders") await showReminders();
    else await showBoard(new URLSearchParams(query || ""));
  } catch (e) {
    if (e.message !== "unauthorized") {
      document.getElementById("view").replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
    }
  }
}

document.getElementById("login").addEventListener("submit", login);
document.getElementById("logout").addEventListener("click", () => logout(""));
window.addEventListener("hashchange", route);
route();
