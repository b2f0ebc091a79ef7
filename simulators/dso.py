"""DSO agents: one mosaik simulator, one ``DSOAgent`` entity per ADN.

One simulator hosts every agent because many simulators cost far more than many entities (docs/cosimulation.md).
Profiles live here too, not in a separate profiles simulator: the agent owns its ADN's loads and PV, so it is the
natural owner of their actuals and forecasts, and one fewer simulator means one fewer data hop per step.

Each step is a same-time loop with the coordinator over weak edges in one group (docs/cosimulation.md, "One step"):

1. regular step at ``t`` (self-scheduled): emit ``offer`` = forecasts for the horizon, measured SoC, P2P position;
   return ``t + step``.
2. weak-triggered step at ``t`` (``setpoint`` from the coordinator): apply BESS power, PV cap and trades to the
   actual load and PV of period ``t``, update the SoC with the model's efficiencies, emit the applied net withdrawals
   per bus for the grid simulator; return None, which ends the loop.

A setpoint the battery cannot follow (SoC would leave [emin, emax], power above pmax) is clipped, logged and
recorded as a deviation; it never stops the run.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mosaik_api_v3
import numpy as np
from loguru import logger

from coordinator.case import DistributionNetwork

TOL_MWH = 1e-6  # SoC slack below which a clip is numerical noise, not a deviation

OUTPUTS = [
    "offer",  # non-persistent: forecasts + measured state for the coordinator
    "p_withdrawal_mw",  # per bus (adn.buses order): load + extra - pv - discharge + charge
    "q_withdrawal_mvar",
    "load_mw",  # total actual load incl. extra (plugin) load
    "extra_load_mw_total",
    "pv_available_mw",
    "pv_used_mw",
    "curtailment_mw",
    "bess_ch_mw",  # per BESS, applied
    "bess_dis_mw",
    "soc_mwh",  # per BESS, end of the period
    "soc_plan_mwh",  # per BESS, what the coordinator planned for the end of the period
    "soc_deviation_mwh",  # per BESS, applied - planned
    "bess_clipped_mw",  # sum over BESS of |setpoint - applied| (0 when the setpoint was feasible)
    "net_withdrawal_mw",  # sum of p_withdrawal_mw: lossless estimate of the PCC power
    "pcc_schedule_mw",  # the planned PCC power of the period
    "p2p_intra_mw",
    "p2p_inter_in_mw",
    "p2p_inter_out_mw",
    "p2p_position_mwh",  # cumulative net inter-ADN sales (out - in)
    "plan_fallback",  # 0 solved plan, 1 previous plan shifted, 2 passive (no plan)
]
INPUTS = ["setpoint", "extra_load_mw"]

META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "DSOAgent": {
            "public": True,
            "params": ["adn"],
            "attrs": INPUTS + OUTPUTS,
            "trigger": ["setpoint"],
            "non-persistent": ["offer"],
        },
    },
}


@dataclass(frozen=True)
class ForecastNoise:
    """Multiplicative Gaussian forecast error ``x * (1 + sigma * N(0, 1))``, clipped at 0; sigma 0 = perfect."""

    sigma: float = 0.0
    seed: int | None = None

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng(None if self.seed is None else [self.seed, salt])


@dataclass
class Agent:
    """State of one ADN: actual data for every period of the run (plus the last horizon) and BESS energy."""

    adn: DistributionNetwork
    rng: np.random.Generator
    soc: np.ndarray
    extra: dict[int, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    offer: dict[str, Any] | None = None
    p2p_position: float = 0.0

    def bus_pos(self, bus: int) -> int:
        return self.adn.buses.index(bus)


class DSOSim(mosaik_api_v3.Simulator):
    """mosaik front end; entities ``DSO_<adn name>``.

    init params: ``adns`` (list of :class:`DistributionNetwork` with data for ``steps + horizon - 1`` periods,
    period 0 = mosaik time 0; BESS ``e0`` is the starting SoC), ``step_seconds``, ``step_hours``, ``horizon``,
    ``noise`` (:class:`ForecastNoise`), ``p2p_positions`` (ADN -> starting P2P position, MWh; resumed runs).
    """

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))
        self.agents: dict[str, Agent] = {}
        self._adns: dict[str, DistributionNetwork] = {}
        self.step_seconds = 3600
        self.dt = 1.0
        self.horizon = 1
        self.noise = ForecastNoise()
        self._regular_time: int | None = None
        self._p2p_start: dict[str, float] = {}

    def init(self, sid: str, time_resolution: float = 1.0, adns: list[DistributionNetwork] | None = None,
             step_seconds: int = 3600, step_hours: float = 1.0, horizon: int = 24,
             noise: ForecastNoise | None = None, p2p_positions: Mapping[str, float] | None = None) -> dict:
        if not adns:
            raise ValueError("DSOSim needs the ADNs (start it in-process with adns=[...])")
        self._adns = {a.name: a for a in adns}
        self.step_seconds, self.dt, self.horizon = int(step_seconds), float(step_hours), int(horizon)
        self.noise = noise or ForecastNoise()
        self._p2p_start = dict(p2p_positions or {})  # a resumed run continues the positions
        return self.meta

    def create(self, num: int, model: str, adn: str | None = None) -> list[dict]:
        if num != 1:
            raise ValueError("create DSO agents one at a time (one per ADN)")
        if adn not in self._adns:
            raise ValueError(f"unknown ADN {adn!r}; known: {sorted(self._adns)}")
        eid = f"DSO_{adn}"
        if eid in self.agents:
            raise ValueError(f"{eid} exists already")
        net = self._adns[adn]
        soc = np.array([b.e0 for b in net.bess], dtype=float)
        self.agents[eid] = Agent(net, self.noise.rng(len(self.agents)), soc,
                                 p2p_position=float(self._p2p_start.get(adn, 0.0)))
        return [{"eid": eid, "type": model}]

    # --- stepping --------------------------------------------------------------------------------------------------
    def step(self, time: int, inputs: dict, max_advance: int) -> int | None:
        k = time // self.step_seconds
        weak = self._regular_time == time
        for eid, agent in self.agents.items():
            attrs = inputs.get(eid, {})
            if "extra_load_mw" in attrs:
                agent.extra = _sum_bus_dicts(attrs["extra_load_mw"], agent.adn, eid)
            setpoints = [v for v in attrs.get("setpoint", {}).values() if v is not None]
            if weak and setpoints:
                if len(setpoints) > 1:
                    raise ValueError(f"{eid}: {len(setpoints)} setpoint sources; expected one coordinator")
                agent.outputs = apply_setpoint(agent, k, setpoints[0], self.dt, eid)
                agent.offer = None
        if weak:
            return None
        self._regular_time = time
        for agent in self.agents.values():
            agent.offer = make_offer(agent, k, self.horizon, self.noise.sigma)
        return time + self.step_seconds

    def get_data(self, outputs: dict) -> dict:
        return {eid: agent_values(attrs, self.agents[eid].offer, self.agents[eid].outputs)
                for eid, attrs in outputs.items()}


def agent_values(attrs, offer: Any, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's requested outputs: the offer only while one is pending (it ends the same-time loop), the rest
    as copies (in-process values are shared references)."""
    values: dict[str, Any] = {}
    for attr in attrs:
        if attr == "offer":
            if offer is not None:
                values[attr] = offer
        elif attr in outputs:
            values[attr] = copy.deepcopy(outputs[attr])
    return values


# --- the agent's physics and forecasts (plain functions, testable without mosaik) ------------------------------------
def extra_load_vector(agent: Agent) -> np.ndarray:
    out = np.zeros(len(agent.adn.buses))
    for bus, mw in agent.extra.items():
        out[agent.bus_pos(bus)] += mw
    return out


def make_offer(agent: Agent, k: int, horizon: int, sigma: float) -> dict[str, Any]:
    """Forecasts for periods ``k .. k+horizon-1`` (extra load held at its current value), SoC, P2P position."""
    adn = agent.adn
    sl = slice(k, k + horizon)
    load_p, load_q, pv = adn.load_p[sl].copy(), adn.load_q[sl].copy(), adn.pv_avail[sl].copy()
    if load_p.shape[0] != horizon:
        raise ValueError(f"{adn.name}: no data for periods {k}..{k + horizon - 1} (have {adn.load_p.shape[0]})")
    if sigma > 0:
        err = 1.0 + sigma * agent.rng.standard_normal(load_p.shape)
        load_p, load_q = np.clip(load_p * err, 0, None), np.clip(load_q * err, 0, None)
        pv = np.clip(pv * (1.0 + sigma * agent.rng.standard_normal(pv.shape)), 0, np.asarray(adn.pv_peak))
    load_p = load_p + extra_load_vector(agent)[None, :]
    return {
        "adn": adn.name,
        "period": k,
        "soc_mwh": [float(x) for x in agent.soc],
        "load_p": load_p.tolist(),
        "load_q": load_q.tolist(),
        "pv_avail": pv.tolist(),
        "extra_load_mw": {str(b): float(v) for b, v in agent.extra.items()},
        "p2p_position_mwh": agent.p2p_position,
    }


def apply_setpoint(agent: Agent, k: int, sp: Mapping[str, Any], dt: float, eid: str) -> dict[str, Any]:
    """Apply one period's setpoint to the actual load and PV of period ``k``; returns the agent's outputs."""
    adn = agent.adn
    n_bess = len(adn.bess)
    ch_sp = np.asarray(sp.get("bess_ch_mw") or [0.0] * n_bess, dtype=float)
    dis_sp = np.asarray(sp.get("bess_dis_mw") or [0.0] * n_bess, dtype=float)
    soc_plan = sp.get("soc_mwh")
    ch, dis, soc = np.zeros(n_bess), np.zeros(n_bess), agent.soc.copy()
    for b, bess in enumerate(adn.bess):
        ch[b], dis[b], soc[b] = follow_bess(bess, agent.soc[b], ch_sp[b], dis_sp[b], dt)
    clipped = float(np.abs(ch - ch_sp).sum() + np.abs(dis - dis_sp).sum())
    if clipped > TOL_MWH / dt:
        logger.warning(f"{eid} period {k}: BESS setpoint not feasible (SoC {agent.soc.round(4).tolist()} MWh, "
                       f"ch {ch_sp.round(4).tolist()} dis {dis_sp.round(4).tolist()} MW); clipped by {clipped:.4g} MW")
    agent.soc = soc

    avail = np.asarray(adn.pv_avail[k], dtype=float)
    caps = sp.get("pv_cap_mw") or [None] * len(avail)
    used = np.array([a if c is None else min(a, max(float(c), 0.0)) for a, c in zip(avail, caps, strict=True)])

    extra = extra_load_vector(agent)
    p = np.asarray(adn.load_p[k], dtype=float) + extra
    for j, bus in enumerate(adn.pv_bus):
        p[agent.bus_pos(bus)] -= used[j]
    for b, bess in enumerate(adn.bess):
        p[agent.bus_pos(bess.bus)] += ch[b] - dis[b]
    q = np.asarray(adn.load_q[k], dtype=float)

    inter_in, inter_out = float(sp.get("p2p_inter_in_mw", 0.0)), float(sp.get("p2p_inter_out_mw", 0.0))
    agent.p2p_position += (inter_out - inter_in) * dt
    plan = np.asarray(soc_plan, dtype=float) if soc_plan is not None else np.full(n_bess, np.nan)
    return {
        "p_withdrawal_mw": [float(x) for x in p],
        "q_withdrawal_mvar": [float(x) for x in q],
        "load_mw": float(adn.load_p[k].sum() + extra.sum()),
        "extra_load_mw_total": float(extra.sum()),
        "pv_available_mw": float(avail.sum()),
        "pv_used_mw": float(used.sum()),
        "curtailment_mw": float(avail.sum() - used.sum()),
        "bess_ch_mw": [float(x) for x in ch],
        "bess_dis_mw": [float(x) for x in dis],
        "soc_mwh": [float(x) for x in soc],
        "soc_plan_mwh": [float(x) for x in plan],
        "soc_deviation_mwh": [float(x) for x in soc - plan],
        "bess_clipped_mw": clipped,
        "net_withdrawal_mw": float(p.sum()),
        "pcc_schedule_mw": float(sp.get("pcc_mw", np.nan)),
        "p2p_intra_mw": float(sp.get("p2p_intra_mw", 0.0)),
        "p2p_inter_in_mw": inter_in,
        "p2p_inter_out_mw": inter_out,
        "p2p_position_mwh": agent.p2p_position,
        "plan_fallback": int(sp.get("fallback", 0)),
    }


def follow_bess(bess, e: float, ch: float, dis: float, dt: float) -> tuple[float, float, float]:
    """Largest feasible (charge, discharge) towards the setpoint and the new energy, with the model's update
    ``E' = E + dt * (eta_c * ch - dis / eta_d)``: power clipped to [0, pmax], energy kept within [emin, emax]."""
    ch = min(max(ch, 0.0), bess.pmax)
    dis = min(max(dis, 0.0), bess.pmax)
    e_new = e + dt * (bess.eta_c * ch - dis / bess.eta_d)
    if e_new > bess.emax + TOL_MWH:  # too much charge: charge less
        ch = max(0.0, ch - (e_new - bess.emax) / (dt * bess.eta_c))
    elif e_new < bess.emin - TOL_MWH:
        dis = max(0.0, dis - (bess.emin - e_new) * bess.eta_d / dt)
    e_new = e + dt * (bess.eta_c * ch - dis / bess.eta_d)
    return ch, dis, min(max(e_new, bess.emin), bess.emax)  # only rounding is left to clamp


def _sum_bus_dicts(sources: Mapping[str, Any], adn: DistributionNetwork, eid: str) -> dict[int, float]:
    """Sum ``{bus: MW}`` dicts of every source; keys may be strings (JSON from subprocess simulators)."""
    out: dict[int, float] = {}
    for src, value in sources.items():
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"{eid}.extra_load_mw from {src} must be a dict {{bus: MW}}, got {type(value).__name__}")
        for key, mw in value.items():
            try:
                bus = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{eid}.extra_load_mw from {src}: bus {key!r} is not an integer") from None
            if bus not in adn.buses:
                raise ValueError(f"{eid}.extra_load_mw from {src}: bus {bus} is not a bus of {adn.name} "
                                 f"({adn.buses[0]}..{adn.buses[-1]})")
            try:
                value_mw = float(mw)
            except (TypeError, ValueError):
                raise ValueError(f"{eid}.extra_load_mw from {src}: bus {bus} value {mw!r} is not a number") from None
            if not math.isfinite(value_mw):
                raise ValueError(f"{eid}.extra_load_mw from {src}: bus {bus} = {value_mw}; the plugin must send "
                                 "finite MW")
            out[bus] = out.get(bus, 0.0) + value_mw
    return out
