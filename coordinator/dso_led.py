"""The DSO-led single-level MISOCP: ADN blocks (leaders) + PCC boundary + the TSO's DC-OPF as KKT (follower).

Built once per structure (number of ADNs, periods, options); ``set_case_data`` refreshes loads, PV, TN load and
initial SoC in place so a co-simulation re-solves the same Pyomo model every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyomo.environ as pyo

from coordinator.blocks.dcopf import FollowerQP, dcopf_qp
from coordinator.blocks.der import add_der, set_adn_data
from coordinator.blocks.distflow import add_distflow
from coordinator.blocks.kkt import add_kkt, follower_payment
from coordinator.blocks.pcc import add_pcc
from coordinator.case import Case

PRICE_MODES = ("lmp", "tariff")


@dataclass(frozen=True)
class Formulation:
    """Choices that change the model, not the answer."""

    complementarity: str = "bigm"


def add_adns(m: pyo.Block, case: Case) -> None:
    """One block per ADN with its devices (``der``) and its SOC-relaxed network (``net``)."""
    periods = range(case.periods)
    m.adn = pyo.Block(range(len(case.adns)))
    for a, adn in enumerate(case.adns):
        blk = m.adn[a]
        blk.der = pyo.Block()
        add_der(blk.der, adn, periods, case.step_hours)
        blk.net = pyo.Block()
        add_distflow(blk.net, adn, periods, blk.der.p_withdrawal, blk.der.q_withdrawal)
    m.pcc = pyo.Block()
    add_pcc(m.pcc, case.adns, periods, lambda a, t: m.adn[a].net.pcc_p[t], case.inter_adn_p2p)


def add_tn_demand(m: pyo.Block, case: Case) -> None:
    m.tn_demand = pyo.Param(case.tn.buses, range(case.periods), mutable=True, initialize=0.0)
    set_tn_data(m, case)


def set_tn_data(m: pyo.Block, case: Case) -> None:
    for t in range(case.periods):
        for n, d in case.tn.demand(t).items():
            m.tn_demand[n, t] = d


def pcc_withdrawal_at(m: pyo.Block, case: Case, bus: int, t: int):
    """Sum of the PCC withdrawals of the ADNs hosted at TN bus ``bus``."""
    return sum(m.adn[a].net.pcc_p[t] for a, adn in enumerate(case.adns) if adn.tn_bus == bus)


def balance_rhs(m: pyo.Block, case: Case, qp: FollowerQP):
    """Right-hand side of the follower's equality rows: demand + PCC withdrawal on balance rows, 0 elsewhere."""
    bus_of_row = {row: n for n, row in qp.balance_row.items()}

    def rhs(i: int, t: int):
        n = bus_of_row.get(i)
        return 0.0 if n is None else m.tn_demand[n, t] + pcc_withdrawal_at(m, case, n, t)

    return rhs


def dso_operating_cost(m: pyo.Block, case: Case, a: int, t: int):
    """Everything an ADN pays in period t except energy at the PCC ($/h)."""
    p, der, net, pcc = case.prices, m.adn[a].der, m.adn[a].net, m.pcc
    return (p.c_tn_imp * pcc.p_imp[a, t] + p.c_tn_exp * pcc.p_exp[a, t] + p.c_wheel * pcc.inter_in[a, t]
            + p.c_ret * der.retail_volume[t] + p.c_p2p * der.p2p_volume[t] + p.c_deg * der.bess_throughput[t]
            + p.c_curt * der.curtailment[t] + p.c_loss * net.losses[t])


def tariff_payment(m: pyo.Block, case: Case, t: int):
    p = case.prices
    return sum(p.tariff_import[t] * m.pcc.p_imp[a, t] - p.tariff_export[t] * m.pcc.p_exp[a, t] for a in m.pcc.A)


def build_dso_led(case: Case, formulation: Formulation = Formulation()) -> pyo.ConcreteModel:
    """Single-level MISOCP of the DSO-led bilevel problem (DESIGN §4)."""
    case.validate()
    if case.price_mode not in PRICE_MODES:
        raise ValueError(f"price_mode {case.price_mode!r} is not one of {PRICE_MODES}")
    m = pyo.ConcreteModel(name="dso_led")
    m.T = pyo.Set(initialize=range(case.periods), ordered=True)
    add_adns(m, case)
    add_tn_demand(m, case)
    qp = dcopf_qp(case.tn)
    m.follower = pyo.Block()
    add_kkt(m.follower, qp, range(case.periods), balance_rhs(m, case, qp), formulation.complementarity,
            case.prices.price_cap)

    def energy_payment(_, t):
        if case.price_mode == "lmp":
            return follower_payment(m.follower, qp, t, lambda n: m.tn_demand[n, t])
        return tariff_payment(m, case, t)

    m.energy_payment = pyo.Expression(m.T, rule=energy_payment)
    m.dso_cost = pyo.Expression(m.T, rule=lambda _, t: m.energy_payment[t]
                                + sum(dso_operating_cost(m, case, a, t) for a in m.pcc.A))
    m.objective = pyo.Objective(expr=case.step_hours * sum(m.dso_cost[t] for t in m.T), sense=pyo.minimize)
    m.qp = qp
    m.scheme = "dso-led"
    return m


def set_case_data(m: pyo.ConcreteModel, case: Case) -> None:
    """Refresh every time-varying Param from ``case`` (same structure as the case the model was built from)."""
    for a, adn in enumerate(case.adns):
        set_adn_data(m.adn[a].der, adn)
    set_tn_data(m, case)
