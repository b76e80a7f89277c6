// Holdfast admin UI: plain JavaScript, no build step, nothing loaded from elsewhere.
// Every value from the server goes into the page through textContent, never innerHTML.
"use strict";

const UI = "/_holdfast/ui/api/";
const ADMIN = "/_holdfast/api/";
const state = { me: null, bucket: null, prefix: "", next: null };
const $ = (id) => document.getElementById(id);

// -- calls ---------------------------------------------------------------------------------

async function call(method, url, body) {
  const headers = {};
  if (method !== "GET" && state.me) headers["X-Holdfast-CSRF"] = state.me.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({}));
  if (r.status === 401 && url !== UI + "session") { showSignin(); }
  if (!r.ok) throw new Error(data.message || data.error || ("HTTP " + r.status));
  return data;
}

function say(text) { $("message").textContent = text || ""; }

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function button(text, onclick, cls) {
  const b = el("button", text, { type: "button" });
  if (cls) b.className = cls;
  b.addEventListener("click", onclick);
  return b;
}

function size(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function when(epoch) { return epoch ? new Date(epoch * 1000).toLocaleString() : ""; }

// -- sign in and out -----------------------------------------------------------------------

function showSignin() {
  state.me = null;
  $("app").hidden = true;
  $("signin").hidden = false;
}

function showApp(me) {
  state.me = me;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("whoami").textContent = me.user + (me.root ? " (root)" : "");
  for (const a of document.querySelectorAll(".root-only")) a.hidden = !me.root;
  route();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("signin-error").textContent = "";
  try {
    const me = await call("POST", UI + "session", {
      access_key: $("access-key").value, secret_key: $("secret-key").value,
    });
    $("secret-key").value = "";
    showApp(me);
  } catch (e) {
    $("signin-error").textContent = "Sign-in failed: " + e.message;
  }
});

$("signout").addEventListener("click", async () => {
  try { await call("DELETE", UI + "session"); } catch (e) { /* signed out either way */ }
  showSignin();
});

// -- views ---------------------------------------------------------------------------------

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + view;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.view === view || (view === "bucket" && a.dataset.view === "buckets"));
  }
}

function route() {
  if (!state.me) return;
  say("");
  const hash = location.hash.replace(/^#/, "");
  const [view, ...rest] = hash.split("/");
  if (view === "bucket" && rest.length) {
    openBucket(decodeURIComponent(rest[0]), decodeURIComponent(rest.slice(1).join("/")));
    return;
  }
  const loaders = { users: loadUsers, health: loadHealth, cluster: loadCluster, charts: loadCharts, log: () => {} };
  const name = loaders[view] ? view : "buckets";
  show(name);
  (loaders[name] || loadBuckets)().catch((e) => say(e.message));
}

window.addEventListener("hashchange", route);

// -- buckets and objects ---------------------------------------------------------------------

async function loadBuckets() {
  const data = await call("GET", UI + "buckets");
  const tbody = $("bucket-table").tBodies[0];
  tbody.replaceChildren();
  for (const b of data.buckets) {
    const link = el("a", b.name, { href: "#bucket/" + encodeURIComponent(b.name) + "/", class: "bucket-link" });
    tbody.appendChild(row([link, when(b.created), button("Delete", () => deleteBucket(b.name))]));
  }
}

async function deleteBucket(name) {
  if (!confirm("Delete bucket " + name + "? It must be empty.")) return;
  try { await call("DELETE", UI + "buckets/" + encodeURIComponent(name)); await loadBuckets(); } catch (e) { say(e.message); }
}

$("bucket-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await call("POST", UI + "buckets", { name: $("bucket-name").value.trim() });
    $("bucket-name").value = "";
    await loadBuckets();
  } catch (e) { say(e.message); }
});

function bucketHash(bucket, prefix) {
  return "#bucket/" + encodeURIComponent(bucket) + "/" + prefix.split("/").map(encodeURIComponent).join("/");
}

function crumbs(bucket, prefix) {
  const h = $("crumbs");
  h.replaceChildren(el("a", "Buckets", { href: "#buckets" }), document.createTextNode(" / "));
  h.appendChild(el("a", bucket, { href: bucketHash(bucket, "") }));
  let acc = "";
  for (const part of prefix.split("/").filter(Boolean)) {
    acc += part + "/";
    h.appendChild(document.createTextNode(" / "));
    h.appendChild(el("a", part, { href: bucketHash(bucket, acc) }));
  }
}

async function openBucket(bucket, prefix) {
  show("bucket");
  state.bucket = bucket;
  state.prefix = prefix;
  crumbs(bucket, prefix);
  $("object-table").tBodies[0].replaceChildren();
  try { await loadObjects(null); } catch (e) { say(e.message); }
}

async function loadObjects(after) {
  const q = new URLSearchParams({ prefix: state.prefix });
  if (after) q.set("after", after);
  const data = await call("GET", UI + "buckets/" + encodeURIComponent(state.bucket) + "/objects?" + q);
  const tbody = $("object-table").tBodies[0];
  for (const p of data.prefixes) {
    const link = el("a", p.slice(state.prefix.length), { href: bucketHash(state.bucket, p), class: "prefix" });
    tbody.appendChild(row([link, "", "", ""]));
  }
  for (const o of data.objects) {
    const url = UI + "buckets/" + encodeURIComponent(state.bucket) + "/object?key=" + encodeURIComponent(o.key);
    const link = el("a", o.key.slice(state.prefix.length), { href: url, class: "object", download: "" });
    tbody.appendChild(row([link, size(o.size), when(o.last_modified), button("Delete", () => deleteObject(o.key))]));
  }
  state.next = data.next;
  $("more-objects").hidden = !data.truncated;
}

$("more-objects").addEventListener("click", () => loadObjects(state.next).catch((e) => say(e.message)));

async function deleteObject(key) {
  if (!confirm("Delete " + key + "?")) return;
  try {
    await call("DELETE", UI + "buckets/" + encodeURIComponent(state.bucket) + "/object?key=" + encodeURIComponent(key));
    await openBucket(state.bucket, state.prefix);
  } catch (e) { say(e.message); }
}

// The file goes as the request body itself (streamed by the browser, never read into
// memory here); XMLHttpRequest because fetch() cannot report upload progress.
$("upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const key = state.prefix + ($("upload-name").value.trim() || file.name);
  const xhr = new XMLHttpRequest();
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("upload-status").textContent = "uploading " + key + "…";
  $("upload-button").disabled = true;
  bar.dataset.events = "0";
  xhr.upload.addEventListener("progress", (e) => {
    bar.dataset.events = String(Number(bar.dataset.events) + 1);
    if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
  });
  xhr.addEventListener("loadend", () => {
    $("upload-button").disabled = false;
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 200) {
      bar.value = 100;
      $("upload-status").textContent = "uploaded " + data.key + " (" + size(data.size) + ")";
      openBucket(state.bucket, state.prefix);
    } else {
      $("upload-status").textContent = "upload failed: " + (data.message || xhr.statusText || "connection lost");
    }
  });
  xhr.open("PUT", UI + "buckets/" + encodeURIComponent(state.bucket) + "/object?key=" + encodeURIComponent(key));
  xhr.setRequestHeader("X-Holdfast-CSRF", state.me.csrf);
  xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
  xhr.send(file);
});

// -- users -----------------------------------------------------------------------------------

async function loadUsers() {
  const data = await call("GET", ADMIN + "users");
  const tbody = $("user-table").tBodies[0];
  tbody.replaceChildren();
  for (const u of data.users) {
    const actions = document.createElement("span");
    if (!u.root) {
      const verb = u.disabled ? "enable" : "disable";
      actions.appendChild(button(verb[0].toUpperCase() + verb.slice(1), () => userAction(u.name, verb)));
      actions.appendChild(document.createTextNode(" "));
      actions.appendChild(button("Delete", () => userAction(u.name, "delete")));
    }
    const tr = row([u.name, u.access_key, u.root ? "root" : (u.disabled ? "disabled" : "enabled"), when(u.created), actions]);
    tr.dataset.user = u.name;
    tbody.appendChild(tr);
  }
}

async function userAction(name, verb) {
  if (verb === "delete" && !confirm("Delete user " + name + "?")) return;
  const url = ADMIN + "users/" + encodeURIComponent(name);
  try {
    if (verb === "delete") await call("DELETE", url); else await call("POST", url + "/" + verb);
    await loadUsers();
  } catch (e) { say(e.message); }
}

$("user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const u = await call("POST", ADMIN + "users", { name: $("user-name").value.trim() });
    const box = $("new-user");
    box.replaceChildren(
      el("div", "Created " + u.name + ". The secret key is shown only now:"),
      el("div", "Access key: " + u.access_key, { class: "new-access-key" }),
      el("div", "Secret key: " + u.secret_key, { class: "new-secret-key" }));
    box.hidden = false;
    $("user-name").value = "";
    await loadUsers();
  } catch (e) { say(e.message); }
});

// -- drives and health -------------------------------------------------------------------------

async function loadHealth() {
  const r = await fetch("/_holdfast/status?format=json", { credentials: "same-origin" });
  if (r.status === 401) { showSignin(); return; }
  const s = await r.json();
  const badge = $("health-state");
  badge.textContent = s.state || "unknown";
  badge.className = "badge " + (s.state || "");
  $("problems").replaceChildren(...(s.problems || []).map((p) => el("li", p.severity + ": " + p.what)));
  const tbody = $("drive-table").tBodies[0];
  tbody.replaceChildren();
  for (const d of s.drives || []) {
    tbody.appendChild(row([d.id, d.path, d.state, size(d.used_bytes),
      d.free_percent == null ? "" : d.free_percent.toFixed(1) + "%", size(d.total_bytes), d.reason || ""]));
  }
  const box = $("health-sections");
  box.replaceChildren();
  if (s.limited) {  // a user other than root: no node details (docs/ui.md)
    box.appendChild(el("p", "Node details, configuration and totals are shown to root."));
    return;
  }
  const node = Object.assign({}, s.node, { uptime_seconds: s.uptime_seconds });
  for (const [title, value] of [["Node", node], ["Capacity", s.capacity], ["Index", s.index],
    ["Repair", s.repair], ["Scrub", s.scrub], ["Corruption", s.corruption], ["Alerts", s.alerts],
    ["Traffic", s.traffic], ["Configuration", s.config]]) {
    const div = el("div");
    div.appendChild(el("h3", title));
    div.appendChild(el("pre", JSON.stringify(value === undefined ? null : value, null, 2)));
    box.appendChild(div);
  }
}

// -- cluster: the nodes of the layout and their state as this node sees it ------------------

async function loadCluster() {
  const r = await fetch("/_holdfast/status?format=json", { credentials: "same-origin" });
  const s = await r.json();
  const tbody = $("cluster-table").tBodies[0];
  tbody.replaceChildren();
  if (s.cluster === undefined) {
    $("cluster-summary").textContent = "";
    $("cluster-note").textContent = "The cluster's state is shown to root only.";
    return;
  }
  const c = s.cluster;
  if (!c.enabled) {
    $("cluster-summary").textContent = "";
    $("cluster-note").textContent = "This node runs alone (no --cluster-listen): see docs/cluster.md.";
    return;
  }
  const engine = c.index_engine || {};
  $("cluster-summary").textContent = "layout version " + (c.layout_version ?? "?") + " · seen from " + (c.node || "?");
  $("cluster-note").textContent = "Index engine: " + (engine.ok === false ? "unreachable (" + engine.error + ")" : "ok") +
    (c.agent === "ok" ? "" : " · cluster agent " + c.agent) + ". Liveness is a hint: nodes judged down are routed around, never removed.";
  for (const n of c.layout || []) {
    const p = (c.peers || {})[n.name];
    const seen = n.name === c.node ? "this node" : (p ? p.state : "");
    const age = p && p.last_heartbeat_age != null ? p.last_heartbeat_age.toFixed(1) + " s ago" : "";
    tbody.appendChild(row([n.name, n.state, seen, age, p ? String(p.failures) : "", p ? String(p.rejected) : "",
      n.zone || "", n.cluster, n.s3 || ""]));
  }
}

// -- charts (inline SVG) -----------------------------------------------------------------------

const CHARTS = [
  { id: "requests", title: "Requests / s", series: [["requests/s", (p) => p.requests_per_second]] },
  { id: "errors", title: "Errors per step", series: [["4xx", (p) => p.errors_4xx], ["5xx", (p) => p.errors_5xx]] },
  { id: "latency", title: "Latency (ms)", series: [["p50", (p) => p.latency_ms && p.latency_ms.p50], ["p99", (p) => p.latency_ms && p.latency_ms.p99]] },
  { id: "bytes", title: "Bytes per step", series: [["in", (p) => p.bytes_in], ["out", (p) => p.bytes_out]], fmt: size },
  { id: "capacity", title: "Capacity used", series: [["used", (p) => p.capacity_used], ["total", (p) => p.capacity_total]], fmt: size },
  { id: "repair", title: "Repair backlog", series: [["queued", (p) => p.repair_backlog]] },
];
const COLOURS = ["#0969da", "#cf222e", "#1a7f37"];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

async function loadCharts() {
  const data = await call("GET", ADMIN + "timeseries?range=" + $("chart-range").value);
  const box = $("charts");
  box.replaceChildren();
  for (const spec of CHARTS) box.appendChild(drawChart(spec, data.points));
}

$("chart-range").addEventListener("change", () => loadCharts().catch((e) => say(e.message)));

function drawChart(spec, points) {
  const W = 600, H = 160, L = 60, B = 20;
  const div = el("div", null, { class: "chart-box" });
  div.appendChild(el("h3", spec.title));
  const g = svg("svg", { class: "chart", id: "chart-" + spec.id, viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  let max = 0;
  for (const [, get] of spec.series) for (const p of points) { const v = get(p); if (v != null && v > max) max = v; }
  max = max || 1;
  const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1)) * (W - L - 5);
  const y = (v) => H - B - (v / max) * (H - B - 10);
  g.appendChild(svg("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
  g.appendChild(svg("line", { class: "axis", x1: L, y1: 5, x2: L, y2: H - B }));
  const fmt = spec.fmt || ((v) => (Math.round(v * 100) / 100).toString());
  const top = svg("text", { class: "label", x: 2, y: 14 }); top.textContent = fmt(max); g.appendChild(top);
  const zero = svg("text", { class: "label", x: 2, y: H - B }); zero.textContent = "0"; g.appendChild(zero);
  const from = svg("text", { class: "label", x: L, y: H - 4 }); from.textContent = new Date(t0 * 1000).toLocaleTimeString(); g.appendChild(from);
  const legend = el("div", null, { class: "legend" });
  spec.series.forEach(([name, get], i) => {
    let d = "", pen = "M", count = 0;
    const dots = [];
    for (const p of points) {
      const v = get(p);
      if (v == null) { pen = "M"; continue; }  // a gap: the node was not sampling then
      const px = x(p.t).toFixed(1), py = y(v).toFixed(1);
      d += `${pen}${px},${py} `;
      pen = "L";
      count++;
      // A dot per point: a lone sample between gaps has no line to show it.
      const dot = svg("circle", { class: "pt", cx: px, cy: py, r: 2, fill: COLOURS[i] });
      const tip = svg("title"); tip.textContent = name + " " + fmt(v) + " at " + new Date(p.t * 1000).toLocaleString();
      dot.appendChild(tip);
      dots.push(dot);
    }
    const path = svg("path", { class: "line", d: d.trim(), stroke: COLOURS[i], "data-points": count });
    g.appendChild(path);
    for (const dot of dots) g.appendChild(dot);
    const span = el("span", "● " + name); span.style.color = COLOURS[i]; legend.appendChild(span);
  });
  div.appendChild(g);
  div.appendChild(legend);
  return div;
}

// -- request log -------------------------------------------------------------------------------

$("log-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($("log-form"))) if (String(v).trim()) q.set(k, String(v).trim());
  try {
    const data = await call("GET", ADMIN + "requests?" + q);
    $("log-count").textContent = data.count + " record(s)" + (data.count >= data.limit ? " (limit reached)" : "");
    const tbody = $("log-table").tBodies[0];
    tbody.replaceChildren();
    $("log-detail").hidden = true;
    for (const r of data.records) {
      const tr = row([r.time, r.request_id, r.method, r.operation, r.bucket, r.key, r.status, (r.bytes_in || 0) + " / " + (r.bytes_out || 0), r.latency_ms]);
      tr.className = "clickable";
      tr.dataset.requestId = r.request_id;
      tr.addEventListener("click", () => { $("log-detail").textContent = JSON.stringify(r, null, 2); $("log-detail").hidden = false; });
      tbody.appendChild(tr);
    }
  } catch (e) { say(e.message); }
});

// -- start ---------------------------------------------------------------------------------

(async () => {
  try { showApp(await call("GET", UI + "session")); } catch (e) { showSignin(); }
})();
