"""API keys: principals for services and people without OIDC.

A key reads ``glk_<id>_<secret>``: the id (12 hex digits) is public and names the key
in listings, revocations and the audit trail; the secret (32 random bytes, base64url)
is shown once, when the key is made, and stored only as its SHA-256. A hash made for
passwords (slow on purpose) would add nothing: the secret is random and long, so
guessing it from its hash is as hard as guessing it outright.

Keys live in the store, so every node of a shared PostgreSQL store sees them, and
their tables are append-only: a revocation is a row of its own and cannot be undone.
Making and revoking a key are events in the ledger (service ``glasslog``, actions
``key.create`` and ``key.revoke``), written by the caller (``glasslog keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from glasslog.access.enforce import Principal
from glasslog.access.policy import Policy
from glasslog.errors import GlasslogError
from glasslog.event import epoch_us
from glasslog.store.base import ApiKey, Grant, Store

__all__ = [
    "AuthError",
    "NewKey",
    "active_grants",
    "authenticate",
    "make_grant",
    "make_key",
    "principal_id",
]

_KEY = re.compile(r"glk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class AuthError(GlasslogError):
    """The credential is not a principal: unknown, malformed, expired or revoked."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: ``text`` is the only copy of the secret anywhere."""

    text: str
    stored: ApiKey


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def make_key(
    *, role: str, name: str, expires: timedelta | None, now: datetime | None = None
) -> NewKey:
    """A fresh key for ``role`` (not yet stored: the caller records it with its event)."""
    moment = now or datetime.now(UTC)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    stored = ApiKey(
        id=key_id,
        hash=_digest(secret),
        role=role,
        name=name,
        created_us=epoch_us(moment),
        expires_us=None if expires is None else epoch_us(moment + expires),
    )
    return NewKey(text=f"glk_{key_id}_{secret}", stored=stored)


def looks_like_key(text: str) -> bool:
    """Whether ``text`` has an API key's shape (else it may be a JWT)."""
    return text.startswith("glk_")


def _when(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%SZ")


def authenticate(
    store: Store, policy: Policy, text: str, *, now: datetime | None = None
) -> Principal:
    """The principal an API key stands for; :class:`AuthError` otherwise.

    The messages never echo the key. An unknown id and a wrong secret get the same
    words, so a guess learns nothing; a key that was right but has expired or was
    revoked says so, which only its holder can see.
    """
    found = _KEY.fullmatch(text.strip())
    if found is None:
        raise AuthError(
            "that is not an API key: keys read glk_<12 hex digits>_<43 characters>, as "
            "`glasslog keys create` prints them"
        )
    key_id, secret = found.groups()
    stored = store.api_key(key_id)
    if stored is None or not hmac.compare_digest(stored.hash, _digest(secret)):
        raise AuthError("unknown API key, or a wrong secret for it")
    moment = epoch_us(now or datetime.now(UTC))
    if stored.revoked_us is not None:
        raise AuthError(f"API key {key_id} was revoked at {_when(stored.revoked_us)}")
    if stored.expires_us is not None and moment >= stored.expires_us:
        raise AuthError(f"API key {key_id} expired at {_when(stored.expires_us)}")
    role = policy.roles.get(stored.role)
    if role is None:
        raise AuthError(
            f"API key {key_id} is for the role {stored.role!r}, which the policy no longer "
            "defines: it grants nothing"
        )
    principal_id = f"key:{key_id}"
    granted = active_grants(store, principal_id, moment)
    extra = [policy.roles[g.role] for g in granted if g.role in policy.roles]
    return Principal(
        id=principal_id,
        name=stored.name,
        kind="service",
        roles=(role, *(r for r in extra if r.name != role.name)),
        grants=tuple(g.id for g in granted if g.role in policy.roles),
    )


MAX_GRANT: Final = timedelta(days=7)
"""Break-glass is for an incident, not a standing role: a grant lasts at most this."""


def principal_id(text: str) -> str:
    """A principal as grants name it: ``key:<id>`` (a bare key id is one) or ``oidc:<sub>``."""
    if re.fullmatch(r"[0-9a-f]{12}", text):
        return f"key:{text}"
    if re.fullmatch(r"key:[0-9a-f]{12}|oidc:.+", text):
        return text
    raise AuthError(
        f"{text!r} names no principal: give an API key's id (12 hex digits, as `glasslog keys "
        "list` shows), key:<id>, or oidc:<subject>"
    )


def make_grant(
    *, principal: str, role: str, lifetime: timedelta, reason: str, now: datetime | None = None
) -> Grant:
    """A break-glass grant (not yet stored: the caller records it with its event)."""
    if lifetime > MAX_GRANT:
        raise AuthError(f"a grant lasts at most {MAX_GRANT.days} days; ask again when it ends")
    if not reason.strip():
        raise AuthError("a grant needs a --reason: break-glass access must say why")
    moment = now or datetime.now(UTC)
    return Grant(
        id=f"g-{secrets.token_hex(6)}",
        principal=principal,
        role=role,
        reason=reason.strip(),
        created_us=epoch_us(moment),
        expires_us=epoch_us(moment + lifetime),
    )


def active_grants(store: Store, principal: str, now_us: int) -> list[Grant]:
    """The principal's grants in force at ``now_us``: expiry needs no process to run."""
    return [
        g
        for g in store.grants(principal)
        if g.revoked_us is None and g.created_us <= now_us < g.expires_us
    ]
