"""Compatibility layer: the network functions of :mod:`coordinator.grids` under their historical names.

The TN is any grid that :mod:`coordinator.grids.tn` reduces to DC-OPF data (default ``case30``); the ADNs are
radial feeders from :mod:`coordinator.grids.adn` (default ``case33bw``); DER placement comes from
``coordinator/data/placement.csv`` (package data) or the ``auto`` rules (:mod:`coordinator.grids.placement`).
"""

from __future__ import annotations

import numpy as np

from coordinator.case import TransmissionNetwork
from coordinator.grids import tn as _tn
from coordinator.grids.adn import ADN_BASE_MVA, DEFAULT_ADN, adn_source_net, adn_static
from coordinator.grids.feeder import distribution_network, placement_problems
from coordinator.grids.placement import (
    AUTO,
    PLACEMENT_CSV,
    AutoRule,
    BessRule,
    BessSpec,
    Placement,
    auto_placement,
    default_placement_csv,
    load_placements,
)
from coordinator.grids.source import GridError, NetSource, fresh_net
from coordinator.grids.tn import tn_load_buses, tn_source_net, tn_static

__all__ = [
    "ADN_BASE_MVA",
    "ADN_CASE",
    "AUTO",
    "DEFAULT_ADN",
    "PLACEMENT_CSV",
    "AutoRule",
    "BessRule",
    "BessSpec",
    "GridError",
    "NetSource",
    "Placement",
    "adn_nominal_load",
    "adn_source_net",
    "adn_static",
    "auto_placement",
    "default_placement_csv",
    "distribution_network",
    "load_placements",
    "pandapower_net",
    "placement_problems",
    "tn_load_buses",
    "tn_branch_names",
    "tn_source_net",
    "transmission_network",
]

ADN_CASE = DEFAULT_ADN.value


def pandapower_net(case: str | NetSource):  # noqa: ANN201 - pandapower has no public type for a net
    """A fresh copy of a grid as read (a ``pandapower.networks`` name or a :class:`NetSource`)."""
    return fresh_net(case)


def transmission_network(load_scale: np.ndarray, case: str | NetSource = "case30") -> TransmissionNetwork:
    """DC-OPF data of a TN (a ``pandapower.networks`` name or a :class:`NetSource`); ``load_scale`` (T,)."""
    return _tn.transmission_network(load_scale, case)


def adn_nominal_load(source: str | NetSource = DEFAULT_ADN) -> tuple[np.ndarray, np.ndarray]:
    """Nominal (peak) P and Q per bus of an ADN grid, MW and MVAr (case33bw: totals 3.715 MW, 2.3 MVAr)."""
    grid = adn_static(source)
    return grid.p_nom.copy(), grid.q_nom.copy()


def tn_branch_names(case: str | NetSource = "case30") -> list[str]:
    """Names of the TN's in-service lines and transformers as in ``TNLine.name`` (``line7``, ``trafo2``)."""
    return [ln.name for ln in tn_static(case).lines]
