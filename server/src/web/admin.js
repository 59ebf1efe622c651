// ChiefSync administration pages. Plain JavaScript, no framework, nothing loaded from outside.
//
// Safety as on the dashboard: all text from the server goes into the page as text (el() and
// textContent), never as HTML; requests carry the access token in the Authorization header
// (no cookies). The session is the dashboard's (same sessionStorage keys), so an administrator
// signed in there arrives signed in. Every decision (who may, what a row means) is the server's.
"use strict";

const TOKEN = "chiefsync.access_token";
const REFRESH = "chiefsync.refresh_token";
const USER = "chiefsync.user";
const DEVICE = "chiefsync.device";

const SYSTEM = { river: "河长", forest: "林长", field: "田长" };
const SYSTEM_ASSET = { river: "河段", forest: "林区", field: "网格" };
const LEVEL = { district: "区级", subdistrict: "街道级", village: "村级" };
const KIND = { chief: "河湖林田长", supervisor: "河长办工作人员", handler: "责任部门人员", admin: "管理员" };
const OUTCOME = { create: "新增", change: "变更", unchanged: "不变", refused: "拒绝" };
const CRS = { wgs84: "WGS-84（GPS）", cgcs2000: "CGCS2000（天地图、国土数据）", gcj02: "GCJ-02（高德、腾讯等网络地图）" };
const ACTION = {
  roster_create: "名录导入：新增", roster_change: "名录导入：变更", roster_deactivate: "名录导入：停用", user_create: "新增账号",
  user_update: "修改账号", password_reset: "重置密码", post_change: "修改职务",
  setup_code_issued: "生成启用码", device_revoke: "吊销设备", asset_create: "新增资产",
  asset_change: "修改资产", division_create: "新增区划", division_change: "修改区划",
  rules_change: "修改巡查规则与频次", categories_change: "修改问题类别与检查项",
};
const FIELD = {
  display_name: "姓名", username: "账号", role: "角色", active: "启用", post: "职务",
  name: "名称", division: "行政区划", geometry: "几何", system: "体系", parent: "上级区划",
  division_name: "行政区划", asset_names: "负责", device_id: "设备",
};

// ---- helpers -----------------------------------------------------------------------------

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

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const $ = (sel) => document.querySelector(sel);
const view = () => $("#view");
const fmtTime = (ms) => new Date(ms).toLocaleString("zh-CN", { hour12: false });

function deviceId() {
  let id = sessionStorage.getItem(DEVICE);
  if (!id) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(DEVICE, id);
  }
  return id;
}

function keep(grant) {
  sessionStorage.setItem(TOKEN, grant.access_token);
  sessionStorage.setItem(REFRESH, grant.refresh_token);
  sessionStorage.setItem(USER, JSON.stringify(grant.user));
}

function me() {
  try { return JSON.parse(sessionStorage.getItem(USER)); } catch { return null; }
}

async function refresh() {
  const token = sessionStorage.getItem(REFRESH);
  if (!token) return false;
  const r = await fetch("/api/v1/auth/refresh", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: token }),
  });
  if (!r.ok) return false;
  keep(await r.json());
  return true;
}

class ApiError extends Error {
  constructor(status, body) { super((body && body.message) || "请求失败（" + status + "）"); this.status = status; this.body = body; }
}

// A request to the API; `body` is JSON unless it is a Blob/File (sent as is).
async function api(method, path, body, { raw = false, query = "" } = {}) {
  const send = () => {
    const headers = { Authorization: "Bearer " + (sessionStorage.getItem(TOKEN) || "") };
    let payload;
    if (body instanceof Blob) { payload = body; headers["Content-Type"] = "application/octet-stream"; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    return fetch("/api/v1" + path + query, { method, headers, body: payload });
  };
  let r = await send();
  if (r.status === 401 && await refresh()) r = await send();
  if (r.status === 401) { signOut("登录已过期，请重新登录"); throw new ApiError(401, null); }
  if (!r.ok) {
    let b = null;
    try { b = await r.json(); } catch { /* not JSON */ }
    throw new ApiError(r.status, b);
  }
  if (raw) return r;
  if (r.status === 204) return null;
  return r.json();
}

// The file last offered for download, as the browser saved it.
let lastDownload = null;

async function download(path, name) {
  const r = await api("GET", path, undefined, { raw: true });
  const blob = await r.blob();
  lastDownload = blob;
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name, id: "last-download" });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 60000);
  return blob;
}

function message(node, text, kind) {
  node.textContent = text;
  node.className = kind || "";
}

// ---- reference data ---------------------------------------------------------------------

const data = { divisions: [], assets: [], people: [], byCode: new Map(), byAsset: new Map() };

async function loadPlaces() {
  const [divisions, assets] = await Promise.all([api("GET", "/admin/divisions"), api("GET", "/admin/assets")]);
  data.divisions = divisions;
  data.assets = assets;
  data.byCode = new Map(divisions.map((d) => [d.code, d]));
  data.byAsset = new Map(assets.map((a) => [a.id, a]));
}

async function loadPeople() {
  data.people = await api("GET", "/admin/people");
}

function divisionLevel(code) {
  if (code.slice(6) === "000000") return "district";
  if (code.slice(9) === "000") return "subdistrict";
  return "village";
}

function divisionPath(code) {
  const names = [];
  let d = data.byCode.get(code);
  while (d) { names.unshift(d.name); d = d.parent ? data.byCode.get(d.parent) : null; }
  return names.join(" / ") || code;
}

function contains(outer, inner) {
  const n = { district: 6, subdistrict: 9, village: 12 }[divisionLevel(outer)];
  return outer.slice(0, n) === inner.slice(0, n);
}

function roleText(user) {
  const r = user.role;
  if (r.kind === "chief") return LEVEL[r.level] + SYSTEM[r.system];
  if (r.kind === "supervisor") return SYSTEM[r.system] + "办工作人员";
  if (r.kind === "handler") return r.department;
  return KIND[r.kind];
}

// ---- sign-in ----------------------------------------------------------------------------

function signOut(text) {
  const token = sessionStorage.getItem(REFRESH);
  if (token) fetch("/api/v1/auth/logout", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: token }) });
  for (const k of [TOKEN, REFRESH, USER]) sessionStorage.removeItem(k);
  showLogin(text || "");
}

function showLogin(text) {
  $("#login").hidden = false;
  $("#tabs").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  view().replaceChildren();
  message($("#login-error"), text || "", "error");
}

async function signIn(ev) {
  ev.preventDefault();
  const r = await fetch("/api/v1/auth/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("#username").value.trim(), password: $("#password").value, device_id: deviceId() }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { message($("#login-error"), r.status === 429 ? "尝试次数过多，请稍后再试" : "账号或密码错误", "error"); return; }
  keep(body);
  start();
}

async function firstSignIn(ev) {
  ev.preventDefault();
  const r = await fetch("/api/v1/auth/setup", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("#setup-username").value.trim(), code: $("#setup-code").value.trim(), password: $("#setup-password").value, device_id: deviceId() }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const text = r.status === 429 ? "尝试次数过多，请稍后再试" : r.status === 400 ? "密码至少8位" : "账号或启用码不对，或启用码已用过、已过期";
    message($("#setup-result"), text, "error");
    return;
  }
  keep(body);
  if (body.user.role.kind === "admin") { start(); return; }
  message($("#setup-result"), "密码已设置。请在手机上用新密码登录，或返回工作台。", "ok");
  $("#setup-result").dataset.done = "1";
}

// ---- routing ----------------------------------------------------------------------------

const ROUTES = {};

function start() {
  const user = me();
  if (!sessionStorage.getItem(TOKEN) || !user) { showLogin(""); return; }
  if (user.role.kind !== "admin") { showLogin("管理后台仅限管理员使用"); return; }
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = user.display_name;
  route();
}

async function route() {
  if ($("#tabs").hidden) return;
  const tab = (location.hash.match(/^#\/(\w+)/) || [])[1] || "people";
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === tab);
  const render = ROUTES[tab] || ROUTES.people;
  view().replaceChildren(el("p", {}, "加载中…"));
  try {
    await render();
  } catch (e) {
    if (e.status !== 401) view().replaceChildren(el("p", { class: "error" }, "加载失败：" + e.message));
  }
}

// ---- people -----------------------------------------------------------------------------

function statusPill(p) {
  if (!p.user.active) return el("span", { class: "pill off" }, "已停用");
  if (p.has_password) return el("span", { class: "pill ready" }, "已设密码");
  if (p.setup_pending) return el("span", { class: "pill pending" }, "待启用");
  return el("span", { class: "pill" }, "未发启用码");
}

ROUTES.people = async () => {
  await Promise.all([loadPlaces(), loadPeople()]);
  const filter = el("input", { id: "people-filter", placeholder: "按姓名、职务、区划、账号筛选" });
  const tbody = el("tbody");
  const count = el("span", { id: "people-count" });
  const editor = el("div", { id: "editor" });
  const codes = el("div", { id: "codes-slot" });
  const draw = () => {
    const q = filter.value.trim();
    const rows = data.people.filter((p) => {
      if (!q) return true;
      const hay = [p.user.display_name, p.post, p.user.username, p.chief ? p.chief.division_name : "", roleText(p.user)].join(" ");
      return hay.includes(q);
    });
    count.textContent = "共 " + rows.length + " 人";
    tbody.replaceChildren(...rows.map((p) => el("tr", { "data-user": p.user.id, "data-username": p.user.username },
      el("td", { class: "name" }, p.user.display_name),
      el("td", {}, p.post),
      el("td", { class: "role" }, roleText(p.user)),
      el("td", { class: "division" }, p.chief ? p.chief.division_name : (p.user.role.division ? divisionPath(p.user.role.division) : "")),
      el("td", { class: "assets hide-narrow" }, p.chief ? p.chief.asset_names.join("、") : ""),
      el("td", { class: "hide-narrow" }, p.user.username),
      el("td", {}, statusPill(p)),
      el("td", {},
        el("button", { type: "button", class: "secondary edit", on: { click: () => edit(p, editor) } }, "编辑"),
        " ",
        el("button", { type: "button", class: "secondary setup-code", on: { click: () => newCode(p, codes) } }, "启用码")),
    )));
  };
  filter.addEventListener("input", draw);
  draw();
  view().replaceChildren(
    el("div", { class: "card" },
      el("div", { class: "toolbar" }, el("h2", {}, "人员"), count, filter,
        el("button", { type: "button", id: "new-person", on: { click: () => create(editor, codes) } }, "新增工作人员")),
      editor, codes,
      el("div", { class: "scroll" }, el("table", { id: "people-table" },
        el("thead", {}, el("tr", {}, ["姓名", "职务", "角色", "行政区划", "负责河段/林区/网格", "账号", "状态", ""].map((t, i) => el("th", { class: i === 4 || i === 5 ? "hide-narrow" : null }, t)))),
        tbody))));
};

function divisionOptions(level, selected) {
  return data.divisions
    .filter((d) => !level || divisionLevel(d.code) === level)
    .map((d) => el("option", { value: d.code, selected: d.code === selected }, divisionPath(d.code)));
}

// The editor of one person: names and choices from the tree and the asset list, never codes.
function edit(person, slot) {
  const user = person.user;
  const role = user.role;
  const name = el("input", { id: "edit-name", value: user.display_name });
  const post = el("input", { id: "edit-post", value: person.post });
  const kind = el("select", { id: "edit-kind" }, Object.entries(KIND).map(([k, v]) => el("option", { value: k, selected: k === role.kind }, v)));
  const system = el("select", { id: "edit-system" }, Object.entries(SYSTEM).map(([k, v]) => el("option", { value: k, selected: k === role.system }, v)));
  const level = el("select", { id: "edit-level" }, Object.entries(LEVEL).map(([k, v]) => el("option", { value: k, selected: k === role.level }, v)));
  const division = el("select", { id: "edit-division" });
  const department = el("input", { id: "edit-department", value: role.department || "" });
  const assets = el("div", { class: "assets", id: "edit-assets" });
  const chosen = new Set(role.jurisdiction ? role.jurisdiction.assets : []);
  const result = el("p", { id: "edit-result", role: "status" });
  const currentDivision = role.jurisdiction ? role.jurisdiction.division : role.division;
  const fillDivisions = () => {
    const keepCode = division.value || currentDivision;
    division.replaceChildren(...divisionOptions(kind.value === "chief" ? level.value : null, keepCode));
  };
  const picker = el("div", { class: "picker" });
  const fillAssets = () => {
    const code = division.value;
    const inside = data.assets.filter((a) => a.system === system.value && code && contains(code, a.division));
    // The list and the map show one choice: a tick or a click on either changes both.
    const mark = (id) => {
      const on = chosen.has(id);
      const box = assets.querySelector(`input[data-asset="${CSS.escape(id)}"]`);
      if (box) box.checked = on;
      const shape = picker.querySelector(`[data-asset="${CSS.escape(id)}"]`);
      if (shape) shape.classList.toggle("chosen", on);
    };
    const toggle = (id) => { if (chosen.has(id)) chosen.delete(id); else chosen.add(id); mark(id); };
    assets.replaceChildren(...(inside.length ? inside.map((a) => el("label", {},
      el("input", { type: "checkbox", "data-asset": a.id, checked: chosen.has(a.id), on: { change: (e) => { if (e.target.checked) chosen.add(a.id); else chosen.delete(a.id); mark(a.id); } } }),
      " " + a.name + "（" + divisionPath(a.division) + "）")) : [el("span", {}, "该区划内没有已登记的" + SYSTEM_ASSET[system.value])]));
    picker.replaceChildren(...(inside.length ? [pickMap(inside, chosen, toggle), el("p", { class: "hint" }, "点击地图上的" + SYSTEM_ASSET[system.value] + "可选中或取消（红色为已选）。")] : []));
  };
  const show = () => {
    const k = kind.value;
    for (const [node, kinds] of [[system, ["chief", "supervisor"]], [level, ["chief"]], [division, ["chief", "supervisor"]], [assets, ["chief"]], [department, ["handler"]]]) {
      node.closest("label").hidden = !kinds.includes(k);
    }
    // Outside the label: a click on the map must not tick the list's first box.
    picker.hidden = k !== "chief";
  };
  for (const s of [kind, level]) s.addEventListener("change", () => { fillDivisions(); fillAssets(); show(); });
  system.addEventListener("change", fillAssets);
  division.addEventListener("change", fillAssets);
  const save = async () => {
    const k = kind.value;
    let newRole = { kind: k };
    if (k === "chief") newRole = { kind: k, system: system.value, level: level.value, jurisdiction: { division: division.value, assets: [...chosen].filter((id) => { const a = data.byAsset.get(id); return a && a.system === system.value && contains(division.value, a.division); }) } };
    if (k === "supervisor") newRole = { kind: k, system: system.value, division: division.value };
    if (k === "handler") newRole = { kind: k, department: department.value.trim() };
    try {
      await api("PATCH", "/admin/users/" + encodeURIComponent(user.id), { display_name: name.value.trim(), role: newRole });
      if (post.value.trim() !== person.post) await api("POST", "/admin/users/" + encodeURIComponent(user.id) + "/post", { post: post.value.trim() });
      message(result, "已保存。该人员的手机下次同步时按新的负责范围接收数据。", "ok");
      result.dataset.saved = "1";
      await loadPeople();
      const tr = document.querySelector(`#people-table tr[data-user="${CSS.escape(user.id)}"]`);
      const fresh = data.people.find((p) => p.user.id === user.id);
      if (tr && fresh) {
        tr.querySelector(".role").textContent = roleText(fresh.user);
        tr.querySelector(".division").textContent = fresh.chief ? fresh.chief.division_name : "";
        tr.querySelector(".assets").textContent = fresh.chief ? fresh.chief.asset_names.join("、") : "";
      }
    } catch (e) { message(result, "未保存：" + e.message, "error"); }
  };
  const deactivate = async () => {
    try { await api("POST", "/admin/users/" + encodeURIComponent(user.id) + "/deactivate"); message(result, "已停用，其设备已退出登录。", "ok"); }
    catch (e) { message(result, "未停用：" + e.message, "error"); }
  };
  // A stopped account is started again here, never by a roster; it keeps its old password
  // (a new setup code resets it).
  const activate = async () => {
    try {
      await api("PATCH", "/admin/users/" + encodeURIComponent(user.id), { active: true });
      message(result, "已重新启用。如需重设密码，请生成启用码。", "ok");
      result.dataset.activated = "1";
      await loadPeople();
      const tr = document.querySelector(`#people-table tr[data-user="${CSS.escape(user.id)}"]`);
      const fresh = data.people.find((p) => p.user.id === user.id);
      if (tr && fresh) tr.children[6].replaceChildren(statusPill(fresh));
    }
    catch (e) { message(result, "未启用：" + e.message, "error"); }
  };
  slot.replaceChildren(el("div", { class: "card", "data-editing": user.id },
    el("h3", {}, "编辑：" + user.display_name + "（" + user.username + "）"),
    el("label", {}, "姓名", name), el("label", {}, "职务", post), el("label", {}, "角色", kind),
    el("label", {}, "体系", system), el("label", {}, "层级", level), el("label", {}, "行政区划", division),
    el("label", {}, "负责河段/林区/网格", assets), picker, el("label", {}, "部门", department),
    el("div", { class: "toolbar" },
      el("button", { type: "button", id: "edit-save", on: { click: save } }, "保存"),
      user.active
        ? el("button", { type: "button", class: "secondary", id: "edit-deactivate", on: { click: deactivate } }, "停用")
        : el("button", { type: "button", class: "secondary", id: "edit-activate", on: { click: activate } }, "重新启用"),
      el("button", { type: "button", class: "secondary", on: { click: () => slot.replaceChildren() } }, "关闭")),
    result));
  fillDivisions(); fillAssets(); show();
  slot.scrollIntoView({ block: "nearest" });
}

function randomSecret() {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// New staff: the account gets an unknown random password and a setup code to hand over, so no
// one ever shares a default password.
function create(slot, codes) {
  const username = el("input", { id: "new-username", placeholder: "手机号或工号" });
  const name = el("input", { id: "new-name" });
  const kind = el("select", { id: "new-kind" }, ["supervisor", "handler", "admin"].map((k) => el("option", { value: k }, KIND[k])));
  const system = el("select", {}, Object.entries(SYSTEM).map(([k, v]) => el("option", { value: k }, v)));
  const division = el("select", {}, divisionOptions(null, null));
  const department = el("input", { placeholder: "如 区水务局" });
  const result = el("p", { role: "status" });
  const save = async () => {
    const k = kind.value;
    const role = k === "supervisor" ? { kind: k, system: system.value, division: division.value } : k === "handler" ? { kind: k, department: department.value.trim() } : { kind: k };
    try {
      const v = await api("POST", "/admin/users", { username: username.value.trim(), display_name: name.value.trim(), password: randomSecret(), role });
      const code = await api("POST", "/admin/users/" + encodeURIComponent(v.user.id) + "/setup-code");
      showCodes(codes, [code]);
      await loadPeople();
      message(result, "已新增，请把启用码交给本人。", "ok");
    } catch (e) { message(result, "未新增：" + e.message, "error"); }
  };
  slot.replaceChildren(el("div", { class: "card" }, el("h3", {}, "新增工作人员"),
    el("label", {}, "账号", username), el("label", {}, "姓名", name), el("label", {}, "角色", kind),
    el("label", {}, "体系（河长办工作人员）", system), el("label", {}, "行政区划（河长办工作人员）", division),
    el("label", {}, "部门（责任部门人员）", department),
    el("div", { class: "toolbar" }, el("button", { type: "button", on: { click: save } }, "新增"),
      el("button", { type: "button", class: "secondary", on: { click: () => slot.replaceChildren() } }, "关闭")), result));
}

async function newCode(person, slot) {
  if (person.has_password && !confirm("“" + person.user.display_name + "”已设密码。仍生成新的启用码吗？")) return;
  const code = await api("POST", "/admin/users/" + encodeURIComponent(person.user.id) + "/setup-code");
  showCodes(slot, [code]);
}

// The printable list of setup codes: shown once, never stored readable on the server.
function showCodes(slot, codes) {
  slot.replaceChildren(el("div", { class: "card", id: "codes" },
    el("div", { class: "toolbar" }, el("h2", {}, "首次登录启用码（共 " + codes.length + " 人）"),
      el("button", { type: "button", class: "no-print", id: "print-codes", on: { click: () => window.print() } }, "打印清单")),
    el("p", {}, "启用码只显示这一次，请打印或抄送本人；每个启用码只能用一次，" + (codes[0] ? "有效期至 " + fmtTime(codes[0].expires_at_ms) : "") + "。本人在手机或工作台“首次登录”处输入账号、启用码并设置自己的密码。"),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "姓名"), el("th", {}, "账号"), el("th", {}, "启用码"), el("th", {}, "签收"))),
      el("tbody", {}, codes.map((c) => el("tr", { "data-username": c.username, "data-code": c.code },
        el("td", {}, c.display_name), el("td", {}, c.username), el("td", { class: "code" }, c.code), el("td", {}, ""))))))));
  slot.scrollIntoView({ block: "start" });
}

// ---- imports ----------------------------------------------------------------------------

function planTable(id, report, describe) {
  const s = report.summary;
  return el("div", { id, "data-applied": report.applied },
    el("p", { class: "summary" },
      el("span", { "data-kind": "create" }, "新增 " + s.create), el("span", { "data-kind": "change" }, "变更 " + s.change),
      el("span", { "data-kind": "unchanged" }, "不变 " + s.unchanged), el("span", { "data-kind": "refused", class: s.refused ? "error" : "" }, "拒绝 " + s.refused),
      s.warnings ? el("span", { class: "warn" }, "提醒 " + s.warnings) : null,
      el("span", { class: report.applied ? "ok" : "" }, report.applied ? "已导入" : s.refused ? "有拒绝行，不能导入；请改正文件后重新预检" : "预检通过，尚未导入")),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "行"), el("th", {}, "对象"), el("th", {}, "结果"), el("th", {}, "说明"))),
      el("tbody", {}, report.rows.map((r) => el("tr", { "data-outcome": r.outcome, "data-row": r.row },
        el("td", {}, r.row), el("td", {}, r.label), el("td", { class: "outcome" }, OUTCOME[r.outcome]),
        el("td", {}, r.outcome === "refused" ? r.reasons.join("；") : describe(r), r.warning ? el("div", { class: "warn" }, "⚠ " + r.warning) : null)))))),
    missingTable(report));
}

// Chiefs on record a newer roster leaves out: listed for the office to decide; deactivated
// only when the office ticked the box for it.
function missingTable(report) {
  const missing = report.missing || [];
  if (!missing.length) return null;
  const gone = missing.filter((m) => m.deactivate).length;
  const note = gone ? (report.applied ? "以下 " + gone + " 人已停用，其手机端已退出登录。" : "导入时将停用以下 " + gone + " 人。")
    : "以下人员仍在系统中，本次导入不会停用；如已离任，可勾选“同时停用名录中没有的人员”后重新预检，或在“人员”页逐个停用。";
  return el("div", { id: "roster-missing", class: "missing" },
    el("h3", {}, "不在本名录中的河湖林田长（" + missing.length + " 人）"), el("p", { class: "warn" }, note),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "姓名"), el("th", {}, "手机号"), el("th", {}, "现任"), el("th", {}, "处理"))),
      el("tbody", {}, missing.map((m) => el("tr", { "data-user": m.user_id, "data-deactivate": m.deactivate },
        el("td", {}, m.display_name), el("td", {}, m.username),
        el("td", {}, LEVEL[m.role.level] + SYSTEM[m.role.system] + "，" + m.division_name + (m.asset_names.length ? "，负责 " + m.asset_names.join("、") : "")),
        el("td", {}, m.deactivate ? (report.applied ? "已停用" : "将停用") : "保留")))))));
}

function describeChief(r) {
  const text = (c) => LEVEL[c.role.level] + SYSTEM[c.role.system] + "，" + c.division_name + (c.asset_names.length ? "，负责 " + c.asset_names.join("、") : "") + (c.post ? "，" + c.post : "");
  if (r.outcome === "create") return text(r.after);
  if (r.outcome === "change") return "原：" + text(r.before) + " → 新：" + text(r.after);
  return "";
}

function describeAsset(r) {
  const text = (a) => SYSTEM_ASSET[a.system] + "，" + divisionPath(a.division) + "，" + (a.geometry.type === "LineString" ? a.geometry.coordinates.length + " 个点的线" : "面");
  if (r.outcome === "create") return text(r.after);
  if (r.outcome === "change") return "原：" + text(r.before) + " → 新：" + text(r.after);
  return "";
}

function describeDivision(r) {
  if (r.outcome === "create") return r.after.parent ? "上级 " + divisionPath(r.after.parent) : "顶级区划";
  if (r.outcome === "change") return "原名 " + r.before.name + " → " + r.after.name;
  return "";
}

// One import block: a file, optional extra inputs, a dry run, then the one apply.
function importBlock({ key, title, accept, help, extra, path, describe, onApplied }) {
  // The browser's own file button speaks the browser's language; this one is in Chinese, with
  // the real input laid over it (transparent), so a click or a dropped file still reaches it.
  const input = el("input", { type: "file", id: key + "-file", accept, "aria-label": "选择文件" });
  const chosen = el("span", { class: "file-name", id: key + "-file-name" }, "未选择文件");
  input.addEventListener("change", () => { chosen.textContent = input.files[0] ? input.files[0].name : "未选择文件"; });
  const picker = el("span", { class: "file-pick" }, el("span", { class: "file-button" }, "选择文件"), input);
  const dry = el("button", { type: "button", id: key + "-dry-run" }, "预检");
  const apply = el("button", { type: "button", id: key + "-apply", disabled: true }, "导入");
  const out = el("div", { id: key + "-out" });
  let checked = null;
  input.addEventListener("change", () => { apply.disabled = true; checked = null; out.replaceChildren(); });
  // A changed option needs a new dry run: the import does only what was previewed.
  if (extra) extra.node.addEventListener("change", () => { apply.disabled = true; checked = null; });
  const query = (dryRun) => "?dry_run=" + dryRun + (extra ? "&" + extra.query() : "");
  dry.addEventListener("click", async () => {
    const file = input.files[0];
    if (!file) { out.replaceChildren(el("p", { class: "error" }, "请先选择文件")); return; }
    if (extra && !extra.ready()) { out.replaceChildren(el("p", { class: "error" }, extra.missing)); return; }
    apply.disabled = true;
    try {
      const report = await api("POST", path, file, { query: query(true) });
      out.replaceChildren(planTable(key + "-plan", report, describe));
      const deactivations = (report.missing || []).filter((m) => m.deactivate).length;
      checked = report.summary.refused === 0 && report.summary.create + report.summary.change + deactivations > 0 ? file : null;
      apply.disabled = !checked;
    } catch (e) { out.replaceChildren(el("p", { class: "error" }, "预检失败：" + e.message)); }
  });
  apply.addEventListener("click", async () => {
    if (!checked) return;
    apply.disabled = true;
    try {
      const report = await api("POST", path, checked, { query: query(false) });
      out.replaceChildren(planTable(key + "-plan", report, describe));
      checked = null;
      if (onApplied) await onApplied(report);
    } catch (e) { out.replaceChildren(el("p", { class: "error" }, "导入失败，未做任何改动：" + e.message)); }
  });
  return el("div", { class: "card", id: key + "-import" }, el("h2", {}, title), el("p", {}, help),
    el("div", { class: "toolbar" }, picker, chosen, extra ? extra.node : null, dry, apply), out);
}

ROUTES.import = async () => {
  await loadPlaces();
  const codes = el("div", { id: "codes-slot" });
  const deactivateBox = el("input", { type: "checkbox", id: "roster-deactivate-missing" });
  const deactivateMissing = el("label", { class: "check" }, deactivateBox, "同时停用名录中没有的人员");
  const crs = el("select", { id: "assets-crs" }, el("option", { value: "" }, "请选择文件的坐标系"),
    Object.entries(CRS).map(([k, v]) => el("option", { value: k }, v)));
  view().replaceChildren(
    el("div", { class: "card" }, el("h2", {}, "河长名录"),
      el("p", {}, "按模板填写（姓名、职务、层级、体系、行政区划、负责河段/林区/网格、手机号），可用 Excel（.xlsx）或 CSV。先预检，逐行查看将新增、变更或拒绝的原因；全部通过后一次导入，任何一行被拒绝则整表不导入。重复导入同一文件不会有任何改动。"),
      el("div", { class: "toolbar" },
        el("button", { type: "button", id: "download-template", class: "secondary", on: { click: () => download("/admin/roster/template.xlsx", "河长名录模板.xlsx") } }, "下载模板"),
        el("button", { type: "button", id: "export-roster", class: "secondary", on: { click: () => download("/admin/roster/export?format=xlsx", "河长名录.xlsx") } }, "导出当前名录"))),
    importBlock({ key: "roster", title: "导入河长名录", accept: ".xlsx,.csv", help: "新增的人员不设密码，导入后生成一次性启用码清单，打印交给本人。预检会列出系统中有、而本名录没有的河湖林田长（只比较名录涉及的体系）；默认保留，勾选后与本次导入一起停用。",
      extra: { node: deactivateMissing, ready: () => true, query: () => "deactivate_missing=" + deactivateBox.checked },
      path: "/admin/import/roster", describe: describeChief,
      onApplied: async (report) => { if (report.setup_codes.length) showCodes(codes, report.setup_codes); } }),
    codes,
    importBlock({ key: "assets", title: "导入河段、林区、网格（GeoJSON 或 Shapefile 压缩包）", accept: ".geojson,.json,.zip",
      help: "GeoJSON，或把一个图层的 .shp、.shx、.dbf、.cpg 打成 zip。要素属性：名称、体系（河长/林长/田长）、行政区划（Shapefile 可写“区划”），可选 编号；河段为线，林区、网格为面，每个要素一个部分。必须选择文件的坐标系：GCJ-02 会换算为 GPS 坐标；离本区巡查轨迹很远的资产会提醒核对。",
      extra: { node: crs, ready: () => !!crs.value, missing: "请选择文件的坐标系", query: () => "crs=" + encodeURIComponent(crs.value) },
      path: "/admin/import/assets", describe: describeAsset, onApplied: loadPlaces }),
    importBlock({ key: "divisions", title: "导入行政区划代码表", accept: ".csv,.xlsx", help: "两列：代码（12位统计用区划代码）、名称；第一行为表头。上级区划按代码确定，须已登记或在表中靠前。",
      path: "/admin/import/divisions", describe: describeDivision, onApplied: loadPlaces }));
};

// ---- map --------------------------------------------------------------------------------

function vertices(g) {
  return g.type === "LineString" ? g.coordinates : g.coordinates.flat();
}

// Fits an SVG map's view to the points ([lon, lat]); the function placing a point in it.
function fitView(map, all) {
  const lons = all.map((p) => p[0]), lats = all.map((p) => p[1]);
  const [minLon, maxLon, minLat, maxLat] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const S = 10000;
  const w = Math.max((maxLon - minLon) * k * S, 1), h = Math.max((maxLat - minLat) * S, 1);
  const pad = Math.max(w, h) * 0.03;
  map.setAttribute("viewBox", `${-pad} ${-pad} ${w + 2 * pad} ${h + 2 * pad}`);
  map.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const pt = ([lon, lat]) => ((lon - minLon) * k * S).toFixed(1) + "," + ((maxLat - lat) * S).toFixed(1);
  // The position ([lon, lat], 7 decimals: about a centimetre) of a point in the map's units.
  pt.back = (x, y) => [+(x / (k * S) + minLon).toFixed(7), +(maxLat - y / S).toFixed(7)];
  return pt;
}

function assetShape(a, pt) {
  const g = a.geometry;
  return g.type === "LineString"
    ? svg("polyline", { class: "asset " + a.system, "data-asset": a.id, points: g.coordinates.map(pt).join(" ") }, svg("title", {}, a.name))
    : svg("polygon", { class: "asset " + a.system, "data-asset": a.id, points: g.coordinates[0].map(pt).join(" ") }, svg("title", {}, a.name));
}

// A chief's assets picked on a small map of the division: a click (or Enter on a focused
// shape) adds or removes one, as ticking it in the list does.
function pickMap(assets, chosen, toggle) {
  const map = svg("svg", { class: "pick-map", id: "edit-asset-map", role: "group", "aria-label": "在地图上点选负责的河段/林区/网格" });
  const all = assets.flatMap((a) => vertices(a.geometry));
  if (!all.length) return map;
  const pt = fitView(map, all);
  for (const a of assets) {
    const shape = assetShape(a, pt);
    shape.setAttribute("tabindex", "0");
    if (chosen.has(a.id)) shape.classList.add("chosen");
    shape.addEventListener("click", () => toggle(a.id));
    shape.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(a.id); } });
    map.append(shape);
  }
  return map;
}

ROUTES.map = async () => {
  await loadPlaces();
  let tracks = [];
  try {
    const since = new Date(Date.now() - 90 * 86400000).toISOString().slice(0, 10);
    const gj = await api("GET", "/export/patrols.geojson", undefined, { query: "?from=" + since });
    tracks = (gj.features || []).filter((f) => f.geometry && f.geometry.type === "LineString").map((f) => f.geometry.coordinates);
  } catch { tracks = []; }
  const all = data.assets.flatMap((a) => vertices(a.geometry)).concat(tracks.flat());
  const map = svg("svg", { id: "asset-map", role: "img", "aria-label": "资产地图" });
  const list = el("div", { class: "scroll", id: "asset-list" });
  const info = el("p", { id: "asset-info" });
  if (all.length) {
    const pt = fitView(map, all);
    for (const t of tracks) map.append(svg("polyline", { class: "track", points: t.map(pt).join(" ") }));
    for (const a of data.assets) {
      const shape = assetShape(a, pt);
      shape.addEventListener("click", () => select(a.id));
      map.append(shape);
    }
  }
  const select = (id) => {
    for (const n of map.querySelectorAll(".selected")) n.classList.remove("selected");
    const node = map.querySelector(`[data-asset="${CSS.escape(id)}"]`);
    if (node) { node.classList.add("selected"); map.append(node); }
    const a = data.byAsset.get(id);
    info.textContent = a ? a.name + "：" + SYSTEM_ASSET[a.system] + "，" + divisionPath(a.division) : "";
  };
  const filter = el("input", { id: "asset-filter", placeholder: "按名称或区划筛选" });
  const draw = () => {
    const q = filter.value.trim();
    const rows = data.assets.filter((a) => !q || (a.name + divisionPath(a.division)).includes(q));
    list.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "名称"), el("th", {}, "类型"), el("th", {}, "行政区划"))),
      el("tbody", {}, rows.map((a) => el("tr", { "data-asset": a.id, on: { click: () => select(a.id) } },
        el("td", {}, a.name), el("td", {}, SYSTEM_ASSET[a.system]), el("td", {}, divisionPath(a.division)))))));
  };
  filter.addEventListener("input", draw);
  draw();
  const drawing = all.length ? drawCard(map, fitView(map, all)) : el("p", { class: "hint" }, "导入行政区划内的资产或巡查轨迹后，可在地图上绘制新的资产。");
  view().replaceChildren(el("div", { class: "layout" },
    el("div", { class: "card" }, el("div", { class: "toolbar" }, el("h2", {}, "资产地图"), el("span", {}, "共 " + data.assets.length + " 处")),
      el("p", { class: "legend" }, el("span", {}, el("i", { class: "l-river" }), "河段"), el("span", {}, el("i", { class: "l-forest" }), "林区"),
        el("span", {}, el("i", { class: "l-field" }), "耕地网格"), el("span", {}, el("i", { class: "l-track" }), "近90天巡查轨迹")),
      map, info),
    el("div", { class: "card" }, el("div", { class: "toolbar" }, el("h2", {}, "资产"), filter,
      el("a", { href: "#/import" }, "导入 GeoJSON / Shapefile")), list, drawing)));
};

// A new asset drawn on the asset map: a river segment as a line, a forest area or farmland grid
// as an area, each click on the map one corner (positions in the map's WGS-84, like the
// patrol tracks under them). The server checks the geometry as it checks an import's.
function drawCard(map, pt) {
  const system = el("select", { id: "draw-system" }, Object.entries(SYSTEM_ASSET).map(([k, v]) => el("option", { value: k }, v)));
  const name = el("input", { id: "draw-name", placeholder: "如 小清河某段" });
  const division = el("select", { id: "draw-division" }, divisionOptions(null, ""));
  const result = el("p", { id: "draw-result", role: "status" });
  const count = el("span", { id: "draw-count" });
  let points = [];
  let active = false;
  const preview = svg("polyline", { class: "drawing", id: "draw-preview", points: "" });
  const area = () => system.value !== "river";
  const redraw = () => {
    const shown = area() && points.length > 2 ? [...points, points[0]] : points;
    preview.setAttribute("points", shown.map(pt).join(" "));
    count.textContent = active ? "已点 " + points.length + " 个点（" + (area() ? "至少3个" : "至少2个") + "）" : "";
  };
  map.addEventListener("click", (e) => {
    if (!active) return;
    e.stopPropagation();
    const p = map.createSVGPoint();
    p.x = e.clientX; p.y = e.clientY;
    const q = p.matrixTransform(map.getScreenCTM().inverse());
    points.push(pt.back(q.x, q.y));
    redraw();
  }, true);
  const startButton = el("button", { type: "button", id: "draw-start" }, "开始绘制");
  const start = () => {
    active = !active;
    startButton.textContent = active ? "停止绘制" : "开始绘制";
    map.classList.toggle("is-drawing", active);
    if (active) map.append(preview);
    redraw();
  };
  startButton.addEventListener("click", start);
  const undo = () => { points.pop(); redraw(); };
  const clear = () => { points = []; redraw(); };
  system.addEventListener("change", redraw);
  const save = async () => {
    delete result.dataset.saved;
    delete result.dataset.failed;
    const need = area() ? 3 : 2;
    if (!name.value.trim()) return message(result, "请填写名称。", "error");
    if (!division.value) return message(result, "请选择行政区划。", "error");
    if (points.length < need) return message(result, "请在地图上至少点 " + need + " 个点。", "error");
    const geometry = area()
      ? { type: "Polygon", coordinates: [[...points, points[0]]] }
      : { type: "LineString", coordinates: points };
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    const id = "drawn-" + Date.now().toString(36) + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      await api("POST", "/admin/assets", { id, system: system.value, name: name.value.trim(), division: division.value, geometry });
      const done = "已保存：" + name.value.trim() + "（" + SYSTEM_ASSET[system.value] + "，" + divisionPath(division.value) + "）。";
      // The map is drawn again with the new asset; the message goes to the new page.
      await ROUTES.map();
      const shown = $("#draw-result");
      if (shown) { message(shown, done, "ok"); shown.dataset.saved = id; }
    } catch (e) { message(result, "未保存：" + e.message, "error"); result.dataset.failed = "1"; }
  };
  return el("div", { class: "draw", id: "draw" },
    el("h3", {}, "在地图上绘制新资产"),
    el("p", { class: "hint" }, "河段画成线，林区和网格画成面：点“开始绘制”，再在地图上依次点击各点。"),
    el("label", {}, "类型", system), el("label", {}, "名称", name), el("label", {}, "行政区划", division),
    el("div", { class: "toolbar" }, startButton,
      el("button", { type: "button", class: "secondary", on: { click: undo } }, "撤销一点"),
      el("button", { type: "button", class: "secondary", on: { click: clear } }, "清除"),
      el("button", { type: "button", id: "draw-save", on: { click: save } }, "保存资产"), count),
    result);
}

// ---- divisions --------------------------------------------------------------------------

ROUTES.divisions = async () => {
  await Promise.all([loadPlaces(), loadPeople()]);
  const children = new Map();
  for (const d of data.divisions) {
    const key = d.parent || "";
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(d);
  }
  const assetsIn = (code) => data.assets.filter((a) => contains(code, a.division)).length;
  const chiefsIn = (code) => data.people.filter((p) => p.chief && p.user.active && p.user.role.jurisdiction.division === code).length;
  const result = el("p", { id: "division-result", role: "status" });
  const rename = async (d) => {
    const name = prompt("“" + d.name + "”的新名称", d.name);
    if (!name || name.trim() === d.name) return;
    try { await api("PUT", "/admin/divisions/" + d.code, { name: name.trim(), parent: d.parent }); await ROUTES.divisions(); }
    catch (e) { message(result, "未改名：" + e.message, "error"); }
  };
  const branch = (parent) => el("ul", {}, (children.get(parent) || []).map((d) => el("li", { "data-division": d.code },
    el("span", { class: "name" }, d.name), el("span", { class: "code" }, d.code),
    el("span", { class: "count" }, LEVEL[divisionLevel(d.code)] + " · 资产 " + assetsIn(d.code) + " · 本级责任人 " + chiefsIn(d.code)),
    " ", el("button", { type: "button", class: "secondary", on: { click: () => rename(d) } }, "改名"),
    children.has(d.code) ? branch(d.code) : null)));
  const roots = data.divisions.filter((d) => !d.parent || !data.byCode.has(d.parent)).map((d) => d.parent || "");
  const code = el("input", { id: "div-code", placeholder: "12位区划代码" });
  const name = el("input", { id: "div-name", placeholder: "名称" });
  const add = async () => {
    const c = code.value.trim();
    const level = /^\d{12}$/.test(c) ? divisionLevel(c) : null;
    const parent = level === "village" ? c.slice(0, 9) + "000" : level === "subdistrict" ? c.slice(0, 6) + "000000" : null;
    try { await api("POST", "/admin/divisions", { code: c, name: name.value.trim(), parent }); await ROUTES.divisions(); }
    catch (e) { message(result, "未新增：" + e.message, "error"); }
  };
  view().replaceChildren(el("div", { class: "card" }, el("h2", {}, "行政区划"),
    el("div", { class: "toolbar" }, code, name, el("button", { type: "button", on: { click: add } }, "新增区划"), el("a", { href: "#/import" }, "导入代码表")), result,
    el("div", { class: "tree", id: "division-tree" }, [...new Set(roots)].map(branch))));
};

// ---- departments, devices, rules, audit -------------------------------------------------

ROUTES.departments = async () => {
  await loadPeople();
  const byDept = new Map();
  for (const p of data.people) if (p.user.role.kind === "handler") {
    if (!byDept.has(p.user.role.department)) byDept.set(p.user.role.department, []);
    byDept.get(p.user.role.department).push(p);
  }
  view().replaceChildren(el("div", { class: "card" }, el("h2", {}, "责任部门"),
    el("p", {}, "问题交办给部门；部门由其人员账号确定。在“人员”中新增责任部门人员即新增部门。"),
    el("table", { id: "departments" }, el("thead", {}, el("tr", {}, el("th", {}, "部门"), el("th", {}, "人员"))),
      el("tbody", {}, [...byDept.entries()].sort().map(([d, ps]) => el("tr", {}, el("td", {}, d),
        el("td", {}, ps.map((p) => p.user.display_name + (p.user.active ? "" : "（停用）")).join("、"))))))));
};

ROUTES.devices = async () => {
  await loadPeople();
  const devices = await api("GET", "/admin/devices");
  const names = new Map(data.people.map((p) => [p.user.id, p.user.display_name]));
  const result = el("p", { role: "status" });
  const revoke = async (d) => {
    if (!confirm("吊销“" + (names.get(d.user_id) || "") + "”的设备 " + d.device_id + "？该设备将立即退出登录。")) return;
    try { await api("POST", "/admin/devices/revoke", { user_id: d.user_id, device_id: d.device_id }); await ROUTES.devices(); }
    catch (e) { message(result, "未吊销：" + e.message, "error"); }
  };
  view().replaceChildren(el("div", { class: "card" }, el("h2", {}, "设备"), result,
    el("div", { class: "scroll" }, el("table", { id: "devices" },
      el("thead", {}, el("tr", {}, ["人员", "设备", "首次登录", "最近登录", "状态", ""].map((t) => el("th", {}, t)))),
      el("tbody", {}, devices.map((d) => el("tr", { "data-device": d.device_id },
        el("td", {}, names.get(d.user_id) || "（已删除）"), el("td", {}, d.device_id), el("td", {}, fmtTime(d.created_at_ms)),
        el("td", {}, fmtTime(d.last_login_ms)), el("td", {}, d.revoked_at_ms ? "已吊销" : "在用"),
        el("td", {}, d.revoked_at_ms ? "" : el("button", { type: "button", class: "secondary", on: { click: () => revoke(d) } }, "吊销")))))))));
};

// ---- patrol rules, quotas, categories and check items (the rules tab) --------------------

const RULE_FIELDS = [
  ["min_minutes", "最短时长（分钟）", "1"], ["min_km", "最短里程（公里）", "0.1"],
  ["max_speed_kmh", "最高速度（公里/小时）", "1"], ["corridor_m", "巡查范围宽度（米）", "10"],
  ["min_inside_share", "范围内定位点比例（0–1）", "0.05"], ["max_gap_s", "最长定位间隔（秒）", "10"],
  ["max_lost_share", "信号中断时间比例（0–1）", "0.05"], ["max_passes", "往返次数上限", "0.5"],
  ["jump_m", "跳点距离（米）", "10"], ["jump_kmh", "跳点速度（公里/小时）", "10"],
];
const PERIOD = { week: "每周", month: "每月", quarter: "每季度" };

// Who a rule or quota applies to, in words.
function ruleScope(o) {
  return [o.region ? divisionPath(o.region) : "全区", o.level ? LEVEL[o.level] : "各层级",
    o.system ? SYSTEM[o.system] : "各体系"].join(" · ");
}

// A rule set as labelled lines, for the preview of a change and for the audit.
function ruleLines(rules) {
  const lines = new Map();
  const add = (head, r) => { for (const [k, label] of RULE_FIELDS) lines.set(head + " · " + label, r[k]); };
  add("默认规则", rules.default);
  for (const o of rules.overrides) add("特别规则（" + ruleScope(o) + "）", o.rules);
  for (const q of rules.quotas) lines.set("巡查频次（" + ruleScope(q) + "）", PERIOD[q.period] + " " + q.count + " 次");
  return lines;
}

function catalogueLines(c) {
  const lines = new Map();
  for (const x of c.categories) lines.set("问题类别 " + x.code, SYSTEM[x.system] + "：" + x.name_zh);
  for (const x of c.check_items) lines.set("检查项 " + x.code, SYSTEM[x.system] + "：" + x.name_zh);
  return lines;
}

// A change of the rules or the categories, in words (other entries: `null`).
function settingChanges(e) {
  const lines = { rules_change: ruleLines, categories_change: catalogueLines }[e.action];
  return lines && e.before && e.after ? lineChanges(lines(e.before), lines(e.after)).join("\n") : null;
}

// Only the lines that differ, as “what: before → after”.
function lineChanges(before, after) {
  const out = [];
  for (const [k, v] of after) if (!before.has(k)) out.push("新增 " + k + "：" + v);
  else if (String(before.get(k)) !== String(v)) out.push(k + "：" + before.get(k) + " → " + v);
  for (const [k, v] of before) if (!after.has(k)) out.push("删除 " + k + "：" + v);
  return out;
}

function choice(values, names, selected, label, anyText) {
  return el("select", { "aria-label": label },
    anyText === null ? null : el("option", { value: "", selected: !selected }, anyText),
    values.map((v) => el("option", { value: v, selected: v === selected }, names[v])));
}

function regionChoice(selected) {
  return el("select", { "aria-label": "适用区域" }, el("option", { value: "", selected: !selected }, "全区"),
    divisionOptions(null, selected));
}

function numberInput(value, step, label) {
  return el("input", { type: "number", step, min: "0", value: value, "aria-label": label, style: "width: 7em" });
}

// One rule's thresholds as labelled inputs; `read()` gives them back.
function ruleFields(rules, head) {
  const inputs = RULE_FIELDS.map(([k, label, step]) => [k, numberInput(rules[k], step, head + " " + label), label]);
  const node = el("div", { class: "toolbar rule-fields" },
    inputs.map(([k, input, label]) => el("label", { "data-field": k }, label, input)));
  const read = () => Object.fromEntries(inputs.map(([k, input]) => [k, input.value === "" ? NaN : Number(input.value)]));
  return { node, read };
}

ROUTES.rules = async () => {
  await loadPlaces();
  const [rules, catalogue] = await Promise.all([api("GET", "/admin/rules"), api("GET", "/admin/categories")]);
  const result = el("p", { role: "status", id: "rules-result" });
  const preview = el("pre", { class: "diff", id: "rules-preview" });
  const systems = Object.keys(SYSTEM), levels = Object.keys(LEVEL);

  const base = ruleFields(rules.default, "默认规则");
  const overrideList = el("div", { id: "rule-overrides" });
  const overrides = [];
  const addOverride = (o) => {
    const row = { system: choice(systems, SYSTEM, o.system, "适用体系", "各体系"),
      level: choice(levels, LEVEL, o.level, "适用层级", "各层级"), region: regionChoice(o.region),
      fields: ruleFields(o.rules, "特别规则") };
    const node = el("fieldset", { class: "override" }, el("legend", {}, "特别规则"),
      el("div", { class: "toolbar" }, el("label", {}, "体系 ", row.system), el("label", {}, "层级 ", row.level),
        el("label", {}, "区域 ", row.region),
        el("button", { type: "button", class: "secondary", on: { click: () => { overrides.splice(overrides.indexOf(row), 1); node.remove(); } } }, "删除此规则")),
      row.fields.node);
    overrides.push(row);
    overrideList.append(node);
  };
  rules.overrides.forEach(addOverride);

  const quotaBody = el("tbody", {});
  const quotas = [];
  const addQuota = (q) => {
    const row = { system: choice(systems, SYSTEM, q.system, "频次适用体系", "各体系"),
      level: choice(levels, LEVEL, q.level, "频次适用层级", null),
      period: choice(Object.keys(PERIOD), PERIOD, q.period, "周期", null),
      count: el("input", { type: "number", min: "1", max: "100", step: "1", value: q.count, "aria-label": "巡查次数", style: "width: 5em" }) };
    const tr = el("tr", {}, el("td", {}, row.system), el("td", {}, row.level), el("td", {}, row.period), el("td", {}, row.count),
      el("td", {}, el("button", { type: "button", class: "secondary", on: { click: () => { quotas.splice(quotas.indexOf(row), 1); tr.remove(); } } }, "删除")));
    quotas.push(row);
    quotaBody.append(tr);
  };
  rules.quotas.forEach(addQuota);

  const readRules = () => ({
    default: base.read(),
    overrides: overrides.map((r) => ({ system: r.system.value || null, level: r.level.value || null,
      region: r.region.value || null, rules: r.fields.read() })),
    quotas: quotas.map((r) => ({ system: r.system.value || null, level: r.level.value,
      count: Number(r.count.value), period: r.period.value })),
  });
  let stored = rules;
  const showPreview = () => {
    const changes = lineChanges(ruleLines(stored), ruleLines(readRules()));
    preview.textContent = changes.length ? "将要保存的改动：\n" + changes.join("\n") : "没有改动。";
    return changes.length;
  };
  const save = async () => {
    if (!showPreview()) return;
    try {
      stored = await api("PUT", "/admin/rules", readRules());
      message(result, "已保存。巡查记录与统计即刻按新规则判定，手机下次同步时收到。", "ok");
      preview.textContent = "";
    } catch (e) { message(result, "未保存：" + e.message, "error"); }
  };

  // Categories and check items: existing codes stay as they are (issues refer to them).
  const catBody = el("tbody", {}), itemBody = el("tbody", {});
  const cats = [], items = [];
  const addEntry = (list, body, x, withEn) => {
    const row = { system: choice(systems, SYSTEM, x.system || "river", "所属体系", null),
      code: el("input", { value: x.code || "", "aria-label": "代码", readonly: x.code ? true : null, placeholder: "如 river.sand", style: "width: 12em" }),
      name_zh: el("input", { value: x.name_zh || "", "aria-label": "中文名称" }),
      name_en: withEn ? el("input", { value: x.name_en || "", "aria-label": "英文名称" }) : null };
    const tr = el("tr", {}, el("td", {}, row.system), el("td", {}, row.name_zh), withEn ? el("td", { class: "hide-narrow" }, row.name_en) : null,
      el("td", { class: "hide-narrow" }, row.code),
      el("td", {}, el("button", { type: "button", class: "secondary", on: { click: () => { list.splice(list.indexOf(row), 1); tr.remove(); } } }, "删除")));
    list.push(row);
    body.append(tr);
  };
  catalogue.categories.forEach((c) => addEntry(cats, catBody, c, true));
  catalogue.check_items.forEach((c) => addEntry(items, itemBody, c, false));
  const readCatalogue = () => ({
    categories: cats.map((r) => ({ code: r.code.value.trim(), system: r.system.value, name_zh: r.name_zh.value.trim(), name_en: r.name_en.value.trim() })),
    check_items: items.map((r) => ({ code: r.code.value.trim(), system: r.system.value, name_zh: r.name_zh.value.trim() })),
  });
  const catResult = el("p", { role: "status", id: "categories-result" });
  const catPreview = el("pre", { class: "diff", id: "categories-preview" });
  let storedCatalogue = catalogue;
  const previewCatalogue = () => {
    const changes = lineChanges(catalogueLines(storedCatalogue), catalogueLines(readCatalogue()));
    catPreview.textContent = changes.length ? "将要保存的改动：\n" + changes.join("\n") : "没有改动。";
    return changes.length;
  };
  const saveCatalogue = async () => {
    if (!previewCatalogue()) return;
    try {
      storedCatalogue = await api("PUT", "/admin/categories", readCatalogue());
      message(catResult, "已保存。手机下次获取基础数据时可按新类别上报。", "ok");
      catPreview.textContent = "";
    } catch (e) { message(catResult, "未保存：" + e.message, "error"); }
  };
  const head = (...titles) => el("thead", {}, el("tr", {}, titles.map(([t, narrow]) => el("th", { class: narrow ? "hide-narrow" : null }, t))));

  view().replaceChildren(
    el("div", { class: "card", id: "rules-editor" }, el("h2", {}, "巡查规则与频次"),
      el("p", {}, "一次巡查须达到的时长、里程等要求，以及各层级河湖林田长的巡查频次。特别规则适用于所选体系、层级、区域的河湖林田长，范围越具体越优先。保存后即刻生效，手机下次同步时收到。"),
      el("h3", {}, "默认规则"), base.node,
      el("h3", {}, "特别规则"), overrideList,
      el("button", { type: "button", class: "secondary", on: { click: () => addOverride({ system: null, level: null, region: null, rules: readRules().default }) } }, "新增特别规则"),
      el("h3", {}, "巡查频次"),
      el("div", { class: "scroll" }, el("table", { id: "quotas" }, head(["体系"], ["层级"], ["周期"], ["至少巡查（次）"], [""]), quotaBody)),
      el("div", { class: "toolbar" },
        el("button", { type: "button", class: "secondary", on: { click: () => addQuota({ system: null, level: "village", count: 1, period: "month" }) } }, "新增频次要求"),
        el("button", { type: "button", class: "secondary", id: "rules-preview-button", on: { click: showPreview } }, "预览改动"),
        el("button", { type: "button", id: "rules-save", on: { click: save } }, "保存规则")),
      preview, result),
    el("div", { class: "card", id: "catalogue-editor" }, el("h2", {}, "问题类别与巡查检查项"),
      el("p", {}, "已有问题使用的类别不能删除。新类别在该体系的手机下次获取基础数据后即可上报。"),
      el("h3", {}, "问题类别"),
      el("div", { class: "scroll" }, el("table", { id: "categories" }, head(["体系"], ["名称"], ["英文名称", true], ["代码", true], [""]), catBody)),
      el("button", { type: "button", class: "secondary", on: { click: () => addEntry(cats, catBody, {}, true) } }, "新增问题类别"),
      el("h3", {}, "巡查检查项"),
      el("div", { class: "scroll" }, el("table", { id: "check-items" }, head(["体系"], ["检查项"], ["代码", true], [""]), itemBody)),
      el("div", { class: "toolbar" },
        el("button", { type: "button", class: "secondary", on: { click: () => addEntry(items, itemBody, {}, false) } }, "新增检查项"),
        el("button", { type: "button", class: "secondary", on: { click: previewCatalogue } }, "预览改动"),
        el("button", { type: "button", id: "categories-save", on: { click: saveCatalogue } }, "保存类别与检查项")),
      catPreview, catResult));
};

function short(v) {
  if (v === undefined || v === null) return "（无）";
  if (typeof v === "object" && v.kind && v.kind !== "chief") return v.kind === "supervisor" ? SYSTEM[v.system] + "办 " + divisionPath(v.division) : v.kind === "handler" ? v.department : KIND[v.kind];
  if (typeof v === "object" && v.kind === "chief") return LEVEL[v.level] + SYSTEM[v.system] + " " + divisionPath(v.jurisdiction.division) + (v.jurisdiction.assets.length ? " 负责 " + v.jurisdiction.assets.map((id) => (data.byAsset.get(id) || { name: id }).name).join("、") : "");
  if (typeof v === "object" && v.type && v.coordinates) return v.type === "LineString" ? "线（" + v.coordinates.length + " 点）" : "面";
  if (Array.isArray(v)) return v.join("、");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// A record as a line of words: an asset, a division, a person.
function describe(v) {
  if (!v || typeof v !== "object") return short(v);
  if (v.geometry) return v.name + "，" + SYSTEM_ASSET[v.system] + "，" + divisionPath(v.division) + "，" + short(v.geometry);
  if (v.code && v.name !== undefined) return v.name + "（" + v.code + "）" + (v.parent ? "，上级 " + divisionPath(v.parent) : "");
  if (v.role) return (v.display_name || "") + "，" + short(v.role) + (v.post ? "，" + v.post : "") + (v.username ? "，账号 " + v.username : "");
  return short(v);
}

// Only what changed, field by field, in words.
function diff(before, after) {
  if (before && !after) return "删除：" + describe(before);
  if (after && !before) return "新建：" + describe(after);
  if (typeof before !== "object" || typeof after !== "object" || !before || !after) {
    return short(before) + " → " + short(after);
  }
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return keys.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => (FIELD[k] || k) + "：" + short(before[k]) + " → " + short(after[k])).join("\n");
}

ROUTES.audit = async () => {
  await loadPlaces();
  const entries = await api("GET", "/admin/audit", undefined, { query: "?limit=500" });
  view().replaceChildren(el("div", { class: "card" }, el("h2", {}, "变更记录"),
    el("p", {}, "每次管理操作：谁、何时、改了什么（改前、改后）。记录不可修改。"),
    el("div", { class: "scroll" }, el("table", { id: "audit" },
      el("thead", {}, el("tr", {}, ["时间", "操作人", "操作", "对象", "改动"].map((t) => el("th", {}, t)))),
      el("tbody", {}, entries.map((e) => el("tr", { "data-action": e.action },
        el("td", {}, fmtTime(e.at_ms)), el("td", {}, e.by_name), el("td", {}, ACTION[e.action] || e.action), el("td", {}, e.target),
        el("td", { class: "diff" }, settingChanges(e) || (e.before || e.after ? diff(e.before, e.after) : "")))))))));
};

// ---- start ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", signIn);
  $("#setup-form").addEventListener("submit", firstSignIn);
  $("#logout").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", route);
  start();
});
