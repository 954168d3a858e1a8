"""Secret scrubbing at ingest: credentials are replaced before an event is ever stored.

Secrets are never stored (docs/architecture.md, "Invariants"): passwords, tokens,
keys and card numbers are replaced at ingest by ``[REDACTED:<kind>]`` or, when the
server holds a fingerprint key, by ``[REDACTED:<kind>:<16 hex>]`` where the hex is
the start of HMAC-SHA256(key, secret) (RFC 2104), so equal secrets still correlate
across events without being revealable. The key never leaves the server and never
appears in a message or ``repr``. A :class:`Scrubber` mutates the event in place and
returns one :class:`Finding` (JSON path + kind) per replacement: key-name findings
first, then pattern findings, each in walk order. What is detected, with examples
and measured recall, is in docs/secrets.md.

Two kinds of detector run on every event (the schema is docs/events.md).

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
   when the last word *is* ``pass`` or ``pw``. Extra keys of the
   :class:`ScrubConfig` are normalised the same way and added as stems.

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

The same rule reads ``name=value`` and ``name: value`` inside text (``password=…``,
``"clientSecret": "…"``, ``AWS_SECRET_ACCESS_KEY=…``, ``X-Api-Key: …``): the value
after a sensitive name is replaced — up to the closing quote when it is quoted,
else up to whitespace, ``&``, ``,`` or ``;`` — and a leading auth scheme
(``token: Bearer …``) stays readable. Values that cannot be secrets are kept: masks
(``****``), template references (``${DB_PASSWORD}``, ``{{ token }}``, ``%s``,
``<password>``, ``[FILTERED]``) and ``null``/``none``/``true``/``false``. An
``authorization`` name in text is left to the ``Bearer``/``Basic`` detectors.

**Value patterns** — in every string of the event except the structural
identifiers (``id``, ``time``, ``received``, ``service``, ``environment``,
``action``, ``category``, ``outcome``): metadata at any depth, ``reason`` and all of
``actor``, ``source``, ``target`` and ``context``. Only the matched secret is
replaced; the surrounding text stays. The patterns are precise shapes, never
entropy guesses: vendor tokens by their documented prefixes and lengths (GitHub,
GitLab, Slack, Stripe, Google, SendGrid, npm, PyPI, Docker Hub, Twilio, Mailgun,
Mailchimp, Discord, Telegram, OpenAI, Anthropic, Hugging Face, Shopify, Atlassian,
DigitalOcean, HashiCorp Vault, Azure), ``Bearer``/``Basic`` credentials (RFC 6750
§2.1, RFC 7617), AWS access key ids and secret keys after their name, Azure
connection-string keys, signatures of signed URLs (Azure SAS ``sig=``, S3/GCS
``X-Amz-Signature``), private keys in every PEM form (RFC 7468; RSA, EC, DSA,
ENCRYPTED, OPENSSH, PGP blocks, SSH2; an unterminated block is cut to the end of
the string) and PuTTY key files, JWTs (RFC 7519), the password in a
``scheme://user:password@host`` URL, and payment card numbers. Token shapes must
stand apart from surrounding letters and digits (``xAKIA…`` or ``cc4111…`` read as
parts of an identifier, which also keeps hex trace ids intact).

Card numbers: 13 to 19 digits with a first digit 2 to 6 (Visa, Mastercard, Amex,
Discover, JCB, Diners, UnionPay 62, Maestro, Mir), written without separators or in
the groupings cards are printed in (fours, the last group shorter; Amex 4-6-5,
Diners 4-6-4) with one space or dash, and a valid Luhn check — so Unix times in ms
or ns, snowflake ids and nine in ten other long numbers are kept. A grouped number
followed by more digit groups (``4111 1111 1111 1111 12/27``) is tried from its
longest to its shortest card-shaped prefix: a pattern match alone is greedy, and a
Luhn failure of the longer run must not hide the card inside it. UATP cards,
starting with 1, are a known miss.

Known false positives: prose such as ``token: expired`` or a sentence starting
"Bearer bonds" (capitalised ``Bearer`` takes any token; lowercase ``bearer`` needs
a token-like word with a digit or symbol, or 20+ characters).

Configuration (:class:`ScrubConfig`, the ``[scrub]`` table of ``glasslog.toml``,
see :mod:`glasslog.config`): extra sensitive key names, extra patterns with their
own kind, and per kind whether a secret is fingerprinted or only redacted.

Speed: scrubbing runs on every event. One walk gathers the strings (and replaces
values under sensitive keys); the strings are joined and *folded* (ASCII
lowercased, digits made ``0``, spaces, tabs, ``-`` and quotes dropped) and each
detector's gates — regexes over the folded text that begin with a literal — are
tried on that one string. Gates are filed under the rarest character of their
literal (``_ = : . k j x`` …) and each such group is one regex with a lookbehind per
gate, so about twenty C-level scans decide for all the detectors on an event with
nothing suspicious (``_Gates``). When a gate fires, its matches in the folded text
say which strings to scan (``_Gates.locate``; a ``name=`` whose name contains no
stem is dropped there), and a second walk runs the fired detectors, compiled as one
alternation of named groups, on those strings only.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import sha256
from typing import Any, Final, Literal, NamedTuple, get_args

from glasslog.errors import ConfigError

__all__ = [
    "DEFAULT_SCRUB",
    "KINDS",
    "Action",
    "Finding",
    "Path",
    "ScrubConfig",
    "ScrubRule",
    "Scrubber",
    "format_path",
]

Path = tuple[str | int, ...]
"""JSON path of a value: object keys and array indexes from the event root."""

Action = Literal["redact", "fingerprint"]
"""``fingerprint``: ``[REDACTED:<kind>:<16 hex>]`` with a key; ``redact``: ``[REDACTED:<kind>]``."""

_ACTIONS: Final = get_args(Action)

_STRUCTURAL = frozenset(
    {"id", "time", "received", "service", "environment", "action", "category", "outcome"}
)
"""Top-level fields the schema defines as identifiers; scanning them could only corrupt them."""

_MAX_DEPTH = 64
"""Far beyond the validated metadata depth; deeper (or cyclic) data is replaced, not walked."""

_KEY_CACHE_LIMIT = 4096
"""Metadata key names are client-chosen, so the memo of their classification is bounded."""

_PATTERN_CACHE_LIMIT = 256
"""Combinations of fired detectors, each compiled once; bounded like the key memo."""

_MIN_KEY_BYTES = 16
_FINGERPRINT_HEX = 16
_TOO_DEEP = "too_deep"
_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+(?::[0-9a-f]{16})?\]")
_KIND = re.compile(r"[a-z0-9_]+")


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
    "secret key": "secret",
    "access key": "secret",
    "secret access key": "aws_secret_key",
    "aws secret key": "aws_secret_key",
    "signing key": "secret",
    "encryption key": "secret",
    "master key": "secret",
    "session key": "secret",
    "token": "token",
    "auth code": "token",
    "authorization code": "token",
    "api key": "api_key",
    "private key": "private_key",
    "cookie": "cookie",
    "cookies": "cookie",
    "authorization": "authorization",
    "credential": "credential",
    "credentials": "credential",
}
"""Key words that, joined, end a key holding a credential of the mapped kind."""

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

_TEXT_SKIPPED_KINDS = frozenset({"authorization"})
"""Key kinds not read from ``name: value`` text: ``Authorization: Bearer x`` is the
Bearer detector's, which keeps the scheme readable and names the kind precisely."""


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


# --- configuration -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScrubRule:
    """An extra value pattern: a Python regex, the kind it reports, and what to do with it.

    Only the ``(?P<secret>…)`` group is replaced when the pattern has one, as in the
    built-in detectors. The pattern is compiled here, so a bad one fails at load.
    """

    kind: str
    pattern: str
    action: Action = "fingerprint"
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND.fullmatch(self.kind):
            raise ConfigError(
                f"kind {self.kind!r} must be lowercase letters, digits and _, e.g. 'employee_badge'"
            )
        if self.kind == _TOO_DEEP:
            raise ConfigError(f"kind {_TOO_DEEP!r} is reserved for data nested too deep to scan")
        _check_action(self.action)
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ConfigError(f"pattern of {self.kind!r} must be a non-empty regular expression")
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ConfigError(
                f"pattern {self.pattern!r} of {self.kind!r} is not a valid regular "
                f"expression: {exc}"
            ) from None
        if compiled.search("") is not None:
            raise ConfigError(
                f"pattern {self.pattern!r} of {self.kind!r} matches the empty string, so it "
                "would match everywhere; require at least one character"
            )
        object.__setattr__(self, "compiled", compiled)


def _check_action(action: object) -> None:
    if action not in _ACTIONS:
        raise ConfigError(f"action must be one of {', '.join(map(repr, _ACTIONS))}, got {action!r}")


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    """What the scrubber detects beyond its built-ins, and how each kind is replaced.

    ``sensitive_keys``: extra key names (normalised like every key, matched as a
    suffix; the kind is the normalised name, ``national-id`` → ``national_id``).
    ``rules``: extra value patterns. ``actions``: ``(kind, action)`` pairs for built-in
    kinds and extra keys; every other kind is fingerprinted when there is a key.
    Immutable and picklable: it travels to ingest worker processes.
    """

    sensitive_keys: tuple[str, ...] = ()
    rules: tuple[ScrubRule, ...] = ()
    actions: tuple[tuple[str, Action], ...] = ()

    def __post_init__(self) -> None:
        keys = self.sensitive_keys
        if isinstance(keys, str):
            raise ConfigError(
                f"sensitive keys must be a list of key names, got the string {keys!r}; "
                f"write [{keys!r}]"
            )
        keys = tuple(keys)
        for name in keys:
            if not isinstance(name, str):
                raise ConfigError(
                    f"sensitive keys must be strings, got {type(name).__name__} {name!r}"
                )
            if not _key_words(name):
                raise ConfigError(
                    f"sensitive key {name!r} has no letters or digits; name the key, "
                    "e.g. 'ssn' or 'national-id'"
                )
        rules = tuple(self.rules)
        for rule in rules:
            if not isinstance(rule, ScrubRule):
                raise ConfigError(f"rules must be ScrubRule values, got {type(rule).__name__}")
        pairs = self.actions.items() if isinstance(self.actions, Mapping) else self.actions
        actions = tuple(sorted((str(kind), action) for kind, action in pairs))
        known = KINDS | {"_".join(_key_words(name)) for name in keys}
        rule_kinds = {rule.kind for rule in rules}
        seen: set[str] = set()
        for kind, action in actions:
            if kind in seen:
                raise ConfigError(f"action for {kind!r} is given twice")
            seen.add(kind)
            if kind not in known:
                hint = (
                    "set `action` in that rule instead"
                    if kind in rule_kinds
                    else "see docs/secrets.md for the kinds"
                )
                raise ConfigError(f"unknown kind {kind!r} in actions; {hint}")
            _check_action(action)
        object.__setattr__(self, "sensitive_keys", keys)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "actions", actions)


# --- value patterns ------------------------------------------------------------------


class _Verdict(NamedTuple):
    """Where the secret in a candidate match is, and its kind."""

    start: int
    end: int
    kind: str


_Accept = Callable[[re.Match[str], int, int, str], _Verdict | None]
"""``(match, secret start, secret end, detector kind)`` → the secret, or None for a look-alike."""


def _predicate(check: Callable[[str, str], bool]) -> _Accept:
    """A detector that accepts or rejects a candidate whole, by ``check(secret, whole match)``."""

    def accept(match: re.Match[str], start: int, end: int, kind: str) -> _Verdict | None:
        if check(match.string[start:end], match.group()):
            return _Verdict(start, end, kind)
        return None

    return accept


def _luhn_valid(digits: str) -> bool:
    """Card numbers end in a Luhn check digit (ISO/IEC 7812-1); ids and times mostly fail it."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _card_shaped(groups: list[str]) -> bool:
    """13-19 digits, ungrouped or grouped as cards are printed (fours; Amex 4-6-5, Diners 4-6-4)."""
    if not 13 <= sum(map(len, groups)) <= 19:
        return False
    if len(groups) == 1:
        return True
    sizes = [len(group) for group in groups]
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(size == 4 for size in sizes[:-1]) and 1 <= sizes[-1] <= 4


_LAST_GROUP = re.compile(r"[A-Za-z0-9]+\Z")


def _card_number(match: re.Match[str], start: int, end: int, kind: str) -> _Verdict | None:
    """The longest card-shaped, Luhn-valid run of whole digit groups at the start of a match.

    The pattern takes every digit group that follows (``4111 1111 1111 1111 12``, an
    expiry month after a card), so the Luhn check is tried on each shorter prefix too.
    """
    text = match.string
    candidate = text[start:end]
    separator = " " if " " in candidate else "-" if "-" in candidate else ""
    if separator and text.endswith(separator, 0, start):
        # Grouped digits right after a group of letters and digits ("DE89 3704 0044 …")
        # are the rest of an IBAN or a licence key, not a card.
        before = _LAST_GROUP.search(text, max(0, start - 40), start - 1)
        if before is not None and not before.group().isdigit() and not before.group().isalpha():
            return None
    groups = candidate.split(separator) if separator else [candidate]
    for count in range(len(groups), 0, -1):
        head = groups[:count]
        if _card_shaped(head) and _luhn_valid("".join(head)):
            return _Verdict(start, start + len(separator.join(head)), kind)
    return None


def _basic_credentials(secret: str, _match: str) -> bool:
    """RFC 7617: the token is base64 of ``user-id:password``; prose like "basic plan" is not."""
    if len(secret) % 4:
        return False
    try:
        return b":" in base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return False


_TOKEN_SYMBOLS = frozenset("0123456789-._~+/=")


_PLAIN_WORD = re.compile(r"[A-Z]?[a-z]{1,14}")
"""A word of prose ("Bearer bonds", "Bearer authentication"); random tokens are longer or mixed."""


def _bearer_credentials(secret: str, match: str) -> bool:
    """Header-style ``Bearer``/``BEARER`` takes any token but a plain word; lowercase needs more.

    "Bearer bonds" and "token_type=Bearer to …" are prose; ``Bearer abc123`` is a
    credential. Lowercase ``bearer`` ("bearer of bad news") needs a token-like word,
    as some clients lowercase the scheme: a digit, a token symbol or 20+ characters.
    """
    if match.startswith(("Bearer", "BEARER")):
        return not _PLAIN_WORD.fullmatch(secret)
    return len(secret) >= 20 or not _TOKEN_SYMBOLS.isdisjoint(secret)


def _has_digit(secret: str, _match: str) -> bool:
    """A signature is hex or base64 of random bytes; ``signature=not_yet_verified`` is prose."""
    return any(char.isdigit() for char in secret)


@dataclass(frozen=True, slots=True)
class _Detector:
    """One value pattern, the cheap gates that say it might be present, and a look-alike filter.

    ``pattern`` may hold one ``(?P<secret>…)`` group: only that part is replaced
    (``Bearer `` and ``user:`` stay readable). ``gates`` are regexes over the
    *folded* text (see ``_fold``), each beginning with a literal character so ``re``
    finds it with its fast substring search; every match of ``pattern`` must fold to
    text that one of them matches, or the detector would be skipped. ``accept``
    rejects look-alikes or narrows the secret. A detector without ``kind`` reads
    ``name: value`` text and takes its kind from the key-name rule.
    """

    kind: str
    pattern: str
    gates: tuple[str, ...]
    accept: _Accept | None = None


# Patterns must stay linear on hostile text (events carry user input): every pattern
# either starts with a literal, or with a boundary lookbehind so that a long run of
# look-alike characters is tried once, not from each of its positions; and a pattern
# whose candidates can be rejected has bounded repeats, so that rejected candidates
# overlapping each other cost a bounded amount each.

_B64URL = r"[A-Za-z0-9_-]"
_NOT_TOKEN_BEFORE = r"(?<![A-Za-z0-9_-])"  # noqa: S105 - a regex, not a password
_NOT_TOKEN_AFTER = r"(?![A-Za-z0-9_-])"  # noqa: S105
_PEM_LABEL = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?"


# Discord user ids are decimal; the token's first part is their base64 (RFC 4648), so
# every four characters encode three ASCII digits: [MNO] [DTjz] [AEIMQUYcgk] [w-z0-5].
_B64_DIGITS = "[MNO][DTjz][AEIMQUYcgk][w-z0-5]"
_B64_DIGITS_FOLDED = "[mno][dtjz][aeimquycgk][w-z0]"

_DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        "private_key",
        rf"-{{4,5}} ?BEGIN {_PEM_LABEL} ?-{{4,5}}"
        rf"(?s:.*?)(?:-{{4,5}} ?END {_PEM_LABEL} ?-{{4,5}}|\Z)",
        gates=("privatekey",),
    ),
    _Detector(
        "private_key",
        r"PuTTY-User-Key-File-[0-9]+:(?s:.*?)(?:Private-MAC: ?[0-9a-fA-F]+|\Z)",
        gates=("puttyuserkeyfile0:",),
    ),
    _Detector(
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
        r"(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?",
        gates=("eyj",),
    ),
    _Detector(
        "aws_access_key",
        r"(?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        gates=("akia[a-z0]{16}", "asia[a-z0]{16}"),
    ),
    _Detector(
        "github_token",
        r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        gates=("_(?<=gh[pousr]_)", "_(?<=github_pat_)"),
    ),
    _Detector(
        "gitlab_token",
        rf"(?<![A-Za-z0-9])gl(?:pat|dt|rt|ptt)-{_B64URL}{{20,}}",
        gates=("gl(?:pat|dt|rt|ptt)",),
    ),
    _Detector(
        "slack_token",
        r"(?<![A-Za-z0-9])(?:xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,})",
        gates=("xox", "xapp0"),
    ),
    _Detector(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/-]{20,})",
        gates=(r"hooks\.slack\.com/",),
    ),
    _Detector(
        "stripe_key",
        r"(?<![A-Za-z0-9])(?:[rs]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{24,})",
        gates=("_(?<=k_live_)", "_(?<=k_test_)", "_(?<=whsec_)"),
    ),
    _Detector("google_api_key", rf"(?<![A-Za-z0-9])AIza{_B64URL}{{35}}", gates=("aiza",)),
    _Detector(
        "google_oauth_secret",
        rf"{_NOT_TOKEN_BEFORE}GOCSPX-{_B64URL}{{28}}{_NOT_TOKEN_AFTER}",
        gates=("gocspx",),
    ),
    _Detector(
        "sendgrid_key",
        rf"{_NOT_TOKEN_BEFORE}SG\.{_B64URL}{{22}}\.{_B64URL}{{43}}{_NOT_TOKEN_AFTER}",
        gates=(r"\.(?<=sg\.)[a-z0_]{0,22}\.",),
    ),
    _Detector(
        "npm_token", r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])", gates=("_(?<=npm_)",)
    ),
    _Detector(
        "pypi_token",
        rf"{_NOT_TOKEN_BEFORE}pypi-AgEIcHlwaS5vcmc{_B64URL}{{50,}}",
        gates=("pypiageichlwas0vcmc",),
    ),
    _Detector(
        "docker_token",
        rf"{_NOT_TOKEN_BEFORE}dckr_(?:pat|oat)_{_B64URL}{{20,}}",
        gates=("_(?<=dckr_)",),
    ),
    _Detector(
        "twilio_key", r"(?<![A-Za-z0-9])SK[0-9a-f]{32}(?![A-Za-z0-9])", gates=("sk[0a-f]{32}",)
    ),
    _Detector(
        "mailgun_key",
        rf"{_NOT_TOKEN_BEFORE}key-[0-9a-f]{{32}}(?![A-Za-z0-9])",
        gates=("key[0a-f]{32}",),
    ),
    _Detector(
        "mailchimp_key",
        r"(?<![A-Za-z0-9])[0-9a-f]{32}-us[0-9]{1,2}(?![A-Za-z0-9])",
        gates=("us0(?<=[0a-f]{32}us0)",),
    ),
    _Detector(
        "discord_webhook",
        r"https://(?:(?:canary|ptb)\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/"
        rf"(?P<secret>{_B64URL}{{60,80}})",
        gates=("/api/webhooks/",),
    ),
    _Detector(
        "discord_token",
        rf"{_NOT_TOKEN_BEFORE}(?:{_B64_DIGITS}){{5,6}}(?:[MNO][AQgw]|[MNO][DTjz][AEIMQUYcgk])?"
        rf"\.{_B64URL}{{6}}\.{_B64URL}{{27,38}}{_NOT_TOKEN_AFTER}",
        # One gate: the lookahead rejects most dots before any lookbehind is tried.
        gates=(
            r"\.(?=[a-z0_]{0,6}\.)(?:"
            + "|".join(
                f"(?<={_B64_DIGITS_FOLDED}{tail}\\.)"
                for tail in ("", "[mno][aqgw]", "[mno][dtjz][aeimquycgk]")
            )
            + ")",
        ),
    ),
    _Detector(
        "telegram_bot_token",
        rf"(?<![0-9])[0-9]{{8,10}}:AA{_B64URL}{{33}}{_NOT_TOKEN_AFTER}",
        gates=(":(?<=0000000:)aa",),
    ),
    _Detector(
        "openai_key",
        rf"{_NOT_TOKEN_BEFORE}sk-(?:(?:proj|svcacct|admin)-)?{_B64URL}{{16,160}}T3BlbkFJ"
        rf"{_B64URL}{{16,160}}{_NOT_TOKEN_AFTER}",
        gates=("t0blbkfj",),
    ),
    _Detector(
        "anthropic_key",
        rf"{_NOT_TOKEN_BEFORE}sk-ant-[a-z]{{2,8}}[0-9]{{2}}-{_B64URL}{{80,120}}{_NOT_TOKEN_AFTER}",
        gates=("skant",),
    ),
    _Detector(
        "huggingface_token",
        r"(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z]{34}(?![A-Za-z0-9])",
        gates=("_(?<=hf_)", "_(?<=api_org_)"),
    ),
    _Detector(
        "shopify_token",
        r"(?<![A-Za-z0-9_])shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![A-Za-z0-9])",
        gates=("_(?<=shp(?:at|ca|pa|ss)_)",),
    ),
    _Detector(
        "atlassian_token",
        r"(?<![A-Za-z0-9_=-])AT[AC]TT3[A-Za-z0-9_=-]{150,300}(?![A-Za-z0-9_=-])",
        gates=("tt0(?<=at[ac]tt0)",),
    ),
    _Detector(
        "digitalocean_token",
        r"(?<![A-Za-z0-9_])do[opr]_v1_[a-f0-9]{64}(?![A-Za-z0-9])",
        gates=("_(?<=do[opr]_v0_)",),
    ),
    _Detector(
        "vault_token",
        rf"(?<![A-Za-z0-9_.-])hv[sbr]\.{_B64URL}{{24,}}",
        gates=(r"\.(?<=hv[sbr]\.)",),
    ),
    _Detector(
        "azure_storage_key",
        r"(?<![A-Za-z0-9])(?i:AccountKey|SharedAccessKey)=(?P<secret>[A-Za-z0-9+/]{20,}={0,2})",
        gates=("=(?<=accountkey=)", "=(?<=sharedaccesskey=)"),
    ),
    _Detector(
        "azure_client_secret",
        r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
        gates=("0q~",),
    ),
    _Detector(
        "url_signature",
        r"(?<![A-Za-z0-9_])(?i:sig|signature)=(?P<secret>[A-Za-z0-9%+/_~-]{16,1024}={0,2})"
        r"(?![A-Za-z0-9%+/_~=-])",
        gates=("=(?<=sig=)", "=(?<=signature=)"),
        accept=_predicate(_has_digit),
    ),
    _Detector(
        "url_password",
        r"://[^\s/?#@:\x00]*:(?P<secret>(?!\[REDACTED:)[^\s/?#@\x00]+)@",
        gates=("://[^/?#@\x00]*@",),
    ),
    # The detectors below reject some candidates; they come last so that a rejected
    # candidate never hides a later-listed detector's match at the same position.
    _Detector(
        "bearer_token",
        r"\b[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+(?P<secret>[A-Za-z0-9._~+/-]{1,4096}=*)",
        gates=("bearer",),
        accept=_predicate(_bearer_credentials),
    ),
    _Detector(
        "basic_auth",
        r"\b[Bb][Aa][Ss][Ii][Cc][ \t]+(?P<secret>[A-Za-z0-9+/]{4,4096}={0,2})(?![A-Za-z0-9+/=])",
        gates=("basic",),
        accept=_predicate(_basic_credentials),
    ),
    _Detector(
        "card_number",
        r"(?<![A-Za-z0-9])[2-6][0-9]{3}"
        r"(?:[0-9]{9,15}|(?: [0-9]{1,6}){2,4}|(?:-[0-9]{1,6}){2,4})(?![A-Za-z0-9])",
        gates=("0" * 13,),
        accept=_card_number,
    ),
)
"""The value detectors. Adding one: a kind, a pattern, its gates, optionally ``accept``."""

_ASSIGNMENT = (
    r"(?<![A-Za-z0-9_.:])(?>[A-Za-z_][A-Za-z0-9_.-]{0,63})(?<=[A-Za-z0-9])"
    r"""(?P<secret>["']?[ \t]*[:=][ \t]*["']?)"""
)
"""``name=``, ``name: "``, ``"name": "`` — the name, its sign, and an opening quote if any.
The ``secret`` group is the sign: the value is measured only once the name is found
sensitive, so a run of ``a=a=a=…`` costs each candidate its name's length, not the rest.
A name right after ``:`` is a segment of an ARN, URN or ``host:port``, not a key. A name
ends in a letter or digit, as the gates expect. The name is matched atomically: once the
word is read it is never given back character by character, which would cost every word
of every scanned string its length again."""

_SCHEME = r"(?:(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|[Bb]ot|[Dd]igest)[ \t]+)?"
_LONG_NUMBER_END = re.compile(r"[0-9]{3}\Z")
_NOT_NAME = re.compile(r"[^a-z0_.]")
"""Not in a name as folding leaves it (lower case, digits ``0``, no ``-``, spaces, quotes)."""

_TEMPLATE = r"\$?\{\{?[^{}\r\n\x00]{0,200}\}\}?"
"""``${VAR}``, ``{{ var }}``: a reference spelled with spaces, read whole so it is recognised."""
_QUOTED_VALUE = re.compile(_SCHEME + r"""(?P<secret>[^"'\r\n\x00]+)""")
_BARE_VALUE = re.compile(_SCHEME + rf"""(?P<secret>{_TEMPLATE}|[^\s"'&,;\x00]+)""")
_NOT_A_SECRET = re.compile(
    r"""[*•]+|\.{3,}|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|\{\{[^}]*\}\}|\{[0-9]*\}"""
    r"""|%[sd]|%\([A-Za-z_]+\)[sd]|<[A-Za-z _-]+>|\[[A-Za-z _-]+\]"""
    r"""|(?i:null|none|nil|undefined|true|false|redacted|filtered|hidden|masked|n/a)"""
)
"""Values that stand in for a secret — masks, template references, JSON literals."""

KINDS: Final = frozenset(
    {d.kind for d in _DETECTORS} | set(_SUFFIX_STEMS.values()) | set(_WORD_STEMS.values())
)
"""Every kind the built-in detectors and key names report (``too_deep`` aside)."""

_FOLD = bytes(0x30 if 0x30 <= b <= 0x39 else b + 32 if 0x41 <= b <= 0x5A else b for b in range(256))
_FOLD_DELETE = b" \t-\"'"
_SEPARATOR = "\x00"
"""Joins the gathered strings; every pattern stops at it, so no match spans two values."""


def _fold(text: str) -> str:
    """The text gates see: ASCII lowercased, digits ``0``; spaces, tabs, ``-`` and quotes gone.

    Folding lets a literal gate stand for every spelling (``Bearer``/``BEARER``,
    ``api-key``/``API_KEY``, ``"password": "``/``password=``) and every card
    grouping (thirteen ``0`` in a row). Non-ASCII text becomes Latin-1 noise that no
    gate matches, which is fine: every built-in pattern is ASCII.
    """
    return text.encode("utf-8", "surrogatepass").translate(_FOLD, _FOLD_DELETE).decode("latin-1")


# --- gates ---------------------------------------------------------------------------

_RARITY = "~^|{}=@;:_jqzxkvwy/."
"""Characters rare in events, rarest first (letters by English frequency; digits fold to 0)."""

_Search = Callable[[str], "re.Match[str] | None"]


def _leading_literal(pattern: str) -> tuple[str, int]:
    """The literal characters a regex starts with, and where in its source they end.

    A literal followed by a quantifier is not part of it; so
    ``pattern[end:]`` is always a regex that continues the match where the literal stops.
    """
    literal: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        step = 1
        if char == "\\":
            following = pattern[position + 1 : position + 2]
            if not following or following.isalnum() or following.isspace():
                break
            char, step = following, 2
        elif char in ".^$*+?{}[]|()":
            break
        if pattern[position + step : position + step + 1] in ("*", "+", "?", "{"):
            break
        literal.append(char)
        position += step
    return "".join(literal), position


class _Gates:
    """Which detectors may match a folded text: every gate of every detector, tried cheaply.

    Each gate is filed under the rarest character of the literal it starts with. Gates
    filed under a rare character (``_RARITY``) are merged into one regex per character,
    ``k(?:(?<=ak)ia…|(?<=privatek)ey|…)``: ``re`` scans for the character once and tries
    the lookbehinds only where it occurs, and only when that regex matches are its
    members tried one by one. Other gates are searched alone, with ``in`` when they
    are plain literals. Indexes in ``always`` fire on every text.
    """

    __slots__ = ("_always", "_groups", "_literals", "_own", "_singles")

    def __init__(self, gates: Iterable[tuple[str, int]], always: Iterable[int] = ()) -> None:
        gates = list(gates)
        own: dict[int, list[re.Pattern[str]]] = {}
        for gate, index in gates:
            own.setdefault(index, []).append(re.compile(gate))
        self._own = {index: tuple(patterns) for index, patterns in own.items()}
        literals: list[tuple[str, int]] = []
        singles: list[tuple[_Search, int]] = []
        grouped: dict[str, list[tuple[str, str, int]]] = {}
        for gate, index in gates:
            literal, end = _leading_literal(gate)
            rare = [char for char in literal if char in _RARITY]
            if not rare:
                if end == len(gate):
                    literals.append((literal, index))
                else:
                    singles.append((re.compile(gate).search, index))
                continue
            anchor = min(rare, key=_RARITY.index)
            at = literal.index(anchor)
            behind = f"(?<={re.escape(literal[: at + 1])})" if at else ""
            rest = behind + re.escape(literal[at + 1 :]) + gate[end:]
            grouped.setdefault(anchor, []).append((rest, gate, index))
        groups = []
        for anchor, members in grouped.items():
            if len(members) == 1:  # nothing to share: search the gate itself
                _, gate, index = members[0]
                literal, end = _leading_literal(gate)
                if end == len(gate):
                    literals.append((literal, index))
                else:
                    singles.append((re.compile(gate).search, index))
                continue
            merged = re.escape(anchor) + "(?:" + "|".join(rest for rest, _, _ in members) + ")"
            groups.append(
                (
                    re.compile(merged).search,
                    tuple((re.compile(gate).search, index) for _, gate, index in members),
                )
            )
        self._literals = tuple(literals)
        self._singles = tuple(singles)
        self._groups = tuple(groups)
        self._always = tuple(always)

    def fired(self, folded: str) -> tuple[int, ...]:
        """Indexes of the detectors whose gates match ``folded``, in ascending order."""
        hit = set(self._always)
        for needle, index in self._literals:
            if needle in folded:
                hit.add(index)
        for search, index in self._singles:
            if search(folded) is not None:
                hit.add(index)
        for group, members in self._groups:
            if group(folded) is not None:
                for member, index in members:
                    if index not in hit and member(folded) is not None:
                        hit.add(index)
        return tuple(sorted(hit)) if hit else ()

    def locate(
        self,
        folded: str,
        fired: tuple[int, ...],
        texts: list[str],
        keep: Mapping[int, Callable[[str, int], bool]],
    ) -> dict[str, tuple[int, ...]] | None:
        """For each gathered string where a fired gate matches: the detectors to run on it.

        ``folded`` is the folded join of ``texts``; a gate never matches the separator,
        so each match lies in one string, found by the separators' positions. The
        result is keyed by the string itself, so the second walk needs no positions.
        ``keep[index](folded, start)``, when given, drops gate matches of a detector
        that cannot lead to a finding. None when a string holds the separator itself:
        then every string is scanned.
        """
        if folded.count(_SEPARATOR) != len(texts) - 1:
            return None
        always = self._always
        hits: dict[int, set[int]] = {}
        for index in fired:
            if index in always:
                continue
            wanted = keep.get(index)
            for gate in self._own[index]:
                # One kept match per string is enough: then go on from the next string,
                # so hostile text full of gate matches costs one search per string.
                position = string = counted = 0
                while (match := gate.search(folded, position)) is not None:
                    start = match.start()
                    if wanted is not None and not wanted(folded, start):
                        position = start + 1
                        continue
                    string += folded.count(_SEPARATOR, counted, start)
                    hits.setdefault(string, set()).add(index)
                    counted = folded.find(_SEPARATOR, start)
                    if counted == -1:
                        break
                    position = counted
        located: dict[str, tuple[int, ...]] = {}
        for position, indexes in hits.items():
            text = texts[position]
            located[text] = tuple(sorted(indexes.union(always, located.get(text, ()))))
        return located

    @property
    def always(self) -> tuple[int, ...]:
        return self._always


def _assignment_gates(stems: Iterable[str], qualifiers: Iterable[str]) -> tuple[str, ...]:
    """Gates of ``name=value`` text: ``=`` or ``:`` right after a word a sensitive name ends in.

    That word is a stem's last word, a qualifier (``password_hash``), or a stem's last
    word with one or two digits (``password2``, ``pass_12``; digits fold to ``0``).
    Lookbehinds must have a fixed width, so the words are grouped by their last
    character, then by length: at a sign, ``re`` first checks the character before it
    against all last characters at once, then tries only the words that end in it.
    """
    words = {_fold(word) for word in qualifiers}
    for stem in {_fold(word) for word in stems}:
        words |= {f"{stem}{sep}{zeros}" for sep in ("", "_", ".") for zeros in ("", "0", "00")}
    by_last: dict[str, dict[int, set[str]]] = {}
    for word in words:
        by_last.setdefault(word[-1], {}).setdefault(len(word), set()).add(re.escape(word))
    gates = []
    for sign in "=:":
        branches = []
        for last, by_length in sorted(by_last.items()):
            behind = "|".join(
                f"(?<=(?:{'|'.join(sorted(group))}){sign})"
                for _, group in sorted(by_length.items())
            )
            branches.append(f"(?<={re.escape(last)}{sign})(?:{behind})")
        ends = re.escape("".join(sorted(by_last)))
        gates.append(f"{sign}(?<=[{ends}]{sign})(?:{'|'.join(branches)})")
    return tuple(gates)


def _rule_gate(rule: ScrubRule) -> str | None:
    """A gate for an extra pattern: its leading literal, folded, when one is certain to match.

    Certain means: case-sensitive, not verbose, no alternation at the top level, and
    three or more characters after folding. Otherwise the rule runs on every event.
    """
    if rule.compiled.flags & (re.IGNORECASE | re.VERBOSE) or _top_level_bar(rule.pattern):
        return None
    pattern = rule.pattern
    while pattern.startswith(("^", "\\A", "\\b")):  # zero-width: the literal follows
        pattern = pattern[1 if pattern[0] == "^" else 2 :]
    literal, _ = _leading_literal(pattern)
    folded = _fold(literal)
    return re.escape(folded) if len(folded) >= 3 else None


def _top_level_bar(pattern: str) -> bool:
    """Whether ``pattern`` has an alternation outside every group and character class."""
    depth = 0
    position = 0
    in_class = False
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            position += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[position + 1 : position + 2] == "^":
                position += 1
            if pattern[position + 1 : position + 2] == "]":  # a leading ] is a member
                position += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        position += 1
    return False


# --- the compiled plan of one configuration ------------------------------------------


class _Plan:
    """Everything a :class:`ScrubConfig` compiles to, shared by the scrubbers that use it."""

    __slots__ = (
        "combined",
        "detectors",
        "gates",
        "keep",
        "name_stems",
        "redacted",
        "rules",
        "stems",
    )

    def __init__(self, config: ScrubConfig) -> None:
        stems = {stem.replace(" ", ""): kind for stem, kind in _SUFFIX_STEMS.items()}
        last_words = {stem.rsplit(" ", 1)[-1] for stem in _SUFFIX_STEMS}
        for name in config.sensitive_keys:
            words = _key_words(name)
            stems["".join(words)] = "_".join(words)
            last_words.add(words[-1])
        # Longest stems first: when two stems end the key, the more specific one names the kind.
        self.stems = dict(sorted(stems.items(), key=lambda item: -len(item[0])))
        assignment = _Detector(
            "",
            _ASSIGNMENT,
            gates=_assignment_gates(last_words | set(_WORD_STEMS), _QUALIFIERS),
        )
        self.detectors = (*_DETECTORS, assignment)
        self.name_stems = tuple(sorted({_fold(stem) for stem in stems} | set(_WORD_STEMS)))
        self.keep = {len(_DETECTORS): self.plausible_name}
        self.rules = config.rules
        first_rule = len(self.detectors)
        gates = [(gate, index) for index, d in enumerate(self.detectors) for gate in d.gates]
        always = []
        for offset, rule in enumerate(config.rules):
            gate = _rule_gate(rule)
            if gate is None:
                always.append(first_rule + offset)
            else:
                gates.append((gate, first_rule + offset))
        self.gates = _Gates(gates, always)
        self.redacted = frozenset(kind for kind, action in config.actions if action == "redact")
        self.combined: dict[tuple[int, ...], re.Pattern[str] | None] = {}

    def plausible_name(self, folded: str, sign: int) -> bool:
        """Whether the name before an ``=`` or ``:`` in folded text could be sensitive.

        A cheap superset of the key-name rule, tried only where a gate fired: the name
        (separators removed) must contain a stem. ``cache_key:``, ``status_code=`` and
        ``old_value=`` end in a gate word but name nothing secret, and are dropped here
        instead of costing a scan of their string.
        """
        begin = max(0, sign - 80)
        for other in _NOT_NAME.finditer(folded, begin, sign):
            begin = other.end()
        joined = folded[begin:sign].replace("_", "").replace(".", "")
        return any(stem in joined for stem in self.name_stems)

    def pattern(self, fired: tuple[int, ...]) -> re.Pattern[str] | None:
        """One alternation of the fired built-in detectors; group ``d<i>`` is detector i.

        Existing placeholders are matched first and skipped, which makes scrubbing
        idempotent: their hex never reads as a card number, ``[REDACTED:password:…]``
        never as an assignment.
        """
        try:
            return self.combined[fired]
        except KeyError:
            pass
        if len(self.combined) >= _PATTERN_CACHE_LIMIT:
            self.combined.clear()
        branches = [f"(?P<placeholder>{_PLACEHOLDER.pattern})"]
        for index in fired:
            if index < len(self.detectors):
                source = self.detectors[index].pattern.replace("(?P<secret>", f"(?P<s{index}>")
                branches.append(f"(?P<d{index}>{source})")
        pattern = re.compile("|".join(branches)) if len(branches) > 1 else None
        self.combined[fired] = pattern
        return pattern


@lru_cache(maxsize=16)
def _plan(config: ScrubConfig) -> _Plan:
    return _Plan(config)


DEFAULT_SCRUB: Final = ScrubConfig()
"""The built-in detectors alone, every kind fingerprinted when there is a key."""


# --- the scrubber --------------------------------------------------------------------


class Scrubber:
    """Replaces every detected secret in an event, in place, before the event is stored.

    ``fingerprint_key`` (at least 16 random bytes, kept on the server) turns each
    placeholder into ``[REDACTED:<kind>:<HMAC prefix>]`` so equal secrets correlate;
    without it every secret of a kind looks the same. ``config`` adds sensitive key
    names and patterns, and chooses per kind between fingerprint and plain redaction.
    """

    __slots__ = ("_config", "_hmac", "_key_kinds", "_plan")

    def __init__(
        self, *, fingerprint_key: bytes | None = None, config: ScrubConfig | None = None
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
        if config is None:
            config = ScrubConfig()
        elif not isinstance(config, ScrubConfig):
            raise ConfigError(f"config must be a ScrubConfig, got {type(config).__name__}")
        self._config = config
        self._plan = _plan(config)
        self._key_kinds: dict[object, str | None] = {}

    def __repr__(self) -> str:
        # The key itself is never shown; only whether there is one.
        return f"Scrubber(fingerprint={self._hmac is not None}, config={self._config!r})"

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
        gates = self._plan.gates
        fired = gates.fired(folded)
        if fired:
            located = gates.locate(folded, fired, texts, self._plan.keep)
            default = gates.always if located is not None else fired
            if located or default:
                self._scan_event(event, located or {}, default, findings)
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
        kind = self._key_kinds[key] = _classify_key(key, self._plan.stems)
        return kind

    def _scan_event(
        self,
        event: dict[str, Any],
        located: dict[str, tuple[int, ...]],
        default: tuple[int, ...],
        findings: list[Finding],
    ) -> None:
        """Second walk, only when a gate fired: scan the strings where a gate matched.

        ``located`` maps those strings to their detectors; every other string gets
        ``default`` (the rules that run everywhere, or everything that fired when the
        strings could not be told apart). Most strings of an event hold nothing
        suspicious, and a dictionary lookup costs far less than a regex scan.
        """
        for name, value in event.items():
            if name in _STRUCTURAL:
                continue
            if isinstance(value, str):
                scrubbed = self._scan_string(value, located.get(value, default), (name,), findings)
                if scrubbed is not None:
                    event[name] = scrubbed
            elif isinstance(value, dict | list):
                self._scan_node(value, (name,), located, default, findings)

    def _scan_node(
        self,
        node: dict[Any, Any] | list[Any],
        path: Path,
        located: dict[str, tuple[int, ...]],
        default: tuple[int, ...],
        findings: list[Finding],
    ) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, str):
                detectors = located.get(value, default)
                if detectors:
                    scrubbed = self._scan_string(value, detectors, (*path, key), findings)
                    if scrubbed is not None:
                        node[key] = scrubbed
            elif isinstance(value, dict | list):
                self._scan_node(value, (*path, key), located, default, findings)

    def _scan_string(
        self, text: str, detectors: tuple[int, ...], path: Path, findings: list[Finding]
    ) -> str | None:
        """Run ``detectors`` (built-in indexes, then rules) on one string."""
        if not detectors:
            return None
        plan = self._plan
        first_rule = len(plan.detectors)
        rules = tuple(plan.rules[i - first_rule] for i in detectors if i >= first_rule)
        return self._scan_text(text, plan.pattern(detectors), rules, path, findings)

    def _scan_text(
        self,
        text: str,
        pattern: re.Pattern[str] | None,
        rules: tuple[ScrubRule, ...],
        path: Path,
        findings: list[Finding],
    ) -> str | None:
        """Return ``text`` with each detected secret replaced, or None when there is none.

        Built-in detectors run first, then each extra rule on what they left.
        """
        scrubbed = None if pattern is None else self._scan_builtin(text, pattern, path, findings)
        for rule in rules:
            again = self._scan_rule(text if scrubbed is None else scrubbed, rule, path, findings)
            if again is not None:
                scrubbed = again
        return scrubbed

    def _scan_builtin(
        self, text: str, pattern: re.Pattern[str], path: Path, findings: list[Finding]
    ) -> str | None:
        pieces: list[str] = []
        done = 0
        detectors = self._plan.detectors
        match = pattern.search(text)
        while match is not None:
            group = match.lastgroup
            if group is None or group == "placeholder":
                match = pattern.search(text, match.end())
                continue
            index = int(group[1:])
            detector = detectors[index]
            secret_group = f"s{index}"
            if secret_group in pattern.groupindex and match.start(secret_group) >= 0:
                start, end = match.span(secret_group)
            else:
                start, end = match.span()
            if not detector.kind:
                verdict = self._assigned(match, end)
            elif detector.accept is not None:
                verdict = detector.accept(match, start, end, detector.kind)
            else:
                verdict = _Verdict(start, end, detector.kind)
            if verdict is None:
                # A look-alike: resume one character on, so a real secret overlapping it
                # (say, a card number after "basic ") is still found.
                match = pattern.search(text, match.start() + 1)
                continue
            pieces.append(text[done : verdict.start])
            pieces.append(self._placeholder(verdict.kind, text[verdict.start : verdict.end]))
            findings.append(Finding(path, verdict.kind))
            done = verdict.end
            match = pattern.search(text, verdict.end)
        if not pieces:
            return None
        pieces.append(text[done:])
        return "".join(pieces)

    def _assigned(self, match: re.Match[str], sign_end: int) -> _Verdict | None:
        """The value after a sensitive ``name=`` or ``name:``, or None (module docstring)."""
        text = match.string
        name = text[match.start() : sign_end].rstrip(" \t\"'=:")
        if _LONG_NUMBER_END.search(name):  # the gates cover one or two trailing digits
            return None
        try:
            kind = self._key_kinds[name]
        except KeyError:
            kind = self._remember_key(name)
        if kind is None or kind in _TEXT_SKIPPED_KINDS:
            return None
        quoted = text[sign_end - 1] in "\"'"
        value = (_QUOTED_VALUE if quoted else _BARE_VALUE).match(text, sign_end)
        if value is None:
            return None
        start, end = value.span("secret")
        secret = text[start:end]
        if (
            _NOT_A_SECRET.fullmatch(secret)
            or secret.startswith("[REDACTED:")
            # A key in PEM form is the private_key detector's: it spans lines.
            or secret.startswith("-----BEGIN")
        ):
            return None
        return _Verdict(start, end, kind)

    def _scan_rule(
        self, text: str, rule: ScrubRule, path: Path, findings: list[Finding]
    ) -> str | None:
        """Replace each match of an extra rule that does not touch an existing placeholder."""
        taken = [m.span() for m in _PLACEHOLDER.finditer(text)]
        secret_group = "secret" in rule.compiled.groupindex
        pieces: list[str] = []
        done = 0
        for match in rule.compiled.finditer(text):
            if secret_group and match.start("secret") >= 0:
                start, end = match.span("secret")
            else:
                start, end = match.span()
            if start == end or start < done:
                continue
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            pieces.append(text[done:start])
            pieces.append(self._placeholder(rule.kind, text[start:end], rule.action))
            findings.append(Finding(path, rule.kind))
            done = end
        if not pieces:
            return None
        pieces.append(text[done:])
        return "".join(pieces)

    def _placeholder(self, kind: str, secret: object, action: Action | None = None) -> str:
        if action is None:
            action = "redact" if kind in self._plan.redacted else "fingerprint"
        if self._hmac is None or action == "redact":
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
