"""The labelled secret corpus: how tests/ingest/secret_corpus.jsonl is made, and how it is read.

Every secret is synthetic but has its format's real shape: vendor prefixes and
lengths, GitHub's and npm's CRC32 checksum, Luhn check digits on cards, the
ASN.1 and ``openssh-key-v1`` starts of key bodies, base64 of user ids in Discord
tokens. The look-alikes are what audit logs are full of: ids, hashes, times,
phone numbers, public keys, ARNs, and prose about passwords and tokens.

One JSON object per line: ``text`` (the string as it would appear), ``kind`` (the
kind the scrubber must report, or null for a look-alike), ``secret`` (the part that
must not be stored, when it is not the whole text) and ``group`` (the format or
look-alike family, for the report). Regenerate after a change here with
``python -m tests.ingest.secret_corpus`` (deterministic); print the recall and
false-positive table of docs/secrets.md with ``python -m tests.ingest.secret_corpus --report``.

The file keeps secret scanners from mistaking it for a leak the way the tests
do with their token pieces: in every secret, the first four characters are written
as JSON ``\\u`` escapes, so no vendor prefix appears in the raw bytes.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("secret_corpus.jsonl")

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
BASE32 = string.ascii_uppercase + "234567"


@dataclass(frozen=True, slots=True)
class Entry:
    """One labelled string: a secret of ``kind``, or a look-alike when ``kind`` is None."""

    text: str
    kind: str | None
    group: str
    secret: str = ""

    @property
    def needle(self) -> str:
        """What must not survive scrubbing (secrets) or must survive unchanged (look-alikes)."""
        return self.secret or self.text


def load(path: Path = CORPUS) -> list[Entry]:
    with path.open(encoding="utf-8") as lines:
        return [Entry(**json.loads(line)) for line in lines if line.strip()]


def _encode(entry: Entry) -> str:
    """One JSONL line; a secret's first four characters are \\u-escaped wherever it occurs."""
    record = {"text": entry.text, "kind": entry.kind, "group": entry.group}
    if entry.secret:
        record["secret"] = entry.secret
    line = json.dumps(record, ensure_ascii=False)
    if entry.kind is not None:
        secret = entry.needle
        plain = json.dumps(secret, ensure_ascii=False)[1:-1]
        hidden = "".join(f"\\u{ord(c):04x}" for c in secret[:4])
        hidden += json.dumps(secret[4:], ensure_ascii=False)[1:-1]
        line = line.replace(plain, hidden)
    return line


# --- secrets -------------------------------------------------------------------------


def _pick(rng: random.Random, alphabet: str, size: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


def _base62(number: int, width: int) -> str:
    digits = string.digits + string.ascii_uppercase + string.ascii_lowercase
    out = ""
    while number:
        number, rest = divmod(number, 62)
        out = digits[rest] + out
    return out.rjust(width, "0")


def _checksummed(rng: random.Random, prefix: str) -> str:
    """GitHub's and npm's format: 30 random base62 characters and their CRC32 in base62."""
    body = _pick(rng, ALNUM, 30)
    return prefix + body + _base62(zlib.crc32(body.encode()), 6)


def _luhn(rng: random.Random, prefix: str, length: int) -> str:
    digits = prefix + _pick(rng, string.digits, length - len(prefix) - 1)
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return digits + str((10 - total % 10) % 10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _pem(rng: random.Random, label: str, start: bytes, size: int) -> tuple[str, str]:
    body = _b64(start + rng.randbytes(size))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    return text, lines[1]


Made = tuple[str, str] | str
"""A generator's result: the text, or (text, the secret inside it)."""


def _secrets(rng: random.Random) -> Iterator[tuple[str, str, Made]]:
    """(kind, group, made) for every secret of the corpus."""
    for _ in range(6):
        yield "aws_access_key", "AKIA", "AKIA" + _pick(rng, BASE32, 16)
    for _ in range(4):
        yield "aws_access_key", "ASIA", "ASIA" + _pick(rng, BASE32, 16)
    aws_forms = [
        ("credentials file", "aws_secret_access_key = {}"),
        ("environment", "AWS_SECRET_ACCESS_KEY={}"),
        ("JSON", '"aws_secret_access_key": "{}"'),
        ("YAML", "aws_secret_access_key: {}"),
        ("AWS CLI JSON", '{{"AccessKeyId": "ASIA{id}", "SecretAccessKey": "{}"}}'),
        ("shell", 'export AWS_SECRET_ACCESS_KEY="{}"'),
        ("config", "secret_access_key={}"),
        ("YAML", "aws_secret_key: '{}'"),
    ]
    for i in range(12):
        key = _pick(rng, ALNUM + "/+", 40)
        group, form = aws_forms[i % len(aws_forms)]
        yield "aws_secret_key", group, (form.format(key, id=_pick(rng, BASE32, 16)), key)
    for i in range(10):
        if i % 2:
            key = _b64(rng.randbytes(32))
            text = (
                f"Endpoint=sb://ns{i}.servicebus.windows.net/;"
                f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
            )
        else:
            key = _b64(rng.randbytes(64))
            text = (
                f"DefaultEndpointsProtocol=https;AccountName=store{i};AccountKey={key};"
                "EndpointSuffix=core.windows.net"
            )
        yield "azure_storage_key", "connection string", (text, key)
    for i in range(10):
        if i < 4:
            sig = (
                _b64(rng.randbytes(32)).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
            )
            text = (
                f"https://store{i}.blob.core.windows.net/backups/db.bak?sv=2022-11-02&ss=b&srt=o"
                f"&sp=r&se=2025-01-01T00:00:00Z&spr=https&sig={sig}"
            )
            group = "Azure SAS"
        elif i < 6:
            sig = (
                _b64(rng.randbytes(32)).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
            )
            text = f"SharedAccessSignature=sv=2021-06-08&ss=q&srt=sco&sp=rl&se=2025-06-01&sig={sig}"
            group = "Azure SAS"
        elif i < 8:
            sig = rng.randbytes(32).hex()
            text = (
                f"https://bucket-{i}.s3.amazonaws.com/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                "&X-Amz-Date=20240701T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
                f"&X-Amz-Signature={sig}"
            )
            group = "S3 presigned"
        else:
            sig = rng.randbytes(256).hex()
            text = (
                f"https://storage.googleapis.com/bucket/o{i}.png?X-Goog-Algorithm=GOOG4-RSA-SHA256"
                f"&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature={sig}"
            )
            group = "GCS signed"
        yield "url_signature", group, (text, sig)
    for _ in range(10):
        yield "sendgrid_key", "SG.", f"SG.{_pick(rng, B64URL, 22)}.{_pick(rng, B64URL, 43)}"
    for _ in range(10):
        yield "npm_token", "npm_", _checksummed(rng, "npm_")
    for _ in range(10):
        macaroon = b"\x02\x01\x08pypi.org\x02" + rng.randbytes(rng.randrange(60, 140))
        yield "pypi_token", "pypi-", "pypi-" + _b64url(macaroon)
    for _ in range(10):
        yield "docker_token", "dckr_pat_", "dckr_pat_" + _pick(rng, B64URL, 27)
    for _ in range(8):
        yield "twilio_key", "SK", "SK" + _pick(rng, HEX, 32)
    for _ in range(8):
        yield "mailgun_key", "key-", "key-" + _pick(rng, HEX, 32)
    for _ in range(8):
        yield "mailchimp_key", "-usNN", f"{_pick(rng, HEX, 32)}-us{rng.randrange(1, 22)}"
    for i in range(10):
        team, n = f"{rng.randrange(10**9, 10**10)}", f"{rng.randrange(10**12, 10**13)}"
        if i < 4:
            yield "slack_token", "xoxb-", f"xoxb-{team}-{n}-{_pick(rng, ALNUM, 24)}"
        elif i < 7:
            yield "slack_token", "xoxp-", f"xoxp-{team}-{team}-{n}-{_pick(rng, HEX, 32)}"
        else:
            yield (
                "slack_token",
                "xapp-",
                f"xapp-1-A{_pick(rng, BASE32, 10)}-{n}-{_pick(rng, HEX, 64)}",
            )
    for _ in range(8):
        path = f"T{_pick(rng, BASE32, 10)}/B{_pick(rng, BASE32, 10)}/{_pick(rng, ALNUM, 24)}"
        yield "slack_webhook", "hooks.slack.com", (f"https://hooks.slack.com/services/{path}", path)
    for _ in range(8):
        token = _pick(rng, B64URL, 68)
        url = f"https://discord.com/api/webhooks/{rng.randrange(10**17, 10**19)}/{token}"
        yield "discord_webhook", "discord.com/api/webhooks", (url, token)
    for _ in range(10):
        user = str(rng.randrange(10**16, 10**19))
        stamp = _b64url(rng.randbytes(4))
        mac = _pick(rng, B64URL, rng.choice([27, 38]))
        yield "discord_token", "bot token", f"{_b64url(user.encode())}.{stamp}.{mac}"
    for _ in range(8):
        yield (
            "telegram_bot_token",
            "bot token",
            f"{rng.randrange(10**8, 10**10)}:AA{_pick(rng, B64URL, 33)}",
        )
    for i in range(10):
        if i < 5:
            key = f"sk-{_pick(rng, ALNUM, 20)}T3BlbkFJ{_pick(rng, ALNUM, 20)}"
            yield "openai_key", "sk- (legacy)", key
        else:
            project = rng.choice(["proj", "svcacct", "admin"])
            key = f"sk-{project}-{_pick(rng, B64URL, 74)}T3BlbkFJ{_pick(rng, B64URL, 74)}"
            yield "openai_key", f"sk-{project}-", key
    for _ in range(8):
        yield "anthropic_key", "sk-ant-api03-", f"sk-ant-api03-{_pick(rng, B64URL, 93)}AA"
    for _ in range(8):
        yield "huggingface_token", "hf_", "hf_" + _pick(rng, string.ascii_letters, 34)
    for i in range(8):
        prefix = ["shpat_", "shpss_", "shpca_", "shppa_"][i % 4]
        yield "shopify_token", prefix, prefix + _pick(rng, HEX, 32)
    for _ in range(8):
        body = _pick(rng, B64URL, 171)
        crc = f"{zlib.crc32(body.encode()):08X}"
        yield "atlassian_token", "ATATT3", f"ATATT3xFfGF0{body}={crc}"
    for i in range(8):
        prefix = ["dop_v1_", "doo_v1_", "dor_v1_"][i % 3]
        yield "digitalocean_token", prefix, prefix + _pick(rng, HEX, 64)
    for i in range(8):
        prefix = ["hvs.", "hvb."][i % 2]
        yield "vault_token", prefix, prefix + "CAESI" + _pick(rng, B64URL, 86)
    for _ in range(8):
        secret = (
            _pick(rng, ALNUM, 3) + rng.choice(string.digits) + "Q~" + _pick(rng, ALNUM + "_~.-", 34)
        )
        yield "azure_client_secret", "Q~", secret
    for _ in range(8):
        yield "google_api_key", "AIza", "AIza" + _pick(rng, B64URL, 35)
    for _ in range(8):
        yield "google_oauth_secret", "GOCSPX-", "GOCSPX-" + _pick(rng, B64URL, 28)
    for i in range(12):
        if i < 10:
            prefix = ["ghp_", "gho_", "ghs_", "ghu_", "ghr_"][i % 5]
            yield "github_token", prefix, _checksummed(rng, prefix)
        else:
            token = f"github_pat_11{_pick(rng, BASE32, 20)}_{_pick(rng, ALNUM, 59)}"
            yield "github_token", "github_pat_", token
    for i in range(8):
        prefix = ["glpat-", "gldt-", "glrt-"][i % 3]
        yield "gitlab_token", prefix, prefix + _pick(rng, B64URL, 20)
    for i in range(10):
        prefix = ["sk_live_", "rk_live_", "sk_test_", "whsec_"][i % 4]
        yield "stripe_key", prefix, prefix + _pick(rng, ALNUM, rng.choice([24, 32, 99]))
    for _ in range(10):
        header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
        claims = {"sub": str(rng.randrange(10**9)), "iat": 1718000000 + rng.randrange(10**6)}
        payload = _b64url(json.dumps(claims).encode())
        yield "jwt", "JWT", f"{header}.{payload}.{_b64url(rng.randbytes(32))}"
    yield from _private_keys(rng)
    yield from _cards(rng)
    for i in range(8):
        token = _pick(rng, ALNUM + "-._~+/", rng.randrange(20, 60))
        scheme = ["Bearer", "BEARER", "bearer"][i % 3]
        yield "bearer_token", f"{scheme} …", (f"Authorization: {scheme} {token}", token)
    for _ in range(8):
        user = rng.choice(["alice", "svc-deploy", "admin", "ci"])
        credentials = _b64(f"{user}:{_pick(rng, ALNUM, 14)}".encode())
        yield "basic_auth", "Basic …", (f"Authorization: Basic {credentials}", credentials)
    for i in range(10):
        password = _pick(rng, ALNUM + "!$%*", 16)
        url = [
            "postgres://app:{}@db.internal:5432/prod",
            "mongodb+srv://reporting:{}@cluster0.example.net/admin",
            "redis://:{}@cache:6379/0",
            "amqp://worker:{}@rabbit:5672/",
            "https://deploy:{}@git.example.com/org/repo.git",
        ][i % 5]
        yield "url_password", "scheme://user:pw@host", (url.format(password), password)
    yield from _assignments(rng)


def _private_keys(rng: random.Random) -> Iterator[tuple[str, str, Made]]:
    rsa = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00"
    pkcs8 = b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"
    shapes = [
        ("RSA PRIVATE KEY", rsa, 1180),
        ("PRIVATE KEY", pkcs8, 1200),
        ("EC PRIVATE KEY", b"\x30\x77\x02\x01\x01\x04\x20", 110),
        ("DSA PRIVATE KEY", b"\x30\x82\x01\xbb\x02\x01\x00\x02\x81\x81", 430),
        ("ENCRYPTED PRIVATE KEY", b"\x30\x82\x05\x2e\x30\x58\x06\x09", 1300),
        ("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00\x00\x00\x00\x04none", 380),
    ]
    for label, start, size in shapes:
        yield "private_key", label, _pem(rng, label, start, size)
    text, secret = _pem(rng, "PGP PRIVATE KEY BLOCK", b"\x95\x03\xc6\x04", 900)
    yield "private_key", "PGP PRIVATE KEY BLOCK", (text, secret)
    text, secret = _pem(rng, "RSA PRIVATE KEY", rsa, 1180)
    service_account = {
        "type": "service_account",
        "project_id": "audit-prod",
        "private_key_id": _pick(rng, HEX, 40),
        "private_key": text + "\n",
        "client_email": "ingest@audit-prod.iam.gserviceaccount.com",
    }
    yield "private_key", "GCP service account JSON", (json.dumps(service_account), secret)
    body = _b64(rng.randbytes(300))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    putty = (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy@ci\n"
        f"Public-Lines: 2\n{_b64(rng.randbytes(51))[:64]}\n{_b64(rng.randbytes(3))}\n"
        f"Private-Lines: {len(lines)}\n"
        + "\n".join(lines)
        + f"\nPrivate-MAC: {rng.randbytes(32).hex()}"
    )
    yield "private_key", "PuTTY-User-Key-File", (putty, lines[0])
    body = _b64(rng.randbytes(300))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    ssh2 = (
        '---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: "rsa-key-20240701"\n'
        + "\n".join(lines)
        + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----"
    )
    yield "private_key", "SSH2", (ssh2, lines[1])
    truncated, secret = _pem(rng, "EC PRIVATE KEY", b"\x30\x77\x02\x01\x01\x04\x20", 110)
    yield "private_key", "cut off before END", (truncated.split("-----END")[0], secret)


def _cards(rng: random.Random) -> Iterator[tuple[str, str, Made]]:
    networks = [
        ("Visa", "4", 16), ("Mastercard", "51", 16), ("Mastercard 2-series", "2221", 16),
        ("Amex", "37", 15), ("Discover", "6011", 16), ("JCB", "35", 16),
        ("Diners", "36", 14), ("UnionPay", "62", 19), ("Maestro", "6759", 16), ("Mir", "2200", 16),
    ]  # fmt: skip
    for i in range(24):
        name, prefix, length = networks[i % len(networks)]
        number = _luhn(rng, prefix, length)
        style = i % 4
        if style == 0:
            written = number
        elif name == "Amex":
            sep = " " if style != 2 else "-"
            written = sep.join([number[:4], number[4:10], number[10:]])
        elif name == "Diners":
            written = " ".join([number[:4], number[4:10], number[10:]])
        else:
            sep = "-" if style == 2 else " "
            written = sep.join(number[j : j + 4] for j in range(0, length, 4))
        text = written
        if style == 3:  # printed with its expiry or security code after it, as on receipts
            text = f"{written} {rng.randrange(1, 13):02d}/{rng.randrange(25, 31)}"
        yield "card_number", name, (text, written)


def _assignments(rng: random.Random) -> Iterator[tuple[str, str, Made]]:
    """``name=value`` in text, read by the key-name rule: (kind, name, text with value)."""
    forms = [
        ("password", "password={}"),
        ("password", "PASSWORD: {}"),
        ("password", "db_password = '{}'"),
        ("password", '{{"user": "svc", "password": "{}"}}'),
        ("password", "mysql -u root --password={}"),
        ("password", "pwd={}"),
        ("password", "passwd: {}"),
        ("password", "DB_PASS={}"),
        ("password", "spring.datasource.password={}"),
        ("password", "new_password2={}"),
        ("password", "password_hash: {}"),
        ("token", "access_token={}&token_type=bearer"),
        ("token", "refresh_token: {}"),
        ("token", '{{"id_token": "{}"}}'),
        ("token", "X-Auth-Token: {}"),
        ("token", "csrftoken={}; lang=en"),
        ("token", "GITHUB_TOKEN={}"),
        ("token", "auth_token: Bearer {}"),
        ("api_key", "api_key={}"),
        ("api_key", "X-Api-Key: {}"),
        ("api_key", '{{"apiKey": "{}"}}'),
        ("api_key", "DATADOG_API_KEY={}"),
        ("secret", "client_secret={}"),
        ("secret", '{{"clientSecret": "{}"}}'),
        ("secret", "AZURE_CLIENT_SECRET={}"),
        ("secret", "webhook_secret: {}"),
        ("secret", "signing_key={}"),
        ("cookie", "Cookie: {}"),
        ("credential", "credentials={}"),
    ]
    for kind, form in forms:
        value = _pick(rng, ALNUM + "!#%^*-_", rng.randrange(12, 33))
        if kind == "cookie":
            value = f"sessionid={_pick(rng, HEX, 32)}"
        name = form.split("{")[0].strip(" '\"{:=-") or form
        yield kind, f"name: {name}"[:40], (form.format(value), value)


# --- look-alikes ---------------------------------------------------------------------


def _look_alikes(rng: random.Random) -> Iterator[tuple[str, str]]:
    """(group, text) for every string that is not a secret."""
    for i in range(10):
        bits = rng.getrandbits(128) & ~(0xF << 76 | 0x3 << 62) | 0x2 << 62
        text = str(uuid.UUID(int=bits | (4 if i % 2 else 7) << 76))
        yield "uuid", text.upper() if i % 5 == 0 else text
    for i in range(10):
        sha = rng.randbytes(20).hex()
        yield "git sha", [sha, sha[:7], f"commit {sha[:12]}", f"merged {sha[:10]} into main"][i % 4]
    for i in range(10):
        size = [32, 20, 16][i % 3]
        digest = rng.randbytes(size).hex()
        yield "hash", [digest, f"sha256:{rng.randbytes(32).hex()}", f"md5={digest[:32]}"][i % 3]
    for i in range(10):
        number = _luhn(rng, "4", 16)
        bad = number[:-1] + str((int(number[-1]) + 1 + i % 8) % 10)
        yield (
            "order number",
            [
                f"ORD-2024-{rng.randrange(10**6):06d}",
                f"#{rng.randrange(10**8, 10**9)}",
                f"order {bad}",
                f"invoice INV-{rng.randrange(10**5):05d}-{rng.randrange(100):02d}",
                f"PO {rng.randrange(10**9, 10**10)}",
            ][i % 5],
        )
    phones = [
        "+1 (555) 010-2345", "+44 20 7946 0958", "+49 30 901820", "555-0100",
        "+33 1 23 45 67 89", "+91 98765 43210", "(212) 555-0187", "+61 2 5550 1234",
        "+81 3-1234-5678", "+1-202-555-0143",
    ]  # fmt: skip
    for phone in phones:
        yield "phone number", phone
    for i in range(6):
        mime = ["png", "jpeg", "gif"][i % 3]
        yield (
            "base64 image",
            f"data:image/{mime};base64,{_b64(rng.randbytes(rng.randrange(90, 240)))}",
        )
    account = f"{rng.randrange(10**11, 10**12)}"
    arns = [
        f"arn:aws:iam::{account}:role/Deploy",
        "arn:aws:s3:::audit-exports/2024/07/01/part-0001.gz",
        f"arn:aws:lambda:eu-west-1:{account}:function:ingest",
        f"arn:aws:sts::{account}:assumed-role/ReadOnly/alice",
        f"arn:aws:kms:us-east-1:{account}:key/{uuid.UUID(int=rng.getrandbits(128))}",
        f"arn:aws:secretsmanager:eu-west-1:{account}:secret:prod/db-AbCdEf",
        f"arn:aws:dynamodb:us-east-1:{account}:table/sessions",
        f"arn:aws:iam::{account}:user/ci-bot",
    ]
    for arn in arns:
        yield "ARN", arn
    times = [
        "2024-05-01T12:34:56.789Z", "1718000000000", "1718000000123456789",
        "Mon, 01 Jul 2024 12:00:00 GMT", "2024-07-01 12:00:00+02:00", "12:34:56.789",
        "20240701T120000Z", "1719835200", "2024-W27-1", "01/07/2024 14:05",
    ]  # fmt: skip
    for value in times:
        yield "timestamp", value
    prose = [
        "user changed their password", "password reset email sent to alice@example.com",
        "token expired, refreshing", "API key rotated by admin", "the bearer of this letter",
        "Basic plan renewed for 12 months", "secret santa signup closes friday",
        "please do not share your password", "invalid token signature",
        "session token refreshed successfully", "forgot password link clicked",
        "access key rotation is due next week", "private key stored in the HSM",
        "credentials were updated by the owner", "enter your PIN and password to continue",
        "2FA token sent via SMS", "password must be at least 12 characters",
        "login failed: wrong password", "the cookie banner was dismissed",
        "generate a new API key in settings", "error: token: expired",
    ]  # fmt: skip
    for text in prose:
        yield "prose about secrets", text
    ibans = [
        "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00",
        "DE44 5001 0517 5407 3249 31", "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456", "CH93 0076 2011 6238 5295 7",
    ]  # fmt: skip
    for iban in ibans:
        yield "IBAN", iban
    for i in range(10):
        trace, span = rng.randbytes(16).hex(), rng.randbytes(8).hex()
        yield (
            "trace id",
            [
                trace,
                span,
                f"00-{trace}-{span}-01",
                f"1-{rng.randbytes(4).hex()}-{rng.randbytes(12).hex()}",
                f"trace_id={trace}",
            ][i % 5],
        )
    versions = [
        "v1.2.3", "2.10.4-rc.1", "1.0.0+build.5", "Python/3.11.7", "go1.22.3",
        "node v20.11.1", "10.0.19045.3693", "glasslog 0.1.0",
    ]  # fmt: skip
    for version in versions:
        yield "version", version
    network = [
        "10.0.0.1", "2001:db8::1", "00:1A:2B:3C:4D:5E", "alice@example.com",
        "https://example.com/a:b/c", "postgres://app@db:5432/prod", "redis://cache:6379/0",
        "https://user@example.com/path", "git@github.com:org/repo.git",
        "ssh://git@host:22/repo.git", "https://api.example.com/v1/users?page=2&limit=50",
        "mailto:security@example.com",
    ]  # fmt: skip
    for value in network:
        yield "address or URL", value
    for i in range(6):
        if i == 0:
            yield (
                "public key",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"
                + _b64(rng.randbytes(32))[:43]
                + " alice@laptop",
            )
        elif i == 1:
            yield (
                "public key",
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + _b64(rng.randbytes(200)) + " ci",
            )
        else:
            label = ["PUBLIC KEY", "CERTIFICATE", "RSA PUBLIC KEY", "CERTIFICATE REQUEST"][i - 2]
            yield "public key", _pem(rng, label, b"\x30\x82\x01\x22", 200)[0]
    vendor = [
        "pk_live_" + _pick(rng, ALNUM, 24), "pk_test_" + _pick(rng, ALNUM, 24),
        "AC" + _pick(rng, HEX, 32), "AROA" + _pick(rng, BASE32, 17),
        "AIDA" + _pick(rng, BASE32, 17),
        f"{rng.randrange(10**11, 10**12)}-{_pick(rng, HEX, 32)}.apps.googleusercontent.com",
        "C024BE91L", "U024BE7LH", str(rng.randrange(10**17, 10**18)), "-1001234567890",
        "npm_config_cache=/home/ci/.npm", "hf_hub_download(repo_id='bert-base-uncased')",
        "scikit-learn 1.5.0 (sk-learn)", "meta-llama/Llama-3.1-8B-Instruct",
        "d-" + _pick(rng, HEX, 32), "list " + _pick(rng, HEX, 10), "secret/data/payments/db",
        "AccountName=auditstore;EndpointSuffix=core.windows.net",
        "https://auditstore.blob.core.windows.net/exports/2024-07-01.jsonl",
        "https://bucket.s3.amazonaws.com/a.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600",
        "sig=pending", "xoxo, the team", "SG.org holiday schedule", "key-value store",
        "hooks.slack.com is allowed by the proxy",
    ]  # fmt: skip
    for value in vendor:
        yield "vendor id or name", value
    settings = [
        "token_count=512", "max_tokens: 4096", "password_changed_at=2024-01-01",
        "token_type=Bearer", "password_policy=strict", "secret_name: prod-db",
        '"private_key_id": "' + _pick(rng, HEX, 40) + '"', "api_key_id=" + _pick(rng, HEX, 12),
        "auth_method=password", "password=${DB_PASSWORD}", "password: ****",
        "token: null", "api_key=<your-api-key>", "secret: [FILTERED]", "password=%s",
        "client_secret={{ secret }}", "tokens_used: 1834", "PWD=/home/deploy",
    ]  # fmt: skip
    for value in settings:
        yield "setting that is not a secret", value
    for i in range(12):
        valid = _luhn(rng, "5", 16)
        yield (
            "number",
            [
                valid[:-1] + str((int(valid[-1]) + 3) % 10),
                "4111 1111 1111 1112",
                str(rng.randrange(10**19, 10**20)),
                "1,234,567.89",
                "978-3-16-148410-0",
                "1Z999AA10123456784",
                f"{rng.randrange(10**11, 10**12)}",
                "99.95%",
                "**** **** **** 4242",
                "0800 123 4567",
                "1234-5678-9012-3456",
                "7" + _pick(rng, string.digits, 15),
            ][i],
        )
    for _ in range(4):  # EAN-13 barcodes: 13 digits with their own (non-Luhn) check digit
        digits = rng.choice("4579") + _pick(rng, string.digits, 11)
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
        yield "number", digits + str((10 - total % 10) % 10)
    ids = [
        "01ARZ3NDEKTSV4RRFFQ69G5FAV", "req_01J1ABCDEF", "2VXs5kJ8ZrQwNFn4aE8w3K1pY7c",
        "V1StGXR8_Z5jdHi6B-myT", "cus_" + _pick(rng, ALNUM, 14), "evt_" + _pick(rng, ALNUM, 24),
    ]  # fmt: skip
    for value in ids:
        yield "generated id", value
    infra = [
        "web-7d4b9c8f6d-x2kq9", f"registry.example.com/app@sha256:{rng.randbytes(32).hex()}",
        "/var/lib/glasslog/signing.key", "C:\\Users\\alice\\.ssh\\id_rsa", "~/.aws/credentials",
        "config/secrets.yml", "eu-west-1", "i-0abcd1234efgh5678",
    ]  # fmt: skip
    for value in infra:
        yield "infrastructure name", value


def generate(seed: int = 20240701) -> list[Entry]:
    """The whole corpus, deterministic for ``seed``: secrets first, then look-alikes."""
    rng = random.Random(seed)
    entries: list[Entry] = []
    for kind, group, made in _secrets(rng):
        text, secret = (made, "") if isinstance(made, str) else made
        entries.append(Entry(text, kind, group, "" if secret == text else secret))
    for group, text in _look_alikes(rng):
        entries.append(Entry(text, None, group))
    return entries


def write(entries: list[Entry], path: Path = CORPUS) -> None:
    with path.open("w", encoding="utf-8") as out:
        for entry in entries:
            out.write(_encode(entry) + "\n")


# --- measurement ---------------------------------------------------------------------

SENTENCES = (
    "login attempt failed for user 4521: {}",
    "{} (reported by support)",
    "ops note — {} — see ticket OPS-1182",
    "deploy step printed {} to the console",
    "copied from chat: {}",
)
"""Free text around a corpus string in ``reason``, as people write it in real logs."""

PLACES = ("reason", "metadata.detail")

_KIND_FOUND = re.compile(r"\[REDACTED:([a-z0-9_]+)")


def placed(entry: Entry, index: int, place: str) -> tuple[dict[str, Any], str]:
    """An event holding ``entry`` at ``place``, and the string as it sits there."""
    event: dict[str, Any] = {
        "service": "auth",
        "action": "user.login",
        "actor": {"id": "u-4521", "type": "user"},
        "outcome": "failure",
    }
    if place == "reason":
        value = SENTENCES[index % len(SENTENCES)].format(entry.text)
        event["reason"] = value
    else:
        value = entry.text
        event["metadata"] = {"detail": value, "attempt": 2}
    return event, value


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the real ingest path stored for one corpus string at one place."""

    entry: Entry
    place: str
    stored: str
    """The stored value at ``place`` (from the stored body)."""
    leaked: bool
    """Secrets: the secret, raw or JSON-escaped, is somewhere in the stored body."""
    kinds: tuple[str, ...]
    """Kinds of the placeholders in the stored value."""

    @property
    def changed(self) -> bool:
        return bool(self.kinds)


def outcome(entry: Entry, index: int, place: str, preparer: Any) -> Outcome:
    """Prepare ``entry`` (corpus line ``index``) at ``place`` with a real Preparer."""
    event, _ = placed(entry, index, place)
    body = preparer.prepare(event).body
    stored = json.loads(body)
    value = stored["reason"] if place == "reason" else stored["metadata"]["detail"]
    escaped = json.dumps(entry.needle, ensure_ascii=False)[1:-1]
    leaked = entry.needle in body or escaped in body
    return Outcome(entry, place, value, leaked, tuple(_KIND_FOUND.findall(value)))


def run(entries: list[Entry], preparer: Any) -> list[Outcome]:
    """Every entry at every place."""
    return [
        outcome(entry, index, place, preparer)
        for index, entry in enumerate(entries)
        for place in PLACES
    ]


@dataclass(frozen=True, slots=True)
class Rates:
    """Recall and false positives of one kind over the corpus (both places counted)."""

    kind: str
    secrets: int
    found: int
    flagged_look_alikes: int
    look_alikes: int

    @property
    def recall(self) -> float:
        return self.found / self.secrets if self.secrets else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.flagged_look_alikes / self.look_alikes if self.look_alikes else 0.0


def rates(outcomes: list[Outcome]) -> dict[str, Rates]:
    """Per kind: recall over its secrets; false positives over every look-alike.

    A look-alike counts against each kind whose placeholder appears in it, so the
    overall false-positive rate (any placeholder at all) bounds every kind's.
    """
    look_alikes = [o for o in outcomes if o.entry.kind is None]
    kinds = {o.entry.kind for o in outcomes if o.entry.kind} | {
        kind for o in look_alikes for kind in o.kinds
    }
    table = {}
    for kind in sorted(k for k in kinds if k):
        secrets = [o for o in outcomes if o.entry.kind == kind]
        table[kind] = Rates(
            kind,
            secrets=len(secrets),
            found=sum(not o.leaked for o in secrets),
            flagged_look_alikes=sum(kind in o.kinds for o in look_alikes),
            look_alikes=len(look_alikes),
        )
    return table


def report(outcomes: list[Outcome]) -> str:
    """The per-kind table for docs/secrets.md, in Markdown."""
    look_alikes = [o for o in outcomes if o.entry.kind is None]
    secrets = [o for o in outcomes if o.entry.kind]
    flagged = sum(o.changed for o in look_alikes)
    lines = [
        f"{len({o.entry for o in outcomes})} strings, each in `reason` (inside a sentence) and "
        f"as `metadata.detail`: {len(secrets)} secret placements of "
        f"{len({o.entry.kind for o in secrets})} kinds, {len(look_alikes)} look-alike placements.",
        "",
        "| kind | secrets | recall | look-alikes flagged as this kind |",
        "|---|---:|---:|---:|",
    ]
    for kind, rate in rates(outcomes).items():
        lines.append(
            f"| `{kind}` | {rate.secrets} | {rate.recall:.3f} | "
            f"{rate.flagged_look_alikes} of {rate.look_alikes} |"
        )
    found = sum(not o.leaked for o in secrets)
    lines += [
        f"| **all** | {len(secrets)} | {found / len(secrets):.3f} | "
        f"{flagged} of {len(look_alikes)} ({flagged / len(look_alikes):.3f}) |",
        "",
        "| look-alike family | placements | changed |",
        "|---|---:|---:|",
    ]
    groups: dict[str, list[Outcome]] = {}
    for outcome in look_alikes:
        groups.setdefault(outcome.entry.group, []).append(outcome)
    for group, members in groups.items():
        lines.append(f"| {group} | {len(members)} | {sum(o.changed for o in members)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--report"]:
        from glasslog.ingest.pipeline import Preparer

        print(report(run(load(), Preparer(fingerprint_key=bytes(range(32))))))
    else:
        write(generate())
        print(f"wrote {len(load())} entries to {CORPUS}")
