"""The `recorder:` block of configuration.yaml, in Home Assistant's shape, and its mapping to
the engine's RecorderSettings.

```yaml
recorder:
  db_path: hub.db               # relative to the config dir (HA's db_url: sqlite:///... too)
  commit_interval: 1            # seconds; 0 commits every change at once
  purge_keep_days: 10           # raw samples and text states
  keep_days_5m: 365             # 5-minute rollups
  keep_days_hourly:             # hourly rollups; empty: forever
  auto_purge: true              # false: nothing is deleted by age
  exclude:
    domains: [automation]
    entity_globs: ["sensor.*_rssi"]
    event_types: [call_service]
  tiers:                        # per entity: the same three retention keys
    sensor.outdoor_temperature:
      purge_keep_days: 30
      keep_days_hourly: 3650
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import voluptuous as vol

from ..core import valid_entity_id
from .settings import (
    DEFAULT_EXCLUDED_EVENT_TYPES,
    INHERIT,
    EntityFilter,
    RecorderSettings,
    TierOverrides,
)

DEFAULT_DB_FILE: Final = "hub.db"
DEFAULT_COMMIT_INTERVAL: Final = 1.0
DEFAULT_KEEP_DAYS: Final = 10
DEFAULT_KEEP_DAYS_5M: Final = 365
_DOMAIN_RE: Final = r"^(?!_)[\da-z_]+(?<!_)$"


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _entity_id(value: Any) -> str:
    value = str(value).strip().lower()
    if not valid_entity_id(value):
        raise vol.Invalid(f"{value!r} is not an entity id (domain.object_id)")
    return value


def _glob(value: Any) -> str:
    value = str(value).strip().lower()
    if "." not in value:
        raise vol.Invalid(f"{value!r} is not an entity glob (like sensor.*_rssi)")
    return value


def _days(minimum: int) -> Any:
    return vol.All(vol.Coerce(int), vol.Range(min=minimum, max=365 * 100))


def _db_url(value: Any) -> str:
    """HA's `db_url`, for SQLite only: `sqlite:///relative.db` or `sqlite:////absolute.db`."""
    value = str(value)
    prefix = "sqlite:///"
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise vol.Invalid("only SQLite is supported: use db_path, or db_url: sqlite:///file.db")
    return value[len(prefix):]


_RETENTION: Final = {
    vol.Optional("purge_keep_days"): _days(1),
    vol.Optional("keep_days_5m"): _days(1),
    vol.Optional("keep_days_hourly"): vol.Any(None, _days(1)),
}

_FILTER: Final = {
    vol.Optional("domains", default=list): vol.All(_list, [vol.All(str, vol.Match(_DOMAIN_RE))]),
    vol.Optional("entities", default=list): vol.All(_list, [_entity_id]),
    vol.Optional("entity_globs", default=list): vol.All(_list, [_glob]),
}

_SCHEMA: Final = vol.Schema({
    vol.Exclusive("db_path", "database"): vol.All(str, vol.Length(min=1)),
    vol.Exclusive("db_url", "database"): _db_url,
    vol.Optional("commit_interval", default=DEFAULT_COMMIT_INTERVAL): vol.All(
        vol.Coerce(float), vol.Range(min=0, max=3600)),
    vol.Optional("purge_keep_days", default=DEFAULT_KEEP_DAYS): _days(1),
    vol.Optional("keep_days_5m", default=DEFAULT_KEEP_DAYS_5M): _days(1),
    vol.Optional("keep_days_hourly", default=None): vol.Any(None, _days(1)),
    vol.Optional("auto_purge", default=True): bool,
    vol.Optional("include", default=dict): vol.All(lambda v: v or {}, _FILTER),
    vol.Optional("exclude", default=dict): vol.All(lambda v: v or {}, {
        **_FILTER,
        vol.Optional("event_types", default=list): vol.All(_list, [str]),
    }),
    vol.Optional("tiers", default=dict): vol.All(
        lambda v: v or {}, {_entity_id: vol.All(lambda v: v or {}, _RETENTION)}),
})


def config_schema(value: Any) -> dict[str, Any]:
    """Validate the block (None, an empty `recorder:`, means every default)."""
    config = _SCHEMA(value or {})
    if "db_url" in config:
        config["db_path"] = config.pop("db_url")
    config.setdefault("db_path", DEFAULT_DB_FILE)
    return config


CONFIG_SCHEMA = config_schema


def settings_from_config(config: dict[str, Any], config_dir: Path) -> RecorderSettings:
    """The engine's settings for a validated block. Our event-type excludes are added to the
    engine's defaults (which drop the types that flood HA databases). `auto_purge: false`
    keeps every tier forever (the engine purges only by retention)."""
    if not config["auto_purge"]:
        return _settings(config, config_dir, forever=True)
    return _settings(config, config_dir, forever=False)


def _settings(config: dict[str, Any], config_dir: Path, *, forever: bool) -> RecorderSettings:
    overrides = {
        entity_id: TierOverrides(
            raw_keep_days=values.get("purge_keep_days", INHERIT),
            rollup_5m_keep_days=values.get("keep_days_5m", INHERIT),
            rollup_1h_keep_days=values.get("keep_days_hourly", INHERIT),
        )
        for entity_id, values in config["tiers"].items()
        if not forever
    }
    include, exclude = config["include"], config["exclude"]
    return RecorderSettings(
        db_path=db_path(config, config_dir),
        commit_interval=config["commit_interval"],
        raw_keep_days=None if forever else config["purge_keep_days"],
        rollup_5m_keep_days=None if forever else config["keep_days_5m"],
        rollup_1h_keep_days=None if forever else config["keep_days_hourly"],
        entity_overrides=overrides,
        include=EntityFilter.of(include["domains"], include["entities"], include["entity_globs"]),
        exclude=EntityFilter.of(exclude["domains"], exclude["entities"], exclude["entity_globs"]),
        exclude_event_types=DEFAULT_EXCLUDED_EVENT_TYPES | frozenset(exclude["event_types"]),
    )


def db_path(config: dict[str, Any], config_dir: Path) -> Path:
    path = Path(config["db_path"]).expanduser()
    return path if path.is_absolute() else Path(config_dir) / path
