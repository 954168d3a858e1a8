"""Erasure of a data subject's personal fields (issue 14 §3, docs/erasure.md).

``glasslog erase --subject actor.id=U`` deletes, for good, the values and salts of the
subject's personal committed fields: ``actor.name``, ``actor.email``, ``source.ip``,
``source.user_agent`` and the metadata keys the policy lists as personal
(``[erasure] personal_metadata``). Each erased value's text in the stored body becomes
``{"$erased": "<time>"}``, its salt zeros, and the commitment it had is kept in the
row's ``commits`` (:func:`glasslog.ledger.commit.erase_body`), so the leaf, the tree
and every proof stay as they were.

Order of work, so that no erasure exists that the ledger does not authorise:

1. the subject's events are read and their personal fields listed; an event under a
   legal hold refuses the whole erasure (nothing is erased);
2. one ``erasure.erase`` event per batch of events is appended, listing each seq and
   the JSON Pointers of its fields (never a value), and signed;
3. each batch's rows are rewritten in one transaction under the writer locks, each
   erased field recorded in ``erasures`` with the seq of the event that authorised it;
4. the store scrubs its files (full-text segments merged, WAL truncated, or vacuum).

``verify`` then accepts an erased field only when a signed ``erasure.erase`` event
lists it and its time is that event's time.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from glasslog.derived import columns, field_values, search_text
from glasslog.errors import ConfigError, ConflictError, GlasslogError
from glasslog.event import epoch_us, format_time, parse_time
from glasslog.ledger.commit import (
    DEFAULT_SENSITIVE,
    Erased,
    decode_commits,
    encode_commits,
    erase_body,
    leaf_from_body,
    show_pointer,
)
from glasslog.ledger.commit import Path as FieldPath
from glasslog.lifecycle import is_lifecycle, lifecycle_event
from glasslog.lifecycle.holds import ActiveHolds
from glasslog.store.base import Erasure, Rewrite, Store, StoredEvent

__all__ = [
    "ERASE_ACTION",
    "PERSONAL",
    "ErasureSummary",
    "erase_subject",
    "load_personal_metadata",
    "parse_subject",
    "personal_paths",
]

ERASE_ACTION: Final = "erasure.erase"

PERSONAL: Final[tuple[FieldPath, ...]] = DEFAULT_SENSITIVE
"""The personal committed fields of every event: actor.name, actor.email, source.ip,
source.user_agent (the issue's list, the default committed fields)."""

BATCH: Final = 200
"""Events per ``erasure.erase`` event: its metadata lists each seq with its fields
(about 60 bytes each), well inside an event's 64 KiB and an array's 1,000 items."""

_PAGE: Final = 1_000

Record = Callable[[list[dict[str, Any]]], list[int]]
"""Appends lifecycle events and returns their seqs once a signed checkpoint covers them."""
Lock = Callable[[], AbstractContextManager[object]]
"""Takes the writer locks (the data directory's and the store's)."""


def parse_subject(text: str) -> str:
    """The actor id of ``actor.id=U``; ConfigError for anything else."""
    name, sep, value = text.partition("=")
    if not sep or name.strip() != "actor.id" or not value:
        raise ConfigError(
            f"the subject {text!r} is not actor.id=ID; name the data subject by the actor "
            "id its events carry, as --subject actor.id=u-123"
        )
    return value


def personal_paths(personal_metadata: Sequence[str] = ()) -> frozenset[FieldPath]:
    """The committed paths an erasure removes: :data:`PERSONAL` and the given metadata keys."""
    return frozenset((*PERSONAL, *(("metadata", key) for key in personal_metadata)))


def load_personal_metadata(path: Path) -> tuple[str, ...]:
    """``[erasure] personal_metadata`` of the policy file at ``path`` (none: empty).

    The keys are top-level metadata keys, each committed separately, so each can be
    erased without touching the rest of the event.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the erasure settings: {exc}") from None
    return parse_erasure(data.get("erasure"), source=str(path))


def parse_erasure(table: object, *, source: str = "the policy") -> tuple[str, ...]:
    """Validate an ``[erasure]`` table: ``personal_metadata = ["email", "phone"]``."""
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise ConfigError(
            f"{source}: [erasure] must be a table, as [erasure] personal_metadata = […]"
        )
    unknown = sorted(set(table) - {"personal_metadata"})
    if unknown:
        raise ConfigError(
            f"{source}: [erasure] has no setting {unknown[0]!r}; its one setting is "
            'personal_metadata = ["email", "phone"]'
        )
    keys = table.get("personal_metadata", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(
            f"{source}: [erasure] personal_metadata must be a list of top-level metadata "
            'keys, as ["email", "phone"]'
        )
    return tuple(keys)


@dataclass(slots=True)
class ErasureSummary:
    """What an erasure did (or, dry, would do)."""

    subject: str
    dry_run: bool
    now: datetime
    events: int = 0
    """Events with at least one personal field to erase."""
    fields: int = 0
    """Fields erased (or, dry, that would be)."""
    paths: dict[str, int] = field(default_factory=dict)
    """Fields erased per JSON Pointer."""
    held: int = 0
    """The subject's events under a legal hold (any refuses the erasure)."""
    hold: str | None = None
    """The id of a hold that covers one of them."""
    authorised_by: list[int] = field(default_factory=list)
    """Seqs of the ``erasure.erase`` events appended."""
    scrubbed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "dry_run": self.dry_run,
            "now": format_time(self.now),
            "events": self.events,
            "fields": self.fields,
            "paths": dict(sorted(self.paths.items())),
            "held": self.held,
            "hold": self.hold,
            "authorised_by": self.authorised_by,
            "scrubbed": self.scrubbed,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        if self.held:
            return (
                f"refused: {self.held:,} of {self.subject}'s events are under legal hold "
                f"{self.hold}; nothing would be erased until it is released"
            )
        if not self.fields:
            return f"nothing to erase: {self.subject} has no personal field left in clear"
        verb = "would erase" if self.dry_run else "erased"
        per_path = ", ".join(f"{p} ({n:,})" for p, n in sorted(self.paths.items()))
        text = (
            f"{verb} {self.fields:,} fields of {self.events:,} events of {self.subject}: {per_path}"
        )
        if self.authorised_by:
            seqs = ", ".join(str(s) for s in self.authorised_by[:5])
            text += f"; recorded as erasure.erase at seq {seqs}"
        if self.scrubbed:
            text += "; " + "; ".join(self.scrubbed)
        return text


@dataclass(frozen=True, slots=True)
class _Target:
    """One event to erase: its seq and the indexes (in its commits) of the fields."""

    seq: int
    indexes: tuple[int, ...]
    paths: tuple[FieldPath, ...]


def _targets(stored: StoredEvent, actor_id: str, personal: frozenset[FieldPath]) -> _Target | None:
    """The event's personal fields still in clear, if it is the subject's and erasable."""
    try:
        event = json.loads(stored.body)
        paths, spans = decode_commits(stored.commits)
    except ValueError:
        return None  # not an event: verify names it; nothing to erase in it
    if not isinstance(event, dict) or is_lifecycle(event):
        return None  # the record of lifecycle changes is never erased
    actor = event.get("actor")
    if not isinstance(actor, dict) or actor.get("id") != actor_id:
        return None
    chosen = [
        i
        for i, path in enumerate(paths)
        if path in personal and spans[i] is not None and type(spans[i]) is not Erased
    ]
    if not chosen:
        return None
    return _Target(stored.seq, tuple(chosen), tuple(paths[i] for i in chosen))


def erase_subject(
    store: Store,
    subject: str,
    *,
    reason: str,
    actor: dict[str, str],
    record: Record,
    lock: Lock,
    personal_metadata: Sequence[str] = (),
    now: datetime | None = None,
    dry_run: bool = False,
) -> ErasureSummary:
    """Erase the personal fields of the data subject ``subject`` (``actor.id=U``).

    ``record`` appends the ``erasure.erase`` events and returns their seqs once a signed
    checkpoint covers them; ``lock`` takes the writer locks around each batch. With
    ``dry_run`` nothing is written. Raises ConflictError when a legal hold covers one of
    the subject's events: nothing is erased then.
    """
    started = time.monotonic()
    at = now or datetime.now(UTC)
    if not reason.strip():
        raise ConfigError("an erasure needs a reason (the request it answers): give --reason")
    actor_id = parse_subject(subject)
    personal = personal_paths(personal_metadata)
    summary = ErasureSummary(subject=f"actor.id={actor_id}", dry_run=dry_run, now=at)
    holds = ActiveHolds.of(store, now=at)
    targets: list[_Target] = []
    after = -1
    while True:
        page = store.actor_events(actor_id, after, _PAGE)
        if not page:
            break
        after = page[-1].seq
        for stored in page:
            target = _targets(stored, actor_id, personal)
            if target is None:
                continue
            hold = holds.holding(json.loads(stored.body), seq=stored.seq)
            if hold is not None:
                summary.held += 1
                summary.hold = summary.hold or hold.id
                continue
            targets.append(target)
    summary.events = len(targets)
    for target in targets:
        for path in target.paths:
            pointer = show_pointer(path)
            summary.paths[pointer] = summary.paths.get(pointer, 0) + 1
    summary.fields = sum(summary.paths.values())
    if summary.held and not dry_run:
        raise ConflictError(
            f"{summary.held:,} of {summary.subject}'s events are under legal hold "
            f"{summary.hold}, so nothing was erased; erasure is refused while a hold covers "
            "the subject's events (`glasslog hold list`)"
        )
    if dry_run or not targets:
        summary.seconds = time.monotonic() - started
        return summary
    batches = [targets[i : i + BATCH] for i in range(0, len(targets), BATCH)]
    events = [
        lifecycle_event(
            ERASE_ACTION,
            actor,
            reason=reason,
            target={"type": "data_subject", "id": summary.subject},
            metadata={
                "subject": summary.subject,
                "erased": [[t.seq, *(show_pointer(p) for p in t.paths)] for t in batch],
                "fields": sum(len(t.paths) for t in batch),
                "part": number,
                "parts": len(batches),
            },
        )
        | {"time": format_time(at)}
        for number, batch in enumerate(batches, 1)
    ]
    authorised = record(events)
    latest = store.latest_checkpoint()
    if latest is None or latest.size <= max(authorised):
        raise GlasslogError(
            "the erasure.erase events were appended but no signed checkpoint covers them yet, "
            "so nothing was erased; run the erasure again"
        )
    summary.authorised_by = authorised
    rewrites: list[Rewrite] = []
    for batch, by in zip(batches, authorised, strict=True):
        rewrites.extend(_erase_batch(store, batch, by=by, lock=lock))
    with lock():
        summary.scrubbed = store.scrub(rewrites)
    summary.seconds = time.monotonic() - started
    return summary


def _erase_batch(store: Store, batch: list[_Target], *, by: int, lock: Lock) -> list[Rewrite]:
    """Rewrite one ``erasure.erase`` event's rows in one transaction, under the locks.

    The erasure's time is its ledger event's, as stored. Rows are read again under
    the lock; a field erased meanwhile (a concurrent erasure) is skipped, and a hold
    placed since the selection still protects its event.
    """
    with lock():
        authority = json.loads(store.get(by).body)
        moment: str = authority["time"]
        time_us = epoch_us(parse_time(moment))
        holds = ActiveHolds.of(store)
        rewrites: list[Rewrite] = []
        for target in batch:
            stored = store.get(target.seq)
            event = json.loads(stored.body)
            if holds.holding(event, seq=stored.seq) is not None:
                continue
            rewrite = _rewrite(stored, event, target, moment, time_us, by)
            if rewrite is not None:
                rewrites.append(rewrite)
        store.erase(rewrites)
    return rewrites


def _rewrite(
    stored: StoredEvent,
    event: dict[str, Any],
    target: _Target,
    moment: str,
    time_us: int,
    by: int,
) -> Rewrite | None:
    """The row with ``target``'s fields erased, its leaf checked unchanged."""
    paths, spans = decode_commits(stored.commits)
    indexes = [
        i
        for i in target.indexes
        if i < len(paths) and spans[i] is not None and type(spans[i]) is not Erased
    ]
    if not indexes:
        return None
    body, new_spans, salts = erase_body(stored.body, spans, stored.salts, indexes, moment)
    if leaf_from_body(body, new_spans, salts) != leaf_from_body(
        stored.body, spans, stored.salts
    ):  # never: erase_body keeps the leaf (property-tested); refuse rather than corrupt
        raise GlasslogError(f"erasing seq {stored.seq} would change its leaf; nothing written")
    erased = json.loads(body)
    return Rewrite(
        seq=stored.seq,
        time_us=columns(event).time_us,
        body=body,
        commits=encode_commits(paths, new_spans),
        salts=salts,
        old_text=search_text(event),
        text=search_text(erased),
        old_fields=field_values(event["metadata"]) if "metadata" in event else (),
        fields=field_values(erased["metadata"]) if "metadata" in erased else (),
        erased=tuple(Erasure(stored.seq, show_pointer(paths[i]), time_us, by) for i in indexes),
    )
