"""Preparing a request's events in worker processes, as ``glasslog ingest`` does.

Preparing an event means parsing, validating, scrubbing, committing and hashing it,
and it is most of what ingest costs (about 200 µs of CPU an event). In the server's
own process that work would hold the interpreter lock that the reads, the live tails
and the writer need too. So each ``POST /v1/events`` body goes, as bytes, to a pool
of worker processes (:func:`glasslog.workers.worker_pool`: they die with the server).
A worker parses the body, checks each event's service against the writer's roles,
prepares the events, and returns the ``Prepared`` rows and the rejections. The
server's writer thread then only sequences and writes.

Errors cross the process boundary as values, not exceptions: ``("problem", status,
detail)`` for a body that is refused as a whole, so that what the client reads is
exactly what :mod:`glasslog.server.body` words.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Final

from glasslog.access.scope import services_node
from glasslog.errors import EventError
from glasslog.ingest.lines import INTERNAL_ERROR, scrub_messages
from glasslog.ingest.pipeline import Prepared, Preparer, Settings
from glasslog.query.match import matches
from glasslog.server.body import events_of
from glasslog.server.refusal import Problem

__all__ = ["Outcome", "init_worker", "prepare_body", "screen"]

Outcome = tuple[Any, ...]
"""``("ok", count, rejected, prepared)`` or ``("problem", status, detail)``: ``rejected``
is ``[(index, [message…])]``, ``prepared`` is ``[(index, Prepared as a tuple)]``."""

PREPARE_NICENESS: Final = 10
"""How much lower the workers' CPU priority is than the server's (``nice``)."""

_preparer: Preparer | None = None


def init_worker(key: bytes, settings: Settings) -> None:
    """Each worker's one preparer (its scrubber holds the fingerprint key)."""
    global _preparer  # noqa: PLW0603 - one per worker process
    _preparer = Preparer(fingerprint_key=key, settings=settings)
    # Preparing is throughput work; a search waits on the same cores. A lower priority
    # lets the kernel run the server's reads first when the machine is busy, and
    # costs nothing when it is not (docs/benchmarks.md, HTTP service).
    with contextlib.suppress(OSError):
        os.nice(PREPARE_NICENESS)


def prepare_body(
    body: bytes,
    services: Sequence[Sequence[str]],
    parse: Callable[[bytes], list[object]] = events_of,
) -> Outcome:
    """Parse a request body and prepare its events; ``services`` are the globs of the
    writer's roles (an event of another service is rejected with the reason).
    ``parse`` (a module-level function: it crosses to the worker by name) turns the body
    into raw events: ``events_of`` for ``POST /v1/events``, the OTLP decoders for
    ``POST /v1/logs``."""
    preparer = _preparer
    if preparer is None:
        raise RuntimeError("prepare_body runs in a worker started with init_worker")
    try:
        events = parse(body)
    except Problem as problem:
        return ("problem", problem.status, problem.detail)
    rejected, admitted = screen(events, services)
    prepared: list[tuple[int, tuple[Any, ...]]] = []
    for index, raw in admitted:
        try:
            item: Prepared = preparer.prepare(raw)
        except EventError as exc:
            messages = [str(p) for p in exc.problems]
            rejected.append((index, scrub_messages(preparer.scrubber, messages)))
            continue
        except Exception as exc:  # a bug on one event: report it, keep the others
            rejected.append((index, [
                f"{INTERNAL_ERROR} ({type(exc).__name__}) while preparing this event; the "
                "others were handled. Please report it"
            ]))  # fmt: skip
            continue
        prepared.append((index, tuple(item)))
    return ("ok", len(events), rejected, prepared)


def screen(
    events: list[object], services: Sequence[Sequence[str]]
) -> tuple[list[tuple[int, list[str]]], list[tuple[int, object]]]:
    """The events a writer may not write (rejected with the reason), and the others with
    their index. ``services`` are the globs of the writer's roles. An event without a
    string service is let through: validation names that problem."""
    allowed = services_node(services)
    listed = ", ".join(g for globs in services for g in globs)
    rejected: list[tuple[int, list[str]]] = []
    admitted: list[tuple[int, object]] = []
    for index, raw in enumerate(events):
        if (
            isinstance(raw, dict)
            and isinstance(name := raw.get("service"), str)
            and not matches(allowed, raw, seq=0)
        ):
            rejected.append((index, [
                f"$.service: this key may not write events of service {name!r}; its roles "
                f"write {listed}"
            ]))  # fmt: skip
            continue
        admitted.append((index, raw))
    return rejected, admitted
