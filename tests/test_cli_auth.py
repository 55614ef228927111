"""`hub user` and `hub token` as a script runs them: real processes on a fresh config dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hub.core import Hub

HUB = [sys.executable, "-m", "hub.cli"]
ROOT = Path(__file__).resolve().parents[1]


def hub_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUB, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)


async def test_a_script_adds_a_user_and_gets_a_token_that_the_hub_accepts(tmp_path: Path) -> None:
    config_dir = tmp_path / "never-run"  # `hub run` has never touched it; it does not exist
    added = hub_cli("user", "add", "alice", "--admin", "--password-stdin", "-c", str(config_dir),
                    stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert "Created user alice" in added.stdout
    assert not (config_dir / "configuration.yaml").exists()

    created = hub_cli("token", "create", "alice", "-c", str(config_dir))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]

    hub = Hub(config_dir)
    await hub.auth.load()
    found = hub.auth.validate_access_token(token)
    assert found is not None
    user, refresh_token = found
    assert user.username == "alice" and user.is_admin and user.is_owner  # the first user
    assert refresh_token.token_type == "long_lived_access_token"
    assert await hub.auth.validate_login("alice", "a long password") is user

    listed = hub_cli("user", "list", "-c", str(config_dir))
    assert listed.returncode == 0 and "alice" in listed.stdout
    tokens = hub_cli("token", "list", "alice", "-c", str(config_dir))
    assert tokens.returncode == 0 and refresh_token.id in tokens.stdout

    revoked = hub_cli("token", "revoke", refresh_token.id, "-c", str(config_dir))
    assert revoked.returncode == 0, revoked.stderr
    hub = Hub(config_dir)
    await hub.auth.load()
    assert hub.auth.validate_access_token(token) is None


def test_a_token_for_an_unknown_user_is_refused_clearly(tmp_path: Path) -> None:
    result = hub_cli("token", "create", "nobody", "-c", str(tmp_path))
    assert result.returncode != 0
    assert "no user 'nobody'" in result.stderr
    assert result.stdout == ""


def test_bad_passwords_and_duplicate_users_are_refused(tmp_path: Path) -> None:
    short = hub_cli("user", "add", "bob", "--password-stdin", "-c", str(tmp_path), stdin="short\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    no_tty = hub_cli("user", "add", "bob", "-c", str(tmp_path), stdin="")
    assert no_tty.returncode != 0 and "--password-stdin" in no_tty.stderr
    first = hub_cli("user", "add", "Bob", "--password-stdin", "-c", str(tmp_path),
                    stdin="long enough\n")
    assert first.returncode == 0, first.stderr
    again = hub_cli("user", "add", "bob", "--password-stdin", "-c", str(tmp_path),
                    stdin="long enough\n")
    assert again.returncode != 0 and "taken" in again.stderr
    second = hub_cli("user", "add", "Carol Smith", "--username", "carol", "--read-only",
                     "--password-stdin", "-c", str(tmp_path), stdin="long enough\n")
    assert second.returncode == 0 and "read-only" in second.stdout
    listed = hub_cli("user", "list", "-c", str(tmp_path)).stdout
    assert "Carol Smith" in listed and "carol" in listed and "owner" in listed
    removed = hub_cli("user", "remove", "BOB", "-c", str(tmp_path))
    assert removed.returncode == 0 and "Removed user bob" in removed.stdout
    assert "bob" not in hub_cli("user", "list", "-c", str(tmp_path)).stdout
