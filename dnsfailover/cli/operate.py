"""The operator's commands: run, status, plan, failover, release, drain, undrain.

Thin: each parses nothing itself, builds what it needs from the config, and calls the
controller. They work with or without a running daemon; pins and drains go to the state
directory, where the daemon reads them every tick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

from dnsfailover.config import load_config
from dnsfailover.config.consistency import in_zone
from dnsfailover.config.models import Config, ZoneFileProvider
from dnsfailover.controller.oneshot import one_round_health, probe_once
from dnsfailover.controller.reconcile import Reconciler, Report
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import Drain, Pin, StateStore
from dnsfailover.errors import ConfigError, DnsFailoverError, RefusedError
from dnsfailover.health import InstanceHealth, State
from dnsfailover.plan import make_plan, owner_of
from dnsfailover.policy import Decision, Kind, PolicyInput, decide
from dnsfailover.providers import Provider
from dnsfailover.rrset import describe


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
        if report.propagation is not None:
            print(
                f"  propagation {report.propagation.seconds:.3f}s: {report.propagation.summary()}"
            )
    return 1 if any(r.error for r in reports) else 0


# ----------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    if args.once:
        from dnsfailover.controller.daemon import run_once

        _, runtime, store = _runtime(args)
        try:
            return _print_reports(run_once(runtime, store, args.dry_run))
        finally:
            runtime.close()
    from dnsfailover.controller.daemon import Daemon

    return Daemon(args.config, dry_run=args.dry_run).run()


# ----------------------------------------------------------------------------- status


def status_document(config: Config, runtime: Runtime, store: StateStore) -> dict[str, Any]:
    state = store.load()
    health = store.load_health() or {}
    pid = store.daemon_pid()
    services: dict[str, Any] = {}
    for key, service in config.services.items():
        entry: dict[str, Any] = {"name": service.name, "type": service.type}
        try:
            live = runtime.provider_for(service).read(service.name, service.type)
            entry["live"] = describe(live)
            entry["instance"] = owner_of(service, live) or (
                "(absent)" if live is None else "(foreign: drift)"
            )
        except DnsFailoverError as e:
            entry["live"], entry["instance"] = None, None
            entry["live_error"] = str(e)
        known = health.get("services", {}).get(key, {}) if pid is not None else {}
        entry["instances"] = {
            i.name: known.get("instances", {}).get(i.name, {"state": "unknown (no daemon)"})
            for i in service.instances
        }
        entry["drained"] = sorted(i.name for i in service.instances if i.name in state.drains)
        pin = state.pins.get(key)
        entry["pin"] = None if pin is None else vars(pin)
        entry["last"] = known.get("last")
        entry["flips"] = [vars(f) for f in state.flips.get(key, ())][-5:]
        services[key] = entry
    return {
        "daemon": {"running": pid is not None, "pid": pid, "health_updated": health.get("updated")},
        "drains": {name: vars(d) for name, d in state.drains.items()},
        "services": services,
    }


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
    for key, entry in document["services"].items():
        print(f"\n{key}: {entry['name']} {entry['type']} → {entry['live']}  [{entry['instance']}]")
        if "live_error" in entry:
            print(f"  cannot read the record: {entry['live_error']}")
        if entry["pin"]:
            print(f"  pinned to {entry['pin']['instance']}: {entry['pin']['reason']}")
        for name, h in entry["instances"].items():
            drained = " (drained)" if name in entry["drained"] else ""
            print(f"  {name}{drained}: {h.get('state')}  {h.get('reason', '')}")
        if entry["last"] and entry["last"].get("event") not in (None, "keep", "none"):
            last = entry["last"]
            print(f"  last: {last['event']}: {last.get('error') or last.get('reason')}")
        if entry["last"] and entry["last"].get("pending"):
            print(f"  PENDING (not written yet, retrying): {entry['last']['pending']}")
        for flip in entry["flips"]:
            print(
                f"  flip {_ago(flip['at'])}: {flip['source']} → {flip['target']} ({flip['rule']})"
            )
    return 0


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

    from dnsfailover.providers.zonefile import ZoneFileProvider as FileProvider

    if zone is None:
        try:
            zone = str(dns.zone.from_file(path, relativize=False).origin)
        except Exception as e:  # dnspython raises many kinds for a file without $ORIGIN
            raise ConfigError(
                f"--zone-file {path}: cannot tell its zone ({e}); add --zone"
            ) from None
    settings = ZoneFileProvider(type="zonefile", path=path, zone=zone)
    return FileProvider("zone-file", settings)


def cmd_plan(args: argparse.Namespace) -> int:
    config, runtime, store = _runtime(args)
    try:
        assumed = _assumptions(args.assume, config)
        state = store.load()
        health = one_round_health(probe_once(runtime.jobs))
        file_provider = _zone_file_provider(args.zone_file, args.zone) if args.zone_file else None
        for key, service in config.services.items():
            provider = runtime.provider_for(service)
            if file_provider is not None and in_zone(service.name, file_provider.zone):
                provider = file_provider
            _plan_one(key, service, provider, health.get(key, {}), assumed, state)
    finally:
        runtime.close()
    return 0


def _plan_one(
    key: str,
    service: Any,
    provider: Provider,
    health: dict[str, InstanceHealth],
    assumed: dict[str, State],
    state: Any,
) -> None:
    health = {n: replace(h, state=assumed.get(n, h.state)) for n, h in health.items()}
    try:
        live = provider.read(service.name, service.type)
    except DnsFailoverError as e:
        print(f"{key}: cannot read {service.name}: {e}")
        return
    owner = owner_of(service, live)
    if live is not None and owner is None and not service.adopt:
        print(f"{key}: {service.name} holds {describe(live)}, no instance's record: left alone")
        return
    pin = state.pins.get(key)
    decision = decide(
        PolicyInput(
            service,
            health,
            owner,
            pin.instance if pin else None,
            frozenset(state.drains),
            state.flip_times(key),
            time.time(),
        )
    )
    plan = make_plan(key, service, decision, live)
    states = ", ".join(f"{n} {h.state.value}" for n, h in health.items())
    print(f"{key}: {decision.kind.value} ({decision.rule}): {decision.reason}  [{states}]")
    if plan.change is not None:
        print("  " + provider.render(plan.change).replace("\n", "\n  "))


# ----------------------------------------------------------------------------- failover


def _service(config: Config, key: str) -> Any:
    if key not in config.services:
        raise ConfigError(f"no service {key!r} (services: {', '.join(config.services)})")
    return config.services[key]


def cmd_failover(args: argparse.Namespace) -> int:
    config, runtime, store = _runtime(args)
    try:
        service = _service(config, args.service)
        names = [i.name for i in service.instances]
        if args.to not in names:
            raise ConfigError(f"{args.service} has no instance {args.to!r} ({', '.join(names)})")
        state = store.load()
        jobs = [j for j in runtime.jobs if j.service == args.service and j.instance == args.to]
        observations = probe_once(jobs)
        health = one_round_health(observations).get(args.service, {})
        target = health.get(args.to)
        if target is None or target.state is not State.HEALTHY:
            why = target.reason if target else "no result"
            if not args.force:
                raise RefusedError(
                    f"{args.to} is not healthy now ({why}): use --force to move anyway"
                )
            print(f"warning: --force: moving to {args.to} although it is not healthy ({why})")
        if args.to in state.drains and not args.force:
            raise RefusedError(
                f"{args.to} is drained ({state.drains[args.to].reason}): undrain it or use --force"
            )
        reason = args.reason or f"manual failover to {args.to}"
        manual = Decision(Kind.MOVE, None, args.to, "manual", reason)
        report = Reconciler(store).reconcile(
            args.service, service, runtime.provider_for(service), health, manual=manual
        )
        with store.locked():
            state = store.load()
            pin = Pin(args.to, reason, time.time())
            store.save(replace(state, pins={**state.pins, args.service: pin}))
        store.audit({"service": args.service, "event": "pin", "to": args.to, "reason": reason})
    finally:
        runtime.close()
    code = _print_reports([report])
    print(
        f"{args.service} is pinned to {args.to}; `dnsfailover release {args.service}` "
        "lets automatic policy act again"
    )
    return code


def cmd_release(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    _service(config, args.service)
    store = StateStore(config.state_dir)
    with store.locked():
        state = store.load()
        pin = state.pins.get(args.service)
        if pin is None:
            print(f"{args.service} is not pinned")
            return 0
        pins = {k: v for k, v in state.pins.items() if k != args.service}
        store.save(replace(state, pins=pins))
    store.audit({"service": args.service, "event": "release", "from": pin.instance})
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
    with store.locked():
        state = store.load()
        drains = {**state.drains, args.instance: Drain(args.reason, time.time())}
        store.save(replace(state, drains=drains))
    store.audit({"event": "drain", "instance": args.instance, "reason": args.reason})
    print(f"{args.instance} drained ({args.reason}); services: {', '.join(services)}")
    pid = store.daemon_pid()
    if pid is not None:
        print(f"the daemon (pid {pid}) moves traffic away within one tick")
        return 0
    runtime = Runtime.build(config)
    try:
        jobs = [j for j in runtime.jobs if j.service in services]
        health = one_round_health(probe_once(jobs))
        reconciler = Reconciler(store, dry_run=config.dry_run)
        reports = [
            reconciler.reconcile(
                key,
                config.services[key],
                runtime.provider_for(config.services[key]),
                health.get(key, {}),
            )
            for key in services
        ]
    finally:
        runtime.close()
    return _print_reports(reports)


def cmd_undrain(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    _instance_known(config, args.instance)
    store = StateStore(config.state_dir)
    with store.locked():
        state = store.load()
        if args.instance not in state.drains:
            print(f"{args.instance} is not drained")
            return 0
        drains = {k: v for k, v in state.drains.items() if k != args.instance}
        store.save(replace(state, drains=drains))
    store.audit({"event": "undrain", "instance": args.instance})
    print(f"{args.instance} undrained; traffic does not move back by itself (sticky)")
    return 0
