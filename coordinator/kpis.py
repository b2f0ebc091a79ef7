"""The KPIs of a plan or a run, defined once: energy per ADN and in total, self-consumption, self-sufficiency.

Used by the solve result (``coordinator.results``), ``tsodso report``/``compare`` (plans and runs alike), the study
and the sweep. Series may hold NaN (a step without a value in a run file); it counts as zero energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ENERGY_KEYS = ("tn_import_mwh", "tn_export_mwh", "pv_energy_mwh", "demand_mwh", "bess_throughput_mwh",
               "curtailment_mwh", "p2p_intra_mwh", "p2p_inter_mwh")


def energy_kpis(dt: float, pcc_mw, load_mw, pv_available_mw, pv_used_mw, charge_mw, discharge_mw, p2p_intra_mw,
                p2p_inter_out_mw, bess_capacity_mwh: float) -> dict[str, float]:
    """One ADN's energy KPIs from its series (MW per period, > 0 PCC = import from the TN)."""
    pcc = np.nan_to_num(np.asarray(pcc_mw, dtype=float))
    pv = float(np.nansum(np.asarray(pv_used_mw, dtype=float)))
    k = {
        "tn_import_mwh": float(np.clip(pcc, 0, None).sum() * dt),
        "tn_export_mwh": float(np.clip(-pcc, 0, None).sum() * dt),
        "pv_energy_mwh": pv * dt,
        "demand_mwh": float(np.nansum(np.asarray(load_mw, dtype=float)) * dt),
        "bess_throughput_mwh": float((np.nansum(np.asarray(charge_mw, dtype=float))
                                      + np.nansum(np.asarray(discharge_mw, dtype=float))) * dt),
        "curtailment_mwh": float((np.nansum(np.asarray(pv_available_mw, dtype=float)) - pv) * dt),
        "p2p_intra_mwh": float(np.nansum(np.asarray(p2p_intra_mw, dtype=float)) * dt),
        "p2p_inter_mwh": float(np.nansum(np.asarray(p2p_inter_out_mw, dtype=float)) * dt),
    }
    k["bess_equivalent_cycles"] = cycles(k["bess_throughput_mwh"], bess_capacity_mwh)
    add_ratios(k)
    return k


def total_kpis(per_adn: Sequence[dict[str, float]], bess_capacity_mwh: float) -> dict[str, float]:
    """Sums of the energy KPIs; cycles of the whole fleet (not a sum); ratios of the sums."""
    total = {key: float(sum(k[key] for k in per_adn)) for key in ENERGY_KEYS}
    total["bess_equivalent_cycles"] = cycles(total["bess_throughput_mwh"], bess_capacity_mwh)
    add_ratios(total)
    return total


def cycles(throughput_mwh: float, capacity_mwh: float) -> float:
    """Equivalent full cycles: throughput over twice the usable capacity (0 without storage)."""
    return float(throughput_mwh / (2 * capacity_mwh)) if capacity_mwh and capacity_mwh > 0 else 0.0


def self_consumption(pv_mwh: float, export_mwh: float) -> float:
    """PV energy used inside the ADN (PV minus what left at the PCC) / PV energy (docs/formulation.md, "KPIs")."""
    return _ratio(pv_mwh - min(export_mwh, pv_mwh), pv_mwh)


def add_ratios(k: dict) -> None:
    """Self-consumption and self-sufficiency (1 - imports / demand) from the energy KPIs of ``k``."""
    k["self_consumption"] = self_consumption(k["pv_energy_mwh"], k["tn_export_mwh"])
    k["self_sufficiency"] = 1.0 - _ratio(k["tn_import_mwh"], k["demand_mwh"])


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 1e-12 else 0.0
