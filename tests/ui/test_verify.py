"""verify.js in the real browser: the evidence the server gives verifies, every kind of
tampering fails with its reason, and its JCS agrees with Python's ``canonical``.

The module is imported by the page the server serves at ``/``, under its CSP, exactly
as the UI imports it.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from glasslog.event import canonical
from glasslog.ledger.note import Checkpoint, Signer, sign_checkpoint
from tests.ledger.vectors import RFC9162_DIR, require
from tests.ui.conftest import UISite

Evidence = dict[str, Any]

VERIFY = """([evidence, vkey]) =>
  import('/ui/verify.js').then((m) => m.verifyEvidence(evidence, vkey))"""


@pytest.fixture(scope="module")
def api(ui_site: UISite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_site.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def vkey(api: httpx.Client) -> str:
    return api.get("/v1/vkey").text


@pytest.fixture(scope="module")
def personal_seq(api: httpx.Client, ui_site: UISite) -> int:
    """A payments event with an e-mail address and an IP address."""
    found = api.get(
        "/v1/events", params={"q": "service:payments", "limit": 1}, headers=ui_site.auth("admin")
    )
    event = found.json()["events"][0]
    assert event["actor"]["email"] and event["source"]["ip"]
    seq: int = event["seq"]
    return seq


def evidence(api: httpx.Client, ui_site: UISite, seq: int, role: str) -> Evidence:
    answer = api.get(f"/v1/events/{seq}", params={"proof": "true"}, headers=ui_site.auth(role))
    assert answer.status_code == 200, answer.text
    found: Evidence = answer.json()
    return found


@pytest.fixture
def browser_page(page: Page, ui_site: UISite) -> Page:
    page.goto(ui_site.url + "/")
    return page


def verify(page: Page, found: Evidence, vkey: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(VERIFY, [found, vkey])
    return result


@pytest.mark.parametrize("role", ["admin", "payments-dev"])
def test_the_servers_evidence_verifies(
    browser_page: Page, api: httpx.Client, ui_site: UISite, vkey: str, personal_seq: int, role: str
) -> None:
    """Evidence for an admin and for a role with masked and hidden fields both verify."""
    found = evidence(api, ui_site, personal_seq, role)
    if role == "payments-dev":
        assert set(found["event"]["actor"]["email"]) == {"$commit"}
        assert "ip" not in found["event"]["source"] and "/source/ip" in found["hidden"]
    result = verify(browser_page, found, vkey)
    size = json.loads(json.dumps(found["proof"]["tree_size"]))
    origin = vkey.split("+", maxsplit=1)[0]
    assert result == {
        "ok": True,
        "seq": personal_seq,
        "treeSize": size,
        "origin": origin,
        "summary": f"Included at seq {personal_seq} in the log of size {size:,}; "
        f"checkpoint signed by {origin}",
    }


def _flip(text: str) -> str:
    """Another valid base64 value of the same length."""
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _field(e: Evidence) -> None:
    e["event"]["action"] += "x"


def _salt(e: Evidence) -> None:
    e["salts"]["/actor/name"] = _flip(e["salts"]["/actor/name"])


def _masked(e: Evidence) -> None:
    email = e["event"]["actor"]["email"]
    email["$commit"] = _flip(email["$commit"])


def _hidden(e: Evidence) -> None:
    del e["hidden"]["/source/ip"]


def _proof_hash(e: Evidence) -> None:
    e["proof"]["hashes"][0] = _flip(e["proof"]["hashes"][0])


def _tree_size(e: Evidence) -> None:
    e["proof"]["tree_size"] += 1


def _body(e: Evidence) -> None:
    text, _, signatures = e["checkpoint"].partition("\n\n")
    origin, size, root = text.split("\n")
    e["checkpoint"] = f"{origin}\n{size}\n{_flip(root)}\n\n{signatures}"


def _other_key(e: Evidence) -> None:
    body = Checkpoint.parse(e["checkpoint"].partition("\n\n")[0] + "\n")
    e["checkpoint"] = sign_checkpoint(body, Signer.generate(name=body.origin))


NOT_INCLUDED = "the leaf does not match the inclusion proof"
UNSIGNED = "the checkpoint is not signed by the log's key"
TAMPERED: dict[str, tuple[Callable[[Evidence], None], str]] = {
    "a changed field value": (_field, NOT_INCLUDED),
    "a changed salt": (_salt, NOT_INCLUDED),
    "a changed masked commitment": (_masked, NOT_INCLUDED),
    "a removed hidden entry": (_hidden, NOT_INCLUDED),
    "a changed proof hash": (_proof_hash, NOT_INCLUDED),
    "a changed tree size": (_tree_size, "the proof is for a tree of"),
    "a changed checkpoint body": (_body, "the checkpoint's signature does not verify"),
    "a signature by another key": (_other_key, UNSIGNED),
}


@pytest.mark.parametrize("change", list(TAMPERED))
def test_tampered_evidence_fails_with_its_reason(
    browser_page: Page, api: httpx.Client, ui_site: UISite, vkey: str, personal_seq: int,
    change: str,
) -> None:  # fmt: skip
    """Each change to the evidence of a masked event is caught, and said as what it is."""
    found = copy.deepcopy(evidence(api, ui_site, personal_seq, "payments-dev"))
    tamper, reason = TAMPERED[change]
    tamper(found)
    result = verify(browser_page, found, vkey)
    assert result["ok"] is False and result["reason"].startswith(reason), result


def test_a_vkey_of_another_log_fails(
    browser_page: Page, api: httpx.Client, ui_site: UISite, personal_seq: int
) -> None:
    """Evidence checked with another log's key is refused: its checkpoint is not that log's."""
    other = Signer.generate(name="other.example/audit").vkey
    result = verify(browser_page, evidence(api, ui_site, personal_seq, "admin"), other)
    assert result["ok"] is False
    assert result["reason"].startswith(f"{UNSIGNED} other.example/audit+"), result


def test_without_webcrypto_ed25519_the_vendored_library_verifies(
    page: Page, api: httpx.Client, ui_site: UISite, vkey: str, personal_seq: int
) -> None:
    """Without WebCrypto Ed25519 the page loads noble-ed25519, which accepts and refuses alike."""
    page.add_init_script("""
        const importKey = SubtleCrypto.prototype.importKey;
        SubtleCrypto.prototype.importKey = function (format, data, algorithm, ...rest) {
          if ((algorithm?.name ?? algorithm) === "Ed25519") {
            return Promise.reject(new DOMException("no Ed25519 here", "NotSupportedError"));
          }
          return importKey.call(this, format, data, algorithm, ...rest);
        };
    """)
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    page.goto(ui_site.url + "/")
    found = evidence(api, ui_site, personal_seq, "admin")
    assert verify(page, found, vkey)["ok"] is True
    assert any(url.endswith("/ui/vendor/noble-ed25519.js") for url in loaded)
    _body(found)
    result = verify(page, found, vkey)
    assert result["ok"] is False
    assert result["reason"].startswith("the checkpoint's signature does not verify"), result


TRICKY = [
    '"caf\\u00e9 \\ud83d\\ude00 \\u2028 \\u001f \\" \\\\ / \\b\\f\\n\\r\\t \\u007f"',
    "[1e21, 1e-7, -0.0, 0.1, 1.5e300, 9007199254740991, -9007199254740991, 100, 5e-324]",
    "[0.000001, 123456789012345680000.0, 1e+22, 2.5, -1.25e-5, 33.33333333333333]",
    '{"b": 1, "a": {"\\u00e9": 1, "z": 2, "\\ud83d\\ude00": 3, "\\uff61": 4, "A": 5}, "": null}',
    '{"\\u20ac": 1, "\\r": 2, "1": 3, "\\ud800\\udc00": 4, "\\u0080": 5, "10": 6}',
    '[true, false, null, [], {}, [[{"k": [1, {"j": "v"}]}]]]',
]


@pytest.mark.parametrize("text", TRICKY)
def test_jcs_matches_pythons_canonical(browser_page: Page, text: str) -> None:
    """The browser's RFC 8785 bytes equal Python's on unicode, escapes, numbers and key order."""
    got = browser_page.evaluate(
        "(text) => import('/ui/verify.js').then((m) => Array.from(m.canonical(JSON.parse(text))))",
        text,
    )
    assert bytes(got) == canonical(json.loads(text))


def test_inclusion_matches_the_rfc9162_vectors(browser_page: Page) -> None:
    """Every transparency-dev inclusion vector is accepted or refused as it says."""
    files = sorted(require(RFC9162_DIR).glob("inclusion/*/*.json"))
    cases = [json.loads(path.read_text()) for path in files]
    assert len(cases) > 50
    results = browser_page.evaluate(
        """(cases) => import('/ui/verify.js').then((m) => Promise.all(cases.map((c) =>
             m.verifyInclusion(c.leafIdx, c.treeSize, c.leafHash, c.proof, c.root))))""",
        cases,
    )
    wrong = [c["desc"] for c, r in zip(cases, results, strict=True) if r["ok"] == c["wantErr"]]
    assert wrong == []


def test_the_module_is_small_and_standalone() -> None:
    """verify.js imports nothing but the vendored library, and that only dynamically."""
    source = (Path(__file__).parents[2] / "src/glasslog/ui/static/verify.js").read_text()
    assert "\nimport " not in source and source.count("import(") == 1
