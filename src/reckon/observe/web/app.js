// reckon observe: the web page. No build step, no dependencies: it speaks the same protocol as
// the Python client, in JSON text frames (websocket subprotocol reckon.observe.v1.json).
"use strict";

const PROTOCOL = 1;
const SUBPROTOCOL = "reckon.observe.v1.json";
const MAX_FINISHED = 500;      // finished tasks kept in the table
const MAX_DURATIONS = 5000;    // durations kept for the histogram
const HIT_POINTS = 180;        // status samples on the hit-rate chart

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token");

const state = {
  ws: null, nextId: 1, pending: new Map(), tasks: new Map(), durations: [],
  hits: [], usage: [], lastCounters: null, status: null, dropped: 0, capture: null, dirty: true,
  fresh: new Set(),
  // The task panel: which task it shows, the ids in its tree, and the last tree fetched.
  detail: { id: null, ids: new Set(), tree: null, refreshAt: 0, timer: null, collapsed: new Set() },
};

// ---------------------------------------------------------------------------- connection

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws`;
  setConn("connecting", "connecting…");
  const ws = new WebSocket(url, [SUBPROTOCOL]);
  state.ws = ws;
  ws.onopen = async () => {
    try {
      const hello = await request("hello", token ? { token, client: "web" } : { client: "web" });
      setConn("open", `${hello.engine} · ${hello.server}`);
      setCapture(hello.capture);
      const tasks = await request("tasks", { limit: 300 });
      // A (re)connection starts from the server's view: forget what an earlier one showed.
      state.tasks.clear();
      state.durations = [];
      state.lastCounters = null;
      for (const t of tasks.reverse()) upsert(t, false);
      // The charts start from the server's samples of the last minutes, not from empty.
      const status = await request("status", { history: true });
      state.hits = [];
      state.usage = [];
      for (const sample of status.history || []) onStatus({ ...sample, capture: status.capture });
      onStatus(status);
      await request("subscribe", { events: true, status_interval: 1.0, coalesce: true });
      state.dirty = true;
      openFromHash();
    } catch (err) {
      setConn("closed", String(err.message || err));
    }
  };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    for (const { reject } of state.pending.values()) reject(new Error("connection closed"));
    state.pending.clear();
    const why = ev.code === 1008 ? `refused: ${ev.reason || "token"}` : "disconnected, retrying…";
    setConn("closed", why);
    if (ev.code !== 1008) setTimeout(connect, 1500);
  };
}

function request(type, body = {}) {
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      reject(new Error("not connected"));
      return;
    }
    const id = state.nextId++;
    state.pending.set(id, { resolve, reject });
    state.ws.send(JSON.stringify({ v: PROTOCOL, id, type, ...body }));
  });
}

function onMessage(msg) {
  if (msg.type === "result" || msg.type === "error") {
    const p = state.pending.get(msg.id);
    if (!p) return;
    state.pending.delete(msg.id);
    if (msg.type === "result") p.resolve(msg.result);
    else p.reject(new Error(`${msg.code}: ${msg.message}`));
  } else if (msg.type === "events") {
    let touchesTree = false;
    const d = state.detail;
    for (const ev of msg.events) {
      upsert(ev.task, true);
      if (d.id !== null && (d.ids.has(ev.task.task_id) || d.ids.has(ev.task.parent))) touchesTree = true;
    }
    if (touchesTree) scheduleTreeRefresh();
    state.dropped = msg.dropped;
    state.dirty = true;
  } else if (msg.type === "status") {
    onStatus(msg.status);
  }
}

function setConn(kind, text) {
  $("conn").dataset.state = kind;
  $("conn-text").textContent = text;
}

function setCapture(on) {
  state.capture = on;
  $("btn-capture").textContent = `capture: ${on ? "on" : "off"}`;
}

// ---------------------------------------------------------------------------- model

const TERMINAL = new Set(["done", "failed", "cancelled"]);

function startTime(t) {
  const times = t.times || {};
  const vals = Object.values(times).filter((x) => typeof x === "number");
  return times.pending ?? times.running ?? (vals.length ? Math.min(...vals) : null);
}

function endTime(t) {
  return TERMINAL.has(t.state) ? (t.times || {})[t.state] ?? null : null;
}

function upsert(t, live) {
  const known = state.tasks.get(t.task_id);
  state.tasks.set(t.task_id, t);
  if (live && !known) state.fresh.add(t.task_id);
  if (TERMINAL.has(t.state) && (!known || !TERMINAL.has(known.state))) {
    const s = startTime(t), e = endTime(t);
    if (s !== null && e !== null && t.outcome !== "cancelled") {
      state.durations.push(Math.max(e - s, 1e-6));
      if (state.durations.length > MAX_DURATIONS) state.durations.splice(0, state.durations.length - MAX_DURATIONS);
    }
  }
  trimFinished();
}

function trimFinished() {
  if (state.tasks.size <= MAX_FINISHED + 200) return;
  const finished = [...state.tasks.values()].filter((t) => TERMINAL.has(t.state));
  finished.sort((a, b) => a.task_id - b.task_id);
  for (const t of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED))) state.tasks.delete(t.task_id);
}

function onStatus(status) {
  state.status = status;
  setCapture(status.capture);
  const c = (status.engine && status.engine.counters) || status.counters || {};
  const hits = (c.memory_hit || 0) + (c.store_hit || 0);
  if (state.lastCounters) {
    const prev = state.lastCounters;
    const dReq = (c.requests || 0) - (prev.requests || 0);
    const dMem = (c.memory_hit || 0) - (prev.memory_hit || 0);
    const dHit = hits - (prev.memory_hit || 0) - (prev.store_hit || 0);
    state.hits.push({ t: status.time, all: dReq > 0 ? dHit / dReq : null, mem: dReq > 0 ? dMem / dReq : null, req: dReq, hit: dHit });
    if (state.hits.length > HIT_POINTS) state.hits.shift();
  }
  state.lastCounters = c;
  const e = status.engine || {};
  state.usage.push({ memory: e.memory ? e.memory.bytes : null, store: e.store ? e.store.bytes : null });
  if (state.usage.length > HIT_POINTS) state.usage.shift();
  state.dirty = true;
}

// ---------------------------------------------------------------------------- formatting

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(1)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

const fmtInt = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"));
const pct = (a, b) => (b > 0 ? `${((100 * a) / b).toFixed(1)}%` : "");

// ---------------------------------------------------------------------------- rendering

function render() {
  const now = Date.now() / 1000;
  renderCards();
  renderTable(now);
  renderHits();
  renderDurations();
  renderUsage();
}

function renderCards() {
  const s = state.status;
  if (!s) return;
  const c = (s.engine && s.engine.counters) || s.counters || {};
  $("c-requests").textContent = fmtInt(c.requests);
  $("c-memory").textContent = fmtInt(c.memory_hit);
  $("c-memory-pct").textContent = pct(c.memory_hit || 0, c.requests || 0);
  $("c-store").textContent = fmtInt(c.store_hit);
  $("c-store-pct").textContent = pct(c.store_hit || 0, c.requests || 0);
  $("c-computed").textContent = fmtInt(c.computed);
  $("c-failed").textContent = fmtInt(c.failed);
  $("c-cancelled").textContent = fmtInt(c.cancelled);
  $("c-dropped").textContent = fmtInt(state.dropped);
}

function renderTable(now) {
  const filter = $("filter").value.trim().toLowerCase();
  const only = $("state-filter").value;
  let rows = [...state.tasks.values()];
  const running = rows.filter((t) => !TERMINAL.has(t.state)).length;
  $("c-running").textContent = fmtInt(running);
  if (filter) rows = rows.filter((t) => (t.title || "").toLowerCase().includes(filter));
  if (only) rows = rows.filter((t) => t.state === only);
  // Running first (longest running on top), then finished, newest first.
  rows.sort((a, b) => {
    const ra = TERMINAL.has(a.state) ? 1 : 0, rb = TERMINAL.has(b.state) ? 1 : 0;
    if (ra !== rb) return ra - rb;
    return ra === 0 ? a.task_id - b.task_id : b.task_id - a.task_id;
  });
  rows = rows.slice(0, 300);
  const tbody = $("tasks").tBodies[0];
  // Keyed update: a row's cells are rewritten only when its task changed, and only the time
  // cell ticks, so buttons under the pointer survive the redraws.
  const seen = new Set();
  let prev = null;
  for (const t of rows) {
    seen.add(t.task_id);
    let tr = rowCache.get(t.task_id);
    const live = !TERMINAL.has(t.state);
    const key = `${t.state}|${t.outcome}|${t.size}|${t.error}|${t.title}`;
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.task = t.task_id;
      tr.title = "click: this task and its tree of children";
      if (state.fresh.has(t.task_id)) tr.className = "fresh";
      rowCache.set(t.task_id, tr);
    }
    if (tr.dataset.key !== key) {
      tr.dataset.key = key;
      tr.dataset.state = t.state;
      tr.innerHTML =
        `<td>${t.task_id}</td>` +
        `<td class="title">${esc(t.title || "")}${t.error ? `<div class="err">${esc(t.error)}</div>` : ""}</td>` +
        `<td><span class="state ${esc(t.state)}">${esc(t.state)}</span></td>` +
        `<td class="num time"></td><td>${esc(t.outcome || "")}</td>` +
        `<td class="num">${t.size == null ? "" : fmtBytes(t.size)}</td>` +
        `<td class="num">${t.parent ?? ""}</td>` +
        `<td>${live ? `<button class="cancel" data-cancel="${t.task_id}" type="button">cancel</button>` : ""}</td>`;
    }
    const s = startTime(t), e = endTime(t);
    const text = fmtDuration(s === null ? null : (e ?? now) - s);
    const cell = tr.cells[3];
    if (cell.textContent !== text) cell.textContent = text;
    tr.classList.toggle("selected", t.task_id === state.detail.id);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const [id, tr] of rowCache) {
    if (!seen.has(id)) { tr.remove(); rowCache.delete(id); }
  }
  state.fresh.clear();
  $("empty").style.display = rows.length ? "none" : "";
  $("task-count").textContent = `${fmtInt(state.tasks.size)} known · ${running} running`;
}

const rowCache = new Map();

function esc(s) {
  return String(s).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}

function canvasContext(id) {
  const canvas = $(id);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, w, h };
}

const COLORS = { grid: "#263140", muted: "#7d8a99", accent: "#4fb3ff", ok: "#5ccf8a", store: "#b48cff", warn: "#f2b950" };

function axes(ctx, w, h, pad, yLabels) {
  ctx.strokeStyle = COLORS.grid;
  ctx.fillStyle = COLORS.muted;
  ctx.lineWidth = 1;
  for (const [frac, label] of yLabels) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - frac);
    ctx.beginPath(); ctx.moveTo(pad.l, y + 0.5); ctx.lineTo(w - pad.r, y + 0.5); ctx.stroke();
    ctx.fillText(label, 2, y + 4);
  }
}

function renderHits() {
  const { ctx, w, h } = canvasContext("chart-hits");
  const pad = { l: 36, r: 8, t: 22, b: 18 };
  // Legend in the strip above the plot (memory is drawn over "all": equal without store hits).
  let right = w - pad.r;
  for (const [label, color] of [["memory", COLORS.accent], ["all hits", COLORS.ok]]) {
    const tw = ctx.measureText(label).width;
    ctx.fillStyle = color;
    ctx.fillText(label, right - tw, 11);
    ctx.fillRect(right - tw - 16, 6, 12, 3);
    right -= tw + 30;
  }
  axes(ctx, w, h, pad, [[0, "0%"], [0.5, "50%"], [1, "100%"]]);
  const pts = state.hits;
  const last = [...pts].reverse().find((p) => p.all !== null);
  const c = (state.status && state.status.engine && state.status.engine.counters) || {};
  const overall = c.requests ? `${((100 * ((c.memory_hit || 0) + (c.store_hit || 0))) / c.requests).toFixed(1)}% overall` : "";
  $("hit-now").textContent = [last ? `${(100 * last.all).toFixed(1)}% last second` : "", overall].filter(Boolean).join(" · ");
  const canvas = $("chart-hits");
  // What the chart plots, for tests and the curious: samples, and the requests and hits they sum.
  canvas.dataset.samples = String(pts.length);
  canvas.dataset.requests = String(pts.reduce((n, p) => n + p.req, 0));
  canvas.dataset.hits = String(pts.reduce((n, p) => n + p.hit, 0));
  canvas.dataset.last = last ? last.all.toFixed(4) : "";
  const x = (i) => pad.l + ((w - pad.l - pad.r) * i) / (HIT_POINTS - 1);
  // One sample a second (the status push): the axis spans the last HIT_POINTS seconds.
  ctx.fillStyle = COLORS.muted;
  ctx.textAlign = "center";
  for (const ago of [180, 120, 60]) ctx.fillText(`−${ago / 60} min`, x(Math.max(0, HIT_POINTS - 1 - ago)), h - 4);
  ctx.textAlign = "right";
  ctx.fillText("now", w - pad.r, h - 4);
  ctx.textAlign = "left";
  if (pts.length < 2) {
    ctx.fillText("waiting for requests…", pad.l + 8, h / 2);
    return;
  }
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v);
  const offset = HIT_POINTS - pts.length;
  for (const [key, color] of [["all", COLORS.ok], ["mem", COLORS.accent]]) {
    ctx.strokeStyle = color; ctx.lineWidth = 1.8; ctx.beginPath();
    let pen = false;
    pts.forEach((p, i) => {
      if (p[key] === null) { pen = false; return; }
      if (pen) ctx.lineTo(x(i + offset), y(p[key])); else ctx.moveTo(x(i + offset), y(p[key]));
      pen = true;
    });
    ctx.stroke();
    ctx.fillStyle = color;
    pts.forEach((p, i) => {
      if (p[key] !== null) { ctx.beginPath(); ctx.arc(x(i + offset), y(p[key]), 2, 0, 2 * Math.PI); ctx.fill(); }
    });
  }
}

function renderDurations() {
  const { ctx, w, h } = canvasContext("chart-durations");
  const pad = { l: 36, r: 8, t: 8, b: 18 };
  const d = state.durations;
  $("dur-count").textContent = d.length ? `${fmtInt(d.length)} finished` : "";
  $("chart-durations").dataset.count = String(d.length);
  // Logarithmic buckets, two per decade, from 10 µs to 1000 s.
  const lo = -5, hi = 3, perDecade = 2, n = (hi - lo) * perDecade;
  const counts = new Array(n).fill(0);
  for (const s of d) {
    const k = Math.floor((Math.log10(s) - lo) * perDecade);
    counts[Math.min(n - 1, Math.max(0, k))]++;
  }
  const max = Math.max(1, ...counts);
  axes(ctx, w, h, pad, [[0, "0"], [1, fmtInt(max)]]);
  const bw = (w - pad.l - pad.r) / n;
  ctx.fillStyle = COLORS.accent;
  counts.forEach((c, i) => {
    const bh = ((h - pad.t - pad.b) * c) / max;
    ctx.fillRect(pad.l + i * bw + 1, h - pad.b - bh, bw - 2, bh);
  });
  ctx.fillStyle = COLORS.muted;
  ctx.textAlign = "center";
  const labels = { 0: "10µs", 4: "1ms", 8: "0.1s", 10: "1s", 12: "10s", 14: "100s" };
  for (const [i, text] of Object.entries(labels)) ctx.fillText(text, pad.l + Number(i) * bw, h - 4);
  ctx.textAlign = "left";
  if (!d.length) ctx.fillText("no finished computations yet", pad.l + 8, h / 2);
}

function renderUsage() {
  const { ctx, w, h } = canvasContext("chart-usage");
  const s = state.status;
  const rows = [];
  if (s && s.engine) {
    if (s.engine.memory) rows.push(["memory", s.engine.memory, COLORS.accent]);
    if (s.engine.store) rows.push(["store", s.engine.store, COLORS.store]);
  }
  const canvas = $("chart-usage");
  for (const [name, u] of rows) {
    canvas.dataset[`${name}Bytes`] = String(u.bytes);
    canvas.dataset[`${name}Entries`] = String(u.entries);
  }
  if (!rows.length) { ctx.fillStyle = COLORS.muted; ctx.fillText("waiting for status…", 8, h / 2); return; }
  // Per tier: what it holds against its budget (a thin bar), and below it the bytes held over
  // the same three minutes as the hit-rate chart, scaled to the most seen (a budget of GiB
  // would flatten any real use to nothing).
  const slot = (h - 4) / rows.length;
  rows.forEach(([name, u, color], i) => {
    const y = 12 + i * slot;
    const frac = u.budget ? Math.min(1, u.bytes / u.budget) : 0;
    ctx.fillStyle = COLORS.muted;
    ctx.textAlign = "left";
    ctx.fillText(`${name}: ${fmtBytes(u.bytes)} · ${fmtInt(u.entries)} entries`, 8, y);
    if (u.budget) {
      ctx.textAlign = "right";
      ctx.fillText(`${(100 * frac).toFixed(frac < 0.001 ? 2 : 1)}% of ${fmtBytes(u.budget)}`, w - 8, y);
      ctx.textAlign = "left";
    }
    ctx.fillStyle = COLORS.grid; ctx.fillRect(8, y + 5, w - 16, 4);
    ctx.fillStyle = color; ctx.fillRect(8, y + 5, Math.max(2, (w - 16) * frac), 4);
    const top = y + 14, bottom = y + slot - 18;
    const series = state.usage.map((p) => p[name]);
    const max = Math.max(1, ...series.filter((v) => v !== null));
    ctx.strokeStyle = COLORS.grid; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(8, bottom + 0.5); ctx.lineTo(w - 8, bottom + 0.5); ctx.stroke();
    ctx.fillStyle = COLORS.muted;
    ctx.fillText(`${fmtBytes(max)} (most in 3 min)`, 8, top + 8);
    const x = (k) => 8 + ((w - 16) * (HIT_POINTS - series.length + k)) / (HIT_POINTS - 1);
    const yv = (v) => bottom - ((bottom - top) * v) / max;
    ctx.beginPath();
    let pen = false;
    series.forEach((v, k) => {
      if (v === null) { pen = false; return; }
      if (pen) ctx.lineTo(x(k), yv(v)); else ctx.moveTo(x(k), yv(v));
      pen = true;
    });
    ctx.strokeStyle = color; ctx.lineWidth = 1.6; ctx.stroke();
  });
}

// ---------------------------------------------------------------------------- task panel
// One task and its tree of children (the "task" request), in a panel beside the table. The
// address carries it (#task=ID) so the back button and a pasted link work; the tree is fetched
// again when a pushed event touches one of its tasks.

function showTask(id) {
  const hash = id === null ? "" : `#task=${id}`;
  if (location.hash !== hash) {
    history.pushState(null, "", hash || location.pathname + location.search);
  }
  openFromHash();
}

function openFromHash() {
  const m = /^#task=(\d+)$/.exec(location.hash);
  const d = state.detail;
  if (!m) {
    d.id = null; d.ids = new Set(); d.tree = null;
    $("detail").hidden = true;
    state.dirty = true;
    return;
  }
  const id = Number(m[1]);
  const other = d.id !== id;
  if (other) { d.tree = null; d.ids = new Set([id]); }
  d.id = id;
  $("detail").hidden = false;
  $("detail-title").textContent = `Task #${id}`;
  // Never show one task's fields under another's title while the new tree is fetched.
  if (other) renderDetail();
  state.dirty = true;
  fetchTree();
}

async function fetchTree() {
  const d = state.detail;
  const id = d.id;
  if (id === null || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  d.refreshAt = Date.now();
  try {
    const tree = await request("task", { task_id: id });
    if (d.id !== id) return;  // another task was opened meanwhile
    d.tree = tree;
    d.ids = new Set();
    (function collect(node) { d.ids.add(node.task.task_id); node.children.forEach(collect); })(tree);
    $("detail-error").hidden = true;
  } catch (err) {
    if (d.id !== id) return;
    d.tree = null;
    $("detail-error").hidden = false;
    $("detail-error").textContent = String(err.message || err);
  }
  renderDetail();
}

function scheduleTreeRefresh() {
  const d = state.detail;
  if (d.timer !== null) return;
  const wait = Math.max(0, 300 - (Date.now() - d.refreshAt));
  d.timer = setTimeout(() => { d.timer = null; fetchTree(); }, wait);
}

function taskDuration(t, now) {
  const s = startTime(t), e = endTime(t);
  return s === null ? null : (e ?? now) - s;
}

function renderDetail() {
  const d = state.detail;
  const fields = $("detail-fields"), treeBox = $("tree");
  if (!d.tree) { fields.innerHTML = ""; treeBox.innerHTML = ""; $("tree-count").textContent = ""; return; }
  const now = Date.now() / 1000;
  const t = d.tree.task;
  const live = !TERMINAL.has(t.state);
  const started = startTime(t);
  const rows = [
    ["title", esc(t.title || "")],
    ["state", `<span class="state ${esc(t.state)}">${esc(t.state)}</span>` +
      (live ? ` <button class="cancel" data-cancel="${t.task_id}" type="button">cancel</button>` : "")],
    ["outcome", esc(t.outcome || "")],
    [live ? "elapsed" : "duration", fmtDuration(taskDuration(t, now))],
    ["started", started === null ? "" : new Date(started * 1000).toLocaleTimeString()],
    ["cache level", t.level === 2 ? "memory + store" : t.level === 1 ? "memory" : esc(t.level ?? "")],
    ["size", t.size == null ? "" : fmtBytes(t.size)],
    ["parent", t.parent == null ? "none (a top-level request)" : `<a class="parent" href="#task=${t.parent}">#${t.parent}</a>`],
    ["request id", `<span title="${esc(t.request_id || "")}">${esc(String(t.request_id || "").slice(0, 16))}…</span>`],
  ];
  if (t.error) rows.push(["error", `<span class="err">${esc(t.error)}</span>`]);
  fields.innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd${k === "request id" ? ' class="mono"' : ""}>${v}</dd>`).join("");
  $("tree-count").textContent = `${fmtInt(d.ids.size)} task${d.ids.size === 1 ? "" : "s"}`;
  treeBox.innerHTML = `<ul>${treeNode(d.tree, now, true)}</ul>`;
}

function treeNode(node, now, root) {
  const t = node.task;
  const dur = fmtDuration(taskDuration(t, now));
  const label =
    `<a href="#task=${t.task_id}" data-node="${t.task_id}"><span class="id">#${t.task_id}</span>` +
    `<span class="t">${esc(t.title || "")}</span></a> ` +
    `<span class="state ${esc(t.state)}">${esc(t.state)}</span>` +
    `<span class="meta">${dur}${t.outcome ? ` · ${esc(t.outcome)}` : ""}</span>` +
    (t.error ? ` <span class="err">${esc(t.error)}</span>` : "");
  const cls = root ? ' class="root"' : "";
  if (!node.children.length) return `<li${cls} data-tree-task="${t.task_id}"><div class="leaf">${label}</div></li>`;
  const kids = node.children.map((c) => treeNode(c, now, false)).join("");
  const open = state.detail.collapsed.has(t.task_id) ? "" : " open";
  return `<li${cls} data-tree-task="${t.task_id}"><details${open}><summary>${label}</summary><ul>${kids}</ul></details></li>`;
}

// ---------------------------------------------------------------------------- actions

$("tasks").addEventListener("click", async (ev) => {
  const id = ev.target && ev.target.dataset && ev.target.dataset.cancel;
  if (!id) {
    const tr = ev.target.closest && ev.target.closest("tr[data-task]");
    if (tr) showTask(Number(tr.dataset.task));
    return;
  }
  ev.target.disabled = true;
  try { await request("cancel", { task_id: Number(id) }); } catch (err) { console.warn(err); }
});
$("btn-capture").addEventListener("click", async () => {
  try { setCapture((await request("capture", { enabled: !state.capture })).enabled); } catch (err) { console.warn(err); }
});
$("btn-clear-history").addEventListener("click", async () => {
  try {
    await request("clear_history");
    for (const [id, t] of state.tasks) if (TERMINAL.has(t.state)) state.tasks.delete(id);
    state.durations = [];
    state.dirty = true;
  } catch (err) { console.warn(err); }
});
$("btn-clear-memory").addEventListener("click", async () => {
  try { await request("clear_cache", { level: "memory" }); } catch (err) { console.warn(err); }
});
$("detail").addEventListener("click", async (ev) => {
  const id = ev.target && ev.target.dataset && ev.target.dataset.cancel;
  if (!id) return;
  ev.target.disabled = true;
  try { await request("cancel", { task_id: Number(id) }); } catch (err) { console.warn(err); }
});
// Redraws rebuild the tree: remember which branches the user folded.
$("tree").addEventListener("toggle", (ev) => {
  const li = ev.target.closest("li[data-tree-task]");
  if (!li) return;
  const id = Number(li.dataset.treeTask);
  if (ev.target.open) state.detail.collapsed.delete(id); else state.detail.collapsed.add(id);
}, true);
$("detail-close").addEventListener("click", () => showTask(null));
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && state.detail.id !== null) showTask(null);
});
window.addEventListener("hashchange", openFromHash);
$("filter").addEventListener("input", () => { state.dirty = true; });
$("state-filter").addEventListener("change", () => { state.dirty = true; });
window.addEventListener("resize", () => { state.dirty = true; });

function hasLive(node) {
  return !TERMINAL.has(node.task.state) || node.children.some(hasLive);
}

// Redraw on changes, at most 10 times a second; running rows tick their elapsed time 4 times a
// second. (A timer rather than requestAnimationFrame: it keeps running in background tabs.)
let ticks = 0;
setInterval(() => {
  if (++ticks % 3 === 0) state.dirty = true;
  if (state.dirty) { state.dirty = false; render(); }
  if (ticks % 6 === 0 && state.detail.tree && hasLive(state.detail.tree)) renderDetail();
}, 80);
connect();
