"""``glasslog erase --subject actor.id=U --reason …`` (docs/erasure.md).

Thin: options parsed here, the work done by :mod:`glasslog.lifecycle.erasure`. The
erasure is done as the data directory's owner and recorded first in the ledger as
signed ``erasure.erase`` events, through the path every writer takes (``cli._record``).
"""

from __future__ import annotations

from pathlib import Path

import click

from glasslog.cli import (
    _emit,
    _owner,
    _policy_path,
    data_option,
    json_option,
    policy_option,
    store_option,
)
from glasslog.cli_retention import _locker, _recorder
from glasslog.datadir import DataDir
from glasslog.display import printable
from glasslog.lifecycle.erasure import erase_subject, load_personal_metadata
from glasslog.store import open_store

__all__ = ["erase"]


@click.command()
@data_option
@store_option
@policy_option
@click.option("--subject", required=True, help="The data subject, as actor.id=ID.")
@click.option("--reason", required=True, help="The request it answers (recorded in the ledger).")
@click.option("--dry-run", is_flag=True, help="Say what would be erased; change nothing.")
@json_option
def erase(
    data: Path,
    store: str | None,
    policy: Path | None,
    subject: str,
    reason: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Erase a data subject's personal fields, for good (docs/erasure.md).

    Deletes the values and salts of actor.name, actor.email, source.ip,
    source.user_agent and the metadata keys the policy's [erasure] personal_metadata
    lists, in every event whose actor.id is the subject. The leaves, the tree and every
    proof stay valid; reads show {"$erased": time}. Refused when a legal hold covers
    one of the events. Recorded first as signed erasure.erase events.

    JSON: {"subject", "dry_run", "now", "events", "fields", "paths", "held", "hold",
    "authorised_by", "scrubbed", "seconds"}.
    """
    personal = load_personal_metadata(_policy_path(data, policy))
    target = open_store(DataDir(data).store_spec(store))
    try:
        summary = erase_subject(
            target,
            subject,
            reason=reason,
            actor=_owner(),
            record=_recorder(data, store, target),
            lock=_locker(data, target),
            personal_metadata=personal,
            dry_run=dry_run,
        )
    finally:
        target.close()
    if as_json:
        _emit(summary.to_json(), compact=True)
    else:
        click.echo(printable(summary.summary()))
