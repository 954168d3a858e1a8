// The live tail (GET /v1/tail, Server-Sent Events). EventSource cannot send an
// Authorization header, so the stream is read with fetch() and parsed here (the SSE
// format of the HTML standard: id:, event:, data:, comments).
//
// Reconnects: after a network drop, `event: dropped` or `event: shutdown`, with
// backoff, sending Last-Event-ID so that the server resumes right after the last seq
// seen: no gap, no repeat.
//
// Pause stops the stream and Resume reconnects from the last seq seen, so nothing is
// lost while paused and nothing is held in memory: the store is the buffer.
//
// Rendering: arrivals go to a queue that one animation frame drains at a time, at
// most BATCH rows per frame, and the table keeps the newest ROWS rows. So 1,000
// events a second cost a few small DOM updates per frame, never a long task.

import { url, authHeaders } from "./api.js";
import { h, fill } from "./dom.js";

const ROWS = 500;
const BATCH = 250;

/** Parse SSE text incrementally: feed() chunks, get {id, event, data} messages. */
export class SseParser {
  constructor(onMessage, onId) {
    this.buffer = "";
    this.onMessage = onMessage;
    this.onId = onId;
    this.reset();
  }

  reset() {
    this.data = [];
    this.event = "";
    this.id = null;
  }

  feed(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.id !== null) this.onId(this.id);
      if (this.data.length) this.onMessage({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

export class LiveTail {
  /** `onError(error)` reports a refusal (a bad query: 400); `onOpen(event)` opens a row. */
  constructor(root, { onOpen, onError }) {
    this.root = root;
    this.onOpen = onOpen;
    this.onError = onError;
    this.queue = [];
    this.arrivals = [];
    this.total = 0;
  }

  start(query) {
    this.stop();
    this.query = query;
    this.lastId = null;
    this.total = 0;
    this.queue = [];
    this.paused = false;
    this.running = true;
    this.delay = 500;
    this.state = h("span.live-state", { role: "status" }, "connecting…");
    this.rate = h("span.rate", { "aria-live": "off" }, "0 events/s");
    this.count = h("span.count", {}, "0 received");
    this.pauseButton = h("button", { type: "button", "aria-pressed": "false", onclick: () => this.togglePause() }, "Pause");
    this.tbody = h("tbody");
    fill(this.root,
      h("div.live-head", {}, this.pauseButton, this.state, this.rate, this.count),
      h("div.table-wrap", {}, h("table.events.live-table", {},
        h("thead", {}, h("tr", {}, ["Time", "Seq", "Service", "Action", "Actor", "Outcome", "Target"].map((c) => h("th", { scope: "col" }, c)))),
        this.tbody)));
    this.ticker = setInterval(() => this.tick(), 500);
    this.connect();
  }

  stop() {
    this.running = false;
    this.controller?.abort();
    clearInterval(this.ticker);
    clearTimeout(this.retry);
  }

  togglePause() {
    this.paused = !this.paused;
    this.pauseButton.textContent = this.paused ? "Resume" : "Pause";
    this.pauseButton.setAttribute("aria-pressed", String(this.paused));
    if (this.paused) {
      this.controller?.abort();
      clearTimeout(this.retry);
      this.state.textContent = "paused";
    } else {
      this.connect();
    }
  }

  async connect() {
    if (!this.running || this.paused) return;
    const controller = (this.controller = new AbortController());
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    let again = true;
    try {
      const response = await fetch(url("/v1/tail", { q: this.query }), { headers, signal: controller.signal, cache: "no-store" });
      if (!response.ok) {
        let problem = null;
        try { problem = await response.json(); } catch { /* not problem+json */ }
        if (response.status < 500 && response.status !== 429) {
          again = false;
          this.state.textContent = "stopped";
          this.onError(response.status, problem);
          return;
        }
        throw new Error(`the server answered ${response.status}`);
      }
      this.state.textContent = "live";
      this.delay = 500;
      const parser = new SseParser((m) => this.message(m), (id) => { this.lastId = id; });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (this.reconnectNow) break;
      }
      this.reconnectNow = false;
      controller.abort();
    } catch (error) {
      if (controller.signal.aborted && (this.paused || !this.running)) return;
      this.state.textContent = `reconnecting (${error.message || "network error"})`;
    } finally {
      if (again && this.running && !this.paused && this.controller === controller) {
        this.retry = setTimeout(() => this.connect(), this.delay);
        this.delay = Math.min(this.delay * 2, 10000);
      }
    }
  }

  message({ event, data }) {
    if (event === "dropped" || event === "shutdown") {
      this.state.textContent = event === "dropped" ? "fell behind; resuming" : "server restarting; reconnecting";
      this.reconnectNow = true;
      return;
    }
    if (event !== "message") return;
    let parsed;
    try { parsed = JSON.parse(data); } catch { return; }
    this.total += 1;
    this.arrivals.push(performance.now());
    this.queue.push(parsed);
    if (this.queue.length > ROWS) this.queue.splice(0, this.queue.length - ROWS);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const batch = this.queue.splice(0, BATCH);
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i -= 1) fragment.append(this.row(batch[i]));
    this.tbody.prepend(fragment);
    while (this.tbody.rows.length > ROWS) this.tbody.lastElementChild.remove();
    this.count.textContent = `${this.total.toLocaleString("en")} received`;
    if (this.queue.length) this.frame = requestAnimationFrame(() => this.render());
  }

  row(event) {
    const open = () => this.onOpen(event, tr);
    const tr = h("tr", { tabindex: "0", class: `outcome-${event.outcome || "none"}`, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); open(); } } },
    [new Date(event.time).toLocaleTimeString("en-GB"), event.seq, event.service, event.action, event.actor?.id,
      event.outcome, event.target?.id ?? event.target?.name].map((v) => h("td", {}, v ?? "")));
    return tr;
  }

  tick() {
    const now = performance.now();
    while (this.arrivals.length && this.arrivals[0] < now - 2000) this.arrivals.shift();
    this.rate.textContent = `${(this.arrivals.length / 2).toFixed(1)} events/s`;
  }
}
