"""``tsodso sweep``: a grid of scenarios run on dask.distributed (a LocalCluster, or any scheduler by address).

The sweep file (docs/sweep.md) names a scenario, a mode (``solve`` or ``run``), ``base`` overrides, CLI ``options``
and a ``grid`` of dotted scenario keys (and ``scheme``) to lists of values; the runs are the product of the lists.
Every grid point is validated by ``scenarios.config.parse_scenario`` and every option by the mode's argparse parser
before any run starts, so the list of scenario keys lives in one place (config.py), not here.

One run is :func:`run_one`, a plain module-level function: it is what is shipped to a worker. It invokes the CLI
in-process in a temporary folder and returns the result file's bytes with the summary row, so the driver writes all
results under ``DIR`` and workers on other machines need no shared file system.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scenarios.cli_common import UsageError, console
from scenarios.output_files import failed_path

SWEEP_DIR = Path(__file__).resolve().parent / "sweeps"  # shipped sweep files
MODES = {"solve": ".json", "run": ".h5"}  # mode -> result file suffix
SWEEP_KEYS = ("scenario", "mode", "base", "options", "grid")
OK_STATUSES = ("optimal", "feasible", "ok")
LOST = "lost"  # the cluster lost the run (worker died, cancelled): not the run's own failure, resume runs it again
# CLI options the sweep sets itself (per run), so a sweep file may not set them
RESERVED_OPTIONS = ("scenario", "output", "no_progress", "help")
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FIXED_COLUMNS = ("index", "run_id")
RUN_COLUMNS = ("status", "error", "wall_time_s", "solve_time_s", "worker", "started", "finished", "result")
_SEGMENT = re.compile(r"^([^\[\]]*)((?:\[[^\[\]]+\])*)$")


# --- the sweep file -----------------------------------------------------------------------------------------------
@dataclass
class Sweep:
    """A validated sweep file: one run spec per grid point (a plain dict, picklable: it is sent to a worker)."""

    source: str
    mode: str
    scenario_file: Path
    parameters: list[str]  # the grid keys, in file order
    runs: list[dict[str, Any]] = field(default_factory=list)  # index, run_id, mode, params, argv, scenario


def _error(source: str, key: str, value: Any, problem: str, allowed: str | None = None) -> UsageError:
    got = "" if value is None else f" = {value!r}"
    return UsageError(f"{source}: {key}{got}: {problem}" + (f"; allowed: {allowed}" if allowed else ""))


def sweep_file(path_or_name: str | Path) -> Path:
    """A sweep file path, or the name of a shipped one (``example`` -> ``scenarios/sweeps/example.yaml``)."""
    path = Path(path_or_name)
    shipped = SWEEP_DIR / f"{path_or_name}.yaml"
    if not path.is_file() and path.suffix == "" and shipped.is_file():
        return shipped
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in SWEEP_DIR.glob("*.yaml")))
        raise UsageError(f"{path}: sweep file not found; allowed: a YAML file path or one of: {names}")
    return path


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file completely (every grid point, every option); raises ``UsageError``."""
    path = sweep_file(path)
    src = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{src}: not valid YAML: {exc}") from None
    return parse_sweep(data, source=src, base_dir=path.parent)


def parse_sweep(data: Any, source: str = "<sweep>", base_dir: str | Path = ".") -> Sweep:
    """Validate a sweep mapping; ``base_dir`` resolves a relative ``scenario`` path (then the working folder)."""
    from scenarios.config import ScenarioError, parse_scenario

    if not isinstance(data, Mapping):
        raise _error(source, "<top level>", data, "must be a mapping (key: value)")
    for key in data:
        if key not in SWEEP_KEYS:
            raise _error(source, str(key), data[key], "unknown key", ", ".join(SWEEP_KEYS))
    mode = data.get("mode", "solve")
    if not isinstance(mode, str) or mode not in MODES:
        raise _error(source, "mode", mode, "unknown mode", ", ".join(MODES))
    scenario_file = _scenario_file(source, data.get("scenario"), Path(base_dir))
    try:
        raw = yaml.safe_load(scenario_file.read_text())
    except yaml.YAMLError as exc:
        raise _error(source, "scenario", str(scenario_file), f"not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise _error(source, "scenario", str(scenario_file), "the scenario file is not a mapping")
    raw = dict(raw)
    if isinstance(raw.get("placement_file"), str):  # scenario copies live elsewhere: pin the path it points to
        pf = Path(raw["placement_file"])
        raw["placement_file"] = str(pf if pf.is_absolute() else (scenario_file.parent / pf).resolve())

    base = data.get("base") or {}
    if not isinstance(base, Mapping):
        raise _error(source, "base", base, "must be a mapping of scenario keys to values")
    base_scheme = base.get("scheme")
    base = {k: v for k, v in base.items() if k != "scheme"}
    for key, value in base.items():
        apply_override(raw, str(key), value, source, f"base.{key}")

    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise _error(source, "options", options, "must be a mapping of CLI options of the mode to values")
    argv = option_argv(mode, options, source)
    if base_scheme is not None:
        argv += ["--scheme", str(base_scheme)]

    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise _error(source, "grid", grid, "must be a mapping of dotted scenario keys (or 'scheme') to lists")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _error(source, f"grid.{key}", values, "must be a non-empty list of values")
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
            raise _error(source, f"grid.{key}", values, "has a value twice")
    params = [str(k) for k in grid]
    parser = _mode_parser(mode)
    sweep = Sweep(source=source, mode=mode, scenario_file=scenario_file, parameters=params)
    parsed: list[tuple[str, argparse.Namespace, dict]] = []
    for index, combo in enumerate(itertools.product(*(grid[k] for k in grid))):
        point = dict(zip(params, combo, strict=True))
        where = f"grid point {index} ({_describe(point)})"
        scenario = copy.deepcopy(raw)
        run_argv = list(argv)
        for key, value in point.items():
            if key == "scheme":
                run_argv += ["--scheme", str(value)]
            else:
                apply_override(scenario, key, value, f"{source}: {where}", f"grid.{key}")
        parsed.append((f"{source}: {where}", _check_argv(parser, mode, run_argv, f"{source}: {where}"), scenario))
        try:
            parse_scenario(scenario, source=f"{source}: {where}: scenario {scenario_file.name}",
                           base_dir=scenario_file.parent)
        except ScenarioError as exc:
            raise UsageError(str(exc)) from None
        spec = {"index": index, "mode": mode, "params": point, "argv": run_argv, "scenario": scenario}
        spec["run_id"] = run_id(index, point, spec)
        sweep.runs.append(spec)
    _check_combinations(parsed)
    return sweep


def _check_combinations(points: list[tuple[str, argparse.Namespace, dict]]) -> None:
    """``cli_common.check_combination`` at every grid point, with the solver the run would use (``run``: the point's
    scenario ``coordinator.solver`` unless ``--solver`` is given). As in ``tsodso study``, the formulation options
    are for the DSO-led points: a TSO-led point is refused for them only when no point of the sweep is DSO-led."""
    from coordinator.solvers.base import chosen_solver
    from scenarios.cli_common import check_combination

    schemes = {ns.scheme or "dso-led" for _, ns, _ in points}
    for where, ns, scenario in points:
        scheme = ns.scheme or "dso-led"
        if scheme != "dso-led" and "dso-led" in schemes:
            continue
        section = scenario.get("coordinator") if isinstance(scenario.get("coordinator"), Mapping) else {}
        solver = chosen_solver(ns.solver, section.get("solver"))
        check_combination(ns, solver=solver, schemes=[scheme], where=where)


def _scenario_file(source: str, value: Any, base_dir: Path) -> Path:
    from scenarios.config import SCENARIO_DIR, scenario_names

    allowed = "a YAML file path or one of: " + ", ".join(scenario_names())
    if not isinstance(value, str) or not value:
        raise _error(source, "scenario", value, "required: a shipped scenario name or a path", allowed)
    if value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value:
        for candidate in (base_dir / value, Path(value)):
            if candidate.is_file():
                return candidate.resolve()
    elif (SCENARIO_DIR / f"{value}.yaml").is_file():
        return SCENARIO_DIR / f"{value}.yaml"
    raise _error(source, "scenario", value, "scenario not found", allowed)


def _describe(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "no grid"


# --- overrides ----------------------------------------------------------------------------------------------------
def _segments(key: str) -> list[str]:
    """``adns[2].vmax`` / ``adns.2.vmax`` / ``adns.*.vmax`` -> ``['adns', '2', 'vmax']`` (``['adns', '*', ...]``)."""
    out: list[str] = []
    for part in key.split("."):
        m = _SEGMENT.match(part)
        if not part or not m:
            raise ValueError(f"bad dotted key {key!r}")
        if m.group(1):
            out.append(m.group(1))
        out += re.findall(r"\[([^\[\]]+)\]", m.group(2))
    if not out:
        raise ValueError(f"bad dotted key {key!r}")
    return out


def apply_override(data: dict[str, Any], key: str, value: Any, source: str = "<sweep>",
                   field_name: str | None = None) -> None:
    """Set dotted ``key`` of the raw scenario mapping ``data`` to ``value`` (in place).

    In a list (``adns``), a segment is an index, an item's ``name`` or ``*`` (every item). A missing mapping on the way
    is created: whether the key is allowed there is for ``parse_scenario`` to say. A mapping value is merged into an
    existing mapping (``base: {prices: {c_wheel: 5}}`` keeps the other prices).
    """
    field_name = field_name or key
    try:
        parts = _segments(key)
    except ValueError as exc:
        raise _error(source, field_name, None, str(exc),
                     "dotted keys such as tn.case, adns.*.vmax, adns[0].vmax") from None
    _set(data, parts, value, source, field_name, "")


def _set(node: Any, parts: list[str], value: Any, source: str, field_name: str, done: str) -> None:
    head, rest = parts[0], parts[1:]
    here = f"{done}.{head}" if done else head
    if isinstance(node, list):
        if head == "*":
            targets = list(range(len(node)))
        elif re.fullmatch(r"-?\d+", head):
            k = int(head)
            if not -len(node) <= k < len(node):
                raise _error(source, field_name, value, f"{done} has {len(node)} items, no item {k}",
                             f"0 .. {len(node) - 1}, a name or *")
            targets = [k]
        else:
            targets = [i for i, item in enumerate(node) if isinstance(item, Mapping) and item.get("name") == head]
            if not targets:
                names = [str(i.get("name")) for i in node if isinstance(i, Mapping)]
                raise _error(source, field_name, value, f"{done} has no item named {head!r}",
                             "an index, * or one of: " + ", ".join(names))
        for k in targets:
            if rest:
                _set(node[k], rest, value, source, field_name, f"{done}[{k}]")
            else:
                node[k] = _merged(node[k], value)
        return
    if not isinstance(node, dict):
        raise _error(source, field_name, value, f"{done} is {node!r}, not a mapping or a list")
    if head == "*":
        raise _error(source, field_name, value, f"'*' needs a list, and {done or 'the top level'} is a mapping")
    if not rest:
        node[head] = _merged(node.get(head), value)
        return
    if node.get(head) is None:
        node[head] = [] if rest[0] == "*" else {}
    _set(node[head], rest, value, source, field_name, here)


def _merged(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, Mapping):
        out = dict(old)
        for k, v in new.items():
            out[k] = _merged(old.get(k), v)
        return out
    return copy.deepcopy(new)


# --- options ------------------------------------------------------------------------------------------------------
def _mode_parser(mode: str) -> argparse.ArgumentParser:
    from scenarios.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[mode]


def option_argv(mode: str, options: Mapping[str, Any], source: str) -> list[str]:
    """``{time_limit: 30, voltage_cuts: true}`` -> ``['--time-limit', '30', '--voltage-cuts']``, checked against the
    mode's parser one option at a time so an error names the option."""
    parser = _mode_parser(mode)
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in RESERVED_OPTIONS}
    argv: list[str] = []
    for key, value in options.items():
        name = str(key).replace("-", "_")
        action = actions.get(name)
        if action is None:
            raise _error(source, f"options.{key}", value, f"not an option of 'tsodso {mode}'",
                         ", ".join(sorted(actions)))
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true
            if not isinstance(value, bool):
                raise _error(source, f"options.{key}", value, "must be true or false")
            argv += [flag] if value else []
            continue
        text = str(value)
        try:
            converted = action.type(text) if action.type else text
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise _error(source, f"options.{key}", value, str(exc)) from None
        if action.choices is not None and converted not in action.choices:
            raise _error(source, f"options.{key}", value, "not an allowed value",
                         ", ".join(map(str, action.choices)))
        argv += [flag, text]
    return argv


def _check_argv(parser: argparse.ArgumentParser, mode: str, argv: list[str], where: str) -> argparse.Namespace:
    """The whole command line of a run parses (e.g. a ``scheme`` value is one of the choices); returns it parsed."""
    schemes = [argv[k + 1] for k, a in enumerate(argv[:-1]) if a == "--scheme"]
    choices = next(a.choices for a in parser._actions if a.dest == "scheme")
    if schemes and schemes[-1] not in choices:  # the last --scheme wins, as on the command line
        raise _error(where, "scheme", schemes[-1], "not an allowed value", ", ".join(choices))
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            return parser.parse_args(["scenario.yaml", *argv])
        except SystemExit:
            raise UsageError(f"{where}: options: {err.getvalue().strip().splitlines()[-1]}") from None


def run_id(index: int, point: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """``0003-day_of_year=15-scheme=tso-led-1a2b3c4d``: readable, and the hash covers the resolved scenario, mode
    and options, so ``--resume`` only skips a run that would be the same run again."""
    readable = "-".join(f"{k.replace('*', 'all')}={v}" for k, v in point.items())
    readable = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", readable)[:80]
    digest = hashlib.sha1(json.dumps({"mode": spec["mode"], "argv": spec["argv"], "scenario": spec["scenario"]},
                                     sort_keys=True, default=str).encode()).hexdigest()[:8]
    return "-".join(p for p in (f"{index:04d}", readable, digest) if p)


# --- one run (on a worker) ----------------------------------------------------------------------------------------
def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one grid point with the CLI, in-process, in a temporary folder; never raises for a failed run.

    Returns ``{"row": summary row, "result": result file bytes or None, "log": captured output}``.
    """
    from scenarios.cli import main

    for key, value in SINGLE_THREAD_ENV.items():  # for subprocesses of the run (a scheduler's own workers keep theirs)
        os.environ.setdefault(key, value)
    suffix = MODES[spec["mode"]]
    row: dict[str, Any] = {"index": spec["index"], "run_id": spec["run_id"], **spec["params"],
                           "worker": _worker_address(), "started": _now()}
    t0 = time.perf_counter()
    result_bytes: bytes | None = None
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="tsodso-sweep-") as tmp:
        scenario_path = Path(tmp) / f"{spec['run_id']}.yaml"
        scenario_path.write_text(yaml.safe_dump(spec["scenario"], sort_keys=False))
        result_path = Path(tmp) / f"{spec['run_id']}{suffix}"
        argv = [spec["mode"], str(scenario_path), "--output", str(result_path), *spec["argv"]]
        if spec["mode"] == "run":
            argv.append("--no-progress")
        code: int | None = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - a run's crash is a row, not the end of the sweep
            if isinstance(exc, KeyboardInterrupt):
                raise
            out.write(traceback.format_exc())
            row["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            _reset_loguru()
        row["wall_time_s"] = time.perf_counter() - t0
        if not result_path.exists() and failed_path(result_path).exists():  # a solve without a solution
            result_path = failed_path(result_path)
        if result_path.exists():
            result_bytes = result_path.read_bytes()
            row.update(_result_fields(spec["mode"], result_path, code))
        else:
            row["status"] = "error"
            row.setdefault("error", _last_error(out.getvalue(), code))
    if row.get("status") not in OK_STATUSES and not row.get("error"):
        row["error"] = _last_error(out.getvalue(), code)
    row["finished"] = _now()
    return {"row": row, "result": result_bytes, "log": out.getvalue()}


def _reset_loguru() -> None:
    """``tsodso run`` leaves loguru on the stderr of the moment, which was the capture of this run."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr)


def _result_fields(mode: str, path: Path, code: int | None) -> dict[str, Any]:
    """Status, solve time and the KPI totals (``scenarios.report.run_kpis``) of a finished run's file."""
    from scenarios.report import run_kpis
    from scenarios.results_io import load_run

    fields_: dict[str, Any] = {}
    if mode == "solve":
        res = json.loads(path.read_text())
        fields_["status"] = res.get("status", "error")
        fields_["solve_time_s"] = res.get("solve_time_s")
        if fields_["status"] not in OK_STATUSES:
            fields_["error"] = res.get("message") or f"solve status {fields_['status']}"
    else:
        fields_["status"] = "ok" if code == 0 else "failed"
    try:
        run = load_run(path)
    except (ValueError, KeyError, OSError) as exc:  # e.g. an infeasible solve: no time series to compute KPIs of
        fields_.setdefault("error", str(exc))
        return fields_
    if mode == "run":
        fields_["solve_time_s"] = float(sum(x for x in run.solve_time_s if math.isfinite(x)))
    fields_.update(run_kpis(run)["total"])
    return fields_


def _last_error(log: str, code: int | None) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower() or "failed" in ln.lower():
            return ln[:500]
    return (lines[-1][:500] if lines else "") or f"exit code {code}"


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- results folder -----------------------------------------------------------------------------------------------
class Summary:
    """``DIR/summary.csv``: one row per finished run, rewritten atomically after each run (so an interrupt never
    leaves half a file), columns in a stable order: index, run_id, parameters, run columns, then KPIs."""

    def __init__(self, directory: Path, parameters: list[str]) -> None:
        self.path = directory / "summary.csv"
        self.parameters = parameters
        self.rows: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        if self.path.exists():
            with self.path.open(newline="") as f:
                self.rows = {r["run_id"]: r for r in csv.DictReader(f)}

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["run_id"]] = row
        self.write()

    def columns(self) -> list[str]:
        cols = [*FIXED_COLUMNS, *self.parameters, *RUN_COLUMNS]
        for row in self.rows.values():
            cols += [k for k in row if k not in cols]
        return cols

    def write(self) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        rows = sorted(self.rows.values(), key=lambda r: int(r["index"]))
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns(), restval="")
            writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def is_complete(row: Mapping[str, Any] | None, directory: Path, retry_failed: bool) -> bool:
    """A run is complete when its row is in summary.csv and its result file exists, or its failure is recorded
    (``--retry-failed`` runs the recorded failures again); a run the cluster lost is never complete."""
    if row is None or row.get("status") == LOST:
        return False
    ok = row.get("status") in OK_STATUSES
    if retry_failed and not ok:
        return False
    if ok:
        return bool(row.get("result")) and (directory / row["result"]).exists()
    return bool(row.get("error"))


def save_run(directory: Path, spec: Mapping[str, Any], out: Mapping[str, Any]) -> dict[str, Any]:
    """Write a finished run's result file, resolved scenario and log under ``DIR/runs``; returns its row."""
    runs = directory / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    row = dict(out["row"])
    (runs / f"{spec['run_id']}.log").write_text(out.get("log") or "")
    if out.get("result") is not None:
        target = runs / f"{spec['run_id']}{MODES[spec['mode']]}"
        target.write_bytes(out["result"])
        row["result"] = str(target.relative_to(directory))
    return row


def write_scenario_copy(directory: Path, spec: Mapping[str, Any]) -> None:
    """The resolved scenario next to the result, with the command that reproduces the run."""
    runs = directory / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    suffix = MODES[spec["mode"]]
    cmd = " ".join(["tsodso", spec["mode"], f"{spec['run_id']}.yaml", "--output", f"{spec['run_id']}{suffix}",
                    *spec["argv"]])
    text = f"# sweep run {spec['run_id']}; reproduce (in this folder): {cmd}\n"
    (runs / f"{spec['run_id']}.yaml").write_text(text + yaml.safe_dump(spec["scenario"], sort_keys=False))


# --- the driver ---------------------------------------------------------------------------------------------------
def add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="a grid of scenarios (solve or run) on dask.distributed; summary.csv + files")
    p.add_argument("sweep", help="sweep YAML file (docs/sweep.md) or the name of a shipped one (example)")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="local worker processes, one thread each (default: the number of cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="connect to a running dask scheduler (tcp://host:8786) "
                   "instead of starting a LocalCluster")
    p.add_argument("--output", type=Path, metavar="DIR", help="results folder (default: sweeps/<sweep file name>)")
    p.add_argument("--resume", action="store_true", help="continue a sweep in DIR: skip the runs already complete")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run the recorded failures again")
    p.add_argument("--no-progress", action="store_true", help="one line per finished run instead of a progress bar")
    p.set_defaults(func=cmd_sweep)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.scheduler and args.workers:
        raise UsageError("--workers starts a local cluster; with --scheduler the scheduler's workers are used")
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed needs --resume")
    args.sweep = sweep_file(args.sweep)
    sweep = load_sweep(args.sweep)
    directory = args.output or Path("sweeps") / args.sweep.stem
    summary = Summary(directory, sweep.parameters)
    if summary.path.exists() and not args.resume:
        raise UsageError(f"{summary.path} exists: add --resume to continue that sweep, or choose another --output")
    directory.mkdir(parents=True, exist_ok=True)
    summary.load()
    todo = [s for s in sweep.runs if not is_complete(summary.rows.get(s["run_id"]), directory, args.retry_failed)]
    (directory / "sweep.json").write_text(json.dumps(
        {"sweep": str(args.sweep), "mode": sweep.mode, "scenario": str(sweep.scenario_file),
         "parameters": sweep.parameters, "runs": len(sweep.runs)}, indent=1))
    (directory / "sweep.yaml").write_text(args.sweep.read_text())
    console.print(f"[bold]tsodso sweep[/] {args.sweep}: {len(sweep.runs)} runs of '{sweep.mode}' on "
                  f"{sweep.scenario_file.name} over {', '.join(sweep.parameters) or 'no grid'}; "
                  f"{len(sweep.runs) - len(todo)} already complete -> {directory}")
    if not todo:
        return _exit_code(summary, sweep)
    for spec in todo:
        write_scenario_copy(directory, spec)
    return run_sweep(todo, sweep, summary, directory, args)


def warm_up() -> None:
    """Import what every run needs (pandapower, Pyomo, the model pipeline: seconds), on a worker, before its runs."""
    import coordinator.pipeline  # noqa: F401
    import scenarios.cli  # noqa: F401
    import scenarios.config  # noqa: F401


def run_sweep(todo: list[dict[str, Any]], sweep: Sweep, summary: Summary, directory: Path,
              args: argparse.Namespace) -> int:
    """Send ``todo`` to the cluster, record each run as it finishes; Ctrl-C keeps every finished run."""
    from distributed import as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    client, cluster = start_client(args.scheduler, args.workers)
    finished = failed = 0
    try:
        workers = len(client.scheduler_info().get("workers", {}))
        console.print(f"dask: {client.scheduler.address}, {workers} workers; " + dashboard_text(client))
        client.run(warm_up)  # every worker imports the model code at once, not in its first run
        futures = client.map(run_one, todo, key=[f"tsodso-sweep-{s['run_id']}" for s in todo], pure=False)
        by_key = {f.key: spec for f, spec in zip(futures, todo, strict=True)}
        progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                            disable=args.no_progress)
        with progress:
            task = progress.add_task("runs", total=len(todo), info="")
            for future in as_completed(futures):
                spec = by_key[future.key]
                try:
                    out = future.result()
                except Exception as exc:  # noqa: BLE001 - run_one never raises: the cluster lost the run
                    out = {"row": {"index": spec["index"], "run_id": spec["run_id"], **spec["params"],
                                   "status": LOST, "error": f"{type(exc).__name__}: {exc}"}, "result": None}
                row = save_run(directory, spec, out)
                summary.add(row)
                finished += 1
                failed += row.get("status") not in OK_STATUSES
                info = f"{failed} failed" if failed else ""
                progress.update(task, advance=1, info=info)
                if args.no_progress:
                    console.print(f"run {finished}/{len(todo)} {spec['run_id']}: {row.get('status')}"
                                  + (f" ({row.get('error')})" if row.get("error") else ""))
    except KeyboardInterrupt:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # no shutdown noise of cancelled tasks
        console.print(f"[yellow]interrupted[/]: {finished} of {len(todo)} runs finished and recorded in "
                      f"{summary.path}; continue with: tsodso sweep {args.sweep} --output {directory} --resume")
        _close(client, cluster)
        return 130
    _close(client, cluster)
    console.print(f"{finished} runs finished, {failed} failed; summary: {summary.path}")
    return _exit_code(summary, sweep)


def _exit_code(summary: Summary, sweep: Sweep) -> int:
    """0 when every run of the sweep succeeded, 1 when some failed (they are recorded in summary.csv)."""
    rows = [summary.rows.get(s["run_id"]) for s in sweep.runs]
    return 0 if all(r is not None and r.get("status") in OK_STATUSES for r in rows) else 1


def start_client(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    """``Client(scheduler)``, or a LocalCluster of ``workers`` processes with one thread and single-threaded BLAS."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}) | SINGLE_THREAD_ENV
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=":8787" if _has_bokeh() else None)
    return Client(cluster), cluster


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def dashboard_text(client: Any) -> str:
    if not _has_bokeh():
        return "dashboard unavailable (pip install bokeh to get it)"
    return f"dashboard: {client.dashboard_link}"


def _close(client: Any, cluster: Any) -> None:
    with contextlib.suppress(Exception):
        client.close()
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close()


__all__ = ["Summary", "Sweep", "add_sweep_parser", "apply_override", "load_sweep", "parse_sweep", "run_one"]


if __name__ == "__main__":  # python -m scenarios.sweep SWEEP.yaml ...
    from scenarios.cli import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
