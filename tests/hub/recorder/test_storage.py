"""The recorder's storage engine: what a state change becomes on disk, how old data is packed and
purged, and that it all survives a restart."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.core import Hub, ReadOnlyDict, State
from hub.recorder import (
    EntityFilter,
    Recorder,
    RecorderSettings,
    TierOverrides,
)

DAY = 86_400
T0 = 1_699_920_000.0  # midnight UTC
UNIT = ReadOnlyDict({"unit_of_measurement": "°C", "state_class": "measurement"})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_bytes(path: Path) -> int:
    (pages,), = rows(path, "PRAGMA page_count")
    (size,), = rows(path, "PRAGMA page_size")
    return pages * size


@pytest.fixture
async def recorded(make_hub: Callable[..., Any]) -> AsyncIterator[tuple[Hub, Recorder]]:
    hub = await make_hub()
    settings = RecorderSettings.for_config_dir(
        hub.config_dir, commit_interval=0.05, exclude=EntityFilter.of(domains=["camera"])
    )
    recorder = Recorder(settings)
    recorder.start(hub)
    yield hub, recorder
    await recorder.stop()


async def test_state_changes_become_samples_text_states_and_shared_attributes(
    recorded: tuple[Hub, Recorder],
) -> None:
    """Given numeric, text and attribute changes on the bus, numbers land in `samples`, text in
    `states`, identical attribute sets are stored once, and `states()` rebuilds the history."""
    hub, recorder = recorded
    start = time.time() - 1
    temp = {"unit_of_measurement": "°C", "friendly_name": "Temp"}
    hub.states.set("sensor.temp", "21.50", temp)
    hub.states.set("sensor.temp", "21.6", temp)
    hub.states.set("sensor.temp", "21.6", {**temp, "battery": 80})  # attributes only
    hub.states.set("sensor.temp", "unavailable", {**temp, "battery": 80})
    hub.states.set("sensor.temp", "20", {**temp, "battery": 80})
    hub.states.set("sensor.temp", "nan", {**temp, "battery": 80})  # rejected
    for name in ("a", "b", "c"):
        hub.states.set(f"switch.{name}", "on", {"icon": "mdi:power"})
    hub.states.set("switch.a", "off", {"icon": "mdi:power"})
    hub.states.set("sensor.firmware", "1.10")  # no unit: text, kept as written
    hub.states.set("camera.door", "idle")  # excluded domain
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    hub.states.set("sensor.odd", "x", {"tags": {"a"}, "cycle": cyclic})  # stored as text
    hub.bus.fire("doorbell_pressed", {"button": 1})
    hub.bus.fire("system_log_event", {"message": "noise"})  # excluded by default
    assert await recorder.flush(10)
    end = time.time() + 1
    db = recorder.settings.db_path

    assert [v for _, v in recorder.samples("sensor.temp", start, end)] == [21.5, 21.6, 20.0]
    history = recorder.states(["sensor.temp", "switch.a", "sensor.firmware", "camera.door"],
                              start, end)
    assert [(r.state, r.attributes.get("battery")) for r in history["sensor.temp"]] == [
        ("21.5", None), ("21.6", None), ("21.6", 80), ("unavailable", 80), ("20", 80)
    ]
    attr_change = history["sensor.temp"][2]
    assert attr_change.last_changed == pytest.approx(history["sensor.temp"][1].last_changed, abs=1e-6)
    assert attr_change.last_updated > attr_change.last_changed
    assert [r.state for r in history["switch.a"]] == ["on", "off"]
    assert [r.state for r in history["sensor.firmware"]] == ["1.10"]
    assert history["camera.door"] == []
    odd = recorder.states(["sensor.odd"], start, end)["sensor.odd"]
    assert [(r.state, sorted(r.attributes)) for r in odd] == [("x", ["cycle", "tags"])]
    assert rows(db, "SELECT count(*) FROM attributes WHERE shared = ?",
                '{"icon":"mdi:power"}') == [(1,)]
    # sensor.temp: first sight + one attribute change (markers), unavailable; no row per value.
    assert rows(db, "SELECT state FROM states JOIN entities e ON e.id = entity"
                " WHERE e.entity_id = 'sensor.temp' ORDER BY ts") == [(None,), (None,),
                                                                      ("unavailable",)]
    assert rows(db, "SELECT t.type FROM events JOIN event_types t ON t.id = events.type") == [
        ("doorbell_pressed",)
    ]
    stats = recorder.runtime_stats()
    assert stats["rejected_non_finite"] == 1 and stats["dropped"] == 0


async def test_entity_removal_and_include_filters(make_hub: Callable[..., Any]) -> None:
    """Given include rules, only matching entities are recorded (an entity listed by id even
    when its domain is excluded); a removed entity ends with an empty state."""
    hub = await make_hub()
    settings = RecorderSettings.for_config_dir(
        hub.config_dir,
        commit_interval=0,
        include=EntityFilter.of(domains=["sensor"], entity_ids=["light.kept"]),
        exclude=EntityFilter.of(domains=["light"], entity_globs=["sensor.*_rssi"]),
        record_events=False,
    )
    recorder = Recorder(settings)
    recorder.start(hub)
    try:
        start = time.time() - 1
        for entity_id in ("sensor.power", "sensor.wifi_rssi", "light.kept", "light.other",
                          "switch.x"):
            hub.states.set(entity_id, "5", {"unit_of_measurement": "W"})
        hub.states.remove("sensor.power")
        hub.bus.fire("doorbell_pressed")
        assert await recorder.flush(10)
        assert recorder.reader.entity_ids() == ["light.kept", "sensor.power"]
        history = recorder.states(["sensor.power"], start, time.time() + 1)["sensor.power"]
        assert [r.state for r in history] == ["5", ""]
        assert rows(settings.db_path, "SELECT count(*) FROM events") == [(0,)]
    finally:
        await recorder.stop()


def feed(recorder: Recorder, entity_id: str, start: float, end: float, step: float,
         rng: random.Random) -> list[tuple[float, float]]:
    out = []
    t = start
    while t < end:
        value = round(15 + 5 * rng.random(), 1)
        assert recorder.record_state(entity_id, State(entity_id, str(value), UNIT, t, t))
        out.append((round(t * 1e6) / 1e6, value))
        t += step * rng.uniform(0.5, 1.5)
    return out


async def test_compaction_is_transparent_and_late_samples_merge(tmp_path: Path) -> None:
    """Given three days of samples, maintenance packs finished days into one block each and
    older hours of today into hour blocks; samples() returns exactly what went in, also after
    a late sample lands in a packed day."""
    clock = Clock(T0)
    recorder = Recorder(RecorderSettings.for_config_dir(tmp_path, commit_interval=0), clock=clock)
    recorder.start()
    try:
        rng = random.Random(3)
        sent = feed(recorder, "sensor.t", T0, T0 + 2.5 * DAY, 30, rng)
        assert await recorder.flush(10)
        clock.now = T0 + 2.5 * DAY
        before = recorder.samples("sensor.t", T0 - 1, clock.now)
        history = recorder.states(["sensor.t"], T0 + DAY / 3, clock.now)
        assert await recorder.run_maintenance(60)
        assert recorder.states(["sensor.t"], T0 + DAY / 3, clock.now) == history
        db = recorder.settings.db_path
        spans = rows(db, "SELECT start_us, end_us, count FROM blocks ORDER BY start_us")
        day_blocks = [s for s in spans if s[0] < (T0 + 2 * DAY) * 1e6]
        assert len(day_blocks) == 2  # two finished days, one block each
        hour_blocks = spans[2:]
        assert len(hour_blocks) == 10  # 00:00-10:00 of day 3: the hot window is 2 h, it is noon
        hot = rows(db, "SELECT min(ts_us) FROM samples")[0][0]
        assert hot >= (T0 + 2.5 * DAY - 2 * 3600) * 1e6
        after = recorder.samples("sensor.t", T0 - 1, clock.now)
        assert after == before == sent

        late = (round((T0 + DAY + 1234.567891) * 1e6) / 1e6, 99.9)
        recorder.record_state("sensor.t", State("sensor.t", "99.9", UNIT, late[0], late[0]))
        assert await recorder.flush(10)
        assert late in recorder.samples("sensor.t", T0 + DAY, T0 + DAY + 2000)
        assert await recorder.run_maintenance(60)
        assert rows(db, "SELECT count(*) FROM blocks WHERE start_us < ? AND start_us >= ?",
                    (T0 + 2 * DAY) * 1e6, (T0 + DAY) * 1e6) == [(1,)]
        assert recorder.samples("sensor.t", T0 - 1, clock.now) == sorted(sent + [late])
    finally:
        await recorder.stop()


async def test_retention_per_tier_and_override_shrinks_the_file(tmp_path: Path) -> None:
    """Given 20 days of data, purge keeps each tier for its days (and an entity's override for
    its own), keeps the newest state of a quiet entity, and vacuum gives the space back."""
    clock = Clock(T0)
    settings = RecorderSettings.for_config_dir(
        tmp_path,
        commit_interval=0,
        raw_keep_days=10,
        rollup_5m_keep_days=15,
        entity_overrides={
            "sensor.noisy": TierOverrides(raw_keep_days=1, rollup_5m_keep_days=2,
                                          rollup_1h_keep_days=5),
        },
    )
    recorder = Recorder(settings, clock=clock)
    recorder.start()
    db = settings.db_path
    try:
        rng = random.Random(4)
        end = T0 + 20 * DAY
        feed(recorder, "sensor.t", T0, end, 120, rng)
        feed(recorder, "sensor.noisy", T0, end, 120, rng)
        switch = ReadOnlyDict({"friendly_name": "Pump"})
        for i in range(20 * 24):
            t = T0 + i * 3600 + 5
            recorder.record_state("switch.pump", State("switch.pump", "on" if i % 2 else "off",
                                                       switch, t, t))
        recorder.record_state("switch.quiet", State("switch.quiet", "on", switch, T0, T0))
        for i in range(40):  # a text sensor whose attributes differ every time
            t = T0 + i * DAY / 2
            recorder.record_state("sensor.log", State("sensor.log", "ok", {"line": i}, t, t))
        for entity_id in ("sensor.t", "sensor.noisy"):  # the devices go away at the end
            recorder.record_state(entity_id, State(entity_id, "unavailable", UNIT, end, end))
        for i in range(20):
            recorder.record_event(_event("doorbell_pressed", T0 + i * DAY + 60))
        assert await recorder.flush(30)
        clock.now = end
        assert await recorder.run_maintenance(120)

        def oldest(table: str, column: str, entity_id: str) -> float:
            (value,), = rows(db, f"SELECT min({column}) FROM {table} JOIN entities e"
                                 " ON e.id = entity WHERE e.entity_id = ?", entity_id)
            return value

        assert recorder.samples("sensor.t", T0, end)[0][0] >= end - 10 * DAY - 120
        assert recorder.samples("sensor.t", T0, end - 10 * DAY - DAY) == []
        assert recorder.samples("sensor.noisy", T0, end)[0][0] >= end - DAY - DAY  # a day block
        assert recorder.samples("sensor.noisy", T0, end - 2 * DAY) == []
        assert oldest("rollup_5m", "start", "sensor.t") >= end - 15 * DAY - 300
        assert oldest("rollup_5m", "start", "sensor.noisy") >= end - 2 * DAY - 300
        assert oldest("rollup_1h", "start", "sensor.t") == T0  # hourly: forever
        assert oldest("rollup_1h", "start", "sensor.noisy") >= end - 5 * DAY - 3600
        assert oldest("states", "ts", "switch.pump") >= end - 10 * DAY
        assert oldest("states", "ts", "switch.quiet") == T0  # its newest row stays
        assert rows(db, "SELECT min(ts) FROM events")[0][0] >= end - 10 * DAY

        before = db_bytes(db)
        clock.now = end + 12 * DAY  # every raw sample and text state is now past its days
        assert await recorder.run_maintenance(120)
        after = db_bytes(db)
        assert rows(db, "SELECT count(*) FROM samples") == [(0,)]
        # Attribute sets and event data nothing uses any more went with their rows.
        assert rows(db, "SELECT count(*) FROM attributes WHERE id NOT IN"
                        " (SELECT attributes FROM states WHERE attributes IS NOT NULL)") == [(0,)]
        assert rows(db, "SELECT shared FROM attributes a JOIN states s ON s.attributes = a.id"
                        " JOIN entities e ON e.id = s.entity WHERE e.entity_id = 'sensor.log'"
                        ) == [('{"line":39}',)]
        assert rows(db, "SELECT count(*) FROM events") == rows(db, "SELECT count(*) FROM event_data")
        assert rows(db, "SELECT count(*) FROM event_data") == [(0,)]
        assert rows(db, "SELECT count(*) FROM blocks") == [(0,)]
        assert rows(db, "PRAGMA freelist_count") == [(0,)]
        assert after < before * 0.6, (before, after)
        assert os.path.getsize(db) == after  # checkpointed: the file itself shrank
    finally:
        await recorder.stop()


def _event(event_type: str, ts: float) -> Any:
    from hub.core import Event

    return Event(event_type, {"n": 1}, time_fired_ts=ts)


async def test_restart_keeps_everything(tmp_path: Path) -> None:
    """Given a recorder that stops, a new one on the same file reads every tier back, records
    a new run, and keeps writing."""
    clock = Clock(T0)
    settings = RecorderSettings.for_config_dir(tmp_path, commit_interval=0.05)
    first = Recorder(settings, clock=clock)
    first.start()
    rng = random.Random(5)
    sent = feed(first, "sensor.t", T0, T0 + 3 * 3600, 20, rng)
    first.record_state("switch.a", State("switch.a", "on", None, T0 + 5, T0 + 5))
    first.record_event(_event("doorbell_pressed", T0 + 6))
    assert await first.flush(10)
    clock.now = T0 + 3 * 3600 + 60
    assert await first.run_maintenance(60)
    rollups = first.rollups("sensor.t", T0, clock.now, "5minute")
    history = first.states(["switch.a"], T0, clock.now)
    await first.stop()

    clock.now += 60
    second = Recorder(settings, clock=clock)
    second.start()
    try:
        assert second.samples("sensor.t", T0, clock.now) == sent
        assert second.rollups("sensor.t", T0, clock.now, "5minute") == rollups
        assert len(rollups) == 36
        assert second.states(["switch.a"], T0, clock.now) == history
        more = feed(second, "sensor.t", clock.now, clock.now + 600, 20, rng)
        assert await second.flush(10)
        assert second.samples("sensor.t", T0, clock.now + 600) == sent + more
        runs = rows(settings.db_path, "SELECT start, end, closed_incorrectly FROM recorder_runs")
        assert runs == [(T0, T0 + 3 * 3600 + 60, 0), (T0 + 3 * 3600 + 120, None, 0)]
        assert rows(settings.db_path, "SELECT count(*) FROM events") == [(1,)]
        (integrity,), = rows(settings.db_path, "PRAGMA integrity_check")
        assert integrity == "ok"
    finally:
        await second.stop()


async def test_new_database_is_wal_with_incremental_vacuum(tmp_path: Path) -> None:
    recorder = Recorder(RecorderSettings.for_config_dir(tmp_path))
    recorder.start()
    assert await recorder.flush(10)
    db = recorder.settings.db_path
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA auto_vacuum") == [(2,)]
    assert rows(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert rows(db, "SELECT name FROM _sqlite_migrations") == [("0001_initial",)]
    await recorder.stop()


async def test_states_start_with_the_state_in_effect(tmp_path: Path) -> None:
    """Given a numeric entity with an attribute change and an outage, a history starting at any
    moment begins with the state that was in effect then, rebuilt from samples and attributes."""
    recorder = Recorder(RecorderSettings.for_config_dir(tmp_path, commit_interval=0),
                        clock=Clock(T0))
    recorder.start()
    try:
        x = ReadOnlyDict({"unit_of_measurement": "W", "battery": 90})
        y = ReadOnlyDict({"unit_of_measurement": "W", "battery": 80})
        t = T0
        for state in (
            State("sensor.p", "5", x, t + 1, t + 1),
            State("sensor.p", "5", y, t + 1, t + 2),  # attributes only
            State("sensor.p", "7.25", y, t + 4, t + 4),
            State("sensor.p", "unavailable", y, t + 5, t + 5),
            State("sensor.p", "8", y, t + 6, t + 6),
        ):
            recorder.record_state("sensor.p", state)
        assert await recorder.flush(10)

        def first(start: float, **kwargs: Any) -> tuple[Any, ...]:
            row = recorder.states(["sensor.p"], start, t + 10, **kwargs)["sensor.p"][0]
            battery = None if row.attributes is None else row.attributes["battery"]
            return row.state, battery, row.last_changed - t, row.last_updated - t

        assert first(t + 1.5) == ("5", 90, 1, 1)
        assert first(t + 3) == ("5", 80, 1, 2)
        assert first(t + 4.5) == ("7.25", 80, 4, 4)
        assert first(t + 5.5) == ("unavailable", 80, 5, 5)
        assert first(t + 3, include_start=False) == ("7.25", 80, 4, 4)
        assert first(t + 3, with_attributes=False) == ("5", None, 1, 2)
        whole = recorder.states(["sensor.p"], t, t + 10)["sensor.p"]
        assert [(r.state, r.attributes["battery"]) for r in whole] == [
            ("5", 90), ("5", 80), ("7.25", 80), ("unavailable", 80), ("8", 80)
        ]
        assert recorder.states(["sensor.p"], t, t + 0.5)["sensor.p"] == []
        assert recorder.states(["sensor.none"], t, t + 10) == {"sensor.none": []}
    finally:
        await recorder.stop()


async def test_stats_show_rows_and_bytes_per_tier_and_entity(tmp_path: Path) -> None:
    """Given two days of a sensor, stats say how many rows and bytes each tier and each entity
    takes, and count what was refused (too old for the retention)."""
    clock = Clock(T0 + 2 * DAY)
    recorder = Recorder(RecorderSettings.for_config_dir(tmp_path, commit_interval=0,
                                                        raw_keep_days=1), clock=clock)
    recorder.start()
    try:
        sent = feed(recorder, "sensor.t", T0, T0 + 2 * DAY, 60, random.Random(6))
        recorder.record_state("switch.a", State("switch.a", "on", None, T0 + DAY, T0 + DAY))
        assert await recorder.flush(10)
        assert await recorder.run_maintenance(60)
        stats = recorder.stats()
        kept = [s for s in sent if s[0] >= T0 + DAY]
        assert stats["rejected_too_old"] == len(sent) - len(kept)
        assert stats["written_samples"] == len(kept) and stats["dropped"] == 0
        tables = stats["database"]["tables"]
        assert tables["blocks"]["samples"] + tables["samples"]["rows"] == len(kept)
        assert all(tables[t]["bytes"] > 0 for t in ("blocks", "samples", "rollup_5m", "states"))
        per_entity = stats["database"]["entities"]
        assert per_entity["sensor.t"]["block_samples"] == tables["blocks"]["samples"]
        assert per_entity["sensor.t"]["rollup_5m"] == tables["rollup_5m"]["rows"]
        assert per_entity["sensor.t"]["bytes"] > per_entity["switch.a"]["bytes"] > 0
        assert stats["database"]["file_bytes"] > 0
    finally:
        await recorder.stop()
