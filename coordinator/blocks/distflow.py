"""SOC-relaxed DistFlow (branch-flow model) of one radial ADN over all periods.

The block only knows the network. The net withdrawal at each bus comes from whoever owns the devices (the DER
block) as Pyomo expressions, so the same network block serves every problem that needs an ADN.
"""

from __future__ import annotations

from collections.abc import Callable

import pyomo.environ as pyo

from coordinator.case import DistributionNetwork
from coordinator.cones import RotatedCone

Withdrawal = Callable[[int, int], object]  # (bus, t) -> Pyomo expression in MW / MVAr


def add_distflow(b: pyo.Block, adn: DistributionNetwork, periods: range, p_withdrawal: Withdrawal,
                 q_withdrawal: Withdrawal, voltage_cuts: bool = False) -> None:
    """Add DistFlow variables and constraints to ``b``; ``b.pcc_p[t]`` is the ADN's withdrawal from the TN.

    The rotated cones ``P^2 + Q^2 <= v_i * l`` are published in ``b.cones`` (``RotatedCone``) so that conic
    back-ends read them without parsing expressions.
    """
    br = {(x.i, x.j): x for x in adn.branches}
    children = adn.children()
    b.T = pyo.Set(initialize=list(periods), ordered=True)
    b.N = pyo.Set(initialize=adn.buses, ordered=True)
    b.L = pyo.Set(initialize=list(br), dimen=2, ordered=True)

    def l_bounds(_, i, j, t):
        smax = br[i, j].smax
        return (0.0, None if smax is None else smax**2)

    b.P = pyo.Var(b.L, b.T)
    b.Q = pyo.Var(b.L, b.T)
    b.l = pyo.Var(b.L, b.T, bounds=l_bounds)
    b.v = pyo.Var(b.N, b.T, bounds=(adn.vmin**2, adn.vmax**2), initialize=1.0)
    b.pcc_p = pyo.Var(b.T, bounds=(-adn.pcc_limit, adn.pcc_limit))
    b.pcc_q = pyo.Var(b.T)
    for t in b.T:
        b.v[adn.root, t].fix(1.0)

    def p_balance(_, i, j, t):
        return b.P[i, j, t] - br[i, j].r * b.l[i, j, t] - sum(b.P[j, k, t] for k in children[j]) == p_withdrawal(j, t)

    def q_balance(_, i, j, t):
        return b.Q[i, j, t] - br[i, j].x * b.l[i, j, t] - sum(b.Q[j, k, t] for k in children[j]) == q_withdrawal(j, t)

    def voltage_drop(_, i, j, t):
        x = br[i, j]
        return b.v[j, t] == b.v[i, t] - 2 * (x.r * b.P[i, j, t] + x.x * b.Q[i, j, t]) + (x.r**2 + x.x**2) * b.l[i, j, t]

    def cone(_, i, j, t):
        return b.P[i, j, t] ** 2 + b.Q[i, j, t] ** 2 <= b.v[i, t] * b.l[i, j, t]

    root = adn.root

    def pcc_p(_, t):
        return b.pcc_p[t] == sum(b.P[root, k, t] for k in children[root]) + p_withdrawal(root, t)

    def pcc_q(_, t):
        return b.pcc_q[t] == sum(b.Q[root, k, t] for k in children[root]) + q_withdrawal(root, t)

    b.p_balance = pyo.Constraint(b.L, b.T, rule=p_balance)
    b.q_balance = pyo.Constraint(b.L, b.T, rule=q_balance)
    b.voltage_drop = pyo.Constraint(b.L, b.T, rule=voltage_drop)
    b.cone = pyo.Constraint(b.L, b.T, rule=cone)
    b.pcc_p_def = pyo.Constraint(b.T, rule=pcc_p)
    b.pcc_q_def = pyo.Constraint(b.T, rule=pcc_q)
    b.cones = [RotatedCone(b.cone[i, j, t], (b.P[i, j, t], b.Q[i, j, t]), b.v[i, t], b.l[i, j, t])
               for (i, j) in b.L for t in b.T]
    b.losses = pyo.Expression(b.T, rule=lambda _, t: sum(br[i, j].r * b.l[i, j, t] for (i, j) in b.L))
    if voltage_cuts:
        add_voltage_cuts(b, adn, p_withdrawal, q_withdrawal)


def add_voltage_cuts(b: pyo.Block, adn: DistributionNetwork, p_withdrawal: Withdrawal,
                     q_withdrawal: Withdrawal) -> None:
    """Keep the lossless (LinDistFlow) voltage below Vmax^2 at every bus.

    The remedy for an inexact relaxation under reverse flow: when the upper voltage limit binds, the relaxation can
    inflate ``l`` so that ``x*l`` absorbs reactive power and pulls the voltage down, instead of curtailing PV.
    The LinDistFlow voltage ignores that term, so bounding it removes the incentive (Gan, Li, Topcu and Low,
    "Exact convex relaxation of optimal power flow in radial networks", IEEE TAC 2015). It is a restriction:
    conservative near Vmax, never looser than the exact model's limit.
    """
    children = adn.children()
    br = {(x.i, x.j): x for x in adn.branches}
    subtree: dict[int, list[int]] = {}

    def collect(j: int) -> list[int]:
        subtree[j] = [j] + [k for c in children[j] for k in collect(c)]
        return subtree[j]

    collect(adn.root)
    parent = {x.j: x.i for x in adn.branches}

    def path(j: int) -> list[tuple[int, int]]:
        edges = []
        while j != adn.root:
            edges.append((parent[j], j))
            j = parent[j]
        return edges

    def v_lin(_, j, t):
        if j == adn.root:
            return pyo.Constraint.Skip
        drop = sum(br[e].r * sum(p_withdrawal(k, t) for k in subtree[e[1]])
                   + br[e].x * sum(q_withdrawal(k, t) for k in subtree[e[1]]) for e in path(j))
        return b.v[adn.root, t] - 2 * drop <= adn.vmax**2

    b.v_lin_max = pyo.Constraint(b.N, b.T, rule=v_lin)


SOC_GAP_FLOOR = 1e-4  # (10 kVA)^2: below this v*l the relative slack measures solver tolerance, not physics


def soc_gap(b: pyo.Block, t: int | None = None) -> float:
    """Largest relative cone slack (v*l - P^2 - Q^2) / max(v*l, SOC_GAP_FLOOR), in period t or all; 0 = exact.

    The floor keeps branches carrying a few kVA (slack 1e-9 at interior-point accuracy) from reading as inexact;
    a relaxation that really absorbs power in fictitious losses shows values near 1 (docs/formulation.md, checks).
    """
    worst = 0.0
    for cone in b.cones:
        if t is not None and cone.constraint.index()[-1] != t:
            continue
        p, q = cone.ys
        vl = pyo.value(cone.a) * pyo.value(cone.b)
        worst = max(worst, (vl - pyo.value(p) ** 2 - pyo.value(q) ** 2) / max(vl, SOC_GAP_FLOOR))
    return worst
