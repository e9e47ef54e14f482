"""Everything a config needs at run time, built in full before it is used.

`Runtime.build` opens providers (reading TSIG keys, AWS credential files) and builds every
probe (reading issuer certificates and probe keys). It either returns a complete runtime or
raises: a reload swaps runtimes only after the new one is built, so a bad config or a
missing key file leaves the old one running.
Imports config, probes and providers; never the daemon.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from dnsfailover.config.models import Config, Service
from dnsfailover.errors import ConfigError, DnsFailoverError
from dnsfailover.probes import Probe, build_probes
from dnsfailover.providers import Provider, build_provider


@dataclass(frozen=True)
class ProbeJob:
    service: str
    instance: str
    probe: Probe
    interval: float
    timeout: float
    rise: int
    fall: int
    # No passing result (or still undecided) for this long: UNHEALTHY (`checks.inconclusive_after`,
    # default the settle window). The daemon registers it with the tracker; one-shot commands
    # judge one round and leave it out.
    inconclusive_after: float = math.inf

    @property
    def key(self) -> str:
        return f"{self.service}/{self.instance}/{self.probe.check}"


@dataclass
class Runtime:
    config: Config
    providers: dict[str, Provider]
    jobs: list[ProbeJob]

    def provider_for(self, service: Service) -> Provider:
        return self.providers[service.provider]

    @classmethod
    def build(
        cls, config: Config, clock: Callable[[], float] = time.time, providers_too: bool = True
    ) -> Runtime:
        """`providers_too=False` for commands that only probe (`check`): no keys are read."""
        used = {s.provider for s in config.services.values()} if providers_too else set()
        providers: dict[str, Provider] = {}
        problems: list[str] = []
        for name in sorted(used):
            try:
                providers[name] = build_provider(name, config.providers[name])
            except DnsFailoverError as e:
                problems.append(f"providers.{name}: {e}")
        jobs: list[ProbeJob] = []
        for key, service in config.services.items():
            for instance in service.instances:
                try:
                    probes = build_probes(
                        instance,
                        clock,
                        service.checks.connect_timeout,
                        service.name.rstrip("."),
                        service.checks.retry_after_cap,
                    )
                except DnsFailoverError as e:
                    problems.append(f"services.{key}.instances.{instance.name}: {e}")
                    continue
                checks = service.checks
                jobs += [
                    ProbeJob(
                        key,
                        instance.name,
                        probe,
                        checks.interval,
                        checks.timeout,
                        checks.rise,
                        checks.fall,
                        checks.inconclusive_bound,
                    )
                    for probe in probes
                ]
        if problems:
            for provider in providers.values():
                provider.close()
            raise ConfigError(problems)
        return cls(config, providers, jobs)

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()
