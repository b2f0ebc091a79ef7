"""Time-varying case data as fixed Pyomo variables ("data variables").

A fixed variable is a constant to every solver, like a mutable Param, but a compiler can also unfix it and read
its coefficients: that is how ``coordinator.pipeline`` learns, once per model structure, how the data enter each
row (``b = b0 - A_data @ theta``), so that a new step only changes data vectors, never the matrices.
"""

from __future__ import annotations

import pyomo.environ as pyo


def add_data(b: pyo.Block, name: str, *index) -> pyo.Var:
    """A data variable indexed like a Param (all fixed at 0 until set)."""
    var = pyo.Var(*index, dense=True, initialize=0.0)
    var._tsodso_data = True  # marks the component for data_variables (Pyomo has no tag of its own for this)
    b.add_component(name, var)
    var.fix()
    return var


def data_variables(model: pyo.Block) -> list:
    """Every data variable of ``model`` (the components made by :func:`add_data`), in construction order."""
    out = []
    for var in model.component_objects(pyo.Var, active=True, descend_into=True):
        if getattr(var, "_tsodso_data", False):
            out.extend(var.values())
    return out
