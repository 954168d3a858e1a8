"""Docs that can drift are generated or checked here, so they cannot go stale silently."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from glasslog.cli import main

ROOT = Path(__file__).parents[1]


def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    out = []
    for name in sorted(group.commands):
        command = group.commands[name]
        out.append([*prefix, name])
        if isinstance(command, click.Group):
            out += _commands(command, [*prefix, name])
    return out


def render_cli_docs() -> str:
    """docs/cli.md: every command's --help, in order."""
    parts = [
        "# Command line reference\n\n",
        "Generated from `glasslog … --help` by `scripts/gen-cli-docs`; "
        "`tests/test_docs.py` fails when it is out of date.\n",
    ]
    runner = CliRunner()
    for words in [[], *_commands(main, [])]:
        result = runner.invoke(main, [*words, "--help"], prog_name="glasslog", terminal_width=100)
        assert result.exit_code == 0, result.output
        title = " ".join(["glasslog", *words])
        parts.append(f"\n## `{title}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "".join(parts)


def test_cli_reference_is_up_to_date() -> None:
    """docs/cli.md matches the commands' --help (run scripts/gen-cli-docs after a change)."""
    assert (ROOT / "docs" / "cli.md").read_text() == render_cli_docs()


def test_every_command_is_in_the_readme() -> None:
    """The README's usage block mentions every top-level command."""
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in main.commands if f"glasslog {name}" not in readme]
    assert missing == []


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\[[^\]]+\]:\s*(\S+)", re.M)
_PATH = re.compile(r"`((?:docs|src|tests|scripts|bench|\.ci)/[A-Za-z0-9_./-]+)`")


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a page: lowercase, punctuation dropped, - for space."""
    out = set()
    for heading in re.findall(r"^#+\s+(.*)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc: Path) -> None:
    """Each relative link (and #anchor) in README.md and docs/ points at something that exists."""
    text = doc.read_text(encoding="utf-8")
    broken = []
    for match in _LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: — not ours
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        missing_anchor = (
            resolved.exists()
            and anchor
            and resolved.suffix == ".md"
            and anchor not in _anchors(resolved.read_text(encoding="utf-8"))
        )
        if not resolved.exists() or missing_anchor:
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_name_only_files_in_the_repository(doc: Path) -> None:
    """Paths in backticks exist here, and nothing cites a document outside the repository."""
    text = doc.read_text(encoding="utf-8")
    missing = [p for p in _PATH.findall(text) if not (ROOT / p.rstrip("/.")).exists()]
    assert missing == []
    assert "DESIGN" not in text, "cite docs/architecture.md, which is in the repository"
    machine_root = "/" + "work" + "/"  # spelled apart so this file does not match itself
    assert machine_root not in text, "no machine-specific absolute paths"
