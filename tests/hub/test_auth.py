"""Users log in with passwords, clients hold tokens, revoked tokens stop working at once."""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
import time
from pathlib import Path

import jwt
import orjson
import pytest

from hub import auth as hub_auth
from hub.auth import TOKEN_TYPE_LONG_LIVED, AuthManager, verify_password
from hub.core import Hub

PASSWORD = "correct horse battery"


async def loaded(config_dir: Path) -> Hub:
    """A hub on `config_dir` with only its auth store loaded (as the CLI does)."""
    hub = Hub(config_dir)
    await hub.auth.load()
    return hub


@pytest.fixture
async def hub(tmp_path: Path) -> Hub:
    return await loaded(tmp_path)


@pytest.fixture
async def auth(hub: Hub) -> AuthManager:
    return hub.auth


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def storage(config_dir: Path) -> dict:
    return orjson.loads((config_dir / ".storage" / "auth").read_bytes())


async def test_a_user_logs_in_with_the_right_password_only(auth: AuthManager) -> None:
    assert not auth.onboarded
    alice = await auth.create_user("Alice", "Alice", PASSWORD, admin=True)
    assert auth.onboarded
    assert alice.username == "alice" and alice.name == "Alice" and alice.is_admin
    assert await auth.validate_login("alice", PASSWORD) is alice
    assert await auth.validate_login(" ALICE ", PASSWORD) is alice  # usernames ignore case
    assert await auth.validate_login("alice", PASSWORD + "x") is None
    assert await auth.validate_login("bob", PASSWORD) is None
    assert await auth.validate_login("alice", "") is None
    assert auth.get_user_by_username("ALICE") is alice and auth.get_user(alice.id) is alice


async def test_a_wrong_username_costs_a_kdf_run_too(auth: AuthManager,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    await auth.create_user("Alice", "alice", PASSWORD)
    checked: list[str] = []
    real = hub_auth.verify_password
    monkeypatch.setattr(hub_auth, "verify_password",
                        lambda pw, encoded: checked.append(encoded) or real(pw, encoded))
    assert await auth.validate_login("nobody", PASSWORD) is None
    assert await auth.validate_login("alice", "wrong password") is None
    assert len(checked) == 2 and all(e.startswith("scrypt$16384$8$1$") for e in checked)


async def test_duplicate_usernames_and_short_passwords_are_refused(auth: AuthManager) -> None:
    await auth.create_user("Alice", "alice", PASSWORD)
    with pytest.raises(ValueError, match="taken"):
        await auth.create_user("Other Alice", "ALICE", PASSWORD)
    with pytest.raises(ValueError, match="at least 8"):
        await auth.create_user("Bob", "bob", "short")
    with pytest.raises(ValueError, match="at least 8"):
        await auth.create_user("Bob", "bob", "")
    with pytest.raises(ValueError, match="empty"):
        await auth.create_user("Nobody", "  ", PASSWORD)
    assert [u.username for u in auth.users()] == ["alice"]


async def test_concurrent_creation_of_one_username_makes_one_user(auth: AuthManager) -> None:
    results = await asyncio.gather(*(auth.create_user("A", "alice", PASSWORD) for _ in range(3)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, ValueError) for r in results if isinstance(r, Exception))


async def test_the_hub_has_one_owner_who_is_an_admin(auth: AuthManager) -> None:
    owner = await auth.create_user("Alice", "alice", PASSWORD, owner=True)
    assert owner.is_owner and owner.is_admin
    with pytest.raises(ValueError, match="owner"):
        await auth.create_user("Bob", "bob", PASSWORD, owner=True)


async def test_the_storage_file_holds_a_hash_not_the_password_and_only_its_owner_reads_it(
        hub: Hub, tmp_path: Path) -> None:
    user = await hub.auth.create_user("Alice", "alice", PASSWORD)
    hub.auth.create_long_lived_token(user, "script")
    await hub.auth.flush()
    path = tmp_path / ".storage" / "auth"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert PASSWORD not in raw
    stored = storage(tmp_path)["data"]["users"][0]["password_hash"]
    assert stored.startswith("scrypt$16384$8$1$") and verify_password(PASSWORD, stored)


async def test_a_long_lived_token_validates_and_survives_a_restart(hub: Hub,
                                                                   tmp_path: Path) -> None:
    alice = await hub.auth.create_user("Alice", "alice", PASSWORD)
    token = hub.auth.create_long_lived_token(alice, "my script")
    user, refresh_token = hub.auth.validate_access_token(token)
    assert user is alice and refresh_token.token_type == TOKEN_TYPE_LONG_LIVED
    assert refresh_token.access_token_expiration == 3650 * 86400
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == refresh_token.id and claims["exp"] - claims["iat"] >= 3650 * 86400 - 1
    with pytest.raises(ValueError, match="already has"):
        hub.auth.create_long_lived_token(alice, "my script")  # client names unique per user
    await hub.auth.flush()

    again = await loaded(tmp_path)
    found = again.auth.validate_access_token(token)
    assert found is not None
    assert found[0].username == "alice" and found[1].id == refresh_token.id
    assert found[1].token is None  # the refresh secret is never stored
    assert await again.auth.validate_login("alice", PASSWORD) is not None


async def test_revoking_a_refresh_token_refuses_its_access_tokens_at_once(
        auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    refresh_token = auth.create_refresh_token(alice, "https://app.example/")
    access = auth.create_access_token(refresh_token, "192.0.2.7")
    assert refresh_token.last_used_ip == "192.0.2.7"
    assert auth.get_refresh_token_by_secret(refresh_token.token) is refresh_token
    assert auth.validate_access_token(access) == (alice, refresh_token)
    assert auth.revoke_refresh_token(refresh_token.id)
    assert auth.validate_access_token(access) is None
    assert auth.get_refresh_token(refresh_token.id) is None
    assert auth.get_refresh_token_by_secret(refresh_token.token) is None
    assert not auth.revoke_refresh_token(refresh_token.id)
    with pytest.raises(ValueError):
        auth.create_access_token(refresh_token)


async def test_an_expired_access_token_is_refused(auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    refresh_token = auth.create_refresh_token(alice, "client", lifespan_days=0.5 / 86400)
    access = auth.create_access_token(refresh_token)
    assert auth.validate_access_token(access) is not None
    await asyncio.sleep(1.6)
    assert auth.validate_access_token(access) is None


async def test_forged_and_garbage_tokens_are_refused_quietly(auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    refresh_token = auth.create_refresh_token(alice, "client")
    now = int(time.time())
    claims = {"iss": refresh_token.id, "iat": now, "exp": now + 600}
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    other_key = "another key, long enough for HS256"
    forged = [
        jwt.encode(claims, other_key, algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
        jwt.encode({**claims, "iss": "unknown"}, other_key, algorithm="HS256"),
    ]
    garbage = ["", "garbage", "a.b.c", "..", "Bearer x", "\x00\xff", "ey" * 10_000, None, 42,
               b"bytes", *(f"{header}.{b64(payload)}.sig"
                            for payload in (b'{"iss": 5}', b"[1]", b'{"iss": [1]}', b"\xff"))]
    for token in forged + garbage:
        assert auth.validate_access_token(token) is None  # type: ignore[arg-type]
    for secret in ["", "nope", None, refresh_token.id]:
        assert auth.get_refresh_token_by_secret(secret) is None  # type: ignore[arg-type]


async def test_auth_codes_are_single_use_and_bound_to_their_client(auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    code = auth.create_auth_code("https://app.example/", alice)
    assert auth.redeem_auth_code("https://evil.example/", code) is None
    assert auth.redeem_auth_code("https://app.example/", "made-up") is None
    assert auth.redeem_auth_code("https://app.example/", code) is alice
    assert auth.redeem_auth_code("https://app.example/", code) is None


async def test_repeated_failed_logins_ban_an_address_for_a_while(
        auth: AuthManager, caplog: pytest.LogCaptureFixture) -> None:
    auth.ban_threshold, auth.ban_window_s, auth.ban_duration_s = 3, 0.5, 0.4
    # Failures spread wider than the window never add up to a ban.
    for _ in range(4):
        auth.record_failed_login("192.0.2.1")
        await asyncio.sleep(0.3)
    assert not auth.is_banned("192.0.2.1")
    await asyncio.sleep(0.6)  # let those age out
    # A success clears the count.
    auth.record_failed_login("192.0.2.1")
    auth.record_failed_login("192.0.2.1")
    auth.clear_failed_logins("192.0.2.1")
    auth.record_failed_login("192.0.2.1")
    assert not auth.is_banned("192.0.2.1")
    # Three within the window do, for that address only, until the ban ends.
    auth.record_failed_login("192.0.2.1")
    assert not auth.is_banned("192.0.2.1")
    with caplog.at_level(logging.WARNING, logger="hub.auth"):
        auth.record_failed_login("192.0.2.1")
    assert auth.is_banned("192.0.2.1") and not auth.is_banned("192.0.2.2")
    assert "192.0.2.1" in caplog.text
    await asyncio.sleep(0.5)
    assert not auth.is_banned("192.0.2.1")


async def test_removing_a_user_revokes_its_tokens(auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    bob = await auth.create_user("Bob", "bob", PASSWORD)
    alice_token = auth.create_long_lived_token(alice, "script")
    bob_token = auth.create_long_lived_token(bob, "script")
    code = auth.create_auth_code("client", alice)
    await auth.remove_user(alice.id)
    assert auth.validate_access_token(alice_token) is None
    assert auth.validate_access_token(bob_token) is not None
    assert auth.redeem_auth_code("client", code) is None
    assert auth.get_user(alice.id) is None and auth.get_user_by_username("alice") is None
    assert await auth.validate_login("alice", PASSWORD) is None


async def test_an_inactive_user_can_neither_log_in_nor_use_tokens(auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    token = auth.create_long_lived_token(alice, "script")
    alice.is_active = False
    assert auth.validate_access_token(token) is None
    assert await auth.validate_login("alice", PASSWORD) is None
    assert not alice.can_write


async def test_a_read_only_user_cannot_write(auth: AuthManager) -> None:
    viewer = await auth.create_user("Viewer", "viewer", PASSWORD, read_only=True)
    admin = await auth.create_user("Admin", "admin", PASSWORD, admin=True)
    assert not viewer.can_write and admin.can_write


async def test_a_changed_password_replaces_the_old_one(auth: AuthManager) -> None:
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    await auth.set_password(alice, "a brand new password")
    assert await auth.validate_login("alice", PASSWORD) is None
    assert await auth.validate_login("alice", "a brand new password") is alice
    with pytest.raises(ValueError):
        await auth.set_password(alice, "short")


async def test_secrets_stay_out_of_repr_dicts_and_logs(
        auth: AuthManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await auth.create_user("Alice", "alice", PASSWORD)
    refresh_token = auth.create_refresh_token(alice, "client")
    access = auth.create_access_token(refresh_token)
    long_lived = auth.create_long_lived_token(alice, "script")
    await auth.validate_login("alice", "wrong password")
    shown = " ".join([repr(alice), str(alice.as_dict()), repr(refresh_token),
                      str(refresh_token.as_dict()), repr(auth.refresh_tokens(alice)),
                      caplog.text])
    stored = auth._data()
    secrets = [PASSWORD, "wrong password", refresh_token.token, access, long_lived,
               stored["users"][0]["password_hash"]]
    secrets += [t["jwt_key"] for t in stored["refresh_tokens"]]
    secrets += [t["token_hash"] for t in stored["refresh_tokens"]]
    for secret in secrets:
        assert secret and secret not in shown
    assert set(alice.as_dict()) == {"id", "name", "username", "is_owner", "is_admin",
                                    "read_only", "is_active"}


async def test_a_started_hub_loads_users_and_saves_them_at_stop(make_hub, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    first = await make_hub(config_dir=config_dir)
    alice = await first.auth.create_user("Alice", "alice", PASSWORD)
    token = first.auth.create_long_lived_token(alice, "script")
    await first.stop()
    second = await make_hub(config_dir=config_dir)
    assert second.auth.validate_access_token(token) is not None


async def test_a_running_hub_sees_users_and_tokens_the_cli_adds_and_revokes(
        hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_auth, "EXTERNAL_CHECK_INTERVAL", 0.0)
    running = hub.auth
    bob = await running.create_user("Bob", "bob", PASSWORD)  # saved later, by the running hub
    cli = await loaded(tmp_path)  # the CLI, another process, on the same dir
    alice = await cli.auth.create_user("Alice", "alice", PASSWORD)
    token = cli.auth.create_long_lived_token(alice, "script")
    await cli.auth.flush()

    assert running.validate_access_token(token) is not None
    assert await running.validate_login("alice", PASSWORD) is not None
    await running.flush()  # the running hub's own save keeps what the CLI added
    names = {u["username"] for u in storage(tmp_path)["data"]["users"]}
    assert names == {"alice", "bob"}
    assert running.get_user(bob.id) is bob

    cli = await loaded(tmp_path)
    assert cli.auth.revoke_refresh_token(cli.auth.refresh_tokens(alice)[0].id)
    await cli.auth.flush()
    assert running.validate_access_token(token) is None


async def test_a_corrupt_auth_file_keeps_onboarding_closed(tmp_path: Path) -> None:
    (tmp_path / ".storage").mkdir()
    (tmp_path / ".storage" / "auth").write_text("{not json")
    hub = await loaded(tmp_path)
    assert hub.auth.users() == [] and hub.auth.onboarded
    assert list((tmp_path / ".storage").glob("auth.corrupt-*"))
