"""The TSO's DC-OPF as a matrix QP, so one generic KKT (or primal) block can consume it.

Variables x = [p_g | theta_n | f_l]. Equalities (dual lambda, free): nodal balance ``sum p - A f = D + W``
(lambda of a balance row is the LMP), flow definition ``f - b (theta_o - theta_d) = 0``, ``theta_ref = 0``.
Inequalities (dual mu >= 0): ``p <= Pmax``, ``-p <= -Pmin``, ``f <= Fmax``, ``-f <= Fmax``.
The leader's PCC withdrawals W enter only the right-hand side of the balance rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from coordinator.case import TransmissionNetwork


@dataclass
class FollowerQP:
    """min 1/2 x'diag(q)x + c'x  s.t.  A_eq x = b_eq,  A_in x <= b_in (one period)."""

    q: np.ndarray
    c: np.ndarray
    a_eq: sp.csr_matrix
    a_in: sp.csr_matrix
    b_in: np.ndarray
    slack_max: np.ndarray  # largest possible b_in - A_in x over the primal box: the primal big-M
    var_names: list[str]
    in_names: list[str]
    eq_names: list[str]
    balance_row: dict[int, int]  # TN bus -> row of A_eq (its dual is the LMP)
    gen_col: list[int]
    flow_col: list[int]
    n_var: int

    def b_eq(self, demand: dict[int, float], withdrawal: dict[int, float]) -> np.ndarray:
        rhs = np.zeros(self.a_eq.shape[0])
        for n, row in self.balance_row.items():
            rhs[row] = demand.get(n, 0.0) + withdrawal.get(n, 0.0)
        return rhs


def dcopf_qp(tn: TransmissionNetwork) -> FollowerQP:
    """Assemble the DC-OPF matrices of ``tn`` (same for every period; only the balance right-hand side moves)."""
    g, nb, nl = len(tn.gens), len(tn.buses), len(tn.lines)
    bus_pos = {n: k for k, n in enumerate(tn.buses)}
    gen_col = list(range(g))
    th_col = [g + k for k in range(nb)]
    flow_col = [g + nb + k for k in range(nl)]
    n_var = g + nb + nl

    rows, cols, vals = [], [], []
    for k, gen in enumerate(tn.gens):
        rows.append(bus_pos[gen.bus]), cols.append(gen_col[k]), vals.append(1.0)
    for k, line in enumerate(tn.lines):
        rows += [bus_pos[line.from_bus], bus_pos[line.to_bus]]
        cols += [flow_col[k], flow_col[k]]
        vals += [-1.0, 1.0]
        r = nb + k  # flow definition rows
        rows += [r, r, r]
        cols += [flow_col[k], th_col[bus_pos[line.from_bus]], th_col[bus_pos[line.to_bus]]]
        vals += [1.0, -line.b_mw_per_rad, line.b_mw_per_rad]
    ref_row = nb + nl
    rows.append(ref_row), cols.append(th_col[bus_pos[tn.ref_bus]]), vals.append(1.0)
    a_eq = sp.csr_matrix((vals, (rows, cols)), shape=(nb + nl + 1, n_var))

    rows, cols, vals, b_in, slack, names = [], [], [], [], [], []
    for k, gen in enumerate(tn.gens):
        for sign, rhs, label in ((1.0, gen.pmax, "pmax"), (-1.0, -gen.pmin, "pmin")):
            rows.append(len(b_in)), cols.append(gen_col[k]), vals.append(sign)
            b_in.append(rhs), slack.append(gen.pmax - gen.pmin), names.append(f"{gen.name}.{label}")
    for k, line in enumerate(tn.lines):
        for sign, label in ((1.0, "fmax+"), (-1.0, "fmax-")):
            rows.append(len(b_in)), cols.append(flow_col[k]), vals.append(sign)
            b_in.append(line.fmax), slack.append(2 * line.fmax), names.append(f"{line.name}.{label}")
    a_in = sp.csr_matrix((vals, (rows, cols)), shape=(len(b_in), n_var))

    q = np.zeros(n_var)
    c = np.zeros(n_var)
    for k, gen in enumerate(tn.gens):
        q[gen_col[k]] = 2 * gen.alpha
        c[gen_col[k]] = gen.beta
    return FollowerQP(
        q=q, c=c, a_eq=a_eq, a_in=a_in, b_in=np.array(b_in), slack_max=np.array(slack),
        var_names=[x.name for x in tn.gens] + [f"theta{n}" for n in tn.buses] + [x.name for x in tn.lines],
        in_names=names,
        eq_names=[f"balance{n}" for n in tn.buses] + [f"flow:{x.name}" for x in tn.lines] + ["ref"],
        balance_row={n: bus_pos[n] for n in tn.buses}, gen_col=gen_col, flow_col=flow_col, n_var=n_var,
    )


@dataclass
class AffineFollower:
    """Follower solution on one critical region: x = x0 + S w, lam = lam0 + L w, mu = mu0 + M w (w per host bus).

    ``cut0 + cuts @ w >= 0`` are the region's facets that cross the box (empty when it covers the whole box).
    """

    buses: list[int]  # host buses, the order of w
    x0: np.ndarray
    S: np.ndarray
    lam0: np.ndarray
    L: np.ndarray
    mu0: np.ndarray
    M: np.ndarray
    active: list[int]
    cut0: np.ndarray
    cuts: np.ndarray
    flips: list[int]  # constraint index behind each cut: crossing it adds (inactive) or drops (active) it


def psd_factor(block: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """F with F'F = sym(block) (the price sensitivity is symmetric PSD: Hessian of a convex value function)."""
    sym = 0.5 * (block + block.T)
    vals, vecs = np.linalg.eigh(sym)
    if vals.min(initial=0.0) < -1e-8 * max(1.0, vals.max(initial=0.0)):
        raise ValueError(f"price sensitivity is not PSD (smallest eigenvalue {vals.min():.3e})")
    keep = vals > tol * max(1.0, vals.max(initial=0.0))
    return np.sqrt(vals[keep])[:, None] * vecs[:, keep].T
