"""A log's identity: the one signing key whose checkpoints a store may hold.

Checkpoints cannot be deleted, so one checkpoint signed with the wrong key poisons a
log for good: from then on ``glasslog verify`` with the log's real key says TAMPERED,
and nothing undoes it. The way to get there was innocent — ``glasslog init`` with a
new data directory pointed at an existing store made a second key, and the next
``ingest`` signed with it.

So a store is bound to its log. ``glasslog init`` records the log's verifier key in
the store (``meta.vkey``) the first time, and every later ``init`` and every writer
checks its signing key against it before it writes anything. Stores created before
the binding existed are bound by the next ``init`` after their latest checkpoint has
been verified with the data directory's key, and until then writers check that
checkpoint directly: a key that did not sign the log's checkpoints is refused either
way.

This guards against mistakes. Someone with write access to the database can edit
``meta``; what protects the log from them is that a writer also verifies the newest
checkpoint with its own key before it signs, and ``verify`` checks every signature.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glasslog.access.policy import DEFAULT_POLICY
from glasslog.datadir import DataDir, RecordedCheckpoint, private_directory
from glasslog.errors import ConfigError, IntegrityError, NoteError, NotFoundError, ProofError
from glasslog.ledger import merkle
from glasslog.ledger.merkle import HASH_SIZE
from glasslog.ledger.note import Checkpoint, Signer
from glasslog.ledger.tiles import Tile, TreeBuilder, node_reader
from glasslog.ledger.vkeys import VkeyHistory
from glasslog.store import open_store
from glasslog.store.base import Store, restore_tree


def _origin(vkey: str) -> str:
    return vkey.split("+", 1)[0]


def _another_log(where: str, bound: str, signer_vkey: str, data: Path | None) -> ConfigError:
    holder = f"the signing key in {data}" if data else "this signing key"
    return ConfigError(
        f"{where} belongs to the log {_origin(bound)!r} (verifier key {bound}), but "
        f"{holder} is for {_origin(signer_vkey)!r} ({signer_vkey}); refusing to "
        "sign with it, which would make the log fail verification for good. Use the --data "
        "directory that holds the log's own signing key, or give a new --store for a new log"
    )


def vkey_history(store: Store) -> VkeyHistory:
    """The store's key history: every key that signed its checkpoints, with their eras.

    ``glasslog key rotate`` and ``key revoke`` append the whole new history as a
    ``meta`` row (``vkeys.000001``, …); the newest row is the history. Every version is
    checked against the one before (a later version may only close the current era,
    add a new one or add a revocation, never change what was recorded) and the first
    key against ``meta.vkey``, so an edited row is an error here, and ``verify`` still
    checks every signature. A store that never rotated has its one bound key.
    Raises :class:`ConfigError` when the store has no identity yet, :class:`NoteError`
    when the recorded history is malformed, unsigned, or rewritten.
    """
    bound = store.identity()
    records = store.vkey_records()
    if bound is None:
        if records:
            raise NoteError(
                f"{describe(store)} records a key history but no identity (meta.vkey); it "
                "was edited: restore it from a backup"
            )
        raise ConfigError(
            f"{describe(store)} is not bound to a log yet; run `glasslog init` with its "
            "--data directory first"
        )
    history = VkeyHistory.single(bound)
    for number, record in enumerate(records, start=1):
        try:
            parsed = VkeyHistory.from_json(json.loads(record))
        except ValueError:
            raise NoteError(
                f"{describe(store)}: version {number} of the key history is not JSON; it was "
                "edited: restore the store from a backup"
            ) from None
        except NoteError as exc:
            raise NoteError(
                f"{describe(store)}: version {number} of the key history: {exc}"
            ) from None
        problem = _extension_problem(history, parsed)
        if problem is not None:
            raise NoteError(
                f"{describe(store)}: version {number} of the key history {problem}; the "
                "history was rewritten: restore the store from a backup"
            )
        history = parsed
    return history


def history_trusting(store: Store, vkey: str) -> VkeyHistory:
    """The key history a verifier that trusts ``vkey`` checks the store's checkpoints with.

    A store whose key never rotated is checked with ``vkey`` alone, whatever ``meta.vkey``
    says: as before rotation existed, the signatures decide, and an edited binding is
    the writers' concern (:func:`check_signer`), not a reason to distrust an intact log.
    Otherwise the recorded history (:func:`vkey_history`), which must hold ``vkey``.
    Raises :class:`NoteError` when it does not, or when the history was forged.
    """
    if not store.vkey_records():
        return VkeyHistory.single(vkey)
    return vkey_history(store).trusting(vkey)


def _extension_problem(before: VkeyHistory, after: VkeyHistory) -> str | None:
    """Why ``after`` is not a one-step extension of ``before``, or None if it is."""
    old, new = before.eras, after.eras
    if len(new) not in (len(old), len(old) + 1):
        return f"has {len(new)} keys where the one before had {len(old)}"
    for index, (was, now) in enumerate(zip(old, new, strict=False)):
        if (was.vkey, was.from_size, was.statement) != (now.vkey, now.from_size, now.statement):
            return f"changes key {index + 1} ({was.vkey})"
        closed = len(new) > len(old) and index == len(old) - 1
        if not closed and was.until_size != now.until_size:
            return f"moves the end of key {index + 1} ({was.vkey})"
        if was.revocation is not None and was.revocation != now.revocation:
            return f"changes the revocation of key {index + 1} ({was.vkey})"
    return None


def check_signer(
    store: Store, signer: Signer, *, data: Path | None = None, history: VkeyHistory | None = None
) -> VkeyHistory:
    """Refuse ``signer`` unless it is the *current* key of the log ``store`` belongs to;
    return the log's key history, vouched for by that key.

    The recorded identity and key history are compared first (the message names both
    logs, or the key that took over); the newest checkpoint is then verified through
    the history anchored at the signer's own key, which also covers stores bound before
    they had an identity, and a ``meta`` row someone edited: the history can only
    reach the signer's key through rotation statements that key signed.
    """
    where = describe(store)
    if history is None:
        history = (
            VkeyHistory.single(signer.vkey) if store.identity() is None else vkey_history(store)
        )
    if signer.vkey not in history.vkeys():
        raise _another_log(where, history.current.vkey, signer.vkey, data)
    if signer.vkey != history.current.vkey:
        holder = f"the key in {data}" if data else "this signing key"
        era = history.era(signer.vkey)
        raise ConfigError(
            f"{holder} ({signer.vkey}) was retired at tree size {era.until_size}: the log "
            f"{history.origin!r} is now signed by {history.current.vkey}. Refusing to sign "
            "with a key that is not current; use the --data directory whose key was rotated "
            "(`glasslog key rotate`), or copy its signing.key and log.vkey here"
        )
    trusted = history.trusting(signer.vkey)
    latest = store.latest_checkpoint()
    if latest is None:
        return trusted
    try:
        trusted.verify_checkpoint(latest.note)
    except NoteError:
        holder = f"the key in {data}" if data else "this signing key"
        raise ConfigError(
            f"the newest checkpoint in {where} (tree size {latest.size}) was not signed by "
            f"{holder} ({signer.vkey}) nor by a key it took over from; refusing to sign with "
            "it, which would make the log fail verification for good. Use the --data "
            "directory that holds the log's own signing key (`glasslog verify` there shows "
            "whether the store is intact)"
        ) from None
    return trusted


def current_signer(
    store: Store, signer: Signer, datadir: DataDir | None
) -> tuple[Signer, VkeyHistory]:
    """The key to sign with now, and the log's key history it vouches for.

    A long-running writer (``glasslog serve``) keeps its key in memory, while
    ``glasslog key rotate`` in another process may hand the log to a new key. So before
    each signature the store's history is read again: when the key in memory is no
    longer current, the data directory's key is loaded (finishing a rotation a crash
    interrupted), and used only if it is the current one. Raises
    :class:`ConfigError` rather than sign with a key that is not current.
    """
    history = None if store.identity() is None else vkey_history(store)
    if datadir is not None and history is not None and signer.vkey != history.current.vkey:
        finish_rotation(datadir, history)
        signer = datadir.signer()
    return signer, check_signer(store, signer, history=history)


def finish_rotation(datadir: DataDir, history: VkeyHistory) -> None:
    """Complete a rotation recorded in the store but not yet in ``datadir``.

    ``glasslog key rotate`` stages the new key in the data directory before it
    records the rotation in the store, and switches ``signing.key`` after: a crash in
    between leaves the staged key, which is switched in here once the store's history
    names it as current. A staged key the history does not name is left alone.
    """
    staged = datadir.staged_signer()
    if staged is not None and staged.vkey == history.current.vkey:
        datadir.switch_key()


def check_history(
    store: Store,
    keys: VkeyHistory,
    tree: TreeBuilder,
    recorded: RecordedCheckpoint | None,
    *,
    where: Path | None = None,
    count: int | None = None,
) -> None:
    """Refuse to sign ``tree`` unless it extends the newest checkpoint this writer knows of.

    The newest checkpoint is the store's, or the one recorded in the data directory
    (``where``) when it is newer — someone may have deleted checkpoints from the store
    to have a rewritten history signed afresh. The recorded one must still be in the
    store, the store must hold at least as many checkpoints as when it was recorded,
    and an RFC 9162 consistency proof built from the store's tiles must link its root
    to the root about to be signed. ``count``, when given, is the number of checkpoints
    the store holds now. Every checkpoint is checked with ``keys``, the log's key history
    (from :func:`check_signer`), so one signed before a rotation passes when its key
    signed it within its era. Raises :class:`IntegrityError` ("TAMPERED: …").
    """
    latest = store.latest_checkpoint()
    newest = None if latest is None else keys.verify_checkpoint(latest.note)
    if recorded is not None:
        mine = _recorded(recorded, keys, where)
        held = store.checkpoint_at(mine.size)
        if held is None or held.note != recorded.note:
            raise IntegrityError(
                f"TAMPERED: the checkpoint at tree size {mine.size} that {_whose(where)} signed "
                f"is missing from {describe(store)}; checkpoints were deleted or replaced. "
                "Refusing to sign: run `glasslog verify` and restore the store from a backup"
            )
        if count is not None and count < recorded.checkpoints:
            raise IntegrityError(
                f"TAMPERED: {describe(store)} holds {count} checkpoints, fewer than the "
                f"{recorded.checkpoints} it held when {_whose(where)} last signed; checkpoints "
                "were deleted. Refusing to sign: run `glasslog verify` and restore the store"
            )
        if newest is None or mine.size > newest.size:
            newest = mine
    if newest is None or (newest.size == tree.size and newest.root == tree.root()):
        return
    if newest.size == 0:
        # Every tree extends the empty one (RFC 9162 has no proof from size 0); its
        # signed root must still be the empty tree's, or the note is not this log's.
        if newest.root != merkle.EMPTY_ROOT:
            raise IntegrityError(
                "TAMPERED: the checkpoint at tree size 0 does not sign the empty tree's root"
            )
        return
    if newest.size > tree.size:
        raise IntegrityError(
            f"TAMPERED: {describe(store)} holds {tree.size:,} events, but a signed checkpoint "
            f"covers {newest.size:,}; events were deleted. Refusing to sign: run "
            "`glasslog verify` and restore the store from a backup",
            seq=tree.size,
        )
    read = node_reader(tree.size, _tiles_with(store, tree.partial_tiles()))
    try:
        proof = merkle.consistency_proof(newest.size, tree.size, read)
        merkle.verify_consistency(
            size1=newest.size, size2=tree.size, root1=newest.root, root2=tree.root(), proof=proof
        )
    except (ProofError, IntegrityError, NotFoundError):
        raise IntegrityError(
            f"TAMPERED: the events in {describe(store)} no longer extend the checkpoint signed "
            f"at tree size {newest.size:,}; history before it was changed. Refusing to sign: "
            "run `glasslog verify` to find the first changed event",
        ) from None


def _recorded(recorded: RecordedCheckpoint, keys: VkeyHistory, where: Path | None) -> Checkpoint:
    try:
        return keys.verify_checkpoint(recorded.note)
    except NoteError as exc:
        raise ConfigError(
            f"the checkpoint recorded in {_whose(where)} is not one this log's key signed ({exc}); "
            "it belongs to another log or was edited: restore it from a backup"
        ) from None


def _whose(where: Path | None) -> str:
    return f"the data directory {where}" if where is not None else "this writer"


def _tiles_with(store: Store, partial: list[Tile]) -> Callable[[int, int, int], bytes]:
    """Tiles of the tree being signed: the writer's own right edge, the store's full tiles."""
    edge = {(t.level, t.index): t.hashes for t in partial}

    def read(level: int, index: int, width: int) -> bytes:
        hashes = edge.get((level, index))
        if hashes is not None and len(hashes) >= width * HASH_SIZE:
            return hashes
        return store.read_tile(level, index, width)

    return read


@dataclass(frozen=True, slots=True)
class Initialised:
    """What ``glasslog init`` did."""

    signer: Signer
    created: bool
    """True when this call made the data directory's keys."""
    upgraded_from: int | None
    """The store schema version migrated from, if the store was upgraded."""
    policy_written: bool = False
    """True when this call wrote the default read policy."""


def initialise(data: Path, *, store: str | None, origin: str | None) -> Initialised:
    """Create (or check) a data directory and its store, and bind the store to the log.

    Safe to run again with the same directory and store. Refuses, before writing
    any key, a data directory whose key is not the store's log's key — including a
    new directory pointed at a store that already belongs to a log.
    """
    datadir = DataDir(data)
    had_keys = datadir.exists()
    # Private before anything is created in it: the store holds personal data and salts.
    made_dir = private_directory(datadir.path)
    spec = datadir.store_spec(store)
    try:
        opened = open_store(spec, create=True)
    except BaseException:
        if made_dir:
            _remove_empty(datadir.path)
        raise
    try:
        where = describe(opened)
        if not had_keys:
            bound = opened.identity()
            latest = opened.latest_checkpoint()
            if bound is not None or latest is not None:
                name = (
                    _origin(bound) if bound else _checkpoint_origin(latest.note if latest else "")
                )
                if made_dir:
                    _remove_empty(datadir.path)
                raise ConfigError(
                    f"{where} already holds the log {name!r}, and {data} has no key for it; "
                    "a new key would make that log fail verification for good. Run glasslog "
                    "with the --data directory created with that store, or give a new --store "
                    "to start a new log"
                )
        signer, created = datadir.init_keys(origin=origin)
        if opened.identity() is not None:
            finish_rotation(datadir, vkey_history(opened))
            signer = datadir.signer()
        keys = check_signer(opened, signer, data=data)
        recorded = datadir.recorded_checkpoint()
        if recorded is not None and opened.latest_checkpoint() is None:
            raise ConfigError(
                f"the key in {data} already signs a log kept in another store (its newest "
                f"checkpoint is recorded in {datadir.checkpoint_file}); one key signs one log, "
                "or the two would disagree for good. Give a new --data directory for a new store"
            )
        if recorded is not None:
            check_history(opened, keys, restore_tree(opened), recorded, where=data)
        bound = opened.bind_identity(keys.eras[0].vkey)
        if bound != keys.eras[0].vkey:  # another init bound it between our check and insert
            raise _another_log(where, bound, signer.vkey, data)
        written = datadir.write_default_policy(DEFAULT_POLICY)
        return Initialised(
            signer=signer,
            created=created,
            upgraded_from=opened.upgraded_from,
            policy_written=written,
        )
    finally:
        opened.close()


def _checkpoint_origin(note: str) -> str:
    return note.split("\n", 1)[0]


def describe(store: Store) -> str:
    """The store for messages: its file, or its PostgreSQL database without credentials."""
    where = getattr(store, "where", None) or getattr(store, "path", None)
    return f"the store {where}" if where is not None else "the store"


def _remove_empty(path: Path) -> None:
    """Undo our own ``mkdir`` when init refuses, leaving nothing behind."""
    try:
        for child in path.iterdir():
            if child.name.startswith("glasslog.db"):
                child.unlink()
        path.rmdir()
    except OSError:
        pass
