"""How ``verify_store`` reads the events it recomputes."""

from __future__ import annotations

import pytest

import glasslog.verify
from glasslog.testing import TemporaryLog
from tests.conftest import make_event


@pytest.mark.parametrize("workers", [1, 2])
def test_leaves_are_read_up_to_the_size_verify_started_with(
    tlog: TemporaryLog, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Rows appended after verify read the size (by a live writer) are not read as the tree's."""
    monkeypatch.setattr(glasslog.verify, "CHUNK", 100)  # several chunks from a small log
    tlog.submit([make_event() for _ in range(300)])
    chunks = list(glasslog.verify._leaf_hashes(tlog.spec, 250, workers))
    assert [start for start, _, _ in chunks] == [0, 100, 200]
    assert [seq for _, seqs, _ in chunks for seq in seqs] == list(range(250))
