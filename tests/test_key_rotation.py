"""Signing-key rotation through the CLI (``glasslog key``), on both backends: the log
verifies across a rotation, and a stolen old key, a revoked key or a forged history
cannot make a checkpoint pass."""

from __future__ import annotations

import base64
import json
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from glasslog.datadir import DataDir
from glasslog.errors import NoteError
from glasslog.event import format_time
from glasslog.identity import vkey_history
from glasslog.ledger.note import Checkpoint, Signer, sign_checkpoint, sign_note
from glasslog.ledger.vkeys import VkeyHistory, rotation_text
from glasslog.store import open_store
from tests.attacker import run_as_attacker
from tests.conftest import BACKENDS, make_event
from tests.test_cli import _jsonl, run

ORIGIN = "rotate.example/log"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store spec given with --store: a SQLite file, or a scratch PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_database")
        return url
    return str(tmp_path / "rotate.db")


def _ok(*args: str, data: Path, store: str, stdin: str | None = None) -> str:
    result = run(*args, "--store", store, data=data, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _failed(*args: str, data: Path, store: str) -> str:
    result = run(*args, "--store", store, data=data)
    assert result.returncode == 1, result.stdout
    return result.stderr


def _ingest(data: Path, store: str, n: int) -> None:
    out = _ok("ingest", "-", data=data, store=store, stdin=_jsonl([make_event() for _ in range(n)]))
    assert json.loads(out)["accepted"] == n


def _log(tmp_path: Path, store: str, n: int = 4) -> Path:
    data = tmp_path / "data"
    _ok("init", "--origin", ORIGIN, data=data, store=store)
    _ingest(data, store, n)
    return data


def _rotate(data: Path, store: str) -> dict[str, Any]:
    rotated: dict[str, Any] = json.loads(_ok("key", "rotate", "--json", data=data, store=store))
    return rotated


def _history(data: Path, store: str) -> VkeyHistory:
    return VkeyHistory.from_json(
        json.loads(_ok("key", "history", "--json", data=data, store=store))
    )


def _intact(data: Path, store: str, *extra: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_ok("verify", "--json", *extra, data=data, store=store))
    assert report["intact"] is True, report
    return report


def _forge_checkpoint(store: str, signer: Signer, size: int, root: bytes) -> None:
    """Add a checkpoint signed by ``signer``, as someone holding that key and the database."""
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root=root), signer)
    quoted = note.replace("'", "''")
    run_as_attacker(store, [f"INSERT INTO checkpoints (size, note) VALUES ({size}, '{quoted}')"])


def _root(data: Path, store: str, size: int, latest: int) -> bytes:
    proof = json.loads(_ok("proof", "consistency", str(size), str(latest), "--json",
                           data=data, store=store))  # fmt: skip
    return base64.b64decode(proof["root1"])


def test_rotate_then_verify_across_the_handover(tmp_path: Path, store: str) -> None:
    """Old and new checkpoints verify; proofs and evidence span the handover; the old key
    is archived owner-only and the rotation is an event of the ledger."""
    data = _log(tmp_path, store)
    old_vkey = DataDir(data).vkey()
    before = json.loads(_ok("get", "1", "--proof", "--json", data=data, store=store))
    rotated = _rotate(data, store)
    assert rotated["previous"] == old_vkey and rotated["at_size"] == 4
    new_vkey = rotated["vkey"]
    assert DataDir(data).vkey() == new_vkey != old_vkey
    assert DataDir(data).signer().vkey == new_vkey
    archived = Path(rotated["archived"])
    assert archived.parent == data / "retired"
    assert Signer.from_skey(archived.read_text().strip()).vkey == old_vkey
    assert stat.S_IMODE(archived.stat().st_mode) == 0o600
    assert stat.S_IMODE(archived.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "signing.key").stat().st_mode) == 0o600
    _ingest(data, store, 3)

    history = _history(data, store)
    assert [(e.vkey, e.from_size, e.until_size) for e in history.eras] == [
        (old_vkey, 0, 4), (new_vkey, 4, None),
    ]  # fmt: skip
    report = _intact(data, store)
    assert report["events"] == 8  # 4 + the key.rotate event + 3
    _intact(data, store, "--vkey", old_vkey)  # a verifier that pinned the old key
    sizes = [int(n.split("\n")[1]) for n in _checkpoint_notes(store)]
    assert 4 in sizes and max(sizes) == 8
    assert history.verify_checkpoint(_checkpoint_note(store, 4)).size == 4
    assert history.verify_checkpoint(_checkpoint_note(store, 8)).size == 8

    # Proofs spanning the handover, to the old key's checkpoint and to the new key's.
    for size in ("4", "8"):
        proof = json.loads(_ok("proof", "inclusion", "1", "--size", size, "--json",
                               data=data, store=store))  # fmt: skip
        assert proof["tree_size"] == int(size)
    consistency = json.loads(
        _ok("proof", "consistency", "4", "8", "--json", data=data, store=store)
    )
    assert consistency["size1"] == 4 and consistency["size2"] == 8

    # Evidence saved before the rotation (old key's checkpoint), and evidence now (new key's).
    saved = tmp_path / "before.json"
    saved.write_text(json.dumps(before))
    after = tmp_path / "after.json"
    after.write_text(_ok("get", "1", "--proof", "--json", data=data, store=store))
    for evidence in (saved, after):
        verified = json.loads(_ok("verify-event", str(evidence), "--json", data=data, store=store))
        assert verified["verified"] is True
    vkeys = tmp_path / "vkeys.json"
    vkeys.write_text(json.dumps(history.to_json()))
    result = run("verify-event", str(saved), "--vkeys", str(vkeys), "--vkey", new_vkey,
                 "--json", data=tmp_path / "elsewhere")  # fmt: skip
    assert json.loads(result.stdout)["verified"] is True, result.stderr

    (event,) = _search(data, store, "action:key.rotate")
    assert event["metadata"] == {"previous": old_vkey, "vkey": new_vkey, "at_size": 4}
    assert event["service"] == "glasslog" and event["category"] == "lifecycle"


def _search(data: Path, store: str, query: str) -> list[dict[str, Any]]:
    out = _ok("search", query, "--json", data=data, store=store)
    return [json.loads(line) for line in out.splitlines()]


def _checkpoint_notes(store: str) -> list[str]:
    opened = open_store(store, readonly=True)
    try:
        return [c.note for c in opened.checkpoints()]
    finally:
        opened.close()


def _checkpoint_note(store: str, size: int) -> str:
    (note,) = [n for n in _checkpoint_notes(store) if int(n.split("\n")[1]) == size]
    return note


def test_rotate_twice(tmp_path: Path, store: str) -> None:
    """Two rotations make three eras; every checkpoint of each still verifies, and
    `init` run again accepts the rotated data directory."""
    data = _log(tmp_path, store, n=2)
    first = _rotate(data, store)
    _ingest(data, store, 2)
    second = _rotate(data, store)
    assert second["previous"] == first["vkey"] and second["keys"] == 3
    _ingest(data, store, 1)
    history = _history(data, store)
    assert [(e.from_size, e.until_size) for e in history.eras] == [(0, 2), (2, 5), (5, None)]
    assert _intact(data, store)["events"] == 7
    for note in _checkpoint_notes(store):
        history.verify_checkpoint(note)
    assert len(list((data / "retired").iterdir())) == 2
    _ok("init", data=data, store=store)  # init again: the rotated store is still this log's
    assert _intact(data, store)["events"] == 7


def test_a_checkpoint_forged_with_the_old_key_after_rotation_is_refused(
    tmp_path: Path, store: str
) -> None:
    """Someone holding the retired key signs a checkpoint past its handover (with the
    true root, even): verify says TAMPERED and names the key's era."""
    data = _log(tmp_path, store, n=3)
    rotated = _rotate(data, store)
    _ingest(data, store, 4)  # sizes 3 (old key), then the new key's
    old = Signer.from_skey(Path(rotated["archived"]).read_text().strip())
    _forge_checkpoint(store, old, 6, _root(data, store, 6, 8))
    error = _failed("verify", data=data, store=store)
    assert "TAMPERED" in error and "checkpoint at size 6" in error
    assert "signs only sizes 0 to 3" in error


def test_revocation_refuses_the_revoked_keys_later_checkpoints(tmp_path: Path, store: str) -> None:
    """Revoking the old key from a time maps that time to the tree size reached then; its
    later checkpoints are no longer trusted (verify says so, and checks their roots), and
    one the thief signs into the store for another tree fails verify."""
    data = _log(tmp_path, store, n=3)
    time.sleep(0.01)
    leaked = format_time(datetime.now(UTC))
    time.sleep(0.01)
    _ingest(data, store, 3)  # the old key signs size 6: after the leak
    rotated = _rotate(data, store)
    _ingest(data, store, 1)
    error = _failed("key", "revoke", rotated["vkey"], "--after-size", "1", "--reason", "x",
                    data=data, store=store)  # fmt: skip
    assert "is the current key; rotate first" in error
    out = _ok("key", "revoke", rotated["previous"], "--from", leaked, "--reason", "key leaked",
              "--json", data=data, store=store)  # fmt: skip
    assert json.loads(out)["revoked_after"] == 3
    history = _history(data, store)
    assert history.eras[0].revoked_after == 3 and history.eras[0].revocation is not None
    assert history.verify_checkpoint(_checkpoint_note(store, 3)).size == 3
    with pytest.raises(NoteError, match="revoked after tree size 3"):
        history.verify_checkpoint(_checkpoint_note(store, 6))
    report = _ok("verify", data=data, store=store)
    assert "1 checkpoint signed by a revoked key (no longer trusted" in report
    (event,) = _search(data, store, "action:key.revoke")
    assert event["reason"] == "key leaked"
    thief = Signer.from_skey(Path(rotated["archived"]).read_text().strip())
    _forge_checkpoint(store, thief, 5, _root(data, store, 3, 7))  # the root of another size
    error = _failed("verify", data=data, store=store)
    assert "TAMPERED" in error and "size 5" in error


def test_a_forged_history_is_refused(tmp_path: Path, store: str) -> None:
    """A history row edited to a statement only the new key signed, or a new row handing
    the log to a thief's key, is refused by verify, by `key history` and by writers."""
    data = _log(tmp_path, store, n=2)
    rotated = _rotate(data, store)
    _ingest(data, store, 1)
    thief = Signer.generate(name=ORIGIN)
    opened = open_store(store, readonly=True)
    try:
        history = vkey_history(opened)
        (row,) = opened.vkey_records()
    finally:
        opened.close()
    new = Signer.from_skey((data / "signing.key").read_text().strip())
    assert new.vkey == rotated["vkey"]
    one_key = history.to_json()
    one_key["keys"][1]["statement"] = sign_note(
        rotation_text(ORIGIN, 2, rotated["previous"], new.vkey), new
    )
    edited = json.dumps(one_key).replace("'", "''")
    run_as_attacker(store, [f"UPDATE meta SET value = '{edited}' WHERE key = 'vkeys.000001'"])
    for command in (("verify",), ("key", "history")):
        error = _failed(*command, data=data, store=store)
        assert "is not signed by" in error, error
    assert "is not signed by" in _failed("checkpoint", "--json", data=data, store=store)
    original = row.replace("'", "''")
    run_as_attacker(store, [f"UPDATE meta SET value = '{original}' WHERE key = 'vkeys.000001'"])
    _intact(data, store)

    taken = history.to_json()
    taken["keys"][1]["until_size"] = 3
    text = rotation_text(ORIGIN, 3, new.vkey, thief.vkey)
    taken["keys"].append({"vkey": thief.vkey, "from_size": 3, "until_size": None,
                          "statement": sign_note(text, thief)})  # fmt: skip
    forged = json.dumps(taken).replace("'", "''")
    run_as_attacker(store, [f"INSERT INTO meta (key, value) VALUES ('vkeys.000002', '{forged}')"])
    error = _failed("verify", data=data, store=store)
    assert "version 2 of the key history" in error and "is not signed by" in error
    result = run("ingest", "-", "--store", store, data=data, stdin=_jsonl([make_event()]))
    assert result.returncode != 0 and "is not signed by" in result.stderr


def test_an_interrupted_rotation_is_finished_by_the_next_writer(tmp_path: Path, store: str) -> None:
    """A crash after the store recorded the rotation but before the data directory
    switched keys leaves the staged key; the next writer switches to it and signs."""
    data = _log(tmp_path, store, n=2)
    datadir = DataDir(data)
    old, new = datadir.signer(), Signer.generate(name=ORIGIN)
    opened = open_store(store)
    try:
        rotated = vkey_history(opened).rotate(old, new, at_size=2)
        datadir.stage_key(new)
        opened.add_vkey_record(1, json.dumps(rotated.to_json()))
    finally:
        opened.close()
    assert datadir.signer().vkey == old.vkey  # the crash: not switched
    _ingest(data, store, 2)
    assert datadir.signer().vkey == new.vkey == datadir.vkey()
    assert datadir.staged_signer() is None
    assert _intact(data, store)["events"] == 4
    assert _history(data, store).verify_checkpoint(_checkpoint_note(store, 4)).size == 4


def test_a_data_directory_left_with_the_old_key_may_not_sign(tmp_path: Path, store: str) -> None:
    """A copy of the data directory made before the rotation holds a retired key: its
    writers refuse to sign and say which key is current."""
    data = _log(tmp_path, store, n=2)
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    for name in ("signing.key", "fingerprint.key", "log.vkey"):
        (copy / name).write_bytes((data / name).read_bytes())
        (copy / name).chmod(0o600)
    rotated = _rotate(data, store)
    result = run("ingest", "-", "--store", store, data=copy, stdin=_jsonl([make_event()]))
    assert result.returncode != 0
    assert "was retired at tree size 2" in result.stderr
    assert rotated["vkey"] in result.stderr
    assert _intact(data, store)["events"] == 3
