"""OIDC bearer tokens as principals: JWTs checked against the policy's ``[oidc]``.

A token is a principal when PyJWT (a JOSE library made for this) verifies its
signature with a key of the configured JWKS, with one of the asymmetric algorithms
RS256, ES256 or EdDSA, and its ``iss``, ``aud`` and ``exp`` (30 s of clock skew
allowed); and when its ``roles_claim`` maps to at least one role of the policy.
Everything else is refused, with a reason that never echoes the token:

* ``alg: none`` and every HMAC algorithm are refused outright, so a public key can
  never be used as an HMAC secret (the classic confusion attack);
* a key id the JWKS does not hold makes one fresh fetch (keys rotate), then refuses.

The JWKS is a URL (https; fetched and cached by PyJWT's client) or a file path
(re-read when a key id is unknown), as the policy says.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jwt

from glasslog.access.enforce import Principal
from glasslog.access.keys import AuthError, active_grants
from glasslog.access.policy import OIDCConfig, Policy
from glasslog.event import epoch_us
from glasslog.store.base import Store

__all__ = ["ALGORITHMS", "OIDCVerifier"]

ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")
LEEWAY: Final = 30


class OIDCVerifier:
    """Checks bearer JWTs for one ``[oidc]`` configuration; keeps its JWKS cached."""

    def __init__(self, config: OIDCConfig) -> None:
        self.config = config
        self._client: jwt.PyJWKClient | None = None
        self._file_keys: dict[str, jwt.PyJWK] | None = None
        if config.jwks.startswith("https://"):
            self._client = jwt.PyJWKClient(config.jwks, cache_keys=True, lifespan=3600)

    def _key(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            raise AuthError("the token names no key id (kid); the JWKS cannot be searched")
        if self._client is not None:
            try:
                return self._client.get_signing_key(kid)  # refetches once when unknown
            except jwt.PyJWKClientConnectionError:
                raise AuthError("the OIDC keys (JWKS) could not be fetched; try again") from None
            except jwt.PyJWKClientError:
                raise AuthError("the token's key id is not in the issuer's JWKS") from None
        for refresh in (False, True):
            if self._file_keys is None or refresh:
                self._file_keys = _read_jwks(Path(self.config.jwks))
            found = self._file_keys.get(kid)
            if found is not None:
                return found
        raise AuthError("the token's key id is not in the issuer's JWKS")

    def authenticate(
        self, token: str, policy: Policy, store: Store, *, now: datetime | None = None
    ) -> Principal:
        """The principal the token stands for, or :class:`AuthError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("that is neither an API key nor a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError(
                f"the token is signed with {alg!r}; only {', '.join(ALGORITHMS)} are accepted"
            )
        key = self._key(header.get("kid"))
        moment = now or datetime.now(UTC)
        try:
            claims = _decode_at(token, key, self.config, moment)
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the token is from another issuer") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is not valid: {type(exc).__name__}") from None
        names = _roles(claims.get(self.config.roles_claim), self.config.roles, policy)
        if not names:
            raise AuthError(
                f"the token's {self.config.roles_claim!r} claim maps to no role of the policy"
            )
        principal = f"oidc:{claims['sub']}"
        granted = active_grants(store, principal, epoch_us(moment))
        roles = [policy.roles[n] for n in names]
        extra = [policy.roles[g.role] for g in granted if g.role in policy.roles]
        return Principal(
            id=principal,
            name=str(claims.get("name") or claims.get("email") or claims["sub"]),
            kind="user",
            roles=tuple(roles + [r for r in extra if r.name not in names]),
            grants=tuple(g.id for g in granted if g.role in policy.roles),
        )


def _decode_at(token: str, key: jwt.PyJWK, config: OIDCConfig, now: datetime) -> dict[str, Any]:
    """Verify signature, algorithm, issuer and audience with PyJWT, and the times as of
    ``now`` (the reader's clock, which tests set): PyJWT reads the system clock."""
    claims: dict[str, Any] = jwt.decode(
        token,
        key=key.key,
        algorithms=list(ALGORITHMS),
        audience=config.audience,
        issuer=config.issuer,
        options={"require": ["exp", "iss", "aud", "sub"], "verify_exp": False,
                 "verify_nbf": False, "verify_iat": False},
    )  # fmt: skip
    at = now.timestamp()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or at > exp + LEEWAY:
        raise jwt.ExpiredSignatureError("the token has expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and at < nbf - LEEWAY:
        raise jwt.ImmatureSignatureError("the token is not valid yet")
    return claims


def _roles(value: object, mapping: dict[str, str], policy: Policy) -> list[str]:
    values: Sequence[object] = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in values:
        if isinstance(item, str):
            role = mapping.get(item)
            if role is not None and role in policy.roles and role not in names:
                names.append(role)
    return names


def _read_jwks(path: Path) -> dict[str, jwt.PyJWK]:
    """The keys of a JWKS file, by key id (keys of other algorithms are left out)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = jwt.PyJWKSet.from_dict(data).keys
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise AuthError(f"the OIDC keys in {path} cannot be read: {exc}") from None
    return {k.key_id: k for k in keys if k.key_id is not None}
