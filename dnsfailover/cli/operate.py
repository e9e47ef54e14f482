"""The operator's commands: run, status, plan, failover, release, drain, undrain.

Thin: each builds what it needs from the config and calls the controller: the operator's
verbs (operator.py, on the state directory's state.json, or on etcd's shared document with
coordination), and the change path of the one-shot commands (oneshot.py: `OneShot`,
`run_once`, `preview`). They work with or without a running daemon; the daemon reads pins and
drains every tick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from dnsfailover.config import load_config
from dnsfailover.config.models import Config, Service, ZoneFileSettings
from dnsfailover.controller import documents
from dnsfailover.controller.journal import Journal, measurements
from dnsfailover.controller.oneshot import OneShot, one_round_health, preview, probe_once, run_once
from dnsfailover.controller.operator import LocalOverrides, Operator, SharedOverrides
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.shared import SharedStore
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import ConfigError, ConflictError, DnsFailoverError, RefusedError
from dnsfailover.health import State
from dnsfailover.plan import owner_of
from dnsfailover.plan.budget import Budget, convergence_budget
from dnsfailover.providers import Provider


def _runtime(args: argparse.Namespace) -> tuple[Config, Runtime, StateStore]:
    config = load_config(args.config).config
    return config, Runtime.build(config), StateStore(config.state_dir)


def _print_reports(reports: list[Report]) -> int:
    for report in reports:
        decision = report.decision
        what = report.change or "no change"
        reason = decision.reason if decision else ""
        tail = f" (error: {report.error})" if report.error else ""
        mode = " [dry-run: not written]" if report.dry_run else ""
        print(f"{report.service}: {what}{mode} — {reason}{tail}")
        if decision is not None and decision.warning:
            print(f"  warning: {decision.warning}")
        if report.propagation is not None:
            print(
                f"  propagation {report.propagation.seconds:.3f}s: {report.propagation.summary()}"
            )
        v = report.verification
        if v is not None:
            seen = f"({v.through}{', ' + v.address if v.address else ''}): {v.reason}"
            verdict = f"clients get through {seen}" if v.ok else f"ALARM: clients fail {seen}"
            print(f"  {verdict}, after {v.seconds:.2f}s")
    return 1 if any(r.error for r in reports) else 0


# ----------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    if args.once:
        config, runtime, store = _runtime(args)
        try:
            if not args.dry_run:
                _not_coordinated(config, "run --once")
            return _print_reports(run_once(runtime, store, args.dry_run))
        finally:
            runtime.close()
    from dnsfailover.controller.daemon import Daemon

    return Daemon(args.config, dry_run=args.dry_run).run()


# ----------------------------------------------------------------------------- status


def _budgets(config: Config, store: StateStore) -> dict[str, Budget]:
    entries, _ = store.read_audit()
    return {
        key: convergence_budget(service, *measurements(entries, key))
        for key, service in config.services.items()
    }


def status_document(config: Config, runtime: Runtime, store: StateStore) -> dict[str, Any]:
    live: dict[str, tuple[Any, str | None, str | None]] = {}
    for key, service in config.services.items():
        try:
            record = runtime.provider_for(service).read(service.name, service.type)
            live[key] = (record, owner_of(service, record), None)
        except DnsFailoverError as e:
            live[key] = (None, None, str(e))
    return documents.status_document(
        config, store.load(), store.load_health(), store.daemon_pid(), live, _budgets(config, store)
    )


def _ago(when: float | None) -> str:
    return "-" if when is None else f"{time.time() - when:.0f}s ago"


def cmd_status(args: argparse.Namespace) -> int:
    config, runtime, store = _runtime(args)
    try:
        document = status_document(config, runtime, store)
    finally:
        runtime.close()
    if args.json:
        json.dump(document, sys.stdout, indent=2, default=str)
        print()
        return 0
    daemon = document["daemon"]
    print(
        f"daemon: {'running, pid ' + str(daemon['pid']) if daemon['running'] else 'not running'}"
        f"; health updated {_ago(daemon['health_updated'])}"
    )
    if "coordination" in document:
        print(_coordination_line(document["coordination"]))
    for key, entry in document["services"].items():
        print(f"\n{key}: {entry['name']} {entry['type']} → {entry['live']}  [{entry['instance']}]")
        for line in _service_lines(entry):
            print(f"  {line}")
    return 0


def _coordination_line(c: dict[str, Any]) -> str:
    """Who leads, whether this controller may write, etcd, and which sites report."""
    if "etcd" not in c:
        return f"coordination: site {c['site']}; no daemon here, so leadership is not known"
    role = "leading" if c["leading"] else f"following {c['leader'] or '(no leader)'}"
    writing = "writing" if c["writing_allowed"] else "not writing"
    etcd = c["etcd"] if c["etcd"] == "ok" else f"UNREACHABLE ({c['etcd_error']})"
    line = (
        f"coordination: site {c['site']}, {role} (token {c['token']}), {writing}; etcd {etcd}; "
        f"reporting {', '.join(c['reporting']) or 'none'} of {', '.join(c['sites'])} "
        f"(quorum {c['quorum']})"
    )
    if "dns" not in c:
        return line
    dns = c["dns"]
    reach = "reachable" if dns["reachable"] else f"UNREACHABLE ({dns['error']})"
    lines = [line, f"  {c['site']} (here): DNS {reach} for {dns['for']}s; probing {c['probing']}"]
    for site, seen in sorted(c.get("others", {}).items()):
        if not seen.get("reporting"):
            lines.append(f"  {site}: no report")
            continue
        fresh = "fresh" if seen["fresh"] else f"STALE ({seen['report_age']}s)"
        dns_ok = "reachable" if seen["dns_reachable"] else "UNREACHABLE"
        lines.append(f"  {site}: report {fresh}; DNS {dns_ok} (as it says)")
    return "\n".join(lines)


def _service_lines(entry: dict[str, Any]) -> list[str]:
    lines = []
    if "live_error" in entry:
        lines.append(f"cannot read the record: {entry['live_error']}")
    if entry["pin"]:
        lines.append(f"pinned to {entry['pin']['instance']}: {entry['pin']['reason']}")
    for name, h in entry["instances"].items():
        drained = " (drained)" if name in entry["drained"] else ""
        lines.append(f"{name}{drained}: {h.get('state')}  {h.get('reason', '')}")
        if name in entry.get("quorum", {}):
            q = entry["quorum"][name]
            lines.append(f"  quorum: {q['state']}  {q['reason']}")
    last = entry["last"] or {}
    if last.get("event") not in (None, "keep", "none"):
        lines.append(f"last: {last['event']}: {last.get('error') or last.get('reason')}")
    if last.get("warning"):
        lines.append(f"WARNING: {last['warning']}")
    if last.get("pending"):
        lines.append(f"PENDING (not written yet, retrying): {last['pending']}")
    writing = entry.get("writing")
    if writing and writing["kind"] == "unconfirmed":
        lines.append(
            f"UNCONFIRMED (written, not served everywhere yet; checked again): "
            f"{writing['change']}: {writing['propagation']}"
        )
    elif writing:
        over = f" — OVER its {writing['timeout']:.0f}s timeout" if writing["overdue"] else ""
        lines.append(f"writing for {writing['seconds']:.0f}s{over}: {writing['change']}")
    for flip in entry["flips"]:
        lines.append(
            f"flip {_ago(flip['at'])}: {flip['source']} → {flip['target']} ({flip['rule']})"
        )
    lines.append(f"convergence budget: {entry['budget']['text']}")
    return lines


# ----------------------------------------------------------------------------- plan


def _assumptions(values: list[str], config: Config) -> dict[str, State]:
    names = {i.name for s in config.services.values() for i in s.instances}
    assumed: dict[str, State] = {}
    for value in values:
        name, _, verdict = value.partition("=")
        if name not in names or verdict not in ("down", "up"):
            raise ConfigError(
                f"--assume {value}: use INSTANCE=down or INSTANCE=up "
                f"(instances: {', '.join(sorted(names))})"
            )
        assumed[name] = State.UNHEALTHY if verdict == "down" else State.HEALTHY
    return assumed


def _zone_file_provider(path: str, zone: str | None) -> Provider:
    import dns.zone

    from dnsfailover.providers.zonefile import ZoneFileProvider

    if zone is None:
        try:
            zone = str(dns.zone.from_file(path, relativize=False).origin)
        except Exception as e:  # dnspython raises many kinds for a file without $ORIGIN
            raise ConfigError(
                f"--zone-file {path}: cannot tell its zone ({e}); add --zone"
            ) from None
    settings = ZoneFileSettings(type="zonefile", path=path, zone=zone)
    return ZoneFileProvider("zone-file", settings)


def cmd_plan(args: argparse.Namespace) -> int:
    config, runtime, store = _runtime(args)
    try:
        assumed = _assumptions(args.assume, config)
        zone_file = _zone_file_provider(args.zone_file, args.zone) if args.zone_file else None
        budgets = _budgets(config, store)
        for report, provider in preview(runtime, store, assumed, zone_file):
            _print_plan(report, provider)
            print(f"  convergence budget: {budgets[report.service].text()}")
    finally:
        runtime.close()
    return 0


def _print_plan(report: Report, provider: Provider) -> None:
    key, decision = report.service, report.decision
    if report.error is not None:
        print(f"{key}: cannot read the record: {report.error}")
        return
    assert decision is not None
    if report.drift:
        print(f"{key}: {decision.reason}")
        return
    states = ", ".join(f"{n} {h.state.value}" for n, h in report.health.items())
    print(f"{key}: {decision.kind.value} ({decision.rule}): {decision.reason}  [{states}]")
    if decision.warning:
        print(f"  warning: {decision.warning}")
    if report.plan is not None and report.plan.change is not None:
        print("  " + provider.render(report.plan.change).replace("\n", "\n  "))


# ----------------------------------------------------------------------------- failover


def _service(config: Config, key: str) -> Service:
    if key not in config.services:
        raise ConfigError(f"no service {key!r} (services: {', '.join(config.services)})")
    return config.services[key]


def _not_coordinated(config: Config, what: str) -> None:
    """With several controllers only the leader writes DNS (with its fencing token): a
    command on one host must not write past it."""
    if config.coordination is not None:
        raise RefusedError(
            f"{what}: coordination is on, so only the leading daemon writes DNS "
            "(docs/several-sites.md)"
        )


def _failover_coordinated(
    args: argparse.Namespace, config: Config, runtime: Runtime, store: StateStore
) -> int:
    """Ask the leader: pin and request in etcd, wait for its outcome, then for the record on
    every authoritative server (bounded)."""
    assert config.coordination is not None
    service = config.services[args.service]
    with SharedStore(config.coordination) as shared:
        drains = shared.load().state.drains
        if args.to in drains and not args.force:
            raise RefusedError(
                f"{args.to} is drained ({drains[args.to].reason}): undrain it or use --force"
            )
        reason = args.reason or f"manual failover to {args.to}"
        request = shared.request_failover(args.service, args.to, reason)
        Journal(store).event("failover_requested", args.service, to=args.to, reason=reason,
                             request=request.id, site=config.coordination.site)  # fmt: skip
        provider = runtime.provider_for(service)
        lease = config.coordination.etcd.lease_ttl
        result = shared.wait_result(args.service, request, 2 * lease + provider.change_timeout + 5)
    print(
        f"{args.service}: {result.get('change') or 'no change'} — {result.get('outcome')} by "
        f"{result.get('site')} (fence {result.get('fence')})"
        + (f" (error: {result['error']})" if result.get("error") else "")
    )
    if result.get("error"):
        raise (ConflictError if result.get("event") == "conflict" else DnsFailoverError)(
            str(result["error"])
        )
    # The leader waited until every authoritative server served it ("applied"); from here,
    # the record as the authority holds it must name the target.
    if owner_of(service, provider.read(service.name, service.type)) != args.to:
        raise DnsFailoverError(f"{service.name} does not point at {args.to} after the write")
    if result.get("outcome") == "applied":
        print(f"  served: {result.get('propagation')}")
    elif result.get("outcome") == "applied_unconfirmed":
        print(f"  written, NOT served everywhere yet: {result.get('propagation')}")
    print(
        f"{args.service} is pinned to {args.to} on every controller; "
        f"`dnsfailover release {args.service}` lets automatic policy act again"
    )
    return 1 if result.get("outcome") == "applied_unconfirmed" else 0


def cmd_failover(args: argparse.Namespace) -> int:
    config, runtime, store = _runtime(args)
    try:
        service = _service(config, args.service)
        names = [i.name for i in service.instances]
        if args.to not in names:
            raise ConfigError(f"{args.service} has no instance {args.to!r} ({', '.join(names)})")
        state = store.load()
        jobs = [j for j in runtime.jobs if j.service == args.service and j.instance == args.to]
        health = one_round_health(probe_once(jobs)).get(args.service, {})
        target = health.get(args.to)
        if target is None or target.state is not State.HEALTHY:
            why = target.reason if target else "no result"
            if not args.force:
                raise RefusedError(
                    f"{args.to} is not healthy now ({why}): use --force to move anyway"
                )
            print(f"warning: --force: moving to {args.to} although it is not healthy ({why})")
        if config.coordination is not None:
            return _failover_coordinated(args, config, runtime, store)
        if args.to in state.drains and not args.force:
            raise RefusedError(
                f"{args.to} is drained ({state.drains[args.to].reason}): undrain it or use --force"
            )
        reason = args.reason or f"manual failover to {args.to}"
        with OneShot(runtime, store, {args.service: health}) as once:
            report = once.change(args.service, Intent(Origin.OPERATOR, args.to, reason))
            if report.error is not None:
                raise (ConflictError if report.conflict else DnsFailoverError)(report.error)
            Operator(LocalOverrides(store), once.journal).pin(args.service, args.to, reason)
    finally:
        runtime.close()
    code = _print_reports([report])
    print(
        f"{args.service} is pinned to {args.to}; `dnsfailover release {args.service}` "
        "lets automatic policy act again"
    )
    return code or (1 if report.verification and not report.verification.ok else 0)


def _operator(config: Config, store: StateStore) -> tuple[Operator, SharedStore | None]:
    """The operator's verbs on this controller's state.json, or on etcd's shared document
    with coordination (then close the returned store)."""
    journal = Journal(store)
    if config.coordination is None:
        return Operator(LocalOverrides(store), journal), None
    shared = SharedStore(config.coordination)
    return Operator(SharedOverrides(shared), journal, config.coordination.site), shared


def cmd_release(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    _service(config, args.service)
    operator, shared = _operator(config, StateStore(config.state_dir))
    try:
        pin = operator.release(args.service)
    finally:
        if shared is not None:
            shared.close()
    if pin is None:
        print(f"{args.service} is not pinned")
        return 0
    print(f"{args.service}: pin to {pin.instance} released; automatic policy resumes")
    return 0


# ----------------------------------------------------------------------------- drain


def _instance_known(config: Config, name: str) -> list[str]:
    services = [k for k, s in config.services.items() if any(i.name == name for i in s.instances)]
    if not services:
        raise ConfigError(f"no instance named {name!r} in any service")
    return services


def cmd_drain(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    services = _instance_known(config, args.instance)
    store = StateStore(config.state_dir)
    operator, shared = _operator(config, store)
    try:
        operator.drain(args.instance, args.reason)
    finally:
        if shared is not None:
            shared.close()
    if shared is not None:
        print(f"{args.instance} drained on every controller ({args.reason}); services: "
              f"{', '.join(services)}; the leader moves traffic away within one round")  # fmt: skip
        return 0
    print(f"{args.instance} drained ({args.reason}); services: {', '.join(services)}")
    pid = store.daemon_pid()
    if pid is not None:
        print(f"the daemon (pid {pid}) moves traffic away within one tick")
        return 0
    runtime = Runtime.build(config)
    try:
        return _print_reports(run_once(runtime, store, dry_run=False, services=services))
    finally:
        runtime.close()


def cmd_undrain(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    _instance_known(config, args.instance)
    operator, shared = _operator(config, StateStore(config.state_dir))
    try:
        found = operator.undrain(args.instance)
    finally:
        if shared is not None:
            shared.close()
    if not found:
        print(f"{args.instance} is not drained")
        return 0
    print(f"{args.instance} undrained; traffic does not move back by itself (sticky)")
    return 0
