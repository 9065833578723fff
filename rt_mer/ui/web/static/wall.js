// The wall: one tile per stream, drawn on canvases once per animation frame
// and only where something changed and the tile is on screen.
import {
  AROUSAL, FrameMeter, QUADRANT_COLOURS, QUADRANT_NAMES, VALENCE, ago, connect, drawPlane, el, finite, fitCanvas,
  param, pageUrl, setText, signed, streamUrl,
} from "./common.js";

const TRAIL = 16;               // points of the plane's trail (8 s at the default hop)
const KEEP_POINTS = 1500;       // per stream: the page's own history is bounded too
const PLANE = 112;              // px
const SPARK_H = 36;
const METER_FLOOR = -60;        // dBFS at an empty meter
const RESORT_MS = 2000;         // sorted by a value: re-sorted this often, so tiles do not jitter
// Streams of one process publish together, so 100 tiles may change in one
// frame: draw for at most this long a frame, the rest in the next ones.
const FRAME_BUDGET_MS = 4;

const wall = document.getElementById("wall");
const filterBox = document.getElementById("filter");
const sortBox = document.getElementById("sort");
const tiles = new Map();
const visible = new Set();
const dirty = new Set();
const meter = new FrameMeter();
const showPerf = param("perf", "0") === "1";
let names = QUADRANT_NAMES;
let spanS = 300, staleS = 5, maxStreams = 256, seen = 0, server = null, connected = false;
let sparkWidth = 150, sparkMeasured = false;   // every tile's sparkline is as wide: measured on one, after a resize
let lastTick = 0, lastSort = 0, sortNeeded = true;

const now = () => performance.now() / 1000;

// For the browser test and for anyone curious: frame times and counts.
window.rtmer = {
  perf: () => meter.summary(),
  resetPerf: () => meter.reset(),
  streams: () => tiles.size,
  shown: () => [...tiles.values()].filter((t) => !t.node.hidden).length,
  states: () => [...tiles.values()].reduce((counts, t) => ({ ...counts, [t.state]: (counts[t.state] || 0) + 1 }), {}),
};

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const tile = entry.target._tile;
    if (entry.isIntersecting) {
      visible.add(tile);
      dirty.add(tile);
    } else {
      visible.delete(tile);
    }
  }
}, { rootMargin: "100px" });

class Tile {
  constructor(name) {
    this.name = name;
    this.first = seen++;
    this.points = [];              // [wall, valence, arousal], oldest first
    this.emotion = null;
    this.status = null;
    this.received = now();
    const node = this.node = el("article", "tile");
    node._tile = this;
    const head = el("header");
    const link = el("a", "name", name);
    link.href = streamUrl("stream", name);
    link.title = name;
    this.badge = el("span", "badge");
    head.append(link, this.badge);
    const body = el("div", "body");
    this.plane = el("canvas", "plane");
    this.plane.title = "valence \u2192, arousal \u2191";
    const info = el("div", "info");
    this.mood = el("div", "mood", "\u2026");
    this.quad = el("div", "quad", "waiting for the first window");
    const nums = el("div", "nums");
    this.valence = el("span", "val", "V --");
    this.arousal = el("span", "aro", "A --");
    nums.append(this.valence, this.arousal);
    this.sparkBox = el("div", "spark-box");
    this.spark = el("canvas", "spark");
    this.spark.title = "valence (cyan) and arousal (magenta): the last minute, growing to the last five";
    this.sparkBox.append(this.spark);
    const level = el("div", "level");
    const bar = el("div", "meter");
    this.rms = el("div", "rms");
    this.peak = el("div", "peak");
    bar.append(this.rms, this.peak);
    this.db = el("span", "db", "-- dBFS");
    level.append(bar, this.db);
    info.append(this.mood, this.quad, nums, this.sparkBox, level);
    body.append(this.plane, info);
    this.health = el("footer", "health");
    this.sched = el("span", "chip");
    this.counters = el("span", "counters");
    this.age = el("span", "age");
    this.health.append(this.sched, this.counters, this.age);
    node.append(head, body, this.health);
  }

  touch() {
    this.received = now();
    dirty.add(this);
  }

  addPoint(wallTime, valence, arousal) {
    if (!finite(wallTime) || !finite(valence) || !finite(arousal)) return;
    const last = this.points[this.points.length - 1];
    if (last && wallTime < last[0] - 60) this.points = [];     // its clock went back: another run
    this.points.push([wallTime, valence, arousal]);
    if (this.points.length > KEEP_POINTS * 1.25) this.points.splice(0, this.points.length - KEEP_POINTS);
  }

  emotionIn(message) {
    this.emotion = message;
    this.addPoint(message.wall, message.valence, message.arousal);
    this.touch();
  }

  statusIn(message) {
    this.status = message;
    this.touch();
  }

  get state() {
    const age = now() - this.received;
    if (this.status && this.status.state === "ended") return "ended";
    if (age > staleS) return "silent";
    if (!this.emotion || (this.status && this.status.state === "warming")) return "warming";
    return "live";
  }

  // Attention first: ended or silent, then counters above zero.
  trouble() {
    const state = this.state;
    if (state === "ended" || state === "silent") return 2;
    const s = this.status || {};
    return (s.overflows || s.late_windows || s.dropped_blocks || s.missed || s.real_time === false) ? 1 : 0;
  }

  // Once a second: the age, and a redraw where the state changed or time
  // moves the picture (a silent stream's sparkline scrolls on).
  tick() {
    const state = this.state;
    if (state !== this.drawnState || state === "silent") dirty.add(this);
    else setText(this.age, ago(now() - this.received) + " ago");
  }

  draw() {
    const state = this.drawnState = this.state;
    const dim = state === "ended" || state === "silent";
    const trail = this.points.slice(-TRAIL).map((p) => [p[1], p[2]]);
    drawPlane(fitCanvas(this.plane, PLANE, PLANE), PLANE, trail, { names, dim });
    this.drawSpark(dim);
    const e = this.emotion;
    if (e) {
      setText(this.mood, e.mood);
      const q = e.quadrant;
      setText(this.quad, `Q${q} \u00b7 ${names[q] || ""}`);
      this.node.dataset.q = String(q);
      setText(this.valence, "V " + signed(e.valence));
      setText(this.arousal, "A " + signed(e.arousal));
    }
    const level = e && finite(e.level_dbfs) ? e : this.status;
    const rms = level && finite(level.level_dbfs) ? level.level_dbfs : null;
    const peak = level && finite(level.peak_dbfs) ? level.peak_dbfs : null;
    const fraction = (db) => db === null ? 0 : Math.max(0, Math.min(1, 1 - db / METER_FLOOR));
    this.rms.style.transform = `scaleX(${fraction(rms)})`;
    this.rms.dataset.hot = rms === null ? "" : rms >= -6 ? "red" : rms >= -18 ? "amber" : "";
    this.peak.style.transform = `translateX(${(fraction(peak) * 100).toFixed(1)}%)`;
    setText(this.db, rms === null ? "-- dBFS" : `${rms.toFixed(1)} dBFS`);
    this.drawHealth(state);
  }

  drawSpark(dim) {
    const width = sparkWidth, height = SPARK_H;
    const ctx = fitCanvas(this.spark, width, height);
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "rgba(255,255,255,0.12)";
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(0, height / 2); ctx.lineTo(width, height / 2); ctx.stroke();
    const points = this.points;
    if (!points.length) return;
    const end = points[points.length - 1][0] + (now() - this.received);   // scrolls on while silent
    const span = Math.min(spanS, Math.max(60, end - points[0][0]));     // a young stream fills a minute
    const x = (w) => (w - end + span) / span * width;
    const y = (value) => (1 - value) / 2 * (height - 4) + 2;
    for (const [index, colour] of [[1, VALENCE], [2, AROUSAL]]) {
      ctx.strokeStyle = colour;
      ctx.globalAlpha = dim ? 0.35 : 0.95;
      ctx.lineWidth = 1.4;
      ctx.beginPath();
      let drawing = false, previous = null;
      for (let i = 0; i < points.length; i++) {
        const p = points[i];
        if (p[0] < end - span) continue;
        const gap = previous !== null && p[0] - previous > 5;     // no line across a silence
        if (drawing && !gap) ctx.lineTo(x(p[0]), y(p[index])); else ctx.moveTo(x(p[0]), y(p[index]));
        drawing = true;
        previous = p[0];
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  drawHealth(state) {
    setText(this.badge, state);                    // silent: the age beside it, in red, says how long
    this.node.dataset.state = state;
    const s = this.status || {};
    if (s.real_time === true) { setText(this.sched, "real-time"); this.sched.dataset.kind = "good"; }
    else if (s.real_time === false) { setText(this.sched, "normal priority"); this.sched.dataset.kind = "warn"; }
    else { setText(this.sched, ""); this.sched.dataset.kind = ""; }
    const parts = [`late ${s.late_windows ?? "--"}`, `overflows ${s.overflows ?? "--"}`];
    for (const [label, value] of [["dropped", s.dropped_blocks], ["missed", Math.max(s.missed || 0,
      (this.emotion && this.emotion.missed) || 0)], ["clip", s.clipped]]) {
      if (value) parts.push(`${label} ${value}`);
    }
    setText(this.counters, parts.join(" \u00b7 "));
    this.counters.dataset.bad = (s.late_windows || s.overflows || s.dropped_blocks) ? "1" : "";
    setText(this.age, ago(now() - this.received) + " ago");
  }
}

function tileFor(name) {
  let tile = tiles.get(name);
  if (tile) return tile;
  if (tiles.size >= maxStreams) {             // the least recently heard makes room
    let oldest = null;
    for (const t of tiles.values()) if (!oldest || t.received < oldest.received) oldest = t;
    remove(oldest.name);
  }
  tile = new Tile(name);
  tiles.set(name, tile);
  applyFilter(tile);
  wall.append(tile.node);
  observer.observe(tile.node);
  sortNeeded = true;
  updateCounts();
  return tile;
}

function remove(name) {
  const tile = tiles.get(name);
  if (!tile) return;
  observer.unobserve(tile.node);
  tile.node.remove();
  tiles.delete(name);
  visible.delete(tile);
  dirty.delete(tile);
  updateCounts();
}

function handle(message) {
  switch (message.type) {
    case "hello":
      if (message.quadrants && typeof message.quadrants === "object") names = message.quadrants;
      if (finite(message.wall_span_s)) spanS = message.wall_span_s;
      if (finite(message.stale_s)) staleS = message.stale_s;
      if (finite(message.max_streams)) maxStreams = message.max_streams;
      setText(document.getElementById("source"), String(message.source || ""));
      setText(document.getElementById("empty-source"), String(message.source || "the publisher"));
      break;
    case "snapshot":
      for (const s of Array.isArray(message.streams) ? message.streams : []) {
        if (typeof s.stream !== "string") continue;
        const tile = tileFor(s.stream);
        tile.points = [];
        for (const row of Array.isArray(s.history) ? s.history : []) tile.addPoint(row[0], row[2], row[3]);
        tile.emotion = s.emotion || null;
        tile.status = s.status || null;
        tile.touch();
        tile.received = now() - (finite(s.age_s) ? s.age_s : 0);
      }
      break;
    case "emotion":
      if (typeof message.stream === "string") tileFor(message.stream).emotionIn(message);
      break;
    case "status":
      if (typeof message.stream === "string") tileFor(message.stream).statusIn(message);
      break;
    case "gone":
      remove(message.stream);
      break;
    case "server":
      server = message;
      break;
  }
}

function applyFilter(tile) {
  const text = filterBox.value.trim().toLowerCase();
  tile.node.hidden = text !== "" && !tile.name.toLowerCase().includes(text);
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const KEYS = {
  name: null,
  first: (t) => t.first,
  valence: (t) => -(t.emotion ? t.emotion.valence : -9),
  arousal: (t) => -(t.emotion ? t.emotion.arousal : -9),
  level: (t) => -((t.emotion && finite(t.emotion.level_dbfs)) ? t.emotion.level_dbfs : -999),
  attention: (t) => -t.trouble(),
};

// Order by CSS `order`: no element moves in the DOM.
function sort() {
  const key = KEYS[sortBox.value];
  const list = [...tiles.values()];
  list.sort((a, b) => (key ? key(a) - key(b) : 0) || collator.compare(a.name, b.name));
  list.forEach((tile, index) => { tile.node.style.order = String(index); });
  lastSort = performance.now();
  sortNeeded = false;
}

function updateCounts() {
  const shown = [...tiles.values()].filter((t) => !t.node.hidden).length;
  setText(document.getElementById("counts"),
    tiles.size === shown ? `${tiles.size} stream${tiles.size === 1 ? "" : "s"}` : `${shown} of ${tiles.size} streams`);
  document.getElementById("empty").hidden = tiles.size > 0;
}

function updateFooter() {
  const conn = document.getElementById("conn");
  conn.dataset.up = connected ? "1" : "";
  setText(document.getElementById("conn-text"), connected ? "live" : "reconnecting");
  const parts = [];
  if (server) {
    parts.push(`rejected ${server.rejected}`, `missed ${server.missed}`, `dropped for this page ${server.dropped}`);
    if (server.pages_dropped > server.dropped) parts.push(`for all pages ${server.pages_dropped}`);
    if (server.backlog_dropped) parts.push(`server backlog dropped ${server.backlog_dropped}`);
    if (server.evicted) parts.push(`evicted ${server.evicted} (over ${maxStreams} streams)`);
    parts.push(`${server.clients} page${server.clients === 1 ? "" : "s"} open`);
    if (server.rejected && server.last_rejection) parts.push(`last rejected: ${server.last_rejection}`);
  }
  if (showPerf) {
    const p = meter.summary();
    if (p.frame_ms.n) parts.push(`frame p50 ${p.frame_ms.p50.toFixed(1)} ms, p99 ${p.frame_ms.p99.toFixed(1)} ms; ` +
      `work p50 ${p.work_ms.p50.toFixed(2)} ms, p99 ${p.work_ms.p99.toFixed(2)} ms`);
  }
  setText(document.getElementById("server"), parts.join("  \u00b7  "));
}

function measureSpark() {
  for (const tile of tiles.values()) {
    if (tile.node.hidden) continue;
    const width = Math.floor(tile.sparkBox.clientWidth);
    sparkMeasured = true;
    if (width > 20 && width !== sparkWidth) {
      sparkWidth = width;
      for (const t of tiles.values()) dirty.add(t);
    }
    return;
  }
}

function frame(time) {
  const start = performance.now();
  if (time - lastTick >= 1000) {                // ages, silence, scrolling sparklines: once a second
    lastTick = time;
    for (const tile of visible) tile.tick();
    updateFooter();
  }
  if (sortNeeded || (sortBox.value !== "name" && sortBox.value !== "first" && time - lastSort > RESORT_MS)) sort();
  if (dirty.size) {
    if (!sparkMeasured) measureSpark();
    for (const tile of dirty) {                 // oldest change first; what is off screen is drawn on showing
      if (performance.now() - start > FRAME_BUDGET_MS) break;
      dirty.delete(tile);
      if (visible.has(tile) && !tile.node.hidden) tile.draw();
    }
  }
  meter.frame(time, performance.now() - start);
  requestAnimationFrame(frame);
}

function saveView() {
  const extra = {};
  if (filterBox.value) extra.filter = filterBox.value;
  if (sortBox.value !== "name") extra.sort = sortBox.value;
  if (showPerf) extra.perf = "1";
  history.replaceState(null, "", pageUrl("/", extra));
}

filterBox.value = param("filter", "");
if (Object.hasOwn(KEYS, param("sort", "name"))) sortBox.value = param("sort", "name");
filterBox.addEventListener("input", () => {
  for (const tile of tiles.values()) applyFilter(tile);
  for (const tile of visible) dirty.add(tile);
  updateCounts();
  saveView();
});
sortBox.addEventListener("change", () => { sortNeeded = true; saveView(); });
new ResizeObserver(() => { sparkMeasured = false; }).observe(wall);
updateCounts();
connect(null, handle, (up) => { connected = up; updateFooter(); });
requestAnimationFrame(frame);
