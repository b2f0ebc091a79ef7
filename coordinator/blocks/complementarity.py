"""Strategies that enforce ``mu[k,t] * s[k,t] = 0`` for a KKT block (``b.mu``, ``b.s`` bounded above).

- ``bigm``: one binary per pair, ``mu <= M_d z``, ``s <= M_p (1 - z)``; the M values are the variables' own
  upper bounds (slack from the primal data, multiplier from the price cap).
- ``sos1``: an SOS1 set {mu, s} per pair; no M, but the solver must support SOS1 (SCIP and Gurobi do).
"""

from __future__ import annotations

import pyomo.environ as pyo


def bigm(b: pyo.Block, _qp) -> None:
    b.z = pyo.Var(b.I, b.T, domain=pyo.Binary)
    b.mu_on = pyo.Constraint(b.I, b.T, rule=lambda _, k, t: b.mu[k, t] <= b.mu[k, t].ub * b.z[k, t])
    b.s_on = pyo.Constraint(b.I, b.T, rule=lambda _, k, t: b.s[k, t] <= b.s[k, t].ub * (1 - b.z[k, t]))


def sos1(b: pyo.Block, _qp) -> None:
    pairs = [(k, t) for k in b.I for t in b.T]
    b.PAIRS = pyo.Set(initialize=range(len(pairs)))
    b.sos = pyo.SOSConstraint(b.PAIRS, rule=lambda _, n: [b.mu[pairs[n]], b.s[pairs[n]]], sos=1)


STRATEGIES = {"bigm": bigm, "sos1": sos1}
