"""The data directory: key files, permissions and the single-writer lock."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from glasslog.datadir import DataDir
from glasslog.errors import ConfigError


def test_keys_are_owner_only_and_directory_is_private(tmp_path: Path) -> None:
    """Secret files are 0600 inside a 0700 directory; the vkey is public."""
    d = DataDir(tmp_path / "log")
    d.init_keys(origin="example.com/log")
    assert stat.S_IMODE((tmp_path / "log").stat().st_mode) == 0o700
    for name in ("signing.key", "fingerprint.key"):
        assert stat.S_IMODE((tmp_path / "log" / name).stat().st_mode) == 0o600
    assert d.vkey().startswith("example.com/log+")


def test_group_readable_fingerprint_key_is_refused(tmp_path: Path) -> None:
    """A secret file others can read fails closed with the chmod to run."""
    d = DataDir(tmp_path / "log")
    d.init_keys(origin="example.com/log")
    os.chmod(tmp_path / "log" / "fingerprint.key", 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        d.fingerprint_key()


def test_corrupt_signing_key_error_does_not_echo_it(tmp_path: Path) -> None:
    """A broken key file is reported without printing its content."""
    d = DataDir(tmp_path / "log")
    d.init_keys(origin="example.com/log")
    key = tmp_path / "log" / "signing.key"
    secret = key.read_text().strip()
    key.write_text(secret[:-4] + "!!!!")
    with pytest.raises(ConfigError) as info:
        d.signer()
    assert secret[-20:-4] not in str(info.value)


def test_second_writer_waits_then_fails_clearly(tmp_path: Path) -> None:
    """While one writer holds the lock, another gets a clear error after its wait."""
    d = DataDir(tmp_path / "log")
    d.init_keys(origin="example.com/log")
    with d.writer_lock():
        pid = os.fork()
        if pid == 0:  # child: try to take the lock
            try:
                with d.writer_lock(wait=0.2):
                    os._exit(0)
            except ConfigError as exc:
                os._exit(3 if "another glasslog process is writing" in str(exc) else 4)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
