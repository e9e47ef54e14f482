"""The control socket's protocol and server (controller/control.py) and the door's waiting
(controller/door.py): every request is answered, none raises into the daemon."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnsfailover.controller.control import (
    Answer,
    ControlServer,
    Peer,
    PeerPolicy,
    Request,
    Unreachable,
    ask,
    parse_request,
)
from dnsfailover.controller.report import Intent, Report
from dnsfailover.controller.waiting import Call, Waiters


@pytest.mark.parametrize(
    ("line", "error"),
    [
        pytest.param(b"{not json", "not JSON", id="bad_json"),
        pytest.param(b"[1, 2]", 'with a "verb"', id="not_an_object"),
        pytest.param(b'{"verb": "reboot"}', "unknown verb", id="unknown_verb"),
        pytest.param(b'{"verb": "drain", "instance": "a"}', "'reason' is required", id="missing"),
        pytest.param(b'{"verb": "release", "service": 3}', "must be a str", id="wrong_type"),
        pytest.param(
            b'{"verb": "failover", "service": "s", "to": "b", "force": "yes"}',
            "'force' must be a bool",
            id="force_not_bool",
        ),
        pytest.param(b'{"verb": "status", "x": 1}', "unknown fields ['x']", id="unknown_field"),
    ],
)
def test_a_bad_request_is_a_usage_error(line: bytes, error: str) -> None:
    answer = parse_request(line)
    assert isinstance(answer, Answer)
    assert (answer.ok, answer.exit) == (False, 2)
    assert answer.error is not None and error in answer.error


def test_a_good_request_parses() -> None:
    line = b'{"verb": "failover", "service": "acme", "to": "ca-b", "force": true}'
    assert parse_request(line) == Request("failover", {"service": "acme", "to": "ca-b",
                                                       "force": True})  # fmt: skip


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        pytest.param(Peer(1, 0, 0), True, id="root"),
        pytest.param(Peer(1, 1000, 1000), True, id="the_daemons_own_user"),
        pytest.param(Peer(1, 2000, 4242), True, id="the_group_as_primary_group"),
        pytest.param(Peer(1, 65534, 65534), False, id="anyone_else"),
    ],
)
def test_who_may_use_the_socket(peer: Peer, allowed: bool) -> None:
    policy = PeerPolicy(own_uid=1000, group=4242)
    assert (policy.refusal(peer) is None) == allowed


# ----------------------------------------------------------------------------- the server


def echo(request: Request, peer: Peer) -> Answer:
    if request.verb == "release" and request.fields["service"] == "boom":
        raise RuntimeError("a bug in a handler")
    return Answer(lines=[f"{request.verb} from uid {peer.uid}"], result=dict(request.fields))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    found = ControlServer(tmp_path / "run" / "control", echo, max_connections=2,
                          idle_timeout=0.5, max_request=1024)  # fmt: skip
    found.start()
    yield found
    found.stop()


def raw(path: Path, data: bytes) -> dict[str, object]:
    """Send `data` as it is; the first answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(str(path))
        with contextlib.suppress(BrokenPipeError):  # answered and closed before we sent
            client.sendall(data)
        received = b""
        while b"\n" not in received:
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
    answer: dict[str, object] = json.loads(received.partition(b"\n")[0])
    return answer


def test_a_request_is_answered_by_the_handler(server: ControlServer) -> None:
    answer = ask(server.path, {"verb": "release", "service": "acme"}, timeout=5)
    assert (answer.ok, answer.exit, answer.lines) == (True, 0, [f"release from uid {os.getuid()}"])
    assert answer.result == {"service": "acme"}


def test_the_socket_is_0660(server: ControlServer) -> None:
    assert server.path.stat().st_mode & 0o777 == 0o660


def test_bad_json_is_answered_and_the_server_goes_on(server: ControlServer) -> None:
    answer = raw(server.path, b"{nope\n")
    assert (answer["ok"], answer["exit"]) == (False, 2)
    assert ask(server.path, {"verb": "status"}, timeout=5).ok


def test_an_oversized_request_is_refused_unread(server: ControlServer) -> None:
    answer = raw(server.path, b"x" * 5000)  # no newline in sight, over max_request
    assert answer["exit"] == 2 and "over 1024 bytes" in str(answer["error"])
    assert ask(server.path, {"verb": "status"}, timeout=5).ok


def test_a_handler_that_raises_is_an_answer_not_a_crash(server: ControlServer) -> None:
    answer = ask(server.path, {"verb": "release", "service": "boom"}, timeout=5)
    assert (answer.ok, answer.exit) == (False, 1)
    assert answer.error is not None and "RuntimeError" in answer.error
    assert ask(server.path, {"verb": "status"}, timeout=5).ok


def test_a_silent_peer_is_timed_out(server: ControlServer) -> None:
    answer = raw(server.path, b"")  # connect, send nothing
    assert "no request within" in str(answer["error"])


def test_connections_are_bounded(server: ControlServer) -> None:
    held = []
    for _ in range(2):  # both slots, held by silent peers
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(server.path))
        held.append(client)
    try:
        answer = raw(server.path, b'{"verb": "status"}\n')
        assert answer["exit"] == 1 and "busy" in str(answer["error"])
    finally:
        for client in held:
            client.close()


def test_several_requests_on_one_connection(server: ControlServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(str(server.path))
        client.sendall(b'{"verb": "status"}\n{"verb": "undrain", "instance": "a"}\n')
        received = b""
        while received.count(b"\n") < 2:
            received += client.recv(4096)
    first, second = (json.loads(line) for line in received.splitlines())
    assert first["lines"] == [f"status from uid {os.getuid()}"]
    assert second["result"] == {"instance": "a"}


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "control"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a daemon that died
    first = ControlServer(path, echo)
    first.start()
    try:
        with pytest.raises(FileExistsError, match="another daemon listens"):
            ControlServer(path, echo).start()
    finally:
        first.stop()
    assert not path.exists()  # removed at stop
    with pytest.raises(Unreachable):
        ask(path, {"verb": "status"}, timeout=1)


# ----------------------------------------------------------------------------- waiting


def test_a_conclusion_answers_its_request_and_the_older_ones_of_its_service() -> None:
    waiters = Waiters()
    _, older = waiters.add("acme")
    newest_id, newest = waiters.add("acme")
    _, other = waiters.add("ocsp")
    report = Report("acme", Intent(id=newest_id))
    waiters.concluded(report, verifies=True)  # not a flip: nothing to verify
    assert older.future.result(0) is report and newest.future.result(0) is report
    assert not other.future.done()


def test_a_report_of_no_request_answers_nobody() -> None:
    waiters = Waiters()
    _, waiter = waiters.add("acme")
    waiters.concluded(Report("acme", Intent()), verifies=True)
    assert not waiter.future.done()


def test_the_success_hook_runs_only_when_the_change_succeeded() -> None:
    waiters = Waiters()
    ran: list[Report] = []
    failed_id, _ = waiters.add("acme", ran.append)
    failed = Report("acme", Intent(id=failed_id), error="conflict: changed under us")
    waiters.concluded(failed, verifies=False)
    assert ran == []
    ok_id, _ = waiters.add("acme", ran.append)
    waiters.add("acme")  # a later request: not answered by an older change
    ok = Report("acme", Intent(id=ok_id))
    waiters.concluded(ok, verifies=False)
    assert ran == [ok]
    assert len(waiters.waiting) == 1


def test_a_call_given_up_before_it_ran_never_runs() -> None:
    ran: list[object] = []
    call = Call(ran.append)
    assert call.future.cancel()  # the socket thread timed out first
    call.run(object())  # type: ignore[arg-type]
    assert ran == []


def test_a_call_while_stopping_is_an_error_not_a_run() -> None:
    ran: list[object] = []
    call = Call(ran.append)
    call.run(object(), stopping=True)  # type: ignore[arg-type]
    assert ran == [] and isinstance(call.future.exception(0), Exception)
