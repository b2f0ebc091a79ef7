"""Whole-model MISOCP solves through Pyomo: SCIP (default, no licence) and Gurobi (full licence only).

SCIP goes through Pyomo's ``contrib.solver`` SCIP interface; Gurobi through the classic ``gurobi_direct``
because the newer contrib Gurobi interface rejects quadratic constraints.
"""

from __future__ import annotations

import faulthandler
import multiprocessing as mp
import signal
import time

import pyomo.environ as pyo
from pyomo.opt import TerminationCondition as TC

from coordinator.solvers.base import (
    ERROR,
    FEASIBLE,
    INFEASIBLE,
    NO_SOLUTION,
    OPTIMAL,
    SolveOptions,
    SolveReport,
    SolverUnavailable,
)

# SCIP 10.0.2 (PySCIPOpt wheel) crashes ("free(): invalid pointer") or hangs on quadratic constraints when
# symmetry handling is on; tests/test_core_correctness.py (section 7) keeps a regression test for it and
# benchmarks/scip_symmetry.py measures the narrower detectdoublelex = FALSE (docs/performance.md).
SCIP_SAFE_OPTIONS = {"misc/usesymmetry": 0}


def solve_scip(model: pyo.ConcreteModel, options: SolveOptions) -> SolveReport:
    """SCIP in a forked child process, so that a native crash of SCIP (SIGABRT, SIGSEGV) becomes a status and a
    message instead of the end of the program; the solution is sent back and loaded into ``model``. Where fork is
    not available (not Linux/macOS) SCIP runs in this process."""
    if "fork" not in mp.get_all_start_methods():
        return _solve_scip_here(model, options)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    start = time.perf_counter()
    proc = ctx.Process(target=_scip_child, args=(child, model, options), daemon=True)
    proc.start()
    child.close()
    answer = None
    try:
        answer = parent.recv()
    except EOFError:  # the child died without answering: a native crash
        answer = None
    finally:
        proc.join()
    if answer is None:
        code = proc.exitcode
        how = f"signal {-code} ({signal.Signals(-code).name})" if code is not None and code < 0 else f"exit {code}"
        return SolveReport(status=ERROR, termination="crashed", objective=None, bound=None,
                           solve_time_s=time.perf_counter() - start, solver="scip",
                           message=f"SCIP crashed ({how}); no solution. Try --solver fast, or report the case.")
    if isinstance(answer, BaseException):
        raise answer
    report, values = answer
    if values is not None:
        for var, value in zip(model.component_data_objects(pyo.Var), values, strict=True):
            if not var.fixed:
                var.set_value(value, skip_validation=True)
    return report


def _scip_child(conn, model: pyo.ConcreteModel, options: SolveOptions) -> None:
    faulthandler.disable()  # a crash is reported by the parent, not by a dump of every loaded module
    try:
        report = _solve_scip_here(model, options)
        values = [v.value for v in model.component_data_objects(pyo.Var)] if report.has_solution else None
        conn.send((report, values))
    except BaseException as exc:  # an exception (not a crash) is re-raised in the parent
        conn.send(exc)
    finally:
        conn.close()


def _solve_scip_here(model: pyo.ConcreteModel, options: SolveOptions) -> SolveReport:
    from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
    from pyomo.contrib.solver.solvers.scip.scip_direct import ScipDirect

    solver = ScipDirect()
    if not solver.available():
        raise SolverUnavailable("SCIP is not available: pip install pyscipopt")
    solver_options = dict(SCIP_SAFE_OPTIONS)
    if options.threads:
        solver_options["parallel/maxnthreads"] = options.threads
    start = time.perf_counter()
    res = solver.solve(model, tee=options.tee, time_limit=options.time_limit, rel_gap=options.mip_gap,
                       solver_options=solver_options, load_solutions=False,
                       raise_exception_on_nonoptimal_result=False)
    elapsed = time.perf_counter() - start
    tc = res.termination_condition
    has_incumbent = res.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
    if has_incumbent:
        res.solution_loader.load_vars()
    if tc == TerminationCondition.convergenceCriteriaSatisfied and has_incumbent:
        status = OPTIMAL
    elif tc in (TerminationCondition.provenInfeasible, TerminationCondition.locallyInfeasible,
                TerminationCondition.infeasibleOrUnbounded):
        status = INFEASIBLE
    elif has_incumbent:
        status = FEASIBLE
    elif tc in (TerminationCondition.maxTimeLimit, TerminationCondition.iterationLimit,
                TerminationCondition.interrupted):
        status = NO_SOLUTION
    else:
        status = ERROR
    return SolveReport(status=status, termination=tc.name, objective=res.incumbent_objective if has_incumbent else None,
                       bound=res.objective_bound, solve_time_s=elapsed, solver="scip",
                       message=_limit_message(status, options))


GUROBI_SIZE_LIMIT_HINT = (
    "Gurobi refused the model: the pip wheel's free licence is size-limited (about 2,000 variables and "
    "constraints, 200 variables with quadratic constraints). Install a full licence (GRB_LICENSE_FILE) or use "
    "--solver scip / the default strategy."
)


def solve_gurobi(model: pyo.ConcreteModel, options: SolveOptions) -> SolveReport:
    try:
        import gurobipy  # noqa: F401
    except ImportError as exc:
        raise SolverUnavailable("gurobipy is not installed: pip install 'tsodso[gurobi]'") from exc
    solver = pyo.SolverFactory("gurobi_direct")
    solver.options["MIPGap"] = options.mip_gap
    if options.time_limit is not None:
        solver.options["TimeLimit"] = options.time_limit
    if options.threads:
        solver.options["Threads"] = options.threads
    start = time.perf_counter()
    try:
        res = solver.solve(model, tee=options.tee, load_solutions=False)
    except Exception as exc:  # gurobipy.GurobiError has no stable subclass for licence errors
        text = str(exc)
        if "size-limited" in text or "Model too large" in text:
            raise SolverUnavailable(GUROBI_SIZE_LIMIT_HINT) from exc
        raise
    elapsed = time.perf_counter() - start
    tc = res.solver.termination_condition
    grb = solver._solver_model
    has_incumbent = grb.SolCount > 0
    if has_incumbent:
        solver.load_vars()
    if tc == TC.optimal:
        status = OPTIMAL
    elif tc in (TC.infeasible, TC.infeasibleOrUnbounded):
        status = INFEASIBLE
    elif has_incumbent:
        status = FEASIBLE
    elif tc in (TC.maxTimeLimit, TC.maxIterations):
        status = NO_SOLUTION
    else:
        status = ERROR
    bound = grb.ObjBound if grb.IsMIP else (grb.ObjVal if has_incumbent else None)
    return SolveReport(status=status, termination=str(tc), objective=grb.ObjVal if has_incumbent else None,
                       bound=bound, solve_time_s=elapsed, solver="gurobi", message=_limit_message(status, options))


def _limit_message(status: str, options: SolveOptions) -> str:
    if status == FEASIBLE:
        return f"stopped at the limit ({options.time_limit} s); best incumbent loaded"
    if status == NO_SOLUTION:
        return f"no feasible solution found within the limit ({options.time_limit} s)"
    return ""
