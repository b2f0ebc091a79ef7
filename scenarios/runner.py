"""Turn a scenario into a mosaik World and run it: DSO agents + TSO + coordinator in one same-time loop group, the
pandapower grid and the HDF5 recorder outside it, plus the scenario's plugin simulators.

The architecture and the data flow are described in ``docs/cosimulation.md``; plugins in ``docs/plugins.md``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import math
import os
import resource
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import h5py
import mosaik
import numpy as np
from loguru import logger
from mosaik.exceptions import ScenarioError as MosaikScenarioError

from coordinator.kpis import self_consumption
from coordinator.solvers.base import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT, SolveOptions, chosen_solver
from scenarios.config import STEPS, ScenarioConfig, ScenarioError, build_case
from scenarios.plugins import (
    PluginSpec,
    SimulatorSpec,
    expand,
    parse_plugins,
    parse_simulators,
    plain,
)
from scenarios.run_guard import RunGuard, RunStopped
from simulators import coordinator_sim as coord
from simulators import dso as dso_sim
from simulators import grid as grid_sim
from simulators import tso as tso_sim
from simulators.dso import ForecastNoise
from simulators.recorder import ROWS_COMPLETE, TIME, ResultsWriteError

CORE_SIMS: dict[str, dict[str, str]] = {
    "DSO": {"python": "simulators.dso:DSOSim"},
    "TSO": {"python": "simulators.tso:TSOSim"},
    "Coordinator": {"python": "simulators.coordinator_sim:CoordinatorSim"},
    "Grid": {"python": "simulators.grid:GridSim"},
    "Recorder": {"python": "simulators.recorder:Recorder"},
}
COORDINATOR_FIELDS = ("horizon_hours", "solver", "time_limit", "mip_gap", "forecast", "step_timeout_s")
LOOP_ATTRS = ("offer", "tn_offer", "setpoint", "dispatch")  # owned by the agent/coordinator loop
DEFAULT_HORIZON_HOURS = 24.0
DEFAULT_STEP_TIMEOUT_MARGIN_S = 600.0  # coordinator.step_timeout_s default: 2 x time_limit + this
PROFILE_YEAR = 2016  # simbench profiles
PROFILE_DAYS = 366  # 2016 is a leap year
PARTIAL_SUFFIX = ".partial"  # results/x.h5 is written as results/x.h5.partial and renamed at the successful end


class RunFailed(RuntimeError):
    """The co-simulation stopped before its end (a plugin crashed, a simulator raised); the HDF5 file keeps the
    steps recorded before."""


StepCallback = Callable[[int, int, Mapping[str, Any]], None]  # (step index, steps, coordinator stats)


@dataclass
class RunSettings:
    """What a caller may override; ``None`` means the scenario's value (``coordinator:`` section) or the default."""

    hours: float | None = None
    step: str | None = None  # "1h" | "15min"
    horizon_hours: float | None = None
    solver: str | None = None
    time_limit: float | None = None
    mip_gap: float | None = None
    output: Path | None = None
    days: int | None = None  # whole days from the scenario's start (instead of hours)
    overwrite: bool = False  # replace an existing results file (at the successful end of the run)
    formulation: Any = None  # coordinator.dso_led.Formulation; None: its defaults
    planner: coord.Planner | None = None  # replaces the MISOCP (tests, baselines)
    on_step: StepCallback | None = None
    debug: bool = False  # mosaik debug mode: keeps the execution graph (slower)


@dataclass(frozen=True)
class RunPlan:
    """Resolved numbers of one run."""

    step_minutes: int
    steps: int
    horizon: int
    start_hour: float
    solve: SolveOptions
    noise: ForecastNoise
    output: Path
    coordinator_timeout_s: float = math.inf  # wall-clock limit of one coordinator step

    @property
    def partial(self) -> Path:
        """Where the run writes until it has ended successfully."""
        return partial_path(self.output)

    @property
    def step_seconds(self) -> int:
        return self.step_minutes * 60

    @property
    def step_hours(self) -> float:
        return self.step_minutes / 60.0


@dataclass
class RunResult:
    path: Path
    plan: RunPlan
    summary: dict[str, Any]
    execution_graph: Any = None  # networkx graph when RunSettings.debug
    timings: dict[str, float] = field(default_factory=dict)


# --- settings ------------------------------------------------------------------------------------------------------
def _number(cfg: ScenarioConfig, path: str, value: Any, lo: float, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value <= lo if strict else value < lo):
        raise ScenarioError(cfg.source, path, value, "must be a number " + (">" if strict else ">=") + f" {lo:g}")
    return float(value)


def resolve(cfg: ScenarioConfig, settings: RunSettings) -> RunPlan:
    """Combine scenario, ``coordinator:`` section and caller overrides; errors name the field."""
    section = cfg.sections.get("coordinator", {})
    if not isinstance(section, Mapping):
        raise ScenarioError(cfg.source, "coordinator", plain(section), "must be a mapping")
    unknown = [k for k in section if k not in COORDINATOR_FIELDS]
    if unknown:
        raise ScenarioError(cfg.source, f"coordinator.{unknown[0]}", section[unknown[0]], "unknown field",
                            ", ".join(COORDINATOR_FIELDS))
    step = settings.step or cfg.step
    if step not in STEPS:
        raise ScenarioError(cfg.source, "step", step, "not an allowed value", ", ".join(STEPS))
    step_minutes = STEPS[step]
    hours = settings.hours if settings.hours is not None else cfg.periods * cfg.step_hours
    if settings.days is not None:
        if settings.hours is not None:
            raise ScenarioError(cfg.source, "--days", settings.days, "give either --days or --hours, not both")
        if isinstance(settings.days, bool) or not isinstance(settings.days, int) or settings.days < 1:
            raise ScenarioError(cfg.source, "--days", settings.days, "must be an integer >= 1")
        hours = 24.0 * settings.days
    steps = hours * 60 / step_minutes
    if hours <= 0 or not math.isclose(steps, round(steps)):
        raise ScenarioError(cfg.source, "--hours", hours, f"must be a positive multiple of the step ({step})")
    end_day = cfg.day_of_year + (cfg.start_hour + hours) / 24.0
    if end_day > PROFILE_DAYS + 1 + 1e-9:
        last = cfg.day_of_year + math.ceil((cfg.start_hour + hours) / 24.0) - 1
        most = (PROFILE_DAYS + 1 - cfg.day_of_year) * 24 - cfg.start_hour
        raise ScenarioError(cfg.source, "--days" if settings.days is not None else "--hours", settings.days or hours,
                            f"the run would end on day {last} of the {PROFILE_YEAR} profiles, past their last day "
                            f"({PROFILE_DAYS})", f"at most {most:g} h from day_of_year {cfg.day_of_year}, "
                            f"{cfg.start_hour:g} h")
    h_hours = settings.horizon_hours if settings.horizon_hours is not None else section.get(
        "horizon_hours", DEFAULT_HORIZON_HOURS)
    h_hours = _number(cfg, "coordinator.horizon_hours", h_hours, 0.0)
    horizon = h_hours * 60 / step_minutes
    if not math.isclose(horizon, round(horizon)):
        raise ScenarioError(cfg.source, "coordinator.horizon_hours", h_hours,
                            f"must be a multiple of the step ({step})")
    forecast = section.get("forecast", {})
    if not isinstance(forecast, Mapping) or any(k not in ("noise", "seed") for k in forecast):
        raise ScenarioError(cfg.source, "coordinator.forecast", plain(forecast), "must be a mapping",
                            "{noise: relative std. deviation, seed: integer}")
    sigma = _number(cfg, "coordinator.forecast.noise", forecast.get("noise", 0.0), 0.0, strict=False)
    seed = forecast.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError(cfg.source, "coordinator.forecast.seed", seed, "must be an integer >= 0")
    solver = chosen_solver(settings.solver, section.get("solver"))
    from coordinator.solvers import STRATEGIES

    if solver not in STRATEGIES:
        raise ScenarioError(cfg.source, "coordinator.solver", solver, "unknown solver", ", ".join(sorted(STRATEGIES)))
    time_limit = settings.time_limit if settings.time_limit is not None else _number(
        cfg, "coordinator.time_limit", section.get("time_limit", DEFAULT_TIME_LIMIT), 0.0)
    mip_gap = settings.mip_gap if settings.mip_gap is not None else _number(
        cfg, "coordinator.mip_gap", section.get("mip_gap", DEFAULT_MIP_GAP), 0.0, strict=False)
    step_timeout = _number(cfg, "coordinator.step_timeout_s", section.get(
        "step_timeout_s", DEFAULT_STEP_TIMEOUT_MARGIN_S + 2 * time_limit), 0.0)
    output = settings.output or _output_path(cfg)
    return RunPlan(step_minutes, round(steps), round(horizon), cfg.start_hour,
                   # no repair trials: a resumed run must end with the uninterrupted run's datasets, and a repaired
                   # incumbent keeps the relaxed point's values where the optimum is not unique (solvers/repair.py)
                   SolveOptions(solver=solver, time_limit=time_limit, mip_gap=mip_gap, repair_from_columns=None),
                   ForecastNoise(sigma, seed), Path(output), step_timeout)



def _output_path(cfg: ScenarioConfig) -> Path:
    section = cfg.sections.get("output", {})
    if not isinstance(section, Mapping) or any(k != "path" for k in section):
        raise ScenarioError(cfg.source, "output", plain(section), "must be a mapping", "{path: results/run.h5}")
    path = section.get("path", f"results/{cfg.name}.h5")
    if not isinstance(path, str):
        raise ScenarioError(cfg.source, "output.path", path, "must be a path string")
    return Path(path)


def config_record(cfg: ScenarioConfig) -> dict[str, Any]:
    """The scenario config as plain JSON-able data (root attribute of the HDF5 file)."""

    def conv(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return {f.name: conv(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Mapping):
            return {str(k): conv(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [conv(v) for v in value]
        return value

    return conv(cfg)


def run_record(plan: RunPlan, settings: RunSettings) -> dict[str, Any]:
    """The run's settings (root attribute ``run``): enough to resume it (``tsodso run --resume``)."""
    planner = settings.planner
    formulation = settings.formulation
    return {"steps": plan.steps, "step_minutes": plan.step_minutes, "horizon": plan.horizon,
            "start_hour": plan.start_hour, "solve": asdict(plan.solve), "forecast_noise": plan.noise.sigma,
            "forecast_seed": plan.noise.seed, "planner": type(planner).__name__ if planner else "SessionPlanner",
            "scheme": getattr(planner, "scheme", "dso-led"),
            "formulation": asdict(formulation) if is_dataclass(formulation) else None,
            "output": str(plan.output)}


def start_time(cfg: ScenarioConfig) -> _dt.datetime:
    day = _dt.datetime(PROFILE_YEAR, 1, 1) + _dt.timedelta(days=cfg.day_of_year - 1)
    return day + _dt.timedelta(hours=cfg.start_hour)


# --- the world -----------------------------------------------------------------------------------------------------
class _ErrorSink:
    """Collects ERROR records of the mosaik logger: mosaik only logs a subprocess or remote failure
    (``world.run`` returns normally; docs/cosimulation.md), so the runner checks this after ``world.run``."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: Any) -> None:
        self.messages.append(message.record["message"])


def partial_path(output: Path) -> Path:
    """The file a run writes to until it has ended successfully: ``<output>.partial`` beside the target."""
    return output.with_name(output.name + PARTIAL_SUFFIX)


def check_output(plan: RunPlan, overwrite: bool, resuming: bool = False) -> None:
    """Refuse to replace a finished result (or the partial file of another run) unless asked; create the folder.
    Nothing is written to either file here."""
    target, partial = plan.output, plan.partial
    for path in (target, partial):
        if path.is_dir():
            raise ScenarioError("--output", "", str(path), "is a folder", "a file name such as results/run.h5")
    if target.exists() and not overwrite:
        raise ScenarioError("--output", "", str(target), "exists already; not replaced",
                            "--overwrite to replace it at the successful end of the run, or another --output")
    if partial.exists() and not overwrite and not resuming:
        raise ScenarioError("--output", "", str(partial), "is the partial file of an earlier run that did not end",
                            f"--resume {partial} to continue it, --overwrite to start again, or another --output")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError("--output", "", str(target), f"folder cannot be created ({exc.strerror or exc})") from None
    if not os.access(target.parent, os.W_OK):
        raise ScenarioError("--output", "", str(target), "folder is not writable")


def run_scenario(cfg: ScenarioConfig, settings: RunSettings | None = None, resume: Any = None) -> RunResult:
    """Run the co-simulation of ``cfg``; raises :class:`ScenarioError` (bad input), :class:`RunFailed` or
    :class:`scenarios.run_guard.RunStopped` (a signal or a step past its wall-clock limit).

    Everything is validated before any file is opened. The run writes ``<output>.partial`` (flushed every step)
    and renames it to ``output`` at the successful end; a run that does not end keeps the partial file.
    ``resume`` (:class:`scenarios.resume.ResumeState`) continues such a partial file from its last complete step.
    """
    settings = settings or RunSettings()
    t_start = _time.perf_counter()
    plan = resolve(cfg, settings)
    sims = parse_simulators(cfg)
    plugins = parse_plugins(cfg, sims)
    run_case = build_case(cfg, periods=plan.steps + plan.horizon - 1, start_hour=plan.start_hour,
                          step_minutes=plan.step_minutes)
    first = 0
    if resume is not None:
        run_case, first = resume.check_and_apply(cfg, plan, plugins, run_case)
    check_output(plan, settings.overwrite, resuming=resume is not None)

    def case_factory(periods: int, hour: float):
        return build_case(cfg, periods=periods, start_hour=hour, step_minutes=plan.step_minutes)

    on_step = None
    if settings.on_step is not None:
        callback = settings.on_step

        def on_step(k: int, stats: Mapping[str, Any]) -> None:
            callback(first + k, plan.steps, stats)

    sim_config: dict[str, Any] = {**CORE_SIMS, **{name: s.entry for name, s in sims.items()}}
    limits = {name: s.step_timeout_s for name, s in sims.items()}
    limits["Coordinator"] = plan.coordinator_timeout_s
    guard = RunGuard({k: v for k, v in limits.items() if math.isfinite(v)})
    sink = _ErrorSink()
    logger.enable("mosaik")
    sink_id = logger.add(sink, level="ERROR", filter="mosaik", format="{message}")
    timings: dict[str, float] = {}
    graph = None
    try:
        with guard, mosaik.World(sim_config, skip_greetings=True, configure_logging=False,
                                 debug=settings.debug) as world:
            try:
                entities = _build_core(world, cfg, plan, run_case, case_factory, settings, on_step, guard, resume)
                _add_plugins(world, cfg, plan, sims, plugins, entities)
                timings["setup_s"] = _time.perf_counter() - t_start
                t_run = _time.perf_counter()
                guard.watch(world)
                world.run(until=(plan.steps - first) * plan.step_seconds, print_progress=False)
            except RunStopped as stop:
                guard.handled = True
                _cancel_pending(world, cancel=True)
                raise (guard.stop or stop) from None
            except ResultsWriteError as exc:
                _cancel_pending(world, cancel=True)
                raise RunFailed(str(exc)) from None
            except (ScenarioError, RunFailed):
                raise
            except Exception as exc:
                _cancel_pending(world, cancel=True)
                if guard.stop is not None:  # a killed stuck plugin may surface as a mosaik error first
                    guard.handled = True
                    raise guard.stop from None
                cause = exc.__cause__ if isinstance(exc.__cause__, ResultsWriteError) else exc
                if isinstance(cause, ResultsWriteError):
                    raise RunFailed(str(cause)) from None
                raise RunFailed(f"the co-simulation failed: {type(exc).__name__}: {exc}{_kept(plan)}") from exc
            timings["run_s"] = _time.perf_counter() - t_run
            if sink.messages:
                _cancel_pending(world)
            if settings.debug:
                graph = world.execution_graph
    except RunStopped as stop:
        stop.message = f"{stop.message}{_kept(plan)}"
        stop.args = (stop.message,)
        raise
    finally:
        logger.remove(sink_id)
    timings["total_s"] = _time.perf_counter() - t_start
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if sink.messages:
        first_lines = "; ".join(m.strip().splitlines()[0].removesuffix(" Further information provided:")
                                for m in sink.messages if m.strip())
        raise RunFailed(f"{first_lines}{_kept(plan)}")
    os.replace(plan.partial, plan.output)
    summary = summarize(plan.output, plan.step_hours)
    summary["timings"] = timings
    return RunResult(plan.output, plan, summary, graph, timings)


def _kept(plan: RunPlan) -> str:
    """Where the completed steps of a run that did not end are (for messages)."""
    if not plan.partial.exists():
        return " (no step was recorded)"
    try:
        with h5py.File(plan.partial, "r", locking=False) as h5:
            rows = int(h5.attrs.get(ROWS_COMPLETE, h5[TIME].shape[0]))
    except Exception as exc:  # noqa: BLE001 - only for a message
        return f" (the partial results file {plan.partial} cannot be read: {exc})"
    if rows == 0:
        return f" (no step was completed; remove {plan.partial} or continue it with tsodso run --resume)"
    return (f" (the {rows} completed steps are in {plan.partial}; continue with tsodso run --resume "
            f"{plan.partial})")


def _cancel_pending(world: mosaik.World, cancel: bool = False) -> None:
    """After an aborted run mosaik leaves its simulator tasks pending, and asyncio reports each one ("Task was
    destroyed but it is pending") when they are collected. The run has already failed with a clear message, so
    drop those reports; anything else still goes to the default handler.

    ``cancel``: also cancel the scheduler's simulator tasks (only those: the connections' reader tasks are needed
    by mosaik's shut-down), so that nothing steps again while the world shuts down after a stop."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "was destroyed but it is pending" not in str(context.get("message", "")):
            loop.default_exception_handler(context)

    world.loop.set_exception_handler(handler)
    if cancel and not world.loop.is_closed():
        tasks = [t for t in asyncio.all_tasks(world.loop) if not t.done() and t.get_name().startswith("Runner for")]
        for task in tasks:
            task.cancel()
        if tasks:
            world.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _build_core(world: mosaik.World, cfg: ScenarioConfig, plan: RunPlan, run_case: Any, case_factory: Any,
                settings: RunSettings, on_step: Any, guard: RunGuard | None = None,
                resume: Any = None) -> dict[str, Any]:
    """Start and wire the framework's simulators; returns the entities by eid (plugins connect to these)."""
    names = [a.name for a in run_case.adns]
    planner = settings.planner
    first = resume.first_step if resume is not None else 0
    with world.group():
        dso = world.start("DSO", adns=run_case.adns, step_seconds=plan.step_seconds, step_hours=plan.step_hours,
                          horizon=plan.horizon, noise=plan.noise,
                          p2p_positions=resume.p2p_positions if resume is not None else None)
        tso = world.start("TSO", tn=run_case.tn, step_seconds=plan.step_seconds, horizon=plan.horizon,
                          noise=plan.noise, last_dispatch=resume.last_dispatch if resume is not None else None)
        cs = world.start("Coordinator", case_factory=case_factory, horizon=plan.horizon,
                         step_seconds=plan.step_seconds, step_hours=plan.step_hours,
                         start_hour=plan.start_hour + first * plan.step_hours,
                         planner=planner, options=plan.solve, formulation=settings.formulation, on_step=on_step,
                         load_peaks=[adn.load_p.max(axis=0) for adn in run_case.adns])
        agents = {n: dso.DSOAgent(adn=n) for n in names}
        tso_e = tso.TSO()
        hub = cs.Hub()
        adn_plans = {n: cs.ADNPlan(adn=n) for n in names}
        tn_plan = cs.TNPlan()
    grid = world.start("Grid", case=run_case)
    adn_grids = {n: grid.ADNGrid(adn=n) for n in names}
    tn_grid = grid.TNGrid()
    if resume is not None:
        attrs = {"resumed": json.dumps(resume.history(plan))}
    else:
        attrs = {"scenario": json.dumps(config_record(cfg)), "scenario_name": cfg.name,
                 "run": json.dumps(run_record(plan, settings))}
    rec = world.start("Recorder", guard=guard).Recorder(
        path=str(plan.partial), start=start_time(cfg).isoformat(), step_seconds=plan.step_seconds, attrs=attrs,
        append=resume is not None, time_offset=first * plan.step_seconds)

    for n in names:
        world.connect(agents[n], hub, ("offer", "offer"))
        world.connect(adn_plans[n], agents[n], "setpoint", weak=True)
        world.connect(agents[n], adn_grids[n], "p_withdrawal_mw", "q_withdrawal_mvar")
        world.connect(agents[n], rec, *[a for a in dso_sim.OUTPUTS if a != "offer"])
        world.connect(adn_plans[n], rec, *[a for a in coord.ADN_PLAN_OUT if a != "setpoint"])
        world.connect(adn_grids[n], rec, *grid_sim.ADN_OUTPUTS)
    world.connect(tso_e, hub, ("offer", "tn_offer"))
    world.connect(tn_plan, tso_e, "dispatch", weak=True)
    world.connect(tso_e, tn_grid, "gen_mw", "load_scale")
    world.connect(tso_e, rec, *[a for a in tso_sim.OUTPUTS if a != "offer"])
    world.connect(tn_plan, rec, *[a for a in coord.TN_PLAN_OUT if a != "dispatch"])
    world.connect(hub, rec, *coord.STATS)
    world.connect(tn_grid, rec, *grid_sim.TN_OUTPUTS)

    entities: dict[str, Any] = {"Recorder": rec, "Coordinator_hub": hub, tn_plan.eid: tn_plan,
                                tso_e.eid: tso_e, tn_grid.eid: tn_grid}
    for group in (agents, adn_plans, adn_grids):
        entities.update({e.eid: e for e in group.values()})
    return entities


def _add_plugins(world: mosaik.World, cfg: ScenarioConfig, plan: RunPlan, sims: Mapping[str, SimulatorSpec],
                 plugins: list[PluginSpec], entities: dict[str, Any]) -> None:
    """Start the plugin simulators, create their entities and connect them; errors name the YAML field."""
    context = {"step_seconds": plan.step_seconds, "step_hours": plan.step_hours, "start_hour": plan.start_hour,
               "steps": plan.steps, "horizon": plan.horizon, "day_of_year": cfg.day_of_year}
    factories: dict[str, Any] = {}
    created: dict[str, list[Any]] = {}
    for p in plugins:
        spec = sims[p.simulator]
        if p.simulator not in factories:
            try:
                factories[p.simulator] = world.start(p.simulator, **expand(spec.params, context))
            except Exception as exc:  # noqa: BLE001 - start failures are the plugin's: report with the field
                raise ScenarioError(cfg.source, spec.path, plain(spec.entry), f"simulator did not start: "
                                    f"{type(exc).__name__}: {exc}") from None
        factory = factories[p.simulator]
        models = factory.meta.get("models", {})
        if p.model not in models or not models[p.model].get("public", True):
            raise ScenarioError(cfg.source, f"{p.path}.model", p.model, f"not a model of simulator {p.simulator}",
                                ", ".join(m for m, d in models.items() if d.get("public", True)))
        try:
            created[p.name] = getattr(factory, p.model).create(p.num, **expand(p.params, context))
        except Exception as exc:  # noqa: BLE001
            raise ScenarioError(cfg.source, f"{p.path}.params", p.params,
                                f"creating {p.model} failed: {type(exc).__name__}: {exc}") from None
    peers = dict(entities)
    peers.update({name: ents[0] for name, ents in created.items() if len(ents) == 1})
    for p in plugins:
        recorded: set[str] = set(p.record or ())
        for c in p.connections:
            if c.peer not in peers or c.peer == "Recorder":
                raise ScenarioError(cfg.source, f"{c.path}.{'to' if c.outgoing else 'from'}", c.peer,
                                    "unknown entity", ", ".join(k for k in peers if k != "Recorder"))
            peer = peers[c.peer]
            for ent in created[p.name]:
                src, dest = (ent, peer) if c.outgoing else (peer, ent)
                for a_src, a_dest in c.attrs:
                    _check_attr(cfg, c.path, src, a_src, output=True)
                    _check_attr(cfg, c.path, dest, a_dest, output=False)
                kwargs: dict[str, Any] = {}
                if c.time_shifted:
                    kwargs = {"time_shifted": True, "initial_data": dict(c.initial)}
                try:
                    world.connect(src, dest, *c.attrs, **kwargs)
                except MosaikScenarioError as exc:
                    raise ScenarioError(cfg.source, c.path, plain(c.attrs), str(exc)) from None
            if c.outgoing and p.record is None:
                recorded.update(a for a, _ in c.attrs)
        for ent in created[p.name]:
            for attr in sorted(recorded):
                _check_attr(cfg, f"{p.path}.record", ent, attr, output=True)
            if recorded:
                world.connect(ent, entities["Recorder"], *sorted(recorded))


def _check_attr(cfg: ScenarioConfig, path: str, entity: Any, attr: str, output: bool) -> None:
    mock = entity.model_mock
    attrs = mock.output_attrs if output else mock.input_attrs
    if attr in LOOP_ATTRS and entity.sid.split("-")[0] in CORE_SIMS:
        raise ScenarioError(cfg.source, f"{path}.attrs", attr, f"{entity.eid}.{attr} belongs to the coordinator loop")
    if attr not in attrs:
        meta = mock._factory.meta["models"][mock.name]
        names = [a for a in meta.get("attrs", []) if a not in LOOP_ATTRS]
        kind = "an output" if output else "an input"
        raise ScenarioError(cfg.source, f"{path}.attrs", attr, f"not {kind} attribute of {entity.eid} ({mock.name})",
                            ", ".join(names) or "none")


# --- summary -------------------------------------------------------------------------------------------------------
def summarize(path: Path | str, step_hours: float) -> dict[str, Any]:
    """Short KPIs of a run file, from what was applied and measured (AC power flow), not what was planned."""
    from simulators.recorder import read_run

    data = read_run(str(path))
    dt = step_hours
    adns = sorted({k.split("/")[2] for k in data if k.startswith("/DSO/")})

    def get(key: str) -> np.ndarray:
        return np.nan_to_num(np.asarray(data.get(key, np.zeros(len(data["/time"]))), dtype=float))

    per = {}
    for a in adns:
        pcc = get(f"/ADNGrid/{a}/pcc_p_mw")
        pv = get(f"/DSO/{a}/pv_used_mw").sum() * dt
        exp = np.clip(-pcc, 0, None).sum() * dt
        per[a] = {"import_mwh": float(np.clip(pcc, 0, None).sum() * dt), "export_mwh": float(exp),
                  "pv_mwh": float(pv), "load_mwh": float(get(f"/DSO/{a}/load_mw").sum() * dt),
                  "bess_throughput_mwh": float((get(f"/DSO/{a}/bess_ch_mw").sum()
                                                + get(f"/DSO/{a}/bess_dis_mw").sum()) * dt),
                  "curtailment_mwh": float(get(f"/DSO/{a}/curtailment_mw").sum() * dt),
                  "extra_load_mwh": float(get(f"/DSO/{a}/extra_load_mw_total").sum() * dt)}
    total = {k: float(sum(v[k] for v in per.values())) for k in next(iter(per.values()), {})}
    total["self_consumption"] = self_consumption(total.get("pv_mwh", 0.0), total.get("export_mwh", 0.0))
    hub = "/Coordinator/hub/"
    solve = np.asarray(data.get(hub + "solve_time_s", []), dtype=float)
    vmin = [np.nanmin(data[k]) for k in data if k.startswith("/ADNGrid/") and k.endswith("/vm_min_pu")]
    vmax = [np.nanmax(data[k]) for k in data if k.startswith("/ADNGrid/") and k.endswith("/vm_max_pu")]
    status = [str(s) for s in data.get(hub + "status", [])]
    return {
        "steps": int(len(data["/time"])),
        "adns": per,
        "total": total,
        "solve_time_mean_s": float(np.nanmean(solve)) if solve.size and np.isfinite(solve).any() else math.nan,
        "solve_time_max_s": float(np.nanmax(solve)) if solve.size and np.isfinite(solve).any() else math.nan,
        "step_time_mean_s": float(np.nanmean(data[hub + "step_time_s"])) if hub + "step_time_s" in data else math.nan,
        "fallback_steps": int(np.nansum(np.asarray(data.get(hub + "fallback", []), dtype=float) > 0)),
        "statuses": {s: status.count(s) for s in sorted(set(status))},
        "bess_clipped_steps": int(sum(np.sum(get(f"/DSO/{a}/bess_clipped_mw") > 1e-6) for a in adns)),
        "adn_v_min_pu": float(min(vmin)) if vmin else math.nan,
        "adn_v_max_pu": float(max(vmax)) if vmax else math.nan,
        "tn_v_min_pu": float(np.nanmin(data["/TNGrid/tn/vm_min_pu"])) if "/TNGrid/tn/vm_min_pu" in data else math.nan,
        "tn_v_max_pu": float(np.nanmax(data["/TNGrid/tn/vm_max_pu"])) if "/TNGrid/tn/vm_max_pu" in data else math.nan,
        "pf_not_converged_steps": int(sum(np.sum(np.asarray(data[k]) < 0.5) for k in data
                                          if k.startswith(("/ADNGrid/", "/TNGrid/")) and k.endswith("/converged"))),
    }


__all__ = ["RunFailed", "RunPlan", "RunResult", "RunSettings", "resolve", "run_scenario", "summarize"]
