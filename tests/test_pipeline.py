"""The model pipeline (leaders compiled once, follower forms per solve, one conic problem) never changes the answer.

References: the plain single-level MISOCP (KKT follower in Pyomo) solved by SCIP, an independent solver; a fresh
build for every data set (the pipeline re-uses one build); a fresh critical-region exploration (the cache
re-certifies known regions).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coordinator.blocks.dcopf import dcopf_qp
from coordinator.dso_led import Formulation, build_dso_led
from coordinator.parametric import RegionCache, explore_regions, withdrawal_box
from coordinator.pipeline import FastPipeline
from coordinator.session import PlanningSession
from coordinator.solvers.base import SolveOptions, SolverUnavailable
from coordinator.solvers.bnb import solve_fast
from coordinator.solvers.mip import solve_scip
from coordinator.toy import toy_case

TIGHT = SolveOptions(solver="fast", mip_gap=1e-7, time_limit=300)


def scip_reference(case):
    model = build_dso_led(case, Formulation(follower="kkt")).model
    report = solve_scip(model, SolveOptions(mip_gap=1e-9, time_limit=300))
    assert report.status == "optimal"
    return model, report


@pytest.mark.parametrize("follower", ["auto", "kkt"])
@pytest.mark.parametrize("kw", [dict(periods=4, n_adns=2, fmax=40.0), dict(periods=4, n_adns=3, fmax=60.0),
                                dict(periods=2, n_adns=1, price_mode="tariff")])
def test_pipeline_equals_plain_misocp_solved_by_scip(kw: dict, follower: str) -> None:
    case = toy_case(**kw)
    model, ref = scip_reference(case)
    got = FastPipeline(case, Formulation(follower=follower), TIGHT).solve(case)
    assert got["status"] == "optimal"
    assert got["objective"] == pytest.approx(ref.objective, rel=1e-6, abs=1e-6)
    # the PCC schedule is what the TN sees: it must be the one SCIP found (unique here up to solver accuracy)
    for a, adn in enumerate(got["adns"]):
        scip_pcc = [model.adn[a].net.pcc_p[t].value for t in model.T]
        np.testing.assert_allclose(adn["pcc_mw"], scip_pcc, atol=2e-4)
    assert got["checks"]["follower_cost_rel_gap"] < 1e-6


def test_the_run_exercises_every_follower_form() -> None:
    forms = set()
    for kw, follower in ((dict(periods=4, n_adns=3, fmax=60.0), "auto"), (dict(periods=2, n_adns=2), "kkt")):
        case = toy_case(**kw)
        info = FastPipeline(case, Formulation(follower=follower), TIGHT).solve(case)["formulation"]
        forms |= {kind for kind in ("affine", "region", "kkt") if info[f"{kind}_periods"]}
    assert forms == {"affine", "region", "kkt"}


def _shifted(case, factor: float, soc: float):
    """Same structure, other data: loads and PV scaled, other initial SoC, other TN load."""
    adns = [dataclasses.replace(adn, load_p=adn.load_p * factor, load_q=adn.load_q * factor,
                                pv_avail=adn.pv_avail * (2 - factor),
                                bess=[dataclasses.replace(b, e0=b.emin + soc * (b.emax - b.emin)) for b in adn.bess])
            for adn in case.adns]
    tn = dataclasses.replace(case.tn, load_scale=case.tn.load_scale * (0.9 + 0.1 * factor))
    return dataclasses.replace(case, adns=adns, tn=tn)


@pytest.mark.parametrize("follower", ["auto", "kkt"])
def test_one_build_updated_in_place_equals_a_fresh_build(follower: str) -> None:
    base = toy_case(periods=4, n_adns=2, fmax=40.0)
    session = PlanningSession(base, Formulation(follower=follower), TIGHT)
    session.solve(base)
    for factor, soc in ((0.95, 0.2), (0.8, 0.7)):
        case = _shifted(base, factor, soc)
        reused = session.solve(case)
        fresh = FastPipeline(case, Formulation(follower=follower), TIGHT).solve(case)
        _, ref = scip_reference(case)
        assert reused["status"] == fresh["status"] == "optimal"
        assert reused["objective"] == pytest.approx(fresh["objective"], rel=1e-7, abs=1e-7)
        assert reused["objective"] == pytest.approx(ref.objective, rel=1e-6, abs=1e-6)


def test_a_load_above_the_build_peak_rebuilds_the_big_m() -> None:
    base = toy_case(periods=3, n_adns=2)
    session = PlanningSession(base, Formulation(follower="auto"), TIGHT)
    session.solve(base)
    heavy = _shifted(base, 1.6, 0.5)  # loads 60 % above the build case's peak
    got = session.solve(heavy)
    peaks = session.pipeline.built.leaders.load_peaks
    assert all(np.all(p >= adn.load_p.max(axis=0) - 1e-12) for p, adn in zip(peaks, heavy.adns, strict=True))
    _, ref = scip_reference(heavy)
    assert got["objective"] == pytest.approx(ref.objective, rel=1e-6, abs=1e-6)
    rebuilt = session.pipeline.built.leaders
    heavier = _shifted(base, 1.75, 0.5)  # a little more, as a receding horizon brings: within the headroom
    got = session.solve(heavier)
    assert session.pipeline.built.leaders is rebuilt
    _, ref = scip_reference(heavier)
    assert got["objective"] == pytest.approx(ref.objective, rel=1e-6, abs=1e-6)


def test_region_cache_recertifies_to_the_fresh_exploration() -> None:
    case = toy_case(periods=4, n_adns=3, fmax=60.0)
    qp = dcopf_qp(case.tn)
    cache = RegionCache(qp)
    for t in range(case.periods):  # warm the cache with other periods' data
        cache.explore(case.tn.demand(t), *withdrawal_box(case, t, 0.15))
    other = _shifted(case, 0.9, 0.5)
    for t in range(case.periods):
        lo, hi = withdrawal_box(other, t, 0.15)
        cached = cache.explore(other.tn.demand(t), lo, hi)
        fresh = explore_regions(qp, other.tn.demand(t), lo, hi)
        assert (cached is None) == (fresh is None)
        if fresh is None:
            continue
        by_set = {frozenset(r.active): r for r in fresh}
        assert {frozenset(r.active) for r in cached} == set(by_set)
        for r in cached:
            np.testing.assert_allclose(r.x0, by_set[frozenset(r.active)].x0, atol=1e-9)
            np.testing.assert_allclose(r.cut0, by_set[frozenset(r.active)].cut0, atol=1e-9)


def test_fast_refuses_sos1_instead_of_dropping_it() -> None:
    case = toy_case(periods=2, n_adns=1)
    with pytest.raises(SolverUnavailable, match="SOS1"):
        PlanningSession(case, Formulation(complementarity="sos1"), TIGHT)
    with pytest.raises(SolverUnavailable, match="SOS1"):
        solve_fast(build_dso_led(case, Formulation(complementarity="sos1")).model, TIGHT)


def test_solver_time_is_the_time_inside_clarabel() -> None:
    case = toy_case(periods=4, n_adns=2, fmax=40.0)
    got = PlanningSession(case, Formulation(follower="auto"), TIGHT).solve(case)
    assert 0 < got["solver_time_s"] <= got["solve_time_s"]


def test_a_native_scip_crash_becomes_an_error_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """SCIP runs in a forked child: a SIGABRT inside it (as SCIP 10 does on some quadratic models) is reported."""
    import os
    import signal

    import coordinator.solvers.mip as mip

    monkeypatch.setattr(mip, "_solve_scip_here", lambda model, options: os.kill(os.getpid(), signal.SIGABRT))
    model = build_dso_led(toy_case(periods=2, n_adns=1), Formulation()).model
    report = mip.solve_scip(model, SolveOptions())
    assert report.status == "error" and "SIGABRT" in report.message


def test_scip_in_its_child_process_loads_the_solution_here() -> None:
    case = toy_case(periods=2, n_adns=1)
    model, report = scip_reference(case)
    assert all(model.adn[0].net.pcc_p[t].value is not None for t in model.T)
    got = FastPipeline(case, Formulation(follower="kkt"), TIGHT).solve(case)
    np.testing.assert_allclose(got["adns"][0]["pcc_mw"], [model.adn[0].net.pcc_p[t].value for t in model.T],
                               atol=2e-4)
