"""``glasslog import`` end to end: real files in, a real log out (docs/import.md)."""

from __future__ import annotations

import gzip
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from glasslog.cli import main
from glasslog.log import Log
from tests.conftest import make_event
from tests.importers.conftest import AWS_LOGS, K8S_LOG, k8s_event


def glasslog(*args: str) -> Result:
    """``glasslog ARGS`` in this process, as a user types it."""
    return CliRunner().invoke(main, list(args))


def summary(result: Result) -> dict[str, Any]:
    assert result.exit_code in (0, 2), result.output
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def search(data: Path, query: str) -> list[dict[str, Any]]:
    with Log.open(data) as log:
        return log.search(query, limit=100).events


def test_a_kubernetes_log_is_imported_and_searchable(data: Path) -> None:
    """Seven requests become seven events; the eight other stages are skipped; exit 0."""
    result = glasslog("import", "--format", "k8s-audit", str(K8S_LOG), "--data", str(data))
    assert result.exit_code == 0, result.output
    assert summary(result) == {"accepted": 7, "duplicates": 0, "skipped": 8, "rejected": []}
    [found] = search(data, "action:k8s.secrets.get actor.id:alice@example.com")
    assert found["target"]["id"] == "payments/stripe-api"
    assert found["context"]["request_id"] == k8s_event("5b2d6f5e")["auditID"]
    assert len(search(data, "service:kubernetes outcome:denied")) == 1
    assert len(search(data, "action:k8s.pods.*")) == 2


def test_a_cloudtrail_tree_is_walked_gzip_and_plain(data: Path) -> None:
    """Both regions' files are read, gzip'd or not; the digest file and the Insight event
    are left out."""
    result = glasslog("import", "--format", "cloudtrail", str(AWS_LOGS), "--data", str(data))
    assert result.exit_code == 0, result.output
    assert summary(result) == {"accepted": 7, "duplicates": 0, "skipped": 1, "rejected": []}
    assert len(search(data, "service:aws.s3")) == 2
    [login] = search(data, "action:aws.signin.consolelogin outcome:failure")
    assert login["reason"] == "Failed authentication"
    [denied] = search(data, "metadata.awsRegion:eu-west-1")
    assert denied["outcome"] == "denied"


def test_a_reimport_stores_nothing_twice_whatever_the_files_are_called(
    data: Path, tmp_path: Path
) -> None:
    """The same records again, and again renamed, gzip'd and moved: all duplicates."""
    for fmt, path in (("k8s-audit", K8S_LOG), ("cloudtrail", AWS_LOGS)):
        first = glasslog("import", "--format", fmt, str(path), "--data", str(data))
        assert summary(first)["accepted"] == 7
        again = glasslog("import", "--format", fmt, str(path), "--data", str(data))
        assert summary(again) == {"accepted": 0, "duplicates": 7,
                                  "skipped": summary(first)["skipped"], "rejected": []}  # fmt: skip
    renamed = tmp_path / "elsewhere"
    shutil.copytree(AWS_LOGS, renamed / "trail-copy")
    rotated = renamed / "audit-2026-11-29T10-30-00.000.log.gz"
    rotated.write_bytes(gzip.compress(K8S_LOG.read_bytes()))
    k8s = glasslog("import", "--format", "k8s-audit", str(rotated), "--data", str(data))
    trail = glasslog("import", "--format", "cloudtrail", str(renamed), "--data", str(data))
    assert (summary(k8s)["accepted"], summary(k8s)["duplicates"]) == (0, 7)
    assert (summary(trail)["accepted"], summary(trail)["duplicates"]) == (0, 7)
    with Log.open(data) as log:
        assert log.store.size() == 14


def test_gzip_is_recognised_by_its_bytes_not_its_name(data: Path, tmp_path: Path) -> None:
    """A gzip'd audit log named audit.log is read as gzip."""
    plain_name = tmp_path / "audit.log"
    plain_name.write_bytes(gzip.compress(K8S_LOG.read_bytes()))
    result = glasslog("import", "--format", "k8s-audit", str(plain_name), "--data", str(data))
    assert summary(result)["accepted"] == 7


def test_malformed_lines_are_reported_by_file_and_line_and_the_import_goes_on(
    data: Path, tmp_path: Path
) -> None:
    """Bad JSON, a non-object, a missing field, and an event the pipeline refuses are each
    named at their file and line, in any file; every good line is stored; exit 2."""
    good = tmp_path / "a.log"
    good.write_text(K8S_LOG.read_text())
    bad = tmp_path / "b.log"

    def secret_read(digit: str, **changes: object) -> str:
        audit_id = "-".join(digit * n for n in (8, 4, 4, 4, 12))
        return json.dumps({**k8s_event("5b2d6f5e"), "auditID": audit_id, **changes})

    lines = [
        secret_read("1"),
        '{"kind": "Event", "auditID": ',
        "[1, 2, 3]",
        "",
        secret_read("2", user={"groups": ["x"]}),
        secret_read("3", stageTimestamp="yesterday at noon"),
        secret_read("4"),
    ]
    bad.write_text("\n".join(lines) + "\n")
    result = glasslog("import", "--format", "k8s-audit", str(good), str(bad), "--data", str(data))
    assert result.exit_code == 2, result.output
    found = summary(result)
    assert (found["accepted"], found["skipped"]) == (9, 8)
    places = [(r["file"], r["line"]) for r in found["rejected"]]
    assert places == [(str(bad), 2), (str(bad), 3), (str(bad), 5), (str(bad), 6)]
    errors = [r["errors"] for r in found["rejected"]]
    assert "not valid JSON" in errors[0][0]
    assert errors[1] == ["$: expected an audit.k8s.io/v1 Event object, found array"]
    assert errors[2][0].startswith("$.user.username: required (the actor)")
    assert errors[3][0].startswith("$.time: ")  # refused by the pipeline, at its source line
    assert len(search(data, "request:44444444-4444-4444-4444-444444444444")) == 1


def test_broken_cloudtrail_files_are_reported_and_the_others_imported(
    data: Path, tmp_path: Path
) -> None:
    """A file that is not JSON, a truncated gzip file and a record without eventID are
    named (file, and record index from 0); the good files are stored."""
    tree = tmp_path / "trail"
    shutil.copytree(AWS_LOGS, tree)
    (tree / "a-not-json.json").write_text("<Error><Code>AccessDenied</Code></Error>")
    whole = gzip.compress(json.dumps({"Records": []}).encode() * 50)
    (tree / "b-truncated.json.gz").write_bytes(whole[: len(whole) // 2])
    record = json.loads(gzip.decompress(next(tree.rglob("*eu-west-1*.json.gz")).read_bytes()))
    record["Records"].append({**record["Records"][0], "eventID": None})
    (tree / "c-one-bad-record.json").write_text(json.dumps(record))
    result = glasslog("import", "--format", "cloudtrail", str(tree), "--data", str(data))
    assert result.exit_code == 2, result.output
    found = summary(result)
    assert found["accepted"] == 7 and found["duplicates"] == 1
    rejected = [(Path(r["file"]).name, r["record"]) for r in found["rejected"]]
    assert rejected == [("a-not-json.json", None), ("b-truncated.json.gz", None),
                        ("c-one-bad-record.json", 1)]  # fmt: skip
    assert "not valid JSON" in found["rejected"][0]["errors"][0]
    assert "truncated" in found["rejected"][1]["errors"][0]
    assert found["rejected"][2]["errors"][0].startswith("$.eventID: required")


def test_jsonl_files_are_ingested_with_lines_per_file(data: Path, tmp_path: Path) -> None:
    """glasslog's own JSON lines, in several files: a rejection names its file and line."""
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    first.write_text("".join(json.dumps(make_event()) + "\n" for _ in range(3)))
    second.write_text(json.dumps(make_event()) + "\n" + json.dumps({"service": "x"}) + "\n")
    result = glasslog("import", "--format", "jsonl", str(first), str(second), "--data", str(data))
    assert result.exit_code == 2
    found = summary(result)
    assert (found["accepted"], found["skipped"]) == (4, 0)
    assert [(r["file"], r["line"]) for r in found["rejected"]] == [(str(second), 2)]


def test_a_missing_or_unreadable_path_is_an_error_and_nothing_is_imported(
    data: Path, tmp_path: Path
) -> None:
    """A typo is one line on stderr and exit 1, before any file is read."""
    result = glasslog("import", "--format", "k8s-audit", str(K8S_LOG), str(tmp_path / "nope.log"),
                      "--data", str(data))  # fmt: skip
    assert result.exit_code == 1
    assert "nope.log: no such file or directory; nothing was imported" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = glasslog("import", "--format", "cloudtrail", str(empty), "--data", str(data))
    assert result.exit_code == 1
    assert "holds no *.json, *.json.gz file" in result.stderr
    with Log.open(data) as log:
        assert log.store.size() == 0


def test_service_is_refused_for_formats_that_name_their_own(data: Path) -> None:
    """--service with CloudTrail is a usage mistake, said so, not silently ignored."""
    result = glasslog("import", "--format", "cloudtrail", str(AWS_LOGS), "--service", "aws",
                      "--data", str(data))  # fmt: skip
    assert result.exit_code == 1
    assert "--service applies to --format k8s-audit only" in result.stderr


def test_a_progress_bar_shows_on_a_terminal_only(data: Path) -> None:
    """stderr on a terminal draws "importing"; stdout keeps the summary alone."""
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "glasslog", "import", "--format", "cloudtrail", str(AWS_LOGS),
         "--data", str(data)],
        stdout=subprocess.PIPE, stderr=follower, check=False, timeout=120,
    )  # fmt: skip
    os.close(follower)
    terminal = os.read(leader, 65536).decode()
    os.close(leader)
    assert proc.returncode == 0
    assert "importing" in terminal
    assert json.loads(proc.stdout)["accepted"] == 7
    piped = glasslog("import", "--format", "cloudtrail", str(AWS_LOGS), "--data", str(data))
    assert "importing" not in piped.stderr


def test_many_rejections_are_all_reported_in_order(data: Path, tmp_path: Path) -> None:
    """Rejections are streamed through temporary files, not held: 700 of them (over one
    read block) come back complete and in line order."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"service": "x"}\n' * 700)
    result = glasslog("import", "--format", "jsonl", str(path), "--data", str(data))
    found = summary(result)
    assert [r["line"] for r in found["rejected"]] == list(range(1, 701))
    assert len(result.stdout) > 1 << 16
