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
  hits: [], lastCounters: null, status: null, dropped: 0, capture: null, dirty: true,
  fresh: new Set(),
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
      await request("subscribe", { events: true, status_interval: 1.0, coalesce: true });
      state.dirty = true;
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
    for (const ev of msg.events) upsert(ev.task, true);
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
    state.hits.push({ t: status.time, all: dReq > 0 ? dHit / dReq : null, mem: dReq > 0 ? dMem / dReq : null, req: dReq });
    if (state.hits.length > HIT_POINTS) state.hits.shift();
  }
  state.lastCounters = c;
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
  const pad = { l: 36, r: 8, t: 8, b: 18 };
  axes(ctx, w, h, pad, [[0, "0%"], [0.5, "50%"], [1, "100%"]]);
  const pts = state.hits;
  const last = [...pts].reverse().find((p) => p.all !== null);
  const c = (state.status && state.status.engine && state.status.engine.counters) || {};
  const overall = c.requests ? `${((100 * ((c.memory_hit || 0) + (c.store_hit || 0))) / c.requests).toFixed(1)}% overall` : "";
  $("hit-now").textContent = [last ? `${(100 * last.all).toFixed(1)}% last second` : "", overall].filter(Boolean).join(" · ");
  if (pts.length < 2) {
    ctx.fillStyle = COLORS.muted;
    ctx.fillText("waiting for requests…", pad.l + 8, h / 2);
    return;
  }
  const x = (i) => pad.l + ((w - pad.l - pad.r) * i) / (HIT_POINTS - 1);
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
  ctx.fillStyle = COLORS.ok; ctx.fillText("all hits", w - 120, h - 4);
  ctx.fillStyle = COLORS.accent; ctx.fillText("memory", w - 60, h - 4);
}

function renderDurations() {
  const { ctx, w, h } = canvasContext("chart-durations");
  const pad = { l: 36, r: 8, t: 8, b: 18 };
  const d = state.durations;
  $("dur-count").textContent = d.length ? `${fmtInt(d.length)} finished` : "";
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
  if (!rows.length) { ctx.fillStyle = COLORS.muted; ctx.fillText("waiting for status…", 8, h / 2); return; }
  const barH = 26, gap = 34;
  rows.forEach(([name, u, color], i) => {
    const y = 14 + i * (barH + gap);
    const frac = u.budget ? Math.min(1, u.bytes / u.budget) : 0;
    ctx.fillStyle = COLORS.muted;
    ctx.fillText(`${name}: ${fmtBytes(u.bytes)}${u.budget ? ` of ${fmtBytes(u.budget)}` : ""} · ${fmtInt(u.entries)} entries`, 8, y);
    ctx.fillStyle = COLORS.grid; ctx.fillRect(8, y + 6, w - 16, barH);
    ctx.fillStyle = color; ctx.fillRect(8, y + 6, Math.max(2, (w - 16) * frac), barH);
    if (u.budget) {
      ctx.fillStyle = "#d9e1ea";
      ctx.textAlign = "right";
      ctx.fillText(`${(100 * frac).toFixed(1)}% used`, w - 14, y + 6 + barH / 2 + 4);
      ctx.textAlign = "left";
    }
  });
}

// ---------------------------------------------------------------------------- actions

$("tasks").addEventListener("click", async (ev) => {
  const id = ev.target && ev.target.dataset && ev.target.dataset.cancel;
  if (!id) return;
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
$("filter").addEventListener("input", () => { state.dirty = true; });
$("state-filter").addEventListener("change", () => { state.dirty = true; });
window.addEventListener("resize", () => { state.dirty = true; });

// Redraw on changes, at most 10 times a second; running rows tick their elapsed time 4 times a
// second. (A timer rather than requestAnimationFrame: it keeps running in background tabs.)
let ticks = 0;
setInterval(() => {
  if (++ticks % 3 === 0) state.dirty = true;
  if (state.dirty) { state.dirty = false; render(); }
}, 80);
connect();
