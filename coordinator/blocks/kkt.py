"""KKT conditions of a convex QP follower whose right-hand side depends on leader decisions.

For ``min 1/2 x'Qx + c'x  s.t.  A_eq x = b_eq(w),  A_in x <= b_in`` the block adds primal feasibility (with an
explicit slack ``s = b_in - A_in x >= 0``), stationarity ``Qx + c - A_eq' lam + A_in' mu = 0``, ``mu >= 0`` and
``mu ⟂ s`` through a complementarity strategy. Assembled from the matrices rather than by Pyomo's ``core.kkt``
so that big-M values can be taken from data and the duals are named (lam of a balance row is the LMP).
"""

from __future__ import annotations

from collections.abc import Callable

import pyomo.environ as pyo

from coordinator.blocks.complementarity import STRATEGIES
from coordinator.blocks.dcopf import FollowerQP
from coordinator.blocks.primal import RhsEq, row_expr

__all__ = ["RhsEq", "add_kkt", "check_dual_bounds", "follower_payment"]


def add_kkt(b: pyo.Block, qp: FollowerQP, periods: range, rhs_eq: RhsEq, strategy: str = "bigm",
            dual_bound: float = 1000.0) -> None:
    """Add the follower's KKT system for every period in ``periods`` to block ``b``.

    ``dual_bound`` bounds every inequality multiplier and every balance-row dual (the documented price cap);
    it is the dual-side big-M. ``check_dual_bounds`` tells after a solve whether any multiplier reached it.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"complementarity strategy {strategy!r} is not one of {sorted(STRATEGIES)}")
    b.T = pyo.Set(initialize=list(periods), ordered=True)
    b.J = pyo.Set(initialize=range(qp.n_var))
    b.E = pyo.Set(initialize=range(qp.a_eq.shape[0]))
    b.I = pyo.Set(initialize=range(qp.a_in.shape[0]))
    balance_rows = set(qp.balance_row.values())

    b.x = pyo.Var(b.J, b.T)
    b.lam = pyo.Var(b.E, b.T, bounds=lambda _, i, t: (-dual_bound, dual_bound) if i in balance_rows else (None, None))
    b.mu = pyo.Var(b.I, b.T, bounds=(0, dual_bound))
    b.s = pyo.Var(b.I, b.T, bounds=lambda _, k, t: (0, float(qp.slack_max[k])))

    a_eq, a_in = qp.a_eq, qp.a_in
    b.primal_eq = pyo.Constraint(b.E, b.T, rule=lambda _, i, t: row_expr(a_eq, i, b.x, t) == rhs_eq(i, t))
    b.primal_in = pyo.Constraint(b.I, b.T, rule=lambda _, k, t: b.s[k, t] == qp.b_in[k] - row_expr(a_in, k, b.x, t))

    a_eq_c, a_in_c = a_eq.tocsc(), a_in.tocsc()

    def col_terms(a, j):
        lo, hi = a.indptr[j], a.indptr[j + 1]
        return zip(a.indices[lo:hi], a.data[lo:hi], strict=True)

    def stationarity(_, j, t):
        return (qp.q[j] * b.x[j, t] + qp.c[j]
                - sum(float(v) * b.lam[int(i), t] for i, v in col_terms(a_eq_c, j))
                + sum(float(v) * b.mu[int(k), t] for k, v in col_terms(a_in_c, j))) == 0

    b.stationarity = pyo.Constraint(b.J, b.T, rule=stationarity)
    STRATEGIES[strategy](b, qp)


def follower_payment(b: pyo.Block, qp: FollowerQP, t: int, demand: Callable[[int], object]) -> object:
    """Exact value of ``sum_n lam_n * W_n`` at a KKT point, by strong duality (docs/formulation.md, strong duality).

    ``lam' b_eq = x'Qx + c'x + mu' b_in``; subtracting ``sum_n lam_n D_n`` (D is data) leaves the leaders'
    payment without the bilinear term: convex quadratic in x, linear in the duals.
    """
    quad = sum(float(qp.q[j]) * b.x[j, t] ** 2 for j in range(qp.n_var) if qp.q[j] != 0)
    lin = sum(float(qp.c[j]) * b.x[j, t] for j in range(qp.n_var) if qp.c[j] != 0)
    dual = sum(float(qp.b_in[k]) * b.mu[k, t] for k in b.I if qp.b_in[k] != 0)
    demand_term = sum(b.lam[row, t] * demand(n) for n, row in qp.balance_row.items())
    return quad + lin + dual - demand_term


def check_dual_bounds(b: pyo.Block, dual_bound: float, tol: float = 1e-6) -> list[str]:
    """Names of multipliers that sit at the dual big-M (the M would then have cut the true optimum)."""
    hits = [f"mu[{k},{t}]" for (k, t) in b.mu if pyo.value(b.mu[k, t]) >= dual_bound * (1 - tol)]
    hits += [f"lam[{i},{t}]" for (i, t) in b.lam
             if b.lam[i, t].has_ub() and abs(pyo.value(b.lam[i, t])) >= dual_bound * (1 - tol)]
    return hits
