"""Scaling benchmark of the plain DSO-led MISOCP: model size and build/solve time over ADNs x periods.

For every combination of ``--adns`` and ``--periods`` a case is built from the default scenario with N ADNs (the
scenario's first N; beyond its five, its placements are reused cyclically at further case30 load buses that are not
generator buses), the model is built once with :class:`coordinator.session.PlanningSession` and solved once. Each run
executes in its own child process so that a solver crash or hang is recorded as an error row, not the end of the
benchmark. Rows are printed as they finish and the JSON file is rewritten after every row.

Timings per row: ``build_s`` is the Pyomo model build (``PlanningSession``), ``solve_s`` the solve strategy's call
(for SCIP it includes Pyomo's translation to PySCIPOpt), ``total_s = build_s + solve_s``. Building the ``Case``
(``case_s``: profiles, pandapower networks) and collecting the result dict (``collect_s``, AC check skipped) are
stored in the JSON but kept out of ``total_s``.

Usage: ``python benchmarks/scaling.py --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from coordinator.solvers import STRATEGIES

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.cases import scenario_with_adns
    from benchmarks.runs import machine, run_isolated
except ModuleNotFoundError:
    from cases import scenario_with_adns
    from runs import machine, run_isolated

DEFAULT_SCENARIO = "ieee30_5adn_legacy"  # the case docs/performance.md was measured on
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "scaling.json"
COLUMNS = ("adns", "periods", "variables", "binaries", "constraints", "cones", "build_s", "solve_s", "total_s",
           "status", "gap")


# --------------------------------------------------------------------------------------------------------------------
# One run


def run_one(scenario: str, n_adns: int, periods: int, solver: str, time_limit: float, mip_gap: float,
            complementarity: str, scheme: str = "dso-led", follower: str = "kkt",
            share_hosts: bool = False) -> dict[str, Any]:
    """Build and solve one combination; always returns a row (``status='error'`` with the message on failure)."""
    row: dict[str, Any] = {"scheme": scheme, "follower": follower, "adns": n_adns, "periods": periods,
                           "status": "error"}
    wall = time.perf_counter()
    try:
        from coordinator.dso_led import Formulation
        from coordinator.session import PlanningSession
        from coordinator.solvers.base import SolveOptions
        from scenarios.config import build_case

        start = time.perf_counter()
        cfg = scenario_with_adns(scenario, n_adns, share_hosts)
        case = build_case(cfg, periods=periods)
        row["case_s"] = time.perf_counter() - start
        row["tn_buses"] = [a.tn_bus for a in case.adns]
        options = SolveOptions(solver=solver, time_limit=time_limit, mip_gap=mip_gap)
        if scheme == "tso-led":
            row.update(_run_tso_led(case, options))
            row["wall_s"] = time.perf_counter() - wall
            return row
        session = PlanningSession(case, Formulation(complementarity=complementarity, follower=follower), options)
        start = time.perf_counter()
        result = session.solve(case, ac_periods=[])
        call_s = time.perf_counter() - start
        row.update(result["model"])
        row.update(build_s=session.build_time_s, solve_s=result["solve_time_s"],
                   total_s=session.build_time_s + result["solve_time_s"], status=result["status"],
                   termination=result["termination"], gap=result["mip_gap"], objective=result["objective"],
                   bound=result["bound"], message=result["message"],
                   collect_s=call_s - result["solve_time_s"])
    except Exception as exc:  # noqa: BLE001 - a failed run is a row, not the end of the benchmark
        row["message"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=5)
    row["wall_s"] = time.perf_counter() - wall
    return row


def _run_tso_led(case: Any, options: Any) -> dict[str, Any]:
    """Both TSO-led stages; size columns are the larger stage (stage 1: TN + all ADNs relaxed) plus stage 2's."""
    from coordinator.tso_led import solve_tso_led

    start = time.perf_counter()
    result = solve_tso_led(case, options, ac_periods=[])
    total = time.perf_counter() - start
    stage1 = result.get("tso_led", {}).get("stage1", {}).get("model", {})
    row = dict(result["model"])
    row.update({f"stage1_{k}": v for k, v in stage1.items()})
    row.update(build_s=result["build_time_s"], solve_s=result["solve_time_s"], total_s=total,
               status=result["status"], termination=result["termination"], gap=result["mip_gap"],
               objective=result.get("objective"), message=result.get("message", ""))
    return row


# --------------------------------------------------------------------------------------------------------------------
# Output


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key == "build_s":
        return f"{value:.2f}"
    if key in ("solve_s", "total_s"):
        return f"{value:.1f}"
    if key == "gap":
        return "inf" if value == float("inf") else f"{value:.2e}"
    return str(value)


def format_line(row: dict[str, Any] | None, widths: dict[str, int]) -> str:
    """One plain aligned line (the header when ``row`` is None)."""
    cells = [(c if row is None else _cell(row, c)).rjust(widths[c]) for c in COLUMNS]
    return "  ".join(cells)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (error messages as footnote-style lines below it)."""
    head = ["ADNs", "periods", "variables", "binaries", "constraints", "cones", "build (s)", "solve (s)",
            "total (s)", "status", "gap"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h != "status" else ":---" for h in head) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, c) for c in COLUMNS) + " |")
    errors = [r for r in rows if r.get("status") == "error"]
    for r in errors:
        lines.append(f"\n{r['adns']} ADNs x {r['periods']} periods: {r.get('message', '')}")
    return "\n".join(lines)


def print_rich(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in COLUMNS:
        table.add_column(c, justify="left" if c == "status" else "right")
    for r in rows:
        table.add_row(*(_cell(r, c) for c in COLUMNS))
    Console(width=160).print(table)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Machine, versions and settings, stored next to the rows."""
    env = machine(("pyomo", "pyscipopt", "clarabel", "gurobipy", "pandapower")) | {
        "scenario": args.scenario, "solver": args.solver, "time_limit_s": args.time_limit, "mip_gap": args.mip_gap,
        "complementarity": args.complementarity, "scheme": args.scheme, "follower": args.follower,
    }
    try:
        import pyscipopt

        m = pyscipopt.Model()
        env["scip"] = f"{m.getMajorVersion()}.{m.getMinorVersion()}.{m.getTechVersion()}"
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    return env


def plot_scaling(paths: list[Path], output: Path) -> None:
    """Size (variables, binaries, cones, constraints) and solve time against the number of ADNs, per result file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("variables", "binaries", "constraints", "cones", "solve_s")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
    for path in paths:
        rows = [r for r in json.loads(Path(path).read_text())["rows"] if r.get("variables") is not None]
        for (scheme, periods) in sorted({(r.get("scheme", "dso-led"), r["periods"]) for r in rows}):
            sel = sorted((r for r in rows if r.get("scheme", "dso-led") == scheme and r["periods"] == periods),
                         key=lambda r: r["adns"])
            label = f"{scheme}, {periods} h ({Path(path).stem})"
            for ax, key in zip(axes, metrics, strict=True):
                pts = [(r["adns"], r.get(key)) for r in sel
                       if key != "solve_s" or r.get("status") in ("optimal", "feasible")]  # time of a solution only
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    for ax, key in zip(axes, metrics, strict=True):
        ax.set_xlabel("ADNs")
        ax.set_title(key.replace("_s", " time (s)"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------------------------
# CLI


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from coordinator.blocks.complementarity import STRATEGIES as COMPLEMENTARITY

    p = argparse.ArgumentParser(
        prog="python benchmarks/scaling.py",
        description="Model size and build/solve time of the plain DSO-led MISOCP over ADNs x periods "
                    "(one build + one solve per combination, each in its own process; no AC check).")
    p.add_argument("--adns", type=_int_list, default=[1, 2, 5, 10], metavar="LIST",
                   help="numbers of ADNs, comma-separated (default: 1,2,5,10)")
    p.add_argument("--periods", type=_int_list, default=[1, 4, 24], metavar="LIST",
                   help="horizon lengths in 1 h steps, comma-separated (default: 1,4,24)")
    p.add_argument("--scenario", default=DEFAULT_SCENARIO,
                   help="base scenario, name or YAML path (default: %(default)s)")
    p.add_argument("--solver", default="scip", choices=sorted(STRATEGIES), help="solve strategy (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                   help="solver time limit per run in seconds (default: %(default)s)")
    p.add_argument("--mip-gap", type=float, default=1e-3, metavar="G",
                   help="relative gap to stop at (default: %(default)s, as 'tsodso solve')")
    p.add_argument("--complementarity", default="bigm", choices=sorted(COMPLEMENTARITY),
                   help="complementarity formulation of the follower's KKT (default: %(default)s)")
    p.add_argument("--scheme", default="dso-led", choices=["dso-led", "tso-led"],
                   help="coordination scheme (default: %(default)s); tso-led sizes are stage 2 (the DSOs' MISOCPs) "
                        "with stage 1 in stage1_* columns of the JSON")
    p.add_argument("--follower", default="kkt", choices=["kkt", "auto"],
                   help="dso-led follower form: 'kkt' the plain MISOCP (default), 'auto' the fast exact one")
    p.add_argument("--share-hosts", action="store_true",
                   help="let ADNs share a TN host bus when there are more ADNs than free load buses (20 on case30)")
    p.add_argument("--plot", type=Path, nargs="+", metavar="JSON",
                   help="do not run: plot model size and solve time against ADNs from result files (one line per "
                        "file and scheme) into --plot-output")
    p.add_argument("--plot-output", type=Path, default=Path("benchmarks/results/scaling.png"),
                   help="PNG written by --plot (default: %(default)s)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                   help="JSON file, rewritten after every run (default: benchmarks/results/scaling.json)")
    p.add_argument("--watchdog", type=float, default=None, metavar="S",
                   help="kill a run after this many seconds (default: 4 x time limit + 300)")
    p.add_argument("--in-process", action="store_true",
                   help="run in this process instead of one child per run (a solver crash then ends the benchmark)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="do not run: print an existing result file as a Markdown table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        data = json.loads(args.render.read_text())
        print(markdown_table(data["rows"]))
        return 0
    if args.plot:
        plot_scaling(args.plot, args.plot_output)
        print(f"plot written to {args.plot_output}")
        return 0

    env = environment(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    watchdog = args.watchdog if args.watchdog is not None else 4 * args.time_limit + 300
    widths = {c: max(len(c), 9) for c in COLUMNS}
    print(f"scaling: scenario {args.scenario}, solver {args.solver} (time limit {args.time_limit:g} s, gap "
          f"{args.mip_gap:g}), complementarity {args.complementarity}, {env['cpu_count']} cores", flush=True)
    print(format_line(None, widths), flush=True)
    rows: list[dict[str, Any]] = []
    for n in args.adns:
        for t in args.periods:
            kwargs = {"scenario": args.scenario, "n_adns": n, "periods": t, "solver": args.solver,
                      "time_limit": args.time_limit, "mip_gap": args.mip_gap,
                      "complementarity": args.complementarity, "scheme": args.scheme, "follower": args.follower,
                      "share_hosts": args.share_hosts}
            identity = {"adns": n, "periods": t}
            row = run_one(**kwargs) if args.in_process else run_isolated(run_one, kwargs, watchdog, identity)
            rows.append(row)
            print(format_line(row, widths), flush=True)
            if row["status"] == "error":
                print(f"    error: {row.get('message', '')}", flush=True)
            args.output.write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    print()
    print_rich(rows, f"DSO-led MISOCP scaling ({args.solver}, {args.time_limit:g} s limit)")
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
