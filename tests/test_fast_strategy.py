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
    ref = solve_scip(build_dso_led(case, Formulation(follower="kkt")).model, TIGHT)
    got = solve_fast(build_dso_led(case, Formulation(follower="auto")).model, TIGHT)
    assert ref.status == "optimal" and got.status == "optimal"
    assert got.objective == pytest.approx(ref.objective, rel=1e-5, abs=1e-6)
    assert got.bound <= got.objective + 1e-9


def test_fast_handles_periods_that_keep_the_kkt_block() -> None:
    case = toy_case(periods=3, n_adns=2, fmax=40.0)
    built = build_dso_led(case, Formulation(follower="kkt"))  # every period has KKT binaries
    assert built.periods("kkt") == list(range(case.periods))
    got = solve_fast(built.model, TIGHT)
    ref = solve_scip(build_dso_led(case, Formulation(follower="kkt")).model, TIGHT)
    assert got.status == "optimal"
    assert got.objective == pytest.approx(ref.objective, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_fast_equals_scip_on_small_2adn() -> None:
    from scenarios.config import build_case, load_scenario

    case = build_case(load_scenario("small_2adn"), periods=2)
    ref = solve_scip(build_dso_led(case, Formulation(follower="kkt")).model, SolveOptions(mip_gap=1e-6, time_limit=600))
    got = solve_fast(build_dso_led(case, Formulation(follower="auto")).model, SolveOptions(mip_gap=1e-6))
    assert got.objective == pytest.approx(ref.objective, rel=1e-4)


@pytest.mark.parametrize("args", [dict(periods=4, n_adns=2, fmax=55.0), dict(periods=4, n_adns=3, fmax=60.0)])
def test_region_disjunction_equals_plain_misocp(args: dict) -> None:
    case = toy_case(**args)
    auto = build_dso_led(case, Formulation(follower="auto"))
    assert auto.periods("hull"), "the case must exercise the convex-hull disjunction"
    got = solve_fast(auto.model, TIGHT)
    ref = solve_scip(build_dso_led(case, Formulation(follower="kkt")).model, TIGHT)
    same_model_scip = solve_scip(build_dso_led(case, Formulation(follower="auto")).model, TIGHT)
    assert got.objective == pytest.approx(ref.objective, rel=1e-5, abs=1e-6)
    assert same_model_scip.objective == pytest.approx(ref.objective, rel=1e-5, abs=1e-6)


def test_explored_regions_reproduce_the_dcopf_across_a_generator_limit() -> None:
    from coordinator.parametric import explore_regions

    tn = transmission_network(np.array([0.35]))
    qp = dcopf_qp(tn)
    lo, hi = {6: -25.0, 18: -5.0}, {6: 25.0, 18: 10.0}
    regions = explore_regions(qp, tn.demand(0), lo, hi)
    assert regions is not None and len(regions) >= 2
    rng = np.random.default_rng(3)
    for _ in range(30):
        w = np.array([rng.uniform(lo[n], hi[n]) for n in regions[0].buses])
        ref = solve_follower(qp, qp.b_eq(tn.demand(0), dict(zip(regions[0].buses, w, strict=True))))
        inside = [r for r in regions if np.all(r.cut0 + r.cuts @ w >= -1e-9)]
        assert inside, f"no region contains {w}"
        for r in inside:
            np.testing.assert_allclose((r.x0 + r.S @ w)[qp.gen_col], ref.x[qp.gen_col], atol=1e-4)
            np.testing.assert_allclose((r.lam0 + r.L @ w)[list(qp.balance_row.values())],
                                       ref.lam[list(qp.balance_row.values())], atol=1e-5)


def test_default_case_day_is_exact_and_kkt_free() -> None:
    """The legacy default, 5 ADNs x 24 h without congestion: every period eliminated exactly, solved to the gap."""
    from coordinator.results import collect
    from scenarios.config import build_case, load_scenario

    case = build_case(load_scenario("ieee30_5adn_legacy"), periods=24, start_hour=5)
    model = build_dso_led(case, Formulation(follower="auto"))
    assert len(model.periods("affine")) + len(model.periods("hull")) == 24
    report = solve_fast(model.model, SolveOptions(mip_gap=1e-3, time_limit=600))
    assert report.status == "optimal" and report.gap <= 1e-3
    result = collect(model, case, report, 0.0, ac_periods=[0, 12])
    assert result["checks"]["soc_gap_max"] < 1e-4
    assert result["checks"]["follower_cost_rel_gap"] < 1e-6
    assert result["checks"]["ac_voltage_error_max_pu"] < 1e-3


def _reverse_flow_case():
    """Strong PV on a weak feeder with Vmax 1.05 and a high curtailment price: the textbook inexact relaxation."""
    import dataclasses

    from coordinator.case import Branch

    case = toy_case(periods=1, n_adns=1)
    adn = case.adns[0]
    adn.branches = [Branch(b.i, b.j, 5 * b.r, 5 * b.x) for b in adn.branches]
    adn.pv_peak = [4 * p for p in adn.pv_peak]
    adn.pv_avail = 4 * adn.pv_avail
    adn.vmax = 1.05
    case.prices = dataclasses.replace(case.prices, c_curt=20.0)
    return case


@pytest.mark.parametrize("cuts", [False, True])
def test_voltage_cuts_make_an_inexact_relaxation_exact(cuts: bool) -> None:
    from coordinator.results import collect

    case = _reverse_flow_case()
    model = build_dso_led(case, Formulation(follower="auto", voltage_cuts=cuts))
    report = solve_fast(model.model, TIGHT)
    checks = collect(model, case, report, 0.0)["checks"]
    if cuts:  # exact: cones tight and pandapower's AC voltages equal the optimiser's
        assert checks["soc_gap_max"] < 1e-5 and checks["ac_voltage_error_max_pu"] < 1e-6
    else:  # the plain relaxation absorbs reactive power in fictitious losses: detected by both checks
        assert checks["soc_gap_max"] > 0.5 and checks["ac_voltage_error_max_pu"] > 5e-3
