"""Solve strategies behind one function: ``solve(model, options) -> SolveReport`` (solution loaded in the model)."""

from __future__ import annotations

from collections.abc import Callable

import pyomo.environ as pyo

from coordinator.solvers.base import SolveOptions, SolveReport, SolverUnavailable
from coordinator.solvers.bnb import solve_fast
from coordinator.solvers.mip import solve_gurobi, solve_scip

STRATEGIES: dict[str, Callable[[pyo.ConcreteModel, SolveOptions], SolveReport]] = {
    "fast": solve_fast,
    "scip": solve_scip,
    "gurobi": solve_gurobi,
}


def solve(model: pyo.ConcreteModel, options: SolveOptions) -> SolveReport:
    try:
        strategy = STRATEGIES[options.solver]
    except KeyError:
        raise SolverUnavailable(f"unknown solver {options.solver!r}; choose one of {sorted(STRATEGIES)}") from None
    return strategy(model, options)


__all__ = ["STRATEGIES", "SolveOptions", "SolveReport", "SolverUnavailable", "solve"]
