"""Areas, devices and entities are remembered across restarts, and user changes stick."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

import orjson
import pytest

from hub import config as hub_config
from hub.core import EventBus, Hub, StateMachine, TaskRunner
from hub.notifications import Notifications
from hub.registry import (
    AreaRegistry,
    DeviceRegistry,
    EntityRegistry,
    resolve_target,
    slugify,
)

def make_hub(config_dir: Path) -> types.SimpleNamespace:
    """The parts of a Hub the registries use, wired the way Hub.__init__ wires them."""
    tasks = TaskRunner()
    bus = EventBus(tasks)
    hub = types.SimpleNamespace(
        config_dir=config_dir,
        tasks=tasks,
        bus=bus,
        states=StateMachine(bus),
        notifications=Notifications(bus),
    )
    hub.areas = AreaRegistry(hub)
    hub.devices = DeviceRegistry(hub)
    hub.entity_registry = EntityRegistry(hub)
    return hub


async def start(config_dir: Path) -> types.SimpleNamespace:
    hub = make_hub(config_dir)
    for registry in (hub.areas, hub.devices, hub.entity_registry):
        await registry.load()
    return hub


async def restart(hub: types.SimpleNamespace) -> types.SimpleNamespace:
    for registry in (hub.areas, hub.devices, hub.entity_registry):
        await registry.flush()
    return await start(hub.config_dir)


def events(hub: types.SimpleNamespace, event_type: str) -> list[dict]:
    seen: list[dict] = []
    hub.bus.listen(event_type, lambda event: seen.append(dict(event.data)))
    return seen


def storage(config_dir: Path, key: str) -> dict:
    return orjson.loads((config_dir / ".storage" / key).read_bytes())


@pytest.fixture
async def hub(tmp_path: Path) -> types.SimpleNamespace:
    return await start(tmp_path)


# --- slugs -----------------------------------------------------------------------------------


def test_slugify_makes_ascii_ids() -> None:
    assert slugify("Küche Licht #2") == "kuche_licht_2"
    assert slugify("  Living--Room  ") == "living_room"
    assert slugify("Living Room", separator="-") == "living-room"
    assert slugify("###") == "unnamed"


# --- entities --------------------------------------------------------------------------------


async def test_an_entity_keeps_its_entity_id_across_a_restart(hub) -> None:
    first = hub.entity_registry.get_or_create(
        "sensor", "mqtt", "aa:bb:01-temp", suggested_object_id="Porch Temperature",
        original_name="Porch Temperature", unit_of_measurement="°C",
    )
    assert first.entity_id == "sensor.porch_temperature"

    hub = await restart(hub)
    # After the restart the integration suggests a different name: the id does not change.
    again = hub.entity_registry.get_or_create(
        "sensor", "mqtt", "aa:bb:01-temp", suggested_object_id="Something Else",
        original_name="Porch", unit_of_measurement="°C",
    )
    assert again.entity_id == "sensor.porch_temperature"
    assert again.id == first.id
    assert again.original_name == "Porch"  # what the integration says now
    assert hub.entity_registry.get_entity_id("sensor", "mqtt", "aa:bb:01-temp") == again.entity_id


async def test_new_entity_ids_avoid_registered_ids_and_live_states(hub) -> None:
    hub.states.set("sensor.power", "12")  # an entity without a unique_id
    reg = hub.entity_registry
    a = reg.get_or_create("sensor", "coap", "dev1-power", suggested_object_id="power")
    b = reg.get_or_create("sensor", "mqtt", "dev2-power", suggested_object_id="Power")
    c = reg.get_or_create("sensor", "mqtt", "Dev 3 Power")  # named from its unique_id
    assert [a.entity_id, b.entity_id, c.entity_id] == [
        "sensor.power_2", "sensor.power_3", "sensor.dev_3_power",
    ]


async def test_an_unchanged_report_does_not_save_or_fire(hub, monkeypatch) -> None:
    hub.entity_registry.get_or_create("switch", "mqtt", "relay1", original_name="Relay")
    await hub.entity_registry.flush()
    writes = count_writes(monkeypatch)
    updates = events(hub, "entity_registry_updated")
    hub.entity_registry.get_or_create("switch", "mqtt", "relay1", original_name="Relay")
    await hub.entity_registry.flush()
    assert writes == [] and updates == []


async def test_a_user_rename_survives_a_restart_and_frees_the_old_id(hub) -> None:
    entry = hub.entity_registry.get_or_create("light", "mqtt", "lamp-1", suggested_object_id="lamp")
    updates = events(hub, "entity_registry_updated")
    hub.entity_registry.update(
        "light.lamp", new_entity_id="light.reading_lamp", name="Reading lamp"
    )
    assert updates == [{
        "action": "update",
        "entity_id": "light.reading_lamp",
        "old_entity_id": "light.lamp",
        "changes": {"name": None, "entity_id": "light.lamp"},
    }]

    hub = await restart(hub)
    again = hub.entity_registry.get_or_create("light", "mqtt", "lamp-1", suggested_object_id="lamp")
    assert again.entity_id == "light.reading_lamp"
    assert again.name == "Reading lamp" and again.id == entry.id
    assert hub.entity_registry.get("light.lamp") is None
    other = hub.entity_registry.get_or_create("light", "mqtt", "lamp-2", suggested_object_id="lamp")
    assert other.entity_id == "light.lamp"  # the old id is free again


async def test_a_rename_to_an_id_in_use_or_invalid_is_refused(hub) -> None:
    hub.entity_registry.get_or_create("light", "mqtt", "a", suggested_object_id="hall")
    hub.entity_registry.get_or_create("light", "mqtt", "b", suggested_object_id="porch")
    hub.states.set("light.garden", "on")
    for new_id, message in [
        ("light.porch", "already in use"),
        ("light.garden", "already in use"),
        ("switch.hall_2", "another domain"),
        ("light.Hall Lamp", "Invalid entity id"),
    ]:
        with pytest.raises(ValueError, match=message):
            hub.entity_registry.update("light.hall", new_entity_id=new_id)
    assert hub.entity_registry.get("light.hall") is not None


async def test_entity_registry_list_shape(hub) -> None:
    entry = hub.entity_registry.get_or_create(
        "sensor", "coap", "t1", original_name="T", entity_category="diagnostic"
    )
    data = entry.as_dict()
    for key in ("entity_id", "unique_id", "platform", "device_id", "area_id", "name", "icon",
                "disabled_by", "hidden_by", "entity_category", "has_entity_name", "options",
                "original_name", "id", "created_at", "modified_at", "labels", "config_entry_id"):
        assert key in data
    assert data["entity_category"] == "diagnostic"


# --- devices ---------------------------------------------------------------------------------


async def test_a_device_is_found_again_by_a_connection_in_another_spelling(hub) -> None:
    device = hub.devices.get_or_create(
        integration="mqtt", connections=[("mac", "AA-BB-CC-DD-EE-FF")], name="Plug",
        sw_version="1.0",
    )
    assert device.connections == {("mac", "aa:bb:cc:dd:ee:ff")}
    again = hub.devices.get_or_create(
        integration="mqtt", connections=[["mac", "aabb.ccdd.eeff"]], sw_version="1.1"
    )
    assert again is device
    assert device.sw_version == "1.1" and device.name == "Plug"
    assert hub.devices.get_device(connections=[("mac", "AA:BB:CC:DD:EE:FF")]) is device

    hub = await restart(hub)
    assert hub.devices.get_device(connections=[("mac", "aabbccddeeff")]).id == device.id


async def test_a_second_integration_adding_an_identifier_merges_into_the_device(hub) -> None:
    updates = events(hub, "device_registry_updated")
    eui = ("chirpstack", "0004a30b001c0530")
    device = hub.devices.get_or_create(integration="chirpstack", identifiers=[eui])
    merged = hub.devices.get_or_create(
        integration="mqtt",
        identifiers=[eui, ("mqtt", "node-17")],
        manufacturer="Dragino",
    )
    assert merged is device and len(hub.devices.all()) == 1
    assert device.identifiers == {eui, ("mqtt", "node-17")}
    assert hub.devices.get_device(identifiers=[("mqtt", "node-17")]) is device
    assert device.as_dict()["config_entries"] == ["chirpstack", "mqtt"]
    assert device.as_dict()["identifiers"] == [list(eui), ["mqtt", "node-17"]]
    assert [u["action"] for u in updates] == ["create", "update"]
    assert updates[1]["changes"]["manufacturer"] is None

    with pytest.raises(ValueError, match="at least one identifier or connection"):
        hub.devices.get_or_create(integration="mqtt", name="Nameless")


async def test_a_device_links_to_its_gateway_and_gets_its_suggested_area(hub) -> None:
    gateway = hub.devices.get_or_create(
        integration="zigbee", identifiers=[("zigbee", "coordinator")]
    )
    bulb = hub.devices.get_or_create(
        integration="zigbee", identifiers=[("zigbee", "0x00158d")],
        via_device=("zigbee", "coordinator"),
        suggested_area="Kitchen",
    )
    assert bulb.via_device_id == gateway.id
    assert bulb.area_id == hub.areas.get_by_name("kitchen").id
    hub.devices.remove(gateway.id)
    assert bulb.via_device_id is None


async def test_removing_a_device_removes_its_entities(hub) -> None:
    device = hub.devices.get_or_create(integration="mqtt", identifiers=[("mqtt", "th-1")])
    hub.entity_registry.get_or_create("sensor", "mqtt", "th-1-t", device_id=device.id)
    hub.entity_registry.get_or_create("sensor", "mqtt", "th-1-h", device_id=device.id)
    keep = hub.entity_registry.get_or_create("sensor", "mqtt", "other")
    removed = events(hub, "entity_registry_updated")

    hub.devices.remove(device.id)

    assert hub.devices.get(device.id) is None
    assert hub.devices.get_device(identifiers=[("mqtt", "th-1")]) is None
    assert [e.entity_id for e in hub.entity_registry.all()] == [keep.entity_id]
    assert {r["entity_id"] for r in removed} == {"sensor.th_1_t", "sensor.th_1_h"}
    hub = await restart(hub)
    assert len(hub.devices.all()) == 0 and len(hub.entity_registry.all()) == 1


# --- areas -----------------------------------------------------------------------------------


async def test_areas_get_unique_ids_and_unique_names(hub) -> None:
    kitchen = hub.areas.create("Kitchen", icon="mdi:stove")
    assert kitchen.id == "kitchen"
    with pytest.raises(ValueError, match="already exists"):
        hub.areas.create("KITCHEN")
    hub.areas.update("kitchen", name="Old kitchen")
    assert hub.areas.create("Kitchen").id == "kitchen_2"  # the id stays with the renamed area
    assert hub.areas.get_by_name("old KITCHEN") is kitchen
    hub = await restart(hub)
    assert [(a.id, a.name, a.icon) for a in hub.areas.all()] == [
        ("kitchen", "Old kitchen", "mdi:stove"),
        ("kitchen_2", "Kitchen", None),
    ]


async def test_deleting_an_area_clears_it_from_devices_and_entities(hub) -> None:
    garage = hub.areas.create("Garage")
    device = hub.devices.get_or_create(integration="mqtt", identifiers=[("mqtt", "door")])
    hub.devices.update(device.id, area_id=garage.id, name_by_user="Garage door")
    entry = hub.entity_registry.get_or_create("cover", "mqtt", "door-cover")
    hub.entity_registry.update(entry.entity_id, area_id=garage.id)
    seen = events(hub, "area_registry_updated")

    hub.areas.delete(garage.id)

    assert seen == [{"action": "remove", "area_id": "garage"}]
    assert device.area_id is None and entry.area_id is None
    hub = await restart(hub)
    assert hub.devices.get(device.id).area_id is None
    assert hub.devices.get(device.id).name_by_user == "Garage door"
    with pytest.raises(ValueError, match="Unknown area"):
        hub.devices.update(device.id, area_id="garage")


# --- service targets -------------------------------------------------------------------------


async def test_resolve_target_by_entity_device_and_area(hub) -> None:
    cellar = hub.areas.create("Cellar")
    attic = hub.areas.create("Attic")
    pump = hub.devices.get_or_create(integration="mqtt", identifiers=[("mqtt", "pump")])
    hub.devices.update(pump.id, area_id=cellar.id)
    reg = hub.entity_registry
    power = reg.get_or_create("switch", "mqtt", "pump-power", device_id=pump.id)
    temp = reg.get_or_create("sensor", "mqtt", "pump-temp", device_id=pump.id)
    reg.get_or_create(
        "sensor", "mqtt", "pump-rssi", device_id=pump.id, entity_category="diagnostic"
    )
    moved = reg.get_or_create("sensor", "mqtt", "pump-probe", device_id=pump.id)
    reg.update(moved.entity_id, area_id=attic.id)  # its own area wins over the device's
    fan = reg.get_or_create("fan", "mqtt", "attic-fan")
    reg.update(fan.entity_id, area_id=attic.id)

    assert resolve_target(hub, {"device_id": pump.id}) == [
        power.entity_id, temp.entity_id, moved.entity_id,
    ]
    assert resolve_target(hub, {"area_id": "cellar"}) == [power.entity_id, temp.entity_id]
    assert resolve_target(hub, {"area_id": [attic.id]}) == [moved.entity_id, fan.entity_id]
    assert resolve_target(hub, {
        "entity_id": "fan.attic_fan, switch.pump_power",
        "device_id": [pump.id, "no-such-device"],
        "area_id": "no-such-area",
    }) == [fan.entity_id, power.entity_id, temp.entity_id, moved.entity_id]

    hub.states.set("light.a", "on")
    hub.states.set("light.b", "off")
    assert resolve_target(hub, {"entity_id": "all"}) == ["light.a", "light.b"]


# --- storage ---------------------------------------------------------------------------------


def count_writes(monkeypatch) -> list[Path]:
    writes: list[Path] = []
    real = hub_config.atomic_write

    def counting(path, data, mode=0o644):
        writes.append(Path(path))
        real(path, data, mode)

    monkeypatch.setattr(hub_config, "atomic_write", counting)
    return writes


async def test_saving_is_debounced_into_one_atomic_write(tmp_path, monkeypatch) -> None:
    hub = await start(tmp_path)
    hub.entity_registry._store.delay = 0.2
    writes = count_writes(monkeypatch)
    for n in range(50):
        hub.entity_registry.get_or_create("sensor", "coap", f"s{n}")
    path = tmp_path / ".storage" / "core.entity_registry"
    await asyncio.sleep(0.05)
    assert writes == [] and not path.exists()  # still waiting for more changes

    await hub.entity_registry.flush()
    assert writes == [path]
    doc = storage(tmp_path, "core.entity_registry")
    assert doc["version"] == 1 and doc["key"] == "core.entity_registry"
    assert len(doc["data"]["entities"]) == 50
    # No temporary files left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["core.entity_registry"]
    await hub.entity_registry.flush()
    assert len(writes) == 1  # nothing pending, nothing written


async def test_a_pending_save_is_written_after_its_delay(tmp_path) -> None:
    hub = await start(tmp_path)
    hub.areas._store.delay = 0.01
    hub.areas.create("Shed")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if (tmp_path / ".storage" / "core.area_registry").exists():
            break
    await asyncio.gather(*hub.tasks.tasks)
    assert storage(tmp_path, "core.area_registry")["data"]["areas"][0]["name"] == "Shed"


async def test_a_failed_write_keeps_the_old_file_and_is_retried(tmp_path, monkeypatch) -> None:
    hub = await start(tmp_path)
    hub.areas.create("Barn")
    await hub.areas.flush()
    path = tmp_path / ".storage" / "core.area_registry"
    before = path.read_bytes()

    def disk_full(path, data, mode=0o644):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hub_config, "atomic_write", disk_full)
    hub.areas.create("Silo")
    await hub.areas.flush()
    assert path.read_bytes() == before

    monkeypatch.undo()
    await hub.areas.flush()
    areas = storage(tmp_path, "core.area_registry")["data"]["areas"]
    assert [area["name"] for area in areas] == ["Barn", "Silo"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "key": "core.entity_registry", "data": {"entities": [',
        b"[1, 2, 3]",
        b'{"version": 1, "key": "core.entity_registry", "data": {"entities": [{}]}}',
    ],
    ids=["truncated", "wrong-shape", "bad-entry"],
)
async def test_a_corrupt_registry_file_is_set_aside_and_reported(tmp_path, content) -> None:
    storage_dir = tmp_path / ".storage"
    storage_dir.mkdir()
    (storage_dir / "core.entity_registry").write_bytes(content)

    hub = await start(tmp_path)

    backups = list(storage_dir.glob("core.entity_registry.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content
    assert not (storage_dir / "core.entity_registry").exists()
    [note] = hub.notifications.all()
    assert "core.entity_registry" in note["message"] and backups[0].name in note["message"]
    assert hub.entity_registry.all() == []
    # The registry works and saves a fresh file; the backup stays.
    hub.entity_registry.get_or_create("sensor", "mqtt", "x")
    await hub.entity_registry.flush()
    assert len(storage(tmp_path, "core.entity_registry")["data"]["entities"]) == 1
    assert backups[0].read_bytes() == content


async def test_an_older_file_goes_through_the_migration_hook(tmp_path) -> None:
    storage_dir = tmp_path / ".storage"
    storage_dir.mkdir()
    (storage_dir / "core.area_registry").write_bytes(
        orjson.dumps({
            "version": 0, "key": "core.area_registry",
            "data": {"rooms": [{"id": "loft", "name": "Loft"}]},
        })
    )
    hub = make_hub(tmp_path)
    hub.areas._store._migrate = lambda old_version, data: {"areas": data["rooms"]}
    await hub.areas.load()
    assert hub.areas.get("loft").name == "Loft"
    await hub.areas.flush()
    assert storage(tmp_path, "core.area_registry")["version"] == 1


async def test_the_hub_wires_and_saves_its_registries(tmp_path) -> None:
    real = Hub(tmp_path)
    for registry in (real.areas, real.devices, real.entity_registry):
        await registry.load()
    real.areas.create("Porch")
    device = real.devices.get_or_create(integration="mqtt", identifiers=[("mqtt", "p1")])
    real.devices.update(device.id, area_id="porch")
    real.entity_registry.get_or_create("light", "mqtt", "p1-light", device_id=device.id)
    assert real.services.resolve_target({"area_id": "porch"}) == ["light.p1_light"]
    for registry in (real.areas, real.devices, real.entity_registry):
        await registry.flush()
    assert sorted(p.name for p in (tmp_path / ".storage").iterdir()) == [
        "core.area_registry", "core.device_registry", "core.entity_registry",
    ]
