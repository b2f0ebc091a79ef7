"""The plain MISOCP with SCIP against the fast strategy, side by side on the same cases (issue 5).

*naive*: ``Formulation(follower="kkt")`` (the follower's KKT block with big-M in every period) solved by SCIP.
*fast*: ``Formulation(follower="auto")`` (certified affine follower / convex-hull disjunction over critical regions,
KKT only where neither is proven) solved by the ``fast`` strategy (Clarabel branch and bound).

Default mode (``--cases``): both on instances small enough for SCIP to finish, one after the other, each build +
solve in its own spawned process (a solver crash becomes an error row). Each side gives an interval
``[bound, objective]`` that holds the optimum, so the two must overlap (up to ``--tolerance`` relative): otherwise the
row is marked FAIL. ``--targets``: the issue's timing targets for the fast strategy (5 ADNs x 24 h, several start
hours, and 20 ADNs x 24 h). ``--cosim``: one ``tsodso run`` of the default scenario timed with ``/usr/bin/time -v``,
per-step solve times read from its HDF5 file.

Timings: ``build_s`` = Pyomo model build by ``PlanningSession`` (for *fast* it includes the critical-region
exploration), ``solve_s`` = the strategy's call (for SCIP it includes Pyomo's translation), ``total_s`` = build +
solve. Building the ``Case`` (``case_s``) is stored but not in ``total_s``. Usage: ``python benchmarks/fast_vs_naive.py
--help``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.cases import build_case_with_adns
    from benchmarks.runs import machine, run_isolated
except ModuleNotFoundError:
    from cases import build_case_with_adns
    from runs import machine, run_isolated

DEFAULT_SCENARIO = "ieee30_5adn_legacy"  # the case docs/performance.md was measured on
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CASES = "1x1,1x4,2x1,5x1,10x1"
SIDES = {"naive": {"follower": "kkt", "solver": "scip"}, "fast": {"follower": "auto", "solver": "fast"}}


# --------------------------------------------------------------------------------------------------------------------
# One run


def run_one(scenario: str, n_adns: int, periods: int, start_hour: float | None, follower: str, solver: str,
            time_limit: float | None, mip_gap: float, share_hosts: bool = False) -> dict[str, Any]:
    """Build the case and the model, solve once; always returns a row (``status='error'`` on failure)."""
    row: dict[str, Any] = {"adns": n_adns, "periods": periods, "start_hour": start_hour, "follower": follower,
                           "solver": solver, "time_limit_s": time_limit, "mip_gap_target": mip_gap, "status": "error"}
    wall = time.perf_counter()
    try:
        import pyomo.environ as pyo

        from coordinator.dso_led import Formulation
        from coordinator.session import PlanningSession
        from coordinator.solvers.base import SolveOptions

        start = time.perf_counter()
        case = build_case_with_adns(scenario, n_adns, periods, start_hour, share_hosts)
        row["case_s"] = time.perf_counter() - start
        row["start_hour"] = case.start_hour
        row["tn_buses"] = [a.tn_bus for a in case.adns]
        options = SolveOptions(solver=solver, time_limit=time_limit, mip_gap=mip_gap)
        cpu = time.process_time()
        session = PlanningSession(case, Formulation(follower=follower), options)
        result = session.solve(case, ac_periods=[])
        row["cpu_s"] = time.process_time() - cpu  # this process's CPU time for build + solve + collect
        forms = result.get("formulation", {})
        row.update(result["model"])
        row.update(build_s=session.build_time_s, solve_s=result["solve_time_s"],
                   total_s=session.build_time_s + result["solve_time_s"], status=result["status"],
                   termination=result["termination"], gap=result["mip_gap"], objective=result["objective"],
                   bound=result["bound"], message=result["message"], solver_name=result["solver"],
                   affine_periods=len(forms.get("affine_periods", [])),
                   region_periods=len(forms.get("region_periods", [])))
        row["kkt_periods"] = periods - row["affine_periods"] - row["region_periods"]
        if result["objective"] is not None:
            if session.built is not None:  # the Pyomo path: the loaded point, evaluated by Pyomo
                row["objective_pyomo"] = float(pyo.value(session.built.model.objective))
            row["follower_cost_rel_gap"] = result.get("checks", {}).get("follower_cost_rel_gap")
    except Exception as exc:  # noqa: BLE001 - a failed run is a row, not the end of the benchmark
        row["message"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=5)
    row["wall_s"] = time.perf_counter() - wall
    return row


def run(kwargs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    limit = kwargs["time_limit"] or 3600.0
    if args.in_process:
        return run_one(**kwargs)
    identity = {key: kwargs[key] for key in ("follower", "solver")} | {"adns": kwargs["n_adns"],
                                                                       "periods": kwargs["periods"]}
    return run_isolated(run_one, kwargs, 2 * limit + 600, identity)


# --------------------------------------------------------------------------------------------------------------------
# Comparison


def compare(naive: dict[str, Any], fast: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Do the two optimum intervals ``[bound, objective]`` overlap? Relative difference and speed ratios."""
    out: dict[str, Any] = {"check": "n/a"}
    on, of = naive.get("objective"), fast.get("objective")
    if on is not None and of is not None:
        scale = max(abs(on), abs(of), 1.0)
        out["rel_diff"] = (of - on) / scale
        bn = naive.get("bound") if naive.get("bound") is not None else -math.inf
        bf = fast.get("bound") if fast.get("bound") is not None else -math.inf
        # both sides hold the optimum: max of the lower bounds <= min of the objectives (up to tolerance)
        out["overlap_violation"] = max(bn, bf) - min(on, of)
        out["check"] = "ok" if out["overlap_violation"] <= tolerance * scale else "FAIL"
    for key in ("solve_s", "total_s"):
        if naive.get(key) and fast.get(key):
            out[f"speedup_{key[:-2]}"] = naive[key] / fast[key]
    return out


# --------------------------------------------------------------------------------------------------------------------
# Output

PAIR_COLUMNS = ("case", "fast a/h/k", "vars n/f", "bins n/f", "cons n/f", "build n/f (s)", "solve n/f (s)",
                "status n/f", "gap n/f", "objective naive", "objective fast", "rel diff", "speedup", "check")


def _f(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, fmt)


def pair_cells(p: dict[str, Any]) -> list[str]:
    n, f, c = p["naive"], p["fast"], p["compare"]

    def both(key: str, fmt: str) -> str:
        return f"{_f(n.get(key), fmt)} / {_f(f.get(key), fmt)}"

    start = "" if p.get("start_hour") is None else f"@{p['start_hour']:g}"
    forms = f"{f.get('affine_periods', '-')}/{f.get('region_periods', '-')}/{f.get('kkt_periods', '-')}"
    return [f"{p['adns']}x{p['periods']}{start}", forms, both("variables", ","), both("binaries", ","),
            both("constraints", ","), both("build_s", ".2f"), both("solve_s", ".2f"),
            f"{n['status']} / {f['status']}", both("gap", ".1e"), _f(n.get("objective"), ".6f"),
            _f(f.get("objective"), ".6f"), _f(c.get("rel_diff"), ".1e"), _f(c.get("speedup_total"), ".1f") + "x",
            c["check"]]


def markdown(head: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plain(head: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(list(head))] + [fmt(r) for r in rows])


TARGET_COLUMNS = ("run", "case", "start hour", "follower periods a/h/k", "vars", "bins", "build (s)", "solve (s)",
                  "total (s)", "cpu (s)", "status", "gap", "objective", "message")


def target_cells(r: dict[str, Any], label: str) -> list[str]:
    forms = f"{r.get('affine_periods', '-')}/{r.get('region_periods', '-')}/{r.get('kkt_periods', '-')}"
    return [label, f"{r['adns']}x{r['periods']}", _f(r.get("start_hour"), "g"), forms, _f(r.get("variables"), ","),
            _f(r.get("binaries"), ","), _f(r.get("build_s"), ".2f"), _f(r.get("solve_s"), ".2f"),
            _f(r.get("total_s"), ".2f"), _f(r.get("cpu_s"), ".2f"), r["status"], _f(r.get("gap"), ".1e"),
            _f(r.get("objective"), ".4f"), r.get("message", "")[:60]]


def environment(args: argparse.Namespace) -> dict[str, Any]:
    env = machine(("pyomo", "pyscipopt", "clarabel", "pandapower")) | {
        "load_average_at_start": os.getloadavg(), "scenario": args.scenario, "argv": sys.argv[1:],
    }
    try:
        git = ["git", "-C", str(Path(__file__).resolve().parent)]
        env["git_commit"] = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           check=True).stdout.strip()
        env["git_modified"] = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                             capture_output=True, text=True, check=True).stdout.split("\n")[:-1]
    except (OSError, subprocess.CalledProcessError):
        pass
    return env


def write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=float))


def render(paths: list[Path]) -> str:
    """Markdown table of saved pairs (default mode) or runs (``--targets``), files concatenated."""
    pairs, runs = [], []
    for path in paths:
        data = json.loads(path.read_text())
        pairs += data.get("pairs", [])
        runs += data.get("runs", [])
    out = []
    if pairs:
        out.append(markdown(PAIR_COLUMNS, [pair_cells(p) for p in pairs]))
    if runs:
        out.append(markdown(TARGET_COLUMNS, [target_cells(r, f"{r['adns']}x{r['periods']}") for r in runs]))
    return "\n\n".join(out)


# --------------------------------------------------------------------------------------------------------------------
# Modes


def mode_cases(args: argparse.Namespace, env: dict[str, Any]) -> int:
    print(f"naive (follower kkt, SCIP, limit {args.naive_time_limit:g} s) vs fast (follower auto, Clarabel B&B, "
          f"limit {args.fast_time_limit:g} s); mip gap {args.mip_gap:g}; {env['cpu_count']} cores", flush=True)
    pairs: list[dict[str, Any]] = []
    failures = 0
    for n, t, start in args.cases:
        start = args.start_hour if start is None else start
        pair: dict[str, Any] = {"adns": n, "periods": t, "start_hour": start}
        for side, limit in (("naive", args.naive_time_limit), ("fast", args.fast_time_limit)):
            kwargs = {"scenario": args.scenario, "n_adns": n, "periods": t, "start_hour": start,
                      "time_limit": limit, "mip_gap": args.mip_gap, **SIDES[side]}
            pair[side] = run(kwargs, args)
            r = pair[side]
            print(f"  {n}x{t}@{r.get('start_hour')} {side}: {r['status']} obj {r.get('objective')} "
                  f"bound {r.get('bound')} "
                  f"build {_f(r.get('build_s'), '.2f')} s solve {_f(r.get('solve_s'), '.2f')} s "
                  f"{r.get('message', '')}", flush=True)
        pair["compare"] = compare(pair["naive"], pair["fast"], args.tolerance)
        if pair["compare"]["check"] == "FAIL":
            failures += 1
            print(f"  FAIL: {n}x{t}: naive objective {pair['naive']['objective']!r} (bound "
                  f"{pair['naive']['bound']!r}), fast objective {pair['fast']['objective']!r} (bound "
                  f"{pair['fast']['bound']!r}): the optimum intervals do not overlap", flush=True)
        pairs.append(pair)
        write(args.output, {"environment": env, "mode": "cases", "pairs": pairs})
    rows = [pair_cells(p) for p in pairs]
    print()
    print(plain(PAIR_COLUMNS, rows))
    print()
    print(markdown(PAIR_COLUMNS, rows))
    print(f"\n{'FAIL: ' + str(failures) + ' case(s) disagree' if failures else 'all objectives agree within the gaps'}"
          f"; results written to {args.output}")
    return 1 if failures else 0


def mode_targets(args: argparse.Namespace, env: dict[str, Any]) -> int:
    runs: list[dict[str, Any]] = []
    labels: list[str] = []
    plan = [("5x24", 5, h, args.target_gap_5, args.target_time_limit_5, False) for h in args.target_starts]
    plan += [(f"{args.big_adns}x24", args.big_adns, h, args.target_gap_big, args.target_time_limit_big, True)
             for h in args.big_starts]
    for label, n, start_hour, gap, limit, share in plan:
        kwargs = {"scenario": args.scenario, "n_adns": n, "periods": 24, "start_hour": start_hour,
                  "time_limit": limit, "mip_gap": gap, "share_hosts": share, **SIDES["fast"]}
        r = run(kwargs, args)
        runs.append(r)
        labels.append(label)
        print(plain(TARGET_COLUMNS, [target_cells(r, label)]).splitlines()[-1], flush=True)
        write(args.output, {"environment": env, "mode": "targets", "runs": runs})

    summary: dict[str, Any] = {}
    five = [r for r, lab in zip(runs, labels, strict=True) if lab == "5x24"]
    if five:
        ok = [r.get("status") == "optimal" and (r.get("gap") or 0.0) <= args.target_gap_5 for r in five]
        summary["5x24"] = {
            "runs": len(five), "mip_gap": args.target_gap_5, "all_proven": all(ok),
            "median_total_s": statistics.median(r.get("total_s", math.inf) for r in five),
            "median_solve_s": statistics.median(r.get("solve_s", math.inf) for r in five),
            "max_total_s": max(r.get("total_s", math.inf) for r in five),
            "max_gap": max((r.get("gap") if r.get("gap") is not None else math.inf) for r in five),
        }
        summary["5x24"]["met"] = all(ok) and summary["5x24"]["median_total_s"] <= 30.0
    big = [r for r, lab in zip(runs, labels, strict=True) if lab != "5x24"]
    if big:
        ok = [r.get("status") == "optimal" and (r.get("gap") or 0.0) <= args.target_gap_big for r in big]
        summary[f"{args.big_adns}x24"] = {
            "runs": len(big), "mip_gap": args.target_gap_big, "all_proven": all(ok),
            "median_total_s": statistics.median(r.get("total_s", math.inf) for r in big),
            "max_total_s": max(r.get("total_s", math.inf) for r in big),
            "max_gap": max((r.get("gap") if r.get("gap") is not None else math.inf) for r in big),
        }  # no median in the target for this one: every run must make it
        summary[f"{args.big_adns}x24"]["met"] = all(ok) and summary[f"{args.big_adns}x24"]["max_total_s"] <= 300.0
    write(args.output, {"environment": env, "mode": "targets", "runs": runs, "summary": summary})
    rows = [target_cells(r, lab) for r, lab in zip(runs, labels, strict=True)]
    print()
    print(markdown(TARGET_COLUMNS, rows))
    print()
    print(json.dumps(summary, indent=1, default=float))
    print(f"results written to {args.output}")
    return 0


def mode_cosim(args: argparse.Namespace, env: dict[str, Any]) -> int:
    """Time one ``tsodso run`` with ``/usr/bin/time -v``; per-step solve times from the HDF5 file."""
    h5 = Path(tempfile.mkdtemp()) / "cosim.h5"
    cmd = ["/usr/bin/time", "-v", "tsodso", "run", args.scenario, "--output", str(h5), "--no-progress",
           *args.cosim_args]
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = cosim_summary(proc.stderr, h5)
    out.update(command=cmd, returncode=proc.returncode, stdout_tail=proc.stdout[-2000:])
    write(args.output, {"environment": env, "mode": "cosim", "cosim": out})
    print(json.dumps({k: v for k, v in out.items() if k not in ("steps", "stdout_tail")}, indent=1, default=float))
    return proc.returncode


def cosim_summary(time_stderr: str, h5: Path) -> dict[str, Any]:
    """Wall time and peak memory from ``/usr/bin/time -v`` output; per-step solver numbers from the run file."""
    out: dict[str, Any] = {}
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", time_stderr)
    if wall:
        secs = 0.0
        for part in wall.group(1).split(":"):
            secs = 60 * secs + float(part)
        out["wall_s"] = secs
    for key, label in (("user_s", "User time (seconds)"), ("sys_s", "System time (seconds)")):
        found = re.search(re.escape(label) + r": ([\d.]+)", time_stderr)
        if found:
            out[key] = float(found.group(1))
    cpu = re.search(r"Percent of CPU this job got: (\d+)%", time_stderr)
    if cpu:
        out["cpu_percent"] = int(cpu.group(1))
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_stderr)
    if rss:
        out["max_rss_mb"] = int(rss.group(1)) / 1024
    if h5.exists():
        out.update(hub_steps(h5))
    return out


def hub_steps(h5: Path | str) -> dict[str, Any]:
    """The coordinator's per-step datasets (``/Coordinator/hub/...``) and a summary (NaN = step without solution)."""
    import numpy as np

    from simulators.recorder import read_run

    data = read_run(str(h5))
    hub = {k.split("/")[-1]: v for k, v in data.items() if k.startswith("/Coordinator/hub/")}
    steps = {k: [None if isinstance(x, float) and math.isnan(x) else x for x in v.tolist()] for k, v in hub.items()}
    summary: dict[str, Any] = {"steps": steps}
    for key in ("solve_time_s", "step_time_s", "model_time_s", "post_time_s", "mip_gap"):
        value = hub.get(key)
        if value is not None and value.size:
            summary[key] = {"sum": float(np.nansum(value)), "median": float(np.nanmedian(value)),
                            "max": float(np.nanmax(value))}
    if "status" in hub:
        summary["status_counts"] = {str(s): int((hub["status"] == s).sum()) for s in np.unique(hub["status"])}
    if "fallback" in hub:
        summary["fallback_steps"] = [int(i) for i in np.flatnonzero(np.nan_to_num(hub["fallback"]) > 0)]
    return summary


# --------------------------------------------------------------------------------------------------------------------
# CLI


def _cases(text: str) -> list[tuple[int, int, float | None]]:
    out = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?\s*", item)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise argparse.ArgumentTypeError(f"expected ADNSxPERIODS[@START_HOUR] items like 5x1 or 10x1@17, "
                                             f"got {item!r}")
        out.append((int(m.group(1)), int(m.group(2)), None if m.group(3) is None else float(m.group(3))))
    return out


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/fast_vs_naive.py",
        description="Plain MISOCP (follower kkt, SCIP) against the fast strategy (follower auto, Clarabel branch and "
                    "bound) on the same cases: sizes, times, objectives, speed ratio, agreement check (FAIL if the "
                    "optimum intervals do not overlap). --targets / --cosim measure the issue's timing targets.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--targets", action="store_true",
                      help="fast strategy only: 5 ADNs x 24 h at --target-starts (gap 1e-3, target median <= 30 s) "
                           "and --big-adns x 24 h at --big-starts (gap 1e-2, target <= 300 s)")
    mode.add_argument("--cosim", action="store_true",
                      help="time one 'tsodso run' of --scenario with /usr/bin/time -v (target <= 300 s)")
    p.add_argument("--scenario", default=DEFAULT_SCENARIO, help="base scenario (default: %(default)s)")
    p.add_argument("--cases", type=_cases, default=_cases(DEFAULT_CASES), metavar="LIST",
                   help=f"ADNSxPERIODS[@START_HOUR] items, comma-separated (default: {DEFAULT_CASES}); the start hour "
                        "defaults to --start-hour")
    p.add_argument("--start-hour", type=float, default=None, help="first hour of the cases (default: scenario's)")
    p.add_argument("--mip-gap", type=float, default=1e-4, metavar="G",
                   help="relative gap for both sides in the comparison (default: %(default)s)")
    p.add_argument("--naive-time-limit", type=float, default=900.0, metavar="S",
                   help="SCIP time limit per case (default: %(default)s)")
    p.add_argument("--fast-time-limit", type=float, default=900.0, metavar="S",
                   help="fast strategy time limit per case (default: %(default)s)")
    p.add_argument("--tolerance", type=float, default=1e-6,
                   help="relative slack of the overlap check of the two [bound, objective] intervals "
                        "(default: %(default)s)")
    p.add_argument("--target-starts", type=_floats, default=[0, 5, 10, 15, 20], metavar="LIST",
                   help="start hours of the 5 x 24 h target runs (default: 0,5,10,15,20)")
    p.add_argument("--target-gap-5", type=float, default=1e-3, help="gap of the 5 x 24 h runs (default: 1e-3)")
    p.add_argument("--target-time-limit-5", type=float, default=120.0, metavar="S",
                   help="time limit of the 5 x 24 h runs (default: %(default)s)")
    p.add_argument("--big-adns", type=int, default=20, help="ADNs of the large target (default: %(default)s)")
    p.add_argument("--big-starts", type=_floats, default=[0, 8, 16], metavar="LIST",
                   help="start hours of the large target runs, empty for none (default: 0,8,16)")
    p.add_argument("--target-gap-big", type=float, default=1e-2, help="gap of the large target (default: 1e-2)")
    p.add_argument("--target-time-limit-big", type=float, default=600.0, metavar="S",
                   help="time limit of the large target (default: %(default)s)")
    p.add_argument("--cosim-args", nargs=argparse.REMAINDER, default=[],
                   help="extra arguments for 'tsodso run' (last option)")
    p.add_argument("--output", type=Path, default=None,
                   help="JSON file, rewritten after every run (default: benchmarks/results/fast_vs_naive.json, "
                        "fast_targets.json or cosim.json)")
    p.add_argument("--in-process", action="store_true", help="no child process per run (easier debugging)")
    p.add_argument("--render", type=Path, nargs="+", metavar="JSON",
                   help="do not run: print result files of the default or --targets mode as one Markdown table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        print(render(args.render))
        return 0
    name = "fast_targets" if args.targets else "cosim" if args.cosim else "fast_vs_naive"
    args.output = args.output or RESULTS / f"{name}.json"
    env = environment(args)
    if args.targets:
        return mode_targets(args, env)
    if args.cosim:
        return mode_cosim(args, env)
    return mode_cases(args, env)


if __name__ == "__main__":
    sys.exit(main())
