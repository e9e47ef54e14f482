"""DNS providers: read one RRset, compare-and-swap it, wait until every authority serves it.

`build_provider` turns a provider's config into an object; boto3 is imported only when a
Route 53 provider is built. Providers import nothing from health, policy or the controller.
"""

from __future__ import annotations

from dnsfailover.config.models import Rfc2136Settings, Route53Settings, ZoneFileSettings
from dnsfailover.providers.base import (
    Propagation,
    Provider,
    Receipt,
    RetryPolicy,
    ServerView,
)

__all__ = [
    "Propagation",
    "Provider",
    "Receipt",
    "RetryPolicy",
    "ServerView",
    "build_provider",
]


def build_provider(
    name: str, settings: Rfc2136Settings | Route53Settings | ZoneFileSettings
) -> Provider:
    if isinstance(settings, Rfc2136Settings):
        from dnsfailover.providers.rfc2136 import Rfc2136Provider

        return Rfc2136Provider(name, settings)
    if isinstance(settings, ZoneFileSettings):
        from dnsfailover.providers.zonefile import ZoneFileProvider

        return ZoneFileProvider(name, settings)
    from dnsfailover.providers.route53 import Route53Provider

    return Route53Provider(name, settings)
