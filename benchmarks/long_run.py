"""Long co-simulation runs: wall time and peak memory of ``tsodso run --days N``, sampled after every simulated day.

One run of ``--days`` days (default 7) in a child process. After each simulated day (and at the end) the child
records the elapsed wall time and its peak RSS so far; the table shows them, the ratio of the last day's peak RSS to
the first day's (target: within 10 %) and the time of a whole profile year extrapolated from the mean step time.
``--hours`` cuts the run short for a smoke test of the script (e.g. ``--days 1 --hours 3``).

    python benchmarks/long_run.py                       # 7 days hourly of ieee30_5adn (about 20 min on 2 cores)
    python benchmarks/long_run.py --days 1 --hours 3 --scenario small_2adn --horizon 3 --output /tmp/lr.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.runs import machine, run_isolated  # noqa: E402

YEAR_HOURS = 366 * 24  # the 2016 profiles
RSS_TARGET = 1.10  # peak RSS after the last day / after the first day


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def one_run(scenario: str, days: int, hours: float | None, step: str, horizon: float, solver: str | None
            ) -> dict[str, Any]:
    """The run itself (in the child): samples after every simulated day and at the end."""
    from loguru import logger

    from scenarios.config import load_scenario
    from scenarios.runner import RunSettings, run_scenario

    logger.remove()  # mosaik's INFO chatter
    logger.add(sys.stderr, level="WARNING")
    cfg = load_scenario(scenario)
    samples: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    steps_per_day = 24 * 60 // {"1h": 60, "15min": 15}[step]

    def on_step(k: int, steps: int, stats: Any) -> None:
        if (k + 1) % steps_per_day == 0 or k + 1 == steps:
            samples.append({"step": k + 1, "sim_hours": (k + 1) * 24 / steps_per_day,
                            "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()})

    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(days=None if hours else days, hours=hours, step=step, horizon_hours=horizon,
                               solver=solver, output=Path(tmp) / "long.h5", on_step=on_step)
        result = run_scenario(cfg, settings)
        file_mb = result.path.stat().st_size / 2**20
    timings = result.timings
    steps = result.summary["steps"]
    step_s = timings["run_s"] / steps
    return {"status": "ok", "scenario": scenario, "steps": steps, "step": step, "horizon_hours": horizon,
            "setup_s": timings["setup_s"], "run_s": timings["run_s"], "total_s": timings["total_s"],
            "step_mean_s": step_s, "year_extrapolated_h": (timings["setup_s"] + step_s * YEAR_HOURS * steps_per_day
                                                          / 24) / 3600,
            "file_mb": file_mb, "samples": samples, "fallback_steps": result.summary["fallback_steps"]}


def table(row: dict[str, Any]) -> str:
    if row.get("status") != "ok":
        return f"error: {row.get('message')}"
    samples = row["samples"]
    lines = ["| after (h simulated) | steps | wall (s) | peak RSS (MB) |", "|---:|---:|---:|---:|"]
    lines += [f"| {s['sim_hours']:g} | {s['step']} | {s['wall_s']:.1f} | {s['peak_rss_mb']:.0f} |" for s in samples]
    ratio = samples[-1]["peak_rss_mb"] / samples[0]["peak_rss_mb"]
    lines += ["", f"peak RSS last / first sample: {ratio:.3f} (target <= {RSS_TARGET:.2f}: "
              f"{'met' if ratio <= RSS_TARGET else 'NOT met'})",
              f"setup {row['setup_s']:.1f} s, mean step {row['step_mean_s']:.2f} s, "
              f"results file {row['file_mb']:.1f} MB, fallback steps {row['fallback_steps']}",
              f"a whole year ({YEAR_HOURS} h) extrapolated: {row['year_extrapolated_h']:.1f} h"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="ieee30_5adn")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--hours", type=float, help="cut the run to this many hours (smoke test of the script)")
    p.add_argument("--step", default="1h", choices=["1h", "15min"])
    p.add_argument("--horizon", type=float, default=24.0, help="receding horizon in hours (default: %(default)s)")
    p.add_argument("--solver", default=None)
    p.add_argument("--watchdog", type=float, default=6 * 3600.0, help="seconds before the child is killed")
    p.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "long_run.json")
    args = p.parse_args(argv)
    kwargs = {"scenario": args.scenario, "days": args.days, "hours": args.hours, "step": args.step,
              "horizon": args.horizon, "solver": args.solver}
    row = run_isolated(one_run, kwargs, args.watchdog, {"scenario": args.scenario, "days": args.days})
    row["days"], row["hours_cut"] = args.days, args.hours
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"environment": {**machine(("mosaik", "pyomo", "pandapower", "h5py")),
                                                       "settings": kwargs}, "rows": [row]}, indent=1))
    print(table(row))
    print(f"written: {args.output}")
    return 0 if row.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
