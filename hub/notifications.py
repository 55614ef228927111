"""Persistent notifications: messages for the user that stay until dismissed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Final

from .core import EventBus, new_id


class Notifications:
    """Persistent notifications: messages for the user that stay until dismissed (a plugin that
    failed to load, a corrupt registry file that was set aside, ...)."""

    EVENT: Final = "persistent_notifications_updated"

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._items: dict[str, dict[str, Any]] = {}

    def create(self, message: str, title: str | None = None, notification_id: str | None = None) -> str:
        notification_id = notification_id or new_id()
        self._items[notification_id] = {
            "notification_id": notification_id,
            "title": title,
            "message": message,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        self._bus.fire(self.EVENT, {"action": "create", "notification_id": notification_id})
        return notification_id

    def dismiss(self, notification_id: str) -> bool:
        if self._items.pop(notification_id, None) is None:
            return False
        self._bus.fire(self.EVENT, {"action": "dismiss", "notification_id": notification_id})
        return True

    def all(self) -> list[dict[str, Any]]:
        return list(self._items.values())

    def get(self, notification_id: str) -> dict[str, Any] | None:
        return self._items.get(notification_id)
