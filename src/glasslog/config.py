"""A log's configuration file: ``glasslog.toml`` in the data directory, read with tomllib.

The file is optional; without it every setting has its default. It holds settings,
never secrets (keys live in their own 0600 files), but it decides what is scrubbed,
so it is refused when other users may write to it. Validation is strict: an unknown
section or key, or a value of the wrong type, is an error that names the file and
the key — a misspelt setting must not be silently ignored.

Sections (each documented in the page named)::

    [scrub]                      docs/secrets.md
    sensitive_keys = ["ssn"]     extra metadata key names holding secrets
    [[scrub.rules]]              extra value patterns
    kind = "employee_badge"      [a-z0-9_]+, shown as [REDACTED:employee_badge]
    pattern = "EMP-[0-9]{6}"     a Python regular expression, compiled at load
    action = "redact"            or "fingerprint" (the default)
    [scrub.actions]              per built-in kind: "redact" or "fingerprint"
    card_number = "redact"
    [ingest]                     docs/events.md
    max_line_bytes = 1048576     longest input line read; longer ones are skipped unread
    [ledger]                     docs/ledger.md
    commit = ["/context/host"]   extra fields committed (maskable by a policy), JSON Pointers

Adding a section: a field on :class:`Config` and a function that turns the
section's :class:`_Table` into that field's value, both named after the section,
registered in ``_SECTIONS``. ``_Table`` does the type checks and the unknown-key
errors, so a section's function only says what it expects.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from glasslog.errors import ConfigError
from glasslog.ingest.scrub import Action, ScrubConfig, ScrubRule
from glasslog.ledger.commit import DEFAULT_SENSITIVE, parse_pointer, show_pointer
from glasslog.ledger.commit import Path as FieldPath

__all__ = ["CONFIG_NAME", "Config", "IngestConfig", "LedgerConfig", "load"]

CONFIG_NAME = "glasslog.toml"

MIN_LINE_BYTES = 1024
MAX_LINE_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """``[ingest]``: how ``glasslog ingest`` reads its input."""

    max_line_bytes: int = 1 << 20
    """The longest line read, in bytes before its newline (after gzip decompression).
    An event is at most 64 KiB as canonical JSON, so 1 MiB leaves room for whitespace
    and escapes while a huge line is skipped without being held in memory."""


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """``[ledger]``: what goes into leaves as salted commitments besides the defaults."""

    commit: tuple[FieldPath, ...] = ()
    """Extra committed fields (one or two keys deep), for events ingested from now on.
    A read policy may mask or hide only committed fields (docs/access.md)."""


@dataclass(frozen=True, slots=True)
class Config:
    """Every section of ``glasslog.toml``, each with its defaults when absent."""

    scrub: ScrubConfig = field(default_factory=ScrubConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)


class _Table:
    """One TOML table being read: typed getters that name the file and key in every error."""

    def __init__(self, data: dict[str, Any], name: str, file: Path) -> None:
        self._data = data
        self._name = name
        self._file = file
        self._read: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self._name}.{key}" if self._name else key

    def error(self, key: str, message: str) -> ConfigError:
        """An error about ``key`` of this table, prefixed with the file and the key's path."""
        return ConfigError(f"{self._file}: {self._where(key)}: {message}")

    def invalid(self, problem: ConfigError) -> ConfigError:
        """``problem`` (found by the value's own validation) placed at this table."""
        return ConfigError(f"{self._file}: {self._name}: {problem}")

    def _get(self, key: str, kind: type, noun: str) -> Any:
        self._read.add(key)
        value = self._data.get(key)
        if value is not None and not isinstance(value, kind):
            raise self.error(key, f"expected {noun}, got {_toml_type(value)}")
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        value: str | None = self._get(key, str, "a string")
        if value is None and required:
            raise self.error(key, "is required")
        return value

    def integer(self, key: str, *, low: int, high: int) -> int | None:
        """An integer from ``low`` to ``high`` (a TOML boolean is not one)."""
        self._read.add(key)
        value = self._data.get(key)
        if value is None:
            return None
        if type(value) is not int:
            raise self.error(key, f"expected an integer, got {_toml_type(value)}")
        if not low <= value <= high:
            raise self.error(key, f"must be from {low:,} to {high:,}, got {value:,}")
        return value

    def strings(self, key: str) -> list[str]:
        values: list[Any] = self._get(key, list, "an array of strings") or []
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(f"{key}[{index}]", f"expected a string, got {_toml_type(value)}")
        return values

    def table(self, key: str) -> _Table:
        data: dict[str, Any] = self._get(key, dict, "a table") or {}
        return _Table(data, self._where(key), self._file)

    def tables(self, key: str) -> list[_Table]:
        """An array of tables (``[[name.key]]``)."""
        values: list[Any] = self._get(key, list, "an array of tables") or []
        tables = []
        for index, value in enumerate(values):
            if not isinstance(value, dict):
                raise self.error(f"{key}[{index}]", f"expected a table, got {_toml_type(value)}")
            tables.append(_Table(value, f"{self._where(key)}[{index}]", self._file))
        return tables

    def items(self) -> list[tuple[str, Any]]:
        """Every key of a table whose keys are data (such as kind names), all marked read."""
        self._read.update(self._data)
        return list(self._data.items())

    def done(self) -> None:
        """Refuse the keys no getter asked for: a misspelt setting must not pass silently."""
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "none"
            raise self.error(unknown[0], f"unknown key; the keys here are: {known}")


_TOML_TYPES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _toml_type(value: object) -> str:
    return _TOML_TYPES.get(type(value), f"a {type(value).__name__}")  # or a date, a time


def _scrub(table: _Table) -> ScrubConfig:
    """``[scrub]``: extra sensitive key names, extra patterns, and actions per kind."""
    keys = table.strings("sensitive_keys")
    rules = []
    for rule in table.tables("rules"):
        kind = rule.string("kind", required=True)
        pattern = rule.string("pattern", required=True)
        action = rule.string("action")
        if action == "":
            raise rule.error("action", "expected 'redact' or 'fingerprint', got ''")
        rule.done()
        try:
            rules.append(
                ScrubRule(str(kind), str(pattern), cast("Action", action or "fingerprint"))
            )
        except ConfigError as exc:
            raise rule.invalid(exc) from None
    actions = table.table("actions")
    pairs = []
    for kind, action in actions.items():
        if not isinstance(action, str):
            raise actions.error(kind, f"expected a string, got {_toml_type(action)}")
        pairs.append((kind, cast("Action", action)))
    table.done()
    try:
        return ScrubConfig(sensitive_keys=tuple(keys), rules=tuple(rules), actions=tuple(pairs))
    except ConfigError as exc:
        raise table.invalid(exc) from None


def _ingest(table: _Table) -> IngestConfig:
    """``[ingest]``: the longest input line (docs/events.md, "Input lines")."""
    max_line_bytes = table.integer("max_line_bytes", low=MIN_LINE_BYTES, high=MAX_LINE_BYTES)
    table.done()
    return IngestConfig() if max_line_bytes is None else IngestConfig(max_line_bytes)


def _ledger(table: _Table) -> LedgerConfig:
    """``[ledger]``: extra committed fields, as JSON Pointers one or two keys deep."""
    paths: list[FieldPath] = []
    for index, text in enumerate(table.strings("commit")):
        try:
            path = parse_pointer(text)
        except ValueError as exc:
            raise table.error(f"commit[{index}]", str(exc)) from None
        if len(path) > 2:
            raise table.error(
                f"commit[{index}]",
                f"{text}: commitments cover whole fields at most two keys deep; commit "
                f"{show_pointer(path[:2])} instead",
            )
        if path[0] == "metadata" or path in DEFAULT_SENSITIVE:
            raise table.error(f"commit[{index}]", f"{text} is committed already; remove it")
        if path[0] in ("id", "time", "received", "service", "action", "outcome"):
            raise table.error(
                f"commit[{index}]",
                f"{text} is indexed in clear for every query and cannot be committed",
            )
        paths.append(path)
    table.done()
    return LedgerConfig(tuple(paths))


_SECTIONS: dict[str, Callable[[_Table], Any]] = {
    "scrub": _scrub,
    "ingest": _ingest,
    "ledger": _ledger,
}
"""Section name → its reader; the name is also the :class:`Config` field it fills."""


def load(path: Path) -> Config:
    """Read and validate the configuration file at ``path``; a missing file means defaults."""
    try:
        st = path.stat()
        text = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}), who could "
            f"change what is scrubbed; restrict it with `chmod go-w {path}`"
        )
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    sections = {}
    for name, value in data.items():
        reader = _SECTIONS.get(name)
        if reader is None:
            known = ", ".join(f"[{section}]" for section in _SECTIONS)
            raise ConfigError(f"{path}: unknown section [{name}]; the sections are: {known}")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {name}: expected a table, got {_toml_type(value)}")
        sections[name] = reader(_Table(value, name, path))
    return Config(**sections)
