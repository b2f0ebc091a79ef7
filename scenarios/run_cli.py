"""``tsodso run``: the co-simulation from the command line, with a progress bar and a KPI summary.

Kept out of ``scenarios/cli.py`` (which only registers it) so the run command and the solve command can change
independently.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
from pathlib import Path
from typing import Any

from loguru import logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scenarios.cli_common import (
    DEFAULT_SCENARIO,
    SCHEMES,
    UsageError,
    _non_negative_float,
    _positive,
    add_formulation_arguments,
    check_combination,
    console,
    formulation_from,
)


def add_run_parser(sub: Any) -> None:
    from coordinator.solvers import STRATEGIES

    r = sub.add_parser("run", help="the mosaik co-simulation: agents, coordinator every step, AC power flow, HDF5")
    r.add_argument("scenario", nargs="?", default=None,
                   help=f"scenario YAML file or name of a shipped scenario (default: {DEFAULT_SCENARIO}; with "
                   "--resume: the run's own)")
    r.add_argument("--hours", type=_positive(float), help="simulated hours (default: the scenario's periods)")
    r.add_argument("--days", type=_positive(int), metavar="N",
                   help="N consecutive days from the scenario's day_of_year and start_hour (instead of --hours)")
    r.add_argument("--step", choices=["1h", "15min"], help="time step (default: the scenario's)")
    r.add_argument("--horizon", type=_positive(float), metavar="HOURS",
                   help="receding horizon in hours (default: coordinator.horizon_hours or 24)")
    r.add_argument("--solver", choices=sorted(STRATEGIES), help="solve strategy (default: coordinator.solver, "
                   "else 'fast' when available, else 'scip')")
    r.add_argument("--time-limit", type=_positive(float), metavar="S",
                   help="seconds per step's solve (default: coordinator.time_limit or 120); the incumbent is kept")
    r.add_argument("--mip-gap", type=_non_negative_float, metavar="G",
                   help="relative optimality gap (default: coordinator.mip_gap or 1e-3)")
    add_formulation_arguments(r)
    r.add_argument("--scheme", choices=SCHEMES,
                   help="coordination scheme solved every step (default: dso-led; with --resume: the run's own)")
    r.add_argument("--output", type=Path, help="HDF5 results file (default: output.path or results/<name>.h5); "
                   "written as <output>.partial and renamed at the successful end")
    r.add_argument("--overwrite", action="store_true", help="replace an existing results file (at the end)")
    r.add_argument("--resume", type=Path, metavar="FILE",
                   help="continue a run that did not end from its last complete step (its .partial file); the "
                   "scenario and settings are the run's own")
    r.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in CI logs)")
    r.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="messages shown while running (default: %(default)s)")
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    handler = _route_logs(args.log_level)
    try:
        return _run(args)
    finally:  # leave loguru as we found it (a default stderr handler) for callers in the same process
        logger.remove(handler)
        logger.add(sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from scenarios.config import ScenarioError, load_scenario
    from scenarios.run_guard import RunStopped
    from scenarios.runner import RunFailed, resolve, run_scenario, start_time

    try:
        resume = None
        if args.resume is not None:
            cfg, settings, resume, scheme = _resume_setup(args)
        else:
            cfg = load_scenario(args.scenario or DEFAULT_SCENARIO)
            settings = _settings(args)
            scheme = args.scheme or "dso-led"
        plan = resolve(cfg, settings)
        if resume is None:  # a resumed run keeps its own (checked) settings
            check_combination(args, solver=plan.solve.solver, schemes=[scheme])
        if scheme == "tso-led":
            from coordinator.tso_led import TsoLedPlanner

            settings.planner = TsoLedPlanner(plan.solve)
    except (ScenarioError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    console.print(f"[bold]tsodso run[/] {cfg.name}: {len(cfg.adns)} ADNs, {plan.steps} steps of "
                  f"{plan.step_minutes} min from {start_time(cfg):%Y-%m-%d %H:%M}, horizon {plan.horizon} periods, "
                  f"scheme {scheme}, solver {plan.solve.solver} (limit {plan.solve.time_limit:g} s/step) "
                  f"-> {plan.output}" + (f" (resuming at step {resume.first_step + 1})" if resume else ""))
    t0 = start_time(cfg)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                        disable=args.no_progress)

    def on_step(k: int, steps: int, stats: Any) -> None:
        now = t0 + _dt.timedelta(minutes=plan.step_minutes * k)
        solve = stats.get("solve_time_s", math.nan)
        info = f"sim {now:%H:%M}  last solve {solve:.2f} s ({stats.get('status')}" + (
            f", fallback {stats['fallback']})" if stats.get("fallback") else ")")
        progress.update(task, completed=k + 1, info=info)
        if args.no_progress:
            console.print(f"step {k + 1}/{steps} {info}")

    with progress:
        task = progress.add_task("co-simulation", total=plan.steps, info="setting up...",
                                 completed=resume.first_step if resume else 0)
        settings.on_step = on_step
        try:
            result = run_scenario(cfg, settings, resume)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from exc
        except RunFailed as exc:
            progress.stop()
            console.print(f"[red]run failed:[/] {exc}")
            return 1
        except RunStopped as exc:
            progress.stop()
            console.print(f"[red]run stopped:[/] {exc.message}")
            return exc.exit_code
    print_run_summary(result)
    steps, fallbacks = result.summary["steps"], result.summary["fallback_steps"]
    if steps and fallbacks == steps:  # finished, but nothing was ever planned: not a success
        console.print(f"[red]run failed:[/] every one of the {steps} steps fell back (no plan was solved; statuses "
                      f"{result.summary['statuses']}); the results are in {result.path}")
        return 1
    return 0


def _settings(args: argparse.Namespace) -> Any:
    from scenarios.runner import RunSettings

    return RunSettings(hours=args.hours, step=args.step, horizon_hours=args.horizon, solver=args.solver,
                       time_limit=args.time_limit, mip_gap=args.mip_gap, output=args.output, days=args.days,
                       overwrite=args.overwrite, formulation=formulation_from(args))


RESUME_FIXED = ("hours", "days", "step", "horizon", "solver", "time_limit", "mip_gap", "output", "scheme",
                "complementarity", "follower", "voltage_cuts")


def _resume_setup(args: argparse.Namespace) -> tuple[Any, Any, Any, str]:
    """Scenario, settings and state of the run to resume; settings that would change the run are refused."""
    from scenarios.config import load_scenario
    from scenarios.resume import read_resume, scenario_of, settings_of

    given = [f"--{a.replace('_', '-')}" for a in RESUME_FIXED if getattr(args, a, None) is not None]
    if given:
        raise UsageError(f"--resume continues a run with its own settings; {', '.join(given)} cannot be given")
    state = read_resume(args.resume)
    cfg = load_scenario(args.scenario) if args.scenario else scenario_of(state)
    return cfg, settings_of(state, overwrite=args.overwrite), state, state.run.get("scheme", "dso-led")


def _route_logs(level: str) -> int:
    """loguru to the rich console (above the progress bar) at ``level``; mosaik's INFO chatter stays hidden."""
    logger.remove()
    return logger.add(lambda m: console.print(m, end="", markup=False, highlight=False), level=level,
                      format="{level: <8} {name}: {message}")


def print_run_summary(result: Any) -> None:
    s, t = result.summary, result.summary["total"]
    timings = result.timings
    table = Table(title=f"tsodso run — {s['steps']} steps", show_header=False)
    rows = [
        ("results", str(result.path)),
        ("TN import / export (MWh, AC)", f"{t.get('import_mwh', 0):.3f} / {t.get('export_mwh', 0):.3f}"),
        ("self-consumption", f"{t.get('self_consumption', 0):.1%}"),
        ("BESS throughput (MWh)", f"{t.get('bess_throughput_mwh', 0):.3f}"),
        ("PV curtailment (MWh)", f"{t.get('curtailment_mwh', 0):.3f}"),
        ("plugin (extra) load (MWh)", f"{t.get('extra_load_mwh', 0):.3f}"),
        ("solve time per step (s)", f"mean {s['solve_time_mean_s']:.2f}, max {s['solve_time_max_s']:.2f}"),
        ("coordinator step (s, mean)", f"{s['step_time_mean_s']:.2f}"),
        ("solve status", ", ".join(f"{k}: {v}" for k, v in s["statuses"].items()) or "-"),
        ("fallback steps", str(s["fallback_steps"])),
        ("BESS setpoints clipped", str(s["bess_clipped_steps"])),
        ("ADN voltage range (p.u., AC)", f"{s['adn_v_min_pu']:.4f} .. {s['adn_v_max_pu']:.4f}"),
        ("TN voltage range (p.u., AC)", f"{s['tn_v_min_pu']:.4f} .. {s['tn_v_max_pu']:.4f}"),
        ("power flows not converged", str(s["pf_not_converged_steps"])),
        ("wall time (s)", f"{timings.get('total_s', math.nan):.1f} (setup {timings.get('setup_s', math.nan):.1f})"),
        ("peak memory (MB)", f"{timings.get('peak_rss_mb', math.nan):.0f}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console(file=sys.stdout).print(table)
    print(f"results: {result.path}")  # one unwrapped line for scripts
