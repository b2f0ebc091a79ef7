"""A matrix QP (``FollowerQP``) as a plain primal Pyomo block: the TN DC-OPF when the TSO optimises, not follows.

The TSO-led baseline puts the TN inside one convex problem with the ADNs, so it needs the DC-OPF's constraints and
cost, not its KKT conditions. Built from the same matrices as the KKT block, so both describe the same network.
"""

from __future__ import annotations

from collections.abc import Callable

import pyomo.environ as pyo
import scipy.sparse as sp

from coordinator.blocks.dcopf import FollowerQP

RhsEq = Callable[[int, int], object]  # (equality row, t) -> Pyomo expression or number


def row_expr(a: sp.csr_matrix, i: int, x: pyo.Var, t: int):
    """Row i of the CSR matrix ``a`` times ``x[:, t]`` as a Pyomo expression."""
    lo, hi = a.indptr[i], a.indptr[i + 1]
    return sum(float(v) * x[int(j), t] for j, v in zip(a.indices[lo:hi], a.data[lo:hi], strict=True))


def add_primal_qp(b: pyo.Block, qp: FollowerQP, periods: range, rhs_eq: RhsEq) -> None:
    """``b.x[j, t]`` with ``A_eq x = rhs_eq(i, t)``, ``A_in x <= b_in``; ``b.cost[t]`` is 1/2 x'Qx + c'x ($/h)."""
    b.T = pyo.Set(initialize=list(periods), ordered=True)
    b.J = pyo.Set(initialize=range(qp.n_var))
    b.E = pyo.Set(initialize=range(qp.a_eq.shape[0]))
    b.I = pyo.Set(initialize=range(qp.a_in.shape[0]))
    b.x = pyo.Var(b.J, b.T)
    b.primal_eq = pyo.Constraint(b.E, b.T, rule=lambda _, i, t: row_expr(qp.a_eq, i, b.x, t) == rhs_eq(i, t))
    b.primal_in = pyo.Constraint(b.I, b.T, rule=lambda _, k, t: row_expr(qp.a_in, k, b.x, t) <= float(qp.b_in[k]))
    b.cost = pyo.Expression(b.T, rule=lambda _, t: sum(0.5 * float(qp.q[j]) * b.x[j, t] ** 2 for j in b.J if qp.q[j])
                            + sum(float(qp.c[j]) * b.x[j, t] for j in b.J if qp.c[j]))
