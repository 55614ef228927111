"""`hub db stats|purge|export`, run as a user runs them, on a database the engine wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.core import State
from hub.recorder import Recorder, RecorderReader, RecorderSettings, format_value

HUB = [sys.executable, "-m", "hub.cli"]
NOW = float(int(time.time()))  # whole seconds: the database keeps microseconds
OLD = NOW - 40 * 86_400  # beyond the default 10 days of raw data
UNIT = {"unit_of_measurement": "°C", "state_class": "measurement"}

# What the database holds: (ts, value) of sensor.temp, (ts, state) of switch.pump, and a chatty
# text sensor whose old states (each with its own attributes) fill many pages.
TEMP_OLD = [(OLD + i * 300.0, 10 + i % 7 * 0.25) for i in range(300)]
TEMP_NEW = [(NOW - 6 * 3600 + i * 600.0, 20 + i * 0.5) for i in range(36)]
PUMP_OLD = [(OLD + i * 900.0, "on" if i % 2 else "off") for i in range(40)]
PUMP_NEW = [(NOW - 12 * 3600 + i * 3600.0, "on" if i % 2 else "off") for i in range(10)]
LOG_OLD = [(OLD + i * 60.0, f"line {i}") for i in range(2000)]


def hub_db(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*HUB, "db", *args], capture_output=True, text=True, timeout=120,
                            check=False)
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


@pytest.fixture(scope="module")
def recorded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config dir whose hub.db the engine wrote (keeping everything) and closed."""
    config_dir = tmp_path_factory.mktemp("recorded")
    settings = RecorderSettings.for_config_dir(
        config_dir, commit_interval=0, raw_keep_days=None, rollup_5m_keep_days=None)
    recorder = Recorder(settings)
    for ts, value in TEMP_OLD + TEMP_NEW:
        assert recorder.record_state("sensor.temp", State("sensor.temp", str(value), UNIT, ts, ts))
    for ts, state in PUMP_OLD + PUMP_NEW:
        assert recorder.record_state("switch.pump", State("switch.pump", state, None, ts, ts))
    for ts, line in LOG_OLD:
        attrs = {"detail": f"{line}: " + "x" * 200}
        assert recorder.record_state("sensor.log", State("sensor.log", line, attrs, ts, ts))
    recorder.start()
    assert recorder.flush_blocking(30)
    recorder.stop_blocking(30)
    return config_dir


@pytest.fixture
def config_dir(recorded_dir: Path, tmp_path: Path) -> Path:
    """A fresh copy of the recorded config dir, for commands that change it."""
    return Path(shutil.copytree(recorded_dir, tmp_path / "hub"))


def test_stats_counts_what_was_recorded(recorded_dir: Path) -> None:
    """Given a recorded database, `hub db stats --json` counts every sample and state it holds,
    per tier and per entity, and reports the file's real size."""
    stats = json.loads(hub_db("stats", "-c", str(recorded_dir), "--json", "--all").stdout)
    tiers = stats["tiers"]
    assert set(tiers) == {"samples", "blocks", "rollup_5m", "rollup_1h", "states", "events"}
    assert tiers["samples"]["rows"] + tiers["blocks"]["samples"] == len(TEMP_OLD + TEMP_NEW)
    assert tiers["blocks"]["rows"] > 0  # the old samples were packed
    assert tiers["rollup_5m"]["rows"] > 0
    assert stats["file_bytes"] == (recorded_dir / "hub.db").stat().st_size
    assert stats["free_pages"] >= 0 and stats["page_count"] > 0
    entities = {e["entity_id"]: e for e in stats["entities"]}
    assert list(entities) == [e["entity_id"] for e in
                              sorted(stats["entities"], key=lambda e: -e["bytes"])]
    assert set(entities) == {"sensor.temp", "switch.pump", "sensor.log"}
    temp = entities["sensor.temp"]
    assert temp["samples"] + temp["block_samples"] == len(TEMP_OLD + TEMP_NEW)
    assert entities["switch.pump"]["states"] == len(PUMP_OLD + PUMP_NEW)
    assert entities["sensor.log"]["states"] == len(LOG_OLD)
    assert stats["entity_count"] == 3

    table = hub_db("stats", "-c", str(recorded_dir)).stdout
    assert "rollup_1h" in table and "sensor.log" in table and "switch.pump" in table


def test_export_gives_samples_and_states_as_recorded(recorded_dir: Path, tmp_path: Path) -> None:
    """A numeric entity exports its samples as ts,value; a text one its states as ts,state;
    the default range is the last 24 hours."""
    lines = hub_db("export", "-c", str(recorded_dir), "--entity", "sensor.temp").stdout.splitlines()
    assert lines == ["ts,value"] + [f"{iso(ts)},{format_value(v)}" for ts, v in TEMP_NEW]

    start, end = iso(OLD), iso(OLD + 100 * 300)
    out = tmp_path / "temp.jsonl"
    result = hub_db("export", "-c", str(recorded_dir), "--entity", "sensor.temp", "--start",
                    start, "--end", end, "--format", "jsonl", "-o", str(out))
    assert "Wrote 100 rows" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"ts": iso(ts), "value": v} for ts, v in TEMP_OLD[:100]]

    pump = hub_db("export", "-c", str(recorded_dir), "--entity", "switch.pump",
                  "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in pump] == [
        {"ts": iso(ts), "state": s} for ts, s in PUMP_NEW]


def test_purge_applies_retention_and_vacuum_shrinks_the_file(config_dir: Path) -> None:
    """`hub db purge --vacuum` drops what is older than the configured 10 days (the newest state
    of each entity stays), keeps recent history, and gives the pages back."""
    size_before = (config_dir / "hub.db").stat().st_size
    result = hub_db("purge", "-c", str(config_dir), "--vacuum")
    assert "removed" in result.stdout and "Size:" in result.stdout
    assert "0 free pages" in result.stdout
    assert (config_dir / "hub.db").stat().st_size < size_before * 0.7

    reader = RecorderReader(config_dir / "hub.db")
    try:
        assert reader.samples("sensor.temp", OLD - 1, NOW - 86_400) == []
        assert reader.samples("sensor.temp", NOW - 86_400, NOW) == TEMP_NEW
        pump = reader.states(["switch.pump"], 0, NOW + 1, include_start=False)["switch.pump"]
        assert [(r.last_updated, r.state) for r in pump] == PUMP_NEW
        log = reader.states(["sensor.log"], 0, NOW + 1, include_start=False)["sensor.log"]
        assert [r.state for r in log] == [LOG_OLD[-1][1]]  # the last state it had
        stats = reader.db_stats()
        assert stats["tables"]["rollup_5m"]["rows"] > 0  # 365 days of 5-minute rollups stay
    finally:
        reader.close()


def test_purge_of_one_entity_with_keep_days_and_the_config(config_dir: Path) -> None:
    """`--entity` limits the purge to that entity, `--keep-days` overrides the retention, and
    the recorder: block of configuration.yaml applies (here: 100 days, so nothing goes)."""
    (config_dir / "configuration.yaml").write_text("recorder:\n  purge_keep_days: 100\n")
    hub_db("purge", "-c", str(config_dir))
    stats = json.loads(hub_db("stats", "-c", str(config_dir), "--json").stdout)
    assert stats["tiers"]["states"]["rows"] >= len(PUMP_OLD + PUMP_NEW + LOG_OLD)

    result = hub_db("purge", "-c", str(config_dir), "--entity", "switch.pump", "--keep-days", "1")
    assert "switch.pump" in result.stdout
    entities = {e["entity_id"]: e for e in
                json.loads(hub_db("stats", "-c", str(config_dir), "--json").stdout)["entities"]}
    assert entities["switch.pump"]["states"] == len([ts for ts, _ in PUMP_NEW if ts > NOW - 86_400])
    assert entities["sensor.log"]["states"] == len(LOG_OLD)  # not named: untouched


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("export", "--entity", "sensor.nope"), 1, "no entity 'sensor.nope'"),
        (("purge", "--entity", "sensor.nope"), 1, "no entity 'sensor.nope'"),
        (("export", "--entity", "sensor.temp", "--start", "yesterday"), 2, "not an ISO 8601"),
        (("export", "--entity", "sensor.temp", "--start", "2030-01-02", "--end", "2030-01-01"),
         1, "must be before"),
        (("purge", "--keep-days", "0"), 2, "above 0"),
    ],
)
def test_bad_input_is_a_clear_error(recorded_dir: Path, args: tuple[str, ...], code: int,
                                    message: str) -> None:
    result = hub_db(*args, "-c", str(recorded_dir), check=False)
    assert result.returncode == code
    assert message in result.stderr


@pytest.mark.parametrize("command", [("stats",), ("purge",), ("export", "--entity", "sensor.t")])
def test_no_database_yet(tmp_path: Path, command: tuple[str, ...]) -> None:
    """Before the hub has recorded anything, every command says so (and creates nothing)."""
    result = hub_db(*command, "-c", str(tmp_path), check=False)
    assert result.returncode == 1
    assert "no recorder database" in result.stderr
    assert not (tmp_path / "hub.db").exists()


def test_purge_beside_a_running_hub_leaves_its_run_alone(config_dir: Path) -> None:
    """The hub's run is open while it records; a purge from the command line must neither close
    it as "incorrectly" nor add a run of its own (each run boundary breaks the rollups)."""
    import sqlite3

    with sqlite3.connect(config_dir / "hub.db") as conn:  # the running hub's open run
        conn.execute("INSERT INTO recorder_runs (start) VALUES (?)", (NOW,))
        runs_before = conn.execute("SELECT id, end, closed_incorrectly FROM recorder_runs").fetchall()
    conn.close()
    hub_db("purge", "-c", str(config_dir), "--vacuum")
    with sqlite3.connect(config_dir / "hub.db") as conn:
        runs_after = conn.execute("SELECT id, end, closed_incorrectly FROM recorder_runs").fetchall()
    conn.close()
    assert runs_after == runs_before
