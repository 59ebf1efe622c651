// Office staff enter hotline (12369) and letter (信访) reports; the session is the dashboard's
// (its access token in this tab's sessionStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const token = sessionStorage.getItem("chiefsync.access_token");
let reference = null;

async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || ("HTTP " + res.status));
  return body;
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
}

function fillCategories() {
  const asset = reference.assets.find((a) => a.id === $("asset").value);
  const select = $("category");
  select.textContent = "";
  for (const c of reference.categories.filter((c) => asset && c.system === asset.system)) option(select, c.code, c.name_zh);
}

async function start() {
  if (!token) { $("login-needed").hidden = false; return; }
  try {
    reference = await api("/api/v1/reference");
  } catch (err) {
    $("login-needed").hidden = false;
    return;
  }
  for (const a of reference.assets) option($("asset"), a.id, a.name);
  $("asset").addEventListener("change", fillCategories);
  fillCategories();
  $("office-form").hidden = false;
}

$("office-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("office-error").hidden = true;
  try {
    const done = await api("/api/v1/office/reports", {
      method: "POST",
      body: JSON.stringify({
        source: $("source").value,
        asset: $("asset").value,
        category: $("category").value,
        description: $("description").value.trim(),
        phone: $("phone").value.trim() || null,
      }),
    });
    $("office-form").hidden = true;
    $("office-code").textContent = done.code;
    $("office-link").href = "/t/" + encodeURIComponent(done.code);
    $("office-link").textContent = done.link;
    $("office-done").hidden = false;
  } catch (err) {
    $("office-error").textContent = "登记失败：" + err.message;
    $("office-error").hidden = false;
  }
});

start();
