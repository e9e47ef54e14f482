"""One-shot commands read and decide again after a transient DNS error (there is no next tick).

A real server cannot answer SERVFAIL on demand: a zone-file provider that fails its first read
stands in for one (the rest is real: zone file, state store, policy, plan).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from dnsfailover.config.models import Service, ZoneFileSettings
from dnsfailover.controller.reconcile import Reconciler
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import TransientError
from dnsfailover.health import InstanceHealth, State
from dnsfailover.providers.zonefile import ZoneFileProvider
from dnsfailover.rrset import RRset

ZONE = """$ORIGIN example.test.
@ 60 IN SOA ns h 1 2 3 4 5
@ 60 IN NS ns
acme 60 IN CNAME a.example.test.
"""


class FlakyZone(ZoneFileProvider):
    failures = 1

    def _read(self, name: str, rdtype: str) -> RRset | None:
        if self.failures:
            self.failures -= 1
            raise TransientError("127.0.0.1:53: SERVFAIL")
        return super()._read(name, rdtype)


def test_a_transient_read_error_is_retried_by_a_one_shot_reconcile(tmp_path: Path) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE)
    provider = FlakyZone("dns", ZoneFileSettings(type="zonefile", path=zone, zone="example.test."))
    service = Service.model_validate({
        "provider": "dns", "name": "acme.example.test.",
        "instances": [{"name": n, "target": f"{n}.example.test.",
                       "acme": {"directory": f"https://{n}/dir"}} for n in ("a", "b")],
    })  # fmt: skip
    health = {
        "a": InstanceHealth("a", State.UNHEALTHY, 0.0, MappingProxyType({})),
        "b": InstanceHealth("b", State.HEALTHY, 0.0, MappingProxyType({})),
    }
    report = Reconciler(StateStore(tmp_path / "state")).reconcile("acme", service, provider, health)
    assert report.error is None and report.applied
    assert provider.read("acme.example.test.", "CNAME") == RRset.of(
        "acme.example.test.", "CNAME", 60, ["b.example.test."]
    )
    provider.failures = 10  # it keeps failing: the one-shot gives up after its retries
    again = Reconciler(StateStore(tmp_path / "state")).reconcile("acme", service, provider, health)
    assert again.error == "127.0.0.1:53: SERVFAIL" and again.transient
