// The event drawer: the whole event as a tree, masked fields named as such, links to
// the same request, trace and actor, and Verify, which checks the event's evidence in
// the browser (verify.js) against the log's public key.

import { getJson, getText } from "./api.js";
import { h, fill, isMasked } from "./dom.js";

const drawer = () => document.getElementById("drawer");
let opener = null;

/**
 * Open the drawer on `event`. `links` has sameRequest(id), sameTrace(id) and
 * sameActor(event); `roles` names the reader's roles for the masked reason.
 */
export function openDrawer(event, { roles, links, returnFocus }) {
  opener = returnFocus || document.activeElement;
  const root = drawer();
  const result = h("p.verify-result", { role: "status", "aria-live": "polite" });
  const verifyButton = h("button", { type: "button", onclick: () => verify(event, result, verifyButton) }, "Verify");
  const request = event.context?.request_id;
  const trace = event.context?.trace_id;
  const actions = h("div.drawer-actions", {},
    request && h("button", { type: "button", onclick: () => { closeDrawer(); links.sameTrace(request); } }, "Same request"),
    trace && h("button", { type: "button", onclick: () => { closeDrawer(); links.sameTrace(trace); } }, "Same trace"),
    event.actor?.id && event.time && h("button", { type: "button", onclick: () => { closeDrawer(); links.sameActor(event); } }, "Same actor ±1 h"),
    verifyButton);
  const reason = `masked for role ${roles.join(", ") || "(none)"}`;
  fill(root,
    h("div.drawer-head", {},
      h("h2", { id: "drawer-title" }, `Event ${event.seq ?? ""}`, h("span.muted", {}, ` ${event.action ?? ""}`)),
      h("button.close", { type: "button", "aria-label": "Close the event", onclick: closeDrawer }, "✕")),
    actions, result,
    h("div.tree", {}, tree(event, reason)));
  root.hidden = false;
  root.querySelector("button.close").focus();
}

export function closeDrawer() {
  const root = drawer();
  if (root.hidden) return;
  root.hidden = true;
  fill(root);
  if (opener?.isConnected) opener.focus();
  opener = null;
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") closeDrawer();
});

/** A nested <dl> of the event, values as text; `{"$commit"}` values say they are masked. */
function tree(value, reason) {
  return h("dl", {}, Object.entries(value).map(([key, inner]) => {
    let shown;
    if (isMasked(inner)) {
      shown = h("span.masked", { title: `commitment ${inner.$commit}` }, h("span.badge", {}, "masked"), ` ${reason}`);
    } else if (inner !== null && typeof inner === "object") {
      const flat = Array.isArray(inner) ? inner.every((v) => v === null || typeof v !== "object") : !Object.keys(inner).length;
      shown = flat
        ? h("code", {}, JSON.stringify(inner))
        : tree(inner, reason);
    } else {
      shown = h("code", { class: `json-${inner === null ? "null" : typeof inner}` }, typeof inner === "string" ? inner : JSON.stringify(inner));
    }
    return [h("dt", {}, key), h("dd", {}, shown)];
  }));
}

async function verify(event, result, button) {
  button.disabled = true;
  result.className = "verify-result";
  result.textContent = "Verifying…";
  try {
    const [evidence, vkey, history, verifier] = await Promise.all([
      getJson(`/v1/events/${encodeURIComponent(event.seq)}`, { proof: "true" }),
      getText("/v1/vkey"),
      getJson("/v1/vkeys"), // the key history: checkpoints signed before a key rotation
      import("/ui/verify.js"),
    ]);
    const outcome = await verifier.verifyEvidence(evidence, vkey, history);
    if (outcome.ok) {
      result.classList.add("ok");
      result.textContent = `✓ ${outcome.summary}`;
    } else {
      result.classList.add("failed");
      result.textContent = `✗ Verification failed: ${outcome.reason}`;
    }
  } catch (error) {
    result.classList.add("failed");
    result.textContent = `✗ Verification failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}
