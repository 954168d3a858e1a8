"""Retention: remove the payloads of events past the age the policy keeps them for.

Rules live in the policy file's ``[retention]`` table (docs/retention.md)::

    [retention]
    default = "90d"                 # events no selector matches
    "action:deploy.*" = "400d"      # any query of the query language
    "category:auth" = "2y"
    schedule = "1h"                 # how often `glasslog serve` runs it (optional)

Age is measured from the event's ``time``. Among the selectors matching an event the
longest duration wins; ``default`` applies only when none matches; without a default
an event no selector matches is kept. No ``[retention]`` table: nothing is pruned.
Events under a legal hold and glasslog's own lifecycle events are never pruned.

A run is tamper-evident (RFC 9162 leaves stay): it first appends ``retention.prune``
events listing the seq ranges it will prune, and has them signed, then deletes the
payloads in chunks, each under the writer locks so that ingest goes on between them.
Each pruned event keeps a ``pruned`` row (seq, id, time, leaf hash, the authorising
event's seq), so the tree, checkpoints and the proofs of every other event stay valid
and ``glasslog verify`` can tell a pruned range from a deleted one.
"""

from __future__ import annotations

import json
import time
import tomllib
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from glasslog.access.policy import parse_duration
from glasslog.derived import columns
from glasslog.errors import ConfigError, GlasslogError, QueryError
from glasslog.event import epoch_us, format_time
from glasslog.ledger.merkle import leaf_hash
from glasslog.lifecycle import is_lifecycle, lifecycle_event
from glasslog.lifecycle.holds import ActiveHolds
from glasslog.query.language import Node, parse
from glasslog.query.match import matches
from glasslog.query.plan import compile_query
from glasslog.store.base import Store, leaf_of

__all__ = [
    "PRUNE_ACTION",
    "RetentionPolicy",
    "RunSummary",
    "load_retention",
    "parse_ranges",
    "parse_retention",
    "run_retention",
]

PRUNE_ACTION = "retention.prune"

CHUNK = 5_000
"""Events pruned per transaction: each holds the writer lock for well under a second."""

MAX_RANGES = 1_000
"""Seq ranges one ``retention.prune`` event lists (its metadata stays far below the
64 KiB an event may take); a run that prunes more ranges appends several events."""

_PAGE = 5_000

PAUSE = 0.06
"""Seconds a run waits between chunks, with the writer locks released: a writer waiting
for them polls every 50 ms, so each chunk lets the writers that queued meanwhile commit,
and a long run never starves ingest (nor makes it give up after its 30 s wait)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One selector of ``[retention]``: events matching ``query`` are kept ``keep``."""

    query: str
    keep: timedelta
    text: str
    """The duration as written (``400d``), for the record."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The ``[retention]`` table, parsed and checked."""

    default: Rule | None
    rules: tuple[Rule, ...]
    schedule: timedelta | None = None

    def to_json(self) -> dict[str, str]:
        """The rules as written, for the ``retention.prune`` event and the output."""
        shown = {r.query: r.text for r in self.rules}
        if self.default is not None:
            shown["default"] = self.default.text
        return shown

    def shortest(self) -> timedelta | None:
        """The shortest duration of any rule: nothing younger can be pruned."""
        keeps = [r.keep for r in self.rules] + ([self.default.keep] if self.default else [])
        return min(keeps) if keeps else None

    def matcher(self, now: datetime) -> Callable[[dict[str, Any], int], timedelta | None]:
        """A function giving how long an event (decoded body, seq) is kept, None: forever."""
        compiled = [(rule, _compiled(rule.query, now)) for rule in self.rules]
        default = self.default.keep if self.default is not None else None

        def keep_for(event: dict[str, Any], seq: int) -> timedelta | None:
            found = [rule.keep for rule, node in compiled if matches(node, event, seq=seq)]
            return max(found) if found else default

        return keep_for


def _compiled(query: str, now: datetime) -> Node:
    node = parse(query, now=now)
    compile_query(node)
    return node


def parse_retention(table: object, *, source: str = "the policy") -> RetentionPolicy:
    """Check a ``[retention]`` table; ConfigError naming every bad key otherwise."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: retention: expected a table: [retention]")
    problems: list[str] = []
    rules: list[Rule] = []
    default: Rule | None = None
    schedule: timedelta | None = None
    now = datetime.now(UTC)
    for key, value in table.items():
        where = f"{source}: retention.{json.dumps(key) if ':' in key else key}"
        if not isinstance(value, str):
            problems.append(f'{where}: expected a duration as a string, such as "90d"')
            continue
        try:
            keep = parse_duration(value)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if keep <= timedelta(0):
            problems.append(f"{where}: a duration must be longer than zero")
            continue
        if key == "schedule":
            schedule = keep
            continue
        if key == "default":
            default = Rule("", keep, value)
            continue
        try:
            _compiled(key, now)
        except QueryError as exc:
            problems.append(
                f"{where}: the selector is not a valid query ({exc.message}); write a query "
                'such as "action:deploy.*" or "category:auth"'
            )
            continue
        rules.append(Rule(key, keep, value))
    if problems:
        raise ConfigError("; ".join(problems))
    return RetentionPolicy(default=default, rules=tuple(rules), schedule=schedule)


def load_retention(path: Path) -> RetentionPolicy | None:
    """The ``[retention]`` table of the policy file at ``path``; None when it has none."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the retention rules: {exc}") from None
    if "retention" not in data:
        return None
    return parse_retention(data["retention"], source=str(path))


@dataclass(slots=True)
class RunSummary:
    """What a retention run did (or, dry, would do)."""

    dry_run: bool
    now: datetime
    rules: dict[str, str]
    examined: int = 0
    """Events old enough for the shortest rule, whose bodies were matched."""
    held: int = 0
    """Events past retention that a legal hold kept."""
    pruned: int = 0
    """Events pruned (or, dry, that would be)."""
    ranges: list[tuple[int, int]] = field(default_factory=list)
    """The seq ranges pruned, end exclusive."""
    authorised_by: list[int] = field(default_factory=list)
    """Seqs of the ``retention.prune`` events appended."""
    reclaimed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "now": format_time(self.now),
            "rules": self.rules,
            "examined": self.examined,
            "held": self.held,
            "pruned": self.pruned,
            "ranges": [[a, b] for a, b in self.ranges],
            "authorised_by": self.authorised_by,
            "reclaimed": self.reclaimed,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        verb = "would prune" if self.dry_run else "pruned"
        text = (
            f"{verb} {self.pruned:,} event{'' if self.pruned == 1 else 's'} "
            f"in {len(self.ranges):,} seq range{'' if len(self.ranges) == 1 else 's'}"
            f" ({self.examined:,} examined, {self.held:,} kept by legal holds)"
        )
        if self.authorised_by:
            text += (
                f"; recorded as retention.prune at seq {', '.join(map(str, self.authorised_by))}"
            )
        for line in self.reclaimed:
            text += f"; {line}"
        return text


def to_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted seqs as ranges ``(start, end)``, end exclusive."""
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq:
            ranges[-1] = (ranges[-1][0], seq + 1)
        else:
            ranges.append((seq, seq + 1))
    return ranges


def format_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    """Ranges as the ``retention.prune`` event records them: ``0-99,120-130`` (inclusive)."""
    return ",".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b in ranges)


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """The inverse of :func:`format_ranges` (end exclusive); ValueError when malformed."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        a = int(first)
        b = int(last) if last else a
        if a < 0 or b < a or (ranges and a < ranges[-1][1]):
            raise ValueError(f"{part!r} is not an increasing range of seqs")
        ranges.append((a, b + 1))
    return ranges


Record = Callable[[list[dict[str, Any]]], list[int]]
"""Appends lifecycle events to the ledger and returns their seqs once a signed
checkpoint covers them."""


def _select(
    store: Store, policy: RetentionPolicy, now: datetime, summary: RunSummary
) -> array[int]:
    """The seqs past retention, not held and not lifecycle events, in order."""
    shortest = policy.shortest()
    selected = array("q")
    if shortest is None:
        return selected
    keep_for = policy.matcher(now)
    holds = ActiveHolds.of(store, now=now)
    now_us = epoch_us(now)
    candidates = store.prune_candidates(epoch_us(now - shortest))
    for start in range(0, len(candidates), _PAGE):
        for stored in store.events_at(candidates[start : start + _PAGE]):
            summary.examined += 1
            try:
                event = json.loads(stored.body)
                time_us = columns(event).time_us
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # an undecodable row is verify's to report, never ours to delete
            if is_lifecycle(event):
                continue
            keep = keep_for(event, stored.seq)
            if keep is None or time_us + keep // timedelta(microseconds=1) > now_us:
                continue
            if holds.holding(event, seq=stored.seq) is not None:
                summary.held += 1
                continue
            selected.append(stored.seq)
    return selected


def _parts(seqs: array[int]) -> Iterator[list[tuple[int, int]]]:
    """The ranges of ``seqs``, at most :data:`MAX_RANGES` per ``retention.prune`` event."""
    ranges = to_ranges(seqs)
    for start in range(0, len(ranges), MAX_RANGES):
        yield ranges[start : start + MAX_RANGES]


def _seqs_of(ranges: Sequence[tuple[int, int]]) -> Iterator[int]:
    for a, b in ranges:
        yield from range(a, b)


def run_retention(
    store: Store,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: dict[str, str],
    record: Record,
    lock: Callable[[], AbstractContextManager[object]],
    chunk: int = CHUNK,
) -> RunSummary:
    """Prune the events past retention as of ``now`` (default: the clock).

    ``record`` appends the ``retention.prune`` events and returns their seqs once a
    signed checkpoint covers them; ``lock`` takes the writer locks (the data
    directory's and the store's) around each chunk. With ``dry_run`` nothing is
    written: the summary says what would be pruned.
    """
    started = time.monotonic()
    at = now or datetime.now(UTC)
    summary = RunSummary(dry_run=dry_run, now=at, rules=policy.to_json())
    seqs = _select(store, policy, at, summary)
    parts = list(_parts(seqs))
    summary.ranges = [r for part in parts for r in part]
    if dry_run or not parts:
        summary.pruned = len(seqs)
        summary.seconds = time.monotonic() - started
        return summary
    events = [
        lifecycle_event(
            PRUNE_ACTION,
            actor,
            reason="retention",
            metadata={
                "ranges": format_ranges(part),
                "count": sum(b - a for a, b in part),
                "rules": policy.to_json(),
                "as_of": format_time(at),
                "part": number,
                "parts": len(parts),
            },
        )
        for number, part in enumerate(parts, 1)
    ]
    authorised = record(events)
    latest = store.latest_checkpoint()
    if latest is None or latest.size <= max(authorised):
        raise GlasslogError(
            "the retention.prune events were appended but no signed checkpoint covers them "
            "yet, so nothing was pruned; run `glasslog retention run` again"
        )
    summary.authorised_by = authorised
    for part, by in zip(parts, authorised, strict=True):
        summary.pruned += _prune_part(store, part, by=by, lock=lock, chunk=chunk, summary=summary)
    summary.reclaimed = store.reclaim_space(lock, pause=PAUSE)
    summary.seconds = time.monotonic() - started
    return summary


def _prune_part(
    store: Store,
    part: list[tuple[int, int]],
    *,
    by: int,
    lock: Callable[[], AbstractContextManager[object]],
    chunk: int,
    summary: RunSummary,
) -> int:
    """Delete the payloads of one ``retention.prune`` event's ranges, chunk by chunk."""
    pruned = 0
    pending: list[int] = []
    for seq in _seqs_of(part):
        pending.append(seq)
        if len(pending) >= chunk:
            pruned += _prune_chunk(store, pending, by=by, lock=lock, summary=summary)
            pending = []
            time.sleep(PAUSE)
    if pending:
        pruned += _prune_chunk(store, pending, by=by, lock=lock, summary=summary)
    return pruned


def _prune_chunk(
    store: Store,
    seqs: list[int],
    *,
    by: int,
    lock: Callable[[], AbstractContextManager[object]],
    summary: RunSummary,
) -> int:
    """One transaction: the chunk's leaves recomputed from the rows, then the rows gone.

    Holds are read again: a hold placed since the selection still protects its events
    (they stay, listed in the authorised ranges, which ``verify`` accepts).
    """
    with lock():
        holds = ActiveHolds.of(store)
        leaves: list[tuple[int, bytes]] = []
        for stored in store.events_at(seqs):
            if holds.holds and holds.holding(json.loads(stored.body), seq=stored.seq):
                summary.held += 1
                continue
            leaves.append((stored.seq, leaf_hash(leaf_of(stored))))
        return store.prune(leaves, by=by, at_us=epoch_us(datetime.now(UTC)))
