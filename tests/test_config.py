"""Tests for glasslog.config: glasslog.toml is read strictly, and ingest applies its [scrub]."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from glasslog.config import CONFIG_NAME, Config, load
from glasslog.datadir import DataDir
from glasslog.errors import ConfigError
from glasslog.ingest.scrub import ScrubConfig, ScrubRule
from glasslog.testing import temporary_log

ROOT = Path(__file__).parents[1]

EXAMPLE = """
[scrub]
sensitive_keys = ["ssn", "national-id"]

[[scrub.rules]]
kind = "employee_badge"
pattern = "EMP-[0-9]{6}"
action = "redact"

[[scrub.rules]]
kind = "pin"
pattern = "pin (?P<secret>[0-9]{4})"

[scrub.actions]
card_number = "redact"
national_id = "fingerprint"
"""


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / CONFIG_NAME
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    """Without glasslog.toml every setting has its default."""
    assert load(tmp_path / CONFIG_NAME) == Config()
    assert DataDir(tmp_path).config() == Config()


def test_scrub_section_is_read(tmp_path: Path) -> None:
    """[scrub] gives extra key names, rules with their actions, and actions per kind."""
    config = load(write(tmp_path, EXAMPLE))
    assert config.scrub == ScrubConfig(
        sensitive_keys=("ssn", "national-id"),
        rules=(
            ScrubRule("employee_badge", "EMP-[0-9]{6}", "redact"),
            ScrubRule("pin", "pin (?P<secret>[0-9]{4})", "fingerprint"),
        ),
        actions=(("card_number", "redact"), ("national_id", "fingerprint")),
    )
    assert DataDir(tmp_path).config() == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\nport = 5\n",
            r"unknown section \[server\]; the sections are: \[scrub\], \[ingest\]",
        ),
        ("scrub = 1\n", r"scrub: expected a table, got an integer"),
        (
            "[scrub]\nkeys = ['ssn']\n",
            r"scrub\.keys: unknown key; the keys here are: actions, rules, sensitive_keys",
        ),
        (
            "[scrub]\nsensitive_keys = 'ssn'\n",
            r"scrub\.sensitive_keys: expected an array of strings, got a string",
        ),
        (
            "[scrub]\nsensitive_keys = ['ssn', 3]\n",
            r"scrub\.sensitive_keys\[1\]: expected a string, got an integer",
        ),
        (
            "[scrub]\nsensitive_keys = ['--']\n",
            r"scrub: sensitive key '--' has no letters or digits",
        ),
        ("[[scrub.rules]]\npattern = 'EMP'\n", r"scrub\.rules\[0\]\.kind: is required"),
        ("[[scrub.rules]]\nkind = 'b'\n", r"scrub\.rules\[0\]\.pattern: is required"),
        (
            "[[scrub.rules]]\nkind = 'b'\npattern = 7\n",
            r"scrub\.rules\[0\]\.pattern: expected a string, got an integer",
        ),
        (
            "[[scrub.rules]]\nkind = 'b'\npattern = 'x'\nacton = 'redact'\n",
            r"scrub\.rules\[0\]\.acton: unknown key",
        ),
        (
            "[[scrub.rules]]\nkind = 'b'\npattern = 'EMP-[0-9'\n",
            r"scrub\.rules\[0\]: pattern 'EMP-\[0-9' of 'b' is not a valid regular expression",
        ),
        (
            "[[scrub.rules]]\nkind = 'b'\npattern = 'x?'\n",
            r"scrub\.rules\[0\]: .* matches the empty string",
        ),
        (
            "[[scrub.rules]]\nkind = 'Bad Kind'\npattern = 'x'\n",
            r"scrub\.rules\[0\]: kind 'Bad Kind' must be lowercase",
        ),
        (
            "[[scrub.rules]]\nkind = 'b'\npattern = 'x'\naction = 'hide'\n",
            r"scrub\.rules\[0\]: action must be one of 'redact', 'fingerprint', got 'hide'",
        ),
        (
            "[[scrub.rules]]\nkind = 'b'\npattern = 'x'\naction = ''\n",
            r"scrub\.rules\[0\]\.action: expected 'redact' or 'fingerprint'",
        ),
        ("[scrub]\nrules = 'x'\n", r"scrub\.rules: expected an array of tables, got a string"),
        ("[scrub]\nrules = [1]\n", r"scrub\.rules\[0\]: expected a table, got an integer"),
        (
            "[scrub.actions]\ncards = 'redact'\n",
            r"scrub: unknown kind 'cards' in actions; see docs/secrets\.md",
        ),
        (
            "[scrub.actions]\ncard_number = true\n",
            r"scrub\.actions\.card_number: expected a string, got a boolean",
        ),
        ("[scrub.actions]\ncard_number = 'hide'\n", r"scrub: action must be one of"),
        ("[scrub\n", r"not valid TOML: .*line 1"),
    ],
)
def test_bad_file_is_refused_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    """Unknown sections or keys, wrong types and bad patterns are errors naming file and key."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": " + message):
        load(path)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    """A file that is not UTF-8 is refused with a clear message."""
    path = tmp_path / CONFIG_NAME
    path.write_bytes(b"[scrub]\nsensitive_keys = ['\xff']\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text; save it as UTF-8"):
        load(path)


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_file_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """Other users must not change what is scrubbed: a group- or world-writable file fails."""
    path = write(tmp_path, EXAMPLE, mode)
    with pytest.raises(
        ConfigError, match=rf"writable by other users \(mode {mode:o}\).*chmod go-w"
    ):
        load(path)


def test_temporary_log_applies_the_config(tmp_path: Path) -> None:
    """temporary_log(config=…) scrubs with the file's rules, so users can test them."""
    config = load(write(tmp_path, EXAMPLE))
    event = {
        "service": "hr",
        "action": "badge.scan",
        "actor": {"id": "u1"},
        "reason": "badge EMP-123456, pin 4821",
        "metadata": {"customer_ssn": "078-05-1120"},
    }
    with temporary_log(config=config) as log:
        (receipt,) = log.submit([event])
        stored = json.loads(log.log.find(str(receipt.seq)).body)
    assert re.fullmatch(
        r"badge \[REDACTED:employee_badge\], pin \[REDACTED:pin:[0-9a-f]{16}\]", stored["reason"]
    )
    assert stored["metadata"]["customer_ssn"].startswith("[REDACTED:ssn:")


def _docs_block(language: str) -> str:
    text = (ROOT / "docs" / "secrets.md").read_text(encoding="utf-8")
    match = re.search(rf"```{language}\n(.*?)```", text, re.S)
    assert match is not None
    return match.group(1)


def test_docs_example_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TOML and Python examples in docs/secrets.md load and run as written."""
    write(tmp_path, _docs_block("toml"))
    monkeypatch.chdir(tmp_path)
    exec(compile(_docs_block("python"), "docs/secrets.md", "exec"), {})


def glasslog(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "glasslog", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ingest_scrubs_with_the_data_directory_config(tmp_path: Path) -> None:
    """``glasslog ingest`` reads glasslog.toml beside the keys and applies its [scrub] table."""
    data = tmp_path / "data"
    assert glasslog("init", "--data", data).returncode == 0
    write(data, EXAMPLE)
    events = tmp_path / "events.jsonl"
    event = {
        "service": "hr",
        "action": "badge.scan",
        "actor": {"id": "u1"},
        "reason": "badge EMP-123456 paid with 4111 1111 1111 1111",
        "metadata": {"national_id": "X1"},
    }
    events.write_text(json.dumps(event) + "\n", encoding="utf-8")
    result = glasslog("ingest", events, "--data", data)
    assert result.returncode == 0, result.stderr
    stored = json.loads(glasslog("get", "0", "--data", data).stdout)
    assert stored["reason"] == "badge [REDACTED:employee_badge] paid with [REDACTED:card_number]"
    assert re.fullmatch(r"\[REDACTED:national_id:[0-9a-f]{16}\]", stored["metadata"]["national_id"])


def test_ingest_with_a_bad_config_fails_cleanly(tmp_path: Path) -> None:
    """A bad glasslog.toml stops ingest with one line naming file and key, and stores nothing."""
    data = tmp_path / "data"
    assert glasslog("init", "--data", data).returncode == 0
    path = write(data, "[[scrub.rules]]\nkind = 'b'\npattern = 'EMP-[0-9'\n")
    events = tmp_path / "events.jsonl"
    events.write_text('{"service": "s", "action": "a.b", "actor": {"id": "u"}}\n', encoding="utf-8")
    result = glasslog("ingest", events, "--data", data)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"glasslog: error: {path}: scrub.rules[0]: pattern 'EMP-[0-9' of 'b' is not a valid "
        "regular expression: unterminated character set at position 4"
    ]
    assert glasslog("get", "0", "--data", data).returncode != 0
