"""``tsodso report`` and ``tsodso compare``: the KPIs of docs/formulation.md ("KPIs") as tables, JSON and PNG plots.

KPIs are computed here from the time series of a ``Run`` (``scenarios.results_io``), the same way for a plan
(JSON) and a co-simulation (HDF5), so two files of different kinds can be compared. For JSON they equal the
``kpis`` that ``tsodso solve`` stores (a test checks it).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from coordinator.kpis import energy_kpis, total_kpis
from scenarios.cli_common import add_overwrite_argument
from scenarios.output_files import OutputPathError, check_output_file, check_output_folder, write_json_atomic
from scenarios.results_io import AdnSeries, Run, load_run


# --- KPIs -------------------------------------------------------------------------------------------------------
def adn_kpis(adn: AdnSeries, dt: float) -> dict[str, float]:
    """Energy KPIs of one ADN (``coordinator.kpis``), plus its voltage range and worst line loading."""
    k = energy_kpis(dt, adn.pcc_mw, adn.load_mw, adn.pv_available_mw, adn.pv_used_mw, adn.charge_mw,
                    adn.discharge_mw, adn.p2p_intra_mw, adn.p2p_inter_out_mw, adn.bess_capacity_mwh)
    k["v_min_pu"] = _nan_min(adn.v_min_pu)
    k["v_max_pu"] = _nan_max(adn.v_max_pu)
    k["line_loading_max_pct"] = _nan_max(adn.line_loading_max_pct) if adn.line_loading_max_pct is not None else math.nan
    return k


def run_kpis(run: Run) -> dict[str, Any]:
    """``{"adns": {name: kpis}, "total": kpis}`` with run-level costs, solve statistics and model size in total."""
    per = {adn.name: adn_kpis(adn, run.step_hours) for adn in run.adns}
    total: dict[str, float] = total_kpis(list(per.values()), sum(adn.bess_capacity_mwh for adn in run.adns))
    total["v_min_pu"] = min((k["v_min_pu"] for k in per.values()), default=math.nan)
    total["v_max_pu"] = max((k["v_max_pu"] for k in per.values()), default=math.nan)
    total["line_loading_max_pct"] = _nan_max(np.array([k["line_loading_max_pct"] for k in per.values()]))
    total["dso_cost"] = run.dso_cost
    total["tso_generation_cost"] = run.generation_cost
    total["solve_time_mean_s"] = _nan_mean(run.solve_time_s)
    total["solve_time_max_s"] = _nan_max(run.solve_time_s)
    total["mip_gap"] = run.mip_gap
    for key in ("variables", "binaries", "cones", "constraints"):
        total[f"model_{key}"] = float(run.model.get(key, math.nan))
    return {"file": str(run.path), "source": run.source, "scheme": run.scheme, "adns": per, "total": total}


def _nan_min(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.nanmin(x)) if x.size and np.isfinite(x).any() else math.nan


def _nan_max(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.nanmax(x)) if x.size and np.isfinite(x).any() else math.nan


def _nan_mean(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.nanmean(x)) if x.size and np.isfinite(x).any() else math.nan


def kpi_deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """B - A for every KPI, total and per ADN present in both."""

    def diff(x: dict, y: dict) -> dict:
        return {k: y[k] - x[k] for k in x if k in y}

    return {"total": diff(a["total"], b["total"]),
            "adns": {name: diff(a["adns"][name], b["adns"][name]) for name in a["adns"] if name in b["adns"]}}


# --- tables -----------------------------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return "0" if abs(value) < 1e-6 else f"{value:.4g}"  # solver noise (1e-8 MW) is not a result


def kpi_table(kpis: dict[str, Any], title: str) -> Table:
    """Every KPI (JSON key) x ADNs and total in one table: wide with many ADNs; ``kpi_tables`` fits a terminal."""
    names = list(kpis["adns"])
    table = Table(title=title)
    table.add_column("KPI", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right", style="bold")
    for key, value in kpis["total"].items():
        table.add_row(key, *(_fmt(kpis["adns"][n].get(key, math.nan)) for n in names), _fmt(value))
    return table


def _cell(value: float) -> str:
    """Compact number for the KPI tables: interior-point noise (< 1e-5) is 0, 4 significant digits, no exponent
    for large values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if abs(value) < 1e-5:
        return "0"
    return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


# short row labels of the per-ADN KPIs (JSON keys in ``--json``), so that 5 ADNs + total fit 80 columns
SHORT_LABELS = {
    "tn_import_mwh": "import MWh", "tn_export_mwh": "export MWh", "pv_energy_mwh": "PV MWh",
    "demand_mwh": "demand MWh", "bess_throughput_mwh": "BESS MWh", "curtailment_mwh": "curtailed MWh",
    "p2p_intra_mwh": "P2P intra MWh", "p2p_inter_mwh": "P2P inter MWh", "bess_equivalent_cycles": "BESS cycles",
    "self_consumption": "self-consump.", "self_sufficiency": "self-suffic.", "v_min_pu": "V min p.u.",
    "v_max_pu": "V max p.u.", "line_loading_max_pct": "line load max %",
}


def kpi_tables(kpis: dict[str, Any], title: str, width: int = 80) -> list[Table]:
    """The KPIs as tables no wider than ``width``: per-ADN KPIs (short labels) x ADNs + total, split into several
    tables by ADN columns when they do not fit, then one table of the run-level values (costs, solve, model)."""
    names = list(kpis["adns"])
    per_adn = [k for k in kpis["total"] if names and all(k in kpis["adns"][n] for n in names)]
    columns = [*names, "total"]

    def table(cols: list[str], part: str) -> Table:
        t = Table(title=title + part)
        t.add_column("KPI", no_wrap=True)
        for col in cols:
            t.add_column(col, justify="right", no_wrap=True, style="bold" if col == "total" else None)
        for key in per_adn:
            t.add_row(SHORT_LABELS.get(key, key), *(_cell(kpis["total"][key] if col == "total"
                                                          else kpis["adns"][col][key]) for col in cols))
        return t

    measure = Console(width=10_000)
    groups: list[list[str]] = [[]]
    for col in columns:
        if groups[-1] and measure.measure(table([*groups[-1], col], "")).maximum > width:
            groups.append([])
        groups[-1].append(col)
    tables = [table(cols, "" if len(groups) == 1 else f" ({k + 1}/{len(groups)})") for k, cols in enumerate(groups)]
    run_level = Table(title="run totals", show_header=False)
    run_level.add_column("KPI", no_wrap=True)
    run_level.add_column("value", justify="right", no_wrap=True)
    for key, value in kpis["total"].items():
        if key not in per_adn:
            run_level.add_row(key, _cell(value))
    return [*tables, run_level]


def compare_table(a: dict[str, Any], b: dict[str, Any], label_a: str, label_b: str) -> Table:
    table = Table(title=f"{label_a} vs {label_b} (totals)")
    for col in ("KPI", label_a, label_b, "B - A", "change"):
        table.add_column(col, justify="left" if col == "KPI" else "right", no_wrap=col == "KPI")
    for key, va in a["total"].items():
        vb = b["total"].get(key, math.nan)
        delta = vb - va
        rel = f"{delta / abs(va):+.1%}" if math.isfinite(delta) and abs(va) > 1e-6 else "-"
        table.add_row(key, _fmt(va), _fmt(vb), _fmt(delta), rel)
    return table


# --- plots ------------------------------------------------------------------------------------------------------
def legend_outside(ax, **kwargs) -> None:
    """The legend right of the axes, so it never covers a curve, a tick label or a title (use with a figure made
    with ``layout="constrained"``, which makes room for it)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def write_plots(runs: list[Run], directory: Path) -> list[Path]:
    """PNG plots, runs overlaid (solid, dashed, ...); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    styles = ["-", "--", ":", "-."]
    written = []

    def figure(name: str, title: str, ylabel: str, draw, xlabel: str = "hour") -> None:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        for k, run in enumerate(runs):
            draw(ax, run, styles[k % len(styles)], f" [{run.label}]" if len(runs) > 1 else "")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        legend_outside(ax, fontsize=7)
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def colours(k: int):
        return plt.cm.tab10(k % 10)

    figure("pcc_exchange", "PCC exchange per ADN (> 0: import from the TN)", "MW",
           lambda ax, r, ls, tag: [ax.plot(r.hours, a.pcc_mw, ls, color=colours(i), label=a.name + tag)
                                   for i, a in enumerate(r.adns)])
    figure("bess_soc", "BESS state of charge per ADN (sum over units)", "MWh",
           lambda ax, r, ls, tag: [ax.plot(r.hours, np.nansum(a.soc_mwh, axis=1), ls, color=colours(i),
                                           label=a.name + tag) for i, a in enumerate(r.adns)])

    def pv(ax, r, ls, tag):
        used = np.nansum([a.pv_used_mw for a in r.adns], axis=0)
        avail = np.nansum([a.pv_available_mw for a in r.adns], axis=0)
        ax.plot(r.hours, used, ls, color="tab:orange", label="PV used" + tag)
        ax.plot(r.hours, avail - used, ls, color="tab:red", label="PV curtailed" + tag)

    figure("pv", "PV used and curtailed (all ADNs)", "MW", pv)
    figure("lmp", "LMP at the PCC buses", "$/MWh",
           lambda ax, r, ls, tag: [ax.plot(r.hours, r.lmp[b], ls, color=colours(i), label=f"bus {b}{tag}")
                                   for i, b in enumerate(sorted({a.tn_bus for a in r.adns})) if b in r.lmp])

    def voltage(ax, r, ls, tag):
        for i, a in enumerate(r.adns):
            ax.plot(r.hours, a.v_min_pu, ls, color=colours(i), label=f"{a.name} min/max{tag}")
            ax.plot(r.hours, a.v_max_pu, ls, color=colours(i))

    figure("voltage", "ADN voltage envelope (AC power flow for runs, optimiser for plans)", "p.u.", voltage,
           xlabel="hour    (source: " + "; ".join(sorted({x.source for x in runs})) + ")")
    if any(r.solve_time_s.size > 1 for r in runs):
        figure("solve_time", "Solve time per step", "s",
               lambda ax, r, ls, tag: ax.plot(r.hours[:r.solve_time_s.size], r.solve_time_s, ls + "o", ms=3,
                                              label="solve" + tag))
    return written


# --- commands ---------------------------------------------------------------------------------------------------
def add_report_parsers(sub: Any) -> None:
    r = sub.add_parser("report", help="KPI table (and JSON / PNG plots) of a results file from 'solve' or 'run'")
    r.add_argument("results", type=Path, help="JSON from 'tsodso solve' or HDF5 from 'tsodso run'")
    r.add_argument("--json", type=Path, metavar="FILE", help="write the KPIs as JSON")
    r.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots into DIR (replaces its PNGs of the "
                   "same names)")
    add_overwrite_argument(r)
    r.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="two results files side by side: KPI deltas and overlaid plots")
    c.add_argument("a", type=Path, help="first results file (JSON or HDF5)")
    c.add_argument("b", type=Path, help="second results file")
    c.add_argument("--json", type=Path, metavar="FILE", help="write both KPI sets and the deltas B - A as JSON")
    c.add_argument("--plots", type=Path, metavar="DIR", help="write overlaid PNG plots into DIR (replaces its "
                   "PNGs of the same names)")
    add_overwrite_argument(c)
    c.set_defaults(func=cmd_compare)


def _check_outputs(args: argparse.Namespace) -> None:
    """Before any file is read: ``--json`` must be new (or ``--overwrite``), ``--plots`` a writable folder."""
    if args.json:
        check_output_file(args.json, args.overwrite, "--json")
    if args.plots:
        if args.plots.exists() and not args.plots.is_dir():
            raise OutputPathError(f"--plots {args.plots}: is a file; allowed: a folder (created when missing)")
        check_output_folder(args.plots, "--plots")


def cmd_report(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if args.results.is_dir():  # a folder of 'tsodso sweep': its summary.csv, KPIs against the swept parameters
        from scenarios.sweep_report import report_sweep

        return report_sweep(args.results, args.plots)
    run = load_run(args.results)
    kpis = run_kpis(run)
    out = Console()
    for table in kpi_tables(kpis, f"{run.label}: {run.scheme}, {run.source}, {len(run.hours)} periods",
                            width=out.width):
        out.print(table)
    if "tso_led" in run.extra:
        sim = run.extra["tso_led"]["stage1"]["simultaneity"]
        out.print(f"TSO-led stage 1 (relaxed): BESS ch+dis at once {sim['bess_charge_discharge_mwh']:.4g} MWh, "
                  f"prosumer buy+sell {sim['prosumer_buy_sell_mwh']:.4g} MWh, PCC import+export "
                  f"{sim['pcc_import_export_mwh']:.4g} MWh; cost of restoring binaries "
                  f"{run.extra['tso_led']['binary_restoration_cost']:.4g} $")
    if args.json:
        write_json_atomic(args.json, kpis | {k: v for k, v in run.extra.items()})
    if args.plots:
        for path in write_plots([run], args.plots):
            out.print(f"plot: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    _check_outputs(args)
    a, b = load_run(args.a), load_run(args.b)
    if a.label == b.label:
        a.label, b.label = f"A:{a.label}", f"B:{b.label}"
    ka, kb = run_kpis(a), run_kpis(b)
    Console().print(compare_table(ka, kb, a.label, b.label))
    if args.json:
        write_json_atomic(args.json, {"a": ka, "b": kb, "delta_b_minus_a": kpi_deltas(ka, kb)})
    if args.plots:
        for path in write_plots([a, b], args.plots):
            Console().print(f"plot: {path}")
    return 0
