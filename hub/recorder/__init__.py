"""The recorder: SQLite history, downsampling tiers, history queries.

The storage engine: `Recorder` listens on the bus and hands changes to one writer thread, which
batches them into SQLite (numeric samples apart from text states), rolls samples up into
5-minute and hourly rows, packs old samples into compressed blocks and purges each tier by its
retention. `RecorderReader` reads it all back from any thread.
"""

from .engine import NOTIFICATION_ID, Recorder
from .schema import SCHEMA_VERSION
from .series import Bucket, format_value
from .settings import (
    DEFAULT_EXCLUDED_EVENT_TYPES,
    INHERIT,
    EntityFilter,
    RecorderSettings,
    Retention,
    TierOverrides,
)
from .store import Period, RecorderReader, StateRow

__all__ = [
    "DEFAULT_EXCLUDED_EVENT_TYPES",
    "INHERIT",
    "NOTIFICATION_ID",
    "SCHEMA_VERSION",
    "Bucket",
    "EntityFilter",
    "Period",
    "Recorder",
    "RecorderReader",
    "RecorderSettings",
    "Retention",
    "StateRow",
    "TierOverrides",
    "format_value",
]
