"""Test data for the ledger tests: independent test vectors and a reference in-memory tree.

The vectors are copied into the repository under ``tests/data/vectors`` (its README.md
gives their provenance, licenses and formats). A missing directory must fail the vector
tests loudly, never skip them: a silent skip would turn "passes every vector" into
"passes none". So when the directory is missing, the parameter lists hold a single
``vectors-missing`` case that fails with a message saying where the vectors were looked for.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from glasslog.ledger.merkle import NodeReader, leaf_hash, node_hash

VECTORS_DIR = Path(__file__).resolve().parents[1] / "data" / "vectors"
"""``tests/data/vectors`` in this repository."""

RFC9162_DIR = VECTORS_DIR / "rfc9162"
SIGNED_NOTE_FILE = VECTORS_DIR / "signed-note.json"

MISSING = Path("<vectors missing>")
"""Stand-in parameter when the vectors directory does not exist."""


def require(path: Path) -> Path:
    """Return ``path``, or fail the current test with a clear message if it is missing."""
    if path == MISSING or not path.exists():
        pytest.fail(
            f"test vectors not found at {VECTORS_DIR} (looked for {path}); they are part of "
            "the repository: restore tests/data/vectors from git",
            pytrace=False,
        )
    return path


def rfc9162_params(kind: str) -> list[Any]:
    """One pytest param per RFC 9162 vector file of ``kind`` ("inclusion" or "consistency").

    Each file is its own case, with an id like ``inclusion/1/wrong-leaf``.
    """
    base = RFC9162_DIR / kind
    if not base.is_dir():
        return [pytest.param(MISSING, id="vectors-missing")]
    return [
        pytest.param(path, id=path.relative_to(RFC9162_DIR).with_suffix("").as_posix())
        for path in sorted(base.rglob("*.json"))
    ]


def load_json(path: Path) -> dict[str, Any]:
    """Read one vector file (failing clearly if the vectors are missing)."""
    data: dict[str, Any] = json.loads(require(path).read_text(encoding="utf-8"))
    return data


def b64(value: str) -> bytes:
    """Decode a vector's standard base64 hash (``""`` decodes to ``b""``)."""
    return base64.b64decode(value)


def b64_list(values: list[str] | None) -> list[bytes]:
    """Decode a vector's proof; ``null`` means a proof with no hashes."""
    return [b64(value) for value in values or []]


REFERENCE_LEAVES = [
    bytes.fromhex(value)
    for value in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
"""The eight leaves of the RFC 6962 test data that the rfc9162 vectors were generated from."""


class MemoryTree:
    """A reference tree holding every complete subtree hash, for comparing against.

    Built bottom-up from the leaf hashes with nothing but ``node_hash``, so it shares no
    code with the proof generators it checks. Its readers refuse, by failing the test,
    any node that is not a complete aligned subtree of the tree size asked about.
    """

    def __init__(self, leaf_hashes: list[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaf_hashes)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    @property
    def leaves(self) -> list[bytes]:
        """The leaf hashes."""
        return self.levels[0]

    def reader(self, size: int, calls: list[tuple[int, int]] | None = None) -> NodeReader:
        """Return a NodeReader for the first ``size`` leaves, optionally recording calls."""
        assert size <= len(self.leaves), "reference tree too small for this size"

        def read(level: int, index: int) -> bytes:
            assert level >= 0, f"asked for negative level {level}"
            assert index >= 0, f"asked for negative index {index}"
            assert (index + 1) << level <= size, (
                f"asked for node ({level}, {index}), not a complete subtree of size {size}"
            )
            if calls is not None:
                calls.append((level, index))
            return self.levels[level][index]

        return read


BIG_SIZE = 70_000
"""Leaves in :func:`big_tree`: enough to cross a full level-1 tile (65,536 leaves)."""


@functools.cache
def big_tree() -> MemoryTree:
    """A reference tree over ``BIG_SIZE`` deterministic leaves, built once per session."""
    return MemoryTree([leaf_hash(i.to_bytes(8, "big")) for i in range(BIG_SIZE)])
