"""Exact elimination of the follower's KKT block where its active set provably cannot change.

The DC-OPF is a convex QP whose right-hand side moves with the leaders' PCC withdrawals W. Within one critical
region (fixed active set) its primal and dual solutions are affine in W. We take the active set at the centre of
the box of reachable W, solve the equality-constrained KKT system for it once, and check that every inactive
constraint stays feasible and every active multiplier stays non-negative over the WHOLE box. Because those are
affine functions of W, their minimum over a box is found coordinate by coordinate: the check is a proof, not a
sample. Where it holds, the follower is replaced by ``x(W) = x0 + S W`` and ``lam(W) = lam0 + L W``: no binaries,
and the leaders' payment ``lam(W)'W`` is a convex quadratic (L is the Hessian of the convex value function).
Where it fails, the period keeps its KKT block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from coordinator.blocks.dcopf import FollowerQP
from coordinator.follower import FollowerInfeasible, solve_follower


@dataclass
class AffineFollower:
    """Follower solution on a certified box: x = x0 + S w, lam = lam0 + L w, mu = mu0 + M w (w per host bus)."""

    buses: list[int]  # host buses, the order of w
    x0: np.ndarray
    S: np.ndarray
    lam0: np.ndarray
    L: np.ndarray
    mu0: np.ndarray
    M: np.ndarray
    active: list[int]


def affine_follower(qp: FollowerQP, demand: dict[int, float], lo: dict[int, float], hi: dict[int, float],
                    tol: float = 1e-7) -> AffineFollower | None:
    """The certified affine follower on the box [lo, hi] of withdrawals per host bus, or None."""
    buses = sorted(lo)
    centre = {n: 0.5 * (lo[n] + hi[n]) for n in buses}
    try:
        ref = solve_follower(qp, qp.b_eq(demand, centre))
    except FollowerInfeasible:
        return None
    slack = qp.b_in - qp.a_in @ ref.x
    active = [k for k in range(len(slack)) if ref.mu[k] > tol * max(1.0, np.abs(ref.mu).max()) or slack[k] < 1e-9]
    sol = _solve_active_set(qp, demand, buses, active)
    if sol is None:
        return None
    x0, S, lam0, L, mu_a0, mu_a = sol
    lo_v, hi_v = np.array([lo[n] for n in buses]), np.array([hi[n] for n in buses])
    inactive = [k for k in range(len(slack)) if k not in set(active)]
    a_in = qp.a_in.tocsr()
    slack0 = qp.b_in[inactive] - a_in[inactive] @ x0
    slack_s = -(a_in[inactive] @ S)
    if np.any(_box_min(slack0, slack_s, lo_v, hi_v) < -1e-7) or np.any(_box_min(mu_a0, mu_a, lo_v, hi_v) < -1e-9):
        return None
    mu0 = np.zeros(len(slack))
    M = np.zeros((len(slack), len(buses)))
    mu0[active], M[active] = mu_a0, mu_a
    return AffineFollower(buses=buses, x0=x0, S=S, lam0=lam0, L=L, mu0=mu0, M=M, active=active)


def _box_min(g0: np.ndarray, G: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact minimum over the box of each affine function g0 + G w."""
    if g0.size == 0:
        return g0
    return g0 + np.minimum(G * lo, G * hi).sum(axis=1)


def _solve_active_set(qp: FollowerQP, demand: dict[int, float], buses: list[int], active: list[int]):
    """Solve [Q -Aeq' Aa'; Aeq 0 0; Aa 0 0] [x; lam; mu] = [-c; b_eq(w); b_a] for w = 0 and unit w per bus."""
    n, m_eq, n_a = qp.n_var, qp.a_eq.shape[0], len(active)
    a_a = qp.a_in.tocsr()[active]
    kkt = sp.bmat([[sp.diags(qp.q), -qp.a_eq.T, a_a.T],
                   [qp.a_eq, None, None],
                   [a_a, None, None]], format="csc")
    rhs = np.zeros((n + m_eq + n_a, 1 + len(buses)))
    rhs[:n, 0] = -qp.c
    rhs[n:n + m_eq, 0] = qp.b_eq(demand, {})
    rhs[n + m_eq:, 0] = qp.b_in[active]
    for i, bus in enumerate(buses):
        rhs[n + qp.balance_row[bus], 1 + i] = 1.0
    try:
        lu = spla.splu(kkt)
        sol = lu.solve(rhs)
    except RuntimeError:  # singular: degenerate active set, keep the KKT block
        return None
    if not np.all(np.isfinite(sol)) or np.abs(kkt @ sol - rhs).max() > 1e-6:
        return None
    x, lam, mu = sol[:n], sol[n:n + m_eq], sol[n + m_eq:]
    return x[:, 0], x[:, 1:], lam[:, 0], lam[:, 1:], mu[:, 0], mu[:, 1:]


def withdrawal_box(case, t: int, loss_allowance: float) -> tuple[dict[int, float], dict[int, float]]:
    """Reachable PCC withdrawal per host bus in period t, from device limits (see ``pcc_range``)."""
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for adn in case.adns:
        a_lo, a_hi = pcc_range(adn, t, loss_allowance)
        lo[adn.tn_bus] = lo.get(adn.tn_bus, 0.0) + a_lo
        hi[adn.tn_bus] = hi.get(adn.tn_bus, 0.0) + a_hi
    return lo, hi


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
