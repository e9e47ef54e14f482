"""The operator's door: what the daemon does for each control-socket request (see
docs/control-socket.md).

The socket thread (control.py) hands each request here. Nothing here touches a service's
record from that thread: what changes a record — an operator's `failover` (an intent of
origin OPERATOR), the re-decision after a `drain` — is a `Call` put on the daemon's queue and
run on the controller thread, where it feeds `Wake(intent)` into the daemon's own `Changes`,
so the change takes the one path (prepare, write, confirm, verify, journal). The socket thread
waits for it: each intent carries an id, and `Waiters` (told by the controller when a change
concludes and when its flip is verified) hands the concluded report back. The answer is that
report: written, served by every authority, verified as a client, or why not.
The operator's verbs (pin, release, drain, undrain) go through `Operator` with the daemon's
journal: on the controller thread with one controller; with coordination the daemon relays
them into etcd (its own credentials: the CLI needs none), and a failover becomes a request for
the leader (`SharedStore.request_failover`), whose outcome the socket thread waits for. A
drill is handed to the controller (one controller) or put in etcd for whichever controller
leads (`SharedStore.request_drill`); the CLI follows the run's report in the state directory.
Imports the controller, waiting.py and replies.py, and the modules below; the daemon imports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from dnsfailover.config.models import Config
from dnsfailover.controller import documents
from dnsfailover.controller.control import (
    CONFLICT,
    FAILURE,
    OK,
    REFUSED,
    USAGE,
    Answer,
    ControlServer,
    Peer,
    Request,
)
from dnsfailover.controller.controller import Controller
from dnsfailover.controller.machine import Wake
from dnsfailover.controller.oneshot import one_round_health, probe_once
from dnsfailover.controller.operator import LocalOverrides, Operator, SharedOverrides
from dnsfailover.controller.replies import report_exit, report_lines, status_document
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.controller.runs import DrillRequest
from dnsfailover.controller.shared import SharedStore
from dnsfailover.controller.verify import window as verify_window
from dnsfailover.controller.waiting import Call, Waiter, Waiters
from dnsfailover.errors import DnsFailoverError
from dnsfailover.health import State
from dnsfailover.plan import owner_of

log = logging.getLogger(__name__)

SLACK = 10.0  # seconds a request waits beyond its change's own budget


# ----------------------------------------------------------------------------- the door


class Door:
    def __init__(self, controller: Controller, put: Callable[[Call], None]) -> None:
        self.controller = controller
        self.put = put
        self.waiters = Waiters()
        self.server: ControlServer | None = None
        # The controller tells us when a change concludes and when its flip is verified.
        controller.on_concluded.append(self._concluded)
        controller.on_verified.append(self.waiters.verified)

    def _concluded(self, report: Report) -> None:
        settings = self.controller.runtime.config.services.get(report.service)
        self.waiters.concluded(report, settings is not None and settings.client_verify)

    def open(self, path: Path) -> None:
        self.server = ControlServer(path, self.handle)
        self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    # ------------------------------------------------------------------ on the socket thread

    @property
    def config(self) -> Config:
        return self.controller.runtime.config

    def handle(self, request: Request, peer: Peer) -> Answer:
        verbs: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "status": self._status,
            "failover": self._failover,
            "release": self._release,
            "drain": self._drain,
            "undrain": self._undrain,
            "drill": self._drill,
        }
        try:
            return verbs[request.verb](dict(request.fields))
        except DnsFailoverError as e:
            return Answer.failed(FAILURE, str(e))

    def _on_controller(self, run: Callable[[Controller], Any], timeout: float) -> Any:
        call = Call(run)
        self.put(call)
        try:
            return call.future.result(timeout)
        except FutureTimeout:
            if not call.future.cancel():  # it runs right now: it ends at once
                return call.future.result()
            raise DnsFailoverError(
                f"the daemon did not take the request within {timeout:.0f}s (is its loop "
                "stuck?): nothing was done"
            ) from None

    def _wait(self, intent_id: str, waiter: Waiter, timeout: float) -> Report:
        try:
            return waiter.future.result(timeout)
        except FutureTimeout:
            pass
        report = waiter.report
        self._on_controller(lambda c: self.waiters.forget(intent_id), 10)
        if report is None:
            raise DnsFailoverError(
                f"{waiter.service}: the change did not conclude within {timeout:.0f}s; the "
                "daemon goes on with it: `dnsfailover status`"
            )
        return report  # concluded, its client check not over in time

    def _budget(self, service: str) -> float:
        settings = self.config.services[service]
        provider = self.controller.runtime.provider_for(settings)
        verify = verify_window(settings) if settings.client_verify else 0.0
        return provider.change_timeout + verify + 2 * self.controller.tick + SLACK

    def _status(self, fields: dict[str, Any]) -> Answer:
        runtime = self.controller.runtime
        document = status_document(runtime.config, runtime, self.controller.store)
        return Answer(result=document)

    def _unknown_service(self, service: str) -> Answer | None:
        if service in self.config.services:
            return None
        return Answer.failed(USAGE, f"no service {service!r} (services: "
                                    f"{', '.join(self.config.services)})")  # fmt: skip

    def _services_of(self, instance: str) -> list[str]:
        return [k for k, s in self.config.services.items()
                if any(i.name == instance for i in s.instances)]  # fmt: skip

    # ------------------------------------------------------------------ failover

    def _failover(self, fields: dict[str, Any]) -> Answer:
        service, to, force = fields["service"], fields["to"], fields.get("force", False)
        unknown = self._unknown_service(service)
        if unknown is not None:
            return unknown
        names = [i.name for i in self.config.services[service].instances]
        if to not in names:
            return Answer.failed(USAGE, f"{service} has no instance {to!r} ({', '.join(names)})")
        lines: list[str] = []
        # A fresh round of the target's probes, as without a daemon: the daemon's own view may
        # be up to `fall` intervals old.
        jobs = [
            j for j in self.controller.runtime.jobs if j.service == service and j.instance == to
        ]
        target = one_round_health(probe_once(jobs)).get(service, {}).get(to)
        if target is None or target.state is not State.HEALTHY:
            why = target.reason if target else "no result"
            if not force:
                return Answer.failed(REFUSED, f"{to} is not healthy now ({why}): use --force to "
                                              "move anyway")  # fmt: skip
            lines.append(f"warning: --force: moving to {to} although it is not healthy ({why})")
        reason = fields.get("reason") or f"manual failover to {to}"
        if self.config.coordination is not None:
            return self._failover_relayed(service, to, reason, force, lines)
        drains = self.controller.store.load().drains
        if to in drains and not force:
            return Answer.failed(REFUSED, f"{to} is drained ({drains[to].reason}): undrain it "
                                          "or use --force")  # fmt: skip

        def pin(report: Report) -> None:
            Operator(LocalOverrides(self.controller.store), self.controller.journal).pin(
                service, to, reason
            )

        def start(controller: Controller) -> tuple[str, Waiter]:
            intent_id, waiter = self.waiters.add(service, pin)
            controller.changes.feed(
                service, Wake(Intent(Origin.OPERATOR, to, reason, id=intent_id))
            )
            return intent_id, waiter

        intent_id, waiter = self._on_controller(start, 10)
        report = self._wait(intent_id, waiter, self._budget(service))
        lines += report_lines(report)
        code = report_exit(report)
        if report.error is None:
            lines.append(f"{service} is pinned to {to}; `dnsfailover release {service}` lets "
                         "automatic policy act again")  # fmt: skip
            return Answer(True, code, lines, None, documents.last_summary(report))
        return Answer(False, code, lines, report.error, documents.last_summary(report))

    def _failover_relayed(
        self, service: str, to: str, reason: str, force: bool, lines: list[str]
    ) -> Answer:
        """Coordinated: pin and request in etcd, wait for the leader's outcome, then for the
        record at the authority (the CLI's old path, done by the daemon)."""
        coordination = self.config.coordination
        assert coordination is not None
        settings = self.config.services[service]
        provider = self.controller.runtime.provider_for(settings)
        with SharedStore(coordination) as shared:
            drains = shared.load().state.drains
            if to in drains and not force:
                return Answer.failed(REFUSED, f"{to} is drained ({drains[to].reason}): undrain "
                                              "it or use --force")  # fmt: skip
            request = shared.request_failover(service, to, reason)
            self.controller.journal.event("failover_requested", service, to=to, reason=reason,
                                          request=request.id, site=coordination.site)  # fmt: skip
            wait = 2 * coordination.etcd.lease_ttl + provider.change_timeout + 5
            result = shared.wait_result(service, request, wait)
        lines.append(
            f"{service}: {result.get('change') or 'no change'} — {result.get('outcome')} by "
            f"{result.get('site')} (fence {result.get('fence')})"
            + (f" (error: {result['error']})" if result.get("error") else "")
        )
        if result.get("error"):
            code = CONFLICT if result.get("event") == "conflict" else FAILURE
            return Answer(False, code, lines, str(result["error"]), result)
        if owner_of(settings, provider.read(settings.name, settings.type)) != to:
            return Answer(False, FAILURE, lines, f"{settings.name} does not point at {to} after "
                                                 "the write", result)  # fmt: skip
        if result.get("outcome") == "applied":
            lines.append(f"  served: {result.get('propagation')}")
        elif result.get("outcome") == "applied_unconfirmed":
            lines.append(f"  written, NOT served everywhere yet: {result.get('propagation')}")
        lines.append(
            f"{service} is pinned to {to} on every controller; "
            f"`dnsfailover release {service}` lets automatic policy act again"
        )
        code = FAILURE if result.get("outcome") == "applied_unconfirmed" else OK
        return Answer(code == OK, code, lines, None, result)

    # ------------------------------------------------------------------ the operator's verbs

    def _verb(self, act: Callable[[Operator], Any]) -> Any:
        """One verb through `Operator` with the daemon's journal: on the controller thread with
        one controller; relayed into etcd (from here: it may wait on etcd) with several."""
        coordination = self.config.coordination
        if coordination is None:
            store = self.controller.store
            return self._on_controller(
                lambda c: act(Operator(LocalOverrides(store), c.journal)), 30
            )
        with SharedStore(coordination) as shared:
            operator = Operator(SharedOverrides(shared), self.controller.journal, coordination.site)
            return act(operator)

    def _release(self, fields: dict[str, Any]) -> Answer:
        service = fields["service"]
        unknown = self._unknown_service(service)
        if unknown is not None:
            return unknown
        pin = self._verb(lambda o: o.release(service))
        if pin is None:
            return Answer(lines=[f"{service} is not pinned"])
        return Answer(
            lines=[f"{service}: pin to {pin.instance} released; automatic policy resumes"]
        )

    def _drill(self, fields: dict[str, Any]) -> Answer:
        """A practice run asked for (or cancelled): handed to the controller, which takes it
        at its next tick as a practice intent (drills.py); with several controllers, put in
        etcd for whichever leads (shared.py). The run's report tells the rest (the CLI reads
        it in the state directory: a follower mirrors the leader's)."""
        service = fields["service"]
        unknown = self._unknown_service(service)
        if unknown is not None:
            return unknown
        names = [i.name for i in self.config.services[service].instances]
        if fields.get("to") is not None and fields["to"] not in names:
            return Answer.failed(USAGE, f"{service} has no instance {fields['to']!r} "
                                        f"({', '.join(names)})")  # fmt: skip
        try:
            request = DrillRequest.from_json({**fields, "at": time.time()})
        except (TypeError, ValueError) as e:
            return Answer.failed(USAGE, f"drill: {e}")
        coordination = self.config.coordination
        if coordination is None:
            self._on_controller(lambda c: c.runs.ask(request), 30)
            return Answer(lines=[f"{service}: practice run {request.id} asked"])
        with SharedStore(coordination) as shared:  # whoever leads carries it out
            shared.request_drill(service, request)
        self.controller.journal.event("drill_requested", service, run=request.id,
                                      to=request.to, cancel=request.cancel,
                                      site=coordination.site)  # fmt: skip
        return Answer(lines=[f"{service}: practice run {request.id} asked of the leader"])

    def _undrain(self, fields: dict[str, Any]) -> Answer:
        instance = fields["instance"]
        if not self._services_of(instance):
            return Answer.failed(USAGE, f"no instance named {instance!r} in any service")
        if not self._verb(lambda o: o.undrain(instance)):
            return Answer(lines=[f"{instance} is not drained"])
        return Answer(lines=[f"{instance} undrained; traffic does not move back by itself "
                             "(sticky)"])  # fmt: skip

    def _drain(self, fields: dict[str, Any]) -> Answer:
        instance, reason = fields["instance"], fields["reason"]
        services = self._services_of(instance)
        if not services:
            return Answer.failed(USAGE, f"no instance named {instance!r} in any service")
        if self.config.coordination is not None:
            self._verb(lambda o: o.drain(instance, reason))
            return Answer(lines=[f"{instance} drained on every controller ({reason}); services: "
                                 f"{', '.join(services)}; the leader moves traffic away within "
                                 "one round"])  # fmt: skip

        def start(controller: Controller) -> list[tuple[str, Waiter]]:
            Operator(LocalOverrides(controller.store), controller.journal).drain(instance, reason)
            waiting = []
            for service in services:  # decide again now, with the drain
                intent_id, waiter = self.waiters.add(service)
                controller.changes.feed(service, Wake(Intent(id=intent_id)))
                waiting.append((intent_id, waiter))
            return waiting

        waiting = self._on_controller(start, 30)
        lines = [f"{instance} drained ({reason}); services: {', '.join(services)}"]
        code = OK
        deadline = time.monotonic() + max(self._budget(s) for s in services)
        reports = []
        for intent_id, waiter in waiting:
            report = self._wait(intent_id, waiter, max(0.0, deadline - time.monotonic()))
            reports.append(report)
            lines += report_lines(report)
            code = max(code, report_exit(report))
        error = next((r.error for r in reports if r.error), None)
        return Answer(code == OK, code, lines, error)
