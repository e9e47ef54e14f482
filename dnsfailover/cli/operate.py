"""The operator's commands: run, plan, failover, release, drain, undrain (status: status.py).

Thin. `failover`, `release`, `drain` and `undrain` go through the daemon's control socket
(asking.py) when a daemon runs (door.py carries them out with its own state files and secrets; the
CLI needs neither, and prints the daemon's answer with its exit code). Without a daemon they
act alone, as one-shot commands (operator.py on state.json, oneshot.py for a change) — one
controller only, and never into a state directory another user owns (the daemon could not read
what root writes there). `plan` and `run --once` always act alone.
"""

from __future__ import annotations

import argparse
import os
import pwd
from pathlib import Path

from dnsfailover.cli.asking import ask_daemon, config_for_door, finish
from dnsfailover.config import load_config
from dnsfailover.config.models import Config, Service, ZoneFileSettings
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.oneshot import OneShot, one_round_health, preview, probe_once, run_once
from dnsfailover.controller.operator import LocalOverrides, Operator
from dnsfailover.controller.replies import budgets, report_lines
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import ConfigError, ConflictError, DnsFailoverError, RefusedError
from dnsfailover.health import State
from dnsfailover.providers import Provider


def _runtime(args: argparse.Namespace) -> tuple[Config, Runtime, StateStore]:
    config = load_config(args.config).config
    return config, Runtime.build(config), StateStore(config.state_dir)


def _print_reports(reports: list[Report]) -> int:
    for report in reports:
        for line in report_lines(report):
            print(line)
    return 1 if any(r.error for r in reports) else 0


def _alone(config: Config, what: str) -> None:
    """No daemon runs here: act alone, if that is safe."""
    if config.coordination is not None:
        raise RefusedError(
            f"{what}: coordination is on and no daemon runs here (none answers on "
            f"{config.control_socket}): run it on a host whose dnsfailover daemon runs; that "
            "daemon relays it into etcd for the leader"
        )
    _own_state_directory(config.state_dir, what)


def _own_state_directory(directory: Path, what: str) -> None:
    """Files written into another user's state directory would be ours, and the daemon
    could not read them (it would then make no decision at all): refuse."""
    try:
        owner = directory.stat().st_uid
    except OSError:
        return  # not there yet (created as ours) or not ours to see: the write says why
    me = os.geteuid()
    if owner == me:
        return
    try:
        name = f"user {pwd.getpwuid(owner).pw_name!r} (uid {owner})"
    except KeyError:
        name = f"uid {owner} (no user has it now: a DynamicUser= exists while its unit runs)"
    raise ConfigError(
        f"{what}: the state directory {directory} belongs to {name}, not to you (uid {me}), "
        "and no daemon runs to do it: what you wrote would be yours and the daemon could not "
        "read it. Start the daemon (`systemctl start dnsfailover`) and run this again, or run "
        "it as that user (`sudo -u USER dnsfailover ...`), or under systemd as the unit's "
        "user: `systemd-run --pipe --wait --property=DynamicUser=yes --property=User=dnsfailover "
        "--property=StateDirectory=dnsfailover --property=LoadCredential=tsig:/etc/dnsfailover/"
        "tsig.key dnsfailover ...`"
    )


# ----------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    if args.once:
        config, runtime, store = _runtime(args)
        try:
            if not args.dry_run:
                _not_coordinated(config, "run --once")
                _own_state_directory(config.state_dir, "run --once")
            return _print_reports(run_once(runtime, store, args.dry_run))
        finally:
            runtime.close()
    from dnsfailover.controller.daemon import Daemon

    return Daemon(args.config, dry_run=args.dry_run).run()


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
        found = budgets(config, store)
        for report, provider in preview(runtime, store, assumed, zone_file):
            _print_plan(report, provider)
            print(f"  convergence budget: {found[report.service].text()}")
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


def cmd_failover(args: argparse.Namespace) -> int:
    request = {"verb": "failover", "service": args.service, "to": args.to,
               "reason": args.reason, "force": args.force}  # fmt: skip
    answer = ask_daemon(config_for_door(args), request)
    if answer is not None:
        return finish(answer)
    config, runtime, store = _runtime(args)
    try:
        service = _service(config, args.service)
        names = [i.name for i in service.instances]
        if args.to not in names:
            raise ConfigError(f"{args.service} has no instance {args.to!r} ({', '.join(names)})")
        _alone(config, "failover")
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


def _local_operator(args: argparse.Namespace, what: str) -> tuple[Config, StateStore, Operator]:
    """No daemon answered: the operator's verbs on this host's state.json, if that is safe."""
    config = load_config(args.config).config
    _alone(config, what)
    store = StateStore(config.state_dir)
    return config, store, Operator(LocalOverrides(store), Journal(store))


def cmd_release(args: argparse.Namespace) -> int:
    config = config_for_door(args)
    _service(config, args.service)
    answer = ask_daemon(config, {"verb": "release", "service": args.service})
    if answer is not None:
        return finish(answer)
    pin = _local_operator(args, "release")[2].release(args.service)
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
    config = config_for_door(args)
    _instance_known(config, args.instance)
    request = {"verb": "drain", "instance": args.instance, "reason": args.reason}
    answer = ask_daemon(config, request)
    if answer is not None:
        return finish(answer)
    config, store, operator = _local_operator(args, "drain")
    services = _instance_known(config, args.instance)
    operator.drain(args.instance, args.reason)
    print(f"{args.instance} drained ({args.reason}); services: {', '.join(services)}")
    runtime = Runtime.build(config)
    try:
        return _print_reports(run_once(runtime, store, dry_run=False, services=services))
    finally:
        runtime.close()


def cmd_undrain(args: argparse.Namespace) -> int:
    config = config_for_door(args)
    _instance_known(config, args.instance)
    answer = ask_daemon(config, {"verb": "undrain", "instance": args.instance})
    if answer is not None:
        return finish(answer)
    if not _local_operator(args, "undrain")[2].undrain(args.instance):
        print(f"{args.instance} is not drained")
        return 0
    print(f"{args.instance} undrained; traffic does not move back by itself (sticky)")
    return 0
