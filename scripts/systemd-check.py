#!/usr/bin/env python3
"""`make systemd-check`: the wheel and the .deb as an operator installs them, under a real systemd.

1. The wheel, into a fresh venv with no source tree (from build/wheelhouse, no network):
   `dnsfailover show` finds the shipped files; `validate` accepts the shipped minimal config,
   and finds in the example nothing but the operator's files it names missing.
2. The .deb, in a Debian 12 container booted with `systemd-nspawn -b` (rootfs from mmdebstrap,
   cached under $DNSFAILOVER_CACHE, default /var/cache/dnsfailover-check, keyed by its package
   list; `--volatile=overlay` keeps the cache unchanged; `--private-network`, `--keep-unit`,
   `--register=no`, a tmpfs over /run in a private mount namespace). Inside, under PID 1:
   install (nothing started), start (READY=1), a failover written to BIND with the credential's
   TSIG key, the state in the dynamic user's StateDirectory, reload, the watchdog, stop, and the
   system-call filter with SystemCallErrorNumber=kill all along; then remove and purge.

Prints every check; exits 1 on the first that fails. Stops what it started by PID.
Usage: scripts/systemd-check.py build/deb/dnsfailover_*.deb   (as root; run by `make systemd-check`)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / "build" / "wheelhouse"
CACHE = Path(os.environ.get("DNSFAILOVER_CACHE", "/var/cache/dnsfailover-check"))
SUITE = "bookworm"
PACKAGES = sorted(
    [
        *("systemd", "systemd-sysv", "dbus", "python3", "procps", "iproute2", "adduser"),
        *("bind9", "bind9-utils", "bind9-dnsutils", "pebble", "openssl"),
    ]
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STARTED = time.monotonic()


class CheckFailed(Exception):
    pass


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def ok(message: str) -> None:
    say(f"ok    {message}")


def require(condition: bool, message: str, detail: str = "") -> None:
    if not condition:
        raise CheckFailed(f"{message}\n{detail}".rstrip())
    ok(message)


def run(
    argv: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, cwd=cwd, env=env)


def wait_for(what: str, test: Callable[[], bool], timeout: float) -> float:
    """Seconds until test() held; CheckFailed after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if test():
            return time.monotonic() - start
        time.sleep(0.2)
    raise CheckFailed(f"{what}: not within {timeout:.0f}s")


# ----------------------------------------------------------------------------- the wheel


def check_wheel() -> None:
    say("== the wheel, in a fresh venv with no source tree")
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        done = run(
            [
                str(venv / "bin/pip"),
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
                str(WHEELHOUSE),
                "--disable-pip-version-check",
                "dnsfailover",
            ],
        )
        require(
            done.returncode == 0,
            "pip install dnsfailover --no-index from build/wheelhouse",
            done.stderr,
        )
        cli = str(venv / "bin/dnsfailover")
        env = {"PATH": PATH, "HOME": scratch}
        shown = run([cli, "show", "example-config", "--path"], cwd=scratch, env=env)
        path = shown.stdout.strip()
        require(
            shown.returncode == 0 and path.startswith(str(venv)),
            f"`dnsfailover show example-config --path` is inside the venv: {path}",
            shown.stderr,
        )
        # validate opens every file a config names: the example's certificates (and its zone
        # file, relative to it) are the operator's, so all it may find is them missing.
        checked = run([cli, "validate", "-c", path], cwd=scratch, env=env)
        found = [line for line in checked.stderr.splitlines() if line.startswith("error: ")]
        require(
            checked.returncode == 2
            and bool(found)
            and all(": file /" in e and e.endswith("does not exist") for e in found),
            f"`dnsfailover validate` on it: only the operator's files missing ({len(found)})",
            checked.stderr,
        )
        minimal = run([cli, "show", "minimal-config", "--path"], cwd=scratch, env=env)
        checked = run([cli, "validate", "-c", minimal.stdout.strip()], cwd=scratch, env=env)
        require(
            checked.returncode == 0,
            f"`dnsfailover validate` on the minimal config: {checked.stdout.strip()}",
            checked.stderr,
        )
        for what, first in (
            ("unit", "# dnsfailover"),
            ("alerts", ""),
            ("dashboard", "{"),
            ("minimal-config", "#"),
        ):
            shown = run([cli, "show", what], cwd=scratch, env=env)
            require(
                shown.returncode == 0
                and shown.stdout.startswith(first)
                and len(shown.stdout) > 100,
                f"`dnsfailover show {what}` prints it ({len(shown.stdout)} bytes)",
                shown.stderr,
            )


# ----------------------------------------------------------------------------- the rootfs


def rootfs() -> Path:
    """The cached Debian 12 tree for this package list, built by mmdebstrap when missing."""
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(PACKAGES)} v1".encode()).hexdigest()[:16]
    tree = CACHE / f"rootfs-{SUITE}-{key}"
    if (tree / "etc" / "os-release").exists():
        say(f"rootfs: cached {tree}")
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob("rootfs-*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial = CACHE / f"partial-{key}"
    shutil.rmtree(partial, ignore_errors=True)
    say(f"rootfs: mmdebstrap {SUITE} with {' '.join(PACKAGES)} (once; then cached)")
    start = time.monotonic()
    hooks = [
        # The check runs its own named; the packaged one stays down.
        '--customize-hook=chroot "$1" systemctl mask named.service',
        '--customize-hook=chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer',
        '--customize-hook=echo dnsfailover-check > "$1/etc/hostname"',
    ]
    done = subprocess.run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            f"--include={','.join(PACKAGES)}",
            *hooks,
            SUITE,
            str(partial),
            "http://deb.debian.org/debian",
        ],
        stdin=subprocess.DEVNULL,
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        raise CheckFailed(f"mmdebstrap failed:\n{done.stderr[-3000:]}")
    partial.rename(tree)
    say(f"rootfs: built in {time.monotonic() - start:.0f}s")
    return tree


# ----------------------------------------------------------------------------- the container


class Container:
    """systemd-nspawn -b on an overlay of the cached tree, in a private mount namespace."""

    def __init__(self, tree: Path, share: Path) -> None:
        self.tree, self.share = tree, share
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.pid1 = 0
        self.console = share.parent / "console.log"

    def boot(self) -> None:
        inner = (
            "mount --make-rprivate / && mount -t tmpfs tmpfs /run && exec systemd-nspawn "
            f"-D {self.tree} -b --volatile=overlay --private-network --register=no --keep-unit "
            f"--console=pipe --machine=dnsfailover-check --bind-ro={self.share}:/srv/check"
        )
        with open(self.console, "wb") as console:
            self.nspawn = subprocess.Popen(
                ["unshare", "--mount", "--fork", "sh", "-c", inner],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for("the container's systemd", self._find_pid1, 30)
        ok(f"systemd-nspawn -b: the container's PID 1 is host PID {self.pid1}")
        state = ""

        def booted() -> bool:
            nonlocal state
            state = self.sh("systemctl is-system-running").stdout.strip()
            return state in ("running", "degraded")

        seconds = wait_for("boot", booted, 90)
        failed = self.sh("systemctl --failed --no-legend --plain").stdout.strip()
        ok(f"booted ({state}) in {seconds:.1f}s; failed units: {failed or 'none'}")

    def _find_pid1(self) -> bool:
        assert self.nspawn is not None
        if self.nspawn.poll() is not None:
            raise CheckFailed(
                f"systemd-nspawn exited {self.nspawn.returncode}:\n"
                + self.console.read_text()[-3000:]
            )
        # unshare → systemd-nspawn (exec of sh) → the container's systemd
        children = run(["ps", "-o", "pid=,comm=", "--ppid", str(self.nspawn.pid)]).stdout.split()
        for pid in children[::2]:
            grandchildren = run(["ps", "-o", "pid=,comm=", "--ppid", pid]).stdout.split()
            if len(grandchildren) >= 2 and grandchildren[1] == "systemd":
                self.pid1 = int(grandchildren[0])
                return True
        return False

    def sh(
        self, script: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.pid1),
                "-a",
                "/usr/bin/env",
                "-i",
                f"PATH={PATH}",
                "LANG=C.UTF-8",
                "SYSTEMD_PAGER=",
                "sh",
                "-c",
                script,
            ],
            input=stdin,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def must(self, script: str, stdin: str | None = None, timeout: float = 120) -> str:
        done = self.sh(script, stdin, timeout)
        if done.returncode != 0:
            raise CheckFailed(
                f"in the container: {script}\nexit {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def write(self, path: str, text: str, mode: str = "0644", group: str = "root") -> None:
        self.must(f"install -D -m {mode} -g {group} /dev/stdin {path}", stdin=text)

    def show(self, *properties: str) -> dict[str, str]:
        out = self.must(f"systemctl show dnsfailover -p {','.join(properties)}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def poweroff(self) -> None:
        if self.nspawn is None:
            return
        if self.pid1:
            self.sh("systemctl poweroff --no-block", timeout=10)
        try:
            self.nspawn.wait(timeout=30)
            say("container: powered off")
        except subprocess.TimeoutExpired:
            say("container: no poweroff in 30s; SIGKILL to its PID 1 and to systemd-nspawn")
            if self.pid1:
                os.kill(self.pid1, signal.SIGKILL)
            os.kill(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(timeout=10)
        self.nspawn = None


# ----------------------------------------------------------------------------- the lab inside

ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 300
@        IN SOA ns1.example.test. hostmaster.example.test. 2026010100 3600 600 1209600 60
         IN NS  ns1.example.test.
ns1      IN A   127.0.0.1
ca-a     IN A   127.0.0.1
ca-b     IN A   127.0.0.1
acme  30 IN CNAME ca-a.example.test.
other 30 IN CNAME ca-a.example.test.
"""

NAMED_CONF = """\
include "/srv/lab/ddns.key";
options { directory "/srv/lab"; pid-file "/srv/lab/named.pid";
  session-keyfile "/srv/lab/session.key";
  listen-on port 53 { 127.0.0.1; }; listen-on-v6 { none; }; recursion no; dnssec-validation no; };
controls { };
zone "example.test" { type primary; file "example.test.zone"; update-policy {
  grant ddns-key name acme.example.test. A AAAA CNAME TXT;
  grant ddns-key name _dnsfailover.acme.example.test. TXT;
  grant ddns-key name other.example.test. A AAAA CNAME TXT;
  grant ddns-key name _dnsfailover.other.example.test. TXT; }; };
"""

PEBBLES = {"ca-a": 14000, "ca-b": 14100}


def pebble_json(port: int) -> str:
    return (
        f'{{"pebble": {{"listenAddress": "127.0.0.1:{port}",'
        f' "managementListenAddress": "127.0.0.1:{port + 1}",'
        ' "certificate": "/srv/lab/tls.pem", "privateKey": "/srv/lab/tls.key",'
        f' "httpPort": {port + 2},'
        f' "tlsPort": {port + 3}, "ocspResponderURL": "http://127.0.0.1:24501/",'
        ' "externalAccountBindingRequired": false}}\n'
    )


def service_yaml(name: str) -> str:
    instances = "".join(
        f"      - name: {ca}\n        target: {ca}.example.test.\n"
        f"        acme: {{directory: 'https://127.0.0.1:{port}/dir',"
        " ca_bundle: /etc/dnsfailover/ca.pem}\n"
        for ca, port in PEBBLES.items()
    )
    return (
        f"  {name}:\n    provider: bind\n    name: {name}.example.test.\n    ttl: 30\n"
        "    checks: {interval: 1s, timeout: 800ms, rise: 2, fall: 2}\n"
        f"    hold_down: 30s\n    max_flips_per_hour: 60\n    instances:\n{instances}"
    )


def config_yaml(*services: str) -> str:
    return (
        "# scripts/systemd-check: BIND and two Pebble CAs inside the container.\n"
        "providers:\n  bind:\n    type: rfc2136\n    server: 127.0.0.1\n    port: 53\n"
        "    zone: example.test.\n    tsig: {key_file: /run/credentials/dnsfailover.service/tsig}\n"
        "    timeout: 2s\n    propagation_timeout: 5s\n    verify_servers: ['127.0.0.1:53']\n"
        "shutdown_grace: 5s\n"
        "services:\n" + "".join(service_yaml(s) for s in services)
    )


# The operator's drop-in (only the credential in use), and the check's: a short watchdog, the
# hang hook armed by a file, and a forbidden system call killing the process instead of EPERM.
DROP_IN = """\
[Service]
LoadCredential=
LoadCredential=tsig:/etc/dnsfailover/tsig.key
WatchdogSec=6s
SystemCallErrorNumber=kill
Environment=DNSFAILOVER_CRASHPOINT=loop:hang DNSFAILOVER_CRASHPOINT_IF=/etc/dnsfailover/hang
"""


def start_lab(c: Container) -> None:
    say("== the lab inside the container: BIND (TSIG update grants) and two Pebble CAs")
    c.must("install -d -m 0755 /srv/lab && tsig-keygen -a hmac-sha256 ddns-key > /srv/lab/ddns.key")
    c.write("/srv/lab/example.test.zone", ZONE_TEXT)
    c.write("/srv/lab/named.conf", NAMED_CONF)
    c.must(
        "named-checkconf /srv/lab/named.conf"
        " && named-checkzone -q example.test /srv/lab/example.test.zone"
    )
    c.must(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        " -keyout /srv/lab/tls.key"
        " -out /srv/lab/tls.pem -days 30 -subj /CN=localhost 2>/dev/null -addext"
        " subjectAltName=DNS:localhost,DNS:acme.example.test,DNS:other.example.test,IP:127.0.0.1"
    )
    c.must("systemd-run --quiet --unit=lab-named named -g -c /srv/lab/named.conf")
    for ca, port in PEBBLES.items():
        c.write(f"/srv/lab/{ca}.json", pebble_json(port))
        start_pebble(c, ca)
    wait_for("BIND answers", lambda: "ca-a" in cname(c, "acme"), 20)
    wait_for("both Pebbles answer", lambda: all(pebble_up(c, p) for p in PEBBLES.values()), 20)
    ok(
        "BIND on 127.0.0.1:53 serves acme.example.test. CNAME ca-a;"
        " Pebble ca-a and ca-b answer /dir"
    )


def start_pebble(c: Container, ca: str) -> None:
    """A transient unit: it is gone once stopped, and started again the same way."""
    c.must(
        f"systemd-run --quiet --unit=lab-{ca} -E PEBBLE_VA_ALWAYS_VALID=1 -E PEBBLE_VA_NOSLEEP=1"
        f" -E PEBBLE_WFE_NONCEREJECT=0 pebble -config /srv/lab/{ca}.json"
    )


def cname(c: Container, label: str) -> str:
    return c.sh(f"dig +short +norec @127.0.0.1 {label}.example.test. CNAME").stdout.strip()


def pebble_up(c: Container, port: int) -> bool:
    probe = (
        "import ssl, urllib.request; urllib.request.urlopen("
        f"'https://127.0.0.1:{port}/dir', timeout=2,"
        " context=ssl.create_default_context(cafile='/srv/lab/tls.pem'))"
    )
    return c.sh(f'python3 -c "{probe}"').returncode == 0


# ----------------------------------------------------------------------------- the checks


def check_install(c: Container) -> None:
    say("== install the .deb (no network in the container: every dependency is in the rootfs)")
    c.must(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
        " /srv/check/dnsfailover.deb",
        timeout=300,
    )
    require(
        c.sh("systemctl is-enabled dnsfailover").stdout.strip() == "disabled",
        "installed, not enabled",
    )
    require(
        c.sh("systemctl is-active dnsfailover").stdout.strip() == "inactive",
        "installed, not started",
    )
    require(
        c.sh("getent group dnsfailover").returncode == 0,
        f"system group: {c.sh('getent group dnsfailover').stdout.strip()}",
    )
    unit = c.must(
        "readlink -f /usr/bin/dnsfailover; ls /lib/systemd/system/dnsfailover.service"
        " /usr/share/doc/dnsfailover/example.yaml;"
        " grep ^ExecStart= /lib/systemd/system/dnsfailover.service"
    )
    require(
        "/usr/bin/dnsfailover run" in unit and "/opt/venvs/dnsfailover/bin/dnsfailover" in unit,
        "/usr/bin/dnsfailover → /opt/venvs/dnsfailover;"
        " the unit in /lib/systemd/system runs /usr/bin/dnsfailover",
        unit,
    )
    # validate opens every file a config names: the example's certificates and zone file are
    # the operator's, so all it may find is them missing; the minimal config validates.
    done = c.sh("dnsfailover validate -c /usr/share/doc/dnsfailover/example.yaml")
    found = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    require(
        done.returncode == 2
        and bool(found)
        and all(": file /" in e and e.endswith("does not exist") for e in found),
        f"validate the shipped example: only the operator's files missing ({len(found)})",
        done.stderr,
    )
    done = c.sh("dnsfailover validate -c /usr/share/doc/dnsfailover/minimal.yaml")
    require(
        done.returncode == 0,
        f"validate the shipped minimal config: {done.stdout.strip()}",
        done.stderr,
    )
    require(c.sh("test -d /etc/dnsfailover").returncode == 0, "/etc/dnsfailover exists")


def configure(c: Container) -> None:
    say("== the config, the TSIG key (LoadCredential=) and the check's drop-in")
    c.must(
        "install -m 0600 /srv/lab/ddns.key /etc/dnsfailover/tsig.key"
        " && install -m 0644 /srv/lab/tls.pem /etc/dnsfailover/ca.pem"
    )
    c.write("/etc/dnsfailover/config.yaml", config_yaml("acme"), mode="0640", group="dnsfailover")
    c.write("/etc/systemd/system/dnsfailover.service.d/check.conf", DROP_IN)
    c.must("systemctl daemon-reload")
    done = c.sh("dnsfailover validate")
    require(done.returncode == 0, f"dnsfailover validate: {done.stdout.strip()}", done.stderr)


def check_start(c: Container) -> int:
    say("== systemctl start (Type=notify: returns when READY=1 arrives)")
    start = time.monotonic()
    done = c.sh("systemctl start dnsfailover", timeout=120)
    seconds = time.monotonic() - start
    state = c.show("ActiveState", "SubState", "MainPID", "StatusText", "SystemCallErrorNumber")
    require(
        done.returncode == 0 and state["ActiveState"] == "active",
        f"active ({state['SubState']}) after {seconds:.1f}s; STATUS={state['StatusText']!r}",
        done.stderr + journal(c),
    )
    pid = int(state["MainPID"])
    who = c.must(f"ps -o user:32=,uid=,gid= -p {pid}").split()
    require(who[1] != "0", f"DynamicUser=: runs as {who[0]} (uid {who[1]}, gid {who[2]})")
    # systemd shows `kill` as its internal number, SECCOMP_ERROR_NUMBER_KILL = INT_MAX - 1.
    require(
        state["SystemCallErrorNumber"] == str(2**31 - 2), "SystemCallErrorNumber=kill for the run"
    )
    return pid


def check_failover(c: Container) -> None:
    say("== a failover: Pebble ca-a stops; the name moves by a TSIG-signed RFC 2136 UPDATE")
    # The name on ca-a, both healthy, as `dnsfailover status` (run as root) reads them.
    wait_for(
        "ca-a active, both healthy",
        lambda: settled(c, "[ca-a]", "ca-a: healthy", "ca-b: healthy"),
        30,
    )
    say(f"info  STATUS={c.show('StatusText')['StatusText']!r}")
    c.must("systemctl stop lab-ca-a")
    seconds = wait_for(
        "acme.example.test. → ca-b", lambda: cname(c, "acme") == "ca-b.example.test.", 60
    )
    require(
        True,
        f"BIND serves acme.example.test. CNAME ca-b.example.test."
        f" {seconds:.1f}s after ca-a stopped",
    )
    named = c.must("journalctl -u lab-named -o cat --no-pager")
    updates = [
        line for line in named.splitlines() if "ddns-key" in line and "updating zone" in line
    ]
    require(
        bool(updates),
        "BIND logged the update as signed with ddns-key (the credential's key)",
        named[-2000:],
    )
    say(f"info  {updates[-1].strip()}")
    listing = c.must(
        "readlink /var/lib/dnsfailover; stat -c '%U %a %n' /var/lib/private/dnsfailover;"
        " find /var/lib/private/dnsfailover -type f -printf '%u %m %p\\n'"
    )
    lines = listing.splitlines()
    require(
        lines[0] == "private/dnsfailover" and " 700 " in lines[1] and len(lines) > 2,
        "state written under ProtectSystem=strict into the StateDirectory"
        " (/var/lib/private/dnsfailover, 0700)",
        listing,
    )
    for line in lines[1:]:
        say(f"info  {line}")
    start_pebble(c, "ca-a")


def settled(c: Container, *needles: str) -> bool:
    out = c.sh("dnsfailover status", timeout=30).stdout
    return all(needle in out for needle in needles)


def check_reload(c: Container, pid: int) -> None:
    say("== systemctl reload with a changed config (a second service)")
    c.write(
        "/etc/dnsfailover/config.yaml",
        config_yaml("acme", "other"),
        mode="0640",
        group="dnsfailover",
    )
    start = time.monotonic()
    done = c.sh("systemctl reload dnsfailover", timeout=60)
    require(
        done.returncode == 0,
        f"systemctl reload returned in {time.monotonic() - start:.1f}s",
        done.stderr,
    )
    wait_for("the status naming `other`", lambda: "other" in c.show("StatusText")["StatusText"], 30)
    state = c.show("ActiveState", "MainPID", "StatusText")
    require(
        state["ActiveState"] == "active" and int(state["MainPID"]) == pid,
        f"same process, new config: STATUS={state['StatusText']!r}",
    )
    log = journal(c)
    require(
        "reload_started" in log and "reload_failed" not in log,
        "the daemon logged reload_started and no reload_failed (RELOADING=1, then READY=1)",
    )


def check_watchdog(c: Container, pid: int) -> int:
    say("== the watchdog: the controller loop hangs (crashpoint loop:hang), WatchdogSec=6s")
    c.must("touch /etc/dnsfailover/hang")
    start = time.monotonic()
    # Disarm while systemd waits RestartSec= (5s) after the kill, before the next process starts.
    wait_for("the watchdog's kill", lambda: c.show("Result")["Result"] == "watchdog", 40)
    seconds = time.monotonic() - start
    c.must("rm -f /etc/dnsfailover/hang")
    wait_for("a restart", lambda: c.show("NRestarts")["NRestarts"] not in ("", "0"), 30)
    wait_for("active again", lambda: c.show("ActiveState")["ActiveState"] == "active", 60)
    state = c.show("MainPID", "NRestarts")
    log = c.must("journalctl -u dnsfailover -o cat --no-pager")
    require(
        "Watchdog timeout" in log and int(state["MainPID"]) != pid,
        f"killed by the watchdog {seconds:.1f}s after the hang was armed;"
        f" restarted as PID {state['MainPID']}",
        log[-2000:],
    )
    return int(state["MainPID"])


def check_stop(c: Container) -> None:
    say("== systemctl stop")
    timeout_text = c.show("TimeoutStopUSec")["TimeoutStopUSec"]
    start = time.monotonic()
    done = c.sh("systemctl stop dnsfailover", timeout=120)
    seconds = time.monotonic() - start
    state = c.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    require(
        done.returncode == 0
        and state["Result"] == "success"
        and state["ActiveState"] == "inactive",
        f"stopped in {seconds:.1f}s (TimeoutStopSec={timeout_text}), Result=success,"
        f" exit status {state['ExecMainStatus']}",
        str(state) + journal(c),
    )


def check_syscall_filter(c: Container) -> None:
    say("== the system-call filter: SystemCallErrorNumber=kill all along")
    log = c.must("journalctl -u dnsfailover -o cat --no-pager")
    require(
        "SYS" not in "".join(line for line in log.splitlines() if "status=" in line),
        "no process of the unit was killed by SIGSYS"
        " (start, failover, reload, watchdog restart, stop)",
    )
    # The filter really kills: the unit's filter around a call it forbids (@resources: setpriority).
    probe = c.sh(
        "systemd-run --wait -p DynamicUser=yes -p SystemCallArchitectures=native"
        " -p SystemCallFilter=@system-service -p 'SystemCallFilter=~@privileged @resources'"
        " -p SystemCallErrorNumber=kill"
        " /opt/venvs/dnsfailover/bin/python -c 'import os; os.nice(1)'"
    )
    said = " ".join((probe.stdout + probe.stderr).split())
    require(
        probe.returncode != 0 and "signal" in said,
        f"control: the same filter kills a forbidden setpriority(2): {said}",
    )


def check_remove(c: Container) -> None:
    say("== remove, then purge")
    c.must("DEBIAN_FRONTEND=noninteractive apt-get remove -y -q dnsfailover", timeout=120)
    left = c.sh(
        "ls /etc/dnsfailover/config.yaml /var/lib/private/dnsfailover"
        " && test ! -e /lib/systemd/system/dnsfailover.service"
    )
    require(
        left.returncode == 0,
        "remove: the unit is gone; /etc/dnsfailover and the state stay",
        left.stderr,
    )
    c.must("DEBIAN_FRONTEND=noninteractive dpkg --purge dnsfailover", timeout=120)
    gone = c.sh(
        "test ! -e /etc/dnsfailover && test ! -e /var/lib/private/dnsfailover"
        " && test ! -e /var/lib/dnsfailover"
    )
    require(
        gone.returncode == 0,
        "purge: /etc/dnsfailover and the state are gone",
        c.sh("ls -la /etc/dnsfailover /var/lib/private").stdout,
    )


def journal(c: Container) -> str:
    return "\n" + c.sh("journalctl -u dnsfailover -o cat --no-pager -n 40").stdout


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not Path(argv[1]).is_file():
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("systemd-check: run as root (mmdebstrap, systemd-nspawn)", file=sys.stderr)
        return 2
    container: Container | None = None
    scratch = Path(tempfile.mkdtemp(prefix="dnsfailover-check-"))
    try:
        check_wheel()
        tree = rootfs()
        share = scratch / "share"
        share.mkdir()
        shutil.copy(argv[1], share / "dnsfailover.deb")
        container = Container(tree, share)
        container.boot()
        check_install(container)
        start_lab(container)
        configure(container)
        pid = check_start(container)
        check_failover(container)
        check_reload(container, pid)
        check_watchdog(container, pid)
        check_stop(container)
        check_syscall_filter(container)
        check_remove(container)
    except (CheckFailed, subprocess.TimeoutExpired) as e:
        say(f"FAIL  {e}")
        if container is not None and container.pid1:
            say("journal of dnsfailover.service:" + journal(container))
            say("dnsfailover status:\n" + container.sh("dnsfailover status", timeout=30).stdout)
        return 1
    finally:
        if container is not None:
            container.poweroff()
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"all checks passed in {time.monotonic() - STARTED:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
