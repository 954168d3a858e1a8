"""The log's Merkle tree as C2SP tlog-tiles (https://c2sp.org/tlog-tiles).

``GET /tile/<L>/<N>[.p/<W>]`` serves hash tiles and ``GET /tile/entries/<N>[.p/<W>]``
entry bundles, so that third-party transparency-log tooling (monitors, witnesses,
auditors' own scripts) can read the tree next to ``/checkpoint`` without glasslog's API.

What exists is bounded by the latest signed checkpoint, not by the store: a client
may only ask for what a checkpoint it verified implies (the spec forbids fetching
arbitrary partial tiles), and a tile past the checkpoint could still change its width.
A tile of width ``W`` at level ``L``, index ``N`` is served when its hashes lie within
that tree, that is ``(N * 256 + W) * 256**L <= size``: it is then the partial tile of
the tree of that size, and its bytes never change, so every tile and bundle, partial
ones too, is served as immutable, as the spec asks of the endpoint.

Hash tiles are public: they hold hashes only. Entry bundles are the leaves, and a leaf
holds every uncommitted field of its event in clear (committed values appear only as
commitments), so they need a principal with ``admin``, and each read is recorded in
the audit trail as ``operation: entries``.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from glasslog.access.audit import read_event
from glasslog.access.enforce import Principal
from glasslog.ledger.merkle import HASH_SIZE
from glasslog.ledger.tiles import TILE_HEIGHT, TILE_WIDTH
from glasslog.server.problems import Problem
from glasslog.server.service import Service
from glasslog.store.base import leaf_of, tile_entries

__all__ = ["TileAddress", "parse_tile", "router"]

OCTETS: Final = "application/octet-stream"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
"""A year, the longest lifetime HTTP caches honour: a served tile never changes."""

MAX_ENTRY: Final = 0xFFFF
"""The longest entry a bundle can hold: its length is a big-endian uint16."""

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_INDEX = re.compile(r"((?:x[0-9]{3}/)*)([0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")
_ENCODING = (
    "tile paths are tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]: L an integer 0..63 "
    "without leading zeros; N in zero-padded groups of three digits, all but the last "
    "prefixed with x and no leading x000 group (1234067 is x001/x234/067); W an integer "
    "1..255 without leading zeros"
)


class TileAddress:
    """A parsed tile path: level (``None`` for an entry bundle), index and width."""

    __slots__ = ("index", "level", "width")

    def __init__(self, level: int | None, index: int, width: int) -> None:
        self.level = level
        self.index = index
        self.width = width

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH

    def end(self) -> int:
        """The tree size the tile's hashes need: ``(N * 256 + W) * 256**L``."""
        return (self.index * TILE_WIDTH + self.width) << (TILE_HEIGHT * (self.level or 0))


def parse_tile(level: str | None, rest: str) -> TileAddress:
    """Parse ``<N>[.p/<W>]`` (and ``<L>`` unless ``None``); a path the spec does not
    allow is a 400 that says the encoding."""
    if level is not None and (not _LEVEL.fullmatch(level) or int(level) > 63):
        raise Problem(400, f"bad tile level {level[:20]!r}; {_ENCODING}")
    found = _INDEX.fullmatch(rest)
    if found is None or found.group(1).startswith("x000"):
        raise Problem(400, f"bad tile index {rest[:80]!r}; {_ENCODING}")
    prefix, last, width = found.groups()
    index = int(prefix.replace("x", "").replace("/", "") + last)
    if width is not None and int(width) >= TILE_WIDTH:
        raise Problem(400, f"bad partial tile width {width}; {_ENCODING}")
    return TileAddress(
        None if level is None else int(level), index, TILE_WIDTH if width is None else int(width)
    )


def router(service: Service, principal: Callable[..., Principal]) -> APIRouter:
    """The tile routes over ``service``; ``principal`` is the app's caller dependency.

    Left out of the OpenAPI document: their paths are the spec's fixed encoding, not
    parameters, and docs/http.md describes them.
    """
    tiles = APIRouter(include_in_schema=False)

    def within_checkpoint(address: TileAddress, path: str) -> None:
        """404 unless the tile lies within the latest signed checkpoint's tree."""
        size = service.log().latest_checkpoint().size
        if address.end() > size:
            raise Problem(
                404,
                f"{path} is not part of the tree of the latest checkpoint (size {size}); "
                "fetch /checkpoint and ask only for the tiles its size implies",
            )

    def timed(operation: str, read: Callable[[], bytes]) -> bytes:
        started = time.perf_counter()
        try:
            with service.writer.reading():
                return read()
        finally:
            service.metrics.query_seconds.labels(operation).observe(time.perf_counter() - started)

    # A default, not Annotated: the string annotations of this module cannot name the
    # local ``principal``, and FastAPI would take the parameter for a query.
    who = Depends(principal)

    @tiles.get("/tile/entries/{rest:path}")
    def entries(rest: Annotated[str, Path()], caller: Principal = who) -> Response:
        path = f"/tile/entries/{rest}"
        if not any(role.may("admin") for role in caller.roles):
            reason = (
                f"{caller.name} may not read entry bundles: they hold every event's "
                "uncommitted fields, so they need a role with admin"
            )
            _audit(service, caller, path, None, denied=reason)
            raise Problem(403, reason)
        address = parse_tile(None, rest)
        within_checkpoint(address, path)
        first = address.index * TILE_WIDTH

        def bundle() -> bytes:
            parts = []
            store = service.log().store
            for stored in store.events(first, first + address.width):
                leaf = leaf_of(stored)
                if len(leaf) > MAX_ENTRY:
                    raise Problem(
                        500,
                        f"the leaf of seq {stored.seq} is {len(leaf)} bytes, more than the "
                        f"{MAX_ENTRY} an entry bundle can hold; read it with GET /v1/events",
                    )
                parts.append(struct.pack(">H", len(leaf)) + leaf)
            if len(parts) != address.width:  # never a short bundle, served as immutable
                raise Problem(
                    410,
                    f"some entries of seqs {first} to {first + address.width - 1} were pruned "
                    "by retention (docs/retention.md); the hash tiles still cover them",
                )
            return b"".join(parts)

        data = timed("entries", bundle)
        _audit(service, caller, path, address.width)
        return Response(data, media_type=OCTETS, headers={"Cache-Control": IMMUTABLE})

    @tiles.get("/tile/{level}/{rest:path}")
    def hashes(level: Annotated[str, Path()], rest: Annotated[str, Path()]) -> Response:
        address = parse_tile(level, rest)
        within_checkpoint(address, f"/tile/{level}/{rest}")
        assert address.level is not None  # parsed with a level
        tile_level = address.level

        def read() -> bytes:
            store = service.log().store
            return tile_entries(store, tile_level, address.index, address.width)

        data = timed("tile", read)
        if len(data) != address.width * HASH_SIZE:
            raise Problem(500, f"the store returned {len(data)} bytes for /tile/{level}/{rest}")
        return Response(data, media_type=OCTETS, headers={"Cache-Control": IMMUTABLE})

    return tiles


def _audit(
    service: Service,
    caller: Principal,
    path: str,
    results: int | None,
    *,
    denied: str | None = None,
) -> None:
    """Record one entry-bundle read (or its refusal) as the Reader records reads."""
    service.auditor.record(
        read_event(
            principal_id=caller.id,
            name=caller.name,
            kind=caller.kind,
            roles=[r.name for r in caller.roles],
            operation="entries",
            query=path,
            results=results,
            window=None,
            grants=list(caller.grants),
            denied=denied,
        )
    )
