"""The service registry: services by `domain.service`, called with data, a target and a
context."""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import voluptuous as vol
import voluptuous.humanize

from .core import (
    EVENT_CALL_SERVICE,
    EVENT_SERVICE_REGISTERED,
    EVENT_SERVICE_REMOVED,
    Context,
    EventBus,
    Unsubscribe,
    id_list,
)
from .exceptions import ServiceNotFound, ServiceValidationError

_SERVICE_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


class SupportsResponse(enum.StrEnum):
    none = "none"
    optional = "optional"
    only = "only"


class ServiceCall:
    """One call of a service: its data, the entity ids it targets, and its context."""

    __slots__ = ("domain", "service", "data", "entity_ids", "context", "return_response")

    def __init__(
        self,
        domain: str,
        service: str,
        data: dict[str, Any],
        entity_ids: list[str] | None,
        context: Context,
        return_response: bool = False,
    ) -> None:
        self.domain = domain
        self.service = service
        self.data = data
        self.entity_ids = entity_ids
        self.context = context
        self.return_response = return_response

    def __repr__(self) -> str:
        return f"<ServiceCall {self.domain}.{self.service} {self.entity_ids or ''} {self.data}>"


ServiceHandler = Callable[[ServiceCall], Any]
TargetResolver = Callable[[Mapping[str, Any]], list[str]]
_TARGET_KEYS: Final = ("entity_id", "device_id", "area_id")
_IDS = vol.Any(None, str, [str])
_TARGET_SCHEMA: Final = vol.Schema({vol.Optional(key): _IDS for key in _TARGET_KEYS})


class Service:
    __slots__ = ("domain", "name", "handler", "schema", "supports_response", "description", "fields")

    def __init__(
        self,
        domain: str,
        name: str,
        handler: ServiceHandler,
        schema: vol.Schema | None,
        supports_response: SupportsResponse,
        description: str,
        fields: Mapping[str, Any] | None,
    ) -> None:
        self.domain = domain
        self.name = name
        self.handler = handler
        self.schema = schema
        self.supports_response = supports_response
        self.description = description
        self.fields = dict(fields or {})


class ServiceRegistry:
    """Services by `domain.service`: register them with a schema, call them with a target."""

    def __init__(self, bus: EventBus, resolve_target: TargetResolver | None = None) -> None:
        self._services: dict[str, dict[str, Service]] = {}
        self._bus = bus
        self.resolve_target = resolve_target

    def register(
        self,
        domain: str,
        service: str,
        handler: ServiceHandler,
        schema: vol.Schema | Mapping[Any, Any] | None = None,
        supports_response: SupportsResponse = SupportsResponse.none,
        description: str = "",
        fields: Mapping[str, Any] | None = None,
    ) -> Unsubscribe:
        """Register `handler(call)` (plain or async) as `domain.service`. Returns a remover."""
        domain, service = domain.lower(), service.lower()
        if not _SERVICE_RE.match(f"{domain}.{service}"):
            raise ValueError(f"Invalid service name {domain}.{service}")
        if schema is not None and not isinstance(schema, vol.Schema):
            schema = vol.Schema(dict(schema), extra=vol.PREVENT_EXTRA)
        self._services.setdefault(domain, {})[service] = Service(
            domain, service, handler, schema, supports_response, description, fields
        )
        self._bus.fire(EVENT_SERVICE_REGISTERED, {"domain": domain, "service": service})
        return lambda: self.remove(domain, service)

    def remove(self, domain: str, service: str) -> None:
        services = self._services.get(domain, {})
        if services.pop(service, None) is not None:
            if not services:
                self._services.pop(domain, None)
            self._bus.fire(EVENT_SERVICE_REMOVED, {"domain": domain, "service": service})

    def has(self, domain: str, service: str) -> bool:
        return service.lower() in self._services.get(domain.lower(), {})

    def get(self, domain: str, service: str) -> Service | None:
        return self._services.get(domain.lower(), {}).get(service.lower())

    def services(self) -> dict[str, dict[str, Service]]:
        return {domain: dict(services) for domain, services in self._services.items()}

    async def call(
        self,
        domain: str,
        service: str,
        data: Mapping[str, Any] | None = None,
        *,
        target: Mapping[str, Any] | None = None,
        context: Context | None = None,
        return_response: bool = False,
    ) -> Any:
        """Call a service and wait for it. Target keys (entity_id, device_id, area_id) may be in
        `target` or, as Home Assistant allows, in `data`. Returns the service's response when
        `return_response` is set, else None.

        Raises ServiceNotFound, or ServiceValidationError with the schema's message.
        """
        svc = self.get(domain, service)
        if svc is None:
            raise ServiceNotFound(domain, service)
        data = dict(data or {})
        target = dict(target or {})
        for key in _TARGET_KEYS:
            if key in data:  # Home Assistant accepts targets in the data too; merge both
                from_data = data.pop(key)
                target[key] = from_data if key not in target else [
                    *id_list(target[key]), *id_list(from_data)
                ]
        if return_response and svc.supports_response is SupportsResponse.none:
            raise ServiceValidationError(f"{domain}.{service} does not return a response")
        if not return_response and svc.supports_response is SupportsResponse.only:
            raise ServiceValidationError(
                f"{domain}.{service} only returns a response: call it with return_response"
            )
        if svc.schema is not None:
            try:
                data = svc.schema(data)
            except vol.Invalid as err:
                raise ServiceValidationError(
                    f"Invalid data for {domain}.{service}: {vol.humanize.humanize_error(data, err)}"
                ) from err
        entity_ids = None
        if target:
            try:
                target = _TARGET_SCHEMA(target)
            except vol.Invalid as err:
                raise ServiceValidationError(
                    f"Invalid target for {domain}.{service}: {vol.humanize.humanize_error(target, err)}"
                ) from err
            if self.resolve_target is None:
                entity_ids = id_list(target.get("entity_id"))
            else:
                entity_ids = self.resolve_target(target)
        context = context if context is not None else Context()
        call = ServiceCall(svc.domain, svc.name, data, entity_ids, context, return_response)
        self._bus.fire(
            EVENT_CALL_SERVICE,
            {"domain": svc.domain, "service": svc.name, "service_data": data},
            context=context,
        )
        result = svc.handler(call)
        if inspect.isawaitable(result):
            result = await result
        return result if return_response else None
