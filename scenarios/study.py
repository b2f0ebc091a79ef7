"""``tsodso study``: both coordination schemes over many days of the profile year, with paired statistics.

One day-ahead optimisation (24 h from midnight; ``--cosim``: one co-simulation) per day and scheme. A single day
says little, because the schemes' differences depend on the data (docs/case-study.md); over many days the paired
difference DSO-led minus TSO-led of each KPI gets a mean, a 95 % confidence interval (paired t) and a count of the
days on which it is positive. A day that fails is recorded with its status and left out of the pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coordinator.solvers.base import SolveOptions

DAYS_IN_YEAR = 366  # the simbench profile year 2016
PROFILE_YEAR = 2016
METHOD = "paired t, 95 %"
SUCCESS = ("optimal", "feasible", "completed")  # a solution (or a finished co-simulation) to take KPIs from
# A difference counts as positive (negative) only beyond this: interior-point solves leave ~1e-6 of noise (e.g.
# -1.5e-6 MWh of "curtailment"), which is not a result.
ABS_TOL = 1e-5
REL_TOL = 1e-6
# (JSON key, label, unit) of the KPIs compared; the first eleven are the result's ``kpis``
KPIS: tuple[tuple[str, str, str], ...] = (
    ("tn_import_mwh", "TN import", "MWh"), ("tn_export_mwh", "TN export", "MWh"),
    ("self_consumption", "self-consumption", ""), ("self_sufficiency", "self-sufficiency", ""),
    ("bess_throughput_mwh", "BESS throughput", "MWh"), ("bess_equivalent_cycles", "BESS cycles", ""),
    ("p2p_intra_mwh", "intra-ADN P2P", "MWh"), ("p2p_inter_mwh", "inter-ADN P2P", "MWh"),
    ("curtailment_mwh", "PV curtailment", "MWh"), ("dso_cost", "DSO cost", "$"),
    ("tso_generation_cost", "TSO gen. cost", "$"), ("tn_line_loading_max_pct", "max TN line load", "%"),
)


# --- days -------------------------------------------------------------------------------------------------------
def study_days(spec: str | None = None, n_days_in_year: int = DAYS_IN_YEAR) -> list[int]:
    """Days of year: ``None`` one per week (1, 8, ..., 358); ``"15,196"`` those days; ``"8"`` eight evenly spread
    (the middle of eight equal parts of the year). A single day is ``"196,"``. Raises ``ValueError``."""
    n = n_days_in_year
    if spec is None:
        return list(range(1, n + 1, 7))[:52]
    text = spec.strip()
    if not text:
        raise ValueError("--days: empty; give a count (8) or days of year (15,196)")
    items = [part.strip() for part in text.split(",")] if "," in text else [text]
    numbers = []
    for item in (i for i in items if i):
        try:
            numbers.append(int(item))
        except ValueError:
            raise ValueError(f"--days: {item!r} is not an integer; give a count (8) or days of year (15,196)") from None
    for value in numbers:
        if not 1 <= value <= n:
            raise ValueError(f"--days: {value} is outside 1..{n}")
    if "," in text:
        if not numbers:
            raise ValueError("--days: no day given")
        return sorted(set(numbers))
    count = numbers[0]
    return [1 + int((k + 0.5) * n / count) for k in range(count)]


def day_date(day: int) -> str:
    return (_dt.date(PROFILE_YEAR, 1, 1) + _dt.timedelta(days=day - 1)).isoformat()


# --- one day ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyOptions:
    """``periods``: None is day-ahead 24 h from midnight; ``cosim``: run the co-simulation, HDF5 files in
    ``runs_dir``."""

    solve: SolveOptions
    formulation: Any = None  # coordinator.dso_led.Formulation; None: PlanningSession's default (the fast one)
    periods: int | None = None
    cosim: bool = False
    runs_dir: Path = Path("results/study")


def horizon(config: Any, options: StudyOptions) -> int:
    return options.periods if options.periods is not None else round(24 / config.step_hours)


def day_config(config: Any, day: int) -> Any:
    return dataclasses.replace(config, day_of_year=day, start_hour=0.0)


def solve_day(config: Any, day: int, scheme: str, options: StudyOptions, sessions: dict | None = None) -> dict:
    """``{status, message, solve_time_s, wall_s, kpis}`` of one scheme on one day; never raises for a failed day.

    ``sessions`` keeps the DSO-led :class:`PlanningSession` between days (same structure, new data each day)."""
    start = time.perf_counter()
    try:
        row = _cosim_day(config, day, scheme, options) if options.cosim else _plan_day(config, day, scheme, options,
                                                                                       sessions)
    except Exception as exc:  # noqa: BLE001 - a failing day is a row of the study, the study goes on
        if sessions is not None:
            sessions.pop(scheme, None)  # a model left half-updated is not re-used
        row = {"status": "error", "message": f"{type(exc).__name__}: {exc}", "solve_time_s": math.nan, "kpis": {}}
    row["wall_s"] = time.perf_counter() - start
    return row


def _plan_day(config: Any, day: int, scheme: str, options: StudyOptions, sessions: dict | None) -> dict:
    from coordinator.session import PlanningSession
    from coordinator.tso_led import solve_tso_led
    from scenarios.config import build_case

    case = build_case(day_config(config, day), periods=horizon(config, options), start_hour=0.0)
    if scheme == "tso-led":
        result = solve_tso_led(case, options.solve, ac_periods=[])
    else:
        sessions = {} if sessions is None else sessions
        if scheme not in sessions:
            sessions[scheme] = PlanningSession(case, options.formulation, options.solve)
        result = sessions[scheme].solve(case, ac_periods=[])
    return result_row(result)


def result_row(result: dict) -> dict:
    """The study's view of a ``tsodso solve`` result dict."""
    kpis = {}
    if "kpis" in result:
        kpis = {key: result["kpis"].get(key, math.nan) for key, _, _ in KPIS if key in result["kpis"]}
        kpis["tn_line_loading_max_pct"] = result["tn"].get("line_loading_max_pct", math.nan)
    return {"status": result["status"], "message": result.get("message") or "",
            "solve_time_s": result.get("solve_time_s", math.nan), "kpis": kpis}


def _cosim_day(config: Any, day: int, scheme: str, options: StudyOptions) -> dict:
    import numpy as np

    from scenarios.report import run_kpis
    from scenarios.results_io import load_run
    from scenarios.runner import RunSettings, resolve, run_scenario
    from simulators.recorder import read_run

    cfg = day_config(config, day)
    path = options.runs_dir / f"day{day:03d}-{scheme}.h5"
    settings = RunSettings(hours=horizon(config, options) * config.step_hours, output=path,
                           solver=options.solve.solver, time_limit=options.solve.time_limit,
                           mip_gap=options.solve.mip_gap, formulation=options.formulation)
    if scheme == "tso-led":
        from coordinator.tso_led import TsoLedPlanner

        settings.planner = TsoLedPlanner(resolve(cfg, settings).solve)
    result = run_scenario(cfg, settings)
    total = run_kpis(load_run(path))["total"]
    kpis = {key: total.get(key, math.nan) for key, _, _ in KPIS}
    tn_loading = read_run(str(path)).get("/TNGrid/tn/line_loading_max_pct")  # the AC power flow
    kpis["tn_line_loading_max_pct"] = (float(np.nanmax(tn_loading)) if tn_loading is not None
                                       and np.isfinite(tn_loading).any() else math.nan)
    statuses = result.summary["statuses"]
    return {"status": "completed", "message": f"{path}: step statuses {statuses}, fallback steps "
            f"{result.summary['fallback_steps']}", "solve_time_s": total.get("solve_time_mean_s", math.nan)
            * result.summary["steps"], "kpis": kpis}


def run_study(config: Any, days: Sequence[int], schemes: Sequence[str], options: StudyOptions,
              on_result: Callable[[int, str, dict], None] | None = None) -> list[dict]:
    """Every day x scheme; one entry per day ``{day, date, <scheme>: row}``. ``on_result`` sees each row."""
    sessions: dict = {}
    out = []
    for day in days:
        entry: dict[str, Any] = {"day": day, "date": day_date(day)}
        for scheme in schemes:
            entry[scheme] = solve_day(config, day, scheme, options, sessions)
            if on_result is not None:
                on_result(day, scheme, entry[scheme])
        out.append(entry)
    return out


_WORKER: tuple[str, Any, dict] | None = None  # (scenario, config, sessions) of a --jobs worker process


def _worker_day(scenario: str, day: int, schemes: tuple[str, ...], options: StudyOptions) -> dict:
    """One day in a worker process; the worker keeps its config and DSO-led session for its next days."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != scenario:
        from scenarios.config import load_scenario

        _WORKER = (scenario, load_scenario(scenario), {})
        if options.cosim:  # mosaik's INFO chatter stays hidden in the workers too
            from loguru import logger

            logger.remove()
            logger.add(sys.stderr, level="WARNING")
    _, config, sessions = _WORKER
    return {"day": day, "date": day_date(day), **{s: solve_day(config, day, s, options, sessions) for s in schemes}}


def run_study_parallel(scenario: str, days: Sequence[int], schemes: Sequence[str], options: StudyOptions, jobs: int,
                       on_result: Callable[[int, str, dict], None] | None = None) -> list[dict]:
    """``run_study`` with days spread over ``jobs`` processes (the scenario is re-loaded by name or path in each,
    a config is not picklable). A worker that dies makes its day an error row."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[int, dict] = {}
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_worker_day, scenario, day, tuple(schemes), options): day for day in days}
        for future in as_completed(futures):
            day = futures[future]
            try:
                entry = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool: the day is a row, the study goes on
                row = {"status": "error", "message": f"worker process: {type(exc).__name__}: {exc}",
                       "solve_time_s": math.nan, "wall_s": math.nan, "kpis": {}}
                entry = {"day": day, "date": day_date(day), **{s: dict(row) for s in schemes}}
            done[day] = entry
            for scheme in schemes:
                if on_result is not None:
                    on_result(day, scheme, entry[scheme])
    return [done[day] for day in days]


# --- statistics ---------------------------------------------------------------------------------------------------
def succeeded(row: dict | None) -> bool:
    return row is not None and row.get("status") in SUCCESS


def tolerance(a: float, b: float) -> float:
    """Smallest difference that counts as positive or negative (above solver noise)."""
    return max(ABS_TOL, REL_TOL * max(abs(a), abs(b)))


def paired_findings(days: Sequence[dict], schemes: Sequence[str] = ("dso-led", "tso-led")) -> list[dict]:
    """Per KPI, d_i = KPI(first scheme, day i) - KPI(second scheme, day i) over the days where both schemes succeeded
    (and the KPI is finite): mean, sample standard deviation, 95 % CI ``mean +- t(0.975, n-1) sd / sqrt(n)``
    (NaN for n < 2), and the days with d_i above / below ``tolerance``."""
    from scipy.stats import t as student_t

    a, b = schemes
    out = []
    for key, label, unit in KPIS:
        pairs = [(row[a]["kpis"][key], row[b]["kpis"][key]) for row in days
                 if succeeded(row.get(a)) and succeeded(row.get(b))
                 and _finite(row[a]["kpis"].get(key)) and _finite(row[b]["kpis"].get(key))]
        diffs = [x - y for x, y in pairs]
        n = len(diffs)
        mean = sum(diffs) / n if n else math.nan
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n >= 2 else math.nan
        half = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n >= 2 else math.nan
        out.append({
            "kpi": key, "label": label, "unit": unit, "mean_diff": mean, "ci_low": mean - half, "ci_high": mean + half,
            "sd_diff": sd, "n_days": n,
            "days_positive": sum(1 for (x, y), d in zip(pairs, diffs, strict=True) if d > tolerance(x, y)),
            "days_negative": sum(1 for (x, y), d in zip(pairs, diffs, strict=True) if d < -tolerance(x, y)),
            f"mean_{_ident(a)}": sum(x for x, _ in pairs) / n if n else math.nan,
            f"mean_{_ident(b)}": sum(y for _, y in pairs) / n if n else math.nan,
        })
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _ident(scheme: str) -> str:
    return scheme.replace("-", "_")


# --- output -------------------------------------------------------------------------------------------------------
def _num(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return "0" if abs(value) < ABS_TOL else f"{value:.3g}"


def study_table(findings: Sequence[dict], title: str) -> Table:
    """Findings as a table that fits 80 columns."""
    table = Table(title=title)
    table.add_column("KPI", no_wrap=True)
    for col in ("mean diff", "CI low", "CI high", "n", "d > 0", "d < 0"):
        table.add_column(col, justify="right", no_wrap=True)
    for f in findings:
        unit = f" ({f['unit']})" if f["unit"] else ""
        table.add_row(f["label"] + unit, _num(f["mean_diff"]), _num(f["ci_low"]), _num(f["ci_high"]),
                      str(f["n_days"]), str(f["days_positive"]), str(f["days_negative"]))
    return table


def differences(days: Sequence[dict], key: str, schemes: Sequence[str]) -> tuple[list[int], list[float]]:
    """(days, d_i) of one KPI over the paired days."""
    a, b = schemes
    xs, ys = [], []
    for row in days:
        if succeeded(row.get(a)) and succeeded(row.get(b)):
            x, y = row[a]["kpis"].get(key), row[b]["kpis"].get(key)
            if _finite(x) and _finite(y):
                xs.append(row["day"])
                ys.append(x - y)
    return xs, ys


def study_plots(days: Sequence[dict], findings: Sequence[dict], directory: Path,
                schemes: Sequence[str] = ("dso-led", "tso-led")) -> list[Path]:
    """One PNG per KPI (per-day difference over the day of year, zero line, mean and its CI) and an overview."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios.report import legend_outside

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    what = f"{schemes[0]} - {schemes[1]}"
    for f in findings:
        xs, ys = differences(days, f["kpi"], schemes)
        fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
        _draw_differences(ax, xs, ys, f)
        if math.isfinite(f["ci_low"]):
            ax.axhspan(f["ci_low"], f["ci_high"], color="tab:blue", alpha=0.15, label="95 % CI (paired t)")
        ax.set_title(f"{f['label']}: {what} per day (n = {f['n_days']}, {f['days_positive']} days > 0)")
        ax.set_xlabel("day of year")
        ax.set_ylabel(f"difference ({f['unit']})" if f["unit"] else "difference")
        legend_outside(ax)
        path = directory / f"diff_{f['kpi']}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    cols = 3
    rows = math.ceil(len(findings) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), layout="constrained", squeeze=False)
    for ax, f in zip(axes.flat, findings, strict=False):
        _draw_differences(ax, *differences(days, f["kpi"], schemes), f)
        ax.set_title(f"{f['label']}" + (f" ({f['unit']})" if f["unit"] else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(findings):]:
        ax.set_visible(False)
    fig.suptitle(f"{what} per day of year (dashed: mean)")
    fig.supxlabel("day of year")
    path = directory / "differences.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def _draw_differences(ax: Any, xs: list[int], ys: list[float], finding: dict) -> None:
    from matplotlib.ticker import FormatStrFormatter

    ax.axhline(0.0, color="black", lw=0.8)
    ax.plot(xs, ys, "o-", ms=3, lw=0.8, color="tab:blue", label="difference per day")
    if math.isfinite(finding["mean_diff"]):
        ax.axhline(finding["mean_diff"], color="tab:blue", ls="--", lw=1, label="mean")
    ax.set_xlim(0, DAYS_IN_YEAR + 1)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))  # no offset text ("1e-8") sitting on the title
    ax.grid(alpha=0.3)


# --- command ------------------------------------------------------------------------------------------------------
def add_study_parser(sub: Any) -> None:
    from scenarios.cli_common import DEFAULT_SCENARIO, _positive, add_solver_arguments

    s = sub.add_parser("study", help="both schemes over many days: per-day KPIs and paired differences")
    s.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                   help="scenario YAML file or name of a shipped scenario (default: %(default)s)")
    s.add_argument("--days", metavar="SPEC", help="days of year: a count evenly spread over the year (8), or a "
                   "comma-separated list (15,196; one day: 196,) (default: one per week, 1, 8, ..., 358)")
    s.add_argument("--schemes", default="dso-led,tso-led", metavar="LIST",
                   help="comma-separated schemes (default: %(default)s); differences are first minus second")
    s.add_argument("--periods", type=_positive(int), metavar="N",
                   help="periods per day from midnight (default: 24 h; fewer for quick looks and tests)")
    s.add_argument("--cosim", action="store_true", help="run the co-simulation per day instead of one day-ahead "
                   "optimisation (HDF5 files in --runs)")
    s.add_argument("--runs", type=Path, default=Path("results/study"), metavar="DIR",
                   help="folder of the per-day HDF5 files with --cosim (default: %(default)s)")
    s.add_argument("--json", type=Path, metavar="FILE", help="write findings and per-day rows as JSON")
    s.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots of the per-day differences into DIR")
    s.add_argument("--jobs", type=_positive(int), default=1, metavar="N",
                   help="days solved in N processes at once (default: %(default)s; at most the number of cores)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar; one line per day and scheme")
    add_solver_arguments(s)
    s.set_defaults(func=cmd_study)


def parse_schemes(text: str) -> list[str]:
    from scenarios.cli_common import SCHEMES

    schemes = [x.strip() for x in text.split(",") if x.strip()]
    for scheme in schemes:
        if scheme not in SCHEMES:
            raise ValueError(f"--schemes: {scheme!r} is not a scheme; allowed: {', '.join(SCHEMES)}")
    if not schemes or len(set(schemes)) != len(schemes) or len(schemes) > 2:
        raise ValueError(f"--schemes: {text!r}: give one or two different schemes of {', '.join(SCHEMES)}")
    return schemes


def cmd_study(args: argparse.Namespace) -> int:
    from loguru import logger

    from scenarios.cli_common import UsageError, check_combination, console, formulation_from
    from scenarios.config import ScenarioError, load_scenario
    from scenarios.run_cli import _route_logs

    try:
        days = study_days(args.days)
        schemes = parse_schemes(args.schemes)
        config = load_scenario(args.scenario)
    except (ValueError, FileNotFoundError) as exc:  # ScenarioError is a ValueError
        raise UsageError(str(exc)) from exc
    check_combination(args, schemes=schemes)
    options = StudyOptions(solve=SolveOptions(solver=args.solver, time_limit=args.time_limit, mip_gap=args.mip_gap),
                           formulation=formulation_from(args), periods=args.periods, cosim=args.cosim,
                           runs_dir=args.runs)
    mode = "co-simulation" if args.cosim else "day-ahead optimisation"
    periods = horizon(config, options)
    console.print(f"[bold]tsodso study[/] {config.name}: {len(days)} days x {', '.join(schemes)}, {mode} of "
                  f"{periods} periods, solver {args.solver}, {args.jobs} process(es)")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                        disable=args.no_progress)

    def on_result(day: int, scheme: str, row: dict) -> None:
        info = f"day {day} {scheme}: {row['status']} ({row['wall_s']:.1f} s)"
        progress.advance(task)
        progress.update(task, info=info)
        if args.no_progress:
            console.print(info)

    start = time.perf_counter()
    handler = _route_logs("WARNING") if args.cosim else None  # mosaik's INFO chatter stays hidden, as in ``run``
    try:
        with progress:
            task = progress.add_task("study", total=len(days) * len(schemes), info=f"day {days[0]} ...")
            if args.jobs > 1:
                rows = run_study_parallel(str(args.scenario), days, schemes, options, args.jobs, on_result)
            else:
                rows = run_study(config, days, schemes, options, on_result)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        if handler is not None:
            logger.remove(handler)
            logger.add(sys.stderr)
    wall = time.perf_counter() - start
    findings = paired_findings(rows, schemes) if len(schemes) == 2 else []
    out = Console()
    for row in rows:
        for scheme in schemes:
            if not succeeded(row[scheme]):
                out.print(f"[yellow]day {row['day']} {scheme}:[/] {row[scheme]['status']}: {row[scheme]['message']}")
    if findings:
        out.print(study_table(findings, f"{schemes[0]} - {schemes[1]}, {findings[0]['n_days']} paired days "
                              f"({METHOD} CI)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "scenario": config.name, "schemes": schemes, "mode": mode, "periods": periods,
            "solver": options.solve.solver, "time_limit": options.solve.time_limit, "mip_gap": options.solve.mip_gap,
            "method": METHOD, "tolerance": {"absolute": ABS_TOL, "relative": REL_TOL}, "wall_s": wall,
            "findings": findings, "days": rows}, indent=1, allow_nan=True))
        out.print(f"study written to {args.json}")
    if args.plots and findings:
        for path in study_plots(rows, findings, args.plots, schemes):
            out.print(f"plot: {path}")
    ok = [row for row in rows if all(succeeded(row[s]) for s in schemes)]
    return 0 if ok else 1
