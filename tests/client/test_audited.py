"""@audited on sync and async functions and methods, against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import glasslog
from glasslog.client import AuditNotRecorded, Client, audited
from glasslog.log import Log
from glasslog.testing import InMemoryClient, capture_events
from tests.client.conftest import serving, stored_ids
from tests.server.conftest import Site, free_port


class Refused(Exception):
    """The exception a test function raises."""


def test_sync_function_success_and_failure_reach_the_server(sqlite_site: Site) -> None:
    """A call records function, module, outcome, duration and target; a failure records the
    exception's type, and the very same exception object reaches the caller."""
    raised = Refused("card declined")
    port = free_port()
    with serving(sqlite_site, port) as server, Client(server.url, sqlite_site.keys["writer"],
                                                      service="payments") as client:  # fmt: skip

        @audited("invoice.refund", target=lambda invoice_id, **_: ("invoice", invoice_id),
                 client=client)  # fmt: skip
        def refund(invoice_id: str, amount: int = 5) -> int:
            if amount < 0:
                raise raised
            return amount

        with glasslog.context(actor="alice", request_id="req-9"):
            assert refund("in_1") == 5
            with pytest.raises(Refused) as caught:
                refund("in_2", amount=-1)
        assert caught.value is raised
        assert client.flush(30)
        ids = stored_ids(sqlite_site)
    assert len(ids) == 2
    with Log.open(sqlite_site.data) as log:
        ok, failed = log.search("service:payments", limit=10, sort="time").events
    assert ok["context"]["function"].endswith("reach_the_server.<locals>.refund")
    assert ok["context"]["module"] == __name__ and ok["context"]["request_id"] == "req-9"
    assert ok["outcome"] == "success" and ok["target"] == {"type": "invoice", "id": "in_1"}
    assert ok["metadata"]["duration_ms"] >= 0 and "args" not in ok["metadata"]
    assert failed["outcome"] == "failure"
    assert failed["metadata"]["error_type"] == f"{__name__}.Refused"
    assert "card declined" not in str(failed)


def test_async_functions_and_methods() -> None:
    """Async functions, methods and async methods are audited with their qualified names."""
    memory = InMemoryClient(service="payments")

    class Invoices:
        @audited("invoice.void", target=lambda self, number, **_: ("invoice", number),
                 client=memory)  # fmt: skip
        def void(self, number: str) -> str:
            return number

        @audited("invoice.send", client=memory)
        async def send(self, number: str) -> str:
            await asyncio.sleep(0)
            raise KeyError(number)

    @audited("invoice.list", client=memory)
    async def listing() -> list[str]:
        return ["a"]

    async def main() -> None:
        with glasslog.context(actor="bob"):
            assert Invoices().void("7") == "7"
            assert await listing() == ["a"]
            with pytest.raises(KeyError):
                await Invoices().send("8")

    asyncio.run(main())
    void, listed, sent = memory.events
    assert void["context"]["function"].endswith("Invoices.void")
    assert void["target"] == {"type": "invoice", "id": "7"}
    assert listed["outcome"] == "success" and listed["context"]["function"].endswith("listing")
    assert sent["outcome"] == "failure" and sent["metadata"]["error_type"] == "KeyError"
    assert sent["context"]["function"].endswith("Invoices.send")


def test_arguments_only_when_asked_and_scrubbed() -> None:
    """Only the arguments named in args= are recorded, with secrets scrubbed."""

    @audited("user.login", args=["username", "password", "note"])
    def login(username: str, password: str, note: str, other: str) -> None:
        pass

    with capture_events() as events, glasslog.context(actor="svc"):
        login("alice", "hunter2", "token ghp_" + "a" * 36, other="kept-out")
    recorded: dict[str, Any] = events[0]["metadata"]["args"]
    assert recorded["username"] == "alice"
    assert recorded["password"].startswith("[REDACTED")
    assert "ghp_" not in recorded["note"] and "other" not in recorded


def test_unknown_args_are_refused_at_decoration() -> None:
    """Naming an argument the function does not have fails when decorating, not at call time."""
    with pytest.raises(ValueError, match=r"\['amount'\] are not parameters"):

        @audited("a.b", args=["amount"])
        def f(x: int) -> None: ...


def test_fail_closed_does_not_run_the_function_when_the_server_is_down(
    sqlite_site: Site,
) -> None:
    """With fail_closed the body never runs when the attempt cannot be recorded; with the
    server up the attempt is stored before the body runs, and the result after."""
    port = free_port()
    ran: list[str] = []
    seen_by_body: set[str] = set()
    with Client(f"http://127.0.0.1:{port}", sqlite_site.keys["writer"], service="payments",
                timeout=1.0) as client:  # fmt: skip

        @audited("secret.rotate", fail_closed=True, client=client)
        def rotate(name: str) -> None:
            ran.append(name)

        with glasslog.context(actor="ops"), pytest.raises(AuditNotRecorded):
            rotate("db")
        assert ran == []
        with serving(sqlite_site, port):
            client.timeout = 30.0

            @audited("secret.rotate", fail_closed=True, client=client)
            def rotate_checked(name: str) -> None:
                ran.append(name)
                seen_by_body.update(stored_ids(sqlite_site))

            with glasslog.context(actor="ops"):
                rotate_checked("db")
            assert client.flush(30)
    with Log.open(sqlite_site.data) as log:
        events = log.search("service:payments", limit=10, sort="time").events
    phases = {e["metadata"]["phase"]: e for e in events if "phase" in e["metadata"]}
    done = next(e for e in events if e["outcome"] == "success")
    assert ran == ["db"]
    assert done["metadata"]["attempt_id"] in seen_by_body, "the attempt was stored first"
    assert phases["not_run"]["metadata"]["attempt_id"] != done["metadata"]["attempt_id"]
    assert phases["not_run"]["outcome"] == "failure"
