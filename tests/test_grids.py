"""User grids end to end (coordinator.grids): a TN from pandapower JSON and MATPOWER files, simbench ADNs,
automatic DER placement, and the refusals. Each solved case is checked against pandapower on nets built here from
the raw files: ``rundcopp`` for the follower, ``runpp`` for the ADN voltages."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
import yaml

from coordinator.case import Case
from coordinator.dso_led import Formulation, build_dso_led
from coordinator.grids import GridError, NetSource, adn_source_net, adn_static, tn_static
from coordinator.grids.placement import AutoRule, BessRule, auto_placement
from coordinator.grids.source import fresh_net
from coordinator.results import collect
from coordinator.solvers import solve
from coordinator.solvers.base import SolveOptions
from scenarios.config import ScenarioError, build_case, load_scenario
from simulators.grid import PhysicalGrid

LV = "1-LV-rural1--0-sw"
MV = "1-MV-rural--0-sw"
OPTIONS = SolveOptions(solver="fast", mip_gap=1e-7)


# --------------------------------------------------------------------------------------------------------------------
# helpers


def simbench_net(code: str) -> pp.pandapowerNet:
    """simbench's own net as ``simbench.get_simbench_net`` builds it (not the grids layer's reduction), a fresh copy;
    read through the grids layer's cache because building it costs seconds."""
    return fresh_net(NetSource("simbench", code))


def write_scenario(tmp: Path, data: dict[str, Any]) -> Path:
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "start_hour": 11, "periods": 2, **data}))
    return path


def solve_case(case: Case) -> tuple[Any, dict]:
    pm = build_dso_led(case, Formulation())
    report = solve(pm.model, OPTIONS)
    assert report.status == "optimal", report
    return pm.model, collect(pm, case, report, 0.0)


def withdrawals(res: dict, t: int) -> dict[int, float]:
    w: dict[int, float] = {}
    for adn in res["adns"]:
        w[adn["tn_bus"]] = w.get(adn["tn_bus"], 0.0) + adn["pcc_mw"][t]
    return w


def assert_follower_matches_rundcopp(ref_net: pp.pandapowerNet, case: Case, res: dict,
                                     names: dict[tuple[str, int], str]) -> float:
    """rundcopp on ``ref_net`` (scaled loads + PCC withdrawals) vs the follower; ``names`` maps (table, index) of
    ``ref_net``'s dispatchable units to result keys. Returns the largest LMP spread seen."""
    spread = 0.0
    for t in range(case.periods):
        net = copy.deepcopy(ref_net)
        net.load["scaling"] = float(case.tn.load_scale[t])
        for bus, w in withdrawals(res, t).items():
            pp.create_load(net, bus, p_mw=w, q_mvar=0.0, controllable=False)
        pp.rundcopp(net)
        assert net.OPF_converged
        for (table, idx), key in names.items():
            p_ref = float(net[f"res_{table}"].p_mw.at[idx])
            assert abs(res["tn"]["gen_mw"][key][t] - p_ref) <= max(1e-3, 1e-4 * abs(p_ref)), (key, t)
        lam = net.res_bus.lam_p
        buses = [n for n in case.tn.buses if n in lam.index]  # not a trafo3w star point (no pandapower bus)
        for n in buses:
            assert res["tn"]["lmp"][str(n)][t] == pytest.approx(float(lam.at[n]), rel=1e-4, abs=1e-4), (n, t)
        spread = max(spread, float(np.ptp(lam.loc[buses].to_numpy())))
    return spread


def adn_withdrawal(m: Any, case: Case, a: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Bus withdrawals of ADN ``a`` from the case data and the device variables."""
    import pyomo.environ as pyo

    adn, der = case.adns[a], m.adn[a].der
    p, q = np.array(adn.load_p[t], dtype=float), np.array(adn.load_q[t], dtype=float)
    for k, bus in enumerate(adn.pv_bus):
        p[bus] -= pyo.value(der.pv[k, t])
    for k, bess in enumerate(adn.bess):
        p[bess.bus] += pyo.value(der.ch[k, t]) - pyo.value(der.dis[k, t])
    return p, q


def simbench_feeder(code: str, bus_names: tuple[str, ...], p: np.ndarray, q: np.ndarray,
                    shunts: bool = False) -> tuple[pp.pandapowerNet, list[int]]:
    """simbench's own net as the optimiser sees its feeder: ext_grid moved to the root (1.0 p.u., the substation
    trafo out), withdrawals ``p``/``q`` placed by bus name, own loads and sgens off, and (unless ``shunts``) no
    line capacitance (DistFlow has none). Returns the net and the simbench bus of each case bus."""
    net = simbench_net(code)
    by_name = {name: int(b) for b, name in net.bus.name.items()}
    buses = [by_name[name] for name in bus_names]
    net.trafo["in_service"] = False
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    pp.create_ext_grid(net, buses[0], vm_pu=1.0, va_degree=0.0)
    net.load["in_service"] = False
    net.sgen["in_service"] = False
    if not shunts:
        net.line["c_nf_per_km"] = 0.0
        net.line["g_us_per_km"] = 0.0
    for k, bus in enumerate(buses):
        pp.create_load(net, bus, p_mw=float(p[k]), q_mvar=float(q[k]))
    return net, buses


def assert_voltages_match_runpp(m: Any, case: Case, code: str, res: dict) -> None:
    import pyomo.environ as pyo

    for a, adn in enumerate(case.adns):
        if adn.source != ("simbench", code):
            continue
        blk = m.adn[a].net
        for t in range(case.periods):
            # the relaxation is exact here (relative cone slack recomputed), so DistFlow is the AC power flow
            for br in adn.branches:
                p_, q_ = pyo.value(blk.P[br.i, br.j, t]), pyo.value(blk.Q[br.i, br.j, t])
                vl = pyo.value(blk.v[br.i, t]) * pyo.value(blk.l[br.i, br.j, t])
                assert (vl - p_**2 - q_**2) / max(vl, 1e-4) < 1e-4, (adn.name, t, br)
            p, q = adn_withdrawal(m, case, a, t)
            net, buses = simbench_feeder(code, adn.bus_names, p, q)
            pp.runpp(net, numba=False, tolerance_mva=1e-10)
            v_opt = np.sqrt([pyo.value(m.adn[a].net.v[j, t]) for j in adn.buses])
            vm = net.res_bus.vm_pu.loc[buses].to_numpy()
            assert np.max(np.abs(vm - v_opt)) < 1e-3, (t, np.max(np.abs(vm - v_opt)))
            assert float(net.res_ext_grid.p_mw.iloc[0]) == pytest.approx(res["adns"][a]["pcc_mw"][t], abs=1e-4)


# --------------------------------------------------------------------------------------------------------------------
# (a) a user TN: pandapower JSON with sgens and a second ext_grid; MATPOWER files


def user_tn_net() -> pp.pandapowerNet:
    """case30 with a fixed sgen, a controllable sgen with a cost, a second ext_grid, an out-of-service line and an
    out-of-service gen and a trafo3w to two new load buses: the elements the old reduction refused or never saw."""
    net = pn.case30()
    pp.create_sgen(net, 5, p_mw=12.0, q_mvar=0.0, controllable=False, name="fixed wind")
    sg = pp.create_sgen(net, 20, p_mw=0.0, min_p_mw=0.0, max_p_mw=15.0, controllable=True, name="dispatchable pv")
    pp.create_poly_cost(net, sg, "sgen", cp1_eur_per_mw=1.5, cp2_eur_per_mw2=0.01)
    eg = pp.create_ext_grid(net, 14, min_p_mw=0.0, max_p_mw=25.0, name="tie")
    pp.create_poly_cost(net, eg, "ext_grid", cp1_eur_per_mw=2.5, cp2_eur_per_mw2=0.02)
    net.line.loc[net.line.index[-1], "in_service"] = False
    off = pp.create_gen(net, 9, p_mw=5.0, min_p_mw=0.0, max_p_mw=30.0, controllable=True, in_service=False)
    pp.create_poly_cost(net, off, "gen", cp1_eur_per_mw=0.1)
    mv, lv = pp.create_bus(net, vn_kv=33.0), pp.create_bus(net, vn_kv=11.0)
    pp.create_transformer3w_from_parameters(
        net, 3, mv, lv, vn_hv_kv=135.0, vn_mv_kv=33.0, vn_lv_kv=11.0, sn_hv_mva=40, sn_mv_mva=30, sn_lv_mva=15,
        vk_hv_percent=10.0, vk_mv_percent=6.0, vk_lv_percent=12.0, vkr_hv_percent=0.5, vkr_mv_percent=0.4,
        vkr_lv_percent=0.6, pfe_kw=0, i0_percent=0, max_loading_percent=100.0, name="three-winding")
    pp.create_load(net, mv, p_mw=8.0, q_mvar=2.0)
    pp.create_load(net, lv, p_mw=4.0, q_mvar=1.0)
    return net


def reference_for_pins(net: pp.pandapowerNet) -> tuple[pp.pandapowerNet, dict[int, int]]:
    """``net`` with every ext_grid but the first replaced by an equivalent controllable gen (pandapower's OPF pins
    the angle of every ext_grid bus; the DC model has one angle reference). Returns the net and ext_grid -> gen."""
    ref = copy.deepcopy(net)
    mapping = {}
    for idx in list(ref.ext_grid.index[1:]):
        eg = ref.ext_grid.loc[idx]
        g = pp.create_gen(ref, int(eg.bus), p_mw=0.0, min_p_mw=eg.min_p_mw, max_p_mw=eg.max_p_mw, controllable=True)
        cost = ref.poly_cost[(ref.poly_cost.et == "ext_grid") & (ref.poly_cost.element == idx)]
        ref.poly_cost.loc[cost.index, ["et", "element"]] = ["gen", g]
        ref.ext_grid.drop(idx, inplace=True)
        mapping[int(idx)] = int(g)
    return ref, mapping


def test_user_tn_json_solves_and_follower_matches_rundcopp(tmp_path: Path) -> None:
    net = user_tn_net()
    pp.to_json(net, str(tmp_path / "tn.json"))
    scenario = write_scenario(tmp_path, {
        "tn": {"file": "tn.json"},  # relative to the scenario file
        "adns": [{"name": "a", "tn_bus": 7, "placement": "adn1"}, {"name": "b", "tn_bus": 18, "placement": "adn4"}],
    })
    case = build_case(load_scenario(scenario))
    assert case.tn.case == "tn.json" and case.tn.source == ("file", str(tmp_path / "tn.json"))
    names = sorted(g.name for g in case.tn.gens)
    assert names == sorted(["ext_grid0", "ext_grid1", *(f"gen{i}" for i in range(5)), "sgen1"])
    assert case.tn.fixed_injection == {5: pytest.approx(12.0)}
    assert len(case.tn.lines) == 40 + 3  # case30's 41 branches less the out-of-service one, 3 for the trafo3w
    m, res = solve_case(case)
    ref, pins = reference_for_pins(pp.from_json(str(tmp_path / "tn.json")))
    keys = {("ext_grid", 0): "ext_grid0", ("gen", pins[1]): "ext_grid1", ("sgen", 1): "sgen1"}
    keys |= {("gen", i): str(i) for i in range(5)}
    assert_follower_matches_rundcopp(ref, case, res, keys)
    assert res["tn"]["gen_mw"]["sgen1"][0] > 1.0 and res["tn"]["gen_mw"]["ext_grid1"][0] > 1.0  # both dispatched
    assert res["checks"]["follower_cost_rel_gap"] < 1e-6

    # the co-simulation's grid builds the same TN from the file and runs it with that dispatch
    grid = PhysicalGrid(case)
    grid.set_dispatch({f"gen{k}" if k.isdigit() else k: v[0] for k, v in res["tn"]["gen_mw"].items()})
    assert grid.run()["tn"]["converged"] == 1.0
    assert len(grid.tn_net.sgen) == 2 and grid.tn_net.sgen.p_mw.at[1] == pytest.approx(res["tn"]["gen_mw"]["sgen1"][0])


MATPOWER_CASE = """function mpc = case5dc
mpc.version = '2';
mpc.baseMVA = 100;
%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [
  1 3 0   0  0 0 1 1 0 110 1 1.1 0.9;
  2 1 60  20 0 0 1 1 0 110 1 1.1 0.9;
  3 2 20  5  0 0 1 1 0 110 1 1.1 0.9;
  4 1 80  25 0 0 1 1 0 110 1 1.1 0.9;
  5 1 40  10 0 0 1 1 0 110 1 1.1 0.9;
];
%% bus Pg Qg Qmax Qmin Vg mBase status Pmax Pmin
mpc.gen = [
  1 0 0 300 -300 1 100 1 250 0 0 0 0 0 0 0 0 0 0 0 0;
  3 0 0 300 -300 1 100 1 120 0 0 0 0 0 0 0 0 0 0 0 0;
];
%% fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax
mpc.branch = [
  1 2 0.01 0.06 0 90 90 90 0 0 1 -360 360;
  1 4 0.02 0.10 0 120 120 120 0 0 1 -360 360;
  2 3 0.01 0.05 0 30 30 30 0 0 1 -360 360;
  3 4 0.02 0.08 0 30 30 30 0 0 1 -360 360;
  4 5 0.01 0.04 0 90 90 90 0 0 1 -360 360;
  2 5 0.02 0.09 0 40 40 40 0 0 1 -360 360;
];
%% model startup shutdown n c2 c1 c0
mpc.gencost = [
  2 0 0 3 0.02 2.0 0;
  2 0 0 3 0.01 3.5 0;
];
"""


@pytest.mark.parametrize("suffix", [".m", ".mat"])
def test_matpower_tn_solves_and_follower_matches_rundcopp(tmp_path: Path, suffix: str) -> None:
    from pandapower.converter.matpower import from_mpc, to_mpc

    m_file = tmp_path / "case5dc.m"
    m_file.write_text(MATPOWER_CASE)
    path = m_file
    if suffix == ".mat":  # the same case written by pandapower's own MATPOWER writer
        path = tmp_path / "case5dc.mat"
        to_mpc(from_mpc(str(m_file)), str(path), init="flat")
    scenario = write_scenario(tmp_path, {"tn": {"file": str(path)},
                                         "adns": [{"name": "a", "tn_bus": 4, "placement": "adn1"}]})
    case = build_case(load_scenario(scenario))
    assert sorted(case.tn.buses) == [0, 1, 2, 3, 4] and case.tn.ref_bus == 0
    assert sum(case.tn.base_load.values()) == pytest.approx(200.0)
    _, res = solve_case(case)
    ref = from_mpc(str(m_file))  # pandapower's reading of the text file, whatever our reader got
    keys = {("ext_grid", 0): "ext_grid", ("gen", int(ref.gen.index[0])): str(int(ref.gen.index[0]))}
    spread = assert_follower_matches_rundcopp(ref, case, res, keys)
    assert spread > 0.1  # the 30 MW line 3-4 binds: the LMP check is not trivial


# --------------------------------------------------------------------------------------------------------------------
# (b) simbench ADNs


def test_simbench_lv_reduction_facts() -> None:
    net = simbench_net(LV)
    grid = adn_static(NetSource("simbench", LV))
    trafo = net.trafo.iloc[0]
    root_name = net.bus.name.at[int(trafo.lv_bus)]
    assert grid.bus_names[0] == root_name  # root = the LV side of the substation trafo
    assert len(grid.buses) == len(net.bus) - 1 and len(grid.branches) == len(net.line)
    assert grid.pcc_limit == pytest.approx(float(trafo.sn_mva))
    assert grid.peak_load == pytest.approx(float(net.load.p_mw.sum()))
    assert sum(grid.sgen_peak) == pytest.approx(float(net.sgen.p_mw.sum()))
    # per-unit impedance of each line on 1 MVA at 0.4 kV, found by its end bus names
    by_names = {frozenset((grid.bus_names[b.i], grid.bus_names[b.j])): b for b in grid.branches}
    for _, ln in net.line.iterrows():
        br = by_names[frozenset((net.bus.name.at[ln.from_bus], net.bus.name.at[ln.to_bus]))]
        z_base = 0.4**2 / 1.0
        assert br.r == pytest.approx(ln.r_ohm_per_km * ln.length_km / z_base)
        assert br.x == pytest.approx(ln.x_ohm_per_km * ln.length_km / z_base)
    # every branch points away from the root
    depth = {0: 0}
    children: dict[int, list[int]] = {}
    for br in grid.branches:
        children.setdefault(br.i, []).append(br.j)
    stack = [0]
    while stack:
        i = stack.pop()
        for j in children.get(i, []):
            assert j not in depth
            depth[j] = depth[i] + 1
            stack.append(j)
    assert sorted(depth) == list(grid.buses)


def test_simbench_lv_end_to_end_matches_runpp(tmp_path: Path) -> None:
    # 07:00-09:00: the feeder imports. Around noon its PV exceeds its load and the SOC relaxation is not exact
    # (the optimiser may burn surplus as fictitious losses instead of curtailing), so runpp would not apply.
    scenario = write_scenario(tmp_path, {"start_hour": 7, "adns": [
        {"name": "lv", "tn_bus": 7, "network": {"simbench": LV}, "placement": "auto", "prosumers": 3,
         "bess": {"count": 2, "p_mw": 0.02, "e_mwh": 0.08}},
        {"name": "std", "tn_bus": 18, "placement": "adn2"},
    ]})
    cfg = load_scenario(scenario)
    case = build_case(cfg)
    lv = case.adns[0]
    assert lv.source == ("simbench", LV) and lv.pcc_limit == pytest.approx(0.16)
    # simbench's own profiles: the loads are simbench's absolute values at 11:00-13:00 of day 196, summed by bus
    import simbench as sb

    net = simbench_net(LV)
    absolute = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    first = int(np.flatnonzero(net.profiles["load"].time.to_numpy() == "14.07.2016 07:00")[0])  # day 196, local
    rows = np.arange(first, first + 8).reshape(2, 4)
    for key, got in ((("load", "p_mw"), lv.load_p), (("sgen", "p_mw"), lv.pv_avail)):
        assert got.sum(axis=1) == pytest.approx(absolute[key].to_numpy()[rows].sum(axis=2).mean(axis=1))
    m, res = solve_case(case)
    assert_voltages_match_runpp(m, case, LV, res)
    # the co-simulation's grid runs the same feeder (with its line capacitance) built from the source
    grid = PhysicalGrid(case)
    p, q = adn_withdrawal(m, case, 0, 0)
    grid.set_withdrawal("lv", p, q)
    out = grid.run()["adns"]["lv"]
    ref, buses = simbench_feeder(LV, lv.bus_names, p, q, shunts=True)
    pp.runpp(ref, numba=False)
    assert out["vm_pu"] == pytest.approx(ref.res_bus.vm_pu.loc[buses].to_numpy(), abs=1e-8)


@pytest.mark.slow
def test_simbench_mv_end_to_end_matches_runpp(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, {"periods": 4, "start_hour": 10, "adns": [
        {"name": "mv", "tn_bus": 7, "network": {"simbench": MV}, "placement": "auto",
         "bess": {"count": 3, "p_mw": 1.0, "e_mwh": 4.0}}]})
    case = build_case(load_scenario(scenario))
    mv = case.adns[0]
    net = simbench_net(MV)
    assert mv.pcc_limit == pytest.approx(float(net.trafo.sn_mva.sum()))
    assert sum(mv.pv_peak) >= float(net.sgen.p_mw.sum()) - 1e-9
    m, res = solve_case(case)
    assert_voltages_match_runpp(m, case, MV, res)


def test_the_shipped_scale_scenario_hosts_50_adns_at_free_case118_buses() -> None:
    config = load_scenario("case118_50adn")
    assert len(config.adns) == 50 and len({a.tn_bus for a in config.adns}) == 50
    net = pn.case118()
    generator_buses = set(net.gen.bus) | set(net.ext_grid.bus) | set(net.sgen.bus)
    assert not generator_buses & {a.tn_bus for a in config.adns}
    kinds = [a.network.label for a in config.adns]
    assert sum("MV" in k for k in kinds) == 25


@pytest.mark.slow
def test_the_scale_scenario_solves_and_passes_the_independent_checks() -> None:
    from coordinator.session import PlanningSession

    case = build_case(load_scenario("case118_50adn"))
    result = PlanningSession(case).solve(case)
    assert result["status"] == "optimal" and result["mip_gap"] <= 1e-3
    checks = result["checks"]
    assert checks["follower_cost_rel_gap"] < 1e-6  # the TN dispatch against a DC-OPF solved on its own
    assert checks["ac_voltage_error_max_pu"] < 1e-3  # every ADN and period against pandapower's runpp


def test_simbench_wind_standstill_is_no_negative_availability(tmp_path: Path) -> None:
    """simbench's own wind series dip below 0 (day 196, hour 8 of 1-MV-rural: -3e-6 MW at a bus); the ADN's
    availability is those series clipped at 0, and otherwise equal to them (totals against simbench directly)."""
    import simbench as sb

    from coordinator.grids.series import simbench_series
    from coordinator.profiles import horizon_rows

    raw = sb.get_absolute_values(simbench_net(MV), profiles_instead_of_study_cases=True)[("sgen", "p_mw")]
    rows = horizon_rows(196, 60, 24, 0.0)
    hourly = raw.to_numpy()[rows].mean(axis=1)  # (24, sgens)
    assert hourly.min() < 0  # the raw data this guards against
    series = simbench_series(MV, 196, 60, 24, 0.0)
    assert series.sgen_p.min() >= 0.0
    np.testing.assert_allclose(series.sgen_p.sum(axis=1), np.maximum(raw.to_numpy(), 0.0)[rows].mean(axis=1)
                               .sum(axis=1), atol=1e-3)
    scenario = write_scenario(tmp_path, {"periods": 24, "start_hour": 0, "adns": [
        {"name": "mv", "tn_bus": 7, "network": {"simbench": MV}, "placement": "auto"}]})
    assert build_case(load_scenario(scenario)).adns[0].pv_avail.min() >= 0.0  # refused before the clip


# --------------------------------------------------------------------------------------------------------------------
# (c) placement auto


def test_auto_placement_on_case33bw_follows_the_documented_rule() -> None:
    net = pn.case33bw()
    load = net.load.groupby("bus").p_mw.sum()
    ranked = sorted((int(b) for b in load.index if b != 0), key=lambda b: (-load[b], b))[:8]
    rule = AutoRule(pv_share=0.6, prosumers=8, bess=BessRule(count=3, p_share=0.1, hours=3.0, soc0=0.4))
    pl = auto_placement("x", adn_static(), rule)
    assert pl.pv_bus == tuple(ranked) and pl.owners == tuple(ranked)
    total = 0.6 * float(net.load.p_mw.sum())
    assert pl.pv_total == pytest.approx(total)
    weights = np.array([load[b] for b in ranked])
    assert np.array(pl.pv_peak) == pytest.approx(total * weights / weights.sum())
    assert [b.bus for b in pl.bess] == ranked[:3]
    for b in pl.bess:
        assert (b.p_mw, b.e_mwh, b.soc0) == pytest.approx((0.3715, 3 * 0.3715, 0.4))


def test_auto_placement_uses_simbench_sgens_as_pv() -> None:
    grid = adn_static(NetSource("simbench", LV))
    pl = auto_placement("lv", grid, AutoRule(prosumers=2, bess=BessRule(count=1, p_mw=0.01, e_mwh=0.02)))
    net = simbench_net(LV)
    peak = net.sgen.groupby("bus").p_mw.sum().sort_values(ascending=False)
    top = [grid.case_bus[int(b)] for b in peak.index[:2]]
    assert pl.pv_bus == () and list(pl.owners) == top and pl.bess[0].bus == top[0]
    with pytest.raises(GridError, match="own sgens"):
        auto_placement("lv", grid, AutoRule(pv_share=0.5))


# --------------------------------------------------------------------------------------------------------------------
# (c) refusals


def test_meshed_adn_file_is_refused_naming_a_loop(tmp_path: Path) -> None:
    net = pn.case33bw()
    tie = int(net.line.index[~net.line.in_service.astype(bool)][0])
    net.line.loc[tie, "in_service"] = True  # close one tie line: one loop
    path = tmp_path / "meshed.json"
    pp.to_json(net, str(path))
    with pytest.raises(GridError) as err:
        adn_static(NetSource("file", str(path)))
    msg = str(err.value)
    assert "meshed" in msg and f"line {tie}" in msg
    loop = [int(b) for b in re.search(r"Loop: buses ([\d -]+) via", msg).group(1).split(" - ")]
    lines = [int(x) for x in re.findall(r"line (\d+)", msg.split(" via ")[1])]
    assert loop[0] == loop[-1] and len(loop) - 1 == len(lines)
    # the named buses and lines really form a cycle of the net
    for (a, b), idx in zip(zip(loop, loop[1:], strict=False), lines, strict=True):
        ln = net.line.loc[idx]
        assert {int(ln.from_bus), int(ln.to_bus)} == {a, b} and ln.in_service
    # the same file as a scenario's ADN network: a scenario error at the field
    scenario = write_scenario(tmp_path, {"adns": [{"name": "a", "tn_bus": 7, "placement": "auto",
                                                   "network": {"file": "meshed.json"}}]})
    with pytest.raises(ScenarioError, match=r"adns\[0\]\.network\.file = .*meshed.json.*Loop"):
        load_scenario(scenario)


def test_radial_adn_file_equals_case33bw(tmp_path: Path) -> None:
    path = tmp_path / "feeder.json"
    pp.to_json(pn.case33bw(), str(path))
    mine, shipped = adn_static(NetSource("file", str(path))), adn_static()
    assert mine.branches == shipped.branches and mine.p_nom == pytest.approx(shipped.p_nom)
    net = adn_source_net(NetSource("file", str(path)))
    assert sorted(net.bus.index) == list(range(33)) and net.ext_grid.bus.tolist() == [0]


def two_substation_feeder() -> pp.pandapowerNet:
    """110 kV ext_grid, two 110/20 kV trafos to separate busbars, a 20 kV feeder of two lines on each, one sgen."""
    net = pp.create_empty_network()
    hv = pp.create_bus(net, 110.0, name="hv")
    pp.create_ext_grid(net, hv)
    for k in (1, 2):
        bar = pp.create_bus(net, 20.0, name=f"bar{k}")
        pp.create_transformer(net, hv, bar, std_type="25 MVA 110/20 kV")
        a, b = pp.create_bus(net, 20.0, name=f"a{k}"), pp.create_bus(net, 20.0, name=f"b{k}")
        pp.create_line(net, bar, a, 2.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
        pp.create_line(net, a, b, 1.5, "NA2XS2Y 1x95 RM/25 12/20 kV")
        pp.create_load(net, a, p_mw=1.0 * k, q_mvar=0.2)
        pp.create_load(net, b, p_mw=0.5, q_mvar=0.1)
    pp.create_sgen(net, b, p_mw=0.7)
    return net


def test_substation_trafos_are_dropped_and_their_busbars_merged(tmp_path: Path) -> None:
    net = two_substation_feeder()
    pp.to_json(net, str(tmp_path / "two.json"))
    src = NetSource("file", str(tmp_path / "two.json"))
    grid = adn_static(src)
    assert grid.bus_names[0] == "bar1" and "bar2" not in grid.bus_names and "hv" not in grid.bus_names
    assert len(grid.buses) == 5 and len(grid.branches) == 4  # merged root + 4 feeder buses; the 4 lines
    assert grid.pcc_limit == pytest.approx(50.0) and set(grid.root_trafos) == {0, 1}
    assert sorted(br.j for br in grid.branches if br.i == 0) == sorted(
        grid.bus_names.index(n) for n in ("a1", "a2"))  # both feeders hang off the root
    assert grid.peak_load == pytest.approx(4.0) and grid.sgen_peak == (0.7,)
    # the reduced AC net: both busbars fused into bus 0 with the ext_grid; runpp = the feeders held at 1 p.u.
    red = adn_source_net(src)
    pp.runpp(red, numba=False)
    ref = copy.deepcopy(net)
    ref.trafo["in_service"] = False
    ref.ext_grid.drop(ref.ext_grid.index, inplace=True)
    for k in (1, 2):
        pp.create_ext_grid(ref, int(ref.bus.index[ref.bus.name == f"bar{k}"][0]), vm_pu=1.0)
    pp.runpp(ref, numba=False)
    for k, name in enumerate(grid.bus_names):
        if name.startswith(("a", "b")):
            assert red.res_bus.vm_pu.at[k] == pytest.approx(ref.res_bus.vm_pu[ref.bus.name == name].iloc[0], abs=1e-9)


def test_tn_refusals_name_the_element(tmp_path: Path) -> None:
    net = pn.case30()
    pp.create_transformer3w(net, 3, 5, 6, std_type="63/25/38 MVA 110/20/10 kV", name="t3")
    net.trafo3w["shift_lv_degree"] = 150.0  # a Dyn winding: the DC model has no phase shift
    pp.to_json(net, str(tmp_path / "t3.json"))
    with pytest.raises(GridError, match=r"trafo3w 0 \('t3'\): phase shifts .* not supported"):
        tn_static(NetSource("file", str(tmp_path / "t3.json")))

    net = pn.case30()
    pp.create_dcline(net, 3, 5, p_mw=5.0, loss_percent=1.0, loss_mw=0.1, vm_from_pu=1.0, vm_to_pu=1.0, name="hvdc")
    pp.to_json(net, str(tmp_path / "dc.json"))
    with pytest.raises(GridError, match=r"dcline 0 \('hvdc'\): in-service dcline elements are not supported"):
        tn_static(NetSource("file", str(tmp_path / "dc.json")))

    net = pn.case30()
    pp.create_sgen(net, 4, p_mw=1.0, controllable=True, name="no limits")
    pp.to_json(net, str(tmp_path / "sg.json"))
    with pytest.raises(GridError, match=r"sgen 0 \('no limits'\) is controllable but has no max_p_mw"):
        tn_static(NetSource("file", str(tmp_path / "sg.json")))

    net = pn.case30()
    island = pp.create_bus(net, vn_kv=135.0)
    pp.create_load(net, island, p_mw=3.0)
    pp.to_json(net, str(tmp_path / "island.json"))
    with pytest.raises(GridError, match=rf"buses \[{island}\] carry loads .* not connected"):
        tn_static(NetSource("file", str(tmp_path / "island.json")))


def test_tn_trafo3w_matches_pandapower_ppc(tmp_path: Path) -> None:
    """A trafo3w becomes three branches around a star bus with the reactances and ratings of pandapower's ppc."""
    from pandapower.pypower.idx_brch import BR_X, F_BUS, RATE_A, T_BUS, TAP

    net = pn.case30()
    mv, lv = pp.create_bus(net, vn_kv=33.0), pp.create_bus(net, vn_kv=11.0)
    pp.create_transformer3w_from_parameters(
        net, 3, mv, lv, vn_hv_kv=135.0, vn_mv_kv=33.0, vn_lv_kv=11.0, sn_hv_mva=40, sn_mv_mva=30, sn_lv_mva=15,
        vk_hv_percent=10.0, vk_mv_percent=6.0, vk_lv_percent=12.0, vkr_hv_percent=0.5, vkr_mv_percent=0.4,
        vkr_lv_percent=0.6, pfe_kw=0, i0_percent=0, max_loading_percent=80.0)
    pp.create_load(net, mv, p_mw=8.0)
    pp.create_load(net, lv, p_mw=4.0)
    pp.to_json(net, str(tmp_path / "t3.json"))
    tn = tn_static(NetSource("file", str(tmp_path / "t3.json")))
    pp.rundcpp(net)
    br = net._ppc["branch"].real
    assert len(tn.lines) == len(br) == 41 + 3
    star = max(int(b) for b in net.bus.index) + 1
    ppc_star = int(net._pd2ppc_lookups["aux"]["trafo3w"][0])
    for line, row in zip(tn.lines, br, strict=True):
        ends = [int(row[F_BUS]), int(row[T_BUS])]
        assert [star if b == ppc_star else b for b in ends] == [line.from_bus, line.to_bus]
        assert line.b_mw_per_rad == pytest.approx(net.sn_mva / (row[BR_X] * row[TAP]), rel=1e-9)
        assert line.fmax == pytest.approx(row[RATE_A], rel=1e-9)
    assert star in tn.buses and {mv, lv} <= set(tn.base_load)


def test_adn_refusals_name_the_element(tmp_path: Path) -> None:
    net = pn.case33bw()
    pp.create_gen(net, 5, p_mw=0.1, name="diesel")
    pp.to_json(net, str(tmp_path / "gen.json"))
    with pytest.raises(GridError, match=r"gen 0 \('diesel'\).*not supported in an ADN"):
        adn_static(NetSource("file", str(tmp_path / "gen.json")))


BAD_KEYS = [
    ({"tn": {"case": "case30", "file": "x.json"}}, "tn.file", "exactly one of tn.case and tn.file"),
    ({"tn": {"file": "missing.json"}}, "tn.file", "file not found"),
    ({"tn": {"file": "grid.csv"}}, "tn.file", "unknown grid file type"),
    ({"tn": {"case": "case_no_such"}}, "tn.case", "has no case"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "network": {"simbench": "no-such-code"}}]},
     "adns[0].network.simbench", "not usable as ADN"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "network": {"pandapower": "x"}}]},
     "adns[0].network", "exactly one of case, file, simbench"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "network": {"file": "feeder.m"}}]},
     "adns[0].network.file", "pandapower JSON"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "adn1", "pv_share": 0.5}]},
     "adns[0].pv_share", "only used with placement: auto"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "bess": {"p_mw": 1, "p_share": 0.1}}]},
     "adns[0].bess.p_share", "one of p_mw and p_share"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "prosumers": 0}]}, "adns[0].prosumers", ">= 1"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "bess": {"count": 40}}]},
     "adns[0].placement", "needs 40 non-root load buses"),
    ({"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "bess": {"soc0": 0.95}}]},
     "adns[0].bess.soc0", "soc_min <= soc0 <= soc_max"),
]


@pytest.mark.parametrize("data,field,text", BAD_KEYS, ids=[f[1] + ":" + f[2][:20] for f in BAD_KEYS])
def test_bad_grid_keys(tmp_path: Path, data: dict, field: str, text: str) -> None:
    data = {"adns": [{"name": "a", "tn_bus": 7, "placement": "adn1"}], **data}
    scenario = write_scenario(tmp_path, data)
    with pytest.raises(ScenarioError) as err:
        load_scenario(scenario)
    msg = str(err.value)
    assert err.value.path == field and str(scenario) in msg and text in msg, msg


def test_table_placement_must_fit_the_network(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, {"adns": [{"name": "lv", "tn_bus": 7, "placement": "adn1",
                                                   "network": {"simbench": LV}}]})
    with pytest.raises(ScenarioError, match=r"adns\[0\]\.placement = 'adn1': uses buses \[.*\] that are not"):
        load_scenario(scenario)


def test_default_network_unchanged() -> None:
    """The shipped scenario still builds case33bw feeders from the grids layer, numbered as pandapower does."""
    case = build_case(load_scenario("small_2adn"), periods=1)
    net = pn.case33bw()
    for adn in case.adns:
        assert adn.source == ("case", "case33bw") and adn.bus_names == () and adn.pcc_limit == 10.0
        assert {frozenset((b.i, b.j)) for b in adn.branches} == {
            frozenset((int(r.from_bus), int(r.to_bus))) for r in net.line[net.line.in_service].itertuples()}


def test_auto_rule_survives_the_run_record(tmp_path: Path) -> None:
    """A run's HDF5 stores the scenario as JSON; the report rebuilds the auto DER (BESS capacity) from it."""
    import json

    from coordinator.grids.placement import rule_from_record
    from scenarios.results_io import _auto_placement
    from scenarios.runner import config_record

    scenario = write_scenario(tmp_path, {"adns": [{"name": "a", "tn_bus": 7, "placement": "auto", "pv_share": 0.4,
                                                   "prosumers": 5, "bess": {"count": 2, "p_mw": 0.3, "hours": 2}}]})
    cfg = load_scenario(scenario)
    record = json.loads(json.dumps(config_record(cfg)))["adns"][0]
    assert rule_from_record(record["auto"]) == cfg.adns[0].auto
    rebuilt = _auto_placement("a", record)
    assert rebuilt == auto_placement("a", adn_static(), cfg.adns[0].auto)
    assert [b.e_mwh for b in rebuilt.bess] == pytest.approx([0.6, 0.6])
