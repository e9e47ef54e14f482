"""Entry point: parse arguments, run one command, map errors to exit codes.
The top layer: may import anything below it; nothing imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from dnsfailover import __version__, logs
from dnsfailover.cli import exitcodes
from dnsfailover.config import load_config
from dnsfailover.errors import ConfigError, ConflictError, DnsFailoverError, RefusedError

DEFAULT_CONFIG = "/etc/dnsfailover/config.yaml"
CONFIG_VARIABLE = "DNSFAILOVER_CONFIG"

Command = Callable[[argparse.Namespace], int]


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    config = loaded.config
    print(
        f"{args.config}: ok ({len(config.providers)} providers, {len(config.services)} services, "
        f"{sum(len(s.instances) for s in config.services.values())} instances)"
    )
    return exitcodes.OK


def cmd_check(args: argparse.Namespace) -> int:
    from dnsfailover.cli.check import run_check
    from dnsfailover.controller.runtime import Runtime

    config = load_config(args.config).config
    if args.service is not None and args.service not in config.services:
        raise ConfigError(f"no service {args.service!r} in {args.config}")
    runtime = Runtime.build(config, providers_too=False)
    try:
        return run_check(runtime, args.service, args.json)
    finally:
        runtime.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnsfailover",
        description="Keep an ACME CA's DNS name pointed at a healthy instance.",
        epilog=exitcodes.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dnsfailover {__version__}")
    _add_common(parser, default=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add(commands, "validate", cmd_validate, "check the config; exit 0, or 2 listing every problem")
    check = _add(
        commands,
        "check",
        cmd_check,
        "probe every instance once and print a table; exit 1 if a service has no healthy instance",
    )
    check.add_argument("service", nargs="?", help="only this service")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")

    from dnsfailover.cli import operate, status

    run = _add(commands, "run", operate.cmd_run, "the daemon (systemd Type=notify)")
    run.add_argument("--once", action="store_true", help="one probe round, one cycle, then exit")
    run.add_argument("--dry-run", action="store_true", help="decide and log, write nothing")
    shown = _add(
        commands,
        "status",
        status.cmd_status,
        "what DNS serves now (read live), health per instance, pins, drains, flips",
    )
    shown.add_argument("--json", action="store_true", help="print JSON")
    plan = _add(
        commands,
        "plan",
        operate.cmd_plan,
        "dry-run: what would change now and why, in the provider's terms; writes nothing",
    )
    plan.add_argument("--zone-file", metavar="FILE", help="plan names of this zone against FILE")
    plan.add_argument("--zone", help="the zone of --zone-file when it has no $ORIGIN")
    plan.add_argument(
        "--assume",
        action="append",
        default=[],
        metavar="INSTANCE=down|up",
        help="override one instance's health (repeatable)",
    )
    failover = _add(
        commands,
        "failover",
        operate.cmd_failover,
        "move a service now and pin it there (exit 3 if the target is unhealthy)",
    )
    failover.add_argument("service")
    failover.add_argument("--to", required=True, metavar="INSTANCE")
    failover.add_argument("--force", action="store_true", help="move even to an unhealthy instance")
    failover.add_argument("--reason", help="recorded in the pin and the audit log")
    release = _add(
        commands, "release", operate.cmd_release, "remove a pin; automatic policy resumes"
    )
    release.add_argument("service")
    drain = _add(
        commands,
        "drain",
        operate.cmd_drain,
        "maintenance: move traffic away from an instance and keep it away",
    )
    drain.add_argument("instance")
    drain.add_argument("--reason", required=True)
    undrain = _add(
        commands,
        "undrain",
        operate.cmd_undrain,
        "end maintenance; traffic does not move back by itself",
    )
    undrain.add_argument("instance")

    from dnsfailover.cli import show

    shown = _add(
        commands,
        "show",
        show.cmd_show,
        "print a file installed with the package: the unit, alert rules, dashboard or a config",
    )
    shown.add_argument("what", choices=sorted(show.FILES))
    shown.add_argument("--path", action="store_true", help="print where it is instead")

    from dnsfailover.cli import drill

    drill.add_parser(commands, _add)
    return parser


def _add_common(parser: argparse.ArgumentParser, default: bool) -> None:
    """Options accepted before and after the command (`dnsfailover validate -c FILE`)."""
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG) if default else argparse.SUPPRESS,
        help=f"config file (default: ${CONFIG_VARIABLE} or {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if default else argparse.SUPPRESS,
        help="log debug details",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text" if default else argparse.SUPPRESS,
        help="text (default) or one JSON object a line",
    )


def _add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Command,
    summary: str,
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=exitcodes.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(sub, default=False)
    sub.set_defaults(handler=handler)
    return sub


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = logging.INFO if args.command == "run" else logging.WARNING
    logs.setup(logging.DEBUG if args.verbose else quiet, args.log_format)
    handler: Command = args.handler
    try:
        return handler(args)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exitcodes.USAGE
    except ConflictError as e:
        print(f"conflict: {e}", file=sys.stderr)
        return exitcodes.CONFLICT
    except RefusedError as e:
        print(f"refused: {e}", file=sys.stderr)
        return exitcodes.REFUSED
    except DnsFailoverError as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.FAILURE
    except KeyboardInterrupt:
        return 130
