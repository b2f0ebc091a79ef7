"""The follower as an exact disjunction over its critical regions (convex-hull formulation), for one period.

Pick region r (binary delta_r); then x = x0_r + S_r w and lambda = lam0_r + L_r w, valid while w satisfies region
r's facets. The hull disaggregates w into w_r (zero unless r is picked) and writes every region constraint in
perspective form, so the continuous relaxation is the tightest possible. The payment lambda_r(w)'w is convex
quadratic in each region; its perspective ``w_r' L_r w_r <= tau_r * delta_r`` is a rotated cone with
y_r = F_r w_r, F_r'F_r = sym(L_r).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coordinator.blocks.dcopf import FollowerQP, psd_factor
from coordinator.followers import FollowerForm, LocalCone
from coordinator.parametric import AffineFollower


def hull_form(qp: FollowerQP, regions: list[AffineFollower], lo: np.ndarray, hi: np.ndarray) -> FollowerForm:
    """``lo``/``hi``: the box of w (host-bus order of ``regions[0].buses``)."""
    buses = list(regions[0].buses)
    k = len(buses)
    rows_bal = [qp.balance_row[n] for n in buses]
    factors = [psd_factor(r.L[rows_bal]) for r in regions]
    # local layout per region r: [delta_r, w_r (k), tau_r, y_r (e_r)]
    offsets, n = [], 0
    for f in factors:
        offsets.append(n)
        n += 2 + k + f.shape[0]
    lb, ub, integer = np.full(n, -np.inf), np.full(n, np.inf), np.zeros(n, dtype=bool)
    eq, eq_b, ineq, in_b = [], [], [], []  # rows as (w coefs {i: a}, local coefs {j: a}), rhs
    pick = {}
    pay_loc = np.zeros(n)
    x_map = np.zeros((qp.n_var, 1 + k + n))
    lam_map = np.zeros((qp.a_eq.shape[0], 1 + k + n))
    cones = []
    for reg, f, o in zip(regions, factors, offsets, strict=True):
        d, w, tau, y = o, o + 1 + np.arange(k), o + 1 + k, o + 2 + k + np.arange(f.shape[0])
        lb[d], ub[d], integer[d] = 0.0, 1.0, True
        lb[w], ub[w] = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
        lb[tau] = 0.0
        pick[d] = 1.0
        for i in range(k):
            ineq.append(({}, {d: float(lo[i]), int(w[i]): -1.0})), in_b.append(0.0)  # lo delta <= w_r
            ineq.append(({}, {int(w[i]): 1.0, d: -float(hi[i])})), in_b.append(0.0)  # w_r <= hi delta
        for c in range(len(reg.cut0)):  # facet: cut0 delta + cuts w_r >= 0
            coefs = {d: -float(reg.cut0[c])}
            coefs.update({int(w[i]): -float(reg.cuts[c, i]) for i in range(k) if reg.cuts[c, i]})
            ineq.append(({}, coefs)), in_b.append(0.0)
        for e in range(f.shape[0]):  # y = F w_r
            coefs = {int(y[e]): 1.0}
            coefs.update({int(w[i]): -float(f[e, i]) for i in range(k) if f[e, i]})
            eq.append(({}, coefs)), eq_b.append(0.0)
        if f.shape[0]:
            cones.append(LocalCone([int(j) for j in y], int(tau), int(d)))
        pay_loc[w] = reg.lam0[rows_bal]
        pay_loc[tau] = 1.0
        x_map[:, 1 + k + d] = reg.x0
        x_map[:, 1 + k + w] = reg.S
        lam_map[:, 1 + k + d] = reg.lam0
        lam_map[:, 1 + k + w] = reg.L
    eq.append(({}, pick)), eq_b.append(1.0)  # exactly one region
    for i in range(k):  # sum_r w_r = w
        coefs = {int(o + 1 + i): 1.0 for o in offsets}
        eq.append(({i: -1.0}, coefs)), eq_b.append(0.0)
    eq_w, eq_loc = _split(eq, k, n)
    in_w, in_loc = _split(ineq, k, n)
    return FollowerForm(
        kind="hull", buses=buses, lb=lb, ub=ub, integer=integer, eq_w=eq_w, eq_loc=eq_loc, eq_b=np.array(eq_b),
        in_w=in_w, in_loc=in_loc, in_b=np.array(in_b), cones=cones, pay_w=np.zeros(k), pay_ww=np.zeros((k, k)),
        pay_loc=pay_loc, pay_ll=sp.csr_matrix((n, n)), pay_const=0.0, x_map=x_map, lam_map=lam_map,
        info={"regions": len(regions)}, integer_hint=_containing_region(regions))


def _containing_region(regions: list[AffineFollower]):
    """w -> the one-hot pick (the integer locals are the deltas, in region order) of the region that contains w
    deepest (largest smallest facet slack)."""

    def hint(w: np.ndarray) -> np.ndarray:
        depth = [float(np.min(r.cut0 + r.cuts @ w, initial=np.inf)) for r in regions]
        out = np.zeros(len(regions))
        out[int(np.argmax(depth))] = 1.0
        return out

    return hint


def _split(rows, k: int, n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    out = []
    for part, width in ((0, k), (1, n)):
        r, c, v = [], [], []
        for i, row in enumerate(rows):
            for j, a in row[part].items():
                r.append(i), c.append(j), v.append(a)
        out.append(sp.csr_matrix((v, (r, c)), shape=(len(rows), width)))
    return out[0], out[1]
