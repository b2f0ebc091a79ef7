"""The conventional TSO-led (top-down) baseline (docs/formulation.md, "TSO-led baseline"), in two stages.

Stage 1, the TSO leads: a convex SOCP over the TN DC-OPF (primal) and every ADN (DistFlow, DER, PCC) that
minimises the TN generation cost. The DSO binaries (BESS charge/discharge, prosumer buy/sell, PCC import/export,
inter-ADN direction) are relaxed to [0, 1]: a TSO-side schedule cannot hold them. The TSO is indifferent to most
ADN decisions (network charges, P2P, how W splits into import and export), and a solver would leave those at an
arbitrary interior point, so stage 1 is lexicographic: (a) minimise generation cost G, giving G*; (b) keep
G <= G* (1 + ``gen_tolerance``) and minimise the ADNs' operating costs. A weighted tie-break was tried first and
rejected: a weight small enough not to bend the TSO's choice (1e-3) leaves the ADN variables inside the
interior-point tolerance, which shows up as spurious simultaneous buy/sell of ~1e-4 MW. Stage 1 fixes the PCC
schedules.

Stage 2, the DSOs follow: each DSO solves its own ADN MISOCP with the binaries restored, tracking its PCC schedule
with a deviation ``|W - W_sched|`` priced at ``penalty_factor`` times the largest stage-1 price (LMP at a PCC bus or
leader cost coefficient), paying stage-1 LMPs (or the tariffs) for energy, plus its operating cost. The DSO problems
are independent once the inter-ADN trades are fixed to their netted stage-1 values, so they are solved as one
block-diagonal model (the optimum of the sum is every DSO's own optimum). Finally the TN is re-dispatched by
``solve_follower`` at the stage-2 withdrawals (generation and LMPs). The result dict has the schema of
``coordinator.results.collect`` with ``scheme = "tso-led"`` and a ``tso_led`` section (docs/results-schema.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from coordinator.blocks.adns import add_adns, add_tn_demand, balance_rhs, dso_operating_cost
from coordinator.blocks.dcopf import FollowerQP, dcopf_qp
from coordinator.blocks.primal import add_primal_qp
from coordinator.case import Case
from coordinator.cones import RotatedCone
from coordinator.follower import FollowerInfeasible, solve_follower
from coordinator.model import PyomoModel
from coordinator.pyomo_gc import gc_paused
from coordinator.results import collect, model_size
from coordinator.solvers import solve
from coordinator.solvers.base import ERROR, SolveOptions, SolveReport

# MW: a quantity counts as "on" above this. Not 1e-6: the relaxed stage 1 is solved by an interior-point method,
# which leaves variables that nothing pushes to zero (e.g. each of the dozens of P2P trades of a prosumer) at
# ~1e-5 MW; 0.1 kW is far below any physical meaning and far above that noise.
ACTIVE_TOL = 1e-4


@dataclass(frozen=True)
class TsoLedOptions:
    """``gen_tolerance``: relative slack on the TSO's optimal generation cost in stage 1(b).
    ``penalty_factor``: stage-2 deviation price as a multiple of the largest stage-1 price."""

    gen_tolerance: float = 1e-6
    penalty_factor: float = 10.0


def relax_binaries(m: pyo.Block) -> int:
    """Relax every binary of ``m`` to [0, 1] in place; returns how many were relaxed."""
    count = 0
    for v in m.component_data_objects(pyo.Var, descend_into=True):
        if v.is_binary():
            v.domain = pyo.UnitInterval
            count += 1
    return count


def build_stage1(case: Case) -> PyomoModel:
    """TN generation cost over TN + ADNs with relaxed binaries: a continuous SOCP with a convex QP objective.

    No TN views: the TN result of the TSO-led scheme is the re-dispatch at the stage-2 schedule."""
    case.validate()
    m = pyo.ConcreteModel(name="tso_led_stage1")
    m.T = pyo.Set(initialize=range(case.periods), ordered=True)
    add_adns(m, case)
    add_tn_demand(m, case)
    qp = dcopf_qp(case.tn)
    m.tn = pyo.Block()
    add_primal_qp(m.tn, qp, range(case.periods), balance_rhs(m, case, qp))
    relaxed = relax_binaries(m)
    m.operating_cost = pyo.Expression(m.T, rule=lambda _, t: sum(dso_operating_cost(m, case, a, t) for a in m.pcc.A))
    m.generation_cost = pyo.Expression(expr=case.step_hours * sum(m.tn.cost[t] for t in m.T))
    m.objective = pyo.Objective(expr=m.generation_cost)
    return PyomoModel(m, qp, "tso-led", relaxed_binaries=relaxed)


def add_generation_budget(pm: PyomoModel, case: Case, budget: float) -> None:
    """Stage 1(b): generation cost <= ``budget`` as one rotated cone, and the ADNs' operating cost as objective.

    ``dt * sum 1/2 q x^2 <= s * 1`` with ``s = budget - dt * c'x``; published in ``m.cones`` (``RotatedCone``)
    with ``y = sqrt(dt q / 2) x`` so the conic back-end reads it like the DistFlow cones.
    """
    m, qp, dt = pm.model, pm.qp, case.step_hours
    quad = [(j, t) for j in range(qp.n_var) if qp.q[j] for t in m.T]
    m.budget_y = pyo.Var(quad)
    m.budget_y_def = pyo.Constraint(quad, rule=lambda _, j, t: m.budget_y[j, t]
                                    == float(np.sqrt(dt * qp.q[j] / 2)) * m.tn.x[j, t])
    m.budget_s = pyo.Var(bounds=(0, None))
    m.budget_s_def = pyo.Constraint(expr=m.budget_s == budget - dt * sum(
        float(qp.c[j]) * m.tn.x[j, t] for j in range(qp.n_var) if qp.c[j] for t in m.T))
    m.budget_one = pyo.Var(initialize=1.0)
    m.budget_one.fix(1.0)
    m.budget = pyo.Constraint(expr=sum(m.budget_y[k] ** 2 for k in quad) <= m.budget_s * m.budget_one)
    m.cones = [RotatedCone(m.budget, tuple(m.budget_y[k] for k in quad), m.budget_s, m.budget_one)]
    m.objective.deactivate()
    m.dso_objective = pyo.Objective(expr=case.step_hours * sum(m.operating_cost[t] for t in m.T))


def solve_stage1(case: Case, solve_options: SolveOptions, gen_tolerance: float = 1e-6
                 ) -> tuple[PyomoModel, SolveReport, float]:
    """Lexicographic stage 1; returns the model, the report of step (b) (or of (a) if it failed) and G*."""
    pm = build_stage1(case)
    first = solve(pm.model, solve_options)
    if not first.has_solution:
        return pm, first, math.nan
    best = float(pyo.value(pm.model.generation_cost))
    add_generation_budget(pm, case, best * (1 + gen_tolerance) + gen_tolerance)
    second = solve(pm.model, solve_options)
    second.solve_time_s += first.solve_time_s
    return pm, second, best


def pcc_schedule(m: pyo.Block) -> np.ndarray:
    """(n_adn, T) PCC withdrawals of a solved model."""
    return np.array([[pyo.value(m.adn[a].net.pcc_p[t]) for t in m.T] for a in m.adn])


def follower_at(case: Case, qp, w: np.ndarray) -> list:
    """The TSO's DC-OPF solution per period at the PCC withdrawals ``w[a, t]``."""
    out = []
    for t in range(case.periods):
        by_bus: dict[int, float] = {}
        for a, adn in enumerate(case.adns):
            by_bus[adn.tn_bus] = by_bus.get(adn.tn_bus, 0.0) + float(w[a, t])
        out.append(solve_follower(qp, qp.b_eq(case.tn.demand(t), by_bus)))
    return out


def simultaneity(m: pyo.Block, case: Case) -> dict:
    """Energy (MWh) each relaxed binary failed to separate: sum of min(a, b) * dt over periods where both are on."""
    val, dt = pyo.value, case.step_hours
    both = {"bess_charge_discharge": [], "prosumer_buy_sell": [], "pcc_import_export": [], "inter_adn_both_ways": []}
    for a in m.pcc.A:
        der = m.adn[a].der
        for t in m.T:
            both["bess_charge_discharge"] += [min(val(der.ch[k, t]), val(der.dis[k, t])) for k in der.B]
            both["prosumer_buy_sell"] += [min(val(der.sales[i, t]), val(der.purchases[i, t])) for i in der.K]
            both["pcc_import_export"].append(min(val(m.pcc.p_imp[a, t]), val(m.pcc.p_exp[a, t])))
    for (a, b) in m.pcc.PAIR:
        both["inter_adn_both_ways"] += [min(val(m.pcc.X[a, b, t]), val(m.pcc.X[b, a, t])) for t in m.T]
    out = {}
    for key, values in both.items():
        on = [x for x in values if x > ACTIVE_TOL]
        out[f"{key}_mwh"] = float(sum(on) * dt)
        out[f"{key}_count"] = len(on)
    return out


def host_prices(case: Case, qp, follower: list) -> np.ndarray:
    """(n_adn, T) LMP at each ADN's host bus."""
    lmps = [f.lmp(qp) for f in follower]
    return np.array([[lmps[t][adn.tn_bus] for t in range(case.periods)] for adn in case.adns])


def energy_payment(m: pyo.Block, case: Case, price: np.ndarray, a: int, t: int):
    """What ADN a pays for energy at its PCC in period t: ``price[a, t]`` times W (lmp) or the tariffs."""
    if case.price_mode == "tariff":
        return (case.prices.tariff_import[t] * m.pcc.p_imp[a, t] - case.prices.tariff_export[t] * m.pcc.p_exp[a, t])
    return float(price[a, t]) * m.adn[a].net.pcc_p[t]


def dso_cost(m: pyo.Block, case: Case, price: np.ndarray) -> float:
    """Total DSO cost ($) of a solved model: energy at ``price`` plus operating costs (no deviation penalty)."""
    return case.step_hours * sum(pyo.value(energy_payment(m, case, price, a, t) + dso_operating_cost(m, case, a, t))
                                 for a in m.pcc.A for t in m.T)


def build_stage2(case: Case, stage1: pyo.ConcreteModel, price: np.ndarray, penalty: float, qp: FollowerQP
                 ) -> PyomoModel:
    """The DSOs' MISOCPs (binaries kept) tracking the stage-1 schedule (``stage1``: the solved stage-1 Pyomo
    model); inter-ADN trades fixed to the netted plan. The TN views are added by ``add_tn_views`` after the
    re-dispatch."""
    m = pyo.ConcreteModel(name="tso_led_stage2")
    m.T = pyo.Set(initialize=range(case.periods), ordered=True)
    add_adns(m, case)
    for (a, b) in m.pcc.PAIR:
        for t in m.T:
            net = pyo.value(stage1.pcc.X[a, b, t]) - pyo.value(stage1.pcc.X[b, a, t])
            m.pcc.X[a, b, t].fix(max(net, 0.0))
            m.pcc.X[b, a, t].fix(max(-net, 0.0))
            m.pcc.d[a, b, t].fix(1.0 if net >= 0 else 0.0)
    m.schedule = pyo.Param(m.pcc.A, m.T, initialize={(a, t): float(v) for (a, t), v in
                                                     np.ndenumerate(pcc_schedule(stage1))})
    m.dev_up = pyo.Var(m.pcc.A, m.T, bounds=(0, None))
    m.dev_dn = pyo.Var(m.pcc.A, m.T, bounds=(0, None))
    m.track = pyo.Constraint(m.pcc.A, m.T, rule=lambda _, a, t: m.adn[a].net.pcc_p[t] - m.schedule[a, t]
                             == m.dev_up[a, t] - m.dev_dn[a, t])
    m.penalty = pyo.Expression(expr=case.step_hours * penalty * sum(m.dev_up[k] + m.dev_dn[k] for k in m.dev_up))
    m.objective = pyo.Objective(expr=case.step_hours * sum(
        energy_payment(m, case, price, a, t) + dso_operating_cost(m, case, a, t) for a in m.pcc.A for t in m.T)
        + m.penalty)
    return PyomoModel(m, qp, "tso-led")


def add_tn_views(pm: PyomoModel, case: Case, follower: list) -> None:
    """``tn_x`` / ``lmp`` as Params holding the re-dispatch, so ``results.collect`` reads them as for DSO-led."""
    m, qp = pm.model, pm.qp
    m.tn_x = pyo.Param(range(qp.n_var), m.T, initialize={(j, t): float(follower[t].x[j])
                                                         for j in range(qp.n_var) for t in m.T})
    m.lmp = pyo.Param(case.tn.buses, m.T, initialize={(n, t): lam for t in m.T
                                                      for n, lam in follower[t].lmp(qp).items()})
    pm.tn_x, pm.lmp = m.tn_x, m.lmp


@dataclass
class TsoLedRun:
    """The result dict and both solved models (``stage2`` is None when stage 1 failed)."""

    result: dict
    stage1: PyomoModel
    stage2: PyomoModel | None = None


def solve_tso_led(case: Case, solve_options: SolveOptions | None = None, options: TsoLedOptions = TsoLedOptions(),
                  ac_periods: list[int] | None = None) -> dict:
    """Both stages and the re-dispatch; returns the result dict (status of the first failing stage if any)."""
    return run_tso_led(case, solve_options, options, ac_periods).result


@gc_paused  # its Pyomo builds
def run_tso_led(case: Case, solve_options: SolveOptions | None = None, options: TsoLedOptions = TsoLedOptions(),
                ac_periods: list[int] | None = None) -> TsoLedRun:
    """``solve_tso_led`` keeping the models, for checks that need more than the result dict."""
    solve_options = solve_options or SolveOptions(solver="fast")
    start = time.perf_counter()
    pm1, rep1, _ = solve_stage1(case, solve_options, options.gen_tolerance)
    build1 = time.perf_counter() - start - rep1.solve_time_s
    if not rep1.has_solution:
        return TsoLedRun(collect(pm1, case, rep1, build1) | {"stage": "stage 1"}, pm1)
    m1, qp = pm1.model, pm1.qp
    w1 = pcc_schedule(m1)
    try:
        fol1 = follower_at(case, qp, w1)
    except FollowerInfeasible as exc:
        return TsoLedRun(_failed(pm1, case, rep1, build1, f"stage 1 re-dispatch: {exc}"), pm1)
    price = host_prices(case, qp, fol1)
    top = max(float(np.max(np.abs(price))), *(abs(v) for v in _price_coefficients(case)))
    penalty = options.penalty_factor * top
    stage1_dso_cost = dso_cost(m1, case, price)
    stage1_gen_cost = case.step_hours * sum(f.cost for f in fol1)
    relaxed = simultaneity(m1, case)
    size1 = model_size(m1)

    t2 = time.perf_counter()
    pm2 = build_stage2(case, m1, price, penalty, qp)
    m2 = pm2.model
    build2 = time.perf_counter() - t2
    rep2 = solve(m2, solve_options)
    if not rep2.has_solution:
        return TsoLedRun(collect(pm2, case, rep2, build1 + build2) | {"stage": "stage 2"}, pm1, pm2)
    w2 = pcc_schedule(m2)
    try:
        fol2 = follower_at(case, qp, w2)
    except FollowerInfeasible as exc:
        message = f"re-dispatch at the stage-2 schedule: {exc}"
        return TsoLedRun(_failed(pm2, case, rep2, build1 + build2, message), pm1, pm2)
    add_tn_views(pm2, case, fol2)
    final_price = host_prices(case, qp, fol2)
    report = SolveReport(status=_worst(rep1.status, rep2.status), termination=rep2.termination,
                         objective=dso_cost(m2, case, final_price), bound=None,
                         solve_time_s=rep1.solve_time_s + rep2.solve_time_s, solver=rep2.solver,
                         message=f"stage 1: {rep1.message or rep1.status}; stage 2: {rep2.message or rep2.status}")
    result = collect(pm2, case, report, build1 + build2, ac_periods)
    result["mip_gap"] = rep2.gap  # stage 1 is continuous; the only gap is the DSOs' MISOCP
    stage2_dso_cost = dso_cost(m2, case, price)
    result["tso_led"] = {
        "gen_tolerance": options.gen_tolerance,
        "deviation_price": penalty,
        "stage1": {"status": rep1.status, "objective": rep1.objective, "solve_time_s": rep1.solve_time_s,
                   "model": size1, "relaxed_binaries": pm1.relaxed_binaries,
                   "pcc_mw": w1.tolist(), "generation_cost": stage1_gen_cost, "dso_cost": stage1_dso_cost,
                   "simultaneity": relaxed},
        "stage2": {"status": rep2.status, "objective": rep2.objective, "mip_gap": rep2.gap,
                   "solve_time_s": rep2.solve_time_s, "dso_cost_at_stage1_prices": stage2_dso_cost,
                   "deviation_mwh": float(np.abs(w2 - w1).sum() * case.step_hours),
                   "deviation_penalty": float(pyo.value(m2.penalty))},
        "binary_restoration_cost": stage2_dso_cost - stage1_dso_cost,
        "generation_cost_change": result["tn"]["generation_cost"] - stage1_gen_cost,
    }
    return TsoLedRun(result, pm1, pm2)


def _price_coefficients(case: Case) -> list[float]:
    p = case.prices
    return [p.c_tn_imp, p.c_tn_exp, p.c_wheel, p.c_ret, p.c_p2p, p.c_deg, p.c_curt, p.c_loss,
            *p.tariff_import, *p.tariff_export]


def _worst(*statuses: str) -> str:
    order = ["optimal", "feasible", "no_solution", "infeasible", "error"]
    return max(statuses, key=lambda s: order.index(s) if s in order else len(order))


def _failed(pm: PyomoModel, case: Case, rep: SolveReport, build: float, message: str) -> dict:
    report = SolveReport(status=ERROR, termination=rep.termination, objective=None, bound=None,
                         solve_time_s=rep.solve_time_s, solver=rep.solver, message=message)
    return collect(pm, case, report, build)


class TsoLedPlanner:
    """The baseline as a co-simulation planner (``simulators.coordinator_sim.Planner``): both stages every step.

    Nothing is re-used between steps (stage 2 depends on stage 1's schedule and prices), so the build time is paid
    every step; it is reported as ``build_time_s`` like the DSO-led session's.
    """

    scheme = "tso-led"

    def __init__(self, solve_options: SolveOptions, options: TsoLedOptions = TsoLedOptions()) -> None:
        self.solve_options, self.options = solve_options, options

    def plan(self, case: Case) -> dict:
        return solve_tso_led(case, self.solve_options, self.options, ac_periods=[0])
