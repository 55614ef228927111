"""`hub db stats|purge|export`: look into, trim and export the recorder's database.

The commands read the config dir's `recorder:` block, so they find the database where the hub
keeps it and apply the user's retention. They are safe while the hub runs: reads are WAL
snapshots, and `purge` runs the engine's own maintenance (short transactions) in this process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import voluptuous as vol

from hub.cli import _add_config_arg

from .config import CONFIG_SCHEMA, settings_from_config
from .engine import Recorder
from .series import format_value
from .settings import RecorderSettings, TierOverrides
from .store import RecorderReader

TIERS: Final = ("samples", "blocks", "rollup_5m", "rollup_1h", "states", "events")
TOP_ENTITIES: Final = 20
EXPORT_CHUNK: Final = 6 * 3600.0  # seconds of history read per query
PURGE_TIMEOUT: Final = 3600.0


class DbError(Exception):
    """A problem to print as `error: ...` (exit code 1)."""


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `hub db ...` to the `hub` command line."""
    db = subparsers.add_parser("db", help="the recorder's database: stats, purge, export")
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)

    stats = db_sub.add_parser(
        "stats", help="rows and bytes per tier and per entity, file size and free pages")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.add_argument("--all", action="store_true",
                       help=f"every entity, not only the top {TOP_ENTITIES} by size")
    _add_config_arg(stats)
    stats.set_defaults(func=cmd_stats)

    purge = db_sub.add_parser(
        "purge", help="delete data older than its retention now (safe while the hub runs)",
        description="Run the recorder's retention now, with the tiers of configuration.yaml's "
        "recorder: block (also when auto_purge is off) or --keep-days.")
    purge.add_argument("--keep-days", type=_positive_days, metavar="N",
                       help="keep N days of raw samples, text states and events "
                       "(default: purge_keep_days of the configuration)")
    purge.add_argument("--entity", action="append", default=[], metavar="ID",
                       help="purge only this entity (repeatable); events are then kept")
    purge.add_argument("--vacuum", action="store_true",
                       help="give every free page back to the file system (the file shrinks)")
    _add_config_arg(purge)
    purge.set_defaults(func=cmd_purge)

    export = db_sub.add_parser(
        "export", help="an entity's history as CSV or JSON lines",
        description="Numeric entities give ts,value rows (their samples); text entities give "
        "ts,state rows. Times are ISO 8601 in UTC.")
    export.add_argument("--entity", required=True, metavar="ID", help="the entity to export")
    export.add_argument("--start", type=_iso_time, metavar="ISO",
                        help="from this time (ISO 8601; no zone: local time; default: end - 24 h)")
    export.add_argument("--end", type=_iso_time, metavar="ISO",
                        help="until this time, exclusive (default: now)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write to FILE (default: stdout)")
    _add_config_arg(export)
    export.set_defaults(func=cmd_export)


# --- arguments and shared helpers ------------------------------------------------------------


def _positive_days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 0 < days <= 365 * 100:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of days above 0")
    return days


def _iso_time(value: str) -> float:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2024-05-01 or "
            "2024-05-01T12:00:00+02:00)") from None
    return when.timestamp()  # naive: local time


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def _quiet() -> None:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("hub.recorder").setLevel(logging.WARNING)


def _run(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; its expected failures print `error: ...` and exit 1, never a traceback."""

    def wrapper(args: argparse.Namespace) -> int:
        _quiet()
        try:
            return command(args)
        except DbError as err:
            print(f"error: {err}", file=sys.stderr)
        except OSError as err:
            print(f"error: {err}", file=sys.stderr)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
        return 1

    wrapper.__name__ = wrapper.__qualname__ = command.__name__
    wrapper.__doc__ = command.__doc__
    return wrapper


def load_settings(config_dir: Path) -> tuple[dict[str, Any], RecorderSettings]:
    """The validated `recorder:` block of the config dir and its engine settings (defaults
    when there is no configuration.yaml). Raises DbError for an invalid block."""
    from hub.config import load_configuration
    from hub.exceptions import ConfigError

    block: Any = None
    if (config_dir / "configuration.yaml").exists():
        try:
            loaded = load_configuration(config_dir)
        except ConfigError as err:
            raise DbError(f"cannot read the configuration:\n{err}") from None
        problems = [str(issue) for issue in loaded.issues if issue.domain == "recorder"]
        if problems:
            raise DbError("the recorder: block is invalid:\n" + "\n".join(problems))
        block = loaded.integrations.get("recorder")
    try:
        config = CONFIG_SCHEMA(block)
    except vol.Invalid as err:
        raise DbError(f"the recorder: block is invalid: {err}") from None
    return config, settings_from_config(config, config_dir)


def _open_reader(config_dir: Path) -> tuple[RecorderSettings, RecorderReader, dict[str, Any]]:
    """The settings, a reader and `db_stats(per_entity=True)`; DbError without a database."""
    config_dir = Path(config_dir)
    _, settings = load_settings(config_dir)
    reader = RecorderReader(settings.db_path)
    stats = reader.db_stats(per_entity=True)
    if not stats.get("exists"):
        reader.close()
        raise DbError(f"no recorder database at {settings.db_path} yet "
                      f"(`hub run -c {config_dir}` creates it)")
    return settings, reader, stats


def _unknown_entity(entity_id: str, config_dir: Path) -> DbError:
    return DbError(f"no entity {entity_id!r} in the recorder's database "
                   f"(see `hub db stats --all -c {config_dir}`)")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


# --- stats -----------------------------------------------------------------------------------


def stats_summary(stats: dict[str, Any], all_entities: bool = False) -> dict[str, Any]:
    """The figures `hub db stats --json` prints, from `RecorderReader.db_stats()`."""
    tables = stats["tables"]
    entities = sorted(({"entity_id": name, **values}
                       for name, values in stats.get("entities", {}).items()),
                      key=lambda e: (-e["bytes"], e["entity_id"]))
    return {
        "path": stats["path"],
        "file_bytes": stats["file_bytes"],
        "wal_bytes": stats["wal_bytes"],
        "page_size": stats["page_size"],
        "page_count": stats["page_count"],
        "free_pages": stats["freelist_count"],
        "free_bytes": stats["freelist_count"] * stats["page_size"],
        "tiers": {tier: dict(tables[tier]) for tier in TIERS},
        "tables": tables,
        "entity_count": len(entities),
        "entities": entities if all_entities else entities[:TOP_ENTITIES],
    }


@_run
def cmd_stats(args: argparse.Namespace) -> int:
    _, reader, stats = _open_reader(args.config)
    reader.close()
    summary = stats_summary(stats, args.all)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{summary['path']}[/]: {_size(summary['file_bytes'])} "
                  f"(+ {_size(summary['wal_bytes'])} WAL), {summary['free_pages']} free pages "
                  f"of {summary['page_count']} ({_size(summary['free_bytes'])})")
    tiers = Table(title="Tiers", title_justify="left")
    tiers.add_column("tier")
    tiers.add_column("rows", justify="right")
    tiers.add_column("bytes", justify="right")
    for tier, info in summary["tiers"].items():
        rows = f"{info['rows']:,}"
        if tier == "blocks":
            rows += f" ({info['samples']:,} samples)"
        tiers.add_row(tier, rows, _size(info["bytes"]))
    console.print(tiers)
    shown, total = len(summary["entities"]), summary["entity_count"]
    title = "Entities" if shown == total else f"Entities: top {shown} of {total} by size (--all)"
    entities = Table(title=title, title_justify="left")
    for column in ("entity", "samples", "in blocks", "states", "5m", "1h", "bytes"):
        entities.add_column(column, justify="left" if column == "entity" else "right")
    for e in summary["entities"]:
        entities.add_row(e["entity_id"], f"{e['samples']:,}", f"{e['block_samples']:,}",
                         f"{e['states']:,}", f"{e['rollup_5m']:,}", f"{e['rollup_1h']:,}",
                         _size(e["bytes"]))
    console.print(entities)
    return 0


# --- purge -----------------------------------------------------------------------------------


def purge_settings(settings: RecorderSettings, keep_days: float | None,
                   entity_ids: list[str]) -> RecorderSettings:
    """The settings a manual purge runs with: `keep_days` replaces the raw retention, and with
    `entity_ids` only those entities (not the events) are purged."""
    if keep_days is not None:
        settings = replace(settings, raw_keep_days=keep_days, entity_overrides={
            entity_id: replace(override, raw_keep_days=keep_days)
            for entity_id, override in settings.entity_overrides.items()
        })
    if entity_ids:
        chosen = {}
        for entity_id in entity_ids:
            keep = settings.retention(entity_id)
            chosen[entity_id] = TierOverrides(keep.raw, keep.rollup_5m, keep.rollup_1h)
        settings = replace(settings, raw_keep_days=None, rollup_5m_keep_days=None,
                           rollup_1h_keep_days=None, entity_overrides=chosen)
    # A purge records nothing: no waiting to commit, no periodic job of its own.
    return replace(settings, commit_interval=0, maintenance_interval=PURGE_TIMEOUT * 2,
                   open_run=False)


def run_purge(settings: RecorderSettings, vacuum: bool, timeout: float = PURGE_TIMEOUT) -> None:
    """Open the engine on the database, run its maintenance (rollups, compaction, retention;
    with `vacuum` a full incremental vacuum), stop it. Raises DbError if it fails."""
    recorder = Recorder(settings)
    started = time.time()
    recorder.start()
    try:
        if vacuum:
            ok = recorder.run_maintenance_blocking(timeout)
        else:
            # The writer runs a full maintenance as it opens the database; it vacuums only
            # when many pages are free (moving pages wears SD cards), so wait for that one.
            ok = _wait_for_maintenance(recorder, started, timeout)
    finally:
        recorder.stop_blocking()
    if not ok:
        error = recorder.runtime_stats()["last_error"]
        raise DbError("the purge did not complete" + (f": {error}" if error else
                      " (see the log; run again with -v)"))


def _wait_for_maintenance(recorder: Recorder, since: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = recorder.runtime_stats()
        if (stats["last_maintenance"] or 0) >= since:
            return True
        if not stats["running"] or stats["fault_since"] is not None:
            return False
        time.sleep(0.05)
    return False


def _counts(stats: dict[str, Any], entity_ids: list[str]) -> dict[str, int]:
    if not entity_ids:
        counts = {tier: stats["tables"][tier]["rows"] for tier in TIERS}
        blocks = stats["tables"]["blocks"]["samples"]
        return {"samples": counts.pop("samples"), "samples in blocks": blocks, **counts}
    keys = (("samples", "samples"), ("block_samples", "samples in blocks"), ("states", "states"),
            ("rollup_5m", "rollup_5m"), ("rollup_1h", "rollup_1h"))
    return {label: sum(stats["entities"][e][key] for e in entity_ids) for key, label in keys}


@_run
def cmd_purge(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    settings, reader, before = _open_reader(config_dir)
    reader.close()
    entity_ids = sorted({e.strip().lower() for e in args.entity})
    for entity_id in entity_ids:
        if entity_id not in before["entities"]:
            raise _unknown_entity(entity_id, config_dir)
    settings = purge_settings(settings, args.keep_days, entity_ids)

    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    errors: list[Exception] = []

    def work() -> None:
        try:
            run_purge(settings, args.vacuum)
        except (DbError, OSError) as err:  # raised again in the main thread
            errors.append(err)

    thread = threading.Thread(target=work, name="hub-db-purge", daemon=True)
    console = _console(stderr=True)
    what = "Purging" + (" and vacuuming" if args.vacuum else "")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        progress.add_task(f"{what} {settings.db_path.name}", total=None)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
    if errors:
        raise errors[0]

    after = RecorderReader(settings.db_path)
    try:
        after_stats = after.db_stats(per_entity=bool(entity_ids))
    finally:
        after.close()
    old, new = _counts(before, entity_ids), _counts(after_stats, entity_ids)
    removed = {label: old[label] - new[label] for label in old}
    scope = ", ".join(entity_ids) if entity_ids else "all entities and events"
    print(f"Purged {scope}:")
    width = max(len(label) for label in removed)
    for label, count in removed.items():
        print(f"  {label.ljust(width)}  {max(count, 0):>10,} removed, {new[label]:,} left")
    size_before = before["file_bytes"] + before["wal_bytes"]
    size_after = after_stats["file_bytes"] + after_stats["wal_bytes"]
    print(f"Size: {_size(before['file_bytes'])} -> {_size(after_stats['file_bytes'])} "
          f"(with WAL: {_size(size_before)} -> {_size(size_after)}); "
          f"{after_stats['freelist_count']} free pages"
          + ("" if args.vacuum else " (--vacuum gives them back)"))
    return 0


# --- export ----------------------------------------------------------------------------------


def _windows(start: float, end: float) -> Iterator[tuple[float, float]]:
    at = start
    while at < end:
        yield at, min(end, at + EXPORT_CHUNK)
        at += EXPORT_CHUNK


def export_rows(reader: RecorderReader, entity_id: str, start: float, end: float,
                numeric: bool, advance: Callable[[], None] = lambda: None,
                ) -> Iterator[tuple[float, float | str]]:
    """(ts, value) samples of a numeric entity, or (ts, state) of a text one, oldest first."""
    for lo, hi in _windows(start, end):
        if numeric:
            yield from reader.samples(entity_id, lo, hi)
        else:
            rows = reader.states([entity_id], lo, hi, with_attributes=False,
                                 include_start=False)[entity_id]
            yield from ((row.last_updated, row.state) for row in rows)
        advance()


def _write(out: TextIO, rows: Iterator[tuple[float, float | str]], fmt: str,
           numeric: bool) -> int:
    column = "value" if numeric else "state"
    count = 0
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ts", column])
        for ts, value in rows:
            writer.writerow([_iso(ts), format_value(value) if numeric else value])  # type: ignore[arg-type]
            count += 1
    else:
        for ts, value in rows:
            out.write(json.dumps({"ts": _iso(ts), column: value}) + "\n")
            count += 1
    return count


@_run
def cmd_export(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    entity_id = args.entity.strip().lower()
    end = time.time() if args.end is None else args.end
    start = end - 86_400 if args.start is None else args.start
    if start >= end:
        raise DbError(f"--start ({_iso(start)}) must be before --end ({_iso(end)})")
    _, reader, stats = _open_reader(config_dir)
    try:
        info = stats["entities"].get(entity_id)
        if info is None:
            raise _unknown_entity(entity_id, config_dir)
        numeric = bool(info["samples"] or info["block_samples"])

        from rich.progress import Progress

        console = _console(stderr=True)
        windows = len(range(0, int(end - start), int(EXPORT_CHUNK))) or 1
        large = windows > 4 or info["samples"] + info["block_samples"] + info["states"] > 100_000
        with Progress(console=console, transient=True,
                      disable=not (large and console.is_terminal)) as progress:
            task = progress.add_task(f"Exporting {entity_id}", total=windows)
            rows = export_rows(reader, entity_id, start, end, numeric,
                               lambda: progress.advance(task))
            if args.output is None:
                count = _write(sys.stdout, rows, args.format, numeric)
                sys.stdout.flush()
            else:
                with args.output.open("w", encoding="utf-8", newline="") as out:
                    count = _write(out, rows, args.format, numeric)
    finally:
        reader.close()
    if args.output is not None:
        print(f"Wrote {count:,} rows of {entity_id} ({_iso(start)} to {_iso(end)}) "
              f"to {args.output}", file=sys.stderr)
    return 0
