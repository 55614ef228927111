"""Faults: a read-only database, a full one, a full queue. The hub keeps running, the user is
told, and recording resumes with what was kept once the fault is gone."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.core import Hub
from hub.recorder import NOTIFICATION_ID, Recorder, RecorderSettings
from tests.support import missing_part


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(0.02)


class ReadOnly:
    """Makes a file unwritable even for root (chattr +i), or by mode for other users."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.active = False

    def apply(self) -> None:
        if os.geteuid() == 0:
            if shutil.which("chattr") is None:
                missing_part("running as root without chattr: cannot make a file read-only")
            done = subprocess.run(
                ["chattr", "+i", str(self.path)], capture_output=True, check=False
            )
            if done.returncode:
                missing_part(f"chattr +i not supported here: {done.stderr.decode().strip()}")
        else:
            self.path.chmod(0o444)
        self.active = True

    def clear(self) -> None:
        if self.active:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(self.path)], check=True)
            else:
                self.path.chmod(0o644)
            self.active = False


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[tuple[RecorderSettings, ReadOnly]]:
    """An existing recorder database made read-only (always made writable again after)."""
    settings = RecorderSettings.for_config_dir(
        tmp_path / "config0", commit_interval=0.05, retry_interval=0.1, queue_max=50
    )
    first = Recorder(settings)
    first.start()
    assert first.flush_blocking(10)
    first.stop_blocking(10)
    guard = ReadOnly(settings.db_path)
    guard.apply()
    yield settings, guard
    guard.clear()


def count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


async def test_read_only_database_notifies_keeps_items_and_resumes(
    make_hub: Callable[..., Any],
    read_only_db: tuple[RecorderSettings, ReadOnly],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given a read-only database and a full queue: one error and a notification, the hub runs
    on, the overflow is counted (one warning), and once the file is writable the kept changes
    are written and the notification says what was lost."""
    settings, guard = read_only_db
    hub: Hub = await make_hub(config_dir=settings.db_path.parent)
    recorder = Recorder(settings)
    recorder.start(hub)
    try:
        await until(lambda: hub.notifications.get(NOTIFICATION_ID) is not None)
        assert "readonly" in hub.notifications.get(NOTIFICATION_ID)["message"]
        for i in range(80):
            hub.states.set("sensor.power", str(i), {"unit_of_measurement": "W"})
        assert hub.states.get("sensor.power").state == "79"  # the hub carries on
        stats = recorder.runtime_stats()
        assert stats["queue_length"] == 50 and stats["dropped_queue_full"] == 30
        assert stats["fault_since"] is not None and "readonly" in stats["last_error"]
        assert not await recorder.flush(1)
        await until(lambda: "queue is full" in caplog.text)
        await asyncio.sleep(0.3)  # several retries: still one error, one warning
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "cannot write" in errors[0].getMessage()
        assert caplog.text.count("queue is full") == 1

        guard.clear()
        await until(lambda: recorder.runtime_stats()["fault_since"] is None)
        assert await recorder.flush(10)
        assert count(settings.db_path, "SELECT count(*) FROM samples") == 50
        notification = hub.notifications.get(NOTIFICATION_ID)
        assert notification is not None and "30 changes were dropped" in notification["message"]
    finally:
        await recorder.stop()


async def test_full_database_pauses_then_resumes_when_space_returns(
    make_hub: Callable[..., Any],
) -> None:
    """Given a database that reaches its size cap (like a full disk), the writer reports it and
    keeps the changes; when there is room again it writes them all."""
    hub: Hub = await make_hub()
    settings = RecorderSettings.for_config_dir(
        hub.config_dir, commit_interval=0.05, retry_interval=0.1, max_db_size_mb=0.25
    )
    recorder = Recorder(settings)
    recorder.start(hub)
    try:
        assert await recorder.flush(10)
        sent = 0
        while hub.notifications.get(NOTIFICATION_ID) is None:
            assert sent < 400, "the database never filled up"
            hub.states.set("sensor.log", "x", {"line": f"{sent} " + "y" * 4000})
            sent += 1
            await asyncio.sleep(0.005)
        assert "full" in hub.notifications.get(NOTIFICATION_ID)["message"]
        for _ in range(20):
            hub.states.set("sensor.log", "x", {"line": f"{sent} " + "y" * 4000})
            sent += 1
        hub.bus.fire("still_alive")
        assert recorder.runtime_stats()["queue_length"] > 0

        settings.max_db_size_mb = None  # as if disk space came back: read at the reconnection
        await until(lambda: recorder.runtime_stats()["fault_since"] is None)
        assert await recorder.flush(10)
        assert hub.notifications.get(NOTIFICATION_ID) is None  # nothing was lost
        assert count(settings.db_path, "SELECT count(*) FROM states") == sent
        assert count(settings.db_path, "PRAGMA integrity_check") == "ok"
        assert recorder.runtime_stats()["dropped"] == 0
    finally:
        await recorder.stop()


async def test_writer_failure_at_stop_loses_nothing_silently(
    read_only_db: tuple[RecorderSettings, ReadOnly], caplog: pytest.LogCaptureFixture
) -> None:
    """Given a recorder stopped while the database is still read-only, it returns in bounded
    time and logs how many changes it could not write."""
    settings, _ = read_only_db
    recorder = Recorder(settings)
    recorder.start()
    from hub.core import State

    for i in range(5):
        recorder.record_state("sensor.x", State("sensor.x", str(i), {"unit_of_measurement": "W"}))
    await recorder.stop(timeout=10)
    assert not recorder.running
    assert "stops without writing 5 changes" in caplog.text
    assert recorder.runtime_stats()["dropped_errors"] == 5


async def test_database_of_a_newer_version_is_left_alone(make_hub: Callable[..., Any]) -> None:
    """Given a database migrated by a newer version, the recorder does not write to it and
    says why; the hub runs on."""
    hub: Hub = await make_hub()
    settings = RecorderSettings.for_config_dir(hub.config_dir, retry_interval=0.1)
    first = Recorder(settings)
    first.start()
    assert await first.flush(10)
    await first.stop()
    conn = sqlite3.connect(settings.db_path)
    with conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                     " VALUES ('hub.recorder', '9999_from_the_future', '')")
    conn.close()

    recorder = Recorder(settings)
    recorder.start(hub)
    try:
        await until(lambda: hub.notifications.get(NOTIFICATION_ID) is not None)
        assert "newer version" in hub.notifications.get(NOTIFICATION_ID)["message"]
        hub.states.set("sensor.x", "1", {"unit_of_measurement": "W"})
        assert not await recorder.flush(1)
        assert count(settings.db_path, "SELECT count(*) FROM recorder_runs") == 1
    finally:
        await recorder.stop(timeout=10)
