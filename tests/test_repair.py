"""The repair trial of the branch and bound (``coordinator/solvers/repair.py``) and the presolve's constant cones.

References: hand-computed points and optima of tiny problems; brute-force enumeration of every binary assignment
(each a continuous problem) for random small MISOCPs; the full trial's optimum on the default case.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from coordinator.solvers.base import SolveOptions
from coordinator.solvers.bnb import branch_and_bound
from coordinator.solvers.conic import ConicProblem, rotated_cones
from coordinator.solvers.repair import Repair


def _problem(q, a_eq, b_eq, a_in, b_in, cones, lb, ub, integer, P=None) -> ConicProblem:
    n = len(q)
    return ConicProblem(P=sp.csc_matrix((n, n)) if P is None else P, q=np.asarray(q, float),
                        a_eq=sp.csr_matrix(a_eq, shape=(len(b_eq), n)), b_eq=np.asarray(b_eq, float),
                        a_in=sp.csr_matrix(a_in, shape=(len(b_in), n)), b_in=np.asarray(b_in, float), cones=cones,
                        lb=np.asarray(lb, float), ub=np.asarray(ub, float), integer=np.asarray(integer, bool))


def _cone(n: int, y: int, a: int, b: int):
    """``x_y^2 <= x_a * x_b``."""
    return rotated_cones(n, [([({y: 1.0}, 0.0)], ({a: 1.0}, 0.0), ({b: 1.0}, 0.0))])


def test_a_cone_whose_columns_are_all_fixed_is_checked_and_dropped() -> None:
    # columns [y, a, b, t]: min t  s.t.  y^2 <= a b,  t >= y - 1
    problem = _problem([0, 0, 0, 1], np.zeros((0, 4)), [], [[1, 0, 0, -1]], [1.0], _cone(4, 0, 1, 2),
                       [-5, 0, 0, -10], [5, 5, 5, 10], [False] * 4)
    lb, ub = problem.lb.copy(), problem.ub.copy()
    lb[:3] = ub[:3] = [2.0, 1.0, 4.0]  # 4 <= 4: on the cone's boundary, a point with no interior
    reduced = problem.reduced(lb, ub)
    assert reduced is not None and reduced.soc_dims == [] and reduced.A.shape[1] == 1
    got = problem.solve(lb, ub)
    assert got.status == "optimal" and got.objective == pytest.approx(1.0, abs=1e-7)
    lb[:3] = ub[:3] = [2.0, 1.0, 3.0]  # 4 > 3: outside the cone
    assert problem.reduced(lb, ub) is None and problem.solve(lb, ub).status == "infeasible"


def test_the_repair_frees_the_violated_rows_and_their_neighbours_only() -> None:
    # columns [z, y, g, u, v]: y <= 4 z (violated once z is rounded to 0), y + g = 3 (its neighbour), and an
    # unrelated row u + v = 2 that the rounding leaves intact
    problem = _problem([0, 0, 1, 0, 0], [[0, 1, 1, 0, 0], [0, 0, 0, 1, 1]], [3, 2], [[-4, 1, 0, 0, 0]], [0],
                       (sp.csr_matrix((0, 5)), np.zeros(0), []), [0] * 5, [1, 4, 5, 2, 2], [True] + [False] * 4)
    x = np.array([0.5, 2.0, 1.0, 1.2, 0.8])
    lb, ub = problem.lb.copy(), problem.ub.copy()
    lb[0] = ub[0] = 0.0
    repair = Repair(problem)
    bad = repair.violated(np.clip(x, lb, ub))
    assert bad.tolist() == [False, False, True]  # rows in order: equalities, then inequalities
    local_lb, local_ub = repair.bounds(x, lb, ub, hops=0)
    assert (local_lb < local_ub).tolist() == [False, True, False, False, False]  # only y is free
    local_lb, local_ub = repair.bounds(x, lb, ub, hops=1)
    assert (local_lb < local_ub).tolist() == [False, True, True, False, False]  # y and g: u, v stay at x
    assert local_lb[3] == local_ub[3] == 1.2
    got = problem.solve(local_lb, local_ub)
    assert got.status == "optimal" and got.objective == pytest.approx(3.0, abs=1e-7)  # y = 0, g = 3
    assert repair.bounds(np.array([0.0, 0.0, 3.0, 1.2, 0.8]), lb, ub, hops=1) is None  # nothing violated


def _facilities(rng: np.random.Generator, n_bin: int) -> ConicProblem:
    """Facilities z_i guard supplies y_i <= cap_i z_i, at most two open (a row among binaries only, so rounding
    the relaxation conflicts), demand met from supplies and a costly slack g, a cone on the supply's miss."""
    cap = rng.uniform(2.0, 6.0, n_bin)
    fixed_cost, unit_cost = rng.uniform(1.0, 4.0, n_bin), rng.uniform(0.5, 2.0, n_bin)
    # columns: z (n_bin), y (n_bin), g, s, t  with  s = sum y,  (s - d)^2 <= t
    n = 2 * n_bin + 3
    zi, yi, g, s, t = np.arange(n_bin), n_bin + np.arange(n_bin), 2 * n_bin, 2 * n_bin + 1, 2 * n_bin + 2
    a_in, b_in = [], []
    for i in range(n_bin):
        row = np.zeros(n)
        row[yi[i]], row[zi[i]] = 1.0, -cap[i]
        a_in.append(row), b_in.append(0.0)
    row = np.zeros(n)
    row[zi] = 1.0
    a_in.append(row), b_in.append(2.0)
    demand = 0.7 * np.sort(cap)[-2:].sum()
    a_eq = np.zeros((2, n))
    a_eq[0, yi], a_eq[0, g] = 1.0, 1.0  # sum y + g = demand
    a_eq[1, yi], a_eq[1, s] = 1.0, -1.0  # s = sum y
    q = np.concatenate([fixed_cost, unit_cost, [10.0, 0.0, 1.0]])
    cones = rotated_cones(n, [([({s: 1.0}, -demand)], ({t: 1.0}, 0.0), ({}, 1.0))])
    lb = np.concatenate([np.zeros(2 * n_bin), [0.0, -50.0, 0.0]])
    ub = np.concatenate([np.ones(n_bin), cap, [demand, 50.0, 1e3]])
    return _problem(q, a_eq, [demand, 0.0], np.array(a_in), b_in, cones, lb, ub, np.arange(n) < n_bin)


def _side_by_side(parts: list[ConicProblem]) -> ConicProblem:
    """Independent problems as one (block-diagonal), like ADNs that share nothing: its optimum is their sum."""
    P = sp.block_diag([p.P for p in parts], format="csc")
    cones = (sp.block_diag([p.A[p.n_eq + p.n_nonneg:] for p in parts], format="csr"),
             np.concatenate([p.b[p.n_eq + p.n_nonneg:] for p in parts]), sum((p.soc_dims for p in parts), []))
    a_in = sp.block_diag([p.A[p.bound_row + p.n_bound_rows:p.n_eq + p.n_nonneg] for p in parts])
    return ConicProblem(P=P + P.T - sp.diags(P.diagonal()), q=np.concatenate([p.q for p in parts]),
                        a_eq=sp.block_diag([p.A[:p.n_eq] for p in parts]),
                        b_eq=np.concatenate([p.b[:p.n_eq] for p in parts]), a_in=a_in,
                        b_in=np.concatenate([p.b[p.bound_row + p.n_bound_rows:p.n_eq + p.n_nonneg] for p in parts]),
                        cones=cones, lb=np.concatenate([p.lb for p in parts]),
                        ub=np.concatenate([p.ub for p in parts]),
                        integer=np.concatenate([p.integer for p in parts]))


def _enumerated(problem: ConicProblem) -> float:
    ints = np.flatnonzero(problem.integer)
    best = np.inf
    for values in itertools.product((0.0, 1.0), repeat=len(ints)):
        lb, ub = problem.lb.copy(), problem.ub.copy()
        lb[ints] = ub[ints] = values
        got = problem.solve(lb, ub)
        if got.status == "optimal":
            best = min(best, got.objective)
    return best


def test_branch_and_bound_with_repairs_finds_the_enumerated_optima(monkeypatch) -> None:
    repaired: list[bool] = []
    real = Repair.bounds

    def bounds(self, *args, **kw):
        got = real(self, *args, **kw)
        repaired.append(got is not None)
        return got

    monkeypatch.setattr(Repair, "bounds", bounds)
    used = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        parts = [_facilities(rng, n_bin=4) for _ in range(4)]
        problem = _side_by_side(parts)
        repaired.clear()
        report, x = branch_and_bound(problem, SolveOptions(mip_gap=1e-6, repair_from_columns=0))
        used += any(repaired)  # the relaxed point broke rows somewhere and a neighbourhood was re-solved
        assert report.status == "optimal"
        assert report.objective == pytest.approx(sum(_enumerated(p) for p in parts), rel=1e-6, abs=1e-6)
        _assert_feasible(problem, x)
    assert used >= 3


def _assert_feasible(problem: ConicProblem, x: np.ndarray) -> None:
    """Rows, bounds, cones and integrality checked here, not by the solver."""
    ints = np.flatnonzero(problem.integer)
    assert np.all(x[ints] == np.round(x[ints]))
    s = problem.b - problem.A @ x
    s[problem.bound_row:problem.bound_row + problem.n_bound_rows] = 0.0  # bounds checked below
    assert np.abs(s[:problem.n_eq]).max() < 1e-6
    assert s[problem.n_eq:problem.n_eq + problem.n_nonneg].min() > -1e-6
    start = problem.n_eq + problem.n_nonneg
    for d in problem.soc_dims:
        assert s[start] >= np.linalg.norm(s[start + 1:start + d]) - 1e-6
        start += d
    assert np.all(x >= problem.lb - 1e-7) and np.all(x <= problem.ub + 1e-7)


def test_small_problems_keep_the_full_trial_by_default(monkeypatch) -> None:
    # the repaired point keeps the root's interior-point values (DistFlow cones up to ~1 % slack on lightly loaded
    # branches), so only problems where the full trial is expensive use it unless asked
    calls = []
    monkeypatch.setattr(Repair, "bounds", lambda self, *a, **k: calls.append(1))
    problem = _side_by_side([_facilities(np.random.default_rng(0), n_bin=4) for _ in range(4)])
    report, _ = branch_and_bound(problem, SolveOptions(mip_gap=1e-6))
    assert report.status == "optimal" and not calls
    assert SolveOptions().repair_from_columns > problem.n
