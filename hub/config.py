"""Load and validate `configuration.yaml`, Home Assistant compatible.

Every mapping, sequence and string loaded from YAML remembers its file and line, so a validation
error anywhere is reported as `file:line: message`. Tags: `!secret`, `!include`, `!env_var`,
`!input` and `!include_dir_{list,named,merge_list,merge_named}`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
import zoneinfo
from collections.abc import Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import voluptuous as vol
import yaml

from hub.core import valid_entity_id
from hub.exceptions import ConfigError, ConfigIssue

__all__ = [
    "CORE_SCHEMA", "DEFAULT_CONFIGURATION", "HubConfig", "Input", "NodeDict", "NodeList",
    "NodeStr", "SecretStr", "Secrets", "atomic_write", "humanize_error", "load_configuration",
    "load_yaml", "location", "validate_integration_configs", "write_default_config",
]

_LOGGER = logging.getLogger(__name__)

CONFIG_YAML = "configuration.yaml"
SECRETS_YAML = "secrets.yaml"
CORE_KEYS = ("hub", "homeassistant")  # `homeassistant:` is accepted as an alias of `hub:`
_MISSING = object()


class NodeDict(dict):
    """A mapping loaded from YAML; `.file` and `.line` (1-based) say where it starts."""
    __slots__ = ("file", "line")


class NodeList(list):
    """A sequence loaded from YAML, with `.file` and `.line`."""
    __slots__ = ("file", "line")


class NodeStr(str):
    """A string loaded from YAML, with `.file` and `.line` (str subclasses cannot use slots)."""


class SecretStr(NodeStr):
    """A string from `!secret` or `!env_var`; its repr is masked so logs never show it."""

    def __repr__(self) -> str:
        return "'***'"


class _SecretInt(int):
    """A number from `!secret` (a PIN, say), masked like SecretStr."""
    __slots__ = ()
    __str__ = int.__repr__  # int's str() would otherwise fall back to our masked repr()

    def __repr__(self) -> str:
        return "***"


@dataclass(frozen=True, slots=True)
class Input:
    """`!input name` in a blueprint: replaced by the user's value when the blueprint is used."""
    name: str


def _at(obj: Any, file: str, line: int | None) -> Any:
    obj.file, obj.line = file, line
    return obj


def location(value: Any) -> tuple[str | None, int | None]:
    """The (file, line) a loaded node came from; (None, None) for anything else."""
    if isinstance(value, (NodeDict, NodeList, NodeStr)):
        # Validators may build empty copies (voluptuous does `type(data)()`): slots unset.
        return getattr(value, "file", None), getattr(value, "line", None)
    return None, None


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (C when available) building Node* objects, with HA's tags."""
    file: str
    secrets: Secrets | None
    chain: tuple[str, ...]  # absolute paths being loaded, to catch include loops
    text: str = ""  # the source, kept to re-parse block by block after a syntax error
    str_type: type[NodeStr] = NodeStr  # SecretStr in secrets.yaml: even nested values are masked

    def error(self, node: yaml.Node, message: str) -> ConfigError:
        return ConfigError([ConfigIssue(self.file, node.start_mark.line + 1, message)])

    def reset(self) -> None:
        """Forget a construction that raised, so the next top-level block starts clean."""
        self.recursive_objects, self.state_generators, self.deep_construct = {}, [], False

    def pairs(self, node: yaml.MappingNode) -> Iterator[tuple[Any, yaml.Node, yaml.Node]]:
        """(key, key node, value node) after `<<` merges; warn about duplicate keys like HA."""
        own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        self.flatten_mapping(node)
        first_own = len(node.value) - own  # merged pairs come first; overriding them is fine
        seen: dict[Any, int] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise self.error(key_node, "a mapping key must be a plain value") from None
            line = key_node.start_mark.line + 1
            if index >= first_own:
                if key in seen:
                    _LOGGER.warning("%s:%d: duplicate key %r (first on line %d); the last one wins",
                                    self.file, line, key, seen[key])
                seen[key] = line
            yield key, key_node, value_node

    def construct_node_map(self, node: yaml.Node) -> Iterator[NodeDict]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, "expected a mapping")
        data = _at(NodeDict(), self.file, node.start_mark.line + 1)
        yield data  # yield first, fill later: lets anchors and aliases refer to it
        for key, _, value_node in self.pairs(node):
            data[key] = self.construct_object(value_node)

    def construct_node_seq(self, node: yaml.Node) -> Iterator[NodeList]:
        data = _at(NodeList(), self.file, node.start_mark.line + 1)
        yield data
        data.extend(self.construct_sequence(node))

    def construct_node_str(self, node: yaml.Node) -> NodeStr:
        return _at(self.str_type(self.construct_scalar(node)), self.file, node.start_mark.line + 1)

    def construct_secret(self, node: yaml.Node) -> Any:
        name = str(self.construct_scalar(node))
        if self.secrets is None:
            raise self.error(node, f"!secret '{name}' cannot be used in this file")
        value = self.secrets.lookup(name, self.file)
        if value is _MISSING:
            raise self.error(node, f"secret '{name}' not found in {SECRETS_YAML}")
        if isinstance(value, str):  # located where it is used, not in secrets.yaml
            return _at(SecretStr(value), self.file, node.start_mark.line + 1)
        if isinstance(value, int) and not isinstance(value, bool):
            return _SecretInt(value)
        return value

    def construct_env_var(self, node: yaml.Node) -> SecretStr:
        args = str(self.construct_scalar(node)).split()
        if not args:
            raise self.error(node, "!env_var needs a variable name")
        value = os.environ.get(args[0])
        if value is None:
            if len(args) == 1:
                raise self.error(node, f"environment variable '{args[0]}' is not set, no default")
            value = " ".join(args[1:])  # as in HA, the default is the rest, as a string
        # Environment variables often carry credentials (containers): masked like secrets.
        return _at(SecretStr(value), self.file, node.start_mark.line + 1)

    def _target(self, node: yaml.Node) -> Path:
        target = Path(self.file).parent / str(self.construct_scalar(node))
        if os.path.abspath(target) in self.chain:
            raise self.error(node, f"'{node.value}' includes itself")
        return target

    def construct_include(self, node: yaml.Node) -> Any:
        target = self._target(node)
        if not target.is_file():
            raise self.error(node, f"included file '{node.value}' not found")
        return _load(target, self.secrets, self.chain)

    def _dir_files(self, node: yaml.Node) -> Iterator[Path]:
        """*.yaml below the directory, recursively, sorted; dot-files and secrets.yaml skipped."""
        directory = self._target(node)
        if not directory.is_dir():
            raise self.error(node, f"included directory '{node.value}' not found")
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(".yaml") and not name.startswith(".") and name != SECRETS_YAML:
                    yield Path(root, name)

    def include_dir(self, node: yaml.Node, named: bool, merge: bool) -> NodeDict | NodeList:
        """The four `!include_dir_*` tags: a list or a mapping, of whole files or merged."""
        data: Any = NodeDict() if named else NodeList()
        for path in self._dir_files(node):
            value = _load(path, self.secrets, self.chain)
            if not merge:
                if named:
                    data[_at(NodeStr(path.stem), str(path), 1)] = value
                elif value is not None:  # an empty file adds nothing
                    data.append(value)
            elif isinstance(value, dict if named else list):
                (data.update if named else data.extend)(value)
            elif value is not None:  # HA ignores these silently; at least say so
                _LOGGER.warning("%s: ignored by %s, not a %s", path, node.tag,
                                "mapping" if named else "list")
        return _at(data, self.file, node.start_mark.line + 1)


for _tag, _constructor in {
    "tag:yaml.org,2002:map": _Loader.construct_node_map,
    "tag:yaml.org,2002:seq": _Loader.construct_node_seq,
    "tag:yaml.org,2002:str": _Loader.construct_node_str,
    "!secret": _Loader.construct_secret,
    "!env_var": _Loader.construct_env_var,
    "!input": lambda loader, node: Input(str(loader.construct_scalar(node))),
    "!include": _Loader.construct_include,
    "!include_dir_list": lambda loader, node: loader.include_dir(node, False, False),
    "!include_dir_named": lambda loader, node: loader.include_dir(node, True, False),
    "!include_dir_merge_list": lambda loader, node: loader.include_dir(node, False, True),
    "!include_dir_merge_named": lambda loader, node: loader.include_dir(node, True, True),
}.items():
    _Loader.add_constructor(_tag, _constructor)


def _issue(file: str, line: int | None, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file, line, message)])


def _yaml_error(exc: yaml.YAMLError, file: str) -> ConfigError:
    """The parser's own message at the 1-based line of the problem."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    message = getattr(exc, "problem", None) or str(exc)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark and mark and context_mark.line != mark.line:
        message = f"{message} ({context} on line {context_mark.line + 1})"
    return _issue(file, mark.line + 1 if mark else None, message)


def _open(path: Path, secrets: Secrets | None, chain: tuple[str, ...]) -> _Loader:
    file = str(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise _issue(file, None, "file not found") from None
    except OSError as exc:
        raise _issue(file, None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise _issue(file, raw[: exc.start].count(b"\n") + 1, "not valid UTF-8") from None
    loader = _Loader(text)
    loader.file, loader.secrets, loader.chain = file, secrets, (*chain, os.path.abspath(file))
    loader.text = text
    return loader


def _load(path: Path, secrets: Secrets | None, chain: tuple[str, ...] = (),
          secret: bool = False) -> Any:
    if os.path.abspath(path) in chain:  # e.g. a directory include reaching its includer
        raise _issue(str(path), None, "include loop: the file includes itself")
    loader = _open(path, secrets, chain)
    if secret:
        loader.str_type = SecretStr
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, loader.file) from None
    finally:
        loader.dispose()


def load_yaml(path: Path, secrets: Secrets | None = None) -> Any:
    """Load one YAML file with our tags; None if empty. Raises ConfigError with file:line."""
    return _load(Path(path), secrets)


class Secrets:
    """The secrets.yaml files of a config dir, each loaded once."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = Path(os.path.abspath(config_dir))
        self._cache: dict[Path, Mapping[Any, Any]] = {}

    def get(self, name: str, requesting_file: Path | str) -> Any:
        """The secret, from secrets.yaml next to the file, then its parents up to the root."""
        value = self.lookup(name, requesting_file)
        if value is _MISSING:
            raise _issue(str(requesting_file), None, f"secret '{name}' not found in {SECRETS_YAML}")
        return value

    def lookup(self, name: str, requesting_file: Path | str) -> Any:
        """Like get(), but returns a sentinel when missing (the loader adds the line)."""
        directory = Path(os.path.abspath(requesting_file)).parent
        if directory != self.config_dir and self.config_dir not in directory.parents:
            directory = self.config_dir  # a file outside the tree sees only the root's secrets
        while True:
            secrets = self._secrets_in(directory)
            if name in secrets:
                _LOGGER.debug("Secret %s found in %s", name, directory / SECRETS_YAML)
                return secrets[name]
            if directory == self.config_dir:
                return _MISSING
            directory = directory.parent

    def _secrets_in(self, directory: Path) -> Mapping[Any, Any]:
        if directory not in self._cache:
            path = directory / SECRETS_YAML
            data = _load(path, None, secret=True) if path.is_file() else None
            if not isinstance(data, (dict, type(None))):
                raise _issue(str(path), location(data)[1], "secrets.yaml must map names to values")
            self._cache[directory] = data or {}
        return self._cache[directory]


_SECRET_KEY = re.compile(r"password|passwd|secret|token|(^|_)(api_?)?key$|(^|_)psk$", re.I)


def _flatten(exc: vol.Invalid) -> Iterator[vol.Invalid]:
    if isinstance(exc, vol.MultipleInvalid):
        for error in exc.errors:
            yield from _flatten(error)
    else:
        yield exc


def _step(current: Any, key: Any) -> tuple[bool, Any, tuple[str | None, int | None]]:
    """One step down a voluptuous path: (found, value, best location for it)."""
    if isinstance(current, Mapping):
        with suppress(TypeError):  # unhashable path elements
            if key in current:
                real_key = next((k for k in current if k == key), key)
                where = location(real_key)  # the key's line points at the item itself
                return True, current[key], where if where[1] else location(current[key])
    elif isinstance(current, list) and isinstance(key, int) and -len(current) <= key < len(current):
        return True, current[key], location(current[key])
    return False, None, (None, None)


def humanize_error(exc: vol.Invalid, config: Any, domain: str, file_fallback: str,
                   line_fallback: int | None = None) -> list[ConfigIssue]:
    """One ConfigIssue per voluptuous error, located at the deepest loaded node on its path.

    Messages read `demo: expected int for dictionary value @ data['x'] (got 'abc')`; the value
    is `***` when it came from a secret or its key looks secret (password, token, api_key).
    """
    issues: list[ConfigIssue] = []
    for error in _flatten(exc):
        file, line = location(config) if location(config)[1] else (file_fallback, line_fallback)
        found, value = True, config
        for key in error.path:
            found, value, where = _step(value, key)
            if not found:
                break
            if where[1] is not None:
                file, line = where  # type: ignore[assignment]
        message = f"{domain}: {error}"
        if found and not isinstance(value, (dict, list, tuple, set)):
            from_secrets = os.path.basename(location(value)[0] or "") == SECRETS_YAML
            if (isinstance(value, (SecretStr, _SecretInt)) or from_secrets
                    or any(isinstance(p, str) and _SECRET_KEY.search(p) for p in error.path)):
                if len(str(value)) >= 3:  # a validator may have quoted it in its message
                    message = message.replace(str(value), "***")
                message += " (got ***)"
            else:
                message += f" (got {repr(value)[:100]})"
        issue = ConfigIssue(file, line, message, domain)
        if issue not in issues:
            issues.append(issue)
    return issues


def _string(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)  # like HA's cv.string: `name: 42` is fine
    raise vol.Invalid("expected a string")


def _time_zone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise vol.Invalid("unknown time zone (expected a name like Europe/Amsterdam)") from None
    return str(value)


def _unit_system(value: Any) -> str:
    value = str(value).lower()
    value = "us_customary" if value == "imperial" else value  # HA's old name
    if value not in ("metric", "us_customary"):
        raise vol.Invalid("expected metric or us_customary")
    return value


def _url(value: Any) -> str:
    parsed = urlparse(str(value))
    if not isinstance(value, str) or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise vol.Invalid("expected an http:// or https:// URL")
    return str(value).rstrip("/")


def _entity_id(value: Any) -> str:
    # The core's rule, so `customize:` accepts exactly the ids an entity can have.
    if not isinstance(value, str) or not valid_entity_id(value):
        raise vol.Invalid(
            "expected an entity id (domain.object_id: lower-case letters, digits and single "
            "underscores, not at either end)"
        )
    return value


def _code(letters: int, what: str) -> vol.All:
    return vol.All(str, vol.Upper, vol.Match(f"^[A-Z]{{{letters}}}$", msg=f"expected a {what}"))


CORE_SCHEMA = vol.Schema({
    vol.Optional("name", default="Home"): _string,
    vol.Optional("latitude", default=0.0): vol.All(vol.Coerce(float), vol.Range(-90, 90)),
    vol.Optional("longitude", default=0.0): vol.All(vol.Coerce(float), vol.Range(-180, 180)),
    vol.Optional("elevation", default=0): vol.Coerce(int),
    vol.Optional("unit_system", default="metric"): _unit_system,
    vol.Optional("time_zone", default="UTC"): vol.All(str, _time_zone),
    vol.Optional("currency", default="EUR"): _code(3, "3-letter currency code (ISO 4217)"),
    vol.Optional("country"): _code(2, "2-letter country code (ISO 3166)"),
    vol.Optional("language", default="en"): _string,
    vol.Optional("internal_url"): _url,
    vol.Optional("external_url"): _url,
    vol.Optional("customize", default=dict): {_entity_id: dict},
})


def _validate_core(block: Any, key: str, file: str,
                   line: int | None) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """Validate the core block; a broken one still gives a usable core, defaults filling gaps."""
    data = {} if block is None else block
    try:
        return CORE_SCHEMA(data), []
    except vol.Invalid as exc:
        issues = humanize_error(exc, data, key, file, line)
        bad = {error.path[0] for error in _flatten(exc) if error.path}
    if isinstance(data, dict):  # keep the good keys: a bad time zone must not lose the name
        with suppress(vol.Invalid):
            return CORE_SCHEMA({k: v for k, v in data.items() if k not in bad}), issues
    return CORE_SCHEMA({}), issues


@dataclass
class HubConfig:
    """configuration.yaml, loaded: the validated core, raw integration blocks, and problems."""
    config_dir: Path
    core: dict[str, Any] = field(default_factory=lambda: CORE_SCHEMA({}))
    integrations: dict[str, Any] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    source: dict[str, tuple[str, int | None]] = field(default_factory=dict)


def load_configuration(config_dir: Path) -> HubConfig:
    """Load `config_dir/configuration.yaml` into a HubConfig.

    Raises ConfigError only when nothing can load: no file, not a mapping, a syntax error no
    top-level block survives. A problem inside one top-level block (a syntax slip, a missing
    secret, a broken !include) is recorded in `issues` with that domain, and the block is left
    out; the others still load.
    """
    config_dir = Path(config_dir)
    secrets = Secrets(config_dir)
    loader = _open(config_dir / CONFIG_YAML, secrets, ())
    file, result, blocks = loader.file, HubConfig(config_dir=config_dir), {}
    try:
        try:
            root = loader.get_single_node()  # parses the whole file
        except yaml.YAMLError as exc:
            syntax_error = _yaml_error(exc, file)
            # A slip inside one block should not take the whole hub down: parse each
            # top-level block on its own and report only the broken ones.
            if not _load_blockwise(loader, secrets, result, blocks):
                raise syntax_error from None
        else:
            if root is not None and not isinstance(root, yaml.MappingNode):
                if root.tag != "tag:yaml.org,2002:null":
                    raise _issue(file, root.start_mark.line + 1,
                                 f"{CONFIG_YAML} must be a mapping of integration names")
                root = None
            if root is not None:
                _construct_blocks(loader, root, result, blocks)
    finally:
        loader.dispose()

    present = [key for key in CORE_KEYS if key in result.source]
    if len(present) == 2:
        result.issues.append(ConfigIssue(*result.source["homeassistant"],
                                         "use either 'hub:' or 'homeassistant:', not both "
                                         "(using 'hub:')", "hub"))
    core_key = present[0] if present else "hub"
    where = result.source.get(core_key, (file, None))
    result.core, issues = _validate_core(blocks.get(core_key), core_key, *where)
    result.issues.extend(issues)
    result.integrations = {k: v for k, v in blocks.items() if k not in CORE_KEYS}
    return result


def _construct_blocks(loader: _Loader, root: yaml.MappingNode, result: HubConfig,
                      blocks: dict[str, Any]) -> None:
    """Construct each top-level value on its own, so one broken block only breaks itself."""
    file = loader.file
    for key, key_node, value_node in loader.pairs(root):
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            result.issues.append(ConfigIssue(file, line, f"invalid top-level key {key!r}"))
            continue
        result.source[key] = (file, line)
        try:
            blocks[key] = loader.construct_object(value_node, deep=True)
        except (ConfigError, yaml.YAMLError) as exc:
            error = exc if isinstance(exc, ConfigError) else _yaml_error(exc, file)
            result.issues.extend(dataclasses.replace(i, domain=key) for i in error.issues)
            blocks.pop(key, None)
            loader.reset()


_TOP_LEVEL_KEY = re.compile(r"^([^\s#\-][^:]*):")


def _load_blockwise(whole: _Loader, secrets: Secrets, result: HubConfig,
                    blocks: dict[str, Any]) -> bool:
    """Parse each top-level block of a file with a syntax error separately (blank lines in
    place of the others keep line numbers right). False if no block could be parsed."""
    file, lines = whole.file, whole.text.splitlines(keepends=True)
    starts = [n for n, text in enumerate(lines) if _TOP_LEVEL_KEY.match(text)]
    parsed = 0
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        loader = _Loader("\n" * start + "".join(lines[start:end]))
        loader.file, loader.secrets, loader.chain = file, secrets, whole.chain
        try:
            try:
                root = loader.get_single_node()
            except yaml.YAMLError as exc:
                key = _TOP_LEVEL_KEY.match(lines[start]).group(1).strip()  # type: ignore[union-attr]
                result.source[key] = (file, start + 1)
                result.issues.extend(
                    dataclasses.replace(i, domain=key) for i in _yaml_error(exc, file).issues
                )
                continue
            if isinstance(root, yaml.MappingNode):
                parsed += 1
                _construct_blocks(loader, root, result, blocks)
        finally:
            loader.dispose()
    return parsed > 0


def validate_integration_configs(
    hub_config: HubConfig, schemas: Mapping[str, vol.Schema | None], known_domains: Collection[str],
) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """Validate every integration block: returns (valid configs by domain, new issues).

    Convention: a schema validates the block's value itself, NOT HA's wrapped `{domain: value}`.
    For `demo:` with `scan_interval: 5` under it, the demo schema receives `{"scan_interval": 5}`;
    for a bare `demo:` it receives None (write `vol.Any(None, {...})` or give a default). A domain
    whose schema is None or absent passes its raw value through. Unknown domains and invalid
    blocks are left out of the result and reported; `hub_config.issues` is not repeated.
    """
    valid: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    for domain, value in hub_config.integrations.items():
        file, line = hub_config.source.get(domain, (str(hub_config.config_dir / CONFIG_YAML), None))
        if domain not in known_domains:
            issues.append(ConfigIssue(file, line, f"Integration '{domain}' not found", domain))
            continue
        schema = schemas.get(domain)
        try:
            valid[domain] = value if schema is None else schema(value)
        except vol.Invalid as exc:
            issues.extend(humanize_error(exc, value, domain, file, line))
        except Exception as exc:  # a buggy schema is the plugin's fault; the hub carries on
            _LOGGER.debug("Schema of %s raised", domain, exc_info=True)
            message = f"{domain}: the configuration schema failed ({type(exc).__name__})"
            issues.append(ConfigIssue(file, line, message, domain))
    return valid, issues


DEFAULT_CONFIGURATION = """\
# The hub's configuration, in Home Assistant's configuration.yaml format.
# Check it with `hub check-config -c <this directory>`.

# The core settings (`homeassistant:` is accepted too). Uncomment to change the defaults.
# hub:
#   name: Home
#   latitude: 52.3731
#   longitude: 4.8922
#   elevation: 0
#   unit_system: metric        # or us_customary
#   time_zone: Europe/Amsterdam

# The web UI and the API.
# http:
#   server_port: 8123

# MQTT: an embedded broker on port 1883 (devices need a credential: `hub mqtt user add NAME`)
# and Home Assistant MQTT discovery. To use a broker you already run instead, give its URL;
# keep its password in secrets.yaml (`mqtt_url: mqtt://hub:my-password@192.168.1.5`):
mqtt:
#   broker: !secret mqtt_url
#   embedded_broker:
#     port: 1883
#     tls_port: 8883          # a TLS listener (a self-signed certificate is made on first run)

# Simulated devices to try the hub with. Remove once real devices are set up.
demo:
"""

DEFAULT_SECRETS = """\
# Secrets used in configuration.yaml with `!secret name`, one `name: value` per line.
# The hub never shows them in logs or errors; keep this file out of version control.
"""


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` at once: readers see the old file or the new, never half.

    Writes a temp file in the same directory (same filesystem; its dot-name is skipped by
    !include_dir_*), fsyncs it, sets `mode`, then os.replace()s it over `path`.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    with suppress(OSError):  # make the rename itself durable (POSIX; not possible everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_default_config(config_dir: Path) -> bool:
    """Write a default configuration.yaml (and secrets.yaml) if absent; True if written."""
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    if not (config_dir / SECRETS_YAML).exists():
        atomic_write(config_dir / SECRETS_YAML, DEFAULT_SECRETS, mode=0o600)
    config = config_dir / CONFIG_YAML
    if config.exists():
        return False
    atomic_write(config, DEFAULT_CONFIGURATION)
    _LOGGER.info("Wrote a default configuration to %s", config)
    return True
