"""Witness cosignatures for the server's checkpoints (C2SP tlog-witness, tlog-cosignature).

The policy's ``[[witness]]`` tables name witnesses (``url``, their submission prefix,
and ``vkey``, their cosigner key). One background thread per witness watches the
store's latest checkpoint and sends each new one to ``<url>/add-checkpoint`` with a
consistency proof from the size that witness holds; the cosignature it answers is
checked against its vkey and kept, and ``GET /checkpoint`` adds it to the note.

Ingest never waits for a witness: the threads only read the store, through their own
connections. A witness that is down or slow costs its thread a few attempts (a
bounded number, with growing pauses) and a warning in the server's log; the
checkpoint is then served without that cosignature, and the thread tries again at the
next checkpoint, or after :data:`RETRY_LATER` seconds. Watching the store, rather than
being told by the writer, also covers checkpoints signed by ``glasslog ingest`` or by
another node beside this server.

A witness that refuses (409 on another root at a size it holds, 422 on a proof that
does not verify) is logged as an error: it is saying the log's history changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

import httpx

from glasslog import __version__
from glasslog.access.policy import WitnessEndpoint
from glasslog.errors import GlasslogError, NoteError
from glasslog.ledger.cosignature import CosignatureVerifier, split_note
from glasslog.store.base import StoredCheckpoint

__all__ = ["Witnessing"]

log = logging.getLogger("glasslog.server")

POLL: Final = 0.5
"""Seconds between looks at the latest checkpoint."""
ATTEMPTS: Final = 3
"""Tries of one checkpoint at an unreachable or failing witness before a warning."""
PAUSE: Final = 1.0
"""Seconds before the second attempt; doubled before each later one."""
RETRY_LATER: Final = 30.0
"""Seconds before a checkpoint a witness did not cosign is tried again."""
TIMEOUT: Final = 5.0
"""Seconds one request to a witness may take."""


class Witnessing:
    """The cosignatures collected for the latest checkpoints, and the threads collecting them."""

    def __init__(
        self,
        endpoints: Callable[[], Sequence[WitnessEndpoint]],
        latest: Callable[[], StoredCheckpoint | None],
        proof: Callable[[int, int], list[str]],
    ) -> None:
        """``endpoints()`` gives the policy's witnesses now; ``latest()`` the store's latest
        checkpoint and ``proof(old, new)`` a consistency proof (base64 hashes), both
        called in the witness's own thread."""
        self._endpoints = endpoints
        self.latest = latest
        self.proof = proof
        self._lock = threading.Lock()
        self._cosigned: dict[str, dict[str, str]] = {}
        """Checkpoint text → witness vkey → its cosignature line (with newline)."""
        self._threads: dict[WitnessEndpoint, _Pusher] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self._supervisor = threading.Thread(
            target=self._supervise, name="glasslog-witnessing", daemon=True
        )
        self._supervisor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(TIMEOUT)
        for pusher in list(self._threads.values()):
            pusher.stopping.set()
            pusher.join(TIMEOUT)

    def attach(self, note: str) -> str:
        """``note`` with the cosignatures collected for it, as extra signature lines."""
        try:
            text, _ = split_note(note)
        except NoteError:
            return note
        with self._lock:
            lines = sorted(self._cosigned.get(text, {}).values())
        return note + "".join(lines)

    def keep(self, text: str, vkey: str, line: str) -> None:
        """Keep one verified cosignature of the checkpoint ``text``; forget older checkpoints'."""
        with self._lock:
            self._cosigned.setdefault(text, {})[vkey] = line
            while len(self._cosigned) > 4:  # the latest few: a new one waits for its witnesses
                del self._cosigned[next(iter(self._cosigned))]

    def _supervise(self) -> None:
        """Start a thread per configured witness, and stop those the policy no longer names."""
        while not self._stopping.is_set():
            try:
                wanted = set(self._endpoints())
            except Exception:
                log.exception("cannot read the witnesses from the policy")
                wanted = set(self._threads)
            for endpoint in wanted - set(self._threads):
                pusher = _Pusher(self, endpoint)
                self._threads[endpoint] = pusher
                pusher.start()
            for endpoint in set(self._threads) - wanted:
                self._threads.pop(endpoint).stopping.set()
            self._stopping.wait(POLL)


class _Pusher(threading.Thread):
    """One witness's thread: send it each new checkpoint, keep its cosignature."""

    def __init__(self, owner: Witnessing, endpoint: WitnessEndpoint) -> None:
        super().__init__(name=f"glasslog-witness {endpoint.url}", daemon=True)
        self.owner = owner
        self.endpoint = endpoint
        self.verifier = CosignatureVerifier(endpoint.vkey)
        self.stopping = threading.Event()
        self.held: int | None = None
        """The size the witness holds for this log, once it said (None: not known yet)."""
        self.done: str | None = None
        """The note last cosigned, or last given up on."""

    def run(self) -> None:
        headers = {"User-Agent": f"glasslog/{__version__}"}
        failed_at: float | None = None  # when the witness last could not be reached
        with httpx.Client(timeout=TIMEOUT, headers=headers) as client:
            while not self.stopping.wait(POLL):
                try:
                    latest = self.owner.latest()
                except Exception:
                    log.exception("witness %s: cannot read the checkpoint", self.endpoint.url)
                    continue
                if latest is None or latest.note == self.done:
                    continue
                if failed_at is not None and time.monotonic() - failed_at < RETRY_LATER:
                    continue
                problem = self._push(client, latest)
                failed_at = None if problem is None else time.monotonic()
                if problem is not None:
                    log.warning("witness %s could not cosign the checkpoint of size %d (%s); "
                                "trying again in %.0f s", self.endpoint.url, latest.size,
                                problem, RETRY_LATER)  # fmt: skip

    def _push(self, client: httpx.Client, checkpoint: StoredCheckpoint) -> str | None:
        """Send ``checkpoint``: None once cosigned or refused for good, else what failed."""
        url = f"{self.endpoint.url}/add-checkpoint"
        pause = PAUSE
        failures = 0
        for _ in range(2 * ATTEMPTS):  # failures, and a 409 naming the size to prove from
            if self.stopping.is_set():
                return None  # the server is stopping: nothing to retry
            old = self.held or 0
            if old > checkpoint.size:
                log.warning(
                    "witness %s holds a tree of size %d for this log, larger than this "
                    "node's latest checkpoint (%d): another node or process pushed a newer "
                    "one, or the log was rolled back",
                    self.endpoint.url, old, checkpoint.size,
                )  # fmt: skip
                self.done = checkpoint.note
                return None
            try:
                proof = self.owner.proof(old, checkpoint.size) if 0 < old < checkpoint.size else []
                body = "".join(f"{line}\n" for line in [f"old {old}", *proof]) + "\n"
                answer = client.post(url, content=(body + checkpoint.note).encode())
                problem = None if answer.status_code < 500 else f"answered {answer.status_code}"
            except (httpx.HTTPError, GlasslogError) as exc:
                problem = str(exc) or type(exc).__name__
            if problem is not None:
                failures += 1
                log.debug("witness %s: %s (attempt %d of %d)", url, problem, failures, ATTEMPTS)
                if failures == ATTEMPTS or self.stopping.wait(pause):
                    return f"{problem}, {failures} attempts"
                pause *= 2
                continue
            if answer.status_code == 200:
                self._keep(checkpoint, answer.text)
                return None
            held = _size(answer.text) if answer.status_code == 409 else None
            if held is not None and held != old:
                self.held = held  # it holds another size: prove from that one
                continue
            log.error(
                "witness %s refused the checkpoint of size %d (%d %s): %s",
                url, checkpoint.size, answer.status_code, answer.reason_phrase,
                answer.headers.get("x-refusal") or answer.text.strip()[:500],
            )  # fmt: skip
            self.done = checkpoint.note
            return None
        return "it kept naming other sizes to prove from"

    def _keep(self, checkpoint: StoredCheckpoint, lines: str) -> None:
        text, _ = split_note(checkpoint.note)
        kept = None
        try:
            for line in lines.splitlines():
                found = self.verifier.check(text, line)
                if found is not None:
                    kept = found
        except NoteError as exc:
            log.error("witness %s sent a bad cosignature: %s", self.endpoint.url, exc)
        self.done = checkpoint.note
        if kept is None:
            log.error(
                "witness %s answered no cosignature by its key %s; check [[witness]] vkey",
                self.endpoint.url, self.endpoint.vkey,
            )  # fmt: skip
            return
        self.held = checkpoint.size
        self.owner.keep(text, self.endpoint.vkey, kept.line + "\n")


def _size(text: str) -> int | None:
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else None
