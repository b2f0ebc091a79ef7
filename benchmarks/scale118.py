"""A case118 TN with tens of ADNs (issue 12): one DSO-led solve per ADN count, build and solve timed separately.

The issue's target is case118 with 50 ADNs, a mix of case33bw feeders and simbench MV grids, over 24 h, DSO-led,
default solver (``fast``), proven gap <= 0.1 % in <= 60 s on 2 cores; 100 ADNs is measured and reported too. The
mix is written once as a scenario YAML (``MIX``, one ADN of each kind at the first free case118 load buses) into a
temporary folder; ``benchmarks.cases.scenario_with_adns`` cuts it or copies its ADNs cyclically to further free load
buses (``share_hosts``: 54 free buses, so 100 ADNs put two at some buses). Each count is one spawned child process
(``benchmarks.runs.run_isolated``) that builds the ``Case``, then the model with ``PlanningSession`` (the object
``tsodso solve`` uses) and solves once, AC check skipped.

Timings: ``build_s`` = the model before the solver starts (leaders compiled by ``PlanningSession`` + the follower
forms of this data, i.e. the critical-region exploration, and the conic problem's assembly: the result's
``build_time_s``; ``leaders_s`` is the first part alone); ``solve_s`` = branch and bound's wall time;
``solver_time_s`` = inside Clarabel only; ``wall_s`` = session construction + solve call (everything a caller of
``tsodso solve`` waits for after the ``Case``, result collection included). ``case_s`` (profiles, pandapower grids)
is stored, not in ``wall_s``.

``--scip-adns/--scip-periods``: the same mix on a small count solved by SCIP as well, both sides' optimum intervals
``[bound, objective]`` checked for overlap (``fast_vs_naive.compare``, tolerance = the gap). ``--profile``: the
solve under cProfile; the JSON then holds the top functions and the number of Clarabel calls.

Usage: ``python benchmarks/scale118.py --help``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

try:  # benchmarks/ is not a package: run as a script, its directory is on sys.path
    from benchmarks.cases import host_buses, scenario_with_adns
    from benchmarks.fast_vs_naive import _f, compare, environment, markdown, plain, write
    from benchmarks.runs import run_isolated
except ModuleNotFoundError:
    from cases import host_buses, scenario_with_adns
    from fast_vs_naive import _f, compare, environment, markdown, plain, write
    from runs import run_isolated

RESULTS = Path(__file__).resolve().parent / "results"
TN = "case118"
# One of each kind, in the order copies cycle through: half simbench MV grids (own loads, sgens and profiles; BESS
# by the auto rules, sized as in scenarios/simbench_mixed.yaml), half case33bw feeders with auto PV and BESS.
MIX: tuple[dict[str, Any], ...] = (
    {"name": "mv_rural", "network": {"simbench": "1-MV-rural--0-sw"}, "placement": "auto",
     "bess": {"count": 3, "p_mw": 1.0, "e_mwh": 4.0}},
    {"name": "feeder33a", "placement": "auto", "pv_share": 0.75, "load_profile": "H0-A"},
    {"name": "mv_semiurb", "network": {"simbench": "1-MV-semiurb--0-sw"}, "placement": "auto",
     "bess": {"count": 3, "p_mw": 1.0, "e_mwh": 4.0}},
    {"name": "feeder33b", "placement": "auto", "pv_share": 0.5, "load_profile": "H0-B"},
)


def mix_scenario(folder: Path, day_of_year: int = 196, start_hour: float = 0.0) -> Path:
    """Write the mix as a scenario YAML (case118 TN, one ADN per ``MIX`` entry at the first free load buses)."""
    from coordinator.grids.source import NetSource

    hosts = host_buses(NetSource("case", TN))
    adns = [{**spec, "tn_bus": bus} for spec, bus in zip(MIX, hosts, strict=False)]
    data = {"name": "scale118", "tn": {"case": TN, "load_profile": "G0-A"}, "day_of_year": day_of_year,
            "step": "1h", "start_hour": start_hour, "adns": adns}
    path = folder / "scale118.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------------------------------
# One run


def run_scale(scenario: str, n_adns: int, periods: int, solver: str, time_limit: float, mip_gap: float,
              follower: str = "auto", profile: bool = False) -> dict[str, Any]:
    """Build the case, the model (``PlanningSession``) and solve once; always returns a row."""
    row: dict[str, Any] = {"adns": n_adns, "periods": periods, "solver": solver, "follower": follower,
                           "time_limit_s": time_limit, "mip_gap_target": mip_gap, "status": "error"}
    try:
        from coordinator.dso_led import Formulation
        from coordinator.session import PlanningSession
        from coordinator.solvers.base import SolveOptions
        from scenarios.config import build_case

        start = time.perf_counter()
        cfg = scenario_with_adns(scenario, n_adns, share_hosts=True)
        case = build_case(cfg, periods=periods)
        row["case_s"] = time.perf_counter() - start
        row["networks"] = {k: sum(1 for a in cfg.adns if a.network.label == k)
                           for k in sorted({a.network.label for a in cfg.adns})}
        row["shared_hosts"] = len(cfg.adns) - len({a.tn_bus for a in cfg.adns})
        options = SolveOptions(solver=solver, time_limit=time_limit, mip_gap=mip_gap)
        profiler = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        session = PlanningSession(case, Formulation(follower=follower), options)
        result = session.solve(case, ac_periods=[])
        if profiler:
            profiler.disable()
        row["wall_s"] = time.perf_counter() - wall
        row["cpu_s"] = time.process_time() - cpu
        row.update(result["model"])
        form = result.get("formulation", {})
        row.update(build_s=result["build_time_s"], leaders_s=session.build_time_s, solve_s=result["solve_time_s"],
                   solver_time_s=result.get("solver_time_s"), post_s=result.get("post_time_s"),
                   status=result["status"], gap=result["mip_gap"], objective=result["objective"],
                   bound=result["bound"], message=result["message"], solver_name=result["solver"],
                   checks=result.get("checks", {}),
                   follower_periods=[len(form.get(k, [])) for k in ("affine_periods", "region_periods",
                                                                    "kkt_periods")])
        nodes = re.match(r"(\d+) nodes(?=$|[,;])", result["message"] or "")  # not "2 nodes failed ..."
        row["nodes"] = int(nodes.group(1)) if nodes else None
        if profiler:
            row["profile"] = profile_summary(profiler)
    except Exception as exc:  # noqa: BLE001 - a failed run is a row, not the end of the benchmark
        row["message"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=8)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    return row


def profile_summary(profiler: cProfile.Profile, top: int = 25) -> dict[str, Any]:
    """Top functions by cumulative and by own time, and the Clarabel calls (count, cumulative seconds)."""
    out: dict[str, Any] = {}
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(top)
        out[key] = text.getvalue().splitlines()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    for (file, _, name), (_, calls, _own, cum, _) in stats.items():
        if name == "_clarabel" and file.endswith("conic.py"):
            out["clarabel_calls"], out["clarabel_cum_s"] = calls, cum
        if name == "choose_forms":
            out["choose_forms_cum_s"] = cum
        if name == "branch_and_bound":
            out["branch_and_bound_cum_s"] = cum
    return out


def run(kwargs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.in_process:
        return run_scale(**kwargs)
    identity = {"adns": kwargs["n_adns"], "periods": kwargs["periods"], "solver": kwargs["solver"]}
    return run_isolated(run_scale, kwargs, 3 * kwargs["time_limit"] + 900, identity)


# --------------------------------------------------------------------------------------------------------------------
# Output

COLUMNS = ("ADNs", "periods", "MV/33bw", "vars", "bins", "follower a/h/k", "build (s)", "solve (s)",
           "solver_time (s)", "wall (s)", "nodes", "status", "gap", "objective", "peak RSS (MB)")


def cells(r: dict[str, Any]) -> list[str]:
    nets = r.get("networks") or {}
    mv = sum(v for k, v in nets.items() if "MV" in k)
    forms = "/".join(str(k) for k in r["follower_periods"]) if r.get("follower_periods") else "-"
    return [str(r["adns"]), str(r["periods"]), f"{mv}/{sum(nets.values()) - mv}" if nets else "-",
            _f(r.get("variables"), ","), _f(r.get("binaries"), ","), forms, _f(r.get("build_s"), ".2f"),
            _f(r.get("solve_s"), ".2f"), _f(r.get("solver_time_s"), ".2f"), _f(r.get("wall_s"), ".2f"),
            _f(r.get("nodes"), "d"), f"{r['status']} ({r['solver']}, {r.get('follower', 'auto')})",
            _f(r.get("gap"), ".1e"), _f(r.get("objective"), ".4f"), _f(r.get("peak_rss_mb"), ".0f")]


def report(rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    out = [markdown(COLUMNS, [cells(r) for r in rows])]
    for c in checks:
        cmp = c["compare"]
        out.append(f"SCIP check {c['adns']} ADNs x {c['periods']} h: fast {_f(c['fast'].get('objective'), '.6f')}, "
                   f"SCIP {_f(c['scip'].get('objective'), '.6f')} ({c['scip']['status']}), rel diff "
                   f"{_f(cmp.get('rel_diff'), '.1e')}: {cmp['check']}")
    for r in rows:
        if r["status"] == "error":
            out.append(f"{r['adns']} ADNs x {r['periods']} h ({r['solver']}): {r.get('message', '')}")
    return "\n\n".join(out)


# --------------------------------------------------------------------------------------------------------------------
# CLI


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/scale118.py",
                                description="case118 TN with a mix of simbench MV and case33bw ADNs: one DSO-led "
                                            "solve per ADN count (fast solver), optionally checked against SCIP.")
    p.add_argument("--adns", type=_ints, default=[10, 50, 100], metavar="LIST",
                   help="ADN counts, comma-separated (default: 10,50,100)")
    p.add_argument("--periods", type=int, default=24, help="hourly periods (default: %(default)s)")
    p.add_argument("--start-hour", type=float, default=0.0, help="first hour (default: %(default)s)")
    p.add_argument("--day-of-year", type=int, default=196, help="profile day (default: %(default)s)")
    p.add_argument("--time-limit", type=float, default=300.0, metavar="S",
                   help="time limit per solve (default: %(default)s)")
    p.add_argument("--mip-gap", type=float, default=1e-3, metavar="G", help="relative gap (default: %(default)s)")
    p.add_argument("--scip-adns", type=_ints, default=[2, 3], metavar="LIST",
                   help="ADN counts of the SCIP check, empty for none (default: 2,3)")
    p.add_argument("--scip-periods", type=int, default=4, help="periods of the SCIP check (default: %(default)s)")
    p.add_argument("--scip-time-limit", type=float, default=300.0, metavar="S",
                   help="time limit of each SCIP check solve (default: %(default)s)")
    p.add_argument("--scip-follower", default="auto", choices=["kkt", "auto"],
                   help="SCIP's follower form: 'auto' the fast strategy's model, so the check is of the solver "
                        "(default; with 'kkt', the plain MISOCP, SCIP 10.0.2 aborted with SIGABRT on 2 ADNs x 4 h)")
    p.add_argument("--profile", action="store_true", help="run each fast solve of --adns under cProfile")
    p.add_argument("--output", type=Path, default=RESULTS / "scale118.json",
                   help="JSON, rewritten after every run (default: benchmarks/results/scale118.json)")
    p.add_argument("--in-process", action="store_true", help="no child process per run (easier debugging)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mip_gap < 1e-4:
        raise SystemExit("--mip-gap below 1e-4 is not meaningful with Clarabel's 1e-8 tolerances")
    with tempfile.TemporaryDirectory() as tmp:
        scenario = str(mix_scenario(Path(tmp), args.day_of_year, args.start_hour))
        args.scenario = f"{TN} + mix {', '.join(s['name'] for s in MIX)} (scale118.MIX)"
        env = environment(args) | {"mix": [dict(s) for s in MIX], "scenario_yaml": Path(scenario).read_text()}
        rows: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        payload = {"environment": env, "rows": rows, "scip_checks": checks}
        common = {"scenario": scenario, "mip_gap": args.mip_gap}
        for n in args.scip_adns:
            check: dict[str, Any] = {"adns": n, "periods": args.scip_periods}
            for solver, limit, follower in (("fast", args.time_limit, "auto"),
                                            ("scip", args.scip_time_limit, args.scip_follower)):
                check[solver] = run(common | {"n_adns": n, "periods": args.scip_periods, "solver": solver,
                                              "time_limit": limit, "follower": follower}, args)
                rows.append(check[solver])
                print(plain(COLUMNS, [cells(check[solver])]).splitlines()[-1], flush=True)
            check["compare"] = compare(check["scip"], check["fast"], args.mip_gap)
            checks.append(check)
            write(args.output, payload)
        for n in args.adns:
            rows.append(run(common | {"n_adns": n, "periods": args.periods, "solver": "fast",
                                      "time_limit": args.time_limit, "profile": args.profile}, args))
            print(plain(COLUMNS, [cells(rows[-1])]).splitlines()[-1], flush=True)
            write(args.output, payload)
    print()
    print(report(rows, checks))
    print(f"\nresults written to {args.output}")
    return 1 if any(c["compare"]["check"] == "FAIL" for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
