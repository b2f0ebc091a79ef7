"""The one small interface every solve strategy implements: Pyomo model in, solution loaded + report out."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# status values, in the order a user cares about them
OPTIMAL = "optimal"  # proven within the requested gap
FEASIBLE = "feasible"  # a limit was hit; the best incumbent is loaded, gap says how good it is
INFEASIBLE = "infeasible"
NO_SOLUTION = "no_solution"  # a limit was hit before any incumbent was found
ERROR = "error"


class SolverUnavailable(RuntimeError):
    """The requested solver cannot run here (not installed, or its licence refuses the model)."""


@dataclass
class SolveOptions:
    solver: str = "scip"
    time_limit: float | None = None  # seconds
    mip_gap: float = 1e-4  # relative
    threads: int | None = None
    tee: bool = False
    # fast solver: problems of at least this many columns try repairs of the relaxed point before a node's full
    # trial (coordinator/solvers/repair.py); None: never
    repair_from_columns: int | None = 100_000


# The solve defaults of every command (solve, run, study, sweep), defined once.
DEFAULT_SOLVER = "fast"
DEFAULT_TIME_LIMIT = 120.0  # s per solve; the best incumbent is kept when it is hit
DEFAULT_MIP_GAP = 1e-3


def chosen_solver(command_line: str | None, scenario: str | None) -> str:
    """The solver a run uses: ``--solver``, else the scenario's ``coordinator.solver``, else the default."""
    return command_line or scenario or DEFAULT_SOLVER


def default_options(**overrides) -> SolveOptions:
    return SolveOptions(**{"solver": DEFAULT_SOLVER, "time_limit": DEFAULT_TIME_LIMIT, "mip_gap": DEFAULT_MIP_GAP,
                           **overrides})


@dataclass
class SolveReport:
    status: str
    termination: str
    objective: float | None
    bound: float | None
    solve_time_s: float
    solver: str
    message: str = ""
    solver_time_s: float | None = None  # time inside the solver library's calls only (summed over B&B nodes)

    @property
    def has_solution(self) -> bool:
        return self.status in (OPTIMAL, FEASIBLE)

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["gap"] = self.gap
        return out


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|obj - bound| / max(|obj|, 1e-9), the convention of SCIP and Gurobi (``None`` if either is missing)."""
    if objective is None or bound is None or not (math.isfinite(objective) and math.isfinite(bound)):
        return None
    return abs(objective - bound) / max(abs(objective), 1e-9)
