"""The one enforcement point: every read by a principal goes through :class:`Reader`.

A :class:`Reader` holds a :class:`~glasslog.log.Log` and a :class:`Principal`. Each
operation (search, get, trace, count, count by, histogram)

1. refuses what the principal's permissions do not allow (:class:`AccessDenied`);
2. ANDs the principal's scope into the parsed query (:mod:`glasslog.access.scope`),
   so an out-of-scope event never reaches a page, a count, a histogram or a trace;
3. for aggregations, rewrites terms on fields a role cannot see so that they match
   nothing there, and refuses what cannot be computed exactly without seeing the
   values (free text for a principal whose roles mask fields, count-by on a masked
   field);
4. for events it returns, rebuilds the principal's view (masked fields as their
   commitment, hidden fields left out) and checks the query against that view, so a
   search never matches on a value the principal cannot see.

No read path builds SQL or filters events on its own: the CLI and the HTTP service
call this class, and the owner of the data directory (no principal) uses the Log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, TypeVar

from glasslog.access.audit import AUDIT_ACTION, AUDIT_SERVICE, Auditor, read_event
from glasslog.access.evidence import build_evidence
from glasslog.access.policy import Role
from glasslog.access.scope import all_of, any_of, restrict, rule_of, scope_node, unsafe, view, widen
from glasslog.errors import GlasslogError, IntegrityError, NotFoundError, PrunedError, QueryError
from glasslog.ledger import merkle
from glasslog.ledger.commit import (
    SALT_BYTES,
    Path,
    decode_commits,
    erased_commitments,
    show_pointer,
)
from glasslog.log import COUNT_CAP, MAX_PAGE, Count, Histogram, Log, Page, Timeline
from glasslog.query.language import And, Compare, Match, Node, Not, Or, Text, parse, resolve_field
from glasslog.query.match import matches
from glasslog.store.base import Store, StoredCheckpoint, StoredEvent, event_of, node_reader_for

__all__ = ["AccessDenied", "Decoded", "Principal", "Reader", "decode"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A stored event parsed once, for every live tail that reads it (never changed).

    ``event`` is None for a row that is not an event: verify names it, and no tail
    shows it. ``commits`` and ``salts`` are kept so that masking needs no second read.
    """

    seq: int
    event: dict[str, Any] | None
    commits: str
    salts: bytes


def decode(stored: Iterable[StoredEvent]) -> list[Decoded]:
    """Stored rows as :class:`Decoded` records, in the order given."""
    out = []
    for row in stored:
        try:
            event = event_of(row)
        except ValueError:
            event = None
        out.append(
            Decoded(row.seq, event if isinstance(event, dict) else None, row.commits, row.salts)
        )
    return out


class AccessDenied(GlasslogError):
    """The principal's roles do not allow this operation (or this query)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who reads: an API key or an OIDC subject, with the roles it holds right now."""

    id: str
    name: str
    kind: str
    """``"service"`` (an API key) or ``"user"`` (a person, through OIDC)."""
    roles: tuple[Role, ...]
    grants: tuple[str, ...] = field(default=())
    """Ids of the break-glass grants that add roles now (recorded with each read)."""


def _walk(node: Node) -> Iterator[Node]:
    """Every node of a query, itself first."""
    yield node
    if isinstance(node, And | Or):
        for child in node.nodes:
            yield from _walk(child)
    elif isinstance(node, Not):
        yield from _walk(node.node)


class Reader:
    """Reads of one log by one principal, each one scoped, masked and checked."""

    def __init__(
        self,
        log: Log,
        principal: Principal,
        *,
        now: datetime | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self.log = log
        self.principal = principal
        self._now = now
        self._auditor = auditor

    # -- the audited operations (each records one audit.read event) ---------------

    def search(
        self,
        query: str,
        *,
        limit: int = 50,
        sort: str = "-time",
        cursor: str | None = None,
        now: datetime | None = None,
    ) -> Page:
        """A page of the matching events the principal may see, as it may see them."""
        return self._audited(
            "search",
            query,
            lambda: self._search(query, limit=limit, sort=sort, cursor=cursor, now=now),
            lambda page: len(page.events),
        )

    def get(self, key: str) -> dict[str, Any]:
        """One event as the principal may see it; "not found" when it may not see it."""
        return self._audited("get", key, lambda: self._get(key), lambda _: 1)

    def evidence(self, key: str) -> dict[str, Any]:
        """Evidence for one event as the principal sees it (``get KEY --proof``)."""
        return self._audited("proof", key, lambda: self._evidence(key), lambda _: 1)

    def inclusion(self, seq: int, *, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof for an event in scope, without its leaf (its content)."""
        return self._audited(
            "proof", str(seq), lambda: self._inclusion(seq, size=size), lambda _: 1
        )

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        """A consistency proof: hashes of the tree only, no event's content."""
        return self._audited(
            "proof",
            f"{size1}..{size2}",
            lambda: self._consistency(size1, size2),
            lambda _: 1,
        )

    def _consistency(self, size1: int, size2: int) -> dict[str, Any]:
        self._require("proof")
        return self.log.consistency(size1, size2)

    def _inclusion(self, seq: int, *, size: int | None) -> dict[str, Any]:
        roles = self._require("proof")
        now = self._now_or_clock()
        scopes = [scope_node(r, now=now) for r in roles]
        try:
            stored = self.log.store.get(seq)
        except PrunedError:
            raise  # it existed, and says when retention pruned it (no content is left)
        except NotFoundError:
            raise _not_found(str(seq)) from None
        if self._view(event_of(stored), stored, roles, scopes) is None:
            raise _not_found(str(seq))
        proof = self.log.inclusion(seq, size=size)
        del proof["leaf"]  # the leaf holds every uncommitted value in clear
        return proof

    def trace(self, ident: str, *, limit: int = 10_000) -> Timeline:
        """The request or trace, limited to the events the principal may see."""
        return self._audited(
            "trace", ident, lambda: self._trace(ident, limit=limit), lambda t: len(t.events)
        )

    def tail(self, query: str) -> None:
        """Open a live tail of ``query``: refuse it now if the principal may not, and
        record it once (operation ``tail``). :meth:`follow` then reads the stream."""
        self._audited("tail", query, lambda: self._scoped("tail", query), lambda _: 0)

    def flush(self) -> None:
        """Record the reads made so far now (a long-running tail's opening, say)."""
        if self._auditor is not None:
            self._auditor.flush()

    def follow(
        self, query: str, start: int, end: int, *, decoded: Sequence[Decoded] | None = None
    ) -> list[dict[str, Any]]:
        """The events with seq in [start, end) that the principal may see and that match
        ``query``, as it may see them, in seq order: one step of a live tail.

        Not audited per step: the stream was recorded when it was opened (:meth:`tail`).
        The bodies are matched here, as search rechecks them: the scope, then the query
        against each event's view. ``decoded``: the rows of [start, end) already read
        and parsed (a server reads each step once for all its streams); they are only
        read, never changed.
        """
        node, run, roles, scopes = self._scoped("tail", query)
        rows = decode(self.log.store.events(start, end)) if decoded is None else decoded
        events: list[dict[str, Any]] = []
        known: dict[int, tuple[str, bytes]] = {}
        for row in rows:
            event = row.event
            if event is not None and start <= row.seq < end and matches(run, event, seq=row.seq):
                events.append({"seq": row.seq, **event})
                known[row.seq] = (row.commits, row.salts)
        return self._present(events, node, roles, scopes, in_scope=True, known=known)

    def count(self, query: str, *, now: datetime | None = None, cap: int = COUNT_CAP) -> Count:
        """How many events the principal may see match (as :meth:`Log.count`)."""
        return self._audited(
            "count", query, lambda: self._count(query, now=now, cap=cap), lambda c: c.count
        )

    def count_by(
        self, query: str, field_name: str, *, top: int = 10, now: datetime | None = None
    ) -> list[tuple[Any, int]]:
        """The top values of a field the principal sees in clear, among its matches."""
        return self._audited(
            "count_by",
            query,
            lambda: self._count_by(query, field_name, top=top, now=now),
            lambda groups: sum(n for _, n in groups),
        )

    def histogram(
        self, query: str, *, now: datetime | None = None, bucket: timedelta | None = None
    ) -> Histogram:
        """Matches the principal may see, per time bucket."""
        return self._audited(
            "histogram",
            query,
            lambda: self._histogram(query, now=now, bucket=bucket),
            lambda h: sum(n for _, n in h.buckets),
        )

    def _audited(
        self, operation: str, query: str, run: Callable[[], T], results: Callable[[T], int]
    ) -> T:
        """Run one read and record it: refused, not found (0 results), or done."""
        try:
            done = run()
        except AccessDenied as exc:
            self._record(operation, query, None, denied=str(exc))
            raise
        except NotFoundError:
            self._record(operation, query, 0)
            raise
        self._record(operation, query, results(done))
        return done

    def _record(
        self, operation: str, query: str, results: int | None, *, denied: str | None = None
    ) -> None:
        if self._auditor is None:
            return
        self._auditor.record(
            read_event(
                principal_id=self.principal.id,
                name=self.principal.name,
                kind=self.principal.kind,
                roles=[r.name for r in self.principal.roles],
                operation=operation,
                query=query,
                results=results,
                window=_window(query, self._now_or_clock()) if operation != "get" else None,
                grants=list(self.principal.grants),
                denied=denied,
            )
        )

    # -- the rules ---------------------------------------------------------------

    def _now_or_clock(self) -> datetime:
        return self._now or datetime.now(UTC)

    def _require(self, permission: str) -> list[Role]:
        """The principal's roles that allow ``permission``; refuse when none does."""
        roles = [r for r in self.principal.roles if r.may(permission)]
        if not roles:
            held = sorted({p for r in self.principal.roles for p in r.permissions})
            raise AccessDenied(
                f"{self.principal.name} may not {permission}: its roles "
                f"({', '.join(r.name for r in self.principal.roles) or 'none'}) allow "
                f"{', '.join(held) or 'nothing'}"
            )
        return roles

    def _scoped(
        self,
        permission: str,
        query: str,
        *,
        aggregate: bool = False,
        now: datetime | None = None,
    ) -> tuple[Node, Node, list[Role], list[Node]]:
        """(the query as parsed, the node to run, the roles, their scopes)."""
        roles = self._require(permission)
        now = now or self._now_or_clock()
        node = parse(query, now=now)
        scopes = [scope_node(r, now=now) for r in roles]
        if not _names_audit(node):
            # A reader's own audit trail must not pollute its results: audit.read
            # events answer only a query that asks for them.
            scopes = [all_of((scope, _NOT_AUDIT)) for scope in scopes]
        if aggregate:
            if any(isinstance(n, Text) for n in _walk(node)) and any(
                r.mask or r.hide for r in roles
            ):
                raise AccessDenied(
                    "free text cannot be counted for a role that masks fields: the words "
                    "of masked values would be counted. Search instead, or count by fields"
                )
            run = all_of((restrict(node, roles, scopes), any_of(scopes)))
        else:  # every result is matched against its view afterwards
            run = all_of((widen(node, roles), any_of(scopes)))
        return node, run, roles, scopes

    def _bind(self, query: str) -> str:
        """What a cursor is bound to: the query, and who reads."""
        return f"{self.principal.id}\0{query}"

    def _view(
        self,
        event: dict[str, Any],
        stored: StoredEvent,
        roles: Sequence[Role],
        scopes: Sequence[Node],
    ) -> tuple[dict[str, Any], dict[Path, str], dict[Path, str | None]] | None:
        seq = stored.seq
        including = [r for r, s in zip(roles, scopes, strict=True) if matches(s, event, seq=seq)]
        if not including:
            return None
        return view(event, including, salts_of(stored))

    # -- reads -------------------------------------------------------------------

    def _search(
        self,
        query: str,
        *,
        limit: int = 50,
        sort: str = "-time",
        cursor: str | None = None,
        now: datetime | None = None,
    ) -> Page:
        """A page of the matching events the principal may see, as it may see them."""
        node, run, roles, scopes = self._scoped("search", query, now=now)
        page = self.log.search_node(
            run, bind=self._bind(query), limit=limit, sort=sort, cursor=cursor
        )
        events = self._present(page.events, node, roles, scopes, in_scope=True)
        return Page(events, page.cursor, page.outside, page.mismatched)

    def _present(
        self,
        events: list[dict[str, Any]],
        node: Node,
        roles: Sequence[Role],
        scopes: Sequence[Node],
        *,
        in_scope: bool,
        known: dict[int, tuple[str, bytes]] | None = None,
    ) -> list[dict[str, Any]]:
        """Each event as the principal sees it, if it may and its view matches ``node``.

        ``in_scope``: the store's rows were rechecked against a query that holds the
        scope, so with one role every event is in it. Salts are read for a whole page
        at once (unless ``known`` holds them: seq → (commits, salts)), and only when a
        role masks or hides something: the view of a role without field rules is the
        event, and ``node`` matched it already.
        """
        ruled = any(r.mask or r.hide for r in roles)
        if not ruled and in_scope and len(roles) == 1:
            return events
        # A query with no term a field rule can change (free text, or a field some role
        # masks or hides) matches the view exactly when it matches the event.
        blind = not any(unsafe(n, roles) for n in _walk(node))
        stored = (
            {}
            if not ruled
            else known
            if known is not None
            else self.log.store.commitments([e["seq"] for e in events])
        )
        shown_events = []
        memo: dict[tuple[tuple[str, ...], Path], bool | str] = {}
        for event in events:
            seq = event.pop("seq")
            including = (
                list(roles)
                if in_scope and len(roles) == 1
                else [r for r, s in zip(roles, scopes, strict=True) if matches(s, event, seq=seq)]
            )
            if not including:
                continue
            if not ruled:
                shown_events.append({"seq": seq, **event})
                continue
            commits, salts = stored[seq]
            shown, masked, _ = view(event, including, _salts(commits, salts), memo)
            if blind or matches(node, _without(shown, masked), seq=seq):
                shown_events.append({"seq": seq, **shown})
        return shown_events

    def _get(self, key: str) -> dict[str, Any]:
        """One event as the principal may see it; "not found" when it may not see it."""
        roles = self._require("get")
        now = self._now_or_clock()
        scopes = [scope_node(r, now=now) for r in roles]
        try:
            stored = self.log.find(key)
        except PrunedError:
            raise  # it existed, and says when retention pruned it (no content is left)
        except NotFoundError:
            raise _not_found(key) from None
        full = self._view(event_of(stored), stored, roles, scopes)
        if full is None:
            raise _not_found(key)  # the same words as for an event never stored
        return {"seq": stored.seq, **full[0]}

    def _evidence(self, key: str) -> dict[str, Any]:
        """Evidence for one event as the principal sees it (``get KEY --proof``): needs
        both ``get`` and ``proof`` from one role."""
        self._require("get")
        self._require("proof")
        roles = [r for r in self.principal.roles if r.may("get") and r.may("proof")]
        if not roles:
            raise AccessDenied(f"{self.principal.name} has no role with both get and proof")
        now = self._now_or_clock()
        scopes = [scope_node(r, now=now) for r in roles]
        try:
            stored = self.log.find(key)
        except PrunedError:
            raise  # it existed, and says when retention pruned it (no content is left)
        except NotFoundError:
            raise _not_found(key) from None
        full = self._view(event_of(stored), stored, roles, scopes)
        if full is None:
            raise _not_found(key)
        shown, masked, hidden = full
        return evidence_of(self.log, stored, shown, masked, hidden)

    def _trace(self, ident: str, *, limit: int = 10_000) -> Timeline:
        """The request or trace, limited to the events the principal may see."""
        roles = self._require("trace")
        now = self._now_or_clock()
        scopes = [scope_node(r, now=now) for r in roles]
        wanted = Or((
            Match("context.request_id", ident, wildcard=False),
            Match("context.trace_id", ident, wildcard=False),
        ))  # fmt: skip
        timeline = self.log.trace(ident, limit=limit)
        events = self._present(timeline.events, wanted, roles, scopes, in_scope=False)
        return Timeline(events, timeline.mismatched)

    def _count(self, query: str, *, now: datetime | None = None, cap: int = COUNT_CAP) -> Count:
        """How many events the principal may see match (as :meth:`Log.count`)."""
        _, run, _, _ = self._scoped("aggregate", query, aggregate=True, now=now)
        return self.log.count_node(run, cap=cap)

    def _count_by(
        self, query: str, field_name: str, *, top: int = 10, now: datetime | None = None
    ) -> list[tuple[Any, int]]:
        """The top values of a field the principal sees in clear, among its matches."""
        _, run, roles, _ = self._scoped("aggregate", query, aggregate=True, now=now)
        path = tuple(resolve_field(field_name).split("."))
        hidden_by = [r.name for r in roles if rule_of(r, path) != "clear"]
        if hidden_by:
            raise AccessDenied(
                f"{field_name} is masked or hidden for the role {hidden_by[0]}: counting by it "
                "would show its values"
            )
        return self.log.count_by_node(run, field_name, top=top)

    def _histogram(
        self, query: str, *, now: datetime | None = None, bucket: timedelta | None = None
    ) -> Histogram:
        """Matches the principal may see, per time bucket."""
        _, run, _, _ = self._scoped("aggregate", query, aggregate=True, now=now)
        return self.log.histogram_node(run, bucket=bucket)

    # -- export bundles (issue 14, part 4) ---------------------------------------

    def export(self, query: str, each: Exported) -> int:
        """Hand every matching event the principal may see to ``each``, oldest first, as
        it may see it (``glasslog export``): one audited read, operation ``export``.
        Returns how many events were handed over."""
        return self._audited("export", query, lambda: self._export(query, each), lambda n: n)

    def _export(self, query: str, each: Exported) -> int:
        """Every page of the search, each event matched against its view as ``_present``
        does, but keeping what evidence needs: the stored row, masked and hidden paths."""
        node, run, roles, scopes = self._scoped("export", query)
        blind = not any(unsafe(n, roles) for n in _walk(node))
        memo: dict[tuple[tuple[str, ...], Path], bool | str] = {}
        handed = 0
        cursor: str | None = None
        while True:
            page = self.log.search_node(
                run, bind=self._bind(query), limit=MAX_PAGE, sort="time", cursor=cursor
            )
            _refuse_mismatched(page)
            rows = stored_rows(self.log.store, page.events)
            for event in page.events:
                seq = event.pop("seq")
                including = [
                    r for r, s in zip(roles, scopes, strict=True) if matches(s, event, seq=seq)
                ]
                if not including:
                    continue
                stored = rows[seq]
                shown, masked, hidden = view(event, including, salts_of(stored), memo)
                if blind or matches(node, _without(shown, masked), seq=seq):
                    each(stored, shown, masked, hidden)
                    handed += 1
            if page.cursor is None:
                return handed
            cursor = page.cursor


T = TypeVar("T")

Exported = Callable[[StoredEvent, dict[str, Any], dict[Path, str], dict[Path, str | None]], None]
"""What an export hands each event to: the stored row, the view, masked and hidden paths."""

_NOT_AUDIT: Final[Node] = Not(
    And(
        (
            Match("service", AUDIT_SERVICE, wildcard=False),
            Match("action", AUDIT_ACTION, wildcard=False),
        )
    )
)


def _names_audit(node: Node) -> bool:
    """Whether the query names ``service:glasslog`` or ``category:audit`` anywhere."""
    return any(
        isinstance(n, Match)
        and (
            (n.field == "service" and n.value == AUDIT_SERVICE)
            or (n.field == "category" and n.value == "audit")
        )
        for n in _walk(node)
    )


def _window(query: str, now: datetime) -> dict[str, str | None] | None:
    """The query's time bounds (after:, before:, time comparisons at its top level)."""
    try:
        node = parse(query, now=now)
    except QueryError:
        return None
    terms = node.nodes if isinstance(node, And) else (node,)
    after = before = None
    for term in terms:
        if isinstance(term, Compare) and term.field == "time" and isinstance(term.value, datetime):
            text = term.value.isoformat().replace("+00:00", "Z")
            if term.op in (">", ">="):
                after = text
            else:
                before = text
    if after is None and before is None:
        return None
    return {"after": after, "before": before}


def salts_of(stored: StoredEvent) -> dict[Path, bytes]:
    """Each committed path of a stored event, with its salt."""
    return _salts(stored.commits, stored.salts)


def _salts(commits: str, salts: bytes) -> dict[Path, bytes]:
    return {
        path: salts[i * SALT_BYTES : (i + 1) * SALT_BYTES]
        for i, path in enumerate(_committed_paths(commits))
    }


@lru_cache(maxsize=1024)
def _committed_paths(commits: str) -> tuple[Path, ...]:
    """The paths of a stored ``commits`` column: events of one kind share the same
    text, so a page decodes each distinct one once."""
    paths, _ = decode_commits(commits)
    return tuple(paths)


def evidence_of(
    log: Log,
    stored: StoredEvent,
    shown: dict[str, Any],
    masked: dict[Path, str],
    hidden: dict[Path, str | None],
    *,
    at: tuple[StoredCheckpoint, Callable[[int], list[bytes]]] | None = None,
) -> dict[str, Any]:
    """Evidence for ``stored`` as shown, under the latest checkpoint that covers it.

    ``at``: another checkpoint, and what proves a seq's inclusion in its tree (an
    export proves all its events to one checkpoint, sharing the work between them).
    """
    erased = erased_commitments(stored.commits)
    if erased:  # a hidden erased field: its stored commitment proves it (docs/erasure.md)
        hidden = {p: erased.get(p) if s is None else s for p, s in hidden.items()}
    unprovable = [p for p, sealed in hidden.items() if sealed is None]
    if unprovable:
        raise AccessDenied(
            f"event {stored.seq} cannot be proven to this reader: "
            f"{show_pointer(unprovable[0])} is hidden from it but was not committed when the "
            "event was logged, so the proof would need its value"
        )
    latest = log.latest_checkpoint() if at is None else at[0]
    if latest.size <= stored.seq:
        raise NotFoundError(
            f"event {stored.seq} is not yet covered by a signed checkpoint (the latest covers "
            f"{latest.size:,} events); the next ingest signs one"
        )
    if at is None:
        reader = node_reader_for(log.store, latest.size)
        proof = merkle.inclusion_proof(stored.seq, latest.size, reader)
    else:
        proof = at[1](stored.seq)
    return build_evidence(
        seq=stored.seq,
        shown=shown,
        salts=salts_of(stored),
        masked=masked,
        hidden={p: s for p, s in hidden.items() if s is not None},
        erased=erased,
        tree_size=latest.size,
        proof=proof,
        checkpoint=latest.note,
    )


def owner_evidence(log: Log, key: str) -> dict[str, Any]:
    """Evidence for the owner of the data directory: every field in clear."""
    stored = log.find(key)
    return evidence_of(log, stored, event_of(stored), {}, {})


def owner_export(log: Log, query: str, each: Exported) -> int:
    """:meth:`Reader.export` for the owner of the data directory: every field in clear,
    not audited (the owner reads the files anyway)."""
    node = parse(query, now=datetime.now(UTC))
    handed = 0
    cursor: str | None = None
    while True:
        page = log.search_node(node, bind=query, limit=MAX_PAGE, sort="time", cursor=cursor)
        _refuse_mismatched(page)
        rows = stored_rows(log.store, page.events)
        for event in page.events:
            seq = event.pop("seq")
            each(rows[seq], event, {}, {})
            handed += 1
        if page.cursor is None:
            return handed
        cursor = page.cursor


def stored_rows(store: Store, events: Sequence[dict[str, Any]]) -> dict[int, StoredEvent]:
    """The stored rows of a page of events (each with its seq), read in one go by id."""
    ids = {}
    for event in events:
        with suppress(ValueError, TypeError, AttributeError):
            ids[uuid.UUID(event["id"]).bytes] = event["seq"]
    rows = {
        stored.seq: stored
        for event_id, stored in store.find_ids(list(ids)).items()
        if ids.get(event_id) == stored.seq
    }
    for event in events:  # an event without an id, or whose id column disagrees
        if event["seq"] not in rows:
            rows[event["seq"]] = store.get(event["seq"])
    return rows


def _refuse_mismatched(page: Page) -> None:
    """An export proves what it holds: a row that fails its recheck stops it."""
    if page.mismatched:
        raise IntegrityError(
            f"the store returned events whose signed bodies do not match the query "
            f"(seqs {', '.join(map(str, page.mismatched[:5]))}): the derived data was "
            "altered; run `glasslog verify` before exporting",
            seq=page.mismatched[0],
        )


def _without(event: dict[str, Any], masked: dict[Path, str]) -> dict[str, Any]:
    """``event`` without its masked fields: what the principal's queries may match."""
    out = dict(event)
    for path in masked:
        if len(path) == 1:
            out.pop(path[0], None)
        elif isinstance(out.get(path[0]), dict):
            inner = dict(out[path[0]])
            inner.pop(path[1], None)
            out[path[0]] = inner
    return out


def _not_found(key: str) -> NotFoundError:
    """One message for "never stored" and "not yours", so a refusal reveals nothing."""
    if key.isascii() and key.isdigit():
        return NotFoundError(f"no event with seq {key.lstrip('0') or '0'}")
    try:
        uuid.UUID(key)
    except ValueError:
        return NotFoundError(
            f"{key!r} is neither a seq (a non-negative number) nor an event id (a UUID)"
        )
    return NotFoundError("no event with that id")
