// One request or trace across services (GET /v1/trace/{id}) as a waterfall: one lane
// per service, each event a mark at its time, metadata.duration_ms as a bar from it.
// Failures and denials carry a shape and a word, not only a colour.

import { getJson } from "./api.js";
import { h, fill, formatTime } from "./dom.js";

const W = 1000;
const LANE = 34;
const LEFT = 150;
const MARKS = { failure: "✕ failed", denied: "⊘ denied" };

/** A duration in the unit that reads best, as the CLI's trace prints offsets. */
export function offset(ms) {
  if (ms < 1) return `+${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `+${+ms.toFixed(1)} ms`;
  if (ms < 60000) return `+${+(ms / 1000).toFixed(1)} s`;
  return `+${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export async function drawTrace(root, id, onOpen) {
  fill(root, h("p.muted", { text: `Loading trace ${id}…` }));
  const answer = await getJson(`/v1/trace/${encodeURIComponent(id)}`);
  const events = answer.events;
  const title = h("h2", {}, "Trace ", h("code", {}, id));
  if (!events.length) {
    fill(root, title, h("p.muted", {}, "No events you may see carry this request or trace id."));
    return;
  }
  const times = events.map((e) => Date.parse(e.time));
  const ends = events.map((e, i) => times[i] + duration(e));
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...ends) - start);
  const services = [...new Set(events.map((e) => e.service ?? "(none)"))];
  const x = (t) => LEFT + ((t - start) / span) * (W - LEFT - 20);
  const height = services.length * LANE + 24;

  const lanes = services.map((service, i) => h("g", {},
    h("rect", { class: i % 2 ? "lane odd" : "lane", x: 0, y: i * LANE, width: W, height: LANE }),
    h("text", { class: "lane-label", x: 8, y: i * LANE + LANE / 2 + 4 }, service.length > 20 ? `${service.slice(0, 19)}…` : service)));
  const marks = events.map((event, i) => {
    const lane = services.indexOf(event.service ?? "(none)");
    const y = lane * LANE + LANE / 2;
    const cls = `mark outcome-${event.outcome || "none"}`;
    const label = `${event.action ?? ""} ${event.outcome ?? ""} ${offset(times[i] - start)}${duration(event) ? `, ${duration(event)} ms` : ""}`;
    const shape = event.outcome === "failure"
      ? h("path", { class: cls, d: `M${x(times[i]) - 6},${y - 6} l12,12 m0,-12 l-12,12` })
      : event.outcome === "denied"
        ? h("polygon", { class: cls, points: `${x(times[i])},${y - 7} ${x(times[i]) + 7},${y} ${x(times[i])},${y + 7} ${x(times[i]) - 7},${y}` })
        : h("circle", { class: cls, cx: x(times[i]), cy: y, r: 5 });
    return h("g", { class: "event-mark", tabindex: "0", role: "button", "aria-label": label,
      onclick: () => onOpen(event), onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); onOpen(event); } } },
    duration(event) ? h("rect", { class: `span ${cls}`, x: x(times[i]), y: y - 5, width: Math.max(2, x(ends[i]) - x(times[i])), height: 10 }) : null,
    shape, h("title", {}, label));
  });
  const axis = h("text", { class: "axis-label", x: LEFT, y: height - 6 }, "+0");
  const axisEnd = h("text", { class: "axis-label", x: W - 20, y: height - 6, "text-anchor": "end" }, offset(span));
  const svg = h("svg.waterfall", { viewBox: `0 0 ${W} ${height}`, role: "group", "aria-label": `Timeline of ${events.length} events across ${services.length} services` },
    lanes, marks, axis, axisEnd);
  const table = h("table.events", {},
    h("thead", {}, h("tr", {}, ["Offset", "Time", "Service", "Function", "Action", "Outcome", "Duration", "Actor"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, events.map((event, i) => h("tr", {
      tabindex: "0", class: `outcome-${event.outcome || "none"}`,
      onclick: () => onOpen(event), onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); onOpen(event); } },
    },
    h("td", {}, offset(times[i] - start)), h("td", {}, formatTime(event.time)), h("td", {}, event.service ?? ""),
    h("td", {}, event.context?.function ?? ""), h("td", {}, event.action ?? ""),
    h("td", {}, MARKS[event.outcome] ?? event.outcome ?? ""), h("td", {}, duration(event) ? `${duration(event)} ms` : ""),
    h("td", {}, event.actor?.id ?? "")))));
  fill(root, title,
    h("p.muted", {}, `${events.length} events, ${services.length} services, ${offset(span).slice(1)} from ${formatTime(start)}. `,
      h("span.legend", {}, "● success  ✕ failed  ◆ denied  ▬ duration")),
    h("div.waterfall-wrap", {}, svg), h("div.table-wrap", {}, table));
}

function duration(event) {
  const ms = event.metadata?.duration_ms;
  return typeof ms === "number" && ms > 0 ? ms : 0;
}
