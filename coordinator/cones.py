"""The one cone type of the model: ``sum y^2 <= a * b`` with ``a, b >= 0`` (a rotated second-order cone).

Blocks publish the cones they add as ``RotatedCone`` entries of their ``cones`` list; conic back-ends read them
from there instead of parsing quadratic expressions, and model-size reports count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo


@dataclass(frozen=True)
class RotatedCone:
    constraint: Any  # the Pyomo constraint stating the cone (MIP back-ends solve it as a quadratic constraint)
    ys: tuple  # Pyomo variables y
    a: Any  # Pyomo variable a (may be fixed)
    b: Any  # Pyomo variable b (may be fixed)


def registered_cones(model: pyo.Block) -> list[RotatedCone]:
    """Every cone published by an active block of ``model``."""
    out: list[RotatedCone] = []
    for blk in model.block_data_objects(active=True):
        for cone in getattr(blk, "cones", None) or []:
            if not isinstance(cone, RotatedCone):
                raise TypeError(f"{blk.name}.cones holds {type(cone).__name__}, expected RotatedCone")
            out.append(cone)
    return out
