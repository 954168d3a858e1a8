"""``glasslog export`` and ``glasslog verify BUNDLE``, through the real command line on
each backend: the round trip, a principal's masked view, the standalone verifier of
docs/verify.md, a rotated key history, and erased fields passing through."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from glasslog.bundle import set_comment
from glasslog.datadir import DataDir
from glasslog.log import Log
from tests.conftest import BACKENDS, make_event, scratch_database
from tests.lifecycle.conftest import Data as LifecycleData
from tests.server.conftest import POLICY as SITE_POLICY
from tests.server.conftest import make_site

DOC = Path(__file__).resolve().parents[1] / "docs" / "verify.md"

POLICY = SITE_POLICY.replace(
    'permissions = ["search", "get", "aggregate", "trace", "proof", "tail"]',
    'permissions = ["search", "get", "export"]',  # dev: masks /actor/email, hides /source/ip
).replace('services = ["payments", "billing-*"]', 'services = ["*"]')  # writer: any service


@dataclass
class Data(LifecycleData):
    """A data directory with keys for each role of :data:`POLICY`, and its store."""

    keys: dict[str, str]

    def vkey(self) -> str:
        """The data directory's current verifier key (as `glasslog vkey` prints it)."""
        return DataDir(self.path).vkey()

    def search(self, query: str) -> list[dict[str, Any]]:
        with Log.open(self.path, store=self.store) as log:
            return log.search(query, limit=100).events


def _data(root: Path, store: str | None) -> Data:
    site = make_site(root, store, POLICY)
    return Data(site.data, store, site.keys)


@pytest.fixture(params=BACKENDS)
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Data]:
    if request.param == "sqlite":
        yield _data(tmp_path, None)
        return
    with scratch_database() as url:
        yield _data(tmp_path, url)


@pytest.fixture
def sqlite_data(tmp_path: Path) -> Data:
    return _data(tmp_path, None)


def _events(n: int) -> list[dict[str, Any]]:
    return [make_event(service="payments" if i % 4 else "billing") for i in range(n)]


def _verify(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``glasslog verify BUNDLE ARGS`` (no data directory needed: it is offline)."""
    return subprocess.run(
        [sys.executable, "-m", "glasslog", "verify", str(bundle), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _contents(bundle: Path) -> bytes:
    """Every byte of the bundle's tar stream, decompressed."""
    return gzip.decompress(bundle.read_bytes())


def test_export_round_trip(data: Data, tmp_path: Path) -> None:
    """The owner exports a query, the bundle verifies offline against the log's key, and
    the export is recorded in the ledger as export.create."""
    data.ingest(_events(24))
    bundle = tmp_path / "b.tar.gz"
    out = json.loads(
        data.ok("export", "service:payments", "-o", str(bundle), "--comment", "INC-42", "--json")
    )
    assert out["events"] == 18 and bundle.stat().st_size == out["bytes"]

    done = _verify(bundle, "--vkey", data.vkey(), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] and report["events"] == 18 and report["comment"] == "INC-42"
    assert report["trusted"] == data.vkey() and report["principal"]["id"].startswith("owner:")

    plain = _verify(bundle)
    assert plain.returncode == 0 and "proves consistency, not origin" in plain.stdout

    (created,) = data.search("action:export.create")
    assert created["category"] == "lifecycle" and created["target"]["id"] == out["digest"]
    assert created["metadata"]["events"] == 18
    assert json.loads(data.ok("verify", "--json"))["intact"]


def test_a_tampered_bundle_fails_on_the_command_line(sqlite_data: Data, tmp_path: Path) -> None:
    """`glasslog verify` says TAMPERED and exits 1 for a changed byte; a changed comment
    still verifies."""
    sqlite_data.ingest(_events(8))
    bundle = tmp_path / "b.tar.gz"
    sqlite_data.ok("export", "", "-o", str(bundle))
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    done = _verify(bad, "--vkey", sqlite_data.vkey())
    assert done.returncode == 1 and "TAMPERED" in done.stderr
    recommented = tmp_path / "recommented.tar.gz"
    recommented.write_bytes(set_comment(bundle.read_bytes(), "seen by the auditor"))
    done = _verify(recommented, "--vkey", sqlite_data.vkey())
    assert done.returncode == 0 and "seen by the auditor" in done.stdout


def test_a_masked_export_leaves_the_values_out_and_verifies(data: Data, tmp_path: Path) -> None:
    """With --key of a masking role, the bundle holds only its scope, no masked or hidden
    value, still verifies, and the export is an audited read."""
    events = _events(12)
    data.ingest(events)
    bundle = tmp_path / "dev.tar.gz"
    out = json.loads(data.ok("export", "", "-o", str(bundle), "--key", data.keys["dev"], "--json"))
    assert out["events"] == 9  # payments only: the role's scope
    raw = _contents(bundle)
    for event in events:
        assert event["actor"]["email"].encode() not in raw
    assert b"192.0.2.10" not in raw
    assert b"billing" not in raw.split(b"events.jsonl", 1)[1]

    done = _verify(bundle, "--vkey", data.vkey(), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["principal"]["roles"] == ["dev"]

    (audit,) = data.search("action:audit.read service:glasslog")
    assert audit["metadata"]["operation"] == "export" and audit["metadata"]["results"] == 9
    (created,) = data.search("action:export.create")
    assert created["actor"]["id"].startswith("key:")


def test_a_role_without_export_is_refused(sqlite_data: Data, tmp_path: Path) -> None:
    """A key whose role lacks `export` writes no bundle, and the refusal is audited."""
    sqlite_data.ingest(_events(4))
    done = sqlite_data.run("export", "", "-o", str(tmp_path / "x.tar.gz"), "--key",
                           sqlite_data.keys["nothing"])  # fmt: skip
    assert done.returncode != 0 and "may not export" in done.stderr
    assert not (tmp_path / "x.tar.gz").exists()
    (audit,) = sqlite_data.search("action:audit.read service:glasslog")
    assert audit["outcome"] == "denied"


def _standalone(tmp_path: Path) -> Path:
    """The verifier script of docs/verify.md, saved as a file."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"```python\n(# verify_bundle\.py.*?)```", text, re.S)
    assert match is not None
    code = match.group(1)
    assert len(code.splitlines()) <= 200
    assert set(re.findall(r"^(?:from|import) (\w+)", code, re.M)) <= {
        "base64", "gzip", "hashlib", "io", "json", "struct", "sys", "tarfile", "zlib",
        "cryptography",
    }  # fmt: skip
    script = tmp_path / "verify_bundle.py"
    script.write_text(code, encoding="utf-8")
    return script


def test_the_standalone_verifier_of_the_docs(sqlite_data: Data, tmp_path: Path) -> None:
    """The script in docs/verify.md accepts a good bundle (masked fields included) and
    refuses a tampered one, using only the standard library and cryptography."""
    sqlite_data.ingest(
        [*_events(10), make_event(metadata={"ratio": 0.1, "big": 1e21, "tiny": 1.5e-7, "x": "é"})]
    )
    script = _standalone(tmp_path)
    vkey = sqlite_data.vkey()
    for name, key in (("owner", None), ("dev", sqlite_data.keys["dev"])):
        bundle = tmp_path / f"{name}.tar.gz"
        sqlite_data.ok("export", "", "-o", str(bundle), *(["--key", key] if key else []))
        run = [sys.executable, "-I", str(script), str(bundle)]
        good = subprocess.run([*run, vkey], capture_output=True, text=True, check=False)
        assert good.returncode == 0 and good.stdout.startswith("OK: "), good.stderr
        plain = subprocess.run(run, capture_output=True, text=True, check=False)
        assert "consistency, not origin" in plain.stdout

        data = bytearray(bundle.read_bytes())
        for at in (5, 40, len(data) // 3, len(data) - 3):
            changed = bytearray(data)
            changed[at] ^= 0x04
            bundle.write_bytes(bytes(changed))
            bad = subprocess.run([*run, vkey], capture_output=True, text=True, check=False)
            assert bad.returncode == 1 and "FAILED" in bad.stderr, (at, bad.stdout)
        bundle.write_bytes(set_comment(bytes(data), "a new comment"))
        again = subprocess.run([*run, vkey], capture_output=True, text=True, check=False)
        assert again.returncode == 0 and "a new comment" in again.stdout


def test_bundles_across_a_key_rotation(data: Data, tmp_path: Path) -> None:
    """After `glasslog key rotate`, a bundle carries both keys: it verifies against the
    old key and the new one, and not against a stranger's."""
    data.ingest(_events(6))
    old = data.vkey()
    rotated = json.loads(data.ok("key", "rotate", "--json"))
    data.ingest(_events(6))
    bundle = tmp_path / "r.tar.gz"
    data.ok("export", "", "-o", str(bundle))
    vkeys = json.loads(dict(_members(bundle))["vkeys.json"])
    assert [k["vkey"] for k in vkeys["keys"]] == [old, rotated["vkey"]]
    for trusted in (old, rotated["vkey"]):
        done = _verify(bundle, "--vkey", trusted)
        assert done.returncode == 0, done.stderr
    stranger = make_site(tmp_path / "other", None, POLICY)
    other = Data(stranger.data, None, stranger.keys).vkey()
    done = _verify(bundle, "--vkey", other)
    assert done.returncode == 1 and "TAMPERED" in done.stderr


def _members(bundle: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(_contents(bundle)), mode="r:") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def test_erased_fields_pass_through(sqlite_data: Data, tmp_path: Path) -> None:
    """An erased field is in the bundle as its commitment with the evidence's erased
    map, its value nowhere, and the bundle verifies."""
    victim = make_event(actor={"id": "u-erase", "type": "user", "email": "gone@example.org"})
    sqlite_data.ingest([victim, *_events(4)])
    sqlite_data.ok("erase", "--subject", "actor.id=u-erase", "--reason", "GDPR art. 17")
    bundle = tmp_path / "e.tar.gz"
    sqlite_data.ok("export", "actor.id:u-erase", "-o", str(bundle))
    raw = _contents(bundle)
    assert b"gone@example.org" not in raw
    evidence = json.loads(dict(_members(bundle))["events.jsonl"].splitlines()[0])
    assert "/actor/email" in evidence["erased"]
    assert set(evidence["event"]["actor"]["email"]) == {"$commit"}
    done = _verify(bundle, "--vkey", sqlite_data.vkey())
    assert done.returncode == 0, done.stderr
    script = _standalone(tmp_path)
    good = subprocess.run([sys.executable, "-I", str(script), str(bundle), sqlite_data.vkey()],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert good.returncode == 0, good.stderr
