"""Tests for glasslog.ledger.note: C2SP signed notes and checkpoints with Ed25519 keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasslog.errors import NoteError
from glasslog.ledger.merkle import leaf_hash
from glasslog.ledger.note import (
    MAX_SIGNATURES,
    Checkpoint,
    Signer,
    Verifier,
    open_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)
from tests.ledger.vectors import SIGNED_NOTE_FILE, load_json

ORIGIN = "example.com/glasslog/test"
ROOT = leaf_hash(b"hello world")


def note_vectors() -> list[Any]:
    """One param per signed note in signed-note.json (a failing one if the file is missing)."""
    if not SIGNED_NOTE_FILE.exists():
        return [pytest.param(None, id="vectors-missing")]
    notes = load_json(SIGNED_NOTE_FILE)["notes"]
    return [pytest.param(note, id=note["vkey"].split("+")[0]) for note in notes]


def vector_file() -> dict[str, Any]:
    return load_json(SIGNED_NOTE_FILE)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(name=ORIGIN)


@pytest.fixture(scope="module")
def verifier(signer: Signer) -> Verifier:
    return Verifier.from_vkey(signer.vkey)


def text_of(note: str) -> str:
    return note[: note.rindex("\n\n") + 1]


# --- the independent vectors---------------------------------------------------------------


@pytest.mark.parametrize("vector", note_vectors())
def test_signed_note_vector_opens(vector: dict[str, Any] | None) -> None:
    """Each published signed note opens with its vkey and yields the text before the blank line."""
    vector = vector or vector_file()  # fails clearly when the vectors are missing
    verifier = Verifier.from_vkey(vector["vkey"])
    assert verifier.vkey == vector["vkey"]
    assert open_note(vector["note"], verifiers=[verifier]) == text_of(vector["note"])
    assert vector["valid"] is True


def test_signing_reproduces_the_go_signature_byte_for_byte() -> None:
    """Signing the vector's text with its skey reproduces the published note exactly."""
    vector = next(note for note in vector_file()["notes"] if "skey" in note)
    signer = Signer.from_skey(vector["skey"])
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.vkey == vector["vkey"]
    assert signer.skey == vector["skey"]
    assert sign_note(text_of(vector["note"]), signer) == vector["note"]


def test_checkpoint_example_parses_and_round_trips() -> None:
    """The tlog checkpoint example parses to its origin, size and root, and prints back exactly."""
    body = vector_file()["checkpoint_example"]["body"]
    checkpoint = Checkpoint.parse(body)
    assert checkpoint == Checkpoint("go.sum database tree", 123456789012, ROOT)
    assert checkpoint.to_text() == body


# --- round trips -------------------------------------------------------------------------------


@given(text=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=200))
def test_any_valid_text_round_trips(signer: Signer, verifier: Verifier, text: str) -> None:
    """Any text without control characters, plus a final newline, signs and opens unchanged."""
    note = sign_note(text + "\n", signer)
    assert open_note(note, verifiers=[verifier]) == text + "\n"


def test_keys_round_trip_through_skey_and_vkey(signer: Signer) -> None:
    """A signer rebuilt from its skey signs identically, and its vkey verifies."""
    again = Signer.from_skey(signer.skey)
    assert (again.name, again.key_id, again.vkey) == (signer.name, signer.key_id, signer.vkey)
    assert again.sign(b"msg") == signer.sign(b"msg")
    verifier = Verifier.from_vkey(signer.vkey)
    assert (verifier.name, verifier.key_id) == (signer.name, signer.key_id)
    assert verifier.verify(b"msg", signer.sign(b"msg"))
    assert not verifier.verify(b"msg!", signer.sign(b"msg"))
    assert not verifier.verify(b"msg", signer.sign(b"msg")[:63])


def test_checkpoint_round_trip(signer: Signer, verifier: Verifier) -> None:
    """A signed checkpoint verifies back to the same origin, size, root and extensions."""
    checkpoint = Checkpoint(ORIGIN, 70_000, ROOT, extensions=("ext one", "ext-two"))
    note = sign_checkpoint(checkpoint, signer)
    assert note.startswith(f"{ORIGIN}\n70000\n{base64.b64encode(ROOT).decode()}\next one\n")
    assert f"\n\n\u2014 {ORIGIN} " in note
    assert verify_checkpoint(note, verifier=verifier) == checkpoint


def test_empty_tree_checkpoint_round_trips(signer: Signer, verifier: Verifier) -> None:
    """A checkpoint of the empty tree has size 0 and verifies."""
    checkpoint = Checkpoint(ORIGIN, 0, bytes(32))
    assert verify_checkpoint(sign_checkpoint(checkpoint, signer), verifier=verifier) == checkpoint


def test_note_with_several_signers_opens_with_any_one(signer: Signer) -> None:
    """A note signed by two keys opens with either verifier; unknown signatures are ignored."""
    witness = Signer.generate(name="witness.example/w1")
    note = sign_note("hello\n", signer, witness)
    assert note.count("\n\u2014 ") == 2
    assert open_note(note, verifiers=[Verifier.from_vkey(witness.vkey)]) == "hello\n"
    assert open_note(note, verifiers=[Verifier.from_vkey(signer.vkey)]) == "hello\n"


def test_text_may_contain_blank_lines(signer: Signer, verifier: Verifier) -> None:
    """The text ends at the last blank line, so blank lines inside it are kept."""
    text = "first\n\nthird\n\n"
    assert open_note(sign_note(text, signer), verifiers=[verifier]) == text


# --- rejection ---------------------------------------------------------------------------------


def test_tampered_text_is_rejected(signer: Signer, verifier: Verifier) -> None:
    """Changing one character of the signed text makes the known key's signature fail."""
    note = sign_note("amount: 100\n", signer)
    with pytest.raises(NoteError, match=f"signature by {ORIGIN} .* does not verify"):
        open_note(note.replace("100", "900"), verifiers=[verifier])


def test_tampered_signature_is_rejected(signer: Signer, verifier: Verifier) -> None:
    """Changing the signature bytes (keeping the key id) makes verification fail."""
    note = sign_note("hello\n", signer)
    prefix, encoded = note.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 1
    forged = f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, verifiers=[verifier])


def test_signature_by_another_key_with_the_same_name_is_rejected(verifier: Verifier) -> None:
    """A note signed by a different key under the log's name is not signed by a known key."""
    impostor = Signer.generate(name=ORIGIN)
    with pytest.raises(
        NoteError, match=f"not signed by any known key: expected one of {ORIGIN}\\+"
    ):
        open_note(sign_note("hello\n", impostor), verifiers=[verifier])


def test_known_key_id_under_another_name_is_ignored(signer: Signer, verifier: Verifier) -> None:
    """Name and key id must both match: the right key id under another name is unknown."""
    note = sign_note("hello\n", signer).replace(f"\u2014 {ORIGIN} ", "\u2014 other.example ")
    with pytest.raises(NoteError, match=r"found other\.example\+"):
        open_note(note, verifiers=[verifier])


def test_no_verifiers_means_nothing_opens(signer: Signer) -> None:
    """With no verifiers configured every note is refused (fail closed)."""
    with pytest.raises(NoteError, match="expected one of none given"):
        open_note(sign_note("hello\n", signer), verifiers=[])


def test_more_than_100_signatures_are_refused(signer: Signer, verifier: Verifier) -> None:
    """A note may carry up to 100 signature lines; the 101st makes it malformed."""
    others = [Signer.generate(name=f"w{i}.example") for i in range(MAX_SIGNATURES - 1)]
    note = sign_note("hello\n", signer, *others)
    assert open_note(note, verifiers=[verifier]) == "hello\n"
    extra = sign_note("hello\n", Signer.generate(name="one-too-many.example"))
    with pytest.raises(NoteError, match="has 101 signature lines; at most 100 are accepted"):
        open_note(note + extra[len("hello\n\n") :], verifiers=[verifier])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line separates the text"),
        (lambda n: n[:-1], "signature block must end with a newline"),
        (lambda n: n.replace("\u2014 ", "-- "), "must start with an em dash"),
        (lambda n: n.replace("hello", "hel\rlo"), "control character '\\\\r'"),
        (lambda n: n.replace("hello", "hel\x00lo"), "control character"),
        (lambda n: n.replace("hello", "hel\ud800lo"), "not valid UTF-8"),
        (lambda n: n.rstrip("\n") + "!\n", "not valid base64"),
        (lambda n: n.rsplit(" ", 1)[0] + " AAAA\n", "too short: expected a 4-byte key id"),
        (lambda n: n.rsplit(" ", 1)[0] + " \n", "too short"),
        (lambda n: n.replace(f" {ORIGIN} ", " a+b "), "key name 'a\\+b' contains '\\+'"),
        (lambda n: n + "\u2014 x AAAAAAAA\n\n", "signature block must end with a newline|em dash"),
    ],
)
def test_malformed_notes_are_refused(
    signer: Signer, verifier: Verifier, mutate: Any, message: str
) -> None:
    """Structural damage to a note is reported as NoteError saying what is malformed."""
    note = sign_note("hello\n", signer)
    with pytest.raises(NoteError, match=message):
        open_note(mutate(note), verifiers=[verifier])


def test_non_canonical_signature_base64_is_refused(signer: Signer, verifier: Verifier) -> None:
    """A signature whose base64 has non-zero unused bits is refused, not silently normalized."""
    note = sign_note("hello\n", signer)
    prefix, encoded = note.rstrip("\n").rsplit(" ", 1)
    assert encoded.endswith("=")
    assert not encoded.endswith("==")
    last = encoded[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tweaked = alphabet[alphabet.index(last) | 1]  # sets an unused low bit
    assert tweaked != last
    with pytest.raises(NoteError, match="not canonical base64"):
        open_note(f"{prefix} {encoded[:-2]}{tweaked}=\n", verifiers=[verifier])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "must end with a newline"),
        ("tab\there\n", "control character '\\\\t'"),
        ("lone \udc80 surrogate\n", "not valid UTF-8"),
    ],
)
def test_sign_note_refuses_bad_text(signer: Signer, text: str, message: str) -> None:
    """sign_note refuses text that a verifier would refuse to open."""
    with pytest.raises(NoteError, match=message):
        sign_note(text, signer)


def test_sign_note_needs_a_signer() -> None:
    """A note with no signature is not a signed note."""
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("hello\n")


def test_conflicting_verifiers_are_refused(verifier: Verifier) -> None:
    """Two different keys with the same name and key id make the verifier set ambiguous."""
    fake = Verifier(name=verifier.name, public_key=bytes(32))
    fake._key_id = verifier.key_id  # a 32-bit key id collision, forced by hand
    with pytest.raises(NoteError, match="two verifiers share key name"):
        open_note("hello\n\n\u2014 x AAAAAAAA\n", verifiers=[verifier, fake])


# --- checkpoints -----------------------------------------------------------------------------

GOOD_ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n12\n{GOOD_ROOT_B64}", "must end with a newline"),
        (f"{ORIGIN}\n12\n", "at least 3 lines .* got 2"),
        (f"\n12\n{GOOD_ROOT_B64}\n", "origin \\(line 1\\) is empty"),
        (f"{ORIGIN}\n012\n{GOOD_ROOT_B64}\n", "without leading zeros, got '012'"),
        (f"{ORIGIN}\n-1\n{GOOD_ROOT_B64}\n", "decimal number .* got '-1'"),
        (f"{ORIGIN}\n+1\n{GOOD_ROOT_B64}\n", "decimal number .* got '\\+1'"),
        (f"{ORIGIN}\n1e3\n{GOOD_ROOT_B64}\n", "decimal number .* got '1e3'"),
        (f"{ORIGIN}\n\u0661\n{GOOD_ROOT_B64}\n", "decimal number"),
        (f"{ORIGIN}\n 1\n{GOOD_ROOT_B64}\n", "decimal number"),
        (f"{ORIGIN}\n\n{GOOD_ROOT_B64}\n", "decimal number .* got ''"),
        (f"{ORIGIN}\n{2**63}\n{GOOD_ROOT_B64}\n", "at most 9223372036854775807"),
        (f"{ORIGIN}\n12\n{GOOD_ROOT_B64[:-2]}1=\n", "not canonical base64"),
        (f"{ORIGIN}\n12\n{GOOD_ROOT_B64.rstrip('=')}\n", "not valid base64"),
        (f"{ORIGIN}\n12\n{GOOD_ROOT_B64} \n", "not valid base64"),
        (f"{ORIGIN}\n12\n{base64.b64encode(bytes(31)).decode()}\n", "must be 32 bytes, got 31"),
        (f"{ORIGIN}\n12\n\n", "must be 32 bytes, got 0"),
        (f"{ORIGIN}\n12\n{GOOD_ROOT_B64}\n\n", "extension line 4 must be one non-empty line"),
        (f"{ORIGIN}\n12\n{GOOD_ROOT_B64}\nx\ty\n", "control character"),
    ],
)
def test_checkpoint_parse_errors_are_clear(text: str, message: str) -> None:
    """Malformed checkpoint text is refused with a message naming the bad part."""
    assert GOOD_ROOT_B64.endswith("0=")  # so the '1=' variant differs only in unused bits
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(text)


def test_checkpoint_constructor_validates() -> None:
    """A Checkpoint cannot be built with a bad origin, size, root or extension."""
    with pytest.raises(NoteError, match="origin must be one non-empty line"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(NoteError, match="size must be in"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(NoteError, match="root must be 32 bytes, got 3"):
        Checkpoint(ORIGIN, 1, b"abc")
    with pytest.raises(NoteError, match="extension line 4 must be one non-empty line"):
        Checkpoint(ORIGIN, 1, ROOT, extensions=("",))


def test_checkpoint_of_another_log_is_refused(signer: Signer) -> None:
    """A checkpoint whose origin differs from the verifier's key name is refused."""
    other = Signer.generate(name="other.example/log")
    checkpoint = Checkpoint(ORIGIN, 5, ROOT)
    note = sign_note(checkpoint.to_text(), other)
    with pytest.raises(NoteError, match=r"origin 'example\.com/glasslog/test' does not match"):
        verify_checkpoint(note, verifier=Verifier.from_vkey(other.vkey))
    with pytest.raises(NoteError, match="does not match checkpoint origin"):
        sign_checkpoint(checkpoint, other)


def test_verify_checkpoint_rejects_unsigned_and_malformed_bodies(
    signer: Signer, verifier: Verifier
) -> None:
    """A checkpoint note must be signed by the log key and have a well-formed body."""
    with pytest.raises(NoteError, match="not signed by any known key"):
        verify_checkpoint(
            sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), Signer.generate(name=ORIGIN)),
            verifier=verifier,
        )
    with pytest.raises(NoteError, match="decimal number"):
        verify_checkpoint(
            sign_note(f"{ORIGIN}\nfive\n{GOOD_ROOT_B64}\n", signer), verifier=verifier
        )


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is empty"),
        ("a+b", "contains '\\+'"),
        ("a b", "contains whitespace"),
        ("a\u00a0b", "contains whitespace"),
        ("a\u2003b", "contains whitespace"),
        ("a\x01b", "control characters"),
    ],
)
def test_key_names_follow_the_signed_note_rules(name: str, message: str) -> None:
    """Key names must be non-empty, without '+', whitespace or control characters."""
    with pytest.raises(NoteError, match=message):
        Signer.generate(name=name)
    with pytest.raises(NoteError, match=message):
        Verifier(name=name, public_key=bytes(32))


VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("example.com/foo", "malformed: expected <name>\\+<hex key id>\\+<base64 key>"),
        (VKEY.replace("530d903a", "530D903A"), "expected 8 lowercase hex digits"),
        (VKEY.replace("530d903a", "530d903b"), "has key id 530d903b, but .* give 530d903a"),
        (VKEY.replace("example.com/foo", "example.com/bar"), "but its name and public key give"),
        (
            VKEY.replace("+Aeky", "+Aiky"),
            "not an Ed25519 key: expected 33 bytes starting with 0x01",
        ),
        (VKEY[:-4], "not an Ed25519 key: expected 33 bytes .* got 30 bytes"),
        (VKEY + "=", "not canonical base64"),
        (VKEY + "!", "not valid base64"),
        (VKEY.replace("example.com/foo", "a b"), "contains whitespace"),
        ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "is empty"),
    ],
)
def test_bad_vkeys_are_refused(vkey: str, message: str) -> None:
    """A vkey must have three parts, a lowercase key id matching its name and Ed25519 key."""
    with pytest.raises(NoteError, match=message):
        Verifier.from_vkey(vkey)


SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
SECRET = SKEY.rsplit("+", 2)[-2] + "+" + SKEY.rsplit("+", 1)[-1]  # the base64 key material
SECRET_PARTS = [SECRET, SECRET.split("+")[0], SECRET.split("+")[1]]


@pytest.mark.parametrize(
    ("skey", "message"),
    [
        (SKEY.replace("PRIVATE+KEY", "PUBLIC+KEY"), "expected PRIVATE\\+KEY\\+<name>"),
        (SKEY.replace("+KEY+", "+"), "expected PRIVATE\\+KEY\\+<name>"),
        (SKEY.replace("c74f20a3", "c74f20a4"), "key id does not match"),
        (SKEY.replace("c74f20a3", "C74F20A3"), "not 8 lowercase hex digits"),
        (SKEY.replace("PeterNeumann", "Peter Neumann"), "invalid key name"),
        (SKEY.replace("+AYEK", "+AiEK"), "not an Ed25519 key"),
        (SKEY[:-1], "not valid base64"),
        (SKEY[:-1] + "A", "key id does not match"),
        (SKEY + "AAAA", "not an Ed25519 key"),
    ],
)
def test_bad_skeys_are_refused_without_echoing_the_secret(skey: str, message: str) -> None:
    """A malformed signing key is refused, and nothing in the error reveals its key material."""
    with pytest.raises(NoteError, match=message) as caught:
        Signer.from_skey(skey)
    error = caught.value
    shown = f"{error} {error!r} {error.__cause__!r} {error.__context__!r}"
    for part in [*SECRET_PARTS, skey.rsplit("+", 2)[-2], skey.rsplit("+", 1)[-1]]:
        assert part not in shown


def test_signer_repr_does_not_reveal_the_secret() -> None:
    """repr and str of a Signer show its name and key id, never the private key."""
    signer = Signer.from_skey(SKEY)
    seed = base64.b64decode(SECRET)[1:]
    assert repr(signer) == "Signer(name='PeterNeumann', key_id='c74f20a3')"
    for shown in (repr(signer), str(signer), repr([signer]), f"{signer}"):
        for secret in (*SECRET_PARTS, seed.hex(), base64.b64encode(seed).decode()):
            assert secret not in shown
    assert not hasattr(signer, "__dict__")
