// Checks an event's evidence in the browser, trusting nothing the server says but the
// log's public key: the same checks, in the same order and with the same strictness, as
// glasslog.access.evidence.verify_evidence (docs/ledger.md, docs/access.md "Evidence").
//
// 1. Rebuild the Merkle leaf: each salted field becomes {"$commit": b64(SHA-256(salt ||
//    JCS(value)))}, each hidden field is put back as its commitment, and the leaf is the
//    RFC 8785 (JCS) encoding of the result. Masked fields already are commitments, and
//    so are erased ones (docs/erasure.md): the optional "erased" map only says which,
//    and since when; each of its pointers must name a commitment of the event.
// 2. Open the checkpoint (a C2SP signed note) with the log's vkey: Ed25519 through
//    WebCrypto, or the vendored noble-ed25519 where the browser lacks it. Given the
//    log's key history (GET /v1/vkeys, docs/ledger.md "Key rotation"), its rotation
//    statements (signed by both keys) and revocations are checked first, the log's
//    vkey must be one of its keys, and the checkpoint must be signed by the key whose
//    era covers its tree size: an old key signing past its handover, or a revoked one
//    past its revocation, is refused.
// 3. Walk the RFC 9162 inclusion proof from the leaf hash to the checkpoint's root.

const COMMIT_KEY = "$commit";
const SALT_BYTES = 16;
const MAX_SIGNATURES = 100;
const MAX_TREE_SIZE = (1n << 63n) - 1n; // int64, as Go's tlog and the Python side
const SIG_PREFIX = "\u2014 "; // em dash, space
const ROTATION = "glasslog key rotation v1";
const REVOCATION = "glasslog key revocation v1";
const KEYS = ["checkpoint", "event", "hidden", "proof", "salts", "seq"];
const ERASED = "erased";
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const utf8 = new TextEncoder();

class Failure extends Error {}

const fail = (reason) => {
  throw new Failure(reason);
};

/**
 * Verify `evidence` (the decoded JSON of GET /v1/events/{seq}?proof=true) against the
 * log's key (`vkeyText`, the body of GET /v1/vkey) and, when given, the log's key
 * history (`history`, the decoded JSON of GET /v1/vkeys), which must hold that key.
 * Resolves to {ok: true, seq, treeSize, origin, summary} or {ok: false, reason}; never
 * rejects, so a caller cannot mistake an exception for success.
 */
export async function verifyEvidence(evidence, vkeyText, history = null) {
  try {
    const { seq, treeSize, origin } = await check(evidence, vkeyText, history);
    const summary =
      `Included at seq ${seq} in the log of size ${treeSize.toLocaleString("en-US")}; ` +
      `checkpoint signed by ${origin}`;
    return { ok: true, seq, treeSize, origin, summary };
  } catch (error) {
    const reason = error instanceof Failure ? error.message : `unexpected error: ${error}`;
    return { ok: false, reason };
  }
}

async function check(evidence, vkeyText, history) {
  if (
    !isObject(evidence) ||
    Object.keys(evidence)
      .filter((k) => k !== ERASED)
      .sort()
      .join() !== KEYS.join()
  ) {
    fail(`evidence is an object with exactly the keys ${KEYS.join(", ")}, and erased when a field was erased`);
  }
  const { seq, event, proof, salts, hidden } = evidence;
  if (!Number.isSafeInteger(seq) || seq < 0) fail("seq must be a non-negative integer");
  if (!isObject(event)) fail("event must be an object");
  if (!isObject(proof) || Object.keys(proof).sort().join() !== "hashes,tree_size") {
    fail('proof is {"tree_size", "hashes"}');
  }
  if (!isObject(salts) || !isObject(hidden)) {
    fail("salts and hidden are objects keyed by JSON Pointer");
  }
  const leaf = { ...event };
  for (const [pointer, saltText] of Object.entries(salts)) {
    const path = parsePointer(pointer, "salts");
    const salt = decode(saltText, `the salt of ${pointer}`);
    const [parent, key] = place(leaf, path, "salted field");
    if (!Object.hasOwn(parent, key)) fail(`the event has no ${pointer}, which has a salt`);
    if (salt.length !== SALT_BYTES) {
      fail(`the salt of ${pointer}: salt must be ${SALT_BYTES} bytes, got ${salt.length}`);
    }
    const value = jcsOr(parent[key], `the value of ${pointer}`);
    parent[key] = { [COMMIT_KEY]: b64(await sha256(concat(salt, value))) };
  }
  for (const [pointer, sealed] of Object.entries(hidden)) {
    const path = parsePointer(pointer, "hidden");
    decode(sealed, `the commitment of ${pointer}`);
    const [parent, key] = place(leaf, path, "hidden field");
    if (Object.hasOwn(parent, key)) fail(`${pointer} is hidden, yet the event has it`);
    parent[key] = { [COMMIT_KEY]: sealed };
  }
  checkErased(Object.hasOwn(evidence, ERASED) ? evidence[ERASED] : {}, event, salts);
  const leafHash = await sha256(concat([0], jcsOr(leaf, "the event")));
  const treeSize = proof.tree_size;
  if (!Number.isSafeInteger(treeSize) || !Array.isArray(proof.hashes)) {
    fail("proof.tree_size is an integer and proof.hashes a list");
  }
  const hashes = proof.hashes.map((h) => decode(h, "a proof hash"));
  if (typeof evidence.checkpoint !== "string") {
    fail("checkpoint must be the signed note, as text");
  }
  const checkpoint = await openCheckpoint(evidence.checkpoint, await keyEras(vkeyText, history));
  if (checkpoint.size !== BigInt(treeSize)) {
    fail(
      `the proof is for a tree of ${fmt(treeSize)}, the checkpoint for ${fmt(checkpoint.size)}`,
    );
  }
  const root = await inclusionRoot(seq, treeSize, leafHash, hashes);
  if (!equal(root, checkpoint.root)) {
    fail(
      `the leaf does not match the inclusion proof: the event, rebuilt as a leaf, is not ` +
        `included at seq ${seq} under the checkpoint's root (the event or its evidence was changed)`,
    );
  }
  return { seq, treeSize, origin: checkpoint.origin };
}

// -- RFC 8785 (JCS) ----------------------------------------------------------------------
// ECMAScript's JSON.stringify already writes numbers and strings exactly as JCS asks
// (JCS is defined by it); what remains is sorting object keys by UTF-16 code units, which
// is what Array.prototype.sort does without a comparator.

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function canonical(value) {
  return utf8.encode(jcs(value));
}

function jcs(value) {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("NaN and infinities have no JSON form");
    return JSON.stringify(value);
  }
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) throw new TypeError("a string has a lone surrogate");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  if (isObject(value)) {
    const members = Object.keys(value)
      .sort()
      .map((key) => `${jcs(key)}:${jcs(value[key])}`);
    return `{${members.join(",")}}`;
  }
  throw new TypeError(`${typeof value} has no JSON form`);
}

function jcsOr(value, what) {
  try {
    return canonical(value);
  } catch (error) {
    return fail(`${what} cannot be canonicalised (${error.message})`);
  }
}

// -- C2SP signed notes and checkpoints (glasslog.ledger.note) ----------------------------

async function parseVkey(text) {
  // Accept the body of /v1/vkey as it is served, with its trailing newline.
  const vkey = String(text).trim();
  const first = vkey.indexOf("+");
  const second = vkey.indexOf("+", first + 1);
  if (first < 0 || second < 0) {
    fail("the log's key is malformed: expected <name>+<hex key id>+<base64 key>");
  }
  const name = vkey.slice(0, first);
  const keyIdHex = vkey.slice(first + 1, second);
  if (nameProblem(name)) fail(`the log's key name ${JSON.stringify(name)} ${nameProblem(name)}`);
  if (!/^[0-9a-f]{8}$/.test(keyIdHex)) {
    fail("the log's key has a key id that is not 8 lowercase hex digits");
  }
  const raw = decode(vkey.slice(second + 1), "the log's key material");
  if (raw.length !== 33 || raw[0] !== 1) {
    fail("the log's key is not an Ed25519 key: expected 33 bytes starting with 0x01");
  }
  const keyId = await noteKeyId(name, raw);
  if (hex(keyId) !== keyIdHex) {
    fail(`the log's key has key id ${keyIdHex}, but its name and public key give ${hex(keyId)}`);
  }
  return { name, keyId, publicKey: raw.slice(1) };
}

// SHA-256(name || "\n" || 0x01 || public key)[:4], the signed-note key ID.
async function noteKeyId(name, algAndKey) {
  return (await sha256(concat(utf8.encode(name), [0x0a], algAndKey))).slice(0, 4);
}

function nameProblem(name) {
  if (!name) return "is empty";
  if (name.includes("+")) return "contains '+'";
  if (/\s/u.test(name)) return "contains whitespace";
  if (/[\x00-\x1f]/.test(name) || LONE_SURROGATE.test(name)) return "contains control characters";
  return null;
}

// The lines of a signed note: its text, and [name, key id, signature] per signature.
function splitNote(note, what) {
  if (/[\x00-\x09\x0b-\x1f]/.test(note) || LONE_SURROGATE.test(note)) {
    fail(`${what} contains control characters other than newlines`);
  }
  const split = note.lastIndexOf("\n\n");
  if (split < 0) fail(`${what} has no blank line between its text and its signatures`);
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) fail(`${what}'s signature block must end with a newline`);
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) fail(`${what} has over ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line, index) => {
    if (!line.startsWith(SIG_PREFIX)) {
      fail(`${what}'s signature line ${index + 1} does not start with an em dash`);
    }
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    if (nameProblem(name)) fail(`${what}'s signature line ${index + 1}: key name ${nameProblem(name)}`);
    const raw = decode(space < 0 ? "" : rest.slice(space + 1), `signature line ${index + 1}`);
    if (raw.length <= 4) fail(`${what}'s signature line ${index + 1} is too short`);
    return { name, keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { text, signatures };
}

// Whether `key` signed the note: true, false when no line is by it; a line by it that
// does not verify fails, since it was altered.
async function signedBy(note, key, what) {
  const message = utf8.encode(note.text);
  let verified = false;
  for (const line of note.signatures) {
    if (line.name !== key.name || !equal(line.keyId, key.keyId)) continue; // another key
    if (!(await ed25519Verify(key.publicKey, line.signature, message))) {
      fail(
        `${what}'s signature does not verify with the log's key: the checkpoint or ` +
          "its signature was altered, or it was signed by a different key",
      );
    }
    verified = true;
  }
  return verified;
}

async function openCheckpoint(noteText, eras) {
  const note = splitNote(noteText, "the checkpoint");
  const refused = [];
  for (const era of [...eras].reverse()) {
    if (!(await signedBy(note, era.key, "the checkpoint"))) continue;
    const body = parseCheckpoint(note.text);
    if (body.origin !== era.key.name) {
      fail(`the checkpoint's origin ${body.origin} is not the log's key name ${era.key.name}`);
    }
    const problem = outOfEra(era, body.size);
    if (problem === null) return body;
    refused.push(problem);
  }
  if (refused.length) fail(refused.join("; "));
  const found = note.signatures.map((line) => `${line.name}+${hex(line.keyId)}`);
  const keys = eras.map((era) => `${era.key.name}+${hex(era.key.keyId)}`).join(", ");
  fail(
    `the checkpoint is not signed by the log's key ${keys} ` +
      `(it carries signatures by ${found.join(", ") || "nobody"})`,
  );
}

function outOfEra(era, size) {
  if (era.revokedAfter !== null && size > era.revokedAfter) {
    return (
      `the checkpoint of tree size ${size} is signed by ${era.vkey}, which was revoked after ` +
      `tree size ${era.revokedAfter} (at ${era.revokedAt}): refusing it`
    );
  }
  if (size < era.from || (era.until !== null && size > era.until)) {
    const until = era.until === null ? "now" : String(era.until);
    return (
      `the checkpoint of tree size ${size} is signed by ${era.vkey}, which signs only sizes ` +
      `${era.from} to ${until}: refusing it`
    );
  }
  return null;
}

// The eras of the log's keys (glasslog.ledger.vkeys): the trusted key alone without a
// history; with one, every rotation statement and revocation is checked, and the
// trusted key must be in it.
async function keyEras(vkeyText, history) {
  const trusted = String(vkeyText).trim();
  if (history === null || history === undefined) {
    return [{ vkey: trusted, key: await parseVkey(trusted), from: 0n, until: null, revokedAfter: null }];
  }
  if (!isObject(history) || !Array.isArray(history.keys) || history.keys.length === 0) {
    fail('the key history is an object with a non-empty "keys" list');
  }
  const eras = [];
  for (const [index, item] of history.keys.entries()) {
    const what = `the key history's key ${index + 1}`;
    if (!isObject(item) || typeof item.vkey !== "string") fail(`${what} has no vkey`);
    const key = await parseVkey(item.vkey);
    const last = index === history.keys.length - 1;
    const era = {
      vkey: item.vkey,
      key,
      from: treeSize(item.from_size, `${what}'s from_size`),
      until: item.until_size === null ? null : treeSize(item.until_size, `${what}'s until_size`),
      revokedAfter: item.revoked_after == null ? null : treeSize(item.revoked_after, `${what}'s revoked_after`),
      revokedAt: item.revoked_at,
      revocation: item.revocation,
    };
    if (last !== (era.until === null)) fail(`${what}: only the newest key may be open-ended`);
    if (eras.length && key.name !== eras[0].key.name) fail(`${what} is not a key of ${eras[0].key.name}`);
    if (index === 0) {
      if (era.from !== 0n || item.statement != null) fail(`${what} must sign from tree size 0, unintroduced`);
    } else {
      const previous = eras[index - 1];
      if (previous.until !== era.from) fail(`${what} does not start where the key before it ends`);
      if (typeof item.statement !== "string") fail(`${what} has no rotation statement`);
      const text = `${ROTATION}\n${key.name}\n${era.from}\n${previous.vkey}\n${era.vkey}\n`;
      const statement = splitNote(item.statement, `the rotation to ${era.vkey}`);
      if (statement.text !== text) fail(`the rotation to ${era.vkey} does not say what the history says`);
      for (const signer of [previous.key, key]) {
        if (!(await signedBy(statement, signer, `the rotation to ${era.vkey}`))) {
          fail(`the rotation to ${era.vkey} is not signed by both keys`);
        }
      }
    }
    eras.push(era);
  }
  for (const [index, era] of eras.entries()) {
    if (era.revokedAfter === null) continue;
    const text = `${REVOCATION}\n${era.key.name}\n${era.vkey}\n${era.revokedAfter}\n${era.revokedAt}\n`;
    const revocation = typeof era.revocation === "string" ? splitNote(era.revocation, "a revocation") : null;
    let signed = false;
    for (const later of eras.slice(index + 1)) {
      if (revocation !== null && revocation.text === text && (await signedBy(revocation, later.key, "a revocation"))) {
        signed = true;
      }
    }
    if (!signed) fail(`the revocation of ${era.vkey} is not signed by a later key`);
  }
  if (!eras.some((era) => era.vkey === trusted)) {
    fail(`the log's key ${trusted} is not in its key history`);
  }
  return eras;
}

function treeSize(value, what) {
  if (!Number.isSafeInteger(value) || value < 0) fail(`${what} must be a tree size`);
  return BigInt(value);
}

function parseCheckpoint(text) {
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) fail("the checkpoint needs 3 lines: origin, tree size, root hash");
  const [origin, sizeLine, rootLine] = lines;
  if (!origin) fail("the checkpoint's origin (line 1) is empty");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) {
    fail("the checkpoint's tree size (line 2) is not a decimal number without leading zeros");
  }
  const size = BigInt(sizeLine);
  if (size > MAX_TREE_SIZE) fail("the checkpoint's tree size (line 2) is too large");
  const root = decode(rootLine, "the checkpoint's root hash (line 3)");
  if (root.length !== 32) fail("the checkpoint's root hash (line 3) is not 32 bytes");
  return { origin, size, root };
}

let fallback = null; // the vendored library's verify, imported on first need

async function ed25519Verify(publicKey, signature, message) {
  if (signature.length !== 64) return false;
  let key = null;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    // NotSupportedError: this browser's WebCrypto has no Ed25519. A key WebCrypto
    // rejects as invalid is treated the same way, so both paths decide alike.
  }
  if (key !== null) return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  fallback ??= (await import("./vendor/noble-ed25519.js")).verifyAsync;
  // zip215: false is RFC 8032's strict verification, as WebCrypto and Python do.
  return fallback(signature, message, publicKey, { zip215: false }).catch(() => false);
}

// -- RFC 9162 inclusion (glasslog.ledger.merkle.verify_inclusion) ------------------------
// BigInt: tree sizes pass 2^31, where JavaScript's bitwise operators stop.

/**
 * Check one RFC 9162 inclusion proof, all hashes in base64: resolves to {ok: true} or
 * {ok: false, reason}. Exported for the interoperability test vectors.
 */
export async function verifyInclusion(index, treeSize, leafHash, proof, root) {
  try {
    const hashes = (proof ?? []).map((h) => decode(h, "a proof hash"));
    const computed = await inclusionRoot(index, treeSize, decode(leafHash, "the leaf hash"), hashes);
    if (!equal(computed, decode(root, "the root"))) fail("the calculated root does not match");
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: error instanceof Failure ? error.message : String(error) };
  }
}

async function inclusionRoot(seq, treeSize, leafHash, proof) {
  if (leafHash.length !== 32) fail("the leaf hash is not 32 bytes");
  if (!Number.isSafeInteger(seq) || seq < 0) fail(`the leaf index ${seq} is not an index`);
  if (seq >= treeSize) {
    fail(`the leaf does not match the inclusion proof: seq ${seq} is outside a tree of ${fmt(treeSize)}`);
  }
  let fn = BigInt(seq);
  let sn = BigInt(treeSize) - 1n;
  let r = leafHash;
  for (const p of proof) {
    if (p.length !== 32) fail("the leaf does not match the inclusion proof: a hash is not 32 bytes");
    if (sn === 0n) fail("the leaf does not match the inclusion proof: the proof is too long");
    if (fn & 1n || fn === sn) {
      r = await sha256(concat([1], p, r));
      if (!(fn & 1n)) {
        while (!(fn & 1n) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await sha256(concat([1], r, p));
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("the leaf does not match the inclusion proof: the proof is too short");
  return r;
}

// -- bytes ------------------------------------------------------------------------------

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function b64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

// Canonical standard base64 only: one spelling per value, so no byte of the evidence
// can change unnoticed (atob alone accepts missing padding and stray bits).
function decode(text, what) {
  if (typeof text !== "string") fail(`${what} must be a base64 string`);
  let bytes;
  try {
    bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return fail(`${what} is not valid base64`);
  }
  if (b64(bytes) !== text) fail(`${what} is not canonical base64`);
  return bytes;
}

function equal(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fmt(n) {
  return n.toLocaleString("en-US");
}

// Each pointer of the "erased" map names a commitment in the event, with a time.
function checkErased(erased, event, salts) {
  if (!isObject(erased)) fail("erased is an object keyed by JSON Pointer");
  for (const [pointer, when] of Object.entries(erased)) {
    const path = parsePointer(pointer, "erased");
    if (typeof when !== "string" || !RFC3339.test(when)) {
      fail(`erased: the time of ${pointer} is not an RFC 3339 UTC time`);
    }
    if (Object.hasOwn(salts, pointer)) fail(`${pointer} is erased, yet it has a salt`);
    let value = event;
    for (const key of path) value = isObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
    const sealed = isObject(value) && Object.keys(value).length === 1 && typeof value[COMMIT_KEY] === "string";
    if (!sealed) fail(`${pointer} is erased, so the event holds its commitment there`);
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// -- JSON Pointers (RFC 6901), as glasslog.ledger.commit.parse_pointer -------------------

function parsePointer(text, where) {
  if (!text.startsWith("/")) fail(`${where}: ${JSON.stringify(text)} is not a JSON Pointer`);
  const tokens = text.slice(1).split("/");
  for (const token of tokens) {
    if (token === "") fail(`${where}: ${JSON.stringify(text)} has an empty reference token`);
    if (/~(?![01])/.test(token)) fail(`${where}: ${JSON.stringify(text)} has a bad '~' escape`);
  }
  return tokens.map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
}

// The object holding the path's last key, copied on the way so the evidence is untouched.
function place(leaf, path, what) {
  let parent = leaf;
  for (const key of path.slice(0, -1)) {
    const inner = parent[key];
    if (!isObject(inner) || !Object.hasOwn(parent, key)) {
      fail(`${what} /${path.join("/")} is not inside an object of the event`);
    }
    parent[key] = { ...inner };
    parent = parent[key];
  }
  return [parent, path[path.length - 1]];
}
