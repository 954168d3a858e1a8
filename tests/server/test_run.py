"""How the server is run (issue 11 §1, §2): TLS, no plain HTTP off loopback, a metrics
address without a principal, OIDC bearer tokens, and no route that forgets to ask
who calls."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.routing import APIRoute
from jwt.algorithms import ECAlgorithm
from starlette.routing import BaseRoute

from glasslog.server.app import create_app, principal
from glasslog.server.service import Service
from tests.conftest import make_event
from tests.processes import left_behind, start, still_running
from tests.server.conftest import POLICY, Site, free_port, make_site

PUBLIC = {"/healthz", "/readyz", "/checkpoint", "/v1/vkey", "/v1/vkeys", "/v1/proof/consistency",
          "/openapi.json", "/", "/ui/{name:path}", "/v1/auth/config",
          "/tile/{level}/{rest:path}"}  # fmt: skip


def _walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route of the app with its full path, into included routers too (FastAPI
    keeps an included router as one entry of ``app.routes``: a walk that skipped it
    missed ``POST /v1/logs``)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + str(getattr(context, "prefix", "")))
        else:
            yield prefix + str(getattr(route, "path", "")), route


def test_every_route_but_the_public_ones_asks_who_calls(sqlite_site: Site) -> None:
    """Walk the app's routes: each one not named public declares the principal dependency,
    and a route of an unknown kind (not a FastAPI route) fails the test."""
    app = create_app(Service(sqlite_site.config()))
    unguarded, unknown, paths = [], [], set()
    for path, route in _walk(app.routes):
        paths.add(path)
        if not isinstance(route, APIRoute):
            if path not in PUBLIC:
                unknown.append(path)
            continue
        calls = {d.call for d in route.dependant.dependencies}
        if principal not in calls and path not in PUBLIC:
            unguarded.append(path)
    assert unguarded == [] and unknown == []
    assert paths >= PUBLIC
    assert {"/v1/logs", "/v1/events", "/v1/tail", "/metrics"} <= paths, "the walk sees them all"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    key_path.chmod(0o600)
    return cert_path, key_path


def _wait(url: str, *, verify: object = True) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", verify=verify, timeout=1).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


def test_https_with_a_certificate_and_a_metrics_address(sqlite_site: Site, tmp_path: Path) -> None:
    site = sqlite_site
    cert, key = _self_signed(tmp_path)
    port, metrics_port = free_port(), free_port()
    mark = uuid.uuid4().hex
    server = start("serve", "--data", str(site.data), "--port", str(port), "--tls-cert",
                   str(cert), "--tls-key", str(key), "--metrics-host", "127.0.0.1",
                   "--metrics-port", str(metrics_port), mark=mark,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        _wait(url, verify=trust)
        with httpx.Client(verify=trust, timeout=10) as client:
            answer = client.post(f"{url}/v1/events", json=make_event(), headers=site.auth("writer"))
            assert answer.json()["accepted"] == 1
            assert client.get(f"{url}/metrics").status_code == 401
        with httpx.Client(verify=False, timeout=10) as insecure:
            try:
                plain = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                assert plain.status_code >= 400, "plain HTTP is not served on the TLS port"
            except httpx.TransportError:
                pass
            scraped = insecure.get(f"https://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200 and "glasslog_events_ingested_total 1.0" in scraped.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode in (0, -15), server.returncode
    assert not still_running(left_behind(mark), within=5)


def test_plain_http_off_loopback_is_refused(sqlite_site: Site) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "glasslog", "serve", "--data", str(sqlite_site.data), "--host",
         "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "refusing plain HTTP on 0.0.0.0" in refused.stderr and "--tls-cert" in refused.stderr
    assert "Traceback" not in refused.stderr
    half = subprocess.run(
        [sys.executable, "-m", "glasslog", "serve", "--data", str(sqlite_site.data),
         "--tls-cert", str(sqlite_site.data / "log.vkey")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert half.returncode != 0 and "both --tls-cert and --tls-key" in half.stderr


def test_an_oidc_token_reads_over_http(tmp_path: Path) -> None:
    """A JWT from the configured issuer is a principal over HTTP; a forged one gets 401."""
    signing = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "jwks.json"
    entry = json.loads(ECAlgorithm.to_jwk(signing.public_key()))
    jwks.write_text(json.dumps({"keys": [{**entry, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    policy = POLICY + (
        f'\n[oidc]\nissuer = "https://idp.example.com"\naudience = "glasslog"\n'
        f'jwks = "{jwks}"\nroles_claim = "groups"\n[oidc.roles]\n"payments-team" = "dev"\n'
    )
    site = make_site(tmp_path, None, policy=policy)
    now = int(time.time())
    claims = {"iss": "https://idp.example.com", "aud": "glasslog", "sub": "alice", "name": "Alice",
              "groups": ["payments-team"], "iat": now, "exp": now + 600}  # fmt: skip
    token = jwt.encode(claims, signing, algorithm="ES256", headers={"kid": "k1"})
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": "k1"})  # fmt: skip
    with site.client() as client:
        me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json() == {"id": "oidc:alice", "name": "Alice", "type": "user",
                             "roles": ["dev"], "grants": [],
                             "permissions": ["aggregate", "get", "proof", "search", "tail",
                                             "trace"]}  # fmt: skip
        refused = client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
        assert refused.status_code == 401
