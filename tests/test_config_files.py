"""`validate` opens every file the config names (config/files.py): each missing or unparsable
one is named with the config's FILE:LINE of its key; the sizing rule of coordination warns."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dnsfailover.cli.main import main
from dnsfailover.config import load_config
from dnsfailover.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEY = 'key "ddns-key" {\n\talgorithm hmac-sha256;\n\tsecret "c2VjcmV0LXZhbHVlLW5ldmVyLXByaW50ZWQ=";\n};\n'
ZONE = "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns h 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n"


def pki(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def config_text(d: Path, **files: str) -> str:
    """A config naming a file for every kind of key; `files` replaces some of them."""
    cert, key = pki(d)
    (d / "tsig.key").write_text(KEY)
    (d / "zone").write_text(ZONE)
    f = {"key_file": d / "tsig.key", "zone": d / "zone", "ca_bundle": cert, "account_key": key,
         "issuer": cert, "crl_issuer": cert, "webhook_ca": cert, **files}  # fmt: skip
    return f"""\
state_dir: {d / "state"}
notify:
  webhook: {{url: "https://hooks.example.test/x", ca_bundle: {f["webhook_ca"]}}}
providers:
  dns:
    type: rfc2136
    server: 127.0.0.1
    zone: example.test.
    tsig: {{key_file: {f["key_file"]}}}
  file: {{type: zonefile, path: {f["zone"]}, zone: example.test.}}
services:
  acme:
    provider: dns
    name: acme.example.test.
    instances:
      - name: a
        target: a.example.test.
        acme:
          directory: https://a.example.test/dir
          ca_bundle: {f["ca_bundle"]}
          account_key: {f["account_key"]}
        ocsp: {{url: "http://ocsp.example.test/", issuer: {f["issuer"]}, serial: "0x1"}}
        crl: {{url: "http://crl.example.test/1.crl", issuer: {f["crl_issuer"]}}}
      - name: b
        target: b.example.test.
        acme: {{directory: https://b.example.test/dir}}
"""


def problems(tmp_path: Path, **files: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path, **files))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value.problems


def test_every_named_file_parses_so_the_config_validates(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path))
    assert load_config(path).warnings == ()
    assert main(["validate", "-c", str(path)]) == 0


@pytest.mark.parametrize(
    ("key", "line", "content", "expected"),
    [
        pytest.param(
            "issuer",
            22,
            None,
            "services.acme.instances[0].ocsp.issuer: file {path} does not exist",
            id="missing_issuer",
        ),
        pytest.param(
            "crl_issuer",
            23,
            "not a cert",
            "services.acme.instances[0].crl.issuer: {path} is not a certificate",
            id="unparsable_issuer",
        ),
        pytest.param(
            "ca_bundle",
            20,
            "garbage\n",
            "services.acme.instances[0].acme.ca_bundle: {path} is not a bundle of PEM certificates",
            id="bundle_without_certificates",
        ),
        pytest.param(
            "account_key",
            21,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "services.acme.instances[0].acme.account_key: {path} is not a PEM private key",
            id="account_key_not_a_key",
        ),
        pytest.param(
            "key_file",
            9,
            'key "x" { algorithm hmac-sha256; };',
            "providers.dns.tsig.key_file: {path} is not a tsig-keygen key file",
            id="tsig_key_file_without_secret",
        ),
        pytest.param(
            "zone",
            10,
            "$ORIGIN example.test.\n@ IN SOA ns\n",
            "providers.file.path: {path} does not parse as zone example.test.",
            id="zone_file_does_not_parse",
        ),
        pytest.param(
            "webhook_ca",
            3,
            None,
            "notify.webhook.ca_bundle: file {path} does not exist",
            id="missing_webhook_bundle",
        ),
    ],
)
def test_a_bad_file_is_named_with_its_line(
    tmp_path: Path, key: str, line: int, content: str | None, expected: str
) -> None:
    path = tmp_path / f"bad-{key}"
    if content is not None:
        path.write_text(content)
    found = problems(tmp_path, **{key: str(path)})
    wanted = f"{tmp_path / 'config.yaml'}:{line}: {expected.format(path=path)}"
    assert any(p.startswith(wanted) for p in found), found
    assert len(found) == 1, found


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, issuer="/nonexistent/a.pem", crl_issuer="/nonexistent/b.pem",
                     ca_bundle="/nonexistent/c.pem")  # fmt: skip
    assert len(found) == 3 and all("does not exist" in p for p in found), found


def test_under_run_credentials_a_missing_file_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path, account_key="/run/credentials/x.service/account.pem"))
    warnings = load_config(path).warnings
    assert any("acme.account_key: /run/credentials/x.service/account.pem is not there now"
               in w for w in warnings), warnings  # fmt: skip


def test_the_example_names_only_files_the_operator_provides() -> None:
    """configs/example.yaml: every problem `validate` finds on a machine without the operator's
    files is one of them missing under /etc/dnsfailover/, with its line."""
    with pytest.raises(ConfigError) as raised:
        load_config(ROOT / "configs" / "example.yaml")
    for problem in raised.value.problems:
        assert "example.yaml:" in problem and "file /etc/dnsfailover/" in problem, problem
        assert problem.endswith("does not exist"), problem


COORDINATION = """
coordination:
  site: east
  sites: [east, west, north]
  etcd:
    endpoints: [http://127.0.0.1:1, http://127.0.0.1:2, http://127.0.0.1:3]
    lease_ttl: {ttl}
    timeout: 1s
"""


@pytest.mark.parametrize(("ttl", "warned"), [("5s", True), ("15s", False)])
def test_the_sizing_rule_of_coordination_warns(tmp_path: Path, ttl: str, warned: bool) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path) + COORDINATION.format(ttl=ttl))
    warnings = load_config(path).warnings
    rule = [w for w in warnings if "coordination.etcd.lease_ttl: the renew deadline" in w]
    assert bool(rule) == warned, warnings
    if warned:
        assert "under 3 x 3 endpoints x timeout 1s = 9s" in rule[0]
