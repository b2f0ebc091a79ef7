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
    bounds = singleton_bounds(qp)
    b.T = pyo.Set(initialize=list(periods), ordered=True)
    b.J = pyo.Set(initialize=range(qp.n_var))
    b.E = pyo.Set(initialize=range(qp.a_eq.shape[0]))
    b.I = pyo.Set(initialize=range(qp.a_in.shape[0]))
    b.x = pyo.Var(b.J, b.T, bounds=lambda _, j, t: bounds.get(j, (None, None)))
    b.primal_eq = pyo.Constraint(b.E, b.T, rule=lambda _, i, t: row_expr(qp.a_eq, i, b.x, t) == rhs_eq(i, t))
    b.primal_in = pyo.Constraint(b.I, b.T, rule=lambda _, k, t: row_expr(qp.a_in, k, b.x, t) <= float(qp.b_in[k]))
    b.cost = pyo.Expression(b.T, rule=lambda _, t: sum(0.5 * float(qp.q[j]) * b.x[j, t] ** 2 for j in b.J if qp.q[j])
                            + sum(float(qp.c[j]) * b.x[j, t] for j in b.J if qp.c[j]))


def singleton_bounds(qp: FollowerQP) -> dict[int, tuple[float | None, float | None]]:
    """Variable bounds implied by one-variable rows of ``A_in`` (generator limits, line ratings).

    Stated again as bounds because the conic back-end gives a free variable far-away +-1e8 bound rows; with the
    TN's generator and flow columns free, Clarabel declared the 5-ADN x 24 h stage 1 of the TSO-led baseline
    infeasible. Bounded, it solves it. The rows stay, so the model is unchanged.
    """
    out: dict[int, list] = {}
    a = qp.a_in
    for k in range(a.shape[0]):
        lo, hi = a.indptr[k], a.indptr[k + 1]
        if hi - lo != 1:
            continue
        j, coef = int(a.indices[lo]), float(a.data[lo])
        lb, ub = out.setdefault(j, [None, None])
        limit = float(qp.b_in[k]) / coef
        if coef > 0:
            out[j][1] = limit if ub is None else min(ub, limit)
        else:
            out[j][0] = limit if lb is None else max(lb, limit)
    return {j: (lb, ub) for j, (lb, ub) in out.items()}
