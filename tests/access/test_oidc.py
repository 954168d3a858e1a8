"""OIDC bearer tokens (issue 10 §2): verified, mapped to roles, and every bad one refused.

Keys are generated here and served from a JWKS file: nothing goes online.
"""

from __future__ import annotations

import base64
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from glasslog.access.keys import AuthError
from glasslog.access.oidc import OIDCVerifier
from glasslog.access.policy import Policy, check_policy
from glasslog.testing import TemporaryLog
from tests.conftest import make_event
from tests.test_cli import run

ISSUER = "https://idp.example.com"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


def _jwks(keys: dict[str, Any], path: Path, *, only: tuple[str, ...] = ("rsa", "ec", "ed")) -> None:
    entries = []
    for name, to_jwk, alg in (("rsa", RSAAlgorithm.to_jwk, "RS256"),
                              ("ec", ECAlgorithm.to_jwk, "ES256"),
                              ("ed", OKPAlgorithm.to_jwk, "EdDSA")):  # fmt: skip
        if name in only:
            entry = json.loads(to_jwk(keys[name].public_key()))
            entries.append({**entry, "kid": f"{name}-1", "alg": alg, "use": "sig"})
    path.write_text(json.dumps({"keys": entries}))


def _policy(jwks: Path) -> Policy:
    return check_policy(_policy_text(jwks))


def _token(
    keys: dict[str, Any],
    kind: str = "rsa",
    *,
    signer: Any = None,
    kid: str | None = None,
    **overrides: Any,
) -> str:
    """A token for alice in payments-team; ``signer`` and ``kid`` forge one."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "glasslog", "sub": "alice", "name": "Alice",
              "groups": ["payments-team"], "iat": now, "exp": now + 600}  # fmt: skip
    header = {"kid": kid or f"{kind}-1"}
    claims.update(overrides)
    alg = {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}[kind]
    return jwt.encode(claims, signer or keys[kind], algorithm=alg, headers=header)


@pytest.fixture
def setup(
    keys: dict[str, Any], tmp_path: Path, tlog: TemporaryLog
) -> tuple[OIDCVerifier, Policy, TemporaryLog]:
    path = tmp_path / "jwks.json"
    _jwks(keys, path)
    policy = _policy(path)
    assert policy.oidc is not None
    return OIDCVerifier(policy.oidc), policy, tlog


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed"])
def test_a_valid_token_is_a_principal(
    setup: tuple[OIDCVerifier, Policy, TemporaryLog], keys: dict[str, Any], kind: str
) -> None:
    """RS256, ES256 and EdDSA, each from the JWKS; the claim maps to the role."""
    verifier, policy, tlog = setup
    principal = verifier.authenticate(_token(keys, kind), policy, tlog.store)
    assert principal.id == "oidc:alice" and principal.name == "Alice" and principal.kind == "user"
    assert [r.name for r in principal.roles] == ["dev"]


def _unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{part(claims)}."


def _hmac_with_public_key(keys: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HS256 keyed with the RSA public key's PEM."""
    pem = (
        keys["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "glasslog", "sub": "mallory", "groups": ["payments-team"],
              "exp": now + 600}  # fmt: skip

    def part(obj: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")

    import hashlib
    import hmac

    signing = part({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}) + b"." + part(claims)
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(
        b"="
    )
    return (signing + b"." + signature).decode()


def test_bad_tokens_are_refused(
    setup: tuple[OIDCVerifier, Policy, TemporaryLog], keys: dict[str, Any]
) -> None:
    verifier, policy, tlog = setup
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "wrong issuer": (_token(keys, iss="https://evil.example.com"), "another issuer"),
        "wrong audience": (_token(keys, aud="someone-else"), "another audience"),
        "expired": (_token(keys, exp=now - 3600, iat=now - 7200), "has expired"),
        "alg none": (
            _unsigned(
                {
                    "iss": ISSUER,
                    "aud": "glasslog",
                    "sub": "m",
                    "exp": now + 60,
                    "groups": ["payments-team"],
                }
            ),
            "signed with 'none'",
        ),
        "HS256 keyed with the public key": (_hmac_with_public_key(keys), "signed with 'HS256'"),
        "unknown key id": (
            _token(keys, signer=other, kid="rsa-2"),
            "key id is not in the issuer's JWKS",
        ),
        "forged signature": (_token(keys, signer=other), "not valid: InvalidSignatureError"),
        "no role": (_token(keys, groups=["marketing"]), "maps to no role"),
        "no sub": (_token(keys, sub=None), "not valid"),
        "not a token": ("hello", "neither an API key nor a JWT"),
    }
    for name, (token, message) in cases.items():
        with pytest.raises(AuthError, match=message) as info:
            verifier.authenticate(token, policy, tlog.store)
        assert token not in str(info.value), f"{name}: the token is echoed"


def test_a_rotated_key_is_fetched_again(
    keys: dict[str, Any], tmp_path: Path, tlog: TemporaryLog
) -> None:
    """A key id the cached JWKS lacks makes one fresh read, so rotation needs no restart."""
    path = tmp_path / "jwks.json"
    _jwks(keys, path, only=("rsa",))
    policy = _policy(path)
    assert policy.oidc is not None
    verifier = OIDCVerifier(policy.oidc)
    assert verifier.authenticate(_token(keys, "rsa"), policy, tlog.store).id == "oidc:alice"
    with pytest.raises(AuthError, match="key id is not in"):
        verifier.authenticate(_token(keys, "ec"), policy, tlog.store)
    _jwks(keys, path)  # the issuer adds its new key
    assert verifier.authenticate(_token(keys, "ec"), policy, tlog.store).id == "oidc:alice"


def test_a_token_reads_through_its_role_on_the_cli(keys: dict[str, Any], tmp_path: Path) -> None:
    data = tmp_path / "log"

    glasslog = partial(run, data=data)

    assert glasslog("init").returncode == 0
    jwks = tmp_path / "jwks.json"
    _jwks(keys, jwks)
    (data / "policy.toml").write_text(
        (data / "policy.toml").read_text().split("# A developer role")[0] + _policy_text(jwks)
    )
    lines = "".join(json.dumps(make_event(service=s)) + "\n" for s in ("payments", "auth"))
    assert glasslog("ingest", "-", stdin=lines).returncode == 0
    found = glasslog("search", "--key", _token(keys), "--json")
    assert found.returncode == 0, found.stderr
    assert [json.loads(line)["service"] for line in found.stdout.splitlines()] == ["payments"]
    refused = glasslog("search", "--key", _token(keys, aud="x"))
    assert refused.returncode == 1 and "another audience" in refused.stderr
    audit = glasslog("search", "action:audit.read", "--json")
    (record,) = [json.loads(line) for line in audit.stdout.splitlines()]
    assert record["actor"] == {"id": "oidc:alice", "name": "Alice", "type": "user"}


def _policy_text(jwks: Path) -> str:
    return f"""
[roles.dev]
permissions = ["search"]
services = ["payments"]
actions = ["*"]

[oidc]
issuer = "{ISSUER}"
audience = "glasslog"
jwks = "{jwks}"
roles_claim = "groups"
[oidc.roles]
"payments-team" = "dev"
"""
