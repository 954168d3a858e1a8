"""A minimal transparency-log witness: C2SP tlog-witness (https://c2sp.org/tlog-witness).

A witness keeps, for every log it trusts, the latest checkpoint it cosigned. A log
sends ``POST /add-checkpoint`` with a new checkpoint and a consistency proof from the
size the witness holds; the witness cosigns (C2SP tlog-cosignature, ``cosignature/v1``)
only when the checkpoint is signed by a key it trusts for that origin *and* extends
what it saw before. So it never cosigns two checkpoints of one log that disagree: a log
that rewrote its history (a fork) or went back to a smaller tree (a rollback) cannot
get the witness's signature, and a reader who requires it cannot be shown either.

The answers are the spec's: 404 for an origin the witness does not know, 403 when no
trusted key signed the checkpoint, 400 for a malformed request or an old size above
the checkpoint's, 409 (``text/x.tlog.size``: the size the witness holds) when the old
size is not the witness's or a same-size checkpoint has another root, 422 when the
consistency proof does not verify, 200 with the cosignature line otherwise.

Checking the old size and recording the new checkpoint happen under one lock, and the
state (a JSON file, mode 0600) is written and fsync'd before the cosignature is
returned, so neither a race between two requests nor a restart can roll it back.
``glasslog witness serve`` runs :func:`create_app` on uvicorn.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from glasslog.datadir import _write_atomically, _write_secret
from glasslog.errors import ConfigError, NoteError, ProofError
from glasslog.ledger.cosignature import Cosigner, split_note
from glasslog.ledger.merkle import HASH_SIZE, verify_consistency
from glasslog.ledger.note import Checkpoint, Verifier, open_note

__all__ = [
    "MAX_BODY",
    "SIZE_TYPE",
    "Refusal",
    "Witness",
    "create_app",
    "load_cosigner",
    "parse_request",
]

MAX_BODY: Final = 64 * 1024
"""The largest request read: a checkpoint, 63 proof hashes and signatures fit many times."""
MAX_PROOF: Final = 63
"""Consistency proof lines a client may send (tlog-witness)."""
SIZE_TYPE: Final = "text/x.tlog.size"
"""The media type of a 409's body: the tree size the witness holds, in decimal."""

_OLD = re.compile(r"old (0|[1-9][0-9]*)")

log = logging.getLogger("glasslog.witness")


class Refusal(Exception):
    """A request the witness does not cosign: the HTTP status and why (``size`` for 409)."""

    def __init__(self, status: int, message: str, *, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.size = size


@dataclass(frozen=True, slots=True)
class _Seen:
    """The latest checkpoint cosigned for one origin."""

    size: int
    root: bytes
    note: str


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """The old size, the consistency proof and the signed checkpoint of an add-checkpoint body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "the request body is not UTF-8 text") from None
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise Refusal(
            400,
            "the request body must be an old size line, proof lines, an empty line, "
            "then the signed checkpoint",
        )
    lines = head.split("\n")
    found = _OLD.fullmatch(lines[0])
    if found is None:
        raise Refusal(
            400, f"the first line must be 'old <size>' (decimal, no leading zeros), got "
            f"{lines[0][:40]!r}"
        )  # fmt: skip
    old = int(found.group(1))
    if len(lines) - 1 > MAX_PROOF:
        raise Refusal(400, f"at most {MAX_PROOF} consistency proof lines, got {len(lines) - 1}")
    proof: list[bytes] = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            raw = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raw = b""
        if len(raw) != HASH_SIZE:
            raise Refusal(400, f"line {number} must be one base64 hash of {HASH_SIZE} bytes")
        proof.append(raw)
    if old == 0 and proof:
        raise Refusal(400, "the consistency proof must be empty when the old size is 0")
    return old, proof, note


class Witness:
    """The witness's logic and state; thread-safe, and independent of HTTP."""

    def __init__(
        self,
        cosigner: Cosigner,
        logs: Iterable[str],
        state: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``logs`` are the vkeys of the logs it trusts (several per origin after a key
        rotation); ``state`` the JSON file of what it cosigned, created when absent."""
        self.cosigner = cosigner
        self._trusted: dict[str, list[Verifier]] = {}
        for vkey in logs:
            verifier = Verifier.from_vkey(vkey)
            self._trusted.setdefault(verifier.name, []).append(verifier)
        if not self._trusted:
            raise ConfigError("a witness needs at least one log to trust: give --log VKEY")
        self._state_path = state
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = _read_state(state)

    @property
    def origins(self) -> list[str]:
        return sorted(self._trusted)

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root last cosigned for ``origin``, or None."""
        seen = self._seen.get(origin)
        return None if seen is None else (seen.size, seen.root)

    def add_checkpoint(self, body: bytes) -> str:
        """Check a request and cosign its checkpoint: the signature line(s), or :class:`Refusal`."""
        old, proof, note = parse_request(body)
        try:
            text, _ = split_note(note)
            checkpoint = Checkpoint.parse(text)
        except NoteError as exc:
            raise Refusal(400, f"the checkpoint is malformed: {exc}") from None
        verifiers = self._trusted.get(checkpoint.origin)
        if verifiers is None:
            raise Refusal(404, f"this witness does not know the log {checkpoint.origin!r}")
        try:
            open_note(note, verifiers=verifiers)
        except NoteError as exc:
            raise Refusal(
                403, f"the checkpoint is not signed by a key trusted for it: {exc}"
            ) from None
        if old > checkpoint.size:
            raise Refusal(
                400, f"old size {old} is larger than the checkpoint's size {checkpoint.size}"
            )
        with self._lock:
            seen = self._seen.get(checkpoint.origin)
            held = 0 if seen is None else seen.size
            if old != held:
                raise Refusal(
                    409,
                    f"old size {old} is not the size this witness holds for "
                    f"{checkpoint.origin} ({held}); send a proof from {held}",
                    size=held,
                )
            if seen is not None and checkpoint.size == seen.size:
                if proof:
                    raise Refusal(422, "the consistency proof must be empty for the same size")
                if checkpoint.root != seen.root:
                    raise Refusal(
                        409,
                        f"a checkpoint of size {seen.size} with another root was cosigned "
                        f"before: the log {checkpoint.origin} forked",
                        size=held,
                    )
            elif seen is not None:
                try:
                    verify_consistency(
                        size1=seen.size, size2=checkpoint.size, root1=seen.root,
                        root2=checkpoint.root, proof=proof,
                    )  # fmt: skip
                except ProofError as exc:
                    raise Refusal(
                        422,
                        f"the checkpoint of size {checkpoint.size} is not consistent with "
                        f"the one of size {seen.size} cosigned before: {exc}",
                    ) from None
            self._seen[checkpoint.origin] = _Seen(checkpoint.size, checkpoint.root, note)
            _write_state(self._state_path, self._seen)
        return self.cosigner.cosign(checkpoint, int(self._clock()))


def _read_state(path: Path) -> dict[str, _Seen]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw)
        return {
            origin: _Seen(int(item["size"]), base64.b64decode(item["root"]), str(item["note"]))
            for origin, item in data["logs"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"{path} is not a witness state file; restore it from a backup (a witness that "
            "lost its state could be made to cosign a rolled-back log)"
        ) from None


def _write_state(path: Path, seen: Mapping[str, _Seen]) -> None:
    logs = {
        origin: {"size": s.size, "root": base64.b64encode(s.root).decode(), "note": s.note}
        for origin, s in sorted(seen.items())
    }
    _write_atomically(path, json.dumps({"logs": logs}, indent=1) + "\n")


def load_cosigner(path: Path, *, name: str | None) -> tuple[Cosigner, bool]:
    """The witness key in ``path``, created (mode 0600) when absent: then ``name`` is needed.

    Returns the key and whether it was created.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if name is None:
            raise ConfigError(
                f"{path} does not exist; give --name NAME (such as witness.example/w1) to "
                "create the witness key there"
            ) from None
        cosigner = Cosigner.generate(name=name)
        _write_secret(path, cosigner.skey + "\n")
        return cosigner, True
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"restrict it with `chmod 600 {path}`"
        )
    cosigner = Cosigner.from_skey(path.read_text(encoding="ascii"))
    if name is not None and name != cosigner.name:
        raise ConfigError(
            f"{path} holds the key of witness {cosigner.name!r}, not {name!r}; leave out "
            "--name, or give another --key file"
        )
    return cosigner, False


def read_log_keys(values: Sequence[str], files: Sequence[Path]) -> list[str]:
    """The trusted log vkeys: those given, and those in files (one per line, ``#`` comments)."""
    keys = list(values)
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            vkey = line.split("#", 1)[0].strip()
            if vkey:
                keys.append(vkey)
    return keys


def create_app(witness: Witness) -> FastAPI:
    """The witness's HTTP interface: ``POST /add-checkpoint`` (and a health check)."""
    app = FastAPI(title="glasslog witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse(f"the request is over {MAX_BODY} bytes\n", 413)
        try:
            lines = witness.add_checkpoint(bytes(body))
        except Refusal as refusal:
            if refusal.status in (409, 422):  # a log showing another history: keep a trace
                log.warning("refused (%d): %s", refusal.status, refusal.message)
            if refusal.status == 409:
                return Response(f"{refusal.size}\n", 409, media_type=SIZE_TYPE,
                                headers={"X-Refusal": _header(refusal.message)})  # fmt: skip
            return PlainTextResponse(refusal.message + "\n", refusal.status)
        return PlainTextResponse(lines)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "name": witness.cosigner.name, "logs": witness.origins}

    return app


def _header(message: str) -> str:
    """``message`` made safe for an HTTP header (the 409 body must be the size alone)."""
    return "".join(c if " " <= c <= "~" else "?" for c in message)
