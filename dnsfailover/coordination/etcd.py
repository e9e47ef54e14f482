"""The few etcd v3 calls coordination needs, over etcd's gRPC gateway (JSON over HTTP).

Built on `etcd3gw` (OpenStack's client: requests underneath, no grpcio or protobuf). One
client per endpoint; a call that cannot reach an endpoint (refused, timed out, 503 while the
member has no quorum) moves on to the next, and every error becomes an `EtcdError` with the
endpoint named, never a password. Each request has `timeout` seconds: with two of three
members down etcd would otherwise hold a call for ~7 s. The gateway's JSON leaves out false and
zero fields and sends int64 values as strings; the helpers below read it that way.
Imports config values and errors only.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception

from dnsfailover.config.models import EtcdSettings
from dnsfailover.config.secrets import read_secret_file
from dnsfailover.errors import DnsFailoverError

log = logging.getLogger(__name__)

T = TypeVar("T")


class EtcdError(DnsFailoverError):
    """No etcd endpoint answered the request (or every one refused it)."""


class EtcdConflict(EtcdError):
    """A compare-and-swap lost to other writers too many times in a row (etcd answered)."""


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    create_revision: int
    mod_revision: int
    lease: int


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        _unb64(raw["key"]),
        _unb64(raw.get("value", "")),
        int(raw.get("create_revision", 0)),
        int(raw.get("mod_revision", 0)),
        int(raw.get("lease", 0)),
    )


def _range_end(prefix: str) -> str:
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class Etcd:
    def __init__(self, settings: EtcdSettings) -> None:
        self.settings = settings
        self._clients = [self._client(url) for url in settings.endpoints]
        self._current = 0  # the endpoint that answered last

    def _client(self, url: str) -> Etcd3Client:
        parts = urlsplit(url)
        session = requests.Session()
        # etcd is reached directly, trusting `ca_bundle` alone: with the environment trusted,
        # REQUESTS_CA_BUNDLE would override the session's CA (requests #3829) and proxy
        # variables would route coordination through a proxy.
        session.trust_env = False
        s = self.settings
        if s.ca_bundle is not None:
            session.verify = str(s.ca_bundle)
        if s.cert_file is not None and s.key_file is not None:
            session.cert = (str(s.cert_file), str(s.key_file))
        return Etcd3Client(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 2379,
            protocol=parts.scheme,
            timeout=s.timeout,
            api_path="/v3/",  # etcd >= 3.4 (Debian 12 has 3.4); /v3alpha/ is gone
            session=session,
        )

    def _authenticate(self, client: Etcd3Client) -> None:
        """etcd's own users: a token from /auth/authenticate, sent in Authorization."""
        s = self.settings
        if s.username is None or s.password_file is None:
            return
        if "Authorization" in client.session.headers:
            return
        password = read_secret_file(s.password_file, "coordination.etcd.password_file")
        answer = client.post(
            client.get_url("/auth/authenticate"),
            json={"name": s.username, "password": password.reveal()},
        )
        client.session.headers["Authorization"] = str(answer["token"])

    def _call(self, what: str, fn: Callable[[Etcd3Client], T]) -> T:
        """`fn` on the endpoint that answered last, then on each other one."""
        errors = []
        for i in range(len(self._clients)):
            index = (self._current + i) % len(self._clients)
            client = self._clients[index]
            try:
                self._authenticate(client)
                result = fn(client)
            except DnsFailoverError as e:  # the password file went away since validation
                errors.append(f"{self.settings.endpoints[index]}: {e}")
                continue
            except Etcd3Exception as e:
                detail = " ".join((e.detail_text or str(e) or "").split())[:300]
                if "invalid auth token" in detail:
                    client.session.headers.pop("Authorization", None)
                errors.append(f"{self.settings.endpoints[index]}: {type(e).__name__}: {detail}")
                continue
            except (requests.RequestException, ValueError, KeyError) as e:
                errors.append(f"{self.settings.endpoints[index]}: {type(e).__name__}")
                continue
            self._current = index
            return result
        raise EtcdError(f"etcd {what}: " + "; ".join(errors))

    # ------------------------------------------------------------------ calls

    def grant(self, ttl: float) -> tuple[int, int]:
        """A new lease of at least `ttl` (whole seconds, rounded up: the renew deadline is
        measured against the TTL asked for): (id, granted TTL in seconds)."""

        def call(c: Etcd3Client) -> tuple[int, int]:
            answer = c.post(c.get_url("/lease/grant"), json={"TTL": math.ceil(ttl), "ID": 0})
            return int(answer["ID"]), int(answer.get("TTL", 0))

        return self._call("lease grant", call)

    def keepalive(self, lease: int) -> int:
        """Renew the lease; its TTL, or 0 when it has expired already."""

        def call(c: Etcd3Client) -> int:
            answer = c.post(c.get_url("/lease/keepalive"), json={"ID": lease})
            return int(answer.get("result", {}).get("TTL", 0))

        return self._call("lease keepalive", call)

    def revoke(self, lease: int) -> None:
        self._call(
            "lease revoke",
            lambda c: c.post(c.get_url("/kv/lease/revoke"), json={"ID": lease}),
        )

    def put(self, key: str, value: str, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = lease
        self._call("put", lambda c: c.post(c.get_url("/kv/put"), json=body))

    def delete(self, key: str) -> None:
        self._call(
            "delete", lambda c: c.post(c.get_url("/kv/deleterange"), json={"key": _b64(key)})
        )

    def get(self, key: str) -> KeyValue | None:
        def call(c: Etcd3Client) -> KeyValue | None:
            answer = c.post(c.get_url("/kv/range"), json={"key": _b64(key)})
            kvs = answer.get("kvs", [])
            return _kv(kvs[0]) if kvs else None

        return self._call("get", call)

    def get_prefix(self, prefix: str) -> list[KeyValue]:
        def call(c: Etcd3Client) -> list[KeyValue]:
            body = {"key": _b64(prefix), "range_end": _range_end(prefix)}
            answer = c.post(c.get_url("/kv/range"), json=body)
            return [_kv(raw) for raw in answer.get("kvs", [])]

        return self._call("get prefix", call)

    def create_or_get(self, key: str, value: str, lease: int) -> tuple[bool, KeyValue | None]:
        """Create `key` bound to `lease` if it does not exist (create_revision == 0); else read
        it. One transaction: (created, the key as it is now)."""
        txn = {
            "compare": [
                {"key": _b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
            ],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value), "lease": lease}}],
            "failure": [{"request_range": {"key": _b64(key)}}],
        }

        def call(c: Etcd3Client) -> tuple[bool, KeyValue | None]:
            answer = c.post(c.get_url("/kv/txn"), json=txn)
            if answer.get("succeeded", False):
                revision = int(answer["header"]["revision"])
                return True, KeyValue(key, value, revision, revision, lease)
            responses = answer.get("responses", [{}])
            kvs = responses[0].get("response_range", {}).get("kvs", [])
            return False, _kv(kvs[0]) if kvs else None

        return self._call("create", call)

    def watch(self, prefix: str, lifetime: float, stop: threading.Event) -> Iterator[int]:
        """Changes under `prefix`: yields the number of events of each batch, from one endpoint
        (the first that answers), for at most about `lifetime` seconds; raises EtcdError when
        no endpoint streams. The gRPC gateway's watch is a streaming POST that it cannot cancel
        (etcd #12333) and etcd3gw's has no timeout nor reconnect: ours has its own connection,
        a read timeout of `lifetime`, and ends with it — the caller starts a new one."""
        errors = []
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(_range_end(prefix))}}
        for i in range(len(self._clients)):
            index = (self._current + i) % len(self._clients)
            client = self._client(self.settings.endpoints[index])
            try:
                self._authenticate(client)
                url, limits = client.get_url("/watch"), (self.settings.timeout, lifetime)
                with client.session.post(url, json=body, stream=True, timeout=limits) as answer:
                    answer.raise_for_status()
                    deadline = time.monotonic() + lifetime
                    for line in answer.iter_lines():
                        if stop.is_set() or time.monotonic() > deadline:
                            return
                        events = json.loads(line).get("result", {}).get("events") if line else None
                        if events:
                            yield len(events)
                    return
            except requests.ReadTimeout:
                return  # quiet for a whole lifetime: a new watch, the same as after one
            except (requests.RequestException, ValueError, DnsFailoverError, Etcd3Exception) as e:
                errors.append(f"{self.settings.endpoints[index]}: {type(e).__name__}")
            finally:
                client.session.close()
        raise EtcdError("etcd watch: " + "; ".join(errors))

    def delete_if_created(self, key: str, create_revision: int) -> bool:
        """Delete `key` only if it is still the one created at `create_revision` (a leader
        resigning deletes its own key, never a successor's)."""
        txn = {
            "compare": [{"key": _b64(key), "result": "EQUAL", "target": "CREATE",
                         "create_revision": str(create_revision)}],
            "success": [{"request_delete_range": {"key": _b64(key)}}],
        }  # fmt: skip
        answer = self._call("resign", lambda c: c.post(c.get_url("/kv/txn"), json=txn))
        return bool(answer.get("succeeded", False))

    def replace(self, key: str, value: str, mod_revision: int) -> bool:
        """Put `value` only if the key's mod_revision is still `mod_revision` (0: absent)."""
        target = "MOD" if mod_revision else "CREATE"
        field = "mod_revision" if mod_revision else "create_revision"
        txn = {
            "compare": [
                {"key": _b64(key), "result": "EQUAL", "target": target, field: str(mod_revision)}
            ],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
        }
        answer = self._call("replace", lambda c: c.post(c.get_url("/kv/txn"), json=txn))
        return bool(answer.get("succeeded", False))

    def update(self, key: str, change: Callable[[str | None], str], attempts: int = 5) -> str:
        """Read-modify-write of one key by compare-and-swap (another writer in between: read
        again, up to `attempts` times). Returns the value written."""
        for _ in range(attempts):
            found = self.get(key)
            value = change(found.value if found else None)
            if self.replace(key, value, found.mod_revision if found else 0):
                return value
        raise EtcdConflict(f"etcd update of {key}: changed under us {attempts} times in a row")

    def close(self) -> None:
        for client in self._clients:
            client.session.close()
