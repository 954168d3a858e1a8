"""The tlog-tiles API, read by a client written from the spec (https://c2sp.org/tlog-tiles).

The client below encodes tile paths and hashes with hashlib on its own, without
glasslog's tile or Merkle helpers, so it checks the server against the specification
rather than against itself. Only the signed-note check uses glasslog.ledger.note.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from glasslog.event import uuid7
from glasslog.ledger.note import Verifier, verify_checkpoint
from tests.conftest import scratch_database
from tests.server.conftest import Site, live, make_site

TOTAL = 11 * 256 + 37  # 11 full level-0 tiles, partials of width 37 (level 0) and 11 (level 1)
EMAIL = "tiles-secret@example.com"


# -- the client, from the spec ------------------------------------------------------------


def encode_index(n: int) -> str:
    """<N> as zero-padded three-digit groups, all but the last prefixed with x."""
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    return "/".join([f"x{g}" for g in reversed(groups[1:])] + [groups[0]])


def tile_url(level: int | str, n: int, width: int = 256) -> str:
    return f"/tile/{level}/{encode_index(n)}" + ("" if width == 256 else f".p/{width}")


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash over already-hashed leaves."""
    if len(hashes) == 1:
        return hashes[0]
    split = 1
    while split * 2 < len(hashes):
        split *= 2
    return hashlib.sha256(b"\x01" + mth(hashes[:split]) + mth(hashes[split:])).digest()


def split32(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def root_from_tiles(client: httpx.Client, size: int) -> bytes:
    """Rebuild the root of a tree of ``size`` leaves from the tiles that size implies.

    A run of ``256**l`` leaves hashes to one entry of a level-``l`` tile, so the
    tree's leaves split, from the left, into at most 255 subtrees per level, read from
    the highest level's tiles down to the level-0 partial tile. Folding those
    right-to-left, as MTH does for a tree whose size is not a power of two, gives the
    root (each split point is a power of two, so the subtrees are MTH's own).
    """
    subtrees: list[bytes] = []  # roots of complete power-of-two subtrees, left to right
    level = 0
    while 256 ** (level + 1) <= size:
        level += 1
    start = 0
    for lvl in range(level, -1, -1):
        span = 256**lvl
        count = (size - start) // span
        if not count:
            continue
        n, first = divmod(start // span, 256)
        assert first == 0  # higher levels consumed whole tiles of this one
        full, width = divmod(count, 256)
        assert full == 0
        answer = client.get(tile_url(lvl, n, width))
        assert answer.status_code == 200, answer.text
        entries = split32(answer.content)
        assert len(entries) == width
        # Each entry spans 256**lvl leaves; group them into power-of-two subtrees.
        position = 0
        remaining = width
        while remaining:
            chunk = 1 << (remaining.bit_length() - 1)
            subtrees.append(mth(entries[position : position + chunk]))
            position += chunk
            remaining -= chunk
        start += count * span
    root = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        root = hashlib.sha256(b"\x01" + left + root).digest()
    return root


def read_bundle(data: bytes) -> list[bytes]:
    """An entry bundle: big-endian uint16 length-prefixed entries."""
    entries, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 2], "big")
        entries.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    assert offset == len(data)
    return entries


# -- the server ---------------------------------------------------------------------------


def _events(count: int) -> list[dict[str, object]]:
    return [
        {"id": uuid7(), "service": "payments", "action": "charge.create",
         "actor": {"id": f"user-{i % 7}", "email": EMAIL}, "metadata": {"i": i}}
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Site]]:
    """A live server over a log of TOTAL events, with a checkpoint covering them all, on
    each backend in turn."""
    with ExitStack() as stack:
        store = None if request.param == "sqlite" else stack.enter_context(scratch_database())
        site = make_site(Path(tmp_path_factory.mktemp("tiles")), store)
        url = stack.enter_context(live(site))
        events = _events(TOTAL)
        for first in range(0, TOTAL, 1000):
            answer = httpx.post(f"{url}/v1/events", json={"events": events[first : first + 1000]},
                                headers=site.auth("writer"), timeout=60)  # fmt: skip
            assert answer.json()["accepted"] == len(events[first : first + 1000])
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/checkpoint").text.split("\n")[1:2] != [str(TOTAL)]:
            assert time.monotonic() < deadline, "no checkpoint covers the events"
            time.sleep(0.2)
        yield url, site


def _checkpoint(client: httpx.Client) -> tuple[int, bytes]:
    note = client.get("/checkpoint").text
    verifier = Verifier.from_vkey(client.get("/v1/vkey").text.strip())
    checkpoint = verify_checkpoint(note, verifier=verifier)
    return checkpoint.size, checkpoint.root


def test_path_encoding_examples_of_the_spec() -> None:
    """The client's encoder writes the spec's examples (the server is tested with it)."""
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(1000) == "x001/000"
    assert tile_url(0, 1234067, 9) == "/tile/0/x001/x234/067.p/9"


def test_root_from_tiles_alone_matches_the_signed_checkpoint(served: tuple[str, Site]) -> None:
    """The spec's client verifies the checkpoint with the vkey, fetches only the tiles
    its size implies and rebuilds the same root hash."""
    url, _ = served
    with httpx.Client(base_url=url) as client:
        size, root = _checkpoint(client)
        assert size >= TOTAL
        assert root_from_tiles(client, size) == root
        # A smaller tree read from tiles too: the root of every prefix is recoverable.
        level0 = split32(client.get(tile_url(0, 0)).content)
        assert root_from_tiles(client, 100) == mth(level0[:100])


def test_full_tiles_are_immutable_and_level_one_hashes_full_level_zero(
    served: tuple[str, Site],
) -> None:
    """A full tile is 8,192 bytes of octet-stream, cached as immutable, and each level-1
    entry is the MTH of the full level-0 tile under it."""
    url, _ = served
    with httpx.Client(base_url=url) as client:
        full = client.get(tile_url(0, 3))
        assert full.status_code == 200 and len(full.content) == 8192
        assert full.headers["content-type"] == "application/octet-stream"
        assert "immutable" in full.headers["cache-control"]
        assert "max-age=31536000" in full.headers["cache-control"]
        level1 = split32(client.get(tile_url(1, 0, 11)).content)
        assert level1[3] == mth(split32(full.content))
        assert "no-cache" in client.get("/checkpoint").headers["cache-control"]


def test_partial_tiles_at_the_right_edge(served: tuple[str, Site]) -> None:
    """The right edge has partial tiles of the widths the spec gives, and none wider."""
    url, _ = served
    with httpx.Client(base_url=url) as client:
        size, _ = _checkpoint(client)
        n, width = divmod(size, 256)
        assert (n, width) == (11, 37)  # nothing read with an audit trail has run yet
        edge = client.get(tile_url(0, n, width))
        assert edge.status_code == 200 and len(edge.content) == width * 32
        assert client.get(tile_url(1, 0, n)).status_code == 200
        wider = (tile_url(0, n), tile_url(0, n, width + 1), tile_url(0, n + 1, 1))
        higher = (tile_url(1, 0), tile_url(1, 0, n + 1), tile_url(2, 0, 1))
        for missing in wider + higher:
            answer = client.get(missing)
            assert answer.status_code == 404, missing
            assert answer.headers["content-type"].startswith("application/problem+json")
        # A partial tile of an earlier tree size is a prefix of the full tile.
        prefix = client.get(tile_url(0, 2, 5))
        assert prefix.content == client.get(tile_url(0, 2)).content[: 5 * 32]


@pytest.mark.parametrize(
    "path",
    [
        "/tile/0/1",  # groups have three digits
        "/tile/0/0001",
        "/tile/0/x000/001",  # a leading zero group
        "/tile/0/001/002",  # all but the last group start with x
        "/tile/0/x001",  # the last does not
        "/tile/00/000",  # L without leading zeros
        "/tile/64/000",  # L at most 63
        "/tile/-1/000",
        "/tile/0/000.p/0",  # W is 1..255
        "/tile/0/000.p/256",
        "/tile/0/000.p/05",
        "/tile/0/000.p/",
        "/tile/0/000.q/5",
        "/tile/entries/x000/000",
    ],
)
def test_malformed_paths_are_400(served: tuple[str, Site], path: str) -> None:
    """Paths the spec's encoding does not allow are refused with a 400 that says it."""
    url, site = served
    answer = httpx.get(url + path, headers=site.auth("admin"))
    assert answer.status_code == 400, answer.text
    assert "x001/x234/067" in answer.json()["detail"]


def test_out_of_range_tiles_are_404(served: tuple[str, Site]) -> None:
    """Tiles and bundles past the checkpoint's tree are 404, even at huge indexes."""
    url, site = served
    with httpx.Client(base_url=url, headers=site.auth("admin")) as client:
        for path in (tile_url(0, 10**12), tile_url(63, 0, 1), "/tile/entries/012",
                     "/tile/entries/011.p/38", "/tile/entries/x999/x999/x999/999"):  # fmt: skip
            assert client.get(path).status_code == 404, path


def test_entry_bundles_hash_to_the_level_zero_tiles(served: tuple[str, Site]) -> None:
    """Each entry of a bundle (full and partial) hashes to its level-0 tile's hash, and
    committed values appear only as commitments. (Admin reads are audited, and audit
    events grow the log: this and the next test run last.)"""
    url, site = served
    with httpx.Client(base_url=url, headers=site.auth("admin")) as client:
        size, _ = _checkpoint(client)
        for n, width in ((0, 256), divmod(size, 256)):
            bundle = client.get(f"/tile/entries/{encode_index(n)}" + ("" if width == 256
                                else f".p/{width}"))  # fmt: skip
            assert bundle.status_code == 200
            assert bundle.headers["content-type"] == "application/octet-stream"
            entries = read_bundle(bundle.content)
            assert len(entries) == width
            assert [leaf_hash(e) for e in entries] == split32(
                client.get(tile_url(0, n, width)).content
            )
        first = json.loads(entries[0])
        assert first["service"] == "payments" and "$commit" in first["actor"]["email"]
        assert EMAIL.encode() not in bundle.content


def test_entry_bundles_need_admin_and_their_reads_are_audited(served: tuple[str, Site]) -> None:
    """Without a key 401, with a role lacking admin 403, both as problem+json; the admin's
    read and the refusal are audit.read events with operation entries."""
    url, site = served
    path = f"/tile/entries/{encode_index(1)}"
    with httpx.Client(base_url=url) as client:
        anonymous = client.get(path)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith("application/problem+json")
        refused = client.get(path, headers=site.auth("dev"))
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        assert client.get(path, headers=site.auth("admin")).status_code == 200
        deadline = time.monotonic() + 30
        while True:
            query = {"q": "service:glasslog action:audit.read"}
            page = client.get("/v1/events", headers=site.auth("admin"), params=query).json()
            reads = [e for e in page["events"] if e["metadata"]["operation"] == "entries"
                     and e["metadata"]["query"] == path]  # fmt: skip
            if len(reads) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        outcomes = {(e["actor"]["name"], e["outcome"]) for e in reads}
        assert {("admin-key", "success"), ("dev-key", "denied")} <= outcomes
