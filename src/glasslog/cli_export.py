"""``glasslog export QUERY -o FILE`` and ``glasslog verify FILE`` (docs/verify.md).

Thin: options parsed here, the work done by :mod:`glasslog.bundle`. An export as the
owner (no ``--key``) holds every field in clear; with ``--key`` it holds what that
principal may see, and is one audited read. Either way it is recorded in the ledger
as an ``export.create`` lifecycle event once the bundle is written.
"""

from __future__ import annotations

from pathlib import Path

import click

from glasslog.bundle import export_event, principal_json, verify_bundle, write_bundle
from glasslog.cli import (
    _emit,
    _fail,
    _owner,
    _reading,
    _record,
    data_option,
    json_option,
    key_option,
    policy_option,
    store_option,
)
from glasslog.datadir import DataDir
from glasslog.display import printable
from glasslog.errors import IntegrityError
from glasslog.identity import vkey_history
from glasslog.log import Log

__all__ = ["export", "verify_bundle_file"]


@click.command()
@data_option
@store_option
@click.argument("query")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The bundle to write (a .tar.gz; replaced if it exists).",
)
@click.option("--comment", default="", help="Free text for the manifest (not signed).")
@key_option
@policy_option
@json_option
def export(
    data: Path,
    store: str | None,
    query: str,
    output: Path,
    comment: str,
    key: str | None,
    policy: Path | None,
    as_json: bool,
) -> None:
    """Write the events matching QUERY to a bundle anyone can verify offline.

    Each event is evidence (docs/access.md) with its inclusion proof to one signed
    checkpoint; the bundle also holds that checkpoint, the log's key history and a
    manifest signed by the log's key. Check it with `glasslog verify BUNDLE --vkey
    VKEY`. With --key, the events are as that principal may see them (its role needs
    `export`) and the export is audited. JSON: {"path", "events", "tree_size",
    "digest", "bytes"}.
    """
    datadir = DataDir(data)
    datadir.require()
    with Log.open(data, store=store) as log, _reading(log, data, store, key, policy) as reads:
        reader = None if isinstance(reads, Log) else reads
        who = principal_json(None if reader is None else reader.principal, _owner())
        written = write_bundle(
            output,
            log=log,
            reader=reader,
            query=query,
            principal=who,
            history=vkey_history(log.store),
            signer=datadir.signer(),
            comment=comment,
        )
    _record(data, store, export_event(written, query=query, who=who))
    if as_json:
        _emit(
            {
                "path": str(written.path),
                "events": written.events,
                "tree_size": written.tree_size,
                "digest": written.digest,
                "bytes": written.bytes,
            },
            compact=True,
        )
    else:
        click.echo(
            f"wrote {printable(str(written.path))}: {written.events:,} events proven to the "
            f"checkpoint of tree size {written.tree_size:,} ({written.bytes:,} bytes)"
        )


def verify_bundle_file(path: Path, vkey: str | None, as_json: bool, *, workers: int = 1) -> None:
    """``glasslog verify BUNDLE [--vkey VKEY]``: check a bundle offline and say what it proves.

    JSON: {"verified": true, "events", "tree_size", "origin", "query", "principal",
    "created", "comment", "signed_by", "trusted"}, or {"verified": false, "error"}
    (exit 1).
    """
    try:
        report = verify_bundle(path.read_bytes(), trusted=vkey, workers=workers)
    except OSError as exc:
        _fail(f"cannot read the bundle {path}: {exc.strerror}")
        return
    except IntegrityError as exc:
        if as_json:
            _emit({"verified": False, "error": str(exc)}, compact=True)
        _fail(f"TAMPERED: {exc}")
        return
    if as_json:
        _emit(
            {
                "verified": True,
                "events": report.events,
                "tree_size": report.tree_size,
                "origin": report.origin,
                "query": report.query,
                "principal": report.principal,
                "created": report.created,
                "comment": report.comment,
                "signed_by": report.signed_by,
                "trusted": report.trusted,
            },
            compact=True,
        )
    else:
        for line in report.summary().splitlines():
            click.echo(printable(line))
