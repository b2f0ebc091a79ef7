"""An ADN of a scenario reduced to a radial feeder per unit on a 1 MVA base (per-unit power = MW).

Sources: a ``pandapower.networks`` case (``case33bw``), a pandapower JSON file, or a simbench code. The reduction
(see ``docs/grids.md``):

- closed bus-bus switches merge buses; an open switch cuts its line or trafo; out-of-service elements are skipped;
- the root (PCC, ``v = 1`` p.u.) is the bus of the one in-service ext_grid. If that bus reaches the feeder only
  through trafos (simbench: the ext_grid sits on the upstream HV or MV level), those trafos are the substation:
  they are dropped, the root is their LV bus (LV busbars of several such trafos are merged: each is held at 1 p.u.
  and radial DistFlow has no angles), and their rating is the default ``pcc_limit``;
- branches are oriented away from the root by a BFS; a loop is refused, naming its buses and branches;
- lines and in-service trafos inside the feeder are branches (a trafo at nominal ratio: its series impedance);
- buses are renumbered: root 0, then the others in the order of their pandapower index (so case33bw keeps its
  numbers); ``bus_names`` keeps the grid's names;
- loads are summed per bus (nominal ``p_mw * scaling``); the grid's own sgens, aggregated per bus, are curtailable
  renewable units (the model's PV), whatever their type.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.case import Branch
from coordinator.grids.source import (
    BusMerge,
    GridError,
    NetSource,
    as_source,
    element_name,
    finite,
    fresh_net,
    in_service,
    open_switch_elements,
    raw_net,
)

ADN_BASE_MVA = 1.0  # per-unit base of the ADN data: per-unit power equals MW
DEFAULT_ADN = NetSource("case", "case33bw")
_UNRATED_KA = 99999.0  # pandapower's placeholder ampacity for "no rating" (case33bw uses it)
# Rating rule for unrated ADN branches (case33bw publishes none; see data/README.md, "ADN branch ratings"):
# RATING_MARGIN x the apparent nominal peak load downstream of the branch, and at least RATING_FLOOR_MVA.
RATING_MARGIN = 2.0
RATING_FLOOR_MVA = 1.0
UNSUPPORTED = ("gen", "storage", "trafo3w", "impedance", "dcline", "ward", "xward", "svc", "tcsc", "ssc", "vsc")


@dataclass(frozen=True)
class ADNStatic:
    """The period-independent data of one ADN grid, in case numbering (root 0)."""

    label: str
    buses: tuple[int, ...]
    branches: tuple[Branch, ...]
    p_nom: np.ndarray  # (n_bus,) MW, nominal load per bus
    q_nom: np.ndarray
    bus_names: tuple[str, ...]
    case_bus: dict[int, int]  # pandapower bus -> case bus (merged buses map to their group's case bus)
    sgen_bus: tuple[int, ...]  # case buses with own sgens, ascending
    sgen_peak: tuple[float, ...]  # MW installed per such bus
    pcc_limit: float | None  # rating of the dropped substation trafos, MVA; None: no trafo at the root
    root_trafos: tuple[int, ...]

    @property
    def peak_load(self) -> float:
        return float(self.p_nom.sum())


def adn_static(spec: NetSource | tuple[str, str] | str = DEFAULT_ADN) -> ADNStatic:
    return _adn_static(as_source(spec))


@functools.lru_cache(maxsize=16)
def _adn_static(src: NetSource) -> ADNStatic:
    net = raw_net(src)
    label = src.label
    for element in UNSUPPORTED:
        if element in net and len(net[element]) and len(in_service(net[element])):
            idx = int(in_service(net[element]).index[0])
            raise GridError(f"{label}: {element_name(net, element, idx)}: in-service {element} elements are not "
                            "supported in an ADN (renewables are sgens; take the element out of service)")
    live = {int(b) for b in in_service(net.bus).index}
    merge = BusMerge(net, live)
    ext = in_service(net.ext_grid)
    ext = ext[ext.bus.isin(live)]
    if len(ext) != 1:
        raise GridError(f"{label}: an ADN needs exactly one in-service ext_grid (its root), found {len(ext)}")
    ext_bus = merge.find(int(ext.bus.iloc[0]))

    # branch candidates: (kind, index, rep_a, rep_b)
    edges: list[tuple[str, int, int, int]] = []
    cut = {"line": open_switch_elements(net, "l"), "trafo": open_switch_elements(net, "t")}
    for kind, a, b in (("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus")):
        for idx, row in in_service(net[kind]).iterrows():
            fa, fb = int(row[a]), int(row[b])
            if idx in cut[kind] or fa not in live or fb not in live:
                continue
            ra, rb = merge.find(fa), merge.find(fb)
            if ra == rb:
                raise GridError(f"{label}: {element_name(net, kind, int(idx))} connects buses {fa} and {fb}, "
                                "which closed bus-bus switches merge: a loop")
            edges.append((kind, int(idx), ra, rb))

    # the substation: trafos are the only branches at the ext_grid bus
    at_root = [e for e in edges if ext_bus in (e[2], e[3])]
    root, root_trafos, pcc_limit = ext_bus, (), None
    if at_root and all(e[0] == "trafo" for e in at_root):
        lv = sorted({e[3] if e[2] == ext_bus else e[2] for e in at_root})
        root = lv[0]
        for other in lv[1:]:  # LV busbars of separate substation trafos: one root, each held at 1 p.u.
            merge.parent[other] = root
        root_trafos = tuple(e[1] for e in at_root)
        pcc_limit = float(sum(net.trafo.sn_mva.at[i] * finite(net.trafo.parallel.at[i], 1.0) for i in root_trafos))
        edges = [(k, i, merge.find(a), merge.find(b)) for k, i, a, b in edges
                 if not (k == "trafo" and i in root_trafos)]
        for kind, idx, a, b in edges:
            if a == b:
                raise GridError(f"{label}: {element_name(net, kind, idx)} joins two substation busbars that the "
                                f"reduction merges into the root {root}: a loop")

    parent = _orient(net, label, root, edges)
    reached = set(parent) | {root}
    for kind in ("load", "sgen"):  # devices outside the feeder
        rows = in_service(net[kind])
        for idx, bus in rows.bus.items():
            if int(bus) in live and merge.find(int(bus)) not in reached:
                raise GridError(f"{label}: {element_name(net, kind, int(idx))} at bus {int(bus)} is not on the "
                                f"feeder below the root bus {root} (upstream of the substation or isolated)")

    others = sorted(reached - {root})
    number = {root: 0} | {b: k + 1 for k, b in enumerate(others)}
    case_bus = {b: number[merge.find(b)] for b in live if merge.find(b) in number}
    names = net.bus.name if "name" in net.bus.columns else None
    bus_names = tuple(str(names.at[b]) if names is not None and isinstance(names.at[b], str) else str(b)
                      for b in [root, *others])

    branches = []
    for child in sorted(parent, key=lambda b: number[b]):
        kind, idx, par = parent[child]
        branches.append(_branch(net, label, kind, idx, number[par], number[child]))

    n = len(number)
    p_nom, q_nom = np.zeros(n), np.zeros(n)
    for _, ld in in_service(net.load).iterrows():
        if int(ld.bus) in case_bus:
            s = finite(ld.get("scaling", 1.0), 1.0)
            p_nom[case_bus[int(ld.bus)]] += ld.p_mw * s
            q_nom[case_bus[int(ld.bus)]] += ld.q_mvar * s
    peak: dict[int, float] = {}
    for _, sg in in_service(net.sgen).iterrows():
        if int(sg.bus) in case_bus:
            k = case_bus[int(sg.bus)]
            peak[k] = peak.get(k, 0.0) + float(sg.p_mw * finite(sg.get("scaling", 1.0), 1.0))
    branches = rate_unrated(branches, p_nom, q_nom)
    for arr in (p_nom, q_nom):
        arr.flags.writeable = False
    return ADNStatic(label, tuple(range(n)), tuple(branches), p_nom, q_nom, bus_names, case_bus,
                     tuple(sorted(peak)), tuple(peak[k] for k in sorted(peak)), pcc_limit, root_trafos)


def _orient(net: Any, label: str, root: int, edges: list[tuple[str, int, int, int]]) -> dict[int, tuple[str, int, int]]:
    """BFS from the root: child -> (kind, index, parent). A second path to a bus is a loop and is refused."""
    adj: dict[int, list[tuple[str, int, int]]] = {}
    for kind, idx, a, b in edges:
        adj.setdefault(a, []).append((kind, idx, b))
        adj.setdefault(b, []).append((kind, idx, a))
    parent: dict[int, tuple[str, int, int]] = {}
    seen, queue = {root}, deque([root])
    while queue:
        i = queue.popleft()
        for kind, idx, j in adj.get(i, []):
            if parent.get(i, (None, None))[:2] == (kind, idx):
                continue  # the branch we came by
            if j in seen:
                raise GridError(f"{label}: the network is meshed; an ADN must be radial. Loop: "
                                + _loop_text(net, parent, i, j, (kind, idx))
                                + " (open a switch or take a line out of service)")
            seen.add(j)
            parent[j] = (kind, idx, i)
            queue.append(j)
    return parent


def _loop_text(net: Any, parent: dict[int, tuple[str, int, int]], i: int, j: int, closing: tuple[str, int]) -> str:
    """The buses and branches of the loop closed by branch ``closing`` between ``i`` and ``j``."""

    def up(b: int) -> list[int]:
        path = [b]
        while b in parent:
            b = parent[b][2]
            path.append(b)
        return path

    pi, pj = up(i), up(j)
    common = next(b for b in pi if b in set(pj))
    cycle = pi[: pi.index(common) + 1] + pj[: pj.index(common)][::-1]
    # edges in the order of the cycle: i up to the common ancestor, down to j, then the closing branch back to i
    branch = [parent[b][:2] for b in pi[: pi.index(common)]] + [parent[b][:2] for b in pj[: pj.index(common)]][::-1]
    branch.append(closing)
    names = ", ".join(element_name(net, k, x) for k, x in branch)
    return f"buses {' - '.join(map(str, cycle))} - {cycle[0]} via {names}"


def _branch(net: Any, label: str, kind: str, idx: int, i: int, j: int) -> Branch:
    """A line or trafo per unit on ``ADN_BASE_MVA`` at its own voltage level."""
    if kind == "line":
        ln = net.line.loc[idx]
        v = float(net.bus.vn_kv.at[int(ln.from_bus)])
        z_base = v**2 / ADN_BASE_MVA
        par = float(ln.parallel)
        r = ln.r_ohm_per_km * ln.length_km / par / z_base
        x = ln.x_ohm_per_km * ln.length_km / par / z_base
        ka = float(ln.max_i_ka)
        rated = math.isfinite(ka) and ka < _UNRATED_KA
        smax = ka * finite(ln.df, 1.0) * par * math.sqrt(3) * v / ADN_BASE_MVA if rated else None
        return Branch(i=i, j=j, r=float(r), x=float(x), smax=smax)
    tr = net.trafo.loc[idx]
    v_hv, v_lv = float(net.bus.vn_kv.at[int(tr.hv_bus)]), float(net.bus.vn_kv.at[int(tr.lv_bus)])
    steps = finite(tr.tap_pos, 0.0) - finite(tr.tap_neutral, 0.0)
    off_tap = steps * finite(tr.tap_step_percent, 0.0) != 0
    nominal = math.isclose(tr.vn_hv_kv, v_hv, rel_tol=1e-6) and math.isclose(tr.vn_lv_kv, v_lv, rel_tol=1e-6)
    if off_tap or not nominal:
        raise GridError(f"{label}: {element_name(net, 'trafo', idx)} inside the feeder has an off-nominal ratio "
                        f"(rated {tr.vn_hv_kv:g}/{tr.vn_lv_kv:g} kV, buses {v_hv:g}/{v_lv:g} kV, tap {steps:g}); "
                        "DistFlow needs nominal ratios")
    par = float(tr.parallel)
    scale = ADN_BASE_MVA / float(tr.sn_mva) / par
    r = tr.vkr_percent / 100.0 * scale
    z = tr.vk_percent / 100.0 * scale
    return Branch(i=i, j=j, r=float(r), x=float(math.sqrt(max(z**2 - r**2, 0.0))),
                  smax=float(tr.sn_mva) * finite(tr.get("df", 1.0), 1.0) * par / ADN_BASE_MVA)


# --------------------------------------------------------------------------------------------------------------------
# the AC net of the reduced feeder


def adn_source_net(spec: NetSource | tuple[str, str] | str = DEFAULT_ADN):  # noqa: ANN201
    """A fresh pandapower net of the reduced feeder: buses 0..n-1 as in the case data, the ext_grid at the root.

    Upstream buses, the substation trafos and everything not on the feeder are dropped and merged buses fused, so
    the net's sorted bus index is the case's ``buses`` (what ``simulators.grid`` relies on).
    """
    src = as_source(spec)
    return _reduced(src, adn_static(src))


def _reduced(src: NetSource, s: ADNStatic) -> Any:
    import pandapower as pp
    import pandapower.toolbox as tb

    net = fresh_net(src)
    keep = set(s.case_bus)
    drop = [b for b in net.bus.index if int(b) not in keep]
    if drop:
        tb.drop_buses(net, drop)
    groups: dict[int, list[int]] = {}
    for b, k in s.case_bus.items():
        groups.setdefault(k, []).append(b)
    for members in groups.values():
        if len(members) > 1:
            tb.fuse_buses(net, min(members), sorted(members)[1:])
    if len(net.ext_grid):
        net.ext_grid.drop(net.ext_grid.index, inplace=True)
    tb.reindex_buses(net, {int(b): s.case_bus[int(b)] for b in net.bus.index})
    net.bus.sort_index(inplace=True)
    pp.create_ext_grid(net, 0, vm_pu=1.0, va_degree=0.0)
    return net


def rate_unrated(branches: list[Branch], load_p: np.ndarray, load_q: np.ndarray) -> list[Branch]:
    """Give every unrated branch ``max(RATING_MARGIN * |S_down|, RATING_FLOOR_MVA)``, S_down = the nominal P + jQ
    of all buses below it: a feeder sized for its peak with 100 % headroom, laterals at least 1 MVA (46 A at
    12.66 kV) so that a lateral can carry back the PV of its buses."""
    children: dict[int, list[int]] = {}
    for br in branches:
        children.setdefault(br.i, []).append(br.j)

    def downstream(j: int) -> tuple[float, float]:
        p, q = float(load_p[j]), float(load_q[j])
        for c in children.get(j, []):
            dp, dq = downstream(c)
            p, q = p + dp, q + dq
        return p, q

    return [br if br.smax is not None else
            Branch(br.i, br.j, br.r, br.x, max(RATING_MARGIN * math.hypot(*downstream(br.j)), RATING_FLOOR_MVA))
            for br in branches]
