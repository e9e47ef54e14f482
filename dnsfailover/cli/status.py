"""`dnsfailover status`: where each name points, each instance's health, the last decision,
a change being written or not served yet, the flips, the practice runs; with several
controllers, who leads and what every site reports.

From the running daemon (its control socket) when one runs, else built here from the state
directory, health.json and a live read of every record (replies.status_document, the same
document either way). `--json` prints the document itself.
Imports the socket client, the config, the runtime and state store (without a daemon) and
the status document's builder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from dnsfailover.cli.asking import ask_daemon, config_for_door, finish
from dnsfailover.config import load_config
from dnsfailover.controller.replies import status_document
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore


def _ago(when: float | None) -> str:
    return "-" if when is None else f"{time.time() - when:.0f}s ago"


def cmd_status(args: argparse.Namespace) -> int:
    answer = ask_daemon(config_for_door(args), {"verb": "status"})
    if answer is not None and not answer.ok:
        return finish(answer)
    if answer is not None:
        document = answer.result
    else:
        config = load_config(args.config).config
        runtime, store = Runtime.build(config), StateStore(config.state_dir)
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
    practice = entry.get("practice") or {}
    on, last = practice.get("on"), practice.get("last")
    if on is not None:
        lines.append(f"PRACTICE RUN {on['id']} on: {on['origin']} → {on['target']}, "
                     f"{on['phase']}; returns {_in(on.get('ends_at'))}")  # fmt: skip
    if last is not None and (on is None or last["id"] != on["id"]):
        why = f" — {last['why']}" if last.get("why") else ""
        lines.append(f"last practice run {_ago(last.get('ended_at'))}: {last['origin']} → "
                     f"{last['target']}: {last['outcome']}{why}")  # fmt: skip
    return lines


def _in(when: float | None) -> str:
    return "when its move is served" if when is None else f"in {max(0, when - time.time()):.0f}s"
