"""Conic standard form for Clarabel (interior-point SOCP), with binaries as bound rows.

Clarabel solves ``min 1/2 x'Px + q'x  s.t.  Ax + s = b, s in K``. A :class:`ConicProblem` is assembled from plain
matrices (equality rows, ``<=`` rows, second-order cones, variable bounds), so any front end can produce one: the
model pipeline (``coordinator.pipeline``) assembles it directly from its blocks, ``conic_from_pyomo`` translates a
Pyomo model whose rotated cones are registered (never parsed from expressions). Every finite variable bound is a
row, so fixing a binary at a branch-and-bound node only changes ``b``: the matrix is built once per problem.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import clarabel
import numpy as np
import pyomo.environ as pyo
import scipy.sparse as sp
from pyomo.repn import generate_standard_repn
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from coordinator.cones import RotatedCone, registered_cones
from coordinator.solvers.presolve import Presolver, Reduced

# statuses that a second attempt would not change ("Almost...Infeasible" is numerical doubt: retried, then an error)
_FINAL = ("Solved", "AlmostSolved", "PrimalInfeasible", "DualInfeasible", "MaxTime")

__all__ = ["ConicProblem", "ConicSolution", "conic_from_pyomo", "registered_cones", "rotated_cones"]


@dataclass
class ConicSolution:
    status: str  # "optimal" | "infeasible" | "time_limit" | "error"
    x: np.ndarray | None
    objective: float | None


Term = tuple[dict[int, float], float]  # an affine term: (coefficients {column: value}, constant)


def rotated_cones(n: int, cones: list[tuple[list[Term], Term, Term]]) -> tuple[sp.csr_matrix, np.ndarray, list[int]]:
    """Stacked rows ``(G, h, dims)`` with ``h - G x = (a + b, 2y..., a - b) in SOC`` for each ``sum y^2 <= a * b``
    given as ``(ys, a, b)`` affine terms; one sparse matrix for all cones (building one per cone is slow)."""
    rows, cols, vals, h, dims = [], [], [], [], []
    r = 0
    for ys, a, b in cones:
        terms = [_add(a, b, 1.0)] + [_scale(y, 2.0) for y in ys] + [_add(a, b, -1.0)]
        for coefs, const in terms:
            for c, v in coefs.items():
                rows.append(r), cols.append(c), vals.append(-v)
            h.append(const)
            r += 1
        dims.append(len(terms))
    return sp.csr_matrix((vals, (rows, cols)), shape=(r, n)), np.array(h, dtype=float), dims


def _add(a: Term, b: Term, sign: float) -> Term:
    coefs = dict(a[0])
    for c, v in b[0].items():
        coefs[c] = coefs.get(c, 0.0) + sign * v
    return coefs, a[1] + sign * b[1]


def _scale(y: Term, k: float) -> Term:
    return {c: k * v for c, v in y[0].items()}, k * y[1]


class ConicProblem:
    """``min 1/2 x'Px + q'x + const`` s.t. ``A_eq x = b_eq``, ``A_in x <= b_in``, cones ``h - G x in SOC``, bounds.

    ``cones`` is ``(G, h, dims)``: the stacked rows of every second-order cone and each cone's dimension.

    ``solve(lb, ub)`` solves the continuous relaxation with other variable bounds; ``solver_time_s`` sums the time
    spent inside Clarabel over every call (what a step's timing calls the solver's own time).
    """

    def __init__(self, P: sp.spmatrix, q: np.ndarray, a_eq: sp.spmatrix, b_eq: np.ndarray, a_in: sp.spmatrix,
                 b_in: np.ndarray, cones: tuple[sp.spmatrix, np.ndarray, list[int]], lb: np.ndarray, ub: np.ndarray,
                 integer: np.ndarray, obj_const: float = 0.0) -> None:
        n = len(q)
        self.n = n
        self.lb, self.ub = np.asarray(lb, dtype=float), np.asarray(ub, dtype=float)
        self.integer = np.asarray(integer, dtype=bool)
        self.q = np.asarray(q, dtype=float)
        self.obj_const = float(obj_const)
        self.P = sp.triu(sp.csc_matrix(P, shape=(n, n))).tocsc()
        self.ub_cols = np.flatnonzero(np.isfinite(self.ub))
        self.lb_cols = np.flatnonzero(np.isfinite(self.lb))
        eye = sp.identity(n, format="csr")
        bound_rows = sp.vstack([eye[self.ub_cols], -eye[self.lb_cols]])
        cone_g, cone_h, dims = cones
        blocks = [sp.csr_matrix(a_eq, shape=(a_eq.shape[0], n)), bound_rows,
                  sp.csr_matrix(a_in, shape=(a_in.shape[0], n)), sp.csr_matrix(cone_g, shape=(cone_g.shape[0], n))]
        self.A = sp.vstack(blocks, format="csc")
        self.n_eq = a_eq.shape[0]
        self.bound_row = self.n_eq
        self.n_bound_rows = len(self.ub_cols) + len(self.lb_cols)
        self.n_nonneg = self.n_bound_rows + a_in.shape[0]
        self.soc_dims = [int(d) for d in dims]
        self.n_soc = len(self.soc_dims)
        self.b = np.concatenate([np.asarray(b_eq, dtype=float), np.zeros(self.n_bound_rows),
                                 np.asarray(b_in, dtype=float), np.asarray(cone_h, dtype=float)])
        self.solver_time_s = 0.0
        self._timing = threading.Lock()  # branch and bound may solve two nodes at once
        self._presolver = Presolver(self.P, self.q, self.A, self.n_eq, self.n_bound_rows, self.n_nonneg,
                                    self.soc_dims)

    def solve(self, lb: np.ndarray, ub: np.ndarray, tol: float = 1e-8, time_limit: float | None = None
              ) -> ConicSolution:
        if np.any(lb > ub + 1e-9):
            return ConicSolution("infeasible", None, None)
        added = (np.isfinite(ub) & ~np.isfinite(self.ub)) | (np.isfinite(lb) & ~np.isfinite(self.lb))
        if np.any(added & (lb != ub)):  # a fixed column is substituted out by the presolve: it needs no bound row
            raise ValueError("a bound was added to a variable that had none when the conic form was built")
        red = self.reduced(lb, ub)
        if red is None:  # the fixings contradict each other: no solve needed
            return ConicSolution("infeasible", None, None)
        if red.A.shape[1] == 0:  # every column fixed, every row checked by the presolve
            return ConicSolution("optimal", red.expand(np.zeros(0)), red.const + self.obj_const)
        cones = [clarabel.ZeroConeT(red.n_eq), clarabel.NonnegativeConeT(red.n_nonneg)]
        cones += [clarabel.SecondOrderConeT(d) for d in red.soc_dims]
        sol = self._clarabel(red, cones, tol, time_limit, presolve=True, max_iter=200)
        status = str(sol.status)
        if status not in _FINAL:  # numerical trouble: once more without presolve and with more iterations
            sol = self._clarabel(red, cones, 10 * tol, time_limit, presolve=False, max_iter=500)
            status = str(sol.status)
        if status in ("Solved", "AlmostSolved"):
            objective = float(sol.obj_val) + red.const + self.obj_const
            return ConicSolution("optimal", red.expand(np.array(sol.x)), objective)
        if status in ("PrimalInfeasible", "DualInfeasible"):
            return ConicSolution("infeasible", None, None)
        if status == "MaxTime":
            return ConicSolution("time_limit", None, None)
        return ConicSolution("error", None, None)

    def reduced(self, lb: np.ndarray, ub: np.ndarray) -> Reduced | None:
        """The problem with these bounds as Clarabel gets it (``None``: the bounds contradict the rows)."""
        b = self.b.copy()
        start = self.bound_row
        b[start:start + len(self.ub_cols)] = ub[self.ub_cols]
        start += len(self.ub_cols)
        b[start:start + len(self.lb_cols)] = -lb[self.lb_cols]
        return self._presolver.reduce(lb, ub, b)

    def _clarabel(self, red: Reduced, cones: list, tol: float, time_limit: float | None, presolve: bool,
                  max_iter: int):
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
        settings.presolve_enable = presolve
        settings.max_iter = max_iter
        if time_limit is not None:
            settings.time_limit = max(time_limit, 0.1)
        start = time.perf_counter()
        try:
            return clarabel.DefaultSolver(red.P, red.q, red.A, red.b, cones, settings).solve()
        finally:
            with self._timing:
                self.solver_time_s += time.perf_counter() - start


class PyomoConic(ConicProblem):
    """A Pyomo model's continuous relaxation as a :class:`ConicProblem`; ``columns`` maps back to its Vars.

    Linear rows come from Pyomo's ``LinearStandardFormCompiler`` (one pass over the model, fixed variables become
    constants), the cones from the registry, the (possibly quadratic) objective from its standard representation.
    """

    def __init__(self, model: pyo.ConcreteModel) -> None:
        cones = registered_cones(model)
        objective = next(model.component_data_objects(pyo.Objective, active=True))
        for cone in cones:
            cone.constraint.deactivate()
        objective.deactivate()
        try:
            info = LinearStandardFormCompiler().write(model, mixed_form=True)
        finally:
            objective.activate()
            for cone in cones:
                cone.constraint.activate()
        self.columns = list(info.columns)
        self._col = {id(v): k for k, v in enumerate(self.columns)}
        kinds = np.array([r.bound_type for r in info.rows], dtype=int)
        sign = np.where(kinds == -1, -1.0, 1.0)  # ">=" rows become "<=" rows
        a = sp.diags(sign) @ sp.csr_matrix(info.A) if len(kinds) else sp.csr_matrix((0, len(self.columns)))
        rhs = sign * np.asarray(info.rhs, dtype=float) if len(kinds) else np.zeros(0)
        eq, le = np.flatnonzero(kinds == 0), np.flatnonzero(kinds != 0)
        repn = generate_standard_repn(objective.expr, quadratic=True)
        self.sense = 1.0 if objective.sense == pyo.minimize else -1.0
        q_lin = self._coefs(repn.linear_vars, repn.linear_coefs)
        quad = [(self._col_of(x), self._col_of(y), float(c))
                for (x, y), c in zip(repn.quadratic_vars or [], repn.quadratic_coefs or [], strict=True)]
        obj_const = float(pyo.value(repn.constant))
        cone_terms = [self._cone_terms(c) for c in cones]  # registers the cones' columns before n is known
        n = len(self.columns)
        if any(v.fixed for v in self.columns):
            raise ValueError("fixed variables among the columns are not supported by the conic form")
        a = sp.hstack([a, sp.csr_matrix((a.shape[0], n - a.shape[1]))], format="csr")
        q = np.zeros(n)
        for c, coef in q_lin.items():
            q[c] = coef * self.sense
        pr, pc, pv = [], [], []
        for i, j, coef in quad:  # objective coef*x_i*x_j -> 1/2 x'Px with P symmetric
            coef *= self.sense
            if i == j:
                pr.append(i), pc.append(i), pv.append(2 * coef)
            else:
                pr += [i, j]
                pc += [j, i]
                pv += [coef, coef]
        super().__init__(
            P=sp.csc_matrix((pv, (pr, pc)), shape=(n, n)), q=q, a_eq=a[eq], b_eq=rhs[eq], a_in=a[le], b_in=rhs[le],
            cones=rotated_cones(n, cone_terms),
            lb=np.array([-np.inf if v.lb is None else float(v.lb) for v in self.columns]),
            ub=np.array([np.inf if v.ub is None else float(v.ub) for v in self.columns]),
            integer=np.array([v.is_binary() or v.is_integer() for v in self.columns]),
            obj_const=self.sense * obj_const)

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

    def _term(self, var) -> tuple[dict[int, float], float]:
        return ({}, float(var.value)) if var.fixed else ({self._col_of(var): 1.0}, 0.0)

    def _cone_terms(self, cone: RotatedCone):
        return [self._term(y) for y in cone.ys], self._term(cone.a), self._term(cone.b)

    def load(self, x: np.ndarray) -> None:
        for var, value in zip(self.columns, x, strict=True):
            var.set_value(float(value), skip_validation=True)


def conic_from_pyomo(model: pyo.ConcreteModel) -> PyomoConic:
    return PyomoConic(model)


def _rows(rows: list[tuple[dict[int, float], float]], n: int) -> sp.csr_matrix:
    r, c, v = [], [], []
    for k, (coefs, _) in enumerate(rows):
        for col, a in coefs.items():
            r.append(k), c.append(col), v.append(a)
    return sp.csr_matrix((v, (r, c)), shape=(len(rows), n))
