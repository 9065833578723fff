// The OBS overlay: the mood word and a small plane on a transparent page.
// URL parameters: size (the plane, px), font (the word, px), plane=0, word=0,
// sub=0 (no quadrant and values line), trail (points), align=right.
import { QUADRANT_NAMES, ago, connect, drawPlane, finite, fitCanvas, numberParam, param, setText, signed,
  streamFromPath } from "./common.js";

const name = streamFromPath("/overlay/");
const size = numberParam("size", 140, 40, 1200);
const font = numberParam("font", 48, 8, 400);
const trailPoints = numberParam("trail", 16, 1, 500);
const showPlane = param("plane", "1") !== "0";
const showWord = param("word", "1") !== "0";
const showSub = param("sub", "1") !== "0";
const root = document.getElementById("overlay");
const word = document.getElementById("word");
const sub = document.getElementById("sub");
const plane = document.getElementById("plane");

let names = QUADRANT_NAMES, staleS = 5, emotion = null, status = null, received = null, dirty = true;
const trail = [];
const now = () => performance.now() / 1000;

root.dataset.align = param("align", "left") === "right" ? "right" : "left";
word.style.fontSize = font + "px";
sub.style.fontSize = Math.max(10, Math.round(font * 0.3)) + "px";
plane.hidden = !showPlane;
word.hidden = !showWord;
sub.hidden = !showSub || !showWord;

function handle(message) {
  if (message.type === "hello") {
    if (message.quadrants && typeof message.quadrants === "object") names = message.quadrants;
    if (finite(message.stale_s)) staleS = message.stale_s;
  } else if (message.type === "snapshot") {
    const s = (Array.isArray(message.streams) ? message.streams : []).find((x) => x && x.stream === name);
    if (!s) return;
    trail.length = 0;
    for (const row of (Array.isArray(s.history) ? s.history : []).slice(-trailPoints)) {
      if (finite(row[2]) && finite(row[3])) trail.push([row[2], row[3]]);
    }
    emotion = s.emotion || null;
    status = s.status || null;
    received = now() - (finite(s.age_s) ? s.age_s : 0);
    dirty = true;
  } else if (message.stream === name && (message.type === "emotion" || message.type === "status")) {
    if (message.type === "emotion") {
      emotion = message;
      if (finite(message.valence) && finite(message.arousal)) trail.push([message.valence, message.arousal]);
      if (trail.length > trailPoints) trail.splice(0, trail.length - trailPoints);
    } else {
      status = message;
    }
    received = now();
    dirty = true;
  }
}

let lastTick = 0;
function frame(time) {
  if (time - lastTick > 1000) { lastTick = time; dirty = true; }
  if (dirty) {
    dirty = false;
    const ended = status && status.state === "ended";
    const silent = received !== null && now() - received > staleS;
    root.dataset.state = ended ? "ended" : silent ? "silent" : "live";
    root.dataset.q = emotion ? String(emotion.quadrant) : "";
    if (showPlane) drawPlane(fitCanvas(plane, size, size), size, trail, {
      names, dim: ended || silent, backdrop: "rgba(10,12,18,0.55)", labels: size >= 90 });
    setText(word, emotion ? String(emotion.mood) : "");
    setText(sub, !emotion ? "" : ended ? "ended" : silent ? `silent ${ago(now() - received)}`
      : `${names[emotion.quadrant] || ""}  \u00b7  V ${signed(emotion.valence)}  A ${signed(emotion.arousal)}`);
  }
  requestAnimationFrame(frame);
}

connect(name, handle, () => {});
requestAnimationFrame(frame);
