// Building query text (docs/query.md): quoting values, and the time range as
// after:/before: terms ANDed onto what the user typed.

export const FIELDS = [
  "service", "environment", "env", "action", "category", "outcome", "id", "seq", "time", "received",
  "reason", "actor.id", "user", "actor.type", "actor.name", "actor.email", "email", "actor.session_id",
  "source.ip", "ip", "source.user_agent", "source.host", "target.type", "target.id", "target.name",
  "context.request_id", "request", "context.trace_id", "trace", "context.span_id", "context.function",
  "function", "context.module", "context.version", "version", "context.commit", "context.host",
  "after", "before", "has",
];

export const PRESETS = { "15m": "15 min", "1h": "1 h", "24h": "24 h", "7d": "7 d", "30d": "30 d" };

/** A value as the language reads it literally: bare when safe, else quoted and escaped. */
export function quote(value) {
  const text = String(value);
  if (/^[A-Za-z0-9_.@/+]+$/.test(text)) return text;
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** `field:value`, or `-field:value` when excluding; a missing value is `has:`. */
export function term(field, value, exclude) {
  if (value === null || value === undefined) return `${exclude ? "" : "-"}has:${field}`;
  return `${exclude ? "-" : ""}${field}:${quote(value)}`;
}

/** Add a term to a query, keeping OR inside the user's query from swallowing it. */
export function addTerm(query, extra) {
  const q = query.trim();
  if (!q) return extra;
  return /(^|\s)OR(\s|$)/.test(q) ? `(${q}) ${extra}` : `${q} ${extra}`;
}

/** The range's terms: a preset is relative (`after:-1h`), from/to are absolute UTC. */
export function rangeTerms(state) {
  if (state.range && PRESETS[state.range]) return `after:-${state.range}`;
  const terms = [];
  if (state.from) terms.push(`after:${toUtc(state.from)}`);
  if (state.to) terms.push(`before:${toUtc(state.to)}`);
  return terms.join(" ");
}

const toUtc = (iso) => new Date(iso).toISOString().replace(".000Z", "Z");

/** What is sent to the server: the user's query ANDed with the range. */
export function fullQuery(state) {
  const range = rangeTerms(state);
  if (!range) return state.q.trim();
  return state.q.trim() ? addTerm(state.q, range) : range;
}
