"""Tests for glasslog.access.redact: secrets are replaced at ingest (DESIGN §4).

Token-shaped test values are assembled from pieces ("sk_" + "live_" …) so that no
secret scanner mistakes this file for a leak.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from glasslog.access import redact
from glasslog.access.redact import Finding, Scrubber, format_path
from glasslog.errors import ConfigError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+(?::[0-9a-f]{16})?\]")

AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SESSION_KEY = "ASIA" + "Y34FZKBOKMUTVV7A"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GITHUB_TOKEN = "gh" + "p_" + "A1b2" * 9
GITHUB_FINE_GRAINED = "github_" + "pat_" + "11ABCDEFG0" * 3
GITLAB_TOKEN = "gl" + "pat-" + "x1Y2z3" * 4
SLACK_TOKEN = "xo" + "xb-" + "1234567890-" + "AbCdEfGhIjKl"
STRIPE_KEY = "sk_" + "live_" + "FAKE0fake1FAKE2fake3"
GOOGLE_KEY = "AI" + "za" + "SyA" + "x1Y2" * 8
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yEfg9Qqh4mXbpFNnIGh0rCPmCMFHtzFwQ3sZmVqPwOTyArLXRbLb\n"
    "-----END RSA PRIVATE KEY-----"
)
VISA = "4111111111111111"
CARDS = [VISA, "4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444",
         "378282246310005", "6011111111111117", "4222222222222"]  # fmt: skip


def make_event(**changes: Any) -> dict[str, Any]:
    """A realistic schema-v1 event with no secret in it; ``changes`` replace top-level fields."""
    event: dict[str, Any] = {
        "id": "0190b6c2-7d4e-7f00-8a1b-3c2d4e5f6a7b",
        "time": "2024-07-01T12:00:00.000000Z",
        "received": "2024-07-01T12:00:00.123456Z",
        "service": "payments",
        "environment": "prod",
        "action": "user.login",
        "category": "authentication",
        "outcome": "success",
        "actor": {"id": "user_123", "type": "user", "name": "Alice", "email": "alice@example.com"},
        "source": {"ip": "203.0.113.7", "user_agent": "curl/8.5.0", "host": "web-1"},
        "target": {"type": "account", "id": "acct_42", "name": "Main"},
        "context": {"request_id": "req_01J1ABCDEF", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "reason": "routine sign-in",
        "metadata": {"method": "password", "mfa": True, "attempts": 1, "region": "eu-west-1"},
    }
    event.update(changes)
    return event


def scrub_text(text: str, *, key: bytes | None = None) -> tuple[str, list[str]]:
    """Scrub ``text`` placed in ``reason``; return the new text and the kinds found."""
    event = make_event(reason=text)
    findings = Scrubber(fingerprint_key=key).scrub(event)
    assert all(f.path == ("reason",) for f in findings)
    return event["reason"], [f.kind for f in findings]


def luhn_complete(prefix: str) -> str:
    """Append the digit that makes ``prefix`` pass Luhn (independent of the module's own code)."""
    total = 0
    for position, char in enumerate(reversed(prefix)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return prefix + str((10 - total % 10) % 10)


# --- sensitive key names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("password", "password"),
        ("passwd", "password"),
        ("pwd", "password"),
        ("pass", "password"),
        ("db_password", "password"),
        ("dbPassword", "password"),
        ("user password", "password"),
        ("db.password", "password"),
        ("password_hash", "password"),
        ("password2", "password"),
        ("new_password_confirmation", "password"),
        ("secret", "secret"),
        ("client_secret", "secret"),
        ("clientSecret", "secret"),
        ("aws_secret_access_key", "secret"),
        ("token", "token"),
        ("access_token", "token"),
        ("refresh_token", "token"),
        ("id_token", "token"),
        ("session_token", "token"),
        ("githubToken", "token"),
        ("OAuthToken", "token"),
        ("token_value", "token"),
        ("api_key", "api_key"),
        ("apikey", "api_key"),
        ("apiKey", "api_key"),
        ("APIKey", "api_key"),
        ("API-KEY", "api_key"),
        ("X-Api-Key", "api_key"),
        ("x-api-key", "api_key"),
        ("authorization", "authorization"),
        ("Authorization", "authorization"),
        ("proxy-authorization", "authorization"),
        ("cookie", "cookie"),
        ("set-cookie", "cookie"),
        ("Set-Cookie", "cookie"),
        ("private_key", "private_key"),
        ("privateKey", "private_key"),
        ("credential", "credential"),
        ("credentials", "credential"),
    ],
)
def test_sensitive_key_value_is_replaced(key: str, kind: str) -> None:
    """A metadata value under a key naming a credential is replaced whole, with the key's kind."""
    event = make_event(metadata={key: "hunter2", "other": "kept"})
    findings = Scrubber().scrub(event)
    assert event["metadata"] == {key: f"[REDACTED:{kind}]", "other": "kept"}
    assert findings == [Finding(("metadata", key), kind)]


@pytest.mark.parametrize(
    "key",
    [
        "token_count",
        "tokens_used",
        "tokens",
        "max_tokens",
        "token_type",
        "password_changed_at",
        "passwordChangedAt",
        "password_reset_required",
        "secret_name",
        "private_key_id",
        "key",
        "cache_key",
        "primary_key",
        "username",
        "bypass",
        "passenger",
        "compass",
        "author",
        "description",
    ],
)
def test_non_sensitive_key_is_kept(key: str) -> None:
    """Keys that merely mention a credential word (or contain its letters) keep their value."""
    event = make_event(metadata={key: "hunter2"})
    assert Scrubber().scrub(event) == []
    assert event["metadata"] == {key: "hunter2"}


@pytest.mark.parametrize("value", [42, 3.5, True, None, {"a": "b", "n": [1, 2]}, ["x", ["y"]], ""])
def test_sensitive_key_replaces_value_of_any_type(value: object) -> None:
    """The whole value under a sensitive key becomes the placeholder, whatever its JSON type."""
    event = make_event(metadata={"api_key": value})
    findings = Scrubber().scrub(event)
    assert event["metadata"]["api_key"] == "[REDACTED:api_key]"
    assert findings == [Finding(("metadata", "api_key"), "api_key")]


def test_sensitive_keys_are_found_at_any_depth() -> None:
    """Key names are checked in nested objects and in objects inside lists, with exact paths."""
    event = make_event(
        metadata={
            "request": {"headers": {"Authorization": "Basic x", "Accept": "*/*"}},
            "items": [{"name": "a"}, [{"deep": {"password": "p1"}}], {"token": 7}],
        }
    )
    findings = Scrubber().scrub(event)
    assert findings == [
        Finding(("metadata", "request", "headers", "Authorization"), "authorization"),
        Finding(("metadata", "items", 1, 0, "deep", "password"), "password"),
        Finding(("metadata", "items", 2, "token"), "token"),
    ]
    assert event["metadata"] == {
        "request": {"headers": {"Authorization": "[REDACTED:authorization]", "Accept": "*/*"}},
        "items": [
            {"name": "a"},
            [{"deep": {"password": "[REDACTED:password]"}}],
            {"token": "[REDACTED:token]"},
        ],
    }


def test_key_names_are_only_checked_inside_metadata() -> None:
    """Outside metadata a field name is schema, not a hint: its value is only pattern-scanned."""
    event = make_event(context={"token": "plain words"})
    assert Scrubber().scrub(event) == []
    assert event["context"] == {"token": "plain words"}


def test_credential_word_as_a_value_is_kept() -> None:
    """``"method": "password"`` names a login method; it is not itself a secret."""
    event = make_event()
    assert Scrubber().scrub(event) == []
    assert event == make_event()


def test_extra_sensitive_keys_extend_the_list() -> None:
    """Extra names are normalised like built-in stems and give their own kind."""
    scrubber = Scrubber(extra_sensitive_keys=["ssn", "National-ID"])
    event = make_event(
        metadata={"customer_ssn": "078-05-1120", "nationalId": "X1", "ssn_last4": "1120"}
    )
    findings = scrubber.scrub(event)
    assert event["metadata"] == {
        "customer_ssn": "[REDACTED:ssn]",
        "nationalId": "[REDACTED:national_id]",
        "ssn_last4": "1120",
    }
    assert {f.kind for f in findings} == {"ssn", "national_id"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("ssn", r"collection of key names, got the string 'ssn'; pass \['ssn'\]"),
        (["--"], r"extra sensitive key '--' has no letters or digits"),
        ([b"ssn"], r"extra_sensitive_keys must hold strings, got bytes"),
    ],
)
def test_bad_extra_sensitive_keys_are_refused(extra: Any, message: str) -> None:
    """A misconfigured key list fails at construction with a message saying how to fix it."""
    with pytest.raises(ConfigError, match=message):
        Scrubber(extra_sensitive_keys=extra)


# --- value patterns ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            "Authorization: Bearer abc123.def-ghi",
            "Authorization: Bearer [REDACTED:bearer_token]",
            "bearer_token",
        ),
        ("BEARER Zm9vYmFy", "BEARER [REDACTED:bearer_token]", "bearer_token"),
        ("bearer 9f86d081884c7d65", "bearer [REDACTED:bearer_token]", "bearer_token"),
        (
            "Authorization: Basic dXNlcjpwYXNz",
            "Authorization: Basic [REDACTED:basic_auth]",
            "basic_auth",
        ),
        (f"key id {AWS_KEY} used", "key id [REDACTED:aws_access_key] used", "aws_access_key"),
        (f"sts {AWS_SESSION_KEY}", "sts [REDACTED:aws_access_key]", "aws_access_key"),
        (f"got {JWT} from idp", "got [REDACTED:jwt] from idp", "jwt"),
        (f"push with {GITHUB_TOKEN}", "push with [REDACTED:github_token]", "github_token"),
        (f"pat {GITHUB_FINE_GRAINED}", "pat [REDACTED:github_token]", "github_token"),
        (f"ci {GITLAB_TOKEN}.", "ci [REDACTED:gitlab_token].", "gitlab_token"),
        (f"hook {SLACK_TOKEN} set", "hook [REDACTED:slack_token] set", "slack_token"),
        (f"charge via {STRIPE_KEY}", "charge via [REDACTED:stripe_key]", "stripe_key"),
        (f"maps {GOOGLE_KEY}", "maps [REDACTED:google_api_key]", "google_api_key"),
        (
            "dsn postgres://app:hunter2@db:5432/prod",
            "dsn postgres://app:[REDACTED:url_password]@db:5432/prod",
            "url_password",
        ),
        (
            "login password=hunter2&user=bob",
            "login password=[REDACTED:password]&user=bob",
            "password",
        ),
        ("PWD: 's3cr3t pass' given", "PWD: '[REDACTED:password]' given", "password"),
        ('body {"api_key": "abc def"}', 'body {"api_key": "[REDACTED:secret]"}', "secret"),
        (
            "cookie csrftoken=q1w2e3; lang=en",
            "cookie csrftoken=[REDACTED:secret]; lang=en",
            "secret",
        ),
        (f"key:\n{PEM}\nrotated", "key:\n[REDACTED:private_key]\nrotated", "private_key"),
        (
            "key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg",
            "key [REDACTED:private_key]",
            "private_key",
        ),
    ],
)
def test_value_pattern_replaces_only_the_secret(text: str, expected: str, kind: str) -> None:
    """Each detector replaces just the matched secret and keeps the text around it."""
    assert scrub_text(text) == (expected, [kind])


@pytest.mark.parametrize(
    "text",
    [
        "the bearer of bad news",
        "Basic plan upgrade",
        "basic auth enabled",
        "AKIA is a prefix",
        "AKIAIOSFODNN7EXAMPLEX",  # 17 characters after the prefix: not an access key id
        "version 1.2.3 and v2.10.4-rc.1",
        "eyJhbGciOiJIUzI1NiJ9 without dots",
        "https://example.com/a:b/c and alice@example.com",
        "password_changed_at=2024-01-01",
        "token_count: 512",
        "git@github.com:org/repo.git",
    ],
)
def test_look_alikes_are_kept(text: str) -> None:
    """Prose, versions, ids and timestamps that resemble a secret are left alone."""
    assert scrub_text(text) == (text, [])


@pytest.mark.parametrize("card", CARDS)
def test_luhn_valid_card_numbers_are_replaced(card: str) -> None:
    """A 13 to 19 digit number that passes Luhn (any grouping) is a card number."""
    assert scrub_text(f"paid with {card}, thanks") == (
        "paid with [REDACTED:card_number], thanks",
        ["card_number"],
    )


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",  # fails Luhn
        "4111 1111 1111 1112",
        "1718000000000",  # Unix time in ms
        "1718000000000000000",  # Unix time in ns
        "1234567890123452",  # Luhn-valid, but no card network starts with 1
        "41111111111111110000",  # 20 digits
        "4111  1111 1111 1111",  # a double space is not a grouping
        "ord4111111111111111",  # glued to letters: part of an identifier
        "4bf92f3577b34111111111111111",  # inside a hex trace id
    ],
)
def test_non_card_numbers_are_kept(number: str) -> None:
    """Order ids and timestamps that fail Luhn, or are not card-shaped, are kept."""
    assert scrub_text(f"order {number} shipped") == (f"order {number} shipped", [])


@given(
    first=st.sampled_from("23456"),
    body=st.text(alphabet="0123456789", min_size=11, max_size=17),
    separator=st.sampled_from(["", " ", "-"]),
)
def test_every_luhn_valid_card_shape_is_replaced(first: str, body: str, separator: str) -> None:
    """Any Luhn-valid 13-19 digit number (first digit 2-6), grouped by fours or not, is found."""
    digits = luhn_complete(first + body)
    card = separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    text, kinds = scrub_text(f"card {card} ok")
    assert (text, kinds) == ("card [REDACTED:card_number] ok", ["card_number"])


@given(
    first=st.sampled_from("23456"),
    body=st.text(alphabet="0123456789", min_size=11, max_size=17),
    wrong=st.integers(1, 9),
)
def test_luhn_invalid_numbers_are_never_replaced(first: str, body: str, wrong: int) -> None:
    """Changing the check digit of a valid number makes it an ordinary number again."""
    valid = luhn_complete(first + body)
    number = valid[:-1] + str((int(valid[-1]) + wrong) % 10)
    assert scrub_text(f"id {number}") == (f"id {number}", [])


def test_several_secrets_in_one_string_are_each_replaced() -> None:
    """Every secret in a string gets its own placeholder and finding, in order."""
    text, kinds = scrub_text(f"a {AWS_KEY} b {VISA} c password=x d")
    assert (
        text
        == "a [REDACTED:aws_access_key] b [REDACTED:card_number] c password=[REDACTED:password] d"
    )
    assert kinds == ["aws_access_key", "card_number", "password"]


def test_look_alike_does_not_hide_an_overlapping_secret() -> None:
    """A rejected match ("basic" + a card number) does not stop the card from being found."""
    assert scrub_text(f"basic {VISA}") == ("basic [REDACTED:card_number]", ["card_number"])


def test_every_non_structural_string_is_scanned() -> None:
    """Value patterns run in actor, source, target, context, reason and nested metadata."""
    event = make_event(
        actor={"id": "u1", "name": f"svc {GITHUB_TOKEN}"},
        source={"user_agent": f"bot/1 Bearer {AWS_KEY}"},
        target={"type": "doc", "name": f"card {VISA}"},
        context={"function": f"call({JWT})"},
        reason=f"rotate {STRIPE_KEY}",
        metadata={"list": [[1, None, True, f"x {SLACK_TOKEN}"]], "nested": {"n": {"s": JWT}}},
    )
    findings = Scrubber().scrub(event)
    assert sorted((format_path(f.path), f.kind) for f in findings) == [
        ("$.actor.name", "github_token"),
        ("$.context.function", "jwt"),
        ("$.metadata.list[0][3]", "slack_token"),
        ("$.metadata.nested.n.s", "jwt"),
        ("$.reason", "stripe_key"),
        ("$.source.user_agent", "bearer_token"),
        ("$.target.name", "card_number"),
    ]
    assert event["actor"] == {"id": "u1", "name": "svc [REDACTED:github_token]"}
    assert event["metadata"]["list"] == [[1, None, True, "x [REDACTED:slack_token]"]]


def test_structural_fields_are_never_touched() -> None:
    """id, time, received, service, environment, action, category and outcome are identifiers."""
    structural = [
        "id",
        "time",
        "received",
        "service",
        "environment",
        "action",
        "category",
        "outcome",
    ]
    event = make_event(**dict.fromkeys(structural, f"{AWS_KEY} {VISA} password=x"))
    before = copy.deepcopy(event)
    assert Scrubber().scrub(event) == []
    assert event == before


def test_non_string_scalars_are_not_pattern_scanned() -> None:
    """Numbers and booleans are only replaced under a sensitive key, never for their digits."""
    event = make_event(
        metadata={"amount": 4111111111111111, "ok": False, "ratio": 0.5, "none": None}
    )
    assert Scrubber().scrub(event) == []
    assert event["metadata"] == {
        "amount": 4111111111111111,
        "ok": False,
        "ratio": 0.5,
        "none": None,
    }


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"a": []},
        {"a": [[], [[]], [[[None]]]]},
        {"a": [1, 2.5, True, None, "", {}]},
        {"": ""},
        {"k": {"": [{}]}},
    ],
)
def test_odd_shapes_are_accepted(metadata: dict[str, Any]) -> None:
    """Empty, nested and mixed JSON shapes pass through without error or change."""
    event = make_event(metadata=copy.deepcopy(metadata))
    assert Scrubber(fingerprint_key=KEY).scrub(event) == []
    assert event["metadata"] == metadata


def test_odd_top_level_values_are_accepted() -> None:
    """Missing objects, None and lists where objects belong do not make scrubbing raise."""
    event: dict[str, Any] = {
        "service": "s",
        "actor": None,
        "target": ["x", {"y": VISA}],
        "metadata": "text",
    }
    findings = Scrubber().scrub(event)
    assert findings == [Finding(("target", 1, "y"), "card_number")]
    assert event == {
        "service": "s",
        "actor": None,
        "target": ["x", {"y": "[REDACTED:card_number]"}],
        "metadata": "text",
    }


def test_too_deep_nesting_is_replaced_not_walked() -> None:
    """Data nested beyond the walk limit is replaced whole: what cannot be scanned is not stored."""
    deep: Any = JWT
    for _ in range(redact._MAX_DEPTH + 5):
        deep = [deep]
    event = make_event(metadata={"deep": deep})
    findings = Scrubber().scrub(event)
    assert [f.kind for f in findings] == ["too_deep"]
    assert len(findings[0].path) == redact._MAX_DEPTH + 1
    assert JWT not in json.dumps(event)


def test_cyclic_metadata_does_not_hang_or_raise() -> None:
    """A list that contains itself is cut at the depth limit instead of looping forever."""
    loop: list[Any] = ["x"]
    loop.append(loop)
    event = make_event(metadata={"loop": loop})
    findings = Scrubber(fingerprint_key=KEY).scrub(event)
    assert [f.kind for f in findings] == ["too_deep"]
    json.dumps(event)  # the cycle is gone


# --- fingerprints --------------------------------------------------------------------


def test_fingerprint_is_stable_for_equal_secrets() -> None:
    """Equal secrets under one key give equal placeholders, across events and scrubbers."""
    first, _ = scrub_text(f"a {AWS_KEY}", key=KEY)
    second, _ = scrub_text(f"b {AWS_KEY} again", key=KEY)
    token = first.removeprefix("a ")
    assert re.fullmatch(r"\[REDACTED:aws_access_key:[0-9a-f]{16}\]", token)
    assert second == f"b {token} again"


def test_fingerprint_differs_for_different_secrets_and_keys() -> None:
    """Different secrets, or the same secret under another key, give different fingerprints."""
    one, _ = scrub_text(f"{AWS_KEY}", key=KEY)
    other, _ = scrub_text(f"{AWS_SESSION_KEY}", key=KEY)
    rekeyed, _ = scrub_text(f"{AWS_KEY}", key=OTHER_KEY)
    assert len({one, other, rekeyed}) == 3


def test_fingerprint_is_the_hmac_of_the_secret_only() -> None:
    """The hex is the first 16 of HMAC-SHA256(key, secret); surrounding text does not change it."""
    import hashlib
    import hmac

    expected = hmac.new(KEY, b"hunter2", hashlib.sha256).hexdigest()[:16]
    assert scrub_text("password=hunter2", key=KEY)[0] == f"password=[REDACTED:password:{expected}]"
    event = make_event(metadata={"secret": "hunter2"})
    Scrubber(fingerprint_key=KEY).scrub(event)
    assert event["metadata"]["secret"] == f"[REDACTED:secret:{expected}]"


def test_fingerprint_of_non_string_values_correlates() -> None:
    """Equal non-string values under sensitive keys share a fingerprint; different ones do not."""
    events = [
        make_event(metadata={"token": value})
        for value in ({"b": 1, "a": [2]}, {"a": [2], "b": 1}, 7)
    ]
    for event in events:
        Scrubber(fingerprint_key=KEY).scrub(event)
    placeholders = [e["metadata"]["token"] for e in events]
    assert placeholders[0] == placeholders[1] != placeholders[2]


def test_without_a_key_there_is_no_fingerprint() -> None:
    """Without a fingerprint key every placeholder is just the kind."""
    assert (
        scrub_text(f"{AWS_KEY} {AWS_SESSION_KEY}")[0]
        == "[REDACTED:aws_access_key] [REDACTED:aws_access_key]"
    )


def test_key_is_never_shown() -> None:
    """The fingerprint key appears in no repr, placeholder or error message."""
    scrubber = Scrubber(fingerprint_key=KEY, extra_sensitive_keys=["ssn"])
    assert repr(scrubber) == "Scrubber(fingerprint=True, extra_sensitive_keys=('ssn',))"
    event = make_event(metadata={"password": "x"}, reason=VISA)
    scrubber.scrub(event)
    dumped = json.dumps(event)
    assert KEY.hex() not in dumped
    assert KEY.hex()[:16] not in dumped


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"short", r"at least 16 bytes, got 5; .* use secrets.token_bytes\(32\)"),
        (b"", r"at least 16 bytes, got 0"),
        ("a" * 32, r"fingerprint_key must be bytes, got str"),
    ],
)
def test_weak_or_wrong_fingerprint_key_is_refused(key: Any, message: str) -> None:
    """A key too short to keep guessed secrets unconfirmable, or not bytes, is a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        Scrubber(fingerprint_key=key)


# --- paths and findings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "$"),
        (("metadata", "headers", "authorization"), "$.metadata.headers.authorization"),
        (("metadata", "items", 2), "$.metadata.items[2]"),
        (("metadata", "x-api-key", 0, "a b"), '$.metadata["x-api-key"][0]["a b"]'),
        (("metadata", 'say "hi"\\\n', "_ok1"), '$.metadata["say \\"hi\\"\\\\\\n"]._ok1'),
        (
            ("metadata", "1st", "\x01", "naïve", "\ud800"),
            '$.metadata["1st"]["\\u0001"].naïve["\\ud800"]',
        ),
    ],
)
def test_format_path(path: redact.Path, text: str) -> None:
    """Paths render as JSONPath: dot shorthand for identifiers, quoted JSON strings otherwise."""
    assert format_path(path) == text


def test_findings_point_at_the_replaced_values() -> None:
    """Every finding's path leads to a string holding a placeholder of its kind."""
    event = make_event(
        reason=f"{VISA} and {AWS_KEY}",
        metadata={"h": {"Cookie": "sid=1"}, "l": ["ok", f"Bearer {JWT}"]},
    )
    findings = Scrubber().scrub(event)
    assert len(findings) == 4
    for finding in findings:
        node: Any = event
        for step in finding.path:
            node = node[step]
        assert f"[REDACTED:{finding.kind}]" in node


def test_finding_is_immutable() -> None:
    """Findings are frozen values, safe to pass to the commitment and audit steps."""
    finding = Finding(("reason",), "jwt")
    with pytest.raises(AttributeError):
        finding.kind = "other"  # type: ignore[misc]


# --- idempotence ---------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, KEY])
def test_scrubbing_twice_changes_nothing_more(key: bytes | None) -> None:
    """A scrubbed event has no secret left: a second pass finds nothing and changes nothing."""
    event = make_event(
        reason=f"password=hunter2 {VISA} postgres://a:b@h {JWT} Bearer x",
        metadata={"token": {"v": 1}, "card": "5555 5555 5555 4444", "api-key": "[REDACTED:other]"},
    )
    scrubber = Scrubber(fingerprint_key=key)
    assert scrubber.scrub(event)
    once = copy.deepcopy(event)
    assert scrubber.scrub(event) == []
    assert event == once


def test_placeholder_under_sensitive_key_is_not_refingerprinted() -> None:
    """An existing placeholder under a sensitive key is kept, not fingerprinted again."""
    event = make_event(metadata={"password": "[REDACTED:password:0123456789abcdef]"})
    assert Scrubber(fingerprint_key=KEY).scrub(event) == []
    assert event["metadata"]["password"] == "[REDACTED:password:0123456789abcdef]"


# --- properties ----------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_B64URL = _ALNUM + "_-"


def _random(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size + 8)


def _card() -> st.SearchStrategy[str]:
    body = st.text(alphabet="0123456789", min_size=12, max_size=18)
    return st.builds(
        lambda first, rest: luhn_complete(first + rest[:-1]), st.sampled_from("23456"), body
    )


# Each strategy yields (text to embed, the secret that must not survive).
SECRETS = st.one_of(
    _random("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16).map(lambda s: ("AKIA" + s[:16],) * 2),
    _random(_ALNUM, 36).map(lambda s: ("gh" + "s_" + s,) * 2),
    st.tuples(_random(_B64URL, 10), _random(_B64URL, 10), _random(_B64URL, 10)).map(
        lambda p: ("eyJ" + ".".join(p),) * 2
    ),
    _random(_ALNUM + "._~+/-", 16).map(lambda s: ("Bearer " + s, s)),
    _random(_ALNUM, 12).map(
        lambda s: ("Basic " + base64.b64encode(f"u:{s}".encode()).decode(),) * 2
    ),
    _random(_ALNUM, 12).map(lambda s: ("https://user:" + s + "@example.com/x", s)),
    _random(_ALNUM, 12).map(lambda s: ("password=" + s, s)),
    _random(_ALNUM + "+/", 40).map(
        lambda s: (f"-----BEGIN EC PRIVATE KEY-----\n{s}\n-----END EC PRIVATE KEY-----", s)
    ),
    _card().map(lambda c: (c, c)),
)
WORDS = st.text(alphabet="qvwz ,;()", max_size=12)
SAFE_KEYS = st.text(alphabet="qvwz_", min_size=1, max_size=6)
PLACES = st.sampled_from(
    ["reason", "actor.name", "target.name", "context.function", "source.user_agent", "metadata"]
)


def _embed(event: dict[str, Any], place: str, value: str, keys: list[str], in_list: bool) -> None:
    if place == "metadata":
        node: Any = event["metadata"]
        for key in keys:
            node = node.setdefault(key, {})
        node["v"] = [0, value] if in_list else value
    elif "." in place:
        obj, field = place.split(".")
        event[obj][field] = value
    else:
        event[place] = value


@settings(max_examples=300)
@given(
    secret=SECRETS,
    place=PLACES,
    before=WORDS,
    after=WORDS,
    keys=st.lists(SAFE_KEYS, max_size=3),
    in_list=st.booleans(),
    key=st.sampled_from([None, KEY]),
)
def test_embedded_secret_never_survives(
    *,
    secret: tuple[str, str],
    place: str,
    before: str,
    after: str,
    keys: list[str],
    in_list: bool,
    key: bytes | None,
) -> None:
    """A generated secret put anywhere scannable is gone from the serialised event afterwards."""
    text, raw = secret
    event = make_event()
    # A random secret may happen to spell part of the event's own text ("authenticati"
    # inside the category "authentication"); only the embedded copy must go.
    assume(raw not in json.dumps(event, ensure_ascii=False))
    _embed(event, place, f"{before} {text} {after}", keys, in_list)
    scrubber = Scrubber(fingerprint_key=key)
    findings = scrubber.scrub(event)
    assert findings
    dumped = json.dumps(event, ensure_ascii=False)
    assert raw not in dumped
    assert json.dumps(raw)[1:-1] not in dumped  # nor in its escaped form (PEM newlines)
    once = copy.deepcopy(event)
    assert scrubber.scrub(event) == []
    assert event == once


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                "Bearer ",
                "basic ",
                "AKIA",
                "ASIA",
                "AIza",
                "eyJ",
                "xoxb-",
                "ghp_",
                "glpat-",
                "sk_live_",
                "://",
                ":",
                "@",
                "=",
                "password",
                "token",
                "api-key",
                '"',
                "'",
                " ",
                "-",
                ".",
                "_",
                "-----BEGIN RSA PRIVATE KEY-----",
                "\n",
                "4111",
                "1111",
                "0",
                "5",
                "Zm9v",
                "abcdefgh",
                "ABCDEFGH",
                "12345678",
                "[REDACTED:jwt]",
            ]
        ),
        max_size=24,
    )
)
def test_gates_never_hide_a_detector_match(pieces: list[str]) -> None:
    """The gates are necessary conditions: gated scrubbing equals running every detector."""
    text = "".join(pieces)
    everything = redact._combined(tuple(range(len(redact._DETECTORS))))
    expected_findings: list[Finding] = []
    expected = Scrubber()._scan_text(text, everything, ("reason",), expected_findings)
    assert scrub_text(text) == (
        text if expected is None else expected,
        [f.kind for f in expected_findings],
    )


def test_gates_start_with_a_literal() -> None:
    """Every gate begins with two literal characters, so re finds it with a substring search."""
    for detector in redact._DETECTORS:
        for gate in detector.gates:
            assert re.escape(gate[:2]) == gate[:2], gate
