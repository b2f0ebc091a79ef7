"""``tsodso report DIR`` on a sweep folder: the summary as a table and every KPI plotted against the swept parameters.

Reads ``DIR/summary.csv`` and ``DIR/sweep.json`` (the swept parameters), both written by ``tsodso sweep``. One PNG
per numeric KPI, one panel per swept parameter (``scheme`` apart): the successful runs as points and their mean over
the other parameters as a line, one colour per scheme when ``scheme`` was swept.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from scenarios.sweep import FIXED_COLUMNS, OK_STATUSES, RUN_COLUMNS

TABLE_KPIS = ("tn_import_mwh", "tn_export_mwh", "self_consumption", "dso_cost")  # shown in the table


def read_sweep(directory: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The swept parameters and the summary rows (numbers as floats where they parse)."""
    from scenarios.cli_common import UsageError

    if not (directory / "summary.csv").is_file():
        raise UsageError(f"{directory}: is a directory, but not a sweep folder (no summary.csv from 'tsodso sweep'); "
                         "allowed: a JSON or HDF5 results file, or a sweep folder")
    with (directory / "summary.csv").open(newline="") as f:
        rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
    meta = directory / "sweep.json"
    if meta.is_file():
        params = list(json.loads(meta.read_text())["parameters"])
    elif rows:  # the columns between run_id and status
        cols = list(rows[0])
        params = cols[len(FIXED_COLUMNS):cols.index("status")] if "status" in cols else []
    else:
        params = []
    if not rows:
        raise UsageError(f"{directory / 'summary.csv'}: no runs recorded yet")
    return params, rows


def _number(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def kpi_columns(params: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """Numeric columns that are neither parameters nor run bookkeeping (times are kept: they are results too)."""
    skip = set(params) | set(FIXED_COLUMNS) | {c for c in RUN_COLUMNS if not c.endswith("_s")}
    cols = [c for c in rows[0] if c not in skip]
    ok = [r for r in rows if r.get("status") in OK_STATUSES]
    return [c for c in cols if any(isinstance(r.get(c), float) and math.isfinite(r[c]) for r in ok)]


def summary_table(params: list[str], rows: list[dict[str, Any]]) -> Table:
    kpis = [k for k in TABLE_KPIS if k in rows[0]]
    table = Table(title=f"sweep: {len(rows)} runs, "
                        f"{sum(r.get('status') in OK_STATUSES for r in rows)} ok")
    for col in ("run", *params, "status", *kpis, "wall (s)"):
        table.add_column(col, justify="left" if col in ("run", "status") else "right")
    for r in rows:
        status = str(r.get("status"))
        if status not in OK_STATUSES and r.get("error"):
            status += f": {str(r['error'])[:60]}"
        table.add_row(str(int(r["index"])), *(_fmt(r.get(p)) for p in params), status,
                      *(_fmt(r.get(k)) for k in kpis), _fmt(r.get("wall_time_s")))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    return "-" if value in (None, "") else str(value)


def write_sweep_plots(params: list[str], rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    """One PNG per KPI against each swept parameter; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") in OK_STATUSES]
    axes_params = [p for p in params if p != "scheme"] or (["scheme"] if "scheme" in params else [])
    if not ok or not axes_params:
        return []
    schemes = sorted({str(r.get("scheme")) for r in ok}) if "scheme" in params else [None]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kpi in kpi_columns(params, rows):
        fig, axes = plt.subplots(1, len(axes_params), figsize=(max(6.0, 4.5 * len(axes_params)), 3.8), squeeze=False)
        for ax, param in zip(axes[0], axes_params, strict=True):
            values = _ordered({r.get(param) for r in ok})
            pos = {v: (v if isinstance(v, float) else k) for k, v in enumerate(values)}
            for c, scheme in enumerate(schemes):
                mine = [r for r in ok if scheme is None or str(r.get("scheme")) == scheme]
                xs = [pos[r.get(param)] for r in mine]
                ys = [r.get(kpi) if isinstance(r.get(kpi), float) else math.nan for r in mine]
                colour = plt.cm.tab10(c % 10)
                ax.plot(xs, ys, "o", color=colour, alpha=0.35, ms=4)
                means = [_mean([y for x, y in zip(xs, ys, strict=True) if x == pos[v]]) for v in values]
                ax.plot([pos[v] for v in values], means, "-", color=colour, label=scheme or "mean")
            if not all(isinstance(v, float) for v in values):
                ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=30, fontsize=8)
            ax.set_xlabel(param)
            ax.set_ylabel(kpi)
            ax.grid(alpha=0.3)
            if schemes != [None]:
                ax.legend(fontsize=7)
        fig.suptitle(f"{kpi}: {len(ok)} successful runs (points), mean over the other parameters (line)",
                     fontsize=9)
        fig.tight_layout()
        path = directory / f"sweep_{_safe(kpi)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _ordered(values: set) -> list:
    nums = sorted(v for v in values if isinstance(v, float))
    return nums + sorted((v for v in values if not isinstance(v, float)), key=str)


def _mean(ys: list[float]) -> float:
    finite = [y for y in ys if math.isfinite(y)]
    return sum(finite) / len(finite) if finite else math.nan


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name)


def report_sweep(directory: Path, plots: Path | None) -> int:
    """``tsodso report DIR [--plots DIR2]`` on a sweep folder."""
    params, rows = read_sweep(directory)
    out = Console()
    out.print(summary_table(params, rows))
    if plots:
        for path in write_sweep_plots(params, rows, plots):
            out.print(f"plot: {path}")
    return 0
