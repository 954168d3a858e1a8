"""Kubernetes audit events mapped onto the schema (docs/import.md, "Kubernetes")."""

from __future__ import annotations

import pytest

from glasslog.errors import EventError
from glasslog.event import validate
from glasslog.importers.k8s import map_event
from glasslog.importers.mapping import event_id
from tests.importers.conftest import k8s_event, k8s_events


def test_a_secret_read_maps_every_documented_field() -> None:
    """user, sourceIPs, userAgent, verb + objectRef, responseStatus, auditID and
    stageTimestamp land where docs/import.md says; the rest goes to metadata."""
    record = k8s_event("5b2d6f5e")
    event = map_event(record)
    audit_id = record["auditID"]
    assert event == {
        "id": event_id("k8s-audit", audit_id, "ResponseComplete"),
        "time": "2026-11-29T10:15:30.104985Z",
        "service": "kubernetes",
        "action": "k8s.secrets.get",
        "outcome": "success",
        "actor": {"id": "alice@example.com", "type": "user"},
        "source": {"ip": "10.0.4.21", "user_agent": record["userAgent"]},
        "target": {"type": "secrets", "id": "payments/stripe-api", "name": "stripe-api"},
        "context": {"request_id": audit_id},
        "metadata": {
            "level": "Metadata",
            "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/payments/secrets/stripe-api",
            "verb": "get",
            "user": {k: v for k, v in record["user"].items() if k != "username"},
            "objectRef": record["objectRef"],
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2026-11-29T10:15:30.101207Z",
            "annotations": record["annotations"],
        },
    }
    validate(event)


def test_a_subresource_is_part_of_the_action_and_101_is_success() -> None:
    """pods/exec created by a service account: k8s.pods.exec.create, an opened stream."""
    event = map_event(k8s_event("0c3f2a1b"))
    assert event is not None
    assert event["action"] == "k8s.pods.exec.create"
    assert event["outcome"] == "success"
    assert event["actor"] == {"id": "system:serviceaccount:ci:deployer", "type": "service"}
    assert event["target"]["id"] == "payments/api-7d9f8b6c5-x2k4q"


def test_forbidden_is_denied_with_the_status_message_as_reason() -> None:
    """A 403 is denied; the message is the reason, the proxies after sourceIPs[0] are kept
    apart from source.ip, and the authorizer's annotations go to metadata."""
    event = map_event(k8s_event("7e8f9a0b"))
    assert event is not None
    assert event["outcome"] == "denied"
    assert event["reason"].startswith('deployments.apps "api" is forbidden')
    assert "message" not in event["metadata"]["responseStatus"]
    assert event["source"]["ip"] == "203.0.113.77"
    assert event["metadata"]["proxyIPs"] == ["10.0.0.12"]
    assert event["metadata"]["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_a_collection_has_a_target_without_id_and_a_node_is_a_machine() -> None:
    """A list in a namespace names no object: the target is the resource only."""
    event = map_event(k8s_event("2a3b4c5d"))
    assert event is not None
    assert event["action"] == "k8s.pods.list"
    assert event["target"] == {"type": "pods"}
    assert event["metadata"]["objectRef"]["namespace"] == "kube-system"
    assert event["actor"]["type"] == "machine"


def test_a_non_resource_url_is_its_own_action_and_target() -> None:
    """GET /healthz by an anonymous caller: k8s.nonresource.get on the URL, no actor type."""
    event = map_event(k8s_event("3c4d5e6f"))
    assert event is not None
    assert event["action"] == "k8s.nonresource.get"
    assert event["target"] == {"type": "url", "id": "/healthz"}
    assert event["actor"] == {"id": "system:anonymous"}


def test_a_panic_is_a_failure_and_impersonation_is_kept() -> None:
    """The Panic stage is imported as a failure; the caller who impersonated is the actor."""
    event = map_event(k8s_event("4d5e6f7a", stage="Panic"))
    assert event is not None
    assert event["outcome"] == "failure"
    assert event["actor"]["id"] == "alice@example.com"
    assert event["metadata"]["impersonatedUser"]["username"] == "bob@example.com"
    assert event["id"] == event_id("k8s-audit", k8s_event("4d5e6f7a", "Panic")["auditID"], "Panic")


def test_request_and_response_objects_are_never_imported() -> None:
    """At the RequestResponse level the objects stay out; a 409 is a failure."""
    record = k8s_event("5e6f7a8b")
    assert "requestObject" in record and "responseObject" in record
    event = map_event(record)
    assert event is not None
    assert event["outcome"] == "failure"
    assert "requestObject" not in event["metadata"]
    assert "responseObject" not in event["metadata"]
    assert "feature-flags" in event["target"]["id"]


def test_only_the_stages_with_an_outcome_are_imported() -> None:
    """RequestReceived and ResponseStarted map to None (skipped); the others to events."""
    stages = [(e["stage"], map_event(e) is not None) for e in k8s_events()]
    assert {stage for stage, imported in stages if imported} == {"ResponseComplete", "Panic"}
    assert sum(imported for _, imported in stages) == 7
    assert sum(not imported for _, imported in stages) == 8


def test_missing_source_fields_are_all_named_at_their_paths() -> None:
    """A record without auditID, user and stageTimestamp is refused with each path."""
    record = k8s_event("5b2d6f5e")
    for name in ("auditID", "user", "stageTimestamp"):
        del record[name]
    with pytest.raises(EventError) as caught:
        map_event(record)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["$.auditID", "$.stageTimestamp", "$.user.username"]


def test_a_record_that_is_not_an_event_is_refused() -> None:
    """Another kind, another version, or not an object at all: refused, with the reason."""
    with pytest.raises(EventError, match=r"\$: expected an audit.k8s.io/v1 Event object"):
        map_event(["not", "an", "object"])
    with pytest.raises(EventError, match=r"\$.apiVersion: expected audit.k8s.io/v1"):
        map_event({**k8s_event("5b2d6f5e"), "apiVersion": "audit.k8s.io/v1beta1"})
    with pytest.raises(EventError, match=r"\$.stage: expected one of"):
        map_event({**k8s_event("5b2d6f5e"), "stage": "Done"})


def test_ids_never_change_and_differ_by_stage() -> None:
    """The id of a record is fixed forever (a re-import must find it), and per stage."""
    record = k8s_event("5b2d6f5e")
    event = map_event(record)
    assert event is not None
    # uuid5(b71f1fca-fc53-49a6-95ab-d2840902429b, "k8s-audit/<auditID>/ResponseComplete")
    assert event["id"] == "ee5cd2d6-939a-588d-9c6f-1c0b592aa656"
    assert event_id("k8s-audit", record["auditID"], "Panic") != event["id"]


def test_the_service_can_name_the_cluster() -> None:
    """--service gives the events of one cluster their own service, for roles and queries."""
    event = map_event(k8s_event("5b2d6f5e"), service="k8s-prod-eu")
    assert event is not None
    assert event["service"] == "k8s-prod-eu"


def test_a_first_source_ip_that_is_no_address_is_kept_unmapped() -> None:
    """sourceIPs[0] must be an address to be source.ip; otherwise the list stays as it came."""
    record = {**k8s_event("5b2d6f5e"), "sourceIPs": ["unix-socket", "10.0.0.1"]}
    event = map_event(record)
    assert event is not None
    assert "ip" not in event["source"]
    assert event["metadata"]["sourceIPs"] == ["unix-socket", "10.0.0.1"]
    assert "proxyIPs" not in event["metadata"]
