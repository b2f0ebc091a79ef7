"""Grids of a scenario: where they come from and how they are reduced to the model's data.

- :mod:`.source`: read a grid (``pandapower.networks`` case, pandapower JSON, MATPOWER, simbench code), cached;
- :mod:`.tn`: a TN as DC-OPF data; :mod:`.adn`: an ADN as a radial per-unit feeder;
- :mod:`.placement`: PV/BESS from the placement table or the ``auto`` rules; :mod:`.series`: simbench's own
  profiles; :mod:`.feeder`: one ``DistributionNetwork`` from all of these.

``docs/grids.md`` describes the reductions.
"""

from __future__ import annotations

from coordinator.grids.adn import ADN_BASE_MVA, DEFAULT_ADN, adn_source_net, adn_static
from coordinator.grids.source import GridError, NetSource, as_source
from coordinator.grids.tn import tn_load_buses, tn_source_net, tn_static, transmission_network

__all__ = [
    "ADN_BASE_MVA",
    "DEFAULT_ADN",
    "GridError",
    "NetSource",
    "adn_source_net",
    "adn_static",
    "as_source",
    "source_net",
    "tn_load_buses",
    "tn_source_net",
    "tn_static",
    "transmission_network",
]


def source_net(spec: NetSource | tuple[str, str] | str, role: str = "adn"):  # noqa: ANN201
    """A fresh pandapower net of a grid as the case data numbers it: ``role`` ``tn`` (the net as read) or ``adn``
    (the reduced feeder, buses 0..n-1, root 0)."""
    if role == "tn":
        return tn_source_net(spec)
    if role == "adn":
        return adn_source_net(spec)
    raise ValueError(f"role {role!r} must be 'tn' or 'adn'")
