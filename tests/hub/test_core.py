"""The event bus, the state machine and the service registry, as plugins and users see them."""

from __future__ import annotations

import asyncio
import logging

import pytest
import voluptuous as vol

from hub.core import (
    EVENT_STATE_CHANGED,
    MATCH_ALL,
    Context,
    Event,
    Hub,
    State,
)
from hub.services import SupportsResponse
from hub.exceptions import InvalidEntityId, InvalidStateError, ServiceNotFound, ServiceValidationError


async def test_a_listener_that_raises_does_not_stop_the_others(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    async def broken_coroutine(event: Event) -> None:
        raise RuntimeError("async boom")

    hub.bus.listen("doorbell", broken)
    hub.bus.listen("doorbell", broken_coroutine)
    hub.bus.listen("doorbell", lambda event: seen.append(event.data["who"]))
    with caplog.at_level(logging.ERROR):
        hub.bus.fire("doorbell", {"who": "postman"})
        await asyncio.sleep(0.01)
    assert seen == ["postman"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("broken" in m and "doorbell" in m for m in messages)
    assert any("broken_coroutine" in m for m in messages)


async def test_unsubscribe_and_listen_once(hub: Hub) -> None:
    calls: list[str] = []
    unsubscribe = hub.bus.listen("ping", lambda e: calls.append("every"))
    hub.bus.listen_once("ping", lambda e: calls.append("once"))
    hub.bus.fire("ping")
    hub.bus.fire("ping")
    unsubscribe()
    hub.bus.fire("ping")
    assert calls == ["every", "once", "every"]
    assert "ping" not in hub.bus.listener_counts()


async def test_coroutine_listener_runs_and_match_all_sees_every_type(hub: Hub) -> None:
    got: list[str] = []
    done = asyncio.Event()

    async def on_event(event: Event) -> None:
        await asyncio.sleep(0)
        got.append(event.event_type)
        done.set()

    everything: list[str] = []
    hub.bus.listen("custom", on_event)
    hub.bus.listen(MATCH_ALL, lambda e: everything.append(e.event_type))
    hub.bus.fire("custom")
    hub.bus.fire("other")
    await asyncio.wait_for(done.wait(), 2)
    assert got == ["custom"]
    assert everything == ["custom", "other"]


async def test_event_filter_runs_before_the_listener(hub: Hub) -> None:
    kitchen: list[Event] = []
    hub.bus.listen("motion", kitchen.append, event_filter=lambda e: e.data.get("room") == "kitchen")
    hub.bus.fire("motion", {"room": "hall"})
    hub.bus.fire("motion", {"room": "kitchen"})
    assert [e.data["room"] for e in kitchen] == ["kitchen"]


async def test_state_changed_only_on_real_change_last_reported_otherwise(hub: Hub) -> None:
    changes: list[Event] = []
    hub.bus.listen(EVENT_STATE_CHANGED, changes.append)
    first = hub.states.set("sensor.temp", 21.5, {"unit_of_measurement": "°C"})
    again = hub.states.set("sensor.temp", "21.5", {"unit_of_measurement": "°C"})
    assert again is first and len(changes) == 1
    assert again.last_reported_ts >= first.last_updated_ts

    hub.states.set("sensor.temp", "21.5", {"unit_of_measurement": "°C", "battery": 90})
    assert len(changes) == 2
    attr_change = hub.states.get("sensor.temp")
    assert attr_change.last_changed == first.last_changed  # value unchanged
    assert attr_change.last_updated >= first.last_updated

    hub.states.set("sensor.temp", "22.0")  # attributes kept when not given
    assert hub.states.get("sensor.temp").attributes["battery"] == 90
    assert changes[-1].data["old_state"].state == "21.5"
    assert changes[-1].data["new_state"].state == "22.0"


async def test_force_update_fires_even_without_change(hub: Hub) -> None:
    changes: list[Event] = []
    hub.bus.listen(EVENT_STATE_CHANGED, changes.append)
    hub.states.set("sensor.counter", "1")
    hub.states.set("sensor.counter", "1", force_update=True)
    assert len(changes) == 2


async def test_state_is_a_read_only_snapshot(hub: Hub) -> None:
    state = hub.states.set("light.hall", "on", {"brightness": 100})
    with pytest.raises(TypeError):
        state.attributes["brightness"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        state.attributes.update(brightness=1)
    assert state.as_dict()["attributes"] == {"brightness": 100}
    assert state.as_dict()["entity_id"] == "light.hall"


@pytest.mark.parametrize("bad", ["nodot", "light.", ".hall", "light.hall__x", "light._x", "light hall", "light.hall_"])
async def test_invalid_entity_ids_are_refused(hub: Hub, bad: str) -> None:
    with pytest.raises(InvalidEntityId):
        State(bad, "on")
    with pytest.raises(InvalidEntityId):
        hub.states.set(bad, "on")
    assert len(hub.states) == 0


async def test_entity_ids_are_case_insensitive_like_home_assistant(hub: Hub) -> None:
    hub.states.set("Light.Hall", "on")
    assert hub.states.get("light.hall").state == "on"
    assert hub.states.get("LIGHT.HALL").entity_id == "light.hall"


async def test_a_state_longer_than_255_characters_is_refused(hub: Hub) -> None:
    with pytest.raises(InvalidStateError):
        hub.states.set("sensor.long", "x" * 256)
    hub.states.set("sensor.long", "x" * 255)
    with pytest.raises(InvalidStateError):
        hub.states.set("sensor.long", "y" * 256)
    assert hub.states.get("sensor.long").state == "x" * 255


async def test_states_by_domain_and_removal(hub: Hub) -> None:
    hub.states.set("light.a", "on")
    hub.states.set("light.b", "off")
    hub.states.set("switch.c", "on")
    assert sorted(s.entity_id for s in hub.states.all("light")) == ["light.a", "light.b"]
    removed: list[Event] = []
    hub.bus.listen(EVENT_STATE_CHANGED, removed.append)
    assert hub.states.remove("light.a")
    assert hub.states.get("light.a") is None
    assert removed[0].data["new_state"] is None
    assert not hub.states.remove("light.a")


async def test_entity_listeners_wake_only_for_their_entity(hub: Hub) -> None:
    hall: list[str] = []
    unsubscribe = hub.states.listen("light.hall", lambda e: hall.append(e.data["new_state"].state))
    hub.states.set("light.kitchen", "on")
    hub.states.set("light.hall", "on")
    hub.states.set("light.hall", "off")
    unsubscribe()
    hub.states.set("light.hall", "on")
    assert hall == ["on", "off"]


async def test_service_call_with_schema_target_and_context(hub: Hub) -> None:
    calls = []

    async def handler(call):
        calls.append(call)

    hub.services.register("demo", "set_level", handler, {vol.Required("level"): vol.All(int, vol.Range(0, 10))})
    hub.states.set("light.a", "on")
    hub.states.set("light.b", "on")
    context = Context(user_id="u1")
    await hub.services.call(
        "demo", "set_level", {"level": 3, "entity_id": "light.a"}, target={"entity_id": ["light.b"]}, context=context
    )
    call = calls[0]
    assert call.data == {"level": 3}
    assert set(call.entity_ids) == {"light.a", "light.b"}
    assert call.context is context and call.context.user_id == "u1"

    with pytest.raises(ServiceValidationError, match="level"):
        await hub.services.call("demo", "set_level", {"level": 99})
    with pytest.raises(ServiceValidationError, match="target"):
        await hub.services.call("demo", "set_level", {"level": 1}, target={"entity_id": 5})
    with pytest.raises(ServiceNotFound, match="demo.unknown"):
        await hub.services.call("demo", "unknown")


async def test_service_response_data(hub: Hub) -> None:
    hub.services.register(
        "weather", "forecast", lambda call: {"tomorrow": "sunny"}, supports_response=SupportsResponse.only
    )
    assert await hub.services.call("weather", "forecast", return_response=True) == {"tomorrow": "sunny"}
    with pytest.raises(ServiceValidationError, match="return_response"):
        await hub.services.call("weather", "forecast")
    hub.services.register("light2", "flash", lambda call: None)
    with pytest.raises(ServiceValidationError, match="does not return"):
        await hub.services.call("light2", "flash", return_response=True)


async def test_context_flows_from_service_call_to_the_resulting_state(hub: Hub) -> None:
    def handler(call):
        hub.states.set("switch.pump", "on", context=call.context)

    hub.services.register("pump", "start", handler)
    parent = Context(user_id="owner")
    await hub.services.call("pump", "start", context=parent)
    assert hub.states.get("switch.pump").context is parent


async def test_hub_stop_fires_hub_stop_and_stops_background_tasks(make_hub) -> None:
    hub = await make_hub()
    stopped: list[str] = []
    hub.bus.listen("hub_stop", lambda e: stopped.append("stop"))
    never_ends = hub.create_task(asyncio.sleep(3600))
    await hub.stop()
    assert stopped == ["stop"]
    assert never_ends.cancelled()
    assert hub.state == "STOPPED"


async def test_a_coroutine_listener_gets_its_events_in_order_even_when_it_waits(hub: Hub) -> None:
    received: list[int] = []

    async def slow_listener(event: Event) -> None:
        if event.data["n"] % 3 == 0:
            await asyncio.sleep(0.001)  # waiting must not let later events overtake
        received.append(event.data["n"])

    hub.bus.listen("reading", slow_listener)
    for n in range(50):
        hub.bus.fire("reading", {"n": n})
    for _ in range(200):
        if len(received) == 50:
            break
        await asyncio.sleep(0.01)
    assert received == list(range(50))


async def test_a_plain_listener_that_returns_a_coroutine_still_runs(hub: Hub) -> None:
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        done.set()

    hub.bus.listen("wake", lambda event: handle(event))
    hub.bus.fire("wake")
    await asyncio.wait_for(done.wait(), 2)


async def test_entity_listeners_match_ids_case_insensitively(hub: Hub) -> None:
    seen: list[str] = []
    hub.states.listen("Sensor.Outside", lambda e: seen.append(e.data["new_state"].state))
    hub.states.set("sensor.outside", "4")
    assert seen == ["4"]
