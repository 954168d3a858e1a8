"""``glasslog key``: rotate and revoke the log's signing key, and list its history.

Distinct from ``glasslog keys`` (API keys): these are the Ed25519 keys that sign
checkpoints (docs/ledger.md, "Key rotation").
"""

from __future__ import annotations

from pathlib import Path

import click

from glasslog.cli import _emit, _fail, _owner, _record, data_option, json_option, store_option
from glasslog.datadir import DataDir
from glasslog.display import printable
from glasslog.identity import vkey_history
from glasslog.signing import revoke_event, revoke_key, rotate_event, rotate_key, size_at
from glasslog.store import open_store

__all__ = ["key"]


@click.group()
def key() -> None:
    """Rotate and revoke the log's signing key (not API keys: see `glasslog keys`)."""


@key.command("rotate")
@data_option
@store_option
@json_option
def key_rotate(data: Path, store: str | None, as_json: bool) -> None:
    """Hand the log to a new signing key from the current tree size on.

    The old key signs the tree as it stands, then a rotation statement signed by both
    keys is added to the store's key history, the data directory switches to the new
    key (the old one is kept, owner-only, in DIR/retired/) and the rotation is recorded
    as a `key.rotate` event, signed by the new key. Checkpoints the old key signed
    keep verifying. A running `glasslog serve` picks the new key up before it next
    signs. JSON: {"previous", "vkey", "at_size", "archived", "keys"}.
    """
    datadir = DataDir(data)
    datadir.require()
    target = open_store(datadir.store_spec(store))
    try:
        rotation = rotate_key(datadir, target)
    finally:
        target.close()
    _record(data, store, rotate_event(rotation, _owner()))
    if as_json:
        _emit(rotation.to_json(), compact=True)
        return
    click.echo(rotation.current)
    click.echo(
        f"the log now signs with {rotation.current} from tree size {rotation.at_size}; "
        f"{rotation.previous} signed up to it and is kept in {rotation.archived}. "
        "Publish the new verifier key (and `glasslog key history`) to your verifiers",
        err=True,
    )


@key.command("revoke")
@data_option
@store_option
@click.argument("vkey")
@click.option(
    "--after-size", type=click.IntRange(0), help="Refuse its checkpoints above this tree size."
)
@click.option(
    "--from",
    "from_time",
    help="Refuse its checkpoints of trees larger than the log had at this RFC 3339 time "
    "(the events received by then).",
)
@click.option("--reason", required=True, help="Why the key is revoked (kept in the ledger).")
@json_option
def key_revoke(
    data: Path,
    store: str | None,
    vkey: str,
    after_size: int | None,
    from_time: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Mark the old signing key VKEY revoked: its later checkpoints are refused.

    Give --after-size N, or --from TIME, which maps to the tree size the log had
    reached at TIME: the number of events received by then (each event's `received`
    stamp, found by a binary search over the seqs). The revocation is signed by the
    current key, so rotate first if VKEY is the current one. Recorded as a `key.revoke`
    event. JSON: {"vkey", "revoked_after", "revoked_at"}.
    """
    if (after_size is None) == (from_time is None):
        _fail("give exactly one of --after-size N and --from TIME")
    datadir = DataDir(data)
    datadir.require()
    target = open_store(datadir.store_spec(store))
    try:
        size = after_size if after_size is not None else size_at(target, str(from_time))
        revocation = revoke_key(datadir, target, vkey, after_size=size)
    finally:
        target.close()
    _record(data, store, revoke_event(revocation, _owner(), reason))
    if as_json:
        _emit(revocation.to_json(), compact=True)
        return
    click.echo(
        f"{revocation.vkey} is revoked after tree size {revocation.after_size} "
        f"(at {revocation.time}): its checkpoints of larger trees are refused"
    )


@key.command("history")
@data_option
@store_option
@json_option
def key_history(data: Path, store: str | None, as_json: bool) -> None:
    """List the log's signing keys, oldest first, with the tree sizes each may sign.

    JSON: the history as `GET /v1/vkeys` answers it: {"origin", "keys": [{"vkey",
    "from_size", "until_size", "statement", "revoked_after", "revoked_at",
    "revocation"}]}.
    """
    datadir = DataDir(data)
    datadir.require()
    target = open_store(datadir.store_spec(store), readonly=True)
    try:
        history = vkey_history(target)
    finally:
        target.close()
    if as_json:
        _emit(history.to_json(), compact=True)
        return
    for era in history.eras:
        until = "now" if era.until_size is None else str(era.until_size)
        line = f"{era.vkey}  sizes {era.from_size}..{until}"
        if era.revoked_after is not None:
            line += f"  revoked after {era.revoked_after} (at {era.revoked_at})"
        click.echo(printable(line))
