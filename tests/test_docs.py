"""Docs that can drift are generated or checked here, so they cannot go stale silently."""

from __future__ import annotations

from pathlib import Path

import click
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
