"""Helpers shared by the test suites."""

from __future__ import annotations

import os

import pytest


def missing_part(reason: str) -> None:
    """A part of the machine a test needs is missing (Chromium, Mosquitto, node, chattr...):
    skip with the reason, except under CI, where every part must be there and its absence is a
    failure."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set: in CI a missing part is a failure)", pytrace=False)
    pytest.skip(reason)
