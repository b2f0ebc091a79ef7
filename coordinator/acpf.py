"""AC power flow of ADNs with pandapower, to check the SOC-relaxed DistFlow solution against real physics.

``AcChecker`` checks all periods of an ADN with one ``runpp``: its net holds one island per period (each fed by its
own ext_grid), since a power flow's cost is mostly pandapower's fixed overhead (~15 ms for 33 buses, ~25 ms for
24 x 33). The net is built once per ADN and period count; later checks only write the withdrawals and re-run with
pandapower's ``recycle`` option (the admittance matrix is re-used).
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pandapower as pp
import pandas as pd

from coordinator.case import DistributionNetwork

VN_KV = 12.66  # any voltage works: impedances are converted from per unit on 1 MVA at this voltage
_RECYCLE = {"trafo": False, "gen": False, "bus_pq": True}


@functools.cache
def _empty_net() -> pp.pandapowerNet:
    """pandapower builds an empty net's tables from scratch (~0.3 s); a deep copy of one is ~10x faster."""
    return pp.create_empty_network(sn_mva=1.0)


def adn_net(adn: DistributionNetwork, copies: int = 1) -> pp.pandapowerNet:
    """A pandapower net of ``copies`` unconnected islands of ``adn``, built from its branch data (each island's root
    is an ext_grid at 1.0 p.u., one load per bus). Island ``k`` has buses and loads ``k * n_bus + position`` in
    ``adn.buses`` order.
    """
    net = copy.deepcopy(_empty_net())
    n_bus = len(adn.buses)
    position = {b: k for k, b in enumerate(adn.buses)}
    offsets = [k * n_bus for k in range(copies)]
    index = list(range(copies * n_bus))
    pp.create_buses(net, len(index), vn_kv=VN_KV, index=index)
    z_base = VN_KV**2 / 1.0
    br = adn.branches
    pp.create_lines_from_parameters(
        net, [o + position[b.i] for o in offsets for b in br], [o + position[b.j] for o in offsets for b in br],
        length_km=1.0, r_ohm_per_km=[b.r * z_base for b in br] * copies,
        x_ohm_per_km=[b.x * z_base for b in br] * copies, c_nf_per_km=0.0,
        max_i_ka=[b.smax / (np.sqrt(3) * VN_KV) if b.smax else 99.0 for b in br] * copies)
    pp.create_ext_grid(net, position[adn.root], vm_pu=1.0)
    # one slack per island; copying the row is ~100x faster than create_ext_grid per island
    net.ext_grid = pd.concat([net.ext_grid] * copies, ignore_index=True)
    net.ext_grid["bus"] = [o + position[adn.root] for o in offsets]
    pp.create_loads(net, index, p_mw=0.0, q_mvar=0.0, index=index)
    return net


def run_adn_pf(net: pp.pandapowerNet, p_mw: np.ndarray, q_mvar: np.ndarray, recycle: bool = False) -> dict | None:
    """Run ``runpp`` with the given bus withdrawals (ordered like the net's buses); None if it diverges."""
    net.load["p_mw"] = np.asarray(p_mw, dtype=float)
    net.load["q_mvar"] = np.asarray(q_mvar, dtype=float)
    try:
        pp.runpp(net, numba=False, **({"recycle": _RECYCLE} if recycle else {}))
    except pp.LoadflowNotConverged:
        return None
    return {
        "vm_pu": net.res_bus.vm_pu.to_numpy().copy(),
        "pcc_p_mw": float(net.res_ext_grid.p_mw.iloc[0]),
        "pcc_q_mvar": float(net.res_ext_grid.q_mvar.iloc[0]),
        "losses_mw": float(net.res_line.pl_mw.sum()),
        "line_loading_max_pct": float(net.res_line.loading_percent.max()),
    }


class AcChecker:
    """Largest |V_ac - V_opt| per ADN, with every ADN's net built once (per period count) for the checker's life."""

    def __init__(self) -> None:
        self._nets: dict[tuple, pp.pandapowerNet] = {}

    def _net(self, adn: DistributionNetwork, copies: int) -> tuple[pp.pandapowerNet, bool]:
        key = (adn.name, tuple(adn.buses), tuple(adn.branches), copies)
        fresh = key not in self._nets
        if fresh:
            self._nets[key] = adn_net(adn, copies)
        return self._nets[key], not fresh

    def voltage_error(self, adn: DistributionNetwork, p: np.ndarray, q: np.ndarray, v_opt: np.ndarray,
                      periods: list[int]) -> float:
        """``p``, ``q``: (T, n_bus) withdrawals; ``v_opt``: (T, n_bus) optimiser voltages (p.u.); ``inf`` if the
        power flow of any of ``periods`` diverges."""
        if not periods:
            return 0.0
        net, warm = self._net(adn, len(periods))
        pf = run_adn_pf(net, p[periods].ravel(), q[periods].ravel(), recycle=warm)
        if pf is None:
            return math.inf
        return float(np.max(np.abs(pf["vm_pu"] - v_opt[periods].ravel())))
