"""`hub mqtt user add|list|remove`: the device credentials of the embedded MQTT broker.

They write `<config_dir>/.storage/mqtt_credentials` directly; a running hub picks up the change
on the next connection attempt, so a device added here can connect at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hub.cli import _add_config_arg

from .credentials import CredentialStore, DeviceCredential


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `hub mqtt ...` to the `hub` command line."""
    mqtt = subparsers.add_parser("mqtt", help="the embedded MQTT broker")
    mqtt_sub = mqtt.add_subparsers(dest="mqtt_command", metavar="COMMAND", required=True)
    user = mqtt_sub.add_parser(
        "user", help="manage the credentials devices log in with (one per device)")
    user_sub = user.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = user_sub.add_parser(
        "add", help="create a device credential; the password is printed once, on the last line",
        description="Create the credential NAME (the device's MQTT username). By default the "
        "device may publish and subscribe under NAME/#, announce itself by MQTT discovery with "
        "node_id NAME and read the hub's birth message.")
    add.add_argument("name", metavar="NAME",
                     help="device name: 1 to 64 letters, digits, '_' or '-'")
    add.add_argument("--topic", action="append", default=[], metavar="PATTERN",
                     help="also let it publish and subscribe to PATTERN (an MQTT filter, "
                     "e.g. 'tele/kitchen/#'); repeatable")
    add.add_argument("--no-default-topics", action="store_true",
                     help="only the --topic patterns, not the defaults")
    add.add_argument("--superuser", action="store_true",
                     help="may publish and subscribe to every topic")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin instead of "
                     "generating one")
    _add_config_arg(add)
    add.set_defaults(func=cmd_user_add)

    user_list = user_sub.add_parser("list", help="list the device credentials")
    _add_config_arg(user_list)
    user_list.set_defaults(func=cmd_user_list)

    remove = user_sub.add_parser(
        "remove", help="delete a device credential (a connected device is disconnected)")
    remove.add_argument("name", metavar="NAME")
    _add_config_arg(remove)
    remove.set_defaults(func=cmd_user_remove)


def _store(config_dir: Path) -> CredentialStore:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("integrations.mqtt.credentials").setLevel(logging.WARNING)
    return CredentialStore(config_dir)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _patterns(cred: DeviceCredential, which: str) -> str:
    if cred.superuser:
        return "(all topics)"
    patterns = getattr(cred, which)
    return ", ".join(patterns) if patterns else "(none)"


def cmd_user_add(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            return _error("no password on stdin")
    if args.no_default_topics and not args.topic and not args.superuser:
        return _error("with --no-default-topics, give at least one --topic (or --superuser)")
    topics = args.topic or None
    try:
        store = _store(args.config)
        cred, password = store.add(args.name, password=password, publish=topics,
                                   subscribe=topics, superuser=args.superuser,
                                   default_topics=not args.no_default_topics)
    except (ValueError, OSError) as err:
        return _error(str(err))
    print(f"Created MQTT credential {cred.name}{' (superuser)' if cred.superuser else ''}")
    print(f"  publish:   {_patterns(cred, 'publish')}")
    print(f"  subscribe: {_patterns(cred, 'subscribe')}")
    print(f"Username: {cred.name}")
    if args.password_stdin:
        print("Password: as given")
        return 0
    print("Password (shown only now; the hub keeps a hash):")
    print(password)
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    try:
        creds = _store(args.config).list()
    except OSError as err:
        return _error(str(err))
    if not creds:
        print(f"No MQTT credentials yet; add one with `hub mqtt user add NAME -c {args.config}`")
        return 0
    rows = [["NAME", "PUBLISH", "SUBSCRIBE", "CREATED"]]
    rows += [[c.name, _patterns(c, "publish"), _patterns(c, "subscribe"), c.created_at or "-"]
             for c in creds]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    try:
        removed = _store(args.config).remove(args.name)
    except (ValueError, OSError) as err:
        return _error(str(err))
    if not removed:
        return _error(f"no MQTT credential {args.name!r} in {args.config} "
                      f"(see `hub mqtt user list -c {args.config}`)")
    print(f"Removed MQTT credential {args.name}")
    return 0
