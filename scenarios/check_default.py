"""Check that a day-ahead plan shows the coordination effects the default case is built for.

    python -m scenarios.check_default RESULT.json [--scenario ieee30_5adn]

RESULT.json is the output of ``tsodso solve --output``. The TN flows are not in the JSON, so they are recomputed
independently: the TSO's DC-OPF (``coordinator.follower.solve_follower``) at the plan's PCC withdrawals, whose
dispatch must match the plan's (it is the follower's unique best response). Criteria (docs/case-study.md):

- (a) at least ``MIN_BINDING_PERIODS`` periods with a TN branch at its limit (|flow| >= 0.999 fmax);
- (b) in every such period the LMPs across buses differ by at least 10 % (max / min >= 1.10);
- (c) inter-ADN P2P through the TN > 0 MWh (``kpis.p2p_inter_mwh``);
- (d) solve status optimal.

Exit code 0 when all hold, 1 otherwise, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BINDING = 0.999  # |flow| / fmax counted as "at its limit"
MIN_BINDING_PERIODS = 3
MIN_LMP_RATIO = 1.10
MIN_INTER_P2P_MWH = 1e-3


@dataclass
class DefaultCheck:
    binding: dict[int, list[str]]  # period -> branches at their limit
    lmp_ratio: list[float]  # max / min LMP over buses, per period
    p2p_inter_mwh: float
    status: str
    dispatch_gap_mw: float  # largest |plan dispatch - independent DC-OPF dispatch|

    @property
    def passed(self) -> dict[str, bool]:
        ratios = [self.lmp_ratio[t] for t in self.binding]
        return {
            "a": len(self.binding) >= MIN_BINDING_PERIODS,
            "b": bool(ratios) and min(ratios) >= MIN_LMP_RATIO,
            "c": self.p2p_inter_mwh > MIN_INTER_P2P_MWH,
            "d": self.status == "optimal",
        }


def check_result(result: dict, scenario: str = "ieee30_5adn") -> DefaultCheck:
    """Evaluate (a)-(d) of the module docstring on a ``tsodso solve`` result of ``scenario``."""
    from coordinator.blocks.dcopf import dcopf_qp
    from coordinator.follower import solve_follower
    from scenarios.config import build_case, load_scenario

    case = build_case(load_scenario(scenario), periods=result["periods"], start_hour=result["start_hour"],
                      step_minutes=round(result["step_hours"] * 60))
    qp = dcopf_qp(case.tn)
    binding: dict[int, list[str]] = {}
    ratios, gap = [], 0.0
    plan_gen = np.array(list(result["tn"]["gen_mw"].values()))  # (gens, T) in case.tn.gens order
    for t in range(case.periods):
        w: dict[int, float] = {}
        for adn in result["adns"]:
            w[adn["tn_bus"]] = w.get(adn["tn_bus"], 0.0) + adn["pcc_mw"][t]
        sol = solve_follower(qp, qp.b_eq(case.tn.demand(t), w))
        gap = max(gap, float(np.abs(sol.x[qp.gen_col] - plan_gen[:, t]).max()))
        flows = sol.x[qp.flow_col]
        at_limit = [ln.name for ln, f in zip(case.tn.lines, flows, strict=True) if abs(f) >= BINDING * ln.fmax]
        if at_limit:
            binding[t] = at_limit
        lmp = [result["tn"]["lmp"][str(n)][t] for n in case.tn.buses]
        ratios.append(max(lmp) / min(lmp) if min(lmp) > 0 else float("inf"))
    return DefaultCheck(binding, ratios, float(result["kpis"]["p2p_inter_mwh"]), result["status"], gap)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result", help="JSON written by tsodso solve --output")
    p.add_argument("--scenario", default="ieee30_5adn", help="scenario the result was solved for")
    args = p.parse_args(argv)
    path = Path(args.result)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"{path}: cannot read a solve result ({exc})", file=sys.stderr)
        return 2
    from scenarios.config import ScenarioError

    try:
        chk = check_result(result, args.scenario)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    ok = chk.passed
    periods = ", ".join(f"{t}: {'+'.join(names)}" for t, names in chk.binding.items()) or "none"
    ratios = [chk.lmp_ratio[t] for t in chk.binding]
    print(f"(a) periods with a TN branch at its limit: {len(chk.binding)} (need >= {MIN_BINDING_PERIODS}): {periods}")
    print("(b) max/min LMP in those periods: " + (f"{min(ratios):.3f} .. {max(ratios):.3f}" if ratios else "-")
          + f" (need >= {MIN_LMP_RATIO})")
    print(f"(c) inter-ADN P2P: {chk.p2p_inter_mwh:.3f} MWh (need > 0)")
    print(f"(d) status: {chk.status}")
    print(f"independent DC-OPF vs plan dispatch: max |gap| {chk.dispatch_gap_mw:.2e} MW")
    print("all criteria hold" if all(ok.values()) else "FAILED: " + ", ".join(k for k, v in ok.items() if not v))
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
