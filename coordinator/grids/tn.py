"""The TN of a scenario reduced to DC-OPF data, with the per-unit conventions pandapower uses in its ppc.

``pp.rundcopp`` on the same net is therefore an independent check of the follower. What the reduction does with
each element (see also ``docs/grids.md``):

- lines and two-winding trafos: branches ``b = sn / x_pu`` (trafos with their off-nominal ratio); phase shifters
  are refused; a missing ``max_loading_percent`` means 100 %;
- ext_grids and gens: generators with their limits and ``poly_cost``; the first in-service ext_grid's bus is the
  angle reference (pandapower's OPF pins the angle of every ext_grid bus; the DC model has one reference and treats
  further ext_grids as generators);
- sgens: a generator with its cost if ``controllable`` (then ``max_p_mw`` is required), else a fixed injection
  (``p_mw * scaling``) that the load profile does not scale; gens with ``controllable = False`` likewise;
- shunts: their conductance is a constant load (MATPOWER's Gs);
- closed bus-bus switches merge buses (the smallest index stands for the group); an open line/trafo switch cuts it;
- out-of-service elements and elements at out-of-service buses are skipped; buses not connected to the reference
  are dropped when empty and refused when they carry a load or a generator;
- trafo3w: three branches around a star-point bus, as pandapower builds its ppc (short-circuit voltages converted
  from the winding pairs to the star); the star bus gets the index ``max(bus index) + 1 + k`` for the k-th trafo3w.
  Off-neutral taps and phase shifts are refused;
- impedance, dcline, storage, ward, xward and the FACTS tables are refused, naming the element.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from coordinator.case import Generator, TNLine, TransmissionNetwork
from coordinator.grids.source import (
    BusMerge,
    GridError,
    NetSource,
    as_source,
    element_name,
    finite,
    flag,
    fresh_net,
    in_service,
    open_switch_elements,
    raw_net,
)

UNSUPPORTED = ("impedance", "dcline", "storage", "ward", "xward", "svc", "tcsc", "ssc", "vsc")


@dataclass(frozen=True)
class TNStatic:
    """Everything of the TN that does not depend on the period."""

    label: str
    buses: tuple[int, ...]
    ref_bus: int
    lines: tuple[TNLine, ...]
    gens: tuple[Generator, ...]
    base_load: dict[int, float]
    fixed_injection: dict[int, float]


def tn_source_net(spec: NetSource | tuple[str, str] | str):  # noqa: ANN201 - pandapower has no public net type
    """A fresh copy of the TN's pandapower net; its bus indices are the case's TN buses."""
    return fresh_net(spec)


def tn_load_buses(spec: NetSource | tuple[str, str] | str = "case30") -> list[int]:
    """TN buses with at least one in-service load: the places an ADN may be hosted."""
    return sorted(b for b, p in tn_static(spec).base_load.items() if p)


def transmission_network(
    load_scale: np.ndarray, spec: NetSource | tuple[str, str] | str = "case30"
) -> TransmissionNetwork:
    """DC-OPF data of the TN; ``load_scale`` (T,) scales every bus load per period (not the fixed injections)."""
    src = as_source(spec)
    s = tn_static(src)
    return TransmissionNetwork(
        case=s.label,
        buses=list(s.buses),
        ref_bus=s.ref_bus,
        lines=list(s.lines),
        gens=list(s.gens),
        base_load=dict(s.base_load),
        load_scale=np.asarray(load_scale, dtype=float).copy(),
        source=tuple(src),
        fixed_injection=dict(s.fixed_injection),
    )


def tn_static(spec: NetSource | tuple[str, str] | str) -> TNStatic:
    return _tn_static(as_source(spec))


@functools.lru_cache(maxsize=16)
def _tn_static(src: NetSource) -> TNStatic:
    net = raw_net(src)
    label = src.label
    sn = float(net.sn_mva)
    vn = net.bus.vn_kv
    live = {int(b) for b in in_service(net.bus).index}
    merge = BusMerge(net, live)

    def at_live(table):  # in-service rows whose bus is in service
        rows = in_service(table)
        return rows[rows.bus.isin(live)] if len(rows) else rows

    for element in UNSUPPORTED:
        if element in net and len(net[element]):
            rows = in_service(net[element])
            if len(rows):
                raise GridError(f"{label}: {element_name(net, element, int(rows.index[0]))}: in-service {element} "
                                "elements are not supported in the DC model (take it out of service or replace it)")

    cut_lines, cut_trafos = open_switch_elements(net, "l"), open_switch_elements(net, "t")
    lines: list[TNLine] = []
    for idx, ln in in_service(net.line).iterrows():
        fb, tb = int(ln.from_bus), int(ln.to_bus)
        if idx in cut_lines or fb not in live or tb not in live or merge.find(fb) == merge.find(tb):
            continue
        v = float(vn.at[fb])
        par = float(ln.parallel)
        x_pu = ln.x_ohm_per_km * ln.length_km / par / (v**2 / sn)
        if x_pu <= 0:
            raise GridError(f"{label}: {element_name(net, 'line', int(idx))} has reactance {x_pu:g} p.u.; "
                            "the DC model needs x > 0")
        mlp = finite(ln.get("max_loading_percent", 100.0), 100.0)
        fmax = finite(ln.max_i_ka * ln.df * par * math.sqrt(3) * v * mlp / 100.0, math.inf)
        lines.append(TNLine(f"line{idx}", merge.find(fb), merge.find(tb), sn / x_pu, fmax))

    for idx, tr in in_service(net.trafo).iterrows():
        hv, lv = int(tr.hv_bus), int(tr.lv_bus)
        if idx in cut_trafos or hv not in live or lv not in live or merge.find(hv) == merge.find(lv):
            continue
        if finite(tr.shift_degree, 0.0) != 0 or flag(tr.get("tap_phase_shifter", False)):
            raise GridError(f"{label}: {element_name(net, 'trafo', int(idx))}: phase shifters are not supported "
                            "in the DC model")
        v_hv, v_lv = float(vn.at[hv]), float(vn.at[lv])
        par = float(tr.parallel)
        # reactance referred to the LV side and the system base, as pandapower builds BR_X
        x_pu = (math.sqrt(tr.vk_percent**2 - tr.vkr_percent**2) / 100.0 * sn / tr.sn_mva / par
                * (tr.vn_lv_kv / v_lv) ** 2)
        ratio = (tr.vn_hv_kv / v_hv) / (tr.vn_lv_kv / v_lv)
        steps = finite(tr.tap_pos, 0.0) - finite(tr.tap_neutral, 0.0)
        tap = 1.0 + steps * finite(tr.tap_step_percent, 0.0) / 100.0
        ratio = ratio * tap if tr.tap_side == "hv" else ratio / tap if tr.tap_side == "lv" else ratio
        mlp = finite(tr.get("max_loading_percent", 100.0), 100.0)
        fmax = float(tr.sn_mva) * finite(tr.df, 1.0) * par * mlp / 100.0
        lines.append(TNLine(f"trafo{idx}", merge.find(hv), merge.find(lv), sn / (x_pu * ratio), fmax))

    star_buses: set[int] = set()
    next_bus = max(int(b) for b in net.bus.index) + 1
    cut_t3 = open_switch_elements(net, "t3")
    for idx, t3 in in_service(net.trafo3w).iterrows():
        ends = (int(t3.hv_bus), int(t3.mv_bus), int(t3.lv_bus))
        if idx in cut_t3:
            raise GridError(f"{label}: {element_name(net, 'trafo3w', int(idx))}: an open switch at a three-winding "
                            "trafo is not supported (take the trafo out of service instead)")
        if not all(b in live for b in ends):
            raise GridError(f"{label}: {element_name(net, 'trafo3w', int(idx))} is in service at an out-of-service "
                            "bus; take it out of service")
        star = next_bus + len(star_buses)
        star_buses.add(star)
        lines.extend(_trafo3w_branches(label, net, int(idx), t3, star, sn, [merge.find(b) for b in ends]))

    costs: dict[tuple[str, int], tuple[float, float]] = {
        (str(c.et), int(c.element)): (float(c.cp2_eur_per_mw2), float(c.cp1_eur_per_mw))
        for _, c in net.poly_cost.iterrows()
    }
    fixed: dict[int, float] = {}

    def add_fixed(bus: int, p: float) -> None:
        if p:
            fixed[merge.find(bus)] = fixed.get(merge.find(bus), 0.0) + p

    gens: list[Generator] = []
    ext = at_live(net.ext_grid)
    for idx, eg in ext.iterrows():
        alpha, beta = costs.get(("ext_grid", int(idx)), (0.0, 0.0))
        name = "ext_grid" if len(ext) == 1 else f"ext_grid{idx}"
        gens.append(Generator(name, merge.find(int(eg.bus)), finite(eg.get("min_p_mw"), -math.inf),
                              finite(eg.get("max_p_mw"), math.inf), alpha, beta))
    for idx, g in at_live(net.gen).iterrows():
        if not flag(g.get("controllable", True), True):
            add_fixed(int(g.bus), float(g.p_mw * finite(g.get("scaling", 1.0), 1.0)))
            continue
        alpha, beta = costs.get(("gen", int(idx)), (0.0, 0.0))
        gens.append(Generator(f"gen{idx}", merge.find(int(g.bus)), finite(g.min_p_mw, 0.0),
                              finite(g.max_p_mw, math.inf), alpha, beta))
    for idx, sg in at_live(net.sgen).iterrows():
        if not flag(sg.get("controllable", False)):
            add_fixed(int(sg.bus), float(sg.p_mw * finite(sg.get("scaling", 1.0), 1.0)))
            continue
        pmax = finite(sg.get("max_p_mw"), math.nan)
        if math.isnan(pmax):
            raise GridError(f"{label}: {element_name(net, 'sgen', int(idx))} is controllable but has no max_p_mw; "
                            "give it limits or set controllable = False (then it is a fixed injection)")
        alpha, beta = costs.get(("sgen", int(idx)), (0.0, 0.0))
        gens.append(Generator(f"sgen{idx}", merge.find(int(sg.bus)), finite(sg.get("min_p_mw"), 0.0), pmax,
                              alpha, beta))

    if len(ext):
        ref_bus = merge.find(int(ext.bus.iloc[0]))
    else:
        gen_live = at_live(net.gen)
        slack = gen_live[gen_live.slack.fillna(False).astype(bool)] if "slack" in gen_live else gen_live.iloc[:0]
        if not len(slack):
            raise GridError(f"{label}: no in-service ext_grid and no slack gen, cannot pick a reference bus")
        ref_bus = merge.find(int(slack.bus.iloc[0]))

    base_load: dict[int, float] = {}
    for idx, ld in at_live(net.load).iterrows():
        if flag(ld.get("controllable", False)):
            raise GridError(f"{label}: {element_name(net, 'load', int(idx))} is controllable; the DC model treats "
                            "TN loads as fixed (set controllable = False)")
        bus = merge.find(int(ld.bus))
        base_load[bus] = base_load.get(bus, 0.0) + float(ld.p_mw * finite(ld.get("scaling", 1.0), 1.0))
    # a shunt's conductance is a constant load in the DC model (MATPOWER's Gs); case30 has none with p_mw != 0
    for _, sh in at_live(net.shunt).iterrows():
        if sh.p_mw:
            bus = merge.find(int(sh.bus))
            base_load[bus] = base_load.get(bus, 0.0) + float(sh.p_mw * sh.step)

    buses = _connected(label, ref_bus, lines, {merge.find(b) for b in live} | star_buses,
                       set(base_load) | set(fixed) | {g.bus for g in gens})
    return TNStatic(label, buses, ref_bus, tuple(lines), tuple(gens), base_load, fixed)


def _trafo3w_branches(label: str, net, idx: int, t3, star: int, sn: float, ends: list[int]) -> list[TNLine]:
    """hv-star, star-mv, star-lv as pandapower's ``_trafo_df_from_trafo3w``: per-side vk from the pair values."""
    name = element_name(net, "trafo3w", idx)
    steps = finite(t3.tap_pos, 0.0) - finite(t3.tap_neutral, 0.0)
    if steps * finite(t3.tap_step_percent, 0.0) != 0:
        raise GridError(f"{label}: {name}: off-neutral taps of three-winding trafos are not supported in the DC model")
    if finite(t3.shift_mv_degree, 0.0) != 0 or finite(t3.shift_lv_degree, 0.0) != 0:
        raise GridError(f"{label}: {name}: phase shifts (shift_mv_degree, shift_lv_degree) are not supported in the "
                        "DC model; set them to 0 if the angles do not matter")
    sides = ("hv", "mv", "lv")
    s_side = np.array([float(t3[f"sn_{x}_mva"]) for x in sides])
    vk3 = np.array([float(t3[f"vk_{x}_percent"]) for x in sides])  # pairs hv-mv, mv-lv, hv-lv
    vkr3 = np.array([float(t3[f"vkr_{x}_percent"]) for x in sides])

    def to_star(z: np.ndarray) -> np.ndarray:  # pair values on min(sn) -> star values on each side's sn
        pair = s_side[0] * np.array([z[0] / min(s_side[0], s_side[1]), z[1] / min(s_side[1], s_side[2]),
                                     z[2] / min(s_side[0], s_side[2])])
        return 0.5 * s_side / s_side[0] * np.array([pair[0] + pair[2] - pair[1], pair[1] + pair[0] - pair[2],
                                                    pair[2] + pair[1] - pair[0]])

    vki = to_star(np.sqrt(vk3**2 - vkr3**2))
    vn = net.bus.vn_kv
    v_star = float(vn.at[int(t3.hv_bus)])
    mlp = finite(t3.get("max_loading_percent", 100.0), 100.0)
    out = []
    for k, side in enumerate(sides):
        hv, lv = (ends[0], star) if side == "hv" else (star, ends[k])
        v_hv = v_star if side != "hv" else float(vn.at[int(t3.hv_bus)])
        v_lv = v_star if side == "hv" else float(vn.at[int(t3[f"{side}_bus"])])
        vn_lv = float(t3[f"vn_{side}_kv"])
        x_pu = vki[k] / 100.0 * sn / s_side[k] * (vn_lv / v_lv) ** 2
        ratio = (float(t3.vn_hv_kv) / v_hv) / (vn_lv / v_lv)
        out.append(TNLine(f"trafo3w{idx}.{side}", hv, lv, sn / (x_pu * ratio), s_side[k] * mlp / 100.0))
    return out


def _connected(label: str, ref: int, lines: list[TNLine], buses: set[int], used: set[int]) -> tuple[int, ...]:
    """Buses reached from the reference bus; an unreached bus that carries a load or generator is refused."""
    adj: dict[int, list[int]] = {b: [] for b in buses}
    for ln in lines:
        adj[ln.from_bus].append(ln.to_bus)
        adj[ln.to_bus].append(ln.from_bus)
    seen, queue = {ref}, deque([ref])
    while queue:
        for j in adj[queue.popleft()]:
            if j not in seen:
                seen.add(j)
                queue.append(j)
    stranded = sorted((buses - seen) & used)
    if stranded:
        raise GridError(f"{label}: buses {stranded} carry loads or generators but are not connected to the reference "
                        f"bus {ref} by in-service branches (out-of-service lines or open switches isolate them)")
    return tuple(sorted(seen))
