// One stream: the trajectory over a chosen span with its quadrant band, the
// plane with the whole path, what drives the prediction (--explain), health,
// and the shown points as CSV.
import {
  AROUSAL, DRIVER_FULL, QUADRANT_COLOURS, QUADRANT_NAMES, VALENCE, ago, connect, drawPlane, el, finite, fitCanvas,
  pageUrl, setText, signed, streamFromPath, streamUrl,
} from "./common.js";

const name = streamFromPath("/stream/");
const KEEP = 20000;             // points this page holds (the server keeps its own, shorter, history)
const PLANE = 300;
const CHART_H = 300, BAND_H = 12, AXIS_H = 20, LEFT = 38;
const TRAIL = 16;
const TICKS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600];

let points = [];                // [wall, t, valence, arousal, quadrant, level, mood, live]
let emotion = null, status = null, received = null, connected = false, server = null, dirty = true;
let names = QUADRANT_NAMES, pitchNames = null, staleS = 5;
const $ = (id) => document.getElementById(id);
const now = () => performance.now() / 1000;

document.title = `${name} \u00b7 rt-mer`;
setText($("title"), name);
$("title").title = name;
$("back").href = pageUrl("/");
$("overlay-link").href = streamUrl("overlay", name);
for (const q of [1, 2, 3, 4]) {
  const item = el("span", "", "");
  const swatch = el("span", "swatch sw-q");
  swatch.dataset.q = String(q);
  item.append(swatch, el("span", "quad-name", QUADRANT_NAMES[q]));
  $("quad-legend").append(item, document.createTextNode("  "));
}

function add(row) {
  const last = points[points.length - 1];
  if (last && row[0] < last[0] - 60) points = [];          // its clock went back: another run
  points.push(row);
  if (points.length > KEEP * 1.1) points.splice(0, points.length - KEEP);
}

function handle(message) {
  switch (message.type) {
    case "hello":
      if (message.quadrants && typeof message.quadrants === "object") names = message.quadrants;
      if (Array.isArray(message.pitch_names)) pitchNames = message.pitch_names.map(String);
      if (finite(message.stale_s)) staleS = message.stale_s;
      document.querySelectorAll(".quad-name").forEach((node, i) => setText(node, String(names[i + 1] || "")));
      break;
    case "snapshot": {
      const s = (Array.isArray(message.streams) ? message.streams : []).find((x) => x && x.stream === name);
      if (!s) break;
      const live = points.filter((p) => p[7]);
      points = [];
      for (const row of Array.isArray(s.history) ? s.history : []) {
        if (Array.isArray(row) && finite(row[0]) && finite(row[2]) && finite(row[3])) add([...row.slice(0, 7), false]);
      }
      const kept = points.length ? points[points.length - 1][0] : -Infinity;
      for (const p of live) if (p[0] > kept) add(p);             // a reconnect keeps what this page saw live
      emotion = s.emotion || null;
      status = s.status || null;
      received = now() - (finite(s.age_s) ? s.age_s : 0);
      dirty = true;
      break;
    }
    case "emotion":
      if (message.stream !== name) break;
      emotion = message;
      received = now();
      if (finite(message.wall) && finite(message.valence) && finite(message.arousal)) {
        add([message.wall, message.t, message.valence, message.arousal, message.quadrant, message.level_dbfs,
          String(message.mood), true]);
      }
      dirty = true;
      break;
    case "status":
      if (message.stream !== name) break;
      status = message;
      received = now();
      dirty = true;
      break;
    case "server":
      server = message;
      break;
  }
}

function state() {
  if (received === null) return "waiting";
  if (status && status.state === "ended") return "ended";
  if (now() - received > staleS) return "silent";
  if (!emotion || (status && status.state === "warming")) return "warming";
  return "live";
}

function shown() {
  const span = $("span").value;
  if (span === "all") return points;
  if (span === "opened") return points.filter((p) => p[7]);
  const end = points.length ? points[points.length - 1][0] : 0;
  return points.filter((p) => p[0] >= end - Number(span));
}

function drawNow(list, st) {
  const dim = st === "ended" || st === "silent";
  const path = list.map((p) => [p[2], p[3]]);
  const ctx = fitCanvas($("plane"), PLANE, PLANE);
  drawPlane(ctx, PLANE, path.slice(-TRAIL), { names, dim, path });
  const e = emotion;
  $("now").dataset.q = e ? String(e.quadrant) : "";
  $("now").dataset.state = st;
  setText($("mood"), e ? String(e.mood) : "\u2026");
  setText($("quad"), e ? `Q${e.quadrant} \u00b7 ${names[e.quadrant] || ""}` : "waiting for the first window");
  setText($("valence"), "V " + signed(e && e.valence));
  setText($("arousal"), "A " + signed(e && e.arousal));
  const level = e && finite(e.level_dbfs) ? e : status;
  const rms = level && finite(level.level_dbfs) ? level.level_dbfs : null;
  const peak = level && finite(level.peak_dbfs) ? level.peak_dbfs : null;
  const fraction = (db) => db === null ? 0 : Math.max(0, Math.min(1, 1 + db / 60));
  $("rms").style.transform = `scaleX(${fraction(rms)})`;
  $("rms").dataset.hot = rms === null ? "" : rms >= -6 ? "red" : rms >= -18 ? "amber" : "";
  $("peak").style.transform = `translateX(${(fraction(peak) * 100).toFixed(1)}%)`;
  setText($("db"), rms === null ? "-- dBFS" : `${rms.toFixed(1)} dBFS`);
}

function clock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toTimeString().slice(0, 8);
}

function drawChart(list) {
  const width = Math.max(200, Math.floor($("chart-box").clientWidth));
  const height = CHART_H + BAND_H + AXIS_H;
  const ctx = fitCanvas($("chart"), width, height);
  ctx.clearRect(0, 0, width, height);
  const plotW = width - LEFT - 4;
  const y = (value) => 6 + (1 - value) / 2 * (CHART_H - 12);
  ctx.font = '11px system-ui, "DejaVu Sans", sans-serif';
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const value of [1, 0.5, 0, -0.5, -1]) {
    ctx.strokeStyle = value === 0 ? "rgba(255,255,255,0.22)" : "rgba(255,255,255,0.07)";
    ctx.beginPath(); ctx.moveTo(LEFT, y(value)); ctx.lineTo(width - 4, y(value)); ctx.stroke();
    ctx.fillStyle = "#8b93a7";
    ctx.fillText(value === 0 ? "0" : signed(value, 1).replace(".0", ""), LEFT - 6, y(value));
  }
  if (!list.length) {
    ctx.textAlign = "center";
    ctx.fillText("no points in this span yet", LEFT + plotW / 2, CHART_H / 2);
    return;
  }
  const span = $("span").value;
  let end = list[list.length - 1][0], start = list[0][0];
  if (span !== "all" && span !== "opened") start = end - Number(span);
  if (end - start < 10) end = start + 10;
  const x = (w) => LEFT + (w - start) / (end - start) * plotW;
  const hop = status && finite(status.hop_s) ? status.hop_s : 0.5;
  const gap = Math.max(5, 4 * hop);
  // the quadrant band, under the chart
  for (let i = 0; i < list.length; i++) {
    const p = list[i], next = list[i + 1];
    const x0 = x(p[0]), x1 = next && next[0] - p[0] < gap ? x(next[0]) : x0 + Math.max(1, plotW * hop / (end - start));
    ctx.fillStyle = QUADRANT_COLOURS[p[4]] || "#3a4254";
    ctx.fillRect(x0, CHART_H + 2, Math.max(1, x1 - x0 + 0.5), BAND_H - 3);
  }
  for (const [index, colour] of [[2, VALENCE], [3, AROUSAL]]) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let previous = null;
    for (const p of list) {
      if (previous !== null && p[0] - previous < gap) ctx.lineTo(x(p[0]), y(p[index]));
      else ctx.moveTo(x(p[0]), y(p[index]));
      previous = p[0];
    }
    ctx.stroke();
  }
  // time ticks: the first step that leaves 90 px between labels
  const step = TICKS.find((s) => s / (end - start) * plotW >= 90) || TICKS[TICKS.length - 1];
  ctx.fillStyle = "#8b93a7";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let tick = Math.ceil(start / step) * step; tick <= end; tick += step) {
    ctx.strokeStyle = "rgba(255,255,255,0.07)";
    ctx.beginPath(); ctx.moveTo(x(tick), 6); ctx.lineTo(x(tick), CHART_H - 6); ctx.stroke();
    ctx.fillText(clock(tick), Math.min(width - 28, x(tick)), CHART_H + BAND_H + 4);   // the last one, whole
  }
}

let driverRows = null;          // Map name -> [valence fill, number, arousal fill, number] of the drivers in use

function own(object, key) {
  return Object.hasOwn(object, key) ? object[key] : null;
}

function bar(axisColour) {
  const outer = el("div", "bar2");
  const fill = el("div", "fill");
  fill.style.background = axisColour;
  outer.append(fill);
  return [outer, fill, el("span", "num")];
}

function drawDrivers() {
  const drivers = emotion && emotion.drivers;
  const shares = emotion && emotion.shares;
  $("drivers-hint").hidden = Boolean(drivers || shares);
  const box = $("drivers");
  if (drivers && drivers.valence && drivers.arousal) {
    const keys = Object.keys(drivers.valence);
    if (!driverRows || keys.join("\u0000") !== [...driverRows.keys()].join("\u0000")) {
      box.replaceChildren();
      box.className = "drivers";
      box.append(el("span", "head", ""), el("span", "head", `\u2212${DRIVER_FULL}  \u2190  valence  \u2192  +${DRIVER_FULL}`),
        el("span", "head", ""), el("span", "head", `\u2212${DRIVER_FULL}  \u2190  arousal  \u2192  +${DRIVER_FULL}`),
        el("span", "head", ""));
      driverRows = new Map();        // a Map: a publisher's names are never object keys here
      for (const key of keys) {
        const [vOuter, vFill, vNum] = bar(VALENCE);
        const [aOuter, aFill, aNum] = bar(AROUSAL);
        box.append(el("span", "", key), vOuter, vNum, aOuter, aNum);
        driverRows.set(key, [vFill, vNum, aFill, aNum]);
      }
    }
    for (const [key, [vFill, vNum, aFill, aNum]] of driverRows) {
      for (const [fill, number, value] of [[vFill, vNum, own(drivers.valence, key)], [aFill, aNum, own(drivers.arousal, key)]]) {
        const f = finite(value) ? Math.max(-1, Math.min(1, value / DRIVER_FULL)) : 0;
        fill.style.transform = `scaleX(${f})`;
        setText(number, signed(value));
      }
    }
  } else if (driverRows) {
    box.replaceChildren();
    driverRows = null;
  }
  const notes = $("notes");
  if (shares && Array.isArray(shares.valence) && Array.isArray(shares.arousal)) {
    if (!notes.firstChild) {
      notes.className = "notes";
      notes.append(el("span", "muted", "notes"));
      for (let i = 0; i < 12; i++) notes.append(el("span", "pitch", pitchNames ? pitchNames[i] : String(i)));
      for (const axis of ["valence", "arousal"]) {
        notes.append(el("span", axis === "valence" ? "val" : "aro", axis));
        for (let i = 0; i < 12; i++) notes.append(el("span", `cell ${axis}-cell`));
      }
    }
    for (const axis of ["valence", "arousal"]) {
      notes.querySelectorAll(`.${axis}-cell`).forEach((cell, i) => {
        const share = finite(shares[axis][i]) ? shares[axis][i] : 0;
        const mix = Math.min(1, Math.abs(share) / 0.4);
        const [r, g, b] = share > 0 ? [230, 120, 20] : [30, 110, 230];
        cell.style.background = `rgb(${[r, g, b].map((c) => Math.round(40 + (c - 40) * mix)).join(",")})`;
        setText(cell, Math.abs(share) < 0.04 ? "\u00b7" : (share > 0 ? "+" : "\u2212").repeat(Math.abs(share) >= 0.2 ? 2 : 1));
        cell.title = `${axis} share ${signed(share, 3)}`;
      });
    }
  } else if (notes.firstChild) {
    notes.replaceChildren();
  }
}

function drawFacts(st) {
  const s = status || {};
  const e = emotion || {};
  const number = (value, unit = "") => finite(value) ? `${value}${unit}` : "--";
  const missed = Math.max(s.missed || 0, e.missed || 0);
  const facts = [
    ["state", st, st === "live" ? "good" : st === "silent" ? "bad" : ""],
    ["last message", received === null ? "--" : `${ago(now() - received)} ago`, st === "silent" ? "bad" : ""],
    ["source", s.source || "--"],
    ["engine", s.engine || "--"],
    ["scheduling", s.scheduling || "--", s.real_time === true ? "good" : ""],
    ["window / hop", `${number(s.window_s, " s")} / ${number(s.hop_s, " s")}`],
    ["latency p50 / p99", `${number(s.p50_ms, " ms")} / ${number(s.p99_ms, " ms")}`],
    ["late windows", number(s.late_windows), s.late_windows ? "bad" : ""],
    ["overflows", number(s.overflows), s.overflows ? "bad" : ""],
    ["dropped blocks", number(s.dropped_blocks), s.dropped_blocks ? "bad" : ""],
    ["underruns", number(s.underruns), s.underruns ? "bad" : ""],
    ["clipped reads", number(s.clipped), s.clipped ? "bad" : ""],
    ["missed messages", String(missed), missed ? "bad" : ""],
    ["stream time", finite(e.t) ? `${e.t.toFixed(1)} s` : "--"],
  ];
  const list = $("facts");
  if (list.children.length !== facts.length * 2) {
    list.replaceChildren();
    for (const [label] of facts) list.append(el("dt", "", label), el("dd", ""));
  }
  facts.forEach(([, value, kind], i) => {
    const dd = list.children[2 * i + 1];
    setText(dd, String(value));
    dd.title = String(value);
    dd.dataset.bad = kind === "bad" ? "1" : "";
    dd.dataset.good = kind === "good" ? "1" : "";
  });
}

function drawServer() {
  $("conn").dataset.up = connected ? "1" : "";
  setText($("conn-text"), connected ? "live" : "reconnecting");
  if (server) {
    setText($("server"), `source ${server.rejected} rejected \u00b7 ${server.missed} missed \u00b7 ` +
      `${server.dropped} dropped for this page`);
  }
}

function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text) && !finite(value)) text = "'" + text;     // never a formula in a spreadsheet
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadCsv() {
  const rows = [["wall_iso", "wall", "t", "valence", "arousal", "quadrant", "mood", "level_dbfs"]];
  for (const p of shown()) rows.push([new Date(p[0] * 1000).toISOString(), p[0], p[1], p[2], p[3], p[4], p[6], p[5]]);
  const blob = new Blob([rows.map((row) => row.map(csvField).join(",")).join("\n") + "\n"], { type: "text/csv" });
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  link.download = `rt-mer-${name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 60)}-${stamp}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

let lastTick = 0;
function frame(time) {
  if (time - lastTick >= 1000) { lastTick = time; dirty = true; drawServer(); }
  if (dirty) {
    dirty = false;
    const st = state();
    setText($("badge"), st);
    document.body.dataset.state = st;
    const list = shown();
    setText($("points"), `${list.length} point${list.length === 1 ? "" : "s"}`);
    drawNow(list, st);
    drawChart(list);
    drawDrivers();
    drawFacts(st);
  }
  requestAnimationFrame(frame);
}

$("span").addEventListener("change", () => { dirty = true; });
$("csv").addEventListener("click", downloadCsv);
new ResizeObserver(() => { dirty = true; }).observe($("chart-box"));
window.rtmer = { points: () => shown().length };
connect(name, handle, (up) => { connected = up; drawServer(); });
requestAnimationFrame(frame);
