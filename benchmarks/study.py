"""Benchmark of ``tsodso study``: the default 52-day study (one day per week), both schemes, day-ahead 24 h.

Runs the command (``--jobs 2`` worker processes by default, each re-using its DSO-led model across its days, as
in normal use), then prints the
total wall time, the per-day wall time (median, max) per scheme and the failed days, and writes
``benchmarks/results/study.json``: ``environment``, ``settings``, ``summary`` and the study's own JSON (``study``:
findings and per-day rows, docs/results-schema.md).

Usage: ``python benchmarks/study.py --help``; quick check: ``python benchmarks/study.py --days 2 --periods 2
--output /tmp/study-bench.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.runs import machine
except ModuleNotFoundError:
    from runs import machine

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "study.json"
PACKAGES = ("pyomo", "clarabel", "pyscipopt", "pandapower", "numpy", "scipy")


def summarize(study: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """Total wall time, per-scheme per-day wall and solve times, failures."""
    out: dict[str, Any] = {"wall_s": wall_s, "days": len(study["days"]), "schemes": {}}
    for scheme in study["schemes"]:
        rows = [d[scheme] for d in study["days"]]
        walls = [r["wall_s"] for r in rows]
        solves = [r["solve_time_s"] for r in rows if r["solve_time_s"] == r["solve_time_s"]]
        out["schemes"][scheme] = {
            "day_wall_median_s": statistics.median(walls), "day_wall_max_s": max(walls),
            "day_solve_median_s": statistics.median(solves) if solves else float("nan"),
            "failed_days": [d["day"] for d in study["days"] if d[scheme]["status"] not in
                            ("optimal", "feasible", "completed")],
        }
    out["paired_days"] = study["findings"][0]["n_days"] if study["findings"] else 0
    return out


def print_summary(summary: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for col in ("scheme", "days", "median day (s)", "max day (s)", "median solve (s)", "failed"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for scheme, s in summary["schemes"].items():
        table.add_row(scheme, str(summary["days"]), f"{s['day_wall_median_s']:.1f}", f"{s['day_wall_max_s']:.1f}",
                      f"{s['day_solve_median_s']:.1f}", ", ".join(map(str, s["failed_days"])) or "-")
    Console().print(table)
    print(f"total wall time {summary['wall_s']:.0f} s ({summary['wall_s'] / 60:.1f} min), "
          f"{summary['paired_days']} paired days")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/study.py", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="ieee30_5adn")
    p.add_argument("--days", help="tsodso study --days SPEC (default: its 52 weekly days)")
    p.add_argument("--periods", type=int, help="periods per day (default: 24 h)")
    p.add_argument("--schemes", default="dso-led,tso-led")
    p.add_argument("--solver", default="fast")
    p.add_argument("--time-limit", type=float, default=120.0)
    p.add_argument("--mip-gap", type=float, default=1e-3)
    p.add_argument("--jobs", type=int, default=2, help="tsodso study --jobs (default: %(default)s, one per core)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = p.parse_args(argv)

    from scenarios.cli import main as tsodso

    with tempfile.TemporaryDirectory() as tmp:
        study_json = Path(tmp) / "study.json"
        command = ["study", args.scenario, "--schemes", args.schemes, "--solver", args.solver, "--time-limit",
                   str(args.time_limit), "--mip-gap", str(args.mip_gap), "--jobs", str(args.jobs), "--no-progress"]
        command += ["--days", args.days] if args.days else []
        command += ["--periods", str(args.periods)] if args.periods else []
        start = time.perf_counter()
        code = tsodso([*command, "--json", str(study_json)])
        wall = time.perf_counter() - start
        if not study_json.exists():
            print(f"tsodso study failed (exit code {code}), no JSON", file=sys.stderr)
            return 1
        study = json.loads(study_json.read_text())
    summary = summarize(study, wall)
    print_summary(summary, f"tsodso study {args.scenario}: {study['mode']}, {study['periods']} periods per day")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"environment": machine(PACKAGES), "settings": vars(args) | {
        "output": str(args.output), "command": "tsodso " + " ".join(command)}, "summary": summary,
        "study": study}, indent=1, allow_nan=True))
    print(f"results written to {args.output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
