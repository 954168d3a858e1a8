// Top values beside the results (GET /v1/count?by=&top=): click adds field:value to
// the query, alt-click (or the "exclude" button) adds -field:value.

import { getJson } from "./api.js";
import { h, fill } from "./dom.js";

const FACETS = [
  ["service", "Services"], ["action", "Actions"], ["actor.id", "Actors"], ["outcome", "Outcomes"],
];
const TOP = 8;

/** Draw the facets of `query`; `onPick(field, value, exclude)` filters by one. */
export async function drawFacets(root, query, onPick) {
  fill(root, h("h2", {}, "Top values"));
  const sections = FACETS.map(([field, title]) => {
    const body = h("div", {}, h("p.muted", {}, "…"));
    root.append(h("section.facet", {}, h("h3", {}, title), body));
    return [field, body];
  });
  await Promise.all(sections.map(async ([field, body]) => {
    let groups;
    try {
      groups = (await getJson("/v1/count", { q: query, by: field, top: TOP })).groups;
    } catch (error) {
      fill(body, h("p.muted", { text: error.status === 403 ? "Not available for your role." : error.message }));
      return;
    }
    if (!groups.length) {
      fill(body, h("p.muted", {}, "none"));
      return;
    }
    const max = Math.max(...groups.map((g) => g.count));
    fill(body, h("ul", {}, groups.map((g) => {
      const label = g.missing ? "(none)" : String(g.value);
      const meter = h("span.meter");
      meter.style.width = `${Math.round((g.count / max) * 100)}%`;
      return h("li", {},
        h("button.facet-value", {
          type: "button", title: `Filter ${field}: ${label} (Alt-click to exclude)`,
          onclick: (e) => onPick(field, g.missing ? null : g.value, e.altKey),
        }, h("span.facet-label", {}, label), h("span.facet-count", {}, g.count.toLocaleString("en")), meter),
        h("button.exclude", {
          type: "button", "aria-label": `Exclude ${field}: ${label}`, title: "Exclude",
          onclick: () => onPick(field, g.missing ? null : g.value, true),
        }, "−"));
    })));
  }));
}
