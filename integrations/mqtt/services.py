"""The `mqtt.publish` service (HA's fields: topic, payload or payload_template, qos, retain,
evaluate_payload)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import voluptuous as vol

from hub.exceptions import ServiceValidationError, TemplateError
from hub.template import Template

from .models import TopicError, validate_topic

if TYPE_CHECKING:
    from hub.core import Hub
    from hub.services import ServiceCall

    from . import MqttRuntime

PUBLISH_SCHEMA = vol.Schema({
    vol.Required("topic"): vol.All(str, vol.Length(min=1)),
    vol.Exclusive("payload", "payload"): vol.Any(str, int, float, bool, None),
    vol.Exclusive("payload_template", "payload"): str,
    vol.Optional("evaluate_payload", default=False): bool,
    vol.Optional("qos", default=0): vol.All(vol.Coerce(int), vol.In((0, 1, 2))),
    vol.Optional("retain", default=False): bool,
    vol.Optional("entity_id"): object,  # tolerated: some UIs always send a target
})

FIELDS = {
    "topic": {"description": "Topic to publish to (templates allowed).", "required": True,
              "example": "home/garage/door/set"},
    "payload": {"description": "The payload; a template is rendered first. Empty clears a retained message.",
                "example": "ON"},
    "payload_template": {"description": "Deprecated in HA: a template for the payload."},
    "evaluate_payload": {"description": "Treat a payload like b'\\x01' as bytes."},
    "qos": {"description": "Quality of service: 0, 1 or 2.", "default": 0},
    "retain": {"description": "Ask the broker to keep the message for new subscribers.", "default": False},
}


def _render(hub: Hub, text: Any, what: str) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return Template(text, hub).render(parse_result=False)
    except TemplateError as err:
        raise ServiceValidationError(f"mqtt.publish: the {what} template failed: {err}") from err


def register(hub: Hub, runtime: MqttRuntime) -> Callable[[], None]:
    async def publish(call: ServiceCall) -> None:
        data = call.data
        topic = _render(hub, data["topic"], "topic")
        try:
            validate_topic(str(topic))
        except TopicError as err:
            raise ServiceValidationError(f"mqtt.publish: {err}") from err
        payload = data.get("payload_template", data.get("payload"))
        payload = _render(hub, payload, "payload")
        if data["evaluate_payload"] and isinstance(payload, str) and payload[:2] in ("b'", 'b"'):
            try:
                payload = ast.literal_eval(payload)
            except (ValueError, SyntaxError) as err:
                raise ServiceValidationError(f"mqtt.publish: cannot evaluate the payload: {err}") from err
        await runtime.connection.publish(str(topic), payload if isinstance(payload, bytes)
                                         else ("" if payload is None else str(payload)),
                                         data["qos"], data["retain"])

    return hub.services.register(
        "mqtt", "publish", publish, PUBLISH_SCHEMA,
        description="Publish a message to an MQTT topic.", fields=FIELDS,
    )
