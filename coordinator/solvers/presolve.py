"""Remove what a node's fixings pin down before Clarabel sees it.

Fixing a binary at a branch-and-bound node pins more than the binary: ``mu <= M z`` with ``z = 0`` leaves
``0 <= mu <= 0``, ``s <= M (1 - z)`` with ``z = 1`` leaves ``0 <= s <= 0``. An interior-point method has no interior
in such a pair; with dozens of them Clarabel reports a feasible node as primal infeasible (seen on the plain KKT
model: every rounding trial failed). Clarabel's own presolve only drops rows with infinite bounds, so this module
does the classic reductions itself:

1. **Singleton rows to bounds.** A ``<=`` or ``=`` row with one unfixed column left tightens that column's bounds;
   repeated until nothing new is fixed (a conflict proves the node infeasible without a solve).
2. **Fixed columns out.** Columns whose bounds meet are substituted into ``b`` and the objective; rows left with no
   unfixed column are checked and dropped. A cone stays whole while any of its rows has an unfixed column (its
   dimension is part of its meaning); a cone with none left is a constant, checked and dropped like a row (kept,
   it would be a point on the cone's boundary: no interior for Clarabel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

FIX_TOL = 1e-9  # bounds closer than this (relative) pin a column
CONFLICT_TOL = 1e-7  # bounds crossing by more than this (relative) prove infeasibility
ROUNDS = 8


@dataclass
class Reduced:
    """The problem over the unfixed columns, in Clarabel's layout, and the way back."""

    P: sp.csc_matrix
    q: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    n_eq: int
    n_nonneg: int
    soc_dims: list[int]  # the second-order cones left, in order
    const: float  # objective of the fixed part
    free: np.ndarray  # (n,) bool
    fixed_values: np.ndarray  # (n,) values of the fixed columns (0 elsewhere)

    def expand(self, x_free: np.ndarray) -> np.ndarray:
        x = self.fixed_values.copy()
        x[self.free] = x_free
        return x


class Presolver:
    """Built once per conic problem: the row blocks and sparsity patterns that every node's reduction reads."""

    def __init__(self, P: sp.csc_matrix, q: np.ndarray, A: sp.csc_matrix, n_eq: int, bound_rows: int,
                 n_nonneg: int, soc_dims: list[int]) -> None:
        self.P_full = (P + P.T - sp.diags(P.diagonal())).tocsc()
        self.q = q
        self.A = A
        self.row_pattern = A.tocsr()
        self.row_pattern.data[:] = 1.0
        self.n_eq, self.n_nonneg = n_eq, n_nonneg
        self.soc_dims = np.asarray(soc_dims, dtype=int)
        self.cone_offsets = _starts(self.soc_dims)  # each cone's first row, counted from the first cone row
        self.lin = np.r_[0:n_eq, n_eq + bound_rows:n_eq + n_nonneg]  # rows that propagate (bound rows are bounds)
        self.A_lin = A[self.lin].tocsr()
        self.is_eq = self.lin < n_eq
        self.pattern = self.row_pattern[self.lin]

    def reduce(self, lb: np.ndarray, ub: np.ndarray, b: np.ndarray) -> Reduced | None:
        """``None`` when the fixings are infeasible."""
        lb, ub = lb.copy(), ub.copy()
        b_lin = b[self.lin]
        fixed = _pinned(lb, ub)
        for _ in range(ROUNDS):
            value = np.where(fixed, lb, 0.0)
            rest = b_lin - self.A_lin @ value
            count = self.pattern @ (~fixed).astype(float)
            single = np.flatnonzero(count == 1)
            if not single.size:
                break
            sub = self.A_lin[single] @ sp.diags((~fixed).astype(float))
            sub = sub.tocsr()
            sub.eliminate_zeros()
            rows = np.repeat(np.arange(len(single)), np.diff(sub.indptr))
            cols, coef = sub.indices, sub.data
            limit = rest[single][rows] / coef
            eq = self.is_eq[single][rows]
            upper = eq | (coef > 0)
            lower = eq | (coef < 0)
            np.minimum.at(ub, cols[upper], limit[upper])
            np.maximum.at(lb, cols[lower], limit[lower])
            if np.any(lb - ub > CONFLICT_TOL * (1.0 + np.abs(lb))):
                return None
            now = _pinned(lb, ub)
            if not np.any(now & ~fixed):
                break
            fixed = now
        value = np.zeros(len(lb))
        value[fixed] = 0.5 * (lb[fixed] + np.maximum(ub[fixed], lb[fixed]))
        return self._eliminate(fixed, value, b)

    def _eliminate(self, fixed: np.ndarray, value: np.ndarray, b: np.ndarray) -> Reduced | None:
        free = ~fixed
        rest = b - self.A @ value
        n_free_in_row = self.row_pattern @ free.astype(float)
        eq_rows = np.arange(self.n_eq)
        nn_rows = np.arange(self.n_eq, self.n_eq + self.n_nonneg)
        empty_eq = eq_rows[n_free_in_row[eq_rows] == 0]
        empty_nn = nn_rows[n_free_in_row[nn_rows] == 0]
        scale = 1.0 + np.abs(b)
        if np.any(np.abs(rest[empty_eq]) > CONFLICT_TOL * scale[empty_eq] * 10) or \
                np.any(rest[empty_nn] < -CONFLICT_TOL * scale[empty_nn] * 10):
            return None
        keep = np.ones(len(b), dtype=bool)
        keep[empty_eq] = keep[empty_nn] = False
        cone_free = np.zeros(0)
        if len(self.soc_dims):  # a constant cone (no unfixed column left): check it, then drop it
            first = self.n_eq + self.n_nonneg
            cone_free = np.add.reduceat(n_free_in_row[first:], self.cone_offsets)
            constant = cone_free == 0
            if np.any(constant & cones_outside(rest[first:], self.soc_dims, CONFLICT_TOL * 10)):
                return None
            keep[first:] &= np.repeat(~constant, self.soc_dims)
        A = self.A[keep][:, free].tocsc()
        v = value[fixed]
        p_free = self.P_full[free]
        P = sp.triu(p_free[:, free]).tocsc()
        q = self.q[free] + p_free[:, fixed] @ v
        const = float(self.q[fixed] @ v + 0.5 * v @ (self.P_full[fixed][:, fixed] @ v))
        return Reduced(P=P, q=q, A=A, b=rest[keep], n_eq=self.n_eq - len(empty_eq),
                       n_nonneg=self.n_nonneg - len(empty_nn), soc_dims=[int(d) for d in self.soc_dims[cone_free > 0]],
                       const=const, free=free, fixed_values=value)


def cones_outside(rows: np.ndarray, dims: np.ndarray, tol: float) -> np.ndarray:
    """Per second-order cone stacked in ``rows`` (each ``(head, tail...)``, of the sizes ``dims``): whether the
    point lies outside it, ``head < |tail|``, by more than ``tol * (1 + |head|)``."""
    if not len(dims):
        return np.zeros(0, dtype=bool)
    starts = _starts(dims)
    head = rows[starts]
    tail = np.sqrt(np.maximum(np.add.reduceat(rows ** 2, starts) - head ** 2, 0.0))
    return head - tail < -tol * (1.0 + np.abs(head))


def _starts(dims: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(dims)[:-1]]).astype(int) if len(dims) else np.zeros(0, dtype=int)


def _pinned(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    return np.isfinite(lb) & np.isfinite(ub) & (ub - lb <= FIX_TOL * (1.0 + np.abs(lb)))
