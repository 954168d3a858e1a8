"""Export bundles against tampering: every changed byte, and every forgery an attacker
who rebuilds the bundle's structure could try, is detected; only the comment may change.

The bundles are written by the real library over a real SQLite log; the forgeries are
assembled from the format docs/verify.md describes, as an attacker would.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glasslog.access.enforce import owner_evidence
from glasslog.bundle import manifest_text, prover, set_comment, verify_bundle, write_bundle
from glasslog.errors import IntegrityError
from glasslog.event import canonical
from glasslog.identity import vkey_history
from glasslog.ledger import merkle
from glasslog.ledger.note import Signer, sign_note
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.store.base import node_reader_for
from glasslog.testing import TemporaryLog, temporary_log
from tests.conftest import make_event

ORIGIN = "test.example/log"


@dataclass
class Made:
    """A log, a bundle of some of its events, and a later checkpoint of the same log."""

    log: TemporaryLog
    bundle: bytes
    vkey: str
    later_note: str


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    with temporary_log(origin=ORIGIN) as tlog:
        tlog.submit([make_event(service="payments" if i % 3 else "billing") for i in range(30)])
        tlog.checkpoint()
        out = tmp_path_factory.mktemp("bundle") / "b.tar.gz"
        write_bundle(
            out,
            log=tlog.log,
            reader=None,
            query="service:payments",
            principal={"id": "owner:test", "type": "user", "roles": []},
            history=vkey_history(tlog.store),
            signer=tlog.datadir.signer(),
            comment="first",
        )
        tlog.submit([make_event()])
        later = tlog.checkpoint()
        yield Made(tlog, out.read_bytes(), tlog.datadir.vkey(), later.note)


# -- the bundle's structure, from docs/verify.md -------------------------------------


def _entry(name: str, content: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(content), 0, 0o644
    return (
        info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
        + content
        + b"\0" * (-len(content) % 512)
    )


def _head(manifest: dict[str, Any], signature: str) -> bytes:
    body = _entry("manifest.json", canonical(manifest)) + _entry("manifest.sig", signature.encode())
    n = len(body)
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x01"
        + struct.pack("<HH", n, n ^ 0xFFFF)
        + body
        + struct.pack("<II", zlib.crc32(body), n)
    )


def _parts(bundle: bytes) -> tuple[dict[str, Any], str, list[tuple[str, bytes]]]:
    """(manifest, manifest.sig, the other members in order), as an attacker reads them."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bundle)), mode="r:") as tar:
        files = [(m.name, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    manifest = json.loads(files[0][1])
    return manifest, files[1][1].decode(), files[2:]


def _assemble(
    manifest: dict[str, Any], signature: str, members: list[tuple[str, bytes]], *, fix: bool
) -> bytes:
    """A bundle of these parts; ``fix``: update the manifest's hashes to match them."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    rest = buffer.getvalue()
    if fix:
        manifest = {
            **manifest,
            "members": {n: hashlib.sha256(d).hexdigest() for n, d in members},
            "stream": {"sha256": hashlib.sha256(rest).hexdigest(), "bytes": len(rest)},
        }
    return _head(manifest, signature) + rest


def _refused(bundle: bytes, vkey: str | None = None) -> str:
    with pytest.raises(IntegrityError) as caught:
        verify_bundle(bundle, trusted=vkey)
    return str(caught.value)


# -- the tests ---------------------------------------------------------------------------


def test_the_untouched_bundle_verifies(made: Made) -> None:
    """The bundle as written verifies against the log's key, with what it says it holds."""
    report = verify_bundle(made.bundle, trusted=made.vkey)
    assert report.events == 20 and report.comment == "first" and report.trusted == made.vkey
    assert report.query == "service:payments"


def test_every_flipped_byte_is_detected(made: Made) -> None:
    """A bit flipped in any byte of the file (gzip headers, the stored manifest block,
    the compressed members, the trailers) makes verification fail."""
    data = made.bundle
    missed = []
    for at in range(len(data)):
        changed = bytearray(data)
        changed[at] ^= 0x01 if at % 2 else 0x80
        try:
            verify_bundle(bytes(changed), trusted=made.vkey)
        except IntegrityError:
            continue
        missed.append(at)
    assert missed == []


def test_truncated_and_extended_bundles_are_refused(made: Made) -> None:
    """A bundle cut short anywhere, or with bytes appended, does not verify."""
    for cut in (1, 8, 100, len(made.bundle) // 2, len(made.bundle) - 1):
        _refused(made.bundle[:cut], made.vkey)
    _refused(made.bundle + b"\0", made.vkey)
    _refused(made.bundle + gzip.compress(b"more"), made.vkey)


def test_the_comment_may_change(made: Made) -> None:
    """Rewriting the comment (outside the signature) leaves a bundle that verifies."""
    changed = set_comment(made.bundle, "reviewed by legal, 2026-12-01 ✓")
    report = verify_bundle(changed, trusted=made.vkey)
    assert report.comment == "reviewed by legal, 2026-12-01 ✓" and report.events == 20


def test_the_documented_format_rebuilds_the_bundle(made: Made) -> None:
    """The forgeries below are meaningful: the manifest member built from docs/verify.md
    is byte for byte the bundle's, and the rest is the compressed members it names."""
    manifest, signature, members = _parts(made.bundle)
    head = _head(manifest, signature)
    assert made.bundle.startswith(head)
    rest = made.bundle[len(head) :]
    assert hashlib.sha256(rest).hexdigest() == manifest["stream"]["sha256"]
    assert [name for name, _ in members] == ["checkpoint", "vkeys.json", "events.jsonl"]


def _events_changed(made: Made, change: Any) -> bytes:
    manifest, signature, members = _parts(made.bundle)
    lines = dict(members)["events.jsonl"].splitlines(keepends=True)
    lines = change(lines)
    changed = [(n, b"".join(lines) if n == "events.jsonl" else d) for n, d in members]
    return _assemble(manifest, signature, changed, fix=True)


def test_a_removed_event_is_detected(made: Made) -> None:
    """Dropping one event and fixing every hash in the manifest breaks its signature."""
    message = _refused(_events_changed(made, lambda lines: lines[:5] + lines[6:]), made.vkey)
    assert "manifest.sig signs another manifest" in message


def test_an_added_or_repeated_event_is_detected(made: Made) -> None:
    """An event the query did not match, or one given twice, is detected."""
    _refused(_events_changed(made, lambda lines: [*lines, lines[0]]), made.vkey)
    other = made.log.log.search("service:billing", limit=1).events[0]
    extra = owner_evidence(made.log.log, str(other["seq"]))
    line = json.dumps(extra).encode() + b"\n"
    _refused(_events_changed(made, lambda lines: [*lines, line]), made.vkey)


def test_reordered_events_and_members_are_detected(made: Made) -> None:
    """Swapping two events, or two members of the archive, is detected."""
    _refused(_events_changed(made, lambda lines: [lines[1], lines[0], *lines[2:]]), made.vkey)
    manifest, signature, members = _parts(made.bundle)
    swapped = [members[1], members[0], members[2]]
    _refused(_assemble(manifest, signature, swapped, fix=True), made.vkey)
    _refused(_assemble(manifest, signature, swapped, fix=False), made.vkey)


def test_an_edited_event_is_detected(made: Made) -> None:
    """Changing a value of an event, even with the manifest's hashes and its signature
    made to match by the log's own key, fails the event's inclusion proof."""
    manifest, _, members = _parts(made.bundle)
    lines = dict(members)["events.jsonl"].splitlines(keepends=True)
    evidence = json.loads(lines[3])
    evidence["event"]["outcome"] = "failure"
    lines[3] = json.dumps(evidence).encode() + b"\n"
    changed = [(n, b"".join(lines) if n == "events.jsonl" else d) for n, d in members]
    forged = _assemble(manifest, "", changed, fix=True)
    refit, _, _ = _parts(forged)
    signature = sign_note(manifest_text(ORIGIN, refit), made.log.datadir.signer())
    message = _refused(_assemble(refit, signature, changed, fix=False), made.vkey)
    assert "events.jsonl line 4" in message and "not included" in message


def test_a_swapped_checkpoint_is_detected(made: Made) -> None:
    """Another genuine checkpoint of the same log in place of the bundle's is refused."""
    manifest, signature, members = _parts(made.bundle)
    changed = [(n, made.later_note.encode() if n == "checkpoint" else d) for n, d in members]
    message = _refused(_assemble(manifest, signature, changed, fix=True), made.vkey)
    assert "manifest.sig signs another manifest" in message


def test_an_attackers_own_keys_prove_consistency_not_origin(made: Made) -> None:
    """A bundle re-signed end to end with another key of the same name verifies only
    without --vkey, and then says it proves consistency, not origin; with the log's
    key it fails."""
    manifest, _, members = _parts(made.bundle)
    mallory = Signer.generate(name=ORIGIN)
    note = sign_note(dict(members)["checkpoint"].decode().split("\n\n")[0] + "\n", mallory)
    events = b"".join(
        json.dumps({**json.loads(line), "checkpoint": note}).encode() + b"\n"
        for line in dict(members)["events.jsonl"].splitlines()
    )
    changed = [
        ("checkpoint", note.encode()),
        ("vkeys.json", json.dumps(VkeyHistory.single(mallory.vkey).to_json()).encode()),
        ("events.jsonl", events),
    ]
    refit, _, _ = _parts(_assemble(manifest, "", changed, fix=True))
    forged = _assemble(refit, sign_note(manifest_text(ORIGIN, refit), mallory), changed, fix=False)
    report = verify_bundle(forged)
    assert report.trusted is None and "consistency, not origin" in report.summary()
    assert "not in this log's key history" in _refused(forged, made.vkey)


def test_the_prover_gives_rfc_9162_proofs() -> None:
    """The export's shared-work prover answers exactly merkle.inclusion_proof, for every
    leaf, in trees whose sizes are and are not multiples of a tile."""
    with temporary_log(origin=ORIGIN) as tlog:
        tlog.submit([make_event() for _ in range(600)])
        tlog.checkpoint()
        for size in (1, 2, 255, 256, 257, 511, 512, 513, 600):
            prove = prover(tlog.store, size)
            reader = node_reader_for(tlog.store, size)
            for index in range(size):
                assert prove(index) == merkle.inclusion_proof(index, size, reader), (size, index)


def test_verification_reads_only_the_bundle(made: Made, tmp_path: Path) -> None:
    """Verification is pure: the bytes alone, with the log and its files out of reach."""
    copy = tmp_path / "alone.tar.gz"
    copy.write_bytes(made.bundle)
    assert verify_bundle(copy.read_bytes(), trusted=made.vkey, workers=2).events == 20


def test_worker_processes_check_the_events_too(made: Made, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked in chunks by worker processes, a good bundle verifies with every event
    counted, and an edited event in a later chunk is still named by its line."""
    monkeypatch.setattr("glasslog.bundle.CHUNK_BYTES", 3000)
    assert verify_bundle(made.bundle, trusted=made.vkey, workers=2).events == 20
    manifest, _, members = _parts(made.bundle)
    lines = dict(members)["events.jsonl"].splitlines(keepends=True)
    evidence = json.loads(lines[17])
    evidence["event"]["action"] = "db.drop"
    lines[17] = json.dumps(evidence).encode() + b"\n"
    changed = [(n, b"".join(lines) if n == "events.jsonl" else d) for n, d in members]
    refit, _, _ = _parts(_assemble(manifest, "", changed, fix=True))
    signature = sign_note(manifest_text(ORIGIN, refit), made.log.datadir.signer())
    forged = _assemble(refit, signature, changed, fix=False)
    with pytest.raises(IntegrityError, match=r"events\.jsonl line 18"):
        verify_bundle(forged, trusted=made.vkey, workers=2)


def _flip_spelling(text: str) -> str:
    """The same 32 bytes in a non-canonical base64 spelling (unused low bits set)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return text[:42] + alphabet[alphabet.index(text[42]) ^ 1] + text[43:]


PROOF_CHANGES: dict[str, Callable[[list[str]], list[str]]] = {
    "the top hash": lambda h: [*h[:-1], h[0]],
    "the lowest hash": lambda h: [h[1], *h[1:]],
    "a non-canonical spelling": lambda h: [*h[:-1], _flip_spelling(h[-1])],
    "a hash left out": lambda h: h[:-1],
    "a hash added": lambda h: [*h, h[0]],
    "two hashes swapped": lambda h: [*h[:-2], h[-1], h[-2]],
}


@pytest.mark.parametrize("change", PROOF_CHANGES, ids=list(PROOF_CHANGES))
def test_a_changed_proof_of_a_later_event_is_detected(made: Made, change: str) -> None:
    """Proofs are checked together, sharing the nodes already proven; a later event's
    proof changed in any hash (re-signed by the log's own key, so that only the proof
    check can see it) still fails, as `verify-event` would fail it alone."""
    manifest, _, members = _parts(made.bundle)
    lines = dict(members)["events.jsonl"].splitlines(keepends=True)
    evidence = json.loads(lines[6])
    hashes = evidence["proof"]["hashes"]
    evidence["proof"]["hashes"] = PROOF_CHANGES[change](hashes)
    assert evidence["proof"]["hashes"] != hashes
    lines[6] = json.dumps(evidence).encode() + b"\n"
    changed = [(n, b"".join(lines) if n == "events.jsonl" else d) for n, d in members]
    refit, _, _ = _parts(_assemble(manifest, "", changed, fix=True))
    signature = sign_note(manifest_text(ORIGIN, refit), made.log.datadir.signer())
    forged = _assemble(refit, signature, changed, fix=False)
    assert "events.jsonl line 7" in _refused(forged, made.vkey)
