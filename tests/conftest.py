"""Settings shared by the whole test suite."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: on a loaded 2-core CI machine
# input generation can be slow and an example can take long, which must not
# fail a run. Example counts stay hypothesis' defaults.
settings.register_profile(
    "puregrpc",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("puregrpc")


@pytest.fixture(autouse=True)
def _heap_unfrozen() -> Iterator[None]:
    """A ``serve`` run in this process (its ``--freeze-heap`` is on by default)
    leaves the suite's heap as it found it: nothing stays frozen past a test."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
