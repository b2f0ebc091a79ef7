"""TSO-led baseline (docs/formulation.md): stage 1 is the TSO optimum, stage 2 keeps binaries, simultaneity is real."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandapower as pp
import pyomo.environ as pyo
import pytest
from test_core_correctness import assert_mw_close, assert_no_simultaneous, pp_transmission_net, withdrawal_by_bus

from coordinator.case import Bess, Case
from coordinator.dso_led import Formulation, build_dso_led
from coordinator.follower import solve_follower
from coordinator.results import collect
from coordinator.solvers import solve
from coordinator.solvers.base import SolveOptions
from coordinator.toy import toy_adn, toy_case
from coordinator.tso_led import run_tso_led, solve_stage1

FAST = SolveOptions(solver="fast", mip_gap=1e-7)


def surplus_case() -> Case:
    """Noon with 4 MW of PV on 0.7 MW of load, a 1 MW PCC and an almost full BESS, curtailment dear.

    The TSO wants every MW it can take (1 MW); the rest must be curtailed or burnt. Charging and discharging at
    once burns energy in the BESS losses, which the relaxed stage 1 prefers to curtailment at 100 $/MWh.
    """
    case = toy_case(periods=1)
    adn = dataclasses.replace(toy_adn("adn1", 2, 1, pv_factor=4.0), pcc_limit=1.0,
                              bess=[Bess(bus=3, pmax=0.3, emax=0.9, emin=0.1, e0=0.85)])
    prices = dataclasses.replace(case.prices, c_curt=100.0, c_loss=100.0)  # losses must not be the cheaper sink
    return dataclasses.replace(case, adns=[adn], prices=prices)


@pytest.mark.parametrize("kw", [dict(periods=2, n_adns=2, fmax=40.0), dict(periods=3, n_adns=1)])
def test_stage1_dispatch_is_the_dcopf_at_its_own_schedule(kw: dict) -> None:
    case = toy_case(**kw)
    pm, report, best = solve_stage1(case, FAST)
    assert report.status == "optimal"
    m, qp = pm.model, pm.qp
    for t in range(case.periods):
        w = withdrawal_by_bus(case, m, t)
        net = pp_transmission_net(case.tn, t, w)
        pp.rundcopp(net)
        assert net.OPF_converged
        ref = {"ext_grid": float(net.res_ext_grid.p_mw.iloc[0]), "gen0": float(net.res_gen.p_mw.iloc[0])}
        for k, g in enumerate(case.tn.gens):
            assert_mw_close(pyo.value(m.tn.x[qp.gen_col[k], t]), ref[g.name])
        independent = solve_follower(qp, qp.b_eq(case.tn.demand(t), w))
        assert pyo.value(m.tn.cost[t]) == pytest.approx(independent.cost, rel=1e-5)
        assert pyo.value(m.tn.cost[t]) == pytest.approx(float(net.res_cost), rel=1e-4)
    # step (b) stayed on the TSO's optimum
    assert pyo.value(m.generation_cost) == pytest.approx(best, rel=1e-5)


def test_stage1_minimises_generation_cost_over_the_dso_led_schedule() -> None:
    """The TSO leads: no ADN schedule (here: the DSO-led one) gives it a cheaper dispatch."""
    case = toy_case(periods=3, n_adns=2, fmax=40.0)
    _, _, best = solve_stage1(case, FAST)
    dso = build_dso_led(case, Formulation(follower="kkt"))
    res = collect(dso, case, solve(dso.model, FAST), 0.0, ac_periods=[])
    assert best <= res["tn"]["generation_cost"] * (1 + 1e-6)


def test_relaxed_schedule_charges_and_discharges_at_once_and_stage2_does_not() -> None:
    case = surplus_case()
    run = run_tso_led(case, FAST)
    res, m1, m2 = run.result, run.stage1.model, run.stage2.model
    assert res["status"] == "optimal" and res["scheme"] == "tso-led"
    sim = res["tso_led"]["stage1"]["simultaneity"]
    der1 = m1.adn[0].der
    ch, dis = pyo.value(der1.ch[0, 0]), pyo.value(der1.dis[0, 0])
    assert min(ch, dis) > 1e-3  # the relaxed solution really does both
    assert sim["bess_charge_discharge_mwh"] == pytest.approx(min(ch, dis) * case.step_hours, rel=1e-9)
    assert sim["bess_charge_discharge_count"] == 1
    assert_no_simultaneous(m2, case)
    # restoring the binary costs money: the energy burnt in the BESS must now be curtailed at 100 $/MWh
    assert res["tso_led"]["binary_restoration_cost"] > 0.1
    assert res["tso_led"]["stage2"]["deviation_mwh"] < 1e-5  # the schedule itself stays feasible


@pytest.mark.parametrize("price_mode", ["lmp", "tariff"])
def test_stage2_keeps_binaries_and_tracks_the_schedule(price_mode: str) -> None:
    case = toy_case(periods=4, n_adns=2, fmax=40.0, price_mode=price_mode)
    run = run_tso_led(case, FAST)
    assert run.result["status"] == "optimal"
    assert_no_simultaneous(run.stage2.model, case)
    w1 = np.array(run.result["tso_led"]["stage1"]["pcc_mw"])
    w2 = np.array([adn["pcc_mw"] for adn in run.result["adns"]])
    np.testing.assert_allclose(w2, w1, atol=1e-4)
    sim = run.result["tso_led"]["stage1"]["simultaneity"]
    assert set(sim) == {f"{k}_{u}" for k in ("bess_charge_discharge", "prosumer_buy_sell", "pcc_import_export",
                                             "inter_adn_both_ways") for u in ("mwh", "count")}


def test_result_has_the_dso_led_schema() -> None:
    case = toy_case(periods=2, n_adns=2)
    tso = run_tso_led(case, FAST).result
    dso_model = build_dso_led(case, Formulation(follower="kkt"))
    dso = collect(dso_model, case, solve(dso_model.model, FAST), 0.0)
    assert set(tso) == set(dso) | {"tso_led"}
    assert set(tso["kpis"]) == set(dso["kpis"])
    assert set(tso["adns"][0]) == set(dso["adns"][0])
    assert set(tso["tn"]) == set(dso["tn"])
    assert tso["checks"]["follower_cost_rel_gap"] < 1e-6
    assert tso["checks"]["soc_gap_max"] < 1e-4
    # the reported DSO cost is paid at the re-dispatch's LMPs, like the DSO-led objective
    lmp = tso["tn"]["lmp"]
    payment = sum(lmp[str(adn["tn_bus"])][t] * adn["pcc_mw"][t] for adn in tso["adns"] for t in range(case.periods))
    assert tso["objective"] > payment * case.step_hours  # plus non-negative operating costs


def test_run_command_with_the_tso_led_scheme(tmp_path) -> None:
    from scenarios.cli import main
    from scenarios.results_io import load_run
    from simulators.recorder import read_run

    path = tmp_path / "tso.h5"
    assert main(["run", "small_2adn", "--hours", "1", "--horizon", "2", "--scheme", "tso-led",
                 "--output", str(path), "--no-progress"]) == 0
    data = read_run(str(path))
    assert [str(s) for s in data["/Coordinator/hub/status"]] == ["optimal"]
    assert load_run(path).scheme == "tso-led"


def test_fast_and_scip_agree_on_both_stages() -> None:
    from coordinator.tso_led import solve_tso_led

    case = toy_case(periods=3, n_adns=2, fmax=40.0)
    fast = solve_tso_led(case, FAST, ac_periods=[])
    scip = solve_tso_led(case, SolveOptions(solver="scip", mip_gap=1e-7, time_limit=60), ac_periods=[])
    assert fast["status"] == scip["status"] == "optimal"
    assert fast["tso_led"]["stage1"]["generation_cost"] == pytest.approx(scip["tso_led"]["stage1"]["generation_cost"],
                                                                         rel=1e-6)
    assert fast["objective"] == pytest.approx(scip["objective"], rel=1e-4)
