"""One in-memory shape for both result files, so ``report`` and ``compare`` need a single code path.

``tsodso solve`` writes the planned horizon as JSON (docs/results-schema.md); ``tsodso run`` writes what was applied
and measured step by step as HDF5. ``load_run`` turns either into a ``Run``: per-ADN time series plus TN prices
and solve statistics. Voltages and PCC exchange come from the AC power flow in HDF5 files and from the optimiser
in JSON files (``Run.source`` says which).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class AdnSeries:
    name: str
    tn_bus: int
    pcc_mw: np.ndarray  # (T,) withdrawal from the TN, > 0 import
    load_mw: np.ndarray
    pv_available_mw: np.ndarray
    pv_used_mw: np.ndarray
    charge_mw: np.ndarray  # (T, n_bess)
    discharge_mw: np.ndarray
    soc_mwh: np.ndarray
    bess_capacity_mwh: float  # usable (emax - emin), nan when unknown
    p2p_intra_mw: np.ndarray
    p2p_inter_out_mw: np.ndarray
    v_min_pu: np.ndarray
    v_max_pu: np.ndarray
    line_loading_max_pct: np.ndarray | None = None  # AC power flow only


@dataclass
class Run:
    label: str
    path: Path
    source: str  # "plan (JSON)" or "co-simulation (HDF5)"
    scheme: str
    step_hours: float
    hours: np.ndarray  # (T,) hour of day of each period
    adns: list[AdnSeries]
    lmp: dict[int, np.ndarray]  # TN bus -> (T,)
    generation_cost: float  # $ over the run
    dso_cost: float  # $ over the run (nan when not recorded)
    solve_time_s: np.ndarray  # one value per solve
    mip_gap: float
    model: dict = field(default_factory=dict)  # variables, binaries, constraints, cones (largest per step)
    extra: dict = field(default_factory=dict)  # scheme-specific sections (e.g. ``tso_led``)


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Read a ``tsodso solve`` JSON or a ``tsodso run`` HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file {path}")
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _from_hdf5(path, label)
    return _from_json(path, label)


def _arr(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _from_json(path: Path, label: str | None) -> Run:
    res = json.loads(path.read_text())
    if "adns" not in res:
        raise ValueError(f"{path}: the solve has no solution (status {res.get('status')!r}); nothing to report")
    dt = float(res["step_hours"])
    periods = int(res["periods"])
    adns = []
    for a in res["adns"]:
        bess = a["bess"]
        capacity = sum(x.get("capacity_mwh", math.nan) for x in bess) if bess else 0.0
        if not math.isfinite(capacity):  # files written before capacity_mwh existed: invert the stored KPI
            k = a.get("kpis", {})
            cycles = k.get("bess_equivalent_cycles", 0.0)
            capacity = k["bess_throughput_mwh"] / (2 * cycles) if cycles > 0 else math.nan
        adns.append(AdnSeries(
            name=a["name"], tn_bus=int(a["tn_bus"]), pcc_mw=_arr(a["pcc_mw"]), load_mw=_arr(a["load_mw"]),
            pv_available_mw=_arr(a["pv_available_mw"]), pv_used_mw=_arr(a["pv_used_mw"]),
            charge_mw=_bess_matrix(bess, "charge_mw", periods),
            discharge_mw=_bess_matrix(bess, "discharge_mw", periods), soc_mwh=_bess_matrix(bess, "soc_mwh", periods),
            bess_capacity_mwh=float(capacity), p2p_intra_mw=_arr(a["p2p_intra_mw"]),
            p2p_inter_out_mw=_arr(a["p2p_inter_out_mw"]), v_min_pu=_arr(a["v_min_pu"]), v_max_pu=_arr(a["v_max_pu"])))
    return Run(label=label or path.stem, path=path, source="plan (JSON)", scheme=res.get("scheme", "dso-led"),
               step_hours=dt, hours=float(res.get("start_hour", 0.0)) + dt * np.arange(periods), adns=adns,
               lmp={int(n): _arr(v) for n, v in res["tn"]["lmp"].items()},
               generation_cost=float(res["tn"]["generation_cost"]), dso_cost=_num(res.get("objective")),
               solve_time_s=_arr([res.get("solve_time_s", math.nan)]), mip_gap=_num(res.get("mip_gap")),
               model=dict(res.get("model", {})), extra={k: res[k] for k in ("tso_led",) if k in res})


def _bess_matrix(bess: list[dict], key: str, periods: int) -> np.ndarray:
    """(T, n_bess) from the per-unit lists of the JSON."""
    return np.array([x[key] for x in bess], dtype=float).T.reshape(periods, len(bess))


def _num(value) -> float:
    return math.nan if value is None else float(value)


def _from_hdf5(path: Path, label: str | None) -> Run:
    from coordinator.networks import load_placements
    from simulators.recorder import read_attrs, read_run

    data = read_run(str(path))
    attrs = read_attrs(str(path))
    time_attrs = read_attrs(str(path), "/time")
    scenario = json.loads(attrs["scenario"]) if "scenario" in attrs else {}
    run_info = json.loads(attrs["run"]) if "run" in attrs else {}
    steps = len(data["/time"])
    dt = float(time_attrs.get("step_seconds", 3600.0)) / 3600.0
    start = float(run_info.get("start_hour", scenario.get("start_hour", 0.0)))
    hours = start + np.asarray(data["/time"], dtype=float) * float(time_attrs.get("time_resolution_s", 1.0)) / 3600.0

    def get(key: str, width: int | None = None) -> np.ndarray:
        if key in data:
            return np.asarray(data[key], dtype=float)
        return np.full((steps, width) if width else steps, np.nan)

    hosts = {a["name"]: a for a in scenario.get("adns", [])}
    placements = _placements(load_placements, scenario)
    adns = []
    for name in sorted({k.split("/")[2] for k in data if k.startswith("/DSO/")}):
        cfg = hosts.get(name, {})
        key = cfg.get("placement", name)
        place = _auto_placement(name, cfg) if key == "auto" else placements.get(key)
        adns.append(AdnSeries(
            name=name, tn_bus=int(cfg.get("tn_bus", -1)), pcc_mw=get(f"/ADNGrid/{name}/pcc_p_mw"),
            load_mw=get(f"/DSO/{name}/load_mw"), pv_available_mw=get(f"/DSO/{name}/pv_available_mw"),
            pv_used_mw=get(f"/DSO/{name}/pv_used_mw"), charge_mw=get(f"/DSO/{name}/bess_ch_mw").reshape(steps, -1),
            discharge_mw=get(f"/DSO/{name}/bess_dis_mw").reshape(steps, -1),
            soc_mwh=get(f"/DSO/{name}/soc_mwh").reshape(steps, -1),
            bess_capacity_mwh=(sum(b.to_bess().emax - b.to_bess().emin for b in place.bess) if place else math.nan),
            p2p_intra_mw=get(f"/DSO/{name}/p2p_intra_mw"), p2p_inter_out_mw=get(f"/DSO/{name}/p2p_inter_out_mw"),
            v_min_pu=get(f"/ADNGrid/{name}/vm_min_pu"), v_max_pu=get(f"/ADNGrid/{name}/vm_max_pu"),
            line_loading_max_pct=get(f"/ADNGrid/{name}/line_loading_max_pct")))
    hub = "/Coordinator/hub/"
    lmp = {int(k.rsplit("/", 1)[1]): np.asarray(v, dtype=float) for k, v in data.items()
           if k.startswith("/TSO/tn/lmp/")}
    gen_cost = float(np.nansum(get("/TSO/tn/generation_cost")) * dt)
    model = {key: float(np.nanmax(get(hub + key))) for key in ("variables", "binaries", "constraints", "cones")
             if hub + key in data}
    return Run(label=label or path.stem, path=path, source="co-simulation (HDF5)",
               scheme=str(run_info.get("scheme", "dso-led")), step_hours=dt, hours=hours,
               adns=adns, lmp=lmp, generation_cost=gen_cost, dso_cost=math.nan, solve_time_s=get(hub + "solve_time_s"),
               mip_gap=float(np.nanmax(get(hub + "mip_gap"))) if hub + "mip_gap" in data else math.nan, model=model)


def _auto_placement(name: str, adn: dict):
    """The DER that ``placement: auto`` gave this ADN, rebuilt from the scenario record (None if the grid is gone)."""
    from coordinator.grids.adn import adn_static
    from coordinator.grids.placement import auto_placement, rule_from_record

    try:
        return auto_placement(name, adn_static(tuple(adn.get("network") or ("case", "case33bw"))),
                              rule_from_record(adn.get("auto")))
    except (OSError, ValueError, TypeError):
        return None


def _placements(loader, scenario: dict) -> dict:
    try:
        return loader(scenario.get("placement_file"))
    except (OSError, ValueError):
        return {}
