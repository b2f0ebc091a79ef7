"""Pyomo models built with the garbage collector paused.

A Pyomo model makes ~10^5 objects and no garbage worth collecting while it is built; the collector's passes over
them cost as much as the build (the default case's leaders: 1.54 s, 0.73 s paused). Pyomo's own writers pause it
the same way (``PauseGC``), which nests safely.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from pyomo.common.gc_manager import PauseGC

F = TypeVar("F", bound=Callable)


def gc_paused(func: F) -> F:
    """``func`` run under Pyomo's ``PauseGC``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with PauseGC():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
