// Signing in: an API key, or OIDC's authorization code flow with PKCE (RFC 7636,
// S256) as a public client, when GET /v1/auth/config offers it. state and nonce are
// checked on return; the id_token is the bearer credential from then on.

import { credential, ApiError } from "./api.js";

const PENDING = "glasslog.oidc";

/** The sign-in methods the server offers; a server without the route offers keys. */
export async function authConfig() {
  try {
    const response = await fetch("/v1/auth/config", { cache: "no-store" });
    if (!response.ok) return { methods: ["key"] };
    return await response.json();
  } catch {
    return { methods: ["key"] };
  }
}

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = () => b64url(crypto.getRandomValues(new Uint8Array(32)));

/** Leave for the identity provider; the page's hash (a shared link) is kept for the return. */
export async function startOidc(oidc) {
  const verifier = random();
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const pending = { verifier, state: random(), nonce: random(), hash: location.hash, oidc };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const target = new URL(oidc.authorization_endpoint);
  const params = {
    response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(),
    scope: oidc.scope || "openid", state: pending.state, nonce: pending.nonce,
    code_challenge: challenge, code_challenge_method: "S256",
  };
  for (const [key, value] of Object.entries(params)) target.searchParams.set(key, value);
  location.assign(target.toString());
}

const redirectUri = () => `${location.origin}/`;

function claims(jwt) {
  const part = jwt.split(".")[1] || "";
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
}

/**
 * Finish a sign-in when the page is the identity provider's redirect back: exchange
 * the code, check state and nonce, keep the id_token, and take the code out of the URL.
 * Returns false when the page is not such a return.
 */
export async function finishOidc() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", `/${pending?.hash || ""}`);
  if (params.has("error")) throw new Error(`the identity provider refused the sign-in: ${params.get("error")}`);
  if (!pending || params.get("state") !== pending.state) {
    throw new Error("the sign-in's state does not match the one this tab sent; sign in again");
  }
  const body = new URLSearchParams({
    grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
    client_id: pending.oidc.client_id, code_verifier: pending.verifier,
  });
  const response = await fetch(pending.oidc.token_endpoint, { method: "POST", body });
  if (!response.ok) throw new ApiError(response.status, null);
  const token = (await response.json()).id_token;
  if (!token || claims(token).nonce !== pending.nonce) {
    throw new Error("the identity provider's token does not carry this sign-in's nonce; sign in again");
  }
  credential.set(token);
  return true;
}
