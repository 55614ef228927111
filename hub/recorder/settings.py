"""What the recorder keeps, for how long, and how it writes.

Retention is per tier (raw samples and text states and events; 5-minute rollups; hourly rollups)
and may be overridden per entity. `None` as a number of days means "keep forever"; in
`TierOverrides` a field left at `INHERIT` takes the global value.

Which entities are recorded: with no include rule, every entity; with include rules, only those
matching one. Exclude rules then remove entities, except that an entity listed by id in
`include.entity_ids` is always recorded. Globs are `fnmatch` patterns (`sensor.*_rssi`).

Events: every event type except those in `exclude_event_types`. `state_changed` is never stored
as an event (its content is in the state tables); the default list also drops the chatty
housekeeping types that fill Home Assistant databases (`state_reported` fires on every repeated
device report, `system_log_event` floods on a failing integration, service and notification
bookkeeping). `call_service` is kept: the logbook uses it to say who caused a change.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_EXCLUDED_EVENT_TYPES",
    "INHERIT",
    "EntityFilter",
    "RecorderSettings",
    "Retention",
    "TierOverrides",
]

DEFAULT_DB_NAME: Final = "hub.db"

DEFAULT_EXCLUDED_EVENT_TYPES: Final = frozenset(
    {
        "state_changed",  # stored in states/samples, never twice
        "state_reported",  # every repeated report of an unchanged value
        "system_log_event",  # home-assistant/core#110490: gigabytes of log events
        "service_registered",
        "service_removed",
        "persistent_notifications_updated",
    }
)


class _Inherit(enum.Enum):
    INHERIT = "inherit"

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Final = _Inherit.INHERIT
"""In `TierOverrides`: use the global setting."""

Days = float | None  # None: forever


@dataclass(frozen=True, slots=True)
class TierOverrides:
    """Retention of one entity, where it differs from the global settings."""

    raw_keep_days: Days | _Inherit = INHERIT
    rollup_5m_keep_days: Days | _Inherit = INHERIT
    rollup_1h_keep_days: Days | _Inherit = INHERIT


@dataclass(frozen=True, slots=True)
class Retention:
    """The resolved retention of one entity, in days per tier (None: forever)."""

    raw: Days
    rollup_5m: Days
    rollup_1h: Days


@dataclass(frozen=True, slots=True)
class EntityFilter:
    """Entities selected by domain, by exact id, or by fnmatch glob."""

    domains: frozenset[str] = frozenset()
    entity_ids: frozenset[str] = frozenset()
    entity_globs: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        domains: Iterable[str] = (),
        entity_ids: Iterable[str] = (),
        entity_globs: Iterable[str] = (),
    ) -> EntityFilter:
        return cls(frozenset(domains), frozenset(entity_ids), tuple(entity_globs))

    def __bool__(self) -> bool:
        return bool(self.domains or self.entity_ids or self.entity_globs)

    def matches(self, entity_id: str) -> bool:
        return (
            entity_id in self.entity_ids
            or entity_id.partition(".")[0] in self.domains
            or any(fnmatchcase(entity_id, glob) for glob in self.entity_globs)
        )


@dataclass
class RecorderSettings:
    """Everything the recorder engine needs to know; the integration builds it from YAML."""

    db_path: Path
    # Seconds between commits; 0 commits each batch at once. At most this much is lost on a crash.
    commit_interval: float = 1.0
    # Items waiting for the writer; beyond this, new items are dropped and counted.
    queue_max: int = 100_000
    raw_keep_days: Days = 10
    rollup_5m_keep_days: Days = 365
    rollup_1h_keep_days: Days = None
    # Raw samples younger than this stay in the plain `samples` table; older ones are packed
    # into compressed blocks (hourly spans, merged into one block per day once the day is over).
    hot_window_hours: float = 2
    # False for tools (`hub db purge`) that work on the file beside a running hub: they neither
    # start a run of their own nor mark the hub's open run as closed incorrectly.
    open_run: bool = True
    entity_overrides: dict[str, TierOverrides] = field(default_factory=dict)
    include: EntityFilter = field(default_factory=EntityFilter)
    exclude: EntityFilter = field(default_factory=EntityFilter)
    record_events: bool = True
    exclude_event_types: frozenset[str] = DEFAULT_EXCLUDED_EVENT_TYPES
    # Rollups, compaction, purge and vacuum run this often (seconds), and once at start.
    maintenance_interval: float = 600.0
    # After a write fault (disk full, read-only file), try again this often (seconds).
    retry_interval: float = 10.0
    # A cap on the database file (MB): reaching it behaves like a full disk. Read at each
    # (re)connection, so a change applies at the next retry.
    max_db_size_mb: float | None = None

    @classmethod
    def for_config_dir(cls, config_dir: str | Path, **changes: object) -> RecorderSettings:
        """Defaults with the database in `<config_dir>/hub.db`."""
        return cls(db_path=Path(config_dir) / DEFAULT_DB_NAME, **changes)  # type: ignore[arg-type]

    def records_entity(self, entity_id: str) -> bool:
        """True if the include/exclude filters let this entity's states be recorded."""
        if entity_id in self.include.entity_ids:
            return True
        if self.include and not self.include.matches(entity_id):
            return False
        return not self.exclude.matches(entity_id)

    def retention(self, entity_id: str) -> Retention:
        """The keep days of each tier for this entity, overrides applied."""
        override = self.entity_overrides.get(entity_id)
        if override is None:
            return Retention(self.raw_keep_days, self.rollup_5m_keep_days, self.rollup_1h_keep_days)

        def pick(value: Days | _Inherit, default: Days) -> Days:
            return default if value is INHERIT else value  # type: ignore[return-value]

        return Retention(
            pick(override.raw_keep_days, self.raw_keep_days),
            pick(override.rollup_5m_keep_days, self.rollup_5m_keep_days),
            pick(override.rollup_1h_keep_days, self.rollup_1h_keep_days),
        )
