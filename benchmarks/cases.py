"""Benchmark cases with N ADNs built from a scenario (shared by ``scaling.py`` and ``fast_vs_naive.py``).

Beyond the scenario's own ADNs, copies of them (same placement and profiles, cyclically) are hosted at further TN
load buses that are not generator buses. ``scenarios.config`` refuses two ADNs at one TN bus in a YAML file; the
model allows it (the withdrawals add up at the host bus), so ``share_hosts=True`` lets the copies wrap around the
free buses when there are more copies than buses. The config is edited in memory and passed to
``scenarios.config.build_case``, which builds the ``Case`` with ``coordinator.networks`` without the YAML check.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def host_buses(tn_case: Any) -> list[int]:
    """TN load buses that are not generator (or external grid) buses: where an extra ADN may be hosted."""
    from coordinator.networks import pandapower_net, tn_load_buses

    net = pandapower_net(tn_case)
    gen_buses = {int(b) for table in (net.gen, net.ext_grid, net.sgen) for b in table.bus}
    return [b for b in tn_load_buses(tn_case) if b not in gen_buses]


def scenario_with_adns(scenario: str, n: int, share_hosts: bool = False) -> Any:
    """The scenario (a ``ScenarioConfig``) with its first ``n`` ADNs; beyond its own, copies at free host buses.

    Without ``share_hosts`` every ADN has its own TN bus (``ValueError`` if there are too few); with it, copy k is
    hosted at free bus ``k mod (number of free buses)``, so several ADNs may share a bus.
    """
    from scenarios.config import load_scenario

    cfg = load_scenario(scenario)
    base = list(cfg.adns)
    adns = base[:n]
    if n > len(base):
        used = {a.tn_bus for a in base}
        free = [b for b in host_buses(cfg.tn.source) if b not in used]
        extra = n - len(base)
        if not free or (extra > len(free) and not share_hosts):
            where = cfg.tn.source.label
            raise ValueError(f"{n} ADNs need {extra} free host buses in {where}; only {len(free)}: {free}")
        names = {a.name for a in base}
        for k in range(extra):
            src = base[k % len(base)]
            name = f"adn{len(base) + k + 1}"
            while name in names:
                name += "x"
            names.add(name)
            adns.append(dataclasses.replace(src, name=name, tn_bus=free[k % len(free)]))
    return dataclasses.replace(cfg, adns=tuple(adns))


def build_case_with_adns(scenario: str, n: int, periods: int, start_hour: float | None = None,
                         share_hosts: bool = False) -> Any:
    """The ``coordinator.case.Case`` of :func:`scenario_with_adns` over ``periods`` steps from ``start_hour``."""
    from scenarios.config import build_case

    return build_case(scenario_with_adns(scenario, n, share_hosts), periods=periods, start_hour=start_hour)
