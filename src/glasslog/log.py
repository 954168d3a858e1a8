"""Read access to one log: events, checkpoints and Merkle proofs (RFC 9162 §2.1).

The CLI (and later the server) are thin layers over this class: they parse input,
call one method and format what it returns.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from glasslog.datadir import DataDir
from glasslog.errors import ConfigError, NotFoundError
from glasslog.ledger import merkle
from glasslog.ledger.note import Checkpoint, verify_checkpoint
from glasslog.store.base import StoredCheckpoint, StoredEvent, event_of, leaf_of, node_reader_for
from glasslog.store.sqlite import SQLiteStore


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Log:
    """One log's data directory opened for reading."""

    def __init__(self, datadir: DataDir, store: SQLiteStore) -> None:
        self.datadir = datadir
        self.store = store

    @classmethod
    def open(cls, data: Path) -> Log:
        datadir = DataDir(data)
        datadir.require()
        return cls(datadir, SQLiteStore.open(datadir.db))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, key: str) -> StoredEvent:
        """An event by seq (a decimal number) or by id (a UUID)."""
        if key.isascii() and key.isdigit():
            return self.store.get(int(key))
        try:
            event_id = uuid.UUID(key)
        except ValueError:
            raise NotFoundError(
                f"{key!r} is neither a seq (a non-negative number) nor an event id (a UUID)"
            ) from None
        return self.store.get_by_id(event_id.bytes)

    def get(self, key: str) -> dict[str, Any]:
        """The stored event with its seq, as the log's owner sees it."""
        stored = self.find(key)
        return {"seq": stored.seq, **event_of(stored)}

    def latest_checkpoint(self) -> StoredCheckpoint:
        latest = self.store.latest_checkpoint()
        if latest is None:
            raise NotFoundError("no checkpoint has been signed yet; ingest events first")
        return latest

    def _tree_size(self, size: int | None) -> int:
        """The tree size to prove against: the latest checkpoint's, or one asked for."""
        latest = self.latest_checkpoint().size
        if size is None:
            return latest
        if size < 0 or size > latest:
            raise ConfigError(
                f"tree size {size} is not covered by a signed checkpoint: choose a size "
                f"from 1 to {latest} (the latest checkpoint)"
            )
        return size

    def _root(self, size: int) -> bytes:
        root = merkle.root_from(size, node_reader_for(self.store, size))
        for stored in self.store.checkpoints():
            if stored.size == size:
                cp = verify_checkpoint(stored.note, verifier=self.datadir.verifier())
                if cp.root != root:
                    raise ConfigError(
                        f"the stored tree disagrees with the checkpoint at size {size}; "
                        "run `glasslog verify`"
                    )
        return root

    def inclusion(self, seq: int, *, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof for ``seq`` in the tree of ``size`` (default: latest checkpoint)."""
        tree_size = self._tree_size(size)
        if not 0 <= seq < tree_size:
            raise ConfigError(
                f"seq {seq} is not in a tree of size {tree_size}: choose a seq from 0 to "
                f"{tree_size - 1}, or a larger --size"
            )
        leaf = leaf_of(self.store.get(seq))
        reader = node_reader_for(self.store, tree_size)
        proof = merkle.inclusion_proof(seq, tree_size, reader)
        return {
            "seq": seq,
            "tree_size": tree_size,
            "leaf": _b64(leaf),
            "leaf_hash": _b64(merkle.leaf_hash(leaf)),
            "proof": [_b64(h) for h in proof],
            "root": _b64(self._root(tree_size)),
        }

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        """A consistency proof between two tree sizes, both covered by a checkpoint."""
        self._tree_size(size2)
        if not 0 < size1 <= size2:
            raise ConfigError(
                f"a consistency proof needs 0 < OLD <= NEW; got OLD={size1}, NEW={size2}"
            )
        reader = node_reader_for(self.store, size2)
        proof = merkle.consistency_proof(size1, size2, reader)
        return {
            "size1": size1,
            "size2": size2,
            "root1": _b64(self._root(size1)),
            "root2": _b64(self._root(size2)),
            "proof": [_b64(h) for h in proof],
        }

    def verify_checkpoint_note(self, note: str) -> Checkpoint:
        return verify_checkpoint(note, verifier=self.datadir.verifier())
