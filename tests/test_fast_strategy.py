"""The fast strategy never changes the answer: affine follower vs an independent QP solve, fast vs SCIP."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.blocks.dcopf import dcopf_qp
from coordinator.dso_led import Formulation, build_dso_led
from coordinator.follower import solve_follower
from coordinator.networks import transmission_network
from coordinator.parametric import affine_follower
from coordinator.solvers.base import SolveOptions
from coordinator.solvers.bnb import solve_fast
from coordinator.solvers.mip import solve_scip
from coordinator.toy import toy_case

TIGHT = SolveOptions(mip_gap=1e-7, time_limit=300)


@pytest.mark.parametrize("scale", [0.35, 0.6, 1.0])
def test_affine_follower_equals_independent_dcopf_over_the_box(scale: float) -> None:
    tn = transmission_network(np.array([scale]))
    qp = dcopf_qp(tn)
    lo = {6: -2.0, 7: -1.0, 16: 0.0, 18: 1.0, 25: -3.0}
    hi = {n: v + 3.0 for n, v in lo.items()}
    af = affine_follower(qp, tn.demand(0), lo, hi)
    if af is None:
        pytest.skip(f"no single critical region covers the box at load scale {scale}")
    rng = np.random.default_rng(7)
    for _ in range(20):
        w = {n: rng.uniform(lo[n], hi[n]) for n in lo}
        ref = solve_follower(qp, qp.b_eq(tn.demand(0), w))
        wv = np.array([w[n] for n in af.buses])
        np.testing.assert_allclose(af.x0 + af.S @ wv, ref.x, atol=1e-5)
        np.testing.assert_allclose(af.lam0 + af.L @ wv, ref.lam, atol=1e-6)


def test_affine_follower_refuses_a_box_that_crosses_a_generator_limit() -> None:
    tn = transmission_network(np.array([0.35]))
    qp = dcopf_qp(tn)
    # a 120 MW swing of withdrawals moves the price across several generators' lower limits
    af = affine_follower(qp, tn.demand(0), {6: -60.0}, {6: 60.0})
    assert af is None


@pytest.mark.parametrize("case_args", [dict(periods=4, n_adns=2, fmax=40.0), dict(periods=3, n_adns=2),
                                       dict(periods=2, n_adns=1, price_mode="tariff")])
def test_fast_equals_plain_misocp_solved_by_scip(case_args: dict) -> None:
    case = toy_case(**case_args)
    plain = build_dso_led(case, Formulation(follower="kkt"))
    ref = solve_scip(plain, TIGHT)
    fast_model = build_dso_led(case, Formulation(follower="auto"))
    got = solve_fast(fast_model, TIGHT)
    assert ref.status == "optimal" and got.status == "optimal"
    assert got.objective == pytest.approx(ref.objective, rel=1e-5, abs=1e-6)
    assert got.bound <= got.objective + 1e-9


def test_fast_handles_periods_that_keep_the_kkt_block() -> None:
    case = toy_case(periods=3, n_adns=2, fmax=40.0)
    model = build_dso_led(case, Formulation(follower="kkt"))  # every period has KKT binaries
    got = solve_fast(model, TIGHT)
    ref = solve_scip(build_dso_led(case, Formulation(follower="kkt")), TIGHT)
    assert got.status == "optimal"
    assert got.objective == pytest.approx(ref.objective, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_fast_equals_scip_on_small_2adn() -> None:
    from scenarios.config import build_case, load_scenario

    case = build_case(load_scenario("small_2adn"), periods=2)
    ref = solve_scip(build_dso_led(case, Formulation(follower="kkt")), SolveOptions(mip_gap=1e-6, time_limit=600))
    got = solve_fast(build_dso_led(case, Formulation(follower="auto")), SolveOptions(mip_gap=1e-6))
    assert got.objective == pytest.approx(ref.objective, rel=1e-4)
