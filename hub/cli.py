"""The `hub` command line: run, check-config, user, token, scaffold, and plugin commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

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
    run.add_argument("--host", help="HTTP address to listen on (overrides http: server_host)")
    run.add_argument("--port", type=int, help="HTTP port; 0 picks a free one (overrides http: server_port)")
    run.add_argument("--mqtt-port", type=int,
                     help="embedded MQTT broker port; 0 picks a free one (overrides mqtt: embedded_broker: port)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate the configuration; print file:line: message")
    _add_config_arg(check)
    check.set_defaults(func=cmd_check_config)

    _add_auth_commands(sub)

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


def _add_auth_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    user = sub.add_parser("user", help="manage the users who may log in")
    user_sub = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="create a user (the first one becomes the owner)")
    add.add_argument("name", metavar="NAME", help="login name, also the display name by default")
    add.add_argument("--username", help="login name, if it differs from NAME")
    add.add_argument("--name", dest="display_name", help="display name, if it differs from NAME")
    add.add_argument("--admin", action="store_true", help="may manage users and settings")
    add.add_argument("--owner", action="store_true", help="the hub's owner (implies --admin)")
    add.add_argument("--read-only", action="store_true", help="may look but change nothing")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin (else prompt)")
    _add_config_arg(add)
    add.set_defaults(func=cmd_user_add)
    user_list = user_sub.add_parser("list", help="list the users")
    _add_config_arg(user_list)
    user_list.set_defaults(func=cmd_user_list)
    remove = user_sub.add_parser("remove", help="remove a user and revoke its tokens")
    remove.add_argument("name", metavar="NAME", help="login name")
    _add_config_arg(remove)
    remove.set_defaults(func=cmd_user_remove)

    token = sub.add_parser("token", help="manage long-lived access tokens")
    token_sub = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = token_sub.add_parser(
        "create", help="create a long-lived access token for user NAME (printed on the last line)")
    create.add_argument("name", metavar="NAME", help="login name")
    create.add_argument("--client-name", help="what the token is for (default: a dated name)")
    create.add_argument("--lifespan", type=float, default=3650, metavar="DAYS",
                        help="days the token stays valid (default: 3650)")
    _add_config_arg(create)
    create.set_defaults(func=cmd_token_create)
    token_list = token_sub.add_parser("list", help="list a user's tokens")
    token_list.add_argument("name", metavar="NAME", help="login name")
    _add_config_arg(token_list)
    token_list.set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token by id (see `hub token list`)")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    _add_config_arg(revoke)
    revoke.set_defaults(func=cmd_token_revoke)


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
    http = {key: value for key, value in
            (("server_host", args.host), ("server_port", args.port)) if value is not None}
    overrides: dict[str, dict[str, object]] = {"http": http} if http else {}
    if args.mqtt_port is not None:
        overrides["mqtt"] = {"embedded_broker": {"port": args.mqtt_port}}
    return asyncio.run(_run(config_dir, args.plugin_manager, overrides))


async def _run(config_dir: Path, manager: object, overrides: dict[str, dict[str, object]]) -> int:
    from .core import Hub
    from .exceptions import ConfigError

    hub = Hub(config_dir, plugin_manager=manager, overrides=overrides)
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
    if hub.stop_requested:  # Ctrl-C while starting
        return await hub.wait_stopped()
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


def _with_auth(config_dir: Path, command: Callable[[Any], Awaitable[int]],
               create_dir: bool = False) -> int:
    """Run `command(hub.auth)` on the config dir's auth store alone (no hub start), then save."""
    from .core import Hub

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("hub.auth").setLevel(logging.WARNING)  # the command prints the news

    async def run() -> int:
        if create_dir:  # a directory `hub run` has never seen is fine
            config_dir.mkdir(parents=True, exist_ok=True)
        hub = Hub(config_dir)
        await hub.auth.load()
        try:
            return await command(hub.auth)
        finally:
            await hub.auth.flush()

    try:
        return asyncio.run(run())
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("error: no terminal to ask for the password; use --password-stdin",
              file=sys.stderr)
        return None
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        print("error: the passwords differ", file=sys.stderr)
        return None
    return password


def _roles(user: Any) -> str:
    roles = [r for r, on in (("owner", user.is_owner), ("admin", user.is_admin)) if on] or ["user"]
    return ", ".join(roles + (["read-only"] if user.read_only else []))


def _no_user(name: str, config_dir: Path) -> int:
    print(f"error: no user {name!r} in {config_dir} (see `hub user list -c {config_dir}`)",
          file=sys.stderr)
    return 1


def _when(timestamp: float | None) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    username = args.username or args.name

    async def add(auth: Any) -> int:
        first = not any(not user.system_generated for user in auth.users())
        owner = args.owner or first
        try:
            user = await auth.create_user(args.display_name or args.name, username, password,
                                          admin=args.admin or owner, owner=owner,
                                          read_only=args.read_only)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"Created user {user.username} ({_roles(user)})")
        return 0

    return _with_auth(args.config, add, create_dir=True)


def cmd_user_list(args: argparse.Namespace) -> int:
    async def show(auth: Any) -> int:
        users = auth.users()
        if not users:
            print(f"No users yet; add one with `hub user add NAME -c {args.config}`")
            return 0
        rows = [["USERNAME", "NAME", "ROLES", "ACTIVE", "CREATED"]]
        rows += [[u.username, u.name, _roles(u), "yes" if u.is_active else "no",
                  _when(u.created_at)] for u in users]
        _table(rows)
        return 0

    return _with_auth(args.config, show)


def cmd_user_remove(args: argparse.Namespace) -> int:
    async def remove(auth: Any) -> int:
        user = auth.get_user_by_username(args.name)
        if user is None:
            return _no_user(args.name, args.config)
        tokens = len(auth.refresh_tokens(user))
        await auth.remove_user(user.id)
        print(f"Removed user {user.username} and revoked its {tokens} token(s)")
        return 0

    return _with_auth(args.config, remove)


def cmd_token_create(args: argparse.Namespace) -> int:
    async def create(auth: Any) -> int:
        user = auth.get_user_by_username(args.name)
        if user is None:
            return _no_user(args.name, args.config)
        client_name = args.client_name
        if client_name is None:  # a dated name, numbered if several are made in one second
            from datetime import datetime

            taken = {t.client_name for t in auth.refresh_tokens(user)}
            base = client_name = f"hub token create {datetime.now():%Y-%m-%d %H:%M:%S}"
            n = 1
            while client_name in taken:
                n += 1
                client_name = f"{base} ({n})"
        try:
            token = auth.create_long_lived_token(user, client_name, lifespan_days=args.lifespan)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        # The status goes to stderr so that `T=$(hub token create ...)` captures the token alone.
        print(f"Created long-lived access token {client_name!r} for {user.username}, "
              f"valid for {args.lifespan:g} days:", file=sys.stderr, flush=True)
        print(token)
        return 0

    return _with_auth(args.config, create)


def cmd_token_list(args: argparse.Namespace) -> int:
    async def show(auth: Any) -> int:
        user = auth.get_user_by_username(args.name)
        if user is None:
            return _no_user(args.name, args.config)
        tokens = auth.refresh_tokens(user)
        if not tokens:
            print(f"{user.username} has no tokens")
            return 0
        rows = [["ID", "TYPE", "CLIENT", "CREATED", "LAST USED"]]
        rows += [[t.id, "long-lived" if t.token_type == "long_lived_access_token" else "login",
                  t.client_name or t.client_id or "-", _when(t.created_at),
                  _when(t.last_used_at)] for t in tokens]
        _table(rows)
        return 0

    return _with_auth(args.config, show)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    async def revoke(auth: Any) -> int:
        if not auth.revoke_refresh_token(args.token_id):
            print(f"error: no token with id {args.token_id!r} in {args.config}", file=sys.stderr)
            return 1
        print(f"Revoked token {args.token_id}")
        return 0

    return _with_auth(args.config, revoke)


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
