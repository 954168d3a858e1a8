"""Deep pages of full-text results: the same answers as one read, for the work of one page.

Full text streams matches in seq order and ranks them by time, so a page deep into
a result must neither restart the stream from the newest event (issue 8 §7: page 200
cost 200 first pages) nor lose an event when times and seqs disagree. The store here
spans several SEQ_BLOCKs with events out of time order within and across blocks,
ties on time, and events arriving while a result is being paged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasslog.errors import ConfigError
from glasslog.query.language import parse
from glasslog.store.base import SEQ_BLOCK
from glasslog.store.search import MAX_PENDING
from glasslog.store.sqlite_search import SQLiteSearch
from glasslog.testing import TemporaryLog
from tests.conftest import BACKENDS, backend_log
from tests.query.test_search import reference

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=2)
N = 3 * SEQ_BLOCK + 1500
"""Four blocks of seqs, the last one partly filled."""


def _event(i: int, offset: int, *, salt: str = "") -> dict[str, Any]:
    """Event number ``i`` at ``offset`` seconds after START, with words chosen by ``i``."""
    words = ["alpha" if i % 3 == 0 else "echo"]
    if i % 5 == 0:
        words.append("bravo")
    if i % 7 == 0:
        words.append("charlie delta")
    return {
        "time": (START + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": "auth" if i % 2 else "payments",
        "action": "db.query",
        "outcome": "success",
        "actor": {"id": f"u-{i % 9}"},
        "reason": " ".join(words) + salt,
    }


def _offset(i: int, *, reversed_block: bool = True) -> int:
    """Mostly in arrival order; some events late by one and a half blocks (across
    blocks), runs of equal times, and the third block in reverse time order."""
    if i % 97 == 0:
        return i - 3 * SEQ_BLOCK // 2
    if reversed_block and 2 * SEQ_BLOCK <= i < 3 * SEQ_BLOCK:
        return 5 * SEQ_BLOCK - i
    if i % 50 == 7:
        return i // 1000 * 1000
    return i


def _dataset(*, reversed_block: bool = True) -> list[dict[str, Any]]:
    return [_event(i, _offset(i, reversed_block=reversed_block)) for i in range(N)]


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[TemporaryLog, list[dict[str, Any]]]]:
    """The dataset on each backend, with the stored seq beside each event."""
    with backend_log(request.param) as tlog:
        assert all(r.ok for r in tlog.submit(_dataset()))
        assert tlog.store.size() == N
        yield tlog, [{**e, "seq": i} for i, e in enumerate(_dataset())]


def _expected(events: list[dict[str, Any]], query: str, sort: str = "-time") -> list[int]:
    """The whole answer in one read: the reference semantics, sorted by (time, seq)."""
    node = parse(query, now=NOW)
    hits = sorted(
        (e for e in events if reference(node, e)),
        key=lambda e: (e["time"], e["seq"]),
        reverse=sort == "-time",
    )
    return [e["seq"] for e in hits]


def _paged(
    tlog: TemporaryLog, query: str, *, size: int, sort: str = "-time", pages: int | None = None
) -> tuple[list[int], str | None]:
    """Seqs of the first ``pages`` pages (all of them by default), and the cursor after."""
    seqs: list[int] = []
    cursor = None
    while pages is None or pages > 0:
        page = tlog.log.search(query, limit=size, sort=sort, cursor=cursor, now=NOW)
        seqs += [e["seq"] for e in page.events]
        cursor = page.cursor
        if cursor is None:
            break
        pages = None if pages is None else pages - 1
    return seqs, cursor


QUERIES = ["alpha", '"charlie delta"', "alpha service:auth", "alpha -bravo", "bravo OR delta"]


@pytest.mark.parametrize("sort", ["-time", "time"])
@pytest.mark.parametrize("query", QUERIES)
def test_paging_through_full_text_gives_the_one_read_answer(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], query: str, sort: str
) -> None:
    """Pages of 50 through cursors list exactly the unpaged answer: no event skipped or repeated."""
    tlog, events = loaded
    want = _expected(events, query, sort)
    assert len(want) > 10 * 50  # deep enough to cross every block
    assert _paged(tlog, query, size=50, sort=sort)[0] == want


_terms = st.sampled_from(["alpha", "bravo", "echo", '"charlie delta"', '"alpha bravo"'])
_filters = st.sampled_from(
    ["", "service:auth", "-service:auth", "-bravo", "actor.id:u-1", "(alpha OR bravo)", "seq>5000"]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    term=_terms,
    extra=_filters,
    size=st.integers(1, 120),
    sort=st.sampled_from(["-time", "time"]),
    pages=st.integers(1, 25),
)
def test_generated_full_text_pages_match_the_one_read_answer(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
    term: str,
    extra: str,
    size: int,
    sort: str,
    pages: int,
) -> None:
    """Any full-text query, page size and depth gives a prefix of the one-read answer."""
    tlog, events = loaded
    query = f"{term} {extra}".strip()
    seqs, cursor = _paged(tlog, query, size=size, sort=sort, pages=pages)
    want = _expected(events, query, sort)
    assert seqs == want[: len(seqs)]
    assert len(seqs) == min(len(want), size * pages)
    assert (cursor is None) == (len(seqs) == len(want))


def test_odd_page_sizes_cut_anywhere(loaded: tuple[TemporaryLog, list[dict[str, Any]]]) -> None:
    """Page sizes that cut inside runs of equal times and late events still add up exactly."""
    tlog, events = loaded
    for size in (1, 7, 333, 1000):
        pages = 40 if size == 1 else None
        seqs, _ = _paged(tlog, "alpha", size=size, pages=pages)
        assert seqs == _expected(events, "alpha")[: len(seqs)]
        assert pages is not None or len(seqs) == len(_expected(events, "alpha"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sort", ["-time", "time"])
def test_events_arriving_between_pages_are_keyset_paged(backend: str, sort: str) -> None:
    """Events stored between pages appear exactly when their (time, seq) is past the cursor.

    The newcomers are newer than everything, as old as the middle of the result, and
    older than everything: the first page's span of read seqs must not hide any.
    """
    with backend_log(backend) as tlog:
        tlog.submit(_dataset())
        before = [{**e, "seq": i} for i, e in enumerate(_dataset())]
        shown, cursor = _paged(tlog, "alpha", size=50, sort=sort, pages=20)
        assert shown == _expected(before, "alpha", sort)[: len(shown)]
        # Newer than all, amid the result, older than all, and at the very times of the
        # last event shown and of the next ones (ties are ranked by seq).
        upcoming = _expected(before, "alpha", sort)[len(shown) : len(shown) + 3]
        offsets = [10 * N, 10 * N + 1, N // 2, N // 2 + 1, -5000, 0]
        offsets += [_offset(seq) for seq in [shown[-1], *upcoming]]
        late = [_event(3 * k, offset, salt=" late") for k, offset in enumerate(offsets)]
        assert all(r.ok for r in tlog.submit(late))
        after = before + [{**e, "seq": N + i} for i, e in enumerate(late)]
        rest: list[int] = []
        while cursor is not None:
            page = tlog.log.search("alpha", limit=50, sort=sort, cursor=cursor, now=NOW)
            rest += [e["seq"] for e in page.events]
            cursor = page.cursor
        everything = _expected(after, "alpha", sort)
        position = everything.index(shown[-1])
        assert rest == everything[position + 1 :]
        assert set(rest) & set(range(N, N + len(late)))  # newcomers past the cursor are found


@pytest.mark.parametrize("query", ["alpha", '"charlie delta"', "alpha service:auth"])
def test_a_deep_page_reads_no_more_than_twice_the_first(query: str) -> None:
    """Page 30 reads at most twice the full-text matches page 1 reads, in both orders and
    after newer events arrive; restarting from the scan's start read thirty times more.

    Late events are in, but no block in reverse: there a first page reads the whole
    block too, since no block bound can stop it sooner.
    """
    with backend_log("sqlite") as tlog:
        tlog.submit(_dataset(reversed_block=False))
        search = tlog.log._search
        assert isinstance(search, SQLiteSearch)

        def reads(sort: str, cursor: str | None) -> int:
            tlog.log.search(query, limit=50, sort=sort, cursor=cursor, now=NOW)
            return search.text_rows_read

        first = {sort: reads(sort, None) for sort in ("-time", "time")}
        deep = {sort: _paged(tlog, query, size=50, sort=sort, pages=29)[1] for sort in first}
        for sort, cursor in deep.items():
            assert cursor is not None
            assert 0 < reads(sort, cursor) <= 2 * first[sort], sort
        # Newer events keep arriving while an old part of the result is paged. Those
        # in the last block, whose late events are older than the cursor, are read
        # once; those in blocks of newer events only are never read.
        cursor = deep["-time"]
        for batch in range(3):
            start = N + 6000 * batch
            tlog.submit([_event(i, N + i) for i in range(start, start + 6000)])
            page = tlog.log.search(query, limit=50, cursor=cursor, now=NOW)
            bound = 2 * first["-time"] + (2000 if batch == 0 else 0)
            assert 0 < search.text_rows_read <= bound, batch
            cursor = page.cursor


def _forge(cursor: str, change: list[object]) -> str:
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return base64.urlsafe_b64encode(json.dumps(raw[:4] + change).encode()).decode()


@pytest.mark.parametrize(
    "skip",
    [[5], [9, 3], ["1", 9], [0, 2**64], [-2, 9], [1.5, 9], [None, 9], [True, 9], [1, 9, 20],
     [1, 9, 1], [0, 10**6, *range(1, 1 + MAX_PENDING + 1)]],
)  # fmt: skip
def test_a_cursor_with_a_malformed_span_is_refused(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]], skip: list[object]
) -> None:
    """A cursor whose span is not two ordered seqs with a few inside gets the cursor error."""
    tlog, _ = loaded
    cursor = tlog.log.search("alpha", limit=5, now=NOW).cursor
    assert cursor is not None
    with pytest.raises(ConfigError, match="not one glasslog issued"):
        tlog.log.search("alpha", limit=5, cursor=_forge(cursor, skip), now=NOW)


def test_a_full_text_cursor_carries_its_span_and_others_do_not(
    loaded: tuple[TemporaryLog, list[dict[str, Any]]],
) -> None:
    """Only SQLite's full-text cursors hold the span of read seqs (PostgreSQL starts its
    index range at the keyset); the last page has no cursor."""
    tlog, _ = loaded

    def fields(query: str) -> list[object]:
        cursor = tlog.log.search(query, limit=5, now=NOW).cursor
        assert cursor is not None
        decoded: list[object] = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        return decoded

    if isinstance(tlog.log._search, SQLiteSearch):
        assert len(fields("alpha")) >= 6
    else:
        assert len(fields("alpha")) == 4
    assert len(fields("service:auth")) == 4
    assert _paged(tlog, "alpha", size=1000)[1] is None
