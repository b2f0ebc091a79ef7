"""The follower as an exact disjunction over its critical regions (convex-hull formulation), for one period.

When a few critical regions of the DC-OPF cover the box of reachable PCC withdrawals W
(``parametric.explore_regions``), the follower is: pick region r (binary delta_r), then x = x0_r + S_r W and
lam = lam0_r + L_r W, valid while W satisfies region r's facets. The convex hull of that disjunction
disaggregates W into W_r (zero unless region r is picked) and writes every region constraint in perspective form,
so the continuous relaxation is the tightest possible. The leaders' payment lam_r(W)'W is convex quadratic inside
each region; its perspective ``W_r' L_r W_r <= tau_r * delta_r`` is a rotated cone, published in ``b.cones``
(``RotatedCone`` with y = F_r W_r, F_r'F_r = L_r, a = tau_r, b = delta_r).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyomo.environ as pyo

from coordinator.blocks.dcopf import AffineFollower, psd_factor
from coordinator.cones import RotatedCone

Reader = Callable[[int], object]  # index (follower variable j, or balance row) -> Pyomo expression


def add_region_disjunction(b: pyo.Block, regions: list[AffineFollower], w: list, lo: np.ndarray, hi: np.ndarray,
                           balance_rows: list[int]) -> tuple[Reader, Reader]:
    """``w[i]`` is the Pyomo expression of the withdrawal at host bus ``regions[0].buses[i]``. Returns the readers
    ``x_of(j)`` and ``lam_of(row)`` of the follower's primal and prices (returned, not stored on the block: a
    Pyomo block holds components only)."""
    k = len(w)
    R = range(len(regions))
    b.R = pyo.Set(initialize=R)
    b.I = pyo.Set(initialize=range(k))
    b.delta = pyo.Var(b.R, domain=pyo.Binary)
    b.w = pyo.Var(b.R, b.I, bounds=lambda _, r, i: (min(lo[i], 0.0), max(hi[i], 0.0)))
    b.pick_one = pyo.Constraint(expr=sum(b.delta[r] for r in R) == 1)
    b.split = pyo.Constraint(b.I, rule=lambda _, i: sum(b.w[r, i] for r in R) == w[i])
    b.w_lo = pyo.Constraint(b.R, b.I, rule=lambda _, r, i: b.w[r, i] >= lo[i] * b.delta[r])
    b.w_hi = pyo.Constraint(b.R, b.I, rule=lambda _, r, i: b.w[r, i] <= hi[i] * b.delta[r])
    cuts = [(r, c) for r in R for c in range(len(regions[r].cut0))]
    b.C = pyo.Set(initialize=cuts, dimen=2)
    b.facet = pyo.Constraint(b.C, rule=lambda _, r, c: float(regions[r].cut0[c]) * b.delta[r]
                             + sum(float(regions[r].cuts[c, i]) * b.w[r, i] for i in range(k)) >= 0)

    # payment: lam0_r' W_r + tau_r with W_r' L_r W_r <= tau_r delta_r
    factors = [psd_factor(reg.L[balance_rows]) for reg in regions]
    b.E = pyo.Set(initialize=[(r, e) for r in R for e in range(factors[r].shape[0])], dimen=2)
    b.y = pyo.Var(b.E)
    b.tau = pyo.Var(b.R, bounds=(0, None))
    b.y_def = pyo.Constraint(b.E, rule=lambda _, r, e: b.y[r, e] == sum(float(factors[r][e, i]) * b.w[r, i]
                                                                        for i in range(k) if factors[r][e, i]))
    b.perspective = pyo.Constraint(b.R, rule=lambda _, r: sum(b.y[r, e] ** 2 for e in range(factors[r].shape[0]))
                                   <= b.tau[r] * b.delta[r] if factors[r].shape[0] else pyo.Constraint.Skip)
    b.cones = [RotatedCone(b.perspective[r], tuple(b.y[r, e] for e in range(factors[r].shape[0])), b.tau[r],
                           b.delta[r]) for r in R if factors[r].shape[0]]
    lam0 = [reg.lam0[balance_rows] for reg in regions]
    b.payment = pyo.Expression(expr=sum(sum(float(lam0[r][i]) * b.w[r, i] for i in range(k)) + b.tau[r] for r in R))

    def affine(r: int, const: float, coefs: np.ndarray):
        return const * b.delta[r] + sum(float(coefs[i]) * b.w[r, i] for i in range(k) if coefs[i])

    def x_of(j: int):
        return sum(affine(r, float(regions[r].x0[j]), regions[r].S[j]) for r in R)

    def lam_of(row: int):
        return sum(affine(r, float(regions[r].lam0[row]), regions[r].L[row]) for r in R)

    return x_of, lam_of
