"""Leader prices that follow the TN: the TN's reference marginal cost and prices expressed relative to it.

The leader coefficients (network charges, wheeling, degradation, ...) only matter in proportion to the energy price
at the PCC. On case30 LMPs are ~3.8 $/MWh, on case57 ~41 $/MWh, so one set of $/MWh numbers is heavy on one TN and
negligible on another. A scenario can therefore give them as multiples of a reference price of its own TN.

Reference marginal cost (``reference_marginal_cost``): the system lambda of the TN's economic dispatch at its base
load (every bus load at ``base_load``, no ADN withdrawals) without line limits, i.e. the ``lam`` at which
``sum_g clip((lam - beta_g) / (2 alpha_g), pmin_g, pmax_g)`` equals the total base load (a generator with
``alpha_g = 0`` is at ``pmin_g`` below ``beta_g``, at ``pmax_g`` above it, anywhere in between at ``beta_g``). It
equals every LMP of the DC-OPF without line limits (``pandapower.rundcopp`` with unlimited branches).
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

from coordinator.case import Generator, Prices, TransmissionNetwork

PRICE_UNITS = ("$/MWh", "relative")  # absolute coefficients, or multiples of reference_marginal_cost
# Coefficients scaled in unit "relative": every Prices field except price_cap (a bound on the follower's duals).
RELATIVE_FIELDS = tuple(f.name for f in fields(Prices) if f.name != "price_cap")


def _dispatch(g: Generator, lam: float) -> float:
    if g.alpha > 0:
        return min(max((lam - g.beta) / (2.0 * g.alpha), g.pmin), g.pmax)
    return g.pmax if lam > g.beta else g.pmin


def reference_marginal_cost(tn: TransmissionNetwork, tol: float = 1e-9) -> float:
    """System lambda ($/MWh) of the TN's unconstrained economic dispatch at its total base load (module docstring)."""
    load = float(sum(tn.base_load.values()))
    if any(not math.isfinite(g.pmin) for g in tn.gens) or any(not math.isfinite(g.pmax) for g in tn.gens):
        raise ValueError(f"{tn.case}: a generator without finite pmin/pmax has no well-defined system lambda")
    if not sum(g.pmin for g in tn.gens) <= load <= sum(g.pmax for g in tn.gens):
        raise ValueError(f"{tn.case}: base load {load:g} MW is outside the generators' pmin..pmax total")
    lo = min(g.beta + 2.0 * g.alpha * g.pmin for g in tn.gens) - 1.0
    hi = max(g.beta + 2.0 * g.alpha * g.pmax for g in tn.gens) + 1.0
    while hi - lo > tol * max(1.0, abs(hi)):  # total dispatch is non-decreasing in lam: bisection
        mid = 0.5 * (lo + hi)
        if sum(_dispatch(g, mid) for g in tn.gens) < load:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def relative_prices(prices: Prices, reference: float) -> Prices:
    """``prices`` given as multiples of ``reference`` ($/MWh) turned into $/MWh (tariffs too; price_cap is kept)."""
    scaled = {}
    for name in RELATIVE_FIELDS:
        value = getattr(prices, name)
        scaled[name] = tuple(v * reference for v in value) if isinstance(value, tuple) else value * reference
    return replace(prices, **scaled)
