"""SCIP's symmetry handling on the plain MISOCP (issue 12): off (the project's setting) against on without the
double-lex detection, and against SCIP's defaults.

SCIP 10.0.2 of the PySCIPOpt wheel crashed ("free(): invalid pointer") or hung on quadratic constraints with symmetry
handling on, so the project sets ``misc/usesymmetry = 0``. The narrower ``propagating/symmetry/detectdoublelex =
FALSE`` would keep the rest of symmetry handling. Each (case, setting) solves in its own child process with a
watchdog, so a crash or a hang becomes a row. Prints a table and writes JSON (``--output``).

Usage: ``python benchmarks/scip_symmetry.py [--time-limit 120] [--output benchmarks/results/scip_symmetry.json]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.runs import machine, run_isolated
except ModuleNotFoundError:
    from runs import machine, run_isolated

SETTINGS = {
    "symmetry off (project)": {"misc/usesymmetry": 0},
    "detectdoublelex off": {"propagating/symmetry/detectdoublelex": False},
    "SCIP defaults": {},
}
CASES = {
    "toy 2 ADNs x 4 h, congested": {"toy": {"periods": 4, "n_adns": 2, "fmax": 40.0}},
    "toy 3 ADNs x 4 h": {"toy": {"periods": 4, "n_adns": 3, "fmax": 60.0}},
    "small_2adn x 2 h": {"scenario": "small_2adn", "periods": 2},
    "ieee30_5adn, 1 ADN x 4 h": {"scenario": "ieee30_5adn", "periods": 4, "adns": 1},
    "ieee30_5adn, 5 ADNs x 4 h": {"scenario": "ieee30_5adn", "periods": 4},
}


def solve_one(case: dict[str, Any], setting: dict[str, Any], time_limit: float) -> dict[str, Any]:
    """One SCIP solve of the plain KKT model (runs in a child process)."""
    import dataclasses

    import coordinator.solvers.mip as mip
    from coordinator.dso_led import Formulation, build_dso_led
    from coordinator.solvers.base import SolveOptions
    from coordinator.toy import toy_case
    from scenarios.config import build_case, load_scenario

    if "toy" in case:
        built = toy_case(**case["toy"])
    else:
        config = load_scenario(case["scenario"])
        if "adns" in case:
            config = dataclasses.replace(config, adns=config.adns[:case["adns"]])
        built = build_case(config, periods=case["periods"])
    mip.SCIP_SAFE_OPTIONS = dict(setting)  # read when the solve starts
    model = build_dso_led(built, Formulation(follower="kkt")).model
    start = time.perf_counter()
    # this child is the crash boundary (run_isolated), so SCIP runs here rather than in a child of its own
    report = mip._solve_scip_here(model, SolveOptions(solver="scip", mip_gap=1e-6, time_limit=time_limit))
    return {"status": report.status, "objective": report.objective, "gap": report.gap,
            "solve_s": time.perf_counter() - start, "message": report.message}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-limit", type=float, default=120.0, help="SCIP's limit per solve (s)")
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/scip_symmetry.json"))
    args = p.parse_args()
    rows = []
    print(f"{'case':32} {'setting':24} {'status':12} {'objective':>14} {'solve s':>8}  message")
    for case_name, case in CASES.items():
        for name, setting in SETTINGS.items():
            identity = {"case": case_name, "setting": name}
            row = {**identity, **run_isolated(solve_one, {"case": case, "setting": setting,
                                                          "time_limit": args.time_limit},
                                              watchdog_s=args.time_limit + 120, identity=identity)}
            rows.append(row)
            obj = "-" if row.get("objective") is None else f"{row['objective']:.6f}"
            seconds = row.get("solve_s", row.get("wall_s", 0.0))
            print(f"{case_name:32} {name:24} {row['status']:12} {obj:>14} {seconds:8.1f}  {row.get('message', '')}",
                  flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": machine(("pyscipopt", "pyomo")), "time_limit_s": args.time_limit,
                                       "rows": rows}, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
