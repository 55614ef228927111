"""The `hub` command line: run, check-config, scaffold, and plugin commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

_LOGGER = logging.getLogger(__name__)
DEFAULT_CONFIG_DIR = os.environ.get("HUB_CONFIG", str(Path.home() / ".config" / "hub"))


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG_DIR, type=Path,
        help=f"configuration directory (default: {DEFAULT_CONFIG_DIR}, or $HUB_CONFIG)",
    )


def build_parser(manager: object | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="A local-first IoT hub.")
    parser.add_argument("--version", action="version", version=f"hub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="start the hub (writes a default config into an empty dir)")
    _add_config_arg(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate the configuration; print file:line: message")
    _add_config_arg(check)
    check.set_defaults(func=cmd_check_config)

    scaffold = sub.add_parser("scaffold", help="write a new plugin package")
    scaffold_sub = scaffold.add_subparsers(dest="what", metavar="WHAT", required=True)
    integ = scaffold_sub.add_parser("integration", help="a pip-installable integration plugin")
    integ.add_argument("name", help="the integration's domain, e.g. my_sensor")
    integ.add_argument("-o", "--output", type=Path, default=Path("."), help="parent directory")
    integ.set_defaults(func=cmd_scaffold_integration)

    if manager is not None:
        # Plugin commands; a plugin whose hook raises is disabled and the others still load.
        manager.call_each("register_commands", subparsers=sub)  # type: ignore[attr-defined]
    return parser


def setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(rich_tracebacks=True, show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def cmd_run(args: argparse.Namespace) -> int:
    from .config import write_default_config

    config_dir: Path = args.config
    if write_default_config(config_dir):
        print(f"Wrote a default configuration to {config_dir / 'configuration.yaml'}", flush=True)
    return asyncio.run(_run(config_dir, args.plugin_manager))


async def _run(config_dir: Path, manager: object) -> int:
    from .core import Hub
    from .exceptions import ConfigError

    hub = Hub(config_dir, plugin_manager=manager)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, hub.request_stop)
    try:
        await hub.start()
    except ConfigError as err:
        for issue in err.issues:
            print(issue, file=sys.stderr)
        await hub.stop(1)
        return 1
    failed = [s for s in hub.integrations.values() if s.status == "failed"]
    loaded = sorted(d for d, s in hub.integrations.items() if s.status == "loaded")
    print(f"Hub '{hub.config.get('name')}' is running from {config_dir}", flush=True)
    print(f"Integrations: {', '.join(loaded) or 'none'}; {len(hub.states)} entities", flush=True)
    for status in failed:
        print(f"Integration {status.domain} failed: {status.error}", file=sys.stderr, flush=True)
    for url in getattr(hub, "urls", []):
        print(f"Open {url}", flush=True)
    return await hub.wait_stopped()


def cmd_check_config(args: argparse.Namespace) -> int:
    from .plugins import check_configuration

    if not (args.config / "configuration.yaml").exists():
        print(f"{args.config / 'configuration.yaml'}: no such file", file=sys.stderr)
        return 1
    issues = check_configuration(args.config, args.plugin_manager)
    for issue in issues:
        print(issue)
    if issues:
        print(f"{len(issues)} problem(s) found", file=sys.stderr)
        return 1
    print("Configuration is valid")
    return 0


def cmd_scaffold_integration(args: argparse.Namespace) -> int:
    from .scaffold import write_integration_package

    try:
        path = write_integration_package(args.name, args.output)
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {path}")
    print(f"Install it with: pip install -e {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .plugins import make_plugin_manager

    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    setup_logging(verbose)
    manager = make_plugin_manager()
    parser = build_parser(manager)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.plugin_manager = manager
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
