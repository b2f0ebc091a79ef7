"""The boundary between ADNs and the TN: PCC import/export split and inter-ADN P2P through the TN.

An ADN's physical withdrawal at its PCC is ``W_a = P_imp_a - P_exp_a + sum_b X_ba - sum_b X_ab``: the part bought
from (sold to) the TN market plus what it buys from (minus what it sells to) other ADNs. The TN carries W at the
host bus, so inter-ADN trades must be transportable by the follower's network.
"""

from __future__ import annotations

from itertools import combinations

import pyomo.environ as pyo

from coordinator.case import DistributionNetwork


def add_pcc(m: pyo.Block, adns: list[DistributionNetwork], periods: range, withdrawal, inter_adn: bool) -> None:
    """``withdrawal(a, t)`` is ADN a's physical PCC withdrawal (a Pyomo variable of its network block)."""
    names = list(range(len(adns)))
    limit = {a: adns[a].pcc_limit for a in names}
    m.A = pyo.Set(initialize=names)
    m.PT = pyo.Set(initialize=list(periods), ordered=True)
    m.p_imp = pyo.Var(m.A, m.PT, bounds=lambda _, a, t: (0, limit[a]))
    m.p_exp = pyo.Var(m.A, m.PT, bounds=lambda _, a, t: (0, limit[a]))
    m.z_imp = pyo.Var(m.A, m.PT, domain=pyo.Binary)
    m.imp_on = pyo.Constraint(m.A, m.PT, rule=lambda _, a, t: m.p_imp[a, t] <= limit[a] * m.z_imp[a, t])
    m.exp_on = pyo.Constraint(m.A, m.PT, rule=lambda _, a, t: m.p_exp[a, t] <= limit[a] * (1 - m.z_imp[a, t]))

    pairs = list(combinations(names, 2)) if inter_adn else []
    m.AB = pyo.Set(initialize=[(a, b) for a, b in pairs] + [(b, a) for a, b in pairs], dimen=2)
    m.PAIR = pyo.Set(initialize=pairs, dimen=2)
    m.X = pyo.Var(m.AB, m.PT, bounds=lambda _, a, b, t: (0, min(limit[a], limit[b])))
    m.d = pyo.Var(m.PAIR, m.PT, domain=pyo.Binary)  # 1: a sells to b, 0: b sells to a
    m.x_fwd = pyo.Constraint(m.PAIR, m.PT, rule=lambda _, a, b, t: m.X[a, b, t] <= m.X[a, b, t].ub * m.d[a, b, t])
    m.x_bwd = pyo.Constraint(m.PAIR, m.PT, rule=lambda _, a, b, t: m.X[b, a, t] <= m.X[b, a, t].ub * (1 - m.d[a, b, t]))
    m.inter_in = pyo.Expression(m.A, m.PT, rule=lambda _, a, t: sum(m.X[b, a, t] for b in m.A if (b, a) in m.AB))
    m.inter_out = pyo.Expression(m.A, m.PT, rule=lambda _, a, t: sum(m.X[a, b, t] for b in m.A if (a, b) in m.AB))
    m.pcc_split = pyo.Constraint(m.A, m.PT, rule=lambda _, a, t: withdrawal(a, t)
                                 == m.p_imp[a, t] - m.p_exp[a, t] + m.inter_in[a, t] - m.inter_out[a, t])


def pcc_range(adn, t: int, loss_allowance: float) -> tuple[float, float]:
    """Bounds on an ADN's PCC withdrawal: all PV and discharge vs all load and charge plus a loss allowance.

    Losses are >= 0, so the lower bound is exact; the upper bound assumes losses below ``loss_allowance`` times
    (load + charging), a modelling constraint that only cuts physically absurd operating points.
    """
    load = float(adn.load_p[t].sum())
    bess = sum(b.pmax for b in adn.bess)
    lo = load - float(adn.pv_avail[t].sum()) - bess
    hi = (load + bess) * (1.0 + loss_allowance)
    return max(lo, -adn.pcc_limit), min(hi, adn.pcc_limit)
