"""A solved model -> the plain result dict of ``docs/results-schema.md`` (JSON-safe), with KPIs and checks.

Both front ends go through the same builders: a Pyomo model (SCIP, Gurobi, the TSO-led stages) is read into
``AdnArrays`` / TN arrays with ``pyo.value``; the model pipeline (``coordinator.pipeline``) slices them out of its
solution vector. Everything after that (per-ADN series, KPIs, checks) is one code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from coordinator.acpf import AcChecker
from coordinator.blocks.distflow import SOC_GAP_FLOOR
from coordinator.case import Case, DistributionNetwork
from coordinator.cones import registered_cones
from coordinator.follower import FollowerInfeasible, solve_follower
from coordinator.kpis import energy_kpis, total_kpis
from coordinator.model import PyomoModel
from coordinator.solvers.base import SolveReport


@dataclass
class AdnArrays:
    """One ADN's solution, arrays with periods last: (T,) or (n_items, T)."""

    pcc_p: np.ndarray
    pcc_q: np.ndarray
    pv: np.ndarray  # (n_pv, T)
    ch: np.ndarray  # (n_bess, T)
    dis: np.ndarray
    soc: np.ndarray
    trades: np.ndarray  # (n_pairs, T) intra-ADN P2P
    g_imp: np.ndarray  # (n_prosumers, T)
    g_exp: np.ndarray
    P: np.ndarray  # (n_branch, T) in adn.branches order
    Q: np.ndarray
    l: np.ndarray  # noqa: E741 - the model's name for squared current
    v: np.ndarray  # (n_bus, T) squared voltage, adn.buses order
    inter_in: np.ndarray  # (T,)
    inter_out: np.ndarray


def model_size(m: pyo.ConcreteModel) -> dict:
    variables = list(m.component_data_objects(pyo.Var, active=True))
    free = [v for v in variables if not v.fixed]
    return {
        "variables": len(free),
        "binaries": sum(1 for v in free if v.is_binary()),
        "constraints": sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True)),
        "cones": len(registered_cones(m)),  # DistFlow cones plus the region disjunctions' perspective cones
    }


def _grid(component, rows, periods) -> np.ndarray:
    return np.array([[pyo.value(component[(*_key(r), t)]) for t in periods] for r in rows], dtype=float
                    ).reshape(len(rows), len(periods))


def _key(r) -> tuple:
    return r if isinstance(r, tuple) else (r,)


def adn_arrays_from_model(m: pyo.ConcreteModel, a: int) -> AdnArrays:
    der, net, pcc = m.adn[a].der, m.adn[a].net, m.pcc
    T = list(m.T)
    return AdnArrays(
        pcc_p=_grid(net.pcc_p, [()], T)[0], pcc_q=_grid(net.pcc_q, [()], T)[0],
        pv=_grid(der.pv, list(der.PV), T), ch=_grid(der.ch, list(der.B), T), dis=_grid(der.dis, list(der.B), T),
        soc=_grid(der.soc, list(der.B), T), trades=_grid(der.q, list(der.KK), T),
        g_imp=_grid(der.g_imp, list(der.K), T), g_exp=_grid(der.g_exp, list(der.K), T),
        P=_grid(net.P, list(net.L), T), Q=_grid(net.Q, list(net.L), T), l=_grid(net.l, list(net.L), T),
        v=_grid(net.v, list(net.N), T),
        inter_in=np.array([pyo.value(pcc.inter_in[a, t]) for t in T], dtype=float),
        inter_out=np.array([pyo.value(pcc.inter_out[a, t]) for t in T], dtype=float))


def withdrawals(adn: DistributionNetwork, arr: AdnArrays) -> tuple[np.ndarray, np.ndarray]:
    """(T, n_bus) net P and Q withdrawal per bus: load - PV + charge - discharge (the devices' own balance)."""
    pos = {b: k for k, b in enumerate(adn.buses)}
    p = np.array(adn.load_p, dtype=float)
    for k, bus in enumerate(adn.pv_bus):
        p[:, pos[bus]] -= arr.pv[k]
    for k, bess in enumerate(adn.bess):
        p[:, pos[bess.bus]] += arr.ch[k] - arr.dis[k]
    return p, np.array(adn.load_q, dtype=float)


def soc_gaps(adn: DistributionNetwork, arr: AdnArrays) -> np.ndarray:
    """(T,) largest relative cone slack (v_i l - P^2 - Q^2) / max(v_i l, floor) per period; 0 = exact."""
    if not adn.branches:
        return np.zeros(arr.pcc_p.shape)
    pos = {b: k for k, b in enumerate(adn.buses)}
    vi = arr.v[[pos[br.i] for br in adn.branches]]
    vl = vi * arr.l
    gap = (vl - arr.P**2 - arr.Q**2) / np.maximum(vl, SOC_GAP_FLOOR)
    return np.maximum(gap.max(axis=0), 0.0)


def adn_result(adn: DistributionNetwork, arr: AdnArrays) -> dict:
    r = np.array([br.r for br in adn.branches])
    gaps = soc_gaps(adn, arr)
    v = np.sqrt(np.maximum(arr.v, 0.0))
    return {
        "name": adn.name,
        "tn_bus": adn.tn_bus,
        "pcc_mw": arr.pcc_p.tolist(),
        "pcc_q_mvar": arr.pcc_q.tolist(),
        "load_mw": adn.load_p.sum(axis=1).tolist(),
        "pv_available_mw": adn.pv_avail.sum(axis=1).tolist(),
        "pv_used_mw": arr.pv.sum(axis=0).tolist(),
        "pv": [{"bus": adn.pv_bus[k], "available_mw": adn.pv_avail[:, k].tolist(), "used_mw": arr.pv[k].tolist()}
               for k in range(len(adn.pv_bus))],
        "bess": [{"bus": bess.bus, "capacity_mwh": bess.emax - bess.emin, "charge_mw": arr.ch[k].tolist(),
                  "discharge_mw": arr.dis[k].tolist(), "soc_mwh": arr.soc[k].tolist()}
                 for k, bess in enumerate(adn.bess)],
        "p2p_intra_mw": arr.trades.sum(axis=0).tolist(),
        "p2p_inter_in_mw": arr.inter_in.tolist(),
        "p2p_inter_out_mw": arr.inter_out.tolist(),
        "retail_import_mw": arr.g_imp.sum(axis=0).tolist(),
        "retail_export_mw": arr.g_exp.sum(axis=0).tolist(),
        "losses_mw": (r @ arr.l).tolist() if len(r) else [0.0] * len(arr.pcc_p),
        "v_min_pu": v.min(axis=0).tolist(),
        "v_max_pu": v.max(axis=0).tolist(),
        "soc_gap": float(gaps.max(initial=0.0)),
        "soc_gap_by_period": gaps.tolist(),
    }


def tn_result(case: Case, qp, x: np.ndarray, lmp: dict[int, np.ndarray]) -> dict:
    """``x``: (n_var, T) follower primal; ``lmp``: bus -> (T,) prices."""
    gen_mw = {_gen_key(g.name): x[qp.gen_col[k]].tolist() for k, g in enumerate(case.tn.gens)}
    flows = x[qp.flow_col]
    fmax = np.array([ln.fmax for ln in case.tn.lines], dtype=float)
    rated = np.isfinite(fmax) & (fmax > 0)  # DC flows against the lines' ratings
    loading = np.abs(flows[rated]) / fmax[rated, None] * 100.0
    cost = sum(g.alpha * p**2 + g.beta * p for g, ps in zip(case.tn.gens, gen_mw.values(), strict=True) for p in ps)
    return {"case": case.tn.case, "load_scale": [float(s) for s in case.tn.load_scale], "gen_mw": gen_mw,
            "lmp": {str(n): np.asarray(lmp[n], dtype=float).tolist() for n in case.tn.buses},
            "flow_mw": {ln.name: flows[k].tolist() for k, ln in enumerate(case.tn.lines)},
            "line_loading_max_pct": float(loading.max()) if loading.size else math.nan,
            "generation_cost": cost * case.step_hours}


def tn_arrays_from_model(pm: PyomoModel, case: Case) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(n_var, T) TN primal and bus -> (T,) LMPs, read through the views the builder published in ``pm``."""
    if pm.tn_x is None or pm.lmp is None:
        raise ValueError(f"{pm.model.name}: the model has no TN views (tn_x, lmp) to read a result from")
    T = list(pm.model.T)
    x = np.array([[pyo.value(pm.tn_x[j, t]) for t in T] for j in range(pm.qp.n_var)], dtype=float)
    lmp = {n: np.array([pyo.value(pm.lmp[n, t]) for t in T], dtype=float) for n in case.tn.buses}
    return x, lmp


def _gen_key(name: str) -> str:
    """``ext_grid`` stays, ``gen3`` becomes ``"3"`` (the pandapower gen index)."""
    return name[3:] if name.startswith("gen") and name[3:].isdigit() else name


def kpis(result: dict, case: Case) -> dict:
    """KPI totals over all ADNs and periods (``coordinator.kpis``; definitions in docs/formulation.md, "KPIs");
    per ADN in ``result['adns'][k]['kpis']``."""
    per_adn = []
    for adn_res, adn in zip(result["adns"], case.adns, strict=True):
        k = energy_kpis(case.step_hours, adn_res["pcc_mw"], adn_res["load_mw"], adn_res["pv_available_mw"],
                        adn_res["pv_used_mw"], [b["charge_mw"] for b in adn_res["bess"]],
                        [b["discharge_mw"] for b in adn_res["bess"]], adn_res["p2p_intra_mw"],
                        adn_res["p2p_inter_out_mw"], sum(b.emax - b.emin for b in adn.bess))
        adn_res["kpis"] = k
        per_adn.append(k)
    total = total_kpis(per_adn, sum(b.emax - b.emin for adn in case.adns for b in adn.bess))
    total["tso_generation_cost"] = result["tn"]["generation_cost"]
    total["dso_cost"] = result["objective"]
    return total


def follower_check(result: dict, case: Case, qp, periods: list[int] | None = None) -> float:
    """Largest relative gap between the model's generation cost and an independent DC-OPF solve, per period."""
    worst = 0.0
    gens = case.tn.gens
    for t in range(case.periods) if periods is None else periods:
        w: dict[int, float] = {}
        for adn_res in result["adns"]:
            w[adn_res["tn_bus"]] = w.get(adn_res["tn_bus"], 0.0) + adn_res["pcc_mw"][t]
        try:
            ref = solve_follower(qp, qp.b_eq(case.tn.demand(t), w))
        except FollowerInfeasible:
            return math.inf
        cost = sum(g.alpha * ps[t] ** 2 + g.beta * ps[t]
                   for g, ps in zip(gens, result["tn"]["gen_mw"].values(), strict=True))
        worst = max(worst, abs(cost - ref.cost) / max(abs(ref.cost), 1e-9))
    return worst


def status_part(scheme: str, case: Case, report: SolveReport, build_time_s: float, model: dict,
                formulation: dict) -> dict:
    """The fields every result has, solved or not."""
    return {
        "scheme": scheme,
        "status": report.status,
        "termination": report.termination,
        "message": report.message,
        "objective": report.objective,
        "bound": report.bound,
        "mip_gap": report.gap,
        "solver": report.solver,
        "build_time_s": build_time_s,
        "solve_time_s": report.solve_time_s,
        "solver_time_s": report.solver_time_s if report.solver_time_s is not None else report.solve_time_s,
        "model": model,
        "formulation": formulation,
        "periods": case.periods,
        "step_hours": case.step_hours,
        "start_hour": case.start_hour,
        "price_mode": case.price_mode,
    }


def solved_part(out: dict, case: Case, qp, arrays: list[AdnArrays], tn_x: np.ndarray, lmp: dict,
                ac_periods: list[int] | None, ac: AcChecker | None = None) -> dict:
    """Series, KPIs and checks of a solved model (``ac_periods``: None = every period, [] = no AC check)."""
    out["tn"] = tn_result(case, qp, tn_x, lmp)
    out["adns"] = [adn_result(adn, arr) for adn, arr in zip(case.adns, arrays, strict=True)]
    out["kpis"] = kpis(out, case)
    periods = list(range(case.periods)) if ac_periods is None else list(ac_periods)
    ac = ac or AcChecker()
    p, q = zip(*(withdrawals(adn, arr) for adn, arr in zip(case.adns, arrays, strict=True)), strict=True)
    v = [np.sqrt(np.maximum(arr.v.T, 0.0)) for arr in arrays]
    ac_error = float(ac.voltage_errors(case.adns, p, q, v, periods).max(initial=0.0))
    out["checks"] = {
        "soc_gap_max": max(adn["soc_gap"] for adn in out["adns"]),
        "soc_gap_first_period": max(adn["soc_gap_by_period"][0] for adn in out["adns"]),
        "follower_cost_rel_gap": follower_check(out, case, qp, None if ac_periods is None else periods or [0]),
        "ac_voltage_error_max_pu": ac_error,
    }
    return out


def collect(pm: PyomoModel, case: Case, report: SolveReport, build_time_s: float,
            ac_periods: list[int] | None = None) -> dict:
    """The full result dict of a solved Pyomo model; without a solution only the status part is filled."""
    m = pm.model
    out = status_part(pm.scheme, case, report, build_time_s, model_size(m), pm.formulation_info)
    if not report.has_solution:
        return out
    tn_x, lmp = tn_arrays_from_model(pm, case)
    arrays = [adn_arrays_from_model(m, a) for a in range(len(case.adns))]
    return solved_part(out, case, pm.qp, arrays, tn_x, lmp, ac_periods)
