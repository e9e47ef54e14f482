"""`make demo`: a real failover on a lab of real servers, start to finish, in under two minutes.

Two Pebble ACME CAs (each with an `openssl ocsp` responder for its intermediate), a BIND
primary and secondary with TSIG, and the dnsfailover daemon moving acme.example.test between
them. Runs inside its own network namespace (scripts/isolated); everything stops at the end.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from lab import Lab  # noqa: E402
from lab.scenario import NAME, wait_for, write_config  # noqa: E402

SERIAL = 0x1234  # a certificate serial each OCSP responder answers "good" for


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def cli(config: Path, *args: str) -> None:
    command = [sys.executable, "-m", "dnsfailover", *args, "-c", str(config)]
    print(f"$ dnsfailover {shlex.join(args)}", flush=True)
    subprocess.run(command, check=False)


def main() -> int:
    started = time.monotonic()
    with Lab() as lab:
        step("Starting the lab: two Pebble CAs with OCSP responders, BIND primary + secondary")
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        responders = {}
        for pebble in (a, b):
            responders[pebble.name] = lab.ocsp_for(pebble)
            responders[pebble.name].add(SERIAL)
        bind = lab.bind()
        for p in (a, b):
            print(f"  {p.name}: ACME {p.directory_url}, OCSP {responders[p.name].url}")
        primary, secondary = bind.primary.port, bind.secondary.port
        print(f"  BIND primary 127.0.0.1:{primary}, secondary 127.0.0.1:{secondary}")

        config = lab.directory / "demo.yaml"
        write_config(config, lab, bind, [a, b], {"hold_down": "1m"})
        document = yaml.safe_load(config.read_text())
        for instance in document["services"]["acme"]["instances"]:
            responder = responders[instance["name"]]
            instance["ocsp"] = {
                "url": responder.url,
                "issuer": str(responder.issuer_cert),
                "serial": hex(SERIAL),
                "min_runway": "30m",
            }
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        step("The config")
        print(config.read_text())
        cli(config, "validate")

        step("Probing every instance once")
        cli(config, "check")

        step("Starting the daemon (dnsfailover run)")
        daemon = lab.daemon(config)
        wait_for(
            lambda: all(
                i["state"] == "healthy"
                for i in daemon.health()["services"]["acme"]["instances"].values()
            ),
            20,
            "the daemon to settle",
        )
        cli(config, "status")

        step("Killing the active CA (ca-a)")
        killed = time.monotonic()
        a.kill()
        for server in bind.servers:
            wait_for(
                lambda s=server: s.rrset(NAME, "CNAME") == {"ca-b.example.test."},
                30,
                f"{server.name} to serve ca-b",
            )
            print(
                f"  {server.name} serves {NAME} → ca-b.example.test. "
                f"{time.monotonic() - killed:.2f}s after the kill"
            )
        wait_for(lambda: any(e["event"] == "failover" for e in daemon.audit()), 10, "audit")
        entry = next(e for e in daemon.audit() if e["event"] == "failover")
        print(f"  audit: {entry['reason']}")
        print(
            f"  write {entry['write_seconds'] * 1000:.1f} ms, propagation "
            f"{entry['propagation_seconds'] * 1000:.1f} ms: {entry['propagation']}"
        )

        step("Bringing ca-a back: the name stays on ca-b (sticky failover)")
        a.start()
        wait_for(
            lambda: daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"] == "healthy",
            30,
            "ca-a healthy again",
        )
        time.sleep(2)
        assert bind.secondary.rrset(NAME, "CNAME") == {"ca-b.example.test."}
        cli(config, "status")

        step("Failing back by hand: dnsfailover failover acme --to ca-a")
        cli(config, "failover", "acme", "--to", "ca-a", "--reason", "demo: back to the primary")
        for server in bind.servers:
            print(f"  {server.name} serves {NAME} → {', '.join(server.rrset(NAME, 'CNAME'))}")
        cli(config, "release", "acme")

        step("Tearing everything down")
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
