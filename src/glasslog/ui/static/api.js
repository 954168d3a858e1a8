// The HTTP API (docs/http.md) as the page sees it. The credential (an API key or an
// OIDC id_token) lives in sessionStorage only: never in a URL, a cookie or
// localStorage, so it dies with the tab and is never sent unless we attach it.

const CREDENTIAL = "glasslog.credential";

export const credential = {
  get: () => sessionStorage.getItem(CREDENTIAL),
  set: (value) => sessionStorage.setItem(CREDENTIAL, value),
  clear: () => sessionStorage.removeItem(CREDENTIAL),
};

/** An error answer: `problem` is the RFC 9457 body when the server sent one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `the server answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** The URL of an API path with its query parameters (empty ones left out). */
export function url(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

export function authHeaders(extra = {}) {
  const token = credential.get();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function request(path, params, as) {
  const response = await fetch(url(path, params), { headers: authHeaders(), cache: "no-store" });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not problem+json */ }
    const error = new ApiError(response.status, problem);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("glasslog:unauthorized"));
    throw error;
  }
  return as === "text" ? response.text() : response.json();
}

/** GET a JSON answer; throws ApiError on an error status. */
export const getJson = (path, params) => request(path, params, "json");
/** GET a text answer (the vkey, a checkpoint). */
export const getText = (path, params) => request(path, params, "text");
