"""Per-device MQTT credentials and what each device may publish and subscribe to.

Every device that talks to the embedded broker has its own name and password (`hub mqtt user
add NAME`). The name is also the device's MQTT username and, by default, the root of its
topics: a device may publish and subscribe under `NAME/#`, announce itself with MQTT discovery
using NAME as node_id (`<prefix>/+/NAME/+/config`) or as the object_id of a device discovery
(`<prefix>/device/NAME/config`), and follow the hub's birth message (`<prefix>/status`) so that
it re-announces itself when the hub restarts. The defaults follow the hub's discovery prefix.
A superuser may publish and subscribe anywhere.

A name cannot be the first level of the discovery prefix (`homeassistant`): its default
`homeassistant/#` would let the device announce any device and pose as the hub (birth and will
on `homeassistant/status`). A credential of that name in the file (added under another prefix)
gets no default topics. Names starting with `$` are the broker's own topics: refused too.

Anonymous clients, only admitted when the broker's `allow_anonymous` is on, may publish and
subscribe anything except `$` topics: they are trusted like any program on the network.

The credentials live in `<config_dir>/.storage/mqtt_credentials` (mode 0o600), passwords as
scrypt hashes. The CLI writes that file while the hub runs; the store notices the new mtime or
size on the next `verify()` (or `refresh()`) and reads it again, so a new device can connect at
once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from hub.auth import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    verify_password,
)
from hub.config import atomic_write

from .models import TopicError, matches, validate_filter

try:  # serialises CLI and hub writers; POSIX only (elsewhere the last writer wins)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_LOGGER = logging.getLogger(__name__)

STORAGE_KEY: Final = "mqtt_credentials"
STORAGE_VERSION: Final = 1
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as an MQTT discovery node_id
_VERIFIED_CACHE_SIZE: Final = 1024


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class DeviceCredential:
    """One device's login and topic rights. `publish` and `subscribe` are the effective
    patterns (MQTT filters); with `default_topics` they include the defaults for the store's
    discovery prefix, which are not written to the file and so follow a changed prefix."""

    name: str
    password_hash: str = field(repr=False)
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    superuser: bool = False
    created_at: str = field(default_factory=_now)
    default_topics: bool = True


def reserved_name(name: str, discovery_prefix: str) -> str | None:
    """Why `name` cannot be a credential's name under `discovery_prefix`; None if it can."""
    if name.startswith("$"):
        return "names starting with '$' are the broker's own topics"
    if name == discovery_prefix.split("/")[0]:
        return (f"it is the first level of the discovery prefix {discovery_prefix!r}: its "
                f"default topics ({name}/#) would let the device announce any device and pose "
                "as the hub")
    return None


def default_patterns(name: str, discovery_prefix: str) -> tuple[list[str], list[str]]:
    """The (publish, subscribe) patterns a device NAME gets unless told otherwise."""
    publish = [f"{name}/#", f"{discovery_prefix}/+/{name}/+/config",
               f"{discovery_prefix}/device/{name}/config"]
    subscribe = [f"{name}/#", f"{discovery_prefix}/status"]
    return publish, subscribe


def filter_covers(pattern: str, topic_filter: str) -> bool:
    """True if every topic `topic_filter` matches is also matched by `pattern`:
    `a/#` covers `a`, `a/x/+` and `a/#`, but not `#` or `+/x`."""
    p_levels = pattern.split("/")
    f_levels = topic_filter.split("/")
    dollar = f_levels[0].startswith("$")
    for index, p_level in enumerate(p_levels):
        if p_level == "#":  # matches the parent level and everything below
            return not (index == 0 and dollar)
        if index >= len(f_levels):
            return False
        f_level = f_levels[index]
        if f_level == "#":
            return False
        if p_level == "+":
            if index == 0 and dollar:
                return False
            continue
        if f_level != p_level:  # includes f_level == "+": wider than one literal
            return False
    return len(p_levels) == len(f_levels)


class CredentialStore:
    """The devices that may log in to the embedded broker, kept in one JSON file.

    `add`/`remove` hash and write (blocking: call them from an executor in the hub);
    `verify` runs scrypt once per new password (blocking, ~50 ms) and then answers from memory.
    The `may_*` checks are cheap and synchronous. `generation` grows whenever the set of
    credentials changes, from this process or from another one writing the file.
    """

    def __init__(self, config_dir: Path, discovery_prefix: str = "homeassistant") -> None:
        self.path = Path(config_dir) / ".storage" / STORAGE_KEY
        self.discovery_prefix = discovery_prefix
        self.generation = 0
        self._creds: dict[str, DeviceCredential] = {}
        self._signature: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) last read
        self._lock = threading.RLock()  # verify() runs in executor threads
        self._verified: dict[tuple[str, str], str] = {}  # (name, sha256(password)) -> hash
        self._dummy_hash: str | None = None
        self.refresh()

    # -- reading and writing the file ---------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> bool:
        """Read the file again if it changed since last read; True if the credentials changed.
        Blocking but cheap (one stat) when nothing changed."""
        signature = self._stat()
        if signature == self._signature:
            return False
        with self._lock:
            signature = self._stat()
            if signature == self._signature:
                return False
            creds = self._read()
            self._signature = signature
            if creds is None:  # unreadable: keep what we had, try again when it changes
                return False
            return self._replace(creds)

    def _read(self) -> dict[str, DeviceCredential] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            _LOGGER.error("Cannot read %s: %s", self.path, err)
            return None
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict) or doc.get("key") != STORAGE_KEY:
                raise ValueError(f"expected key {STORAGE_KEY!r}")
            if not isinstance(doc.get("version"), int) or doc["version"] > STORAGE_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            return {cred.name: cred for cred in map(self._from_dict, doc["data"]["credentials"])}
        except (ValueError, KeyError, TypeError) as err:  # orjson.JSONDecodeError is a ValueError
            _LOGGER.error("Cannot load MQTT credentials from %s (%s); keeping the previous ones",
                          self.path, err)
            return None

    def _from_dict(self, item: dict[str, Any]) -> DeviceCredential:
        name = item["name"]
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"invalid credential name {name!r}")
        default_topics = bool(item.get("default_topics", True))
        publish = [str(p) for p in item.get("publish") or []]
        subscribe = [str(p) for p in item.get("subscribe") or []]
        if default_topics and (why := reserved_name(name, self.discovery_prefix)):
            _LOGGER.error("MQTT credential %r gets no default topics: %s; remove it (hub mqtt "
                          "user remove %s) and add the device under another name", name, why, name)
        elif default_topics:
            d_pub, d_sub = default_patterns(name, self.discovery_prefix)
            publish = d_pub + [p for p in publish if p not in d_pub]
            subscribe = d_sub + [p for p in subscribe if p not in d_sub]
        return DeviceCredential(name=name, password_hash=str(item["password_hash"]),
                                publish=publish, subscribe=subscribe,
                                superuser=bool(item.get("superuser", False)),
                                created_at=str(item.get("created_at", "")),
                                default_topics=default_topics)

    def _to_dict(self, cred: DeviceCredential) -> dict[str, Any]:
        publish, subscribe = cred.publish, cred.subscribe
        if cred.default_topics and not reserved_name(cred.name, self.discovery_prefix):
            # only the extras: the defaults follow the discovery prefix
            d_pub, d_sub = default_patterns(cred.name, self.discovery_prefix)
            publish = [p for p in publish if p not in d_pub]
            subscribe = [p for p in subscribe if p not in d_sub]
        return {"name": cred.name, "password_hash": cred.password_hash, "publish": publish,
                "subscribe": subscribe, "superuser": cred.superuser,
                "created_at": cred.created_at, "default_topics": cred.default_topics}

    def _replace(self, creds: dict[str, DeviceCredential]) -> bool:
        if creds == self._creds:
            return False
        for name, old in self._creds.items():
            new = creds.get(name)
            if new is None or new.password_hash != old.password_hash:
                self._forget(name)
        self._creds = creds
        self.generation += 1
        return True

    def _forget(self, name: str) -> None:
        for key in [key for key in self._verified if key[0] == name]:
            del self._verified[key]

    def _save(self, creds: dict[str, DeviceCredential]) -> None:
        doc = {"version": STORAGE_VERSION, "key": STORAGE_KEY,
               "data": {"credentials": [self._to_dict(c) for c in creds.values()]}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2), mode=0o600)
        self._signature = self._stat()
        self._replace(creds)

    @contextmanager
    def _writing(self) -> Iterator[dict[str, DeviceCredential]]:
        """Read the latest file, let the caller change a copy, write it; one writer at a time
        across processes (the CLI and a running hub)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                if fcntl is not None:
                    fcntl.flock(dir_fd, fcntl.LOCK_EX)
                signature = self._stat()  # another process may have just written it
                current = self._read()
                if current is None:
                    raise ValueError(f"{self.path} cannot be read; fix or remove it first")
                self._signature = signature
                self._replace(current)
                creds = dict(current)
                yield creds
                if creds != current:
                    self._save(creds)
            finally:
                os.close(dir_fd)  # releases the lock

    # -- managing credentials -------------------------------------------------------------

    def add(self, name: str, *, password: str | None = None, publish: list[str] | None = None,
            subscribe: list[str] | None = None, superuser: bool = False,
            default_topics: bool | None = None) -> tuple[DeviceCredential, str]:
        """Create credential NAME; returns it with its plaintext password (generated when
        None; shown once, only the hash is kept). Without `publish` and `subscribe` the device
        gets the default patterns; with them, exactly those, unless `default_topics=True` adds
        the defaults too. Blocking (scrypt, file write). ValueError for a bad or taken name,
        password or pattern."""
        if isinstance(name, str) and (why := reserved_name(name, self.discovery_prefix)):
            raise ValueError(f"Invalid name {name!r}: {why}; choose another name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"Invalid name {name!r}: use 1 to 64 letters, digits, '_' or '-' "
                "(it is the device's MQTT username and discovery node_id)")
        if password is None:
            password = secrets.token_urlsafe(24)
        elif not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise ValueError(f"The password must have {MIN_PASSWORD_LENGTH} to "
                             f"{MAX_PASSWORD_LENGTH} characters")
        if default_topics is None:
            default_topics = publish is None and subscribe is None
        d_pub, d_sub = default_patterns(name, self.discovery_prefix)
        publish_list = self._patterns(publish, d_pub, default_topics)
        subscribe_list = self._patterns(subscribe, d_sub, default_topics)
        password_hash = hash_password(password)
        with self._writing() as creds:
            if name in creds:
                raise ValueError(f"A credential named {name!r} already exists "
                                 "(remove it first to change its password)")
            cred = DeviceCredential(name=name, password_hash=password_hash,
                                    publish=publish_list, subscribe=subscribe_list,
                                    superuser=superuser, default_topics=default_topics)
            creds[name] = cred
        _LOGGER.info("Added MQTT credential %s", name)
        return cred, password

    @staticmethod
    def _patterns(given: list[str] | None, defaults: list[str], add_defaults: bool) -> list[str]:
        patterns = list(defaults) if add_defaults or given is None else []
        for pattern in given or ():
            try:
                validate_filter(pattern)
            except TopicError as err:
                raise ValueError(f"Invalid topic pattern: {err}") from None
            if pattern not in patterns:
                patterns.append(pattern)
        return patterns

    def remove(self, name: str) -> bool:
        """Delete credential NAME; False if there was none. A connected device using it is
        disconnected by a running broker within seconds."""
        with self._writing() as creds:
            if creds.pop(name, None) is None:
                return False
        _LOGGER.info("Removed MQTT credential %s", name)
        return True

    def list(self) -> list[DeviceCredential]:
        return sorted(self._creds.values(), key=lambda cred: cred.name)

    def get(self, name: str) -> DeviceCredential | None:
        return self._creds.get(name)

    # -- checking ---------------------------------------------------------------------------

    def verify(self, username: str, password: str) -> DeviceCredential | None:
        """The credential if `password` is right for `username`, else None. Blocking: scrypt
        (~50 ms) the first time a password is seen, and also for unknown names so that timing
        does not tell which names exist."""
        self.refresh()
        cred = self._creds.get(username)
        key = (username, hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest())
        if cred is not None and self._verified.get(key) == cred.password_hash:
            return cred
        if cred is None:
            if self._dummy_hash is None:
                self._dummy_hash = hash_password(secrets.token_urlsafe(16))
            verify_password(password, self._dummy_hash)
            return None
        if not verify_password(password, cred.password_hash):
            return None
        with self._lock:
            if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                self._verified.clear()
            if self._creds.get(username) is cred:  # not removed or changed meanwhile
                self._verified[key] = cred.password_hash
        return cred

    @staticmethod
    def may_publish(cred: DeviceCredential | None, topic: str) -> bool:
        """May this credential (None: an admitted anonymous client) publish to `topic`?"""
        if cred is None:
            return not topic.startswith("$")
        if cred.superuser:
            return True
        return any(matches(pattern, topic) for pattern in cred.publish)

    @staticmethod
    def may_subscribe(cred: DeviceCredential | None, topic_filter: str) -> bool:
        """May it subscribe to `topic_filter`? Only if one allowed pattern covers all of it."""
        if cred is None:
            return not topic_filter.startswith("$")
        if cred.superuser:
            return True
        return any(filter_covers(pattern, topic_filter) for pattern in cred.subscribe)

    @staticmethod
    def may_receive(cred: DeviceCredential | None, topic: str) -> bool:
        """May a message on `topic` be delivered to it (through any subscription)?"""
        if cred is None:
            return not topic.startswith("$")
        if cred.superuser:
            return True
        return any(matches(pattern, topic) for pattern in cred.subscribe)


__all__ = [
    "NAME_PATTERN",
    "STORAGE_KEY",
    "CredentialStore",
    "DeviceCredential",
    "default_patterns",
    "filter_covers",
    "reserved_name",
]

