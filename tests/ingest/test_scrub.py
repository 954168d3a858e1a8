"""Tests for glasslog.ingest.scrub: secrets are replaced at ingest (docs/secrets.md).

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

from glasslog.errors import ConfigError
from glasslog.ingest import scrub
from glasslog.ingest.scrub import Finding, Scrubber, ScrubConfig, ScrubRule, format_path

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
        ("aws_secret_access_key", "aws_secret_key"),
        ("SecretAccessKey", "aws_secret_key"),
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
    scrubber = Scrubber(config=ScrubConfig(sensitive_keys=("ssn", "National-ID")))
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
        ("ssn", r"a list of key names, got the string 'ssn'; write \['ssn'\]"),
        (["--"], r"sensitive key '--' has no letters or digits"),
        ([b"ssn"], r"sensitive keys must be strings, got bytes"),
    ],
)
def test_bad_extra_sensitive_keys_are_refused(extra: Any, message: str) -> None:
    """A misconfigured key list fails at construction with a message saying how to fix it."""
    with pytest.raises(ConfigError, match=message):
        ScrubConfig(sensitive_keys=extra)


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
        ('body {"api_key": "abc def"}', 'body {"api_key": "[REDACTED:api_key]"}', "api_key"),
        (
            "cookie csrftoken=q1w2e3; lang=en",
            "cookie csrftoken=[REDACTED:token]; lang=en",
            "token",
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


# --- card numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("4111 1111 1111 1111 12/27", "4111 1111 1111 1111"),
        ("5555 5555 5555 4444 123", "5555 5555 5555 4444"),
        ("4111-1111-1111-1111-12 ok", "4111-1111-1111-1111"),
        ("3782 822463 10005 09/26", "3782 822463 10005"),
        ("paid 2 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ],
)
def test_grouped_card_followed_by_more_digits_is_found(text: str, card: str) -> None:
    """A grouped card number followed by more digit groups (expiry, code) is still found.

    The pattern takes every digit group that follows; the Luhn check must then be
    tried on the shorter card-shaped prefixes, not only on the whole run.
    """
    scrubbed, kinds = scrub_text(text)
    assert kinds == ["card_number"]
    assert scrubbed == text.replace(card, "[REDACTED:card_number]")


@pytest.mark.parametrize(
    "iban", ["DE44 5001 0517 5407 3249 31", "FR14 2004 1010 0505 0001 3M02 606"]
)
def test_digit_groups_of_an_iban_are_not_a_card(iban: str) -> None:
    """Digit groups after a group of letters and digits belong to an IBAN, even if Luhn-valid."""
    assert scrub_text(f"pay to {iban} today") == (f"pay to {iban} today", [])


# --- vendor tokens and other shapes -----------------------------------------------------

SENDGRID = "SG" + "." + "Ab3dEf6hIj9lMn0pQr2tUv" + "." + "x" * 20 + "Y" * 23
NPM = "np" + "m_" + "a1B2c3D4e5" * 3 + "F6g7H8"
PYPI = "py" + "pi-" + "AgEIcHlwaS5vcmc" + "CJGRkYmM4ZTU0" * 5
DOCKER = "dc" + "kr_pat_" + "Ab1-Cd2_Ef3" * 3
TWILIO = "S" + "K" + "0123456789abcdef" * 2
MAILGUN = "ke" + "y-" + "0123456789abcdef" * 2
MAILCHIMP = "0123456789abcdef" * 2 + "-us" + "21"
DISCORD_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4" + ".Cl2FMQ." + "ZnCjm1XVW7vRze4b7Cq4se7kKWs"
TELEGRAM = "123456789" + ":AA" + "Ab1-Cd2_Ef3" * 3
OPENAI = "sk" + "-" + "a1B2c3D4e5" * 2 + "T3BlbkFJ" + "f6G7h8I9j0" * 2
ANTHROPIC = "sk" + "-ant-api03-" + "a1B2-c3D4_e5" * 8 + "AA"
HUGGINGFACE = "h" + "f_" + "abcdEFGHij" * 3 + "klMN"
SHOPIFY = "shp" + "at_" + "0123456789abcdef" * 2
ATLASSIAN = "ATA" + "TT3xFfGF0" + "a1B2-c3D4_" * 17 + "=0A1B2C3D"
DIGITALOCEAN = "do" + "p_v1_" + "0123456789abcdef" * 4
VAULT = "hv" + "s." + "CAESI" + "a1B2-c3D4_" * 9
AZURE_CLIENT = "abc" + "8Q~" + "a1B2-c3D4_e5F6.g7H8~i9J0k1L2m3N4o5"
GOOGLE_OAUTH = "GOC" + "SPX-" + "a1B2-c3D4_e5F6g7H8i9J0k1L2m3"
SLACK_APP = "xa" + "pp-1-" + "A0123ABCDEF-1234567890123-" + "0123456789abcdef" * 4
STRIPE_WEBHOOK = "wh" + "sec_" + "a1B2c3D4e5" * 3


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        (SENDGRID, "sendgrid_key"),
        (NPM, "npm_token"),
        (PYPI, "pypi_token"),
        (DOCKER, "docker_token"),
        (TWILIO, "twilio_key"),
        (MAILGUN, "mailgun_key"),
        (MAILCHIMP, "mailchimp_key"),
        (DISCORD_TOKEN, "discord_token"),
        (TELEGRAM, "telegram_bot_token"),
        (OPENAI, "openai_key"),
        (ANTHROPIC, "anthropic_key"),
        (HUGGINGFACE, "huggingface_token"),
        (SHOPIFY, "shopify_token"),
        (ATLASSIAN, "atlassian_token"),
        (DIGITALOCEAN, "digitalocean_token"),
        (VAULT, "vault_token"),
        (AZURE_CLIENT, "azure_client_secret"),
        (GOOGLE_OAUTH, "google_oauth_secret"),
        (SLACK_APP, "slack_token"),
        (STRIPE_WEBHOOK, "stripe_key"),
    ],
)
def test_vendor_token_is_replaced_in_place(token: str, kind: str) -> None:
    """A token of a known vendor shape is replaced, with its kind; the sentence around it stays."""
    assert scrub_text(f"ci used {token} (rotated)") == (
        f"ci used [REDACTED:{kind}] (rotated)",
        [kind],
    )


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            f"aws_secret_access_key = {AWS_SECRET}",
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
            "aws_secret_key",
        ),
        (
            f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
            "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key]",
            "aws_secret_key",
        ),
        (
            f'{{"SecretAccessKey": "{AWS_SECRET}"}}',
            '{"SecretAccessKey": "[REDACTED:aws_secret_key]"}',
            "aws_secret_key",
        ),
        (
            "AccountName=acct;AccountKey=" + "Zm9vYmFy" * 11 + "==;EndpointSuffix=core.windows.net",
            "AccountName=acct;AccountKey=[REDACTED:azure_storage_key];"
            "EndpointSuffix=core.windows.net",
            "azure_storage_key",
        ),
        (
            "https://a.blob.core.windows.net/c/f?sv=2022-11-02&sp=r&sig=" + "Ab%2Bc1" * 8 + "%3D",
            "https://a.blob.core.windows.net/c/f?sv=2022-11-02&sp=r&sig=[REDACTED:url_signature]",
            "url_signature",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=" + "0123456789abcdef" * 32 + "&x=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=[REDACTED:url_signature]&x=1",
            "url_signature",
        ),
        (
            "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/" + "a1B2c3D4e5F6" * 2,
            "https://hooks.slack.com/services/[REDACTED:slack_webhook]",
            "slack_webhook",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/" + "a1B2-c3D4_e5F6" * 5,
            "https://discord.com/api/webhooks/123456789012345678/[REDACTED:discord_webhook]",
            "discord_webhook",
        ),
    ],
)
def test_named_and_embedded_credentials_are_replaced(text: str, expected: str, kind: str) -> None:
    """Secrets recognised by their name or place (AWS secret keys, Azure keys, signed URLs)."""
    assert scrub_text(text) == (expected, [kind])


@pytest.mark.parametrize(
    "text",
    [
        "pk_" + "live_" + "a1B2c3D4e5" * 3,  # Stripe publishable keys are public
        "AC" + "0123456789abcdef" * 2,  # a Twilio account SID names the account
        "scikit-learn (sk-learn) 1.5.0",
        "npm_config_cache=/home/ci/.npm",
        "a key-value store",
        "sig=pending",
        "SG.org holiday schedule",
        "hf_hub_download(repo_id='bert')",
        "xoxo, the team",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
        "signature=not_yet_verified_by_the_bank",
        "deploy step printed token_type=Bearer to the console",
        "Bearer bonds matured",
        "https://hooks.slack.com is allowed by the proxy",
    ],
)
def test_vendor_look_alikes_are_kept(text: str) -> None:
    """Public ids, prose and names that share a prefix with a token shape are left alone."""
    assert scrub_text(text) == (text, [])


def _pem_body(label: str) -> tuple[str, str]:
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDZ" + "a1B2c3D4" * 2
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----", body


@pytest.mark.parametrize(
    "label",
    [
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
def test_private_keys_in_every_pem_form_are_replaced(label: str) -> None:
    """RSA, EC, DSA, PKCS #8, encrypted, OpenSSH and PGP private key blocks are replaced whole."""
    pem, body = _pem_body(label)
    assert scrub_text(f"key:\n{pem}\nend") == ("key:\n[REDACTED:private_key]\nend", ["private_key"])
    assert body not in scrub_text(json.dumps({"private_key": pem}))[0]


def test_ssh2_and_putty_private_keys_are_replaced() -> None:
    """SSH2 (RFC 4716 style) private key blocks and PuTTY key files are replaced whole."""
    body = "AAAAB3NzaC1yc2EAAAABJQAAAQEAhlxZ" + "a1B2c3D4" * 4
    ssh2 = (
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: key\n"
        f"{body}\n---- END SSH2 ENCRYPTED PRIVATE KEY ----"
    )
    putty = (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n"
        f"{body}\nPrivate-MAC: 0123456789abcdef"
    )
    for text in (ssh2, putty):
        assert scrub_text(f"file: {text} (done)") == (
            "file: [REDACTED:private_key] (done)",
            ["private_key"],
        )


# --- name = value in text -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("db_password = 'two words'", "db_password = '[REDACTED:password]'", "password"),
        ('{"clientSecret": "s3cr3t"}', '{"clientSecret": "[REDACTED:secret]"}', "secret"),
        (
            "mysql --password=s3cr3t -u root",
            "mysql --password=[REDACTED:password] -u root",
            "password",
        ),
        ("X-Api-Key: abc123", "X-Api-Key: [REDACTED:api_key]", "api_key"),
        ("password_hash: $2b$12$abc", "password_hash: [REDACTED:password]", "password"),
        ("new_password2=s3cr3t", "new_password2=[REDACTED:password]", "password"),
        ("Set-Cookie: sid=abc123; Path=/", "Set-Cookie: [REDACTED:cookie]; Path=/", "cookie"),
        ("auth_token: Bearer abc123", "auth_token: Bearer [REDACTED:token]", "token"),
        (
            "spring.datasource.password=s3cr3t",
            "spring.datasource.password=[REDACTED:password]",
            "password",
        ),
        (
            "Authorization: Bearer abc123",
            "Authorization: Bearer [REDACTED:bearer_token]",
            "bearer_token",
        ),
    ],
)
def test_key_rule_reads_assignments_in_text(text: str, expected: str, kind: str) -> None:
    """``name=value`` in text follows the key-name rule: the value after a sensitive name goes."""
    assert scrub_text(text) == (expected, [kind])


@pytest.mark.parametrize(
    "text",
    [
        "password: ****",
        "password=${DB_PASSWORD}",
        "client_secret={{ secret }}",
        "token: null",
        "api_key=<your-api-key>",
        "secret: [FILTERED]",
        "password=%s",
        "password_policy=strict",
        "api_key_id=4f2a",
        "arn:aws:iam::123456789012:secret:name",
    ],
)
def test_assignments_that_hold_no_secret_are_kept(text: str) -> None:
    """Masks, template references, JSON literals and names that describe a credential are kept."""
    assert scrub_text(text) == (text, [])


def test_pem_after_a_key_name_is_replaced_whole() -> None:
    """``private_key: -----BEGIN …`` leaves the whole block to the private key detector."""
    pem, _ = _pem_body("RSA PRIVATE KEY")
    assert scrub_text(f"private_key: {pem}") == (
        "private_key: [REDACTED:private_key]",
        ["private_key"],
    )


def test_extra_sensitive_keys_apply_to_text_too() -> None:
    """An extra key name is also read in ``name: value`` text, with its own kind."""
    event = make_event(reason="customer_ssn: 078-05-1120 verified")
    findings = Scrubber(config=ScrubConfig(sensitive_keys=("ssn",))).scrub(event)
    assert event["reason"] == "customer_ssn: [REDACTED:ssn] verified"
    assert findings == [Finding(("reason",), "ssn")]


# --- configuration: extra rules and actions ---------------------------------------------

BADGE = ScrubRule(kind="employee_badge", pattern="EMP-[0-9]{6}", action="redact")


def test_extra_rule_replaces_its_matches_with_its_kind() -> None:
    """An extra pattern's matches are replaced with its kind, redacted or fingerprinted as set."""
    for action, placeholder in (
        ("redact", r"\[REDACTED:employee_badge\]"),
        ("fingerprint", r"\[REDACTED:employee_badge:[0-9a-f]{16}\]"),
    ):
        rule = ScrubRule(kind="employee_badge", pattern="EMP-[0-9]{6}", action=action)  # type: ignore[arg-type]
        event = make_event(reason="badge EMP-123456 at the door", metadata={"badge": "EMP-654321"})
        scrubber = Scrubber(fingerprint_key=KEY, config=ScrubConfig(rules=(rule,)))
        findings = scrubber.scrub(event)
        assert re.fullmatch(f"badge {placeholder} at the door", event["reason"])
        assert re.fullmatch(placeholder, event["metadata"]["badge"])
        assert [f.kind for f in findings] == ["employee_badge", "employee_badge"]


def test_rule_secret_group_limits_the_replacement() -> None:
    """A rule with a ``(?P<secret>…)`` group replaces only that group, like the built-ins."""
    rule = ScrubRule(kind="pin", pattern=r"\bpin (?P<secret>[0-9]{4,6})\b")
    event = make_event(reason="door pin 4821 used")
    Scrubber(config=ScrubConfig(rules=(rule,))).scrub(event)
    assert event["reason"] == "door pin [REDACTED:pin] used"


def test_rules_never_touch_placeholders() -> None:
    """A rule that would match inside an earlier placeholder leaves it alone (idempotent)."""
    rule = ScrubRule(kind="hex", pattern="[0-9a-f]{16}")
    scrubber = Scrubber(fingerprint_key=KEY, config=ScrubConfig(rules=(rule,)))
    event = make_event(reason=f"key {AWS_KEY} and 0123456789abcdef")
    scrubber.scrub(event)
    assert re.fullmatch(
        r"key \[REDACTED:aws_access_key:[0-9a-f]{16}\] and \[REDACTED:hex:[0-9a-f]{16}\]",
        event["reason"],
    )
    once = copy.deepcopy(event)
    assert scrubber.scrub(event) == []
    assert event == once


def test_actions_choose_redact_or_fingerprint_per_kind() -> None:
    """``actions`` makes a kind plain ``[REDACTED:kind]``; other kinds keep their fingerprint."""
    config = ScrubConfig(actions=(("card_number", "redact"), ("password", "fingerprint")))
    event = make_event(reason=f"{VISA} {AWS_KEY}", metadata={"password": "x"})
    Scrubber(fingerprint_key=KEY, config=config).scrub(event)
    assert re.fullmatch(
        r"\[REDACTED:card_number\] \[REDACTED:aws_access_key:[0-9a-f]{16}\]", event["reason"]
    )
    assert re.fullmatch(r"\[REDACTED:password:[0-9a-f]{16}\]", event["metadata"]["password"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ScrubRule("badge", "EMP-[0-9"), r"pattern 'EMP-\[0-9' of 'badge' is not a valid"),
        (lambda: ScrubRule("badge", "x*"), r"matches the empty string"),
        (lambda: ScrubRule("Badge!", "EMP"), r"kind 'Badge!' must be lowercase letters"),
        (lambda: ScrubRule("too_deep", "EMP"), r"reserved"),
        (lambda: ScrubRule("badge", "EMP", "hide"), r"action must be one of 'redact', "),  # type: ignore[arg-type]
        (lambda: ScrubConfig(actions=(("cards", "redact"),)), r"unknown kind 'cards'"),
        (
            lambda: ScrubConfig(rules=(BADGE,), actions=(("employee_badge", "redact"),)),
            r"set `action` in that rule instead",
        ),
        (
            lambda: ScrubConfig(actions=(("jwt", "redact"), ("jwt", "redact"))),
            r"action for 'jwt' is given twice",
        ),
    ],
)
def test_bad_configuration_is_refused(build: Any, message: str) -> None:
    """A bad rule or action fails when the configuration is built, saying what to change."""
    with pytest.raises(ConfigError, match=message):
        build()


def test_actions_accept_extra_key_kinds() -> None:
    """An extra sensitive key's kind can be given an action too."""
    config = ScrubConfig(sensitive_keys=("National-ID",), actions=(("national_id", "redact"),))
    event = make_event(metadata={"national_id": "X1"})
    Scrubber(fingerprint_key=KEY, config=config).scrub(event)
    assert event["metadata"]["national_id"] == "[REDACTED:national_id]"


@pytest.mark.parametrize(
    ("pattern", "gate"),
    [
        ("EMP-[0-9]{6}", "emp"),
        (r"^EMP-[0-9]{6}", "emp"),
        (r"\bACME_[0-9]{4}", "acme_"),
        (r"badge=(?P<secret>[0-9]+)", "badge="),
        ("(?i)EMP-[0-9]{6}", None),
        ("EMP-[0-9]{6}|X-[0-9]{6}", None),
        ("E?MP-[0-9]{6}", None),
        ("EM[0-9]{6}", None),
        ("[A-Z]{3}-[0-9]{6}", None),
        ("(EMP|BAD)-[0-9]{6}", None),
        ("EMP(?:-|_)[0-9]{6}", "emp"),
    ],
)
def test_rule_gate_is_a_leading_literal_when_certain(pattern: str, gate: str | None) -> None:
    """A rule is gated by its folded leading literal only when every match must contain it."""
    expected = None if gate is None else re.escape(gate)
    assert scrub._rule_gate(ScrubRule("r", pattern)) == expected


RULES = [
    ScrubRule("gated", "EMP-[0-9]{3}"),
    ScrubRule("anchored", "^ID[0-9]{2}"),
    ScrubRule("caseless", "(?i)emp_[0-9]{2}"),
    ScrubRule("either", "ZZ[0-9]|Q[0-9]{2}"),
]


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            ["EMP-", "emp-", "Emp_", "EMP_", "ID", "1", "23", "ZZ", "Q", " ", "-", "x"]
        ),
        max_size=12,
    )
)
def test_rules_match_as_if_run_on_every_event(pieces: list[str]) -> None:
    """Gated or not, an extra rule replaces exactly what its regex finds in each string."""
    text = "".join(pieces)
    event = make_event(reason=text)
    Scrubber(config=ScrubConfig(rules=tuple(RULES))).scrub(event)
    expected = text
    for rule in RULES:
        expected = rule.compiled.sub(f"[REDACTED:{rule.kind}]", expected)
    assert event["reason"] == expected


def test_configured_settings_pickle_for_worker_processes() -> None:
    """Settings with rules survive pickling, as they must to reach ingest worker processes."""
    import pickle

    from glasslog.ingest.pipeline import Preparer, Settings

    settings = Settings(scrub=ScrubConfig(sensitive_keys=("ssn",), rules=(BADGE,)))
    copied = pickle.loads(pickle.dumps(settings))
    assert copied == settings
    event = make_event(reason="EMP-123456", metadata={"ssn": "1"})
    body = Preparer(fingerprint_key=KEY, settings=copied).prepare(event).body
    assert "[REDACTED:employee_badge]" in body
    assert '"ssn":"[REDACTED:ssn:' in body


# --- hostile input --------------------------------------------------------------------

HOSTILE = [
    "a=", "password=", "token: ", "x-", "sk-", "glpat-", "4111 ", "4111-", "41111 ", "eyJ",
    "eyJa.", "-----BEGIN PRIVATE KEY-----", "---- BEGIN SSH2 PRIVATE KEY ----", "https://",
    "://a:", "a:b@", "AKIA", "Bearer ", "bearer a", "Basic QQ== ", "SG.", "SG.a.", "npm_", "hf_",
    "key-", "0" * 32 + "-us1 ", "SK", "MTIz", "MTIzNDU2Nzg5MDEyMzQ1Njc4.", ".abcdef.",
    "1234567890:AA", "T3BlbkFJ", "sk-ant-api03-", "ATATT3", "hvs.", "AccountKey=", "sig=1",
    "aaa1Q~", "PuTTY-User-Key-File-2:", "DE89 ", '"token": "', "token={{", "token=****",
]  # fmt: skip


@pytest.mark.parametrize("piece", HOSTILE)
def test_hostile_text_is_scrubbed_in_linear_time(piece: str) -> None:
    """100 kB of a repeated detector prefix is scrubbed in well under a second (no backtracking)."""
    import time

    text = piece * (100_000 // len(piece))
    # The trailing assignment makes every gate's detector run over the whole text.
    event = make_event(reason=text + " password=x", metadata={"detail": text[:8000]})
    start = time.process_time()  # CPU time: other processes on the machine do not count
    Scrubber(fingerprint_key=KEY).scrub(event)
    assert time.process_time() - start < 2.0  # quadratic behaviour takes minutes here


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
    for _ in range(scrub._MAX_DEPTH + 5):
        deep = [deep]
    event = make_event(metadata={"deep": deep})
    findings = Scrubber().scrub(event)
    assert [f.kind for f in findings] == ["too_deep"]
    assert len(findings[0].path) == scrub._MAX_DEPTH + 1
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
    scrubber = Scrubber(fingerprint_key=KEY, config=ScrubConfig(sensitive_keys=("ssn",)))
    assert repr(scrubber) == (
        "Scrubber(fingerprint=True, config=ScrubConfig(sensitive_keys=('ssn',), rules=(), "
        "actions=()))"
    )
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
def test_format_path(path: scrub.Path, text: str) -> None:
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
    _card()
    .filter(lambda c: len(c) == 16)
    .map(lambda c: " ".join(c[i : i + 4] for i in range(0, 16, 4)))
    .map(lambda grouped: (grouped + " 12/27", grouped)),
    st.tuples(_random(_B64URL, 22), _random(_B64URL, 43)).map(
        lambda p: ("S" + "G." + p[0][:22] + "." + p[1][:43],) * 2
    ),
    _random(_ALNUM, 36).map(lambda s: ("np" + "m_" + s[:36],) * 2),
    _random(_ALNUM + "/+", 40).map(lambda s: ("aws_secret_access_key = " + s[:40], s[:40])),
    _random(_ALNUM + "/+", 44).map(lambda s: ("AccountName=a;AccountKey=" + s + ";x=y", s)),
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


GATE_PIECES = [
    "Bearer ", "basic ", "AKIA", "ASIA", "AIza", "eyJ", "xoxb-", "xapp-1-", "ghp_", "github_pat_",
    "glpat-", "gldt-", "sk_live_", "whsec_", "://", ":", "@", "=", "password", "Passwd", "token",
    "api-key", "apiKey", "aws_secret_access_key", "SecretAccessKey", "client_secret", "Cookie",
    "Authorization", "_hash", "2", '"', "'", " ", "-", "--", ".", "_", "~", "Q~", "8Q~", "/",
    "-----BEGIN RSA PRIVATE KEY-----", "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----", "\n",
    "PuTTY-User-Key-File-3: ", "Private-MAC: ab", "4111", "1111", "0", "5", " 12/27", "DE89 ",
    "Zm9v", "abcdefgh", "ABCDEFGH", "12345678", "0123456789abcdef", "[REDACTED:jwt]", "SG.",
    "npm_", "pypi-AgEIcHlwaS5vcmc", "dckr_pat_", "SK", "key-", "-us12", "hooks.slack.com/services/",
    "https://", "discord.com/api/webhooks/", "MTk4NjIyNDgzNDcxOTI1MjQ4", "MTIz", ":AA", "sk-",
    "T3BlbkFJ", "sk-ant-api03-", "hf_", "shpat_", "ATATT3", "dop_v1_", "hvs.", "AccountKey=",
    "SharedAccessKey=", "sig=", "X-Amz-Signature=", "GOCSPX-", "${DB}", "{{ x }}", "****", "null",
]  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.sampled_from(GATE_PIECES), max_size=30))
def test_gates_never_hide_a_detector_match(pieces: list[str]) -> None:
    """The gates are necessary conditions: gated scrubbing equals running every detector."""
    text = "".join(pieces)
    scrubber = Scrubber()
    plan = scrub._plan(ScrubConfig())
    everything = plan.pattern(tuple(range(len(plan.detectors))))
    expected_findings: list[Finding] = []
    expected = scrubber._scan_text(text, everything, (), ("reason",), expected_findings)
    assert scrub_text(text) == (
        text if expected is None else expected,
        [f.kind for f in expected_findings],
    )


def test_gates_start_with_a_literal() -> None:
    """Every gate begins with a literal character, so re finds it with a substring search."""
    for detector in scrub._plan(ScrubConfig()).detectors:
        for gate in detector.gates:
            literal, _ = scrub._leading_literal(gate)
            assert literal, gate
