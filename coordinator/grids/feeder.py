"""Assemble one :class:`coordinator.case.DistributionNetwork` from a reduced grid, its DER and its time series."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coordinator.case import DistributionNetwork
from coordinator.grids.adn import DEFAULT_ADN, adn_static
from coordinator.grids.placement import Placement
from coordinator.grids.series import FeederSeries
from coordinator.grids.source import GridError, NetSource, as_source

if TYPE_CHECKING:
    from coordinator.profiles import DayProfiles


def placement_problems(placement: Placement, source: NetSource | tuple[str, str] = DEFAULT_ADN) -> list[int]:
    """Buses of ``placement`` that are not non-root buses of the grid (empty: it fits)."""
    n = len(adn_static(source).buses)
    return sorted({b for b in (*placement.pv_bus, *(s.bus for s in placement.bess), *placement.owners)
                   if not 1 <= b < n})


def distribution_network(
    name: str,
    tn_bus: int,
    placement: Placement,
    profiles: DayProfiles,
    load_profiles_q: np.ndarray | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    pcc_limit: float | None = None,
    source: NetSource | tuple[str, str] = DEFAULT_ADN,
    series: FeederSeries | None = None,
) -> DistributionNetwork:
    """One ADN of grid ``source`` with the DER of ``placement``.

    Without ``series`` the time series come from ``profiles`` (a ``DayProfiles``): ``profiles.load`` scales the
    nominal bus loads (peak = nominal), Q follows ``load_profiles_q`` if given, else the same profile (constant power
    factor); ``profiles.pv`` (per unit of installed peak) times each PV's peak gives its available power, for the
    grid's own sgens too. With ``series`` (simbench's own profiles) loads and own sgens follow it and ``profiles.pv``
    applies to the placement's PV only. ``pcc_limit`` defaults to the rating of the substation trafos that the
    reduction dropped, else to the ``DistributionNetwork`` default. The grid's own sgens come first in ``pv_bus``.
    """
    src = as_source(source)
    grid = adn_static(src)
    load_scale = np.asarray(profiles.load, dtype=float)
    pv_scale = np.asarray(profiles.pv, dtype=float)
    q_scale = load_scale if load_profiles_q is None else np.asarray(load_profiles_q, dtype=float)
    if load_scale.ndim != 1 or pv_scale.shape != load_scale.shape or q_scale.shape != load_scale.shape:
        raise ValueError(
            f"{name}: profile shapes differ: load {load_scale.shape}, pv {pv_scale.shape}, q {q_scale.shape}"
        )
    bad = placement_problems(placement, src)
    if bad:
        raise GridError(f"{name}: placement {placement.name!r} uses buses {bad} that are not non-root buses of "
                        f"{grid.label} (1..{len(grid.buses) - 1})")
    t = len(load_scale)
    own_peak = np.asarray(grid.sgen_peak, dtype=float)
    if series is None:
        load_p, load_q = np.outer(load_scale, grid.p_nom), np.outer(q_scale, grid.q_nom)
        own_avail = np.outer(pv_scale, own_peak).reshape(t, -1)
    else:
        if series.load_p.shape != (t, len(grid.buses)):
            raise ValueError(f"{name}: series has shape {series.load_p.shape}, expected {(t, len(grid.buses))}")
        load_p, load_q, own_avail = (np.array(a, dtype=float) for a in (series.load_p, series.load_q, series.sgen_p))
        own_peak = np.maximum(own_peak, own_avail.max(axis=0, initial=0.0))  # the P2P big-M needs peak >= available
    table_peak = np.asarray(placement.pv_peak, dtype=float)
    extra = {k: v for k, v in (("vmin", vmin), ("vmax", vmax)) if v is not None}
    limit = pcc_limit if pcc_limit is not None else grid.pcc_limit
    if limit is not None:
        extra["pcc_limit"] = float(limit)
    return DistributionNetwork(
        name=name,
        tn_bus=int(tn_bus),
        buses=list(grid.buses),
        branches=list(grid.branches),
        load_p=load_p,
        load_q=load_q,
        pv_bus=[*grid.sgen_bus, *placement.pv_bus],
        pv_peak=[*map(float, own_peak), *placement.pv_peak],
        pv_avail=np.hstack([own_avail, np.outer(pv_scale, table_peak).reshape(t, -1)]),
        bess=[s.to_bess() for s in placement.bess],
        prosumers=list(placement.owners),
        source=tuple(src),
        bus_names=grid.bus_names if src != DEFAULT_ADN else (),
        **extra,
    )
