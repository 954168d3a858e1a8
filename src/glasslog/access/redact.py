"""Secret scrubbing at ingest: credentials are replaced before an event is ever stored.

DESIGN §4, "Secrets are never stored": passwords, tokens, keys and card numbers are
replaced at ingest by ``[REDACTED:<kind>]`` or, when the server holds a fingerprint
key, by ``[REDACTED:<kind>:<16 hex>]`` where the hex is the start of
HMAC-SHA256(key, secret) (RFC 2104), so equal secrets still correlate across events
without being revealable. The key never leaves the server and never appears in a
message or ``repr``. A :class:`Scrubber` mutates the event in place and returns one
:class:`Finding` (JSON path + kind) per replacement: key-name findings first, then
pattern findings, each in walk order.

Two kinds of detector run on every event (schema: DESIGN §3).

**Sensitive key names** — anywhere inside ``metadata`` (nested objects and lists,
any depth) a value whose *key* names a credential is replaced whole, whatever its
type (string, number, object, list). The rule:

1. Split the key into lowercase ASCII words at separators (``-``, ``_``, ``.``,
   space, anything not a letter or digit) and at camelCase humps:
   ``X-Api-Key`` → ``x api key``; ``githubToken`` → ``github token``;
   ``APIKey`` → ``api key``.
2. Drop one trailing *qualifier* word if there are two or more words: a number, or
   one of ``hash``, ``value``, ``plain``, ``raw``, ``encrypted``, ``confirm``, ``new``,
   ``old`` … (see ``_QUALIFIERS``), so ``password_hash``, ``token_value`` and
   ``password2`` still count.
3. The key is sensitive when the remaining words, joined without separators, *end
   with* a stem — ``password``, ``passwd``, ``pwd``, ``passphrase``, ``secret(s)``,
   ``token``, ``apikey``, ``privatekey``, ``secretkey``, ``accesskey``,
   ``cookie(s)``, ``authorization``, ``credential(s)`` … (``_SUFFIX_STEMS``) — or
   when the last word *is* ``pass`` or ``pw``. Extra keys given to the
   :class:`Scrubber` are normalised the same way and added as stems.

So ``db_password``, ``apiKey``, ``API-KEY``, ``x-api-key``, ``githubToken``,
``client_secret``, ``set-cookie``, ``proxy-authorization`` match, while
``token_count``, ``tokens_used``, ``password_changed_at``, ``token_type``,
``secret_name`` and ``private_key_id`` do not: a credential word followed by
another (non-qualifier) word describes the credential instead of holding it.
Known false positives (over-redaction, the safe side): booleans and counters whose
key *ends* in a stem (``has_password``, ``is_secret``, ``next_page_token``,
``pwd`` meaning a working directory). Known false negatives: a bare ``key``,
``auth``, ``session_id``, ``code`` or ``pin`` (too generic; the value patterns below
still catch well-known token shapes in them), non-ASCII key names, and the keys
themselves — a secret used *as* an object key is not detected or removed.

**Value patterns** — in every string of the event except the structural
identifiers (``id``, ``time``, ``received``, ``service``, ``environment``,
``action``, ``category``, ``outcome``): metadata at any depth, ``reason`` and all of
``actor``, ``source``, ``target`` and ``context``. Only the matched secret is
replaced; the surrounding text stays. The patterns are precise shapes, never
entropy guesses: ``Bearer``/``Basic`` credentials (RFC 6750 §2.1, RFC 7617), AWS
access key ids, PEM private keys (RFC 7468; an unterminated block is cut to the
end of the string), JWTs (RFC 7519: base64url ``eyJ…`` header, at least two dots),
payment card numbers (13 to 19 digits with optional single spaces or dashes, a
first digit 2 to 6 as on Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay
62, Maestro and Mir cards, and a valid Luhn check — so Unix times in ms or ns,
snowflake ids and nine in ten other long numbers are kept; UATP cards, starting
with 1, are a known miss), GitHub, GitLab, Slack, Stripe and Google API tokens, the
password in a ``scheme://user:password@host`` URL, and ``password=…``,
``token: …``, ``"api_key": "…"``-style assignments inside text. Token shapes must
stand apart from surrounding letters and digits (``xAKIA…`` or ``cc4111…`` read as
parts of an identifier, which also keeps hex trace ids intact). Known false
positives: prose such as ``token: expired`` or a sentence starting "Bearer bonds"
(capitalised ``Bearer`` takes any token; lowercase ``bearer`` needs a token-like
word with a digit or symbol, or 20+ characters).

Speed: scrubbing runs on every event. One walk gathers the strings (and replaces
values under sensitive keys); the strings are joined and *folded* (ASCII
lowercased, digits made ``0``, spaces and ``-`` dropped) and each detector's gates
— literals or literal-prefixed regexes, which CPython finds with its fast
substring search — are tried on that one string. An event with nothing suspicious
costs that walk and about twenty C-level substring scans. Only when a gate fires
does a second walk run the detectors that fired, compiled as one alternation of
named groups, string by string.

Only ``dict`` and ``list`` (JSON object and array) are descended. Containers nested
deeper than ``_MAX_DEPTH`` (or cyclic) are replaced whole as ``too_deep``: what
cannot be scanned is not stored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256
from typing import Any

from glasslog.errors import ConfigError

__all__ = ["Finding", "Path", "Scrubber", "format_path"]

Path = tuple[str | int, ...]
"""JSON path of a value: object keys and array indexes from the event root."""

_STRUCTURAL = frozenset(
    {"id", "time", "received", "service", "environment", "action", "category", "outcome"}
)
"""Top-level fields the schema defines as identifiers; scanning them could only corrupt them."""

_MAX_DEPTH = 64
"""Far beyond the validated metadata depth; deeper (or cyclic) data is replaced, not walked."""

_KEY_CACHE_LIMIT = 4096
"""Metadata key names are client-chosen, so the memo of their classification is bounded."""

_MIN_KEY_BYTES = 16
_FINGERPRINT_HEX = 16
_TOO_DEEP = "too_deep"
_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+(?::[0-9a-f]{16})?\]")


@dataclass(frozen=True, slots=True)
class Finding:
    """One replaced secret: where it was (a JSON path) and what kind of secret it was."""

    path: Path
    kind: str


def format_path(path: Path) -> str:
    """Render ``path`` as RFC 9535 JSONPath: ``$.metadata.headers["x-api-key"]``, ``$.a[2]``.

    Identifiers use the dot shorthand, other names a double-quoted JSON string in
    brackets — the same form :mod:`glasslog.event` uses for validation problems, so
    a path reads the same in every message.
    """
    parts = ["$"]
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif (name := str(step)).isidentifier():
            parts.append(f".{name}")
        else:
            # Lone surrogates cannot be written out as UTF-8, so only they force \u escapes.
            ascii_only = not name.isascii() and _SURROGATE.search(name) is not None
            parts.append(f"[{json.dumps(name, ensure_ascii=ascii_only)}]")
    return "".join(parts)


_SURROGATE = re.compile("[\ud800-\udfff]")


# --- sensitive key names -------------------------------------------------------------

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_SUFFIX_STEMS: dict[str, str] = {
    "password": "password",
    "passwords": "password",
    "passwd": "password",
    "pwd": "password",
    "passphrase": "password",
    "secret": "secret",
    "secrets": "secret",
    "secretkey": "secret",
    "accesskey": "secret",
    "signingkey": "secret",
    "encryptionkey": "secret",
    "masterkey": "secret",
    "sessionkey": "secret",
    "token": "token",
    "authcode": "token",
    "authorizationcode": "token",
    "apikey": "api_key",
    "privatekey": "private_key",
    "cookie": "cookie",
    "cookies": "cookie",
    "authorization": "authorization",
    "credential": "credential",
    "credentials": "credential",
}
"""Joined key words ending in one of these hold a credential of the mapped kind."""

_WORD_STEMS: dict[str, str] = {"pass": "password", "pw": "password"}
"""Too short to match as a suffix (``bypass``, ``compass``): must be the whole last word."""

_QUALIFIERS = frozenset(
    {
        "hash", "hashed", "digest", "salt", "value", "val", "plain", "plaintext", "raw",
        "enc", "encrypted", "encoded", "b64", "base64", "hex", "bytes", "str", "string",
        "text", "confirm", "confirmation", "new", "old", "current", "original",
    }
)  # fmt: skip
"""A last word that only says *how* the credential is held; the key still holds it."""


def _key_words(key: str) -> list[str]:
    return [word.lower() for word in _WORDS.findall(key)]


def _classify_key(key: object, stems: dict[str, str]) -> str | None:
    """Return the credential kind a metadata key names, or None (rule in the module docstring)."""
    words = _key_words(key if isinstance(key, str) else str(key))
    if not words:
        return None
    if len(words) > 1 and (words[-1] in _QUALIFIERS or words[-1].isdigit()):
        del words[-1]
    kind = _WORD_STEMS.get(words[-1])
    if kind is not None:
        return kind
    joined = "".join(words)
    for stem, stem_kind in stems.items():
        if joined.endswith(stem):
            return stem_kind
    return None


# --- value patterns ------------------------------------------------------------------


def _luhn_valid(secret: str, _match: str) -> bool:
    """Card numbers end in a Luhn check digit (ISO/IEC 7812-1); ids and times mostly fail it."""
    total = 0
    for position, char in enumerate(reversed(secret.replace(" ", "").replace("-", ""))):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _basic_credentials(secret: str, _match: str) -> bool:
    """RFC 7617: the token is base64 of ``user-id:password``; prose like "basic plan" is not."""
    if len(secret) % 4:
        return False
    try:
        return b":" in base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return False


_TOKEN_SYMBOLS = frozenset("0123456789-._~+/=")


def _bearer_credentials(secret: str, match: str) -> bool:
    """Header-style ``Bearer``/``BEARER`` takes any token; lowercase prose needs a token-like word.

    "bearer of bad news" is not a credential, but ``bearer 9f86d0…`` (some clients
    lowercase the scheme) is: a digit, a token symbol or 20+ characters decide.
    """
    if match.startswith(("Bearer", "BEARER")):
        return True
    return len(secret) >= 20 or not _TOKEN_SYMBOLS.isdisjoint(secret)


@dataclass(frozen=True, slots=True)
class _Detector:
    """One value pattern, the cheap gates that say it might be present, and a look-alike filter.

    ``pattern`` may hold one ``(?P<secret>…)`` group: only that part is replaced
    (``Bearer `` and ``user:`` stay readable). ``gates`` are regexes over the
    *folded* text (see ``_fold``), each beginning with a literal of two or more
    characters so ``re`` finds it with its fast substring search; every match of
    ``pattern`` must fold to text that one of them matches, or the detector would
    be skipped. ``validate(secret, whole_match)`` rejects look-alikes.
    """

    kind: str
    pattern: str
    gates: tuple[str, ...]
    validate: Callable[[str, str], bool] | None = None


# Patterns must stay linear on hostile text (events carry user input): every pattern
# either starts with a literal, or with a boundary lookbehind so that a long run of
# look-alike characters is tried once, not from each of its positions.
_NOT_PLACEHOLDER = r"(?!\[REDACTED:)"
_ASSIGNED_VALUE = (
    r"""["']?[ \t]*[:=][ \t]*["']?"""
    + rf"""(?P<secret>{_NOT_PLACEHOLDER}(?:(?<=["'])[^"'\r\n\x00]+|(?<!["'])[^\s"'&,;\x00]+))"""
)
"""``= value``, ``: "quoted value"``, ``"key": "value"`` (JSON inside text), ``key='v'``."""
_ASSIGNED_GATE = r"""["']?[:=]"""

_PEM_LABEL = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"

_DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        "private_key",
        rf"-----BEGIN {_PEM_LABEL}(?s:.*?)(?:-----END {_PEM_LABEL}|\Z)",
        gates=("privatekey",),
    ),
    _Detector(
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
        r"(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?",
        gates=("eyj",),
    ),
    _Detector(
        "bearer_token",
        r"\b[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+(?P<secret>[A-Za-z0-9._~+/-]+=*)",
        gates=("bearer",),
        validate=_bearer_credentials,
    ),
    _Detector(
        "basic_auth",
        r"\b[Bb][Aa][Ss][Ii][Cc][ \t]+(?P<secret>[A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])",
        gates=("basic",),
        validate=_basic_credentials,
    ),
    _Detector(
        "aws_access_key",
        r"(?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        gates=("akia[a-z0]{16}", "asia[a-z0]{16}"),
    ),
    _Detector(
        "github_token",
        r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        gates=("gh[pousr]_", "github_pat_"),
    ),
    _Detector("gitlab_token", r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}", gates=("glpat",)),
    _Detector("slack_token", r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}", gates=("xox",)),
    _Detector(
        "stripe_key",
        r"(?<![A-Za-z0-9])[rs]k_(?:live|test)_[A-Za-z0-9]{10,}",
        gates=("k_live_", "k_test_"),
    ),
    _Detector("google_api_key", r"(?<![A-Za-z0-9])AIza[A-Za-z0-9_-]{35}", gates=("aiza",)),
    _Detector(
        "url_password",
        r"://[^\s/?#@:\x00]*:"
        rf"(?P<secret>{_NOT_PLACEHOLDER}[^\s/?#@\x00]+)@",
        gates=("://[^/?#@\x00]*@",),
    ),
    _Detector(
        "password",
        r"(?i:passw(?:or)?d|passphrase|pwd|(?<![a-z])pass)" + _ASSIGNED_VALUE,
        gates=("pass(?:w(?:or)?d|phrase)?" + _ASSIGNED_GATE, "pwd" + _ASSIGNED_GATE),
    ),
    _Detector(
        "secret",
        r"(?i:secret|token|api[_-]?key)" + _ASSIGNED_VALUE,
        gates=tuple(word + _ASSIGNED_GATE for word in ("secret", "token", "api_?key")),
    ),
    _Detector(
        "card_number",
        r"(?<![A-Za-z0-9])[2-6](?:[ -]?[0-9]){12,18}(?![A-Za-z0-9])",
        gates=("0" * 13,),
        validate=_luhn_valid,
    ),
)
"""The value detectors. Adding one: a kind, a pattern, its gates, optionally a validator."""

_FOLD = bytes(0x30 if 0x30 <= b <= 0x39 else b + 32 if 0x41 <= b <= 0x5A else b for b in range(256))
_FOLD_DELETE = b" \t-"
_SEPARATOR = "\x00"
"""Joins the gathered strings; every pattern stops at it, so no match spans two values."""

_GATES = tuple(tuple(re.compile(gate).search for gate in d.gates) for d in _DETECTORS)
# The fast path tests plain-literal gates with ``in`` (cheaper than a regex call).
_LITERAL_GATES = tuple(g for d in _DETECTORS for g in d.gates if re.escape(g) == g)
_PATTERN_GATES = tuple(
    re.compile(g).search for d in _DETECTORS for g in d.gates if re.escape(g) != g
)


def _fold(text: str) -> str:
    """The text gates look at: ASCII lowercased, every digit ``0``, spaces, tabs and ``-`` gone.

    Folding lets a literal gate stand for every spelling (``Bearer``/``BEARER``,
    ``api-key``/``API_KEY``) and every card grouping (thirteen ``0`` in a row).
    Non-ASCII text becomes Latin-1 noise that no gate matches, which is fine: every
    pattern is ASCII.
    """
    return text.encode("utf-8", "surrogatepass").translate(_FOLD, _FOLD_DELETE).decode("latin-1")


def _fired(folded: str) -> tuple[int, ...]:
    """Indexes of the detectors whose gates match the folded text."""
    return tuple(
        index
        for index, searches in enumerate(_GATES)
        if any(search(folded) is not None for search in searches)
    )


@lru_cache(maxsize=128)
def _combined(indexes: tuple[int, ...]) -> re.Pattern[str]:
    """One alternation of the chosen detectors; group ``d<i>`` is detector i, ``s<i>`` its secret.

    Existing placeholders are matched first and skipped, which makes scrubbing
    idempotent: their hex never reads as a card number, ``[REDACTED:password:…]``
    never as an assignment.
    """
    branches = [f"(?P<placeholder>{_PLACEHOLDER.pattern})"]
    for index in indexes:
        pattern = _DETECTORS[index].pattern.replace("(?P<secret>", f"(?P<s{index}>")
        branches.append(f"(?P<d{index}>{pattern})")
    return re.compile("|".join(branches))


# --- the scrubber --------------------------------------------------------------------


class Scrubber:
    """Replaces every detected secret in an event, in place, before the event is stored.

    ``fingerprint_key`` (at least 16 random bytes, kept on the server) turns each
    placeholder into ``[REDACTED:<kind>:<HMAC prefix>]`` so equal secrets correlate;
    without it every secret of a kind looks the same. ``extra_sensitive_keys`` adds
    metadata key names to the built-in list (normalised like every key, matched as a
    suffix; the kind is the normalised name, e.g. ``national-id`` → ``national_id``).
    """

    __slots__ = ("_extra", "_hmac", "_key_kinds", "_stems")

    def __init__(
        self, *, fingerprint_key: bytes | None = None, extra_sensitive_keys: Iterable[str] = ()
    ) -> None:
        self._hmac: hmac.HMAC | None = None
        if fingerprint_key is not None:
            if not isinstance(fingerprint_key, bytes | bytearray):
                raise ConfigError(
                    "fingerprint_key must be bytes, got "
                    f"{type(fingerprint_key).__name__}; pass e.g. secrets.token_bytes(32)"
                )
            if len(fingerprint_key) < _MIN_KEY_BYTES:
                raise ConfigError(
                    f"fingerprint_key must be at least {_MIN_KEY_BYTES} bytes, got "
                    f"{len(fingerprint_key)}; a short key lets anyone who guesses it confirm "
                    "guessed secrets — use secrets.token_bytes(32)"
                )
            self._hmac = hmac.new(bytes(fingerprint_key), digestmod=sha256)
        if isinstance(extra_sensitive_keys, str):
            raise ConfigError(
                f"extra_sensitive_keys must be a collection of key names, got the string "
                f"{extra_sensitive_keys!r}; pass [{extra_sensitive_keys!r}]"
            )
        stems = dict(_SUFFIX_STEMS)
        extra: list[str] = []
        for name in extra_sensitive_keys:
            if not isinstance(name, str):
                raise ConfigError(
                    f"extra_sensitive_keys must hold strings, got {type(name).__name__} {name!r}"
                )
            words = _key_words(name)
            if not words:
                raise ConfigError(
                    f"extra sensitive key {name!r} has no letters or digits; name the key, "
                    "e.g. 'ssn' or 'national-id'"
                )
            stems["".join(words)] = "_".join(words)
            extra.append(name)
        # Longest stems first: when two stems end the key, the more specific one names the kind.
        self._stems = dict(sorted(stems.items(), key=lambda item: -len(item[0])))
        self._extra = tuple(extra)
        self._key_kinds: dict[object, str | None] = {}

    def __repr__(self) -> str:
        # The key itself is never shown; only whether there is one.
        return (
            f"Scrubber(fingerprint={self._hmac is not None}, extra_sensitive_keys={self._extra!r})"
        )

    def scrub(self, event: dict[str, Any]) -> list[Finding]:
        """Replace every secret in ``event`` in place; return what was replaced (empty: nothing).

        Never raises on odd shapes inside the event: numbers, booleans, None and
        nested lists are walked or left alone; only secrets change.
        """
        findings: list[Finding] = []
        texts: list[str] = []
        append = texts.append
        for name, value in event.items():
            if name in _STRUCTURAL:
                continue
            if isinstance(value, str):
                append(value)
            elif name == "metadata":
                if isinstance(value, dict | list):
                    self._gather_metadata(value, (name,), texts, findings, 1)
            elif isinstance(value, dict):
                # actor, source, target, context: flat objects of strings, walked inline.
                for key, item in value.items():
                    if isinstance(item, str):
                        append(item)
                    elif isinstance(item, dict | list):
                        _gather(item, (name, key), texts, findings, 2)
            elif isinstance(value, list):
                _gather(value, (name,), texts, findings, 1)
        if not texts:
            return findings
        folded = _fold(_SEPARATOR.join(texts))
        for needle in _LITERAL_GATES:
            if needle in folded:
                break
        else:
            for search in _PATTERN_GATES:
                if search(folded) is not None:
                    break
            else:
                return findings
        self._scan_event(event, _combined(_fired(folded)), findings)
        return findings

    # The walks are written out per container type: they run for every event, and a
    # generic "items of anything" helper would cost a call per value.

    def _gather_metadata(
        self,
        node: dict[Any, Any] | list[Any],
        path: Path,
        texts: list[str],
        findings: list[Finding],
        depth: int,
    ) -> None:
        """Replace values under sensitive keys; collect the other strings for the gate."""
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    texts.append(value)
                elif isinstance(value, dict | list):
                    if depth >= _MAX_DEPTH:
                        _cut(node, index, (*path, index), findings)
                    else:
                        self._gather_metadata(value, (*path, index), texts, findings, depth + 1)
            return
        kinds = self._key_kinds
        for key, value in node.items():
            try:
                kind = kinds[key]
            except KeyError:
                kind = self._remember_key(key)
            if kind is not None:
                if not (isinstance(value, str) and _PLACEHOLDER.fullmatch(value)):
                    node[key] = self._placeholder(kind, value)
                    findings.append(Finding((*path, key), kind))
            elif isinstance(value, str):
                texts.append(value)
            elif isinstance(value, dict | list):
                if depth >= _MAX_DEPTH:
                    _cut(node, key, (*path, key), findings)
                else:
                    self._gather_metadata(value, (*path, key), texts, findings, depth + 1)

    def _remember_key(self, key: object) -> str | None:
        if len(self._key_kinds) >= _KEY_CACHE_LIMIT:
            self._key_kinds.clear()
        kind = self._key_kinds[key] = _classify_key(key, self._stems)
        return kind

    def _scan_event(
        self, event: dict[str, Any], pattern: re.Pattern[str], findings: list[Finding]
    ) -> None:
        """Second walk, only when the gate fired: run the detectors on each string."""
        for name, value in event.items():
            if name in _STRUCTURAL:
                continue
            if isinstance(value, str):
                scrubbed = self._scan_text(value, pattern, (name,), findings)
                if scrubbed is not None:
                    event[name] = scrubbed
            elif isinstance(value, dict | list):
                self._scan_node(value, (name,), pattern, findings)

    def _scan_node(
        self,
        node: dict[Any, Any] | list[Any],
        path: Path,
        pattern: re.Pattern[str],
        findings: list[Finding],
    ) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, str):
                scrubbed = self._scan_text(value, pattern, (*path, key), findings)
                if scrubbed is not None:
                    node[key] = scrubbed
            elif isinstance(value, dict | list):
                self._scan_node(value, (*path, key), pattern, findings)

    def _scan_text(
        self, text: str, pattern: re.Pattern[str], path: Path, findings: list[Finding]
    ) -> str | None:
        """Return ``text`` with each detected secret replaced, or None when there is none."""
        match = pattern.search(text)
        pieces: list[str] = []
        done = 0
        while match is not None:
            group = match.lastgroup
            if group is None or group == "placeholder":
                match = pattern.search(text, match.end())
                continue
            index = int(group[1:])
            detector = _DETECTORS[index]
            secret_group = f"s{index}"
            if secret_group in pattern.groupindex and match.start(secret_group) >= 0:
                start, end = match.span(secret_group)
            else:
                start, end = match.span()
            secret = text[start:end]
            if detector.validate is not None and not detector.validate(secret, match.group()):
                # A look-alike: resume one character on, so a real secret overlapping it
                # (say, a card number after "basic ") is still found.
                match = pattern.search(text, match.start() + 1)
                continue
            pieces.append(text[done:start])
            pieces.append(self._placeholder(detector.kind, secret))
            findings.append(Finding(path, detector.kind))
            done = end
            match = pattern.search(text, match.end())
        if not pieces:
            return None
        pieces.append(text[done:])
        return "".join(pieces)

    def _placeholder(self, kind: str, secret: object) -> str:
        if self._hmac is None:
            return f"[REDACTED:{kind}]"
        mac = self._hmac.copy()
        mac.update(_value_text(secret).encode("utf-8", "surrogatepass"))
        return f"[REDACTED:{kind}:{mac.hexdigest()[:_FINGERPRINT_HEX]}]"


def _gather(
    node: dict[Any, Any] | list[Any],
    path: Path,
    texts: list[str],
    findings: list[Finding],
    depth: int,
) -> None:
    """Collect the strings of a schema object (actor, source, …) for the gate."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict | list):
            if depth >= _MAX_DEPTH:
                _cut(node, key, (*path, key), findings)
            else:
                _gather(value, (*path, key), texts, findings, depth + 1)


def _cut(node: Any, key: Any, path: Path, findings: list[Finding]) -> None:
    """Replace a container nested too deep (or cyclic) to scan: unscanned data is not stored."""
    node[key] = f"[REDACTED:{_TOO_DEEP}]"
    findings.append(Finding(path, _TOO_DEEP))


def _value_text(value: object) -> str:
    """The text a fingerprint is taken over: a string itself, anything else as sorted JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
        )
    except (TypeError, ValueError, RecursionError):  # cyclic, unsortable keys, absurdly deep
        return f"<unencodable {type(value).__name__}>"
