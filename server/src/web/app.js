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

// Every code the API speaks (statuses, severities, levels, flags …) is put into Chinese through
// one label table the server sends with the names of people (GET /api/v1/desk); assets,
// divisions and categories are named from the reference data. Nothing here spells a label.
let DESK = null; // { labels, people, map, pair_warn_m }
let REF = null; // reference data: divisions, assets, categories
let NAMES = null; // lookups built from both

async function loadDesk() {
  if (NAMES) return;
  const [desk, ref] = await Promise.all([getJson("/desk"), getJson("/reference")]);
  DESK = desk;
  REF = ref;
  NAMES = {
    asset: new Map(ref.assets.map((a) => [a.id, a])),
    division: new Map(ref.divisions.map((d) => [d.code, d.name])),
    category: new Map(ref.categories.map((c) => [c.code, c.name_zh])),
    people: new Map(Object.entries(desk.people)),
  };
}

function label(kind, code) {
  const table = DESK && DESK.labels[kind];
  return (table && table[code]) || "—";
}
const personName = (id) => (id && NAMES.people.get(id)) || "（已注销的账号）";
const assetName = (id) => (NAMES.asset.get(id) || {}).name || "（已撤销的对象）";
const divisionName = (code) => NAMES.division.get(code) || "（未知区划）";
const categoryName = (code) => NAMES.category.get(code) || "其他问题";
const statusColor = (s) => (DESK.labels.status_color || {})[s] || "#52606d";
function assigneeName(a) {
  if (!a) return "—";
  return a.kind === "user" ? personName(a.name) : a.name;
}

// A flag `{flag: code, …numbers}` as a Chinese sentence from its template in the label table.
// Flags that carry their own Chinese message (message_zh) are shown as they come.
function flagText(kind, flag) {
  if (flag.message_zh) return flag.message_zh;
  const template = (DESK.labels[kind] || {})[flag.flag || flag.code];
  if (!template) return kind === "patrol_flag" ? "巡查未达要求" : "照片证据存疑";
  return template.replace(/\{(\w+)(%?)\}/g, (_, name, pct) => {
    const v = flag[name];
    if (typeof v !== "number") return "—";
    if (pct) return Math.round(v * 100) + "%";
    return Math.abs(v) >= 10 ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
  });
}

// The actions the web offers, with the fields each needs. rectification_submitted is done on a
// phone, where the after photos are taken.
const ACTIONS = {
  accepted: { fields: [] },
  assigned: { fields: [
    ["assignee_kind", "交办对象类型", "select", "assignee_kind"],
    ["assignee", "承办部门或责任人", "assignee"],
    ["deadline", "整改期限", "date"],
  ] },
  verified: { fields: [["note", "核查意见", "text", ""]] },
  rejected: { fields: [["reason", "退回原因（必填）", "text", ""]] },
  invalidated: { fields: [["reason", "原因（必填）", "text", ""]] },
  duplicate_of: { fields: [["issue", "原问题编号", "text", ""]] },
  escalated: { fields: [["note", "督办意见", "text", ""]] },
  reopened: { fields: [["reason", "原因（必填）", "text", ""]] },
  comment: { fields: [["text", "内容", "text", ""]] },
};
const actionLabel = (k) => (k === "verified" ? "核查通过（销号）" : label("event", k));

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
  NAMES = null;
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

const FILTERS = ["system", "category", "severity", "asset", "assignee", "division", "from", "to", "overdue", "possible_duplicate", "q"];
// Cards a column shows before 显示更多: a district has hundreds of open issues.
const COLUMN_PAGE = 25;

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

function filterForm(params) {
  const select = (name, text, options) => el("label", {}, text,
    el("select", { name }, el("option", { value: "" }, "全部"),
      options.map(([v, t]) => el("option", { value: v, selected: params.get(name) === v }, t))));
  const input = (name, text, type, extra) => el("label", {}, text,
    el("input", { name, type: type || "text", value: params.get(name) || "", ...extra }));
  const check = (name, text) => el("label", { class: "check" },
    el("input", { name, type: "checkbox", value: "1", checked: !!params.get(name) }), text);
  const form = el("form", { class: "filters", id: "filters", role: "search", "aria-label": "筛选问题" },
    input("q", "搜索（对象、人员、描述）", "search", { id: "filter-q", placeholder: "如 小清河、张建国" }),
    select("system", "体系", Object.entries(DESK.labels.system)),
    select("category", "问题类别", REF.categories.map((c) => [c.code, c.name_zh])),
    select("severity", "紧急程度", Object.entries(DESK.labels.severity)),
    select("asset", "河段/林区/网格", REF.assets.map((a) => [a.id, a.name])),
    select("division", "行政区划", REF.divisions.map((d) => [d.code, d.name])),
    select("assignee", "承办单位", DESK.departments.map((d) => [d, d])),
    input("from", "上报起", "date"),
    input("to", "上报止", "date"),
    check("overdue", "仅超期"),
    check("possible_duplicate", "疑似重复"),
    el("div", { class: "actions" },
      el("button", { type: "submit", class: "primary" }, "筛选"),
      el("button", { type: "button", on: { click: () => { location.hash = "#/board"; } } }, "清除")));
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

// What a card is searched by: the names people know it by.
function searchText(row) {
  const a = NAMES.asset.get(row.asset);
  return [row.description, a && a.name, personName(row.reporter), assigneeName(row.assignee),
    divisionName(row.division), categoryName(row.category)].join(" ");
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
    el("div", { class: "title" }, row.description),
    el("div", { class: "meta" }, label("severity", row.severity), " · ", categoryName(row.category), " · ", assetName(row.asset)),
    el("div", { class: "meta" }, personName(row.reporter), " 上报于 ", fmtTime(row.reported_at_ms)),
    row.assignee ? el("div", { class: "meta" }, "承办 ", assigneeName(row.assignee), row.deadline_ms ? " · 期限 " + fmtDate(row.deadline_ms) : "") : null,
    badges.length ? el("div", {}, badges) : null);
}

function column(status, rows) {
  const list = el("div", { class: "cards" });
  let shown = 0;
  const more = el("button", { type: "button", class: "more" });
  const showMore = () => {
    list.append(...rows.slice(shown, shown + COLUMN_PAGE).map(card));
    shown = Math.min(rows.length, shown + COLUMN_PAGE);
    more.textContent = "显示更多（还有 " + (rows.length - shown) + " 件）";
    more.hidden = shown >= rows.length;
  };
  more.addEventListener("click", showMore);
  showMore();
  const heading = el("h2", { id: "col-" + status }, label("status", status), " ", el("span", { class: "badge" }, rows.length));
  return el("section", { class: "column", "data-status": status, "aria-labelledby": "col-" + status }, heading, list, more);
}

async function showBoard(params) {
  const view = document.getElementById("view");
  const page = await getJson("/issues?" + boardQuery(params));
  const words = (params.get("q") || "").trim().split(/\s+/).filter(Boolean);
  const rows = words.length ? page.items.filter((r) => { const t = searchText(r); return words.every((w) => t.includes(w)); }) : page.items;
  const columns = DESK.labels.status_order.map((status) => column(status, rows.filter((r) => r.status === status)));
  view.replaceChildren(
    el("h1", {}, "问题看板 ", el("span", { class: "badge", id: "board-total" }, "共 " + rows.length + " 件")),
    page.total > page.items.length ? el("p", { class: "meta" }, "仅显示最新 " + page.items.length + " 件，请用筛选缩小范围。") : "",
    filterForm(params),
    el("div", { class: "board" }, columns));
}

// ---- issue page ----------------------------------------------------------------------------

// Photos are fetched with the token and shown from blob: URLs; the thumbnail first, the full
// photo when clicked.
const photoUrls = new Map();
async function blobUrl(path) {
  let url = photoUrls.get(path);
  if (!url) {
    const r = await api("GET", path, undefined, true);
    if (!r.ok) throw new Error(r.status === 404 ? "照片尚未上传" : "照片无法读取");
    url = URL.createObjectURL(await r.blob());
    photoUrls.set(path, url);
  }
  return url;
}

async function photoFigure(p, caption) {
  const sha = p.sha256;
  const img = el("img", { alt: caption, "data-sha": sha, class: "thumb" });
  const fig = el("figure", { class: "photo" }, img, el("figcaption", { class: "meta" }, caption));
  try {
    img.src = await blobUrl("/blobs/" + encodeURIComponent(sha) + "/thumbnail");
    img.tabIndex = 0;
    const full = async () => { img.src = await blobUrl("/blobs/" + encodeURIComponent(sha)); img.classList.add("full"); };
    img.addEventListener("click", full);
    img.addEventListener("keydown", (e) => { if (e.key === "Enter") full(); });
  } catch (e) {
    if (e.message === "unauthorized") throw e;
    fig.replaceChildren(el("div", { class: "warnings" }, e.message), el("figcaption", { class: "meta" }, caption));
  }
  return fig;
}

function actionForm(kind, issue, done) {
  const spec = ACTIONS[kind];
  const form = el("form", { class: "action-form panel", id: "action-form", "data-kind": kind },
    el("strong", {}, actionLabel(kind)));
  // Departments and chiefs are chosen by name: the departments of the district's handlers,
  // the chiefs the server would accept for this issue's place.
  const chiefs = (DESK.assignable_chiefs || {})[issue.asset] || [];
  const assigneeOptions = (kind) => (kind === "user"
    ? chiefs.map((id) => el("option", { value: id }, personName(id)))
    : DESK.departments.map((d) => el("option", { value: d }, d)));
  for (const [name, text, type, init] of spec.fields) {
    let input;
    if (type === "assignee") {
      input = el("select", { name }, assigneeOptions("department"));
    } else if (type === "select" && init === "assignee_kind") {
      const kinds = Object.entries(DESK.labels[init]).filter(([v]) => v !== "user" || chiefs.length);
      input = el("select", { name }, kinds.map(([v, t]) => el("option", { value: v }, t)));
      input.addEventListener("change", () => form.elements.assignee.replaceChildren(...assigneeOptions(input.value)));
    } else if (type === "select") {
      input = el("select", { name }, Object.entries(DESK.labels[init]).map(([v, t]) => el("option", { value: v }, t)));
    } else {
      let value = init || "";
      if (name === "issue" && issue.possible_duplicate_of) value = issue.possible_duplicate_of;
      if (type === "date") value = fmtDate(Date.now() + 7 * DAY_MS);
      input = el("input", { name, type, value });
    }
    form.append(el("label", {}, text, input));
  }
  form.append(el("div", { class: "actions" },
    el("button", { type: "submit", id: "action-submit", class: "primary" }, "确认" + actionLabel(kind)),
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
    if (r.ok) { flash(actionLabel(kind) + "成功"); done(); return; }
    let message = (r.body && r.body.message) || "操作失败";
    if (r.status === 409 && r.body.allowed) {
      message += "。当前可进行：" + r.body.allowed.map((k) => label("event", k)).join("、");
    }
    form.querySelector(".error")?.remove();
    form.append(el("p", { class: "error", role: "alert" }, message));
  });
  setTimeout(() => form.querySelector("input, select, button")?.focus(), 0);
  return form;
}

function describe(t) {
  const p = t.payload || {};
  if (t.kind === "assigned") {
    const a = p.assignee || {};
    const who = a.user ? personName(a.user) : a.department || "";
    return "交办 " + who + "，期限 " + fmtDate(p.deadline_ms);
  }
  if (p.issue) return "原问题见编号 " + p.issue.slice(0, 8) + "…";
  return p.reason || p.note || p.text || (p.photos ? p.photos.length + " 张照片" : "");
}

function fmtMetres(m) {
  return m >= 1000 ? (m / 1000).toFixed(2) + " 公里" : Math.round(m) + " 米";
}

// Each after photo beside the before photo taken nearest to it, with their distance.
async function pairingPanel(issue) {
  const byId = new Map(issue.photos.map((p) => [p.sha256, p]));
  const box = el("div", { id: "pairs" });
  const warnM = DESK.pair_warn_m;
  // Every pair's photos are fetched at once; the pairs keep their order.
  const rows = await Promise.all((issue.pairs || []).map(async (pair) => {
    const after = byId.get(pair.after);
    const before = pair.before && byId.get(pair.before);
    const note = pair.distance_m === null || pair.distance_m === undefined
      ? el("p", { class: "meta" }, "照片没有记录位置，无法按位置配对")
      : el("p", { class: pair.far ? "distance far" : "distance", "data-distance": pair.distance_m },
        "两张照片拍摄地点相距 " + fmtMetres(pair.distance_m),
        pair.far ? "：超过 " + warnM + " 米，整改后照片可能不是在问题现场拍摄的" : "（在 " + warnM + " 米以内）");
    const [beforeFig, afterFig] = await Promise.all([
      before ? photoFigure(before, "整改前 · " + fmtTime(before.taken_at_ms)) : el("p", {}, "没有整改前照片"),
      photoFigure(after, "整改后 · " + fmtTime(after.taken_at_ms)),
    ]);
    return el("div", { class: "pair" + (pair.far ? " far" : "") }, el("div", { class: "photos" }, beforeFig, afterFig), note);
  }));
  box.append(...rows);
  return box;
}

async function showIssue(id) {
  const view = document.getElementById("view");
  const issue = await getJson("/issues/" + encodeURIComponent(id));
  const reload = () => showIssue(id);
  const actionsBox = el("div", {});
  const buttons = issue.allowed_actions.filter((k) => ACTIONS[k]).map((k) =>
    el("button", { type: "button", "data-action": k, on: { click: () => actionsBox.replaceChildren(actionForm(k, issue, reload)) } },
      actionLabel(k)));
  const warnings = issue.photos.flatMap((p) => (p.evidence || []).map((f) => label("photo_role", p.role) + "照片：" + flagText("evidence_flag", f)));
  if (issue.possible_duplicate_of) warnings.unshift("可能与附近一件未办结的同类问题重复");
  if (issue.photos.some((p) => p.stored === false)) warnings.push("有照片尚未上传到服务器");
  const paired = new Set((issue.pairs || []).flatMap((p) => [p.after, p.before]));
  const unpaired = issue.photos.filter((p) => !paired.has(p.sha256));
  const timeline = el("table", { id: "timeline" },
    el("caption", { class: "sr-only" }, "处理过程"),
    el("thead", {}, el("tr", {}, ["环节", "操作人", "时间", "服务器接收", "说明"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, issue.timeline.map((t) => el("tr", { class: t.superseded ? "superseded" : "", "data-kind": t.kind },
      el("td", {}, label("event", t.kind)),
      el("td", {}, personName(t.by), el("div", { class: "meta code" }, "设备 ", t.device)),
      el("td", {}, fmtTime(t.counted_at_ms),
        t.counted_at_ms !== t.at_ms ? el("div", { class: "meta" }, "设备时间 " + fmtTime(t.at_ms)) : null),
      el("td", {}, t.received_at_ms ? fmtTime(t.received_at_ms) : "—"),
      el("td", { class: t.superseded ? "why" : "" }, t.superseded ? "未生效：与离线期间的另一操作冲突" : describe(t))))));
  const a = NAMES.asset.get(issue.asset);
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/board" }, "← 返回看板")),
    el("h1", {}, issue.description, " ",
      el("span", { class: "badge status", id: "issue-status", "data-status": issue.status || "" }, label("status", issue.status)),
      issue.public ? el("span", { class: "badge dup public-source" }, issue.public.source_zh) : null),
    // A resident who said "not satisfied" after the issue was finished puts it back before the
    // office: the issue does not reopen by itself, the supervisor decides what to do.
    issue.public && issue.public.not_satisfied ? el("div", { class: "unsatisfied", id: "public-unsatisfied", role: "note" },
      el("strong", {}, "群众回访不满意"),
      el("p", {}, "理由：", issue.public.not_satisfied),
      el("p", { class: "meta" }, "问题不会因此自动重新打开；请复核整改情况，需要时重新交办。")) : "",
    el("div", { class: "grid2" },
      el("div", { class: "panel" }, el("dl", { class: "facts" },
        el("dt", {}, "类别"), el("dd", {}, categoryName(issue.category), "（", label("system", issue.system), "）"),
        el("dt", {}, "紧急程度"), el("dd", {}, label("severity", issue.severity)),
        el("dt", {}, "位置"), el("dd", {}, assetName(issue.asset), " · ", divisionName(issue.division)),
        el("dt", {}, "上报"), el("dd", {}, issue.public ? issue.public.source_zh : personName(issue.reporter), " · ", fmtTime(issue.reported_at_ms)),
        el("dt", {}, "承办"), el("dd", {}, assigneeName(issue.assignee)),
        el("dt", {}, "期限"), el("dd", {}, fmtDate(issue.deadline_ms), issue.overdue_days ? el("span", { class: "badge late" }, " 超期" + issue.overdue_days + "天") : ""),
        el("dt", {}, "督办/退回"), el("dd", {}, issue.escalations + " 次 / " + issue.rejections + " 次"),
        el("dt", {}, "编号"), el("dd", { class: "code" }, issue.id),
        el("dt", {}, "坐标"), el("dd", { class: "code" }, issue.location.map((x) => x.toFixed(5)).join(", ")))),
      el("div", { class: "panel" },
        el("h2", {}, "可进行的操作"),
        buttons.length ? el("div", { class: "actions", id: "actions" }, buttons) : el("p", {}, "当前没有您可进行的操作。"),
        actionsBox,
        warnings.length ? el("div", {}, el("h2", {}, "证据提示"), el("ul", { class: "warnings" }, warnings.map((w) => el("li", {}, w)))) : null)),
    el("div", { class: "grid2" },
      el("div", { class: "panel" }, el("h2", {}, "整改前后对比"), el("div", { id: "pairs-box" }, (issue.pairs || []).length ? null : el("p", {}, "尚无整改后照片。")),
        el("div", { class: "photos", id: "photos" })),
      el("div", { class: "panel" }, el("h2", {}, "现场位置"), el("div", { id: "issue-map", class: "map small", role: "region", "aria-label": "问题位置地图" }),
        el("p", { class: "meta" }, a ? a.name : "", issue.patrol ? " · 红线为发现问题时的巡查轨迹" : ""))),
    el("div", { class: "panel" }, el("h2", {}, "处理过程"), el("div", { class: "scroll" }, timeline)));
  issueMap(issue).catch(() => {});
  document.getElementById("pairs-box").append(await pairingPanel(issue));
  const photos = document.getElementById("photos");
  for (const p of unpaired) photos.append(await photoFigure(p, label("photo_role", p.role) + " · " + fmtTime(p.taken_at_ms)));
}

// ---- maps ----------------------------------------------------------------------------------

// Leaflet (vendored, see /web/vendor/LICENSE.leaflet) over the configured basemap, or over a
// plain background when none is configured: the office network may have no internet.
function baseMap(node, options) {
  const map = L.map(node, { zoomSnap: 0.5, attributionControl: true, ...options });
  map.attributionControl.setPrefix('<a href="/web/vendor/LICENSE.leaflet">Leaflet</a>');
  if (DESK.map.tile_url) {
    L.tileLayer(DESK.map.tile_url, { maxZoom: 18, maxNativeZoom: DESK.map.max_native_zoom ?? undefined, subdomains: "01234567", attribution: escapeHtml(DESK.map.attribution || "") }).addTo(map);
  } else {
    node.classList.add("plain");
  }
  return map;
}

// Leaflet sets attributions as HTML; the operator's text is shown as text.
function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
}

const ASSET_STYLE = {
  river: { color: "#1d6fa5", weight: 4, className: "river" },
  forest: { color: "#2f7d32", weight: 1.5, fillColor: "#86c98b", fillOpacity: 0.5, className: "forest" },
  field: { color: "#8a6410", weight: 1.5, fillColor: "#f3dc8b", fillOpacity: 0.6, className: "field" },
};

function assetLayer(a) {
  return L.geoJSON({ type: "Feature", geometry: a.geometry, properties: {} }, { style: ASSET_STYLE[a.system] })
    .bindTooltip(a.name + "（" + divisionName(a.division) + "）", { sticky: true });
}

function issueMarker(i) {
  const m = L.circleMarker([i.location[1], i.location[0]], {
    radius: 8, color: "#ffffff", weight: 2, fillColor: statusColor(i.status), fillOpacity: 0.95, className: "issue",
  });
  const link = el("a", { href: "#/issue/" + encodeURIComponent(i.id), class: "popup-link", "data-issue": i.id }, "查看问题详情 →");
  m.bindPopup(el("div", { class: "popup" },
    el("strong", {}, i.description),
    el("div", {}, label("status", i.status), " · ", categoryName(i.category), " · ", label("severity", i.severity)),
    el("div", { class: "meta" }, assetName(i.asset), " · ", fmtDate(i.reported_at_ms)),
    link));
  m.on("add", () => { const p = m.getElement(); if (p) p.setAttribute("data-issue", i.id); });
  return m;
}

// Divisions have no drawn boundaries in the reference data: each subdistrict is outlined by
// the convex hull of the rivers, forests and fields it is responsible for, widened by about
// 200 m, and the layer says it is an outline drawn from them, not the legal boundary.
const OUTLINE_PAD = 0.002; // degrees

// Andrew's monotone chain: the convex hull of [lon, lat] points, counter-clockwise.
function convexHull(points) {
  const pts = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const half = (list) => {
    const out = [];
    for (const p of list) {
      while (out.length >= 2 && cross(out[out.length - 2], out[out.length - 1], p) <= 0) out.pop();
      out.push(p);
    }
    out.pop();
    return out;
  };
  return half(pts).concat(half(pts.slice().reverse()));
}

function divisionOutlines() {
  const group = L.layerGroup();
  const subdistricts = REF.divisions.filter((d) => d.parent && d.code.endsWith("000"));
  for (const d of subdistricts) {
    const prefix = d.code.slice(0, 9);
    const pts = REF.assets.filter((a) => a.division.startsWith(prefix))
      .flatMap((a) => (a.geometry.type === "LineString" ? a.geometry.coordinates : a.geometry.coordinates.flat()));
    if (!pts.length) continue;
    const widened = pts.flatMap(([x, y]) => [[x - OUTLINE_PAD, y - OUTLINE_PAD], [x + OUTLINE_PAD, y - OUTLINE_PAD],
      [x + OUTLINE_PAD, y + OUTLINE_PAD], [x - OUTLINE_PAD, y + OUTLINE_PAD]]);
    const hull = convexHull(widened).map(([x, y]) => [y, x]);
    group.addLayer(L.polygon(hull, {
      color: "#52606d", weight: 1.5, dashArray: "6 4", fill: false, interactive: false, className: "division",
    }));
    const top = hull.reduce((a, b) => (b[0] > a[0] ? b : a));
    group.addLayer(L.marker(top, {
      interactive: false, keyboard: false,
      icon: L.divIcon({ className: "division-label", html: "", iconSize: null }),
    }).on("add", function () { this.getElement().textContent = d.name; }));
  }
  return group;
}

async function showMap() {
  const view = document.getElementById("view");
  const since = fmtDate(Date.now() - 14 * DAY_MS);
  const page = await getJson("/issues?limit=500");
  // The tracks are the heaviest layer: the map shows first and they follow.
  const tracks = getJson("/export/patrols.geojson?from=" + since).catch(() => ({ features: [] }));
  const node = el("div", { id: "map", class: "map", role: "region", "aria-label": "辖区地图：河段、林区、农田网格、问题与巡查轨迹" });
  view.replaceChildren(
    el("h1", {}, "地图"),
    el("p", { class: "legend" },
      DESK.labels.status_order.map((s) => el("span", {}, legendDot(statusColor(s)), label("status", s))),
      el("span", {}, el("i", { class: "line valid" }), "有效巡查"), el("span", {}, el("i", { class: "line invalid" }), "无效巡查")),
    node);
  const map = baseMap(node, {});
  const layer = (system) => L.featureGroup(REF.assets.filter((a) => a.system === system).map(assetLayer));
  const rivers = layer("river"), forests = layer("forest"), fields = layer("field");
  const issues = L.featureGroup(page.items.map(issueMarker));
  const patrols = L.featureGroup();
  const drawTracks = (collection) => collection.features.filter((f) => f.geometry).map((f) =>
    L.geoJSON(f, { style: { color: f.properties.valid ? "#15803d" : "#b42318", weight: 2, opacity: 0.8, dashArray: f.properties.valid ? null : "4 4", className: f.properties.valid ? "track valid" : "track invalid" } })
      .bindTooltip((f.properties.chief_name || personName(f.properties.chief)) + " · " + fmtDate(f.properties.at_ms) + " · " +
        (f.properties.valid ? "有效巡查" : "无效巡查"), { sticky: true })
      .addTo(patrols));
  const divisions = divisionOutlines();
  for (const l of [divisions, fields, forests, rivers, patrols, issues]) l.addTo(map);
  L.control.layers(null, {
    "河段": rivers, "林区": forests, "农田网格": fields, "街道范围（按所辖河段、林区、网格示意）": divisions,
    "问题（按状态着色）": issues, "近两周巡查轨迹": patrols,
  }, { collapsed: window.innerWidth < 700 }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  const all = L.featureGroup([rivers, forests, fields, issues]);
  if (all.getLayers().length) map.fitBounds(all.getBounds(), { padding: [20, 20] });
  window.deskMap = map; // for the browser test: zoom level and popups
  drawTracks(await tracks);
  issues.bringToFront();
}

async function issueMap(issue) {
  const node = document.getElementById("issue-map");
  const map = baseMap(node, { scrollWheelZoom: false });
  const layers = [];
  const a = NAMES.asset.get(issue.asset);
  if (a) layers.push(assetLayer(a));
  if (issue.patrol) {
    const p = await getJson("/patrols/" + encodeURIComponent(issue.patrol)).catch(() => null);
    if (p && p.track.length) layers.push(L.polyline(p.track.map((t) => [t.lat, t.lon]), { color: "#b42318", weight: 2 }));
  }
  layers.push(issueMarker(issue));
  const group = L.featureGroup(layers).addTo(map);
  map.fitBounds(group.getBounds(), { padding: [20, 20], maxZoom: 17 });
}

// The CSP forbids style attributes; setting the property through the DOM is allowed.
function legendDot(color) {
  const dot = el("i", { class: "dot" });
  dot.style.background = color;
  return dot;
}

// ---- patrols and reminders -----------------------------------------------------------------

const PATROL_PAGE = 50;

function validity(r) {
  return r.valid ? el("span", { class: "badge ok" }, "有效") : el("span", { class: "badge late" }, "无效");
}

async function showPatrols(params) {
  const view = document.getElementById("view");
  const rows = await getJson("/patrols?limit=500");
  const words = (params.get("q") || "").trim().split(/\s+/).filter(Boolean);
  const only = params.get("only");
  const match = rows.filter((r) => (!only || (only === "invalid") === !r.valid) &&
    words.every((w) => (personName(r.chief) + " " + assetName(r.asset)).includes(w)));
  const pageNo = Math.max(0, Number(params.get("page") || 0));
  const shown = match.slice(pageNo * PATROL_PAGE, (pageNo + 1) * PATROL_PAGE);
  const go = (p) => { const q = new URLSearchParams(params); q.set("page", p); return "#/patrols?" + q; };
  const form = el("form", { class: "filters", role: "search", "aria-label": "筛选巡查" },
    el("label", {}, "搜索（人员、对象）", el("input", { name: "q", type: "search", value: params.get("q") || "" })),
    el("label", {}, "有效性", el("select", { name: "only" },
      [["", "全部"], ["valid", "有效"], ["invalid", "无效"]].map(([v, t]) => el("option", { value: v, selected: only === v || (!only && !v) }, t)))),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "筛选")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (form.elements.q.value.trim()) q.set("q", form.elements.q.value.trim());
    if (form.elements.only.value) q.set("only", form.elements.only.value);
    location.hash = "#/patrols?" + q;
  });
  view.replaceChildren(el("h1", {}, "巡查记录 ", el("span", { class: "badge" }, "共 " + match.length + " 次")),
    form,
    el("div", { class: "scroll" }, el("table", { id: "patrols" },
      el("caption", { class: "sr-only" }, "巡查记录"),
      el("thead", {}, el("tr", {}, ["开始", "巡查人", "对象", "里程", "时长", "有效", "提示"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, shown.map((r) => el("tr", {},
        el("td", {}, el("a", { href: "#/patrol/" + encodeURIComponent(r.id) }, fmtTime(r.started_at_ms))),
        el("td", {}, personName(r.chief)), el("td", {}, assetName(r.asset)),
        el("td", {}, (r.distance_m / 1000).toFixed(2) + " 公里"),
        el("td", {}, Math.round(r.duration_ms / 60000) + " 分钟"),
        el("td", {}, validity(r)),
        el("td", {}, (r.flags || []).join("；"))))))),
    el("nav", { class: "pager", "aria-label": "翻页" },
      pageNo > 0 ? el("a", { href: go(pageNo - 1) }, "← 上一页") : null,
      el("span", {}, "第 " + (pageNo + 1) + " / " + Math.max(1, Math.ceil(match.length / PATROL_PAGE)) + " 页"),
      (pageNo + 1) * PATROL_PAGE < match.length ? el("a", { href: go(pageNo + 1) }, "下一页 →") : null));
}

async function showPatrol(id) {
  const view = document.getElementById("view");
  const p = await getJson("/patrols/" + encodeURIComponent(id));
  const node = el("div", { id: "patrol-map", class: "map", role: "region", "aria-label": "巡查轨迹地图" });
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/patrols" }, "← 返回巡查记录")),
    el("h1", {}, "巡查 ", fmtTime(p.started_at_ms), " ", validity(p)),
    el("div", { class: "panel" }, el("dl", { class: "facts" },
      el("dt", {}, "巡查人"), el("dd", {}, personName(p.chief)),
      el("dt", {}, "对象"), el("dd", {}, p.asset_detail ? p.asset_detail.name : assetName(p.asset)),
      el("dt", {}, "里程"), el("dd", {}, (p.distance_m / 1000).toFixed(2) + " 公里"),
      el("dt", {}, "时长"), el("dd", {}, Math.round(p.duration_ms / 60000) + " 分钟"),
      el("dt", {}, "在管护范围内"), el("dd", {}, p.inside_share === null ? "—" : Math.round(p.inside_share * 100) + "%")),
      (p.flags || []).length ? el("ul", { class: "warnings" }, p.flags.map((f) => el("li", {}, f))) : el("p", {}, "符合巡查规则。")),
    node);
  const map = baseMap(node, {});
  const layers = [];
  if (p.asset_detail) layers.push(assetLayer(p.asset_detail));
  if (p.track.length) layers.push(L.polyline(p.track.map((t) => [t.lat, t.lon]), { color: p.valid ? "#15803d" : "#b42318", weight: 3 }));
  if (layers.length) map.fitBounds(L.featureGroup(layers).addTo(map).getBounds(), { padding: [20, 20] });
}

async function showReminders() {
  const view = document.getElementById("view");
  const rows = await getJson("/reminders");
  view.replaceChildren(el("h1", {}, "巡查提醒"),
    rows.length ? el("div", { class: "scroll" }, el("table", { id: "reminders" },
      el("caption", { class: "sr-only" }, "本期巡查次数未达标的责任人"),
      el("thead", {}, el("tr", {}, ["责任人", "层级", "区划", "周期", "已巡", "应巡", "截止"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, r.display_name), el("td", {}, label("level", r.level)), el("td", {}, divisionName(r.division)),
        el("td", {}, label("period", r.period)), el("td", {}, r.done), el("td", {}, r.required),
        el("td", {}, fmtTime(r.period_end_ms)))))))
      : el("p", {}, "所有责任人本期巡查次数均已达标。"));
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  const user = currentUser();
  if (!sessionStorage.getItem(TOKEN) || !user) { showLogin(""); return; }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = user.display_name;
  const [path, query] = (location.hash.slice(1) || "/board").split("?");
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] || "board";
  for (const a of document.querySelectorAll("#nav a[data-view]")) a.classList.toggle("active", a.dataset.view === name || (name === "issue" && a.dataset.view === "board") || (name === "patrol" && a.dataset.view === "patrols"));
  try {
    await loadDesk();
    if (name === "issue" && parts[1]) await showIssue(decodeURIComponent(parts[1]));
    else if (name === "map") await showMap();
    else if (name === "patrols") await showPatrols(new URLSearchParams(query || ""));
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
// After a page change, focus moves to the new content, so keyboard and screen-reader users
// start there rather than at the menu they just used.
window.addEventListener("hashchange", async () => {
  await route();
  document.getElementById("view").focus({ preventScroll: true });
});
route();
