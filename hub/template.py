"""Sandboxed Jinja2 templates with Home Assistant's helpers: `states()`, `is_state()`, `now()`...

`Template(source, hub).render(variables)` renders and, like Home Assistant, turns the output into a
Python value when it is a literal ("42" -> 42, "[1, 2]" -> a list, "007" stays a string). Every
failure is a `TemplateError` with a readable message. `render_info()` also says which entities,
domains or "all states" a render read, so template triggers re-render only when those change.

Helpers reach the hub being rendered for through a context variable set around each render, so
one environment class serves every hub; each hub gets its own environment only so that plugin
extensions (`add_extensions(..., hub=hub)`) and the compiled-code cache stay per hub.
"""

from __future__ import annotations

import ast
import logging
import re
import weakref
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any, Final

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .exceptions import TemplateError

from .template_helpers import (  # noqa: F401 - some are re-exported for callers
    MAX_OUTPUT,
    RenderInfo,
    _FILTERS,
    _GLOBALS,
    _HubUndefined,
    _IS_NUMERIC,
    _RENDER,
    _Render,
    _TESTS,
    _tick,
    is_template_string,
)

_LOGGER = logging.getLogger(__name__)

# --- Environment --------------------------------------------------------------------------------

_KINDS: Final = ("globals", "filters", "tests")
_EXTENSIONS: Final[dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with HA's helpers, guards against runaway templates (output
    size, range() sizes, huge `*`/`**` results, render time) and a compiled-code cache."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,
            undefined=_HubUndefined,
            extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"],
        )
        self.globals.pop("lipsum", None)  # generates text of any size on request
        self.globals.update(_GLOBALS)
        self.filters.update(_FILTERS)
        self.tests.update(_TESTS)
        self.builtin_names = {kind: frozenset(getattr(self, kind)) for kind in _KINDS}
        self._code: dict[str, CodeType] = {}
        self.add_extensions(**_EXTENSIONS)

    def add_extensions(
        self,
        globals: Mapping[str, Any] | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        tests: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        for kind, items in zip(_KINDS, (globals, filters, tests)):
            target = getattr(self, kind)
            for name, value in (items or {}).items():
                if name in self.builtin_names[kind]:
                    _LOGGER.error("Template %s %r is built in: not replaced", kind[:-1], name)
                elif kind != "globals" and not callable(value):
                    _LOGGER.error("Template %s %r is not callable; ignored", kind[:-1], name)
                else:
                    target[name] = value

    def load(self, source: str) -> jinja2.Template:
        """Compile `source` (once per environment) into a template; TemplateError if invalid."""
        code = self._code.get(source)
        if code is None:
            try:
                code = self.compile(source)
            except jinja2.TemplateSyntaxError as err:
                message = f"Template syntax error at line {err.lineno}: {err.message}"
                raise TemplateError(message) from err
            except Exception as err:  # noqa: BLE001 - e.g. RecursionError on absurd nesting
                raise TemplateError(f"Invalid template: {type(err).__name__}: {err}") from err
            if len(self._code) >= 1024:
                self._code.clear()
            self._code[source] = code
        return self.template_class.from_code(self, code, self.globals, None)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int):
                    if len(seq) * count > MAX_OUTPUT:
                        raise TemplateError(f"Template result over the limit of {MAX_OUTPUT} items")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and right * abs(left).bit_length() > 1_000_000:
                raise TemplateError("Template number too large to compute")
        return super().call_binop(context, operator, left, right)


_ENVIRONMENTS: weakref.WeakKeyDictionary[Any, TemplateEnvironment] = weakref.WeakKeyDictionary()
_PINNED: dict[int, tuple[Any, TemplateEnvironment]] = {}  # hubs without weakref support (tests)


class _NoHub:
    """The key of the environment shared by templates without a hub (weakly referenceable)."""


_NO_HUB: Final = _NoHub()


def get_environment(hub: Any | None = None) -> TemplateEnvironment:
    """The environment of this hub (or of hub-less templates), made on first use."""
    key = _NO_HUB if hub is None else hub
    try:
        env = _ENVIRONMENTS.get(key)
        if env is None:
            env = _ENVIRONMENTS[key] = TemplateEnvironment()
        return env
    except TypeError:  # neither hashable nor weakly referenceable, like SimpleNamespace
        pinned = _PINNED.get(id(hub))
        if pinned is None or pinned[0] is not hub:
            if len(_PINNED) >= 64:  # forget the oldest: it is rebuilt if still used
                _PINNED.pop(next(iter(_PINNED)))
            pinned = _PINNED[id(hub)] = (hub, TemplateEnvironment())
        return pinned[1]


_EVERY_HUB: Final = object()


def add_extensions(
    globals: Mapping[str, Any] | None = None,
    filters: Mapping[str, Callable[..., Any]] | None = None,
    tests: Mapping[str, Callable[..., Any]] | None = None,
    *,
    hub: Any = _EVERY_HUB,
) -> None:
    """Add template globals, filters and tests (name -> value) that plugins contribute.

    Without `hub` they apply to every hub's templates, now and later; with `hub`, to that hub's
    only. Built-in names cannot be replaced (logged and skipped); adding a name again replaces
    the earlier extension. Call it before templates using the names are compiled.
    """
    if hub is not _EVERY_HUB:
        get_environment(hub).add_extensions(globals, filters, tests)
        return
    for kind, items in zip(_KINDS, (globals, filters, tests)):
        _EXTENSIONS[kind].update(items or {})
    envs = [*_ENVIRONMENTS.values(), *(env for _, env in _PINNED.values())]
    for env in envs:
        env.add_extensions(globals, filters, tests)


# --- Templates ----------------------------------------------------------------------------------


def parse_result(text: str) -> Any:
    """HA's rule: a rendered literal becomes its value, but only when that does not change how it
    reads ("007", "1e5", "1.2.3" and quoted strings stay strings)."""
    try:
        result = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(result, (str, complex)):
        return text
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return result if _IS_NUMERIC.match(text) else text
    return result


def _template_line(err: BaseException) -> int | None:
    """The template line Jinja put in the traceback, if any."""
    line, tb = None, err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# `{{ value_json.temperature }}`, `{{ value_json['a'].b[0] }}`, `{{ value }}`: most device
# templates only pick a field. They are evaluated directly (about 20x faster than Jinja); anything
# unusual on the way (a missing key, an object that is not a dict or list) falls back to Jinja,
# so the result and the errors are Jinja's own.
_PATH_STEP = r"""(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:'[^'\\]*'|"[^"\\]*"|\d+)\s*\])"""
_SIMPLE_PATH = re.compile(rf"^\{{\{{\s*([A-Za-z_][A-Za-z0-9_]*)((?:{_PATH_STEP})*)\s*\}}\}}$")
_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:'([^']*)'|"([^"]*)"|(\d+))\s*\]""")
_NO_PATH = object()


def _simple_path(source: str) -> tuple[str, tuple[str | int, ...]] | None:
    match = _SIMPLE_PATH.match(source.strip())
    if match is None:
        return None
    steps: list[str | int] = []
    for attr, single, double, index in _STEP.findall(match[2]):
        if attr and (hasattr(dict, attr) or hasattr(list, attr)):
            return None  # Jinja reads `.items` as the method, not the key: leave it to Jinja
        steps.append(int(index) if index else (attr or single or double))
    return match[1], tuple(steps)


def _follow(variables: Mapping[str, Any] | None, path: tuple[str, tuple[str | int, ...]]) -> Any:
    name, steps = path
    if not variables or name not in variables:
        return _NO_PATH
    value = variables[name]
    for step in steps:
        if isinstance(value, dict) and isinstance(step, str) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return _NO_PATH
    if value is None or isinstance(value, (str, int, float, bool)):
        return str(value)  # what Jinja prints for these
    return _NO_PATH


class Template:
    """A template string and the hub it reads states from (`hub` may be set later)."""

    __slots__ = ("source", "hub", "is_static", "_compiled", "_path")

    def __init__(self, source: str, hub: Any | None = None) -> None:
        if not isinstance(source, str):
            raise TypeError(f"A template must be a string, not {type(source).__name__}")
        self.source = source
        self.hub = hub
        self.is_static = not is_template_string(source)
        self._compiled: jinja2.Template | None = None
        self._path = None if self.is_static else _simple_path(source)

    def __repr__(self) -> str:
        return f"Template<{self.source!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.source == self.source and other.hub is self.hub

    def __hash__(self) -> int:
        return hash(self.source)

    def _template(self) -> jinja2.Template:
        env = get_environment(self.hub)
        if self._compiled is None or self._compiled.environment is not env:
            self._compiled = env.load(self.source)
        return self._compiled

    def ensure_valid(self) -> None:
        """Compile now; TemplateError (with the line) if the template is invalid."""
        if not self.is_static:
            self._template()

    def render(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        parse_result: bool = True,
        strict: bool = False,
        max_seconds: float | None = None,
    ) -> Any:
        """Render with `variables`; the result is parsed into a Python value unless
        `parse_result=False`. `strict`: undefined variables are errors. `max_seconds` caps the
        render (default MAX_RENDER_SECONDS; APIs use less). Raises TemplateError."""
        return self._render(variables, parse_result, strict, None, max_seconds)

    def render_info(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        parse_result: bool = True,
        strict: bool = False,
        max_seconds: float | None = None,
    ) -> RenderInfo:
        """Render and report what was read; never raises (the error is in `.error`)."""
        info = RenderInfo()
        try:
            info.result = self._render(variables, parse_result, strict, info, max_seconds)
        except TemplateError as err:
            info.error = str(err)
        return info

    def _render(
        self,
        variables: Mapping[str, Any] | None,
        parse: bool,
        strict: bool,
        info: RenderInfo | None,
        max_seconds: float | None = None,
    ) -> Any:
        if self.is_static:
            return parse_result(self.source) if parse else self.source
        if self._path is not None and info is None:
            result = _follow(variables, self._path)
            if result is not _NO_PATH:
                return parse_result(result) if parse else result
        compiled = self._template()
        chunks: list[str] = []
        size = 0
        token = None
        try:
            token = _RENDER.set(_Render(self.source, strict, info, self.hub, max_seconds))
            # Streamed, so that a template printing in a long loop stops at the limit.
            for chunk in compiled.generate(dict(variables or {})):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateError(f"Template output is over {MAX_OUTPUT} characters")
                chunks.append(chunk)
        except TemplateError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever fails inside a template is its error
            message = f"{type(err).__name__}: {err}"
            line = _template_line(err)
            if line is not None and "\n" in self.source.strip():
                message += f" (line {line})"
            raise TemplateError(message) from err
        finally:
            if token is not None:
                _RENDER.reset(token)
        result = "".join(chunks).strip()
        return parse_result(result) if parse else result


def render_complex(
    value: Any,
    variables: Mapping[str, Any] | None = None,
    *,
    hub: Any | None = None,
    parse_result: bool = True,
    strict: bool = False,
) -> Any:
    """Render every template in a structure of dicts and lists (service data, event data).

    Strings without Jinja syntax are returned unchanged; Template objects use their own hub."""
    if isinstance(value, Template):
        return value.render(variables, parse_result=parse_result, strict=strict)
    if isinstance(value, str):
        if not is_template_string(value):
            return value
        return Template(value, hub).render(variables, parse_result=parse_result, strict=strict)
    kwargs = {"hub": hub, "parse_result": parse_result, "strict": strict}
    if isinstance(value, Mapping):
        return {
            render_complex(k, variables, **kwargs): render_complex(v, variables, **kwargs)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [render_complex(item, variables, **kwargs) for item in value]
    return value
