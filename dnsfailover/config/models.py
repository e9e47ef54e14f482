"""The configuration's shape: frozen pydantic models, one per block of the YAML.

These models check each value on its own (types, ranges, units, unknown keys). Checks that
need several blocks at once (a service's provider exists, a name is inside its zone) live in
`consistency.py`, so that they can name the exact key at fault; the value types they use are
`fields.py`'s. Imports nothing above config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from dnsfailover.config.durations import Duration
from dnsfailover.config.fields import (
    ConfigPath,
    EnvName,
    Fqdn,
    HostPort,
    HttpsUrl,
    IpAddress,
    Model,
    SocketPath,
    Url,
)
from dnsfailover.config.windows import BlockedDate, WindowText

# ----------------------------------------------------------------------------- providers


class Tsig(Model):
    """A TSIG key. The secret comes from exactly one of key_file, secret_file, secret_env."""

    name: Fqdn | None = None  # required unless key_file names it
    algorithm: Literal[
        "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
    ] = "hmac-sha256"
    key_file: ConfigPath | None = None  # `tsig-keygen` output: name, algorithm and secret
    secret_file: ConfigPath | None = None  # the base64 secret alone
    secret_env: str | None = None  # an environment variable holding the base64 secret

    @model_validator(mode="after")
    def _one_source(self) -> Tsig:
        sources = [s for s in (self.key_file, self.secret_file, self.secret_env) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of key_file, secret_file, secret_env")
        if self.key_file is None and self.name is None:
            raise ValueError("name is required with secret_file or secret_env")
        return self


class Rfc2136Settings(Model):
    type: Literal["rfc2136"]
    server: str  # the primary's address (IP or hostname)
    port: int = Field(53, ge=1, le=65535)
    zone: Fqdn | None = None  # found by asking the primary for the SOA when not given
    tsig: Tsig | None = None
    timeout: Duration = 5.0
    verify_servers: tuple[str, ...] | None = None  # "ADDR" or "ADDR:PORT"; default: the NS set
    propagation_timeout: Duration = 30.0
    # Sign reads from the primary (record, SOA serial, fence, NS set) with the TSIG key and
    # trust only replies whose TSIG verifies. Default: on when tsig is given.
    use_tsig: bool | None = None
    # Sign the confirmation queries to the other verify servers too (they must know the key).
    verify_servers_tsig: bool = False

    @model_validator(mode="after")
    def _key_for_signed_reads(self) -> Rfc2136Settings:
        if self.tsig is None and (self.use_tsig or self.verify_servers_tsig):
            raise ValueError("use_tsig and verify_servers_tsig need a tsig key")
        return self


class Route53Settings(Model):
    type: Literal["route53"]
    hosted_zone_id: str | None = None
    zone: Fqdn | None = None  # the zone's name, when hosted_zone_id is not given
    private_zone: bool | None = None  # which one, when a private and a public zone share a name
    region: str = "us-east-1"
    profile: str | None = None
    endpoint_url: Url | None = None
    credentials_file: ConfigPath | None = None  # an AWS shared-credentials file
    propagation_timeout: Duration = 180.0
    poll_interval: Duration = 2.0

    @model_validator(mode="after")
    def _zone_given(self) -> Route53Settings:
        if self.hosted_zone_id is None and self.zone is None:
            raise ValueError("give hosted_zone_id or zone")
        return self


class ZoneFileSettings(Model):
    type: Literal["zonefile"]
    path: ConfigPath
    zone: Fqdn
    check_command: tuple[str, ...] | None = None  # e.g. [named-checkzone, example.com., "{path}"]
    reload_command: tuple[str, ...] | None = None  # e.g. [rndc, reload, example.com]
    command_timeout: Duration = 30.0
    # Servers that load the file and must serve a change before it counts as done ("ADDR" or
    # "ADDR:PORT"). Default: none, and the change is done once the reload command succeeded.
    verify_servers: tuple[str, ...] | None = None
    timeout: Duration = 5.0  # per DNS query to a verify server
    propagation_timeout: Duration = 30.0


ProviderSettings = Annotated[
    Rfc2136Settings | Route53Settings | ZoneFileSettings, Field(discriminator="type")
]

# ----------------------------------------------------------------------------- checks


class AcmeCheck(Model):
    directory: HttpsUrl
    ca_bundle: ConfigPath | None = None  # default: the system trust store
    # Probe as a client: connect to the directory URL's host but present the service's public
    # name (its `name`, without the dot) for SNI and Host, and require the certificate to cover
    # it. `server_name` overrides the name presented; `as_client: false` probes the instance by
    # its own URL's name, as a client would never reach it.
    as_client: bool = True
    server_name: str | None = None
    strict_urls: bool = False  # directory URLs naming another host: unhealthy, not a warning
    account_key: ConfigPath | None = None  # enables the deep `account` check (PEM key)
    renewal_info_cert: ConfigPath | None = None  # enables the deep ARI check (PEM certificate)
    tls_warn_days: int = Field(14, ge=0)
    required: bool = True


class OcspCheck(Model):
    url: Url
    issuer: ConfigPath
    serial: str | None = None  # hex ("0x03a1") or decimal
    cert: ConfigPath | None = None  # the certificate to ask about, instead of serial
    method: Literal["auto", "get", "post"] = "auto"
    expect: Literal["good", "revoked"] = "good"
    max_skew: Duration = 300.0
    min_runway: Duration = 3600.0
    required: bool = True

    @model_validator(mode="after")
    def _one_subject(self) -> OcspCheck:
        if (self.serial is None) == (self.cert is None):
            raise ValueError("give exactly one of serial and cert")
        if self.serial is not None:
            try:
                int(self.serial, 0)
            except ValueError:
                raise ValueError(f"serial {self.serial!r} is not a number (hex as 0x…)") from None
        return self


class CrlCheck(Model):
    url: Url
    issuer: ConfigPath
    min_runway: Duration = 3600.0
    max_size: int = Field(10 * 1024 * 1024, ge=1024)
    required: bool = True


class Checks(Model):
    interval: Duration = 10.0
    timeout: Duration = 3.0
    # TCP connect + TLS handshake, inside `timeout`: a frozen host completes the TCP handshake
    # in its kernel and hangs in TLS; on a LAN a short value detects that sooner.
    connect_timeout: Duration | None = None  # default: the whole timeout
    rise: int = Field(3, ge=1, le=100)
    fall: int = Field(2, ge=1, le=100)
    inconclusive_after: Duration | None = None
    """A check with no passing result for this long (overloaded, our probe rate-limited,
    errors, a probe that raises, silence), or still undecided after it (flapping), is
    UNHEALTHY: health cannot freeze. Default (None): the settle window, `(max(rise, fall) + 1)
    x interval + timeout` (43s with the defaults), which is also its minimum. See
    `inconclusive_bound`."""
    max_retry_after: Duration | None = None
    """The longest a `Retry-After` keeps a probe quiet. Default (None): `fall x interval` (20s
    with the defaults): an overloaded instance may delay its own detection by one detection
    period, no more. See `retry_after_cap`."""

    @property
    def inconclusive_bound(self) -> float:
        """`inconclusive_after`, or its default, the settle window."""
        return self.settle_window if self.inconclusive_after is None else self.inconclusive_after

    @property
    def retry_after_cap(self) -> float:
        """`max_retry_after`, or its default, `fall x interval`."""
        return self.fall * self.interval if self.max_retry_after is None else self.max_retry_after

    @property
    def settle_window(self) -> float:
        """How long, after start-up or a reload, the policy may wait for UNKNOWN instances.

        An instance that answers consistently decides after k = max(rise, fall) results. The
        first round runs at once and ends within `timeout`; later runs start at the probe's own
        phase (under one interval) and then every interval, each ending within `timeout`. So
        the k-th result is in by (k - 1) intervals + phase + 2 timeouts, which (timeout <=
        interval) is less than (k + 1) intervals + timeout. An instance still UNKNOWN after
        that never completes a streak (it alternates, or only errors): waiting longer is no use.
        """
        return (max(self.rise, self.fall) + 1) * self.interval + self.timeout

    @model_validator(mode="after")
    def _timeout_fits(self) -> Checks:
        if self.timeout > self.interval:
            raise ValueError("timeout must not be longer than interval")
        if self.interval < 0.1:
            raise ValueError("interval must be at least 100ms")
        if self.connect_timeout is not None and not 0 < self.connect_timeout <= self.timeout:
            raise ValueError("connect_timeout must be above 0 and not longer than timeout")
        if self.inconclusive_after is not None and self.inconclusive_after < self.settle_window:
            # A shorter bound would call a new instance unsettled before it could decide.
            raise ValueError(
                "inconclusive_after must be at least the settle window, (max(rise, fall) + 1)"
                f" x interval + timeout = {self.settle_window:g}s"
            )
        return self


# ----------------------------------------------------------------------------- services


class Instance(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    target: Fqdn | None = None  # CNAME services
    addresses: tuple[IpAddress, ...] = ()  # A / AAAA services
    acme: AcmeCheck | None = None
    ocsp: OcspCheck | None = None
    crl: CrlCheck | None = None


class PracticeCommand(Model):
    """An operator's own command for a practice run (a smoke test, a blocking check): it
    passes when it exits 0 within `timeout`; it is killed at its timeout."""

    argv: tuple[str, ...] = Field(min_length=1)
    timeout: Duration = 120.0
    # The daemon's environment variables the command also gets, by name (as ExecHook).
    env: tuple[EnvName, ...] = ()


class PracticeSettings(Model):
    """Practice runs (docs/practice-runs.md): move the name to `to` on purpose for `duration`,
    then back; on a schedule (`every`) inside the windows, or on demand (`drill`)."""

    every: Duration | None = None  # None: on demand only
    duration: Duration = 1800.0
    to: str | None = None  # default: the next healthy instance in preference order
    allowed_windows: tuple[WindowText, ...] = ()  # UTC, Mon:10:00-Mon:12:00
    blocked_windows: tuple[WindowText, ...] = ()
    blocked_dates: tuple[BlockedDate, ...] = ()  # UTC, YYYY-MM-DD
    outcome_command: PracticeCommand | None = None  # after the move, and before the return
    blocking_command: PracticeCommand | None = None  # must pass to start (and to keep going)

    @model_validator(mode="after")
    def _consistent(self) -> PracticeSettings:
        if self.allowed_windows and self.blocked_windows:
            raise ValueError("give allowed_windows or blocked_windows, not both")
        if not 1 <= self.duration <= 7 * 86400:
            raise ValueError("duration must be at least 1s and at most 7d")
        if self.every is not None and self.every <= self.duration:
            raise ValueError("every must be longer than duration")
        return self


class ServiceDefaults(Model):
    """Settings a service inherits when it does not set them itself."""

    ttl: int = Field(60, ge=1, le=86400)
    checks: Checks = Checks()
    failback: Literal["manual", "auto"] = "manual"
    failback_after: Duration = 600.0
    hold_down: Duration = 300.0
    max_flips_per_hour: int = Field(4, ge=1)
    adopt: bool = False
    # A pinned instance that turns unhealthy: `failover` lets automatic policy move the name
    # away until it is healthy again; `hold` keeps the name on it and raises the alarm.
    pin_unhealthy: Literal["failover", "hold"] = "failover"
    # While the active instance is unhealthy, and for hold_down after a flip, write the record
    # with this lower TTL (seconds), so that clients follow the next flip sooner; the normal
    # TTL is written back once stable. Both are compare-and-swap writes. Default: off.
    degraded_ttl: int | None = Field(None, ge=1, le=86400)
    # The lowest TTL the clients' resolvers keep (BIND min-cache-ttl, Cloudflare's 60 s, ...):
    # it raises the TTL clients may still hold in the convergence budget. Default: none.
    resolver_min_ttl: int | None = Field(None, ge=0, le=86400)
    # Resolvers to verify a flip through, as clients would ("ADDR" or "ADDR:PORT"): after a
    # change is served by every authoritative server, the new target is probed through the
    # public name as these resolvers answer it. Default: none (through the written record).
    verify_resolvers: tuple[str, ...] | None = None
    client_verify: bool = True  # verify every flip as a client would (see above)
    practice: PracticeSettings | None = None  # practice runs (none unless set)

    @model_validator(mode="after")
    def _degraded_below_ttl(self) -> ServiceDefaults:
        if self.degraded_ttl is not None and self.degraded_ttl > self.ttl:
            raise ValueError("degraded_ttl must not be longer than ttl")
        return self


class Service(ServiceDefaults):
    provider: str
    name: Fqdn
    type: Literal["CNAME", "A", "AAAA"] = "CNAME"
    instances: tuple[Instance, ...]


class ExecHook(Model):
    argv: tuple[str, ...] = Field(min_length=1)
    timeout: Duration = 10.0
    # The daemon's environment variables the hook also gets, by name. It always gets PATH,
    # LANG and the DNSFAILOVER_* variables of the event, and nothing else: the daemon's
    # environment may hold a TSIG secret_env or AWS keys. Default: none.
    env: tuple[EnvName, ...] = ()


class WebhookHook(Model):
    url: Url
    timeout: Duration = 5.0
    retries: int = Field(3, ge=0, le=10)
    ca_bundle: ConfigPath | None = None


class NotifySettings(Model):
    exec: ExecHook | None = None
    webhook: WebhookHook | None = None


# ----------------------------------------------------------------------------- coordination


class EtcdSettings(Model):
    """Where the controllers meet. Secrets by reference: a password file, never a password."""

    endpoints: tuple[Url, ...] = Field(min_length=1)  # tried in order; the next on a failure
    prefix: str = Field("/dnsfailover/", pattern=r"^/.*/$")
    # Leadership and the site's reports live under one lease of this TTL. The leader stops
    # writing `renew_deadline` after its last renewal (default two thirds of the TTL), before
    # the lease can run out; etcd grants at least ~2 s whatever is asked.
    lease_ttl: Duration = 5.0
    renew_deadline: Duration | None = None
    timeout: Duration = 1.0  # per request to an endpoint
    ca_bundle: ConfigPath | None = None
    cert_file: ConfigPath | None = None  # mTLS client certificate
    key_file: ConfigPath | None = None
    username: str | None = None
    password_file: ConfigPath | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EtcdSettings:
        if self.lease_ttl < 2:
            raise ValueError("lease_ttl: etcd grants no lease shorter than 2s")
        if self.renew_deadline is not None and not 0 < self.renew_deadline < self.lease_ttl:
            raise ValueError("renew_deadline must be shorter than lease_ttl")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        if self.timeout >= self.deadline:
            raise ValueError("timeout must be shorter than the renew deadline")
        return self

    @property
    def deadline(self) -> float:
        """How long after its last renewal a leader may still write."""
        return self.renew_deadline or self.lease_ttl * 2 / 3


class Coordination(Model):
    """Several controllers, one writer (docs/several-sites.md)."""

    site: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    sites: tuple[str, ...] = Field(min_length=1)
    quorum: Literal["majority"] | int = "majority"
    etcd: EtcdSettings
    # A site whose reads and writes of its DNS service fail for this long cannot do the
    # leader's job: a leader hands over to a site that can, and a site campaigns again only
    # once its path has worked this long. Default: 2 × the longest check interval + the longest
    # provider timeout (see `handover_bound` in the controller).
    handover_after: Duration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Coordination:
        if self.site not in self.sites:
            raise ValueError(f"site {self.site!r} is not one of sites {list(self.sites)}")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError("sites: a site is named twice")
        if isinstance(self.quorum, int) and not 1 <= self.quorum <= len(self.sites):
            raise ValueError(f"quorum must be between 1 and {len(self.sites)} (the sites)")
        return self

    @property
    def k(self) -> int:
        """Reports needed to call an instance healthy or unhealthy."""
        return len(self.sites) // 2 + 1 if self.quorum == "majority" else int(self.quorum)


class Config(Model):
    state_dir: ConfigPath = Path("/var/lib/dnsfailover")
    # The daemon's control socket (the CLI's way in; under the unit's RuntimeDirectory=).
    control_socket: SocketPath = Path("/run/dnsfailover/control")
    metrics_listen: HostPort | None = None
    dry_run: bool = False
    # On SIGTERM, how long to wait for DNS writes in flight before stopping anyway (keep it
    # under the unit's TimeoutStopSec). A write left behind is audited as abandoned; its flip
    # intent in state.json is settled against the live record at the next start.
    shutdown_grace: Duration = 20.0
    notify: NotifySettings | None = None
    defaults: ServiceDefaults = ServiceDefaults()
    providers: dict[str, ProviderSettings]
    services: dict[str, Service]
    coordination: Coordination | None = None  # without it: one controller, as before

    @property
    def longest_interval(self) -> float:
        return max([1.0, *(s.checks.interval for s in self.services.values())])

    @property
    def handover_bound(self) -> float:
        """`coordination.handover_after`, or 2 × the longest check interval + the longest
        provider timeout."""
        if self.coordination is not None and self.coordination.handover_after is not None:
            return self.coordination.handover_after
        timeouts = [getattr(p, "timeout", 5.0) for p in self.providers.values()]
        return 2 * self.longest_interval + max([1.0, *timeouts])
