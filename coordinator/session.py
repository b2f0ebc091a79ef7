"""Build once, solve many: the entry point the CLI and the mosaik coordinator use.

A ``PlanningSession`` owns one Pyomo model for a fixed structure (ADNs, periods, formulation). Each ``solve``
copies the new data (loads, PV, TN load, measured SoC) into the model's mutable Params and re-solves, so the
model build cost is paid once per run, not once per step.
"""

from __future__ import annotations

import time

from coordinator.case import Case
from coordinator.dso_led import Formulation, build_dso_led, set_case_data
from coordinator.results import collect
from coordinator.solvers import solve
from coordinator.solvers.base import SolveOptions


class PlanningSession:
    def __init__(self, case: Case, formulation: Formulation | None = None, options: SolveOptions | None = None):
        # the exact fast formulation by default; Formulation() alone is the plain KKT reference model
        self.formulation = formulation or Formulation(follower="auto")
        self.options = options or SolveOptions(solver="fast")
        start = time.perf_counter()
        self.model = build_dso_led(case, self.formulation)
        self.build_time_s = time.perf_counter() - start
        self._fresh = True

    def solve(self, case: Case, ac_periods: list[int] | None = None) -> dict:
        """Solve for ``case`` (same structure as the first one) and return the result dict."""
        start = time.perf_counter()
        if not self._fresh:
            if self.formulation.follower == "kkt":
                set_case_data(self.model, case, self.formulation)
            else:  # the affine follower is certified for one case's data: rebuild
                self.model = build_dso_led(case, self.formulation)
        self._fresh = False
        update_time = time.perf_counter() - start
        report = solve(self.model, self.options)
        result = collect(self.model, case, report, self.build_time_s + update_time, ac_periods)
        return result
