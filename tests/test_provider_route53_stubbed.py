"""Route 53 failure modes moto cannot produce: conflicts, throttling, PENDING, lost answers.

botocore's Stubber stands in for the API. The client is built by the provider's own
`make_client` (retry mode pinned to `standard`), with one attempt so that our retry logic,
not botocore's, is what each test sees.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
from botocore.stub import ANY, Stubber

from dnsfailover.config.models import Route53Settings as Settings
from dnsfailover.errors import ConflictError, FencedError, ProviderAuthError, TransientError
from dnsfailover.providers import RetryPolicy
from dnsfailover.providers.route53 import Route53Provider, make_client
from dnsfailover.rrset import Change, RRset

ACME = "acme.example.test."
ZONE_ID = "Z0123456789ABC"
SETTINGS = Settings.model_validate(
    {"type": "route53", "hosted_zone_id": ZONE_ID, "zone": "example.test.",
     "poll_interval": "10ms", "endpoint_url": "http://127.0.0.1:9"}
)  # fmt: skip
A = RRset.of(ACME, "CNAME", 60, ["ca-a.example.test."])
B = RRset.of(ACME, "CNAME", 60, ["ca-b.example.test."])


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> tuple[Route53Provider, Stubber, list[float]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTUBSTUBSTUB0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stub-secret-never-shown")
    client = make_client(SETTINGS, retries=1)
    stubber = Stubber(client)
    sleeps: list[float] = []
    dns = Route53Provider(
        "aws", SETTINGS, client=client, retry=RetryPolicy(attempts=3), sleep=sleeps.append
    )
    with stubber:
        yield dns, stubber, sleeps
        stubber.assert_no_pending_responses()


def _listing(rrset: RRset) -> dict[str, Any]:
    return {
        "ResourceRecordSets": [{
            "Name": rrset.name, "Type": rrset.rdtype, "TTL": rrset.ttl,
            "ResourceRecords": [{"Value": v} for v in rrset.values]}],
        "IsTruncated": False, "MaxItems": "1",
    }  # fmt: skip


def _change(status: str = "PENDING") -> dict[str, Any]:
    return {"ChangeInfo": {"Id": "/change/C1", "Status": status, "SubmittedAt": "2026-11-28"}}


def test_retry_mode_is_pinned_to_standard() -> None:
    client = make_client(SETTINGS)
    assert client.meta.config.retries["mode"] == "standard"


def expected_swap() -> dict[str, Any]:
    """The request that swaps A for B: the exact DELETE, then the CREATE."""
    return {"HostedZoneId": ZONE_ID, "ChangeBatch": {"Comment": ANY, "Changes": [
        {"Action": "DELETE", "ResourceRecordSet": {"Name": ACME, "Type": "CNAME", "TTL": 60,
                                                   "ResourceRecords": [{"Value": A.values[0]}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": ACME, "Type": "CNAME", "TTL": 60,
                                                   "ResourceRecords": [{"Value": B.values[0]}]}},
    ]}}  # fmt: skip


def test_the_write_is_one_delete_exact_plus_create_batch(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_response("change_resource_record_sets", _change(), expected_swap())
    assert dns.apply(Change(A, B)).change_id == "/change/C1"


def test_invalid_change_batch_is_a_conflict(stubbed: Any) -> None:
    dns, stubber, sleeps = stubbed
    stubber.add_client_error(
        "change_resource_record_sets", "InvalidChangeBatch",
        "Tried to delete resource record set but it was not found", 400,
    )  # fmt: skip
    with pytest.raises(ConflictError, match="InvalidChangeBatch"):
        dns.apply(Change(A, B))
    assert sleeps == []  # a conflict is never retried blindly


@pytest.mark.parametrize("code", ["Throttling", "PriorRequestNotComplete"])
def test_throttling_is_retried_with_backoff(stubbed: Any, code: str) -> None:
    dns, stubber, sleeps = stubbed
    stubber.add_client_error("change_resource_record_sets", code, "slow down", 400)
    stubber.add_response("change_resource_record_sets", _change())
    assert dns.apply(Change(A, B)).attempts == 2
    assert sleeps == [0.5]


def test_throttling_that_never_ends_is_transient_and_bounded(stubbed: Any) -> None:
    dns, stubber, sleeps = stubbed
    for _ in range(3):
        stubber.add_client_error("change_resource_record_sets", "Throttling", "slow down", 400)
    with pytest.raises(TransientError, match="Throttling"):
        dns.apply(Change(A, B))
    assert sleeps == [0.5, 1.0]


def test_pending_then_insync(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_response("change_resource_record_sets", _change())
    for status in ("PENDING", "PENDING", "INSYNC"):
        stubber.add_response("get_change", _change(status), {"Id": "/change/C1"})
    propagation = dns.wait(dns.apply(Change(A, B)), timeout=5)
    assert propagation.complete
    assert propagation.servers[0].detail == "INSYNC"


def test_pending_past_the_timeout_is_reported_incomplete(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_response("change_resource_record_sets", _change())
    stubber.add_response("get_change", _change("PENDING"), {"Id": "/change/C1"})
    propagation = dns.wait(dns.apply(Change(A, B)), timeout=0)
    assert not propagation.complete and propagation.servers[0].detail == "PENDING"


def test_timeout_then_already_applied_is_success(stubbed: Any) -> None:
    """The first attempt timed out but landed: the retry's DELETE no longer matches."""
    dns, stubber, _ = stubbed
    real = dns.client.change_resource_record_sets
    calls = []

    def lost_answer(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            raise botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:9")
        return real(**kwargs)

    dns.client.change_resource_record_sets = lost_answer
    stubber.add_client_error("change_resource_record_sets", "InvalidChangeBatch", "not found", 400)
    stubber.add_response("list_resource_record_sets", _listing(B))
    receipt = dns.apply(Change(A, B))
    assert receipt.attempts == 2 and len(calls) == 2


def test_conflict_after_timeout_with_foreign_value_is_still_a_conflict(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_client_error("change_resource_record_sets", "Throttling", "slow", 400)
    stubber.add_client_error("change_resource_record_sets", "InvalidChangeBatch", "nf", 400)
    foreign = RRset.of(ACME, "CNAME", 60, ["someone-else.example.test."])
    stubber.add_response("list_resource_record_sets", _listing(foreign))
    with pytest.raises(ConflictError):
        dns.apply(Change(A, B))


def test_access_denied_is_an_auth_error_without_the_secret(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_client_error("list_resource_record_sets", "AccessDenied", "not allowed", 403)
    with pytest.raises(ProviderAuthError) as raised:
        dns.read(ACME, "CNAME")
    assert "stub-secret-never-shown" not in str(raised.value)


def test_read_refuses_alias_records(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    listing = {"ResourceRecordSets": [{"Name": ACME, "Type": "CNAME", "SetIdentifier": "east",
               "Weight": 10, "TTL": 60, "ResourceRecords": [{"Value": "x."}]}],
               "IsTruncated": False, "MaxItems": "1"}  # fmt: skip
    stubber.add_response("list_resource_record_sets", listing)
    with pytest.raises(Exception, match="routing policy"):
        dns.read(ACME, "CNAME")


FENCE = "_dnsfailover." + ACME


def _fence_listing(token: int) -> dict[str, Any]:
    return _listing(RRset.of(FENCE, "TXT", 60, [f'"epoch={token}"']))


def _txt(action: str, token: int) -> dict[str, Any]:
    return {"Action": action, "ResourceRecordSet": {"Name": FENCE, "Type": "TXT", "TTL": 60,
            "ResourceRecords": [{"Value": f'"epoch={token}"'}]}}  # fmt: skip


def test_a_fenced_write_moves_the_fence_in_the_same_batch(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_response("list_resource_record_sets", _fence_listing(4))
    expected = {"HostedZoneId": ZONE_ID, "ChangeBatch": {"Comment": ANY, "Changes": [
        _txt("DELETE", 4), _txt("CREATE", 9),
        *expected_swap()["ChangeBatch"]["Changes"],
    ]}}  # fmt: skip
    stubber.add_response("change_resource_record_sets", _change(), expected)
    dns.apply(Change(A, B), fence=9)


def test_a_batch_refused_because_the_fence_moved_is_fenced(stubbed: Any) -> None:
    """Route 53 refuses the whole batch when the fence's DELETE no longer matches: a newer
    leader moved it between our read and our write."""
    dns, stubber, sleeps = stubbed
    stubber.add_response("list_resource_record_sets", _fence_listing(4))
    stubber.add_client_error(
        "change_resource_record_sets", "InvalidChangeBatch",
        "Tried to delete resource record set but the values provided do not match", 400,
    )  # fmt: skip
    stubber.add_response("list_resource_record_sets", _fence_listing(11))
    with pytest.raises(FencedError, match="refused the write.*epoch=11, newer than ours"):
        dns.apply(Change(A, B), fence=9)
    assert sleeps == []


def test_an_older_token_is_not_even_sent(stubbed: Any) -> None:
    dns, stubber, _ = stubbed
    stubber.add_response("list_resource_record_sets", _fence_listing(11))
    with pytest.raises(FencedError, match="another controller leads"):
        dns.apply(Change(A, B), fence=9)
