"""Lines that used to break ``glasslog ingest``: deep nesting, duplicate keys, secrets
quoted in rejections, and a bug hitting one line. Each is rejected alone, with a clear
message, while the rest of the input is stored and signed (issue 9, section 4)."""

from __future__ import annotations

import json
import sys
import time
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glasslog.errors import EventError
from glasslog.ingest.lines import (
    NESTING_LIMIT,
    _first_too_deep,
    _nesting_exceeded,
    parse_line,
    scrub_messages,
)
from glasslog.ingest.pipeline import Preparer
from glasslog.ingest.scrub import Scrubber, ScrubConfig
from tests.ingest.conftest import CliLog, line, rejected

# -- duplicate keys -----------------------------------------------------------------


def _problems(text: str | bytes) -> dict[str, str]:
    with pytest.raises(EventError) as caught:
        parse_line(text)
    return {p.path: p.message for p in caught.value.problems}


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        ('{"outcome":"failure","outcome":"success"}', ["$.outcome"]),
        ('{"metadata":{"a":{"b":1,"c":2,"b":3}}}', ["$.metadata.a.b"]),
        ('{"metadata":{"l":[{"k":1},{"k":1,"k":1}]}}', ["$.metadata.l[1].k"]),
        ('{"metadata":{"x-y":{"z":0,"z":0}},"id":1,"id":2}', ["$.id", '$.metadata["x-y"].z']),
        ('{"a":' * 60 + '{"deep":1,"deep":2}' + "}" * 60, ["$" + ".a" * 60 + ".deep"]),
    ],
)
def test_a_duplicate_key_is_refused_naming_its_path(text: str, paths: list[str]) -> None:
    """Every repeated key is a problem at its JSON path, outer objects first, at any depth."""
    found = _problems(text)
    assert list(found) == paths
    key = paths[0].rsplit(".", 1)[1]
    assert found[paths[0]].startswith(f'duplicate key "{key}" (it appears ')
    assert "I-JSON (RFC 7493)" in found[paths[0]]


def test_the_same_key_in_different_objects_is_not_a_duplicate() -> None:
    """Only a key repeated within one object is refused."""
    value = parse_line(b'{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}]}')
    assert value == {"a": {"k": 1}, "b": {"k": 2}, "c": [{"k": 3}, {"k": 4}]}


def test_a_long_duplicate_key_is_described_not_quoted() -> None:
    """A key too long to quote is named by its length, at its object's path."""
    key = "k" * 500
    found = _problems(json.dumps({"metadata": {}}).replace("{}", f'{{"{key}":1,"{key}":2}}'))
    assert found == {
        "$.metadata": "duplicate a key of 500 characters (it appears 2 times in this object); "
        "I-JSON (RFC 7493) allows each key once, since parsers disagree on which value "
        "counts: send it once"
    }


def test_a_line_full_of_duplicates_gets_a_bounded_list() -> None:
    """A hostile line cannot make the rejection huge: at most 20 duplicates are named."""
    text = "{" + ",".join(f'"k{i}":1,"k{i}":2' for i in range(1000)) + "}"
    assert len(_problems(text)) == 20


# -- nesting -------------------------------------------------------------------------


def test_nesting_up_to_the_limit_parses_and_one_more_level_is_refused() -> None:
    """NESTING_LIMIT levels parse; one more is one problem saying how deep is allowed."""
    assert parse_line("[" * NESTING_LIMIT + "]" * NESTING_LIMIT) is not None
    head = '{"metadata":'
    found = _problems(head + "[" * NESTING_LIMIT + "]" * NESTING_LIMIT + "}")
    assert found == {
        "$": f"nested more than {NESTING_LIMIT} levels deep (at character "
        f"{len(head) + NESTING_LIMIT}); events nest far less (metadata at most 8 levels): "
        "flatten the data"
    }


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """Brackets in a string (with escaped quotes around them) are text, not structure."""
    text = json.dumps({"reason": '\\"' + "[{" * 5000 + '"\\'})
    assert parse_line(text) == json.loads(text)


def test_parsing_never_raises_recursion_error_whatever_the_stack() -> None:
    """Called deep in a caller's own recursion, a line within the limit is still a problem
    (not a RecursionError) when the parser runs out of stack."""
    text = "[" * NESTING_LIMIT + "]" * NESTING_LIMIT

    def descend(levels: int) -> dict[str, str]:
        if levels:
            return descend(levels - 1)
        return _problems(text)

    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    found = descend(sys.getrecursionlimit() - depth - 30)  # room for 30 frames, not 64 levels
    assert found["$"].startswith(f"nested more than {NESTING_LIMIT} levels deep; ")


def test_measuring_nesting_takes_linear_time_on_hostile_strings() -> None:
    """Escaped quotes that never close a string cost one pass, not one pass per quote."""
    started = time.perf_counter()
    for text in ('"' + '\\"' * 400_000 + "[" * 70, '"a' * 400_000 + "[" * 70):
        with pytest.raises(EventError):
            parse_line(text)
    assert time.perf_counter() - started < 5  # quadratic: hours


def test_a_number_too_long_to_read_is_a_problem() -> None:
    """Python refuses to read integers of more than 4,300 digits; that is a problem, not a
    ValueError that used to end the whole ingest."""
    assert _problems('{"metadata":{"n":' + "1" * 5000 + "}}") == {
        "$": "a number has too many digits to read; numbers must fit in ±(2**53-1) "
        "(I-JSON, RFC 7493): send big numbers as strings"
    }


def _deep(depth: int, kind: str) -> Any:
    """A Python value nested ``depth`` levels (built without recursion)."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "array" else {"a": value}
    return value


@pytest.mark.parametrize("depth", [50, 990, 5_000, 100_000])
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["metadata", "reason", "actor", "extra"])
def test_deep_values_passed_in_process_are_problems_not_crashes(
    depth: int, kind: str, where: str
) -> None:
    """Preparer.prepare with a dict nested 100,000 levels anywhere raises EventError."""
    event: dict[str, Any] = {"service": "s", "action": "a.b", "actor": {"id": "u"}}
    if where == "actor":
        event["actor"]["name"] = _deep(depth, kind)
    else:
        event[where] = {"deep": _deep(depth, kind)} if where == "metadata" else _deep(depth, kind)
    with pytest.raises(EventError) as caught:
        Preparer(fingerprint_key=None).prepare(event)
    assert len(str(caught.value)) < 1000


def test_a_key_that_is_not_a_string_is_named_by_its_type() -> None:
    """A Python caller's tuple key is refused without calling its repr (which could recurse)."""
    nested: tuple[Any, ...] = ()
    for _ in range(100_000):
        nested = (nested,)
    event = {"service": "s", "action": "a.b", "actor": {"id": "u"}, "metadata": {nested: 1}}
    with pytest.raises(EventError, match=r"\$\.metadata: keys must be strings; found array"):
        Preparer(fingerprint_key=None).prepare(event)


def _nested_line(depth: int, kind: str, where: str) -> bytes:
    deep = "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth
    value = {"metadata": '{"deep":@}', "reason": "@", "extra": "@"}[where].replace("@", deep)
    return line(**{where: "@"}).replace(b'"@"', value.encode())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_deeply_nested_lines_are_rejected_alone(cli_log: CliLog, workers: str) -> None:
    """Lines nested 50 to 100,000 levels, in arrays or objects, in metadata or elsewhere,
    are each rejected with a clear problem (as is a 5,000-digit number); every other line
    of their chunks is stored and signed (the whole ingest used to die, exit 70)."""
    lines = [line(reason="first")]
    expected: dict[int, str] = {}
    for depth in (50, 990, 5_000, 100_000):
        for kind in ("array", "object"):
            for where in ("metadata", "reason", "extra"):
                lines.append(_nested_line(depth, kind, where))
                expected[len(lines)] = (
                    f"nested more than {NESTING_LIMIT} levels deep"
                    if depth > NESTING_LIMIT
                    else {
                        "metadata": "nested deeper than 8 levels; flatten the metadata",
                        "reason": "expected a string, found",
                        "extra": "unknown field 'extra'",
                    }[where]
                )
                lines.append(line(reason=f"after line {len(lines)}"))
    lines.append(line(reason="[" * 5_000))  # brackets in a string: text, not nesting
    lines.append(line(metadata={"n": 1}).replace(b"1}", b"1" * 5_000 + b"}"))
    expected[len(lines)] = "a number has too many digits to read"
    summary, _ = cli_log.ingest(b"".join(lines), "--workers", workers, "--batch-size", "4")
    found = rejected(summary)
    assert sorted(found) == sorted(expected)
    for number, message in expected.items():
        assert len(found[number]) == 1
        assert message in found[number][0], (number, found[number])
    stored = len(lines) - len(expected)
    assert summary["accepted"] == stored
    assert cli_log.verified() == (stored, stored)


def test_a_line_with_a_duplicate_key_is_rejected_not_stored(cli_log: CliLog) -> None:
    """``{"outcome":"failure","outcome":"success"}`` is refused naming $.outcome (it used to
    be stored as a success); the lines around it are stored."""
    lines = [
        line(reason="before"),
        line()[:-2] + b',"outcome":"failure","outcome":"success"}\n',
        line(metadata={"a": {"b": 1}}).replace(b'"b": 1', b'"b": 1, "b": 2'),
        line(reason="after"),
    ]
    summary, _ = cli_log.ingest(b"".join(lines))
    found = rejected(summary)
    assert list(found) == [2, 3]
    assert found[2][0].startswith('$.outcome: duplicate key "outcome" (it appears 2 times')
    assert found[3][0].startswith('$.metadata.a.b: duplicate key "b" (it appears 2 times')
    assert summary["accepted"] == 2
    searched = cli_log.run("search", "outcome:success", "--json")
    assert searched.stdout == ""
    assert cli_log.verified() == (2, 2)


# -- secrets in rejection messages ---------------------------------------------------

SECRETS = {
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "github_fine_grained": "github_pat_11ABCDEFGHIJKLMNOPQRST_" + "Zx9Qw" * 11 + "Lp3T",
    "slack_token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "card_number": "4111111111111111",
    "password": "password=Tr0ub4dor&3x",
    "employee_badge": "EMP-123456",  # a [[scrub.rules]] pattern from glasslog.toml
}
SCRUB_TOML = '[[scrub.rules]]\nkind = "employee_badge"\npattern = "EMP-[0-9]{6}"\n'


def _quoting(secret: str) -> list[bytes]:
    """Invalid events that put ``secret`` where a rejection message used to quote it."""
    base = line()
    return [
        line(actor={"id": "u", "type": secret}),  # bad enum
        line(actor={"id": "u", "type": "\n" + secret}),  # quoted as '\nAKIA…', it hid
        line(outcome=secret),  # bad enum
        line(time=secret),  # bad timestamp
        line(time=f"2026-01-01T00:00:00Z {secret}"),
        line(id=secret),  # bad id
        line(action=f"{secret}!"),  # bad action
        line(action=f"User.{secret}"),
        line(service=f"{secret} x"),  # bad name
        line(environment=f"{secret}!"),
        line(category=f"({secret})"),
        line(**{secret: 1}),  # unknown field
        line(actor={"id": "u", secret: 1}),
        line(metadata={f"${secret}": 1}),  # bad metadata key
        line(metadata={"k": {secret: None, "\x00" + secret: 1}}),
        line(reason=secret + "x" * 9000),  # too long
        line(source={"ip": secret}),  # bad IP
        line(actor={"id": secret, "type": 7}),  # wrong type
        base[:-2] + f', "metadata": {{"{secret}": 1, "{secret}": 2}}}}\n'.encode(),  # duplicate
        base[:-2] + f', "{secret}": 1, "{secret}": 2}}\n'.encode(),
        f'{{"reason": "{secret}", oops}}\n'.encode(),  # not JSON
        f'{{"reason": "{secret}"}}'.encode() * 2 + b"\n",
    ]


def test_rejection_messages_never_echo_a_secret(cli_log: CliLog) -> None:
    """A secret that makes its event invalid (bad enum, timestamp, id, name, key, type,
    length, duplicate key, broken JSON) never appears on stdout or stderr, not even in
    part: messages are scrubbed as events are, with the data directory's [scrub] rules."""
    (cli_log.data / "glasslog.toml").write_text(SCRUB_TOML, encoding="utf-8")
    lines = [bad for secret in SECRETS.values() for bad in _quoting(secret)]
    summary, stderr = cli_log.ingest(b"".join(lines), "--batch-size", "50")
    assert summary["accepted"] == 0
    assert len(summary["rejected"]) == len(lines)
    output = json.dumps(summary, ensure_ascii=False) + stderr
    for kind, secret in SECRETS.items():
        core = secret.removeprefix("password=")
        leaked = [core[i : i + 12] for i in range(len(core) - 11) if core[i : i + 12] in output]
        assert not leaked, (kind, leaked)
    assert "found '[REDACTED:aws_access_key:" in output  # scrubbed, not dropped
    assert "[REDACTED:employee_badge:" in output


def test_scrubbing_a_message_keeps_its_path_and_text_apart() -> None:
    """A path ending in a sensitive name does not make the message read as its value,
    while a secret in the path or in the text is still replaced."""
    scrubber = Scrubber(fingerprint_key=None, config=ScrubConfig())
    messages = [
        "$.metadata.password: string has 9000 characters; at most 8192 are allowed",
        "$.metadata.AKIAIOSFODNN7EXAMPLE: duplicate key",
        '$["x: token=abcdef123456"]: unknown field',
        "$.actor.type: expected one of user, service, machine; found 'AKIAIOSFODNN7EXAMPLE'",
    ]
    assert scrub_messages(scrubber, messages) == [
        messages[0],
        "$.metadata.[REDACTED:aws_access_key]: duplicate key",
        '$["x: token=[REDACTED:token]"]: unknown field',
        "$.actor.type: expected one of user, service, machine; found '[REDACTED:aws_access_key]'",
    ]


# -- a bug on one line ---------------------------------------------------------------

# glasslog with a bug planted: any line holding "bug.now" makes parsing raise, with a
# secret in the exception's message. Workers are forked, so they inherit the bug.
BUGGY = """
import sys
import glasslog.ingest.pipeline as pipeline
real = pipeline.parse_line
def parse_line(data, **options):
    if b"bug.now" in data:
        raise ValueError("AKIAIOSFODNN7EXAMPLE made me do it")
    return real(data, **options)
pipeline.parse_line = parse_line
from glasslog.cli import main
main()
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bug_on_one_line_rejects_that_line_only(cli_log: CliLog, workers: str) -> None:
    """An unexpected exception while preparing a line rejects it as an internal error
    (its type only: the message may quote input), warns once on stderr, and the rest of
    its chunk is stored and signed; it used to end the whole ingest with exit 70."""
    lines = [line(reason=str(n)) for n in range(6)]
    lines[1] = lines[4] = line(action="bug.now")
    result = cli_log.run(
        "ingest", "-", "--workers", workers, "--batch-size", "2",
        stdin=b"".join(lines), prefix=("-c", BUGGY),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout)
    found = rejected(summary)
    assert list(found) == [2, 5]
    for errors in found.values():
        assert errors == [
            "$: internal error (ValueError) while preparing this line, not a problem with its "
            "content; the other lines were ingested. Please report it"
        ]
    assert summary["accepted"] == 4
    warnings = [w for w in result.stderr.splitlines() if w.startswith("glasslog: warning:")]
    assert len(warnings) == 1
    assert "line 2 was rejected by an internal error" in warnings[0]
    assert "AKIA" not in result.stdout + result.stderr
    assert cli_log.verified() == (4, 4)


def test_a_rejection_names_its_line_counting_blank_lines(cli_log: CliLog) -> None:
    """Blank lines are skipped but counted: a rejection names the line an editor shows."""
    summary, _ = cli_log.ingest(line() + b"\n\n" + line() + b"\n{oops\n" + line())
    assert list(rejected(summary)) == [6]
    assert summary["accepted"] == 3


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n', max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(alphabet='[]{}"\\k', max_size=4), inner, max_size=4),
    max_leaves=60,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_JSON, st.integers(0, 80), st.booleans())
def test_the_fast_depth_check_agrees_with_the_exact_scan(
    value: object, deep: int, in_dict: bool
) -> None:
    """On any valid JSON, the C-speed depth check used for big bodies decides exactly as
    the exact scan: brackets inside strings (escaped quotes too) never count."""
    for _ in range(deep):
        value = {"k]": value} if in_dict else [value, "]"]
    text = json.dumps([value] * 20)  # many brackets: past the counting shortcut
    assert _nesting_exceeded(text) == _first_too_deep(text)


def test_a_large_batch_body_is_checked_fast_and_a_deep_one_refused() -> None:
    """A 1,000-event body (many brackets, none deep) parses; one deep value is found."""
    events = [{"service": "s", "metadata": {"a": [{"b": [1, 2]}], "t": "[[[{{{"}}] * 1000
    body = json.dumps({"events": events})
    assert isinstance(parse_line(body), dict)
    deep = json.dumps({"events": [*events, {"m": json.loads("[" * 70 + "]" * 70)}]})
    with pytest.raises(EventError, match="nested more than"):
        parse_line(deep)
