// The results table: newest first, paged with "Load more" through next_cursor, with
// a column chooser remembered for the tab. Every cell is text (dom.js).

import { getJson } from "./api.js";
import { h, fill, formatTime } from "./dom.js";

const PAGE = 50;
const CHOSEN = "glasslog.columns";

export const COLUMNS = {
  time: { label: "Time", value: (e) => formatTime(e.time) },
  service: { label: "Service", value: (e) => e.service },
  action: { label: "Action", value: (e) => e.action },
  actor: { label: "Actor", value: (e) => e.actor?.id },
  outcome: { label: "Outcome", value: (e) => e.outcome },
  target: { label: "Target", value: (e) => e.target?.id ?? e.target?.name ?? e.target?.type },
  request: { label: "Request", value: (e) => e.context?.request_id },
  environment: { label: "Environment", value: (e) => e.environment },
  trace: { label: "Trace", value: (e) => e.context?.trace_id },
  seq: { label: "Seq", value: (e) => e.seq },
};
const DEFAULT = ["time", "service", "action", "actor", "outcome", "target", "request"];

function chosenColumns() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(CHOSEN) || "null");
    if (Array.isArray(saved)) return saved.filter((c) => c in COLUMNS);
  } catch { /* a damaged entry: the defaults */ }
  return DEFAULT;
}

/** Metadata key paths (two levels) seen in results, for the query box's suggestions. */
export const seenMetadata = new Set();
function collectMetadata(event) {
  for (const [key, value] of Object.entries(event.metadata || {})) {
    seenMetadata.add(`metadata.${key}`);
    if (value && typeof value === "object" && !Array.isArray(value) && !("$commit" in value)) {
      for (const inner of Object.keys(value)) seenMetadata.add(`metadata.${key}.${inner}`);
    }
  }
}

/** A search's results in `root`; `onOpen(event, row)` opens the drawer. */
export class Results {
  constructor(root, onOpen) {
    this.root = root;
    this.onOpen = onOpen;
    this.columns = chosenColumns();
    this.events = [];
  }

  /** Run `query` from its first page; throws the ApiError of a bad query. */
  async run(query) {
    this.query = query;
    this.events = [];
    this.cursor = null;
    const token = (this.token = {});
    fill(this.root, h("p.muted", { text: "Searching…" }));
    const page = await getJson("/v1/events", { q: query, limit: PAGE });
    if (token !== this.token) return;
    this.render();
    this.add(page);
  }

  async more() {
    const token = this.token;
    this.moreButton.disabled = true;
    const page = await getJson("/v1/events", { q: this.query, limit: PAGE, cursor: this.cursor });
    if (token !== this.token) return;
    this.add(page);
    const rows = this.tbody.rows;
    rows[rows.length - page.events.length]?.focus();
  }

  render() {
    this.status = h("p.status", { "aria-live": "polite" });
    this.tbody = h("tbody");
    this.moreButton = h("button", { type: "button", onclick: () => this.more() }, "Load more");
    fill(this.root,
      h("div.results-head", {}, this.status, this.chooser()),
      h("div.table-wrap", {}, h("table.events", {},
        h("thead", {}, h("tr", {}, this.columns.map((c) => h("th", { scope: "col" }, COLUMNS[c].label)))),
        this.tbody)),
      this.moreButton);
  }

  add(page) {
    if (page.events.length) {
      const rows = page.events.map((event) => this.row(event));
      this.tbody.append(...rows);
    }
    page.events.forEach(collectMetadata);
    this.events.push(...page.events);
    this.cursor = page.next_cursor;
    this.moreButton.hidden = !this.cursor;
    this.moreButton.disabled = false;
    const shown = this.events.length;
    let text = shown ? `${shown} event${shown === 1 ? "" : "s"} shown${this.cursor ? ", more available" : ""}` : "No events match.";
    if (page.tampered?.length) text += ` ${page.tampered.length} event(s) failed the recheck against their signed bodies and are not shown; run glasslog verify.`;
    this.status.textContent = text;
  }

  row(event) {
    const open = () => this.onOpen(event, tr);
    const tr = h("tr", {
      tabindex: "0", class: `outcome-${event.outcome || "none"}`, "data-seq": event.seq,
      onclick: open,
      onkeydown: (e) => {
        if (e.key === "Enter") { e.preventDefault(); open(); }
        else if (e.key === "ArrowDown") tr.nextElementSibling?.focus();
        else if (e.key === "ArrowUp") tr.previousElementSibling?.focus();
      },
    }, this.columns.map((c) => h("td", { "data-col": c }, COLUMNS[c].value(event) ?? "")));
    return tr;
  }

  chooser() {
    const boxes = Object.entries(COLUMNS).map(([key, column]) =>
      h("label", {}, h("input", {
        type: "checkbox", value: key, checked: this.columns.includes(key),
        onchange: (e) => {
          const picked = new Set(this.columns);
          if (e.target.checked) picked.add(key); else picked.delete(key);
          this.columns = Object.keys(COLUMNS).filter((c) => picked.has(c));
          sessionStorage.setItem(CHOSEN, JSON.stringify(this.columns));
          this.rerender();
        },
      }), ` ${column.label}`));
    return h("details.columns", {}, h("summary", {}, "Columns"), h("div.column-list", {}, boxes));
  }

  rerender() {
    const { events, cursor } = this;
    const open = this.root.querySelector("details.columns")?.open;
    this.events = [];
    this.render();
    this.root.querySelector("details.columns").open = open;
    this.add({ events, next_cursor: cursor });
  }
}
