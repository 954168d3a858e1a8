"""``glasslog monitor`` and ``glasslog witness``: watching a log from outside it (docs/witness.md).

The monitor checks that a log only ever grows (:mod:`glasslog.monitor`); the witness
cosigns the checkpoints of logs it trusts, never two that disagree
(:mod:`glasslog.witness`). Neither needs an account on the log: they read hashes,
public keys and signed checkpoints.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from glasslog.cli import _emit, _fail, json_option
from glasslog.display import printable
from glasslog.errors import GlasslogError
from glasslog.monitor import Misbehaviour, watch

__all__ = ["monitor", "witness"]

COULD_NOT_CHECK = 2
"""The monitor's exit status when it could not check (unreachable log, bad state file),
as opposed to 1: the log misbehaved."""


@click.command()
@click.option("--url", required=True, envvar="GLASSLOG_URL", help="The log's server.")
@click.option("--vkey", "vkey", required=True,
              help="The log's verifier key you trust (obtained out of band); it must be in "
              "the key history the log publishes.")  # fmt: skip
@click.option(
    "--state",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The file keeping the last checkpoint seen (made by the first run).",
)
@json_option
def monitor(url: str, vkey: str, state: Path, as_json: bool) -> None:
    """Check that the log at --url only grew since the last run, and remember where it is.

    Exits 1 on a fork (two signed checkpoints that are not consistent) or a rollback
    (a smaller tree), writing the evidence next to --state; 2 when the log could not be
    checked (unreachable, a state file of another log); 0 otherwise.
    """
    try:
        seen = watch(url, vkey.strip(), state)
    except Misbehaviour as exc:
        if as_json:
            _emit({"status": exc.kind, "message": str(exc)}, compact=True)
        _fail(str(exc), 1)
        return
    except GlasslogError as exc:
        _fail(str(exc), COULD_NOT_CHECK)
        return
    if as_json:
        _emit(seen.to_json(), compact=True)
        return
    for line in seen.summary().splitlines():
        click.echo(printable(line))


@click.group()
def witness() -> None:
    """A minimal C2SP tlog-witness: cosign the checkpoints of logs you trust."""


_key_option = click.option(
    "--key", "key_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="The witness's private key file (created, mode 0600, when absent: give --name).",
)  # fmt: skip
_name_option = click.option(
    "--name", help="The witness's name for a new key, a schema-less URL such as "
    "witness.example/w1."
)  # fmt: skip


@witness.command("serve")
@_key_option
@_name_option
@click.option("--state", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The file of the latest checkpoint cosigned per log (mode 0600).")  # fmt: skip
@click.option("--log", "logs", multiple=True, metavar="VKEY",
              help="A log's verifier key to trust; repeatable (several per log after a key "
              "rotation).")  # fmt: skip
@click.option("--logs-file", "logs_files", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A file of log vkeys to trust, one per line (# comments).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8434, show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="PEM certificate chain: serve HTTPS.")  # fmt: skip
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="PEM private key of --tls-cert.")  # fmt: skip
def witness_serve(
    key_file: Path,
    name: str | None,
    state: Path,
    logs: tuple[str, ...],
    logs_files: tuple[Path, ...],
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) for the logs given by --log.

    Prints the witness's vkey, which each log names in its policy's [[witness]] table.
    Plain HTTP is allowed on any address: a witness receives and returns only public,
    signed data.
    """
    import uvicorn  # noqa: PLC0415 - the web stack costs every other command

    from glasslog.witness import Witness, create_app, load_cosigner, read_log_keys  # noqa: PLC0415

    if (tls_cert is None) != (tls_key is None):
        _fail("give both --tls-cert and --tls-key, or neither")
    cosigner, created = load_cosigner(key_file, name=name)
    witnessing = Witness(cosigner, read_log_keys(logs, logs_files), state)
    click.echo(f"{'created' if created else 'loaded'} witness key {key_file}", err=True)
    click.echo(f"witness vkey: {cosigner.vkey}", err=True)
    click.echo(f"trusted logs: {', '.join(witnessing.origins)}", err=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ssl = {}
    if tls_cert is not None and tls_key is not None:
        ssl = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
    sys.stderr.flush()
    uvicorn.run(create_app(witnessing), host=host, port=port, server_header=False,
                log_level="info", **ssl)  # type: ignore[arg-type]  # fmt: skip


@witness.command("vkey")
@_key_option
@_name_option
@json_option
def witness_vkey(key_file: Path, name: str | None, as_json: bool) -> None:
    """Print the witness's vkey (creating its key when absent), for the logs' policies.

    JSON: {"vkey", "created"}.
    """
    from glasslog.witness import load_cosigner  # noqa: PLC0415

    cosigner, created = load_cosigner(key_file, name=name)
    if as_json:
        _emit({"vkey": cosigner.vkey, "created": created}, compact=True)
        return
    click.echo(cosigner.vkey)
