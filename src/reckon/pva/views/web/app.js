// reckon pva web: a live table of PVs, fed by JSON frames over a websocket. No build step, no
// dependencies. The page sends nothing; the server pushes one frame per PV that changed.
"use strict";

const HISTORY = 600;          // points kept per scalar PV for its plot
const SPARK = "▁▂▃▄▅▆▇█";
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");

const pvs = new Map();        // name -> {frame, history: [[t, v]], receivedAt}
let selected = null;
let filter = "";

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
  setConn("connecting", "connecting…");
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") {
      setConn("open", `${msg.pvs.length} PVs`);
      for (const name of msg.pvs) if (!pvs.has(name)) pvs.set(name, { frame: null, history: [] });
      buildRows();
    } else if (msg.type === "pv") {
      update(msg);
    }
  };
  ws.onclose = () => { setConn("closed", "disconnected; retrying"); setTimeout(connect, 1000); };
}

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

function update(frame) {
  let pv = pvs.get(frame.name);
  if (!pv) { pv = { frame: null, history: [] }; pvs.set(frame.name, pv); buildRows(); }
  pv.frame = frame;
  pv.receivedAt = performance.now();
  for (const point of frame.points) if (point[1] !== null) pv.history.push(point);
  if (pv.history.length > HISTORY) pv.history.splice(0, pv.history.length - HISTORY);
  renderRow(frame.name, true);
  if (selected === frame.name) renderDetail();
}

function buildRows() {
  const body = $("rows");
  body.textContent = "";
  for (const name of [...pvs.keys()].sort()) {
    const tr = document.createElement("tr");
    tr.dataset.name = name;
    for (const cls of ["name", "value", "severity", "rate num", "age num", "trend"]) {
      const td = document.createElement("td");
      td.className = cls;
      tr.appendChild(td);
    }
    tr.querySelector(".name").textContent = name;
    tr.onclick = () => select(name);
    body.appendChild(tr);
    renderRow(name, false);
  }
  applyFilter();
}

function sparkline(history) {
  const values = history.slice(-24).map((p) => p[1]);
  if (values.length < 2) return "";
  const lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) return SPARK[3].repeat(values.length);
  return values.map((v) => SPARK[Math.floor(((v - lo) / (hi - lo)) * (SPARK.length - 1))]).join("");
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

function renderRow(name, fresh) {
  const tr = document.querySelector(`tr[data-name="${CSS.escape(name)}"]`);
  const pv = pvs.get(name);
  if (!tr || !pv || !pv.frame) return;
  const f = pv.frame;
  const value = tr.querySelector(".value");
  value.textContent = f.units ? `${f.text} ${f.units}` : f.text;
  value.title = f.message || f.error || "";
  const sev = tr.querySelector(".severity");
  sev.textContent = f.connected ? f.severity_name : (f.updates ? "DISCONNECTED" : "searching");
  sev.className = `severity ${f.connected ? "sev-" + f.severity : "sev-off"}`;
  tr.querySelector(".rate").textContent = f.rate.toFixed(1);
  tr.querySelector(".trend").textContent =
    f.kind === "scalar" || f.kind === "enum" ? sparkline(pv.history)
      : f.shape.length ? `shape ${f.shape.join("x")}` : "";
  renderAge(tr, pv);
  if (fresh) { tr.classList.remove("fresh"); void tr.offsetWidth; tr.classList.add("fresh"); }
}

function renderAge(tr, pv) {
  const f = pv.frame;
  const age = f.age === null ? null : f.age + (performance.now() - pv.receivedAt) / 1000;
  tr.querySelector(".age").textContent = fmtAge(age);
}

function applyFilter() {
  for (const tr of $("rows").children) {
    tr.hidden = filter !== "" && !tr.dataset.name.toLowerCase().includes(filter);
  }
}

function select(name) {
  selected = name;
  for (const tr of $("rows").children) tr.classList.toggle("selected", tr.dataset.name === name);
  $("detail").hidden = false;
  renderDetail();
}

function renderDetail() {
  const pv = pvs.get(selected);
  if (!pv || !pv.frame) return;
  const f = pv.frame;
  $("detail-name").textContent = selected;
  const plot = $("plot"), image = $("image");
  if (f.image) {
    plot.hidden = true; image.hidden = false;
    $("detail-info").textContent = `image ${f.image.full[0]}x${f.image.full[1]}` +
      (f.image.w !== f.image.full[0] ? ` (shown at ${f.image.w}x${f.image.h})` : "");
    drawImage(image, f.image);
  } else if (f.array) {
    plot.hidden = false; image.hidden = true;
    $("detail-info").textContent = `array of ${f.shape[0]}` +
      (f.array.length < f.shape[0] ? ` (every ${Math.ceil(f.shape[0] / f.array.length)}th point)` : "");
    drawLine(plot, f.array.map((v, i) => [i, v]), false);
  } else {
    plot.hidden = false; image.hidden = true;
    $("detail-info").textContent = `${pv.history.length} recent values`;
    drawLine(plot, pv.history, true);
  }
}

function drawLine(canvas, points, isTime) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 40;
  ctx.clearRect(0, 0, w, h);
  const good = points.filter((p) => p[1] !== null);
  ctx.fillStyle = "#7d8590";
  ctx.font = "12px system-ui";
  if (good.length === 0) { ctx.fillText("no values yet", pad, h / 2); return; }
  const xs = good.map((p) => p[0]), ys = good.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const X = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (w - 2 * pad);
  const Y = (y) => h - pad - ((y - y0) / (y1 - y0)) * (h - 2 * pad);
  ctx.fillText(String(+y1.toPrecision(6)), 2, pad);
  ctx.fillText(String(+y0.toPrecision(6)), 2, h - pad);
  ctx.fillText(isTime ? new Date(x1 * 1000).toLocaleTimeString() : String(x1), w - pad - 40, h - 10);
  ctx.strokeStyle = "#58a6ff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  good.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
  ctx.stroke();
}

function drawImage(canvas, img) {
  const bytes = Uint8Array.from(atob(img.data), (c) => c.charCodeAt(0));
  canvas.width = img.w;
  canvas.height = img.h;
  const scale = Math.max(1, Math.floor(512 / Math.max(img.w, img.h)));
  canvas.style.width = `${img.w * scale}px`;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(img.w, img.h);
  for (let i = 0, n = img.w * img.h; i < n; i++) {
    const [r, g, b] = img.rgb ? [bytes[3 * i], bytes[3 * i + 1], bytes[3 * i + 2]]
      : [bytes[i], bytes[i], bytes[i]];
    data.data[4 * i] = r; data.data[4 * i + 1] = g; data.data[4 * i + 2] = b; data.data[4 * i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
}

$("filter").addEventListener("input", (e) => { filter = e.target.value.trim().toLowerCase(); applyFilter(); });
setInterval(() => {
  for (const tr of $("rows").children) {
    const pv = pvs.get(tr.dataset.name);
    if (pv && pv.frame) renderAge(tr, pv);
  }
}, 500);
connect();
