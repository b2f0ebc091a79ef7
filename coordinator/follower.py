"""Solve the TSO's DC-OPF on its own at a given PCC schedule: the follower's best response.

Used to certify a bilevel solution (its KKT block must reproduce this dispatch and cost) and by the TSO-led
baseline. It is a convex QP; Clarabel (interior point) solves it directly from the ``FollowerQP`` matrices,
independently of the Pyomo KKT block it checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.sparse as sp

from coordinator.blocks.dcopf import FollowerQP


class FollowerInfeasible(RuntimeError):
    """The TN cannot serve the given PCC schedule (generation or line limits)."""


@dataclass
class FollowerSolution:
    x: np.ndarray
    lam: np.ndarray  # equality duals; lam[balance_row[n]] is the LMP at bus n
    mu: np.ndarray  # inequality duals
    cost: float  # $/h

    def lmp(self, qp: FollowerQP) -> dict[int, float]:
        return {n: float(self.lam[row]) for n, row in qp.balance_row.items()}


def solve_follower(qp: FollowerQP, b_eq: np.ndarray, tol: float = 1e-9) -> FollowerSolution:
    """min 1/2 x'Qx + c'x s.t. A_eq x = b_eq, A_in x <= b_in, with duals in the KKT block's sign convention."""
    n = qp.n_var
    a = sp.vstack([qp.a_eq, qp.a_in]).tocsc()
    b = np.concatenate([b_eq, qp.b_in])
    cones = [clarabel.ZeroConeT(qp.a_eq.shape[0]), clarabel.NonnegativeConeT(qp.a_in.shape[0])]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    solver = clarabel.DefaultSolver(sp.diags(qp.q, format="csc", shape=(n, n)), qp.c, a, b, cones, settings)
    sol = solver.solve()
    if str(sol.status) not in ("Solved", "AlmostSolved"):
        raise FollowerInfeasible(f"DC-OPF at this PCC schedule: {sol.status}")
    x = np.array(sol.x)
    z = np.array(sol.z)
    m_eq = qp.a_eq.shape[0]
    # Clarabel's Lagrangian is f + z'(Ax - b): our lam (dual of A_eq x = b_eq, lam = dV/db) is -z_eq.
    lam, mu = -z[:m_eq], z[m_eq:]
    cost = float(0.5 * qp.q @ x**2 + qp.c @ x)
    return FollowerSolution(x=x, lam=lam, mu=mu, cost=cost)
