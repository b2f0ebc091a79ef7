"""The leaders' side shared by every problem: ADN blocks, the PCC boundary and box, TN demand, operating costs.

The DSO-led and TSO-led problems are peers assembled from these (neither imports the other).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyomo.environ as pyo

from coordinator.blocks.data import add_data
from coordinator.blocks.dcopf import FollowerQP
from coordinator.blocks.der import add_der
from coordinator.blocks.distflow import add_distflow
from coordinator.blocks.pcc import add_pcc, pcc_range
from coordinator.case import Case, Prices


def add_adns(m: pyo.Block, case: Case, voltage_cuts: bool = False, load_peaks: list | None = None) -> None:
    """One block per ADN with its devices (``der``) and its SOC-relaxed network (``net``); ``load_peaks`` per ADN
    sizes the purchase big-M (``add_der``)."""
    periods = range(case.periods)
    m.adn = pyo.Block(range(len(case.adns)))
    for a, adn in enumerate(case.adns):
        blk = m.adn[a]
        blk.der = pyo.Block()
        p_withdrawal, q_withdrawal = add_der(blk.der, adn, periods, case.step_hours,
                                             None if load_peaks is None else load_peaks[a])
        blk.net = pyo.Block()
        add_distflow(blk.net, adn, periods, p_withdrawal, q_withdrawal, voltage_cuts)
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
    return pcc_operating_cost(case.prices, m.pcc, a, t) + adn_operating_cost(case.prices, m.adn[a].der,
                                                                             m.adn[a].net, t)


def pcc_operating_cost(p: Prices, pcc: pyo.Block, a: int, t: int):
    """The part of ADN a's operating cost at its PCC: TN network charges and the wheeling fee ($/h)."""
    return p.c_tn_imp * pcc.p_imp[a, t] + p.c_tn_exp * pcc.p_exp[a, t] + p.c_wheel * pcc.inter_in[a, t]


def adn_operating_cost(p: Prices, der: pyo.Block, net: pyo.Block, t: int):
    """The part of an ADN's operating cost inside it: retail and P2P fees, BESS wear, curtailment, losses ($/h)."""
    return (p.c_ret * der.retail_volume[t] + p.c_p2p * der.p2p_volume[t] + p.c_deg * der.bess_throughput[t]
            + p.c_curt * der.curtailment[t] + p.c_loss * net.losses[t])


def add_pcc_box(m: pyo.Block, case: Case, loss_allowance: float,
                withdrawal: Callable[[int, int], object] | None = None) -> None:
    """Reachable range of each PCC withdrawal (data-derived; the affine follower is certified on this box);
    ``withdrawal(a, t)``: ADN a's PCC withdrawal (default: its network block's ``pcc_p``)."""
    w = withdrawal or (lambda a, t: m.adn[a].net.pcc_p[t])
    add_data(m, "pcc_lo", m.pcc.A, m.T)
    add_data(m, "pcc_hi", m.pcc.A, m.T)
    set_pcc_box(m, case, loss_allowance)
    m.pcc_box_lo = pyo.Constraint(m.pcc.A, m.T, rule=lambda _, a, t: w(a, t) - m.pcc_lo[a, t] >= 0)
    m.pcc_box_hi = pyo.Constraint(m.pcc.A, m.T, rule=lambda _, a, t: w(a, t) - m.pcc_hi[a, t] <= 0)


def set_pcc_box(m: pyo.Block, case: Case, loss_allowance: float) -> None:
    write_pcc_box(m, *pcc_box(case, loss_allowance))


def pcc_box(case: Case, loss_allowance: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, T) lower and upper bounds of every PCC withdrawal."""
    box = np.array([[pcc_range(adn, t, loss_allowance) for t in range(case.periods)] for adn in case.adns])
    return box[..., 0].reshape(len(case.adns), case.periods), box[..., 1].reshape(len(case.adns), case.periods)


def write_pcc_box(m: pyo.Block, lo: np.ndarray, hi: np.ndarray) -> None:
    for a, t in np.ndindex(lo.shape):
        m.pcc_lo[a, t].value, m.pcc_hi[a, t].value = float(lo[a, t]), float(hi[a, t])
