// The tracking page: status, the public steps, after photos once closed, and the say on the
// outcome. The tracking code in the address is the only key.
"use strict";

const $ = (id) => document.getElementById(id);
const code = decodeURIComponent(location.pathname.split("/").pop() || "");

function show(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function when(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" + two(d.getMinutes());
}

async function load() {
  const res = await fetch("/api/v1/public/track/" + encodeURIComponent(code));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("summary").textContent = "";
    show($("load-error"), res.status === 404 ? "查询码不正确，请检查链接。" : "暂时无法查询，请稍后再试。");
    return;
  }
  $("summary").textContent = body.asset_name + " · " + body.category_name + " · " + body.source + " · " + when(body.reported_at_ms);
  const status = $("status");
  status.textContent = body.status_zh || "已登记";
  status.dataset.status = body.status || "";
  const steps = $("steps");
  steps.textContent = "";
  for (const s of body.steps) {
    const li = document.createElement("li");
    const t = document.createElement("time");
    t.textContent = when(s.at_ms);
    li.appendChild(t);
    li.appendChild(document.createTextNode(s.text));
    steps.appendChild(li);
  }
  $("status-box").hidden = false;
  const after = $("after-photos");
  after.textContent = "";
  for (const url of body.after_photos) {
    const img = document.createElement("img");
    img.src = url;
    img.alt = "整改后照片";
    img.className = "after-photo";
    after.appendChild(img);
  }
  $("after").hidden = body.after_photos.length === 0;
  $("rate").hidden = !body.may_rate;
  if (body.feedback) {
    const f = body.feedback;
    show($("rated"), f.satisfaction === "satisfied" ? "您已评价：满意。谢谢！" : "您已评价：不满意（" + f.reason + "）。主管部门将复查处理。");
    $("rated").dataset.satisfaction = f.satisfaction;
  }
}

async function rate(satisfied, reason) {
  show($("rate-error"), "");
  const res = await fetch("/api/v1/public/track/" + encodeURIComponent(code) + "/feedback", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ satisfied, reason }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    show($("rate-error"), body.error === "reason_required" ? "请说明还存在什么问题。" : "提交失败：" + (body.message || res.status));
    return;
  }
  await load();
}

$("satisfied").addEventListener("click", () => rate(true, ""));
$("not-satisfied").addEventListener("click", () => { $("reason-box").hidden = false; $("reason").focus(); });
$("send-reason").addEventListener("click", () => rate(false, $("reason").value.trim()));

load();
