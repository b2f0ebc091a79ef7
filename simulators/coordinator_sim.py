"""The coordinator: each step it plans a receding horizon with the DSO-led MISOCP and sends period 0 back.

Entities: one ``Coordinator_hub`` (receives every agent's ``offer`` and the TSO's ``tn_offer``, outputs per-step solve
statistics), one ``ADNPlan_<adn>`` per DSO agent and one ``TNPlan_tn`` for the TSO. One setpoint entity per agent
because mosaik sends one output attribute unchanged to every destination (docs/cosimulation.md). The setpoints go
back over weak edges inside the agents' group: a same-time loop.

Each step: the case of the horizon (``build_case(..., periods=H, start_hour=now)``) with the agents' forecasts and
measured SoC as ``e0`` -> ``PlanningSession.solve`` (one session built at the first step and re-used, so the
Pyomo model is built once per run). Fallback policy, recorded as the hub's ``status`` and ``fallback``:

- ``optimal`` / ``feasible`` (limit hit, incumbent loaded): use the solve; ``fallback = 0``;
- no solution (time limit, infeasible, solver error): the last plan shifted by one period, ``fallback = 1``;
- no usable plan at all: a passive plan (BESS idle, no curtailment, no trades; the TN keeps its dispatch),
  ``fallback = 2``.
The run continues in every case.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time as _time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import mosaik_api_v3
import numpy as np
from loguru import logger

from coordinator.case import Case
from coordinator.solvers.base import SolveOptions
from simulators.tso import grid_gen_name

HUB = "Coordinator_hub"
TN_PLAN = "TNPlan_tn"
PV_CAP_TOL = 1e-6  # MW: planned PV below availability by more than this is a curtailment order

STATS = [
    "status", "fallback", "plan_age", "message", "solver", "objective", "bound", "mip_gap",
    "solve_time_s", "solver_time_s", "model_time_s", "case_time_s", "post_time_s", "step_time_s",
    "variables", "binaries", "constraints", "cones",
    "soc_gap_max", "soc_gap_first_period", "follower_cost_rel_gap", "ac_voltage_error_max_pu",
]
CHECKS = ("soc_gap_max", "soc_gap_first_period", "follower_cost_rel_gap", "ac_voltage_error_max_pu")
ADN_PLAN_OUT = ["setpoint", "pcc_mw", "bess_ch_mw", "bess_dis_mw", "soc_mwh", "pv_used_mw", "curtailment_mw",
                "p2p_intra_mw", "p2p_inter_in_mw", "p2p_inter_out_mw", "losses_mw", "v_min_pu", "v_max_pu",
                "retail_mw"]  # retail_mw: prosumers' retail import + export of the period (for the run's DSO cost)
TN_PLAN_OUT = ["dispatch", "gen_mw", "lmp", "generation_cost"]
META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "Hub": {"public": True, "params": [], "attrs": ["offer", "tn_offer", *STATS]},
        "ADNPlan": {"public": True, "params": ["adn"], "attrs": ADN_PLAN_OUT},
        "TNPlan": {"public": True, "params": [], "attrs": TN_PLAN_OUT},
    },
}


class Planner(Protocol):
    """Anything that turns a horizon case into the result dict of ``coordinator.results.collect``."""

    def plan(self, case: Case) -> dict: ...


class SessionPlanner:
    """The default planner: one :class:`PlanningSession` built at the first call and re-used for every step."""

    def __init__(self, options: SolveOptions, formulation: Any = None, load_peaks: list | None = None) -> None:
        """``load_peaks``: per ADN the largest loads of the run (sizes the model's big-M once)."""
        self.options, self.formulation, self.load_peaks = options, formulation, load_peaks
        self.session: Any = None

    def plan(self, case: Case) -> dict:
        from coordinator.session import PlanningSession

        if self.session is None:
            self.session = PlanningSession(case, self.formulation, self.options, self.load_peaks)
        return self.session.solve(case, ac_periods=[0])  # model_time_s: this step's build or update


CaseFactory = Callable[[int, float], Case]  # (periods, start_hour) -> case with the scenario's structure


class CoordinatorSim(mosaik_api_v3.Simulator):
    """init params: ``case_factory`` (periods, start_hour of day -> :class:`Case`), ``horizon``, ``step_seconds``,
    ``step_hours``, ``start_hour`` (of mosaik time 0), ``planner`` (:class:`Planner`; default
    :class:`SessionPlanner` with ``options``, ``formulation`` and ``load_peaks``), ``options`` (:class:`SolveOptions`),
    ``on_step`` (progress callback), ``load_peaks`` (per ADN, the run's largest loads per bus)."""

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))
        self.case_factory: CaseFactory | None = None
        self.planner: Planner | None = None
        self.horizon, self.step_seconds, self.dt, self.start_hour = 24, 3600, 1.0, 0.0
        self.adn_eids: dict[str, str] = {}  # adn name -> ADNPlan eid
        self._hub = False
        self._tn = False
        self._plan: tuple[dict, int] | None = None  # (result with a solution, period it was made for)
        self._stats: dict[str, Any] = {}
        self._adn_out: dict[str, dict[str, Any]] = {}
        self._tn_out: dict[str, Any] = {}
        self.on_step: Callable[[int, Mapping[str, Any]], None] | None = None  # progress report after each plan

    def init(self, sid: str, time_resolution: float = 1.0, case_factory: CaseFactory | None = None,
             horizon: int = 24, step_seconds: int = 3600, step_hours: float = 1.0, start_hour: float = 0.0,
             planner: Planner | None = None, options: SolveOptions | None = None, formulation: Any = None,
             on_step: Callable[[int, Mapping[str, Any]], None] | None = None, load_peaks: list | None = None) -> dict:
        if case_factory is None:
            raise ValueError("CoordinatorSim needs case_factory (start it in-process)")
        self.case_factory = case_factory
        self.horizon, self.step_seconds = int(horizon), int(step_seconds)
        self.dt, self.start_hour = float(step_hours), float(start_hour)
        self.planner = planner or SessionPlanner(options or SolveOptions(), formulation, load_peaks)
        self.on_step = on_step
        return self.meta

    def create(self, num: int, model: str, adn: str | None = None) -> list[dict]:
        if num != 1:
            raise ValueError("create coordinator entities one at a time")
        if model == "Hub":
            if self._hub:
                raise ValueError("one Hub per coordinator")
            self._hub, eid = True, HUB
        elif model == "TNPlan":
            if self._tn:
                raise ValueError("one TNPlan per coordinator")
            self._tn, eid = True, TN_PLAN
        else:
            if not adn or adn in self.adn_eids:
                raise ValueError(f"ADNPlan needs a new ADN name, got {adn!r}")
            eid = self.adn_eids[adn] = f"ADNPlan_{adn}"
        return [{"eid": eid, "type": model}]

    def step(self, time: int, inputs: dict, max_advance: int) -> None:
        hub = inputs.get(HUB, {})
        offers = {o["adn"]: o for o in hub.get("offer", {}).values() if o}
        tn_offers = [o for o in hub.get("tn_offer", {}).values() if o]
        if not offers and not tn_offers:
            self._stats, self._adn_out, self._tn_out = {}, {}, {}
            return None
        missing = sorted(set(self.adn_eids) - set(offers))
        if missing or len(tn_offers) != 1:
            raise RuntimeError(f"coordinator at t={time}: missing offers from {missing or 'the TSO'}")
        k = time // self.step_seconds
        self.plan_step(k, offers, tn_offers[0])
        return None

    # --- one planning step ---------------------------------------------------------------------------------------
    def plan_step(self, k: int, offers: Mapping[str, Mapping], tn_offer: Mapping) -> None:
        t0 = _time.perf_counter()
        case = self.horizon_case(k, offers, tn_offer)
        t1 = _time.perf_counter()
        try:
            result = self._planner().plan(case)
        except Exception as exc:  # a broken solve must not end the run: fall back and say why
            logger.warning(f"coordinator step {k}: solve failed: {type(exc).__name__}: {exc}")
            result = {"status": "error", "message": f"{type(exc).__name__}: {exc}", "solver": "?"}
        t2 = _time.perf_counter()
        solved = "adns" in result
        if solved:
            self._plan = (result, k)
        plan, age = self._plan if self._plan is not None else (None, k)
        offset = k - age
        fallback = 0 if solved else 1
        if plan is None or offset >= plan["periods"]:
            plan, fallback = None, 2
        if fallback:
            logger.warning(f"coordinator step {k}: status {result.get('status')} -> "
                           + ("previous plan shifted" if fallback == 1 else "passive plan (no plan available)"))
        for a, adn in enumerate(case.adns):
            if plan is not None:
                index = {r["name"]: i for i, r in enumerate(plan["adns"])}
                self._adn_out[adn.name] = adn_plan(plan["adns"][index[adn.name]], offset, fallback)
            else:
                self._adn_out[adn.name] = passive_adn_plan(case, a)
        self._tn_out = tn_plan(plan["tn"], offset, case) if plan is not None else {"dispatch": {}}
        self._stats = step_stats(result, fallback, offset if plan is not None else -1)
        self._stats["case_time_s"] = t1 - t0
        self._stats["step_time_s"] = _time.perf_counter() - t0
        known = sum(self._stats.get(x) or 0.0 for x in ("solve_time_s", "model_time_s"))
        self._stats["post_time_s"] = max(0.0, (t2 - t1) - known) + (_time.perf_counter() - t2)
        if self.on_step is not None:
            self.on_step(k, dict(self._stats))

    def horizon_case(self, k: int, offers: Mapping[str, Mapping], tn_offer: Mapping) -> Case:
        """The scenario's case for ``H`` periods from period ``k``, with the agents' forecasts and measured SoC."""
        hour = (self.start_hour + k * self.dt) % 24.0
        base = self._factory()(self.horizon, hour)
        adns = []
        for adn in base.adns:
            o = offers[adn.name]
            soc = o["soc_mwh"]
            bess = [dataclasses.replace(b, e0=float(min(max(e, b.emin), b.emax))) for b, e in zip(adn.bess, soc,
                                                                                                 strict=True)]
            adns.append(dataclasses.replace(adn, load_p=_matrix(o["load_p"], adn.load_p.shape, adn.name),
                                            load_q=_matrix(o["load_q"], adn.load_q.shape, adn.name),
                                            pv_avail=_matrix(o["pv_avail"], adn.pv_avail.shape, adn.name),
                                            bess=bess))
        scale = np.asarray(tn_offer["load_scale"], dtype=float)
        if scale.shape != base.tn.load_scale.shape:
            raise ValueError(f"TN load-scale forecast has shape {scale.shape}, expected {base.tn.load_scale.shape}")
        case = dataclasses.replace(base, adns=adns, tn=dataclasses.replace(base.tn, load_scale=scale))
        case.validate()
        return case

    def get_data(self, outputs: dict) -> dict:
        data: dict[str, dict[str, Any]] = {}
        for eid, attrs in outputs.items():
            if eid == HUB:
                src = self._stats
            elif eid == TN_PLAN:
                src = self._tn_out
            else:
                src = self._adn_out.get(eid.removeprefix("ADNPlan_"), {})
            data[eid] = {a: copy.deepcopy(src[a]) for a in attrs if a in src and src[a] is not None}
        return data

    def _planner(self) -> Planner:
        if self.planner is None:
            raise RuntimeError("CoordinatorSim.init has not run")
        return self.planner

    def _factory(self) -> CaseFactory:
        if self.case_factory is None:
            raise RuntimeError("CoordinatorSim.init has not run")
        return self.case_factory


# --- result dict -> setpoints (plain functions) ---------------------------------------------------------------
def adn_plan(r: Mapping[str, Any], p: int, fallback: int) -> dict[str, Any]:
    """Period ``p`` of one ADN's plan: the setpoint for its agent plus flat values for the recorder."""
    caps = [pv["used_mw"][p] if pv["used_mw"][p] < pv["available_mw"][p] - PV_CAP_TOL else None for pv in r["pv"]]
    sp = {
        "pcc_mw": r["pcc_mw"][p],
        "bess_ch_mw": [b["charge_mw"][p] for b in r["bess"]],
        "bess_dis_mw": [b["discharge_mw"][p] for b in r["bess"]],
        "soc_mwh": [b["soc_mwh"][p] for b in r["bess"]],
        "pv_cap_mw": caps,
        "p2p_intra_mw": r["p2p_intra_mw"][p],
        "p2p_inter_in_mw": r["p2p_inter_in_mw"][p],
        "p2p_inter_out_mw": r["p2p_inter_out_mw"][p],
        "fallback": fallback,
    }
    flat = {key: sp[key] for key in ("pcc_mw", "bess_ch_mw", "bess_dis_mw", "soc_mwh", "p2p_intra_mw",
                                     "p2p_inter_in_mw", "p2p_inter_out_mw")}
    return {"setpoint": sp, **flat, "pv_used_mw": r["pv_used_mw"][p],
            "curtailment_mw": r["pv_available_mw"][p] - r["pv_used_mw"][p], "losses_mw": r["losses_mw"][p],
            "v_min_pu": r["v_min_pu"][p], "v_max_pu": r["v_max_pu"][p],
            "retail_mw": r["retail_import_mw"][p] + r["retail_export_mw"][p] if "retail_import_mw" in r else None}


def passive_adn_plan(case: Case, a: int) -> dict[str, Any]:
    """No plan at all: BESS idle, PV uncurtailed, no trades; the PCC schedule is the forecast net load (lossless)."""
    adn = case.adns[a]
    pcc = float(adn.load_p[0].sum() - adn.pv_avail[0].sum())
    n = len(adn.bess)
    sp = {"pcc_mw": pcc, "bess_ch_mw": [0.0] * n, "bess_dis_mw": [0.0] * n, "soc_mwh": [b.e0 for b in adn.bess],
          "pv_cap_mw": [None] * len(adn.pv_bus), "p2p_intra_mw": 0.0, "p2p_inter_in_mw": 0.0,
          "p2p_inter_out_mw": 0.0, "fallback": 2}
    return {"setpoint": sp, "pcc_mw": pcc, "bess_ch_mw": sp["bess_ch_mw"], "bess_dis_mw": sp["bess_dis_mw"],
            "soc_mwh": sp["soc_mwh"], "pv_used_mw": float(adn.pv_avail[0].sum()), "curtailment_mw": 0.0}


def tn_plan(tn: Mapping[str, Any], p: int, case: Case) -> dict[str, Any]:
    """Period ``p`` of the TN plan: dispatch (grid names ``gen<idx>``), LMPs and the generation cost rate ($/h)."""
    gen = {grid_gen_name(k): v[p] for k, v in tn["gen_mw"].items()}
    lmp = {k: v[p] for k, v in tn["lmp"].items()}
    cost = sum(g.alpha * mw**2 + g.beta * mw for g, mw in zip(case.tn.gens, gen.values(), strict=True))
    dispatch = {"gen_mw": gen, "lmp": lmp, "generation_cost": cost}
    return {"dispatch": dispatch, "gen_mw": gen, "lmp": lmp, "generation_cost": cost}


def step_stats(result: Mapping[str, Any], fallback: int, plan_age: int) -> dict[str, Any]:
    size = result.get("model") or {}
    checks = result.get("checks") or {}
    return {
        "status": str(result.get("status", "?")),
        "fallback": fallback,
        "plan_age": plan_age,
        "message": str(result.get("message") or ""),
        "solver": str(result.get("solver") or ""),
        "objective": _num(result.get("objective")),
        "bound": _num(result.get("bound")),
        "mip_gap": _num(result.get("mip_gap")),
        "solve_time_s": _num(result.get("solve_time_s")),
        "solver_time_s": _num(result.get("solver_time_s")),
        "model_time_s": _num(result.get("model_time_s", result.get("build_time_s"))),
        **{key: _num(size.get(key)) for key in ("variables", "binaries", "constraints", "cones")},
        **{key: _num(checks.get(key)) for key in CHECKS},
    }


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _matrix(values: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.shape != shape:
        raise ValueError(f"{name}: forecast has shape {arr.shape}, expected {shape}")
    return arr
