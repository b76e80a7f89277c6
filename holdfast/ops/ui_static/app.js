// Holdfast admin UI: plain JavaScript, no build step, nothing loaded from elsewhere.
// Every value from the server goes into the page through textContent, never innerHTML.
"use strict";

const UI = "/_holdfast/ui/api/";
const ADMIN = "/_holdfast/api/";
const state = {
  me: null, bucket: null, prefix: "", search: "", next: null, selected: new Set(), panelKey: null,
  log: { pages: [null], page: 0, next: null },
};
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

// A table row; a cell is a Node, a value, or {text, cls} for a styled cell.
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c);
    else if (c && c.node) { td.appendChild(c.node); td.className = c.cls || ""; }
    else if (c && typeof c === "object") { td.textContent = c.text == null ? "" : String(c.text); td.className = c.cls || ""; }
    else td.textContent = c == null ? "" : String(c);
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

// -- one way to show sizes, rates, times and durations, everywhere ---------------------------

function size(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : Math.round(n)) + " " + units[i];
}

// For chart axes: as few characters as will do ("252 GiB", "1.5 MiB").
function sizeShort(n) {
  const text = size(n);
  return text.replace(/^(\d+)\.\d( \S+)$/, (m, whole, unit) => (Number(whole) >= 10 ? whole + unit : m));
}

function rate(n) { return n == null ? "" : size(n) + "/s"; }

const pad = (n) => String(n).padStart(2, "0");

// Local time, one format: 2026-12-02 14:05:09.
function when(epoch) {
  if (!epoch) return "";
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(seconds) {
  if (seconds == null) return "";
  let s = Math.round(seconds);
  if (s < 60) return s + " s";
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min";
}

function number(n) { return n == null ? "" : (Number.isInteger(n) ? n.toLocaleString() : String(Math.round(n * 100) / 100)); }

// A value from the status document, formatted by what its key says it is.
function formatValue(key, v) {
  if (v == null || v === "") return "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ") : "none";
  if (typeof v !== "number") return String(v);
  if (/per_second$/.test(key) && /bytes/.test(key)) return rate(v);
  if (/bytes/.test(key)) return size(v);
  if (/(_at|^started|^now|_shutdown|^last_\w+)$/.test(key) && v > 1e9) return when(v);
  if (/seconds$/.test(key)) return duration(v);
  if (/percent$/.test(key)) return v.toFixed(1) + "%";
  if (/_ms$/.test(key)) return number(v) + " ms";
  return number(v);
}

const LABELS = {
  read_ms: "Read time", stored_bytes: "Objects' size", copies_bytes: "With every copy", gc_queue: "GC queue",
  tls: "TLS", corrupt_objects: "Damaged objects", holdfast_data_bytes: "Holdfast data (every copy)",
};

// "free_percent" reads "Free"; the value already says "%" (or MiB/s, ms, s).
function label(key) {
  if (LABELS[key]) return LABELS[key];
  const words = key.replace(/_?bytes_per_second$|_per_second$/, (m) => (m === "_bytes_per_second" || m === "bytes_per_second" ? "" : " per second"))
    .replace(/_(bytes|seconds|ms|percent)$/, "");
  return (words || key).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

// A key/value table for one status section; nested objects become "parent › child" rows.
function kvTable(obj, skip) {
  const table = el("table", null, { class: "kv" });
  const tbody = document.createElement("tbody");
  const add = (prefix, o) => {
    for (const [k, v] of Object.entries(o || {})) {
      if (skip && skip.includes(k)) continue;
      const name = prefix ? prefix + " › " + label(k) : label(k);
      if (v && typeof v === "object" && !Array.isArray(v)) { add(name, v); continue; }
      const tr = document.createElement("tr");
      tr.appendChild(el("th", name));
      tr.appendChild(el("td", formatValue(k, v)));
      tbody.appendChild(tr);
    }
  };
  add("", obj);
  table.appendChild(tbody);
  return table;
}

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
  $("whoami").textContent = me.user;
  $("whoami").title = "signed in as " + me.user + (me.root ? ", the administrator" : "");
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
    openBucket(decodeURIComponent(rest[0]), rest.slice(1).map(decodeURIComponent).join("/"));
    return;
  }
  // Every loader returns a promise (the log view's empty loader did not: opening it threw).
  const loaders = { buckets: loadBuckets, users: loadUsers, health: loadHealth, cluster: loadCluster, charts: loadCharts, log: openLog };
  const name = loaders[view] ? view : "buckets";
  show(name);
  Promise.resolve().then(loaders[name]).catch((e) => say(e.message));
}

window.addEventListener("hashchange", route);

// -- buckets ---------------------------------------------------------------------------------

async function loadBuckets() {
  const data = await call("GET", UI + "buckets");
  const tbody = $("bucket-table").tBodies[0];
  tbody.replaceChildren();
  let objects = 0, bytes = 0;
  for (const b of data.buckets) {
    const name = el("span");
    name.appendChild(el("a", b.name, { href: "#bucket/" + encodeURIComponent(b.name) + "/", class: "bucket-link" }));
    if (b.damaged) name.append(" ", el("span", b.damaged + " damaged", { class: "badge damaged" }));
    const tr = row([{ node: name, cls: "long" }, { text: number(b.objects), cls: "num" }, { text: size(b.bytes), cls: "num" },
      { text: when(b.created), cls: "time" }, button("Delete", () => deleteBucket(b.name))]);
    tr.dataset.bucket = b.name;
    tbody.appendChild(tr);
    objects += b.objects; bytes += b.bytes;
  }
  $("bucket-total").textContent = data.buckets.length
    ? `${data.buckets.length} bucket(s), ${number(objects)} object(s), ${size(bytes)}`
    : "No buckets yet: create one above.";
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

// -- objects -----------------------------------------------------------------------------------

const bucketUrl = (what) => UI + "buckets/" + encodeURIComponent(state.bucket) + "/" + what;
const objectUrl = (what, key) => bucketUrl(what) + "?key=" + encodeURIComponent(key);

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

function resetUpload() {
  $("upload-form").reset();
  $("upload-status").textContent = "";
  $("upload-progress").hidden = true;
  $("upload-progress").value = 0;
}

async function openBucket(bucket, prefix) {
  show("bucket");
  if (bucket !== state.bucket) {
    resetUpload();  // a file chosen for one bucket must not be uploaded into the next
    $("object-search").value = "";
  }
  if (bucket !== state.bucket || prefix !== state.prefix) closePanel();
  state.bucket = bucket;
  state.prefix = prefix;
  state.search = $("object-search").value;
  crumbs(bucket, prefix);
  await reloadObjects();
}

async function reloadObjects() {
  state.selected.clear();
  updateSelection();
  $("object-table").tBodies[0].replaceChildren();
  try { await loadObjects(null); } catch (e) { say(e.message); }
}

async function loadObjects(after) {
  const q = new URLSearchParams({ prefix: state.prefix + state.search });
  if (after) q.set("after", after);
  const data = await call("GET", bucketUrl("objects?") + q);
  const tbody = $("object-table").tBodies[0];
  for (const p of data.prefixes) {
    const link = el("a", p.slice(state.prefix.length), { href: bucketHash(state.bucket, p), class: "prefix" });
    tbody.appendChild(row(["", { node: link, cls: "long" }, "", "", ""]));
  }
  for (const o of data.objects) {
    const box = el("input", null, { type: "checkbox", class: "select", "aria-label": "select " + o.key });
    box.addEventListener("change", () => { if (box.checked) state.selected.add(o.key); else state.selected.delete(o.key); updateSelection(); });
    const name = button(o.key.slice(state.prefix.length), () => openPanel(o.key), "link object");
    const cell = el("span");
    cell.appendChild(name);
    if (o.damaged) {
      cell.append(" ", el("span", "damaged", { class: "badge damaged", title: "no good copy: restore from backup, or delete it" }));
    }
    const tr = row([box, { node: cell, cls: "long" }, { text: size(o.size), cls: "num" }, { text: when(o.last_modified), cls: "time" },
      button("Delete", () => deleteObjects([o.key]))]);
    tr.cells[0].className = "check";
    tr.dataset.key = o.key;
    if (o.damaged) tr.classList.add("damaged");
    tbody.appendChild(tr);
  }
  if (!tbody.rows.length) {
    const tr = row(["", state.search ? "Nothing starts with “" + state.search + "” here." : "This folder is empty.", "", "", ""]);
    tr.className = "empty";
    tbody.appendChild(tr);
  }
  state.next = data.next;
  $("more-objects").hidden = !data.truncated;
}

$("more-objects").addEventListener("click", () => loadObjects(state.next).catch((e) => say(e.message)));

let searchTimer = null;
$("object-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { state.search = $("object-search").value; reloadObjects(); }, 250);
});

function updateSelection() {
  const n = state.selected.size;
  $("delete-selected").disabled = n === 0;
  $("delete-selected").textContent = n ? `Delete selected (${n})` : "Delete selected";
  const boxes = document.querySelectorAll("#object-table tbody input.select");
  $("select-all").checked = boxes.length > 0 && n === boxes.length;
}

$("select-all").addEventListener("change", () => {
  for (const box of document.querySelectorAll("#object-table tbody input.select")) {
    box.checked = $("select-all").checked;
    const key = box.closest("tr").dataset.key;
    if (box.checked) state.selected.add(key); else state.selected.delete(key);
  }
  updateSelection();
});

$("delete-selected").addEventListener("click", () => deleteObjects([...state.selected]));

async function deleteObjects(keys) {
  const what = keys.length === 1 ? keys[0] : keys.length + " objects";
  if (!keys.length || !confirm("Delete " + what + "?")) return;
  try {
    await call("POST", bucketUrl("delete"), { keys });
    if (keys.includes(state.panelKey)) closePanel();
    await reloadObjects();
  } catch (e) { say(e.message); }
}

// -- the object panel --------------------------------------------------------------------------

function closePanel() {
  state.panelKey = null;
  $("object-panel").hidden = true;
  for (const tr of document.querySelectorAll("#object-table tr.selected")) tr.classList.remove("selected");
}

$("panel-close").addEventListener("click", closePanel);

async function openPanel(key) {
  state.panelKey = key;
  const panel = $("object-panel");
  panel.hidden = false;
  for (const tr of document.querySelectorAll("#object-table tbody tr")) tr.classList.toggle("selected", tr.dataset.key === key);
  $("panel-title").textContent = key.slice(state.prefix.length) || key;
  $("panel-preview").replaceChildren();
  $("panel-meta").tBodies[0].replaceChildren();
  $("share-result").hidden = true;
  $("panel-download").href = objectUrl("object", key);
  let info;
  try { info = await call("GET", objectUrl("info", key)); } catch (e) { say(e.message); return; }
  if (state.panelKey !== key) return;
  const rows = [
    ["Key", info.key], ["Size", size(info.size) + (info.size >= 1024 ? " (" + number(info.size) + " bytes)" : "")],
    ["Content type", info.content_type], ["Last modified", when(info.last_modified)], ["ETag", info.etag],
    ["Checksum", info.checksum ? info.checksum.algorithm + " " + info.checksum.value + (info.checksum.type === "COMPOSITE" ? " (composite)" : "") : "none"],
  ];
  if (info.parts) rows.push(["Parts", info.parts]);
  if (info.state !== "ok") rows.push(["State", info.state + ": no good copy: restore from backup, or delete it"]);
  for (const [k, v] of Object.entries(info.headers || {})) rows.push([k, v]);
  for (const [k, v] of Object.entries(info.metadata || {})) rows.push(["x-amz-meta-" + k, v]);
  const tbody = $("panel-meta").tBodies[0];
  for (const [k, v] of rows) {
    const tr = document.createElement("tr");
    tr.appendChild(el("th", k));
    tr.appendChild(el("td", v));
    tr.dataset.field = k;
    tbody.appendChild(tr);
  }
  await showPreview(key, info);
}

async function showPreview(key, info) {
  const box = $("panel-preview");
  if (info.preview === "image") {
    box.replaceChildren(el("img", null, { src: objectUrl("preview", key), alt: "preview of " + key, id: "preview-image" }));
  } else if (info.preview === "text") {
    const r = await fetch(objectUrl("preview", key), { credentials: "same-origin" });
    if (!r.ok || state.panelKey !== key) return;
    const text = await r.text();
    const pre = el("pre", text, { id: "preview-text" });
    box.replaceChildren(pre);
    if (r.headers.get("X-Holdfast-Truncated") === "true") box.appendChild(el("p", "Showing the first " + size(text.length) + ".", { class: "hint" }));
  } else {
    box.replaceChildren(el("p", "No preview for this type.", { class: "hint" }));
  }
}

$("panel-delete").addEventListener("click", () => { if (state.panelKey) deleteObjects([state.panelKey]); });

$("share-button").addEventListener("click", async () => {
  const key = state.panelKey;
  if (!key) return;
  try {
    const seconds = Number($("share-expiry").value);
    const data = await call("POST", bucketUrl("share"), { key, expires: seconds });
    $("share-url").value = data.url;
    $("share-note").textContent = "Anyone with this link can download the object until " + when(data.expires_at) + ".";
    $("share-result").hidden = false;
    $("share-url").select();
  } catch (e) { say(e.message); }
});

$("share-copy").addEventListener("click", async () => {
  const input = $("share-url");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (e) {
    input.select();
    document.execCommand("copy");  // the clipboard API needs HTTPS or localhost
  }
  $("share-copy").textContent = "Copied";
  setTimeout(() => { $("share-copy").textContent = "Copy"; }, 1500);
});

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
      $("upload-file").value = "";
      $("upload-name").value = "";
      $("upload-status").textContent = "uploaded " + data.key + " (" + size(data.size) + ")";
      reloadObjects();
    } else {
      $("upload-status").textContent = "upload failed: " + (data.message || xhr.statusText || "connection lost");
    }
  });
  xhr.open("PUT", objectUrl("object", key));
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
    const tr = row([u.name, u.access_key, u.root ? "root" : (u.disabled ? "disabled" : "enabled"), { text: when(u.created), cls: "time" }, actions]);
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
  const r = await fetch("/_holdfast/status?format=json", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) { showSignin(); return; }
  const s = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error("status: " + (s.message || s.error || "HTTP " + r.status));
  const badge = $("health-state");
  badge.textContent = s.state || "unknown";
  badge.className = "badge " + (s.state || "");
  $("health-updated").textContent = "As of " + when(s.now || Date.now() / 1000) + (s.uptime_seconds != null ? " · up " + duration(s.uptime_seconds) : "");
  showDamaged(s.corruption || {});
  $("problems").replaceChildren(...(s.problems || []).map((p) => el("li", p.severity + ": " + p.what, { class: p.severity })));

  const drives = $("drive-table").tBodies[0];
  drives.replaceChildren();
  for (const d of s.drives || []) {
    const share = d.free_percent == null ? "" : d.free_percent.toFixed(1) + "%";
    const free = d.free_bytes == null ? share : size(d.free_bytes) + (share ? " (" + share + ")" : "");
    const tr = row([d.id, { text: d.path, cls: "long" }, d.state, { text: size(d.used_bytes), cls: "num" }, { text: free, cls: "num" },
      { text: size(d.total_bytes), cls: "num" }, d.reason || ""]);
    tr.dataset.drive = d.id;
    drives.appendChild(tr);
  }
  const traffic = $("traffic-table").tBodies[0];
  traffic.replaceChildren();
  for (const [span, name] of [["1m", "last minute"], ["5m", "last 5 minutes"]]) {
    const t = (s.traffic || {})[span];
    if (!t) continue;
    traffic.appendChild(row([name, { text: number(t.requests_per_second), cls: "num" }, { text: number(t.errors_4xx), cls: "num" },
      { text: number(t.errors_5xx), cls: "num" }, { text: ((t.error_rate || 0) * 100).toFixed(2) + "%", cls: "num" },
      { text: rate(t.bytes_in_per_second), cls: "num" }, { text: rate(t.bytes_out_per_second), cls: "num" },
      { text: t.latency_p50_ms == null ? "–" : number(t.latency_p50_ms) + " ms", cls: "num" },
      { text: t.latency_p99_ms == null ? "–" : number(t.latency_p99_ms) + " ms", cls: "num" }]));
  }

  const box = $("health-sections");
  box.replaceChildren();
  if (s.limited) {  // a user other than root: no node details (docs/ui.md)
    box.appendChild(el("p", "Node details, configuration and totals are shown to root."));
    return;
  }
  const node = s.node ? Object.assign({}, s.node, { uptime_seconds: s.uptime_seconds }) : null;
  const alerts = s.alerts ? Object.assign({}, s.alerts) : null;
  if (alerts) delete alerts.recent;
  const sections = [
    ["Capacity", s.capacity && {
      holdfast_data_bytes: s.capacity.data_bytes, drives_size_bytes: s.capacity.total_bytes,
      used_on_drives_bytes: s.capacity.used_bytes, free_bytes: s.capacity.free_bytes,
      drives_ok: (s.capacity.drives_ok ?? "") + " of " + (s.capacity.drives ?? "") }],
    ["Index", s.index, ["corrupt_examples", "counts"]],
    ["Node", node, ["supervisor_pid", "worker_pid", "boot_id"]],
    ["Repair", s.repair], ["Scrub", s.scrub], ["Garbage collection", s.gc],
    ["Alerts", alerts, ["active"]],
    ["Event notifications", (s.providers || {}).notifications, ["by_target"]],
    ["SSE-S3 key re-sealing", (s.providers || {}).sse_reseal],
    ["Request log", s.request_log], ["Configuration", s.config],
  ];
  for (const [title, value, skip] of sections) {
    if (!value) continue;
    const div = el("div", null, { class: "section", "data-section": title });
    div.appendChild(el("h3", title));
    div.appendChild(kvTable(value, skip));
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

// Damaged objects first, with what to do about them.
function showDamaged(c) {
  const box = $("damaged");
  const examples = c.examples || [];
  if (!c.objects && !examples.length) { box.hidden = true; box.replaceChildren(); return; }
  box.replaceChildren(el("h3", (c.objects || examples.length) + " damaged object(s)"),
    el("p", "No good copy is left of these objects: restore each from a backup, or delete it."));
  const list = el("ul");
  for (const x of examples) {
    const li = el("li");
    li.appendChild(el("a", x.bucket + "/" + x.key, { href: bucketHash(x.bucket, x.key.includes("/") ? x.key.slice(0, x.key.lastIndexOf("/") + 1) : "") }));
    li.append(" — no good copy: restore from backup, or delete it");
    list.appendChild(li);
  }
  if (c.objects > examples.length) list.appendChild(el("li", "and " + (c.objects - examples.length) + " more (holdfast fsck lists them all)"));
  box.appendChild(list);
  box.hidden = false;
}

// -- charts (inline SVG) -----------------------------------------------------------------------

const CHARTS = [
  { id: "requests", title: "Requests / s", series: [["requests/s", (p) => p.requests_per_second]] },
  { id: "errors", title: "Errors per step", series: [["4xx", (p) => p.errors_4xx], ["5xx", (p) => p.errors_5xx]] },
  { id: "latency", title: "Latency (ms)", series: [["p50", (p) => p.latency_ms && p.latency_ms.p50], ["p99", (p) => p.latency_ms && p.latency_ms.p99]] },
  { id: "bytes", title: "Bytes per step", series: [["in", (p) => p.bytes_in], ["out", (p) => p.bytes_out]], fmt: size, axis: sizeShort },
  { id: "capacity", title: "Capacity: Holdfast's data and the drives' size", series: [["Holdfast data", (p) => p.capacity_used], ["drive size", (p) => p.capacity_total]], fmt: size, axis: sizeShort },
  { id: "repair", title: "Repair backlog", series: [["queued", (p) => p.repair_backlog]] },
];
const COLOURS = ["#0969da", "#cf222e", "#1a7f37"];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function clock(t) { const d = new Date(t * 1000); return pad(d.getHours()) + ":" + pad(d.getMinutes()); }
function day(t) { const d = new Date(t * 1000); return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()); }

async function loadCharts() {
  const range = $("chart-range").value;
  const data = await call("GET", ADMIN + "timeseries?range=" + range);
  const pts = data.points || [];
  $("chart-span").textContent = pts.length
    ? `${when(pts[0].t)} to ${when(pts[pts.length - 1].t + data.step_seconds)} (local time), one point per ${duration(data.step_seconds)}`
    : "";
  const box = $("charts");
  box.replaceChildren();
  for (const spec of CHARTS) box.appendChild(drawChart(spec, pts, range === "1d"));
}

$("chart-range").addEventListener("change", () => loadCharts().catch((e) => say(e.message)));

function drawChart(spec, points, withDate) {
  const W = 600, H = 190, L = 64, R = 12, T = 10, B = 34;
  const div = el("div", null, { class: "chart-box" });
  div.appendChild(el("h3", spec.title));
  const g = svg("svg", { class: "chart", id: "chart-" + spec.id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.title });
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  let max = 0;
  for (const [, get] of spec.series) for (const p of points) { const v = get(p); if (v != null && v > max) max = v; }
  max = max || 1;
  const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1)) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - B - T);
  const fmt = spec.fmt || ((v) => number(v));
  // The value axis: 0, half and the top, with light grid lines.
  for (const v of [0, max / 2, max]) {
    g.appendChild(svg("line", { class: "grid-line", x1: L, y1: y(v), x2: W - R, y2: y(v) }));
    g.appendChild(svg("text", { class: "label", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, (spec.axis || fmt)(v)));
  }
  g.appendChild(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  g.appendChild(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  // The time axis: five ticks with the local time; on the day view the date under each.
  if (points.length) {
    for (let i = 0; i <= 4; i++) {
      const t = t0 + ((t1 - t0) * i) / 4, px = x(t);
      const anchor = i === 0 ? "start" : (i === 4 ? "end" : "middle");
      g.appendChild(svg("line", { class: "tick", x1: px, y1: H - B, x2: px, y2: H - B + 4 }));
      g.appendChild(svg("text", { class: "label time-label", x: px, y: H - B + 15, "text-anchor": anchor }, clock(t)));
      if (withDate) g.appendChild(svg("text", { class: "label date-label", x: px, y: H - B + 28, "text-anchor": anchor }, day(t)));
    }
  }
  const legend = el("div", null, { class: "legend" });
  spec.series.forEach(([name, get], i) => {
    let d = "", pen = "M", count = 0, last = null;
    const dots = [];
    for (const p of points) {
      const v = get(p);
      if (v == null) { pen = "M"; continue; }  // a gap: the node was not sampling then
      const px = x(p.t).toFixed(1), py = y(v).toFixed(1);
      d += `${pen}${px},${py} `;
      pen = "L";
      count++;
      last = v;
      // A dot per point: a lone sample between gaps has no line to show it.
      const dot = svg("circle", { class: "pt", cx: px, cy: py, r: 2, fill: COLOURS[i] });
      dot.appendChild(svg("title", {}, name + " " + fmt(v) + " at " + when(p.t)));
      dots.push(dot);
    }
    g.appendChild(svg("path", { class: "line", d: d.trim(), stroke: COLOURS[i], "data-points": count }));
    for (const dot of dots) g.appendChild(dot);
    const span = el("span", "● " + name + (last == null ? "" : " " + fmt(last)));
    span.style.color = COLOURS[i];
    legend.appendChild(span);
  });
  div.appendChild(g);
  div.appendChild(legend);
  return div;
}

// -- request log -------------------------------------------------------------------------------

function openLog() {
  state.log = { pages: [null], page: 0, next: null };
  return searchLog();
}

async function searchLog() {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($("log-form"))) if (String(v).trim()) q.set(k, String(v).trim());
  const before = state.log.pages[state.log.page];
  if (before) q.set("before", before);
  const data = await call("GET", ADMIN + "requests?" + q);
  state.log.next = data.next;
  const first = state.log.page * data.limit + 1;
  $("log-count").textContent = data.count
    ? `records ${first}–${first + data.count - 1}` + (data.next ? "" : " (the last)")
    : (state.log.page ? "no older records" : "no records match");
  $("log-newer").disabled = state.log.page === 0;
  $("log-older").disabled = !data.next;
  const tbody = $("log-table").tBodies[0];
  tbody.replaceChildren();
  $("log-detail").hidden = true;
  for (const r of data.records) {
    const tr = row([{ text: when(r.ts), cls: "time" }, r.status, r.error_code || "", r.method, r.operation, r.bucket, { text: r.key, cls: "long" }, r.request_id,
      { text: size(r.bytes_in || 0) + " / " + size(r.bytes_out || 0), cls: "num" }, { text: number(r.latency_ms), cls: "num" }]);
    tr.className = "clickable" + (r.status >= 500 || r.aborted ? " failed" : "");
    tr.dataset.requestId = r.request_id;
    tr.addEventListener("click", () => showRecord(r));
    tbody.appendChild(tr);
  }
}

function showRecord(r) {
  const tbody = $("log-detail").tBodies[0];
  tbody.replaceChildren();
  for (const [k, v] of Object.entries(r)) {
    const tr = document.createElement("tr");
    tr.appendChild(el("th", k));
    tr.appendChild(el("td", k === "ts" ? when(v) + " (" + v + ")" : (v == null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v)))));
    tr.dataset.field = k;
    tbody.appendChild(tr);
  }
  $("log-detail").hidden = false;
}

$("log-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.log = { pages: [null], page: 0, next: null };
  searchLog().catch((e) => say(e.message));
});

$("log-older").addEventListener("click", () => {
  if (!state.log.next) return;
  state.log.pages[state.log.page + 1] = state.log.next;
  state.log.page++;
  searchLog().catch((e) => say(e.message));
});

$("log-newer").addEventListener("click", () => {
  if (state.log.page === 0) return;
  state.log.page--;
  searchLog().catch((e) => say(e.message));
});

// -- start ---------------------------------------------------------------------------------

(async () => {
  try { showApp(await call("GET", UI + "session")); } catch (e) { showSignin(); }
})();
