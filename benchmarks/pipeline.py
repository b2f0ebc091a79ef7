"""Co-simulation at the solver's speed (issue 14): everything around the solver measured against the solver.

Two measurements, each a ratio taken inside one run so that a shared machine slows both sides alike:

- ``run``: one ``tsodso run`` of a scenario (default: the default case, 24 hourly steps) in a child process; from its
  HDF5 file, per step: ``step_time_s`` (the coordinator's whole step) and ``solver_time_s`` (inside Clarabel only,
  summed over branch-and-bound nodes). Reports the median ratio over the steps after the first (target <= 1.3),
  the run's wall time (target <= 30 s) and peak RSS.
- ``solve``: one ``tsodso solve`` in a child process: its wall time, the solver time it reports, and the start-up
  time of the interpreter with the same imports (``python -c 'import scenarios.cli, coordinator.session'``),
  so that ``overhead = (wall - startup - solver) / solver`` (target <= 0.5); and the same from inside the
  process (the command's own time less the solver, imports timed apart), which a separate probe cannot skew.

Both are measured twice: with an empty disk cache (``coordinator.diskcache``: a machine's first run, which reads the
grids and profiles and compiles the leaders) and with the cache the first measurement filled (every later run).

Prints a table and writes JSON (``--output``). Usage: ``python benchmarks/pipeline.py [--scenario NAME]
[--hours 24] [--skip-run] [--skip-solve]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.runs import machine
except ModuleNotFoundError:
    from runs import machine

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tsodso", "pyomo", "clarabel", "pandapower", "mosaik", "numpy", "scipy")


def timed(cmd: list[str], cache: Path | None = None) -> tuple[float, float, str]:
    """Wall time (s), peak RSS (MB) and stderr of a child process (``/usr/bin/time -v`` when present), with its
    disk cache (``coordinator.diskcache``) in ``cache``."""
    wrapper = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    env = {**os.environ, "TSODSO_CACHE_DIR": str(cache) if cache else "off"}
    start = time.perf_counter()
    proc = subprocess.run(wrapper + cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rss = float("nan")
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = float(line.split(":")[1]) / 1024.0
    return wall, rss, proc.stderr


def measure_run(scenario: str, hours: float, folder: Path, cache: Path) -> dict:
    out = folder / "run.h5"
    wall, rss, _ = timed([sys.executable, "-m", "scenarios.cli", "run", scenario, "--hours", f"{hours:g}",
                          "--output", str(out), "--no-progress", "--overwrite"], cache)
    with h5py.File(out, "r") as h5:
        hub = h5["Coordinator"]["hub"]
        step = np.asarray(hub["step_time_s"][()], dtype=float)
        solver = np.asarray(hub["solver_time_s"][()], dtype=float)
        model = np.asarray(hub["model_time_s"][()], dtype=float)
        post = np.asarray(hub["post_time_s"][()], dtype=float)
        solve = np.asarray(hub["solve_time_s"][()], dtype=float)
        status = [s.decode() if isinstance(s, bytes) else str(s) for s in hub["status"][()]]
        message = [s.decode() if isinstance(s, bytes) else str(s) for s in hub["message"][()]]
    later = slice(1, None)
    ratio = step[later] / solver[later]
    return {"scenario": scenario, "steps": int(len(step)), "wall_s": wall, "peak_rss_mb": rss,
            "step_median_s": float(np.median(step[later])), "solver_median_s": float(np.median(solver[later])),
            "model_median_s": float(np.median(model[later])), "post_median_s": float(np.median(post[later])),
            "ratio_median": float(np.median(ratio)), "ratio_max": float(np.max(ratio)),
            "first_step_s": float(step[0]), "statuses": {s: status.count(s) for s in sorted(set(status))},
            # the previous plan's guess is solved beside the root in a second thread: solver_time_s sums both,
            # solve_time_s is the branch and bound's wall time; "0 nodes" = the guess closed the gap at the root
            "solve_median_s": float(np.median(solve[later])),
            "closed_by_guess": sum(m.startswith("0 nodes") for m in message[1:]),
            "per_step": [{"step_s": float(a), "solve_s": float(b), "solver_s": float(c), "message": m}
                         for a, b, c, m in zip(step, solve, solver, message, strict=True)]}


IMPORTS = "import scenarios.cli, coordinator.session, coordinator.pipeline, scenarios.config, pandapower"
# the command run in one process, timed from inside: imports, then the command (stderr: "TIMES <imports> <command>")
IN_PROCESS = (f"import sys, time; t0 = time.perf_counter(); {IMPORTS}; t1 = time.perf_counter(); "
              "code = scenarios.cli.main(sys.argv[1:]); t2 = time.perf_counter(); "
              "print('TIMES', t1 - t0, t2 - t1, file=sys.stderr); sys.exit(code)")


def measure_solve(scenario: str, folder: Path, cache: Path, repeats: int = 3) -> dict:
    """Two measures of the overhead: the process's wall time less a separate start-up probe (the imports alone),
    and, inside one process, the command's own time less the solver (the imports timed apart). The first is skewed
    when the command imports modules more cheaply than the probe does (``tsodso`` freezes the garbage collector's
    view of what is imported before the command starts), the second is not."""
    startup = statistics.median(timed([sys.executable, "-c", IMPORTS])[0] for _ in range(repeats))
    walls, solvers, commands, imports = [], [], [], []
    for k in range(repeats):
        out = folder / f"solve{k}.json"
        wall, _, err = timed([sys.executable, "-c", IN_PROCESS, "solve", scenario, "--output", str(out),
                              "--overwrite"], cache)
        result = json.loads(out.read_text())
        walls.append(wall)
        solvers.append(result["solver_time_s"])
        times = next(line for line in err.splitlines() if line.startswith("TIMES "))
        first, command = (float(x) for x in times.split()[1:])
        imports.append(first)
        commands.append(command)
    wall, solver = statistics.median(walls), statistics.median(solvers)
    command = statistics.median(commands)
    return {"scenario": scenario, "wall_s": wall, "startup_s": startup, "solver_time_s": solver,
            "overhead_ratio": (wall - startup - solver) / solver, "walls": walls, "solver_times": solvers,
            "command_s": command, "imports_s": statistics.median(imports),
            "overhead_ratio_in_process": (command - solver) / solver, "commands": commands}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="ieee30_5adn")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--skip-run", action="store_true")
    p.add_argument("--skip-solve", action="store_true")
    p.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline.json")
    args = p.parse_args(argv)
    rows: dict = {"machine": machine(PACKAGES)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        # a cold measurement starts from an empty disk cache; the warm one after it reuses what the cold one filled
        for kind, skip in (("run", args.skip_run), ("solve", args.skip_solve)):
            if skip:
                continue
            shutil.rmtree(cache, ignore_errors=True)
            for state in ("cold", "warm"):
                rows[f"{kind}_{state}"] = (
                    measure_run(args.scenario, args.hours, Path(tmp), cache) if kind == "run"
                    else measure_solve(args.scenario, Path(tmp), cache, 1 if state == "cold" else 3))
    for state in ("cold", "warm"):
        report(rows, state)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1))
    print(f"JSON: {args.output}")
    return 0


def report(rows: dict, state: str) -> None:
    if f"run_{state}" in rows:
        r = rows[f"run_{state}"]
        print(f"[{state} cache] run {r['scenario']}: {r['steps']} steps, wall {r['wall_s']:.1f} s with the "
              f"interpreter's start (target <= 30 s), peak RSS {r['peak_rss_mb']:.0f} MB, first step "
              f"{r['first_step_s']:.2f} s")
        print("| median over steps 2.. | step (s) | solver, both threads (s) | branch and bound wall (s) "
              "| model update (s) | post (s) | step / solver | steps closed by the guess |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {r['scenario']} | {r['step_median_s']:.3f} | {r['solver_median_s']:.3f} | {r['solve_median_s']:.3f}"
              f" | {r['model_median_s']:.3f} | {r['post_median_s']:.3f} | {r['ratio_median']:.3f} (max "
              f"{r['ratio_max']:.2f}; target <= 1.3) | {r['closed_by_guess']} of {r['steps'] - 1} |")
    if f"solve_{state}" in rows:
        s = rows[f"solve_{state}"]
        print(f"[{state} cache] solve {s['scenario']}: wall {s['wall_s']:.2f} s, start-up {s['startup_s']:.2f} s, "
              f"solver {s['solver_time_s']:.2f} s -> overhead {s['overhead_ratio']:.2f} x solver (target <= 0.5); "
              f"in one process: imports {s['imports_s']:.2f} s, command {s['command_s']:.2f} s -> overhead "
              f"{s['overhead_ratio_in_process']:.2f} x solver")


if __name__ == "__main__":
    sys.exit(main())
