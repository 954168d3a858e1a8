"""AWS CloudTrail records mapped onto the schema (docs/import.md, "AWS CloudTrail")."""

from __future__ import annotations

from typing import Any

import pytest

from glasslog.errors import EventError
from glasslog.event import validate
from glasslog.importers.cloudtrail import map_record, records
from tests.importers.conftest import cloudtrail_record


def _mapped(record: dict[str, Any]) -> dict[str, Any]:
    event = map_record(record)
    assert event is not None
    validate(event)
    return event


def test_a_console_login_maps_every_documented_field() -> None:
    """userIdentity, sourceIPAddress, userAgent, eventSource + eventName, eventTime and
    eventID land where docs/import.md says; the rest goes to metadata by its own name."""
    record = cloudtrail_record("ConsoleLogin")
    event = _mapped(record)
    assert event["id"] == "eea393a2-f9d2-57a7-a118-bbddc5ba59ff"  # fixed forever
    assert event["time"] == "2026-11-29T10:01:07Z"
    assert (event["service"], event["action"]) == ("aws.signin", "aws.signin.consolelogin")
    assert event["outcome"] == "success"
    assert event["actor"] == {
        "id": "arn:aws:iam::123456789012:user/Alice",
        "type": "user",
        "name": "Alice",
    }
    assert event["source"] == {"ip": "198.51.100.23", "user_agent": record["userAgent"]}
    assert "target" not in event and "context" not in event and "reason" not in event
    metadata = event["metadata"]
    assert metadata["eventName"] == "ConsoleLogin" and metadata["eventID"] == record["eventID"]
    assert metadata["awsRegion"] == "us-east-1" and metadata["eventCategory"] == "Management"
    assert metadata["userIdentity"] == record["userIdentity"]
    assert not {"eventTime", "sourceIPAddress", "userAgent", "requestID"} & set(metadata)


def test_a_failed_console_login_without_error_code_is_a_failure() -> None:
    """CloudTrail records a failed sign-in with an errorMessage and no errorCode."""
    event = _mapped({**cloudtrail_record("ConsoleLogin"), "errorMessage": "Failed authentication",
                     "responseElements": {"ConsoleLogin": "Failure"}})  # fmt: skip
    assert event["outcome"] == "failure"
    assert event["reason"] == "Failed authentication"
    assert "errorMessage" not in event["metadata"]


def test_an_assumed_role_reading_an_object() -> None:
    """The session's ARN is the actor, the role its name; the object is the target."""
    event = _mapped(cloudtrail_record("GetObject"))
    assert event["actor"] == {
        "id": "arn:aws:sts::123456789012:assumed-role/DataPipeline/etl-nightly",
        "name": "DataPipeline",
    }
    assert event["target"] == {
        "type": "AWS::S3::Object",
        "id": "arn:aws:s3:::acme-exports/daily/2026-11-28/customers.csv.gz",
    }
    assert event["context"] == {"request_id": "8XKJ2ZV7Q4W1N0PD"}
    assert event["metadata"]["requestParameters"]["bucketName"] == "acme-exports"
    assert event["metadata"]["readOnly"] is True


def test_an_aws_service_calls_from_a_host_name() -> None:
    """sourceIPAddress "cloudtrail.amazonaws.com" is a host, not an ip; the actor a service."""
    event = _mapped(cloudtrail_record("GenerateDataKey"))
    assert event["source"] == {
        "host": "cloudtrail.amazonaws.com",
        "user_agent": "cloudtrail.amazonaws.com",
    }
    assert event["actor"] == {"id": "cloudtrail.amazonaws.com", "type": "service"}


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("AccessDenied", "denied"),
        ("AccessDeniedException", "denied"),
        ("Client.UnauthorizedOperation", "denied"),
        ("UnauthorizedOperation", "denied"),
        ("ThrottlingException", "failure"),
        ("NoSuchKey", "failure"),
    ],
)
def test_error_codes_decide_the_outcome(code: str, outcome: str) -> None:
    """Denials are denied, every other error a failure, with the message as reason."""
    event = _mapped({**cloudtrail_record("GetObject"), "errorCode": code, "errorMessage": "no"})
    assert event["outcome"] == outcome
    assert event["reason"] == "no"
    assert event["metadata"]["errorCode"] == code


def test_insight_events_are_skipped() -> None:
    """An Insight event describes unusual activity, not an action: None, counted as skipped."""
    assert map_record(cloudtrail_record("DeleteUser")) is None


def test_a_file_must_hold_records() -> None:
    """Anything but {"Records": [...]} is refused; a digest file is named as such."""
    with pytest.raises(EventError, match=r"\$: expected a CloudTrail log file"):
        records([])
    with pytest.raises(EventError, match=r"a digest file\?"):
        records({"digestPublicKeyFingerprint": "8ae0", "logFiles": []})
    assert records({"Records": [{"eventID": "x"}]}) == [{"eventID": "x"}]


def test_missing_source_fields_are_all_named_at_their_paths() -> None:
    """A record without eventID, eventName and userIdentity is refused with each path."""
    record = cloudtrail_record("GetObject")
    for name in ("eventID", "eventName", "userIdentity"):
        del record[name]
    with pytest.raises(EventError) as caught:
        map_record(record)
    assert [p.path for p in caught.value.problems] == ["$.eventID", "$.eventName", "$.userIdentity"]
    with pytest.raises(EventError, match=r"\$: expected a CloudTrail record"):
        map_record("GetObject")


def test_bulky_details_are_left_out_to_fit_and_named() -> None:
    """Parameters too big for one event are dropped (responseElements first) and listed
    in metadata.omitted, so the record is still imported rather than refused."""
    record = cloudtrail_record("RunInstances")
    record["responseElements"] = {"instancesSet": {"items": [{"n": i} for i in range(300)]}}
    record["requestParameters"] = {"userData": "x" * 70_000}
    event = _mapped(record)
    assert event["metadata"]["omitted"] == ["responseElements", "requestParameters"]
    assert "requestParameters" not in event["metadata"]
    assert event["metadata"]["eventName"] == "RunInstances"


def test_a_record_that_fits_loses_nothing() -> None:
    """Without a limit broken, nothing is omitted (the bulky parts are the useful ones)."""
    event = _mapped(cloudtrail_record("CreateAccessKey"))
    assert "omitted" not in event["metadata"]
    assert event["metadata"]["responseElements"]["accessKey"]["userName"] == "ci-deployer"
