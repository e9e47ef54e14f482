"""The exception tree. One root, one subclass per layer.

A target that is down is never an exception: probes return results. These errors mean that our
own setup is wrong (config, keys, files) or that a DNS provider refused or failed a request.
Each class's docstring is its default message, as in dnspython's `dns.exception`.
A leaf: imports nothing.
"""

from __future__ import annotations


class DnsFailoverError(Exception):
    """dnsfailover failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(DnsFailoverError):
    """The configuration is not valid."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ProbeSetupError(DnsFailoverError):
    """A probe cannot be built from its settings (missing key, unreadable issuer, ...)."""


class RefusedError(DnsFailoverError):
    """A safety rule refused the request; `--force` overrides where it is offered."""


class StateError(DnsFailoverError):
    """The state directory cannot be read or written."""


class ProviderError(DnsFailoverError):
    """The DNS provider failed the request."""


class ProviderAuthError(ProviderError):
    """The DNS provider rejected our credentials (TSIG key or AWS access)."""


class ProviderRefusedError(ProviderError):
    """The DNS provider refused the change by policy."""


class NotAuthoritativeError(ProviderError):
    """The DNS server is not authoritative for the zone, or the name is outside it."""


class ConflictError(ProviderError):
    """The record changed since we read it: compare-and-swap refused the write."""


class FencedError(ProviderError):
    """The DNS holds a newer leader's fencing token: this controller was deposed."""


class TransientError(ProviderError):
    """The DNS provider did not answer in time or failed temporarily; a retry may succeed."""


class PropagationTimeout(ProviderError):
    """The change was written but not every authoritative server served it in time."""
