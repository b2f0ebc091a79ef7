"""The physical system: AC power flow of the TN and every ADN on pandapower, plus its mosaik wrapper.

Coupling, and why it is one-way: each ADN is a radial feeder behind its own substation, and the optimiser models its
root at ``v_root = 1`` p.u. So every ADN is its own pandapower net with an ext_grid at bus 0 held at 1.0 p.u. (the
substation's tap changer), and the TN sees an ADN only through its PCC exchange. Each step:

1. ``runpp`` on every ADN with the applied net withdrawals per bus; its ext_grid P/Q is the PCC exchange
   (positive = the ADN imports from the TN), losses included.
2. Each PCC exchange becomes a load at TN bus ``adn.tn_bus``; TN loads are ``case.tn.base_load`` (the optimiser's
   data, so both see the same demand; Q keeps each bus's shipped power factor) times the ``load_scale`` input;
   generators are set to the dispatch input; the ext_grid is the slack.
3. ``runpp`` on the TN.

A power flow that does not converge is recorded (``converged = 0``, other outputs NaN) and logged, never fatal. If
an ADN fails, the TN uses the sum of that ADN's withdrawals (a lossless estimate) as its PCC load and counts it in
``adn_pcc_estimated``.
"""

from __future__ import annotations

import copy
import functools
import math
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mosaik_api_v3
import numpy as np
import pandapower as pp
from loguru import logger

from coordinator.case import Case, DistributionNetwork, TransmissionNetwork
from coordinator.grids import adn_source_net, tn_source_net

NAN = float("nan")
ADN_INPUTS = ["p_withdrawal_mw", "q_withdrawal_mvar"]
ADN_OUTPUTS = [
    "vm_pu",
    "vm_min_pu",
    "vm_max_pu",
    "line_loading_max_pct",
    "losses_mw",
    "pcc_p_mw",
    "pcc_q_mvar",
    "converged",
]
TN_INPUTS = ["gen_mw", "load_scale"]
TN_OUTPUTS = [
    "vm_min_pu",
    "vm_max_pu",
    "line_loading_max_pct",
    "losses_mw",
    "ext_grid_p_mw",
    "converged",
    "adn_pcc_estimated",
    "pf_seconds",
]
_FAILURES = (pp.LoadflowNotConverged, np.linalg.LinAlgError, FloatingPointError)

NetFactory = Callable[[], pp.pandapowerNet]


def _run(net: pp.pandapowerNet, warm: bool) -> bool:
    """One AC power flow; warm-started from the last result when it converged (about 3x faster)."""
    try:
        pp.runpp(net, init="results" if warm else "auto", numba=False)
    except _FAILURES as exc:
        logger.debug(f"runpp failed: {exc}")
        return False
    return bool(net.converged)


def _losses(net: pp.pandapowerNet) -> float:
    total = float(net.res_line.pl_mw.sum())
    if len(net.trafo):
        total += float(net.res_trafo.pl_mw.sum())
    return total


def _max(series: Any) -> float:
    values = np.asarray(series, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else NAN


@dataclass
class _AdnGrid:
    """One ADN net with one load row per bus position, so a step only writes two columns."""

    adn: DistributionNetwork
    net: pp.pandapowerNet
    load_rows: np.ndarray
    bus_rows: np.ndarray
    p: np.ndarray
    q: np.ndarray
    warm: bool = False
    result: dict[str, Any] = field(default_factory=dict)


class PhysicalGrid:
    """AC model of 1 TN + N ADNs (see module docstring for the coupling); pure Python, no mosaik inside.

    Without factories each net comes from its grid source (``case.tn.source``, ``adn.source``) through
    :func:`coordinator.grids.source_net` (read once per process, then copied); a factory, if given, is called once
    per process and its net deep-copied (loading pandapower's JSON cases costs ~0.5 s). ADN bus positions in
    ``adn.buses`` map to the net's buses in index order. Before any input,
    ADN withdrawals are the case's period-0 loads, the load scale is ``case.tn.load_scale[0]`` and generators keep
    the setpoints of the shipped net.
    """

    def __init__(self, case: Case, tn_factory: NetFactory | None = None, adn_factory: NetFactory | None = None) -> None:
        self.case = case
        self._adns = {a.name: self._build_adn(a, _fresh(adn_factory) if adn_factory else adn_source_net(a.source))
                      for a in case.adns}
        self.tn_net = self._build_tn(case.tn, tn_factory)
        self._gen_rows = {f"gen{i}": ("gen", i) for i in self.tn_net.gen.index}
        self._gen_rows |= {f"sgen{i}": ("sgen", i) for i in self.tn_net.sgen.index}
        unknown = [g.name for g in case.tn.gens if not g.name.startswith("ext_grid") and g.name not in self._gen_rows]
        if unknown:
            raise ValueError(f"case generators {unknown} are not in the TN net (known: {sorted(self._gen_rows)})")
        self.load_scale = float(case.tn.load_scale[0]) if len(case.tn.load_scale) else 1.0
        self._tn_warm = False
        self.tn_result: dict[str, Any] = _nan_result(TN_OUTPUTS)

    # --- build ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _build_adn(adn: DistributionNetwork, net: pp.pandapowerNet) -> _AdnGrid:
        buses = np.asarray(sorted(net.bus.index))
        if len(buses) != len(adn.buses):
            raise ValueError(f"{adn.name}: case has {len(adn.buses)} buses, the pandapower net {len(buses)}")
        net.ext_grid["vm_pu"] = 1.0  # the optimiser assumes v_root = 1
        net.ext_grid["va_degree"] = 0.0
        for table in ("sgen", "storage", "gen"):  # the withdrawal input is the whole net injection
            net[table]["in_service"] = False
        net.load["p_mw"] = 0.0
        net.load["q_mvar"] = 0.0
        load_rows = np.array([_one_load_row(net, int(b), f"w{k}") for k, b in enumerate(buses)])
        _apply_ratings(adn, net, buses)
        p0 = np.asarray(adn.load_p[0], dtype=float) if len(adn.load_p) else np.zeros(len(buses))
        q0 = np.asarray(adn.load_q[0], dtype=float) if len(adn.load_q) else np.zeros(len(buses))
        grid = _AdnGrid(adn, net, load_rows, buses, p0.copy(), q0.copy())
        grid.result = _nan_result(ADN_OUTPUTS)
        return grid

    def _build_tn(self, tn: TransmissionNetwork, factory: NetFactory | None) -> pp.pandapowerNet:
        net = _fresh(factory) if factory is not None else tn_source_net(_tn_source(tn))
        p0 = net.load.groupby("bus").p_mw.sum()
        q0 = net.load.groupby("bus").q_mvar.sum()
        shunts = net.shunt[net.shunt.in_service.astype(bool)]
        shunt_p = (shunts.p_mw * shunts.step).groupby(shunts.bus).sum()  # in base_load, but the net models it
        net.load.drop(net.load.index, inplace=True)
        for bus, p in sorted(tn.base_load.items()):
            p = float(p) - float(shunt_p.get(bus, 0.0))
            ratio = float(q0[bus] / p0[bus]) if bus in p0.index and p0[bus] != 0 else 0.0
            pp.create_load(net, int(bus), p_mw=p, q_mvar=p * ratio, name=f"base{bus}")
        self._tn_base = net.load[["p_mw", "q_mvar"]].to_numpy().copy()
        self._tn_base_rows = net.load.index.to_numpy().copy()
        self._pcc_rows = {}
        for name, grid in self._adns.items():
            if grid.adn.tn_bus not in net.bus.index:
                raise ValueError(f"{name}.tn_bus={grid.adn.tn_bus} is not a bus of the TN net")
            self._pcc_rows[name] = pp.create_load(net, grid.adn.tn_bus, p_mw=0.0, q_mvar=0.0, name=f"pcc_{name}")
        return net

    # --- inputs --------------------------------------------------------------------------------------------------
    @property
    def adn_names(self) -> list[str]:
        return list(self._adns)

    def adn_net(self, name: str) -> pp.pandapowerNet:
        return self._adns[name].net

    def adn_result(self, name: str) -> dict[str, Any]:
        """Outputs of the last run for one ADN (NaN and ``converged = 0`` before the first run)."""
        return self._adns[name].result

    def set_withdrawal(
        self, adn: str, p_mw: Sequence[float] | None = None, q_mvar: Sequence[float] | None = None
    ) -> None:
        """Net withdrawal per bus (load - PV - discharge + charge), in ``adn.buses`` order; None keeps the last."""
        grid = self._adns[adn]
        for attr, values in (("p", p_mw), ("q", q_mvar)):
            if values is None:
                continue
            arr = np.asarray(values, dtype=float)
            if arr.shape != grid.p.shape:
                raise ValueError(f"{adn}: withdrawal has shape {arr.shape}, expected {grid.p.shape}")
            setattr(grid, attr, arr.copy())

    def set_dispatch(self, gen_mw: Mapping[str, float]) -> None:
        """Generator active power setpoints ``{"gen<idx>": MW, "sgen<idx>": MW}``; ext_grids are slacks, ignored."""
        for name, value in gen_mw.items():
            if name.startswith("ext_grid"):
                continue
            if name not in self._gen_rows:
                raise KeyError(f"unknown TN generator {name!r}; known: {sorted(self._gen_rows)} and 'ext_grid'")
            table, row = self._gen_rows[name]
            self.tn_net[table].at[row, "p_mw"] = float(value)

    def set_load_scale(self, scale: float) -> None:
        self.load_scale = float(scale)

    # --- run -----------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Power flows of all ADNs then the TN; returns ``{"tn": {...}, "adns": {name: {...}}}`` (plain floats)."""
        start = _time.perf_counter()
        estimated = 0
        for name, grid in self._adns.items():
            self._run_adn(grid)
            p, q = grid.result["pcc_p_mw"], grid.result["pcc_q_mvar"]
            if not grid.result["converged"]:
                estimated += 1
                p, q = float(grid.p.sum()), float(grid.q.sum())
            self.tn_net.load.at[self._pcc_rows[name], "p_mw"] = p
            self.tn_net.load.at[self._pcc_rows[name], "q_mvar"] = q
        self._run_tn()
        self.tn_result["adn_pcc_estimated"] = float(estimated)
        self.tn_result["pf_seconds"] = _time.perf_counter() - start
        return {"tn": self.tn_result, "adns": {n: g.result for n, g in self._adns.items()}}

    def _run_adn(self, grid: _AdnGrid) -> None:
        net = grid.net
        if not (np.isfinite(grid.p).all() and np.isfinite(grid.q).all()):
            logger.warning(f"grid: {grid.adn.name} has non-finite withdrawals; power flow skipped")
            grid.warm, grid.result = False, _nan_result(ADN_OUTPUTS)
            return
        net.load.loc[grid.load_rows, "p_mw"] = grid.p
        net.load.loc[grid.load_rows, "q_mvar"] = grid.q
        grid.warm = _run(net, grid.warm)
        if not grid.warm:
            logger.warning(f"grid: AC power flow of {grid.adn.name} did not converge")
            grid.result = _nan_result(ADN_OUTPUTS)
            return
        vm = net.res_bus.vm_pu.loc[grid.bus_rows].to_numpy(dtype=float)
        grid.result = {
            "vm_pu": [float(v) for v in vm],
            "vm_min_pu": float(vm.min()),
            "vm_max_pu": float(vm.max()),
            "line_loading_max_pct": _max(net.res_line.loading_percent),
            "losses_mw": _losses(net),
            "pcc_p_mw": float(net.res_ext_grid.p_mw.sum()),
            "pcc_q_mvar": float(net.res_ext_grid.q_mvar.sum()),
            "converged": 1.0,
        }

    def _run_tn(self) -> None:
        net = self.tn_net
        net.load.loc[self._tn_base_rows, ["p_mw", "q_mvar"]] = self._tn_base * self.load_scale
        self._tn_warm = _run(net, self._tn_warm)
        if not self._tn_warm:
            logger.warning("grid: AC power flow of the TN did not converge")
            self.tn_result = _nan_result(TN_OUTPUTS)
            return
        vm = net.res_bus.vm_pu.to_numpy(dtype=float)
        self.tn_result = {
            "vm_min_pu": float(np.nanmin(vm)),
            "vm_max_pu": float(np.nanmax(vm)),
            "line_loading_max_pct": _max(net.res_line.loading_percent),
            "losses_mw": _losses(net),
            "ext_grid_p_mw": float(net.res_ext_grid.p_mw.sum()),
            "converged": 1.0,
        }


@functools.lru_cache(maxsize=8)
def _template(factory: NetFactory) -> pp.pandapowerNet:
    return factory()


def _fresh(factory: NetFactory) -> pp.pandapowerNet:
    """A private copy of the factory's net: pandapower's JSON cases cost ~0.5 s to build, a copy ~10 ms."""
    return copy.deepcopy(_template(factory))


def _tn_source(tn: TransmissionNetwork) -> tuple[str, str]:
    return tn.source if tn.source is not None else ("case", tn.case)


def _one_load_row(net: pp.pandapowerNet, bus: int, name: str) -> int:
    """The first existing load row at ``bus`` (others stay at 0 MW), or a new one."""
    rows = net.load.index[net.load.bus == bus]
    if len(rows):
        return int(rows[0])
    return int(pp.create_load(net, bus, p_mw=0.0, q_mvar=0.0, name=name))


def _apply_ratings(adn: DistributionNetwork, net: pp.pandapowerNet, buses: np.ndarray) -> None:
    """Branch ``smax`` (MVA at 1 p.u.) becomes the line's ``max_i_ka``, so loading matches the case's ampacity."""
    position = {b: k for k, b in enumerate(adn.buses)}
    lines = net.line[net.line.in_service]
    for br in adn.branches:
        if br.smax is None:
            continue
        fb, tb = int(buses[position[br.i]]), int(buses[position[br.j]])
        match = lines.index[
            ((lines.from_bus == fb) & (lines.to_bus == tb)) | ((lines.from_bus == tb) & (lines.to_bus == fb))
        ]
        if not len(match):
            logger.warning(f"grid: {adn.name} branch {br.i}-{br.j} has no in-service line; rating not applied")
            continue
        vn_kv = float(net.bus.at[fb, "vn_kv"])
        net.line.loc[match, "max_i_ka"] = br.smax / (math.sqrt(3) * vn_kv)


def _nan_result(attrs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {a: NAN for a in attrs}
    out["converged"] = 0.0
    return out


# --- mosaik wrapper --------------------------------------------------------------------------------------------------
META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "ADNGrid": {"public": True, "params": ["adn"], "attrs": ADN_INPUTS + ADN_OUTPUTS},
        "TNGrid": {"public": True, "params": [], "attrs": TN_INPUTS + TN_OUTPUTS},
    },
}


class GridSim(mosaik_api_v3.Simulator):
    """Event-based: it runs the power flows whenever new applied injections arrive (once per step when it sits
    outside the agent/coordinator loop group) and keeps the last value of any input that did not change.

    Entities: ``ADNGrid`` (param ``adn``: the ADN's name in the case; eid ``ADNGrid_<adn>``) and one ``TNGrid``
    (eid ``TNGrid_tn``). Several sources on one withdrawal or dispatch input are summed (per bus / per generator).
    """

    def __init__(self) -> None:
        super().__init__(META)
        self.grid: PhysicalGrid | None = None
        self._entities: dict[str, str | None] = {}  # eid -> ADN name (None for the TN)

    def init(
        self,
        sid: str,
        time_resolution: float = 1.0,
        case: Case | None = None,
        tn_factory: NetFactory | None = None,
        adn_factory: NetFactory | None = None,
    ) -> dict:
        if case is None:
            raise ValueError("GridSim needs a coordinator.case.Case (start it in-process with case=...)")
        self.grid = PhysicalGrid(case, tn_factory, adn_factory)
        return self.meta

    def create(self, num: int, model: str, adn: str | None = None) -> list[dict]:
        grid = self._grid()
        if num != 1:
            raise ValueError("create grid entities one at a time")
        if model == "ADNGrid":
            if adn not in grid.adn_names:
                raise ValueError(f"unknown ADN {adn!r}; case has {grid.adn_names}")
            eid = f"ADNGrid_{adn}"
        else:
            eid = "TNGrid_tn"
        if eid in self._entities:
            raise ValueError(f"{eid} exists already")
        self._entities[eid] = adn if model == "ADNGrid" else None
        return [{"eid": eid, "type": model}]

    def step(self, time: int, inputs: dict, max_advance: int) -> None:
        """Apply the new inputs, then run all power flows."""
        grid = self._grid()
        for eid, attrs in inputs.items():
            adn = self._entities[eid]
            if adn is not None:
                grid.set_withdrawal(
                    adn, _sum_lists(attrs.get("p_withdrawal_mw")), _sum_lists(attrs.get("q_withdrawal_mvar"))
                )
                continue
            if "gen_mw" in attrs:
                grid.set_dispatch(_sum_dicts(attrs["gen_mw"]))
            scale = _single(attrs.get("load_scale"), "load_scale")
            if scale is not None:
                grid.set_load_scale(scale)
        grid.run()

    def get_data(self, outputs: dict) -> dict:
        grid = self._grid()
        data = {}
        for eid, attrs in outputs.items():
            adn = self._entities[eid]
            result = grid.tn_result if adn is None else grid.adn_result(adn)
            data[eid] = {a: copy.deepcopy(result[a]) for a in attrs if a in result}
        return data

    def _grid(self) -> PhysicalGrid:
        if self.grid is None:
            raise RuntimeError("GridSim.init has not run")
        return self.grid


def _sum_lists(sources: Mapping[str, Sequence[float]] | None) -> np.ndarray | None:
    if not sources:
        return None
    values = [np.asarray(v, dtype=float) for v in sources.values() if v is not None]
    return np.sum(values, axis=0) if values else None


def _sum_dicts(sources: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in sources.values():
        for key, mw in (value or {}).items():
            out[key] = out.get(key, 0.0) + float(mw)
    return out


def _single(sources: Mapping[str, Any] | None, attr: str) -> float | None:
    values = [v for v in (sources or {}).values() if v is not None]
    if len(values) > 1:
        raise ValueError(f"{attr} needs exactly one source, got {len(values)}")
    return float(values[0]) if values else None
