"""The TSO's DC-OPF follower in one period, in one of three exact forms behind one interface (``FollowerForm``).

A form is a small block of rows over ``[w | local]``: ``w`` are the leaders' PCC withdrawals summed per TN host bus
(k values), ``local`` the form's own variables. It states the follower's optimality for every reachable ``w`` and
gives the leaders' energy payment ``sum_n lambda_n w_n`` ($/h), the TN dispatch and the LMPs as functions of
``[1, w, local]``:

- ``affine`` (``affine.py``): one critical region covers the reachable box: ``x = x0 + S w``, ``lambda = lam0 + L w``;
  no rows, the payment is the convex quadratic ``lam0'w + w' L w``.
- ``hull`` (``hull.py``): a few critical regions cover the box: their exact convex-hull disjunction.
- ``kkt`` (``kkt.py``): primal and dual feasibility, stationarity, big-M complementarity, strong-duality payment.

A form with binaries also says which binaries the follower's own answer at a given ``w`` picks (``integer_hint``):
rounding a relaxed point cannot guess a consistent complementarity pattern, the DC-OPF at the relaxed ``w`` can.

``choose_forms`` is the one place that decides, period by period, which form a model gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

FORM_KINDS = ("affine", "hull", "kkt")  # FollowerForm.kind


class LocalCone(NamedTuple):
    """A rotated cone over a form's local variables: ``sum_i y_i^2 <= a * b`` (local column indices)."""

    ys: list[int]
    a: int
    b: int


@dataclass
class FollowerForm:
    """One period's follower: rows ``A_w w + A_loc local (= | <=) b`` and what the leaders read from it."""

    kind: str  # one of FORM_KINDS
    buses: list[int]  # host buses, the order of w
    lb: np.ndarray  # (n,) bounds and integrality of the local variables
    ub: np.ndarray
    integer: np.ndarray
    eq_w: sp.csr_matrix  # (m_eq, k)
    eq_loc: sp.csr_matrix  # (m_eq, n)
    eq_b: np.ndarray
    in_w: sp.csr_matrix  # (m_in, k): rows A_w w + A_loc local <= b
    in_loc: sp.csr_matrix
    in_b: np.ndarray
    cones: list[LocalCone]
    pay_w: np.ndarray  # payment ($/h) = pay_w'w + w'pay_ww w + pay_loc'local + local'pay_ll local + pay_const
    pay_ww: np.ndarray  # (k, k) symmetric PSD
    pay_loc: np.ndarray
    pay_ll: sp.csr_matrix  # (n, n) symmetric PSD (diagonal for KKT)
    pay_const: float
    x_map: np.ndarray  # (n_var, 1 + k + n): TN primal x = x_map @ [1, w, local]
    lam_map: np.ndarray  # (n_bus_rows, 1 + k + n): equality duals of the balance rows (LMPs), same layout
    info: dict = field(default_factory=dict)
    # w -> values of the integer locals (in column order) that the follower's own answer at w picks: a primal
    # heuristic for the branch and bound (the active set of the DC-OPF, the region that contains w)
    integer_hint: Callable[[np.ndarray], np.ndarray | None] | None = None

    @property
    def n_local(self) -> int:
        return len(self.lb)


def empty_rows(k: int, n: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    return sp.csr_matrix((0, k)), sp.csr_matrix((0, n)), np.zeros(0)


from coordinator.followers.choose import choose_forms  # noqa: E402  (the chooser needs FollowerForm)

__all__ = ["FollowerForm", "LocalCone", "choose_forms", "empty_rows"]
