"""`dnsfailover drill`: ask the running daemon for a practice run, a cancel, or a report.

Thin: the request goes to the daemon, which carries the run through the one change path and
writes its report in the state directory (practice/reports/<id>.json); this command waits for
that report to say what the exit codes (docs/practice-runs.md) need. The daemon is required:
a run that starts needs someone to bring the name back (exit 2 without one). The request goes
through the daemon's control socket (door.py), which hands it to the controller at its next
tick — with several controllers, to etcd for whichever controller leads, on any site; the
local daemon mirrors the leader's report. The CLI writes nothing into the state directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from dnsfailover.cli import exitcodes
from dnsfailover.cli.asking import ask_daemon, config_for_door, finish
from dnsfailover.config import load_config
from dnsfailover.config.durations import human, parse_duration
from dnsfailover.config.models import Config, PracticeSettings, Service
from dnsfailover.controller.runs import DrillRequest, RunStore
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.controller.verify import window as verify_window
from dnsfailover.errors import ConfigError

POLL = 0.2  # seconds between reads of the run's report
TICK = 10.0  # the daemon's longest tick: a request waits at most this long to be taken


HELP = """exit codes (docs/practice-runs.md):
  0  the run started and its move is served by every authority
     (--wait: it ended SUCCEEDED; --cancel: the return is served)
  1  the move could not be made or served in time
     (--wait: FAILED, INTERRUPTED or CANCELLED, with its reason)
  2  bad usage or configuration, or no running daemon to bring the name back
  3  a gate refused (named); --ignore-window overrides windows and blocked dates only"""


def add_parser(commands: Any, add: Any) -> None:
    drill = add(
        commands,
        "drill",
        cmd_drill,
        "practice run: move SERVICE to INSTANCE for DURATION and back (needs the daemon)",
    )
    drill.epilog = HELP
    drill.add_argument("service")
    drill.add_argument("--to", metavar="INSTANCE", help="default: practice.to, or the next healthy")
    drill.add_argument("--for", dest="duration", metavar="DURATION",
                       help="how long, e.g. 30m (default: practice.duration, 30m)")  # fmt: skip
    drill.add_argument("--reason", help="recorded in the run's report and the audit log")
    drill.add_argument("--wait", action="store_true", help="wait for the run's end and outcome")
    drill.add_argument("--cancel", action="store_true", help="end the run on now: back at once")
    drill.add_argument("--ignore-window", action="store_true",
                       help="run outside the windows, on a blocked date")  # fmt: skip
    drill.add_argument("--report", action="store_true", help="print the service's last run")
    drill.add_argument("--json", action="store_true", help="--report: the report as JSON")


def _service(config: Config, key: str) -> Service:
    if key not in config.services:
        raise ConfigError(f"no service {key!r} (services: {', '.join(config.services)})")
    return config.services[key]


def cmd_drill(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    service = _service(config, args.service)
    runs, store = RunStore(config.state_dir), StateStore(config.state_dir)
    if args.report:
        return _print_last(runs, args.service, args.json)
    names = [i.name for i in service.instances]
    if args.to is not None and args.to not in names:
        raise ConfigError(f"{args.service} has no instance {args.to!r} ({', '.join(names)})")
    try:
        duration = parse_duration(args.duration) if args.duration else None
    except ValueError as e:
        raise ConfigError(f"--for: {e}") from None
    if store.daemon_pid() is None:
        print(f"error: no dnsfailover daemon runs on {config.state_dir}: nobody would "
              "bring the name back; start it (systemctl start dnsfailover)",
              file=sys.stderr)  # fmt: skip
        return exitcodes.USAGE
    settings = service.practice or PracticeSettings()
    if args.cancel:
        current = runs.current(args.service)
        if current is None:
            print(f"{args.service}: no practice run is on")
            return exitcodes.OK
        run_id = current.id
    else:
        run_id = uuid.uuid4().hex[:12]
    reason = args.reason or ("cancelled" if args.cancel else "practice run (drill)")
    request = DrillRequest(run_id, args.service, args.to, duration, reason, time.time(),
                           args.ignore_window, args.cancel)  # fmt: skip
    answer = ask_daemon(config_for_door(args), {"verb": "drill", **{
        k: v for k, v in vars(request).items() if k != "at" and v is not None}})  # fmt: skip
    if answer is None or not answer.ok:  # the daemon audits what it does with it
        return finish(answer) if answer is not None else exitcodes.USAGE
    step = _step_timeout(config, service, settings)
    if args.cancel:
        return _outcome(_wait(runs, run_id, lambda r: r["phase"] == "ended", step))
    started = _wait(runs, run_id, lambda r: _has(r, "go.served"), step)
    if started is None or started["outcome"] == "REFUSED" or not args.wait:
        return _outcome(started, leg="go")
    ends = float(started.get("ends_at") or time.time()) - time.time()
    return _outcome(_wait(runs, run_id, lambda r: r["phase"] == "ended", max(0, ends) + step))


def _step_timeout(config: Config, service: Service, settings: PracticeSettings) -> float:
    """How long one switch may take: taken at the next tick, written, served, verified, and
    the operator's commands; with several controllers also two rounds of etcd each way (the
    request to the leader, its report back) and a lease's expiry (a leader that died)."""
    runtime = Runtime.build(config, providers_too=True)
    try:
        change = runtime.provider_for(service).change_timeout
    finally:
        runtime.close()
    commands = sum(c.timeout for c in (settings.blocking_command, settings.outcome_command) if c)
    relay = 0.0
    if config.coordination is not None:
        relay = 2 * config.coordination.etcd.lease_ttl + TICK
    return 2 * TICK + change + verify_window(service) + commands + relay


def _has(report: dict[str, Any], step: str) -> bool:
    return any(t.get("step") == step for t in report.get("timeline", ()))


def _wait(runs: RunStore, run_id: str, done: Any, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = runs.report(run_id)
        if report is not None and (done(report) or report["phase"] == "ended"):
            return report
        time.sleep(POLL)
    return runs.report(run_id)


def _outcome(report: dict[str, Any] | None, leg: str = "back") -> int:
    if report is None:
        print("error: the daemon did not take the request in time (is it running? "
              "`dnsfailover status`)", file=sys.stderr)  # fmt: skip
        return exitcodes.FAILURE
    _print_report(report)
    outcome = report["outcome"]
    if outcome == "REFUSED":
        return exitcodes.REFUSED
    if report["phase"] != "ended":  # started: its move is served everywhere, or not (yet)
        return exitcodes.OK if _has(report, f"{leg}.served") else exitcodes.FAILURE
    if outcome == "SUCCEEDED":
        return exitcodes.OK
    if outcome == "CANCELLED":
        return exitcodes.OK if _has(report, "back.served") else exitcodes.FAILURE
    return exitcodes.FAILURE


def _print_report(report: dict[str, Any]) -> None:
    service, target, origin = report["service"], report["target"], report["origin"]
    print(f"{service}: practice run {report['id']} {origin or '?'} → {target or '?'} "
          f"for {human(report['duration'])}: {report['phase']}, {report['outcome']}"
          + (f" — {report['why']}" if report.get("why") else ""))  # fmt: skip
    timeline = report.get("timeline") or []
    first = timeline[0]["at"] if timeline else 0.0
    for mark in timeline:
        print(f"  +{mark['at'] - first:8.3f}s  {mark['step']}")
    for check in report.get("checks") or []:
        state = "passed" if check["passed"] else f"FAILED (exit {check['exit']})"
        print(f"  {check['name']} {check['when']}: {state} in {check['seconds']:.1f}s")
        for line in check["lines"][-5:]:
            print(f"    | {line}")
    if report["phase"] != "ended" and report.get("ends_at"):
        print(f"  returns to {origin} in {human(report['ends_at'] - time.time())} "
              f"(`dnsfailover drill {service} --cancel` to end it now)")  # fmt: skip


def _print_last(runs: RunStore, service: str, as_json: bool) -> int:
    current = runs.current(service)
    report = runs.report(current.id) if current is not None else runs.last_report(service)
    if report is None:
        print(f"{service}: no practice run yet")
        return exitcodes.OK
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        _print_report(report)
    return exitcodes.OK
