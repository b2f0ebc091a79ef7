"""The follower's KKT conditions with big-M complementarity, as rows (the plain single-level model).

For ``min 1/2 x'Qx + c'x  s.t.  A_eq x = b_eq(D + w),  A_in x <= b_in``: primal feasibility with a slack
``s = b_in - A_in x >= 0``, stationarity ``Qx + c - A_eq' lam + A_in' mu = 0``, ``mu >= 0`` and ``mu _|_ s`` with
one binary z per pair: ``mu <= M_d z``, ``s <= M_p (1 - z)`` (M_p from the data, M_d the documented price cap).
The leaders' payment is ``lam'(D + w) - lam'D`` by strong duality: ``x'Qx + c'x + mu'b_in - lam'D``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coordinator.blocks.dcopf import FollowerQP
from coordinator.follower import FollowerInfeasible, solve_follower
from coordinator.followers import FollowerForm


def kkt_form(qp: FollowerQP, buses: list[int], demand: dict[int, float], price_cap: float) -> FollowerForm:
    nv, me, mi = qp.n_var, qp.a_eq.shape[0], qp.a_in.shape[0]
    k = len(buses)
    # local layout: [x (nv), lam (me), mu (mi), s (mi), z (mi)]
    ox, ol, om, osl, oz = 0, nv, nv + me, nv + me + mi, nv + me + 2 * mi
    n = nv + me + 3 * mi
    lb, ub, integer = np.full(n, -np.inf), np.full(n, np.inf), np.zeros(n, dtype=bool)
    bal = np.array(sorted(qp.balance_row.values()))
    lb[ol + bal], ub[ol + bal] = -price_cap, price_cap
    lb[om:om + mi], ub[om:om + mi] = 0.0, price_cap
    lb[osl:osl + mi], ub[osl:osl + mi] = 0.0, qp.slack_max
    lb[oz:], ub[oz:], integer[oz:] = 0.0, 1.0, True

    def place(block, offset):
        block = sp.csr_matrix(block)
        return sp.hstack([sp.csr_matrix((block.shape[0], offset)), block,
                          sp.csr_matrix((block.shape[0], n - offset - block.shape[1]))])

    eye = sp.identity(mi, format="csr")
    # primal equalities: A_eq x - E w = b_eq(D)  (w enters the balance rows of its buses)
    e_w = sp.csr_matrix((-np.ones(k), ([qp.balance_row[b] for b in buses], range(k))), shape=(me, k))
    rows_loc = [place(qp.a_eq, ox),
                place(qp.a_in, ox) + place(eye, osl),  # A_in x + s = b_in
                place(sp.diags(qp.q), ox) - place(qp.a_eq.T, ol) + place(qp.a_in.T, om)]  # stationarity = -c
    eq_loc = sp.vstack(rows_loc, format="csr")
    eq_w = sp.vstack([e_w, sp.csr_matrix((mi + nv, k))], format="csr")
    eq_b = np.concatenate([qp.b_eq(demand, {}), qp.b_in, -qp.c])
    # big-M complementarity: mu - M_d z <= 0, s + M_p z <= M_p
    in_loc = sp.vstack([place(eye, om) - place(eye * price_cap, oz),
                        place(eye, osl) + place(sp.diags(qp.slack_max), oz)], format="csr")
    in_b = np.concatenate([np.zeros(mi), qp.slack_max])
    pay_loc = np.zeros(n)
    pay_loc[ox:ox + nv] = qp.c
    pay_loc[om:om + mi] = qp.b_in
    d = qp.b_eq(demand, {})
    pay_loc[ol:ol + me] = -d
    pay_ll = sp.diags(np.concatenate([qp.q, np.zeros(n - nv)]), format="csr")  # x'Qx
    x_map = np.zeros((nv, 1 + k + n))
    x_map[:, 1 + k + ox + np.arange(nv)] = np.eye(nv)
    lam_map = np.zeros((me, 1 + k + n))
    lam_map[:, 1 + k + ol + np.arange(me)] = np.eye(me)
    return FollowerForm(
        kind="kkt", buses=list(buses), lb=lb, ub=ub, integer=integer, eq_w=eq_w, eq_loc=eq_loc, eq_b=eq_b,
        in_w=sp.csr_matrix((2 * mi, k)), in_loc=in_loc, in_b=in_b, cones=[], pay_w=np.zeros(k),
        pay_ww=np.zeros((k, k)), pay_loc=pay_loc, pay_ll=pay_ll, pay_const=0.0, x_map=x_map, lam_map=lam_map,
        info={"complementarity_pairs": mi}, integer_hint=_active_set(qp, buses, demand, price_cap))


def _active_set(qp: FollowerQP, buses: list[int], demand: dict[int, float], price_cap: float):
    """w -> the complementarity binaries of the DC-OPF's own solution at w: z = 1 where the dual outweighs the
    slack (each scaled by its big-M), so the trial keeps exactly the follower's active set."""

    def hint(w: np.ndarray) -> np.ndarray | None:
        try:
            sol = solve_follower(qp, qp.b_eq(demand, dict(zip(buses, w, strict=True))))
        except FollowerInfeasible:
            return None
        slack = np.maximum(qp.b_in - qp.a_in @ sol.x, 0.0)
        return (sol.mu / price_cap > slack / np.maximum(qp.slack_max, 1e-9)).astype(float)

    return hint
