"""Build once, solve many: the entry point the CLI, the study and the mosaik coordinator use.

A ``PlanningSession`` owns one model for a fixed structure (ADNs, periods, formulation). With the default ``fast``
solver it is the model pipeline (``coordinator.pipeline``): leaders compiled once, data and follower forms updated
per solve, critical regions kept across solves. With ``scip``/``gurobi`` it is the Pyomo model of
``coordinator.dso_led`` (a ``coordinator.model.PyomoModel``, ``self.built``), whose data are refreshed in place
(rebuilt when the follower is ``auto``, whose forms depend on the data).
"""

from __future__ import annotations

import time

from coordinator.case import Case
from coordinator.dso_led import Formulation, build_dso_led, set_case_data
from coordinator.model import PyomoModel
from coordinator.pipeline import FastPipeline
from coordinator.results import collect
from coordinator.solvers import solve
from coordinator.solvers.base import SolveOptions, default_options


class PlanningSession:
    def __init__(self, case: Case, formulation: Formulation | None = None, options: SolveOptions | None = None,
                 load_peaks: list | None = None):
        """``load_peaks`` per ADN (MW per bus): the largest loads the session will see, e.g. over a whole run, so
        that the fast pipeline sizes its big-M once."""
        # the exact fast formulation by default; Formulation() alone is the plain KKT reference model
        self.formulation = formulation or Formulation(follower="auto")
        self.options = options or default_options()
        start = time.perf_counter()
        self.pipeline = (FastPipeline(case, self.formulation, self.options, load_peaks)
                         if self.options.solver == "fast" else None)
        self.built: PyomoModel | None = None if self.pipeline else build_dso_led(case, self.formulation)
        self.build_time_s = time.perf_counter() - start
        self._fresh = True

    def solve(self, case: Case, ac_periods: list[int] | None = None) -> dict:
        """Solve for ``case`` (same structure as the first one) and return the result dict."""
        if self.pipeline is not None:
            fresh, self._fresh = self._fresh, False
            result = self.pipeline.solve(case, ac_periods)
            result["model_time_s"] = (self.build_time_s if fresh else 0.0) + result["build_time_s"]
            result["build_time_s"] += self.build_time_s  # cumulative, as for the Pyomo path
            return result
        start = time.perf_counter()
        fresh, self._fresh = self._fresh, False
        if not fresh:
            if self.formulation.follower == "kkt":
                set_case_data(self.built.model, case, self.formulation)
            else:  # the follower forms depend on the data: rebuild
                self.built = build_dso_led(case, self.formulation)
        update_time = time.perf_counter() - start
        report = solve(self.built.model, self.options)
        result = collect(self.built, case, report, self.build_time_s + update_time, ac_periods)
        result["model_time_s"] = self.build_time_s + update_time if fresh else update_time
        return result
