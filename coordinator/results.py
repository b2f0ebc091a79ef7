"""Turn a solved model into the plain result dict of ``docs/results-schema.md`` (JSON-safe), with KPIs and checks."""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo

from coordinator.acpf import adn_net, run_adn_pf
from coordinator.blocks.distflow import soc_gap
from coordinator.case import Case
from coordinator.follower import FollowerInfeasible, solve_follower
from coordinator.solvers.base import SolveReport
from coordinator.solvers.conic import registered_cones


def _vals(component, index) -> list[float]:
    return [float(pyo.value(component[i])) for i in index]


def model_size(m: pyo.ConcreteModel) -> dict:
    variables = list(m.component_data_objects(pyo.Var, active=True))
    free = [v for v in variables if not v.fixed]
    return {
        "variables": len(free),
        "binaries": sum(1 for v in free if v.is_binary()),
        "constraints": sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True)),
        "cones": len(registered_cones(m)),  # DistFlow cones plus the region disjunctions' perspective cones
    }


def adn_result(m: pyo.ConcreteModel, case: Case, a: int) -> dict:
    adn, der, net, pcc = case.adns[a], m.adn[a].der, m.adn[a].net, m.pcc
    T = list(m.T)
    return {
        "name": adn.name,
        "tn_bus": adn.tn_bus,
        "pcc_mw": _vals(net.pcc_p, T),
        "pcc_q_mvar": _vals(net.pcc_q, T),
        "load_mw": [float(adn.load_p[t].sum()) for t in T],
        "pv_available_mw": [float(adn.pv_avail[t].sum()) for t in T],
        "pv_used_mw": [sum(float(pyo.value(der.pv[k, t])) for k in der.PV) for t in T],
        "pv": [{"bus": adn.pv_bus[k], "available_mw": [float(x) for x in adn.pv_avail[:, k]],
                "used_mw": [float(pyo.value(der.pv[k, t])) for t in T]} for k in der.PV],
        "bess": [{"bus": bess.bus, "capacity_mwh": bess.emax - bess.emin,
                  "charge_mw": [float(pyo.value(der.ch[k, t])) for t in T],
                  "discharge_mw": [float(pyo.value(der.dis[k, t])) for t in T],
                  "soc_mwh": [float(pyo.value(der.soc[k, t])) for t in T]} for k, bess in enumerate(adn.bess)],
        "p2p_intra_mw": _vals(der.p2p_volume, T),
        "p2p_inter_in_mw": [float(pyo.value(pcc.inter_in[a, t])) for t in T],
        "p2p_inter_out_mw": [float(pyo.value(pcc.inter_out[a, t])) for t in T],
        "retail_import_mw": [sum(float(pyo.value(der.g_imp[i, t])) for i in der.K) for t in T],
        "retail_export_mw": [sum(float(pyo.value(der.g_exp[i, t])) for i in der.K) for t in T],
        "losses_mw": _vals(net.losses, T),
        "v_min_pu": [math.sqrt(min(pyo.value(net.v[n, t]) for n in net.N)) for t in T],
        "v_max_pu": [math.sqrt(max(pyo.value(net.v[n, t]) for n in net.N)) for t in T],
        "soc_gap": soc_gap(net),
        "soc_gap_by_period": [soc_gap(net, t) for t in T],
    }


def tn_result(m: pyo.ConcreteModel, case: Case) -> dict:
    qp = m.qp
    T = list(m.T)
    gen_mw = {_gen_key(g.name): [float(pyo.value(m.tn_x[qp.gen_col[k], t])) for t in T]
              for k, g in enumerate(case.tn.gens)}
    lmp = {str(n): [float(pyo.value(m.lmp[n, t])) for t in T] for n in case.tn.buses}
    cost = sum(g.alpha * p**2 + g.beta * p for g, ps in zip(case.tn.gens, gen_mw.values(), strict=True) for p in ps)
    flow_mw = {line.name: [float(pyo.value(m.tn_x[qp.flow_col[k], t])) for t in T]
               for k, line in enumerate(case.tn.lines)}
    loading = [100.0 * abs(f) / line.fmax for line, fs in zip(case.tn.lines, flow_mw.values(), strict=True)
               for f in fs if math.isfinite(line.fmax) and line.fmax > 0]  # DC flows against the lines' ratings
    return {"case": case.tn.case, "load_scale": [float(x) for x in case.tn.load_scale], "gen_mw": gen_mw,
            "lmp": lmp, "generation_cost": cost * case.step_hours, "flow_mw": flow_mw,
            "line_loading_max_pct": max(loading, default=math.nan)}


def _gen_key(name: str) -> str:
    """``ext_grid`` stays, ``gen3`` becomes ``"3"`` (the pandapower gen index)."""
    return name[3:] if name.startswith("gen") and name[3:].isdigit() else name


def kpis(result: dict, case: Case) -> dict:
    """DESIGN §7 totals over all ADNs and periods (per-ADN values in ``result['adns'][k]['kpis']``)."""
    dt = case.step_hours
    per_adn = []
    for adn_res, adn in zip(result["adns"], case.adns, strict=True):
        pcc = np.array(adn_res["pcc_mw"])
        pv = np.array(adn_res["pv_used_mw"])
        imports, exports = np.clip(pcc, 0, None), np.clip(-pcc, 0, None)
        throughput = sum(np.sum(b["charge_mw"]) + np.sum(b["discharge_mw"]) for b in adn_res["bess"]) * dt
        capacity = sum(b.emax - b.emin for b in adn.bess)
        k = {
            "tn_import_mwh": float(imports.sum() * dt),
            "tn_export_mwh": float(exports.sum() * dt),
            "pv_energy_mwh": float(pv.sum() * dt),
            "demand_mwh": float(np.sum(adn_res["load_mw"]) * dt),
            "bess_throughput_mwh": float(throughput),
            "bess_equivalent_cycles": float(throughput / (2 * capacity)) if capacity > 0 else 0.0,
            "curtailment_mwh": float((np.sum(adn_res["pv_available_mw"]) - pv.sum()) * dt),
            "p2p_intra_mwh": float(np.sum(adn_res["p2p_intra_mw"]) * dt),
            "p2p_inter_mwh": float(np.sum(adn_res["p2p_inter_out_mw"]) * dt),
        }
        add_ratios(k)
        adn_res["kpis"] = k
        per_adn.append(k)
    total = {key: float(sum(k[key] for k in per_adn)) for key in per_adn[0] if key.endswith("_mwh")}
    capacity = sum(b.emax - b.emin for adn in case.adns for b in adn.bess)  # cycles of the fleet, not a sum
    total["bess_equivalent_cycles"] = float(total["bess_throughput_mwh"] / (2 * capacity)) if capacity > 0 else 0.0
    add_ratios(total)
    total["tso_generation_cost"] = result["tn"]["generation_cost"]
    total["dso_cost"] = result["objective"]
    return total


def self_consumption(pv_mwh: float, export_mwh: float) -> float:
    """PV energy used inside the ADN (PV minus what left at the PCC) / PV energy (DESIGN §7)."""
    return _ratio(pv_mwh - min(export_mwh, pv_mwh), pv_mwh)


def add_ratios(k: dict) -> None:
    """Self-consumption and self-sufficiency from the energy KPIs of ``k``: one definition for plans and runs."""
    k["self_consumption"] = self_consumption(k["pv_energy_mwh"], k["tn_export_mwh"])
    k["self_sufficiency"] = 1.0 - _ratio(k["tn_import_mwh"], k["demand_mwh"])


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 1e-12 else 0.0


def follower_check(result: dict, case: Case, qp) -> float:
    """Largest relative gap between the KKT block's generation cost and an independent DC-OPF solve, per period."""
    worst = 0.0
    gens = case.tn.gens
    for t in range(case.periods):
        w: dict[int, float] = {}
        for adn_res in result["adns"]:
            w[adn_res["tn_bus"]] = w.get(adn_res["tn_bus"], 0.0) + adn_res["pcc_mw"][t]
        try:
            ref = solve_follower(qp, qp.b_eq(case.tn.demand(t), w))
        except FollowerInfeasible:
            return math.inf
        kkt_cost = sum(g.alpha * ps[t] ** 2 + g.beta * ps[t]
                       for g, ps in zip(gens, result["tn"]["gen_mw"].values(), strict=True))
        worst = max(worst, abs(kkt_cost - ref.cost) / max(abs(ref.cost), 1e-9))
    return worst


def ac_check(m: pyo.ConcreteModel, case: Case, periods: list[int] | None = None) -> float:
    """Largest |V_ac - sqrt(v)| over ADN buses, running pandapower ``runpp`` at the optimiser's injections."""
    worst = 0.0
    if periods is not None and not periods:  # nothing to check: do not build the pandapower nets (seconds each)
        return worst
    for a, adn in enumerate(case.adns):
        der, net_blk = m.adn[a].der, m.adn[a].net
        net = adn_net(adn)
        for t in periods if periods is not None else list(m.T):
            p = [pyo.value(der.p_withdrawal(j, t)) for j in adn.buses]
            q = [pyo.value(der.q_withdrawal(j, t)) for j in adn.buses]
            pf = run_adn_pf(net, np.array(p), np.array(q))
            if pf is None:
                return math.inf
            v_opt = np.sqrt([pyo.value(net_blk.v[j, t]) for j in adn.buses])
            worst = max(worst, float(np.max(np.abs(pf["vm_pu"] - v_opt))))
    return worst


def collect(m: pyo.ConcreteModel, case: Case, report: SolveReport, build_time_s: float,
            ac_periods: list[int] | None = None) -> dict:
    """The full result dict; without a solution only the status part is filled."""
    out = {
        "scheme": getattr(m, "scheme", "dso-led"),
        "status": report.status,
        "termination": report.termination,
        "message": report.message,
        "objective": report.objective,
        "bound": report.bound,
        "mip_gap": report.gap,
        "solver": report.solver,
        "build_time_s": build_time_s,
        "solve_time_s": report.solve_time_s,
        "model": model_size(m),
        "formulation": getattr(m, "formulation_info", {}),
        "periods": case.periods,
        "step_hours": case.step_hours,
        "start_hour": case.start_hour,
        "price_mode": case.price_mode,
    }
    if not report.has_solution:
        return out
    out["tn"] = tn_result(m, case)
    out["adns"] = [adn_result(m, case, a) for a in range(len(case.adns))]
    out["kpis"] = kpis(out, case)
    out["checks"] = {
        "soc_gap_max": max(adn["soc_gap"] for adn in out["adns"]),
        "soc_gap_first_period": max(adn["soc_gap_by_period"][0] for adn in out["adns"]),
        "follower_cost_rel_gap": follower_check(out, case, m.qp),
        "ac_voltage_error_max_pu": ac_check(m, case, ac_periods),
    }
    return out
