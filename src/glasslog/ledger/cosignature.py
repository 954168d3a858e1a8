"""Witness cosignatures on checkpoints: C2SP tlog-cosignature, ``cosignature/v1`` with Ed25519.

A *cosignature* (https://c2sp.org/tlog-cosignature) is a signed-note signature line
``— <witness name> base64(key ID || timestamp || signature)`` added to a checkpoint by a
witness that verified the checkpoint is consistent with every earlier one it saw of
that log. Unlike a log's own signature it signs a *timestamped* message::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint's note text, every line of it>

and its key ID is ``SHA-256(name || "\\n" || 0x04 || public key)[:4]``: the algorithm
byte 0x04 keeps a cosigner key from ever verifying as a log key (0x01) and back. A
cosigner's public key is published as a vkey with that byte,
``<name>+<hex key id>+base64(0x04 || public key)``; its secret key is written like Go's
note signing keys, ``PRIVATE+KEY+<name>+<hex key id>+base64(0x04 || seed)``.

Pure: the witness (:mod:`glasslog.witness`) signs with :class:`Cosigner`, and the log
server (:mod:`glasslog.server.witnessing`) and anyone reading ``/checkpoint`` check
lines with :class:`CosignatureVerifier`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from glasslog.errors import NoteError
from glasslog.ledger.note import Checkpoint

__all__ = ["Cosignature", "CosignatureVerifier", "Cosigner", "cosigned_message", "split_note"]

_ALG_COSIGNATURE_V1 = b"\x04"
_ALG_ED25519 = b"\x01"  # a signed-note Ed25519 key, as Go's note package writes them
_SIG_PREFIX = "\u2014 "  # em dash, space: a signed-note signature line
_KEY_ID_SIZE = 4
_KEY_SIZE = 32
_SIG_SIZE = 64
_MAX_TIMESTAMP = (1 << 63) - 1


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header, time line, then the checkpoint text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp must be in [0, 2^63 - 1], got {timestamp}")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def split_note(note: str) -> tuple[str, list[str]]:
    """Split a signed note into its text (ending in a newline) and its signature lines."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("note is malformed: expected text, a blank line, then signature lines")
    return note[: split + 1], note[split + 2 : -1].split("\n")


def _key_id(name: str, public: bytes, alg: bytes = _ALG_COSIGNATURE_V1) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + alg + public).digest()[:4]


def _b64(value: str, what: str) -> bytes:
    """Canonical standard base64 only: one value, one encoding (as the note module reads)."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not valid base64 (standard alphabet, '=' padding)") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise NoteError(
            f"cosigner name {name!r} is invalid: it must be non-empty, without '+', spaces "
            "or control characters (a schema-less URL such as witness.example/w1)"
        )


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One verified cosignature: who, when (POSIX seconds), and its signature line."""

    name: str
    timestamp: int
    line: str


class Cosigner:
    """A witness's Ed25519 cosigning key and name. Its secret leaves only through :attr:`skey`."""

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self._name = name
        self._key = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self._key_id = _key_id(name, self._public)

    @classmethod
    def generate(cls, *, name: str) -> Cosigner:
        """A new random key named ``name``."""
        return cls(name=name, private_key=Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> Cosigner:
        """Load ``PRIVATE+KEY+<name>+<hex key id>+base64(0x04 || seed)``, or a Go note key
        (``0x01``) to cosign with; errors never quote it."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError(
                "witness key is malformed: expected PRIVATE+KEY+<name>+<hex key id>+<base64 key>"
            )
        raw = _b64(parts[4], "witness key's key material")
        if len(raw) != 1 + _KEY_SIZE or raw[:1] not in (_ALG_COSIGNATURE_V1, _ALG_ED25519):
            raise NoteError(
                "witness key is not an Ed25519 key: expected 33 bytes starting with 0x04 (or "
                "0x01, a Go note key) after base64 decoding"
            )
        cosigner = cls(name=parts[2], private_key=Ed25519PrivateKey.from_private_bytes(raw[1:]))
        # A key made by Go's note.GenerateKey says 0x01: its file's key id uses that byte,
        # while its cosignatures use 0x04 (as transparency-dev/formats signs with it).
        if _key_id(parts[2], cosigner._public, raw[:1]).hex() != parts[3]:
            raise NoteError(
                "witness key's key id does not match its name and public key: the key "
                "file is corrupted or was edited"
            )
        return cosigner

    @property
    def name(self) -> str:
        return self._name

    @property
    def skey(self) -> str:
        """The secret key, for the key file (mode 0600). Never print it."""
        seed = base64.b64encode(_ALG_COSIGNATURE_V1 + self._key.private_bytes_raw()).decode()
        return f"PRIVATE+KEY+{self._name}+{self._key_id.hex()}+{seed}"

    @property
    def vkey(self) -> str:
        """The public key as a vkey, for the logs that push to this witness."""
        public = base64.b64encode(_ALG_COSIGNATURE_V1 + self._public).decode()
        return f"{self._name}+{self._key_id.hex()}+{public}"

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> str:
        """The signature line (with its newline) cosigning ``checkpoint`` at ``timestamp``."""
        signature = self._key.sign(cosigned_message(checkpoint.to_text(), timestamp))
        payload = self._key_id + struct.pack(">Q", timestamp) + signature
        return f"{_SIG_PREFIX}{self._name} {base64.b64encode(payload).decode()}\n"

    def __repr__(self) -> str:
        return f"Cosigner(name={self._name!r}, key_id={self._key_id.hex()!r})"


class CosignatureVerifier:
    """A witness's public key (its vkey), checking the cosignature lines it made."""

    __slots__ = ("_key", "_key_id", "_name", "vkey")

    def __init__(self, vkey: str) -> None:
        """Parse ``<name>+<hex key id>+base64(0x04 || public key)`` and check its key ID."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(
                f"witness vkey {vkey!r} is malformed: expected <name>+<hex key id>+<base64 key>"
            )
        name, key_id_hex, encoded = parts
        _check_name(name)
        raw = _b64(encoded, f"witness vkey {vkey!r}")
        if len(raw) != 1 + _KEY_SIZE or raw[:1] != _ALG_COSIGNATURE_V1:
            raise NoteError(
                f"witness vkey {vkey!r} is not a cosignature/v1 Ed25519 key: expected 33 bytes "
                "starting with 0x04 (a log's vkey starts with 0x01: give the witness's key)"
            )
        self._name = name
        self._key = Ed25519PublicKey.from_public_bytes(raw[1:])
        self._key_id = _key_id(name, raw[1:])
        if self._key_id.hex() != key_id_hex:
            raise NoteError(
                f"witness vkey {vkey!r} has key id {key_id_hex}, but its name and public key "
                f"give {self._key_id.hex()}"
            )
        self.vkey = vkey.strip()

    @property
    def name(self) -> str:
        return self._name

    def check(self, text: str, line: str) -> Cosignature | None:
        """The cosignature ``line`` (without newline) is on ``text``: its details, or None
        when the line is another key's. A line of this key that does not verify is an error."""
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"cosignature line must start with an em dash and a space: {line!r}")
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if name != self._name:
            return None
        raw = _b64(encoded, f"cosignature line of {name}")
        if raw[:_KEY_ID_SIZE] != self._key_id:
            return None
        if len(raw) != _KEY_ID_SIZE + 8 + _SIG_SIZE:
            raise NoteError(
                f"cosignature of {name} is {len(raw)} bytes; a cosignature/v1 line holds "
                f"{_KEY_ID_SIZE + 8 + _SIG_SIZE} (key id, timestamp, signature)"
            )
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        try:
            self._key.verify(raw[12:], cosigned_message(text, timestamp))
        except InvalidSignature:
            raise NoteError(
                f"cosignature of {name} (key id {self._key_id.hex()}) does not verify on this "
                "checkpoint: it was altered or made for another checkpoint"
            ) from None
        return Cosignature(name=name, timestamp=timestamp, line=line)

    def cosignatures(self, note: str) -> list[Cosignature]:
        """Every valid cosignature of this key on the signed ``note``."""
        text, lines = split_note(note)
        return [found for line in lines if (found := self.check(text, line)) is not None]

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.vkey!r})"
