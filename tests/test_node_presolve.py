"""What the branch and bound does around Clarabel: the node presolve, the follower's own pick as the rounding of its
binaries, and the previous plan as a guess solved beside the root.

References: hand-computed optima of a tiny big-M problem; the DC-OPF solved on its own (``solve_follower``); the
``auto`` follower (an independent, proven-exact reformulation) for the plain KKT model; a cold solve of every
horizon for the warm-started ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from coordinator.blocks.dcopf import dcopf_qp
from coordinator.dso_led import Formulation
from coordinator.follower import solve_follower
from coordinator.followers.kkt import kkt_form
from coordinator.parametric import withdrawal_box
from coordinator.pipeline import FastPipeline
from coordinator.solvers.base import SolveOptions
from coordinator.solvers.bnb import branch_and_bound
from coordinator.solvers.conic import ConicProblem
from coordinator.toy import toy_case


def _big_m_problem(x_max: float) -> ConicProblem:
    """Columns [z, mu, s, x]: min x - mu  s.t.  mu <= 10 z,  s <= 5 (1 - z),  x + s = 3,  x <= x_max.

    z = 1: s = 0, x = 3, mu = 10 -> -7 (needs x_max >= 3);  z = 0: mu = 0, s = 3, x = 0 -> 0."""
    a_in = sp.csr_matrix([[-10.0, 1.0, 0.0, 0.0], [5.0, 0.0, 1.0, 0.0]])
    return ConicProblem(P=sp.csc_matrix((4, 4)), q=np.array([0.0, -1.0, 0.0, 1.0]),
                        a_eq=sp.csr_matrix([[0.0, 0.0, 1.0, 1.0]]), b_eq=np.array([3.0]), a_in=a_in,
                        b_in=np.array([0.0, 5.0]), cones=(sp.csr_matrix((0, 4)), np.zeros(0), []),
                        lb=np.array([0.0, 0.0, 0.0, 0.0]), ub=np.array([1.0, 10.0, 5.0, x_max]),
                        integer=np.array([True, False, False, False]))


@pytest.mark.parametrize("z, expected", [(1.0, -7.0), (0.0, 0.0)])
def test_a_fixed_binary_pins_what_it_guards_and_the_node_solves(z: float, expected: float) -> None:
    problem = _big_m_problem(x_max=10.0)
    lb, ub = problem.lb.copy(), problem.ub.copy()
    lb[0] = ub[0] = z
    reduced = problem.reduced(lb, ub)
    assert reduced is not None and reduced.free.sum() < 4  # z and what it pins are out of Clarabel's problem
    got = problem.solve(lb, ub)
    assert got.status == "optimal"
    assert got.objective == pytest.approx(expected, abs=1e-6)
    assert got.x[0] == z


def test_contradicting_fixings_are_infeasible_without_a_solve() -> None:
    problem = _big_m_problem(x_max=2.0)  # z = 1 forces s = 0, hence x = 3 > 2
    lb, ub = problem.lb.copy(), problem.ub.copy()
    lb[0] = ub[0] = 1.0
    assert problem.solve(lb, ub).status == "infeasible"
    assert problem.solver_time_s == 0.0
    report, x = branch_and_bound(problem, SolveOptions(mip_gap=1e-9))
    assert report.status == "optimal" and report.objective == pytest.approx(0.0, abs=1e-6) and x[0] == 0.0


def test_the_kkt_hint_is_the_dcopf_active_set() -> None:
    case = toy_case(periods=1, n_adns=2, fmax=40.0)
    qp = dcopf_qp(case.tn)
    buses = sorted({adn.tn_bus for adn in case.adns})
    demand = case.tn.demand(0)
    form = kkt_form(qp, buses, demand, case.prices.price_cap)
    lo, hi = withdrawal_box(case, 0, 0.0)
    corners = [np.array([lo[n] for n in buses]), np.array([hi[n] for n in buses])]
    for w in (np.zeros(len(buses)), *corners, 0.5 * (corners[0] + corners[1][::-1])):
        sol = solve_follower(qp, qp.b_eq(demand, dict(zip(buses, w, strict=True))))
        slack = qp.b_in - qp.a_in @ sol.x
        local = np.concatenate([sol.x, sol.lam, sol.mu, slack, form.integer_hint(w)])
        assert np.abs(form.eq_w @ w + form.eq_loc @ local - form.eq_b).max() < 1e-6
        assert (form.in_w @ w + form.in_loc @ local - form.in_b).max() < 1e-6  # mu <= M z, s <= M (1 - z)


def test_the_plain_kkt_model_reaches_the_proven_optimum() -> None:
    # one ADN of the default case, a day with every period keeping its KKT binaries: rounding alone picked
    # inconsistent complementarity patterns (no incumbent in 120 s), the DC-OPF's active set closes it at the root
    import dataclasses

    from scenarios.config import build_case, load_scenario

    config = load_scenario("ieee30_5adn")
    case = build_case(dataclasses.replace(config, adns=config.adns[:1]), periods=24)
    options = SolveOptions(solver="fast", mip_gap=1e-3, time_limit=60)
    plain = FastPipeline(case, Formulation(follower="kkt"), options).solve(case, ac_periods=[])
    exact = FastPipeline(case, Formulation(follower="auto"), options).solve(case, ac_periods=[])
    assert plain["status"] == exact["status"] == "optimal"
    assert plain["objective"] == pytest.approx(exact["objective"], rel=1e-3)


def test_a_run_warm_started_from_its_previous_plan_stays_within_the_gap() -> None:
    from scenarios.config import build_case, load_scenario

    options = SolveOptions(solver="fast", mip_gap=1e-4, time_limit=120)
    config = load_scenario("small_2adn")
    cases = [build_case(config, periods=6, start_hour=h) for h in (10.0, 11.0, 12.0, 13.0)]
    warm = FastPipeline(cases[0], Formulation(follower="auto"), options)
    for case in cases:
        got = warm.solve(case)
        cold = FastPipeline(case, Formulation(follower="auto"), SolveOptions(solver="fast", mip_gap=1e-8)).solve(case)
        assert got["status"] == cold["status"] == "optimal"
        assert got["objective"] == pytest.approx(cold["objective"], rel=1e-4)
        assert got["objective"] >= cold["objective"] - 1e-6 * abs(cold["objective"])


@pytest.mark.parametrize("failure, words", [("time_limit", "cut off by the time limit"),
                                            ("error", "failed numerically")])
def test_an_unsolved_child_is_reported_by_its_cause(failure: str, words: str) -> None:
    # columns [z1, z2, x1, x2]: min -x1 - x2  s.t.  2 z1 + 2 z2 <= 3,  x_i <= z_i: the root has z2 = 1/2
    rows = sp.csr_matrix([[2.0, 2.0, 0, 0], [-1.0, 0, 1.0, 0], [0, -1.0, 0, 1.0]])
    problem = ConicProblem(P=sp.csc_matrix((4, 4)), q=np.array([0.0, 0.0, -1.0, -1.0]), a_eq=sp.csr_matrix((0, 4)),
                           b_eq=np.zeros(0), a_in=rows,
                           b_in=np.array([3.0, 0.0, 0.0]), cones=(sp.csr_matrix((0, 4)), np.zeros(0), []),
                           lb=np.zeros(4), ub=np.ones(4), integer=np.array([True, True, False, False]))
    real_solve = problem.solve
    calls = []

    def solve(lb, ub, **kw):  # the root solves, its rounding trial finds nothing, its children fail
        calls.append(1)
        got = real_solve(lb, ub, **kw)
        if len(calls) > 1:
            return dataclasses.replace(got, status="infeasible" if len(calls) == 2 else failure, x=None,
                                       objective=None)
        return got

    problem.solve = solve
    report, _ = branch_and_bound(problem, SolveOptions(mip_gap=1e-9))
    other = "failed numerically" if failure == "time_limit" else "time limit"
    assert words in report.message and other not in report.message
