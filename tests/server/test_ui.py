"""Serving the web UI: its files with their security headers and types, nothing outside
its directory, and ``/v1/auth/config`` for each policy."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from glasslog.access.policy import PolicyError, check_policy
from glasslog.server.ui import SECURITY_HEADERS, STATIC
from tests.server.conftest import POLICY, Site, live, make_site


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live(make_site(tmp_path_factory.mktemp("ui"), None)) as base:
        yield base


def raw_get(
    base: str, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    """GET ``path`` sent exactly as written: no client normalises away its ``..``."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


def test_the_index_and_the_assets_carry_the_security_headers(url: str) -> None:
    """/ is index.html and /ui/verify.js a JavaScript module, both under the strict CSP."""
    for path, kind in [("/", "text/html"), ("/ui/verify.js", "text/javascript")]:
        answer = raw_get(url, path)
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith(kind)
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value
        assert answer.headers["Cache-Control"] == "no-cache" and answer.headers["ETag"]
    assert "script-src 'self';" in SECURITY_HEADERS["Content-Security-Policy"]


def test_an_unchanged_file_is_answered_304(url: str) -> None:
    """A revalidation with the file's ETag gets 304 and no body."""
    etag = raw_get(url, "/ui/verify.js").headers["ETag"]
    assert raw_get(url, "/ui/verify.js", {"If-None-Match": etag}).status == 304
    assert raw_get(url, "/ui/verify.js", {"If-None-Match": '"other"'}).status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../../pyproject.toml",
        "/ui/../../../../../../etc/passwd",
        "/ui/%2e%2e/%2e%2e/pyproject.toml",
        "/ui/..%2f..%2fpyproject.toml",
        "/ui/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/ui/..%5c..%5cpyproject.toml",
        "/ui/vendor/../../server/ui.py",
        "/ui/%2fetc%2fpasswd",
        "/ui//etc/passwd",
        "/ui/.hidden.js",
        "/ui/verify.js%00.png",
    ],
)
def test_nothing_outside_the_static_directory_is_served(url: str, path: str) -> None:
    """Traversals, encoded or not, absolute paths and odd names are all a plain 404."""
    answer = raw_get(url, path)
    assert answer.status == 404
    assert answer.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/ui/", "/ui/vendor", "/ui/vendor/", "/ui/vendor/LICENSE"])
def test_directories_are_not_listed(url: str, path: str) -> None:
    """A directory (or a file of a kind the UI does not serve, as a license) is 404."""
    assert (STATIC / "vendor" / "LICENSE").is_file()
    assert raw_get(url, path).status == 404


def _auth_config(tmp_path: Path, oidc: str) -> tuple[int, dict[str, object]]:
    site: Site = make_site(tmp_path, None, policy=POLICY + oidc)
    with site.client() as client:
        answer = client.get("/v1/auth/config")
    return answer.status_code, answer.json()


OIDC = """
[oidc]
issuer = "https://127.0.0.1:9"
audience = "glasslog-ui"
jwks = "https://127.0.0.1:9/jwks.json"
roles_claim = "groups"
"""


def test_auth_config_without_client_id_is_keys_only(tmp_path: Path) -> None:
    """[oidc] for bearer tokens alone does not offer browser sign-in."""
    assert _auth_config(tmp_path, OIDC) == (200, {"methods": ["key"]})


BROWSER = """client_id = "glasslog-ui"
authorization_endpoint = "https://127.0.0.1:9/authorize"
token_endpoint = "https://idp.example:8443/token"
scope = "openid groups"
"""


def test_auth_config_with_endpoints_in_the_policy(tmp_path: Path) -> None:
    """client_id and both endpoints in the policy: OIDC is offered with them, no discovery."""
    status, body = _auth_config(tmp_path, OIDC + BROWSER)
    assert status == 200
    assert body == {
        "methods": ["key", "oidc"],
        "oidc": {
            "issuer": "https://127.0.0.1:9",
            "client_id": "glasslog-ui",
            "authorization_endpoint": "https://127.0.0.1:9/authorize",
            "token_endpoint": "https://idp.example:8443/token",
            "scope": "openid groups",
        },
    }


def test_the_page_may_post_to_the_token_endpoint(tmp_path: Path) -> None:
    """With browser sign-in, the index's CSP lets the page reach the token endpoint only."""
    site = make_site(tmp_path, None, policy=POLICY + OIDC + BROWSER)
    with site.client() as client:
        csp = client.get("/").headers["Content-Security-Policy"]
    assert "; connect-src 'self' https://idp.example:8443; " in csp


def test_auth_config_says_when_discovery_fails(tmp_path: Path) -> None:
    """An issuer whose discovery document cannot be read gives a 502 that says what to set."""
    status, body = _auth_config(tmp_path, OIDC + 'client_id = "glasslog-ui"\n')
    assert status == 502
    detail = str(body["detail"])
    assert "https://127.0.0.1:9/.well-known/openid-configuration" in detail
    assert "set authorization_endpoint and token_endpoint" in detail


def test_the_key_only_answer_is_json(url: str) -> None:
    """The public config is JSON that names the API key method."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request("GET", "/v1/auth/config")
    answer = connection.getresponse()
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.read()) == {"methods": ["key"]}
    connection.close()


def test_the_policy_refuses_bad_browser_sign_in_settings() -> None:
    """Endpoints must be https://, and endpoints or a scope without a client_id are refused."""
    text = POLICY + OIDC + 'token_endpoint = "http://idp.example/token"\nscope = ""\n'
    with pytest.raises(PolicyError) as refused:
        check_policy(text)
    problems = "\n".join(refused.value.problems)
    assert "token_endpoint" in problems and "https://" in problems
    assert "scope" in problems and "client_id" in problems
