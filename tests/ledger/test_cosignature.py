"""C2SP tlog-cosignature ``cosignature/v1`` (Ed25519): the signed message, the line's
layout, the 0x04 key type, and what a verifier refuses."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from glasslog.errors import NoteError
from glasslog.ledger.cosignature import CosignatureVerifier, Cosigner, cosigned_message
from glasslog.ledger.note import Checkpoint, Signer, sign_checkpoint

CHECKPOINT = Checkpoint(origin="example.com/log", size=20852163, root=bytes(range(32)))


def test_a_cosignature_line_is_key_id_timestamp_signature_over_the_spec_message() -> None:
    """The line decodes to the 0x04 key id, the big-endian timestamp and an Ed25519
    signature of "cosignature/v1\\ntime T\\n" followed by the checkpoint text."""
    cosigner = Cosigner.generate(name="witness.example/w1")
    line = cosigner.cosign(CHECKPOINT, 1679315147)
    name, encoded = line.removeprefix("\u2014 ").rstrip("\n").split(" ")
    raw = base64.b64decode(encoded)
    public = base64.b64decode(cosigner.vkey.split("+", 2)[2])
    assert name == "witness.example/w1"
    assert public[:1] == b"\x04"
    assert raw[:4] == hashlib.sha256(b"witness.example/w1\n" + public).digest()[:4]
    assert struct.unpack(">Q", raw[4:12]) == (1679315147,)
    message = b"cosignature/v1\ntime 1679315147\n" + CHECKPOINT.to_text().encode()
    assert cosigned_message(CHECKPOINT.to_text(), 1679315147) == message
    Ed25519PublicKey.from_public_bytes(public[1:]).verify(raw[12:], message)  # raises if not


def test_the_verifier_reads_cosignatures_on_a_signed_checkpoint() -> None:
    """Appended to the log's signed note, the line verifies with the witness's vkey; the
    log's own line is another key's and is skipped."""
    log = Signer.generate(name=CHECKPOINT.origin)
    cosigner = Cosigner.generate(name="witness.example/w1")
    note = sign_checkpoint(CHECKPOINT, log) + cosigner.cosign(CHECKPOINT, 1700000000)
    [found] = CosignatureVerifier(cosigner.vkey).cosignatures(note)
    assert (found.name, found.timestamp) == ("witness.example/w1", 1700000000)


def test_a_cosignature_on_another_checkpoint_is_refused() -> None:
    """A line moved onto another checkpoint (another root) does not verify."""
    cosigner = Cosigner.generate(name="witness.example/w1")
    line = cosigner.cosign(CHECKPOINT, 1700000000).rstrip("\n")
    other = Checkpoint(origin=CHECKPOINT.origin, size=CHECKPOINT.size, root=bytes(32))
    with pytest.raises(NoteError, match="does not verify"):
        CosignatureVerifier(cosigner.vkey).check(other.to_text(), line)


def test_a_log_key_is_not_a_witness_key() -> None:
    """A log's vkey (type 0x01) is refused where a witness's vkey is expected."""
    log = Signer.generate(name="example.com/log")
    with pytest.raises(NoteError, match="0x04"):
        CosignatureVerifier(log.vkey)


def test_the_secret_key_round_trips_and_a_go_note_key_is_accepted() -> None:
    """A witness key file reads back as the same key, and a Go note key (0x01) of the
    same seed cosigns under the same witness vkey."""
    cosigner = Cosigner.generate(name="witness.example/w1")
    assert Cosigner.from_skey(cosigner.skey).vkey == cosigner.vkey
    seed = base64.b64decode(cosigner.skey.split("+", 4)[4])[1:]
    go_key = Signer(
        name="witness.example/w1", private_key=Ed25519PrivateKey.from_private_bytes(seed)
    )
    assert Cosigner.from_skey(go_key.skey).vkey == cosigner.vkey
    assert cosigner.skey not in repr(cosigner)
