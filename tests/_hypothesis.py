"""Hypothesis profiles for the robustness suites, chosen by ``HYPOTHESIS_PROFILE``.

- ``ci`` (the default): few examples, derandomized, so a CI run is fast and
  repeatable: the differential file finishes well under a minute.
- ``soak``: many random examples and long sequences, for a long run by hand
  (``HYPOTHESIS_PROFILE=soak pytest tests/test_differential.py``). The stress and
  fault suites read :data:`SOAK` to run longer too.

Importing this module registers and loads the profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["PROFILE", "SOAK", "scaled"]

_SUPPRESSED = [
    HealthCheck.too_slow,
    HealthCheck.function_scoped_fixture,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
]

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)
settings.register_profile(
    "soak",
    max_examples=3000,
    deadline=None,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

#: Whether the long-running ("soak") profile is selected.
SOAK = PROFILE == "soak"


def scaled(ci: float, soak: float) -> float:
    """``ci`` under the default profile, ``soak`` under the soak profile."""
    return soak if SOAK else ci
