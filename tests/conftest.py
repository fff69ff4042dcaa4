"""Settings shared by the whole test suite."""

from __future__ import annotations

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
