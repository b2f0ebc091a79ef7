"""The one place that decides each period's follower form (like choosing a formulation type)."""

from __future__ import annotations

import numpy as np

from coordinator.blocks.dcopf import FollowerQP
from coordinator.case import Case
from coordinator.followers import FollowerForm
from coordinator.parametric import RegionCache, withdrawal_box

FOLLOWERS = ("kkt", "auto")


def choose_forms(case: Case, qp: FollowerQP, follower: str, loss_allowance: float,
                 cache: RegionCache | None = None) -> list[FollowerForm]:
    """Per period: ``kkt`` everywhere, or (``auto``) affine where one critical region covers the reachable box,
    the region hull where a few do, KKT where the exploration is not clean."""
    from coordinator.followers.affine import affine_form
    from coordinator.followers.hull import hull_form
    from coordinator.followers.kkt import kkt_form

    if follower not in FOLLOWERS:
        raise ValueError(f"follower {follower!r} is not one of {FOLLOWERS}")
    host_buses = sorted({adn.tn_bus for adn in case.adns})
    cache = cache or RegionCache(qp)
    forms = []
    for t in range(case.periods):
        demand = case.tn.demand(t)
        regions = None
        if follower == "auto":
            lo, hi = withdrawal_box(case, t, loss_allowance)
            regions = cache.explore(demand, lo, hi)
        if not regions:
            forms.append(kkt_form(qp, host_buses, demand, case.prices.price_cap))
        elif len(regions) == 1:
            forms.append(affine_form(qp, regions[0]))
        else:
            buses = regions[0].buses
            forms.append(hull_form(qp, regions, np.array([lo[n] for n in buses]), np.array([hi[n] for n in buses])))
    return forms
