"""The `hub` command line as a user runs it: real processes on real config dirs."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HUB = [sys.executable, "-m", "hub.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUB, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


class RunningHub:
    """`hub run` in a subprocess; read its output until a line appears, then stop it with SIGINT."""

    def __init__(self, config_dir: Path, env: dict[str, str] | None = None) -> None:
        # A free port on loopback: tests never take 8123 or listen on other addresses.
        self.proc = subprocess.Popen(
            [*HUB, "run", "-c", str(config_dir), "--host", "127.0.0.1", "--port", "0", "--mqtt-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env, cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                raise AssertionError(f"{text!r} not printed; output so far:\n{self.output}")
            try:
                self.output += self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
        return self.output

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_hub_run_on_an_empty_dir_writes_a_default_config_and_starts_the_demo(tmp_path: Path) -> None:
    config_dir = tmp_path / "fresh"
    hub = RunningHub(config_dir)
    try:
        output = hub.wait_for("entities")
    finally:
        code = hub.stop()
    assert "Wrote a default configuration" in output
    assert "demo" in output
    assert code == 0
    assert (config_dir / "configuration.yaml").exists()
    assert run_cli("check-config", "-c", str(config_dir)).returncode == 0


def test_check_config_names_file_and_line_of_every_error(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_text(
        "hub:\n  name: Farm\n  unit_system: furlongs\n"
        "demo:\n  update_interval: soon\n"
        "no_such_integration:\n  x: 1\n"
    )
    result = run_cli("check-config", "-c", str(tmp_path))
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    config = str(tmp_path / "configuration.yaml")
    assert any(line.startswith(f"{config}:3:") and "unit_system" in line for line in lines), lines
    assert any(line.startswith(f"{config}:5:") and "update_interval" in line for line in lines), lines
    assert any(line.startswith(f"{config}:6:") and "no_such_integration" in line for line in lines), lines


def test_check_config_reports_yaml_syntax_errors_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_text("demo:\n  update_interval: 5\nhub: [unclosed\n")
    result = run_cli("check-config", "-c", str(tmp_path))
    assert result.returncode != 0
    assert f"{tmp_path / 'configuration.yaml'}:" in result.stdout + result.stderr


def test_scaffolded_plugin_installs_passes_its_test_and_loads_next_to_a_broken_one(tmp_path: Path) -> None:
    """The plugin-author story end to end: scaffold, pip install, test, configure, run."""
    result = run_cli("scaffold", "integration", "garden_sensor", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    package = tmp_path / "hub-garden-sensor"
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=180,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    own_test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
        capture_output=True, text=True, timeout=120, env=env, cwd=package,
    )
    assert own_test.returncode == 0, own_test.stdout + own_test.stderr

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    # The demo block is broken: the hub must still start and run the plugin.
    (config_dir / "configuration.yaml").write_text(
        "garden_sensor:\n  greeting: hello garden\ndemo:\n  update_interval: never\n"
    )
    check = run_cli("check-config", "-c", str(config_dir), env=env)
    assert check.returncode != 0 and ":4:" in check.stdout and "update_interval" in check.stdout

    hub = RunningHub(config_dir, env)
    try:
        output = hub.wait_for("entities")
        if "Integration demo failed" not in output:
            output = hub.wait_for("Integration demo failed", timeout=5)
    finally:
        code = hub.stop()
    assert "garden_sensor" in output.split("Integrations:")[1].splitlines()[0]
    assert "configuration.yaml:4" in output
    assert code == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad-Name", "not a valid integration domain"),
        ("abc_", "not a valid integration domain"),
        ("_abc", "not a valid integration domain"),
        ("foo__bar", "not a valid integration domain"),
        ("1abc", "not a valid integration domain"),
        ("a" * 41, "not a valid integration domain"),
        ("demo", "already an installed integration domain (integrations.demo)"),
        ("http", "already an installed integration domain (hub.http)"),
        ("hub", "the key of the hub's own configuration"),
    ],
)
def test_scaffold_refuses_a_bad_name(tmp_path: Path, name: str, message: str) -> None:
    result = run_cli("scaffold", "integration", name, "-o", str(tmp_path))
    assert result.returncode != 0
    assert message in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args", [["--version"], ["run", "--help"]])
def test_help_and_version(args: list[str]) -> None:
    assert run_cli(*args).returncode == 0
