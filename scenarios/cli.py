"""``tsodso``: the command line. Each sub-command is a thin layer over the library.

Exit codes: 0 done, 1 the solve or run found no solution, 2 a user error (one ``error:`` line, no traceback unless
``--debug``), 130 interrupted (Ctrl-C). Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import gc
import sys
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coordinator.solvers.base import (
    FEASIBLE,
    OPTIMAL,
    SolveOptions,
    SolverUnavailable,
)
from scenarios.cli_common import (
    DEFAULT_SCENARIO,
    MAX_PERIODS,
    SCHEMES,
    UsageError,
    _non_negative_float,
    _positive,
    add_overwrite_argument,
    add_solver_arguments,
    check_combination,
    console,
    formulation_from,
)
from scenarios.output_files import OutputPathError, check_output_file, failed_path, write_json_atomic


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its default prints the whole usage first); sub-commands inherit it."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tsodso", description=(
        "DSO-led TSO-DSO coordination: solve the bilevel MISOCP once (solve) or run the mosaik co-simulation (run)."))
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="one optimisation over a horizon, no co-simulation; prints a summary, writes JSON")
    s.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                   help="scenario YAML file or name of a shipped scenario (default: %(default)s)")
    s.add_argument("--periods", type=_positive(int, MAX_PERIODS, " (one profile year of 15-min periods)"),
                   help="horizon length in steps (default: the scenario's); it must end within the profile year")
    s.add_argument("--start-hour", type=_non_negative_float, help="first hour of the horizon (default: scenario's)")
    s.add_argument("--step", choices=["1h", "15min"], help="time step (default: the scenario's)")
    s.add_argument("--scheme", default="dso-led", choices=SCHEMES,
                   help="coordination scheme: the DSO-led bilevel MISOCP or the two-stage TSO-led baseline "
                        "(default: %(default)s)")
    s.add_argument("--price-mode", choices=["lmp", "tariff"], help="energy price at the PCC (default: scenario's)")
    s.add_argument("--output", type=Path, default=Path("result.json"),
                   help="JSON result file (default: %(default)s); a solve without a solution writes "
                        "<name>.failed.json instead and leaves this file as it was")
    add_overwrite_argument(s)
    s.add_argument("--no-ac-check", action="store_true", help="skip the pandapower AC check of every ADN and period")
    add_solver_arguments(s)
    s.set_defaults(func=cmd_solve)

    from scenarios.run_cli import add_run_parser  # the co-simulation command lives in its own module

    add_run_parser(sub)
    from scenarios.report import add_report_parsers  # report / compare of results files

    add_report_parsers(sub)
    from scenarios.study import add_study_parser  # both schemes over many days

    add_study_parser(sub)
    from scenarios.sweep import add_sweep_parser  # a grid of runs on dask.distributed

    add_sweep_parser(sub)
    for command in sub.choices.values():  # ``tsodso solve ... --debug`` as well as ``tsodso --debug solve ...``
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of user errors too")
    return parser


def load_case(args: argparse.Namespace):
    from scenarios.config import ScenarioError, build_case, load_scenario

    try:
        cfg = load_scenario(args.scenario)
        if args.price_mode:
            cfg = _with(cfg, price_mode=args.price_mode)
        step_minutes = {"1h": 60, "15min": 15}[args.step] if args.step else None
        return cfg, build_case(cfg, periods=args.periods, start_hour=args.start_hour, step_minutes=step_minutes)
    except (ScenarioError, FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from exc


def _with(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def cmd_solve(args: argparse.Namespace) -> int:
    from coordinator.session import PlanningSession

    check_combination(args)  # cheap checks first: a bad combination or --output costs nothing
    check_output_file(args.output, args.overwrite)
    _, case = load_case(args)
    options = SolveOptions(solver=args.solver, time_limit=args.time_limit, mip_gap=args.mip_gap)
    console.print(f"[bold]tsodso solve[/]: {len(case.adns)} ADNs x {case.periods} periods of {case.step_hours} h, "
                  f"scheme {args.scheme}, solver {args.solver}, price mode {case.price_mode}")
    ac_periods = [] if args.no_ac_check else None
    with console.status("solving..."):
        if args.scheme == "tso-led":
            from coordinator.tso_led import solve_tso_led

            result = solve_tso_led(case, options, ac_periods=ac_periods)
        else:
            result = PlanningSession(case, formulation_from(args), options).solve(case, ac_periods=ac_periods)
    print_summary(result)
    if result["status"] in (OPTIMAL, FEASIBLE):
        write_json_atomic(args.output, result)
        console.print(f"result written to [bold]{args.output}[/]")
        return 0
    failed = failed_path(args.output)
    write_json_atomic(failed, result)
    kept = "left unchanged" if args.output.exists() else "not written"
    print(f"no solution: status {result['status']}; {args.output} {kept}; details in {failed}", file=sys.stderr)
    return 1


def print_summary(result: dict) -> None:
    table = Table(title=f"{result['scheme']} — {result['status']}", show_header=False)
    gap = result.get("mip_gap")
    size = result["model"]
    rows = [("objective ($)", _fmt(result.get("objective"))), ("gap", _fmt(gap, ".2e")),
            ("solver", result["solver"]), ("build / solve time (s)",
                                            f"{result['build_time_s']:.2f} / {result['solve_time_s']:.2f}"),
            ("model", f"{size['variables']} vars, {size['binaries']} binaries, {size['constraints']} cons, "
                      f"{size['cones']} cones")]
    form = result.get("formulation") or {}
    if form:
        rows.append(("follower per period", f"{len(form['affine_periods'])} affine, {len(form['region_periods'])} "
                     f"region disjunction, {len(form['kkt_periods'])} KKT; "
                     + ("exact" if form["exact"] else "NOT exact: " + form["note"])))
    if result.get("message"):
        rows.append(("note", result["message"]))
    for key, value in result.get("kpis", {}).items():
        rows.append((key, _fmt(value)))
    for key, value in result.get("checks", {}).items():
        rows.append((f"check: {key}", _fmt(value, ".2e")))
    tso = result.get("tso_led")
    if tso:
        sim = tso["stage1"]["simultaneity"]
        rows += [("stage 1 (relaxed): BESS ch+dis at once (MWh)", _fmt(sim["bess_charge_discharge_mwh"])),
                 ("stage 1 (relaxed): prosumer buy+sell at once (MWh)", _fmt(sim["prosumer_buy_sell_mwh"])),
                 ("stage 1 (relaxed): PCC import+export at once (MWh)", _fmt(sim["pcc_import_export_mwh"])),
                 ("cost of restoring binaries ($)", _fmt(tso["binary_restoration_cost"])),
                 ("stage 2 deviation from schedule (MWh)", _fmt(tso["stage2"]["deviation_mwh"]))]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _fmt(value, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


# user mistakes: one line, exit code 2 (ScenarioError and ResultsFileError are ValueErrors with the field named)
def _user_errors() -> tuple[type[BaseException], ...]:
    from scenarios.config import ScenarioError
    from scenarios.results_io import ResultsFileError

    return UsageError, SolverUnavailable, OutputPathError, ScenarioError, ResultsFileError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        # the modules imported so far (pandas, pandapower, Pyomo, SciPy: ~10^6 objects) live as long as the process;
        # frozen, the garbage collector stops walking them on every pass (~0.13 s of a 1.4 s default solve)
        gc.freeze()
        return args.func(args)
    except _user_errors() as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
