"""The web UI's files at ``/`` and ``/ui/…``, and ``GET /v1/auth/config`` (docs/ui.md).

The files hold no data: the application fetches everything through the API with the
signed-in principal's credential, so they are public. They are served only from the
package's ``ui/static`` directory, by a name that must resolve inside it, and every
answer carries a strict Content-Security-Policy: no inline script, no other origin.

``/v1/auth/config`` tells the sign-in page which methods there are. Browser sign-in
with OIDC is offered when the policy's ``[oidc]`` names a ``client_id``; the
endpoints come from the policy or, when it leaves them out, from the issuer's
discovery document, read once and kept.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from glasslog.access.policy import OIDCConfig
from glasslog.server.problems import PROBLEM, problem_response
from glasslog.server.service import Service

__all__ = ["SECURITY_HEADERS", "STATIC", "install"]

STATIC: Final = Path(__file__).resolve().parent.parent / "ui" / "static"

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
"""The kinds of file served; anything else in the directory (a license) is not."""

# Plain names under plain directories: no "..", no hidden files, no backslashes.
_NAME: Final = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*")

DISCOVERY_TIMEOUT: Final = 5.0
RETRY_DISCOVERY: Final = 60.0


class OIDCBrowser(BaseModel):
    issuer: str
    client_id: str
    authorization_endpoint: str
    token_endpoint: str
    scope: str


class AuthConfig(BaseModel):
    methods: list[str]
    oidc: OIDCBrowser | None = None


def _file(name: str) -> Path | None:
    """The static file ``name`` names, or None when it is not one that may be served."""
    if not _NAME.fullmatch(name) or ".." in name.split("/"):
        return None
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC) or path.suffix not in TYPES or not path.is_file():
        return None
    return path


def _serve(request: Request, path: Path | None, *, connect: str | None = None) -> Response:
    """``path`` with the security headers; ``connect``: one more origin the page may call."""
    security = dict(SECURITY_HEADERS)
    if connect is not None:
        csp = security["Content-Security-Policy"]
        security["Content-Security-Policy"] = csp.replace(
            "connect-src 'self'", f"connect-src 'self' {connect}"
        )
    if path is None:
        return problem_response(404, "no such file of the web UI", headers=security)
    body = path.read_bytes()
    # Revalidated on each load (no-cache) so an upgrade shows at once; the ETag makes
    # that a 304 when nothing changed. The CSP is part of it: it changes with the policy.
    tag = hashlib.sha256(body + security["Content-Security-Policy"].encode())
    etag = '"' + tag.hexdigest()[:32] + '"'
    headers = {**security, "ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=TYPES[path.suffix], headers=headers)


class _Discovery:
    """The issuer's endpoints from ``/.well-known/openid-configuration``, read once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, Any]] = {}
        self._failed: dict[str, tuple[float, LookupError]] = {}

    def endpoints(self, issuer: str) -> dict[str, Any]:
        with self._lock:
            if issuer in self._known:
                return self._known[issuer]
            # A failure is kept a minute, so that an issuer that is down does not
            # stall every page load for the whole timeout.
            failed = self._failed.get(issuer)
            if failed is not None and time.monotonic() - failed[0] < RETRY_DISCOVERY:
                raise failed[1]
            try:
                self._known[issuer] = self._read(issuer)
            except LookupError as exc:
                self._failed[issuer] = (time.monotonic(), exc)
                raise
            return self._known[issuer]

    @staticmethod
    def _read(issuer: str) -> dict[str, Any]:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            answer = httpx.get(url, timeout=DISCOVERY_TIMEOUT, follow_redirects=False)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LookupError(
                f"the OIDC issuer's discovery document {url} could not be read ({exc}); set "
                "authorization_endpoint and token_endpoint in the policy's [oidc] table"
            ) from None
        if not isinstance(document, dict):
            raise LookupError(f"the OIDC discovery document {url} is not a JSON object")
        for key in ("authorization_endpoint", "token_endpoint"):
            value = document.get(key)
            if not isinstance(value, str) or not value.startswith("https://"):
                raise LookupError(
                    f"the OIDC discovery document {url} has no https:// {key}; set it in the "
                    "policy's [oidc] table"
                )
        return document


def _browser_oidc(config: OIDCConfig, discovery: _Discovery) -> dict[str, str]:
    authorize, token = config.authorization_endpoint, config.token_endpoint
    if authorize is None or token is None:
        found = discovery.endpoints(config.issuer)
        authorize = authorize or found["authorization_endpoint"]
        token = token or found["token_endpoint"]
    return {
        "issuer": config.issuer,
        "client_id": config.client_id or "",
        "authorization_endpoint": authorize,
        "token_endpoint": token,
        "scope": config.scope,
    }


def install(app: FastAPI, service: Service) -> None:
    """Add the UI's routes over ``service``: its files, and the sign-in configuration.

    On the app itself rather than through a router, so that walking ``app.routes``
    (tests/server/test_run.py) sees them.
    """
    discovery = _Discovery()

    # The files stay out of the OpenAPI document: they are not part of the API.
    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        return _serve(request, _file("index.html"), connect=token_origin())

    def token_origin() -> str | None:
        """The origin of the OIDC token endpoint, which the page posts the code to."""
        config = service.policy().oidc
        if config is None or config.client_id is None:
            return None
        try:
            endpoint = _browser_oidc(config, discovery)["token_endpoint"]
        except LookupError:
            return None  # /v1/auth/config says why; the page offers keys only
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    @app.get("/ui/{name:path}", include_in_schema=False)
    def asset(request: Request, name: str) -> Response:
        return _serve(request, _file(name))

    @app.get(
        "/v1/auth/config",
        summary="How to sign in to the web UI (public)",
        responses={
            200: {"model": AuthConfig},
            502: {"description": "The OIDC issuer's discovery document could not be read",
                  "content": {PROBLEM: {"schema": {"type": "object"}}}},
        },
    )  # fmt: skip
    def auth_config() -> Response:
        config = service.policy().oidc
        if config is None or config.client_id is None:
            return Response('{"methods": ["key"]}', media_type="application/json")
        try:
            oidc = _browser_oidc(config, discovery)
        except LookupError as exc:
            return problem_response(502, str(exc))
        body = AuthConfig(methods=["key", "oidc"], oidc=OIDCBrowser(**oidc))
        return Response(body.model_dump_json(), media_type="application/json")
