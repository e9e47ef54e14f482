"""AWS Route 53 (boto3), imported only when a Route 53 provider is configured.

Route 53's UPSERT is last-writer-wins, so a compare-and-swap is one change batch:
DELETE the exact RRset just read (name, type, TTL and every value) and CREATE the new one.
If the record changed meanwhile, the DELETE does not match and the whole batch fails with
InvalidChangeBatch: a conflict. Retries use botocore's `standard` mode, pinned explicitly, which
covers Throttling and PriorRequestNotComplete. After a write, GetChange is polled until INSYNC.
Imports config values, errors, rrset and the providers' own modules; never health, policy or plan.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

from dnsfailover.config.models import Route53Settings as Settings
from dnsfailover.errors import (
    ConfigError,
    ConflictError,
    NotAuthoritativeError,
    ProviderAuthError,
    ProviderError,
    TransientError,
)
from dnsfailover.providers.base import Propagation, Provider, Receipt, ServerView
from dnsfailover.rrset import FENCE_TTL, Change, Fence, RRset, canonical_name

log = logging.getLogger(__name__)

_AUTH_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
}
_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
}


CONNECT_TIMEOUT, READ_TIMEOUT = 5, 15
CALL_TIMEOUT = CONNECT_TIMEOUT + READ_TIMEOUT
RETRIES = 5


def make_client(settings: Settings, retries: int = RETRIES) -> Any:
    """A Route 53 client with the retry mode pinned and timeouts bounded.

    A profile that no AWS config file has, or a config file botocore cannot parse, is the
    operator's config to fix: a ConfigError at build time, so that `check`, `run` and a reload
    report it like any other (a reload keeps the old config) instead of a botocore exception.
    """
    session = botocore.session.Session(profile=settings.profile)
    if settings.credentials_file is not None:
        # A shared-credentials file delivered by systemd LoadCredential=.
        session.set_config_variable("credentials_file", str(settings.credentials_file))
    config = botocore.config.Config(
        retries={"mode": "standard", "max_attempts": retries},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    try:
        return boto3.Session(botocore_session=session).client(
            "route53",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            config=config,
        )
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(
            f"profile: no AWS profile {settings.profile!r} in the AWS config or credentials "
            "files this user reads (AWS_CONFIG_FILE, ~/.aws/config, credentials_file): add it, "
            "or remove `profile` to use the default credential chain"
        ) from None
    except botocore.exceptions.BotoCoreError as e:
        raise ConfigError(f"cannot set up the AWS session: {type(e).__name__}") from None


def _decode_name(name: str) -> str:
    """Route 53 returns some characters as octal escapes (`\\052` for `*`)."""
    out, i = "", 0
    while i < len(name):
        if name[i] == "\\" and name[i + 1 : i + 4].isdigit():
            out += chr(int(name[i + 1 : i + 4], 8))
            i += 4
        else:
            out += name[i]
            i += 1
    return canonical_name(out)


def _record_set(rrset: RRset) -> dict[str, Any]:
    return {
        "Name": rrset.name,
        "Type": rrset.rdtype,
        "TTL": rrset.ttl,
        "ResourceRecords": [{"Value": v} for v in rrset.values],
    }


def _fence_changes(fence: Fence) -> list[dict[str, Any]]:
    """The fence's compare-and-swap: DELETE of the exact value read (Route 53 refuses the
    whole batch when it does not match) and CREATE of ours; the batch is atomic."""
    changes = []
    if fence.before is not None:
        old = RRset.of(fence.owner, "TXT", FENCE_TTL, [Fence.text(fence.before)])
        changes.append({"Action": "DELETE", "ResourceRecordSet": _record_set(old)})
    new = RRset.of(fence.owner, "TXT", FENCE_TTL, [Fence.text(fence.after)])
    changes.append({"Action": "CREATE", "ResourceRecordSet": _record_set(new)})
    return changes


def change_batch(change: Change, fence: Fence | None = None) -> dict[str, Any]:
    changes = [] if fence is None else _fence_changes(fence)
    if change.before is not None:
        changes.append({"Action": "DELETE", "ResourceRecordSet": _record_set(change.before)})
    changes.append({"Action": "CREATE", "ResourceRecordSet": _record_set(change.after)})
    return {"Comment": f"dnsfailover: {change.summary()}", "Changes": changes}


class Route53Provider(Provider):
    def __init__(
        self,
        name: str,
        settings: Settings,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: object,
    ) -> None:
        super().__init__(name, settings.zone, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.propagation_timeout = settings.propagation_timeout
        self.write_timeout = CALL_TIMEOUT * RETRIES  # botocore retries inside one attempt
        self.client = client if client is not None else make_client(settings)
        self._clock = clock
        self._zone_id = settings.hosted_zone_id

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(**kwargs)
        except botocore.exceptions.ClientError as e:
            raise self._translate(operation, e) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        ) as e:
            raise TransientError(f"route53 {operation}: {type(e).__name__}") from None
        except botocore.exceptions.NoCredentialsError:
            raise ProviderAuthError(
                f"route53 {operation}: no AWS credentials (credentials_file, profile or the "
                "standard AWS chain)"
            ) from None

    @staticmethod
    def _translate(operation: str, error: botocore.exceptions.ClientError) -> ProviderError:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        text = f"route53 {operation}: {code}: {message}"
        if code == "InvalidChangeBatch":
            return ConflictError(text)
        if code in _AUTH_CODES:
            return ProviderAuthError(text)
        if (
            code in _TRANSIENT_CODES
            or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
        ):
            return TransientError(text)
        if code == "NoSuchHostedZone":
            return NotAuthoritativeError(text)
        return ProviderError(text)

    # ------------------------------------------------------------------ zone

    @property
    def zone_id(self) -> str:
        if self._zone_id is None:
            self._zone_id = self._find_zone_id()
        return self._zone_id

    def _find_zone_id(self) -> str:
        assert self.settings.zone is not None
        wanted = canonical_name(self.settings.zone)
        found = self._call("list_hosted_zones_by_name", DNSName=wanted, MaxItems="100")
        zones = [z for z in found["HostedZones"] if _decode_name(z["Name"]) == wanted]
        if self.settings.private_zone is not None:
            zones = [z for z in zones if z["Config"]["PrivateZone"] == self.settings.private_zone]
        if not zones:
            raise NotAuthoritativeError(f"route53: no hosted zone named {wanted}")
        if len(zones) > 1:
            kinds = ", ".join(
                f"{z['Id']} ({'private' if z['Config']['PrivateZone'] else 'public'})"
                for z in zones
            )
            raise ProviderError(
                f"route53: {len(zones)} hosted zones are named {wanted}: {kinds}; set "
                "hosted_zone_id or private_zone"
            )
        return str(zones[0]["Id"]).removeprefix("/hostedzone/")

    def _discover_zone(self, name: str) -> str:
        found = self._call("get_hosted_zone", Id=self.zone_id)
        return _decode_name(found["HostedZone"]["Name"])

    # ------------------------------------------------------------------ hooks

    def _read(self, name: str, rdtype: str) -> RRset | None:
        found = self._call(
            "list_resource_record_sets",
            HostedZoneId=self.zone_id,
            StartRecordName=name,
            StartRecordType=rdtype,
            MaxItems="1",
        )
        # StartRecordName is a position, not a filter: check what came back.
        for record in found.get("ResourceRecordSets", []):
            if _decode_name(record["Name"]) != name or record["Type"] != rdtype:
                continue
            if "AliasTarget" in record or "SetIdentifier" in record:
                raise ProviderError(
                    f"route53: {name} {rdtype} is an alias or has a routing policy; dnsfailover "
                    "manages plain records only"
                )
            values = [r["Value"] for r in record.get("ResourceRecords", [])]
            return RRset.of(name, rdtype, int(record["TTL"]), values)
        return None

    def _write(self, change: Change, fence: Fence | None = None) -> str:
        found = self._call(
            "change_resource_record_sets",
            HostedZoneId=self.zone_id,
            ChangeBatch=change_batch(change, fence),
        )
        return str(found["ChangeInfo"]["Id"])

    def _move_fence(self, fence: Fence) -> None:
        batch = {"Comment": f"dnsfailover: fence epoch={fence.after}"}
        self._call(
            "change_resource_record_sets",
            HostedZoneId=self.zone_id,
            ChangeBatch={**batch, "Changes": _fence_changes(fence)},
        )

    def _wait(self, receipt: Receipt, timeout: float) -> Propagation:
        start = self._clock()
        status = "unknown"
        while True:
            if receipt.change_id:
                status = str(self._call("get_change", Id=receipt.change_id)["ChangeInfo"]["Status"])
            elapsed = self._clock() - start
            if status == "INSYNC" or not receipt.change_id or elapsed >= timeout:
                break
            time.sleep(min(self.settings.poll_interval, max(timeout - elapsed, 0)))
        ok = status == "INSYNC"
        view = ServerView(f"route53 {receipt.change_id or 'change'}", ok, status, elapsed)
        return Propagation(ok, elapsed, (view,))

    def _render(self, change: Change) -> str:
        """The exact ChangeBatch this provider would send."""
        request = {
            "HostedZoneId": self._zone_id or f"(zone {self.settings.zone})",
            "ChangeBatch": change_batch(change),
        }
        return json.dumps(request, indent=2, sort_keys=True)
