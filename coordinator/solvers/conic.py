"""Pyomo model -> conic standard form for Clarabel (interior-point SOCP), with binaries as bound rows.

Clarabel solves ``min 1/2 x'Px + q'x  s.t.  Ax + s = b, s in K``. Linear constraints come from Pyomo's standard
representation; the rotated cones ``P^2 + Q^2 <= v*l`` are read from the ``cones`` lists that the DistFlow blocks
publish (never parsed from expressions), as ``(v + l, 2P, 2Q, v - l) in SOC(4)``. Every variable bound is a row,
so fixing a binary at a branch-and-bound node only changes ``b``: the matrix is built once per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import pyomo.environ as pyo
import scipy.sparse as sp
from pyomo.repn import generate_standard_repn

# statuses that a second attempt would not change ("Almost...Infeasible" is numerical doubt: retried, then an error)
_FINAL = ("Solved", "AlmostSolved", "PrimalInfeasible", "DualInfeasible", "MaxTime")


@dataclass
class ConicSolution:
    status: str  # "optimal" | "infeasible" | "time_limit" | "error"
    x: np.ndarray | None
    objective: float | None


def registered_cones(model: pyo.Block) -> list[tuple]:
    """Every rotated cone the blocks publish in their ``cones`` lists, as (constraint, [y...], a, b) meaning
    ``sum y^2 <= a*b`` (DistFlow publishes (constraint, P, Q, v, l))."""
    cones = []
    for blk in model.block_data_objects(active=True):
        for entry in getattr(blk, "cones", None) or []:
            if isinstance(entry, tuple) and len(entry) == 5:
                entry = (entry[0], [entry[1], entry[2]], entry[3], entry[4])
            if isinstance(entry, tuple) and len(entry) == 4:
                cones.append(entry)
    return cones


class ConicForm:
    """The model's continuous relaxation in Clarabel form; ``solve(lb, ub)`` solves it with other variable bounds."""

    def __init__(self, model: pyo.ConcreteModel):
        cones = registered_cones(model)
        cone_ids = {id(entry[0]) for entry in cones}
        self.columns: list = []
        self._col: dict[int, int] = {}
        eq_rows, in_rows = [], []  # (coefs {col: a}, rhs)
        for con in model.component_data_objects(pyo.Constraint, active=True):
            if id(con) in cone_ids:
                continue
            repn = generate_standard_repn(con.body, quadratic=False)
            if not repn.is_linear():
                raise ValueError(f"constraint {con.name} is nonlinear and not a registered cone")
            coefs = self._coefs(repn.linear_vars, repn.linear_coefs)
            const = float(pyo.value(repn.constant))
            lb = None if con.lower is None else float(pyo.value(con.lower)) - const
            ub = None if con.upper is None else float(pyo.value(con.upper)) - const
            if lb is not None and ub is not None and abs(lb - ub) < 1e-12:
                eq_rows.append((coefs, ub))
                continue
            if ub is not None:
                in_rows.append((coefs, ub))
            if lb is not None:
                in_rows.append(({c: -a for c, a in coefs.items()}, -lb))
        obj = next(model.component_data_objects(pyo.Objective, active=True))
        repn = generate_standard_repn(obj.expr, quadratic=True)
        self.sense = 1.0 if obj.sense == pyo.minimize else -1.0
        q_lin = self._coefs(repn.linear_vars, repn.linear_coefs)
        quad = [(self._col_of(a), self._col_of(b), float(c))
                for (a, b), c in zip(repn.quadratic_vars or [], repn.quadratic_coefs or [], strict=True)]
        self.obj_const = float(pyo.value(repn.constant))
        soc_rows = [self._cone_rows(entry) for entry in cones]
        self._assemble(eq_rows, in_rows, soc_rows, q_lin, quad)

    # -- columns -------------------------------------------------------------------------------------------
    def _col_of(self, var) -> int:
        key = id(var)
        if key not in self._col:
            self._col[key] = len(self.columns)
            self.columns.append(var)
        return self._col[key]

    def _coefs(self, variables, coefs) -> dict[int, float]:
        out: dict[int, float] = {}
        for v, a in zip(variables, coefs, strict=True):
            c = self._col_of(v)
            out[c] = out.get(c, 0.0) + float(pyo.value(a))
        return out

    def _cone_rows(self, entry) -> list[tuple[dict[int, float], float]]:
        """Rows of s = b - A x for (a + b, 2y..., a - b) in SOC; fixed variables move into b."""
        _, ys, a_var, b_var = entry
        rows = []
        terms_list = [[(a_var, 1.0), (b_var, 1.0)]] + [[(y, 2.0)] for y in ys] + [[(a_var, 1.0), (b_var, -1.0)]]
        for terms in terms_list:
            coefs: dict[int, float] = {}
            const = 0.0
            for var, a in terms:
                if var.fixed:
                    const += a * float(var.value)
                else:
                    c = self._col_of(var)
                    coefs[c] = coefs.get(c, 0.0) - a
            rows.append((coefs, const))
        return rows

    def _assemble(self, eq_rows, in_rows, soc_rows, q_lin, quad) -> None:
        n = len(self.columns)
        lb = np.array([-np.inf if v.lb is None else float(v.lb) for v in self.columns])
        ub = np.array([np.inf if v.ub is None else float(v.ub) for v in self.columns])
        self.lb, self.ub = lb, ub
        self.integer = np.array([v.is_binary() or v.is_integer() for v in self.columns])
        fixed = np.array([v.fixed for v in self.columns])
        if fixed.any():
            raise ValueError("fixed variables inside linear constraints are not supported by the conic form")
        # bound rows for every column: x <= ub (rows 0..n-1) and -x <= -lb (rows n..2n-1); inf rows are relaxed
        rows, cols, vals, b = [], [], [], []

        def add(coefs: dict[int, float], rhs: float) -> None:
            r = len(b)
            for c, a in coefs.items():
                rows.append(r), cols.append(c), vals.append(a)
            b.append(rhs)

        for coefs, rhs in eq_rows:
            add(coefs, rhs)
        n_eq = len(b)
        # rows only for finite bounds (binaries always have them, so branching only ever changes b)
        self.ub_cols = np.flatnonzero(np.isfinite(ub))
        self.lb_cols = np.flatnonzero(np.isfinite(lb))
        for i in self.ub_cols:
            add({int(i): 1.0}, 0.0)
        for i in self.lb_cols:
            add({int(i): -1.0}, 0.0)
        self.n_bound_rows = len(self.ub_cols) + len(self.lb_cols)
        for coefs, rhs in in_rows:
            add(coefs, rhs)
        n_nonneg = len(b) - n_eq
        for cone in soc_rows:
            for coefs, rhs in cone:
                add(coefs, rhs)
        self.soc_dims = [len(cone) for cone in soc_rows]
        self.A = sp.csc_matrix((vals, (rows, cols)), shape=(len(b), n))
        self.b = np.array(b, dtype=float)
        self.n_eq, self.n_nonneg, self.n_soc = n_eq, n_nonneg, len(soc_rows)
        self.bound_row = n_eq
        q = np.zeros(n)
        for c, a in q_lin.items():
            q[c] = a * self.sense
        self.q = q
        pr, pc, pv = [], [], []
        for i, j, a in quad:  # objective a*x_i*x_j -> 1/2 x'Px with P symmetric
            a *= self.sense
            if i == j:
                pr.append(i), pc.append(i), pv.append(2 * a)
            else:
                pr += [i, j]
                pc += [j, i]
                pv += [a, a]
        self.P = sp.triu(sp.csc_matrix((pv, (pr, pc)), shape=(n, n))).tocsc()

    # -- solving -------------------------------------------------------------------------------------------
    def solve(self, lb: np.ndarray, ub: np.ndarray, tol: float = 1e-8, time_limit: float | None = None
              ) -> ConicSolution:
        n = len(self.columns)
        if np.any(lb > ub + 1e-9):
            return ConicSolution("infeasible", None, None)
        if np.any(np.isfinite(ub) & ~np.isin(np.arange(n), self.ub_cols)) or \
                np.any(np.isfinite(lb) & ~np.isin(np.arange(n), self.lb_cols)):
            raise ValueError("a bound was added to a variable that had none when the conic form was built")
        b = self.b.copy()
        start = self.bound_row
        b[start:start + len(self.ub_cols)] = ub[self.ub_cols]
        start += len(self.ub_cols)
        b[start:start + len(self.lb_cols)] = -lb[self.lb_cols]
        cones = [clarabel.ZeroConeT(self.n_eq), clarabel.NonnegativeConeT(self.n_nonneg)]
        cones += [clarabel.SecondOrderConeT(d) for d in self.soc_dims]
        sol = self._clarabel(b, cones, tol, time_limit, presolve=True, max_iter=200)
        status = str(sol.status)
        if status not in _FINAL:  # numerical trouble: once more without presolve and with more iterations
            sol = self._clarabel(b, cones, 10 * tol, time_limit, presolve=False, max_iter=500)
            status = str(sol.status)
        if status in ("Solved", "AlmostSolved"):
            x = np.array(sol.x)
            return ConicSolution("optimal", x, self.sense * (float(sol.obj_val) + self.obj_const))
        if status in ("PrimalInfeasible", "DualInfeasible"):
            return ConicSolution("infeasible", None, None)
        if status == "MaxTime":
            return ConicSolution("time_limit", None, None)
        return ConicSolution("error", None, None)

    def _clarabel(self, b: np.ndarray, cones: list, tol: float, time_limit: float | None, presolve: bool,
                  max_iter: int):
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
        settings.presolve_enable = presolve
        settings.max_iter = max_iter
        if time_limit is not None:
            settings.time_limit = max(time_limit, 0.1)
        return clarabel.DefaultSolver(self.P, self.q, self.A, b, cones, settings).solve()

    def load(self, x: np.ndarray) -> None:
        for var, value in zip(self.columns, x, strict=True):
            var.set_value(float(value), skip_validation=True)
