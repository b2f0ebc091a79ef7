"""The DSO-led single-level MISOCP: ADN blocks (leaders) + PCC boundary + the TSO's DC-OPF as KKT (follower).

Built once per structure (number of ADNs, periods, options); ``set_case_data`` refreshes loads, PV, TN load and
initial SoC in place so a co-simulation re-solves the same Pyomo model every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from coordinator.blocks.adns import (  # noqa: F401  (re-exported for callers of the old location)
    add_adns,
    add_pcc_box,
    add_tn_demand,
    balance_rhs,
    dso_operating_cost,
    pcc_withdrawal_at,
    set_pcc_box,
    set_tn_data,
)
from coordinator.blocks.dcopf import FollowerQP, dcopf_qp
from coordinator.blocks.der import set_adn_data
from coordinator.blocks.kkt import add_kkt, follower_payment
from coordinator.blocks.regions import Reader, add_region_disjunction
from coordinator.case import Case
from coordinator.model import PyomoModel
from coordinator.parametric import AffineFollower, explore_regions, withdrawal_box
from coordinator.pyomo_gc import gc_paused

PRICE_MODES = ("lmp", "tariff")


FOLLOWERS = ("kkt", "auto")


@dataclass(frozen=True)
class Formulation:
    """Choices that change the model, not the answer.

    ``follower``: ``kkt`` keeps the follower's KKT block in every period; ``auto`` replaces it by its affine
    solution map where one critical region covers the reachable PCC box, by an exact convex-hull disjunction over
    the regions where a few do (``coordinator.parametric``, ``blocks/regions.py``), and keeps KKT elsewhere.
    ``loss_allowance`` bounds each PCC withdrawal (see ``parametric.pcc_range``) in every form.
    """

    complementarity: str = "bigm"
    follower: str = "kkt"
    loss_allowance: float = 0.15
    voltage_cuts: bool = False  # LinDistFlow upper-voltage cuts (blocks/distflow.add_voltage_cuts)


def add_tariffs(m: pyo.Block, case: Case) -> None:
    """Time-of-use prices as mutable Params so a re-used model follows the receding horizon."""
    m.tariff_import = pyo.Param(m.T, mutable=True, initialize=0.0)
    m.tariff_export = pyo.Param(m.T, mutable=True, initialize=0.0)
    set_tariffs(m, case)


def set_tariffs(m: pyo.Block, case: Case) -> None:
    if case.price_mode != "tariff":
        return
    for t in m.T:
        m.tariff_import[t] = case.prices.tariff_import[t]
        m.tariff_export[t] = case.prices.tariff_export[t]


def tariff_payment(m: pyo.Block, t: int):
    return sum(m.tariff_import[t] * m.pcc.p_imp[a, t] - m.tariff_export[t] * m.pcc.p_exp[a, t] for a in m.pcc.A)


@gc_paused
def build_dso_led(case: Case, formulation: Formulation = Formulation()) -> PyomoModel:
    """Single-level MISOCP of the DSO-led bilevel problem (docs/formulation.md, "The single-level model"), with
    each period's follower form and the TN views beside it (``coordinator.model``)."""
    case.validate()
    if case.price_mode not in PRICE_MODES:
        raise ValueError(f"price_mode {case.price_mode!r} is not one of {PRICE_MODES}")
    if formulation.follower not in FOLLOWERS:
        raise ValueError(f"follower {formulation.follower!r} is not one of {FOLLOWERS}")
    m = pyo.ConcreteModel(name="dso_led")
    m.T = pyo.Set(initialize=range(case.periods), ordered=True)
    add_adns(m, case, formulation.voltage_cuts)
    add_pcc_box(m, case, formulation.loss_allowance)
    add_tn_demand(m, case)
    add_tariffs(m, case)
    qp = dcopf_qp(case.tn)
    regions = follower_regions(case, qp, formulation) if formulation.follower == "auto" else {}
    affine = {t: rs[0] for t, rs in regions.items() if len(rs) == 1}
    hull_periods = sorted(t for t, rs in regions.items() if len(rs) > 1)
    kkt_periods = [t for t in range(case.periods) if t not in regions]
    m.follower = pyo.Block()
    add_kkt(m.follower, qp, kkt_periods, balance_rhs(m, case, qp), formulation.complementarity,
            case.prices.price_cap)
    m.hull = pyo.Block(hull_periods)
    hull_readers = {}
    for t in hull_periods:
        buses = regions[t][0].buses
        lo, hi = withdrawal_box(case, t, formulation.loss_allowance)
        hull_readers[t] = add_region_disjunction(
            m.hull[t], regions[t], [pcc_withdrawal_at(m, case, n, t) for n in buses],
            np.array([lo[n] for n in buses]), np.array([hi[n] for n in buses]), [qp.balance_row[n] for n in buses])
    tn_x, lmp = add_follower_views(m, case, qp, affine, hull_readers)

    def energy_payment(_, t):
        if case.price_mode == "tariff":
            return tariff_payment(m, t)
        if t in affine:
            return affine_payment(m, case, qp, affine[t], t)
        if t in hull_periods:
            return m.hull[t].payment
        return follower_payment(m.follower, qp, t, lambda n: m.tn_demand[n, t])

    m.energy_payment = pyo.Expression(m.T, rule=energy_payment)
    m.dso_cost = pyo.Expression(m.T, rule=lambda _, t: m.energy_payment[t]
                                + sum(dso_operating_cost(m, case, a, t) for a in m.pcc.A))
    m.objective = pyo.Objective(expr=case.step_hours * sum(m.dso_cost[t] for t in m.T), sense=pyo.minimize)
    forms = tuple("affine" if t in affine else "hull" if t in hull_periods else "kkt" for t in range(case.periods))
    return PyomoModel(m, qp, "dso-led", formulation, forms, tn_x, lmp)


def follower_regions(case: Case, qp: FollowerQP, formulation: Formulation) -> dict[int, list[AffineFollower]]:
    """Per period, the critical regions covering the PCC box (periods where exploration fails are absent)."""
    out = {}
    for t in range(case.periods):
        lo, hi = withdrawal_box(case, t, formulation.loss_allowance)
        found = explore_regions(qp, case.tn.demand(t), lo, hi)
        if found:
            out[t] = found
    return out


def add_follower_views(m: pyo.Block, case: Case, qp: FollowerQP, affine: dict[int, AffineFollower],
                       hull: dict[int, tuple[Reader, Reader]]) -> tuple[pyo.Expression, pyo.Expression]:
    """``tn_x[j, t]`` and ``lmp[n, t]`` (added to ``m``, returned for ``PyomoModel``) read the follower the same way
    whichever form each period has (``hull[t]``: the readers of period t's region disjunction)."""

    def w_vector(t, buses):
        return [pcc_withdrawal_at(m, case, n, t) for n in buses]

    def tn_x(_, j, t):
        if t in hull:
            return hull[t][0](j)
        if t not in affine:
            return m.follower.x[j, t]
        af = affine[t]
        return float(af.x0[j]) + sum(float(af.S[j, i]) * w for i, w in enumerate(w_vector(t, af.buses)) if af.S[j, i])

    def lmp(_, n, t):
        row = qp.balance_row[n]
        if t in hull:
            return hull[t][1](row)
        if t not in affine:
            return m.follower.lam[row, t]
        af = affine[t]
        return float(af.lam0[row]) + sum(float(af.L[row, i]) * w for i, w in enumerate(w_vector(t, af.buses))
                                         if af.L[row, i])

    m.tn_x = pyo.Expression(range(qp.n_var), m.T, rule=tn_x)
    m.lmp = pyo.Expression(case.tn.buses, m.T, rule=lmp)
    return m.tn_x, m.lmp


def affine_payment(m: pyo.Block, case: Case, qp: FollowerQP, af: AffineFollower, t: int):
    """``lam(W)'W`` with the certified affine prices: linear plus a convex quadratic (symmetrised L)."""
    rows = [qp.balance_row[n] for n in af.buses]
    lin = af.lam0[rows]
    quad = af.L[rows]
    quad = 0.5 * (quad + quad.T)
    w = [pcc_withdrawal_at(m, case, n, t) for n in af.buses]
    k = len(w)
    return (sum(float(lin[i]) * w[i] for i in range(k))
            + sum(float(quad[i, j]) * w[i] * w[j] for i in range(k) for j in range(k) if quad[i, j]))


def set_case_data(m: pyo.ConcreteModel, case: Case, formulation: Formulation) -> None:
    """Refresh every time-varying Param from ``case`` (same structure as the case the model was built from).

    Only valid for ``follower="kkt"``: the affine follower is certified for one case's data and is rebuilt.
    """
    for a, adn in enumerate(case.adns):
        set_adn_data(m.adn[a].der, adn)
    set_tn_data(m, case)
    set_tariffs(m, case)
    set_pcc_box(m, case, formulation.loss_allowance)
