"""The glasslog event: schema v1, validation, and RFC 8785 canonical JSON.

An *event* is one audit record: who (``actor``) did what (``action``) to what
(``target``), when (``time``), from where (``source``), with which result
(``outcome``). :func:`validate` turns untrusted input (a parsed JSON object) into a
fresh, normalized :data:`Event` or raises :class:`~glasslog.errors.EventError`
listing every problem with its JSON path. The schema is docs/events.md; the rules and
limits are documented for users in ``docs/events.md``.

:func:`canonical` is the JSON Canonicalization Scheme of RFC 8785 (JCS): the byte
string that is hashed into the Merkle tree, so it must be identical on every machine
and in every release. Numbers follow I-JSON (RFC 7493): integers must fit in
±(2**53-1) so that every JSON parser reads them back exactly.

Timestamps are RFC 3339, normalized to UTC with exactly six fractional digits
(``2026-11-26T10:59:15.123456Z``), so that they also sort correctly as text.
Identifiers that glasslog assigns are UUIDv7 (RFC 9562 §5.7).
"""

from __future__ import annotations

import json
import math
import os
import re
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv6Address, ip_address
from typing import Any, Final

from glasslog.errors import CanonicalError, EventError, Problem

__all__ = [
    "DEFAULT_LIMITS",
    "SCHEMA_VERSION",
    "Event",
    "Limits",
    "canonical",
    "format_time",
    "parse_time",
    "uuid7",
    "validate",
]

Event = dict[str, Any]
"""A validated, normalized event: a fresh JSON-compatible dict the caller may mutate."""

SCHEMA_VERSION: Final = 1

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer every JSON parser reads back exactly (I-JSON, RFC 7493 §2.2)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds on one event, so that a single client cannot make ingest slow or huge.

    ``max_key_length`` bounds metadata keys and the name-like fields (``service``,
    ``environment``, ``category``, ``action``).
    """

    max_event_bytes: int = 64 * 1024
    """Size of the whole event's canonical (RFC 8785) encoding, in bytes."""
    max_string_length: int = 8 * 1024
    """Length of any single string value, in characters (code points)."""
    max_key_length: int = 128
    """Length of a metadata key or a name-like field, in characters."""
    max_metadata_depth: int = 8
    """Nesting of objects and arrays in ``metadata``; ``metadata`` itself is level 1."""
    max_metadata_keys: int = 256
    """Keys in all of ``metadata``'s objects together, nested ones included."""
    max_array_length: int = 1000
    """Items in any one array inside ``metadata``."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS: Final = Limits()


# --------------------------------------------------------------------------------------
# Time and identifiers
# --------------------------------------------------------------------------------------

# RFC 3339 §5.6 date-time. Ranges are checked here so that datetime.fromisoformat only
# has to check the calendar (days per month); [0-9] rather than \d, which would also
# match non-ASCII digits.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|(60))(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime in UTC.

    Any offset is accepted (``Z``, ``+02:00``, ``-00:00``) and converted to UTC;
    fractions of 0 to 9 digits are truncated to microseconds, the resolution glasslog
    keeps. A leap second (``:60``) is refused: Python cannot represent it.
    """
    if type(text) is not str:
        raise ValueError(f"expected an RFC 3339 timestamp string, found {type(text).__name__}")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            "expected an RFC 3339 timestamp such as 2026-11-26T10:59:15.123456Z, "
            f"found {_show(text)}"
        )
    if match.group(1) is not None:
        raise ValueError(f"leap seconds are not supported: {_show(text)}; send :59.999999")
    try:
        # The grammar is already RFC 3339; fromisoformat (C, fast) only builds the value.
        parsed = datetime.fromisoformat(text.upper())
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid date or time in {_show(text)}: {exc}") from None


_MICROSECOND: Final = timedelta(microseconds=1)


def epoch_us(dt: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime: how stores keep ``time``."""
    return (dt - _EPOCH) // _MICROSECOND


def format_time(dt: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with six fractional digits and ``Z``.

    A naive datetime is refused rather than guessed to be UTC: a wrong guess would
    silently shift audit records by hours.
    """
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError(
            f"cannot format naive datetime {dt.isoformat()}: attach a timezone, "
            "e.g. datetime.now(timezone.utc)"
        )
    if offset:
        try:
            dt = dt - offset
        except OverflowError:
            raise ValueError(f"{dt.isoformat()} is out of range in UTC") from None
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - fastest form
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond,
    )


def uuid7(now: datetime | None = None) -> str:
    """Return a new UUIDv7 (RFC 9562 §5.7) as lowercase 8-4-4-4-12 text.

    The 48-bit Unix millisecond timestamp is followed by 12 bits of sub-millisecond
    time (RFC 9562 §6.2, method 3), so ids made by one clock sort by time to the
    microsecond; the remaining 62 bits come from ``os.urandom``.
    """
    if now is None:
        micros = _time.time_ns() // 1000
    else:
        if now.utcoffset() is None:
            raise ValueError("uuid7 needs an aware datetime, e.g. datetime.now(timezone.utc)")
        since = now - _EPOCH
        micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
        if micros < 0:
            raise ValueError(f"uuid7 cannot encode a time before 1970: {now.isoformat()}")
    millis, sub = divmod(micros, 1000)
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (sub * 4096 // 1000) << 64
        | 0b10 << 62
        | int.from_bytes(os.urandom(8)) >> 2
    )
    h = "%032x" % value  # noqa: UP031
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------------------
# RFC 8785 canonical JSON
# --------------------------------------------------------------------------------------
#
# The fast path is the C encoder of the json module. Its output equals JCS exactly
# when all of these hold, which _fast_safe checks in one pass over the value:
#
# * keys are str (json would silently turn int/float/bool/None keys into strings);
# * ints are within ±(2**53-1) (JCS refuses the rest; both print digits the same);
# * floats are finite, not integral, and 1e-4 <= |x| (so also |x| < 2**53 < 1e16):
#   there float.__repr__ and ECMAScript Number::toString both print the same
#   shortest round-trip digits in plain decimal notation. Integral floats print as
#   "1.0" in Python but "1" in ES, -0.0 as "-0.0" but "0"; below 1e-4 and from 1e16
#   Python switches to exponents ("1e-05", "1e+16") where ES still writes decimals
#   ("0.00001", "10000000000000000"), and its exponents have two digits ("1e-07").
# * only exact dict / list / str / int / float / bool / None types occur.
#
# Two more conditions are checked on the output text, where they are cheap:
#
# * key order: Python sorts by code point, JCS by UTF-16 code unit. The two orders
#   differ only between a character >= U+10000 (a surrogate pair, D800-DBFF first)
#   and one in U+E000-U+FFFF. ASCII text (str.isascii is O(1)) cannot have it;
#   otherwise any astral character sends the value to the exact encoder.
# * lone surrogates: with ensure_ascii=False json copies them into the text, and
#   encoding the text to UTF-8 then fails.
#
# String escaping needs no check: json escapes exactly " \ \b \f \n \r \t as two
# characters and other controls as \u00xx in lowercase hex, like JCS (RFC 8785
# §3.2.2.2), and leaves everything else (including U+007F, U+2028) raw.

_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_JSON_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
# CPython's C encoder, built once: JSONEncoder.encode would build it anew on each call.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, None, _encode_str, None, ":", ",", True, False, False)
)


def _encode_json(value: object) -> str:
    if _c_encode is not None:
        return "".join(_c_encode(value, 0))
    return _JSON_ENCODER.encode(value)  # pragma: no cover - other Python implementations


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")


def canonical(value: object) -> bytes:
    """Encode a JSON value as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises :class:`~glasslog.errors.CanonicalError` for values JCS cannot represent:
    NaN and infinities, integers outside ±(2**53-1), non-string keys, strings with
    lone surrogates, and types other than dict, list/tuple, str, int, float, bool
    and None.
    """
    text: str | None = None
    try:
        if type(value) is dict or type(value) is list:
            if _fast_safe(value):
                text = _encode_json(value)
        elif type(value) is str:
            return _encode_str(value).encode("utf-8")
        elif type(value) is int:
            if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return int.__repr__(value).encode("ascii")
        elif type(value) is float and 1e-4 <= abs(value) < 1e16 and value != int(value):
            return float.__repr__(value).encode("ascii")
        if text is not None and (text.isascii() or _ASTRAL.search(text) is None):
            return text.encode("utf-8")
    except UnicodeEncodeError:
        pass  # a lone surrogate: the exact encoder names it
    except RecursionError:
        raise CanonicalError("value is nested too deeply, or contains itself") from None
    return _encode_exact(value)


def _fast_safe(container: dict[Any, Any] | list[Any]) -> bool:
    """Whether the json module encodes ``container`` exactly as RFC 8785 does (see above)."""
    if type(container) is dict:
        for key in container:
            if type(key) is not str:
                return False
        values: Iterable[Any] = container.values()
    else:
        values = container
    for value in values:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int:
            if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                continue
            return False
        if kind is float:
            if 1e-4 <= abs(value) < 1e16 and value != int(value):
                continue
            return False
        if kind is dict or kind is list:
            if _fast_safe(value):
                continue
            return False
        return False
    return True


def _encode_exact(value: object) -> bytes:
    """RFC 8785 written out rule by rule: slow, independent of the json module."""
    parts: list[str] = []
    try:
        _emit(value, parts, [])
    except RecursionError:
        raise CanonicalError("value is nested too deeply, or contains itself") from None
    return "".join(parts).encode("utf-8")


def _emit(value: object, out: list[str], where: list[str | int]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value, where))
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalError(
                f"integer {value} at {_format_path(where)} is outside ±(2**53-1), which JSON "
                "parsers cannot read back exactly (I-JSON, RFC 7493); send it as a string"
            )
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_es_number(value, where))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalError(
                    f"object keys must be strings; found {type(key).__name__} key {key!r} "
                    f"at {_format_path(where)}"
                )
            _check_surrogates(key, where)
        # RFC 8785 §3.2.3: sort by UTF-16 code units; big-endian UTF-16 bytes compare
        # in exactly that order.
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16)):
            if i:
                out.append(",")
            out.append(_quote(key, where))
            out.append(":")
            where.append(key)
            _emit(value[key], out, where)
            where.pop()
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            where.append(i)
            _emit(item, out, where)
            where.pop()
        out.append("]")
    else:
        raise CanonicalError(
            f"{type(value).__name__} at {_format_path(where)} has no JSON form; "
            "convert it to a string, number, boolean, null, list or dict"
        )


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


_ESCAPE = re.compile('["\\\\\x00-\x1f]')
_ESCAPES: Final = {
    **{chr(c): f"\\u{c:04x}" for c in range(0x20)},
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _quote(text: str, where: list[str | int]) -> str:
    """RFC 8785 §3.2.2.2: ECMAScript JSON.stringify escaping, everything else raw."""
    _check_surrogates(text, where)
    return '"' + _ESCAPE.sub(lambda m: _ESCAPES[m.group()], text) + '"'


def _check_surrogates(text: str, where: list[str | int]) -> None:
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            raise CanonicalError(
                f"string at {_format_path(where)} contains a lone surrogate "
                f"U+{ord(found.group()):04X}, which is not Unicode text (RFC 8785 §3.2.2.2)"
            )


def _es_number(x: float, where: list[str | int]) -> str:
    """ECMAScript Number::toString (ECMA-262 §6.1.6.1.20), as RFC 8785 §3.2.2.3 requires.

    float.__repr__ already yields the shortest digits that round-trip, the same digits
    ES uses; only the layout around them differs.
    """
    if not math.isfinite(x):
        raise CanonicalError(
            f"{x!r} at {_format_path(where)} is not a JSON number; "
            "send it as a string or leave the field out"
        )
    if x == 0:
        return "0"  # also -0.0
    text = float.__repr__(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    # x = 0.<significant digits> * 10**n, with n as in ECMA-262.
    n = len(whole) - (len(digits) - len(stripped)) + (int(exponent) if exponent else 0)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exp = ("e+" if e >= 0 else "e-") + str(abs(e))
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _format_path(where: list[str | int]) -> str:
    path = "$"
    for step in where:
        path = f"{path}[{step}]" if isinstance(step, int) else _member(path, step)
    return path


def _member(path: str, key: str) -> str:
    """RFC 9535 JSONPath of a member: ``$.a.b`` or, for other names, ``$["a-b"]``."""
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=not _is_clean(key))}]"


def _is_clean(text: str) -> bool:
    return text.isascii() or _SURROGATE.search(text) is None


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

OUTCOMES: Final = ("success", "failure", "denied", "unknown")
ACTOR_TYPES: Final = ("user", "service", "machine")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]*")
_NAME_RULE: Final = "letters, digits and . _ : / @ + -, starting with a letter or digit"
_ACTION = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NOT_IDS: Final = ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                   r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")  # fmt: skip
_FLOAT_INT_BOUND: Final = float(2**53)
_INVALID: Final[Any] = object()
"""Returned by a check that has recorded a problem; never stored."""

# Upper bounds, in bytes of canonical JSON, used to skip the exact size check for
# ordinary events: a string of n characters takes at most 6n + 2 bytes (a control
# character becomes \u00xx), a number at most 25 ("-0.0000033333333333333333").
_FIELD_OVERHEAD: Final = 32  # quotes, the longest schema key, ':' and ','
_SCALAR_BOUND: Final = 32
_DEFAULTS_BOUND: Final = 256  # braces, id, time, received, outcome and actor.type
_MAX_PROBLEMS: Final = 100  # a hostile event must not produce a megabyte of errors


class _Check:
    """Collects problems and running totals while one event is validated."""

    __slots__ = ("bound", "limits", "metadata_keys", "problems")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.problems: list[Problem] = []
        self.bound = _DEFAULTS_BOUND
        self.metadata_keys = 0

    def problem(self, path: str, message: str) -> Any:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(path, message))
        elif len(self.problems) == _MAX_PROBLEMS:
            self.problems.append(
                Problem("$", f"more problems; only the first {_MAX_PROBLEMS} are listed")
            )
        return _INVALID

    def text(self, value: object, path: str) -> Any:
        """A string within the limits, without NUL or lone surrogates."""
        if type(value) is not str:
            if not isinstance(value, str):
                return self.problem(path, f"expected a string, found {_json_type(value)}")
            value = str.__str__(value)  # e.g. a StrEnum member: keep only the text
        size = len(value)
        if size > self.limits.max_string_length:
            return self.problem(
                path,
                f"string has {size} characters; at most {self.limits.max_string_length} "
                "are allowed",
            )
        if "\x00" in value if value.isascii() else _NUL_OR_SURROGATE.search(value) is not None:
            return self.problem(path, _bad_chars(value))
        self.bound += 6 * size + _FIELD_OVERHEAD
        return value

    def name(self, value: object, path: str) -> Any:
        text = self.text(value, path)
        if text is _INVALID:
            return text
        limit = self.limits.max_key_length
        if len(text) > limit or _NAME.fullmatch(text) is None:
            return self.problem(
                path, f"expected a name of 1 to {limit} {_NAME_RULE}; found {_show(text)}"
            )
        return text

    def nonempty(self, value: object, path: str) -> Any:
        text = self.text(value, path)
        if text == "":
            return self.problem(path, "must not be empty")
        return text

    def unknown_field(self, key: object, path: str) -> None:
        if not isinstance(key, str):
            self.problem(path, f"keys must be strings; found {_show_key(key)}")
        else:
            self.problem(
                path if len(key) > 64 or not _is_clean(key) else _member(path, key),
                f"unknown field {_show_name(key)}; put custom data under metadata",
            )


def _check_id(check: _Check, value: object, path: str) -> Any:
    if type(value) is not str or _UUID.fullmatch(value) is None:
        return check.problem(
            path,
            "expected a UUID such as 0192f0c1-8a3b-7c4d-9e2f-0123456789ab, "
            f"found {_show(value)}; leave id out to have one assigned",
        )
    value = value.lower()
    if value in _NOT_IDS:
        return check.problem(
            path, f"{value} is a placeholder, not an id; leave id out to have one assigned"
        )
    return value


def _check_time(check: _Check, value: object, path: str) -> Any:
    if isinstance(value, datetime):  # from Python callers
        if value.utcoffset() is None:
            return check.problem(path, "naive datetime; attach a timezone")
        try:
            return format_time(value)
        except ValueError as exc:
            return check.problem(path, str(exc))
    if type(value) is not str:
        return check.problem(
            path, f"expected an RFC 3339 timestamp string, found {_json_type(value)}"
        )
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        return check.problem(path, str(exc))
    if len(value) == 27 and value[26] == "Z" and value[10] == "T":
        return value  # already normal: UTC, 'T', six fractional digits
    return format_time(parsed)


def _check_action(check: _Check, value: object, path: str) -> Any:
    text = check.text(value, path)
    if text is _INVALID:
        return text
    limit = check.limits.max_key_length
    if len(text) > limit or _ACTION.fullmatch(text) is None:
        return check.problem(
            path,
            f"expected a dotted lowercase verb of at most {limit} characters such as "
            f"user.login or db.query (a-z, 0-9, _ and - between dots); found {_show(text)}",
        )
    return text


def _one_of(choices: tuple[str, ...]) -> Callable[[_Check, object, str], Any]:
    allowed = frozenset(choices)
    listed = ", ".join(choices)

    def check_choice(check: _Check, value: object, path: str) -> Any:
        if type(value) is not str:
            if not isinstance(value, str):
                return check.problem(path, f"expected one of {listed}; found {_json_type(value)}")
            value = str.__str__(value)
        if value not in allowed:
            return check.problem(path, f"expected one of {listed}; found {_show(value)}")
        return value

    return check_choice


def normalize_ip(text: str) -> str:
    """The stored form of an IP address; ValueError if ``text`` is not one.

    IPv6 is compressed and lowercased, and an IPv4-mapped IPv6 address becomes the
    IPv4 client it stands for (``::ffff:203.0.113.5`` → ``203.0.113.5``). Queries use
    the same function, so ``ip:2001:DB8::1`` finds what ingest stored.
    """
    if _IPV4.fullmatch(text) is not None:
        return text  # dotted-quad IPv4 without leading zeros is already normal
    address = ip_address(text)
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _check_ip(check: _Check, value: object, path: str) -> Any:
    text = check.text(value, path)
    if text is _INVALID:
        return text
    try:
        return normalize_ip(text)
    except ValueError:
        return check.problem(path, "expected an IPv4 or IPv6 address such as 203.0.113.5")


_Checker = Callable[[_Check, object, str], Any]
_Fields = dict[str, tuple[str, _Checker]]


def _fields(parent: str, spec: dict[str, _Checker]) -> _Fields:
    return {name: (f"{parent}.{name}", checker) for name, checker in spec.items()}


_ACTOR: Final = _fields(
    "$.actor",
    {
        "id": _Check.nonempty,
        "type": _one_of(ACTOR_TYPES),
        "name": _Check.text,
        "email": _Check.text,
        "session_id": _Check.text,
    },
)
_SOURCE: Final = _fields(
    "$.source", {"ip": _check_ip, "user_agent": _Check.text, "host": _Check.text}
)
_TARGET: Final = _fields("$.target", {"type": _Check.text, "id": _Check.text, "name": _Check.text})
_CONTEXT: Final = _fields(
    "$.context",
    dict.fromkeys(
        ("request_id", "trace_id", "span_id", "function", "module", "version", "commit", "host"),
        _Check.text,
    ),
)


def _object(fields: _Fields, required: tuple[str, ...] = ()) -> _Checker:
    def check_object(check: _Check, value: object, path: str) -> Any:
        if not isinstance(value, dict):
            return check.problem(path, f"expected an object, found {_json_type(value)}")
        result: dict[str, Any] = {}
        for name, item in value.items():
            field = fields.get(name)
            if field is None:
                check.unknown_field(name, path)
            elif item is not None:  # null means absent
                item_path, checker = field
                copy = checker(check, item, item_path)
                if copy is not _INVALID:
                    result[name] = copy
        for name in required:
            if value.get(name) is None:
                check.problem(f"{path}.{name}", "required field is missing")
        check.bound += _FIELD_OVERHEAD
        return result

    return check_object


def _check_metadata(check: _Check, value: object, path: str) -> Any:
    if not isinstance(value, dict):
        return check.problem(path, f"expected an object, found {_json_type(value)}")
    check.bound += _FIELD_OVERHEAD
    result = _copy_object(check, value, path, 1)
    limit = check.limits.max_metadata_keys
    if check.metadata_keys > limit:
        check.problem(path, f"has {check.metadata_keys} keys in all; at most {limit} are allowed")
    return result


def _copy_object(check: _Check, obj: dict[Any, Any], path: str, depth: int) -> Any:
    """Copy a metadata object, checking keys, values, depth and totals."""
    check.metadata_keys += len(obj)
    limits = check.limits
    if check.metadata_keys > limits.max_metadata_keys:
        return _INVALID  # reported once by _check_metadata; stop the work here
    result: dict[str, Any] = {}
    for raw_key, value in obj.items():
        key = raw_key
        if type(key) is not str:
            if not isinstance(key, str):
                check.problem(path, f"keys must be strings; found {_show_key(key)}")
                continue
            key = str.__str__(key)
        if not key or key[0] == "$" or len(key) > limits.max_key_length or not _is_text(key):
            check.problem(path, _bad_key(key, limits))
            continue
        check.bound += 6 * len(key) + 4
        kind = type(value)
        if kind is str:
            # The common case inline; the child path is only built for a problem.
            if len(value) <= limits.max_string_length and (
                "\x00" not in value if value.isascii() else _is_text(value)
            ):
                check.bound += 6 * len(value) + 2
                result[key] = value
                continue
        elif kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            check.bound += _SCALAR_BOUND
            result[key] = value
            continue
        copy = _copy_value(check, value, _member(path, key), depth)
        if copy is not _INVALID:
            result[key] = copy
    return result


def _copy_array(check: _Check, items: list[Any] | tuple[Any, ...], path: str, depth: int) -> Any:
    limit = check.limits.max_array_length
    if len(items) > limit:
        return check.problem(path, f"array has {len(items)} items; at most {limit} are allowed")
    result = []
    for index, item in enumerate(items):
        copy = _copy_value(check, item, f"{path}[{index}]", depth)
        if copy is not _INVALID:
            result.append(copy)
    return result


def _copy_value(check: _Check, value: object, path: str, depth: int) -> Any:
    """Check and copy one metadata value at ``depth`` (the level of its container)."""
    if value is None or value is True or value is False:
        check.bound += _SCALAR_BOUND
        return value
    if isinstance(value, str):
        return check.text(value, path)
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return check.problem(
                path,
                "integer is outside ±(2**53-1), which JSON parsers cannot read back "
                "exactly (I-JSON, RFC 7493); send big numbers as strings",
            )
        check.bound += _SCALAR_BOUND
        return int.__int__(value)  # plain int, also for an IntEnum member
    if isinstance(value, float):
        if not math.isfinite(value):
            return check.problem(
                path, f"{value!r} is not a JSON number; send it as a string or leave it out"
            )
        check.bound += _SCALAR_BOUND
        if value.is_integer() and -_FLOAT_INT_BOUND < value < _FLOAT_INT_BOUND:
            return int(value)  # 2.0 and 2 are the same JSON number; JCS prints "2"
        return float.__float__(value)
    if isinstance(value, dict | list | tuple):
        if depth >= check.limits.max_metadata_depth:
            return check.problem(
                path,
                f"nested deeper than {check.limits.max_metadata_depth} levels; "
                "flatten the metadata",
            )
        check.bound += _SCALAR_BOUND
        if isinstance(value, dict):
            return _copy_object(check, value, path, depth + 1)
        return _copy_array(check, value, path, depth + 1)
    return check.problem(path, f"expected a JSON value, found {_json_type(value)}")


_TOP: Final[_Fields] = _fields(
    "$",
    {
        "id": _check_id,
        "time": _check_time,
        "received": _Check.text,  # replaced below; listed so that it is a known field
        "service": _Check.name,
        "environment": _Check.name,
        "action": _check_action,
        "category": _Check.name,
        "outcome": _one_of(OUTCOMES),
        "actor": _object(_ACTOR, required=("id",)),
        "source": _object(_SOURCE),
        "target": _object(_TARGET),
        "context": _object(_CONTEXT),
        "reason": _Check.text,
        "metadata": _check_metadata,
    },
)
_REQUIRED: Final = ("service", "action", "actor")


_last_received: tuple[datetime, str] | None = None


def _received(now: datetime) -> str:
    """format_time(now), remembered: a bulk ingest validates thousands of events per ``now``."""
    global _last_received  # noqa: PLW0603 - a one-entry cache, per process
    last = _last_received
    if last is not None and last[0] is now:
        return last[1]
    text = format_time(now)
    _last_received = (now, text)
    return text


def validate(raw: object, *, limits: Limits = DEFAULT_LIMITS, now: datetime | None = None) -> Event:
    """Check an incoming event against schema v1 and return a fresh, normalized copy.

    ``now`` is the server's receive time (default: the current time); it becomes
    ``received`` whatever the client sent, and ``time`` when the client sent none.
    Raises :class:`~glasslog.errors.EventError` listing every problem found.
    """
    if not isinstance(raw, dict):
        raise EventError([Problem("$", f"expected a JSON object, found {_json_type(raw)}")])
    received = _received(datetime.now(UTC) if now is None else now)
    check = _Check(limits)
    event: Event = {}
    for name, value in raw.items():
        field = _TOP.get(name)
        if field is None:
            check.unknown_field(name, "$")
        elif value is not None and name != "received":  # null means absent; received is ours
            path, checker = field
            copy = checker(check, value, path)
            if copy is not _INVALID:
                event[name] = copy
    for name in _REQUIRED:
        if raw.get(name) is None:
            check.problem(f"$.{name}", "required field is missing")

    if "id" not in event:
        event["id"] = uuid7(now)
    if "time" not in event:
        event["time"] = received
    event["received"] = received
    if "outcome" not in event:
        event["outcome"] = "unknown"
    if check.bound > limits.max_event_bytes:  # only then is the exact size worth computing
        size = len(canonical(event))
        if size > limits.max_event_bytes:
            check.problem(
                "$",
                f"event is {size} bytes as canonical JSON; at most {limits.max_event_bytes} "
                "are allowed (shrink metadata or long strings)",
            )
    if check.problems:
        raise EventError(check.problems)
    return event


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return f"Python {type(value).__name__}"


def _show(value: object) -> str:
    """A short, printable rendering of a rejected value for an error message.

    A string is quoted only when it can be quoted whole and as it is. Messages are
    scrubbed of secrets before they are shown (glasslog.ingest.lines), and detectors
    recognise a whole secret standing apart from letters and digits: not the first 40
    characters of one, nor one behind an escape such as ``\\n`` or ``\\x00``.
    """
    if not isinstance(value, str):
        return _json_type(value)
    if _quotable(value):
        return repr(value)
    return f"a string of {len(value):,} characters"


def _show_name(key: str) -> str:
    """A key for a message: quoted as :func:`_show` would, else only its length."""
    return repr(key) if _quotable(key) else f"({len(key):,} characters)"


def _quotable(text: str) -> bool:
    return len(text) <= 40 and text.isprintable()  # repr escapes exactly the unprintable


def _show_key(key: object) -> str:
    """A non-string key (from a Python caller) for a message: a small number as written,
    anything else by its type alone — the repr of an arbitrary object may recurse
    without end, fail, or run the caller's code."""
    if type(key) is int and -MAX_SAFE_INTEGER <= key <= MAX_SAFE_INTEGER:
        return f"number {key}"
    return _json_type(key)


def _is_text(value: str) -> bool:
    if value.isascii():
        return "\x00" not in value
    return _NUL_OR_SURROGATE.search(value) is None


def _bad_chars(value: str) -> str:
    if "\x00" in value:
        return "string contains a NUL character (U+0000); remove it or encode the data"
    return "string contains a lone surrogate, which is not Unicode text; fix its encoding"


def _bad_key(key: str, limits: Limits) -> str:
    if not key:
        return "empty key; metadata keys must have a name"
    if key[0] == "$":
        return f"key {_show_name(key)} starts with '$', which is reserved for glasslog; rename it"
    if len(key) > limits.max_key_length:
        return (
            f"a key has {len(key)} characters; at most {limits.max_key_length} are allowed"
            if len(key) > 40
            else f"key {_show(key)} has {len(key)} characters; "
            f"at most {limits.max_key_length} are allowed"
        )
    return f"key {_show_name(key)}: {_bad_chars(key)}"
