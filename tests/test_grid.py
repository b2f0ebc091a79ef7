"""Tests for simulators.grid: each result is checked against a direct pandapower run of the shipped nets."""

from __future__ import annotations

import copy
import functools
import json
import math

import mosaik
import mosaik_api_v3
import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from coordinator.case import Branch, Case, DistributionNetwork, Generator, TransmissionNetwork
from simulators.grid import ADN_OUTPUTS, TN_OUTPUTS, GridSim, PhysicalGrid

T = 3
TN_BUS = 7  # case30 load bus with 22.8 MW


@functools.cache
def _shipped(name: str) -> pp.pandapowerNet:
    return getattr(pn, name)()


def case33bw() -> pp.pandapowerNet:
    """A fresh copy of the shipped net (building one from pandapower's JSON costs ~0.5 s, a copy 10 ms)."""
    return copy.deepcopy(_shipped("case33bw"))


def case30() -> pp.pandapowerNet:
    return copy.deepcopy(_shipped("case30"))


def runpp(net: pp.pandapowerNet) -> pp.pandapowerNet:
    pp.runpp(net, numba=False)
    return net


@functools.cache
def _nominal() -> tuple[np.ndarray, np.ndarray]:
    net = case33bw()
    p, q = np.zeros(len(net.bus)), np.zeros(len(net.bus))
    np.add.at(p, net.load.bus.to_numpy(), net.load.p_mw.to_numpy())
    np.add.at(q, net.load.bus.to_numpy(), net.load.q_mvar.to_numpy())
    return p, q


def nominal_withdrawal() -> tuple[np.ndarray, np.ndarray]:
    """case33bw's shipped loads per bus (bus 0 has none), as fresh arrays."""
    p, q = _nominal()
    return p.copy(), q.copy()


def make_adn(name: str, tn_bus: int = TN_BUS, smax: float | None = None) -> DistributionNetwork:
    net = case33bw()
    p, q = nominal_withdrawal()
    lines = net.line[net.line.in_service]
    branches = [Branch(int(r.from_bus), int(r.to_bus), 0.0, 0.0, smax) for r in lines.itertuples()]
    return DistributionNetwork(
        name=name,
        tn_bus=tn_bus,
        buses=list(range(len(net.bus))),
        branches=branches,
        load_p=np.tile(p, (T, 1)),
        load_q=np.tile(q, (T, 1)),
        pv_bus=[],
        pv_peak=[],
        pv_avail=np.zeros((T, 0)),
        bess=[],
        prosumers=[],
    )


def make_case(adns: list[DistributionNetwork]) -> Case:
    net = case30()
    gens = [Generator("ext_grid", 0, 0.0, 80.0, 0.0, 0.0)]
    gens += [Generator(f"gen{i}", int(r.bus), 0.0, float(r.max_p_mw), 0.0, 0.0) for i, r in net.gen.iterrows()]
    tn = TransmissionNetwork(
        case="case30",
        buses=list(net.bus.index),
        ref_bus=0,
        lines=[],
        gens=gens,
        base_load={int(b): float(p) for b, p in net.load.groupby("bus").p_mw.sum().items()},
        load_scale=np.ones(T),
    )
    case = Case(tn=tn, adns=adns, periods=T, step_hours=1.0)
    case.validate()
    return case


def shipped_dispatch() -> dict[str, float]:
    return {f"gen{i}": float(p) for i, p in case30().gen.p_mw.items()}


def test_adn_matches_direct_runpp() -> None:
    grid = PhysicalGrid(make_case([make_adn("adn1")]))
    grid.set_withdrawal("adn1", *nominal_withdrawal())
    res = grid.run()["adns"]["adn1"]
    ref = runpp(case33bw())
    assert res["converged"] == 1.0
    np.testing.assert_allclose(res["vm_pu"], ref.res_bus.vm_pu.to_numpy(), atol=1e-9)
    assert res["vm_min_pu"] == pytest.approx(0.91309, abs=1e-5)
    assert res["vm_max_pu"] == pytest.approx(1.0)
    assert res["losses_mw"] == pytest.approx(0.20268, abs=1e-5)
    assert res["losses_mw"] == pytest.approx(float(ref.res_line.pl_mw.sum()), abs=1e-9)
    assert res["pcc_p_mw"] == pytest.approx(float(ref.res_ext_grid.p_mw.iloc[0]), abs=1e-9)
    assert res["pcc_q_mvar"] == pytest.approx(float(ref.res_ext_grid.q_mvar.iloc[0]), abs=1e-9)
    assert res["pcc_p_mw"] == pytest.approx(3.715 + 0.20268, abs=1e-4)  # load plus losses


def test_tn_without_adns_matches_case30_and_scales_loads() -> None:
    grid = PhysicalGrid(make_case([]))
    grid.set_dispatch(shipped_dispatch())
    tn = grid.run()["tn"]
    ref = runpp(case30())
    assert tn["converged"] == 1.0
    assert tn["ext_grid_p_mw"] == pytest.approx(float(ref.res_ext_grid.p_mw.iloc[0]), abs=1e-6)
    assert tn["vm_min_pu"] == pytest.approx(float(ref.res_bus.vm_pu.min()), abs=1e-9)
    assert tn["line_loading_max_pct"] == pytest.approx(float(ref.res_line.loading_percent.max()), abs=1e-6)
    assert tn["losses_mw"] == pytest.approx(float(ref.res_line.pl_mw.sum()), abs=1e-6)

    grid.set_load_scale(0.8)
    scaled = case30()
    scaled.load[["p_mw", "q_mvar"]] *= 0.8
    assert grid.run()["tn"]["ext_grid_p_mw"] == pytest.approx(float(runpp(scaled).res_ext_grid.p_mw.iloc[0]), abs=1e-6)


def test_pcc_power_is_added_to_the_tn() -> None:
    grid = PhysicalGrid(make_case([make_adn("adn1")]))
    grid.set_dispatch(shipped_dispatch())
    grid.set_withdrawal("adn1", *nominal_withdrawal())
    out = grid.run()
    adn, tn = out["adns"]["adn1"], out["tn"]
    plain = float(runpp(case30()).res_ext_grid.p_mw.iloc[0])
    delta = tn["ext_grid_p_mw"] - plain
    assert delta == pytest.approx(adn["pcc_p_mw"], rel=0.06)  # plus the extra TN losses (~4.6%: case30 is loaded)
    assert delta > adn["pcc_p_mw"]
    exact = case30()
    pp.create_load(exact, TN_BUS, p_mw=adn["pcc_p_mw"], q_mvar=adn["pcc_q_mvar"])
    assert tn["ext_grid_p_mw"] == pytest.approx(float(runpp(exact).res_ext_grid.p_mw.iloc[0]), abs=1e-6)


def test_dispatch_moves_the_slack_and_rejects_unknown_generators() -> None:
    grid = PhysicalGrid(make_case([]))
    base = grid.run()["tn"]["ext_grid_p_mw"]
    grid.set_dispatch({"gen0": 50.97, "ext_grid": 123.0})  # 10 MW less on gen0; the slack's own entry is ignored
    assert grid.run()["tn"]["ext_grid_p_mw"] == pytest.approx(base + 10.0, abs=0.5)
    with pytest.raises(KeyError, match="gen99"):
        grid.set_dispatch({"gen99": 1.0})
    with pytest.raises(ValueError, match="shape"):
        PhysicalGrid(make_case([make_adn("a")])).set_withdrawal("a", [1.0, 2.0])


def test_non_convergence_is_recorded_not_fatal() -> None:
    grid = PhysicalGrid(make_case([make_adn("adn1"), make_adn("adn2", tn_bus=18)]))
    p, q = nominal_withdrawal()
    grid.set_withdrawal("adn1", p, q)
    grid.set_withdrawal("adn2", p, q)
    assert grid.run()["adns"]["adn1"]["converged"] == 1.0
    bad = p.copy()
    bad[17] = 1000.0
    grid.set_withdrawal("adn1", bad)
    out = grid.run()
    failed = out["adns"]["adn1"]
    assert failed["converged"] == 0.0
    assert all(math.isnan(failed[a]) for a in ADN_OUTPUTS if a != "converged")
    assert out["adns"]["adn2"]["converged"] == 1.0
    assert out["tn"]["adn_pcc_estimated"] == 1.0
    grid.set_withdrawal("adn1", p)  # recovers after a failed (not warm-startable) step
    out = grid.run()
    assert out["adns"]["adn1"]["converged"] == 1.0
    assert out["adns"]["adn1"]["vm_min_pu"] == pytest.approx(0.91309, abs=1e-5)
    assert out["tn"]["converged"] == 1.0 and out["tn"]["adn_pcc_estimated"] == 0.0


def test_branch_ratings_drive_line_loading() -> None:
    smax = 5.0
    grid = PhysicalGrid(make_case([make_adn("adn1", smax=smax)]))
    grid.set_withdrawal("adn1", *nominal_withdrawal())
    res = grid.run()["adns"]["adn1"]
    ref = runpp(case33bw())
    i_max_ka = smax / (math.sqrt(3) * 12.66)
    assert res["line_loading_max_pct"] == pytest.approx(100 * float(ref.res_line.i_ka.max()) / i_max_ka, rel=1e-6)


# --- mosaik ----------------------------------------------------------------------------------------------------------
DRIVER_META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Feeder": {"public": True, "params": ["factor"], "attrs": ["p", "q"]},
        "Dispatch": {"public": True, "params": [], "attrs": ["gen_mw", "scale"]},
    },
}


class Driver(mosaik_api_v3.Simulator):
    """Withdrawals scaled by (1 + t/10) per step, shipped dispatch, and a TN load scale of 1 - t/10."""

    def __init__(self) -> None:
        super().__init__(DRIVER_META)
        self.factors: dict[str, float] = {}
        self.time = 0

    def init(self, sid, time_resolution=1.0):
        return self.meta

    def create(self, num, model, factor=1.0):
        eid = f"{model}_{len(self.factors)}"
        self.factors[eid] = factor
        return [{"eid": eid, "type": model}]

    def step(self, time, inputs, max_advance):
        self.time = time
        return time + 1

    def get_data(self, outputs):
        p, q = nominal_withdrawal()
        k = 1 + self.time / 10
        data = {}
        for eid, attrs in outputs.items():
            f = self.factors[eid] * k
            values = {"p": list(p * f), "q": list(q * f), "gen_mw": shipped_dispatch(), "scale": 1 - self.time / 10}
            data[eid] = {a: values[a] for a in attrs}
        return data


def test_gridsim_mosaik_run() -> None:
    case = make_case([make_adn("adn1"), make_adn("adn2", tn_bus=18)])
    config = {
        "Driver": {"python": f"{__name__}:Driver"},
        "Grid": {"python": "simulators.grid:GridSim"},
        "Out": {"python": "mosaik.basic_simulators:OutputSimulator"},
    }
    with mosaik.World(config, skip_greetings=True, configure_logging=False) as world:
        driver = world.start("Driver")
        gridsim = world.start("Grid", case=case)
        out = world.start("Out")
        sink = out.Dict()
        feeders = {name: driver.Feeder(factor=f) for name, f in (("adn1", 1.0), ("adn2", 0.5))}
        for name, feeder in feeders.items():
            adn = gridsim.ADNGrid(adn=name)
            assert adn.eid == f"ADNGrid_{name}"
            world.connect(feeder, adn, ("p", "p_withdrawal_mw"), ("q", "q_withdrawal_mvar"))
            world.connect(adn, sink, *ADN_OUTPUTS)
        tn = gridsim.TNGrid()
        world.connect(driver.Dispatch(), tn, ("gen_mw", "gen_mw"), ("scale", "load_scale"))
        world.connect(tn, sink, *TN_OUTPUTS)
        world.run(until=T, print_progress=False)
        rec = out.get_dict(sink.eid)
    assert sorted(rec) == list(range(T))
    for t in range(T):
        step = rec[t]
        json.dumps(step)  # plain JSON-safe values only
        adn1 = step["vm_pu"]["Grid-0.ADNGrid_adn1"]
        assert isinstance(adn1, list) and len(adn1) == 33 and type(adn1[0]) is float
        p, q = nominal_withdrawal()
        direct = case33bw()
        direct.load["p_mw"] = p[direct.load.bus] * (1 + t / 10)
        direct.load["q_mvar"] = q[direct.load.bus] * (1 + t / 10)
        np.testing.assert_allclose(adn1, runpp(direct).res_bus.vm_pu.to_numpy(), atol=1e-8)
        assert step["converged"]["Grid-0.TNGrid_tn"] == 1.0
        assert step["pcc_p_mw"]["Grid-0.ADNGrid_adn2"] < step["pcc_p_mw"]["Grid-0.ADNGrid_adn1"]
    ext = [rec[t]["ext_grid_p_mw"]["Grid-0.TNGrid_tn"] for t in range(T)]
    assert ext[0] > ext[1] > ext[2]  # the TN load scale falls faster than the ADN withdrawals rise


def test_gridsim_get_data_returns_copies() -> None:
    sim = GridSim()
    sim.init("Grid-0", case=make_case([make_adn("adn1")]))
    sim.create(1, "ADNGrid", adn="adn1")
    sim.create(1, "TNGrid")
    with pytest.raises(ValueError, match="unknown ADN"):
        sim.create(1, "ADNGrid", adn="nope")
    p, q = nominal_withdrawal()
    sim.step(0, {"ADNGrid_adn1": {"p_withdrawal_mw": {"S.a": list(p / 2), "S.b": list(p / 2)}}}, 1)
    first = sim.get_data({"ADNGrid_adn1": ["vm_pu", "vm_min_pu"], "TNGrid_tn": ["ext_grid_p_mw"]})
    first["ADNGrid_adn1"]["vm_pu"][5] = -1.0
    again = sim.get_data({"ADNGrid_adn1": ["vm_pu", "vm_min_pu"]})
    assert again["ADNGrid_adn1"]["vm_pu"][5] > 0.9
    assert again["ADNGrid_adn1"]["vm_min_pu"] == pytest.approx(0.91309, abs=1e-5)  # two sources summed
    assert type(first["TNGrid_tn"]["ext_grid_p_mw"]) is float
