"""Templates: Home Assistant's helpers on our states, HA's strictness, and a sandbox that holds."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub import template as template_module
from hub import template_helpers
from hub.core import EventBus, StateMachine, TaskRunner
from hub.exceptions import TemplateError
from hub.template import Template, add_extensions, is_template_string, render_complex

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def hub() -> SimpleNamespace:
    states = StateMachine(EventBus(TaskRunner()))
    states.set("sensor.temp", "21.5", {"unit_of_measurement": "°C", "friendly_name": "Temp"})
    states.set("sensor.humidity", "40", {"unit_of_measurement": "%"})
    states.set("light.kitchen", "on", {"brightness": 200})
    states.set("switch.pump", "unavailable")
    return SimpleNamespace(states=states, config={"time_zone": "Europe/Paris"})


def render(hub: Any, source: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return Template(source, hub).render(variables, **kwargs)


# --- Reading states -----------------------------------------------------------------------------


def test_states_is_state_and_state_attr_read_the_current_states(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ states('sensor.temp') }}") == 21.5
    assert render(hub, "{{ states('sensor.temp', with_unit=True) }}") == "21.5 °C"
    assert render(hub, "{{ states('sensor.nothing') }}") == "unknown"
    assert render(hub, "{{ is_state('light.kitchen', 'on') }}") is True
    assert render(hub, "{{ is_state('light.kitchen', ['off', 'on']) }}") is True
    assert render(hub, "{{ is_state('light.nothing', 'on') }}") is False
    assert render(hub, "{{ state_attr('light.kitchen', 'brightness') }}") == 200
    assert render(hub, "{{ state_attr('light.kitchen', 'color') }}") is None
    assert render(hub, "{{ is_state_attr('sensor.temp', 'unit_of_measurement', '°C') }}") is True
    assert render(hub, "{{ 'light.kitchen' | is_state('on') }}") is True
    assert render(hub, "{{ 'light.kitchen' is is_state('on') }}") is True


def test_has_value_is_false_for_missing_unknown_and_unavailable(hub: SimpleNamespace) -> None:
    hub.states.set("sensor.new", "unknown")
    source = "{{ [has_value('sensor.temp'), has_value('switch.pump'), has_value('sensor.new'), "
    source += "has_value('sensor.nothing')] }}"
    assert render(hub, source) == [True, False, False, False]


def test_object_access_gives_a_read_only_view_of_the_state(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ states.sensor.temp.state }}") == 21.5
    assert render(hub, "{{ states.sensor.temp.name }}") == "Temp"
    assert render(hub, "{{ states.sensor.temp.attributes.unit_of_measurement }}") == "°C"
    assert render(hub, "{{ states.sensor.temp.domain }}/{{ states.sensor.temp.object_id }}") == (
        "sensor/temp"
    )
    assert render(hub, "{{ states['sensor.temp'].entity_id }}") == "sensor.temp"
    last_changed = render(hub, "{{ states.sensor.temp.last_changed.isoformat() }}")
    assert datetime.fromisoformat(last_changed) == hub.states.get("sensor.temp").last_changed
    assert render(hub, "{{ states.sensor.nothing is none }}") is True


def test_iterating_a_domain_or_all_states_is_sorted_by_entity_id(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ states.sensor | map(attribute='entity_id') | list }}") == [
        "sensor.humidity",
        "sensor.temp",
    ]
    assert render(hub, "{{ states | map(attribute='entity_id') | list }}") == [
        "light.kitchen",
        "sensor.humidity",
        "sensor.temp",
        "switch.pump",
    ]
    assert render(hub, "{{ states.sensor | count }}") == 2
    source = "{{ states | selectattr('state', 'eq', 'on') | map(attribute='name') | join }}"
    assert render(hub, source) == "kitchen"


def test_expand_takes_ids_states_and_lists(hub: SimpleNamespace) -> None:
    source = "{{ expand('sensor.temp', ['light.kitchen', states.sensor.humidity], 'x.none') "
    source += "| map(attribute='entity_id') | list }}"
    assert render(hub, source) == ["light.kitchen", "sensor.humidity", "sensor.temp"]
    hub.states.set("group.climate", "on", {"entity_id": ["sensor.temp", "sensor.humidity"]})
    # A group expands to its members; states stay strings inside the parsed list.
    assert render(hub, "{{ expand('group.climate') | map(attribute='state') | list }}") == [
        "40",
        "21.5",
    ]


def test_a_compiled_template_reads_the_new_state_on_every_render(hub: SimpleNamespace) -> None:
    # Filters that read states must not be folded into constants when Jinja compiles.
    tpl = Template("{{ 'light.kitchen' | is_state('on') }} {{ states('light.kitchen') }}", hub)
    assert tpl.render() == "True on"
    hub.states.set("light.kitchen", "off")
    assert tpl.render() == "False off"


def test_a_template_without_a_hub_has_no_states() -> None:
    assert Template("{{ 6 * 7 }}").render() == 42
    with pytest.raises(TemplateError, match="need a hub"):
        Template("{{ states('sensor.temp') }}").render()


# --- HA's strict conversions --------------------------------------------------------------------


def test_float_of_bad_input_fails_naming_float_and_the_input(hub: SimpleNamespace) -> None:
    with pytest.raises(TemplateError) as err:
        render(hub, "{{ 'abc' | float }}")
    assert str(err.value) == (
        "Template error: float got invalid input 'abc' when rendering template "
        "'{{ 'abc' | float }}' but no default was specified"
    )
    assert render(hub, "{{ 'abc' | float(0) }}") == 0
    assert render(hub, "{{ float('abc', default=1.5) }}") == 1.5
    assert render(hub, "{{ states('sensor.temp') | float + 1 }}") == 22.5


def test_int_accepts_a_base_and_a_default(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ '0x1F' | int(base=16) }}") == 31
    assert render(hub, "{{ 'ff' | int(0, 16) }}") == 255
    assert render(hub, "{{ '42.7' | int }}") == 42
    assert render(hub, "{{ int('nope', 5) }}") == 5
    with pytest.raises(TemplateError, match="int got invalid input 'nope'"):
        render(hub, "{{ 'nope' | int }}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 3.14159 | round(2) }}", 3.14),
        ("{{ 3.141 | round(2, 'ceil') }}", 3.15),
        ("{{ 3.149 | round(2, 'floor') }}", 3.14),
        ("{{ 2.3 | round(method='half') }}", 2.5),
        ("{{ 2.7 | round }}", 3),
        ("{{ 'x' | round(1, default='n/a') }}", "n/a"),
    ],
)
def test_round_methods(hub: SimpleNamespace, source: str, expected: Any) -> None:
    assert render(hub, source) == expected


def test_round_of_bad_input_without_default_fails(hub: SimpleNamespace) -> None:
    with pytest.raises(TemplateError, match="round got invalid input 'x'"):
        render(hub, "{{ 'x' | round }}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'on' | bool }}", True),
        ("{{ bool('off') }}", False),
        ("{{ 'maybe' | bool(none) }}", None),
        ("{{ ['1.5' | is_number, 'nan' | is_number, 'x' is is_number] }}", [True, False, False]),
        ("{{ [min(3, 1, 2), max([3, 1, 2])] }}", [1, 3]),
        ("{{ average([1, 2, 3]) }}", 2.0),
        ("{{ average([], 0) }}", 0),
        ("{{ [1, 3, 2] | median }}", 2),
        ("{{ 2 | multiply(3) }}", 6.0),
        ("{{ 100 | log(10) }}", 2.0),
        ("{{ 16 | sqrt }}", 4.0),
        ("{{ (pi * 100) | round }}", 314),
        ("{{ 'sensor-12' | regex_match('sensor-\\\\d+') }}", True),
        ("{{ 'a1b22' | regex_findall('\\\\d+') }}", ["1", "22"]),
        ("{{ 'a1b22' | regex_findall_index('\\\\d+', 1) }}", 22),
        ("{{ 'a1b2' | regex_replace('\\\\d', '#') }}", "a#b#"),
        ("{{ 'Salle à manger!' | slugify }}", "salle_a_manger"),
        ("{{ 'Salle à manger' | slugify('-') }}", "salle-a-manger"),
        ("{{ '###' | slugify }}", "unknown"),  # Home Assistant's; the registry says "unnamed"
        ("{{ 'hub' | base64_encode }}", "aHVi"),
        ("{{ 'aHVi' | base64_decode }}", "hub"),
        ("{{ [1, 2, 3, 11, 22] | map('ordinal') | join(' ') }}", "1st 2nd 3rd 11th 22nd"),
        ("{{ {'a': 1, 'b': 'x y'} | urlencode }}", "a=1&b=x+y"),
    ],
)
def test_helpers(hub: SimpleNamespace, source: str, expected: Any) -> None:
    assert render(hub, source) == expected


def test_iif_as_function_and_filter(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ iif(is_state('light.kitchen', 'on'), 'yes', 'no') }}") == "yes"
    assert render(hub, "{{ (1 == 2) | iif('yes', 'no') }}") == "no"
    assert render(hub, "{{ none | iif('yes', 'no', 'none') }}") == "none"
    assert render(hub, "{{ iif(1) }}") is True


def test_from_json_and_to_json_round_trip(hub: SimpleNamespace) -> None:
    data = {"name": "Pompe", "levels": [1, 2.5], "on": True, "unit": "°C"}
    text = render(hub, "{{ data | to_json }}", {"data": data}, parse_result=False)
    assert render(hub, "{{ (text | from_json) == data }}", {"text": text, "data": data}) is True
    assert render(hub, "{{ (text | from_json).levels[1] }}", {"text": text}) == 2.5
    assert render(hub, "{{ {'b': 1, 'a': 'é'} | to_json(sort_keys=True) }}", parse_result=False) == (
        '{"a":"é","b":1}'
    )
    assert render(hub, "{{ 'é' | to_json(ensure_ascii=True) }}", parse_result=False) == '"\\u00e9"'
    assert render(hub, "{{ 'not json' | from_json('bad') }}") == "bad"
    with pytest.raises(TemplateError, match="from_json got invalid input"):
        render(hub, "{{ 'not json' | from_json }}")


# --- Time ---------------------------------------------------------------------------------------


def test_now_is_in_the_hubs_time_zone(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ now().tzinfo }}") == "Europe/Paris"
    rendered = datetime.fromisoformat(render(hub, "{{ now().isoformat() }}"))
    real = datetime.now(PARIS)
    assert abs(rendered - real) < timedelta(seconds=5)
    assert rendered.utcoffset() == real.utcoffset()
    assert render(hub, "{{ utcnow().utcoffset().total_seconds() }}") == 0.0
    hub.config["time_zone"] = "America/New_York"
    assert render(hub, "{{ now().tzinfo }}") == "America/New_York"


def test_today_at_and_timedelta(hub: SimpleNamespace) -> None:
    at = datetime.fromisoformat(render(hub, "{{ today_at('08:30').isoformat() }}"))
    assert (at.hour, at.minute) == (8, 30)
    assert at.date() == datetime.now(PARIS).date()
    assert at.utcoffset() == datetime.now(PARIS).replace(hour=8, minute=30).utcoffset()
    assert render(hub, "{{ (today_at('10:00') - today_at('08:30')) == timedelta(minutes=90) }}")
    with pytest.raises(TemplateError, match="today_at"):
        render(hub, "{{ today_at('soon') }}")


def test_as_timestamp_of_a_datetime_and_of_an_iso_string(hub: SimpleNamespace) -> None:
    moment = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert render(hub, "{{ as_timestamp(moment) }}", {"moment": moment}) == 1704067200.0
    assert render(hub, "{{ as_timestamp('2024-01-01T00:00:00+00:00') }}") == 1704067200.0
    assert render(hub, "{{ '2024-01-01T00:00:00Z' | as_timestamp }}") == 1704067200.0
    # A time without offset is in the hub's time zone: 01:00 in Paris is midnight UTC.
    assert render(hub, "{{ as_timestamp('2024-01-01 01:00:00') }}") == 1704067200.0
    assert render(hub, "{{ as_timestamp('never', 0) }}") == 0
    with pytest.raises(TemplateError, match="as_timestamp got invalid input 'never'"):
        render(hub, "{{ as_timestamp('never') }}")


def test_timestamp_custom_local_and_utc(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ 1704067200 | timestamp_custom('%Y-%m-%d %H:%M') }}") == (
        "2024-01-01 01:00"
    )
    assert render(hub, "{{ 1704067200 | timestamp_custom('%H:%M', false) }}") == "00:00"
    assert render(hub, "{{ 1704067200 | timestamp_utc }}") == "2024-01-01T00:00:00+00:00"
    assert render(hub, "{{ 1704067200 | timestamp_local }}") == "2024-01-01T01:00:00+01:00"
    assert render(hub, "{{ 'x' | timestamp_custom('%H', default='?') }}") == "?"


def test_as_datetime_and_as_local(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ as_datetime('2024-06-01T12:00:00+00:00') | as_local }}") == (
        "2024-06-01 14:00:00+02:00"
    )
    assert render(hub, "{{ as_datetime(0).year }}") == 1970
    assert render(hub, "{{ as_datetime('garbage') }}") is None


# --- Undefined variables and parsing of results -------------------------------------------------


def test_undefined_variable_renders_empty_and_warns(
    hub: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hub.template"):
        assert render(hub, "[{{ missing }}]") == []
    assert "'missing' is undefined" in caplog.text


def test_undefined_variable_raises_when_strict(hub: SimpleNamespace) -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render(hub, "{{ missing }}", strict=True)
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render(hub, "{% if missing == 1 %}x{% endif %}", strict=True)
    assert render(hub, "{{ missing | default('fallback') }}", strict=True) == "fallback"
    assert render(hub, "{{ missing is defined }}", strict=True) is False
    assert render(hub, "{{ value_json.level }}", {"value_json": {"level": 3}}, strict=True) == 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 42 }}", 42),
        ("{{ '-4.5' }}", -4.5),
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ {'a': 1} }}", {"a": 1}),
        ("{{ true }}", True),
        ("{{ none }}", None),
        ("{{ '007' }}", "007"),
        ("{{ '1.0e' }}", "1.0e"),
        ("{{ '1e5' }}", "1e5"),
        ("{{ '1.2.3' }}", "1.2.3"),
        ("{{ '0x1F' }}", "0x1F"),
        ("{{ 'hello' }}", "hello"),
        ("{{ \"'quoted'\" }}", "'quoted'"),
        ("  {{ 42 }}\n", 42),
        ("42", 42),
        ("plain text", "plain text"),
    ],
)
def test_parse_result_turns_literals_into_values(hub: SimpleNamespace, source: str, expected: Any):
    result = render(hub, source)
    assert result == expected
    assert type(result) is type(expected)


def test_parse_result_false_keeps_the_text(hub: SimpleNamespace) -> None:
    assert render(hub, "{{ 40 + 2 }}", parse_result=False) == "42"
    assert Template("42").render(parse_result=False) == "42"


# --- Errors and protection ----------------------------------------------------------------------


def test_every_failure_is_a_template_error(hub: SimpleNamespace) -> None:
    for source in ("{{ 1 / 0 }}", "{{ states.Sensor }}", "{{ ordinal('x') }}", "{{ [] | first.x }}"):
        with pytest.raises(TemplateError):
            render(hub, source)


def test_syntax_error_message_carries_the_line(hub: SimpleNamespace) -> None:
    tpl = Template("{% if is_state('light.kitchen', 'on') %}\n  on\n{% endfi %}", hub)
    with pytest.raises(TemplateError, match="line 3") as err:
        tpl.ensure_valid()
    assert "endfi" in str(err.value)
    with pytest.raises(TemplateError, match="line 1"):
        Template("{{ 1 + }}").render()


def test_runtime_error_in_a_multiline_template_names_the_line(hub: SimpleNamespace) -> None:
    with pytest.raises(TemplateError, match=r"ZeroDivisionError.*\(line 3\)"):
        render(hub, "{% set a = 1 %}\n{{ a }}\n{{ a / 0 }}")


def test_sandbox_blocks_escape_attempts(hub: SimpleNamespace) -> None:
    for source in (
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ states.sensor.temp._state }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% do [].append(1) %}",
    ):
        with pytest.raises(TemplateError):
            render(hub, source, strict=False)


def test_huge_loops_and_outputs_are_refused(hub: SimpleNamespace) -> None:
    with pytest.raises(TemplateError, match="range"):
        render(hub, "{% for i in range(1000000) %}{% endfor %}")
    with pytest.raises(TemplateError, match="range"):
        render(hub, "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}")
    with pytest.raises(TemplateError, match="over"):
        render(hub, "{{ 'x' * 1000000000 }}")
    with pytest.raises(TemplateError, match="over"):
        render(hub, "{% for i in range(100000) %}{{ 'abcdefgh' }}{% endfor %}")
    with pytest.raises(TemplateError, match="too large"):
        render(hub, "{{ 2 ** 100000000 }}")
    assert len(render(hub, "{% for i in range(1000) %}x{% endfor %}")) == 1000


def test_a_render_that_runs_too_long_is_stopped(
    hub: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(template_helpers, "MAX_RENDER_SECONDS", -1.0)
    with pytest.raises(TemplateError, match="took longer"):
        render(hub, "{% for s in states %}{{ s.state }}{% endfor %}")


# --- What a render read -------------------------------------------------------------------------


def test_render_info_lists_what_the_template_read(hub: SimpleNamespace) -> None:
    tpl = Template(
        "{{ states('sensor.temp') }} {{ is_state('light.kitchen', 'on') }} "
        "{{ states.switch.pump.state }} {{ state_attr('sensor.nothing', 'x') }}",
        hub,
    )
    info = tpl.render_info()
    assert info.error is None
    assert info.result == "21.5 True unavailable None"
    assert info.entities == {"sensor.temp", "light.kitchen", "switch.pump", "sensor.nothing"}
    assert (info.domains, info.all_states, info.has_time) == (set(), False, False)

    info = Template("{{ states.sensor | list | count }} {{ now().year }}", hub).render_info()
    assert (info.domains, info.all_states, info.has_time) == ({"sensor"}, False, True)
    assert Template("{{ states | count }}", hub).render_info().all_states is True


def test_render_info_keeps_the_error_instead_of_raising(hub: SimpleNamespace) -> None:
    info = Template("{{ states('sensor.temp') | float + 'x' }}", hub).render_info()
    assert info.result is None
    assert info.error is not None and "TypeError" in info.error
    assert info.entities == {"sensor.temp"}


# --- Helpers around templates -------------------------------------------------------------------


def test_render_complex_renders_nested_templates_only(hub: SimpleNamespace) -> None:
    data = {
        "brightness": "{{ state_attr('light.kitchen', 'brightness') + 10 }}",
        "message": "Temp is {{ states('sensor.temp') }}",
        "{{ 'key' }}": ["plain", "{{ x }}", 3, Template("{{ x * 2 }}", hub)],
        "raw": "007",
    }
    assert render_complex(data, {"x": 2}, hub=hub) == {
        "brightness": 210,
        "message": "Temp is 21.5",
        "key": ["plain", 2, 3, 4],
        "raw": "007",
    }
    assert is_template_string("{{ x }}") and is_template_string("{% if %}")
    assert is_template_string("{# note #}") and not is_template_string("plain {text}")


def test_static_templates_skip_jinja(hub: SimpleNamespace) -> None:
    tpl = Template("just text", hub)
    assert tpl.is_static and tpl.render() == "just text"
    tpl.ensure_valid()
    assert not Template("{{ 1 }}").is_static


def test_plugins_add_globals_filters_and_tests(
    hub: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    add_extensions(
        globals={"greeting": "hello"},
        filters={"shout": lambda s: f"{s.upper()}!", "float": lambda v: 0},
        tests={"even": lambda n: n % 2 == 0},
        hub=hub,
    )
    assert render(hub, "{{ greeting | shout }} {{ 4 is even }}") == "HELLO! True"
    assert "'float' is built in" in caplog.text
    with pytest.raises(TemplateError, match="float got invalid input"):
        render(hub, "{{ 'x' | float }}")  # the built-in stays
    with pytest.raises(TemplateError):
        render(SimpleNamespace(states=hub.states, config={}), "{{ 'a' | shout }}")  # other hub


def test_extensions_for_every_hub(hub: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_module, "_EXTENSIONS", {"globals": {}, "filters": {}, "tests": {}})
    Template("{{ 1 }}", hub).render()  # this hub's environment exists before the plugin loads
    add_extensions(filters={"test_only_twice": lambda v: v * 2})
    assert render(hub, "{{ 21 | test_only_twice }}") == 42
    other = SimpleNamespace(states=hub.states, config={"time_zone": "UTC"})
    assert render(other, "{{ 'ab' | test_only_twice }}") == "abab"


def test_a_render_can_be_given_a_shorter_time_limit(hub: SimpleNamespace) -> None:
    slow = "{% for i in range(100000) %}{% for j in range(10) %}{{ '' }}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="longer than 0.01 s"):
        Template(slow, hub).render(max_seconds=0.01)
    info = Template(slow, hub).render_info(max_seconds=0.01)
    assert info.error is not None and "0.01 s" in info.error


@pytest.mark.parametrize("source", [
    "{{ value_json.t }}", "{{ value_json['a'].b[0] }}", "{{ value }}", '{{ value_json["x y"] }}',
    "{{ value_json.d }}", "{{ value_json.missing }}", "{{ value_json.items }}", "{{ value_json.l[5] }}",
    "{{ value_json.n }}", "{{ value_json.f }}", "{{ nothing }}",
])
def test_field_picking_templates_render_exactly_as_jinja_does(source: str) -> None:
    """`{{ value_json.x }}` takes a shortcut past Jinja (device payloads are rendered per
    message); whatever the data, the result must be Jinja's."""
    from hub import template as template_module

    variables = {"value": "7", "value_json": {"t": 21.5, "a": {"b": [True]}, "x y": None,
                                               "d": {"k": 1}, "items": 3, "l": [1], "n": 10 ** 30,
                                               "f": 0.1 + 0.2}}
    fast = Template(source)
    slow = Template(source)
    slow._path = None
    assert fast.render(variables, parse_result=False) == slow.render(variables, parse_result=False)
    assert template_module._simple_path("{{ value_json.t | float }}") is None
