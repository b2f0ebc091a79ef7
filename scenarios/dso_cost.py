"""What the DSOs pay over a plan or a run, from its time series: one formula for both file kinds.

The coordinator hub of a run records each step's *plan* objective (the whole receding horizon), which is not what
was paid. The applied cost per ADN a and period t, in $ over ``dt`` hours, is the DSO-led objective
(``coordinator.dso_led``: energy payment plus ``dso_operating_cost``) evaluated on the recorded quantities:

    energy  = LMP(host bus of a, t) * W          (price mode lmp; W: PCC withdrawal, AC-measured in a run)
            = tariff_import(t) * imp - tariff_export(t) * exp           (price mode tariff)
    operating = c_tn_imp * imp + c_tn_exp * exp + c_wheel * inter_in + c_ret * retail + c_p2p * p2p_intra
              + c_deg * (charge + discharge) + c_curt * (pv_available - pv_used) + c_loss * losses

with ``imp - exp = W - inter_in + inter_out`` split into its positive and negative parts (what the PCC binary
does in the model). For a solved plan this reproduces the ``objective`` of a DSO-led plan in lmp mode (a test
checks it), which is the independent check of the formula.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from coordinator.case import Prices
from scenarios.results_io import Run


@dataclass(frozen=True)
class Pricing:
    """Prices of a scenario: leader cost coefficients, price mode and the tariffs per hour of day (24 or 1)."""

    prices: Prices
    price_mode: str = "lmp"
    tariff_import: tuple[float, ...] = ()
    tariff_export: tuple[float, ...] = ()

    @classmethod
    def from_scenario(cls, scenario: Mapping) -> Pricing:
        """From the scenario record stored in a run file (``scenarios.runner.config_record``)."""
        names = {f.name for f in fields(Prices)}
        prices = Prices(**{k: (tuple(v) if isinstance(v, list) else v)
                           for k, v in dict(scenario.get("prices") or {}).items() if k in names})
        return cls(prices, str(scenario.get("price_mode", "lmp")), tuple(scenario.get("tariff_import") or ()),
                   tuple(scenario.get("tariff_export") or ()))

    def tariffs(self, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _per_hour(self.tariff_import, hours), _per_hour(self.tariff_export, hours)


def _per_hour(values: Sequence[float], hours: np.ndarray) -> np.ndarray:
    if len(values) == 1:
        return np.full(len(hours), float(values[0]))
    if len(values) != 24:
        return np.full(len(hours), math.nan)
    return np.array([values[int(math.floor(h % 24.0 + 1e-9))] for h in hours], dtype=float)


def dso_cost(run: Run, pricing: Pricing) -> float:
    """Total $ the DSOs pay over ``run`` (NaN when a needed series was not recorded)."""
    p = pricing.prices
    total = 0.0
    for adn in run.adns:
        needed = (adn.p2p_inter_in_mw, adn.retail_mw, adn.losses_mw)
        if any(x is None for x in needed):
            return math.nan
        w = np.asarray(adn.pcc_mw, dtype=float)
        inter_in, inter_out = np.asarray(adn.p2p_inter_in_mw, float), np.asarray(adn.p2p_inter_out_mw, float)
        net = w - np.nan_to_num(inter_in) + np.nan_to_num(inter_out)
        imp, exp = np.clip(net, 0, None), np.clip(-net, 0, None)
        if pricing.price_mode == "tariff":
            t_imp, t_exp = pricing.tariffs(run.hours)
            energy = t_imp * imp - t_exp * exp
        else:
            if adn.tn_bus not in run.lmp:
                return math.nan
            energy = run.lmp[adn.tn_bus] * w
        throughput = np.nansum(adn.charge_mw, axis=1) + np.nansum(adn.discharge_mw, axis=1)
        operating = (p.c_tn_imp * imp + p.c_tn_exp * exp + p.c_wheel * inter_in + p.c_ret * adn.retail_mw
                     + p.c_p2p * adn.p2p_intra_mw + p.c_deg * throughput
                     + p.c_curt * (adn.pv_available_mw - adn.pv_used_mw) + p.c_loss * adn.losses_mw)
        total += float(np.nansum(energy + operating)) * run.step_hours
    return total
