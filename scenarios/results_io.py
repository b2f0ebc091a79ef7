"""One in-memory shape for both result files, so ``report`` and ``compare`` need a single code path.

``tsodso solve`` writes the planned horizon as JSON (docs/results-schema.md); ``tsodso run`` writes what was applied
and measured step by step as HDF5. ``load_run`` turns either into a ``Run``: per-ADN time series plus TN prices
and solve statistics. Voltages and PCC exchange come from the AC power flow in HDF5 files and from the optimiser
in JSON files (``Run.source`` says which).

Both readers check what they read (keys, types, one value per period, finite numbers where a plan has no gaps) and
raise ``ResultsFileError`` naming the file, the key and what was expected, so a damaged or foreign file is a clear
user error, never a crash or a silently wrong KPI.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
WHAT = "a JSON file from 'tsodso solve' or an HDF5 file from 'tsodso run'"


class ResultsFileError(ValueError):
    """A results file that is missing, unreadable or not what ``tsodso`` writes; the message names file and key."""

    def __init__(self, path: Path, problem: str, key: str = "") -> None:
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


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
    # for the DSO cost (scenarios.dso_cost); None when the file does not have them
    p2p_inter_in_mw: np.ndarray | None = None
    retail_mw: np.ndarray | None = None  # prosumers' retail import + export
    losses_mw: np.ndarray | None = None  # optimiser's (plan) or AC power flow's (run)


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

    def adn_table(self):  # noqa: ANN201 - a pandas DataFrame (pandas is imported only when asked for)
        """Tidy table: one row per ADN and period (``adn``, ``period``, ``hour``, MW series, summed BESS, voltages)."""
        import pandas as pd

        frames = []
        for adn in self.adns:
            frames.append(pd.DataFrame({
                "adn": adn.name, "tn_bus": adn.tn_bus, "period": np.arange(len(self.hours)), "hour": self.hours,
                "pcc_mw": adn.pcc_mw, "load_mw": adn.load_mw, "pv_available_mw": adn.pv_available_mw,
                "pv_used_mw": adn.pv_used_mw, "bess_charge_mw": np.nansum(adn.charge_mw, axis=1),
                "bess_discharge_mw": np.nansum(adn.discharge_mw, axis=1), "soc_mwh": np.nansum(adn.soc_mwh, axis=1),
                "p2p_intra_mw": adn.p2p_intra_mw, "p2p_inter_out_mw": adn.p2p_inter_out_mw,
                "v_min_pu": adn.v_min_pu, "v_max_pu": adn.v_max_pu}))
        return pd.concat(frames, ignore_index=True)

    def lmp_table(self):  # noqa: ANN201 - a pandas DataFrame
        """Tidy table: one row per TN bus and period (``bus``, ``period``, ``hour``, ``lmp``)."""
        import pandas as pd

        return pd.concat([pd.DataFrame({"bus": bus, "period": np.arange(len(self.hours)), "hour": self.hours,
                                        "lmp": values}) for bus, values in sorted(self.lmp.items())],
                         ignore_index=True)


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Read a ``tsodso solve`` JSON or a ``tsodso run`` HDF5 file."""
    path = Path(path)
    if path.is_dir():
        raise ResultsFileError(path, f"is a directory; allowed: {WHAT}")
    if not path.is_file():
        raise ResultsFileError(path, f"no such file; allowed: {WHAT}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise ResultsFileError(path, f"cannot read ({exc.strerror})") from None
    if head == HDF5_SIGNATURE:  # by content, not by suffix: a renamed file still reads
        return _from_hdf5(path, label)
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise ResultsFileError(path, f"not an HDF5 file; allowed: {WHAT}")
    return _from_json(path, label)


def _arr(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


class _JsonCheck:
    """Reads keys of a ``tsodso solve`` JSON, raising ``ResultsFileError`` with the key path on anything unexpected."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ResultsFileError:
        return ResultsFileError(self.path, problem, key)

    def get(self, obj: dict, key: str, where: str, kind: type | tuple[type, ...]):
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise self.fail(name, "missing key (not a complete 'tsodso solve' result)")
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(name, f"must be {_kind_name(kind)}, not {type(value).__name__}")
        return value

    def number(self, obj: dict, key: str, where: str = "", optional: bool = False, positive: bool = False) -> float:
        if optional and obj.get(key) is None:
            return math.nan
        value = float(self.get(obj, key, where, (int, float)))
        if not math.isfinite(value) or (positive and value <= 0):
            raise self.fail(f"{where}.{key}" if where else key, f"= {value}: must be a finite number"
                            + (" > 0" if positive else ""))
        return value

    def series(self, obj: dict, key: str, where: str, periods: int) -> np.ndarray:
        values = self.get(obj, key, where, list)
        name = f"{where}.{key}"
        if len(values) != periods:
            raise self.fail(name, f"has {len(values)} values; allowed: {periods} (one per period)")
        bad = next((k for k, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, float))
                    or not math.isfinite(v)), None)
        if bad is not None:
            raise self.fail(f"{name}[{bad}]", f"= {values[bad]!r}: must be a finite number")
        return _arr(values)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {list: "a list", dict: "a mapping", str: "a string", int: "an integer", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return "a number" if float in kinds else " or ".join(names.get(k, k.__name__) for k in kinds)


def _read_json(path: Path) -> dict:
    try:
        res = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ResultsFileError(path, f"not a text file; allowed: {WHAT}") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(path, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                                     f"allowed: {WHAT}") from None
    if not isinstance(res, dict):
        raise ResultsFileError(path, f"top level is {type(res).__name__}, not a mapping; allowed: {WHAT}")
    return res


def _from_json(path: Path, label: str | None) -> Run:
    res = _read_json(path)
    if "adns" not in res and "status" in res:
        raise ResultsFileError(path, f"the solve has no solution (status {res.get('status')!r}); nothing to report")
    c = _JsonCheck(path)
    periods = c.get(res, "periods", "", int)
    if periods < 1:
        raise c.fail("periods", f"= {periods}: must be >= 1")
    dt = c.number(res, "step_hours", positive=True)
    start_hour = c.number(res, "start_hour") if "start_hour" in res else 0.0
    raw_adns = c.get(res, "adns", "", list)
    if not raw_adns:
        raise c.fail("adns", "is empty; allowed: one entry per ADN")
    tn = c.get(res, "tn", "", dict)
    lmp = {}
    for bus in c.get(tn, "lmp", "tn", dict):
        if not str(bus).lstrip("-").isdigit():
            raise c.fail(f"tn.lmp.{bus}", "key must be a TN bus number")
        lmp[int(bus)] = c.series(tn["lmp"], bus, "tn.lmp", periods)
    generation_cost = c.number(tn, "generation_cost", "tn")
    adns = []
    for k, a in enumerate(raw_adns):
        where = f"adns[{k}]"
        if not isinstance(a, dict):
            raise c.fail(where, f"must be a mapping, not {type(a).__name__}")
        series = {key: c.series(a, key, where, periods) for key in (
            "pcc_mw", "load_mw", "pv_available_mw", "pv_used_mw", "p2p_intra_mw", "p2p_inter_out_mw", "v_min_pu",
            "v_max_pu")}
        bess = c.get(a, "bess", where, list)
        for j, unit in enumerate(bess):
            if not isinstance(unit, dict):
                raise c.fail(f"{where}.bess[{j}]", f"must be a mapping, not {type(unit).__name__}")
            for key in ("charge_mw", "discharge_mw", "soc_mwh"):
                c.series(unit, key, f"{where}.bess[{j}]", periods)
        capacity = sum(c.number(x, "capacity_mwh", f"{where}.bess", optional=True) for x in bess) if bess else 0.0
        if not math.isfinite(capacity):  # files written before capacity_mwh existed: invert the stored KPI
            stored = a.get("kpis") if isinstance(a.get("kpis"), dict) else {}
            cycles = stored.get("bess_equivalent_cycles", 0.0)
            capacity = stored.get("bess_throughput_mwh", math.nan) / (2 * cycles) if cycles > 0 else math.nan
        adns.append(AdnSeries(
            name=c.get(a, "name", where, str), tn_bus=c.get(a, "tn_bus", where, int),
            charge_mw=_bess_matrix(bess, "charge_mw", periods),
            discharge_mw=_bess_matrix(bess, "discharge_mw", periods), soc_mwh=_bess_matrix(bess, "soc_mwh", periods),
            bess_capacity_mwh=float(capacity), **series, **_cost_series_json(a)))
    model = res.get("model", {})
    if not isinstance(model, dict):
        raise c.fail("model", f"must be a mapping, not {type(model).__name__}")
    return Run(label=label or path.stem, path=path, source="plan (JSON)", scheme=str(res.get("scheme", "dso-led")),
               step_hours=dt, hours=start_hour + dt * np.arange(periods), adns=adns, lmp=lmp,
               generation_cost=generation_cost, dso_cost=c.number(res, "objective", optional=True),
               solve_time_s=_arr([c.number(res, "solve_time_s", optional=True)]),
               mip_gap=c.number(res, "mip_gap", optional=True),
               model=dict(model), extra={k: res[k] for k in ("tso_led",) if k in res})


def _cost_series_json(a: dict) -> dict:
    """The extra series ``scenarios.dso_cost`` needs, from a plan's ADN entry (absent in old files: None)."""
    retail = (_arr(a["retail_import_mw"]) + _arr(a["retail_export_mw"])
              if "retail_import_mw" in a and "retail_export_mw" in a else None)
    return {"p2p_inter_in_mw": _arr(a["p2p_inter_in_mw"]) if "p2p_inter_in_mw" in a else None,
            "retail_mw": retail, "losses_mw": _arr(a["losses_mw"]) if "losses_mw" in a else None}


def _bess_matrix(bess: list[dict], key: str, periods: int) -> np.ndarray:
    """(T, n_bess) from the per-unit lists of the JSON."""
    return np.array([x[key] for x in bess], dtype=float).T.reshape(periods, len(bess))


def _from_hdf5(path: Path, label: str | None) -> Run:
    from coordinator.networks import load_placements
    from simulators.recorder import read_attrs, read_run

    try:
        data = read_run(str(path))
        attrs = read_attrs(str(path))
        time_attrs = read_attrs(str(path), "/time") if "/time" in data else {}
    except (OSError, KeyError, ValueError) as exc:
        raise ResultsFileError(path, f"unreadable HDF5 ({exc})") from None
    if "/time" not in data or not any(k.startswith("/DSO/") for k in data):
        raise ResultsFileError(path, f"not a 'tsodso run' file (no /time or /DSO datasets); allowed: {WHAT}")
    scenario, run_info = (_json_attr(path, attrs, key) for key in ("scenario", "run"))
    steps = len(data["/time"])
    dt = float(time_attrs.get("step_seconds", 3600.0)) / 3600.0
    start = float(run_info.get("start_hour", scenario.get("start_hour", 0.0)))
    resolution_h = float(time_attrs.get("time_resolution_s", 1.0)) / 3600.0
    hours = start + _steps_of(path, "/time", data["/time"], steps) * resolution_h

    def get(key: str, width: int | None = None) -> np.ndarray:
        if key in data:
            return _steps_of(path, key, data[key], steps)
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
            line_loading_max_pct=get(f"/ADNGrid/{name}/line_loading_max_pct"),
            p2p_inter_in_mw=get(f"/DSO/{name}/p2p_inter_in_mw"), losses_mw=get(f"/ADNGrid/{name}/losses_mw"),
            retail_mw=get(f"/ADNPlan/{name}/retail_mw") if f"/ADNPlan/{name}/retail_mw" in data else None))
    hub = "/Coordinator/hub/"
    lmp = {int(k.rsplit("/", 1)[1]): _steps_of(path, k, v, steps) for k, v in data.items()
           if k.startswith("/TSO/tn/lmp/") and k.rsplit("/", 1)[1].isdigit()}
    gen_cost = float(np.nansum(get("/TSO/tn/generation_cost")) * dt)
    model = {key: float(np.nanmax(get(hub + key))) for key in ("variables", "binaries", "constraints", "cones")
             if hub + key in data}
    run = Run(label=label or path.stem, path=path, source="co-simulation (HDF5)",
              scheme=str(run_info.get("scheme", "dso-led")), step_hours=dt, hours=hours,
              adns=adns, lmp=lmp, generation_cost=gen_cost, dso_cost=math.nan, solve_time_s=get(hub + "solve_time_s"),
              mip_gap=float(np.nanmax(get(hub + "mip_gap"))) if hub + "mip_gap" in data else math.nan, model=model)
    run.dso_cost = _applied_dso_cost(run, scenario)
    return run


def _applied_dso_cost(run: Run, scenario: dict) -> float:
    """What the DSOs paid over the run, at the recorded LMPs and the scenario's prices (``scenarios.dso_cost``)."""
    from scenarios.dso_cost import Pricing, dso_cost

    return dso_cost(run, Pricing.from_scenario(scenario)) if scenario else math.nan


def _json_attr(path: Path, attrs: dict, key: str) -> dict:
    """A JSON-encoded root attribute (``scenario``, ``run``) as a mapping; absent means empty."""
    if key not in attrs:
        return {}
    try:
        value = json.loads(attrs[key])
    except (TypeError, ValueError):
        raise ResultsFileError(path, "not valid JSON", f"attribute {key!r}") from None
    if not isinstance(value, dict):
        raise ResultsFileError(path, f"must be a JSON mapping, not {type(value).__name__}", f"attribute {key!r}")
    return value


def _steps_of(path: Path, key: str, values: np.ndarray, steps: int) -> np.ndarray:
    """A recorded series as floats with one row per step of ``/time`` (a short or foreign dataset is an error)."""
    try:
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ResultsFileError(path, f"dataset holds {values.dtype}, not numbers", key) from None
    if out.ndim == 0 or out.shape[0] != steps:
        rows = 0 if out.ndim == 0 else out.shape[0]
        raise ResultsFileError(path, f"has {rows} rows; allowed: {steps} (one per step of /time)", key)
    return out


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
