"""The read policy: roles, what each may do and see, and how OIDC claims map to them.

A policy is a TOML file (``<data>/policy.toml`` unless ``--policy FILE`` or
``GLASSLOG_POLICY`` names another) with one ``[roles.NAME]`` table per role and an
optional ``[oidc]`` table. Its key names are fixed (docs/access.md) so that people and
tools can write policies. It decides who sees what, so loading it is strict and fails
closed: every problem is an error naming the file, the line and the fix, and nothing
is ever read under a policy that did not load.

Scope (which events exist for a role) is ``services`` and ``actions`` (globs,
required: a role listing none sees nothing), ``categories`` and ``environments``
(optional, default all), ``max_age`` and ``query`` (ANDed in). Field rules are
``mask`` (shown as the field's commitment) and ``hide`` (left out, kept as a
commitment in evidence), as RFC 6901 JSON Pointers. Both may name only committed
fields, because the commitment is what lets a reader verify an event without seeing
the value (docs/ledger.md, "Redactable leaves").
"""

from __future__ import annotations

import pathlib
import re
import stat
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from glasslog.errors import ConfigError, NoteError, QueryError
from glasslog.ledger.commit import DEFAULT_SENSITIVE, Path, parse_pointer, show_pointer
from glasslog.ledger.cosignature import CosignatureVerifier
from glasslog.query.language import parse
from glasslog.tomllines import Lines

__all__ = [
    "DEFAULT_POLICY",
    "PERMISSIONS",
    "POLICY_NAME",
    "OIDCConfig",
    "Policy",
    "PolicyError",
    "Role",
    "WitnessEndpoint",
    "check_policy",
    "explain",
    "load_policy",
    "parse_duration",
    "parse_pointer",
]

POLICY_NAME = "policy.toml"

PERMISSIONS: Final = (
    "search",
    "get",
    "aggregate",
    "trace",
    "tail",
    "proof",
    "export",
    "admin",
    "ingest",
)
"""What a role may do. ``aggregate`` covers count, count-by and histograms."""

_READS: Final = ("search", "get", "aggregate", "trace", "tail", "proof", "export")

_ROLE_KEYS: Final = (
    "permissions",
    "services",
    "actions",
    "categories",
    "environments",
    "max_age",
    "query",
    "mask",
    "hide",
)
_OIDC_BROWSER_KEYS: Final = ("client_id", "authorization_endpoint", "token_endpoint", "scope")
_OIDC_KEYS: Final = ("issuer", "audience", "jwks", "roles_claim", "roles", *_OIDC_BROWSER_KEYS)
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NAME_GLOB = re.compile(r"[A-Za-z0-9*][A-Za-z0-9_.:/@+*-]*")
_ACTION_GLOB = re.compile(r"[a-z0-9*][a-z0-9_.*-]*")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdwy])")
_UNITS: Final = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}

Pointer = Path
"""A JSON Pointer's reference tokens, unescaped: ``/actor/email`` is ``("actor", "email")``."""


class PolicyError(ConfigError):
    """A policy that cannot be used; ``problems`` lists every one found, each with its line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Role:
    """One role of the policy, validated."""

    name: str
    permissions: frozenset[str]
    services: tuple[str, ...]
    actions: tuple[str, ...]
    categories: tuple[str, ...] | None = None
    """None: every category."""
    environments: tuple[str, ...] | None = None
    """None: every environment."""
    max_age: timedelta | None = None
    query: str | None = None
    mask: tuple[Pointer, ...] = ()
    hide: tuple[Pointer, ...] = ()

    def may(self, permission: str) -> bool:
        """Whether the role has ``permission`` (``admin`` implies every other)."""
        return permission in self.permissions or "admin" in self.permissions


@dataclass(frozen=True, slots=True)
class OIDCConfig:
    """``[oidc]``: which bearer tokens are principals, and the roles their claims give."""

    issuer: str
    audience: str
    jwks: str
    """A URL (https) or a file path to a JSON Web Key Set."""
    roles_claim: str
    roles: dict[str, str] = field(default_factory=dict)
    """Claim value → role name."""
    client_id: str | None = None
    """The web UI's public client at the issuer: set, browser sign-in is offered."""
    authorization_endpoint: str | None = None
    """Given, or None to read it from the issuer's discovery document."""
    token_endpoint: str | None = None
    scope: str = "openid"


@dataclass(frozen=True, slots=True)
class Policy:
    """Every role, and the OIDC settings if any."""

    roles: dict[str, Role]
    oidc: OIDCConfig | None = None
    source: str = "the policy"
    witnesses: tuple[WitnessEndpoint, ...] = ()
    """The witnesses each new checkpoint is sent to (``[[witness]]``, docs/witness.md)."""


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A C2SP tlog-witness: its submission prefix and its cosigner vkey (``[[witness]]``)."""

    url: str
    vkey: str


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1y`` (365 days); ValueError otherwise."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and a unit, such as 30d, 12h, "
            "90m, 45s, 2w or 1y"
        )
    return int(found.group(1)) * _UNITS[found.group(2)]


def committed_pointers(extra: Iterable[Pointer] = ()) -> str:
    """The committed fields a policy may mask or hide, in words (for messages)."""
    named = [show_pointer(p) for p in (*DEFAULT_SENSITIVE, *extra)]
    return ", ".join(named) + ", and /metadata/KEY for each top-level metadata key"


def _is_committed(pointer: Pointer, extra: Sequence[Pointer]) -> bool:
    if pointer[0] == "metadata" and len(pointer) <= 2:
        return True  # the whole metadata (each key of it), or one top-level key
    return pointer in DEFAULT_SENSITIVE or pointer in extra


class _Reader:
    """Validation of one policy text, collecting every problem with its line."""

    def __init__(self, text: str, source: str, committed: Sequence[Pointer]) -> None:
        self.lines = Lines(text)
        self.source = source
        self.committed = committed
        self.problems: list[str] = []

    def problem(self, path: Sequence[str], message: str) -> None:
        line = self.lines.line(*path)
        where = f"{self.source}:{line}" if line is not None else self.source
        self.problems.append(f"{where}: {'.'.join(path)}: {message}")

    def strings(self, data: dict[str, Any], path: tuple[str, ...], key: str) -> list[str] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem((*path, key), f'expected an array of strings, such as ["{key}-a"]')
            return None
        return value

    def globs(
        self, data: dict[str, Any], path: tuple[str, ...], key: str, pattern: re.Pattern[str]
    ) -> tuple[str, ...] | None:
        values = self.strings(data, path, key)
        if values is None:
            return None
        for value in values:
            if pattern.fullmatch(value) is None:
                example = "payments or billing-*" if key != "actions" else "db.query or user.*"
                self.problem(
                    (*path, key),
                    f"{value!r} is not a valid glob for {key}: use the characters a name may "
                    f"hold and '*' for any run of them, as {example}",
                )
        return tuple(values)

    def pointers(
        self, data: dict[str, Any], path: tuple[str, ...], key: str
    ) -> tuple[Pointer, ...]:
        values = self.strings(data, path, key) or []
        out: list[Pointer] = []
        for value in values:
            try:
                pointer = parse_pointer(value)
            except ValueError as exc:
                self.problem((*path, key), str(exc))
                continue
            if len(pointer) > 2:
                self.problem(
                    (*path, key),
                    f"{value} is inside {show_pointer(pointer[:2])}, which is committed as a "
                    f"whole (commitments cover fields at most two deep): "
                    f"{key} {show_pointer(pointer[:2])}",
                )
                continue
            if not _is_committed(pointer, self.committed):
                self.problem(
                    (*path, key),
                    f"{value} is not a committed field, so a reader could not verify an event "
                    f"without seeing it. Fields a policy may {key}: "
                    f"{committed_pointers(self.committed)}. To commit {value} too, add it to "
                    f'[ledger] commit = ["{value}"] in the log\'s glasslog.toml; it applies to '
                    "events ingested afterwards",
                )
                continue
            out.append(pointer)
        return tuple(out)

    def role(self, name: str, data: Any) -> Role | None:
        path = ("roles", name)
        if not isinstance(data, dict):
            self.problem(path, f"expected a table: write [roles.{name}] and its keys below it")
            return None
        if _ROLE_NAME.fullmatch(name) is None:
            self.problem(path, "a role name is letters, digits, '_', '.' and '-' (at most 64)")
        for key in data:
            if key not in _ROLE_KEYS:
                self.problem(
                    (*path, key), f"unknown key; a role's keys are: {', '.join(_ROLE_KEYS)}"
                )
        permissions = self.strings(data, path, "permissions")
        if permissions is None and "permissions" not in data:
            self.problem(path, 'has no permissions; add for example permissions = ["search"]')
        for permission in permissions or ():
            if permission not in PERMISSIONS:
                self.problem(
                    (*path, "permissions"),
                    f"unknown permission {permission!r}; the permissions are: "
                    f"{', '.join(PERMISSIONS)}",
                )
        scope: dict[str, tuple[str, ...] | None] = {}
        for key, pattern in (
            ("services", _NAME_GLOB),
            ("actions", _ACTION_GLOB),
            ("categories", _NAME_GLOB),
            ("environments", _NAME_GLOB),
        ):
            scope[key] = self.globs(data, path, key, pattern)
        for key in ("services", "actions"):
            if key not in data:
                self.problem(
                    path,
                    f'has no {key}; list the {key} it may read (globs), or ["*"] for all: '
                    "a role that lists none sees nothing",
                )
        max_age: timedelta | None = None
        if "max_age" in data:
            if not isinstance(data["max_age"], str):
                self.problem((*path, "max_age"), 'expected a duration string, such as "30d"')
            else:
                try:
                    max_age = parse_duration(data["max_age"])
                except ValueError as exc:
                    self.problem((*path, "max_age"), str(exc))
        query: str | None = None
        if "query" in data:
            if not isinstance(data["query"], str):
                self.problem((*path, "query"), 'expected a string, such as "-action:secret.*"')
            else:
                query = data["query"]
                try:
                    parse(query, now=datetime.now(UTC))
                except QueryError as exc:
                    self.problem((*path, "query"), f"not a valid query: {exc}")
        mask = self.pointers(data, path, "mask")
        hide = self.pointers(data, path, "hide")
        for pointer in set(mask) & set(hide):
            self.problem(
                (*path, "hide"), f"{show_pointer(pointer)} is both masked and hidden; keep one"
            )
        return Role(
            name=name,
            permissions=frozenset(p for p in permissions or () if p in PERMISSIONS),
            services=scope["services"] or (),
            actions=scope["actions"] or (),
            categories=scope["categories"],
            environments=scope["environments"],
            max_age=max_age,
            query=query,
            mask=mask,
            hide=hide,
        )

    def oidc(self, data: Any, roles: dict[str, Role]) -> OIDCConfig | None:
        path = ("oidc",)
        if not isinstance(data, dict):
            self.problem(path, "expected a table: [oidc] with issuer, audience, jwks, roles_claim")
            return None
        for key in data:
            if key not in _OIDC_KEYS:
                self.problem(
                    (*path, key), f"unknown key; [oidc]'s keys are: {', '.join(_OIDC_KEYS)}"
                )
        values: dict[str, str] = {}
        for key in ("issuer", "audience", "jwks", "roles_claim"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                self.problem((*path, key), "is required, as a non-empty string")
            else:
                values[key] = value
        issuer = values.get("issuer", "")
        if issuer and not issuer.startswith("https://"):
            self.problem((*path, "issuer"), "an OIDC issuer is an https:// URL")
        jwks = values.get("jwks", "")
        if jwks.startswith("http://"):
            self.problem((*path, "jwks"), "fetch keys over https:// (or give a file path)")
        mapping = data.get("roles", {})
        claims: dict[str, str] = {}
        if not isinstance(mapping, dict):
            self.problem((*path, "roles"), 'expected a table: [oidc.roles] "claim value" = "role"')
        else:
            for claim, role in mapping.items():
                if not isinstance(role, str):
                    self.problem((*path, "roles", claim), "expected a role name (a string)")
                elif role not in roles:
                    self.problem(
                        (*path, "roles", claim),
                        f"names the role {role!r}, which the policy does not define; the roles "
                        f"are: {', '.join(sorted(roles)) or 'none'}",
                    )
                else:
                    claims[claim] = role
        browser: dict[str, str] = {}
        for key in _OIDC_BROWSER_KEYS:
            if key not in data:
                continue
            value = data[key]
            if not isinstance(value, str) or not value:
                self.problem((*path, key), "expected a non-empty string")
            elif key.endswith("_endpoint") and not value.startswith("https://"):
                self.problem((*path, key), "an OIDC endpoint is an https:// URL")
            else:
                browser[key] = value
        if "client_id" not in data and any(key in data for key in _OIDC_BROWSER_KEYS):
            self.problem(
                (*path, "client_id"),
                "is required for browser sign-in, which the endpoints and scope configure",
            )
        if len(values) < 4:
            return None
        return OIDCConfig(
            issuer=values["issuer"],
            audience=values["audience"],
            jwks=values["jwks"],
            roles_claim=values["roles_claim"],
            roles=claims,
            client_id=browser.get("client_id"),
            authorization_endpoint=browser.get("authorization_endpoint"),
            token_endpoint=browser.get("token_endpoint"),
            scope=browser.get("scope", "openid"),
        )


def _witnesses(reader: _Reader, value: object) -> tuple[WitnessEndpoint, ...]:
    """``[[witness]]`` tables: ``url`` (http or https) and ``vkey`` (a cosigner vkey)."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        reader.problem(("witness",), 'expected [[witness]] tables with url = "…" and vkey = "…"')
        return ()
    found: list[WitnessEndpoint] = []
    for table in value:
        for key in table:
            if key not in ("url", "vkey"):
                reader.problem(("witness", key), "unknown key; a [[witness]]'s keys are url, vkey")
        url, vkey = table.get("url"), table.get("vkey")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            reader.problem(("witness", "url"), "expected the witness's http:// or https:// URL")
            continue
        try:
            CosignatureVerifier(vkey if isinstance(vkey, str) else "")
        except NoteError as exc:
            reader.problem(("witness", "vkey"), f"expected the witness's vkey: {exc}")
            continue
        found.append(WitnessEndpoint(url=url.rstrip("/"), vkey=str(vkey).strip()))
    return tuple(found)


def check_policy(
    text: str, *, source: str = "policy.toml", committed: Sequence[Pointer] = ()
) -> Policy:
    """Validate a policy's text; raise :class:`PolicyError` listing every problem.

    ``committed`` are the log's extra committed fields (``[ledger] commit`` in its
    glasslog.toml), which ``mask`` and ``hide`` may name besides the defaults.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{source}: not valid TOML: {exc}"]) from None
    reader = _Reader(text, source, committed)
    for key in data:
        # [retention] is read by glasslog.lifecycle.retention (docs/retention.md),
        # [erasure] by glasslog.lifecycle.erasure (docs/erasure.md).
        if key not in ("roles", "oidc", "witness", "retention", "erasure"):
            reader.problem(
                (key,),
                "unknown section; a policy has [roles.NAME] tables, [oidc], [[witness]], "
                "[retention] and [erasure]",
            )
    roles: dict[str, Role] = {}
    raw_roles = data.get("roles", {})
    if not isinstance(raw_roles, dict):
        reader.problem(("roles",), "expected tables: [roles.NAME]")
    else:
        for name, value in raw_roles.items():
            role = reader.role(name, value)
            if role is not None:
                roles[name] = role
    if not raw_roles:
        reader.problems.append(
            f"{source}: defines no role, so nobody could read anything; add a [roles.NAME] table"
        )
    oidc = reader.oidc(data["oidc"], roles) if "oidc" in data else None
    witnesses = _witnesses(reader, data["witness"]) if "witness" in data else ()
    if reader.problems:
        raise PolicyError(reader.problems)
    return Policy(roles=roles, oidc=oidc, source=source, witnesses=witnesses)


def load_policy(path: pathlib.Path, *, committed: Sequence[Pointer] = ()) -> Policy:
    """Read and validate the policy file at ``path`` (it must exist: no policy, no reads)."""
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            [f"{path}: no policy file; run `glasslog init` to write the default one, or give "
             "--policy FILE"]
        ) from None  # fmt: skip
    except OSError as exc:
        raise PolicyError([f"{path}: cannot read it: {exc.strerror}"]) from None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PolicyError(
            [f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}), who could "
             f"grant themselves any role; restrict it with `chmod go-w {path}`"]
        )  # fmt: skip
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError([f"{path} is not UTF-8 text; save it as UTF-8"]) from None
    return check_policy(text, source=str(path), committed=committed)


def _list(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _scope(noun: str, globs: Sequence[str] | None) -> str:
    if globs is None or "*" in globs:
        return f"every {noun}"
    if not globs:
        return f"no {noun} at all"
    return f"{noun}s matching {_list(globs)}"


def explain(role: Role) -> str:
    """What ``role`` can and cannot see and do, in plain words (``glasslog policy explain``)."""
    lines = [f"Role {role.name}:"]
    if "admin" in role.permissions:
        lines.append("- may do everything: every read, ingest, and administration (admin).")
    else:
        allowed = [p for p in PERMISSIONS if p in role.permissions]
        denied = [p for p in _READS if p not in role.permissions]
        lines.append(f"- may: {', '.join(allowed) or 'nothing'}.")
        if denied:
            lines.append(f"- may not: {', '.join(denied)}.")
    if not role.services or not role.actions:
        lines.append(
            "- sees no events at all: it lists no "
            + ("services" if not role.services else "actions")
            + "."
        )
    else:
        lines.append(
            f"- sees events of {_scope('service', role.services)}, "
            f"with {_scope('action', role.actions)},"
        )
        categories = _scope("category", role.categories)
        environments = _scope("environment", role.environments)
        lines.append(f"  of {categories} and {environments}.")
        if role.max_age is not None:
            lines.append(
                f"- sees nothing older than {_age(role.max_age)} before the moment of each read."
            )
        if role.query:
            lines.append(f"- sees only events that also match the query: {role.query}")
        lines.append(
            "- other events do not exist for it: searches, counts, histograms, traces and "
            "lookups by seq or id never show or count them."
        )
    if role.mask:
        lines.append(
            "- sees these fields masked (their commitment, not their value), and cannot search, "
            f"count or sort by them: {', '.join(show_pointer(p) for p in role.mask)}."
        )
    if role.hide:
        lines.append(
            "- does not see these fields at all (left out; a commitment in evidence): "
            f"{', '.join(show_pointer(p) for p in role.hide)}."
        )
    if not role.mask and not role.hide:
        lines.append("- sees every field of the events in its scope in clear.")
    return "\n".join(lines)


def _age(age: timedelta) -> str:
    days, seconds = age.days, age.seconds
    if seconds == 0 and days % 365 == 0:
        return f"{days // 365} year{'s' if days // 365 != 1 else ''}"
    if seconds == 0:
        return f"{days} day{'s' if days != 1 else ''}"
    hours = age.total_seconds() / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


DEFAULT_POLICY = """\
# glasslog read policy: who may read what (docs/access.md).
#
# Every read by a principal (an API key from `glasslog keys create`, or an OIDC token)
# goes through one role of this file. Events outside a role's scope do not exist for
# it; masked fields show only their commitment; hidden fields are left out. Reads by
# the owner of the data directory (no --key) are not restricted: that user can read
# the files anyway.
#
# Check a change before relying on it:  glasslog policy check
# Read what a role may do:              glasslog policy explain ROLE

[roles.admin]
# permissions: search, get, aggregate (count, count --by, histogram), trace, tail,
# proof, export, ingest, and admin (everything, including keys and grants).
permissions  = ["admin"]
# services, actions: globs ('*' is any run of characters); both required. A role that
# lists none sees nothing.
services     = ["*"]
actions      = ["*"]
# Optional scope, each ANDed in:
# categories   = ["*"]             globs on category (default: all)
# environments = ["prod"]          globs on environment (default: all)
# max_age      = "30d"             older events do not exist for the role (s, m, h, d, w, y)
# query        = "-action:secret.*"   any query, ANDed into every read
# Field rules, as JSON Pointers (RFC 6901), committed fields only: /actor/name,
# /actor/email, /source/ip, /source/user_agent, /metadata/KEY, and what
# [ledger] commit in glasslog.toml adds:
# mask         = ["/actor/email"]  shown as its commitment {"$commit": ...}
# hide         = ["/metadata/headers"]   left out (a commitment in evidence)

# A developer role, for example:
# [roles.payments-dev]
# permissions  = ["search", "get", "aggregate", "trace", "tail", "proof"]
# services     = ["payments", "billing-*"]
# actions      = ["*"]
# environments = ["prod", "staging"]
# max_age      = "30d"
# query        = "-action:secret.*"
# mask         = ["/actor/email", "/source/ip"]
# hide         = ["/metadata/headers"]

# Who reads the audit trail of reads (service glasslog, category audit):
# [roles.auditor]
# permissions  = ["search", "get", "aggregate", "trace", "proof"]
# services     = ["glasslog"]
# actions      = ["audit.*"]

# Sign-in with OpenID Connect (bearer JWTs: RS256, ES256 or EdDSA):
# [oidc]
# issuer       = "https://idp.example.com"
# audience     = "glasslog"
# jwks         = "https://idp.example.com/.well-known/jwks.json"   # or a file path
# roles_claim  = "groups"
# client_id    = "glasslog-ui"   # optional: offers browser sign-in in the web UI (docs/ui.md)
# [oidc.roles]
# "payments-team" = "payments-dev"
"""
"""What ``glasslog init`` writes: one admin role, and every key explained."""
