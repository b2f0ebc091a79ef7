"""The paper's three findings against a ``tsodso study`` JSON: does each hold, with its interval, and when does it
reverse (against the day's PV penetration and the TN's congestion level)?

``python -m scenarios.study_findings benchmarks/results/study.json [--doc docs/case-study.md]`` prints the Markdown
block (and rewrites the block between ``<!-- findings:begin -->`` / ``<!-- findings:end -->`` of ``--doc``). The
statistics are the study's own (paired t, 95 %); the covariates are computed here from the scenario's data for
each day, independently of the solves: PV penetration = available PV / ADN demand over the day, congestion level =
the mean TN load scale of the day (the derated line binds above about half the annual peak).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

FINDINGS = (("bess_throughput_mwh", "more BESS use", "BESS throughput (MWh)", +1),
            ("self_consumption", "more local self-consumption", "self-consumption", +1),
            ("tn_import_mwh", "fewer TN imports", "TN import (MWh)", -1))
BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"


def covariates(scenario: str, days: list[int]) -> dict[int, tuple[float, float]]:
    """Per day: (PV available / ADN demand, mean TN load scale), from the scenario's own data."""
    from scenarios.config import build_case, load_scenario

    cfg = load_scenario(scenario)
    out = {}
    for day in days:
        case = build_case(dataclasses.replace(cfg, day_of_year=day))
        pv = sum(float(a.pv_avail.sum()) for a in case.adns)
        load = sum(float(a.load_p.sum()) for a in case.adns)
        out[day] = (pv / load if load > 0 else math.nan, float(np.mean(case.tn.load_scale)))
    return out


def _diffs(study: dict, key: str) -> dict[int, float]:
    a, b = study.get("schemes", ["dso-led", "tso-led"])[:2]
    out = {}
    for row in study["days"]:
        x, y = row.get(a, {}).get("kpis", {}).get(key), row.get(b, {}).get("kpis", {}).get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y):
            out[row["day"]] = x - y
    return out


def _terciles(values: dict[int, float]) -> list[list[int]]:
    days = sorted(values, key=lambda d: values[d])
    k = len(days)
    return [days[: k // 3], days[k // 3: 2 * k // 3], days[2 * k // 3:]]


def markdown(study: dict, cov: dict[int, tuple[float, float]]) -> str:
    findings = {f["kpi"]: f for f in study["findings"]}
    lines = [f"From `{study.get('command', 'tsodso study')}` ({findings[FINDINGS[0][0]]['n_days']} paired days; "
             "difference = DSO-led minus TSO-led; 95 % interval by paired t).", "",
             "| finding (paper) | KPI | mean difference | 95 % interval | days in the paper's direction | holds? |",
             "|---|---|---:|---:|---:|:---|"]
    for key, finding, label, sign in FINDINGS:
        f = findings[key]
        d = _diffs(study, key)
        along = sum(1 for v in d.values() if sign * v > 1e-6 * max(1.0, abs(v)))
        lo, hi = f["ci_low"], f["ci_high"]
        holds = ("yes" if sign * lo > 0 and sign * hi > 0 else "no, reversed" if sign * lo < 0 and sign * hi < 0
                 else "not significant")
        lines.append(f"| {finding} | {label} | {f['mean_diff']:+.4g} | [{lo:+.4g}, {hi:+.4g}] | {along} of {len(d)} "
                     f"| {holds} |")
    lines += ["", "Mean difference per third of the days, sorted by the day's PV penetration (available PV / ADN "
              "demand) and by its congestion level (mean TN load scale):", "",
              "| KPI | low PV | mid PV | high PV | low TN load | mid TN load | high TN load |", "|---|" + "---:|" * 6]
    pv = {d: c[0] for d, c in cov.items()}
    tn = {d: c[1] for d, c in cov.items()}
    for key, _, label, _ in FINDINGS:
        d = _diffs(study, key)
        cells = []
        for values in (pv, tn):
            for group in _terciles({k: v for k, v in values.items() if k in d}):
                cells.append(f"{np.mean([d[k] for k in group]):+.3g}" if group else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, values in (("PV penetration", pv), ("mean TN load scale", tn)):
        groups = _terciles(values)
        lines.append("")
        lines.append(f"{name} in the thirds: " + ", ".join(
            f"{min(values[k] for k in g):.2f}-{max(values[k] for k in g):.2f}" for g in groups if g) + ".")
    return "\n".join(lines)


def replace_block(doc: Path, block: str) -> None:
    text = doc.read_text()
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scenarios.study_findings", description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path, help="JSON of tsodso study (or of benchmarks/study.py)")
    p.add_argument("--scenario", help="scenario of the study (default: the one the JSON names)")
    p.add_argument("--doc", type=Path, help="rewrite the findings block of this Markdown file")
    args = p.parse_args(argv)
    data = json.loads(args.study.read_text())
    study = data.get("study", data)
    scenario = args.scenario or study.get("scenario", "ieee30_5adn")
    cov = covariates(scenario, [row["day"] for row in study["days"]])
    block = markdown(study, cov)
    print(block)
    if args.doc:
        replace_block(args.doc, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
