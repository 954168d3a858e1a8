// The page: sign-in, then the search, live and trace views under one query box.
// The URL's hash holds the view, the query and the range (#q=…&range=1h), so a link
// can be shared; it asks the receiver to sign in and runs as the receiver's role.

import { credential, getJson, ApiError } from "./api.js";
import { authConfig, startOidc, finishOidc } from "./auth.js";
import { $, h, fill } from "./dom.js";
import { FIELDS, PRESETS, fullQuery, addTerm, term } from "./query.js";
import { Results, seenMetadata } from "./search.js";
import { drawHistogram } from "./histogram.js";
import { drawFacets } from "./facets.js";
import { openDrawer, closeDrawer } from "./drawer.js";
import { drawTrace } from "./trace.js";
import { LiveTail } from "./tail.js";
import { suggest } from "./suggest.js";

let me = null;
let config = { methods: ["key"] };
const results = new Results($("#results"), (event, row) => openEvent(event, row));
const live = new LiveTail($("#live-view"), {
  onOpen: (event, row) => openEvent(event, row),
  onError: (status, problem) => showError(problem?.detail || `the live tail was refused (${status})`),
});

/** The view and its parameters, read from the hash. */
function readState() {
  const params = new URLSearchParams(location.hash.slice(1));
  return {
    view: params.get("trace") ? "trace" : params.get("view") === "live" ? "live" : "search",
    id: params.get("trace") || "",
    q: params.get("q") || "",
    range: params.get("range") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
  };
}

function writeState(state) {
  const params = new URLSearchParams();
  if (state.view === "trace") params.set("trace", state.id);
  else {
    if (state.view === "live") params.set("view", "live");
    if (state.q) params.set("q", state.q);
    if (state.range) params.set("range", state.range);
    else {
      if (state.from) params.set("from", state.from);
      if (state.to) params.set("to", state.to);
    }
  }
  const hash = `#${params.toString()}`;
  if (location.hash === hash || (hash === "#" && !location.hash)) route();
  else location.hash = hash;
}

/** The state the form shows now. */
function formState(view) {
  const current = readState();
  return { ...current, view: view ?? (current.view === "trace" ? "search" : current.view), q: $("#q").value };
}

// ---- signing in ----------------------------------------------------------------

async function boot() {
  config = await authConfig();
  try {
    await finishOidc();
  } catch (error) {
    credential.clear();
    showSignIn(error.message);
    return;
  }
  if (credential.get()) await enter("That credential is not valid (any more); sign in again.");
  else showSignIn();
}

/** Check the stored credential with GET /v1/me and open the app, or ask again. */
async function enter(invalid) {
  try {
    me = await getJson("/v1/me");
  } catch (error) {
    credential.clear();
    showSignIn(error.status === 401 ? invalid : error.message);
    return;
  }
  showApp();
}

function showSignIn(problem) {
  live.stop();
  closeDrawer();
  $("#loading").hidden = true;
  $("#app").hidden = true;
  $("#signout").hidden = true;
  fill($("#who"));
  $("#signin").hidden = false;
  $("#signin-why").textContent = location.hash.length > 1
    ? "Sign in to open the shared link; it shows what your role may see."
    : "Sign in with an API key (glasslog keys create --role ROLE).";
  $("#sso").hidden = !config.methods?.includes("oidc") || !config.oidc;
  const error = $("#signin-error");
  error.hidden = !problem;
  error.textContent = problem || "";
  $("#api-key").focus();
}

$("#key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#api-key");
  credential.set(input.value.trim());
  input.value = "";
  await enter("That API key is not valid: check it, or create one with glasslog keys create.");
});

$("#sso-button").addEventListener("click", () => startOidc(config.oidc));

$("#signout").addEventListener("click", () => {
  credential.clear();
  me = null;
  showSignIn();
});

window.addEventListener("glasslog:unauthorized", () => {
  if (!me) return;
  credential.clear();
  me = null;
  showSignIn("Your credential stopped working (expired or revoked); sign in again.");
});

function showApp() {
  $("#loading").hidden = true;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#signout").hidden = false;
  const roles = me.roles || [];
  fill($("#who"), "Signed in as ", h("strong", {}, me.name || me.id), ` (${roles.length > 1 ? "roles" : "role"} ${roles.join(", ") || "none"})`);
  route();
}

// ---- the views ------------------------------------------------------------------

function route() {
  if (!me) return;
  const state = readState();
  closeDrawer();
  $("#q").value = state.q;
  syncRange(state);
  $("#search-view").hidden = state.view !== "search";
  $("#live-view").hidden = state.view !== "live";
  $("#trace-view").hidden = state.view !== "trace";
  $("#live-button").setAttribute("aria-pressed", String(state.view === "live"));
  $("#live-button").textContent = state.view === "live" ? "Stop live" : "Live";
  clearError();
  if (state.view !== "live") live.stop();
  if (state.view === "search") search(state);
  else if (state.view === "live") live.start(state.q);
  else drawTrace($("#trace-view"), state.id, (event) => openEvent(event)).catch((error) => showError(error.message));
}

async function search(state) {
  const query = fullQuery(state);
  try {
    await results.run(query);
  } catch (error) {
    fill($("#results"));
    fill($("#histogram"));
    fill($("#facets"));
    showError(error instanceof ApiError ? error.message : `The search failed: ${error.message}`);
    return;
  }
  drawHistogram($("#histogram"), query, (from, to) => writeState({ ...formState("search"), range: "", from, to }));
  drawFacets($("#facets"), query, (field, value, exclude) =>
    writeState({ ...formState(), q: addTerm($("#q").value, term(field, value, exclude)) }));
}

function showError(text) {
  const box = $("#query-error");
  box.textContent = text;
  box.hidden = false;
}

function clearError() {
  $("#query-error").hidden = true;
  $("#query-error").textContent = "";
}

function openEvent(event, row) {
  openDrawer(event, {
    roles: me?.roles || [],
    returnFocus: row,
    links: {
      sameTrace: (id) => writeState({ view: "trace", id }),
      sameActor: (e) => {
        const t = Date.parse(e.time);
        writeState({
          view: "search", q: term("actor.id", e.actor.id), range: "",
          from: new Date(t - 3600e3).toISOString(), to: new Date(t + 3600e3).toISOString(),
        });
      },
    },
  });
}

// ---- the query form -----------------------------------------------------------

const localInput = (iso) => {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
};

function syncRange(state) {
  for (const button of document.querySelectorAll("#presets button")) {
    const pressed = button.dataset.range === state.range && (state.range || (!state.from && !state.to));
    button.setAttribute("aria-pressed", String(Boolean(pressed)));
  }
  $("#from").value = state.range ? "" : localInput(state.from);
  $("#to").value = state.range ? "" : localInput(state.to);
}

$("#query-form").addEventListener("submit", (e) => {
  e.preventDefault();
  writeState(formState());
});

$("#presets").addEventListener("click", (e) => {
  const button = e.target.closest("button");
  if (!button) return;
  const range = button.dataset.range;
  writeState({ ...formState(), range: range in PRESETS ? range : "", from: "", to: "" });
});

$("#apply-range").addEventListener("click", () => {
  const iso = (value) => (value ? new Date(value).toISOString() : "");
  writeState({ ...formState(), range: "", from: iso($("#from").value), to: iso($("#to").value) });
});

$("#live-button").addEventListener("click", () => {
  writeState(formState(readState().view === "live" ? "search" : "live"));
});

$("#help-button").addEventListener("click", () => {
  const help = $("#help");
  help.hidden = !help.hidden;
  $("#help-button").setAttribute("aria-expanded", String(!help.hidden));
});

suggest($("#q"), $("#suggest"), () => [...FIELDS, ...seenMetadata]);
window.addEventListener("hashchange", route);
boot();
