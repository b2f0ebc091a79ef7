"""Study knobs applied to built networks: TN load and branch ratings, ADN load, PV and BESS sizing.

Each function takes a built ``TransmissionNetwork`` / ``DistributionNetwork`` and returns a modified copy, so the
knobs work the same whatever built the network (a pandapower case, a file) and the inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from coordinator.case import DistributionNetwork, TransmissionNetwork


@dataclass(frozen=True)
class BessSizing:
    """BESS sizing of one ADN: scale factors on every unit's power and energy (1 = as placed).

    ``p_scale`` multiplies each unit's charge/discharge limit; ``e_scale`` its energy capacity (emin, emax and e0 keep
    their fractions of it). ``0`` for both removes the ADN's batteries.
    """

    p_scale: float = 1.0
    e_scale: float = 1.0


def scale_tn(
    tn: TransmissionNetwork,
    load_scale: float = 1.0,
    rating_scale: float = 1.0,
    branch_ratings: Mapping[str, float] | None = None,
) -> TransmissionNetwork:
    """A copy with every base load times ``load_scale``, every branch rating times ``rating_scale``, then the ratings
    of the branches named in ``branch_ratings`` (``TNLine.name`` -> MW) replaced."""
    branch_ratings = dict(branch_ratings or {})
    unknown = sorted(set(branch_ratings) - {ln.name for ln in tn.lines})
    if unknown:
        raise ValueError(f"{tn.case}: unknown branches {unknown}; valid: {', '.join(ln.name for ln in tn.lines)}")
    lines = [replace(ln, fmax=float(branch_ratings.get(ln.name, ln.fmax * rating_scale))) for ln in tn.lines]
    return replace(
        tn,
        lines=lines,
        gens=list(tn.gens),
        base_load={n: d * load_scale for n, d in tn.base_load.items()},
        load_scale=tn.load_scale.copy(),
    )


def scale_adn(
    adn: DistributionNetwork,
    load_scale: float = 1.0,
    pv_scale: float = 1.0,
    bess: BessSizing = BessSizing(),
) -> DistributionNetwork:
    """A copy with P and Q loads times ``load_scale``, PV peaks and availability times ``pv_scale`` and each BESS
    resized by ``bess``; with a zero scale factor the units are dropped (only then: non-physical data stay, for
    ``Case.validate`` to name)."""
    units = [
        replace(b, pmax=b.pmax * bess.p_scale, emax=b.emax * bess.e_scale, emin=b.emin * bess.e_scale,
                e0=b.e0 * bess.e_scale)
        for b in adn.bess
    ]
    return replace(
        adn,
        buses=list(adn.buses),
        branches=list(adn.branches),
        load_p=np.asarray(adn.load_p, dtype=float) * load_scale,
        load_q=np.asarray(adn.load_q, dtype=float) * load_scale,
        pv_bus=list(adn.pv_bus),
        pv_peak=[p * pv_scale for p in adn.pv_peak],
        pv_avail=np.asarray(adn.pv_avail, dtype=float) * pv_scale,
        bess=[] if bess.p_scale == 0 or bess.e_scale == 0 else units,
        prosumers=list(adn.prosumers),
    )
