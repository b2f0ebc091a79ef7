"""AC power flow of ADNs with pandapower, to check the SOC-relaxed DistFlow solution against real physics.

``AcChecker`` checks all periods of all ADNs with one ``runpp``: its net holds one island per ADN and period (each
fed by its own ext_grid), since a power flow's cost is mostly pandapower's fixed overhead (~15 ms for 33 buses,
~25 ms for 24 x 33, ~60 ms for 5 x 24 x 33). The net is built once per set of ADNs and period count; later checks
only write the withdrawals and re-run with pandapower's ``recycle`` option (the admittance matrix is re-used).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence

import numpy as np
import pandapower as pp
import pandas as pd

from coordinator.case import DistributionNetwork
from coordinator.diskcache import disk_cached

VN_KV = 12.66  # any voltage works: impedances are converted from per unit on 1 MVA at this voltage
_RECYCLE = {"trafo": False, "gen": False, "bus_pq": True}


@functools.cache
def _empty_net() -> pp.pandapowerNet:
    return pp.create_empty_network(sn_mva=1.0)


def islands_net(adns: Sequence[DistributionNetwork], copies: int = 1) -> pp.pandapowerNet:
    """A pandapower net of ``copies`` unconnected islands of each ADN, built from its branch data (each island's root
    is an ext_grid at 1.0 p.u., one load per bus). Buses and loads are numbered ADN after ADN, island after island,
    in ``adn.buses`` order: island ``k`` of ADN ``a`` starts at ``copies * sum(n_bus of the ADNs before a) + k *
    n_bus(a)``. Kept in the disk cache: pandapower alone takes ~0.5 s to lay out an empty net's tables.
    """
    feeders = tuple((tuple(adn.buses), adn.root, tuple(adn.branches)) for adn in adns)
    return _islands_net(feeders, copies, pp.__version__)


@disk_cached
def _islands_net(feeders: tuple, copies: int, pandapower_version: str) -> pp.pandapowerNet:
    """``feeders``: (buses, root, branches) per ADN; the version only keys the cache."""
    net = copy.deepcopy(_empty_net())  # ~10x faster than a new one
    n_buses = sum(len(buses) for buses, _, _ in feeders) * copies
    pp.create_buses(net, n_buses, vn_kv=VN_KV, index=list(range(n_buses)))
    z_base = VN_KV**2 / 1.0
    start, roots, lines = 0, [], []
    for buses, root, branches in feeders:
        n_bus = len(buses)
        position = {b: k for k, b in enumerate(buses)}
        offsets = [start + k * n_bus for k in range(copies)]
        lines += [(o + position[b.i], o + position[b.j], b) for o in offsets for b in branches]
        roots += [o + position[root] for o in offsets]
        start += copies * n_bus
    pp.create_lines_from_parameters(
        net, [i for i, _, _ in lines], [j for _, j, _ in lines], length_km=1.0,
        r_ohm_per_km=[b.r * z_base for _, _, b in lines], x_ohm_per_km=[b.x * z_base for _, _, b in lines],
        c_nf_per_km=0.0, max_i_ka=[b.smax / (np.sqrt(3) * VN_KV) if b.smax else 99.0 for _, _, b in lines])
    pp.create_ext_grid(net, roots[0], vm_pu=1.0)
    # one slack per island; copying the row is ~100x faster than create_ext_grid per island
    net.ext_grid = pd.concat([net.ext_grid] * len(roots), ignore_index=True)
    net.ext_grid["bus"] = roots
    pp.create_loads(net, list(range(n_buses)), p_mw=0.0, q_mvar=0.0, index=list(range(n_buses)))
    return net


def bus_voltages(net: pp.pandapowerNet, p_mw: np.ndarray, q_mvar: np.ndarray, recycle: bool = False
                 ) -> np.ndarray | None:
    """|V| (p.u.) per bus after ``runpp`` with the given bus withdrawals (ordered like the net's buses); None if
    it diverges."""
    net.load["p_mw"] = np.asarray(p_mw, dtype=float)
    net.load["q_mvar"] = np.asarray(q_mvar, dtype=float)
    try:
        pp.runpp(net, numba=False, **({"recycle": _RECYCLE} if recycle else {}))
    except pp.LoadflowNotConverged:
        return None
    return net.res_bus.vm_pu.to_numpy().copy()


class AcChecker:
    """Largest |V_ac - V_opt| per ADN, with the islands net built once per set of ADNs and period count for the
    checker's life."""

    def __init__(self) -> None:
        self._nets: dict[tuple, pp.pandapowerNet] = {}
        self._ran: set[tuple] = set()  # nets a power flow ran on: the next one may recycle its admittance matrix

    def _net(self, adns: Sequence[DistributionNetwork], copies: int) -> tuple[tuple, pp.pandapowerNet]:
        key = (tuple((adn.name, tuple(adn.buses), tuple(adn.branches)) for adn in adns), copies)
        if key not in self._nets:
            self._nets[key] = islands_net(adns, copies)
        return key, self._nets[key]

    def prepare(self, adns: Sequence[DistributionNetwork], n_periods: int) -> None:
        """Build or load the net of a later check of ``n_periods`` periods now (e.g. in a thread while the solver
        runs: ~0.15 s for the default case even from the disk cache)."""
        if n_periods and adns:
            self._net(adns, n_periods)

    def voltage_errors(self, adns: Sequence[DistributionNetwork], p: Sequence[np.ndarray], q: Sequence[np.ndarray],
                       v_opt: Sequence[np.ndarray], periods: list[int]) -> np.ndarray:
        """Per ADN: ``p``, ``q``: (T, n_bus) withdrawals; ``v_opt``: (T, n_bus) optimiser voltages (p.u.). All
        ``inf`` if the power flow diverges (one net: the failing ADN is not singled out)."""
        if not periods or not adns:
            return np.zeros(len(adns))
        key, net = self._net(adns, len(periods))
        vm = bus_voltages(net, np.concatenate([x[periods].ravel() for x in p]),
                          np.concatenate([x[periods].ravel() for x in q]), recycle=key in self._ran)
        self._ran.add(key)
        if vm is None:
            return np.full(len(adns), math.inf)
        errors = np.abs(vm - np.concatenate([x[periods].ravel() for x in v_opt]))
        ends = np.cumsum([len(adn.buses) * len(periods) for adn in adns])
        return np.array([chunk.max() for chunk in np.split(errors, ends[:-1])])

    def voltage_error(self, adn: DistributionNetwork, p: np.ndarray, q: np.ndarray, v_opt: np.ndarray,
                      periods: list[int]) -> float:
        """One ADN's largest error (``inf`` if the power flow of any of ``periods`` diverges)."""
        return float(self.voltage_errors([adn], [p], [q], [v_opt], periods)[0])
