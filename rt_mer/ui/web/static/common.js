// Shared by the wall, the stream page and the overlay: the live connection,
// colours, the valence-arousal plane, small DOM helpers.
//
// Everything a publisher sends is untrusted: it reaches the page only through
// textContent, attribute values set by property, and canvas fillText, never
// through innerHTML or markup; the server's Content-Security-Policy allows
// scripts from this package only.

export const QUADRANT_COLOURS = { 1: "#f2c94c", 2: "#ff6b6b", 3: "#5b8def", 4: "#4fd18b" };
export const QUADRANT_NAMES = { 1: "happy", 2: "tense", 3: "sad", 4: "calm" };  // replaced by the server's hello
export const VALENCE = "#37c8e6";
export const AROUSAL = "#e05ce0";
export const DRIVER_FULL = 2.0;          // a logit term of a full bar (the dashboard's scale)

const params = new URLSearchParams(location.search);
export const token = params.get("token");

export function param(name, fallback) {
  const value = params.get(name);
  return value === null || value === "" ? fallback : value;
}

export function numberParam(name, fallback, low, high) {
  const value = Number(params.get(name));
  return params.get(name) !== null && Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : fallback;
}

// A page URL under this server, keeping the token.
export function pageUrl(path, extra = {}) {
  const query = new URLSearchParams(extra);
  if (token) query.set("token", token);
  const text = query.toString();
  return path + (text ? "?" + text : "");
}

export function streamUrl(kind, name) {
  return pageUrl(`/${kind}/` + encodeURIComponent(name));
}

// The stream a /stream/NAME or /overlay/NAME page is about ("/" in a name
// may come as "/" or as %2F).
export function streamFromPath(prefix) {
  const raw = location.pathname.slice(prefix.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

// Connect to /live (stream: null for the wall); `handle(message)` gets each
// message; `state(open)` hears the connection come and go. Reconnects.
export function connect(stream, handle, state) {
  let delay = 500;
  function open() {
    const query = new URLSearchParams();
    if (stream !== null) query.set("stream", stream);
    if (token) query.set("token", token);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/live?${query}`);
    socket.onopen = () => { delay = 500; state(true); };
    socket.onmessage = (event) => {
      let batch;
      try {
        batch = JSON.parse(event.data);
      } catch {
        return;
      }
      if (Array.isArray(batch)) for (const message of batch) if (message && typeof message === "object") handle(message);
    };
    socket.onclose = () => {
      state(false);
      setTimeout(open, delay);
      delay = Math.min(5000, delay * 2);
    };
  }
  open();
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// textContent only when it changed: no layout work for the same text.
export function setText(node, text) {
  if (node._text !== text) {
    node._text = text;
    node.textContent = text;
  }
}

export function finite(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function signed(value, digits = 2) {
  return finite(value) ? (value >= 0 ? "+" : "\u2212") + Math.abs(value).toFixed(digits) : "--";
}

export function ago(seconds) {
  if (seconds < 10) return seconds.toFixed(1) + " s";
  if (seconds < 120) return Math.round(seconds) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

export function quadrantOf(valence, arousal) {
  if (arousal >= 0) return valence >= 0 ? 1 : 2;
  return valence >= 0 ? 4 : 3;
}

// Size a canvas for the device's pixels; returns its 2D context in CSS pixels.
export function fitCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

// The valence-arousal plane in a size x size square: tinted quadrants, axes,
// the quadrant names in their corners, the trail ([[valence, arousal], ...],
// oldest first) fading with age, and the current point (its last element);
// options.path: more points, drawn faint under the trail.
export function drawPlane(ctx, size, trail, options = {}) {
  const names = options.names || QUADRANT_NAMES;
  const pad = Math.max(4, size * 0.06);
  const span = size - 2 * pad;
  const x = (v) => pad + (Math.max(-1, Math.min(1, v)) + 1) / 2 * span;
  const y = (a) => pad + (1 - Math.max(-1, Math.min(1, a))) / 2 * span;
  ctx.clearRect(0, 0, size, size);
  ctx.drawImage(planeBackground(size, options, names), 0, 0, size, size);
  if (options.path && options.path.length > 1) {      // the whole path, faint, under the trail
    ctx.strokeStyle = "rgba(223,230,243,0.22)";
    ctx.lineWidth = 1;
    ctx.lineJoin = "round";
    ctx.beginPath();
    options.path.forEach(([v, a], i) => (i ? ctx.lineTo(x(v), y(a)) : ctx.moveTo(x(v), y(a))));
    ctx.stroke();
  }
  const n = trail.length;
  if (!n) return;
  ctx.lineWidth = Math.max(1.2, size / 110);
  ctx.lineCap = "round";
  for (let i = 1; i < n; i++) {
    ctx.globalAlpha = 0.08 + 0.72 * (i / (n - 1)) ** 1.5;
    ctx.strokeStyle = options.trailColour || "#dfe6f3";
    ctx.beginPath();
    ctx.moveTo(x(trail[i - 1][0]), y(trail[i - 1][1]));
    ctx.lineTo(x(trail[i][0]), y(trail[i][1]));
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  const [v, a] = trail[n - 1];
  const colour = options.dim ? "#8b93a7" : QUADRANT_COLOURS[quadrantOf(v, a)];
  const r = Math.max(3.5, size * 0.045);
  ctx.fillStyle = colour;
  ctx.globalAlpha = 0.25;
  ctx.beginPath(); ctx.arc(x(v), y(a), r * 2.1, 0, 2 * Math.PI); ctx.fill();
  ctx.globalAlpha = 1;
  ctx.beginPath(); ctx.arc(x(v), y(a), r, 0, 2 * Math.PI); ctx.fill();
  ctx.strokeStyle = "rgba(255,255,255,0.9)";
  ctx.lineWidth = 1.5;
  ctx.stroke();
}

// The plane without the points (backdrop, tinted quadrants, axes, names),
// drawn once per look and copied after: text is the dearest thing to draw.
const backgrounds = new Map();

function planeBackground(size, options, names) {
  const ratio = window.devicePixelRatio || 1;
  const key = [size, ratio, Boolean(options.dim), options.labels !== false, options.backdrop || "",
    names[1], names[2], names[3], names[4]].join("\u0000");
  let canvas = backgrounds.get(key);
  if (canvas) return canvas;
  if (backgrounds.size > 32) backgrounds.clear();
  canvas = document.createElement("canvas");
  canvas.width = canvas.height = Math.round(size * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const pad = Math.max(4, size * 0.06);
  const half = size / 2;
  if (options.backdrop) {
    ctx.fillStyle = options.backdrop;
    roundRect(ctx, 0, 0, size, size, size * 0.08);
    ctx.fill();
  }
  ctx.globalAlpha = options.dim ? 0.05 : 0.09;
  for (const [q, qx, qy] of [[1, half, 0], [2, 0, 0], [3, 0, half], [4, half, half]]) {
    ctx.fillStyle = QUADRANT_COLOURS[q];
    ctx.fillRect(qx + (qx ? 0 : 1), qy + (qy ? 0 : 1), half - 1, half - 1);
  }
  ctx.globalAlpha = 1;
  ctx.strokeStyle = "rgba(255,255,255,0.16)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(half, pad / 2); ctx.lineTo(half, size - pad / 2);
  ctx.moveTo(pad / 2, half); ctx.lineTo(size - pad / 2, half);
  ctx.stroke();
  if (options.labels !== false) {
    const font = Math.min(14, Math.max(9, Math.round(size * 0.085)));
    ctx.font = `600 ${font}px system-ui, "DejaVu Sans", sans-serif`;
    ctx.globalAlpha = options.dim ? 0.45 : 0.8;
    for (const [q, right, bottom] of [[1, true, false], [2, false, false], [3, false, true], [4, true, true]]) {
      ctx.fillStyle = QUADRANT_COLOURS[q];
      ctx.textAlign = right ? "right" : "left";
      ctx.textBaseline = bottom ? "bottom" : "top";
      ctx.fillText(String(names[q] || ""), right ? size - 3 : 3, bottom ? size - 2 : 2);
    }
    ctx.globalAlpha = 1;
  }
  backgrounds.set(key, canvas);
  return canvas;
}

export function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}

// The frame-time meter (rAF deltas and the page's own work per frame), read
// by the browser test and shown on the wall with ?perf=1.
export class FrameMeter {
  constructor(keep = 3600) {
    this.keep = keep;
    this.deltas = [];
    this.work = [];
    this.last = null;
  }
  frame(now, workMs) {
    if (this.last !== null) this.push(this.deltas, now - this.last);
    this.last = now;
    this.push(this.work, workMs);
  }
  push(list, value) {
    list.push(value);
    if (list.length > this.keep) list.splice(0, list.length - this.keep);
  }
  reset() {
    this.deltas = []; this.work = []; this.last = null;
  }
  static quantiles(list) {
    const sorted = [...list].sort((a, b) => a - b);
    const q = (p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null;
    const mean = sorted.length ? sorted.reduce((s, x) => s + x, 0) / sorted.length : null;
    return { n: sorted.length, mean, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: sorted.length ? sorted[sorted.length - 1] : null };
  }
  summary() {
    return { frame_ms: FrameMeter.quantiles(this.deltas), work_ms: FrameMeter.quantiles(this.work) };
  }
}
