// The public report page behind a signboard's QR code: no account; photos are resized in the
// browser and uploaded in resumable chunks; a small proof of work buys the ticket.
"use strict";

const $ = (id) => document.getElementById(id);
const assetId = decodeURIComponent(location.pathname.split("/").pop() || "");
const CHUNK = 128 * 1024;
const MAX_SIDE = 1600;
let asset = null;
let position = null;
const photos = []; // {blob, sha256, url}

function show(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

async function json(url, options) {
  const res = await fetch(url, options);
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (!res.ok) {
    const err = new Error((body && body.message) || ("HTTP " + res.status));
    err.code = body && body.error;
    err.status = res.status;
    throw err;
  }
  return body;
}

const MESSAGES = {
  rate_limited_address: "提交过于频繁，请稍后再试。",
  rate_limited_asset: "该处近期举报较多，请稍后再试，或拨打监督电话。",
  ticket_invalid: "页面已过期，请刷新后重新提交。",
  far_from_asset: "所选位置离该处太远，请重新选择位置。",
  bad_phone: "电话号码格式不对。",
  field_too_long: "说明文字太长了。",
  unknown_category: "请选择问题类型。",
  not_an_image: "照片无法识别，请换一张。",
  corrupt_image: "照片已损坏，请换一张。",
  unsupported_image: "照片格式不支持，请换一张。",
  image_too_large: "照片太大，请换一张。",
};

function friendly(err) {
  return MESSAGES[err.code] || ("提交失败：" + err.message);
}

// --- the map: the asset's geometry drawn as SVG; a tap picks the position ---
function rings(geometry) {
  if (geometry.type === "LineString") return [geometry.coordinates];
  return geometry.coordinates;
}

function drawMap() {
  const svg = $("map");
  const all = rings(asset.geometry).flat();
  const lons = all.map((p) => p[0]);
  const lats = all.map((p) => p[1]);
  const pad = 0.002;
  const box = {
    w: Math.min(...lons) - pad, e: Math.max(...lons) + pad,
    s: Math.min(...lats) - pad, n: Math.max(...lats) + pad,
  };
  const k = Math.cos(((box.n + box.s) / 2) * Math.PI / 180);
  const scale = Math.min(300 / ((box.e - box.w) * k), 200 / (box.n - box.s));
  const ox = (300 - (box.e - box.w) * k * scale) / 2;
  const oy = (200 - (box.n - box.s) * scale) / 2;
  const to = ([lon, lat]) => [ox + (lon - box.w) * k * scale, oy + (box.n - lat) * scale];
  const from = (x, y) => [box.w + (x - ox) / (k * scale), box.n - (y - oy) / scale];
  const ns = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  for (const ring of rings(asset.geometry)) {
    const el = document.createElementNS(ns, asset.geometry.type === "LineString" ? "polyline" : "polygon");
    el.setAttribute("points", ring.map((p) => to(p).map((v) => v.toFixed(1)).join(",")).join(" "));
    el.setAttribute("fill", asset.geometry.type === "LineString" ? "none" : "#b7d7a8");
    el.setAttribute("stroke", asset.system === "river" ? "#2f7fc1" : "#4d8a3a");
    el.setAttribute("stroke-width", asset.geometry.type === "LineString" ? "6" : "2");
    el.setAttribute("stroke-linecap", "round");
    svg.appendChild(el);
  }
  const marker = document.createElementNS(ns, "circle");
  marker.setAttribute("r", "7");
  marker.setAttribute("fill", "#d93025");
  marker.setAttribute("stroke", "#fff");
  marker.setAttribute("stroke-width", "2");
  marker.setAttribute("visibility", "hidden");
  marker.id = "marker";
  svg.appendChild(marker);
  svg.addEventListener("click", (ev) => {
    const pt = svg.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    const local = pt.matrixTransform(svg.getScreenCTM().inverse());
    setPosition(from(local.x, local.y), "地图上选择的位置");
  });
  drawMap.to = to;
}

function setPosition(lonlat, how) {
  position = lonlat;
  const m = $("marker");
  if (m && drawMap.to) {
    const [x, y] = drawMap.to(lonlat);
    m.setAttribute("cx", x.toFixed(1));
    m.setAttribute("cy", y.toFixed(1));
    m.setAttribute("visibility", "visible");
  }
  show($("position"), how + "（" + lonlat[1].toFixed(5) + ", " + lonlat[0].toFixed(5) + "）");
  $("position").dataset.set = "1";
}

$("locate").addEventListener("click", () => {
  if (!navigator.geolocation) {
    show($("position"), "此浏览器无法定位，请在图中点选位置。");
    return;
  }
  show($("position"), "正在定位…");
  navigator.geolocation.getCurrentPosition(
    (p) => setPosition([p.coords.longitude, p.coords.latitude], "我的当前位置"),
    () => show($("position"), "无法获取位置，请在图中点选位置。"),
    { enableHighAccuracy: true, timeout: 15000 },
  );
});

// --- photos: resized to at most 1600 px on a canvas, JPEG ---
async function resize(file) {
  const url = URL.createObjectURL(file);
  try {
    const img = new Image();
    await new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; img.src = url; });
    const ratio = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(img.naturalWidth * ratio));
    canvas.height = Math.max(1, Math.round(img.naturalHeight * ratio));
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    return await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.82));
  } finally {
    URL.revokeObjectURL(url);
  }
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

$("photo-input").addEventListener("change", async (ev) => {
  for (const file of Array.from(ev.target.files || [])) {
    if (photos.length >= 3) break;
    try {
      const blob = await resize(file);
      const sha256 = hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
      if (photos.some((p) => p.sha256 === sha256)) continue;
      const url = URL.createObjectURL(blob);
      photos.push({ blob, sha256, url });
      const img = document.createElement("img");
      img.src = url;
      img.alt = "待上传的照片";
      img.className = "photo-thumb";
      $("photos").appendChild(img);
    } catch (_) {
      show($("form-error"), "这张照片无法读取，请换一张。");
    }
  }
  ev.target.value = "";
});

// --- proof of work: SHA-256(challenge:nonce) with the leading zero bits asked for ---
function zeroBits(bytes) {
  let bits = 0;
  for (const b of bytes) {
    if (b === 0) { bits += 8; continue; }
    return bits + Math.clz32(b) - 24;
  }
  return bits;
}

async function solve(challenge, bits) {
  const enc = new TextEncoder();
  for (let base = 0; ; base += 256) {
    const batch = [];
    for (let i = 0; i < 256; i++) {
      batch.push(crypto.subtle.digest("SHA-256", enc.encode(challenge + ":" + (base + i))));
    }
    const digests = await Promise.all(batch);
    for (let i = 0; i < digests.length; i++) {
      if (zeroBits(new Uint8Array(digests[i])) >= bits) return String(base + i);
    }
  }
}

// --- resumable upload: chunks with Content-Range; after a failure ask what is held ---
async function upload(photo, ticket) {
  const url = "/api/v1/public/photos/" + photo.sha256;
  const total = photo.blob.size;
  let offset = 0;
  for (let attempt = 0; attempt < 8 && offset < total; ) {
    const end = Math.min(offset + CHUNK, total);
    try {
      const res = await fetch(url, {
        method: "PUT",
        headers: {
          "X-Report-Ticket": ticket,
          "Content-Range": "bytes " + offset + "-" + (end - 1) + "/" + total,
          "Content-Type": "application/octet-stream",
        },
        body: photo.blob.slice(offset, end),
      });
      if (res.status === 201) return;
      if (res.status === 202 || res.status === 409) {
        offset = Number(res.headers.get("Upload-Offset") || end);
        continue;
      }
      const body = await res.json().catch(() => ({}));
      const err = new Error(body.message || ("HTTP " + res.status));
      err.code = body.error;
      throw err;
    } catch (err) {
      if (err.code) throw err;
      attempt++;
      await new Promise((ok) => setTimeout(ok, 1000 * attempt));
      const head = await fetch(url, { method: "HEAD", headers: { "X-Report-Ticket": ticket } }).catch(() => null);
      if (head && head.ok) {
        if (head.headers.get("Upload-Complete") === "?1") return;
        offset = Number(head.headers.get("Upload-Offset") || 0);
      }
    }
  }
  if (offset < total) throw new Error("网络不稳定，照片未能上传");
}

$("report").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("form-error"), "");
  const chosen = document.querySelector("input[name=category]:checked");
  if (!chosen) { show($("form-error"), "请选择问题类型。"); return; }
  if (!position) { show($("form-error"), "请点“使用我的当前位置”，或在图中点选问题所在位置。"); return; }
  $("submit").disabled = true;
  try {
    show($("progress"), "正在准备提交…");
    const ch = await json("/api/v1/public/challenge");
    const nonce = await solve(ch.challenge, ch.bits);
    const grant = await json("/api/v1/public/tickets", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ asset: asset.id, challenge: ch.challenge, nonce }),
    });
    for (let i = 0; i < photos.length; i++) {
      show($("progress"), "正在上传照片 " + (i + 1) + "/" + photos.length + "…");
      await upload(photos[i], grant.ticket);
    }
    show($("progress"), "正在提交…");
    const done = await json("/api/v1/public/reports", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        ticket: grant.ticket,
        category: chosen.value,
        description: $("description").value.trim(),
        location: position,
        photos: photos.map((p) => p.sha256),
        phone: $("phone").value.trim() || null,
      }),
    });
    $("report").hidden = true;
    $("next").textContent = done.next;
    $("tracking-code").textContent = done.code;
    const link = $("tracking-link");
    link.href = "/t/" + encodeURIComponent(done.code);
    link.textContent = done.link;
    $("done").hidden = false;
  } catch (err) {
    show($("form-error"), friendly(err));
    show($("progress"), "");
  } finally {
    $("submit").disabled = false;
  }
});

async function start() {
  try {
    asset = await json("/api/v1/public/assets/" + encodeURIComponent(assetId));
  } catch (err) {
    $("asset-name").textContent = "无法举报";
    show($("load-error"), err.code === "unknown_asset" ? "没有找到这块公示牌对应的地点，请拨打12369举报。" : friendly(err));
    return;
  }
  document.title = asset.name + " · 问题举报";
  $("asset-name").textContent = asset.name;
  $("asset-place").textContent = asset.division_name + " · 发现问题请在此举报";
  const box = $("categories");
  for (const c of asset.categories) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "category";
    input.value = c.code;
    label.appendChild(input);
    label.appendChild(document.createTextNode(c.name));
    box.appendChild(label);
  }
  $("retention").textContent = String(asset.phone_retention_days);
  for (const el of document.querySelectorAll("#phone-why .office")) el.textContent = asset.chief_title + "办";
  for (const el of document.querySelectorAll("#phone-why .chief")) el.textContent = asset.chief_title;
  const phone = asset.supervision_phone ? "监督电话：" + asset.supervision_phone + "　" : "";
  $("footer").textContent = phone + "生态环境问题也可拨打12369。";
  drawMap();
  $("report").hidden = false;
}

start();
