"""AC power flow of one ADN with pandapower, to check the SOC-relaxed DistFlow solution against real physics."""

from __future__ import annotations

import numpy as np
import pandapower as pp

from coordinator.case import DistributionNetwork

VN_KV = 12.66  # any voltage works: impedances are converted from per unit on 1 MVA at this voltage


def adn_net(adn: DistributionNetwork) -> pp.pandapowerNet:
    """A pandapower net of ``adn`` built from its branch data (root = ext_grid at 1.0 p.u., one load per bus)."""
    net = pp.create_empty_network(sn_mva=1.0)
    for bus in adn.buses:
        pp.create_bus(net, vn_kv=VN_KV, index=bus)
    z_base = VN_KV**2 / 1.0
    for br in adn.branches:
        max_i = br.smax / (np.sqrt(3) * VN_KV) if br.smax else 99.0
        pp.create_line_from_parameters(net, br.i, br.j, length_km=1.0, r_ohm_per_km=br.r * z_base,
                                       x_ohm_per_km=br.x * z_base, c_nf_per_km=0.0, max_i_ka=max_i)
    pp.create_ext_grid(net, adn.root, vm_pu=1.0)
    for bus in adn.buses:
        pp.create_load(net, bus, p_mw=0.0, q_mvar=0.0, index=bus)
    return net


def run_adn_pf(net: pp.pandapowerNet, p_mw: np.ndarray, q_mvar: np.ndarray) -> dict | None:
    """Run ``runpp`` with the given bus withdrawals (ordered like the net's buses); None if it diverges."""
    net.load["p_mw"] = np.asarray(p_mw, dtype=float)
    net.load["q_mvar"] = np.asarray(q_mvar, dtype=float)
    try:
        pp.runpp(net, numba=False)
    except pp.LoadflowNotConverged:
        return None
    return {
        "vm_pu": net.res_bus.vm_pu.to_numpy().copy(),
        "pcc_p_mw": float(net.res_ext_grid.p_mw.iloc[0]),
        "pcc_q_mvar": float(net.res_ext_grid.q_mvar.iloc[0]),
        "losses_mw": float(net.res_line.pl_mw.sum()),
        "line_loading_max_pct": float(net.res_line.loading_percent.max()),
    }
