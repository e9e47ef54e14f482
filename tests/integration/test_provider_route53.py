"""The Route 53 provider against moto's server (happy paths, request shapes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from dnsfailover.config.models import Route53Settings as Settings
from dnsfailover.errors import FencedError, ProviderError
from dnsfailover.providers.route53 import Route53Provider
from dnsfailover.rrset import Change, RRset
from lab import Lab
from lab.moto import FAKE_SECRET, MotoServer

ACME = "acme.example.test."


@pytest.fixture
def moto(lab: Lab) -> MotoServer:
    return lab.moto()


def _zone(moto: MotoServer, name: str = "example.test.", private: bool = False) -> str:
    client = boto3.client("route53", **moto.client_kwargs())
    kwargs: dict[str, Any] = {"Name": name, "CallerReference": f"{name}{private}"}
    if private:
        kwargs["VPC"] = {"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"}
        kwargs["HostedZoneConfig"] = {"PrivateZone": True, "Comment": "private"}
    return str(client.create_hosted_zone(**kwargs)["HostedZone"]["Id"]).split("/")[-1]


def provider(moto: MotoServer, tmp_path: Path, **overrides: object) -> Route53Provider:
    credentials = moto.write_credentials(tmp_path / "aws-credentials")
    settings: dict[str, object] = {
        "type": "route53",
        "zone": "example.test.",
        "endpoint_url": moto.endpoint_url,
        "credentials_file": str(credentials),
        "poll_interval": "100ms",
        "propagation_timeout": "5s",
    }
    settings.update(overrides)
    return Route53Provider("aws", Settings.model_validate(settings))


def cname(value: str) -> RRset:
    return RRset.of(ACME, "CNAME", 60, [value])


def test_create_read_swap_and_insync(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)  # the credentials file must be what works
    zone_id = _zone(moto)
    dns = provider(moto, tmp_path)
    assert dns.read(ACME, "CNAME") is None
    dns.wait(dns.apply(Change(None, cname("ca-a.example.test."))), timeout=5)
    assert dns.read(ACME, "CNAME") == cname("ca-a.example.test.")
    assert dns.zone_id == zone_id
    receipt = dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
    assert receipt.change_id
    propagation = dns.wait(receipt, timeout=5)
    assert propagation.complete and propagation.servers[0].detail == "INSYNC"
    assert dns.read(ACME, "CNAME") == cname("ca-b.example.test.")


def test_read_checks_the_returned_name(moto: MotoServer, tmp_path: Path) -> None:
    """StartRecordName is a position: asking for an absent name returns the next one."""
    _zone(moto)
    dns = provider(moto, tmp_path)
    dns.apply(Change(None, RRset.of("zzz.example.test.", "CNAME", 60, ["x.example.test."])))
    assert dns.read(ACME, "CNAME") is None
    assert dns.read("zzz.example.test.", "A") is None


def test_a_set_change(moto: MotoServer, tmp_path: Path) -> None:
    _zone(moto)
    dns = provider(moto, tmp_path)
    name = "ocsp.example.test."
    first = RRset.of(name, "A", 60, ["192.0.2.80", "192.0.2.81"])
    dns.apply(Change(None, first))
    second = RRset.of(name, "A", 60, ["198.51.100.80"])
    dns.wait(dns.apply(Change(first, second)), timeout=5)
    assert dns.read(name, "A") == second


def test_zone_by_id(moto: MotoServer, tmp_path: Path) -> None:
    zone_id = _zone(moto)
    dns = provider(moto, tmp_path, zone=None, hosted_zone_id=zone_id)
    assert dns.read(ACME, "CNAME") is None
    assert dns.zone == "example.test."


def test_private_and_public_zone_of_one_name_is_ambiguous(moto: MotoServer, tmp_path: Path) -> None:
    _zone(moto)
    private_id = _zone(moto, private=True)
    with pytest.raises(ProviderError, match="2 hosted zones are named example.test."):
        provider(moto, tmp_path).read(ACME, "CNAME")
    chosen = provider(moto, tmp_path, private_zone=True)
    chosen.read(ACME, "CNAME")
    assert chosen.zone_id == private_id


def test_render_is_the_exact_change_batch(moto: MotoServer, tmp_path: Path) -> None:
    zone_id = _zone(moto)
    dns = provider(moto, tmp_path, zone=None, hosted_zone_id=zone_id)
    text = dns.render(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
    summary, body = text.split("\n", 1)
    assert summary == "acme.example.test. CNAME: ca-a.example.test. -> ca-b.example.test."
    assert json.loads(body) == {
        "HostedZoneId": zone_id,
        "ChangeBatch": {
            "Comment": f"dnsfailover: {summary}",
            "Changes": [
                {"Action": "DELETE", "ResourceRecordSet": {
                    "Name": ACME, "Type": "CNAME", "TTL": 60,
                    "ResourceRecords": [{"Value": "ca-a.example.test."}]}},
                {"Action": "CREATE", "ResourceRecordSet": {
                    "Name": ACME, "Type": "CNAME", "TTL": 60,
                    "ResourceRecords": [{"Value": "ca-b.example.test."}]}},
            ],
        },
    }  # fmt: skip
    assert FAKE_SECRET not in text


def test_the_fence_moves_in_the_same_batch_as_the_record(moto: MotoServer, tmp_path: Path) -> None:
    _zone(moto)
    dns = provider(moto, tmp_path)
    dns.apply(Change(None, cname("ca-a.example.test.")))
    assert dns.move_fence(ACME, 4) is None
    assert dns.read_fence(ACME) == 4
    dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")), fence=9)
    assert dns.read_fence(ACME) == 9  # the record and the fence, one batch
    assert dns.read(ACME, "CNAME") == cname("ca-b.example.test.")
    with pytest.raises(FencedError, match="epoch=9, newer than ours"):
        dns.apply(Change(cname("ca-b.example.test."), cname("ca-a.example.test.")), fence=4)
    assert dns.read(ACME, "CNAME") == cname("ca-b.example.test.")
