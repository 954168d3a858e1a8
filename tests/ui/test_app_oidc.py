"""Browser sign-in with OIDC (authorization code + PKCE) against a stand-in identity
provider: its two endpoints and the server's acceptance of its token are routes in the
browser, so what is tested is the page's side of the flow."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, Route, expect

from tests.ui.conftest import UISite


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def stand_in_idp(page: Page, ui_site: UISite, *, state: str | None = None) -> dict[str, str]:
    """Route a sign-in page, token endpoint and auth config; return what they saw."""
    seen: dict[str, str] = {}
    idp = ui_site.url + "/idp"
    config = {
        "methods": ["key", "oidc"],
        "oidc": {
            "issuer": "https://idp.test",
            "client_id": "glasslog-ui",
            "authorization_endpoint": idp + "/authorize",
            "token_endpoint": idp + "/token",
            "scope": "openid email",
        },
    }
    page.route("**/v1/auth/config", lambda route: route.fulfill(json=config))

    def authorize(route: Route) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen.update({f"authorize.{k}": v for k, v in params.items()})
        back = f"{params['redirect_uri']}?code=the-code&state={state or params['state']}"
        route.fulfill(status=302, headers={"Location": back})

    def token(route: Route) -> None:
        form = {k: v[0] for k, v in parse_qs(route.request.post_data or "").items()}
        seen.update({f"token.{k}": v for k, v in form.items()})
        claims = {"iss": "https://idp.test", "nonce": seen["authorize.nonce"], "sub": "alice"}
        jwt = ".".join(
            [b64url(b'{"alg":"none"}'), b64url(json.dumps(claims).encode()), b64url(b"sig")]
        )
        seen["id_token"] = jwt
        route.fulfill(json={"id_token": jwt, "token_type": "Bearer"})

    def api(route: Route) -> None:
        # The server's side, verifying the token and mapping it to a role, is
        # tests/server/test_ui.py's; here the token stands for payments-dev's key.
        headers = dict(route.request.headers)
        if "id_token" in seen and headers.get("authorization") == f"Bearer {seen['id_token']}":
            seen["api.bearer"] = "id_token"
            headers["authorization"] = f"Bearer {ui_site.keys['payments-dev']}"
        route.continue_(headers=headers)

    page.route("**/idp/authorize?*", authorize)
    page.route("**/idp/token", token)
    page.route("**/v1/{me,events,count,histogram}*", api)
    return seen


def test_sso_signs_in_with_pkce_and_keeps_the_shared_link(page: Page, ui_site: UISite) -> None:
    """SSO sends an S256 challenge of the verifier it later redeems, checks state and
    nonce, uses the id_token as the bearer and cleans the code from the address."""
    seen = stand_in_idp(page, ui_site)
    page.goto(ui_site.url + "/#q=service:billing&range=7d")
    page.get_by_role("button", name="Sign in with SSO").click()
    expect(page.locator("#who")).to_contain_text("payments-dev")
    expect(page.get_by_label("Query", exact=True)).to_have_value("service:billing")
    assert seen["authorize.code_challenge_method"] == "S256"
    assert seen["authorize.response_type"] == "code"
    assert seen["authorize.client_id"] == "glasslog-ui"
    assert seen["authorize.scope"] == "openid email"
    verifier = seen["token.code_verifier"]
    assert 43 <= len(verifier) <= 128
    assert seen["authorize.code_challenge"] == b64url(hashlib.sha256(verifier.encode()).digest())
    assert seen["token.grant_type"] == "authorization_code"
    assert seen["token.code"] == "the-code"
    assert seen["token.redirect_uri"] == seen["authorize.redirect_uri"] == ui_site.url + "/"
    assert seen["api.bearer"] == "id_token"
    assert "code=" not in page.url and "state=" not in page.url
    assert page.url == ui_site.url + "/#q=service:billing&range=7d"
    expect(page.locator("#results tbody tr").first).to_be_visible()


def test_sso_refuses_a_return_with_another_state(page: Page, ui_site: UISite) -> None:
    """A redirect back whose state is not the one this tab sent is refused, code unused."""
    seen = stand_in_idp(page, ui_site, state="forged")
    page.goto(ui_site.url + "/")
    page.get_by_role("button", name="Sign in with SSO").click()
    expect(page.locator("#signin-error")).to_contain_text("state does not match")
    assert "token.code" not in seen
    assert page.evaluate("sessionStorage.getItem('glasslog.credential')") is None
    assert "code=" not in page.url
