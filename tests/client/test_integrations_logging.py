"""glasslog.client.AuditHandler and glasslog.client.structlog_processor: log calls with
an ``audit`` dict become events, with real ``logging`` and a real structlog setup."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from glasslog.client import AuditHandler, Client, context, structlog_processor
from glasslog.client.logs import AuditProcessor
from glasslog.log import Log
from glasslog.testing import InMemoryClient, capture_events
from tests.server.conftest import Site, live


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger that does not pass records to the root logger."""
    log = logging.getLogger(f"tests.audit.{id(object())}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def test_a_record_with_audit_becomes_an_event(logger: logging.Logger) -> None:
    """extra={"audit": ...} gives the event's fields; the message, logger and level go
    into its metadata, and the record's time becomes the event's."""
    client = InMemoryClient(service="payments")
    logger.addHandler(AuditHandler(client))
    logger.warning(
        "refund of %s issued",
        "in_42",
        extra={"audit": {"action": "invoice.refund", "actor": "alice",
                         "target": ("invoice", "in_42"), "outcome": "denied",
                         "reason": "over limit", "category": "billing",
                         "metadata": {"amount": 12}}},
    )  # fmt: skip
    (event,) = client.events
    assert event["action"] == "invoice.refund"
    assert event["actor"] == {"id": "alice"}
    assert event["target"] == {"type": "invoice", "id": "in_42"}
    assert (event["outcome"], event["reason"], event["category"]) == (
        "denied",
        "over limit",
        "billing",
    )
    assert event["metadata"] == {
        "amount": 12,
        "message": "refund of in_42 issued",
        "logger": logger.name,
        "level": "WARNING",
    }


def test_records_without_audit_or_below_the_level_are_ignored(logger: logging.Logger) -> None:
    """Ordinary log records are not audit events, and the handler's level applies."""
    client = InMemoryClient(service="payments")
    logger.addHandler(AuditHandler(client, level=logging.INFO))
    logger.info("just a log line")
    logger.debug("too low", extra={"audit": {"action": "user.login", "actor": "bob"}})
    assert client.events == []


def test_the_actor_and_request_id_come_from_the_context(logger: logging.Logger) -> None:
    """Without an actor in the audit dict, the enclosing glasslog context's is used."""
    client = InMemoryClient(service="payments")
    logger.addHandler(AuditHandler(client))
    with context(request_id="r-1", actor={"id": "svc-1", "type": "service"}):
        logger.info("rotated", extra={"audit": {"action": "key.rotate"}})
    (event,) = client.events
    assert event["actor"] == {"id": "svc-1", "type": "service"}
    assert event["context"]["request_id"] == "r-1"


@pytest.mark.parametrize(
    ("audit", "problem"),
    [
        ({"actor": "alice"}, "needs an 'action'"),
        ({"action": "user.login", "actor": "alice", "outcom": "failure"}, "unknown keys"),
        ({"action": "user.login", "actor": "alice", "metadata": {"level": 1}}, "rename them"),
        ({"action": "user.login"}, "no actor"),
        ("user.login", "must be a dict"),
    ],
)
def test_a_malformed_audit_dict_goes_to_handle_error_and_never_raises(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, audit: Any, problem: str
) -> None:
    """A bad audit dict is reported through logging's handleError (a traceback on
    stderr), and the log call itself returns normally."""
    client = InMemoryClient(service="payments")
    logger.addHandler(AuditHandler(client))
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    logger.info("bad", extra={"audit": audit})
    assert client.events == []
    assert "--- Logging error ---" in stderr.getvalue()
    assert problem in stderr.getvalue()


def test_the_default_client_is_looked_up_when_a_record_arrives(logger: logging.Logger) -> None:
    """A handler made before any client exists uses the default client at emit time."""
    logger.addHandler(AuditHandler())
    with capture_events() as events:
        logger.info("hello", extra={"audit": {"action": "user.login", "actor": "bob"}})
    assert [event["action"] for event in events] == ["user.login"]


def test_both_integrations_send_to_a_real_glasslog_server(
    logger: logging.Logger, sqlite_site: Site
) -> None:
    """A record logged through the handler and an event dict through the structlog
    processor arrive at a real server and are stored."""
    site = sqlite_site
    with live(site) as url:
        client = Client(url, site.keys["writer"], service="payments")
        try:
            logger.addHandler(AuditHandler(client))
            log = structlog.wrap_logger(
                structlog.ReturnLogger(), processors=[AuditProcessor(client)]
            )
            with context(request_id="log-real-1"):
                logger.info("signed in", extra={"audit": {"action": "user.login", "actor": "eve"}})
                log.info("signed out", audit={"action": "user.logout", "actor": "eve"})
            assert client.flush(timeout=30)
        finally:
            client.close()
    with Log.open(site.data) as store:
        events = list(store.trace("log-real-1"))
    assert [(e["action"], e["actor"]["id"], e["metadata"]["message"]) for e in events] == [
        ("user.login", "eve", "signed in"),
        ("user.logout", "eve", "signed out"),
    ]


@pytest.fixture
def structlog_output() -> Iterator[io.StringIO]:
    """A real structlog configuration with the glasslog processor, rendering to a buffer;
    the previous configuration is restored afterwards."""
    previous = structlog.get_config()
    output = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog_processor,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=False,
    )
    yield output
    structlog.configure(**previous)


def test_the_structlog_processor_logs_the_event_and_leaves_its_id_in_the_log(
    structlog_output: io.StringIO,
) -> None:
    """An event dict with audit becomes an event through the default client; the log
    line carries audit_id instead of the audit fields, and other lines pass unchanged."""
    log = structlog.get_logger("billing")
    with capture_events() as events:
        log.info("refund issued", audit={"action": "invoice.refund", "actor": "alice",
                                         "target": ("invoice", "in_7")}, amount=3)  # fmt: skip
        log.info("plain line", amount=4)
    (event,) = events
    assert event["action"] == "invoice.refund"
    assert event["target"] == {"type": "invoice", "id": "in_7"}
    assert event["metadata"] == {"message": "refund issued", "logger": "structlog",
                                 "level": "info"}  # fmt: skip
    first, second = structlog_output.getvalue().splitlines()
    assert first == (
        f'{{"amount": 3, "audit_id": "{event["id"]}", "event": "refund issued", "level": "info"}}'
    )
    assert second == '{"amount": 4, "event": "plain line", "level": "info"}'


def test_a_configured_audit_processor_uses_its_client_and_raises_on_a_bad_audit() -> None:
    """AuditProcessor(client=...) logs through that client, and a malformed audit dict
    raises out of the log call, as Client.log would."""
    client = InMemoryClient(service="payments")
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[AuditProcessor(client), structlog.processors.KeyValueRenderer()],
    )
    logger.warning("x", audit={"action": "user.logout", "actor": "bob"})
    assert [event["action"] for event in client.events] == ["user.logout"]
    with pytest.raises(ValueError, match="needs an 'action' string"):
        logger.warning("x", audit={"actor": "bob"})
