"""freeze_heap: the startup heap leaves the full GC passes; later cycles are still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from puregrpc.server import freeze_heap


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


def _cycle() -> _Node:
    a, b = _Node(), _Node()
    a.peer, b.peer = b, a
    return a


@pytest.fixture
def unfrozen_after() -> Iterator[None]:
    # The suite's process must not keep what a test froze; no automatic
    # pass may collect a test's garbage before freeze_heap's own does.
    gc.unfreeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.unfreeze()


def test_what_is_alive_leaves_the_generations(unfrozen_after: None) -> None:
    kept = _cycle()
    tracked_before = len(gc.get_objects())
    frozen = freeze_heap()
    assert frozen.objects == gc.get_freeze_count() >= tracked_before // 2
    assert frozen.seconds >= 0
    # A full pass now walks only what was made after the freeze.
    assert len(gc.get_objects()) < tracked_before // 10
    assert not any(obj is kept for obj in gc.get_objects())


def test_garbage_before_the_freeze_is_collected_not_frozen(unfrozen_after: None) -> None:
    doomed = _cycle()
    gone = weakref.ref(doomed)
    del doomed
    frozen = freeze_heap()
    assert gone() is None and frozen.collected >= 2


def test_cycles_made_after_the_freeze_are_still_collected(unfrozen_after: None) -> None:
    frozen = freeze_heap()
    assert frozen.objects > 0
    later = _cycle()
    assert any(obj is later for obj in gc.get_objects())  # tracked, not frozen
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None


def test_frozen_objects_are_still_freed_by_reference_counting(unfrozen_after: None) -> None:
    plain = _Node()
    gone = weakref.ref(plain)
    freeze_heap()
    assert not any(obj is plain for obj in gc.get_objects())  # frozen
    del plain
    assert gone() is None
