"""The HTTP tests' fixtures (a real hub with the demo devices and the HTTP API on an ephemeral
port, users of every role with long-lived tokens), shared with the compatibility tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "_compat_http_fixtures", Path(__file__).parent.parent / "hub" / "http" / "conftest.py"
)
assert _SPEC is not None and _SPEC.loader is not None
_http = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = _http  # dataclasses look their module up there
_SPEC.loader.exec_module(_http)

Api = _http.Api
start_api = _http.start_api
api = _http.api
