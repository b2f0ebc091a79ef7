"""The ``fast`` strategy: branch and bound over the binaries with Clarabel solving every node's SOCP.

Why not SCIP: on this model SCIP's time goes into LP relaxations of the cones (root-node stalls of 100k+ simplex
iterations), while an interior-point conic solver solves the same continuous problem in about a second. With the
follower's KKT block replaced by its certified affine map (``Formulation(follower="auto")``) the leaders'
binaries are almost always integral in the relaxation already (simultaneous charge/discharge or buy/sell costs
money), so the root relaxation plus a rounding dive usually closes the gap; best-first branching on the most
fractional binary handles the rest. The bound is the smallest open node's relaxation, so the reported gap is a
proof up to the conic solver's tolerance (1e-8).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyomo.environ as pyo

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
from coordinator.solvers.conic import ConicProblem, ConicSolution, conic_from_pyomo
from coordinator.solvers.repair import HOPS, Repair

INT_TOL = 1e-5
SOS1_REFUSED = ("the fast solver cannot honour SOS1 constraints (Clarabel has no SOS1); use --complementarity "
                "bigm with --solver fast, or --solver scip / gurobi with sos1")


def solve_fast(model: pyo.ConcreteModel, options: SolveOptions) -> SolveReport:
    """Branch and bound on a Pyomo model; the best solution is loaded into the model."""
    if next(model.component_data_objects(pyo.SOSConstraint, active=True), None) is not None:
        raise SolverUnavailable(SOS1_REFUSED)
    form = conic_from_pyomo(model)
    report, x = branch_and_bound(form, options)
    if x is not None:
        form.load(x)
        report.objective = form.sense * report.objective
        report.bound = None if report.bound is None else form.sense * report.bound
    return report


Hint = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # relaxed x -> (integer columns, values to try)


def branch_and_bound(form: ConicProblem, options: SolveOptions, hint: Hint | None = None,
                     guess: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[SolveReport, np.ndarray | None]:
    """Best-first branch and bound over ``form``'s integer columns; returns the report and the best point.

    ``hint`` overrides the rounding of some binaries in each node's trial (the follower's own pick at the relaxed
    point: rounding cannot guess a consistent complementarity pattern). ``guess`` (integer columns, values) is a
    guess of the optimal binaries, e.g. the previous step's plan: it is solved beside the root relaxation, in a
    second thread (Clarabel releases the GIL; ``options.threads == 1`` turns this off), and when it is within the
    gap of the root the solve costs one relaxation's wall time.
    """
    start = time.perf_counter()
    deadline = start + (options.time_limit if options.time_limit is not None else float("inf"))
    ints = np.flatnonzero(form.integer)
    best_x, best_obj = None, np.inf
    counter = itertools.count()

    def report(status: str, objective, bound, message: str) -> tuple[SolveReport, np.ndarray | None]:
        rep = SolveReport(status=status, termination=status, objective=objective, bound=bound,
                          solve_time_s=time.perf_counter() - start, solver="fast (clarabel branch-and-bound)",
                          message=message, solver_time_s=form.solver_time_s)
        return rep, None

    root, warm = _root_and_guess(form, guess if options.threads != 1 else None, deadline)
    if warm is not None and warm.status == "optimal" and _integral(warm.x[ints]):
        best_x, best_obj = warm.x, warm.objective
    if root.status == "infeasible":
        return report(INFEASIBLE, None, None, "the continuous relaxation is infeasible")
    if root.status == "time_limit":
        return report(NO_SOLUTION, None, None, "time limit reached while solving the root relaxation")
    if root.status != "optimal":
        return report(ERROR, None, None, "Clarabel failed on the root relaxation")
    heap = [(root.objective, next(counter), form.lb.copy(), form.ub.copy(), root.x)]
    repair: Repair | None = None  # built at the first trial (a guess that closes the gap needs none)
    nodes = 0
    closed_bound = np.inf  # relaxation values of nodes closed by the gap test: still part of the proven bound
    unsolved = {"error": 0, "time_limit": 0}  # children neither solved nor pruned, by cause
    while heap and time.perf_counter() < deadline:
        bound = heap[0][0]
        if best_x is not None and _gap(best_obj, bound) <= options.mip_gap:
            break
        node_obj, _, lb, ub, x = heapq.heappop(heap)
        if node_obj >= best_obj:
            continue
        nodes += 1
        frac = np.abs(x[ints] - np.round(x[ints]))
        if frac.max(initial=0.0) <= INT_TOL:
            best_x, best_obj = x, node_obj
            continue
        rounded, conflict = _implied_rounding(form, ints, x)
        if hint is not None:
            cols, values = hint(x)
            rounded[np.searchsorted(ints, cols)] = values
        trial_lb, trial_ub = lb.copy(), ub.copy()
        trial_lb[ints] = trial_ub[ints] = np.clip(rounded, lb[ints], ub[ints])
        if repair is None and options.repair_from_columns is not None and form.n >= options.repair_from_columns:
            repair = Repair(form)
        trial = _trial(form, repair, trial_lb, trial_ub, x, node_obj, options.mip_gap, deadline)
        if trial.status == "optimal" and trial.objective < best_obj:
            best_x, best_obj = trial.x, trial.objective
            if _gap(best_obj, node_obj) <= options.mip_gap:
                closed_bound = min(closed_bound, node_obj)
                continue
        free = lb[ints] < ub[ints]
        score = np.where(conflict & free, 2.0 + frac, np.where(free, frac, -1.0))
        k = ints[int(np.argmax(score))]
        for value in (np.round(x[k]), 1 - np.round(x[k])):
            child_lb, child_ub = lb.copy(), ub.copy()
            child_lb[k] = child_ub[k] = value
            child = form.solve(child_lb, child_ub, time_limit=_left(deadline))
            if child.status in ("error", "time_limit"):  # unsolved, not pruned: its parent's bound stays
                closed_bound = min(closed_bound, node_obj)
                unsolved[child.status] += 1
            elif child.status == "optimal" and child.objective < best_obj:
                heapq.heappush(heap, (child.objective, next(counter), child_lb, child_ub, child.x))
    bound = min(heap[0][0] if heap else np.inf, closed_bound, best_obj)
    if best_x is None:
        if not heap and not sum(unsolved.values()):
            return report(INFEASIBLE, None, None, f"no integer-feasible node ({nodes} nodes)")
        if not heap:
            return report(NO_SOLUTION, None, closed_bound, f"{_unsolved(unsolved)}; no incumbent")
        return report(NO_SOLUTION, None, heap[0][0], f"time limit after {nodes} nodes without incumbent")
    x = best_x.copy()
    x[ints] = np.round(x[ints])
    status = OPTIMAL if _gap(best_obj, bound) <= options.mip_gap else FEASIBLE
    message = f"{nodes} nodes" + (f", {_unsolved(unsolved)} (their bound kept)" if sum(unsolved.values()) else "")
    if status == FEASIBLE:
        message += "; stopped at the time limit, best incumbent loaded" if heap else "; gap left by unsolved nodes"
    rep, _ = report(status, best_obj, bound, message)
    return rep, x


def _root_and_guess(form: ConicProblem, guess: tuple[np.ndarray, np.ndarray] | None, deadline: float):
    """The root relaxation and, if given, the guess with its binaries fixed, solved side by side."""
    if guess is None:
        return form.solve(form.lb, form.ub, time_limit=_left(deadline)), None
    cols, values = guess
    lb, ub = form.lb.copy(), form.ub.copy()
    lb[cols] = ub[cols] = np.clip(values, form.lb[cols], form.ub[cols])
    with ThreadPoolExecutor(max_workers=1) as pool:
        warm = pool.submit(form.solve, lb, ub, time_limit=_left(deadline))
        root = form.solve(form.lb, form.ub, time_limit=_left(deadline))
        return root, warm.result()


def _trial(form: ConicProblem, repair: Repair | None, lb: np.ndarray, ub: np.ndarray, x: np.ndarray, node_obj: float,
           gap: float, deadline: float) -> ConicSolution:
    """A node's trial (binaries fixed in ``lb``/``ub``): repairs of the relaxed point ``x`` first, each a small
    solve, then the full trial unless a repair closed the gap at this node; the best point found."""
    best = None
    for hops in HOPS if repair is not None else ():
        local = repair.bounds(x, lb, ub, hops)
        if local is None:
            break
        sol = form.solve(*local, time_limit=_left(deadline))
        if sol.status == "optimal" and (best is None or sol.objective < best.objective):
            best = sol
            if _gap(sol.objective, node_obj) <= gap:
                return sol
    full = form.solve(lb, ub, time_limit=_left(deadline))
    if best is not None and (full.status != "optimal" or full.objective > best.objective):
        return best
    return full


def _unsolved(unsolved: dict[str, int]) -> str:
    parts = [f"{unsolved['error']} nodes failed numerically in Clarabel" if unsolved["error"] else "",
             f"{unsolved['time_limit']} nodes cut off by the time limit" if unsolved["time_limit"] else ""]
    return ", ".join(p for p in parts if p)


def _integral(values: np.ndarray) -> bool:
    return bool(np.abs(values - np.round(values)).max(initial=0.0) <= INT_TOL)


def _implied_rounding(form: ConicProblem, ints: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round each binary to the value its indicator rows need at the relaxed point.

    An interior-point solver leaves a binary that guards nothing (``y <= M z`` with y = 0) at the analytic centre,
    e.g. 0.5, so nearest rounding is meaningless. Instead read, for every binary, the rows it appears in: a row
    with a negative coefficient needs z >= (others - b)/(-a) (z must be 1 when the guarded quantity is positive),
    a row with a positive coefficient needs z <= (b - others)/a (z must be 0 when the other side is active).
    Returns the rounded values and a mask of binaries that both sides need (true conflicts, to branch on).
    """
    lo_row = form.bound_row + form.n_bound_rows
    a = form.A[lo_row:lo_row + form.n_nonneg - form.n_bound_rows].tocsc()
    b = form.b[lo_row:lo_row + a.shape[0]]
    continuous = x.copy()
    continuous[ints] = 0.0  # other binaries adjust with this one: only continuous quantities say what is needed
    full = a @ continuous
    need_one = np.zeros(len(ints), dtype=bool)
    need_zero = np.zeros(len(ints), dtype=bool)
    strength = np.zeros(len(ints))  # how much of its guard a binary's guarded quantity uses
    for pos, k in enumerate(ints):
        rows = a.indices[a.indptr[k]:a.indptr[k + 1]]
        coef = a.data[a.indptr[k]:a.indptr[k + 1]]
        others = full[rows]
        neg, posc = coef < 0, coef > 0
        if neg.any():
            strength[pos] = np.max((others[neg] - b[rows][neg]) / -coef[neg])
            need_one[pos] = strength[pos] > 1e-6
        if posc.any():
            need_zero[pos] = np.min((b[rows][posc] - others[posc]) / coef[posc]) < 1 - 1e-6
    rounded = np.where(need_one & ~need_zero, 1.0, 0.0)
    conflict = need_one & need_zero
    rounded[conflict] = np.round(x[ints][conflict])
    _repair_binary_rows(a, b, ints, rounded, strength, conflict)
    return rounded, conflict


def _repair_binary_rows(a, b: np.ndarray, ints: np.ndarray, rounded: np.ndarray, strength: np.ndarray,
                        conflict: np.ndarray) -> None:
    """Rows among binaries only (``y_sell + y_buy <= 1``) that the rounding violates: keep the binaries whose
    guarded quantity is largest, drop the others to 0, and mark them all as conflicts to branch on."""
    pos_of = {int(k): p for p, k in enumerate(ints)}
    rows = a.tocsr()
    value = np.zeros(a.shape[1])
    value[ints] = rounded
    for r in np.flatnonzero(rows @ value > b + 1e-9):
        cols = rows.indices[rows.indptr[r]:rows.indptr[r + 1]]
        coefs = rows.data[rows.indptr[r]:rows.indptr[r + 1]]
        if not all(int(c) in pos_of for c in cols):
            continue
        members = [(strength[pos_of[int(c)]], pos_of[int(c)], w) for c, w in zip(cols, coefs, strict=True)]
        total = float(coefs @ value[cols])
        for _, p, w in sorted(m for m in members if m[2] > 0 and rounded[m[1]] == 1.0):
            if total <= b[r] + 1e-9:
                break
            rounded[p] = 0.0
            total -= w
        for _, p, _ in members:
            conflict[p] = True


def _left(deadline: float) -> float | None:
    """Seconds left for one conic solve, so a single slow node cannot overrun the limit."""
    return None if deadline == float("inf") else max(deadline - time.perf_counter(), 0.1)


def _gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(abs(objective), 1e-9)
