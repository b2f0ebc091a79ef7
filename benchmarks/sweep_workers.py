"""``tsodso sweep`` on 1 and on 2 (or more) local workers: wall time, runs per minute and speed-up.

The same sweep (``--runs`` day-ahead solves of ``--scenario``, one per day of the year spread over the year) is run
once per worker count, each as its own ``python -m scenarios.cli sweep`` process into a fresh folder, so the wall
time includes what a user waits for: starting the LocalCluster and importing the model code in every worker. The
target of the issue is a speed-up of at least 1.7 on 2 cores for 8 runs of the default case.

    python benchmarks/sweep_workers.py                       # 8 runs of ieee30_5adn (24 periods) on 1 and 2 workers
    python benchmarks/sweep_workers.py --runs 2 --periods 2  # a smoke test of the script (seconds per run)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.runs import machine
except ModuleNotFoundError:
    from runs import machine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "sweep_workers.json"
COLUMNS = ("workers", "runs", "ok", "wall_s", "runs_per_min", "speedup", "run_wall_mean_s", "solve_mean_s")


def days(runs: int) -> list[int]:
    """``runs`` distinct days spread over the year (the same days for every worker count)."""
    return [int(15 + k * 350 / max(runs, 1)) for k in range(runs)]


def sweep_file(folder: Path, args: argparse.Namespace) -> Path:
    sweep: dict[str, Any] = {"scenario": args.scenario, "mode": "solve",
                             "options": {"time_limit": args.time_limit, "no_ac_check": args.no_ac_check},
                             "grid": {"day_of_year": days(args.runs)}}
    if args.periods:
        sweep["base"] = {"periods": args.periods}
    path = folder / "bench_sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def measure(workers: int, sweep: Path, folder: Path) -> dict[str, Any]:
    out = folder / f"workers{workers}"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scenarios.cli", "sweep", str(sweep), "--workers", str(workers),
                           "--output", str(out), "--no-progress"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rows = list(csv.DictReader((out / "summary.csv").open())) if (out / "summary.csv").exists() else []
    ok = [r for r in rows if r["status"] in ("optimal", "feasible")]

    def mean(key: str, rs: list[dict[str, str]]) -> float:
        values = [float(r[key]) for r in rs if r.get(key)]
        return sum(values) / len(values) if values else float("nan")

    return {"workers": workers, "runs": len(rows), "ok": len(ok), "wall_s": wall,
            "runs_per_min": 60.0 * len(rows) / wall if wall > 0 else float("nan"),
            "run_wall_mean_s": mean("wall_time_s", rows), "solve_mean_s": mean("solve_time_s", ok),
            "exit_code": proc.returncode, "stderr_tail": proc.stderr.strip().splitlines()[-3:]}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r.get(c, "-")) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="ieee30_5adn", help="scenario name or path (default: %(default)s)")
    p.add_argument("--runs", type=int, default=8, help="solves in the sweep (default: %(default)s)")
    p.add_argument("--periods", type=int, help="horizon of every solve (default: the scenario's)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds per solve (default: %(default)s)")
    p.add_argument("--no-ac-check", action="store_true", help="skip the AC check of every solve (default: check, "
                   "as 'tsodso solve' does)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tsodso-sweep-bench-") as tmp:
        sweep = sweep_file(Path(tmp), args)
        print(f"sweep_workers: {args.runs} solves of {args.scenario} (periods {args.periods or 'of the scenario'}), "
              f"days {days(args.runs)}, workers {counts}", flush=True)
        for n in counts:
            row = measure(n, sweep, Path(tmp))
            rows.append(row)
            print(f"  {n} worker(s): {row['wall_s']:.1f} s, {row['ok']}/{row['runs']} ok, exit {row['exit_code']}",
                  flush=True)
    base = next((r["wall_s"] for r in rows if r["workers"] == 1), None)
    for r in rows:
        r["speedup"] = base / r["wall_s"] if base else float("nan")
    print(markdown_table(rows))
    env = machine(("dask", "distributed", "pyomo", "clarabel", "pandapower")) | {
        "scenario": args.scenario, "runs": args.runs, "periods": args.periods, "time_limit": args.time_limit,
        "ac_check": not args.no_ac_check,
        "days": days(args.runs)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    print(f"written to {args.output}")
    return 0 if all(r["runs"] == args.runs for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
