"""CPU per ACME probe, one thread, against one nginx target: a quick before/after check."""

from __future__ import annotations

import os
import sys
import time

from bench.procstat import cpu_seconds
from dnsfailover.config.models import AcmeCheck
from dnsfailover.probes.acme import AcmeProbe
from lab import Lab
from lab.nginx import NginxTargets


def main(count: int = 300) -> None:
    with Lab() as lab:
        nginx = lab._own(NginxTargets(lab.directory / "nginx", lab.tls, 1))
        nginx.start()
        settings = AcmeCheck.model_validate(
            {
                "directory": nginx.directory_url(nginx.first_port),
                "ca_bundle": str(lab.tls.cert_path),
            }
        )
        probe = AcmeProbe(settings)
        for _ in range(20):
            assert probe.run(time.monotonic() + 5).ok
        before, wall = cpu_seconds(os.getpid()), time.monotonic()
        for _ in range(count):
            result = probe.run(time.monotonic() + 5)
            assert result.ok, result.reason
        cpu, wall = cpu_seconds(os.getpid()) - before, time.monotonic() - wall
        each = f"{cpu / count * 1000:.2f} ms CPU, {wall / count * 1000:.2f} ms wall"
        print(f"{count} probes: {each} each")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
