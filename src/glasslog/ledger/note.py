"""Signed notes and log checkpoints: C2SP signed-note and tlog-checkpoint, with Ed25519.

A *signed note* (https://c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank
line, then one or more signature lines ``— <key name> base64(key ID || signature)``. The
key ID is ``SHA-256(name || "\\n" || 0x01 || public key)[:4]`` for Ed25519, and a verifier
key is published as a *vkey* ``<name>+<hex key ID>+base64(0x01 || public key)``; signing
keys use the Go ``golang.org/x/mod/sumdb/note`` form ``PRIVATE+KEY+<name>+<hex key
ID>+base64(0x01 || seed)``, so keys and notes interoperate with Go tooling.

A *checkpoint* (https://c2sp.org/tlog-checkpoint) is a note whose text is the log's
origin, its tree size in decimal and its base64 root hash, one per line, optionally
followed by extension lines. The log signs it with the key named after its origin.

Parsing is strict and fails closed: anything malformed, unsigned by a known key, or with
a failing signature from a known key raises :class:`~glasslog.errors.NoteError`. Signing
keys embed a secret, so they never appear in a ``repr`` or in an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from glasslog.errors import NoteError
from glasslog.ledger.merkle import HASH_SIZE

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "Signer",
    "Verifier",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
]

MAX_SIGNATURES = 100
"""Most signature lines :func:`open_note` reads; more is refused, as Go's note package does,
so a hostile note cannot make a verifier spend unbounded time."""

_ALG_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "  # em dash, space
_KEY_ID_SIZE = 4
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_MAX_TREE_SIZE = (1 << 63) - 1  # tree sizes are int64 in Go's tlog; keep checkpoints portable

# Notes must be valid UTF-8 with no ASCII control characters other than newline.
_FORBIDDEN_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile("0|[1-9][0-9]*")
_HEX_KEY_ID = re.compile("[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint body: which log (``origin``), how many leaves, and their root."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError(f"checkpoint origin must be one non-empty line, got {self.origin!r}")
        _check_text_chars(self.origin, "checkpoint origin")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size must be in [0, {_MAX_TREE_SIZE}], got {self.size}")
        if len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(self.root)}")
        for number, line in enumerate(self.extensions, start=4):
            if not line or "\n" in line:
                raise NoteError(
                    f"checkpoint extension line {number} must be one non-empty line, got {line!r}"
                )
            _check_text_chars(line, f"checkpoint extension line {number}")

    def to_text(self) -> str:
        """Return the note text: ``origin\\nsize\\nbase64(root)\\n`` plus any extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly; :class:`NoteError` says what is malformed."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline (U+000A)")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(
                f"checkpoint needs at least 3 lines (origin, tree size, root hash), "
                f"got {len(lines)}"
            )
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin (line 1) is empty")
        if not _DECIMAL.fullmatch(size_line):
            raise NoteError(
                f"checkpoint tree size (line 2) must be a decimal number without leading "
                f"zeros, got {size_line!r}"
            )
        size = int(size_line)
        if size > _MAX_TREE_SIZE:
            raise NoteError(
                f"checkpoint tree size (line 2) must be at most {_MAX_TREE_SIZE}, got {size}"
            )
        root = _b64decode_strict(root_line, "checkpoint root hash (line 3)")
        if len(root) != HASH_SIZE:
            raise NoteError(
                f"checkpoint root hash (line 3) must be {HASH_SIZE} bytes, got {len(root)}"
            )
        return cls(origin=origin, size=size, root=root, extensions=tuple(extensions))


class Signer:
    """An Ed25519 note signing key and its key name (for a log, its origin).

    Build one with :meth:`generate` or :meth:`from_skey`. The ``skey`` property is the
    only way the secret leaves the object; ``repr`` shows the name and key ID only.
    """

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        """Wrap ``private_key`` under ``name`` (a valid note key name)."""
        problem = _name_problem(name)
        if problem:
            raise NoteError(f"signer key name {name!r} {problem}")
        self._name = name
        self._key = private_key
        self._public = _ALG_ED25519 + private_key.public_key().public_bytes_raw()
        self._key_id = _key_id(name, self._public)

    @classmethod
    def generate(cls, *, name: str) -> Signer:
        """Create a new random key named ``name``."""
        return cls(name=name, private_key=Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Load a key from Go's ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01||seed)>``.

        Error messages describe the problem but never quote the key.
        """
        parts = skey.split("+", 4)  # the base64 part may itself contain '+'
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError(
                "signing key is malformed: expected PRIVATE+KEY+<name>+<hex key id>+<base64 key>"
            )
        _, _, name, key_id_hex, key_b64 = parts
        if _name_problem(name):
            raise NoteError(
                "signing key has an invalid key name: it must be non-empty, without '+', "
                "spaces or control characters"
            )
        if not _HEX_KEY_ID.fullmatch(key_id_hex):
            raise NoteError("signing key's key id is not 8 lowercase hex digits")
        raw = _b64decode_strict(key_b64, "signing key's key material")
        if len(raw) != 1 + _ED25519_KEY_SIZE or raw[:1] != _ALG_ED25519:
            raise NoteError(
                "signing key is not an Ed25519 key: expected 33 bytes starting with 0x01 "
                "after base64 decoding"
            )
        signer = cls(name=name, private_key=Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer._key_id.hex() != key_id_hex:
            raise NoteError(
                "signing key's key id does not match the one computed from its name and "
                "public key: the key is corrupted or was edited"
            )
        return signer

    @property
    def name(self) -> str:
        """The key name that appears in signature lines."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
        return self._key_id

    @property
    def skey(self) -> str:
        """The signing key in Go note format. It contains the secret: store it like one."""
        seed = self._key.private_bytes_raw()
        encoded = base64.b64encode(_ALG_ED25519 + seed).decode("ascii")
        return f"PRIVATE+KEY+{self._name}+{self._key_id.hex()}+{encoded}"

    @property
    def vkey(self) -> str:
        """The public verifier key, ``<name>+<hex key id>+<base64(0x01||public key)>``."""
        return _vkey(self._name, self._key_id, self._public)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self._name!r}, key_id={self._key_id.hex()!r})"


class Verifier:
    """An Ed25519 note verifier key, loaded from its published vkey."""

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, *, name: str, public_key: bytes) -> None:
        """Wrap the raw 32-byte Ed25519 ``public_key`` under the key name ``name``."""
        problem = _name_problem(name)
        if problem:
            raise NoteError(f"verifier key name {name!r} {problem}")
        if len(public_key) != _ED25519_KEY_SIZE:
            raise NoteError(
                f"Ed25519 public key must be {_ED25519_KEY_SIZE} bytes, got {len(public_key)}"
            )
        self._name = name
        self._key = Ed25519PublicKey.from_public_bytes(public_key)
        self._public = _ALG_ED25519 + public_key
        self._key_id = _key_id(name, self._public)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key id>+<base64(0x01||public key)>`` and check its key ID."""
        parts = vkey.split("+", 2)  # the base64 part may itself contain '+'
        if len(parts) != 3:
            raise NoteError(
                f"verifier key {vkey!r} is malformed: expected <name>+<hex key id>+<base64 key>"
            )
        name, key_id_hex, key_b64 = parts
        if not _HEX_KEY_ID.fullmatch(key_id_hex):
            raise NoteError(
                f"verifier key {vkey!r} has key id {key_id_hex!r}: expected 8 lowercase hex digits"
            )
        raw = _b64decode_strict(key_b64, f"verifier key {vkey!r}: key material")
        if len(raw) != 1 + _ED25519_KEY_SIZE or raw[:1] != _ALG_ED25519:
            raise NoteError(
                f"verifier key {vkey!r} is not an Ed25519 key: expected 33 bytes starting "
                f"with 0x01, got {len(raw)} bytes starting with {raw[:1].hex() or 'nothing'}"
            )
        verifier = cls(name=name, public_key=raw[1:])
        if verifier._key_id.hex() != key_id_hex:
            raise NoteError(
                f"verifier key {vkey!r} has key id {key_id_hex}, but its name and public key "
                f"give {verifier._key_id.hex()}"
            )
        return verifier

    @property
    def name(self) -> str:
        """The key name signature lines must carry."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID signature lines must start with."""
        return self._key_id

    @property
    def vkey(self) -> str:
        """The key in vkey form, as :meth:`from_vkey` reads it."""
        return _vkey(self._name, self._key_id, self._public)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.vkey!r})"


def sign_note(text: str, *signers: Signer) -> str:
    """Return ``text`` signed by every signer, as a C2SP signed note.

    ``text`` must end with a newline and contain no control characters other than
    newlines; the signatures cover exactly ``text`` (UTF-8 encoded).
    """
    _check_note_text(text)
    if not signers:
        raise NoteError("a signed note needs at least one signer, got none")
    message = text.encode("utf-8")
    lines = [text, "\n"]
    for signer in signers:
        signature = base64.b64encode(signer.key_id + signer.sign(message)).decode("ascii")
        lines.append(f"{_SIG_PREFIX}{signer.name} {signature}\n")
    return "".join(lines)


def open_note(note: str, *, verifiers: Sequence[Verifier]) -> str:
    """Return the text of ``note`` once a known key's signature on it verifies.

    Signatures by keys not in ``verifiers`` (by name *and* key ID) are ignored, as the
    spec requires; a failing signature by a known key rejects the whole note, and so
    does having no valid signature from a known key.
    """
    known = _index_verifiers(verifiers)
    _check_text_chars(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError(
            "note is malformed: no blank line separates the text from the signature lines"
        )
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("note is malformed: the signature block must end with a newline")
    sig_lines = block[:-1].split("\n")
    if len(sig_lines) > MAX_SIGNATURES:
        raise NoteError(
            f"note has {len(sig_lines)} signature lines; at most {MAX_SIGNATURES} are accepted"
        )
    message = text.encode("utf-8")
    verified = False
    seen: set[tuple[str, bytes]] = set()
    unknown: list[str] = []
    for number, line in enumerate(sig_lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(
                f"note signature line {number} must start with an em dash and a space "
                f"('\u2014 '), got {line[:20]!r}"
            )
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        problem = _name_problem(name)
        if problem:
            raise NoteError(f"note signature line {number}: key name {name!r} {problem}")
        raw = _b64decode_strict(encoded, f"note signature line {number}")
        if len(raw) <= _KEY_ID_SIZE:
            raise NoteError(
                f"note signature line {number} is too short: expected a 4-byte key id and a "
                f"signature, got {len(raw)} bytes"
            )
        key_id, signature = raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:]
        verifier = known.get((name, key_id))
        if verifier is None:
            unknown.append(f"{name}+{key_id.hex()}")
            continue
        if (name, key_id) in seen:
            continue
        seen.add((name, key_id))
        if not verifier.verify(message, signature):
            raise NoteError(
                f"signature by {name} (key id {key_id.hex()}) does not verify: the note text "
                "or the signature was altered, or it was signed by a different key"
            )
        verified = True
    if not verified:
        expected = ", ".join(f"{n}+{k.hex()}" for n, k in known) or "none given"
        found = ", ".join(unknown) or "none"
        raise NoteError(
            f"note is not signed by any known key: expected one of {expected}; found {found}"
        )
    return text


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """Return ``checkpoint`` as a signed note, signed by the log key named after its origin."""
    if signer.name != checkpoint.origin:
        raise NoteError(
            f"signer key name {signer.name!r} does not match checkpoint origin "
            f"{checkpoint.origin!r}; a log signs its checkpoints with the key named after it"
        )
    return sign_note(checkpoint.to_text(), signer)


def verify_checkpoint(note: str, *, verifier: Verifier) -> Checkpoint:
    """Open a signed checkpoint with the log's ``verifier`` and return its parsed body.

    The origin line must equal the verifier's key name, so a checkpoint of one log can
    never pass as another's.
    """
    checkpoint = Checkpoint.parse(open_note(note, verifiers=[verifier]))
    if checkpoint.origin != verifier.name:
        raise NoteError(
            f"checkpoint origin {checkpoint.origin!r} does not match the verifier key name "
            f"{verifier.name!r}"
        )
    return checkpoint


def _key_id(name: str, alg_and_public_key: bytes) -> bytes:
    """Return ``SHA-256(name || 0x0A || type || public key)[:4]`` (signed-note key ID)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + alg_and_public_key).digest()
    return digest[:_KEY_ID_SIZE]


def _vkey(name: str, key_id: bytes, alg_and_public_key: bytes) -> str:
    return f"{name}+{key_id.hex()}+{base64.b64encode(alg_and_public_key).decode('ascii')}"


def _name_problem(name: str) -> str | None:
    """Say what makes ``name`` an invalid note key name, or return None when it is valid.

    The caller decides whether the name may be quoted (never for a signing key).
    """
    if not name:
        return "is empty; key names must be non-empty"
    if "+" in name:
        return "contains '+', which separates the parts of a key"
    if any(char.isspace() for char in name):
        return "contains whitespace, which separates the parts of a signature line"
    if _FORBIDDEN_CONTROL.search(name) or not _is_utf8(name):
        return "contains control characters or is not valid UTF-8"
    return None


def _index_verifiers(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        other = known.setdefault(key, verifier)
        if other.vkey != verifier.vkey:
            raise NoteError(
                f"two verifiers share key name {verifier.name!r} and key id "
                f"{verifier.key_id.hex()}: {other.vkey} and {verifier.vkey}; "
                "keep only the right one"
            )
    return known


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline (U+000A)")
    _check_text_chars(text, "note text")


def _check_text_chars(text: str, what: str) -> None:
    """Refuse control characters other than newline and text that is not valid UTF-8."""
    bad = _FORBIDDEN_CONTROL.search(text)
    if bad:
        raise NoteError(
            f"{what} contains the control character {bad.group()!r} at offset {bad.start()}; "
            "notes may only contain newlines as control characters"
        )
    if not _is_utf8(text):
        raise NoteError(f"{what} is not valid UTF-8 (it contains a lone surrogate)")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode_strict(value: str, what: str) -> bytes:
    """Decode canonical standard base64 (RFC 4648 §4): padded, no stray bits or characters.

    Python's decoder accepts non-zero trailing bits, which would let one value have
    several encodings; re-encoding and comparing rules that out. The value is never
    quoted in the error, so this is safe for key material too.
    """
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not valid base64 (standard alphabet, '=' padding)") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(
            f"{what} is not canonical base64: it decodes, but re-encodes differently "
            "(extra '=' padding, or non-zero unused trailing bits)"
        )
    return raw
