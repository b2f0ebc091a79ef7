"""A cheap incumbent near a relaxed point: re-solve only where rounding the binaries breaks it.

A node's trial fixes every binary at its rounding and re-solves the whole continuous problem: on case118 with 50
ADNs that is a second interior-point solve as long as the root's (28 s), although the rounded relaxed point
violates only about a hundred rows, all inside a few prosumers' and devices' rows. The repair instead also fixes
every continuous column at its relaxed value except the columns of the violated rows and their neighbours a few
rows away, so Clarabel solves a problem of a few thousand columns (the presolve substitutes the fixed ones out).
This is a restriction of the trial: any point it finds is feasible for the node, so it is a valid incumbent (the
bound still comes from the relaxations), and when it does not close the gap the full trial runs as before.
"""

from __future__ import annotations

import numpy as np

from coordinator.solvers.conic import ConicProblem
from coordinator.solvers.presolve import cones_outside

VIOLATION_TOL = 1e-7  # relative: an interior-point point satisfies its rows to about 1e-9
HOPS = (1, 3)  # neighbourhoods tried in turn: the violated rows' columns, then rows and columns this far away
MAX_FREE_SHARE = 0.5  # a neighbourhood this large is no cheaper than the full trial


class Repair:
    """The row-column graph of ``form`` (bound rows left out: they are bounds, not links), built once."""

    def __init__(self, form: ConicProblem) -> None:
        links = np.ones(form.A.shape[0], dtype=bool)
        links[form.bound_row:form.bound_row + form.n_bound_rows] = False
        self.A = form.A[links].tocsr()
        self.b = form.b[links]
        pattern = self.A.copy()
        pattern.data[:] = 1.0
        self.pattern, self.pattern_t = pattern, pattern.T.tocsr()
        self.continuous = ~form.integer
        n_lin = form.n_eq + form.n_nonneg - form.n_bound_rows  # the links' rows: equalities, inequalities, cones
        self.n_eq = form.n_eq
        self.n_lin = n_lin
        self.soc_dims = np.asarray(form.soc_dims, dtype=int)

    def violated(self, y: np.ndarray) -> np.ndarray:
        """Mask over the link rows that ``y`` violates (every row of a violated cone)."""
        s = self.b - self.A @ y
        scale = VIOLATION_TOL * (1.0 + np.abs(self.b))
        bad = np.zeros(len(s), dtype=bool)
        bad[:self.n_eq] = np.abs(s[:self.n_eq]) > scale[:self.n_eq]
        bad[self.n_eq:self.n_lin] = s[self.n_eq:self.n_lin] < -scale[self.n_eq:self.n_lin]
        bad[self.n_lin:] = np.repeat(cones_outside(s[self.n_lin:], self.soc_dims, VIOLATION_TOL), self.soc_dims)
        return bad

    def bounds(self, x: np.ndarray, lb: np.ndarray, ub: np.ndarray, hops: int
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """The trial's bounds (``lb``/``ub``: binaries fixed) with every continuous column outside the ``hops``
        neighbourhood of the violated rows also fixed, at ``x``; ``None`` when nothing is violated (the full
        trial is then as cheap as any) or the neighbourhood is most of the problem."""
        y = np.clip(x, lb, ub)
        free = (self.pattern_t @ self.violated(y).astype(float) > 0) & self.continuous
        if not free.any():
            return None
        for _ in range(hops):
            touched = self.pattern @ free.astype(float) > 0
            free |= (self.pattern_t @ touched.astype(float) > 0) & self.continuous
        if free.sum() > MAX_FREE_SHARE * self.continuous.sum():
            return None
        fix = self.continuous & ~free
        lb, ub = lb.copy(), ub.copy()
        lb[fix] = ub[fix] = y[fix]
        return lb, ub
