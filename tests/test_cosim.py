"""The mosaik co-simulation: agent physics, the agent/coordinator loop, fallbacks, and a small run end to end."""

from __future__ import annotations

import json
import types
from dataclasses import replace

import numpy as np
import pytest
from mosaik._debug import assert_graph

from coordinator.case import Bess
from coordinator.solvers.base import SolveOptions
from scenarios.config import build_case, load_scenario
from scenarios.runner import RunSettings, run_scenario
from simulators.coordinator_sim import SessionPlanner
from simulators.dso import Agent, apply_setpoint, follow_bess, make_offer
from simulators.recorder import read_attrs, read_run

BESS = Bess(bus=5, pmax=0.5, emax=1.8, emin=0.2, e0=1.0, eta_c=0.95, eta_d=0.9)


def small_adn(periods: int = 4):
    return build_case(load_scenario("small_2adn"), periods=periods).adns[0]


# --- agent physics -------------------------------------------------------------------------------------------------
def test_bess_follows_feasible_setpoint_with_model_efficiencies() -> None:
    ch, dis, e = follow_bess(BESS, 1.0, 0.4, 0.0, 0.5)
    assert (ch, dis) == (0.4, 0.0) and e == pytest.approx(1.0 + 0.5 * 0.95 * 0.4)
    ch, dis, e = follow_bess(BESS, 1.0, 0.0, 0.3, 1.0)
    assert (ch, dis) == (0.0, 0.3) and e == pytest.approx(1.0 - 0.3 / 0.9)


def test_infeasible_setpoint_is_clipped_not_fatal() -> None:
    ch, _, e = follow_bess(BESS, 1.7, 0.5, 0.0, 1.0)  # would reach 2.175 > emax
    assert e == pytest.approx(BESS.emax) and ch == pytest.approx(0.1 / 0.95)
    _, dis, e = follow_bess(BESS, 0.3, 0.0, 0.5, 1.0)  # would go below emin
    assert e == pytest.approx(BESS.emin) and dis == pytest.approx(0.1 * 0.9)
    ch, dis, _ = follow_bess(BESS, 1.0, 2.0, -1.0, 1.0)  # above pmax, negative
    assert (ch, dis) == (BESS.pmax, 0.0)


def test_apply_setpoint_records_deviation_and_withdrawals() -> None:
    adn = small_adn()
    agent = Agent(adn, np.random.default_rng(0), np.array([b.emax - 0.05 for b in adn.bess]))
    n = len(adn.bess)
    sp = {"bess_ch_mw": [0.5] * n, "bess_dis_mw": [0.0] * n, "soc_mwh": [b.emax for b in adn.bess],
          "pv_cap_mw": [0.0] + [None] * (len(adn.pv_bus) - 1), "pcc_mw": 1.0}
    out = apply_setpoint(agent, 1, sp, 1.0, "DSO_test")
    assert out["bess_clipped_mw"] > 0.4  # 0.5 MW asked, about 0.05 MWh of room
    assert np.allclose(out["soc_mwh"], [b.emax for b in adn.bess])
    assert np.allclose(out["soc_deviation_mwh"], 0.0, atol=1e-9)
    p = np.array(out["p_withdrawal_mw"])
    expected = adn.load_p[1].copy()
    for k, bus in enumerate(adn.pv_bus):
        expected[adn.buses.index(bus)] -= 0.0 if k == 0 else adn.pv_avail[1, k]
    for b, bess in enumerate(adn.bess):
        expected[adn.buses.index(bess.bus)] += out["bess_ch_mw"][b]
    assert np.allclose(p, expected)
    assert out["curtailment_mw"] == pytest.approx(adn.pv_avail[1, 0])
    assert out["net_withdrawal_mw"] == pytest.approx(p.sum())


def test_offer_forecast_perfect_by_default_and_seeded_noise() -> None:
    adn = small_adn()
    soc = np.array([b.e0 for b in adn.bess])
    agent = Agent(adn, np.random.default_rng([1, 0]), soc, extra={adn.buses[3]: 0.2})
    offer = make_offer(agent, 1, 3, 0.0)
    expected = adn.load_p[1:4].copy()
    expected[:, 3] += 0.2  # extra (plugin) load held over the horizon
    assert np.allclose(offer["load_p"], expected) and np.allclose(offer["pv_avail"], adn.pv_avail[1:4])
    json.dumps(offer)  # JSON-safe for remote simulators
    noisy = [make_offer(Agent(adn, np.random.default_rng([1, 0]), soc), 0, 3, 0.05)["load_p"] for _ in range(2)]
    assert noisy[0] == noisy[1] and not np.allclose(noisy[0], adn.load_p[:3])


# --- the loop ------------------------------------------------------------------------------------------------------
class NoPlan:
    """A planner that never finds a plan (every step falls back)."""

    def plan(self, case):
        return {"status": "no_solution", "message": "stub", "solver": "stub"}


def expected_graph(steps: int, step: int = 3600) -> str:
    edges = []
    for k in range(steps):
        t = k * step
        edges += [f"DSO-0~{t}:0 Coordinator-0~{t}:0", f"TSO-0~{t}:0 Coordinator-0~{t}:0",
                  f"Coordinator-0~{t}:0 DSO-0~{t}:1", f"Coordinator-0~{t}:0 TSO-0~{t}:1",
                  f"DSO-0~{t}:1 Grid-0~{t}", f"TSO-0~{t}:1 Grid-0~{t}",
                  f"Coordinator-0~{t}:0 Recorder-0~{t}", f"DSO-0~{t}:1 Recorder-0~{t}",
                  f"TSO-0~{t}:1 Recorder-0~{t}", f"Grid-0~{t} Recorder-0~{t}"]
        if k:
            edges += [f"DSO-0~{t - step}:0 DSO-0~{t}:0", f"TSO-0~{t - step}:0 TSO-0~{t}:0"]
    return "\n".join(edges)


def test_loop_execution_graph(tmp_path) -> None:
    """Agents offer at t:0, the coordinator plans once, the weak edge re-steps the agents at t:1 and ends the loop;
    the grid and the recorder (outside the group) see only the converged t:1 values."""
    res = run_scenario(load_scenario("small_2adn"), RunSettings(hours=3, horizon_hours=2, planner=NoPlan(),
                                                                output=tmp_path / "g.h5", debug=True))
    assert_graph(types.SimpleNamespace(execution_graph=res.execution_graph), expected_graph(3))
    data = read_run(tmp_path / "g.h5")
    assert list(data["/time"]) == [0, 3600, 7200]
    assert list(data["/Coordinator/hub/fallback"]) == [2, 2, 2]  # no plan at all: passive
    assert np.all(data["/DSO/adn1/bess_ch_mw"] == 0) and np.all(data["/DSO/adn1/curtailment_mw"] == 0)


class FailAfterFirst:
    """The real planner once, then failures: exercises 'previous plan shifted' and then 'passive'."""

    def __init__(self) -> None:
        self.inner = SessionPlanner(SolveOptions(solver="fast", time_limit=60))
        self.first: dict | None = None

    def plan(self, case):
        if self.first is None:
            self.first = self.inner.plan(case)
            return self.first
        raise RuntimeError("solver crashed")


def test_fallback_shifted_plan_then_passive(tmp_path) -> None:
    planner = FailAfterFirst()
    run_scenario(load_scenario("small_2adn"), RunSettings(hours=3, horizon_hours=2, planner=planner,
                                                          output=tmp_path / "f.h5"))
    data = read_run(tmp_path / "f.h5")
    assert list(data["/Coordinator/hub/status"]) == [planner.first["status"], "error", "error"]
    assert list(data["/Coordinator/hub/fallback"]) == [0, 1, 2]
    assert list(data["/DSO/adn5/plan_fallback"]) == [0, 1, 2]
    assert "solver crashed" in data["/Coordinator/hub/message"][1]
    first = {a["name"]: a for a in planner.first["adns"]}
    for name in ("adn1", "adn5"):  # step 1 applies period 1 of the step-0 plan
        assert data[f"/DSO/{name}/pcc_schedule_mw"][:2] == pytest.approx(first[name]["pcc_mw"][:2])
        planned = np.array([b["charge_mw"][1] for b in first[name]["bess"]])
        assert np.allclose(data[f"/DSO/{name}/bess_ch_mw"][1], np.clip(planned, 0, None), atol=1e-9)


# --- end to end -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "small.h5"
    steps: list[dict] = []
    res = run_scenario(load_scenario("small_2adn"),
                       RunSettings(hours=3, horizon_hours=3, solver="fast", time_limit=60, output=path,
                                   on_step=lambda k, n, stats: steps.append(dict(stats))))
    return res, read_run(path), steps


def test_run_records_every_step(small_run) -> None:
    res, data, steps = small_run
    assert list(data["/time"]) == [0, 3600, 7200] and len(steps) == 3
    for key, values in data.items():
        if key.startswith(("/DSO/", "/ADNGrid/", "/TNGrid/", "/ADNPlan/")):
            assert np.isfinite(np.asarray(values, dtype=float)).all(), key
    assert set(data["/Coordinator/hub/status"]) <= {"optimal", "feasible"}
    assert np.all(data["/Coordinator/hub/fallback"] == 0)
    assert np.all(np.isfinite(data["/Coordinator/hub/solve_time_s"]))
    attrs = read_attrs(res.path)
    assert json.loads(attrs["scenario"])["name"] == "small_2adn"
    assert json.loads(attrs["run"])["horizon"] == 3
    assert {"version_mosaik", "version_pandapower", "version_pyomo"} <= set(attrs)
    assert res.summary["steps"] == 3 and res.summary["fallback_steps"] == 0


def test_soc_follows_the_plan(small_run) -> None:
    _, data, _ = small_run
    for name in ("adn1", "adn5"):
        soc, plan = data[f"/DSO/{name}/soc_mwh"], data[f"/ADNPlan/{name}/soc_mwh"]
        assert np.allclose(soc, plan, atol=1e-6)
        ch, dis = data[f"/DSO/{name}/bess_ch_mw"], data[f"/DSO/{name}/bess_dis_mw"]
        e0 = np.r_[[[1.0] * soc.shape[1]], soc[:-1]]  # placement e0 = 1.0 MWh
        assert np.allclose(soc, e0 + 0.95 * ch - dis / 0.95, atol=1e-9)
        assert np.all(data[f"/DSO/{name}/bess_clipped_mw"] < 1e-6)


def test_ac_pcc_power_matches_the_planned_schedule(small_run) -> None:
    _, data, _ = small_run
    for name in ("adn1", "adn5"):
        ac, plan = data[f"/ADNGrid/{name}/pcc_p_mw"], data[f"/ADNPlan/{name}/pcc_mw"]
        assert np.all(np.abs(ac - plan) <= 0.05 + 0.05 * np.abs(plan)), (ac, plan)
    assert np.all(data["/TNGrid/tn/converged"] == 1)
    gens = [k for k in data if k.startswith("/TSO/tn/gen_mw/")]
    assert gens and all(np.isfinite(data[k]).all() for k in gens)


def test_default_case_three_steps_15min(tmp_path) -> None:
    """The 5-ADN default case at a 15-minute step for 45 minutes (3 steps) with a 1 h horizon."""
    cfg = load_scenario("ieee30_5adn")
    res = run_scenario(replace(cfg, start_hour=12.0), RunSettings(hours=0.75, step="15min", horizon_hours=1,
                                                                  output=tmp_path / "d.h5"))
    data = read_run(res.path)
    assert list(data["/time"]) == [0, 900, 1800]
    assert np.all(data["/Coordinator/hub/fallback"] == 0)
