"""The lab's servers really answer: the ground every integration test stands on."""

from __future__ import annotations

import datetime as dt
import subprocess
import time

import boto3
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import requests
from cryptography import x509

from lab import Lab
from lab.bind import UPDATE_KEY, ZONE
from lab.scenario import wait_for


def test_two_pebbles_answer_directory_and_fresh_nonces(lab: Lab) -> None:
    first, second = lab.pebble("ca-a"), lab.pebble("ca-b")
    assert first.port != second.port
    nonces = set()
    for pebble in (first, second):
        directory = pebble.get_directory()
        assert {"newNonce", "newAccount", "newOrder"} <= directory.keys()
        for _ in range(2):
            response = requests.head(
                str(directory["newNonce"]), verify=str(lab.tls.cert_path), timeout=5
            )
            assert response.status_code == 200
            nonces.add(response.headers["Replay-Nonce"])
    assert len(nonces) == 4


def test_pebble_freeze_and_kill(lab: Lab) -> None:
    pebble = lab.pebble()
    pebble.freeze()
    started = time.monotonic()
    try:
        requests.get(pebble.directory_url, verify=str(lab.tls.cert_path), timeout=0.5)
        raise AssertionError("a frozen Pebble answered")
    except requests.Timeout:
        assert time.monotonic() - started < 2
    pebble.resume()
    assert pebble.get_directory()
    pebble.kill()
    try:
        requests.get(pebble.directory_url, verify=str(lab.tls.cert_path), timeout=2)
        raise AssertionError("a killed Pebble answered")
    except requests.ConnectionError:
        pass


def test_signed_update_reaches_primary_and_secondary(lab: Lab) -> None:
    bind = lab.bind()
    name = "acme.example.test."
    assert bind.secondary.rrset(name, "CNAME") == {"ca-a.example.test."}
    serial = bind.primary.soa_serial()
    keyring = dns.tsigkeyring.from_text({UPDATE_KEY: ("hmac-sha256", bind.update_key.secret)})
    update = dns.update.UpdateMessage(ZONE, keyring=keyring, keyname=UPDATE_KEY)
    update.present(name, "CNAME", "ca-a.example.test.")
    update.replace(name, 60, "CNAME", "ca-b.example.test.")
    response = dns.query.tcp(update, "127.0.0.1", port=bind.primary.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR
    assert bind.primary.rrset(name, "CNAME") == {"ca-b.example.test."}
    assert bind.primary.soa_serial() != serial
    wait_for(lambda: bind.secondary.rrset(name, "CNAME") == {"ca-b.example.test."}, 5,
             "the secondary to serve the update")  # fmt: skip


def test_ocsp_responder_answers_for_pebble_intermediate(lab: Lab, isolated_network: None) -> None:
    pebble = lab.pebble()
    responder = lab.ocsp_for(pebble)
    responder.add(0x1234)
    responder.add(0x5678, revoked_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    for serial, expected in (("0x1234", "good"), ("0x5678", "revoked"), ("0x9abc", "unknown")):
        # openssl's own client; -VAfile trusts Pebble's intermediate as the signer.
        done = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(responder.issuer_cert), "-serial", serial,
             "-url", responder.url, "-VAfile", str(responder.issuer_cert), "-timeout", "5"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Response verify OK" in done.stderr + done.stdout
        assert f"{serial}: {expected}" in done.stdout


def test_moto_accepts_a_change_batch(lab: Lab) -> None:
    moto = lab.moto()
    client = boto3.client("route53", **moto.client_kwargs())
    zone = client.create_hosted_zone(Name="example.test.", CallerReference="lab-smoke")
    zone_id = zone["HostedZone"]["Id"]
    change = client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
            "Name": "acme.example.test.", "Type": "CNAME", "TTL": 60,
            "ResourceRecords": [{"Value": "ca-a.example.test."}]}}]},
    )  # fmt: skip
    assert change["ChangeInfo"]["Status"] in {"PENDING", "INSYNC"}
    records = client.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName="acme.example.test.", StartRecordType="CNAME"
    )["ResourceRecordSets"]
    assert records[0]["Name"] == "acme.example.test."
    assert records[0]["ResourceRecords"] == [{"Value": "ca-a.example.test."}]


def test_generated_crl_is_served_and_parses(lab: Lab) -> None:
    ca = lab.crl_ca()
    ca.revoke(0x42)
    web = lab.web("crl")
    url = web.url("1.crl")
    ca.gencrl(web.root / "1.crl", days=7, idp_url=url)
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    crl = x509.load_der_x509_crl(response.content)
    issuer = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert crl.issuer == issuer.subject
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(0x42) is not None
    assert crl.next_update_utc is not None
    assert dt.timedelta(days=6) < crl.next_update_utc - crl.last_update_utc <= dt.timedelta(days=7)
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.full_name == [x509.UniformResourceIdentifier(url)]
