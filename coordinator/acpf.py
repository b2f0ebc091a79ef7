"""AC power flow of ADNs with pandapower, to check the SOC-relaxed DistFlow solution against real physics.

``AcChecker`` builds each ADN's net once and then only writes the bus withdrawals and re-runs ``runpp`` with
pandapower's ``recycle`` option (the admittance matrix is re-used: ~7 ms instead of ~30 ms for case33bw).
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pandapower as pp

from coordinator.case import DistributionNetwork

VN_KV = 12.66  # any voltage works: impedances are converted from per unit on 1 MVA at this voltage
_RECYCLE = {"trafo": False, "gen": False, "bus_pq": True}


@functools.cache
def _empty_net() -> pp.pandapowerNet:
    """pandapower builds an empty net's tables from scratch (~0.3 s); a deep copy of one is ~10x faster."""
    return pp.create_empty_network(sn_mva=1.0)


def adn_net(adn: DistributionNetwork) -> pp.pandapowerNet:
    """A pandapower net of ``adn`` built from its branch data (root = ext_grid at 1.0 p.u., one load per bus)."""
    net = copy.deepcopy(_empty_net())
    pp.create_buses(net, len(adn.buses), vn_kv=VN_KV, index=list(adn.buses))
    z_base = VN_KV**2 / 1.0
    br = adn.branches
    pp.create_lines_from_parameters(
        net, [b.i for b in br], [b.j for b in br], length_km=1.0, r_ohm_per_km=[b.r * z_base for b in br],
        x_ohm_per_km=[b.x * z_base for b in br], c_nf_per_km=0.0,
        max_i_ka=[b.smax / (np.sqrt(3) * VN_KV) if b.smax else 99.0 for b in br])
    pp.create_ext_grid(net, adn.root, vm_pu=1.0)
    pp.create_loads(net, list(adn.buses), p_mw=0.0, q_mvar=0.0, index=list(adn.buses))
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
    """Largest |V_ac - V_opt| per ADN, with every ADN's net built once for the life of the checker."""

    def __init__(self) -> None:
        self._nets: dict[tuple, pp.pandapowerNet] = {}

    def _net(self, adn: DistributionNetwork) -> tuple[pp.pandapowerNet, bool]:
        key = (adn.name, tuple(adn.buses), tuple(adn.branches))
        fresh = key not in self._nets
        if fresh:
            self._nets[key] = adn_net(adn)
        return self._nets[key], not fresh

    def voltage_error(self, adn: DistributionNetwork, p: np.ndarray, q: np.ndarray, v_opt: np.ndarray,
                      periods: list[int]) -> float:
        """``p``, ``q``: (T, n_bus) withdrawals; ``v_opt``: (T, n_bus) optimiser voltages (p.u.)."""
        worst = 0.0
        for t in periods:
            net, warm = self._net(adn)
            pf = run_adn_pf(net, p[t], q[t], recycle=warm)
            if pf is None:
                return math.inf
            worst = max(worst, float(np.max(np.abs(pf["vm_pu"] - v_opt[t]))))
        return worst
