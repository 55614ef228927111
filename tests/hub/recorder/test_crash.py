"""kill -9 while recording: the database stays sound and keeps all but the last commit interval."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from hub.recorder import Recorder, RecorderSettings

ROOT = Path(__file__).resolve().parents[3]

CHILD = """
import asyncio, sys
from hub.core import Hub
from hub.recorder import Recorder, RecorderSettings

async def main(config_dir):
    hub = Hub(config_dir)
    recorder = Recorder(RecorderSettings.for_config_dir(config_dir, commit_interval=0.2))
    recorder.start(hub)
    i = 0
    while True:
        for _ in range(100):
            hub.states.set("sensor.seq", str(i), {"unit_of_measurement": "n"})
            hub.states.set("switch.s", "on" if i % 2 else "off")
            i += 1
        print(i, flush=True)  # changes handed to the recorder so far
        await asyncio.sleep(0.005)

asyncio.run(main(sys.argv[1]))
"""


def test_kill_9_keeps_committed_rows_and_integrity(tmp_path: Path) -> None:
    """Given a hub recording ~20,000 changes a second, kill -9 leaves a database that passes
    integrity_check and holds every change handed over more than a commit interval before the
    kill, in order, without holes; a new recorder then carries on."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    handed: list[int] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            handed.append(int(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not handed or handed[-1] < 20_000:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child did not get going"
            time.sleep(0.05)
        before = handed[-1]
        time.sleep(1.0)  # five commit intervals: everything handed over by now is committed
        assert child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        reader.join(5)
    assert child.returncode == -signal.SIGKILL

    db = tmp_path / "hub.db"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        values = [v for (v,) in conn.execute(
            "SELECT value FROM samples JOIN entities e ON e.id = entity"
            " WHERE e.entity_id = 'sensor.seq' ORDER BY ts_us"
        )]
        switches = conn.execute("SELECT count(*) FROM states JOIN entities e ON e.id = entity"
                                " WHERE e.entity_id = 'switch.s'").fetchone()[0]
    finally:
        conn.close()
    assert len(values) >= before
    assert values == [float(i) for i in range(len(values))]  # a prefix: in order, no holes
    assert switches >= before

    recorder = Recorder(RecorderSettings.for_config_dir(tmp_path, commit_interval=0))
    recorder.start()
    try:
        from hub.core import State

        recorder.record_state("sensor.seq", State("sensor.seq", "-1", {"unit_of_measurement": "n"}))
        assert recorder.flush_blocking(10)
        conn = sqlite3.connect(db)
        try:
            runs = conn.execute("SELECT closed_incorrectly FROM recorder_runs ORDER BY id").fetchall()
            assert runs == [(1,), (0,)]
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()
    finally:
        recorder.stop_blocking(10)
