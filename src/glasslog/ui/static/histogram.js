// Matching events over time as an inline SVG bar chart (GET /v1/histogram).
// Dragging across it selects a window; `onZoom(fromIso, toIso)` makes it the range.

import { getJson } from "./api.js";
import { h, fill, formatTime } from "./dom.js";

const W = 1000;
const H = 120;
const AXIS = 18;

export async function drawHistogram(root, query, onZoom) {
  let answer;
  try {
    answer = await getJson("/v1/histogram", { q: query });
  } catch (error) {
    fill(root, h("p.muted", { text: `No histogram: ${error.message}` }));
    return;
  }
  const buckets = answer.buckets || [];
  if (!buckets.length) {
    fill(root, h("p.muted", { text: "No events in this window." }));
    return;
  }
  const step = answer.bucket_seconds * 1000;
  const start = Date.parse(buckets[0].start);
  const end = Date.parse(buckets[buckets.length - 1].start) + step;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const x = (t) => ((t - start) / (end - start)) * W;
  const bars = buckets.map((b) => {
    const t = Date.parse(b.start);
    const height = (b.count / max) * (H - AXIS - 4);
    return h("rect", {
      class: "bar", x: x(t) + 0.5, width: Math.max(1, x(t + step) - x(t) - 1),
      y: H - AXIS - height, height,
    }, h("title", {}, `${formatTime(b.start)}: ${b.count}`));
  });
  const selection = h("rect", { class: "selection", x: 0, y: 0, width: 0, height: H - AXIS, visibility: "hidden" });
  const svg = h("svg", {
    viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": `Histogram: ${buckets.reduce((n, b) => n + b.count, 0)} events from ${formatTime(start)} to ${formatTime(end)}, buckets of ${answer.bucket_seconds} s. Drag to zoom.`,
  },
  h("line", { class: "axis", x1: 0, x2: W, y1: H - AXIS, y2: H - AXIS }),
  bars, selection);
  const labels = h("div.hist-labels", {}, h("span", {}, formatTime(start)), h("span", {}, `max ${max} per ${answer.bucket_seconds} s`), h("span", {}, formatTime(end)));
  fill(root, svg, labels);

  // Dragging: pointer positions in the SVG's own units, snapped to buckets.
  const at = (e) => {
    const box = svg.getBoundingClientRect();
    return Math.min(W, Math.max(0, ((e.clientX - box.left) / box.width) * W));
  };
  let from = null;
  svg.addEventListener("pointerdown", (e) => {
    from = at(e);
    svg.setPointerCapture(e.pointerId);
    selection.setAttribute("visibility", "visible");
    selection.setAttribute("x", from);
    selection.setAttribute("width", 0);
  });
  svg.addEventListener("pointermove", (e) => {
    if (from === null) return;
    const now = at(e);
    selection.setAttribute("x", Math.min(from, now));
    selection.setAttribute("width", Math.abs(now - from));
  });
  svg.addEventListener("pointerup", (e) => {
    if (from === null) return;
    const to = at(e);
    const [a, b] = [Math.min(from, to), Math.max(from, to)];
    from = null;
    selection.setAttribute("visibility", "hidden");
    if (b - a < 3) return;
    const time = (v) => start + (v / W) * (end - start);
    const snap = (t, up) => start + (up ? Math.ceil : Math.floor)((t - start) / step) * step;
    onZoom(new Date(snap(time(a), false)).toISOString(), new Date(snap(time(b), true)).toISOString());
  });
}
