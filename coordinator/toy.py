"""A hand-sized case (3-bus TN, 4-bus ADNs) for tests, examples and brute-force checks.

Small enough that every binary combination can be enumerated, yet it has every ingredient of the real model:
quadratic generator costs, a line limit that can bind, PV with surplus, a BESS and two prosumers per ADN.
"""

from __future__ import annotations

import numpy as np

from coordinator.case import Bess, Branch, Case, DistributionNetwork, Generator, Prices, TNLine, TransmissionNetwork


def toy_tn(periods: int, fmax: float = 60.0) -> TransmissionNetwork:
    """Cheap generator at bus 0, expensive one at bus 1, loads at bus 2; line 0-2 limited by ``fmax``."""
    scale = np.linspace(0.8, 1.0, periods) if periods > 1 else np.ones(1)
    return TransmissionNetwork(
        case="toy3",
        buses=[0, 1, 2],
        ref_bus=0,
        lines=[TNLine("line0", 0, 1, 100 / 0.1, 200.0), TNLine("line1", 0, 2, 100 / 0.1, fmax),
               TNLine("line2", 1, 2, 100 / 0.1, 200.0)],
        gens=[Generator("ext_grid", 0, 0.0, 150.0, 0.02, 2.0), Generator("gen0", 1, 0.0, 100.0, 0.05, 4.0)],
        base_load={2: 100.0},
        load_scale=scale,
    )


def toy_adn(name: str, tn_bus: int, periods: int, pv_factor: float = 1.0, bess: bool = True) -> DistributionNetwork:
    """A 4-bus feeder 0-1-2-3 with loads at 1..3, PV at buses 2 and 3, one BESS at bus 3."""
    buses = [0, 1, 2, 3]
    branches = [Branch(0, 1, 0.01, 0.02), Branch(1, 2, 0.02, 0.03), Branch(2, 3, 0.02, 0.03)]
    hours = np.arange(periods) * 24.0 / max(periods, 1) + 6.0
    shape = np.clip(np.sin((hours - 6.0) / 12.0 * np.pi), 0.0, None) if periods > 1 else np.ones(1)
    nominal = np.array([0.0, 0.4, 0.3, 0.3])
    load_p = np.outer(0.7 + 0.3 * (1 - shape), nominal)
    pv_peak = [0.5 * pv_factor, 0.5 * pv_factor]
    return DistributionNetwork(
        name=name, tn_bus=tn_bus, buses=buses, branches=branches,
        load_p=load_p, load_q=0.3 * load_p,
        pv_bus=[2, 3], pv_peak=pv_peak, pv_avail=np.outer(shape, pv_peak),
        bess=[Bess(bus=3, pmax=0.3, emax=0.9, emin=0.1, e0=0.5)] if bess else [],
        prosumers=[2, 3], vmin=0.9, vmax=1.1, pcc_limit=5.0,
    )


def toy_case(periods: int = 2, n_adns: int = 1, fmax: float = 60.0, price_mode: str = "lmp") -> Case:
    tn = toy_tn(periods, fmax)
    adns = [toy_adn(f"adn{k + 1}", tn_bus=2 if k % 2 == 0 else 1, periods=periods, pv_factor=1.5 - 0.5 * k)
            for k in range(n_adns)]
    prices = Prices(tariff_import=tuple([6.0] * periods), tariff_export=tuple([3.0] * periods))
    return Case(tn=tn, adns=adns, periods=periods, step_hours=1.0,
                prices=prices, price_mode=price_mode)
