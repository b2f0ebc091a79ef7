"""The affine follower: one certified critical region covers the reachable box of withdrawals."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coordinator.blocks.dcopf import FollowerQP
from coordinator.followers import FollowerForm, empty_rows
from coordinator.parametric import AffineFollower


def affine_form(qp: FollowerQP, region: AffineFollower) -> FollowerForm:
    """``x = x0 + S w``, ``lambda = lam0 + L w``; payment ``lam(w)'w`` with the symmetrised price sensitivity."""
    k = len(region.buses)
    rows = [qp.balance_row[n] for n in region.buses]
    quad = region.L[rows]
    eq_w, eq_loc, eq_b = empty_rows(k, 0)
    in_w, in_loc, in_b = empty_rows(k, 0)
    return FollowerForm(
        kind="affine", buses=list(region.buses), lb=np.zeros(0), ub=np.zeros(0), integer=np.zeros(0, dtype=bool),
        eq_w=eq_w, eq_loc=eq_loc, eq_b=eq_b, in_w=in_w, in_loc=in_loc, in_b=in_b, cones=[],
        pay_w=region.lam0[rows].copy(), pay_ww=0.5 * (quad + quad.T), pay_loc=np.zeros(0),
        pay_ll=sp.csr_matrix((0, 0)), pay_const=0.0,
        x_map=np.hstack([region.x0[:, None], region.S]),
        lam_map=np.hstack([region.lam0[:, None], region.L]),
        info={"regions": 1})
