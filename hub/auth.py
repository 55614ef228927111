"""Users, passwords, refresh and access tokens, login codes and address bans: the hub's auth core.

The model is Home Assistant's. A user logs in with a password (scrypt, checked off the event
loop) and the client gets a refresh token; a refresh token mints short-lived access tokens, JWTs
signed HS256 with that refresh token's own random key, so revoking a refresh token invalidates
its access tokens at once. A long-lived access token is an access token of a refresh token whose
`access_token_expiration` is its whole lifespan.

Everything but the bans is kept in `<config_dir>/.storage/auth` (mode 0o600): users with their
password hashes, refresh tokens with their JWT keys and the sha256 of their secrets (the secret
itself is given to the client once and never stored). `hub user` and `hub token` write that file
from another process; a running hub notices the change within a second and takes in the users
and tokens added or removed there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import secrets
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
import orjson

from .registry import Store

_LOGGER = logging.getLogger(__name__)

STORAGE_KEY: Final = "auth"
STORAGE_VERSION: Final = 1
TOKEN_TYPE_NORMAL: Final = "normal"
TOKEN_TYPE_LONG_LIVED: Final = "long_lived_access_token"
TOKEN_TYPES: Final = frozenset({TOKEN_TYPE_NORMAL, TOKEN_TYPE_LONG_LIVED})
ACCESS_TOKEN_EXPIRATION: Final = 1800.0  # seconds, for tokens of the login flow
DEFAULT_LIFESPAN_DAYS: Final = 3650.0  # long-lived access tokens
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 1024
AUTH_CODE_EXPIRATION: Final = 600.0  # seconds between login and redeeming the code
MAX_TOKEN_LENGTH: Final = 8192  # longer strings are not our JWTs: refused before decoding
VERIFIED_CACHE_SIZE: Final = 4096  # access tokens whose signature was checked: token -> (issuer, exp)
# Recording `last_used_at` on every request would rewrite the file every second under load:
# it is refreshed at most once a minute per token and saved lazily.
LAST_USED_RESOLUTION: Final = 60.0
LAST_USED_SAVE_DELAY: Final = 60.0
EXTERNAL_CHECK_INTERVAL: Final = 1.0  # how often a running hub looks for CLI changes to the file

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SCRYPT_DKLEN: Final = 32
_SALT_BYTES: Final = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt_b64$hash_b64` of `password` with a fresh salt. Blocking (~50 ms)."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches the `hash_password()` string `encoded`. Blocking; never raises."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
        expected = base64.b64decode(hash_b64, validate=True)
        if scheme != "scrypt" or not expected:
            return False
        digest = hashlib.scrypt(password.encode("utf-8"),
                                salt=base64.b64decode(salt_b64, validate=True),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError, AttributeError, OverflowError):
        # A malformed hash, parameters beyond scrypt's memory limit, an unencodable password.
        return False
    return hmac.compare_digest(digest, expected)


# Checked instead of a real hash when the user is unknown, so that a wrong username costs the
# same KDF run as a wrong password and response times do not tell which usernames exist.
_DUMMY_HASH: Final = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(bytes(16))}${_b64(bytes(32))}"


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive: stored and looked up stripped and lower-case."""
    if not isinstance(username, str):
        raise ValueError("The username must be a string")  # noqa: TRY004 (callers catch ValueError)
    username = username.strip().lower()
    if not username:
        raise ValueError("The username must not be empty")
    if any(not ch.isprintable() for ch in username):
        raise ValueError("The username must not contain control characters")
    return username


@dataclass(slots=True)
class User:
    """Someone who may log in. Holds no secret: password hashes stay inside the AuthManager."""

    id: str
    name: str
    username: str
    is_owner: bool = False
    is_admin: bool = False
    read_only: bool = False
    is_active: bool = True
    system_generated: bool = False
    created_at: float = field(default_factory=time.time)

    @property
    def can_write(self) -> bool:
        """May change things: call services, set states, fire events."""
        return self.is_active and not self.read_only

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "username": self.username,
                "is_owner": self.is_owner, "is_admin": self.is_admin,
                "read_only": self.read_only, "is_active": self.is_active}


@dataclass(slots=True)
class RefreshToken:
    """A login session (or a long-lived token). Its JWT key and secret hash stay in the manager.

    `token` is the refresh secret to hand to the client: set only on the object returned by
    `create_refresh_token()`, never stored on disk (None after a restart), never in repr().
    """

    id: str
    user_id: str
    client_id: str | None
    client_name: str | None
    token_type: str
    access_token_expiration: float
    created_at: float
    last_used_at: float | None = None
    last_used_ip: str | None = None
    token: str | None = field(default=None, repr=False, compare=False, kw_only=True)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "client_id": self.client_id,
                "client_name": self.client_name, "token_type": self.token_type,
                "access_token_expiration": self.access_token_expiration,
                "created_at": self.created_at, "last_used_at": self.last_used_at,
                "last_used_ip": self.last_used_ip}


@dataclass(slots=True)
class _TokenEntry:
    token: RefreshToken
    jwt_key: str = field(repr=False)
    secret_hash: str = field(repr=False)


_USER_FIELDS: Final = ("id", "name", "username", "is_owner", "is_admin", "read_only",
                       "is_active", "system_generated", "created_at")
_TOKEN_FIELDS: Final = ("id", "user_id", "client_id", "client_name", "token_type",
                        "access_token_expiration", "created_at", "last_used_at", "last_used_ip")


def _check_types(raw: Mapping[str, Any], spec: Mapping[str, tuple[type, ...]]) -> None:
    for key, types in spec.items():
        if not isinstance(raw[key], types) or (isinstance(raw[key], bool) and bool not in types):
            raise TypeError(f"{key}: unexpected {type(raw[key]).__name__}")


def _user_from_dict(raw: Mapping[str, Any]) -> tuple[User, str | None]:
    _check_types(raw, {"id": (str,), "name": (str,), "username": (str,),
                       "is_owner": (bool,), "is_admin": (bool,), "read_only": (bool,),
                       "is_active": (bool,), "system_generated": (bool,),
                       "created_at": (int, float), "password_hash": (str, type(None))})
    user = User(**{key: raw[key] for key in _USER_FIELDS})
    user.username = normalize_username(user.username)
    return user, raw["password_hash"]


def _token_from_dict(raw: Mapping[str, Any]) -> _TokenEntry:
    optional_str = (str, type(None))
    _check_types(raw, {"id": (str,), "user_id": (str,), "client_id": optional_str,
                       "client_name": optional_str, "token_type": (str,),
                       "access_token_expiration": (int, float), "created_at": (int, float),
                       "last_used_at": (int, float, type(None)), "last_used_ip": optional_str,
                       "jwt_key": (str,), "token_hash": (str,)})
    if raw["token_type"] not in TOKEN_TYPES or not raw["jwt_key"]:
        raise ValueError("unknown token type or empty key")
    token = RefreshToken(**{key: raw[key] for key in _TOKEN_FIELDS})
    return _TokenEntry(token, raw["jwt_key"], raw["token_hash"])


class AuthManager:
    """Users, tokens, login codes and bans of one hub; `hub.auth`."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._store = Store(hub, STORAGE_KEY, STORAGE_VERSION, self._data, mode=0o600)
        self._users: dict[str, User] = {}
        self._password_hashes: dict[str, str] = {}  # user id -> hash_password() string
        self._user_ids_by_username: dict[str, str] = {}
        self._tokens: dict[str, _TokenEntry] = {}
        self._verified: dict[str, tuple[str, float]] = {}
        self._token_ids_by_secret: dict[str, str] = {}  # sha256 of the refresh secret -> id
        self._auth_codes: dict[tuple[str, str], tuple[str, float]] = {}  # -> (user id, deadline)
        self._failed_logins: dict[str, deque[float]] = {}
        self._bans: dict[str, float] = {}  # ip -> monotonic time the ban ends
        self._load_failed = False
        # What the file held when last read or written, to merge changes made by `hub user`.
        self._file_stamp: tuple[int, int, int] | None = None
        self._file_user_ids: set[str] = set()
        self._file_token_ids: set[str] = set()
        self._next_external_check = 0.0
        self.ban_threshold: int = 5
        self.ban_window_s: float = 600.0
        self.ban_duration_s: float = 900.0

    # --- persistence ---------------------------------------------------------------------

    async def load(self) -> None:
        """Read the users and tokens from disk (an absent file means no users yet)."""
        existed = await self._hub.run_in_executor(self._store.path.exists)
        data = await self._store.load()
        stamp = await self._hub.run_in_executor(self._stat)
        self._users.clear()
        self._password_hashes.clear()
        self._user_ids_by_username.clear()
        self._tokens.clear()
        self._token_ids_by_secret.clear()
        # A file that was there but could not be read was set aside by the Store. Users exist
        # but are unknown now, so onboarding must not open to whoever comes first; the owner
        # recovers with `hub user add` or by restoring the file.
        self._load_failed = existed and data is None
        if data is not None:
            users, tokens = self._parse(data)
            for user, password_hash in users.values():
                self._add_user(user, password_hash)
            for entry in tokens.values():
                self._add_token(entry)
            self._file_user_ids, self._file_token_ids = set(users), set(tokens)
        self._file_stamp = stamp

    async def flush(self) -> None:
        """Write pending changes now."""
        await self._store.flush()

    def _parse(self, data: Mapping[str, Any]) -> tuple[dict[str, tuple[User, str | None]],
                                                         dict[str, _TokenEntry]]:
        """Users and tokens of a stored document; a malformed entry is skipped and logged."""
        users: dict[str, tuple[User, str | None]] = {}
        tokens: dict[str, _TokenEntry] = {}
        usernames: set[str] = set()
        for raw in data.get("users") or ():
            try:
                user, password_hash = _user_from_dict(raw)
            except (KeyError, TypeError, ValueError) as err:
                _LOGGER.error("Skipping a malformed user in %s: %s", self._store.path, err)
                continue
            if user.id in users or user.username in usernames:
                _LOGGER.error("Skipping duplicate user %s in %s", user.username, self._store.path)
                continue
            users[user.id] = (user, password_hash)
            usernames.add(user.username)
        for raw in data.get("refresh_tokens") or ():
            try:
                entry = _token_from_dict(raw)
            except (KeyError, TypeError, ValueError) as err:
                _LOGGER.error("Skipping a malformed token in %s: %s", self._store.path, err)
                continue
            if entry.token.user_id in users and entry.token.id not in tokens:
                tokens[entry.token.id] = entry
        return users, tokens

    def _data(self) -> dict[str, Any]:
        # Called by the Store right before it writes: take in what another process (the CLI)
        # wrote since we last looked, so this write does not undo it.
        self._sync_external(force=True)
        users = [
            {**{key: getattr(user, key) for key in _USER_FIELDS},
             "password_hash": self._password_hashes.get(user.id)}
            for user in self._users.values()
        ]
        tokens = [
            {**{key: getattr(entry.token, key) for key in _TOKEN_FIELDS},
             "jwt_key": entry.jwt_key, "token_hash": entry.secret_hash}
            for entry in self._tokens.values()
        ]
        self._file_user_ids, self._file_token_ids = set(self._users), set(self._tokens)
        return {"users": users, "refresh_tokens": tokens}

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._store.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _sync_external(self, *, force: bool = False) -> None:
        """Merge users and tokens another process added to or removed from the file.

        At most once a second (a stat; the small file is read only when it changed). Entries
        this process added or removed but not yet saved are kept as they are here.
        """
        now = time.monotonic()
        if not force and now < self._next_external_check:
            return
        self._next_external_check = now + EXTERNAL_CHECK_INTERVAL
        stamp = self._stat()
        if stamp is None or stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            doc = orjson.loads(self._store.path.read_bytes())
            if doc.get("key") != STORAGE_KEY or doc.get("version") != STORAGE_VERSION:
                raise ValueError("unexpected key or version")
            users, tokens = self._parse(doc["data"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            _LOGGER.warning("Could not read %s written by another process: %s",
                            self._store.path, err)
            return
        changed = False
        for user_id in [u for u in self._users if u in self._file_user_ids and u not in users]:
            _LOGGER.info("User %s was removed by another process", self._users[user_id].username)
            self._drop_user(user_id)
            changed = True
        for token_id in [t for t in self._tokens
                         if t in self._file_token_ids and t not in tokens]:
            self._drop_token(token_id)
            changed = True
        for user_id, (user, password_hash) in users.items():
            if user_id in self._users or user_id in self._file_user_ids:
                continue  # known, or removed here and not saved yet
            if user.username in self._user_ids_by_username:
                _LOGGER.warning("Ignoring user %s added by another process: the username is "
                                "taken here", user.username)
                continue
            _LOGGER.info("User %s was added by another process", user.username)
            self._add_user(user, password_hash)
            changed = True
        for token_id, entry in tokens.items():
            if (token_id not in self._tokens and token_id not in self._file_token_ids
                    and entry.token.user_id in self._users):
                self._add_token(entry)
                changed = True
        self._file_user_ids, self._file_token_ids = set(users), set(tokens)
        if changed:
            self._load_failed = False

    # --- users ---------------------------------------------------------------------------

    @property
    def onboarded(self) -> bool:
        """True once a real (not system-generated) user exists."""
        self._sync_external()
        return self._load_failed or any(not u.system_generated for u in self._users.values())

    def users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda user: user.created_at)

    def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def get_user_by_username(self, username: str) -> User | None:
        if not isinstance(username, str):
            return None
        user_id = self._user_ids_by_username.get(username.strip().lower())
        return self._users.get(user_id) if user_id else None

    async def create_user(self, name: str, username: str, password: str, *, admin: bool = False,
                          owner: bool = False, read_only: bool = False) -> User:
        """A new user (an owner is also an admin). ValueError if the username is taken, the
        password too short, or an owner is asked for when the hub already has one."""
        username = normalize_username(username)
        self._check_new_user(username, password, owner)
        password_hash = await self._hub.run_in_executor(hash_password, password)
        self._check_new_user(username, password, owner)  # again: others ran during the KDF
        display_name = name.strip() if isinstance(name, str) else ""
        user = User(id=uuid.uuid4().hex, name=display_name or username, username=username,
                    is_owner=owner, is_admin=admin or owner, read_only=read_only)
        self._add_user(user, password_hash)
        self._load_failed = False
        self._store.schedule_save()
        _LOGGER.info("Created user %s", username)
        return user

    def _check_new_user(self, username: str, password: str, owner: bool) -> None:
        self._sync_external()
        if username in self._user_ids_by_username:
            raise ValueError(f"The username {username!r} is already taken")
        _check_password(password)
        if owner and any(user.is_owner for user in self._users.values()):
            raise ValueError("The hub already has an owner")

    async def set_password(self, user: User, password: str) -> None:
        _check_password(password)
        password_hash = await self._hub.run_in_executor(hash_password, password)
        if user.id not in self._users:
            raise ValueError(f"Unknown user {user.username!r}")
        self._password_hashes[user.id] = password_hash
        self._store.schedule_save()
        _LOGGER.info("Changed the password of user %s", user.username)

    async def remove_user(self, user_id: str) -> None:
        """Remove a user and revoke its tokens (their access tokens stop working at once)."""
        user = self._users.get(user_id)
        if user is None:
            return
        self._drop_user(user_id)
        self._store.schedule_save()
        _LOGGER.info("Removed user %s", user.username)

    async def validate_login(self, username: str, password: str) -> User | None:
        """The active user with this username and password, or None. One KDF run either way."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        self._sync_external()
        user_id = self._user_ids_by_username.get(username.strip().lower())
        password_hash = self._password_hashes.get(user_id) if user_id else None
        valid = await self._hub.run_in_executor(verify_password, password,
                                                password_hash or _DUMMY_HASH)
        user = self._users.get(user_id) if user_id else None
        if (not valid or password_hash is None or user is None or not user.is_active
                or self._password_hashes.get(user.id) != password_hash):  # changed meanwhile
            return None
        return user

    def _add_user(self, user: User, password_hash: str | None) -> None:
        self._users[user.id] = user
        self._user_ids_by_username[user.username] = user.id
        if password_hash is not None:
            self._password_hashes[user.id] = password_hash

    def _drop_user(self, user_id: str) -> None:
        user = self._users.pop(user_id)
        self._password_hashes.pop(user_id, None)
        if self._user_ids_by_username.get(user.username) == user_id:
            del self._user_ids_by_username[user.username]
        for token_id in [e.token.id for e in self._tokens.values() if e.token.user_id == user_id]:
            self._drop_token(token_id)
        for key in [k for k, (uid, _) in self._auth_codes.items() if uid == user_id]:
            del self._auth_codes[key]

    # --- refresh and access tokens -------------------------------------------------------

    def create_refresh_token(self, user: User, client_id: str | None, *,
                             client_name: str | None = None, token_type: str = TOKEN_TYPE_NORMAL,
                             lifespan_days: float | None = None) -> RefreshToken:
        """A new refresh token; its secret is on `.token`, this once.

        Access tokens of a normal token live 30 minutes (or `lifespan_days`); those of a
        long-lived token live `lifespan_days` (default 3650), and it needs a `client_name`
        unique among the user's long-lived tokens. ValueError for an unknown or inactive user.
        """
        if self._users.get(user.id) is None or not self._users[user.id].is_active:
            raise ValueError(f"Unknown or inactive user {user.username!r}")
        if token_type == TOKEN_TYPE_LONG_LIVED:
            if not isinstance(client_name, str) or not client_name.strip():
                raise ValueError("A long-lived access token needs a client name")
            if any(t.client_name == client_name and t.token_type == TOKEN_TYPE_LONG_LIVED
                   for t in self.refresh_tokens(user)):
                raise ValueError(f"{user.username} already has a long-lived access token "
                                 f"named {client_name!r}")
            lifespan_days = DEFAULT_LIFESPAN_DAYS if lifespan_days is None else lifespan_days
        elif token_type != TOKEN_TYPE_NORMAL:
            raise ValueError(f"Unknown token type {token_type!r}")
        expiration = ACCESS_TOKEN_EXPIRATION if lifespan_days is None else lifespan_days * 86400
        if not (isinstance(expiration, (int, float)) and math.isfinite(expiration)
                and expiration > 0):
            raise ValueError("The lifespan must be a positive number of days")
        secret = secrets.token_hex(64)
        token = RefreshToken(id=uuid.uuid4().hex, user_id=user.id, client_id=client_id,
                             client_name=client_name, token_type=token_type,
                             access_token_expiration=float(expiration), created_at=time.time(),
                             token=secret)
        self._add_token(_TokenEntry(token, secrets.token_hex(64), _secret_hash(secret)))
        self._store.schedule_save()
        return token

    def create_access_token(self, refresh_token: RefreshToken, remote_ip: str | None = None) -> str:
        """A JWT for `refresh_token`, valid for its `access_token_expiration`.

        ValueError if the refresh token was revoked or its user is gone or inactive.
        """
        entry = self._tokens.get(refresh_token.id)
        user = self._users.get(entry.token.user_id) if entry else None
        if entry is None or user is None or not user.is_active:
            raise ValueError("The refresh token was revoked or its user is inactive")
        token = entry.token
        now = time.time()
        token.last_used_at = now
        token.last_used_ip = remote_ip if remote_ip is not None else token.last_used_ip
        self._store.schedule_save()
        claims = {"iss": token.id, "iat": int(now),
                  "exp": math.ceil(now + token.access_token_expiration)}
        return jwt.encode(claims, entry.jwt_key, algorithm="HS256")

    def create_long_lived_token(self, user: User, client_name: str,
                                lifespan_days: float = DEFAULT_LIFESPAN_DAYS) -> str:
        """A long-lived access token for scripts; ValueError if `client_name` is taken."""
        refresh_token = self.create_refresh_token(user, None, client_name=client_name,
                                                  token_type=TOKEN_TYPE_LONG_LIVED,
                                                  lifespan_days=lifespan_days)
        _LOGGER.info("Created long-lived access token %r for user %s", client_name, user.username)
        return self.create_access_token(refresh_token)

    def validate_access_token(self, token: str, remote_ip: str | None = None,
                              ) -> tuple[User, RefreshToken] | None:
        """The user and refresh token behind a valid access token; None for anything else.

        Fast (called on every request): an unverified decode for the issuer, two dict look-ups,
        then the signature and expiry check with that refresh token's key. Never raises.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            return None
        self._sync_external()
        now = time.time()
        verified = self._verified.get(token)
        if verified is not None and verified[1] > now:
            # Seen and verified before: only what may have changed since is checked again
            # (the refresh token still exists, the user is still active).
            entry = self._tokens.get(verified[0])
            if entry is None:
                del self._verified[token]
                return None
        else:
            try:
                unverified = jwt.decode(token, options={"verify_signature": False})
                issuer = unverified.get("iss")
                entry = self._tokens.get(issuer) if isinstance(issuer, str) else None
                if entry is None:
                    return None
                claims = jwt.decode(token, entry.jwt_key, algorithms=["HS256"], issuer=issuer,
                                    options={"require": ["iss", "iat", "exp"]})
            except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
                return None
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()  # rare; a bounded cache beats an unbounded one
            self._verified[token] = (entry.token.id, float(claims["exp"]))
        user = self._users.get(entry.token.user_id)
        if user is None or not user.is_active:
            return None
        refresh_token = entry.token
        last_used = refresh_token.last_used_at
        if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
            refresh_token.last_used_at = now
            if remote_ip is not None:
                refresh_token.last_used_ip = remote_ip
            self._store.schedule_save(LAST_USED_SAVE_DELAY)
        return user, refresh_token

    def is_expired_token(self, token: str) -> bool:
        """True for an access token this hub issued whose only fault is its age: a client that
        merely forgot to refresh is not an attacker, so it does not count towards a ban."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            return False
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            entry = self._tokens.get(claims.get("iss"))
            if entry is None:
                return False
            jwt.decode(token, entry.jwt_key, algorithms=["HS256"], options={"verify_exp": False})
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
            return False
        return float(claims.get("exp", 0)) <= time.time()

    def get_refresh_token(self, token_id: str) -> RefreshToken | None:
        self._sync_external()  # a token revoked by `hub token revoke` must be gone here too
        entry = self._tokens.get(token_id) if isinstance(token_id, str) else None
        return entry.token if entry else None

    def get_refresh_token_by_secret(self, secret: str) -> RefreshToken | None:
        """The refresh token whose secret a client sends; None if unknown or its user inactive."""
        if not isinstance(secret, str) or len(secret) > MAX_TOKEN_LENGTH:
            return None
        self._sync_external()
        token_id = self._token_ids_by_secret.get(_secret_hash(secret))
        entry = self._tokens.get(token_id) if token_id else None
        user = self._users.get(entry.token.user_id) if entry else None
        return entry.token if entry and user and user.is_active else None

    def refresh_tokens(self, user: User) -> list[RefreshToken]:
        return sorted((e.token for e in self._tokens.values() if e.token.user_id == user.id),
                      key=lambda token: token.created_at)

    def revoke_refresh_token(self, token_id: str) -> bool:
        """Remove a refresh token; the access tokens made from it are refused from now on."""
        if not isinstance(token_id, str) or token_id not in self._tokens:
            return False
        self._drop_token(token_id)
        self._store.schedule_save()
        _LOGGER.info("Revoked refresh token %s", token_id)
        return True

    def _add_token(self, entry: _TokenEntry) -> None:
        self._tokens[entry.token.id] = entry
        self._token_ids_by_secret[entry.secret_hash] = entry.token.id

    def _drop_token(self, token_id: str) -> None:
        entry = self._tokens.pop(token_id)
        self._token_ids_by_secret.pop(entry.secret_hash, None)

    # --- authorization codes of the login flow -------------------------------------------

    def create_auth_code(self, client_id: str, user: User) -> str:
        """A single-use code for `client_id` to exchange for tokens within 10 minutes."""
        now = time.monotonic()
        for key in [k for k, (_, deadline) in self._auth_codes.items() if deadline < now]:
            del self._auth_codes[key]
        code = secrets.token_urlsafe(32)
        self._auth_codes[(client_id, code)] = (user.id, now + AUTH_CODE_EXPIRATION)
        return code

    def redeem_auth_code(self, client_id: str, code: str) -> User | None:
        """The user the code was made for, once; None if unknown, expired, used or another
        client's (a wrong client does not use up the code)."""
        if not isinstance(client_id, str) or not isinstance(code, str):
            return None
        found = self._auth_codes.pop((client_id, code), None)
        if found is None or time.monotonic() > found[1]:
            return None
        user = self._users.get(found[0])
        return user if user is not None and user.is_active else None

    # --- failed logins and bans ----------------------------------------------------------

    def is_banned(self, ip: str) -> bool:
        until = self._bans.get(ip)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._bans[ip]
            return False
        return True

    def record_failed_login(self, ip: str) -> None:
        """Count a failure; `ban_threshold` of them within `ban_window_s` ban `ip` for a while."""
        now = time.monotonic()
        if len(self._failed_logins) > 10_000:  # many addresses: forget those with old failures
            for old in [a for a, times in self._failed_logins.items()
                        if now - times[-1] > self.ban_window_s]:
                del self._failed_logins[old]
        failures = self._failed_logins.setdefault(ip, deque())
        while failures and now - failures[0] > self.ban_window_s:
            failures.popleft()
        failures.append(now)
        if len(failures) >= self.ban_threshold:
            del self._failed_logins[ip]
            self._bans[ip] = now + self.ban_duration_s
            _LOGGER.warning("Banned %s for %g s after %d failed logins", ip,
                            self.ban_duration_s, len(failures))

    def clear_failed_logins(self, ip: str) -> None:
        self._failed_logins.pop(ip, None)


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:  # the login flow refuses longer ones too
        raise ValueError(f"The password must have at most {MAX_PASSWORD_LENGTH} characters")
