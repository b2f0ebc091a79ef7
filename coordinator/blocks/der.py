"""Devices and trades inside one ADN: PV with curtailment, BESS with a charge/discharge binary, intra-ADN P2P.

Time-varying data (loads, PV availability, initial SoC) are data variables (``blocks/data.py``) so a model can be
built once and re-used for every co-simulation step (see ``set_adn_data``). Big-M values come from the devices
and a load peak given at build time (``add_der``), not from each new horizon.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from coordinator.blocks.data import add_data
from coordinator.blocks.distflow import Withdrawal
from coordinator.case import DistributionNetwork


def add_der(b: pyo.Block, adn: DistributionNetwork, periods: range, dt: float,
            load_peak: np.ndarray | None = None) -> tuple[Withdrawal, Withdrawal]:
    """Add PV, BESS and prosumer P2P to ``b``; returns the per-bus withdrawals ``p(j, t)``, ``q(j, t)`` the network
    block balances (returned, not stored on the block: a Pyomo block holds components only).

    ``load_peak`` (per bus, MW; default: this horizon's peak) sizes the purchase big-M; a model re-used for other
    data must be rebuilt when a load exceeds it (``coordinator.pipeline`` checks).
    """
    b.T = pyo.Set(initialize=list(periods), ordered=True)
    b.PV = pyo.Set(initialize=range(len(adn.pv_bus)))
    b.B = pyo.Set(initialize=range(len(adn.bess)))
    b.K = pyo.Set(initialize=adn.prosumers, ordered=True)
    b.KK = pyo.Set(initialize=[(i, j) for i in adn.prosumers for j in adn.prosumers if i != j], dimen=2)

    add_data(b, "load_p", adn.buses, b.T)
    add_data(b, "load_q", adn.buses, b.T)
    add_data(b, "pv_avail", b.PV, b.T)
    add_data(b, "e0", b.B)
    set_adn_data(b, adn)

    # PV
    b.pv = pyo.Var(b.PV, b.T, bounds=(0, None))
    b.pv_limit = pyo.Constraint(b.PV, b.T, rule=lambda _, k, t: b.pv[k, t] <= b.pv_avail[k, t])
    b.curtailment = pyo.Expression(b.T, rule=lambda _, t: sum(b.pv_avail[k, t] - b.pv[k, t] for k in b.PV))

    # BESS: the binary u forbids charging and discharging in the same period
    bess = adn.bess
    b.ch = pyo.Var(b.B, b.T, bounds=lambda _, k, t: (0, bess[k].pmax))
    b.dis = pyo.Var(b.B, b.T, bounds=lambda _, k, t: (0, bess[k].pmax))
    b.soc = pyo.Var(b.B, b.T, bounds=lambda _, k, t: (bess[k].emin, bess[k].emax))
    b.u = pyo.Var(b.B, b.T, domain=pyo.Binary)
    b.ch_on = pyo.Constraint(b.B, b.T, rule=lambda _, k, t: b.ch[k, t] <= bess[k].pmax * b.u[k, t])
    b.dis_on = pyo.Constraint(b.B, b.T, rule=lambda _, k, t: b.dis[k, t] <= bess[k].pmax * (1 - b.u[k, t]))

    def energy(_, k, t):
        prev = b.e0[k] if t == b.T.first() else b.soc[k, b.T.prev(t)]
        return b.soc[k, t] == prev + dt * (bess[k].eta_c * b.ch[k, t] - b.dis[k, t] / bess[k].eta_d)

    b.energy = pyo.Constraint(b.B, b.T, rule=energy)
    b.end_soc = pyo.Constraint(b.B, rule=lambda _, k: b.soc[k, b.T.last()] >= b.e0[k])

    # Prosumers: P2P trades q[i, j] (i sells to j) and retail exchange with the DSO grid
    pv_at = {i: [k for k, bus in enumerate(adn.pv_bus) if bus == i] for i in adn.buses}
    bess_at = {i: [k for k, x in enumerate(bess) if x.bus == i] for i in adn.buses}
    peak = adn.load_p.max(axis=0) if load_peak is None else np.asarray(load_peak, dtype=float)
    big_sell = {i: sum(adn.pv_peak[k] for k in pv_at[i]) + sum(bess[k].pmax for k in bess_at[i]) for i in adn.prosumers}
    big_buy = {i: float(peak[adn.buses.index(i)]) * 2 + sum(bess[k].pmax for k in bess_at[i]) + 1e-3
               for i in adn.prosumers}
    b.q = pyo.Var(b.KK, b.T, bounds=(0, None))
    b.g_imp = pyo.Var(b.K, b.T, bounds=(0, None))
    b.g_exp = pyo.Var(b.K, b.T, bounds=(0, None))
    b.y_sell = pyo.Var(b.K, b.T, domain=pyo.Binary)
    b.y_buy = pyo.Var(b.K, b.T, domain=pyo.Binary)
    b.sales = pyo.Expression(b.K, b.T, rule=lambda _, i, t: sum(b.q[i, j, t] for j in b.K if j != i))
    b.purchases = pyo.Expression(b.K, b.T, rule=lambda _, i, t: sum(b.q[j, i, t] for j in b.K if j != i))
    b.one_side = pyo.Constraint(b.K, b.T, rule=lambda _, i, t: b.y_sell[i, t] + b.y_buy[i, t] <= 1)
    b.sell_on = pyo.Constraint(b.K, b.T, rule=lambda _, i, t: b.sales[i, t] <= big_sell[i] * b.y_sell[i, t])
    b.buy_on = pyo.Constraint(b.K, b.T, rule=lambda _, i, t: b.purchases[i, t] <= big_buy[i] * b.y_buy[i, t])

    def own_balance(_, i, t):
        produced = sum(b.pv[k, t] for k in pv_at[i]) + sum(b.dis[k, t] - b.ch[k, t] for k in bess_at[i])
        return produced - b.load_p[i, t] == b.sales[i, t] - b.purchases[i, t] + b.g_exp[i, t] - b.g_imp[i, t]

    b.prosumer_balance = pyo.Constraint(b.K, b.T, rule=own_balance)

    def p_withdrawal(j: int, t: int):
        return (b.load_p[j, t] - sum(b.pv[k, t] for k in pv_at[j])
                + sum(b.ch[k, t] - b.dis[k, t] for k in bess_at[j]))

    b.p2p_volume = pyo.Expression(b.T, rule=lambda _, t: sum(b.q[i, j, t] for (i, j) in b.KK))
    b.retail_volume = pyo.Expression(b.T, rule=lambda _, t: sum(b.g_imp[i, t] + b.g_exp[i, t] for i in b.K))
    b.bess_throughput = pyo.Expression(b.T, rule=lambda _, t: sum(b.ch[k, t] + b.dis[k, t] for k in b.B))
    return p_withdrawal, lambda j, t: b.load_q[j, t]


def set_adn_data(b: pyo.Block, adn: DistributionNetwork) -> None:
    """Copy the time-varying data of ``adn`` (loads, PV availability, initial SoC) into the block's Params."""
    for ti, t in enumerate(b.T):
        for n, bus in enumerate(adn.buses):
            b.load_p[bus, t].value = float(adn.load_p[ti, n])
            b.load_q[bus, t].value = float(adn.load_q[ti, n])
        for k in b.PV:
            b.pv_avail[k, t].value = float(adn.pv_avail[ti, k])
    for k in b.B:
        b.e0[k].value = adn.bess[k].e0
