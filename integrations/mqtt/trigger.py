"""The `mqtt` automation trigger: fires on messages to a topic (wildcards allowed), optionally
only for one payload, optionally comparing a value extracted by `value_template`.

```yaml
triggers:
  - trigger: mqtt
    topic: "zigbee2mqtt/+/action"
    payload: single
    value_template: "{{ value_json.action }}"
```
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import voluptuous as vol

from hub.core import Context
from hub.exceptions import IntegrationError, TemplateError
from hub.triggers import Detach, TriggerAction, TriggerType, base_trigger_data

from . import entity as options
from .models import Message

if TYPE_CHECKING:
    from hub.core import Hub

_LOGGER = logging.getLogger(__name__)

SCHEMA = vol.Schema({
    vol.Optional("trigger"): "mqtt",
    vol.Optional("platform"): "mqtt",
    vol.Required("topic"): options.subscribe_topic,
    vol.Optional("payload"): options.payload_str,
    vol.Optional("value_template"): options.template,
    vol.Optional("encoding", default="utf-8"): vol.Any("", str),
    vol.Optional("qos", default=0): options.qos,
    vol.Optional("id"): str,
    vol.Optional("alias"): str,
    vol.Optional("enabled"): object,
    vol.Optional("variables"): dict,
}, extra=vol.PREVENT_EXTRA)


async def attach(hub: Hub, config: dict[str, Any], action: TriggerAction,
                 info: Mapping[str, Any]) -> Detach:
    runtime = hub.data.get("mqtt")
    if runtime is None:
        raise IntegrationError("the mqtt trigger needs the mqtt integration")
    wanted = config.get("payload")
    template = config.get("value_template")
    if template is not None:
        template.hub = hub
    encoding = config["encoding"] or None

    def on_message(message: Message) -> None:
        text: Any = message.payload.decode(encoding, errors="replace") if encoding else message.payload
        payload_json: Any = None
        try:
            payload_json = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            pass
        compared = text
        if template is not None:
            variables: dict[str, Any] = {"value": text}
            if payload_json is not None:
                variables["value_json"] = payload_json
            try:
                compared = template.render(variables, parse_result=False)
            except TemplateError as err:
                _LOGGER.warning("mqtt trigger on %s: value_template failed: %s", config["topic"], err)
                return
        if wanted is not None and compared != wanted:
            return
        data = {**base_trigger_data("mqtt", info), "topic": message.topic, "payload": text,
                "qos": message.qos, "description": f"mqtt topic {message.topic}"}
        if payload_json is not None:
            data["payload_json"] = payload_json
        hub.create_task(_run(action, data), f"mqtt trigger {message.topic}")

    return runtime.connection.subscribe(config["topic"], on_message, config["qos"], "mqtt trigger")


async def _run(action: TriggerAction, data: dict[str, Any]) -> None:
    result = action(data, Context())
    if hasattr(result, "__await__"):
        await result


TRIGGER = TriggerType(SCHEMA, attach, "Fires when a message arrives on an MQTT topic.")
