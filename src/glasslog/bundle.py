"""Verifiable export bundles: the events a principal may see, provable to a stranger.

``glasslog export QUERY -o bundle.tar.gz`` (and ``POST /v1/exports``) writes the
matching events as the principal may see them, each as evidence (docs/access.md)
with its inclusion proof to one signed checkpoint, beside that checkpoint, the log's
key history and a manifest signed by the log's key. ``glasslog verify bundle.tar.gz
--vkey VKEY`` checks all of it offline, against a key the verifier trusts; the
standalone script in docs/verify.md does the same with the standard library and
``cryptography`` only.

The file is two gzip members, which ``tar xzf`` and every gzip reader read as one
tar stream (docs/verify.md, "Format"):

1. ``manifest.json`` and ``manifest.sig``, as one *stored* (uncompressed) deflate
   block built byte by byte, so a verifier rebuilds this member from the two files
   and compares: no byte of it can change unnoticed, not even the padding bits a
   compressed block would have.
2. ``checkpoint``, ``vkeys.json`` and ``events.jsonl``, compressed. The manifest
   holds the SHA-256 of this member's bytes as written, so every byte of it is fixed
   by the manifest, and the manifest by its signature.

``manifest.sig`` is a signed note by the log's current key whose text names the
SHA-256 of the manifest's canonical JSON without its ``comment``: the comment is the
one thing that may change (:func:`set_comment`) without breaking the bundle.
Verification is pure: it reads only the bundle's bytes and the key it is given.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import struct
import tarfile
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Final

from glasslog.access.audit import loggable
from glasslog.access.enforce import Principal, Reader, evidence_of, owner_export
from glasslog.access.evidence import evidence_leaf
from glasslog.errors import ConfigError, IntegrityError, NoteError
from glasslog.event import canonical
from glasslog.ledger.commit import Path as Pointer
from glasslog.ledger.merkle import HASH_SIZE, inclusion_proof, node_hash
from glasslog.ledger.note import Signer, Verifier, open_note, sign_note, verify_checkpoint
from glasslog.ledger.tiles import TILE_HEIGHT, TILE_WIDTH
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.lifecycle import lifecycle_event
from glasslog.log import Log
from glasslog.store.base import Store, StoredEvent, tile_entries
from glasslog.workers import worker_pool

__all__ = [
    "FORMAT",
    "BundleReport",
    "Written",
    "export_event",
    "manifest_text",
    "principal_json",
    "prover",
    "set_comment",
    "verify_bundle",
    "write_bundle",
]

FORMAT: Final = "glasslog-bundle/1"
NOTE_TITLE: Final = "glasslog export bundle v1"
"""The first line of ``manifest.sig``'s text: a note that can never pass as a checkpoint."""
MEMBERS: Final = ("checkpoint", "vkeys.json", "events.jsonl")
HEAD: Final = ("manifest.json", "manifest.sig")
GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""Deflate, no flags, no time, no extra flags, OS unknown: the one header of member 1."""
MAX_HEAD: Final = 0xFFFF
"""A stored deflate block holds at most this many bytes: the manifest must fit."""
MAX_COMMENT: Final = 16_000
"""Characters of free text a manifest's comment may hold."""
_BLOCK: Final = 512
_MANIFEST_KEYS: Final = frozenset({
    "format", "origin", "query", "principal", "created", "checkpoint", "counts",
    "members", "stream", "comment",
})  # fmt: skip


def manifest_text(origin: str, manifest: dict[str, Any]) -> str:
    """The text ``manifest.sig`` signs: the digest of the manifest without its comment."""
    signed = {k: v for k, v in manifest.items() if k != "comment"}
    digest = hashlib.sha256(canonical(signed)).hexdigest()
    return f"{NOTE_TITLE}\n{origin}\n{digest}\n"


# -- writing -----------------------------------------------------------------------


def prover(store: Store, size: int) -> Callable[[int], list[bytes]]:
    """Inclusion proofs in the tree of ``size``, each node hashed once for all of them.

    An export proves many events to one tree size, and neighbouring events share most
    of their audit paths. Nodes at tile boundaries (levels 0, 8, 16 …) are read from
    the tiles, each tile once; every node between is hashed from its two children and
    kept. A leaf in a complete tile's block of 256 has the eight siblings inside the
    block, then the path above the block, which all its 256 leaves share and which is
    computed once (RFC 9162's recursion never splits an aligned complete block).
    """

    @lru_cache(maxsize=256)
    def tile(level: int, index: int) -> bytes:
        full = size >> (TILE_HEIGHT * (level + 1))
        width = TILE_WIDTH if index < full else (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
        return tile_entries(store, level, index, width)

    nodes: dict[tuple[int, int], bytes] = {}

    def read(level: int, index: int) -> bytes:
        if level % TILE_HEIGHT == 0:
            data = tile(level // TILE_HEIGHT, index >> TILE_HEIGHT)
            offset = (index & (TILE_WIDTH - 1)) * HASH_SIZE
            return data[offset : offset + HASH_SIZE]
        found = nodes.get((level, index))
        if found is None:
            found = nodes[level, index] = node_hash(
                read(level - 1, 2 * index), read(level - 1, 2 * index + 1)
            )
        return found

    complete = size >> TILE_HEIGHT  # blocks of 256 leaves wholly inside the tree
    above: dict[int, list[bytes]] = {}

    def prove(index: int) -> list[bytes]:
        block = index >> TILE_HEIGHT
        if block >= complete:
            return inclusion_proof(index, size, read)
        upper = above.get(block)
        if upper is None:
            upper = above[block] = inclusion_proof(index, size, read)[TILE_HEIGHT:]
        return [read(level, (index >> level) ^ 1) for level in range(TILE_HEIGHT)] + upper

    return prove


@dataclass(frozen=True, slots=True)
class Written:
    """What :func:`write_bundle` wrote."""

    path: Path
    events: int
    tree_size: int
    digest: str
    """The SHA-256 (hex) that ``manifest.sig`` signs: the bundle's identity, stable
    when its comment changes. The ``export.create`` event records it."""
    bytes: int


def _tar_entry(name: str, content: bytes) -> bytes:
    """One member as a canonical ustar entry: header, content, zero padding."""
    info = _tar_info(name, len(content))
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + content + _pad(len(content))


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _pad(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _stored_gzip(payload: bytes) -> bytes:
    """``payload`` as a gzip member of one final stored deflate block, byte for byte."""
    n = len(payload)
    return (
        GZIP_HEADER
        + b"\x01"
        + struct.pack("<HH", n, n ^ 0xFFFF)
        + payload
        + struct.pack("<II", zlib.crc32(payload), n)
    )


def _head(manifest: dict[str, Any], signature: str) -> bytes:
    """Member 1 of a bundle: the manifest (canonical JSON) and its signature."""
    payload = _tar_entry(HEAD[0], canonical(manifest)) + _tar_entry(HEAD[1], signature.encode())
    if len(payload) > MAX_HEAD:
        raise ConfigError(
            f"the manifest is {len(payload):,} bytes with its tar headers, more than the "
            f"{MAX_HEAD:,} a bundle allows: shorten the query or the comment"
        )
    return _stored_gzip(payload)


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.out.write(chunk)
        self.sha.update(chunk)
        self.size += len(chunk)
        return len(chunk)


def write_bundle(
    out: Path,
    *,
    log: Log,
    reader: Reader | None,
    query: str,
    principal: dict[str, Any],
    history: VkeyHistory,
    signer: Signer,
    comment: str = "",
    now: datetime | None = None,
) -> Written:
    """Write the bundle of the events matching ``query`` to ``out`` (replaced atomically).

    ``reader``: the principal's :class:`Reader` (its view, its scope, one audited read),
    or None for the owner of the data directory. ``principal`` is how the manifest
    names who exported. ``signer`` signs the manifest: it must be ``history``'s current
    key, which is the one that signs the log's checkpoints now.
    """
    if len(comment) > MAX_COMMENT:
        raise ConfigError(f"the comment is {len(comment):,} characters; at most {MAX_COMMENT:,}")
    if signer.vkey != history.current.vkey:
        raise ConfigError(
            f"the signing key {signer.vkey} is not the log's current key "
            f"{history.current.vkey}; sign with the data directory's current key"
        )
    checkpoint = log.latest_checkpoint()
    cp = history.verify_checkpoint(checkpoint.note)
    size = checkpoint.size
    bounded = f"({query}) seq<{size}" if query.strip() else f"seq<{size}"
    prove = prover(log.store, size)
    counts = {"events": 0, "masked": 0, "hidden": 0, "erased": 0}
    with tempfile.TemporaryFile() as events, tempfile.TemporaryFile() as rest:
        digest = hashlib.sha256()

        def each(
            stored: StoredEvent,
            shown: dict[str, Any],
            masked: dict[Pointer, str],
            hidden: dict[Pointer, str | None],
        ) -> None:
            evidence = evidence_of(log, stored, shown, masked, hidden, at=(checkpoint, prove))
            line = json.dumps(evidence, ensure_ascii=False, separators=(",", ":")).encode()
            events.write(line + b"\n")
            digest.update(line + b"\n")
            counts["events"] += 1
            counts["masked"] += len(masked)
            counts["hidden"] += len(evidence["hidden"])
            counts["erased"] += len(evidence.get("erased") or {})

        if reader is None:
            owner_export(log, bounded, each)
        else:
            reader.export(bounded, each)
        vkeys = json.dumps(history.to_json(), ensure_ascii=False, indent=1).encode() + b"\n"
        members = {"checkpoint": checkpoint.note.encode(), "vkeys.json": vkeys}
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
        hashes["events.jsonl"] = digest.hexdigest()
        stream = _Hashing(rest)
        with (
            gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=1, mtime=0, filename="") as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
        ):
            for name, data in members.items():
                tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
            events.seek(0, os.SEEK_END)
            length = events.tell()
            events.seek(0)
            tar.addfile(_tar_info("events.jsonl", length), events)
        manifest = {
            "format": FORMAT,
            "origin": history.origin,
            "query": query,
            "principal": principal,
            "created": _rfc3339(now or datetime.now(UTC)),
            "checkpoint": {"size": size, "root": base64.b64encode(cp.root).decode("ascii")},
            "counts": counts,
            "members": hashes,
            "stream": {"sha256": stream.sha.hexdigest(), "bytes": stream.size},
            "comment": comment,
        }
        text = manifest_text(history.origin, manifest)
        head = _head(manifest, sign_note(text, signer))
        partial = out.with_name(f".{out.name}.partial")
        try:
            with partial.open("wb") as file:
                file.write(head)
                rest.seek(0)
                while chunk := rest.read(1 << 20):
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            partial.replace(out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return Written(
        path=out,
        events=counts["events"],
        tree_size=size,
        digest=text.split("\n")[2],
        bytes=len(head) + stream.size,
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def set_comment(bundle: bytes, comment: str) -> bytes:
    """The bundle with another free-text comment: member 1 rebuilt, member 2 as it was.

    The comment is outside what ``manifest.sig`` signs, so the bundle still verifies.
    """
    manifest, signature, rest = _split(bundle)
    if len(comment) > MAX_COMMENT:
        raise ConfigError(f"the comment is {len(comment):,} characters; at most {MAX_COMMENT:,}")
    return _head({**manifest, "comment": comment}, signature) + rest


# -- verifying -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What a successful :func:`verify_bundle` established."""

    events: int
    tree_size: int
    origin: str
    query: str
    principal: dict[str, Any]
    created: str
    comment: str
    counts: dict[str, int]
    signed_by: str
    trusted: str | None
    """The vkey the check was anchored to, or None: checked against the bundle's own
    keys only, which proves the bundle is consistent, not who made it."""

    def summary(self) -> str:
        who = self.principal.get("name") or self.principal.get("id", "?")
        lines = [
            f"bundle verified: {self.events:,} events of {self.origin}, each included in "
            f"the tree of size {self.tree_size:,} of its signed checkpoint",
            f"query {self.query!r}, exported by {who} at {self.created}",
        ]
        if self.trusted is not None:
            lines.append(f"signed by {self.signed_by}, in the key history of the trusted key")
        else:
            lines.append(
                "NOTE: checked against the bundle's own keys, which proves consistency, not "
                "origin: anyone can make a consistent bundle with keys of their own. Pass "
                "--vkey with the log's key, obtained out of band, to prove who signed it."
            )
        if self.comment:
            lines.append(f"comment (not signed): {self.comment}")
        return "\n".join(lines)


def _fail(message: str) -> IntegrityError:
    return IntegrityError(f"bundle verification failed: {message}")


def _split(bundle: bytes) -> tuple[dict[str, Any], str, bytes]:
    """(manifest, manifest.sig, member 2's bytes), member 1 checked byte for byte."""
    if bundle[: len(GZIP_HEADER)] != GZIP_HEADER or bundle[10:11] != b"\x01":
        raise _fail("it does not start with a bundle's manifest member (is it a bundle?)")
    (n,) = struct.unpack("<H", bundle[11:13])
    payload = bundle[15 : 15 + n]
    files: list[bytes] = []
    at = 0
    for name in HEAD:
        header = payload[at : at + _BLOCK]
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
        except (tarfile.TarError, ValueError):
            raise _fail(f"the tar header of {name} is damaged") from None
        if info.name != name:
            raise _fail(f"the first member holds {info.name!r} where {name} belongs")
        files.append(payload[at + _BLOCK : at + _BLOCK + info.size])
        at += _BLOCK + info.size + len(_pad(info.size))
    try:
        manifest = json.loads(files[0])
        signature = files[1].decode("utf-8")
        head = _head(manifest, signature)
    except (ValueError, UnicodeDecodeError, ConfigError, TypeError):
        raise _fail("manifest.json or manifest.sig is not what a bundle holds") from None
    if bundle[: len(head)] != head:
        raise _fail(
            "the manifest member differs from its canonical form (a changed byte in the "
            "gzip header, the tar headers, the JSON layout, the checksum or the padding)"
        )
    if not isinstance(manifest, dict):
        raise _fail("manifest.json is not an object")
    return manifest, signature, bundle[len(head) :]


def _members(rest: bytes, manifest: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    stream = manifest.get("stream")
    if not isinstance(stream, dict) or hashlib.sha256(rest).hexdigest() != stream.get("sha256"):
        raise _fail(
            "the compressed members (checkpoint, vkeys.json, events.jsonl) are not the "
            "ones the manifest names: a byte of them was changed, added or removed"
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(rest)), mode="r:") as tar:
            for info in tar:
                file = tar.extractfile(info)
                yield info.name, b"" if file is None else file.read()
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise _fail(f"the compressed members cannot be read ({exc})") from None


def verify_bundle(bundle: bytes, *, trusted: str | None = None, workers: int = 1) -> BundleReport:
    """Check every byte of ``bundle`` offline; raise IntegrityError saying what failed.

    ``trusted``: a vkey the verifier trusts (obtained out of band); it must be in the
    bundle's key history. Without it, the bundle's own keys are used: that proves the
    bundle is consistent, not that the log it names made it. ``workers``: processes
    that check the events' evidence in parallel.
    """
    manifest, signature, rest = _split(bundle)
    if set(manifest) != _MANIFEST_KEYS or manifest.get("format") != FORMAT:
        raise _fail(f"manifest.json is not a {FORMAT} manifest")
    members = dict(_members(rest, manifest))
    if list(members) != list(MEMBERS):
        raise _fail(f"the members after the manifest must be {', '.join(MEMBERS)}")
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    if hashes != manifest["members"]:
        raise _fail("a member's SHA-256 is not the one the manifest names")
    try:
        history = VkeyHistory.from_json(json.loads(members["vkeys.json"]))
        if trusted is not None:
            Verifier.from_vkey(trusted)
            history = history.trusting(trusted)
    except (ValueError, NoteError) as exc:
        raise _fail(f"vkeys.json: {exc}") from None
    if history.origin != manifest["origin"]:
        raise _fail(f"the manifest names {manifest['origin']!r}, the keys {history.origin!r}")
    signer = history.current.vkey
    try:
        text = open_note(signature, verifiers=[Verifier.from_vkey(signer)])
    except NoteError as exc:
        raise _fail(f"manifest.sig is not signed by the log's current key: {exc}") from None
    if signature != text + "\n" + signature.split("\n")[-2] + "\n":
        raise _fail("manifest.sig must hold exactly one signature")
    if text != manifest_text(history.origin, manifest):
        raise _fail("manifest.sig signs another manifest: manifest.json was changed")
    note = members["checkpoint"].decode("utf-8", "replace")
    try:
        cp = history.verify_checkpoint(note)
    except NoteError as exc:
        raise _fail(f"the checkpoint: {exc}") from None
    expected = {"size": cp.size, "root": base64.b64encode(cp.root).decode("ascii")}
    if manifest["checkpoint"] != expected:
        raise _fail("the manifest names another checkpoint than the bundle holds")
    vkey = _signed_by(history, note, cp.size)
    seen: set[int] = set()
    for seqs, error in _check_all(members["events.jsonl"], note, vkey, workers):
        if error is not None:
            raise _fail(error)
        for seq in seqs:
            if seq in seen:
                raise _fail(f"events.jsonl holds seq {seq} twice")
            seen.add(seq)
    counts = manifest["counts"]
    if not isinstance(counts, dict) or counts.get("events") != len(seen):
        raise _fail(f"the manifest counts {counts!r} events, events.jsonl holds {len(seen):,}")
    return BundleReport(
        events=len(seen),
        tree_size=cp.size,
        origin=cp.origin,
        query=str(manifest["query"]),
        principal=manifest["principal"] if isinstance(manifest["principal"], dict) else {},
        created=str(manifest["created"]),
        comment=str(manifest["comment"]),
        counts=counts,
        signed_by=signer,
        trusted=trusted,
    )


def _signed_by(history: VkeyHistory, note: str, size: int) -> str:
    """The vkey whose era signed ``note`` (which the history has already accepted)."""
    for era in reversed(history.eras):
        try:
            verify_checkpoint(note, verifier=Verifier.from_vkey(era.vkey))
        except NoteError:
            continue
        if era.may_sign(size):
            return era.vkey
    raise _fail("the checkpoint is signed by no key of the history")  # checked before


def _check_all(
    events: bytes, note: str, vkey: str, workers: int
) -> Iterator[tuple[list[int], str | None]]:
    """Check every line of events.jsonl in chunks, in ``workers`` processes (or here),
    with a few chunks in flight at a time so that memory stays bounded."""
    if events and not events.endswith(b"\n"):
        yield [], "events.jsonl must end with a newline"
        return
    chunks = _chunks(events)
    if workers <= 1 or len(events) <= CHUNK_BYTES:
        for chunk, first in chunks:
            yield _check_events(note, vkey, chunk, first)
        return
    with worker_pool(workers) as pool:
        inflight: deque[Future[tuple[list[int], str | None]]] = deque()
        for chunk, first in chunks:
            inflight.append(pool.submit(_check_events, note, vkey, chunk, first))
            if len(inflight) > 2 * workers:
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()


CHUNK_BYTES: Final = 4 << 20
"""About how much of events.jsonl one verification task checks (a few thousand events)."""


def _chunks(events: bytes) -> Iterator[tuple[bytes, int]]:
    """Runs of whole lines of about :data:`CHUNK_BYTES` (without their last newline), each
    with the number of its first line."""
    at, number = 0, 1
    while at < len(events):
        end = events.find(b"\n", min(at + CHUNK_BYTES, len(events) - 1)) + 1
        chunk = events[at : end - 1]
        yield chunk, number
        number += chunk.count(b"\n") + 1
        at = end


def _check_events(note: str, vkey: str, chunk: bytes, first: int) -> tuple[list[int], str | None]:
    """The seqs of a chunk of events.jsonl, or the first problem (a worker's task).

    Each line is evidence that :func:`verify_evidence` would accept: its leaf rebuilt
    (:func:`evidence_leaf`), its checkpoint the bundle's (verified once, by the caller
    and here), its proof checked against the checkpoint's root by :class:`_Proofs`.
    """
    try:
        cp = verify_checkpoint(note, verifier=Verifier.from_vkey(vkey))
    except NoteError as exc:
        return [], f"the checkpoint: {exc}"
    proofs = _Proofs(cp.size, cp.root)
    seqs: list[int] = []
    for number, line in enumerate(chunk.split(b"\n"), start=first):
        try:
            evidence = json.loads(line)
        except ValueError:
            return seqs, f"events.jsonl line {number} is not JSON"
        if not isinstance(evidence, dict) or evidence.get("checkpoint") != note:
            return seqs, f"events.jsonl line {number} is not proven to the bundle's checkpoint"
        try:
            seq, leaf = evidence_leaf(evidence)
        except IntegrityError as exc:
            return seqs, f"events.jsonl line {number}: {exc}"
        proof = evidence["proof"]
        if proof["tree_size"] != cp.size or not proofs.include(seq, leaf, proof["hashes"]):
            return seqs, (
                f"events.jsonl line {number}: the event, rebuilt as a leaf, is not included "
                f"at seq {seq} under the checkpoint's root: the event or its proof was changed"
            )
        seqs.append(seq)
    return seqs, None


class _Proofs:
    """RFC 9162 inclusion proofs (§2.1.3.2) to one root, checked together.

    Every node and sibling hash on a proof that reached the root is proven; they are
    kept by their place in the tree (the verification algorithm's state: shifts made
    and ``fn``). Neighbouring events share most of their audit path, so a later proof
    is hashed only until it reaches a proven node, and must then repeat, hash for hash
    (as base64 text, one spelling only), the proven siblings above it: a proof that
    differs in any hash, or is too long or too short, fails as it would alone.
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.siblings: dict[tuple[int, int], str] = {}

    def include(self, index: int, leaf: bytes, proof: object) -> bool:
        if not isinstance(proof, list) or not 0 <= index < self.size:
            return False
        fn, sn, shifts, node = index, self.size - 1, 0, leaf
        nodes: list[tuple[tuple[int, int], bytes]] = []
        siblings: list[tuple[tuple[int, int], str]] = []
        joined = False
        for text in proof:
            if sn == 0 or not isinstance(text, str):
                return False
            place, left = (shifts, fn), bool(fn & 1) or fn == sn  # left: the sibling is
            if joined:
                if self.siblings.get(place) != text:
                    return False
            else:
                sibling = _hash_of(text)
                if sibling is None:
                    return False
                siblings.append((place, text))
                node = node_hash(sibling, node) if left else node_hash(node, sibling)
            if left:
                while fn and not fn & 1:
                    fn, sn, shifts = fn >> 1, sn >> 1, shifts + 1
            fn, sn, shifts = fn >> 1, sn >> 1, shifts + 1
            if not joined:
                known = self.nodes.get((shifts, fn))
                if known is not None:
                    if known != node:
                        return False
                    joined = True
                else:
                    nodes.append(((shifts, fn), node))
        if sn != 0 or not (joined or node == self.root):
            return False
        self.nodes.update(nodes)
        self.siblings.update(siblings)
        return True


def _hash_of(text: str) -> bytes | None:
    """A proof hash from its base64, in its one canonical spelling, or None."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    if len(data) != HASH_SIZE or base64.b64encode(data).decode("ascii") != text:
        return None
    return data


# -- the record of an export ---------------------------------------------------------

EXPORT_ACTION: Final = "export.create"


def principal_json(principal: Principal | None, owner: dict[str, str]) -> dict[str, Any]:
    """Who exported, as the manifest names it: a principal with its roles, or the owner."""
    if principal is None:
        return {**owner, "roles": []}
    return {
        "id": principal.id,
        "name": principal.name,
        "type": principal.kind,
        "roles": [r.name for r in principal.roles],
    }


def export_event(written: Written, *, query: str, who: dict[str, Any]) -> dict[str, Any]:
    """The ``export.create`` lifecycle event of a written bundle: what was exported, by
    whom, and the digest its manifest signature names (stable when the comment changes).
    """
    actor = {k: who[k] for k in ("id", "name", "type") if who.get(k)}
    return lifecycle_event(
        EXPORT_ACTION,
        actor,
        target={"type": "bundle", "id": written.digest},
        metadata={
            "query": loggable(query),
            "events": written.events,
            "tree_size": written.tree_size,
            "roles": who.get("roles", []),
        },
    )
